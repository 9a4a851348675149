"""The shared vocabulary of the inference-bound proofs: channel symbols, the positive symbol R,
the exact zero test with its side conditions, and the assumptions every obligation states.

Symbols: per channel γ, β, μ, σ² (real), ε (real), and R = sqrt(max(σ², 0) + ε), a *positive*
symbol (it exists and is positive exactly under the assumption max(σ², 0) + ε > 0).  Every
occurrence of max(σ², 0) is replaced by R² − ε, so sqrt(max(σ², 0) + ε) becomes sqrt(R²) = R.
An identity proved for all real ε and R > 0 holds for all parameters satisfying the assumption.
Zero tests go through decide_zero; its side conditions (radicands > 0, denominators ≠ 0) are
checked to be implied: no radicand may remain, every denominator must be a monomial in positive
symbols.

The rules under test are evaluated through :func:`_scale_of`, :func:`_offset_of` (the ``rules``
dict of ``prove``) and :func:`_forward` (the TorchLean forward pass,
:func:`symbolic_bn.bounds.rules.bn_forward`).  Used by :mod:`symbolic_bn.bounds.box_proofs`,
:mod:`symbolic_bn.bounds.identity_proofs` and :mod:`symbolic_bn.bounds.certify`.
"""
from __future__ import annotations

import sympy

from ..exact.budget import BudgetExceeded
from ..exact.decide import decide_zero
from .rules import SYMPY_OPS, bn_forward


_DENOM_ASSUMPTION = "max(σ²_c, 0) + ε > 0 in every channel c (R_c = sqrt(max(σ²_c, 0) + ε) > 0)"
_REAL_ASSUMPTION = "γ, β, μ, σ², ε real"
_R_METHOD = ("R := sqrt(max(σ²,0)+ε) as a positive symbol (max(σ²,0) ↦ R² − ε); "
             "decide_zero (exact normal form over ℚ with 1/R cleared)")

LEAN_FILE = "NN/MLTheory/CROWN/Operators/Batchnorm.lean"


class _Channel:
    """Symbols (or numbers) of one channel and the substitution that introduces R."""

    def __init__(self, k: int | str, gamma=None, eps=None):
        sfx = f"_{k}" if k != "" else ""
        self.mean = sympy.Symbol(f"mu{sfx}", real=True)
        self.var = sympy.Symbol(f"var{sfx}", real=True)
        self.beta = sympy.Symbol(f"beta{sfx}", real=True)
        self.gamma = sympy.Symbol(f"gamma{sfx}", real=True) if gamma is None else gamma
        self.eps = eps if eps is not None else sympy.Symbol("eps", real=True)
        self.R = sympy.Symbol(f"R{sfx}", positive=True)
        self.sub = {sympy.Max(self.var, 0): self.R ** 2 - self.eps}

    def params(self):
        return dict(mean=self.mean, var=self.var, gamma=self.gamma, beta=self.beta, eps=self.eps)


def _concrete_channel(mean, var, gamma, beta, eps):
    ch = _Channel.__new__(_Channel)
    ch.mean, ch.var, ch.gamma, ch.beta, ch.eps = (sympy.Rational(v) for v in (mean, var, gamma, beta, eps))
    ch.R = None
    ch.sub = {}
    return ch


def _scale_of(rules, ch):
    return rules["scale"](ch.gamma, ch.var, ch.eps, SYMPY_OPS)


def _offset_of(rules, ch):
    return rules["offset"](ch.gamma, ch.beta, ch.mean, ch.var, ch.eps, SYMPY_OPS)


def _forward(ch, x):
    return bn_forward(x, ch.mean, ch.var, ch.gamma, ch.beta, ch.eps, SYMPY_OPS)


def _positive_monomial(q, positive: set) -> bool:
    """q is a nonzero rational times a product of powers of positive symbols."""
    q = sympy.expand(q)
    if q.is_Rational:
        return q != 0
    if not q.free_symbols <= positive:
        return False
    factors = q.args if q.is_Mul else (q,)
    for f in factors:
        if f.is_Rational:
            if f == 0:
                return False
        elif f.is_Symbol:
            continue
        elif f.is_Pow and f.base.is_Symbol and f.exp.is_Integer:
            continue
        else:
            return False
    return True


class _Undecided(Exception):
    pass


# Exceptions never taken for the rule's fault: a timeout must stay a timeout.  (_Undecided is
# also a timeout in the symbolic phase; at a single grid point it only means "skip this point".)
_PASS_THROUGH = (BudgetExceeded, _Undecided)


def _raised(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())
    if len(msg) > 300:
        msg = msg[:300] + "…"
    return f"the rule raised {type(exc).__name__} (evaluating it or deciding its output): {msg}"


def _is_zero(expr, positive: set):
    """True if decide_zero proves ``expr ≡ 0`` with side conditions implied by the assumptions
    (no radicand left, every denominator a monomial in positive symbols); False if its normal
    form is not zero; None if it is zero only under side conditions that the assumptions do not
    imply.  A timeout raises _Undecided."""
    expr = expr if isinstance(expr, sympy.Basic) else sympy.sympify(expr)
    dec = decide_zero(expr)
    if dec.status == "timeout":
        raise _Undecided("decide_zero ran out of time")
    if dec.status != "proved":
        return False
    if dec.radicands or not all(_positive_monomial(q, positive) for q in dec.nonzero_denominators):
        return None
    return True


# exact rationals for the counterexample grids
_R = sympy.Rational
