"""Proofs for every size: the BatchNormChannelFirst identities with symbolic C, H, W.

A CAS check at one shape (say 2×3×3) is evidence for that shape only.  This module proves the
per-channel identities for a *symbolic* spatial size ``N = H·W`` and the channel independence for a
*symbolic* channel count ``C``, so that one certificate covers every shape.

Index-level calculus (a small term language with explicit rewrite rules)
-----------------------------------------------------------------------
Values are SymPy polynomials (with integer exponents, negative ones only on atoms known to be
nonzero) in *atoms*, each atom a SymPy symbol registered with its structure:

* ``x[c,p]`` -- an input family at symbolic indices (``Ix`` objects; spatial indices range over
  ``0..N-1``, channel indices over ``0..C-1``);
* ``δ[i,k]`` -- a Kronecker delta of two distinct indices of the same range;
* ``Σ_N0(body)`` -- a *named sum*: a finite sum over a bound index (renamed canonically) of a
  monomial ``body`` that depends on the bound index;
* ``√(u)`` -- ``σ = sqrt(u)`` of a normal form ``u`` (a positive symbol; ``σ⁻¹`` is ``r``);
* ``ι(b)`` -- ``1/b`` of a normal form ``b`` that is not a monomial in nonzero atoms;
* the symbols ``N`` and ``C`` (sizes, with ``N⁻¹``) and ``eps``.

Every construction normalizes with the rules of :data:`RULES` (``sum-linear``, ``sum-const``,
``delta-contract``, ``delta-refl``, ``delta-subst``, ``bound-rename``, ``N-inverse``) and
differentiation uses ``deriv-atom``, ``deriv-sum``, ``deriv-poly``, ``sqrt-chain`` and
``inv-chain``.  The rules that fired are logged per obligation and listed in its ``method``.

Decisions are exact: the difference of both sides is brought to normal form, then
:func:`decide_nf` clears ``N⁻¹`` and ``σ⁻¹`` by multiplying with powers of ``N`` and ``σ``
(nonzero), eliminates ``ι`` by multiplying with powers of its base and reduces ``σ² → u``; a zero
polynomial is a proof.  ``simplify()`` is never used.

Side conditions.  Building ``ι(b)`` records ``b ≠ 0`` (and raises :class:`ZeroBase` when ``b``
reduces to 0 modulo ``σ² = u``: ``1/b`` is then undefined everywhere, the claim is 'undecided');
building ``σ = sqrt(u)`` records ``u > 0``.  A claim is 'proved' only when every recorded condition,
and every ``σ``/``ι`` left in its normal forms, is implied by its *stated* hypotheses (a nonzero
constant, N or C, ``σ``, a quantity its ``cover`` maps to a stated assumption such as
``var_c + ε > 0``, or a product of these); otherwise it is 'undecided' with the condition named.

Confirmation at concrete sizes
------------------------------
Every parametric obligation is re-checked for ``N = 1..6`` with ``C = 1`` (and, for the
channel-level ones, also ``C = 2`` with ``N = 1..3``) by a *concrete* backend that runs the same
statement with explicit symbols ``x_c_0 .. x_c_{N-1}``, Python-expanded sums and ``sympy.diff``:
for every assignment of the free indices, ``decide_zero`` must prove that the symbolic normal forms
of both sides, instantiated at that ``N`` (named sums expanded), equal the concrete expansions of
both sides (one batched ``decide_zero`` per shape, with independent multiplier symbols).  With the
symbolic proof this gives concrete lhs = concrete rhs and it guards against a wrong rewrite rule.
A row where a side divides by zero cannot be compared: a claim with such rows (in particular one
with 0 comparisons) is 'undecided', never 'proved'.
When the symbolic decision does not prove a claim, concrete lhs = rhs is decided directly and a
wrong statement is refuted by an exact counterexample at a concrete ``N`` and rational point
(``differ_exactly``), re-evaluated on a fresh backend before it is reported.

What is *not* covered for symbolic sizes: full-context seeds (seeds on intermediate slots; the
per-node VJP = Jᵀδ / JVP = J·t laws are proved, their composition for arbitrary seeds only at
concrete shapes by the concrete-shape engine), the totalized behaviour at ``var_c + ε ≤ 0``, and
``N = 0``.  A closed form or rule is a Python function: what is proved is the expression it
builds for a *symbolic* N (and confirmed at the concrete sizes), so a function that branches on
the value of N (``if M.N == 7: ...``; SymPy's structural ``==`` is False for the symbol) is only
covered where the branch it takes for the symbol is the one it takes at that N -- a branch taken
only at some N outside the confirmation sizes is not seen.

Inexact numbers are refused, never decided: a closed form or rule whose sides contain a SymPy
``Float`` (a Python float multiplied in becomes one) raises ``ValueError`` naming the claim, even
when the statement would hold for the Float read as an exact binary number (``1.0 * x = x``); a
side that is not a number or SymPy expression (a string) raises ``ValueError`` too (it is never
parsed).

Public API: :func:`prove_all_sizes`, :class:`ClosedForm`, :data:`STANDARD_CLOSED_FORM`,
:data:`VJP_RULES`, :data:`JVP_RULES`, :data:`STAGES`, :data:`RULES`, the backends
:class:`SymbolicBackend` / :class:`ConcreteBackend`, :class:`Model`, :class:`Ix`, :func:`decide_nf`,
:func:`instantiate`.
"""
from __future__ import annotations

import contextlib
import contextvars
import itertools
import time
from dataclasses import dataclass
from typing import Callable

import sympy
from sympy import Add, Integer, Mul, Rational, Symbol

from .certificate import Certificate, Obligation
from ..exact.budget import BudgetExceeded, check_budget, time_budget
from ..exact.decide import decide_zero, differ_exactly

__all__ = [
    "Ix", "SymbolicBackend", "ConcreteBackend", "Model", "ClosedForm", "STANDARD_CLOSED_FORM",
    "STAGES", "VJP_RULES", "JVP_RULES", "FORWARD_RULES", "RULES", "N_SYM", "C_SYM", "EPS",
    "decide_nf", "instantiate", "normalize", "sum_over", "prove_all_sizes", "backprop", "jvp",
    "forward", "claims", "run_claim", "Claim", "recording", "diff", "subs_ix", "at", "delta",
    "confirmation_grid", "concrete_symbol", "ZeroBase",
]

N_SYM = Symbol("N", positive=True, integer=True)
C_SYM = Symbol("C", positive=True, integer=True)
EPS = Symbol("eps")

RULES: dict[str, str] = {
    "sum-linear": "Σ_j (a_j + b_j) = Σ_j a_j + Σ_j b_j and Σ_j k·a_j = k·Σ_j a_j for k free of j",
    "sum-const": "Σ_{j<N} k = N·k for k free of j (over a channel index: Σ_{c<C} k = C·k)",
    "delta-contract": "Σ_j δ_jk·a_j = a_k for 0 ≤ k < N (k ranges over the same index set as j)",
    "delta-refl": "δ_kk = 1",
    "delta-subst": "δ_ik·f(k) = δ_ik·f(i) and δ_ik² = δ_ik (δ_ik ≠ 0 only when i = k)",
    "bound-rename": "Σ_j f(j) = Σ_k f(k): bound indices are renamed canonically",
    "N-inverse": "N·N⁻¹ = 1 (N = H·W ≥ 1)",
    "deriv-atom": "∂x[c,p]/∂x[c',q] = δ_cc'·δ_pq; the derivative of another input family is 0",
    "deriv-sum": "∂(Σ_j f_j) = Σ_j ∂f_j (finite sum)",
    "deriv-poly": "sum and product rule: exact differentiation of a polynomial in the atoms",
    "sqrt-chain": "∂sqrtClamp(u) = ∂u/(2·sqrt(u)) where u > 0 (there max(u,0) = u)",
    "inv-chain": "∂(1/b) = −∂b/b² where b ≠ 0",
    "sigma-square": "σ² = u for σ = sqrt(u), u > 0 (decision)",
    "sigma-inverse": "σ·σ⁻¹ = 1 since σ > 0 (decision: multiply by a power of σ)",
    "iota-inverse": "b·ι = 1 for ι = 1/b, b ≠ 0 (decision: multiply by a power of b)",
}


# ---------------------------------------------------------------------------------------------
# Logs of rules fired and domain conditions used (per obligation)

_LOG: contextvars.ContextVar = contextvars.ContextVar("allsizes_log", default=None)


class _Log:
    def __init__(self):
        self.rules: set[str] = set()
        self.positive: list = []   # radicands u with sqrt(u) used (u > 0 needed)
        self.nonzero: list = []    # bases b with 1/b used (b ≠ 0 needed)

    def add_cond(self, kind, expr):
        target = self.positive if kind == "positive" else self.nonzero
        if not any(e == expr for e in target):
            target.append(expr)


@contextlib.contextmanager
def recording():
    """Record the rewrite rules fired and the domain conditions used inside the block::

        with recording() as log:
            ...
        log.rules, log.positive, log.nonzero
    """
    log = _Log()
    token = _LOG.set(log)
    try:
        yield log
    finally:
        _LOG.reset(token)


def _rule(name: str) -> None:
    log = _LOG.get()
    if log is not None:
        log.rules.add(name)


def _cond(kind: str, expr) -> None:
    log = _LOG.get()
    if log is not None:
        log.add_cond(kind, expr)


# ---------------------------------------------------------------------------------------------
# Indices and atoms

_IX_RANGES: dict[str, str] = {}


@dataclass(frozen=True)
class Ix:
    """A symbolic index: ``rng='N'`` ranges over ``0..N-1`` (spatial), ``'C'`` over ``0..C-1``."""

    name: str
    rng: str = "N"

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        if self.rng not in ("N", "C"):
            raise ValueError(f"rng must be 'N' or 'C', got {self.rng!r}")
        known = _IX_RANGES.setdefault(self.name, self.rng)
        if known != self.rng:
            raise ValueError(f"name {self.name!r} is already an index over {known}, not {self.rng}")

    def __str__(self):
        return self.name


@dataclass(frozen=True)
class _Atom:
    kind: str           # 'at' | 'delta' | 'sum' | 'sqrt' | 'inv'
    data: tuple
    free: frozenset     # free Ix
    depth: int = 0      # named sums: nesting depth of the bound index


_ATOMS: dict[Symbol, _Atom] = {}
_ORDER: dict[Symbol, int] = {}
_FRESH = itertools.count(1)


def _register(name: str, atom: _Atom, **assumptions) -> Symbol:
    sym = Symbol(name, **assumptions)
    known = _ATOMS.get(sym)
    if known is None:
        _ATOMS[sym] = atom
        _ORDER[sym] = len(_ORDER)
    elif known != atom:  # pragma: no cover - names are faithful renderings of the structure
        raise RuntimeError(f"atom name clash for {name!r}")
    return sym


def _kind(sym) -> str | None:
    a = _ATOMS.get(sym)
    return a.kind if a is not None else None


def _free(expr) -> frozenset:
    out: set = set()
    for s in getattr(expr, "free_symbols", ()):
        a = _ATOMS.get(s)
        if a is not None:
            out |= a.free
    return frozenset(out)


def _fresh(rng: str) -> Ix:
    return Ix(f"~{rng}{next(_FRESH)}", rng)


def _bound(rng: str, depth: int) -> Ix:
    return Ix(f"_{rng}{depth}", rng)


def _size(rng: str):
    """Number of values of an index of range ``rng`` (the ``sum-const`` factor)."""
    return N_SYM if rng == "N" else C_SYM


def at(family: str, *idx: Ix) -> Symbol:
    """The atom ``family[idx...]``."""
    if not isinstance(family, str) or not family.isidentifier():
        raise ValueError(f"family must be an identifier, got {family!r}")
    for i in idx:
        if not isinstance(i, Ix):
            raise ValueError(f"idx must be Ix objects, got {i!r}")
    name = f"{family}[{','.join(i.name for i in idx)}]"
    return _register(name, _Atom("at", (family, tuple(idx)), frozenset(idx)))


