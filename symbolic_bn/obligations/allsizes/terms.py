"""The index-level term language of the all-sizes proofs: ranges, rewrite rules, atoms, normal forms.

Index ranges are the symbols of :data:`RANGES` (the sizes, positive integers).  Values are SymPy
polynomials (with integer exponents, negative ones only on atoms known to be nonzero) in *atoms*,
each atom a SymPy symbol registered with its structure:

* ``x[c,p]`` -- an input family at symbolic indices (``Ix`` objects over the ranges of
  :data:`RANGES`);
* ``δ[i,k]`` -- a Kronecker delta of two distinct indices of the same range;
* ``Σ_N0(body)`` -- a *named sum*: a finite sum over a bound index (renamed canonically) of a
  monomial ``body`` that depends on the bound index;
* ``√(u)`` -- ``σ = sqrt(u)`` of a normal form ``u`` (a positive symbol; ``σ⁻¹`` is ``r``);
* ``ι(b)`` -- ``1/b`` of a normal form ``b`` that is not a monomial in nonzero atoms;
* the size symbols (``N``, ``C``, ``B``, ``S``, ``R``, ``G``, ``K``, with their inverses) and ``eps``.

Every construction normalizes with the rules of :data:`RULES` (``sum-linear``, ``sum-const``,
``delta-contract``, ``delta-refl``, ``delta-subst``, ``bound-rename``, ``N-inverse``, and
``sum-swap`` for nested sums over different ranges); differentiation (:mod:`.derivatives`) uses
``deriv-atom``, ``deriv-sum``, ``deriv-poly``, ``sqrt-chain`` and ``inv-chain``.  The rules that
fired are logged per obligation (:func:`recording`) and listed in its ``method``.

Side conditions.  Building ``ι(b)`` records ``b ≠ 0`` (and raises :class:`ZeroBase` when ``b``
reduces to 0 modulo ``σ² = u``: ``1/b`` is then undefined everywhere, the claim is 'undecided');
building ``σ = sqrt(u)`` records ``u > 0``.  :mod:`.side_conditions` checks them against a
claim's stated hypotheses.
"""
from __future__ import annotations

import contextlib
import contextvars
import itertools
from dataclasses import dataclass

import sympy
from sympy import Add, Integer, Mul, Symbol


N_SYM = Symbol("N", positive=True, integer=True)
C_SYM = Symbol("C", positive=True, integer=True)
EPS = Symbol("eps")

#: Index ranges and their (positive integer) sizes.  N and C are TorchLean's BN sizes (positions
#: N = H·W per channel, C channels); the others appear in the other layers' groups and positions.
RANGES: dict[str, Symbol] = {
    "N": N_SYM, "C": C_SYM,
    "B": Symbol("B", positive=True, integer=True),   # samples (a layer's batch size)
    "S": Symbol("S", positive=True, integer=True),   # spatial positions (prod of the spatial sizes)
    "R": Symbol("R", positive=True, integer=True),   # rows (prod of layer_norm's leading sizes)
    "G": Symbol("G", positive=True, integer=True),   # groups of channels (group_norm)
    "K": Symbol("K", positive=True, integer=True),   # channels per group (group_norm, C = G·K)
}
SIZE_SYMBOLS = frozenset(RANGES.values())

