"""Linear forms: ``Σ_k s_k · coeff_k`` over independent seed/tangent symbols ``s_k``.

Backprop is linear in the seed, so running it on linear forms computes every seed coefficient at
once without putting thousands of seed symbols into a polynomial ring.  Coefficients are any
scalars with ``+ − ×`` (the engine's Values, SymPy numbers, polynomials).
"""
from __future__ import annotations

from fractions import Fraction

try:
    import flint as _flint
except ImportError:  # pragma: no cover
    _flint = None

_FLINT_POLY = _flint.fmpq_mpoly if _flint is not None else None
_FLINT_Q = _flint.fmpq if _flint is not None else None

__all__ = ["LinearForm", "is_zero"]


def is_zero(p) -> bool:
    if type(p) is _FLINT_POLY:  # the hot path of the prover
        return p.is_zero()
    if type(p).__name__ == "Value":  # the engine's scalar: syntactic zero only
        return p.is_syntactic_zero()
    if type(p) is _FLINT_Q:  # (python-flint 0.9's fmpq(0).is_zero() answers False)
        return p == 0
    if isinstance(p, LinearForm) or type(p).__name__ == "RawForm":
        return not p.terms
    if isinstance(p, (int, Fraction)):
        return p == 0
    z = getattr(p, "is_zero", None)
    if callable(z):  # flint
        return bool(z())
    if isinstance(z, bool):  # sympy Expr
        return z
    return not p  # sympy PolyElement


class LinearForm:
    """``Σ_k s_k · coeff_k``: a sparse dict from symbol index to a coefficient polynomial."""

    __slots__ = ("terms",)

    def __init__(self, terms=None):
        self.terms = terms if terms is not None else {}

    @classmethod
    def unit(cls, key, one):
        return cls({key: one})

    def _combine(self, other, sign):
        if isinstance(other, LinearForm):
            out = dict(self.terms)
            for k, v in other.terms.items():
                if k in out:
                    s = out[k] + v if sign > 0 else out[k] - v
                    if is_zero(s):
                        del out[k]
                    else:
                        out[k] = s
                else:
                    out[k] = v if sign > 0 else -v
            return LinearForm(out)
        if is_zero(other):
            return self
        raise TypeError("a linear form can only be added to a linear form or to zero")

    def __add__(self, other):
        return self._combine(other, 1)

    def __radd__(self, other):
        return self._combine(other, 1)

    def __sub__(self, other):
        return self._combine(other, -1)

    def __rsub__(self, other):
        return (-self)._combine(other, 1)

    def __neg__(self):
        return LinearForm({k: -v for k, v in self.terms.items()})

    def __mul__(self, scalar):
        if isinstance(scalar, LinearForm):
            raise TypeError("product of two linear forms is not linear")
        if is_zero(scalar):
            return LinearForm()
        # coefficients are nonzero and ℚ[atoms] has no zero divisors: no product can vanish
        return LinearForm({k: v * scalar for k, v in self.terms.items()})

    __rmul__ = __mul__

    def __truediv__(self, scalar):
        if isinstance(scalar, LinearForm):
            raise TypeError("a linear form divided by a linear form is not linear")
        return self * (1 / scalar)

    def __eq__(self, other):
        if isinstance(other, LinearForm):
            return not (self - other).terms
        return is_zero(other) and not self.terms

    __hash__ = None

    def __repr__(self):
        return f"LinearForm({len(self.terms)} terms)"