def delta(i: Ix, k: Ix):
    """Kronecker delta ``δ_ik`` of two indices of the same range."""
    if not isinstance(i, Ix) or not isinstance(k, Ix):
        raise ValueError("delta takes two Ix indices")
    if i.rng != k.rng:
        raise ValueError(f"delta of indices of different ranges: {i} ({i.rng}), {k} ({k.rng})")
    if i == k:
        _rule("delta-refl")
        return Integer(1)
    a, b = sorted((i, k), key=lambda ix: ix.name)
    return _register(f"δ[{a.name},{b.name}]", _Atom("delta", (a, b), frozenset((a, b))))


def _sqrt_atom(u):
    u = normalize(u)
    _cond("positive", u)
    if u.is_Rational:
        if u <= 0:
            raise ValueError(f"sqrt of the non-positive constant {u}")
        root = sympy.sqrt(u)
        if root.is_Rational:
            return root
    return _register(f"√({sympy.sstr(u)})", _Atom("sqrt", (u,), _free(u)), positive=True)


class ZeroBase(ZeroDivisionError):
    """``1/b`` where ``b`` is zero on the whole domain (its normal form reduces to 0 modulo the
    relations ``σ² = u``, ``σ·σ⁻¹ = 1``, ``N·N⁻¹ = 1``): the quotient is undefined everywhere."""

    def __init__(self, base):
        self.base = base
        super().__init__(f"1/b with b = {sympy.sstr(base)[:300]}, which is 0 on the whole domain "
                         f"(its normal form reduces to 0 modulo σ² = u)")


_ZERO_BASE: dict = {}


def _base_is_zero(b) -> bool:
    """``b ≡ 0`` modulo the decision relations (cached): then ``1/b`` is undefined everywhere."""
    got = _ZERO_BASE.get(b)
    if got is None:
        got = _ZERO_BASE[b] = bool(b == 0 or decide_nf(b)[0])
    return got


def _inv_atom(b):
    """``ι(b) = 1/b``.  Raises :class:`ZeroBase` when ``b`` is zero modulo the relations; the
    condition ``b ≠ 0`` is recorded, and :func:`run_claim` only proves a claim when every such
    condition is implied by the claim's stated hypotheses."""
    b = normalize(b)
    if _base_is_zero(b):
        raise ZeroBase(b)
    _cond("nonzero", b)
    return _register(f"ι({sympy.sstr(b)})", _Atom("inv", (b,), _free(b)))


def _sum_atom(j: Ix, body):
    depth = 1 + max((_ATOMS[s].depth for s in body.free_symbols if _kind(s) == "sum"),
                    default=-1)
    b = _bound(j.rng, depth)
    if j != b and b in _free(body):  # pragma: no cover - outer canonical names are deeper
        raise RuntimeError("bound index capture")
    body = subs_ix(body, {j: b})
    if j != b:
        _rule("bound-rename")
    name = f"Σ{b.name}({sympy.sstr(body)})"
    return _register(name, _Atom("sum", (b, body), _free(body) - {b}, depth))


# ---------------------------------------------------------------------------------------------
# Normal forms


def subs_ix(expr, mapping: dict):
    """Rename free indices (``{old Ix: new Ix}``) everywhere, including inside named sums,
    radicands and inverse bases."""
    mapping = {k: v for k, v in mapping.items() if k != v}
    expr = sympy.sympify(expr)
    if not mapping:
        return expr
    rep = {}
    for s in expr.free_symbols:
        a = _ATOMS.get(s)
        if a is None or not a.free.intersection(mapping):
            continue
        rep[s] = _rebuild(a, mapping)
    if not rep:
        return expr
    return normalize(expr.xreplace(rep))


def _rebuild(a: _Atom, mapping: dict):
    if a.kind == "at":
        family, idx = a.data
        return at(family, *[mapping.get(i, i) for i in idx])
    if a.kind == "delta":
        i, k = a.data
        return delta(mapping.get(i, i), mapping.get(k, k))
    if a.kind == "sum":
        b, body = a.data
        inner = {k: v for k, v in mapping.items() if k != b}
        if b in inner.values():  # pragma: no cover - see _sum_atom
            raise RuntimeError("bound index capture")
        return sum_over(b, subs_ix(body, inner))
    if a.kind == "sqrt":
        return _sqrt_atom(subs_ix(a.data[0], mapping))
    if a.kind == "inv":
        return _inv_atom(subs_ix(a.data[0], mapping))
    raise AssertionError(a.kind)  # pragma: no cover


def _factors(term):
    coeff, factors = term.as_coeff_mul()
    return coeff, [f.as_base_exp() for f in factors]


def _canon_term(term):
    """delta-subst on one monomial: δ_ik·f(k) → δ_ik·f(i) (i < k by name), δ² → δ."""
    for _ in range(64):
        coeff, pows = _factors(term)
        deltas = [(b, e) for b, e in pows if _kind(b) == "delta"]
        if not deltas:
            return term
        if any(e != 1 for _, e in deltas):
            _rule("delta-subst")
            term = coeff * Mul(*[b ** (1 if _kind(b) == "delta" else e) for b, e in pows])
            continue
        changed = False
        for db, _ in deltas:
            i, k = _ATOMS[db].data
            others = [b ** e for b, e in pows if b != db]
            if any(k in _free(o) for o in others):
                rest = subs_ix(Mul(*others), {k: i})
                _rule("delta-subst")
                term = sympy.expand(coeff * db * rest)
                changed = True
                break
        if not changed:
            return term
        if term.is_Add:
            return Add(*[_canon_term(t) for t in term.args])
    raise RuntimeError("delta canonicalization did not terminate")  # pragma: no cover


def normalize(expr):
    """Expanded polynomial in the atoms, with deltas canonical (rule delta-subst)."""
    expr = sympy.expand(sympy.sympify(expr, strict=True))  # numbers and expressions, never strings
    if not any(_kind(s) == "delta" for s in expr.free_symbols):
        return expr
    return sympy.expand(Add(*[_canon_term(t) for t in Add.make_args(expr)]))


def sum_over(j: Ix, expr):
    """``Σ_{j} expr`` over the range of ``j``, normalized by the summation rules."""
    if not isinstance(j, Ix):
        raise ValueError(f"j must be an Ix, got {j!r}")
    expr = normalize(expr)
    out = []
    for term in Add.make_args(expr):
        if term == 0:
            continue
        coeff, pows = _factors(term)
        dj = next((b for b, e in pows if _kind(b) == "delta" and j in _ATOMS[b].free), None)
        if dj is not None:
            i, k = _ATOMS[dj].data
            other = k if i == j else i
            rest = coeff * Mul(*[b ** e for b, e in pows if b != dj])
            _rule("delta-contract")
            out.append(_contract(rest, j, other))
            continue
        dep = [(b, e) for b, e in pows if j in _free(b)]
        if not dep:
            _rule("sum-const")
            out.append(_size(j.rng) * term)
            continue
        indep = Mul(*[b ** e for b, e in pows if j not in _free(b)])
        body = Mul(*[b ** e for b, e in dep])
        _rule("sum-linear")
        out.append(coeff * indep * _sum_atom(j, body))
    return normalize(Add(*out))


def _contract(rest, j: Ix, other: Ix):
    """Rule delta-contract: ``Σ_j δ_j,other · rest(j) = rest(other)``."""
    return subs_ix(rest, {j: other})


def _deriv_atom(idx2: tuple, idx: tuple):
    """Rule deriv-atom: ``∂f[idx2]/∂f[idx] = Π_m δ(idx2_m, idx_m)``."""
    return Mul(*[delta(u, v) for u, v in zip(idx2, idx)])


def _sqrt_chain(sigma, du):
    """Rule sqrt-chain: ``∂σ = ∂u/(2σ)`` for ``σ = sqrt(u)``, ``u > 0``."""
    return Rational(1, 2) * sigma ** -1 * du


def _inv_chain(iota, db):
    """Rule inv-chain: ``∂ι = −ι²·∂b`` for ``ι = 1/b``, ``b ≠ 0``."""
    return -(iota ** 2) * db


def _inverse(v):
    """``1/v``: Laurent powers for N, C and σ (nonzero); ι atoms otherwise."""
    v = normalize(v)
    if v == 0:
        raise ZeroDivisionError("division by the constant 0")
    if v.is_Add:
        return _inv_atom(v)
    coeff, pows = _factors(v)
    out = 1 / coeff
    for b, e in pows:
        if b in (N_SYM, C_SYM):
            _rule("N-inverse")
            out *= b ** (-e)
        elif _kind(b) == "sqrt":
            out *= b ** (-e)
        elif _kind(b) == "inv":
            out *= _ATOMS[b].data[0] ** e
        elif e > 0:
            out *= _inv_atom(b) ** e
        else:  # pragma: no cover - negative powers only occur on N, C, σ
            out *= b ** (-e)
    return normalize(out)


def diff(expr, family: str, *idx: Ix):
    """Exact derivative of ``expr`` with respect to the input atom ``family[idx]``."""
    expr = normalize(expr)
    total = Integer(0)
    used_poly = False
    for s in expr.free_symbols:
        a = _ATOMS.get(s)
        if a is None:
            continue  # N, C, eps and constants
        d = _datom(s, a, family, idx)
        if d != 0:
            used_poly = True
            total += sympy.diff(expr, s) * d
    if used_poly:
        _rule("deriv-poly")
    return normalize(total)


def _datom(s, a: _Atom, family, idx):
    if a.kind == "at":
        fam2, idx2 = a.data
        if fam2 != family or len(idx2) != len(idx):
            return 0
        _rule("deriv-atom")
        return _deriv_atom(idx2, idx)
    if a.kind == "delta":
        return 0
    if a.kind == "sum":
        b, body = a.data
        j = _fresh(b.rng)
        inner = diff(subs_ix(body, {b: j}), family, *idx)
        if inner == 0:
            return 0
        _rule("deriv-sum")
        return sum_over(j, inner)
    if a.kind == "sqrt":
        du = diff(a.data[0], family, *idx)
        if du == 0:
            return 0
        _rule("sqrt-chain")
        _cond("positive", a.data[0])
        return _sqrt_chain(s, du)
    if a.kind == "inv":
        db = diff(a.data[0], family, *idx)
        if db == 0:
            return 0
        _rule("inv-chain")
        _cond("nonzero", a.data[0])
        return _inv_chain(s, db)
    raise AssertionError(a.kind)  # pragma: no cover


# ---------------------------------------------------------------------------------------------
# Exact decision of a normal form


def _exp_of(term, sym):
    return term.as_powers_dict().get(sym, 0)


def _clear_negative(expr, sym):
    m = min((_exp_of(t, sym) for t in Add.make_args(expr)), default=0)
    if m < 0:
        return sympy.expand(expr * sym ** (-m)), True
    return expr, False