RULES: dict[str, str] = {
    "sum-linear": "Σ_j (a_j + b_j) = Σ_j a_j + Σ_j b_j and Σ_j k·a_j = k·Σ_j a_j for k free of j",
    "sum-const": "Σ_{j<N} k = N·k for k free of j (over any range: Σ_{c<C} k = C·k, Σ_{s<S} k = S·k, ...)",
    "delta-contract": "Σ_j δ_jk·a_j = a_k for 0 ≤ k < N (k ranges over the same index set as j)",
    "delta-refl": "δ_kk = 1",
    "delta-subst": "δ_ik·f(k) = δ_ik·f(i) and δ_ik² = δ_ik (δ_ik ≠ 0 only when i = k)",
    "bound-rename": "Σ_j f(j) = Σ_k f(k): bound indices are renamed canonically",
    "N-inverse": "N·N⁻¹ = 1 for every size (N = H·W ≥ 1, C, B, S, R, G, K ≥ 1)",
    "deriv-atom": "∂x[c,p]/∂x[c',q] = δ_cc'·δ_pq; the derivative of another input family is 0",
    "deriv-sum": "∂(Σ_j f_j) = Σ_j ∂f_j (finite sum)",
    "deriv-poly": "sum and product rule: exact differentiation of a polynomial in the atoms",
    "sqrt-chain": "∂sqrtClamp(u) = ∂u/(2·sqrt(u)) where u > 0 (there max(u,0) = u)",
    "inv-chain": "∂(1/b) = −∂b/b² where b ≠ 0",
    "sigma-square": "σ² = u for σ = sqrt(u), u > 0 (decision)",
    "sigma-inverse": "σ·σ⁻¹ = 1 since σ > 0 (decision: multiply by a power of σ)",
    "iota-inverse": "b·ι = 1 for ι = 1/b, b ≠ 0 (decision: multiply by a power of b)",
    "sum-swap": "Σ_j Σ_k f_jk = Σ_k Σ_j f_jk for finite sums over different ranges (nested sums are "
                "kept in the order B, C, G, R, K, S, N)",
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
    """A symbolic index over the range ``rng`` (a key of :data:`RANGES`): ``'N'`` ranges over
    ``0..N-1`` (a group's positions), ``'C'`` over ``0..C-1`` (channels / groups), ``'B'`` samples,
    ``'S'`` spatial positions, ``'R'`` rows, ``'G'`` groups of channels, ``'K'`` channels in a group."""

    name: str
    rng: str = "N"

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        if self.rng not in RANGES:
            raise ValueError(f"rng must be one of {', '.join(RANGES)}, got {self.rng!r}")
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
_FRESH = itertools.count(1)


def _register(name: str, atom: _Atom, **assumptions) -> Symbol:
    sym = Symbol(name, **assumptions)
    known = _ATOMS.get(sym)
    if known is None:
        _ATOMS[sym] = atom
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
    return RANGES[rng]


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
        from .decision import decide_nf  # here, not at the top: decision is built on this module
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


def _exp_of(term, sym):
    return term.as_powers_dict().get(sym, 0)


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
        swapped = _exchange(j, dep)
        if swapped is not None:
            out.append(coeff * indep * swapped)
            continue
        body = Mul(*[b ** e for b, e in dep])
        _rule("sum-linear")
        out.append(coeff * indep * _sum_atom(j, body))
    return normalize(Add(*out))


#: The order of nested sums over different ranges (outermost first): groups before positions.
_RANGE_ORDER = {r: k for k, r in enumerate(("B", "C", "G", "R", "K", "S", "N"))}


def _exchange(j: Ix, dep):
    """Rule sum-swap: ``Σ_j a_j·Σ_k b_jk = Σ_k Σ_j a_j·b_jk`` (finite sums over different ranges).
    Applied when the body's only factor that is a named sum depending on j is one Σ_k over a range
    that comes before j's in :data:`_RANGE_ORDER`, so nested sums always end up in that order
    (one canonical form for Σ_(c,p) and Σ_p Σ_c); returns None when it does not apply."""
    sums = [(b, e) for b, e in dep if _kind(b) == "sum"]
    if len(sums) != 1 or sums[0][1] != 1:
        return None
    S = sums[0][0]
    k, inner = _ATOMS[S].data
    if k.rng == j.rng or _RANGE_ORDER[k.rng] > _RANGE_ORDER[j.rng]:
        return None
    _rule("sum-swap")
    rest = Mul(*[b ** e for b, e in dep if b != S])
    k2 = _fresh(k.rng)
    return sum_over(k2, sum_over(j, rest * subs_ix(inner, {k: k2})))


def _contract(rest, j: Ix, other: Ix):
    """Rule delta-contract: ``Σ_j δ_j,other · rest(j) = rest(other)``."""
    return subs_ix(rest, {j: other})


def _inverse(v):
    """``1/v``: Laurent powers for the sizes (N, C, ...) and σ (nonzero); ι atoms otherwise."""
    v = normalize(v)
    if v == 0:
        raise ZeroDivisionError("division by the constant 0")
    if v.is_Add:
        return _inv_atom(v)
    coeff, pows = _factors(v)
    out = 1 / coeff
    for b, e in pows:
        if b in SIZE_SYMBOLS:
            _rule("N-inverse")
            out *= b ** (-e)
        elif _kind(b) == "sqrt":
            out *= b ** (-e)
        elif _kind(b) == "inv":
            out *= _ATOMS[b].data[0] ** e
        elif e > 0:
            out *= _inv_atom(b) ** e
        else:  # pragma: no cover - negative powers only occur on sizes and σ
            out *= b ** (-e)
    return normalize(out)