def decide_nf(expr, *, max_rounds: int = 12):
    """Decide ``expr == 0`` for a normal form, using only relations valid on the domain.

    Returns ``(zero: bool, remainder, relations_used)``.  Steps (each multiplies by a nonzero
    factor or substitutes a valid relation): clear negative powers of N and C; eliminate each
    ``ι = 1/b`` by multiplying with ``b^K``; clear negative powers of each ``σ`` and reduce
    ``σ^k → u^(k//2)·σ^(k%2)`` (``σ² = u``).  Named sums, input atoms and deltas stay opaque, so
    a nonzero remainder is *not* a disproof.

    ``zero`` is conditional on ``b ≠ 0`` for every eliminated ``ι(b)`` and ``u > 0`` for every
    ``σ = sqrt(u)`` (the conditions recorded when the atoms were built); :func:`run_claim` checks
    that the claim's stated hypotheses imply them.  A base that is itself zero modulo the
    relations is never multiplied by (the ``ι`` stays, so no proof results).
    """
    used: set[str] = set()
    D = normalize(expr)
    for _ in range(max_rounds):
        if D == 0:
            break
        changed = False
        for s in (N_SYM, C_SYM):
            D, ch = _clear_negative(D, s)
            if ch:
                used.add("N-inverse")
                changed = True
        atoms = sorted((s for s in D.free_symbols if _kind(s) in ("sqrt", "inv")),
                       key=lambda s: -_ORDER[s])
        for s in atoms:
            if s not in D.free_symbols:
                continue
            base = _ATOMS[s].data[0]
            terms = Add.make_args(D)
            if _kind(s) == "inv":
                K = max(_exp_of(t, s) for t in terms)
                if K <= 0 or _base_is_zero(base):
                    continue
                used.add("iota-inverse")
                D = sympy.expand(Add(*[t / s ** _exp_of(t, s) * base ** (K - _exp_of(t, s))
                                       for t in terms]))
                changed = True
            else:
                D, ch = _clear_negative(D, s)
                if ch:
                    used.add("sigma-inverse")
                    changed = True
                terms = Add.make_args(D)
                if any(_exp_of(t, s) >= 2 for t in terms):
                    used.add("sigma-square")
                    new = []
                    for t in terms:
                        k = _exp_of(t, s)
                        if k >= 2:
                            t = t / s ** k * base ** (k // 2) * s ** (k % 2)
                        new.append(t)
                    D = sympy.expand(Add(*new))
                    changed = True
        D = normalize(D)
        if not changed:
            break
    return D == 0, D, used


# ---------------------------------------------------------------------------------------------
# Backends: the same statements run symbolically (any N, C) or concretely (explicit symbols)


class SymbolicBackend:
    """Index-level calculus for symbolic N (and C); values are normal forms."""

    symbolic = True
    N = N_SYM
    C = C_SYM
    eps = EPS

    @property
    def Ninv(self):
        _rule("N-inverse")
        return N_SYM ** -1

    def at(self, family, *idx):
        return at(family, *idx)

    def delta(self, i, k):
        return delta(i, k)

    def sum(self, rng, fn):
        j = _fresh(rng)
        return sum_over(j, fn(j))

    def sqrt(self, v):
        return _sqrt_atom(v)

    def sqrt_clamp(self, v):
        """sqrtClamp(v) = sqrt(max(v, 0)); on the domain v > 0 this is sqrt(v)."""
        return _sqrt_atom(v)

    def inv(self, v):
        return _inverse(v)

    def diff(self, v, family, *idx):
        return diff(v, family, *idx)


_CONCRETE: dict[Symbol, tuple] = {}


def concrete_symbol(family: str, idx: tuple) -> Symbol:
    """The explicit symbol ``family_i_j`` of the concrete backend."""
    sym = Symbol("_".join([family] + [str(int(i)) for i in idx]))
    _CONCRETE[sym] = (family, tuple(int(i) for i in idx))
    return sym


class ConcreteBackend:
    """Explicit symbols x_c_0 .. x_c_{N-1}; sums expanded; ``sympy.diff``; ``sympy.sqrt``."""

    symbolic = False
    eps = EPS

    def __init__(self, n: int, channels: int = 1):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an int ≥ 1, got {n!r}")
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be an int ≥ 1, got {channels!r}")
        self.n = n
        self.channels = channels
        self.N = Integer(n)
        self.C = Integer(channels)
        self.Ninv = Rational(1, n)
        self._diff_cache: dict = {}

    def at(self, family, *idx):
        return concrete_symbol(family, idx)

    def delta(self, i, k):
        return Integer(1 if i == k else 0)

    def sum(self, rng, fn):
        size = self.n if rng == "N" else self.channels
        return Add(*[fn(j) for j in range(size)])

    def sqrt(self, v):
        return sympy.sqrt(v)

    def sqrt_clamp(self, v):
        """sqrt(max(v, 0)) on the domain v > 0, where max(v, 0) = v."""
        return sympy.sqrt(v)

    def inv(self, v):
        if v == 0:
            raise ZeroDivisionError("division by 0 in the concrete expansion")
        return 1 / v

    def diff(self, v, family, *idx):
        key = (v, family, tuple(idx))
        got = self._diff_cache.get(key)
        if got is None:
            got = self._diff_cache[key] = sympy.diff(v, concrete_symbol(family, idx))
        return got



def instantiate(expr, n: int, channels: int, env: dict):
    """The normal form ``expr`` at ``N = n``, ``C = channels`` and the free indices ``env``
    (``{Ix: int}``), as an explicit SymPy expression in the concrete backend's symbols."""
    cache: dict = {}

    def inst(e):
        e = sympy.sympify(e)
        rep = {}
        for s in e.free_symbols:
            if s == N_SYM:
                rep[s] = Integer(n)
            elif s == C_SYM:
                rep[s] = Integer(channels)
            elif s in _ATOMS:
                rep[s] = atom_value(s)
        return e.xreplace(rep) if rep else e

    def atom_value(s):
        key = (s, tuple(sorted(((i.name, v) for i, v in env.items()))))
        if key in cache:
            return cache[key]
        a = _ATOMS[s]
        if a.kind == "at":
            family, idx = a.data
            val = concrete_symbol(family, tuple(env[i] for i in idx))
        elif a.kind == "delta":
            i, k = a.data
            val = Integer(1 if env[i] == env[k] else 0)
        elif a.kind == "sum":
            b, body = a.data
            size = n if b.rng == "N" else channels
            vals = []
            for v in range(size):
                env[b] = v
                vals.append(inst(body))
            del env[b]
            val = Add(*vals)
        elif a.kind == "sqrt":
            val = sympy.sqrt(inst(a.data[0]))
        else:
            base = inst(a.data[0])
            if base == 0:
                raise ZeroDivisionError(f"1/0 when instantiating {s} at N={n}")
            val = 1 / base
        cache[key] = val
        return val

    env = dict(env)
    return inst(expr)


# ---------------------------------------------------------------------------------------------
# The BatchNormChannelFirst model, graph and node rules (torchlean.md §2.3, §3)


def _memo(fn):
    cache: dict = {}

    def wrapped(*args):
        if args not in cache:
            cache[args] = fn(*args)
        return cache[args]
    return wrapped


class Model:
    """Forward quantities of one BN example on a backend (channel index c, spatial p).

    Families: ``x`` (input), ``gamma``, ``beta``, ``g`` (cotangent on yChw), ``t`` (tangent on
    x), ``tgamma``, ``tbeta`` (tangents on γ, β).
    """

    def __init__(self, be):
        self.be = be
        self.mean = _memo(self._mean)
        self.var = _memo(self._var)
        self.r = _memo(self._r)
        self.std = _memo(self._std)

    # sizes and scalars
    @property
    def N(self):
        return self.be.N

    @property
    def Ninv(self):
        return self.be.Ninv

    @property
    def eps(self):
        return self.be.eps

    def sum(self, fn):
        """Σ over the spatial index p < N."""
        return self.be.sum("N", fn)

    # inputs
    def x(self, c, p):
        return self.be.at("x", c, p)

    def g(self, c, p):
        return self.be.at("g", c, p)

    def t(self, c, p):
        return self.be.at("t", c, p)

    def gamma(self, c):
        return self.be.at("gamma", c)

    def beta(self, c):
        return self.be.at("beta", c)

    def tgamma(self, c):
        return self.be.at("tgamma", c)

    def tbeta(self, c):
        return self.be.at("tbeta", c)

    # forward (spec formulas)
    def _mean(self, c):
        return self.Ninv * self.sum(lambda j: self.x(c, j))

    def centered(self, c, p):
        return self.x(c, p) - self.mean(c)

    def _var(self, c):
        return self.Ninv * self.sum(lambda j: self.centered(c, j) ** 2)

    def var_eps(self, c):
        return self.var(c) + self.eps

    def _std(self, c):
        return self.be.sqrt_clamp(self.var_eps(c))

    def _r(self, c):
        return self.be.inv(self.std(c))

    def xhat(self, c, p):
        return self.centered(c, p) * self.r(c)

    def normalized(self, c, p):
        return self.xhat(c, p)

    def y(self, c, p):
        return self.gamma(c) * self.xhat(c, p) + self.beta(c)


@dataclass(frozen=True)
class Stage:
    pos: int
    name: str
    kind: str
    inputs: tuple
    shape: str          # 'CN' (matrix C×N; C×H×W flattened) or 'C' (vector)
    lean: str


#: The 16 nodes of ``batchNormGraph ε`` (torchlean.md §2.3), in order.
STAGES: tuple[Stage, ...] = (
    Stage(3, "xMat", "reshape", ("x",), "CN", "nodeXMat"),
    Stage(4, "mean", "rowMean", ("xMat",), "C", "nodeMean"),
    Stage(5, "mean_b", "broadcastRow", ("mean",), "CN", "nodeMeanB"),
    Stage(6, "centered", "sub", ("xMat", "mean_b"), "CN", "nodeCentered"),
    Stage(7, "centered_sq", "mul", ("centered", "centered"), "CN", "nodeCenteredSq"),
    Stage(8, "var", "rowMean", ("centered_sq",), "C", "nodeVar"),
    Stage(9, "var_eps", "addEps", ("var",), "C", "nodeVarEps"),
    Stage(10, "std", "sqrtClamp", ("var_eps",), "C", "nodeStd"),
    Stage(11, "inv_std", "inv", ("std",), "C", "nodeInvStd"),
    Stage(12, "inv_std_b", "broadcastRow", ("inv_std",), "CN", "nodeInvStdB"),
    Stage(13, "normalized", "mul", ("centered", "inv_std_b"), "CN", "nodeNorm"),
    Stage(14, "gamma_b", "broadcastRow", ("gamma",), "CN", "nodeGammaB"),
    Stage(15, "scaled", "mul", ("normalized", "gamma_b"), "CN", "nodeScaled"),
    Stage(16, "beta_b", "broadcastRow", ("beta",), "CN", "nodeBetaB"),
    Stage(17, "yMat", "add", ("scaled", "beta_b"), "CN", "nodeYMat"),
    Stage(18, "yChw", "reshape", ("yMat",), "CN", "nodeYChw"),
)
INPUT_SHAPES = {"x": "CN", "gamma": "C", "beta": "C"}

# Node rules.  Values of a C×N slot are callables (c, p) -> value, of a C slot c -> value.
# Each rule receives the backend ``be``.


def _f_reshape(be, a):
    return a


def _f_rowmean(be, a):
    return lambda c: be.Ninv * be.sum("N", lambda j: a(c, j))


def _f_bcast(be, v):
    return lambda c, p: v(c)


def _f_sub(be, a, b):
    return lambda c, p: a(c, p) - b(c, p)


def _f_add(be, a, b):
    return lambda c, p: a(c, p) + b(c, p)


def _f_mul(be, a, b):
    return lambda c, p: a(c, p) * b(c, p)


def _f_addeps(be, z):
    return lambda c: z(c) + be.eps


def _f_sqrtclamp(be, z):
    return lambda c: be.sqrt_clamp(z(c))


def _f_inv(be, z):
    return lambda c: be.inv(z(c))


#: forward of each node kind
FORWARD_RULES: dict[str, Callable] = {
    "reshape": _f_reshape, "rowMean": _f_rowmean, "broadcastRow": _f_bcast, "sub": _f_sub,
    "add": _f_add, "mul": _f_mul, "addEps": _f_addeps, "sqrtClamp": _f_sqrtclamp, "inv": _f_inv,
}


def _sqrt_deriv(be, z):
    """TorchLean's declared f'(z) = 1/(2·sqrt z) of sqrtClamp (for z > 0)."""
    return be.inv(2 * be.sqrt(z))


def _inv_deriv(be, z):
    """TorchLean's declared f'(z) = −(z²)⁻¹ of inv (for z ≠ 0)."""
    return -be.inv(z ** 2)


#: VJP of each node kind: (be, inputs, δ) -> one cotangent contribution per input position
VJP_RULES: dict[str, Callable] = {
    "reshape": lambda be, ins, d: (d,),
    "rowMean": lambda be, ins, d: (lambda c, p: d(c) * be.Ninv,),
    "broadcastRow": lambda be, ins, d: (lambda c: be.sum("N", lambda j: d(c, j)),),
    "sub": lambda be, ins, d: (d, lambda c, p: -d(c, p)),
    "add": lambda be, ins, d: (d, d),
    "mul": lambda be, ins, d: (lambda c, p: d(c, p) * ins[1](c, p),
                               lambda c, p: d(c, p) * ins[0](c, p)),
    "addEps": lambda be, ins, d: (lambda c: d(c) * 1,),
    "sqrtClamp": lambda be, ins, d: (lambda c: d(c) * _sqrt_deriv(be, ins[0](c)),),
    "inv": lambda be, ins, d: (lambda c: d(c) * _inv_deriv(be, ins[0](c)),),
}

#: JVP of each node kind: (be, inputs, input tangents) -> output tangent
JVP_RULES: dict[str, Callable] = {
    "reshape": lambda be, ins, ds: ds[0],
    "rowMean": lambda be, ins, ds: (lambda c: be.Ninv * be.sum("N", lambda j: ds[0](c, j))),
    "broadcastRow": lambda be, ins, ds: (lambda c, p: ds[0](c)),
    "sub": lambda be, ins, ds: (lambda c, p: ds[0](c, p) - ds[1](c, p)),
    "add": lambda be, ins, ds: (lambda c, p: ds[0](c, p) + ds[1](c, p)),
    "mul": lambda be, ins, ds: (lambda c, p: ins[0](c, p) * ds[1](c, p)
                                + ins[1](c, p) * ds[0](c, p)),
    "addEps": lambda be, ins, ds: (lambda c: ds[0](c) * 1),
    "sqrtClamp": lambda be, ins, ds: (lambda c: ds[0](c) * _sqrt_deriv(be, ins[0](c))),
    "inv": lambda be, ins, ds: (lambda c: ds[0](c) * _inv_deriv(be, ins[0](c))),
}


def _zero(shape):
    return (lambda c, p: Integer(0)) if shape == "CN" else (lambda c: Integer(0))


def _combine(parts, shape):
    if not parts:
        return _zero(shape)
    if len(parts) == 1:
        return parts[0]
    if shape == "CN":
        return _memo(lambda c, p: Add(*[f(c, p) for f in parts]))
    return _memo(lambda c: Add(*[f(c) for f in parts]))


def forward(M: Model) -> dict:
    """Values of every slot of ``ΓBN ++ ssBatchNorm`` as callables, stage by stage."""
    be = M.be
    vals = {"x": M.x, "gamma": M.gamma, "beta": M.beta}
    for st in STAGES:
        vals[st.name] = _memo(FORWARD_RULES[st.kind](be, *[vals[i] for i in st.inputs]))
    return vals


def _shape(name):
    return INPUT_SHAPES.get(name) or next(s.shape for s in STAGES if s.name == name)


def backprop(M: Model, seed: dict, vjp_rules: dict | None = None) -> dict:
    """``Graph.backpropVec``: reverse order, slot cotangent = its seed + all later VJP
    contributions; returns the cotangents of the inputs x, gamma, beta."""
    rules = dict(VJP_RULES, **(vjp_rules or {}))
    vals = forward(M)
    cot: dict = {name: ([seed[name]] if name in seed else []) for name in vals}
    for st in reversed(STAGES):
        d = _combine(cot[st.name], st.shape)
        contribs = rules[st.kind](M.be, tuple(vals[i] for i in st.inputs), d)
        for name, contrib in zip(st.inputs, contribs):
            cot[name].append(_memo(contrib))
    return {name: _combine(cot[name], INPUT_SHAPES[name]) for name in INPUT_SHAPES}


def jvp(M: Model, tangents: dict, jvp_rules: dict | None = None) -> dict:
    """``Graph.jvpVec``: forward-mode tangents of every slot, stage by stage."""
    rules = dict(JVP_RULES, **(jvp_rules or {}))
    vals = forward(M)
    tan = {name: tangents.get(name, _zero(INPUT_SHAPES[name])) for name in INPUT_SHAPES}
    for st in STAGES:
        tan[st.name] = _memo(rules[st.kind](M.be, tuple(vals[i] for i in st.inputs),
                                            tuple(tan[i] for i in st.inputs)))
    return tan


# ---------------------------------------------------------------------------------------------
# Closed forms (torchlean.md §5.4)


@dataclass(frozen=True)
class ClosedForm:
    """A closed form to check.  Each field is a function of a :class:`Model` ``M`` and indices:
    ``dx(M, c, q)``, ``dgamma(M, c)``, ``dbeta(M, c)`` (for the cotangent ``M.g``) and
    ``jvp(M, c, p)`` (for the tangents ``M.t``, ``M.tgamma``, ``M.tbeta``)."""

    name: str
    dx: Callable
    dgamma: Callable
    dbeta: Callable
    jvp: Callable


def _cf_dx(M, c, q):
    return (M.gamma(c) * M.r(c) * M.Ninv
            * (M.N * M.g(c, q) - M.sum(lambda j: M.g(c, j))
               - M.xhat(c, q) * M.sum(lambda j: M.g(c, j) * M.xhat(c, j))))


def _cf_dgamma(M, c):
    return M.sum(lambda j: M.g(c, j) * M.xhat(c, j))


def _cf_dbeta(M, c):
    return M.sum(lambda j: M.g(c, j))


def _cf_jvp(M, c, p):
    return (M.gamma(c) * M.r(c)
            * (M.t(c, p) - M.Ninv * M.sum(lambda j: M.t(c, j))
               - M.xhat(c, p) * M.Ninv * M.sum(lambda j: M.t(c, j) * M.xhat(c, j)))
            + M.xhat(c, p) * M.tgamma(c) + M.tbeta(c))


#: Spec.batchNorm2dBackward / Spec.batchNorm2dJvp (torchlean.md §5.4)
STANDARD_CLOSED_FORM = ClosedForm(
    name="Spec.batchNorm2dBackward / batchNorm2dJvp (§5.4)",
    dx=_cf_dx, dgamma=_cf_dgamma, dbeta=_cf_dbeta, jvp=_cf_jvp)


# ---------------------------------------------------------------------------------------------
# Claims and their verification


@dataclass
class Claim:
    """A parametric statement ``lhs == rhs`` (componentwise when they return tuples).

    ``lhs``/``rhs`` are functions ``(be, idx) -> value | tuple`` where ``idx`` maps the free index
    names to indices of the backend (``Ix`` symbolically, ints concretely).
    """

    name: str
    group: str
    statement: str
    free: tuple
    lhs: Callable
    rhs: Callable
    lean_name: str | None = None
    stage: str | None = None
    channel_level: bool = False       # confirm also with C = 2
    assumptions: tuple = ()
    cover: Callable | None = None     # (kind, expr) -> assumption text or None


def _as_tuple(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,)


_POSITIVE_FAMILIES = {"z"}


def _point_value(sym, attempt: int):
    if sym == EPS:
        return Rational(1, 10) if attempt % 2 == 0 else Rational(2, 7)
    family, idx = _CONCRETE[sym]
    k = attempt * 131 + sum(ord(ch) for ch in family) * 7
    for m, v in enumerate(idx):
        k += (m + 3) * (v + 1) * 13 + v * v * 5
    num = (k % 17) - 8
    den = (k // 17) % 5 + 1
    if num == 0:
        num = 3
    if family in _POSITIVE_FAMILIES:
        num = abs(num)
    return Rational(num, den)


def _point(exprs, attempt):
    syms = set()
    for e in exprs:
        syms |= sympy.sympify(e).free_symbols
    return {s: _point_value(s, attempt) for s in sorted(syms, key=str)}


def _evaluate(expr, point):
    val = sympy.sympify(expr).xreplace(point)
    if val.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo) or val.free_symbols:
        return None
    return val


def _concrete_sides(claim, n, channels, assignment, be=None):
    be = be or ConcreteBackend(n, channels)
    L, R = _as_tuple(claim.lhs(be, assignment)), _as_tuple(claim.rhs(be, assignment))
    _refuse_inexact(claim, list(L) + list(R))
    return L, R


def _assignments(claim, n, channels):
    names = [name for name, _ in claim.free]
    ranges = [range(n) if rng == "N" else range(channels) for _, rng in claim.free]
    for values in itertools.product(*ranges):
        yield dict(zip(names, values))


def _search_counterexample(claim, n, channels, assignment, component, attempts=3):
    """Exact rational point where the concrete sides differ (re-evaluated from scratch)."""
    try:
        L, R = _concrete_sides(claim, n, channels, assignment)
    except ZeroDivisionError:
        return None
    lhs, rhs = L[component], R[component]
    for attempt in range(attempts):
        point = _point([lhs, rhs], attempt)
        lv, rv = _evaluate(lhs, point), _evaluate(rhs, point)
        if lv is None or rv is None:
            continue
        if differ_exactly(lv, rv) is True:
            # re-evaluate independently: rebuild both sides on a fresh backend
            L2, R2 = _concrete_sides(claim, n, channels, assignment)
            lv2, rv2 = _evaluate(L2[component], point), _evaluate(R2[component], point)
            if lv2 is None or rv2 is None or differ_exactly(lv2, rv2) is not True:
                continue
            return {
                "N": n, "H": n, "W": 1, "C": channels,
                "indices": dict(assignment), "component": component,
                "point": {str(s): str(v) for s, v in point.items()},
                "lhs": str(lv2), "rhs": str(rv2),
            }
    return None


def confirmation_grid(claim, sizes, max_n_two_channels: int = 3):
    """The concrete shapes ``(C, N)`` at which a claim is confirmed: ``C = 1`` with every ``N``
    in ``sizes``; for channel-level claims also ``C = 2`` with ``N ≤ max_n_two_channels`` (where
    channels can mix, i.e. the cross-channel blocks are actually exercised)."""
    grid = [(1, n) for n in sizes]
    if claim.channel_level:
        grid += [(2, n) for n in sizes if n <= max_n_two_channels]
    return grid


def _batched_zero(diffs) -> bool:
    """``decide_zero`` of ``Σ_k λ_k·d_k`` with fresh symbols λ_k: its normal form is a polynomial
    in the λ's whose coefficients are the normal forms of the ``d_k`` (times the same nonzero
    factors), so it is zero exactly when every ``d_k`` is proved zero.  One call instead of many."""
    diffs = [d for d in diffs if d != 0]
    if not diffs:
        return True
    lams = [sympy.Dummy(f"lambda{k}") for k in range(len(diffs))]
    return decide_zero(Add(*[lam * d for lam, d in zip(lams, diffs)])).proved


def _confirm(claim, Lnf, Rnf, idx, grid, symbolic_zero):
    """Concrete confirmation at the shapes of ``grid``.

    For every assignment of the free indices: the symbolic normal forms of lhs and rhs,
    instantiated at that N (named sums expanded), must equal the concrete expansions of lhs and
    rhs (this checks the rewrite rules; with the symbolic proof it gives concrete lhs = concrete
    rhs).  When the symbolic decision did not prove the claim, concrete lhs = rhs is decided
    directly and refuted by an exact counterexample where possible.

    Rows where a side divides by zero cannot be compared; they are counted in ``skipped``
    (``{(C, N): number}``), and a claim with skipped rows is never 'proved'.

    Returns ``(n_checks, counterexample | None, problem | None, skipped)``.
    """
    checks = 0
    skipped: dict = {}

    def skip(channels, n):
        skipped[(channels, n)] = skipped.get((channels, n), 0) + 1

    for channels, n in grid:
        shared = ConcreteBackend(n, channels)
        rows = []
        for assignment in _assignments(claim, n, channels):
            try:
                L, R = _concrete_sides(claim, n, channels, assignment, shared)
            except ZeroDivisionError:
                skip(channels, n)
                continue
            env = {idx[name]: v for name, v in assignment.items()}
            for k, (cl, cr) in enumerate(zip(L, R)):
                rows.append((assignment, env, k, cl, cr))
        checks += len(rows)
        if symbolic_zero:
            diffs = []
            try:
                for _, env, k, cl, cr in rows:
                    diffs.append(instantiate(Lnf[k], n, channels, env) - cl)
                    diffs.append(instantiate(Rnf[k], n, channels, env) - cr)
            except ZeroDivisionError:
                diffs = None
            if diffs is not None and _batched_zero(diffs):
                continue
        # diagnose row by row
        for assignment, env, k, cl, cr in rows:
            if not decide_zero(cl - cr).proved:
                cex = _search_counterexample(claim, n, channels, assignment, k)
                if cex is not None:
                    return checks, cex, None, skipped
                return checks, None, (f"N={n}, C={channels}, {assignment}, component {k}: "
                                      f"concrete sides not proved equal, no counterexample "
                                      f"found"), skipped
            if symbolic_zero:
                for side, nf, conc in (("lhs", Lnf[k], cl), ("rhs", Rnf[k], cr)):
                    try:
                        inst = instantiate(nf, n, channels, env)
                    except ZeroDivisionError:
                        skip(channels, n)
                        continue
                    if not decide_zero(inst - conc).proved:
                        return checks, None, (
                            f"N={n}, C={channels}, {assignment}, component {k}: the symbolic "
                            f"normal form of the {side} disagrees with its concrete expansion "
                            f"(a rewrite rule is wrong)"), skipped
    return checks, None, None, skipped


def _sigma_reduced(e):
    """``e`` with every ``σ^k`` (k ≥ 2) replaced by ``u^(k//2)·σ^(k%2)`` (relation σ² = u)."""
    for _ in range(8):
        rep = {}
        for t in Add.make_args(e):
            for b, k in t.as_powers_dict().items():
                if _kind(b) == "sqrt" and k.is_Integer and k >= 2:
                    rep[b ** k] = _ATOMS[b].data[0] ** (k // 2) * b ** (k % 2)
        if not rep:
            return e
        e = normalize(Add(*[t.xreplace(rep) for t in Add.make_args(e)]))
    return e  # pragma: no cover


def _condition_status(claim, kind, e, _depth=0):
    """Is the domain condition ``e > 0`` (kind 'positive') or ``e ≠ 0`` (kind 'nonzero') implied
    by the claim's stated hypotheses?  Returns ``(implied, texts)`` with the assumption texts it
    rests on (``texts`` names the condition itself when it is not implied).

    Implied: a constant of the right sign; N and C (sizes ≥ 1); ``σ = sqrt(u)`` (> 0 when
    ``u > 0`` is implied); ``ι(b) = 1/b`` (≠ 0 when ``b ≠ 0`` is implied); a product of implied
    factors (with a positive coefficient for 'positive'); a quantity the claim's ``cover``
    recognizes with a text among the claim's stated assumptions (for 'nonzero', a recognized
    positive quantity also counts).  Anything else is not implied."""
    e = normalize(e)
    raw = f"{sympy.sstr(e)} {'> 0' if kind == 'positive' else '≠ 0'}"
    if _depth > 8:  # pragma: no cover - atoms nest only a few levels deep
        return False, [raw]
    if e.is_Rational:
        ok = e > 0 if kind == "positive" else e != 0
        return ok, ([] if ok else [raw])
    stated = set(claim.assumptions)
    cover_texts = []
    reduced = _sigma_reduced(e)
    coeff, prim = reduced.as_content_primitive()  # coeff > 0 (a rational)
    if claim.cover is not None:
        # also prim·N^k (N > 0): e.g. N·(var + ε) is recognized as a positive multiple of var + ε
        scaled = [normalize(prim * N_SYM ** k) for k in (-1, 1, -2, 2)] if prim.is_Add else []
        forms = [e, reduced, prim] + scaled + ([-prim] if kind == "nonzero" else [])
        for form in dict.fromkeys(forms):
            for k in ((kind, "positive") if kind == "nonzero" else (kind,)):
                text = claim.cover(k, form)
                if text is not None:
                    if text in stated:
                        return True, [text]
                    if text not in cover_texts:
                        cover_texts.append(text)
    if prim.is_Add:
        # a common monomial factor m (e.g. a power of N): prim = m·rest, checked separately
        terms = Add.make_args(prim)
        m = Mul(*[sym ** min(_exp_of(t, sym) for t in terms) for sym in prim.free_symbols])
        if m != 1:
            rest = normalize(prim / m)
            if rest != prim:
                ok_m, t_m = _condition_status(claim, kind, m, _depth + 1)
                ok_r, t_r = _condition_status(claim, kind, rest, _depth + 1)
                if ok_m and ok_r:
                    return True, t_m + [t for t in t_r if t not in t_m]
    # a monomial is checked factor by factor
    if not prim.is_Add and coeff != 0 and (kind == "nonzero" or coeff > 0):
        pc, pows = _factors(prim)
        ok = kind == "nonzero" or pc > 0
        texts: list = []
        for b, ex in pows:
            if b in (N_SYM, C_SYM):
                continue
            if _kind(b) == "sqrt":
                sub_ok, sub = _condition_status(claim, "positive", _ATOMS[b].data[0], _depth + 1)
            elif _kind(b) == "inv":
                sub_kind = "positive" if kind == "positive" and ex % 2 else "nonzero"
                sub_ok, sub = _condition_status(claim, sub_kind, _ATOMS[b].data[0], _depth + 1)
            elif kind == "positive" and ex.is_Integer and ex % 2 == 0:
                sub_ok, sub = _condition_status(claim, "nonzero", b, _depth + 1)
            elif prim != b or ex != 1:
                sub_ok, sub = _condition_status(claim, kind, b, _depth + 1)
            else:
                sub_ok, sub = False, []
            ok = ok and sub_ok
            texts += [t for t in sub if t not in texts]
        if ok:
            return True, texts
    return False, (cover_texts or [raw])


def _atom_conditions(exprs):
    """Every ``σ``/``ι`` atom occurring in ``exprs`` (also inside named sums, radicands and
    bases), as domain conditions ``[(kind, expr)]`` (atom audit, independent of the log)."""
    seen, out, todo = set(), [], list(exprs)
    while todo:
        e = sympy.sympify(todo.pop())
        for s in e.free_symbols:
            a = _ATOMS.get(s)
            if a is None or s in seen:
                continue
            seen.add(s)
            if a.kind == "sqrt":
                out.append(("positive", a.data[0]))
            elif a.kind == "inv":
                out.append(("nonzero", a.data[0]))
            if a.kind in ("sum", "sqrt", "inv"):
                todo.append(a.data[-1] if a.kind == "sum" else a.data[0])
    return out


def _check_conditions(claim, conditions):
    """``(assumption texts, conditions not implied by the stated hypotheses)``."""
    texts, missing = [], []
    for kind, e in conditions:
        ok, sub = _condition_status(claim, kind, e)
        texts += [t for t in sub if t not in texts]
        if not ok:
            label = f"{sympy.sstr(normalize(e))[:300]} {'> 0' if kind == 'positive' else '≠ 0'}"
            if label not in missing:
                missing.append(label)
    return texts, missing


def _refuse_inexact(claim: Claim, values):
    """A Float (a SymPy Float, or a Python float a closed form or rule multiplied in) has no
    exact meaning we may assume: the claim is refused, never decided (not even '1.0 * x = x')."""
    floats = sorted({str(f) for v in values for f in sympy.sympify(v).atoms(sympy.Float)})
    if floats:
        raise ValueError(f"claim {claim.name}: the closed form or rule it uses contains the inexact "
                         f"number(s) {', '.join(floats[:3])} (a SymPy Float or a Python float); "
                         f"exact decisions need exact numbers: use ints or sympy.Rational")


def run_claim(claim: Claim, *, budget: float | None = 60.0, sizes=range(1, 7)) -> Obligation:
    """Decide one claim for symbolic sizes, then confirm it at the concrete sizes."""
    budget = check_budget(budget)
    start = time.perf_counter()
    log = _Log()
    token = _LOG.set(log)
    status, cex, detail = "undecided", None, None
    method_tail = ""
    extra_conditions: list = []
    try:
        with time_budget(budget):
            be = SymbolicBackend()
            idx = {name: Ix(name, rng) for name, rng in claim.free}
            try:
                Lnf = [normalize(v) for v in _as_tuple(claim.lhs(be, idx))]
                Rnf = [normalize(v) for v in _as_tuple(claim.rhs(be, idx))]
            except sympy.SympifyError as exc:
                raise ValueError(f"claim {claim.name}: a side is not a number or SymPy expression "
                                 f"({exc}); closed forms and rules must return SymPy expressions"
                                 ) from None
            _refuse_inexact(claim, Lnf + Rnf)
            if len(Lnf) != len(Rnf):
                raise ValueError(f"claim {claim.name}: lhs and rhs have different lengths")
            decided = [decide_nf(a - b) for a, b in zip(Lnf, Rnf)]
            symbolic_zero = all(z for z, _, _ in decided)
            relations = set().union(*[u for _, _, u in decided])
            rules_used = sorted(log.rules | relations)
            _LOG.reset(token)
            token = None
            # every σ/ι used (logged while building, or still present in the normal forms) must
            # be defined under the claim's stated hypotheses, else the decision is conditional
            extra_conditions = (
                [("positive", e) for e in log.positive] + [("nonzero", e) for e in log.nonzero]
                + _atom_conditions(Lnf + Rnf))
            _, missing = _check_conditions(claim, extra_conditions)
            grid = confirmation_grid(claim, list(sizes))
            checks, cex, mismatch, skipped = _confirm(claim, Lnf, Rnf, idx, grid, symbolic_zero)
            by_c: dict = {}
            for c_, n_ in grid:
                by_c.setdefault(c_, []).append(n_)
            shapes = "; ".join(f"C={c_}, N={','.join(map(str, ns))}" for c_, ns in by_c.items())
            method_tail = (f"; confirmed at ({shapes}) by concrete expansion "
                           f"(explicit symbols, expanded sums, sympy.diff) with decide_zero: "
                           f"{checks} exact comparisons")
            if skipped:
                method_tail += (f" ({sum(skipped.values())} skipped: division by zero at "
                                + ", ".join(f"C={c_}, N={n_}" for c_, n_ in skipped) + ")")
            if cex is not None:
                status = "failed"
                detail = ("refuted at a concrete size: " + ("the symbolic normal forms were "
                          "equal, so a rewrite rule is wrong" if symbolic_zero else
                          "the symbolic normal form of lhs − rhs is not zero"))
            elif mismatch is not None:
                detail = mismatch
            elif symbolic_zero and missing:
                detail = ("the symbolic decision holds only under side conditions that the "
                          "stated hypotheses do not imply: " + "; ".join(missing)
                          + " (a denominator or radicand not shown nonzero/positive)")
            elif symbolic_zero and (checks == 0 or skipped):
                detail = (f"concrete confirmation incomplete: {checks} exact comparisons, "
                          f"{sum(skipped.values())} rows skipped because a side divides by zero "
                          f"at " + ", ".join(f"C={c_}, N={n_}" for c_, n_ in skipped)
                          + (" (nothing was compared)" if checks == 0 else "")
                          + "; the statement is undefined there")
            elif symbolic_zero:
                status = "proved"
            else:
                rem = [sympy.sstr(r) for z, r, _ in decided if not z]
                detail = ("nonzero normal form of lhs − rhs, and no counterexample at the "
                          "concrete sizes: " + "; ".join(r[:400] for r in rem))
            method = ("index-level calculus for symbolic N" + (" and C" if claim.channel_level
                      else "") + "; rewrite rules used: " + ", ".join(rules_used)
                      + "; exact decision: normal form of lhs − rhs is the zero polynomial"
                      + method_tail)
            if detail is None:
                detail = "lhs normal form: " + "; ".join(sympy.sstr(v)[:300] for v in Lnf)
    except BudgetExceeded:
        status, cex = "undecided", None
        detail = f"time budget of {budget} s exceeded"
        method = "index-level calculus for symbolic N (budget exceeded)"
    except ZeroDivisionError as exc:
        status, cex = "undecided", None
        detail = (f"a side divides by an expression that is zero on the whole domain: {exc}; "
                  f"the statement is undefined, so it is neither proved nor refuted")
        method = "index-level calculus for symbolic N (division by zero while building)"
    finally:
        if token is not None:
            _LOG.reset(token)
    if not extra_conditions:
        extra_conditions = ([("positive", e) for e in log.positive]
                            + [("nonzero", e) for e in log.nonzero])
    assumptions = list(claim.assumptions) + [
        t for t in _check_conditions(claim, extra_conditions)[0] if t not in claim.assumptions]
    if status == "proved" and len(assumptions) != len(claim.assumptions):  # pragma: no cover
        status = "undecided"  # defensive: never 'proved' under an assumption not stated
        detail = "relies on assumptions beyond the stated ones: " + "; ".join(
            assumptions[len(claim.assumptions):])
    return Obligation(
        name=claim.name, statement=claim.statement, status=status, method=method,
        assumptions=assumptions, lean_name=claim.lean_name,
        seconds=time.perf_counter() - start, counterexample=cex if status == "failed" else None,
        group=claim.group, stage=claim.stage, detail=detail)


# ---------------------------------------------------------------------------------------------
# Scalar derivative facts behind sqrt-chain and inv-chain (exact symbolic differentiation)


SCALAR_OBLIGATIONS = ("rule_sqrtClamp_derivative", "rule_inv_derivative", "rule_addEps_derivative")


def _scalar_obligations() -> list[Obligation]:
    out = []
    z = Symbol("z", positive=True)
    w = Symbol("w", nonzero=True)
    e = Symbol("eps")
    facts = [
        ("rule_sqrtClamp_derivative",
         "For every real z > 0: max(z, 0) = z, so sqrtClamp(z) = sqrt(max(z,0)) = sqrt(z) near z, "
         "and d/dz sqrtClamp(z) = 1/(2·sqrt z), TorchLean's declared f' (justifies sqrt-chain)",
         lambda: (sympy.Max(z, 0) - z, sympy.diff(sympy.sqrt(sympy.Max(z, 0)), z)
                  - 1 / (2 * sympy.sqrt(z))),
         ["z > 0"], "sqrtClampFderivAt / hasDerivAt_sqrt_clamp_of_pos"),
        ("rule_inv_derivative",
         "For every real w ≠ 0: d/dw w⁻¹ = −(w²)⁻¹, TorchLean's declared f' (justifies inv-chain)",
         lambda: (sympy.diff(1 / w, w) + 1 / w ** 2,), ["w ≠ 0"], "invFderivAt"),
        ("rule_addEps_derivative",
         "For every real z: d/dz (z + ε) = 1, TorchLean's declared f' of nodeVarEps",
         lambda: (sympy.diff(w + e, w) - 1,), [], "elemwiseFderiv (f := z+ε)"),
    ]
    methods = {
        "rule_sqrtClamp_derivative": "sympy.diff of sqrt(Max(z, 0)) for a positive symbol z (Max(z, 0) "
                                     "evaluates to z) and decide_zero of both differences",
        "rule_inv_derivative": "sympy.diff of 1/w and decide_zero of the difference",
        "rule_addEps_derivative": "sympy.diff of w + ε and decide_zero of the difference",
    }
    for name, statement, build, assumptions, lean in facts:
        start = time.perf_counter()
        diffs = build()
        decisions = [decide_zero(d) for d in diffs]
        ok = all(d.proved for d in decisions)
        out.append(Obligation(
            name=name, statement=statement, status="proved" if ok else "undecided",
            method=methods[name] + " (exact symbolic differentiation; no simplify())",
            assumptions=assumptions, lean_name=lean, seconds=time.perf_counter() - start,
            group="scalar rules", detail=None if ok else "not decided"))
    return out


# ---------------------------------------------------------------------------------------------
# The claims


_SIZE_ASSUMPTION = "N = H·W ≥ 1 (any H, W ≥ 1; the C×H×W block is flattened row-major, p = h·W + w)"
_CHANNEL_ASSUMPTION = "C ≥ 1 (any number of channels)"
_DOMAIN = "var_c + ε > 0 for every channel c (hVarEpsPos; it implies std_c ≠ 0, hStdNe0)"


def _bn_cover(kind, expr):
    """Recognize the domain conditions of the BN graph: radicand var_c + ε, for any channel."""
    if kind != "positive":
        return None
    chans = [i for i in _free(expr) if i.rng == "C"]
    if len(chans) == 1 and not [i for i in _free(expr) if i.rng == "N"]:
        M = Model(SymbolicBackend())
        if normalize(expr - M.var_eps(chans[0])) == 0:
            return _DOMAIN
    return None


def _generic_cover(kind, expr):
    if expr.is_Symbol and _kind(expr) == "at" and _ATOMS[expr].data[0] == "z":
        return ("z_c > 0 for every channel c" if kind == "positive"
                else "z_c ≠ 0 for every channel c")
    if kind == "nonzero" and _kind(expr) == "sqrt":
        return "z_c > 0 for every channel c"
    return None


_KIND_INFO = {
    # kind: (input families (CN: a, b; C: z), output shape, stages using it, Lean certificate)
    "reshape": (("a",), "CN", "xMat (pos 3), yChw (pos 18)", "reshapeFderiv"),
    "rowMean": (("a",), "C", "mean (pos 4), var (pos 8)", "rowMeanFderiv"),
    "broadcastRow": (("z",), "CN", "mean_b, inv_std_b, gamma_b, beta_b (pos 5, 12, 14, 16)",
                     "broadcastRowFderiv"),
    "sub": (("a", "b"), "CN", "centered (pos 6)", "subFderiv"),
    "mul": (("a", "b"), "CN", "normalized, scaled (pos 13, 15)", "mulFderiv"),
    "mul_same": (("a", "a"), "CN", "centered_sq (pos 7, a = b = centered)", "mulFderiv"),
    "addEps": (("z",), "C", "var_eps (pos 9)", "elemwiseFderiv (f := z+ε, f' := 1)"),
    "sqrtClamp": (("z",), "C", "std (pos 10)", "sqrtClampFderivAt"),
    "inv": (("z",), "C", "inv_std (pos 11)", "invFderivAt"),
    "add": (("a", "b"), "CN", "yMat (pos 17)", "addFderiv"),
}


def _family_shape(fam):
    return "C" if fam == "z" else "CN"


def _input_callable(be, fam):
    if _family_shape(fam) == "C":
        return lambda c: be.at(fam, c)
    return lambda c, p: be.at(fam, c, p)


def _kind_node(be, kind, rules=None):
    fams, out_shape, _, _ = _KIND_INFO[kind]
    real = "mul" if kind == "mul_same" else kind
    ins = tuple(_input_callable(be, f) for f in fams)
    out = FORWARD_RULES[real](be, *ins)
    return fams, ins, out, out_shape, real


def _stage_claims(vjp_rules) -> list[Claim]:
    claims = []
    rules = dict(VJP_RULES, **(vjp_rules or {}))
    for kind, (fams, out_shape, stages, lean) in _KIND_INFO.items():
        distinct = list(dict.fromkeys(fams))
        for fam in distinct:
            in_shape = _family_shape(fam)
            free = (("c2", "C"),) + ((("q", "N"),) if in_shape == "CN" else ())

            def in_idx(idx, in_shape=in_shape):
                return (idx["c2"], idx["q"]) if in_shape == "CN" else (idx["c2"],)

            def lhs(be, idx, kind=kind, fam=fam, in_idx=in_idx):
                _, _, out, out_shape_, _ = _kind_node(be, kind)
                d = (lambda c, p: be.at("d", c, p)) if out_shape_ == "CN" else \
                    (lambda c: be.at("d", c))
                ii = in_idx(idx)
                if out_shape_ == "CN":
                    return be.sum("C", lambda c: be.sum(
                        "N", lambda p: d(c, p) * be.diff(out(c, p), fam, *ii)))
                return be.sum("C", lambda c: d(c) * be.diff(out(c), fam, *ii))

            def rhs(be, idx, kind=kind, fam=fam, in_idx=in_idx):
                fams_, ins, _, out_shape_, real = _kind_node(be, kind)
                d = (lambda c, p: be.at("d", c, p)) if out_shape_ == "CN" else \
                    (lambda c: be.at("d", c))
                contribs = rules[real](be, ins, d)
                ii = in_idx(idx)
                return Add(*[f(*ii) for f_name, f in zip(fams_, contribs) if f_name == fam])

            slot = "" if len(distinct) == 1 else f" (input {fam})"
            label = {"a": "a", "b": "b", "z": "z"}[fam]
            statement = (
                f"{kind}{slot}: for all C ≥ 1, N ≥ 1 and every c' < C"
                + (", q < N" if in_shape == "CN" else "")
                + f": (Jᵀδ)[{label}]" + ("[c',q]" if in_shape == "CN" else "[c']")
                + " = Σ_{c<C}" + (" Σ_{p<N}" if out_shape == "CN" else "")
                + " δ_out · ∂out/∂" + label + " equals the node's VJP rule"
                + (" (both contributions δ⊙a land in the same slot: 2·δ⊙a)"
                   if kind == "mul_same" else "") + f"; used by {stages}")
            assumptions = [_SIZE_ASSUMPTION, _CHANNEL_ASSUMPTION]
            if kind == "sqrtClamp":
                assumptions.append("z_c > 0 for every channel c")
            if kind == "inv":
                assumptions.append("z_c ≠ 0 for every channel c")
            claims.append(Claim(
                name=f"vjp_{kind}" + ("" if len(distinct) == 1 else f"_{fam}"),
                group="stage VJP = Jᵀδ", statement=statement, free=free, lhs=lhs, rhs=rhs,
                lean_name=lean, stage=stages, channel_level=True,
                assumptions=tuple(assumptions), cover=_generic_cover))
    return claims


def _stage_jvp_claims(jvp_rules) -> list[Claim]:
    """Per node kind: the JVP rule equals the index-level Jacobian applied to the tangents."""
    claims = []
    rules = dict(JVP_RULES, **(jvp_rules or {}))
    for kind, (fams, out_shape, stages, lean) in _KIND_INFO.items():
        distinct = list(dict.fromkeys(fams))
        free = (("c", "C"),) + ((("p", "N"),) if out_shape == "CN" else ())

        def out_idx(idx, out_shape=out_shape):
            return (idx["c"], idx["p"]) if out_shape == "CN" else (idx["c"],)

        def tangent(be, fam):
            return _input_callable(be, "t" + fam) if _family_shape(fam) == "CN" else \
                (lambda c_: be.at("t" + fam, c_))

        def lhs(be, idx, kind=kind, distinct=distinct, out_idx=out_idx):
            _, _, out, _, _ = _kind_node(be, kind)
            value = out(*out_idx(idx))
            total = Integer(0)
            for fam in distinct:
                t = tangent(be, fam)
                if _family_shape(fam) == "CN":
                    total += be.sum("C", lambda d: be.sum(
                        "N", lambda j: be.diff(value, fam, d, j) * t(d, j)))
                else:
                    total += be.sum("C", lambda d: be.diff(value, fam, d) * t(d))
            return total

        def rhs(be, idx, kind=kind, fams=fams, out_idx=out_idx):
            _, ins, _, _, real = _kind_node(be, kind)
            tans = tuple(tangent(be, fam) for fam in fams)
            return rules[real](be, ins, tans)(*out_idx(idx))

        out_i = "[c,p]" if out_shape == "CN" else "[c]"
        statement = (f"{kind}: for all C ≥ 1, N ≥ 1 and every c < C" + (", p < N" if out_shape
                     == "CN" else "") + f": (J·t){out_i} = Σ_inputs Σ_{{c'<C}} [Σ_{{q<N}}] "
                     f"∂out{out_i}/∂in[c',q]·t_in[c',q] ([Σ_q] for C×N inputs) equals the node's "
                     f"JVP rule"
                     + (" (same slot: 2·a⊙t_a)" if kind == "mul_same" else "")
                     + f"; used by {stages}")
        assumptions = [_SIZE_ASSUMPTION, _CHANNEL_ASSUMPTION]
        if kind == "sqrtClamp":
            assumptions.append("z_c > 0 for every channel c")
        if kind == "inv":
            assumptions.append("z_c ≠ 0 for every channel c")
        claims.append(Claim(
            name=f"jvp_{kind}", group="stage JVP = J·t", statement=statement, free=free,
            lhs=lhs, rhs=rhs, lean_name=lean, stage=stages, channel_level=True,
            assumptions=tuple(assumptions), cover=_generic_cover))
    return claims


def _channel_block_claims() -> list[Claim]:
    claims = []
    for kind, (fams, out_shape, stages, lean) in _KIND_INFO.items():
        for fam in list(dict.fromkeys(fams)):
            in_shape = _family_shape(fam)
            free = [("c", "C"), ("c2", "C")]
            if out_shape == "CN":
                free.append(("p", "N"))
            if in_shape == "CN":
                free.append(("q", "N"))

            def parts(be, idx, out_shape=out_shape, in_shape=in_shape, kind=kind):
                _, _, out, _, _ = _kind_node(be, kind)
                o = (lambda c: out(c, idx["p"])) if out_shape == "CN" else out
                tail = (idx["q"],) if in_shape == "CN" else ()
                return o, tail

            def lhs(be, idx, fam=fam, parts=parts):
                o, tail = parts(be, idx)
                return be.diff(o(idx["c"]), fam, idx["c2"], *tail)

            def rhs(be, idx, fam=fam, parts=parts):
                o, tail = parts(be, idx)
                return be.delta(idx["c"], idx["c2"]) * be.diff(o(idx["c"]), fam, idx["c"], *tail)

            out_i = "[c,p]" if out_shape == "CN" else "[c]"
            in_i = "[c',q]" if in_shape == "CN" else "[c']"
            statement = (f"{kind}: for all C, N ≥ 1 and c, c' < C: ∂out{out_i}/∂{fam}{in_i} = "
                         f"δ_cc'·∂out{out_i}/∂{fam}{in_i.replace(chr(39), '')} -- the forward "
                         f"of channel c reads only channel c of its input, so every cross-channel "
                         f"Jacobian block (c ≠ c') is zero; used by {stages}")
            assumptions = [_SIZE_ASSUMPTION, _CHANNEL_ASSUMPTION]
            if kind == "sqrtClamp":
                assumptions.append("z_c > 0 for every channel c")
            if kind == "inv":
                assumptions.append("z_c ≠ 0 for every channel c")
            claims.append(Claim(
                name=f"channel_block_{kind}" + ("" if len(set(fams)) == 1 else f"_{fam}"),
                group="channel independence", statement=statement, free=tuple(free), lhs=lhs,
                rhs=rhs, lean_name=lean, stage=stages, channel_level=True,
                assumptions=tuple(assumptions), cover=_generic_cover))
    return claims


def _bn(be):
    """The Model of a backend (one per backend, so that lhs and rhs share forward values)."""
    model = getattr(be, "_model", None)
    if model is None:
        model = be._model = Model(be)
    return model


def _lemma_claims() -> list[Claim]:
    cf = [_SIZE_ASSUMPTION]
    dom = [_SIZE_ASSUMPTION, _DOMAIN]
    cq = (("c", "C"), ("q", "N"))
    cpq = (("c", "C"), ("p", "N"), ("q", "N"))

    def mk(name, statement, free, lhs, rhs, assumptions):
        return Claim(name=name, group="index-level derivatives", statement=statement, free=free,
                     lhs=lhs, rhs=rhs, assumptions=tuple(assumptions), cover=_bn_cover)

    def d_x(expr_fn):
        return lambda be, i: be.diff(expr_fn(_bn(be), i), "x", i["c"], i["q"])

    out = [
        mk("lemma_centered_sum_zero",
           "For all N ≥ 1 and every channel c: Σ_{j<N} (x_cj − mean_c) = 0, from the definition "
           "mean_c = (1/N)·Σ_j x_cj",
           (("c", "C"),), lambda be, i: be.sum("N", lambda j: _bn(be).centered(i["c"], j)),
           lambda be, i: Integer(0), cf),
        mk("deriv_mean_x", "For all N ≥ 1, c, q < N: ∂mean_c/∂x_cq = 1/N", cq,
           d_x(lambda M, i: M.mean(i["c"])), lambda be, i: be.Ninv, cf),
        mk("deriv_centered_x",
           "For all N ≥ 1, c, p, q < N: ∂centered_cp/∂x_cq = δ_pq − 1/N", cpq,
           d_x(lambda M, i: M.centered(i["c"], i["p"])),
           lambda be, i: be.delta(i["p"], i["q"]) - be.Ninv, cf),
        mk("deriv_var_x",
           "For all N ≥ 1, c, q < N: ∂var_c/∂x_cq = (2/N)(x_cq − mean_c) (uses Σ_j (x_cj − mean_c) "
           "= 0)", cq, d_x(lambda M, i: M.var(i["c"])),
           lambda be, i: 2 * be.Ninv * _bn(be).centered(i["c"], i["q"]), cf),
        mk("deriv_std_x",
           "For all N ≥ 1, c, q < N: ∂std_c/∂x_cq = x̂_cq/N, std_c = sqrt(max(var_c+ε,0)), "
           "x̂ = (x − mean)·r, r = 1/std", cq, d_x(lambda M, i: M.std(i["c"])),
           lambda be, i: be.Ninv * _bn(be).xhat(i["c"], i["q"]), dom),
        mk("deriv_normalized_x",
           "For all N ≥ 1, c, p, q < N: ∂normalized_cp/∂x_cq = r_c(δ_pq − 1/N − x̂_cp·x̂_cq/N)",
           cpq, d_x(lambda M, i: M.normalized(i["c"], i["p"])),
           lambda be, i: _bn(be).r(i["c"]) * (be.delta(i["p"], i["q"]) - be.Ninv - be.Ninv
                                              * _bn(be).xhat(i["c"], i["p"])
                                              * _bn(be).xhat(i["c"], i["q"])), dom),
        mk("deriv_y_x",
           "For all N ≥ 1, c, p, q < N: ∂y_cp/∂x_cq = γ_c r_c(δ_pq − 1/N − x̂_cp·x̂_cq/N)",
           cpq, d_x(lambda M, i: M.y(i["c"], i["p"])),
           lambda be, i: _bn(be).gamma(i["c"]) * _bn(be).r(i["c"]) * (
               be.delta(i["p"], i["q"]) - be.Ninv
               - be.Ninv * _bn(be).xhat(i["c"], i["p"]) * _bn(be).xhat(i["c"], i["q"])), dom),
        mk("deriv_y_gamma", "For all N ≥ 1, c, p < N: ∂y_cp/∂γ_c = x̂_cp",
           (("c", "C"), ("p", "N")),
           lambda be, i: be.diff(_bn(be).y(i["c"], i["p"]), "gamma", i["c"]),
           lambda be, i: _bn(be).xhat(i["c"], i["p"]), dom),
        mk("deriv_y_beta", "For all N ≥ 1, c, p < N: ∂y_cp/∂β_c = 1",
           (("c", "C"), ("p", "N")),
           lambda be, i: be.diff(_bn(be).y(i["c"], i["p"]), "beta", i["c"]),
           lambda be, i: Integer(1), dom),
        mk("deriv_stats_params_zero",
           "For all N ≥ 1, c, p < N: mean_c, centered_cp, var_c, std_c and normalized_cp do not "
           "depend on γ_c or β_c (all ten partial derivatives are 0)",
           (("c", "C"), ("p", "N")),
           lambda be, i: tuple(
               be.diff(f(_bn(be)), fam, i["c"]) for fam in ("gamma", "beta") for f in (
                   lambda M: M.mean(i["c"]), lambda M: M.centered(i["c"], i["p"]),
                   lambda M: M.var(i["c"]), lambda M: M.std(i["c"]),
                   lambda M: M.normalized(i["c"], i["p"]))),
           lambda be, i: tuple(Integer(0) for _ in range(10)), dom),
    ]
    return out


def _graph_claims(cf: ClosedForm, vjp_rules, jvp_rules=None) -> list[Claim]:
    dom = (_SIZE_ASSUMPTION, _DOMAIN)

    def bp(be):
        M = _bn(be)
        return M, backprop(M, {"yChw": lambda c, p: M.g(c, p)}, vjp_rules)

    def jv(be):
        M = _bn(be)
        tan = jvp(M, {"x": lambda c, p: M.t(c, p), "gamma": M.tgamma, "beta": M.tbeta},
                  jvp_rules)
        return M, tan

    def adjoint(be, i, fam):
        M = _bn(be)
        c = i["c"]
        idx = (c, i["q"]) if fam == "x" else (c,)
        return M.sum(lambda p: M.g(c, p) * be.diff(M.y(c, p), fam, *idx))

    G = "end-to-end (per channel, symbolic N)"
    lean_bp = "backprop_eq_adjoint_fderiv_batchNorm_channel_first_at"
    claims = [
        Claim("forward_graph_equals_spec", G,
              "For all N ≥ 1, c, p < N: the 16 stages compose to yChw_cp = γ_c·x̂_cp + β_c with "
              "x̂ = (x − mean)/sqrt(var + ε) (population variance, 1/N)",
              (("c", "C"), ("p", "N")),
              lambda be, i: forward(_bn(be))["yChw"](i["c"], i["p"]),
              lambda be, i: _bn(be).y(i["c"], i["p"]), lean_name="batchNormGraph",
              assumptions=dom, cover=_bn_cover),
        Claim("backprop_dx_closed_form", G,
              f"For all N ≥ 1, c, q < N, seed g on yChw only: backprop through the 16 stages with "
              f"the node VJP rules gives dx_cq = (γ_c r_c/N)(N g_cq − Σ_p g_cp − x̂_cq Σ_p g_cp "
              f"x̂_cp) [closed form: {cf.name}]",
              (("c", "C"), ("q", "N")),
              lambda be, i: bp(be)[1]["x"](i["c"], i["q"]),
              lambda be, i: cf.dx(_bn(be), i["c"], i["q"]), lean_name=lean_bp,
              assumptions=dom, cover=_bn_cover),
        Claim("backprop_dgamma_closed_form", G,
              f"For all N ≥ 1 and c, seed g on yChw only: backprop gives dγ_c = Σ_p g_cp x̂_cp "
              f"[closed form: {cf.name}]", (("c", "C"),),
              lambda be, i: bp(be)[1]["gamma"](i["c"]),
              lambda be, i: cf.dgamma(_bn(be), i["c"]), lean_name=lean_bp, assumptions=dom,
              cover=_bn_cover),
        Claim("backprop_dbeta_closed_form", G,
              f"For all N ≥ 1 and c, seed g on yChw only: backprop gives dβ_c = Σ_p g_cp "
              f"[closed form: {cf.name}]", (("c", "C"),),
              lambda be, i: bp(be)[1]["beta"](i["c"]),
              lambda be, i: cf.dbeta(_bn(be), i["c"]), lean_name=lean_bp, assumptions=dom,
              cover=_bn_cover),
        Claim("adjoint_dx_closed_form", G,
              f"For all N ≥ 1, c, q < N: (J_yᵀ g)_x[c,q] = Σ_p g_cp·∂y_cp/∂x_cq (index-level "
              f"derivative of y, contracted) equals the closed-form dx [{cf.name}]",
              (("c", "C"), ("q", "N")), lambda be, i: adjoint(be, i, "x"),
              lambda be, i: cf.dx(_bn(be), i["c"], i["q"]), lean_name=lean_bp, assumptions=dom,
              cover=_bn_cover),
        Claim("adjoint_dgamma_closed_form", G,
              f"For all N ≥ 1 and c: Σ_p g_cp·∂y_cp/∂γ_c equals the closed-form dγ [{cf.name}]",
              (("c", "C"),), lambda be, i: adjoint(be, i, "gamma"),
              lambda be, i: cf.dgamma(_bn(be), i["c"]), lean_name=lean_bp, assumptions=dom,
              cover=_bn_cover),
        Claim("adjoint_dbeta_closed_form", G,
              f"For all N ≥ 1 and c: Σ_p g_cp·∂y_cp/∂β_c equals the closed-form dβ [{cf.name}]",
              (("c", "C"),), lambda be, i: adjoint(be, i, "beta"),
              lambda be, i: cf.dbeta(_bn(be), i["c"]), lean_name=lean_bp, assumptions=dom,
              cover=_bn_cover),
        Claim("jvp_closed_form", G,
              f"For all N ≥ 1, c, p < N: J_y·(t, tγ, tβ) = Σ_q ∂y_cp/∂x_cq t_cq + ∂y_cp/∂γ_c tγ_c + "
              f"∂y_cp/∂β_c tβ_c equals γ r (t − mean(t) − x̂ mean(t⊙x̂)) + x̂ tγ + tβ [{cf.name}]",
              (("c", "C"), ("p", "N")),
              lambda be, i: (
                  _bn(be).sum(lambda q: be.diff(_bn(be).y(i["c"], i["p"]), "x", i["c"], q)
                              * be.at("t", i["c"], q))
                  + be.diff(_bn(be).y(i["c"], i["p"]), "gamma", i["c"]) * be.at("tgamma", i["c"])
                  + be.diff(_bn(be).y(i["c"], i["p"]), "beta", i["c"]) * be.at("tbeta", i["c"])),
              lambda be, i: cf.jvp(_bn(be), i["c"], i["p"]), lean_name="Spec.batchNorm2dJvp",
              assumptions=dom, cover=_bn_cover),
        Claim("jvp_stagewise_closed_form", G,
              f"For all N ≥ 1, c, p < N: forward-mode through the 16 stages with the node JVP "
              f"rules gives the closed-form JVP on yChw [{cf.name}]",
              (("c", "C"), ("p", "N")),
              lambda be, i: jv(be)[1]["yChw"](i["c"], i["p"]),
              lambda be, i: cf.jvp(_bn(be), i["c"], i["p"]), lean_name="Graph.jvpVec",
              assumptions=dom, cover=_bn_cover),
        Claim("dot_product_identity", G,
              "For all N ≥ 1 and every channel c: ⟨J t, g⟩ = Σ_p g_cp (J t)_cp equals ⟨t, Jᵀ g⟩ = "
              "Σ_p t_cp dx_cp + tγ_c dγ_c + tβ_c dβ_c, with J t from the stagewise JVP and "
              "Jᵀ g from the stagewise backprop",
              (("c", "C"),),
              lambda be, i: _bn(be).sum(lambda p: be.at("g", i["c"], p)
                                        * jv(be)[1]["yChw"](i["c"], p)),
              lambda be, i: _dot_rhs(be, i["c"], vjp_rules),
              lean_name="Graph.backprop_correct_inner", assumptions=dom, cover=_bn_cover),
    ]
    return claims


def _dot_rhs(be, c, vjp_rules):
    M = _bn(be)
    g = backprop(M, {"yChw": lambda c_, p: M.g(c_, p)}, vjp_rules)
    return (M.sum(lambda p: M.t(c, p) * g["x"](c, p)) + M.tgamma(c) * g["gamma"](c)
            + M.tbeta(c) * g["beta"](c))


def _all_channel_claims(cf: ClosedForm, vjp_rules, jvp_rules=None) -> list[Claim]:
    dom = (_SIZE_ASSUMPTION, _CHANNEL_ASSUMPTION, _DOMAIN)
    G = "channel independence"

    def block(fam):
        def lhs(be, i):
            M = _bn(be)
            idx = (i["c2"], i["q"]) if fam == "x" else (i["c2"],)
            return be.diff(M.y(i["c"], i["p"]), fam, *idx)

        def rhs(be, i):
            M = _bn(be)
            idx = (i["c"], i["q"]) if fam == "x" else (i["c"],)
            return be.delta(i["c"], i["c2"]) * be.diff(M.y(i["c"], i["p"]), fam, *idx)
        return lhs, rhs

    def full_adjoint(fam):
        def lhs(be, i):
            M = _bn(be)
            idx = (i["c2"], i["q"]) if fam == "x" else (i["c2"],)
            return be.sum("C", lambda c: M.sum(lambda p: M.g(c, p)
                                               * be.diff(M.y(c, p), fam, *idx)))
        return lhs

    claims = []
    for fam, sym, free in (("x", "x[c',q]", (("c", "C"), ("c2", "C"), ("p", "N"), ("q", "N"))),
                           ("gamma", "γ[c']", (("c", "C"), ("c2", "C"), ("p", "N"))),
                           ("beta", "β[c']", (("c", "C"), ("c2", "C"), ("p", "N")))):
        lhs, rhs = block(fam)
        claims.append(Claim(
            f"channel_block_graph_{fam}", G,
            f"For all C, N ≥ 1, c, c' < C, p{', q' if fam == 'x' else ''} < N: ∂y[c,p]/∂{sym} = "
            f"δ_cc'·(the same derivative with c' = c): the whole graph's Jacobian from {fam} is "
            f"block diagonal over channels", free, lhs, rhs,
            lean_name="batchNormGraphFderivCorrectAt", channel_level=True, assumptions=dom,
            cover=_bn_cover))
    for fam, cf_fn, free, what in (
            ("x", lambda be, i: cf.dx(_bn(be), i["c2"], i["q"]), (("c2", "C"), ("q", "N")),
             "dx[c',q]"),
            ("gamma", lambda be, i: cf.dgamma(_bn(be), i["c2"]), (("c2", "C"),), "dγ[c']"),
            ("beta", lambda be, i: cf.dbeta(_bn(be), i["c2"]), (("c2", "C"),), "dβ[c']")):
        claims.append(Claim(
            f"all_channels_adjoint_{fam}", G,
            f"For all C, N ≥ 1: the full Jᵀg over all C channels, Σ_{{c<C}} Σ_{{p<N}} g[c,p]·"
            f"∂y[c,p]/∂(·), at {what} equals the per-channel closed form at channel c' "
            f"[{cf.name}]", free, full_adjoint(fam), cf_fn,
            lean_name="backprop_eq_adjoint_fderiv_batchNorm_channel_first_at",
            channel_level=True, assumptions=dom, cover=_bn_cover))

    def dot_lhs(be, i):
        M = _bn(be)
        tan = jvp(M, {"x": lambda c, p: M.t(c, p), "gamma": M.tgamma, "beta": M.tbeta},
                  jvp_rules)
        return be.sum("C", lambda c: M.sum(lambda p: M.g(c, p) * tan["yChw"](c, p)))

    def dot_rhs(be, i):
        return be.sum("C", lambda c: _dot_rhs(be, c, vjp_rules))

    claims.append(Claim(
        "all_channels_dot_product", G,
        "For all C, N ≥ 1: over the whole C×N context, ⟨J t, g⟩ = Σ_c Σ_p g[c,p](J t)[c,p] "
        "equals ⟨t, Jᵀ g⟩ = Σ_c (Σ_p t[c,p] dx[c,p] + tγ[c] dγ[c] + tβ[c] dβ[c]) with the "
        "stagewise JVP and backprop", (), dot_lhs, dot_rhs,
        lean_name="Graph.backprop_correct_inner", channel_level=True, assumptions=dom,
        cover=_bn_cover))
    return claims


def claims(closed_form: ClosedForm | None = None, vjp_rules: dict | None = None,
           jvp_rules: dict | None = None) -> list[Claim]:
    """Every parametric claim, in certificate order."""
    cf = closed_form or STANDARD_CLOSED_FORM
    return (_lemma_claims() + _stage_claims(vjp_rules) + _stage_jvp_claims(jvp_rules)
            + _graph_claims(cf, vjp_rules, jvp_rules)
            + _channel_block_claims() + _all_channel_claims(cf, vjp_rules, jvp_rules))


def prove_all_sizes(budget: float | None = 60.0, *, closed_form: ClosedForm | None = None,
                    vjp_rules: dict | None = None, jvp_rules: dict | None = None,
                    sizes=range(1, 7), only=None) -> Certificate:
    """Certificate "BatchNormChannelFirst, all sizes": every obligation for symbolic N = H·W
    (and symbolic C), each confirmed at N = ``sizes``.

    ``budget``: seconds per obligation (``None`` or ``math.inf``: unbounded; see
    :func:`symbolic_bn.exact.budget.check_budget`).  ``closed_form``: the closed form to
    check (default :data:`STANDARD_CLOSED_FORM`).  ``vjp_rules``: overrides of :data:`VJP_RULES`
    by node kind, ``jvp_rules`` of :data:`JVP_RULES` (so that tests can pass wrong rules).
    ``sizes``: the concrete N of the confirmation.  ``only``: names of the obligations to run.
    """
    budget = check_budget(budget)
    if closed_form is not None and not isinstance(closed_form, ClosedForm):
        raise ValueError(f"closed_form must be a ClosedForm, got {type(closed_form).__name__}")
    if vjp_rules is not None:
        if not isinstance(vjp_rules, dict) or not set(vjp_rules) <= set(VJP_RULES):
            raise ValueError(f"vjp_rules must be a dict with keys among {sorted(VJP_RULES)}")
    if jvp_rules is not None:
        if not isinstance(jvp_rules, dict) or not set(jvp_rules) <= set(JVP_RULES):
            raise ValueError(f"jvp_rules must be a dict with keys among {sorted(JVP_RULES)}")
    sizes = list(sizes)
    if not sizes or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes):
        raise ValueError(f"sizes must be a non-empty list of ints ≥ 1, got {sizes!r}")
    start = time.perf_counter()
    cert = Certificate(subject="BatchNormChannelFirst, all sizes (symbolic C, H, W; N = H·W)",
                       parameters={"N": "symbolic, N = H·W ≥ 1", "C": "symbolic, C ≥ 1",
                                   "confirmed_at_N": sizes, "closed_form":
                                   (closed_form or STANDARD_CLOSED_FORM).name,
                                   "budget_per_obligation_s": budget})
    all_claims = claims(closed_form, vjp_rules, jvp_rules)
    selected = None
    if only is not None:
        if isinstance(only, str):
            only = [only]
        selected = set(only)
        unknown = selected - set(SCALAR_OBLIGATIONS) - {cl.name for cl in all_claims}
        if unknown:
            raise ValueError(f"only names unknown obligations: {sorted(unknown)}")
    for ob in _scalar_obligations():
        if selected is None or ob.name in selected:
            cert.add(ob)
    for claim in all_claims:
        if selected is None or claim.name in selected:
            cert.add(run_claim(claim, budget=budget, sizes=sizes))
    cert.seconds = time.perf_counter() - start
    return cert
