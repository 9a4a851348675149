"""Proofs for every size: each normalization layer's identities with symbolic group size and number of groups.

A check at one shape (say 2×3×3) is evidence for that shape only.  This module proves, for a
*symbolic* size of the statistics groups and a *symbolic* number of groups, the per-group
identities (derivatives, VJP/JVP of every node kind, backprop = closed form, the closed-form JVP,
the dot-product identity) and the independence of the groups, so that one certificate covers
every shape of a layer.  ``prove_all_sizes(layer)`` takes a :class:`symbolic_bn.layers.Layer` (only
its kind and its ε are used: the sizes are symbolic) or a layer name; ``prove_all_sizes()`` is
TorchLean's ``batchnorm_channel_first`` (symbolic C, N = H·W), as before.

Every layer is a per-group normalization: the input is indexed by (c, p) -- c a *statistics group*,
p a *position* in it -- and γ, β by π(c, p) (the weight entry applied there).  Index ranges are
symbols of :data:`RANGES`; the group index and the position may each be a tuple of indices:

=========================  ==================  ===================  ==========================  ============
layer                      group c             position p           γ/β index π(c, p)           γ broadcast
=========================  ==================  ===================  ==========================  ============
batchnorm_channel_first    channel c < C       p < N = H·W          c (per group)               broadcastRow
batch_norm (B, C, *S)      channel c < C       (n, s): n<B, s<S     c (per group)               broadcastRow
instance_norm (B, C, *S)   (n, c): n<B, c<C    s < S                c (shared by the B samples)  gather
group_norm (B, G·K, *S)    (n, g): n<B, g<G    (k, s): k<K, s<S     (g, k): channel g·K + k      gather
layer_norm (*L, *K)        row r < R           p < N = prod K       p (shared by the R rows)    broadcastCol
rms_norm (*L, *K)          row r < R           p < N = prod K       p (shared by the R rows)    broadcastCol
=========================  ==================  ===================  ==========================  ============

(S = prod of the spatial sizes, 1 when there are none; B the batch size -- the layer's own ``N``;
for group_norm C = G·K, so "G divides C" is built in; R = prod of the leading sizes.)  Each
layer's graph is taken in its *row form* (graphs/layer_graphs.py): rows = statistics groups,
TorchLean's row stages (rowMean, broadcastRow, sub, mul, +ε, sqrtClamp, inv, add; for rms_norm
x⊙x, rowMean, +ε, sqrtClamp, inv, broadcastRow, mul), then γ/β applied by the broadcast above.

Where the calculus carries over, and where it does not
-----------------------------------------------------
* It carries over to every layer for: the index-level derivatives, the node-kind laws (VJP = Jᵀδ,
  JVP = J·t) of every kind the row form uses -- broadcastCol and gather included --, output-only
  backprop through the row-form stages = the per-group closed form (dx, dγ, dβ), Jᵀg computed from
  the index-level derivative = the closed form, the closed-form JVP (from ∂y and stagewise), the
  dot-product identity over the whole context, and group independence (the Jacobian from x is block
  diagonal over groups; from γ and β it is ∂y[c,p]/∂γ[j] = [π(c,p) = j]·x̂[c,p]).
* Elementwise γ (layer_norm, rms_norm, and group_norm's per-channel γ inside a group) needs no new
  argument: γ[π(c,p)] is an input family indexed by the position, and the closed form is the BN
  one with g replaced by γ⊙g; dγ[j] is a sum over the groups (R rows, or the B samples and S
  positions) that share the entry -- a symbolic sum over the group range, decided like the others.
* The per-group dot-product identity (one group's ⟨Jt, g⟩ = ⟨t, Jᵀg⟩) holds only where γ and β
  are per group (batchnorm_channel_first, batch_norm); for shared parameters only the whole-context
  identity is a statement, and only it is proved.
* Not modeled at symbolic sizes: the layout stages (permute/reshape between the layer's layout and
  the row form, and the concrete index arithmetic of a gather, e.g. row n·C + c reads channel c)
  -- they are bijections of index sets, taken as the identity on (c, p) here; their laws and the
  assembled graph are proved at concrete shapes by ``prove(layer)``.  Also not covered: a
  layer_norm/rms_norm normalized_shape of several axes is its flattening (a bijection, so exact,
  but the per-axis structure is not shown), full-context seeds on intermediate slots, the
  totalized behaviour where var + ε ≤ 0, and sizes 0.
* Summation order: Σ_{(n,s)} is the nested Σ_n Σ_s; the calculus has no rule exchanging sums
  (Fubini), so a claim written with the other order would be 'undecided', never wrongly decided.

Index-level calculus (a small term language with explicit rewrite rules)
-----------------------------------------------------------------------
Values are SymPy polynomials (with integer exponents, negative ones only on atoms known to be
nonzero) in *atoms*, each atom a SymPy symbol registered with its structure:

* ``x[c,p]`` -- an input family at symbolic indices (``Ix`` objects over the ranges of
  :data:`RANGES`);
* ``δ[i,k]`` -- a Kronecker delta of two distinct indices of the same range;
* ``Σ_N0(body)`` -- a *named sum*: a finite sum over a bound index (renamed canonically) of a
  monomial ``body`` that depends on the bound index;
* ``√(u)`` -- ``σ = sqrt(u)`` of a normal form ``u`` (a positive symbol; ``σ⁻¹`` is ``r``);
* ``ι(b)`` -- ``1/b`` of a normal form ``b`` that is not a monomial in nonzero atoms;
* the size symbols (``N``, ``C``, ``B``, ``S``, ``R``, ``G``, ``K``, with their inverses) and ``eps``.

Every construction normalizes with the rules of :data:`RULES` (``sum-linear``, ``sum-const``,
``delta-contract``, ``delta-refl``, ``delta-subst``, ``bound-rename``, ``N-inverse``) and
differentiation uses ``deriv-atom``, ``deriv-sum``, ``deriv-poly``, ``sqrt-chain`` and
``inv-chain``.  The rules that fired are logged per obligation and listed in its ``method``.

Decisions are exact and made by the exact engine (:mod:`symbolic_bn.exact`): the difference of
both sides is brought to normal form; if it is not already the zero polynomial, :func:`decide_nf`
moves it to an engine :class:`~symbolic_bn.exact.space.Space` -- input atoms, deltas, named sums,
the sizes (declared positive) and ε as variables, each σ an engine square-root atom of its
radicand, each ι an engine inverse atom of its base -- and :func:`symbolic_bn.exact.normal.
is_zero_value` decides (σ² = u, σ·σ⁻¹ = 1, size·size⁻¹ = 1, denominators cleared by their
nonzero bases).  A zero normal form is a proof; ``simplify()`` is never used.

Side conditions.  Building ``ι(b)`` records ``b ≠ 0`` (and raises :class:`ZeroBase` when ``b``
reduces to 0 modulo ``σ² = u``: ``1/b`` is then undefined everywhere, the claim is 'undecided');
building ``σ = sqrt(u)`` records ``u > 0``.  A claim is 'proved' only when every recorded condition,
and every ``σ``/``ι`` left in its normal forms, is implied by its *stated* hypotheses (a nonzero
constant, a size, ``σ``, a quantity its ``cover`` maps to a stated assumption such as
``var_c + ε > 0``, or a product of these); otherwise it is 'undecided' with the condition named.

Confirmation at concrete sizes
------------------------------
Every parametric obligation is re-checked at concrete sizes (:func:`confirmation_grid`: every
group range of size 1 with the positions' sizes from ``sizes`` -- for two position ranges
(1, n) and (2, n) -- and, for obligations that involve several groups, each group range of size 2
with at most 3 positions) by a *concrete* backend that runs the same statement with explicit
symbols ``x_c_0 .. x_c_{N-1}``, Python-expanded sums and ``sympy.diff``: for every assignment of
the free indices, the exact engine must prove that the symbolic normal forms of both sides,
instantiated at those sizes (named sums expanded), equal the concrete expansions of both sides.
With the symbolic proof this gives concrete lhs = concrete rhs and it guards against a wrong
rewrite rule.  A row where a side divides by zero cannot be compared: a claim with such rows (in
particular one with 0 comparisons) is 'undecided', never 'proved'.  When the symbolic decision
does not prove a claim, concrete lhs = rhs is decided directly and a wrong statement is refuted by
an exact counterexample at concrete sizes and a rational point: both sides are evaluated there by
SymPy's own arithmetic, their difference shown nonzero by the engine's exact sign (outward-rounded
intervals for square roots), and the whole evaluation is redone on a fresh backend before it is
reported.

A closed form or rule is a Python function: what is proved is the expression it builds for the
*symbolic* sizes (and confirmed at the concrete sizes), so a function that branches on the value
of a size (``if M.N == 7: ...``; SymPy's structural ``==`` is False for the symbol) is only covered
where the branch it takes for the symbol is the one it takes at that size -- a branch taken only at
some size outside the confirmation sizes is not seen.

Inexact numbers are refused, never decided: a closed form or rule whose sides contain a SymPy
``Float`` (a Python float multiplied in becomes one) raises ``ValueError`` naming the claim, even
when the statement would hold for the Float read as an exact binary number (``1.0 * x = x``); a
side that is not a number or SymPy expression (a string) raises ``ValueError`` too (it is never
parsed).

Public API: :func:`prove_all_sizes`, :func:`size_model`, :data:`SIZE_MODELS`, :class:`SizeModel`,
:class:`LayerBackend`, :class:`ClosedForm`, :data:`STANDARD_CLOSED_FORM`, :func:`standard_closed_form`,
:data:`VJP_RULES`, :data:`JVP_RULES`, :data:`STAGES`, :data:`RULES`, :data:`RANGES`, the backends
:class:`SymbolicBackend` / :class:`ConcreteBackend`, :class:`Model`, :class:`Ix`, :func:`decide_nf`,
:func:`engine_zero`, :func:`instantiate`.
"""
from __future__ import annotations

import contextlib
import contextvars
import itertools
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Callable

import sympy
from sympy import Add, Integer, Mul, Rational, Symbol

from .certificate import Certificate, Obligation
from ..exact import normal, sign as _sign
from ..exact.budget import BudgetExceeded, check_budget, time_budget
from ..exact.convert import SympyImport
from ..exact.errors import ExactArithmeticError, UndefinedValue, UnsupportedOperation
from ..exact.space import Space

__all__ = [
    "Ix", "SymbolicBackend", "ConcreteBackend", "LayerBackend", "Model", "ClosedForm",
    "STANDARD_CLOSED_FORM", "standard_closed_form", "SizeModel", "SIZE_MODELS", "size_model",
    "STAGES", "VJP_RULES", "JVP_RULES", "FORWARD_RULES", "RULES", "RANGES", "N_SYM", "C_SYM", "EPS",
    "decide_nf", "engine_zero", "engine_differ", "instantiate", "normalize", "sum_over",
    "prove_all_sizes", "backprop", "jvp", "forward", "claims", "run_claim", "Claim", "recording",
    "diff", "subs_ix", "at", "delta", "confirmation_grid", "concrete_symbol", "ZeroBase",
]

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
# Exact decision of a normal form, on the exact engine


class _EngineForm:
    """Normal forms of the term language as Values of one engine Space: input atoms, deltas,
    named sums, sizes (positive) and ε are variables; σ = sqrt(u) and ι = 1/b become the engine's
    own square-root and inverse atoms of (the engine images of) u and b."""

    def __init__(self, exprs):
        self.space = Space(name="allsizes")
        self.names: dict = {}
        plain, seen, todo = set(), set(), [sympy.sympify(e) for e in exprs]
        while todo:
            for s in todo.pop().free_symbols:
                if _kind(s) in ("sqrt", "inv"):
                    if s not in seen:
                        seen.add(s)
                        todo.append(sympy.sympify(_ATOMS[s].data[0]))
                else:
                    plain.add(s)
        for k, s in enumerate(sorted(plain, key=str)):
            name = f"v{k}"
            self.space.variable(name, None, sign="positive" if s in SIZE_SYMBOLS else None)
            self.space.display_map[name] = s
            self.names[s] = name
        self.space.freeze()
        self._memo: dict = {}

    def __call__(self, e):
        e = sympy.sympify(e)
        got = self._memo.get(e)
        if got is None:
            got = self._memo[e] = self._convert(e)
        return got

    def _convert(self, e):
        space = self.space
        if e.is_Rational:
            return space.fraction(Fraction(int(e.p), int(e.q)))
        if e.is_Symbol:
            kind = _kind(e)
            if kind == "sqrt":
                return space.sqrt(self(_ATOMS[e].data[0]))
            if kind == "inv":
                return space.inverse(self(_ATOMS[e].data[0]))
            return space.var(self.names[e])
        if e.is_Add:
            total = space.zero()
            for a in e.args:
                total = space.add(total, self(a))
            return total
        if e.is_Mul:
            total = space.fraction(1)
            for a in e.args:
                total = space.multiply(total, self(a))
            return total
        if e.is_Pow and e.exp.is_Integer:
            return space.power(self(e.base), int(e.exp))
        raise TypeError(f"not a normal form of the term language: {type(e).__name__}")


def _engine_is_zero(expr) -> bool:
    """Exact zero test of a normal form on the engine (False when it cannot be represented)."""
    try:
        form = _EngineForm([expr])
        v = form(expr)
        return v.is_syntactic_zero() or normal.is_zero_value(form.space, v)
    except (ExactArithmeticError, UndefinedValue, UnsupportedOperation, TypeError, ZeroDivisionError):
        return False


def _relations_needed(D) -> set:
    """The decision relations a nonzero normal form brings in: negative size powers (N-inverse),
    σ powers spanning ≥ 2 or negative (sigma-square / sigma-inverse), ι atoms (iota-inverse)."""
    used = set()
    terms = Add.make_args(D)
    for s in D.free_symbols:
        exps = [_exp_of(t, s) for t in terms]
        if s in SIZE_SYMBOLS and min(exps) < 0:
            used.add("N-inverse")
        elif _kind(s) == "sqrt":
            if min(exps) < 0:
                used.add("sigma-inverse")
            if max(exps) - min(exps) >= 2 or max(abs(e) for e in exps) >= 2:
                used.add("sigma-square")
        elif _kind(s) == "inv":
            used.add("iota-inverse")
    return used


def _exp_of(term, sym):
    return term.as_powers_dict().get(sym, 0)


def decide_nf(expr):
    """Decide ``expr == 0`` for a normal form, using only relations valid on the domain.

    Returns ``(zero: bool, remainder, relations_used)``: a normal form that is already the zero
    polynomial is zero; otherwise the exact engine decides it (module docstring) and
    ``relations_used`` names the decision relations its atoms bring in.  Named sums, input atoms
    and deltas are opaque variables, so a nonzero remainder is *not* a disproof.

    ``zero`` is conditional on ``b ≠ 0`` for every ``ι(b)`` and ``u > 0`` for every ``σ = sqrt(u)``
    (the conditions recorded when the atoms were built); :func:`run_claim` checks that the
    claim's stated hypotheses imply them.
    """
    D = normalize(expr)
    if D == 0:
        return True, D, set()
    if _engine_is_zero(D):
        return True, Integer(0), _relations_needed(D)
    return False, D, set()


def engine_zero(exprs) -> list[bool]:
    """For explicit SymPy expressions (the concrete backend's: symbols, rationals, +, ·, integer
    and half-integer powers), whether each is identically zero -- decided on one engine Space
    (:class:`~symbolic_bn.exact.convert.SympyImport`, :func:`~symbolic_bn.exact.normal.is_zero_value`);
    an expression the engine cannot represent exactly counts as not shown zero."""
    exprs = [sympy.sympify(e) for e in exprs]
    out = [e == 0 for e in exprs]
    todo = [k for k, z in enumerate(out) if not z]
    if not todo:
        return out
    space = Space(name="allsizes concrete")
    importer = SympyImport(space)
    for k in todo:
        importer.declare(exprs[k])
    space.freeze()
    for k in todo:
        try:
            v = importer(exprs[k])
            out[k] = v.is_syntactic_zero() or normal.is_zero_value(space, v)
        except (ExactArithmeticError, UndefinedValue, UnsupportedOperation, TypeError, ZeroDivisionError):
            out[k] = False
    return out


def engine_differ(a, b):
    """True when the exact numbers ``a`` and ``b`` (SymPy: rationals, square roots, +, ·) provably
    differ, False when they are equal, None when not decided -- the sign of ``a − b`` by the exact
    engine (exact rationals; outward-rounded intervals at increasing precision for atoms)."""
    d = sympy.sympify(a) - sympy.sympify(b)
    if d.is_Rational:
        return bool(d != 0)
    if d.free_symbols:
        return None
    space = Space(name="allsizes point")
    importer = SympyImport(space)
    importer.declare(d)
    if importer.opaque:
        return None
    try:
        v = importer(d)
    except (ExactArithmeticError, UndefinedValue, UnsupportedOperation, TypeError, ZeroDivisionError):
        return None
    if normal.is_zero_value(space, v):
        return False
    s = _sign.sign(space, v)
    return True if s in ("pos", "neg") else None


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

    def size(self, rng):
        return RANGES[rng]

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
    """Explicit symbols x_c_0 .. x_c_{N-1}; sums expanded; ``sympy.diff``; ``sympy.sqrt``.

    ``n`` and ``channels`` are the sizes of the ranges 'N' and 'C'; ``sizes`` gives others
    (``{'B': 2, 'S': 3}``)."""

    symbolic = False
    eps = EPS

    def __init__(self, n: int = 1, channels: int = 1, *, sizes: dict | None = None):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an int ≥ 1, got {n!r}")
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be an int ≥ 1, got {channels!r}")
        self.sizes = {"N": n, "C": channels}
        for rng, k in (sizes or {}).items():
            if rng not in RANGES:
                raise ValueError(f"sizes: unknown range {rng!r} (ranges: {', '.join(RANGES)})")
            if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                raise ValueError(f"sizes: the size of {rng} must be an int ≥ 1, got {k!r}")
            self.sizes[rng] = k
        self.n = self.sizes["N"]
        self.channels = self.sizes["C"]
        self.N = Integer(self.n)
        self.C = Integer(self.channels)
        self.Ninv = Rational(1, self.n)
        self._diff_cache: dict = {}

    def size(self, rng):
        return Integer(self.sizes[rng])

    def at(self, family, *idx):
        return concrete_symbol(family, idx)

    def delta(self, i, k):
        return Integer(1 if i == k else 0)

    def sum(self, rng, fn):
        return Add(*[fn(j) for j in range(self.sizes[rng])])

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



def instantiate(expr, n: int, channels: int, env: dict, sizes: dict | None = None):
    """The normal form ``expr`` at ``N = n``, ``C = channels`` (and the other ranges at ``sizes``)
    and the free indices ``env`` (``{Ix: int}``), as an explicit SymPy expression in the concrete
    backend's symbols."""
    cache: dict = {}
    size_of = {"N": n, "C": channels, **(sizes or {})}
    by_symbol = {RANGES[r]: Integer(k) for r, k in size_of.items()}

    def inst(e):
        e = sympy.sympify(e)
        rep = {}
        for s in e.free_symbols:
            if s in by_symbol:
                rep[s] = by_symbol[s]
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
            size = size_of[b.rng]
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
# Layers at symbolic sizes: groups, positions, the weight index, the row-form stages


def _memo(fn):
    cache: dict = {}

    def wrapped(*args):
        if args not in cache:
            cache[args] = fn(*args)
        return cache[args]
    return wrapped


@dataclass(frozen=True)
class Stage:
    pos: int
    name: str
    kind: str
    inputs: tuple
    shape: str          # 'CN' (group × position; C×H×W flattened for BN) or 'C' (one per group)
    lean: str | None


def _stats_stages(src, pos, lean=None):
    """TorchLean's statistics stages mean … normalized on the group × position slot ``src``."""
    lean = lean or {}
    rows = [("mean", "rowMean", (src,), "C"), ("mean_b", "broadcastRow", ("mean",), "CN"),
            ("centered", "sub", (src, "mean_b"), "CN"), ("centered_sq", "mul", ("centered", "centered"), "CN"),
            ("var", "rowMean", ("centered_sq",), "C"), ("var_eps", "addEps", ("var",), "C"),
            ("std", "sqrtClamp", ("var_eps",), "C"), ("inv_std", "inv", ("std",), "C"),
            ("inv_std_b", "broadcastRow", ("inv_std",), "CN"), ("normalized", "mul", ("centered", "inv_std_b"), "CN")]
    return [Stage(pos + k, name, kind, ins, shape, lean.get(name)) for k, (name, kind, ins, shape) in enumerate(rows)]


def _affine_stages(pos, broadcast, mat_out, lean=None, bias=True):
    lean = lean or {}
    out = [Stage(pos, "gamma_b", broadcast, ("gamma",), "CN", lean.get("gamma_b")),
           Stage(pos + 1, "scaled" if bias else mat_out, "mul", ("normalized", "gamma_b"), "CN",
                 lean.get("scaled" if bias else mat_out))]
    if bias:
        out += [Stage(pos + 2, "beta_b", broadcast, ("beta",), "CN", lean.get("beta_b")),
                Stage(pos + 3, mat_out, "add", ("scaled", "beta_b"), "CN", lean.get(mat_out))]
    return out


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

# TorchLean's layerNormGraph (torchlean.md §4): stages 3..16 on X directly, Lean node names
_LN_LEAN = {"mean": "nodeMean", "mean_b": "nodeMeanB", "centered": "nodeCentered",
            "centered_sq": "nodeCenteredSq", "var": "nodeVar", "var_eps": "nodeVarEps", "std": "nodeStd",
            "inv_std": "nodeInvStd", "inv_std_b": "nodeInvStdB", "normalized": "nodeNorm",
            "gamma_b": "nodeGammaB", "scaled": "nodeScaled", "beta_b": "nodeBetaB", "y": "nodeY"}
_LN_STAGES = tuple(_stats_stages("x", 3, _LN_LEAN) + _affine_stages(13, "broadcastCol", "y", _LN_LEAN))

# batch_norm: permute to channel-first and reshape (layout stages: index bijections, identities on
# (c, p) here), the row stages, and the layout back
_BATCH_STAGES = tuple(
    [Stage(3, "x_channel_first", "reshape", ("x",), "CN", None), Stage(4, "xMat", "reshape", ("x_channel_first",), "CN", None)]
    + _stats_stages("xMat", 5) + _affine_stages(15, "broadcastRow", "yMat")
    + [Stage(19, "y_channel_first", "reshape", ("yMat",), "CN", None), Stage(20, "y", "reshape", ("y_channel_first",), "CN", None)])


def _gathered_stages():
    return tuple([Stage(3, "xMat", "reshape", ("x",), "CN", None)] + _stats_stages("xMat", 4)
                 + _affine_stages(14, "gather", "yMat") + [Stage(18, "y", "reshape", ("yMat",), "CN", None)])


_RMS_STAGES = (
    Stage(2, "x_sq", "mul", ("x", "x"), "CN", None),
    Stage(3, "mean_sq", "rowMean", ("x_sq",), "C", None),
    Stage(4, "mean_sq_eps", "addEps", ("mean_sq",), "C", None),
    Stage(5, "rms", "sqrtClamp", ("mean_sq_eps",), "C", None),
    Stage(6, "inv_rms", "inv", ("rms",), "C", None),
    Stage(7, "inv_rms_b", "broadcastRow", ("inv_rms",), "CN", None),
    Stage(8, "normalized", "mul", ("x", "inv_rms_b"), "CN", None),
    Stage(9, "gamma_b", "broadcastCol", ("gamma",), "CN", None),
    Stage(10, "y", "mul", ("normalized", "gamma_b"), "CN", None),
)


@dataclass(frozen=True)
class SizeModel:
    """A layer at symbolic sizes (module docstring): the ranges of its group index and position
    index, which components of (c, p) index γ and β (``param``: ``('g', i)`` the i-th group
    component, ``('p', i)`` the i-th position component), its row-form stages and its texts."""

    layer: str
    title: str
    group: tuple
    position: tuple
    param: tuple
    centered: bool
    bias: bool
    broadcast: str
    stages: tuple
    output: str
    size_assumption: str
    group_assumption: str
    domain: str
    legend: str
    words: dict = field(compare=False, hash=False)
    lean_graph: str | None = None
    lean_backprop: str | None = None
    eps: object = EPS

    @property
    def param_ranges(self) -> tuple:
        return tuple((self.group if side == "g" else self.position)[i] for side, i in self.param)

    @property
    def param_per_group(self) -> bool:
        """γ and β are one per group (so per-group statements about them are statements)."""
        return self.param == tuple(("g", i) for i in range(len(self.group)))

    def kinds(self) -> list:
        """Node kinds of the stages, in order (a mul of a slot with itself counted as mul_same)."""
        out = []
        for st in self.stages:
            k = "mul_same" if st.kind == "mul" and st.inputs[0] == st.inputs[1] else st.kind
            if k not in out:
                out.append(k)
        if "mul_same" in out and "mul" not in out:
            out.insert(out.index("mul_same"), "mul")
        return out

    def input_shapes(self) -> dict:
        out = {"x": "CN", "gamma": "J"}
        if self.bias:
            out["beta"] = "J"
        return out


_SIZE_ASSUMPTION = "N = H·W ≥ 1 (any H, W ≥ 1; the C×H×W block is flattened row-major, p = h·W + w)"
_CHANNEL_ASSUMPTION = "C ≥ 1 (any number of channels)"
_DOMAIN = "var_c + ε > 0 for every channel c (hVarEpsPos; it implies std_c ≠ 0, hStdNe0)"

_BN_WORDS = dict(sizes="N ≥ 1", groups="C ≥ 1", n="N", C="C", grp="channel", grps="channels",
                 gam="γ_c", gamq="γ_c", bet="β_c", tgam="tγ_c", tbet="tβ_c", gj="γ_c", bj="β_c", j="c",
                 jrange="c < C")


def _words(**kw):
    base = dict(gam="γ_π(c,p)", gamq="γ_π(c,q)", bet="β_π(c,p)", tgam="tγ_π(c,p)", tbet="tβ_π(c,p)",
                gj="γ_j", bj="β_j", j="j", jrange="every weight index j")
    base.update(kw)
    return base


SIZE_MODELS: dict[str, SizeModel] = {
    "batchnorm_channel_first": SizeModel(
        "batchnorm_channel_first", "BatchNormChannelFirst, all sizes (symbolic C, H, W; N = H·W)",
        ("C",), ("N",), (("g", 0),), True, True, "broadcastRow", STAGES, "yChw",
        _SIZE_ASSUMPTION, _CHANNEL_ASSUMPTION, _DOMAIN,
        "c: a channel (one statistics group), p, q < N = H·W: positions in it; γ_c, β_c per channel",
        _BN_WORDS, "batchNormGraph", "backprop_eq_adjoint_fderiv_batchNorm_channel_first_at"),
    "batch_norm": SizeModel(
        "batch_norm", "batch_norm (training mode), all sizes (symbolic batch B, channels C, spatial S)",
        ("C",), ("B", "S"), (("g", 0),), True, True, "broadcastRow", _BATCH_STAGES, "y",
        "N = B·S ≥ 1 entries per channel: B ≥ 1 samples (the input's batch size) times S ≥ 1 spatial "
        "positions (S = prod of the spatial sizes, 1 for an (N, C) input); p = (n, s)",
        "C ≥ 1 (any number of channels)",
        "var_c + ε > 0 for every channel c (statistics over the batch and spatial axes)",
        "c: a channel (one statistics group), p = (n, s): sample n < B, spatial position s < S; γ_c, β_c "
        "per channel; the layout (permute to channel-first, reshape) is the identity on (c, p) here",
        dict(_BN_WORDS, sizes="B, S ≥ 1", n="(B·S)")),
    "instance_norm": SizeModel(
        "instance_norm", "instance_norm, all sizes (symbolic batch B, channels C, spatial S)",
        ("B", "C"), ("S",), (("g", 1),), True, True, "gather", _gathered_stages(), "y",
        "N = S ≥ 1 entries per (sample, channel) group (S = prod of the spatial sizes)",
        "B ≥ 1 samples and C ≥ 1 channels: B·C groups c = (n, c')",
        "var_(n,c) + ε > 0 for every sample n and channel c",
        "c = (n, c'): a (sample, channel) statistics group, p, q < S: spatial positions; γ, β indexed by "
        "the channel π(c, p) = c' (shared by the B samples: a gather)",
        _words(sizes="S ≥ 1", groups="B, C ≥ 1", n="S", C="(B·C)", grp="group", grps="groups")),
    "group_norm": SizeModel(
        "group_norm", "group_norm, all sizes (symbolic batch B, groups G, channels per group K, spatial S)",
        ("B", "G"), ("K", "S"), (("g", 1), ("p", 0)), True, True, "gather", _gathered_stages(), "y",
        "N = K·S ≥ 1 entries per group: K ≥ 1 channels per group (C = G·K, so G divides C) times S ≥ 1 "
        "spatial positions; p = (k, s)",
        "B ≥ 1 samples and G ≥ 1 groups: B·G statistics groups c = (n, g)",
        "var_(n,g) + ε > 0 for every sample n and group g",
        "c = (n, g): a (sample, group) statistics group, p = (k, s): channel g·K + k of the group and "
        "spatial position s; γ, β indexed by the channel π(c, p) = (g, k) (a gather; per channel, "
        "shared by the B samples and the S positions)",
        _words(sizes="K, S ≥ 1", groups="B, G ≥ 1", n="(K·S)", C="(B·G)", grp="group", grps="groups")),
    "layer_norm": SizeModel(
        "layer_norm", "layer_norm, all sizes (symbolic rows R, normalized size N)",
        ("R",), ("N",), (("p", 0),), True, True, "broadcastCol", _LN_STAGES, "y",
        "N ≥ 1 entries per row (N = prod of normalized_shape, flattened row-major)",
        "R ≥ 1 rows (R = prod of the leading sizes)",
        "var_r + ε > 0 for every row r (each index of the leading axes)",
        "c: a row (one statistics group), p, q < N: positions in normalized_shape; γ, β elementwise, "
        "indexed by the position π(c, p) = p (shared by the R rows: TorchLean's broadcastCol)",
        _words(sizes="N ≥ 1", groups="R ≥ 1", n="N", C="R", grp="row", grps="rows"),
        "layerNormGraph", "backprop_eq_adjoint_fderiv_layerNorm_at"),
    "rms_norm": SizeModel(
        "rms_norm", "rms_norm, all sizes (symbolic rows R, normalized size N)",
        ("R",), ("N",), (("p", 0),), False, False, "broadcastCol", _RMS_STAGES, "y",
        "N ≥ 1 entries per row (N = prod of normalized_shape, flattened row-major)",
        "R ≥ 1 rows (R = prod of the leading sizes)",
        "mean(x²)_r + ε > 0 for every row r (each index of the leading axes)",
        "c: a row (one statistics group), p, q < N: positions in normalized_shape; y = x·r·γ with "
        "r = 1/sqrt(mean(x²) + ε), γ elementwise (broadcastCol), no β",
        _words(sizes="N ≥ 1", groups="R ≥ 1", n="N", C="R", grp="row", grps="rows")),
}


def size_model(layer=None) -> SizeModel:
    """The :class:`SizeModel` of ``layer``: a :class:`symbolic_bn.layers.Layer` (its kind and ε;
    the shape is not used), a layer name, or None (batchnorm_channel_first, symbolic ε)."""
    if layer is None:
        return SIZE_MODELS["batchnorm_channel_first"]
    if isinstance(layer, str):
        if layer not in SIZE_MODELS:
            raise ValueError(f"layer must be a symbolic_bn.layers.Layer or one of {', '.join(SIZE_MODELS)}, "
                             f"got {layer!r}")
        return SIZE_MODELS[layer]
    from ..layers import Layer
    if not isinstance(layer, Layer):
        raise ValueError(f"layer must be a symbolic_bn.layers.Layer or a layer name, got {type(layer).__name__}"
                         + (" (pass the budget as budget=...)" if isinstance(layer, (int, float)) else ""))
    model = SIZE_MODELS.get(layer.name)
    if model is None:  # pragma: no cover - every layer kind has a model
        raise ValueError(f"layer: no all-sizes model for {layer.name!r}")
    if not layer.symbolic_eps:
        eps = Rational(layer.eps.numerator, layer.eps.denominator)
        return replace(model, eps=eps, domain=model.domain.replace("ε", f"ε (ε = {eps})", 1))
    return model


_BN = SIZE_MODELS["batchnorm_channel_first"]
#: index names shown bare (as before); every other (name, range) is written name_range
_BARE = {("c", "C"), ("c2", "C"), ("p", "N"), ("q", "N")}


class LayerBackend:
    """A backend (symbolic or concrete) seen through a layer's index structure: the kinds
    ``'C'`` (a group index), ``'N'`` (a position) and ``'J'`` (a weight index) stand for the
    layer's ranges -- one index, or a tuple of indices when the kind has several ranges.
    ``at``, ``delta`` and ``diff`` take such indices; ``sum('N', fn)`` is the nested sum over a
    group's positions, ``param(c, p)`` the weight index π(c, p), ``param_sum(j, fn)`` the sum of
    ``fn(c, p)`` over every (c, p) with π(c, p) = j."""

    def __init__(self, inner, spec: SizeModel | None = None):
        self.inner = inner
        self.spec = spec or _BN
        self.symbolic = inner.symbolic

    # sizes and scalars
    @property
    def eps(self):
        return self.spec.eps

    def kind_ranges(self, kind) -> tuple:
        spec = self.spec
        return {"C": spec.group, "N": spec.position, "J": spec.param_ranges}.get(kind, (kind,))

    def _size_product(self, kind):
        return Mul(*[self.inner.size(r) for r in self.kind_ranges(kind)])

    @property
    def N(self):
        return self._size_product("N")

    @property
    def C(self):
        return self._size_product("C")

    @property
    def Ninv(self):
        if self.symbolic:
            _rule("N-inverse")
            return Mul(*[self.inner.size(r) ** -1 for r in self.spec.position])
        return Rational(1, int(self.N))

    def size(self, rng):
        return self.inner.size(rng)

    # indices
    def index(self, name, kind):
        """The symbolic free index ``name`` of kind ``kind`` (an Ix, or a tuple of them)."""
        ranges = self.kind_ranges(kind)
        if len(ranges) == 1:
            r = ranges[0]
            return Ix(name if (name, r) in _BARE else f"{name}_{r}", r)
        return tuple(Ix(f"{name}_{r}", r) for r in ranges)

    def assignments(self, kind):
        """The concrete values of an index of ``kind`` (ints, or tuples of ints)."""
        ranges = self.kind_ranges(kind)
        values = list(itertools.product(*[range(self.inner.sizes[r]) for r in ranges]))
        return [v[0] for v in values] if len(ranges) == 1 else values

    @staticmethod
    def _flat(idx):
        out = []
        for i in idx:
            out.extend(i if isinstance(i, tuple) else (i,))
        return tuple(out)

    def sum(self, kind, fn):
        ranges = self.kind_ranges(kind)
        if len(ranges) == 1:
            return self.inner.sum(ranges[0], fn)
        return self._nested(ranges, (), fn)

    def _nested(self, ranges, prefix, fn):
        if not ranges:
            return fn(prefix)
        return self.inner.sum(ranges[0], lambda j: self._nested(ranges[1:], prefix + (j,), fn))

    def at(self, family, *idx):
        return self.inner.at(family, *self._flat(idx))

    def delta(self, i, k):
        if isinstance(i, tuple):
            return Mul(*[self.inner.delta(a, b) for a, b in zip(i, k)])
        return self.inner.delta(i, k)

    def diff(self, v, family, *idx):
        return self.inner.diff(v, family, *self._flat(idx))

    def sqrt(self, v):
        return self.inner.sqrt(v)

    def sqrt_clamp(self, v):
        return self.inner.sqrt_clamp(v)

    def inv(self, v):
        return self.inner.inv(v)

    # the weight index
    def param(self, c, p):
        cs = c if isinstance(c, tuple) else (c,)
        ps = p if isinstance(p, tuple) else (p,)
        comps = tuple((cs if side == "g" else ps)[i] for side, i in self.spec.param)
        return comps[0] if len(comps) == 1 else comps

    def param_sum(self, j, fn):
        spec = self.spec
        js = j if isinstance(j, tuple) else (j,)
        fixed = {key: v for key, v in zip(spec.param, js)}
        free = [(side, i, r) for side, ranges in (("g", spec.group), ("p", spec.position))
                for i, r in enumerate(ranges) if (side, i) not in fixed]

        def build(assign):
            cs = tuple(assign[("g", i)] for i in range(len(spec.group)))
            ps = tuple(assign[("p", i)] for i in range(len(spec.position)))
            return fn(cs[0] if len(cs) == 1 else cs, ps[0] if len(ps) == 1 else ps)

        def nest(k, assign):
            if k == len(free):
                return build(assign)
            side, i, r = free[k]
            return self.inner.sum(r, lambda v: nest(k + 1, {**assign, (side, i): v}))
        return nest(0, dict(fixed))


def as_layer_backend(be, spec: SizeModel | None = None) -> LayerBackend:
    if isinstance(be, LayerBackend):
        return be
    return LayerBackend(be, spec)


class Model:
    """Forward quantities of one layer on a backend (group index c, position p).

    Families: ``x`` (input), ``gamma``, ``beta`` (indexed by the weight index π(c, p)), ``g``
    (cotangent on the output), ``t`` (tangent on x), ``tgamma``, ``tbeta``.  A bare
    Symbolic/ConcreteBackend is read as batchnorm_channel_first (γ_c, β_c per channel)."""

    def __init__(self, be):
        self.be = as_layer_backend(be)
        self.spec = self.be.spec
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
        """Σ over the positions p of a group."""
        return self.be.sum("N", fn)

    def param_sum(self, j, fn):
        return self.be.param_sum(j, fn)

    # inputs
    def x(self, c, p):
        return self.be.at("x", c, p)

    def g(self, c, p):
        return self.be.at("g", c, p)

    def t(self, c, p):
        return self.be.at("t", c, p)

    def gamma(self, j):
        return self.be.at("gamma", j)

    def beta(self, j):
        return self.be.at("beta", j)

    def tgamma(self, j):
        return self.be.at("tgamma", j)

    def tbeta(self, j):
        return self.be.at("tbeta", j)

    def param(self, c, p):
        return self.be.param(c, p)

    def gamma_at(self, c, p):
        return self.gamma(self.param(c, p))

    def beta_at(self, c, p):
        return self.beta(self.param(c, p))

    # forward (spec formulas)
    def _mean(self, c):
        return self.Ninv * self.sum(lambda j: self.x(c, j))

    def centered(self, c, p):
        """x − mean (for rms_norm, which does not center: x)."""
        return self.x(c, p) - self.mean(c) if self.spec.centered else self.x(c, p)

    def _var(self, c):
        """The group statistic: the population variance (rms_norm: mean(x²))."""
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
        out = self.gamma_at(c, p) * self.xhat(c, p)
        return out + self.beta_at(c, p) if self.spec.bias else out


# Node rules.  Values of a group × position slot are callables (c, p) -> value, of a per-group
# slot c -> value, of a weight slot j -> value.  Each rule receives the (layer) backend ``be``.


def _f_reshape(be, a):
    return a


def _f_rowmean(be, a):
    return lambda c: be.Ninv * be.sum("N", lambda j: a(c, j))


def _f_bcast(be, v):
    return lambda c, p: v(c)


def _f_bcast_col(be, v):
    return lambda c, p: v(p)


def _f_gather(be, v):
    return lambda c, p: v(be.param(c, p))


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
    "reshape": _f_reshape, "rowMean": _f_rowmean, "broadcastRow": _f_bcast, "broadcastCol": _f_bcast_col,
    "gather": _f_gather, "sub": _f_sub, "add": _f_add, "mul": _f_mul, "addEps": _f_addeps,
    "sqrtClamp": _f_sqrtclamp, "inv": _f_inv,
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
    "broadcastCol": lambda be, ins, d: (lambda p: be.sum("C", lambda c: d(c, p)),),
    "gather": lambda be, ins, d: (lambda j: be.param_sum(j, d),),
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
    "broadcastCol": lambda be, ins, ds: (lambda c, p: ds[0](p)),
    "gather": lambda be, ins, ds: (lambda c, p: ds[0](be.param(c, p))),
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
    """Values of every slot of the layer's row-form graph as callables, stage by stage."""
    be = M.be
    vals = {"x": M.x, "gamma": M.gamma}
    if M.spec.bias:
        vals["beta"] = M.beta
    for st in M.spec.stages:
        vals[st.name] = _memo(FORWARD_RULES[st.kind](be, *[vals[i] for i in st.inputs]))
    return vals


def backprop(M: Model, seed: dict, vjp_rules: dict | None = None) -> dict:
    """``Graph.backpropVec``: reverse order, slot cotangent = its seed + all later VJP
    contributions; returns the cotangents of the inputs x, gamma[, beta]."""
    rules = dict(VJP_RULES, **(vjp_rules or {}))
    vals = forward(M)
    shapes = M.spec.input_shapes()
    cot: dict = {name: ([seed[name]] if name in seed else []) for name in vals}
    for st in reversed(M.spec.stages):
        d = _combine(cot[st.name], st.shape)
        contribs = rules[st.kind](M.be, tuple(vals[i] for i in st.inputs), d)
        for name, contrib in zip(st.inputs, contribs):
            cot[name].append(_memo(contrib))
    return {name: _combine(cot[name], shape) for name, shape in shapes.items()}


def jvp(M: Model, tangents: dict, jvp_rules: dict | None = None) -> dict:
    """``Graph.jvpVec``: forward-mode tangents of every slot, stage by stage."""
    rules = dict(JVP_RULES, **(jvp_rules or {}))
    vals = forward(M)
    tan = {name: tangents.get(name, _zero(shape)) for name, shape in M.spec.input_shapes().items()}
    for st in M.spec.stages:
        tan[st.name] = _memo(rules[st.kind](M.be, tuple(vals[i] for i in st.inputs),
                                            tuple(tan[i] for i in st.inputs)))
    return tan


# ---------------------------------------------------------------------------------------------
# Closed forms (torchlean.md §5.4 for BN; the same per group, with γ⊙g, for the other layers)


@dataclass(frozen=True)
class ClosedForm:
    """A closed form to check.  Each field is a function of a :class:`Model` ``M`` and indices:
    ``dx(M, c, q)``, ``dgamma(M, j)``, ``dbeta(M, j)`` (j a weight index; for the cotangent
    ``M.g``) and ``jvp(M, c, p)`` (for the tangents ``M.t``, ``M.tgamma``, ``M.tbeta``).
    ``dbeta`` is not used for a layer without β (rms_norm)."""

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


def _gg(M, c, p):
    return M.gamma_at(c, p) * M.g(c, p)


def _gen_dx(M, c, q):
    if M.spec.centered:
        return (M.r(c) * M.Ninv * (M.N * _gg(M, c, q) - M.sum(lambda j: _gg(M, c, j))
                                   - M.xhat(c, q) * M.sum(lambda j: _gg(M, c, j) * M.xhat(c, j))))
    return M.r(c) * (_gg(M, c, q) - M.Ninv * M.xhat(c, q) * M.sum(lambda j: _gg(M, c, j) * M.xhat(c, j)))


def _gen_dgamma(M, j):
    return M.param_sum(j, lambda c, p: M.g(c, p) * M.xhat(c, p))


def _gen_dbeta(M, j):
    return M.param_sum(j, lambda c, p: M.g(c, p))


def _gen_jvp(M, c, p):
    t = M.t
    core = t(c, p) - M.xhat(c, p) * M.Ninv * M.sum(lambda j: t(c, j) * M.xhat(c, j))
    if M.spec.centered:
        core = core - M.Ninv * M.sum(lambda j: t(c, j))
    out = M.gamma_at(c, p) * M.r(c) * core + M.xhat(c, p) * M.tgamma(M.param(c, p))
    return out + M.tbeta(M.param(c, p)) if M.spec.bias else out


#: The per-group closed form of every layer: dx = (r/N)(N·γg − Σ_p γg − x̂·Σ_p γg·x̂) with γg = γ_π⊙g
#: (rms_norm: r(γg − x̂·Σ_p γg·x̂/N)), dγ_j = Σ_{π(c,p)=j} g·x̂, dβ_j = Σ_{π(c,p)=j} g, and the JVP
#: γ_π·r·(t − mean(t) − x̂·mean(t⊙x̂)) + x̂·tγ_π + tβ_π (rms_norm: without mean(t) and tβ).
GROUP_CLOSED_FORM = ClosedForm(
    name="per-group closed form (dx = (r/N)(N·γg − Σγg − x̂·Σγg·x̂), dγ = Σ g·x̂, dβ = Σ g over the "
         "positions sharing the weight)", dx=_gen_dx, dgamma=_gen_dgamma, dbeta=_gen_dbeta, jvp=_gen_jvp)


#: the same functions, named with rms_norm's formulas (they branch on ``M.spec.centered``)
RMS_CLOSED_FORM = replace(
    GROUP_CLOSED_FORM, name="per-group closed form without centering (dx = r(γg − x̂·Σγg·x̂/N), dγ = Σ g·x̂ "
                            "over the positions sharing the weight)")


def standard_closed_form(spec: SizeModel) -> ClosedForm:
    """The closed form a layer's certificate checks by default."""
    if spec.layer == "batchnorm_channel_first":
        return STANDARD_CLOSED_FORM
    return GROUP_CLOSED_FORM if spec.centered else RMS_CLOSED_FORM


# ---------------------------------------------------------------------------------------------
# Claims and their verification


@dataclass
class Claim:
    """A parametric statement ``lhs == rhs`` (componentwise when they return tuples).

    ``lhs``/``rhs`` are functions ``(be, idx) -> value | tuple`` where ``idx`` maps the free index
    names to indices of the backend (``Ix`` -- or tuples of them -- symbolically, ints or tuples
    concretely).  ``free`` lists ``(name, kind)``: kinds 'C' (a group index), 'N' (a position),
    'J' (a weight index) are the layer's (``spec``; default batchnorm_channel_first), any other
    kind is a range of :data:`RANGES`.  ``be`` is a :class:`LayerBackend` of ``spec``.
    """

    name: str
    group: str
    statement: str
    free: tuple
    lhs: Callable
    rhs: Callable
    lean_name: str | None = None
    stage: str | None = None
    channel_level: bool = False       # involves several groups: confirm also with 2 groups
    assumptions: tuple = ()
    cover: Callable | None = None     # (kind, expr) -> assumption text or None
    spec: SizeModel | None = None


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


def _concrete_backend(spec, sizes):
    full = {r: 1 for r in spec.group + spec.position + spec.param_ranges}
    full.update(sizes)
    return LayerBackend(ConcreteBackend(full.get("N", 1), full.get("C", 1), sizes=full), spec)


def _concrete_sides(claim, sizes, assignment, be=None):
    be = be or _concrete_backend(claim.spec or _BN, sizes)
    L, R = _as_tuple(claim.lhs(be, assignment)), _as_tuple(claim.rhs(be, assignment))
    _refuse_inexact(claim, list(L) + list(R))
    return L, R


def _assignments(claim, be):
    names = [name for name, _ in claim.free]
    ranges = [be.assignments(kind) for _, kind in claim.free]
    for values in itertools.product(*ranges):
        yield dict(zip(names, values))


def _env(idx, assignment):
    """``{Ix: int}`` for the free indices ``idx`` (Ix or tuples) at the concrete ``assignment``."""
    env = {}
    for name, v in assignment.items():
        ix = idx[name]
        if isinstance(ix, tuple):
            env.update(zip(ix, v))
        else:
            env[ix] = v
    return env


def _sizes_of(spec, sizes):
    n = 1
    for r in spec.position:
        n *= sizes[r]
    c = 1
    for r in spec.group:
        c *= sizes[r]
    return n, c


def _search_counterexample(claim, sizes, assignment, component, attempts=3):
    """Exact rational point where the concrete sides differ (re-evaluated from scratch)."""
    spec = claim.spec or _BN
    try:
        L, R = _concrete_sides(claim, sizes, assignment)
    except ZeroDivisionError:
        return None
    lhs, rhs = L[component], R[component]
    for attempt in range(attempts):
        point = _point([lhs, rhs], attempt)
        lv, rv = _evaluate(lhs, point), _evaluate(rhs, point)
        if lv is None or rv is None:
            continue
        if engine_differ(lv, rv) is True:
            # re-evaluate independently: rebuild both sides on a fresh backend
            L2, R2 = _concrete_sides(claim, sizes, assignment)
            lv2, rv2 = _evaluate(L2[component], point), _evaluate(R2[component], point)
            if lv2 is None or rv2 is None or engine_differ(lv2, rv2) is not True:
                continue
            n, c = _sizes_of(spec, sizes)
            cex = {"sizes": dict(sizes), "N": n, "C": c}
            if spec.layer == "batchnorm_channel_first":
                cex.update({"H": n, "W": 1})
            cex.update({"indices": dict(assignment), "component": component,
                        "point": {str(s): str(v) for s, v in point.items()},
                        "lhs": str(lv2), "rhs": str(rv2)})
            return cex
    return None


def _position_grid(spec, sizes):
    pos = spec.position
    if len(pos) == 1:
        return [{pos[0]: n} for n in sizes]
    top = max(sizes)
    return ([{pos[0]: 1, pos[1]: n} for n in sizes]
            + [{pos[0]: 2, pos[1]: n} for n in sizes if 2 * n <= top])


def confirmation_grid(claim, sizes, max_n_two_channels: int = 3):
    """The concrete sizes (``{range: size}``) at which a claim is confirmed: every group range 1
    with the positions' sizes from ``sizes`` (for two position ranges: (1, n) and (2, n) with
    2n ≤ max(sizes)); for claims that involve several groups also each group range of size 2 (the
    others 1) with at most ``max_n_two_channels`` positions (so that groups can mix, i.e. the
    cross-group blocks are actually exercised)."""
    spec = claim.spec or _BN
    sizes = list(sizes)
    ones = {r: 1 for r in spec.group}
    positions = _position_grid(spec, sizes)
    grid = [dict(ones, **p) for p in positions]
    if claim.channel_level:
        for r in spec.group:
            for p in positions:
                n = 1
                for v in p.values():
                    n *= v
                if n <= max_n_two_channels:
                    grid.append(dict(ones, **{r: 2}, **p))
    return grid


def _grid_text(spec, grid) -> str:
    by: dict = {}
    for g in grid:
        by.setdefault(", ".join(f"{r}={g[r]}" for r in spec.group), []).append(g)
    parts = []
    for key, gs in by.items():
        if len(spec.position) == 1:
            r = spec.position[0]
            parts.append(f"{key}, {r}={','.join(str(g[r]) for g in gs)}")
        else:
            vals = ",".join("(" + ",".join(str(g[r]) for r in spec.position) + ")" for g in gs)
            parts.append(f"{key}, ({','.join(spec.position)})={vals}")
    return "; ".join(parts)


def _confirm(claim, Lnf, Rnf, idx, grid, symbolic_zero):
    """Concrete confirmation at the sizes of ``grid``.

    For every assignment of the free indices: the symbolic normal forms of lhs and rhs,
    instantiated at those sizes (named sums expanded), must equal the concrete expansions of lhs
    and rhs (this checks the rewrite rules; with the symbolic proof it gives concrete lhs =
    concrete rhs) -- decided by the exact engine (:func:`engine_zero`).  When the symbolic decision
    did not prove the claim, concrete lhs = rhs is decided directly and refuted by an exact
    counterexample where possible.

    Rows where a side divides by zero cannot be compared; they are counted in ``skipped``
    (``{size text: number}``), and a claim with skipped rows is never 'proved'.

    Returns ``(n_checks, counterexample | None, problem | None, skipped)``.
    """
    spec = claim.spec or _BN
    checks = 0
    skipped: dict = {}

    def label(sizes):
        return ", ".join(f"{r}={sizes[r]}" for r in spec.group + spec.position)

    def skip(sizes):
        skipped[label(sizes)] = skipped.get(label(sizes), 0) + 1

    for sizes in grid:
        shared = _concrete_backend(spec, sizes)
        full = shared.inner.sizes
        rows = []
        for assignment in _assignments(claim, shared):
            try:
                L, R = _concrete_sides(claim, sizes, assignment, shared)
            except ZeroDivisionError:
                skip(sizes)
                continue
            env = _env(idx, assignment)
            for k, (cl, cr) in enumerate(zip(L, R)):
                rows.append((assignment, env, k, cl, cr))
        checks += len(rows)
        if symbolic_zero:
            diffs = []
            try:
                for _, env, k, cl, cr in rows:
                    diffs.append(instantiate(Lnf[k], full["N"], full["C"], env, full) - cl)
                    diffs.append(instantiate(Rnf[k], full["N"], full["C"], env, full) - cr)
            except ZeroDivisionError:
                diffs = None
            if diffs is not None and all(engine_zero(diffs)):
                continue
        # diagnose row by row
        equal = engine_zero([cl - cr for _, _, _, cl, cr in rows])
        for (assignment, env, k, cl, cr), same in zip(rows, equal):
            if not same:
                cex = _search_counterexample(claim, sizes, assignment, k)
                if cex is not None:
                    return checks, cex, None, skipped
                return checks, None, (f"{label(sizes)}, {assignment}, component {k}: concrete sides "
                                      f"not proved equal, no counterexample found"), skipped
            if symbolic_zero:
                for side, nf, conc in (("lhs", Lnf[k], cl), ("rhs", Rnf[k], cr)):
                    try:
                        inst = instantiate(nf, full["N"], full["C"], env, full)
                    except ZeroDivisionError:
                        skip(sizes)
                        continue
                    if not engine_zero([inst - conc])[0]:
                        return checks, None, (
                            f"{label(sizes)}, {assignment}, component {k}: the symbolic normal form of "
                            f"the {side} disagrees with its concrete expansion (a rewrite rule is "
                            f"wrong)"), skipped
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

    Implied: a constant of the right sign; the sizes (N, C, ... ≥ 1); ``σ = sqrt(u)`` (> 0 when
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
        # (the layer covers also accept any positive size monomial factor)
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
            if b in SIZE_SYMBOLS:
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


def _sums_over(exprs, ranges) -> bool:
    """Whether a named sum over one of ``ranges`` occurs in ``exprs`` (also nested in atoms)."""
    seen, todo = set(), [sympy.sympify(e) for e in exprs]
    while todo:
        for s in todo.pop().free_symbols:
            a = _ATOMS.get(s)
            if a is None or s in seen:
                continue
            seen.add(s)
            if a.kind == "sum":
                if a.data[0].rng in ranges:
                    return True
                todo.append(a.data[1])
            elif a.kind in ("sqrt", "inv"):
                todo.append(a.data[0])
    return False


def run_claim(claim: Claim, *, budget: float | None = 60.0, sizes=range(1, 7)) -> Obligation:
    """Decide one claim for symbolic sizes, then confirm it at the concrete sizes."""
    budget = check_budget(budget)
    spec = claim.spec or _BN
    start = time.perf_counter()
    log = _Log()
    token = _LOG.set(log)
    status, cex, detail = "undecided", None, None
    method_tail = ""
    extra_conditions: list = []
    what = "index-level calculus for symbolic sizes"
    try:
        with time_budget(budget):
            be = LayerBackend(SymbolicBackend(), spec)
            idx = {name: be.index(name, kind) for name, kind in claim.free}
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
            # a side that sums over groups (a closed form reading other groups' statistics, say)
            # is confirmed with two groups as well, where that can make a difference
            confirm_as = claim if claim.channel_level or not _sums_over(Lnf + Rnf, spec.group) \
                else replace(claim, channel_level=True)
            grid = confirmation_grid(confirm_as, list(sizes))
            checks, cex, mismatch, skipped = _confirm(claim, Lnf, Rnf, idx, grid, symbolic_zero)
            method_tail = (f"; confirmed at ({_grid_text(spec, grid)}) by concrete expansion "
                           f"(explicit symbols, expanded sums, sympy.diff) with the exact engine's zero "
                           f"test: {checks} exact comparisons")
            if skipped:
                method_tail += (f" ({sum(skipped.values())} skipped: division by zero at "
                                + "; ".join(skipped) + ")")
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
                          f"at " + "; ".join(skipped)
                          + (" (nothing was compared)" if checks == 0 else "")
                          + "; the statement is undefined there")
            elif symbolic_zero:
                status = "proved"
            else:
                rem = [sympy.sstr(r) for z, r, _ in decided if not z]
                detail = ("nonzero normal form of lhs − rhs, and no counterexample at the "
                          "concrete sizes: " + "; ".join(r[:400] for r in rem))
            size_names = ", ".join(dict.fromkeys(spec.position + (spec.group if claim.channel_level else ())))
            what = ("index-level calculus for symbolic N" + (" and C" if claim.channel_level else "")
                    if spec.layer == "batchnorm_channel_first" else
                    f"index-level calculus for symbolic {size_names}")
            method = (what + "; rewrite rules used: " + ", ".join(rules_used)
                      + "; exact decision: normal form of lhs − rhs is the zero polynomial (the exact "
                        "engine's normal form when it is not syntactically zero)"
                      + method_tail)
            if detail is None:
                detail = "lhs normal form: " + "; ".join(sympy.sstr(v)[:300] for v in Lnf)
    except BudgetExceeded:
        status, cex = "undecided", None
        detail = f"time budget of {budget} s exceeded"
        method = f"{what} (budget exceeded)"
    except ZeroDivisionError as exc:
        status, cex = "undecided", None
        detail = (f"a side divides by an expression that is zero on the whole domain: {exc}; "
                  f"the statement is undefined, so it is neither proved nor refuted")
        method = f"{what} (division by zero while building)"
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
                                     "evaluates to z), both differences decided zero by the exact engine",
        "rule_inv_derivative": "sympy.diff of 1/w, the difference decided zero by the exact engine",
        "rule_addEps_derivative": "sympy.diff of w + ε, the difference decided zero by the exact engine",
    }
    for name, statement, build, assumptions, lean in facts:
        start = time.perf_counter()
        diffs = build()
        ok = all(engine_zero(diffs))
        out.append(Obligation(
            name=name, statement=statement, status="proved" if ok else "undecided",
            method=methods[name] + " (exact symbolic differentiation; no simplify())",
            assumptions=assumptions, lean_name=lean, seconds=time.perf_counter() - start,
            group="scalar rules", detail=None if ok else "not decided"))
    return out


# ---------------------------------------------------------------------------------------------
# Covers: which radicands / bases the stated domain makes positive


def _clear_sizes(e):
    """``e`` times the smallest monomial in the sizes that removes their negative powers."""
    e = normalize(e)
    terms = Add.make_args(e)
    m = Integer(1)
    for s in SIZE_SYMBOLS & e.free_symbols:
        low = min(_exp_of(t, s) for t in terms)
        if low < 0:
            m *= s ** (-low)
    return normalize(e * m)


def _positive_multiple(a, b) -> bool:
    """``a = q·m·b`` for a rational q > 0 and a monomial m in the (positive) sizes."""
    pa = _clear_sizes(a).as_content_primitive()[1]
    pb = _clear_sizes(b).as_content_primitive()[1]
    if normalize(pa - pb) == 0:
        return True
    # a common size monomial factor left in one of them
    ta, tb = Add.make_args(pa), Add.make_args(pb)
    if len(ta) != len(tb):
        return False
    for s in SIZE_SYMBOLS & (pa.free_symbols | pb.free_symbols):
        ka, kb = min(_exp_of(t, s) for t in ta), min(_exp_of(t, s) for t in tb)
        pa, pb = normalize(pa / s ** ka), normalize(pb / s ** kb)
    return normalize(pa - pb) == 0


def _layer_cover(spec):
    """Recognize the layer's domain condition: the radicand stat_c + ε of any group c (up to a
    positive rational and size factor)."""
    def cover(kind, expr):
        if kind != "positive":
            return None
        by_rng: dict = {}
        for i in _free(expr):
            by_rng.setdefault(i.rng, []).append(i)
        if set(by_rng) != set(spec.group) or any(len(v) != 1 for v in by_rng.values()):
            return None
        c = tuple(by_rng[r][0] for r in spec.group)
        M = Model(LayerBackend(SymbolicBackend(), spec))
        if _positive_multiple(expr, M.var_eps(c[0] if len(c) == 1 else c)):
            return spec.domain
        return None
    cover.__name__ = f"cover_{spec.layer}"
    return cover


_COVERS: dict = {}


def _cover_of(spec):
    got = _COVERS.get(spec)
    if got is None:
        got = _COVERS[spec] = _layer_cover(spec)
    return got


def _bn_cover(kind, expr):
    """Recognize the domain conditions of the BN graph: radicand var_c + ε, for any channel."""
    return _cover_of(_BN)(kind, expr)


def _generic_cover(kind, expr):
    if expr.is_Symbol and _kind(expr) == "at" and _ATOMS[expr].data[0] == "z":
        return ("z_c > 0 for every channel c" if kind == "positive"
                else "z_c ≠ 0 for every channel c")
    if kind == "nonzero" and _kind(expr) == "sqrt":
        return "z_c > 0 for every channel c"
    return None


# ---------------------------------------------------------------------------------------------
# The claims


#: kind: (input families (CN: a, b; per group: z; weight: w), output shape, Lean certificate)
_KIND_INFO = {
    "reshape": (("a",), "CN", "reshapeFderiv"),
    "rowMean": (("a",), "C", "rowMeanFderiv"),
    "broadcastRow": (("z",), "CN", "broadcastRowFderiv"),
    "broadcastCol": (("w",), "CN", "broadcastCol certificate (Matrix.lean:1001)"),
    "gather": (("w",), "CN", None),
    "sub": (("a", "b"), "CN", "subFderiv"),
    "mul": (("a", "b"), "CN", "mulFderiv"),
    "mul_same": (("a", "a"), "CN", "mulFderiv"),
    "addEps": (("z",), "C", "elemwiseFderiv (f := z+ε, f' := 1)"),
    "sqrtClamp": (("z",), "C", "sqrtClampFderivAt"),
    "inv": (("z",), "C", "invFderivAt"),
    "add": (("a", "b"), "CN", "addFderiv"),
}

#: the BN graph's stage lists per kind, as the certificate has always written them
_BN_USES = {
    "reshape": "xMat (pos 3), yChw (pos 18)", "rowMean": "mean (pos 4), var (pos 8)",
    "broadcastRow": "mean_b, inv_std_b, gamma_b, beta_b (pos 5, 12, 14, 16)",
    "sub": "centered (pos 6)", "mul": "normalized, scaled (pos 13, 15)",
    "mul_same": "centered_sq (pos 7, a = b = centered)", "addEps": "var_eps (pos 9)",
    "sqrtClamp": "std (pos 10)", "inv": "inv_std (pos 11)", "add": "yMat (pos 17)",
}


def _uses(spec, kind) -> str:
    if spec.layer == "batchnorm_channel_first":
        return _BN_USES[kind]
    real = "mul" if kind == "mul_same" else kind
    sts = [st for st in spec.stages if st.kind == real
           and (kind != "mul_same" or st.inputs[0] == st.inputs[1])
           and (kind != "mul" or st.inputs[0] != st.inputs[1])]
    if not sts:  # a mul law the layer needs only in its same-slot form
        return "(no stage of this layer; kept as the general form of mul_same)"
    return ", ".join(f"{st.name} (pos {st.pos})" for st in sts)


def _family_shape(fam):
    return {"z": "C", "w": "J"}.get(fam, "CN")


def _input_callable(be, fam, shape_of=None):
    """The input family ``fam`` as a slot callable (shaped like ``shape_of``, default ``fam``)."""
    if _family_shape(shape_of or fam) != "CN":
        return lambda c: be.at(fam, c)
    return lambda c, p: be.at(fam, c, p)


def _kind_node(be, kind, rules=None):
    fams, out_shape, _ = _KIND_INFO[kind]
    real = "mul" if kind == "mul_same" else kind
    ins = tuple(_input_callable(be, f) for f in fams)
    out = FORWARD_RULES[real](be, *ins)
    return fams, ins, out, out_shape, real


def _node_assumptions(spec, kind):
    out = [spec.size_assumption, spec.group_assumption]
    if kind == "sqrtClamp":
        out.append("z_c > 0 for every channel c")
    if kind == "inv":
        out.append("z_c ≠ 0 for every channel c")
    return tuple(out)


def _family_free(fam, name_c="c2", name_p="q"):
    shape = _family_shape(fam)
    if shape == "J":
        return (("j", "J"),)
    return ((name_c, "C"),) + (((name_p, "N"),) if shape == "CN" else ())


def _family_index(fam, idx, name_c="c2", name_p="q"):
    shape = _family_shape(fam)
    if shape == "J":
        return (idx["j"],)
    return (idx[name_c], idx[name_p]) if shape == "CN" else (idx[name_c],)


def _family_text(fam, W):
    shape = _family_shape(fam)
    if shape == "J":
        return "every weight index j", "[j]"
    return (f"every c' < {W['C']}" + (f", q < {W['n']}" if shape == "CN" else "")), \
        ("[c',q]" if shape == "CN" else "[c']")


def _stage_claims(spec, vjp_rules) -> list[Claim]:
    W = spec.words
    claims = []
    rules = dict(VJP_RULES, **(vjp_rules or {}))
    for kind in spec.kinds():
        fams, out_shape, lean = _KIND_INFO[kind]
        distinct = list(dict.fromkeys(fams))
        for fam in distinct:
            free = _family_free(fam)

            def lhs(be, idx, kind=kind, fam=fam):
                _, _, out, out_shape_, _ = _kind_node(be, kind)
                d = (lambda c, p: be.at("d", c, p)) if out_shape_ == "CN" else (lambda c: be.at("d", c))
                ii = _family_index(fam, idx)
                if out_shape_ == "CN":
                    return be.sum("C", lambda c: be.sum("N", lambda p: d(c, p) * be.diff(out(c, p), fam, *ii)))
                return be.sum("C", lambda c: d(c) * be.diff(out(c), fam, *ii))

            def rhs(be, idx, kind=kind, fam=fam):
                fams_, ins, _, out_shape_, real = _kind_node(be, kind)
                d = (lambda c, p: be.at("d", c, p)) if out_shape_ == "CN" else (lambda c: be.at("d", c))
                contribs = rules[real](be, ins, d)
                ii = _family_index(fam, idx)
                return Add(*[f(*ii) for f_name, f in zip(fams_, contribs) if f_name == fam])

            slot = "" if len(distinct) == 1 else f" (input {fam})"
            where, at = _family_text(fam, W)
            statement = (
                f"{kind}{slot}: for all {W['groups']}, {W['sizes']} and {where}: (Jᵀδ)[{fam}]{at}"
                + f" = Σ_{{c<{W['C']}}}" + (f" Σ_{{p<{W['n']}}}" if out_shape == "CN" else "")
                + " δ_out · ∂out/∂" + fam + " equals the node's VJP rule"
                + (" (both contributions δ⊙a land in the same slot: 2·δ⊙a)" if kind == "mul_same" else "")
                + f"; used by {_uses(spec, kind)}")
            claims.append(Claim(
                name=f"vjp_{kind}" + ("" if len(distinct) == 1 else f"_{fam}"),
                group="stage VJP = Jᵀδ", statement=statement, free=free, lhs=lhs, rhs=rhs,
                lean_name=lean, stage=_uses(spec, kind), channel_level=True,
                assumptions=_node_assumptions(spec, kind), cover=_generic_cover, spec=spec))
    return claims


def _stage_jvp_claims(spec, jvp_rules) -> list[Claim]:
    """Per node kind: the JVP rule equals the index-level Jacobian applied to the tangents."""
    W = spec.words
    claims = []
    rules = dict(JVP_RULES, **(jvp_rules or {}))
    for kind in spec.kinds():
        fams, out_shape, lean = _KIND_INFO[kind]
        distinct = list(dict.fromkeys(fams))
        free = (("c", "C"),) + ((("p", "N"),) if out_shape == "CN" else ())

        def out_idx(idx, out_shape=out_shape):
            return (idx["c"], idx["p"]) if out_shape == "CN" else (idx["c"],)

        def lhs(be, idx, kind=kind, distinct=distinct, out_idx=out_idx):
            _, _, out, _, _ = _kind_node(be, kind)
            value = out(*out_idx(idx))
            total = Integer(0)
            for fam in distinct:
                t = _input_callable(be, "t" + fam, fam)
                shape = _family_shape(fam)
                if shape == "CN":
                    total += be.sum("C", lambda d: be.sum("N", lambda j: be.diff(value, fam, d, j) * t(d, j)))
                else:
                    total += be.sum("C" if shape == "C" else "J", lambda d: be.diff(value, fam, d) * t(d))
            return total

        def rhs(be, idx, kind=kind, fams=fams, out_idx=out_idx):
            _, ins, _, _, real = _kind_node(be, kind)
            tans = tuple(_input_callable(be, "t" + fam, fam) for fam in fams)
            return rules[real](be, ins, tans)(*out_idx(idx))

        out_i = "[c,p]" if out_shape == "CN" else "[c]"
        statement = (f"{kind}: for all {W['groups']}, {W['sizes']} and every c < {W['C']}"
                     + (f", p < {W['n']}" if out_shape == "CN" else "")
                     + f": (J·t){out_i} = Σ_inputs Σ_{{c'<{W['C']}}} [Σ_{{q<{W['n']}}}] "
                     f"∂out{out_i}/∂in[c',q]·t_in[c',q] ([Σ_q] for group × position inputs; Σ_j for a "
                     f"weight input) equals the node's JVP rule"
                     + (" (same slot: 2·a⊙t_a)" if kind == "mul_same" else "")
                     + f"; used by {_uses(spec, kind)}")
        claims.append(Claim(
            name=f"jvp_{kind}", group="stage JVP = J·t", statement=statement, free=free,
            lhs=lhs, rhs=rhs, lean_name=lean, stage=_uses(spec, kind), channel_level=True,
            assumptions=_node_assumptions(spec, kind), cover=_generic_cover, spec=spec))
    return claims


def _channel_block_claims(spec) -> list[Claim]:
    W = spec.words
    claims = []
    for kind in spec.kinds():
        fams, out_shape, lean = _KIND_INFO[kind]
        if "w" in fams:
            continue  # a weight input is shared by the groups: not a per-group block
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
            statement = (f"{kind}: for all {W['groups']}, {W['sizes']} and c, c' < {W['C']}: "
                         f"∂out{out_i}/∂{fam}{in_i} = δ_cc'·∂out{out_i}/∂{fam}{in_i.replace(chr(39), '')} "
                         f"-- the forward of {W['grp']} c reads only {W['grp']} c of its input, so every "
                         f"cross-{W['grp']} Jacobian block (c ≠ c') is zero; used by {_uses(spec, kind)}")
            claims.append(Claim(
                name=f"channel_block_{kind}" + ("" if len(set(fams)) == 1 else f"_{fam}"),
                group="channel independence", statement=statement, free=tuple(free), lhs=lhs,
                rhs=rhs, lean_name=lean, stage=_uses(spec, kind), channel_level=True,
                assumptions=_node_assumptions(spec, kind), cover=_generic_cover, spec=spec))
    return claims


def _model(be):
    """The Model of a backend (one per backend, so that lhs and rhs share forward values)."""
    model = getattr(be, "_model", None)
    if model is None:
        model = be._model = Model(be)
    return model


_bn = _model


def _lemma_claims(spec) -> list[Claim]:
    W = spec.words
    cf = [spec.size_assumption]
    dom = [spec.size_assumption, spec.domain]
    cq = (("c", "C"), ("q", "N"))
    cp = (("c", "C"), ("p", "N"))
    cpq = (("c", "C"), ("p", "N"), ("q", "N"))
    n, sz, g = W["n"], W["sizes"], W["gam"]
    cover = _cover_of(spec)

    def mk(name, statement, free, lhs, rhs, assumptions):
        return Claim(name=name, group="index-level derivatives", statement=statement, free=free,
                     lhs=lhs, rhs=rhs, assumptions=tuple(assumptions), cover=cover, spec=spec)

    def d_x(expr_fn):
        return lambda be, i: be.diff(expr_fn(_model(be), i), "x", i["c"], i["q"])

    def d_param(fam, expr_fn):
        return lambda be, i: be.diff(expr_fn(_model(be), i), fam, _model(be).param(i["c"], i["p"]))

    y_x = (lambda be, i: _model(be).gamma_at(i["c"], i["p"]) * _model(be).r(i["c"]) * (
        be.delta(i["p"], i["q"]) - (be.Ninv if spec.centered else 0)
        - be.Ninv * _model(be).xhat(i["c"], i["p"]) * _model(be).xhat(i["c"], i["q"])))
    if spec.centered:
        out = [
            mk("lemma_centered_sum_zero",
               f"For all {sz} and every {W['grp']} c: Σ_{{j<{n}}} (x_cj − mean_c) = 0, from the definition "
               f"mean_c = (1/{n})·Σ_j x_cj",
               (("c", "C"),), lambda be, i: be.sum("N", lambda j: _model(be).centered(i["c"], j)),
               lambda be, i: Integer(0), cf),
            mk("deriv_mean_x", f"For all {sz}, c, q < {n}: ∂mean_c/∂x_cq = 1/{n}", cq,
               d_x(lambda M, i: M.mean(i["c"])), lambda be, i: be.Ninv, cf),
            mk("deriv_centered_x",
               f"For all {sz}, c, p, q < {n}: ∂centered_cp/∂x_cq = δ_pq − 1/{n}", cpq,
               d_x(lambda M, i: M.centered(i["c"], i["p"])),
               lambda be, i: be.delta(i["p"], i["q"]) - be.Ninv, cf),
            mk("deriv_var_x",
               f"For all {sz}, c, q < {n}: ∂var_c/∂x_cq = (2/{n})(x_cq − mean_c) (uses Σ_j (x_cj − mean_c) "
               "= 0)", cq, d_x(lambda M, i: M.var(i["c"])),
               lambda be, i: 2 * be.Ninv * _model(be).centered(i["c"], i["q"]), cf),
            mk("deriv_std_x",
               f"For all {sz}, c, q < {n}: ∂std_c/∂x_cq = x̂_cq/{n}, std_c = sqrt(max(var_c+ε,0)), "
               "x̂ = (x − mean)·r, r = 1/std", cq, d_x(lambda M, i: M.std(i["c"])),
               lambda be, i: be.Ninv * _model(be).xhat(i["c"], i["q"]), dom),
            mk("deriv_normalized_x",
               f"For all {sz}, c, p, q < {n}: ∂normalized_cp/∂x_cq = r_c(δ_pq − 1/{n} − x̂_cp·x̂_cq/{n})",
               cpq, d_x(lambda M, i: M.normalized(i["c"], i["p"])),
               lambda be, i: _model(be).r(i["c"]) * (be.delta(i["p"], i["q"]) - be.Ninv - be.Ninv
                                                     * _model(be).xhat(i["c"], i["p"])
                                                     * _model(be).xhat(i["c"], i["q"])), dom),
            mk("deriv_y_x",
               f"For all {sz}, c, p, q < {n}: ∂y_cp/∂x_cq = {g} r_c(δ_pq − 1/{n} − x̂_cp·x̂_cq/{n})",
               cpq, d_x(lambda M, i: M.y(i["c"], i["p"])), y_x, dom),
        ]
        stats = (lambda M, i: M.mean(i["c"]), lambda M, i: M.centered(i["c"], i["p"]),
                 lambda M, i: M.var(i["c"]), lambda M, i: M.std(i["c"]),
                 lambda M, i: M.normalized(i["c"], i["p"]))
        stats_text = "mean_c, centered_cp, var_c, std_c and normalized_cp"
    else:
        out = [
            mk("deriv_mean_sq_x", f"For all {sz}, c, q < {n}: ∂mean(x²)_c/∂x_cq = (2/{n})·x_cq", cq,
               d_x(lambda M, i: M.var(i["c"])), lambda be, i: 2 * be.Ninv * _model(be).x(i["c"], i["q"]), cf),
            mk("deriv_rms_x",
               f"For all {sz}, c, q < {n}: ∂rms_c/∂x_cq = x̂_cq/{n}, rms_c = sqrt(max(mean(x²)_c+ε,0)), "
               "x̂ = x·r, r = 1/rms", cq, d_x(lambda M, i: M.std(i["c"])),
               lambda be, i: be.Ninv * _model(be).xhat(i["c"], i["q"]), dom),
            mk("deriv_normalized_x",
               f"For all {sz}, c, p, q < {n}: ∂normalized_cp/∂x_cq = r_c(δ_pq − x̂_cp·x̂_cq/{n})",
               cpq, d_x(lambda M, i: M.normalized(i["c"], i["p"])),
               lambda be, i: _model(be).r(i["c"]) * (be.delta(i["p"], i["q"]) - be.Ninv
                                                     * _model(be).xhat(i["c"], i["p"])
                                                     * _model(be).xhat(i["c"], i["q"])), dom),
            mk("deriv_y_x",
               f"For all {sz}, c, p, q < {n}: ∂y_cp/∂x_cq = {g} r_c(δ_pq − x̂_cp·x̂_cq/{n})",
               cpq, d_x(lambda M, i: M.y(i["c"], i["p"])), y_x, dom),
        ]
        stats = (lambda M, i: M.var(i["c"]), lambda M, i: M.std(i["c"]),
                 lambda M, i: M.normalized(i["c"], i["p"]))
        stats_text = "mean(x²)_c, rms_c and normalized_cp"
    out.append(mk("deriv_y_gamma", f"For all {sz}, c, p < {n}: ∂y_cp/∂{g} = x̂_cp", cp,
                  d_param("gamma", lambda M, i: M.y(i["c"], i["p"])),
                  lambda be, i: _model(be).xhat(i["c"], i["p"]), dom))
    fams = ("gamma", "beta") if spec.bias else ("gamma",)
    if spec.bias:
        out.append(mk("deriv_y_beta", f"For all {sz}, c, p < {n}: ∂y_cp/∂{W['bet']} = 1", cp,
                      d_param("beta", lambda M, i: M.y(i["c"], i["p"])), lambda be, i: Integer(1), dom))
    k = len(fams) * len(stats)
    words = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 10: "ten"}
    out.append(mk(
        "deriv_stats_params_zero",
        f"For all {sz}, c, p < {n}: {stats_text} do not depend on {g}" + (f" or {W['bet']}" if spec.bias else "")
        + f" (all {words.get(k, k)} partial derivatives are 0)", cp,
        lambda be, i: tuple(be.diff(f(_model(be), i), fam, _model(be).param(i["c"], i["p"]))
                            for fam in fams for f in stats),
        lambda be, i: tuple(Integer(0) for _ in range(k)), dom))
    return out


def _tangents(M):
    tan = {"x": lambda c, p: M.t(c, p), "gamma": M.tgamma}
    if M.spec.bias:
        tan["beta"] = M.tbeta
    return tan


def _graph_claims(spec, cf: ClosedForm, vjp_rules, jvp_rules=None) -> list[Claim]:
    W = spec.words
    dom = (spec.size_assumption, spec.domain)
    sz, n, j = W["sizes"], W["n"], W["j"]
    out_slot = spec.output
    cover = _cover_of(spec)
    shared = not spec.param_per_group
    fams = ("gamma", "beta") if spec.bias else ("gamma",)
    greek = {"gamma": "γ", "beta": "β"}
    cf_of = {"gamma": cf.dgamma, "beta": cf.dbeta}
    stages = f"{len(spec.stages)} stages"

    def bp(be):
        M = _model(be)
        return M, backprop(M, {out_slot: lambda c, p: M.g(c, p)}, vjp_rules)

    def jv(be):
        M = _model(be)
        return M, jvp(M, _tangents(M), jvp_rules)

    def adjoint_x(be, i):
        M = _model(be)
        c = i["c"]
        return M.sum(lambda p: M.g(c, p) * be.diff(M.y(c, p), "x", c, i["q"]))

    def adjoint_param(fam):
        def lhs(be, i):
            M = _model(be)
            if shared:  # the entry is used by many groups: the whole context's Σ_c Σ_p
                return be.sum("C", lambda c: M.sum(lambda p: M.g(c, p) * be.diff(M.y(c, p), fam, i[j])))
            return M.sum(lambda p: M.g(i[j], p) * be.diff(M.y(i[j], p), fam, i[j]))
        return lhs

    def jvp_lhs(be, i):
        M = _model(be)
        c, p = i["c"], i["p"]
        total = M.sum(lambda q: be.diff(M.y(c, p), "x", c, q) * be.at("t", c, q))
        for fam in fams:
            total += be.sum("J", lambda k, fam=fam: be.diff(M.y(c, p), fam, k) * be.at("t" + fam, k))
        return total

    G = ("end-to-end (per channel, symbolic N)" if spec.layer == "batchnorm_channel_first"
         else f"end-to-end (per {W['grp']}, symbolic sizes)")
    lean_bp = spec.lean_backprop
    xhat_def = "x̂ = (x − mean)/sqrt(var + ε) (population variance, 1/N)" if spec.centered else \
        "x̂ = x/sqrt(mean(x²) + ε)"
    y_def = f"{W['gam']}·x̂_cp" + (f" + {W['bet']}" if spec.bias else "")
    j_free = ((j, "J"),)
    sum_pos = "Σ_p" if not shared else "Σ_{(c,p): π(c,p)=j}"
    claims = [
        Claim("forward_graph_equals_spec", G,
              f"For all {sz}, c, p < {n}: the {stages} compose to {out_slot}_cp = {y_def} with {xhat_def}",
              (("c", "C"), ("p", "N")),
              lambda be, i: forward(_model(be))[out_slot](i["c"], i["p"]),
              lambda be, i: _model(be).y(i["c"], i["p"]), lean_name=spec.lean_graph,
              assumptions=dom, cover=cover, spec=spec),
        Claim("backprop_dx_closed_form", G,
              f"For all {sz}, c, q < {n}, seed g on {out_slot} only: backprop through the {stages} with "
              f"the node VJP rules gives dx_cq = " + (
                  "(γ_c r_c/N)(N g_cq − Σ_p g_cp − x̂_cq Σ_p g_cp x̂_cp)" if spec.layer == "batchnorm_channel_first"
                  else (f"(r_c/{n})({n}·γg_cq − Σ_p γg_cp − x̂_cq Σ_p γg_cp x̂_cp), γg = {W['gam']}·g_cp"
                        if spec.centered else f"r_c(γg_cq − x̂_cq Σ_p γg_cp x̂_cp/{n}), γg = {W['gam']}·g_cp"))
              + f" [closed form: {cf.name}]",
              (("c", "C"), ("q", "N")),
              lambda be, i: bp(be)[1]["x"](i["c"], i["q"]),
              lambda be, i: cf.dx(_model(be), i["c"], i["q"]), lean_name=lean_bp,
              assumptions=dom, cover=cover, spec=spec),
    ]
    for fam in fams:
        gk = greek[fam]
        val = "g_cp x̂_cp" if fam == "gamma" else "g_cp"
        claims.append(Claim(
            f"backprop_d{fam}_closed_form", G,
            f"For all {sz}{', ' + W['groups'] if shared else ''} and {W['jrange']}, seed g on {out_slot} only: "
            f"backprop gives d{gk}_{j} = "
            f"{sum_pos} {val} [closed form: {cf.name}]", j_free,
            (lambda be, i, fam=fam: bp(be)[1][fam](i[j])),
            (lambda be, i, fam=fam: cf_of[fam](_model(be), i[j])), lean_name=lean_bp, assumptions=dom,
            cover=cover, channel_level=shared, spec=spec))
    claims.append(Claim(
        "adjoint_dx_closed_form", G,
        f"For all {sz}, c, q < {n}: (J_yᵀ g)_x[c,q] = Σ_p g_cp·∂y_cp/∂x_cq (index-level "
        f"derivative of y, contracted) equals the closed-form dx [{cf.name}]",
        (("c", "C"), ("q", "N")), adjoint_x,
        lambda be, i: cf.dx(_model(be), i["c"], i["q"]), lean_name=lean_bp, assumptions=dom,
        cover=cover, spec=spec))
    for fam in fams:
        gk = greek[fam]
        claims.append(Claim(
            f"adjoint_d{fam}_closed_form", G,
            (f"For all {sz} and c: Σ_p g_cp·∂y_cp/∂{gk}_c equals the closed-form d{gk} [{cf.name}]" if not shared
             else f"For all {sz}, {W['groups']} and {W['jrange']}: Σ_c Σ_p g_cp·∂y_cp/∂{gk}_j (every "
                  f"{W['grp']} that uses the entry) equals the closed-form d{gk}_j [{cf.name}]"),
            j_free, adjoint_param(fam),
            (lambda be, i, fam=fam: cf_of[fam](_model(be), i[j])), lean_name=lean_bp, assumptions=dom,
            cover=cover, channel_level=shared, spec=spec))
    tparams = " + ".join(f"Σ_j ∂y_cp/∂{greek[f]}_j t{greek[f]}_j" for f in fams)
    claims += [
        Claim("jvp_closed_form", G,
              f"For all {sz}, c, p < {n}: J_y·(t, tγ" + (", tβ" if spec.bias else "") + ") = Σ_q ∂y_cp/∂x_cq "
              f"t_cq + {tparams} equals {W['gam']} r (t − " + ("mean(t) − " if spec.centered else "")
              + f"x̂ mean(t⊙x̂)) + x̂ {W['tgam']}" + (f" + {W['tbet']}" if spec.bias else "") + f" [{cf.name}]",
              (("c", "C"), ("p", "N")), jvp_lhs,
              lambda be, i: cf.jvp(_model(be), i["c"], i["p"]),
              lean_name="Spec.batchNorm2dJvp" if spec.layer == "batchnorm_channel_first" else None,
              assumptions=dom, cover=cover, spec=spec),
        Claim("jvp_stagewise_closed_form", G,
              f"For all {sz}, c, p < {n}: forward-mode through the {stages} with the node JVP "
              f"rules gives the closed-form JVP on {out_slot} [{cf.name}]",
              (("c", "C"), ("p", "N")),
              lambda be, i: jv(be)[1][out_slot](i["c"], i["p"]),
              lambda be, i: cf.jvp(_model(be), i["c"], i["p"]), lean_name="Graph.jvpVec",
              assumptions=dom, cover=cover, spec=spec),
    ]
    if not shared:
        claims.append(Claim(
            "dot_product_identity", G,
            f"For all {sz} and every {W['grp']} c: ⟨J t, g⟩ = Σ_p g_cp (J t)_cp equals ⟨t, Jᵀ g⟩ = "
            "Σ_p t_cp dx_cp + tγ_c dγ_c" + (" + tβ_c dβ_c" if spec.bias else "") + ", with J t from the "
            "stagewise JVP and Jᵀ g from the stagewise backprop",
            (("c", "C"),),
            lambda be, i: _model(be).sum(lambda p: be.at("g", i["c"], p) * jv(be)[1][out_slot](i["c"], p)),
            lambda be, i: _dot_rhs(be, i["c"], vjp_rules),
            lean_name="Graph.backprop_correct_inner", assumptions=dom, cover=cover, spec=spec))
    return claims


def _dot_rhs(be, c, vjp_rules):
    M = _model(be)
    g = backprop(M, {M.spec.output: lambda c_, p: M.g(c_, p)}, vjp_rules)
    out = M.sum(lambda p: M.t(c, p) * g["x"](c, p)) + M.tgamma(c) * g["gamma"](c)
    return out + M.tbeta(c) * g["beta"](c) if M.spec.bias else out


def _all_channel_claims(spec, cf: ClosedForm, vjp_rules, jvp_rules=None) -> list[Claim]:
    W = spec.words
    dom = (spec.size_assumption, spec.group_assumption, spec.domain)
    G = "channel independence"
    cover = _cover_of(spec)
    sz, grps = W["sizes"], W["groups"]
    fams = ("gamma", "beta") if spec.bias else ("gamma",)
    greek = {"gamma": "γ", "beta": "β"}
    cf_of = {"gamma": cf.dgamma, "beta": cf.dbeta}
    out_slot = spec.output

    def block_x(be, i):
        return be.diff(_model(be).y(i["c"], i["p"]), "x", i["c2"], i["q"])

    def block_x_rhs(be, i):
        return be.delta(i["c"], i["c2"]) * be.diff(_model(be).y(i["c"], i["p"]), "x", i["c"], i["q"])

    def block_param(fam):
        def lhs(be, i):
            return be.diff(_model(be).y(i["c"], i["p"]), fam, i["c2"])

        def rhs(be, i):
            M = _model(be)
            own = M.param(i["c"], i["p"])
            return be.delta(own, i["c2"]) * be.diff(M.y(i["c"], i["p"]), fam, own)
        return lhs, rhs

    def full_adjoint(fam, index):
        def lhs(be, i):
            M = _model(be)
            return be.sum("C", lambda c: M.sum(lambda p: M.g(c, p) * be.diff(M.y(c, p), fam, *index(i))))
        return lhs

    claims = [Claim(
        "channel_block_graph_x", G,
        f"For all {grps}, {sz}, c, c' < {W['C']}, p, q < {W['n']}: ∂y[c,p]/∂x[c',q] = δ_cc'·(the same "
        f"derivative with c' = c): the whole graph's Jacobian from x is block diagonal over {W['grps']}",
        (("c", "C"), ("c2", "C"), ("p", "N"), ("q", "N")), block_x, block_x_rhs,
        lean_name=(spec.lean_graph + "FderivCorrectAt") if spec.lean_graph else None, channel_level=True,
        assumptions=dom, cover=cover, spec=spec)]
    for fam in fams:
        lhs, rhs = block_param(fam)
        gk = greek[fam]
        claims.append(Claim(
            f"channel_block_graph_{fam}", G,
            (f"For all C, N ≥ 1, c, c' < C, p < N: ∂y[c,p]/∂{gk}[c'] = δ_cc'·(the same derivative with "
             f"c' = c): the whole graph's Jacobian from {fam} is block diagonal over channels"
             if spec.layer == "batchnorm_channel_first" else
             f"For all {grps}, {sz}, every {W['grp']} c, position p and weight index c': ∂y[c,p]/∂{gk}[c'] = "
             f"δ(π(c,p), c')·∂y[c,p]/∂{gk}[π(c,p)]: the output at (c, p) depends only on the weight entry "
             f"π(c,p) applied there"),
            (("c", "C"), ("c2", "J"), ("p", "N")), lhs, rhs,
            lean_name=(spec.lean_graph + "FderivCorrectAt") if spec.lean_graph else None,
            channel_level=True, assumptions=dom, cover=cover, spec=spec))
    claims.append(Claim(
        "all_channels_adjoint_x", G,
        f"For all {grps}, {sz}: the full Jᵀg over all {W['grps']}, Σ_c Σ_p g[c,p]·∂y[c,p]/∂x[c',q], "
        f"equals the per-{W['grp']} closed form dx at {W['grp']} c' [{cf.name}]",
        (("c2", "C"), ("q", "N")), full_adjoint("x", lambda i: (i["c2"], i["q"])),
        lambda be, i: cf.dx(_model(be), i["c2"], i["q"]), lean_name=spec.lean_backprop,
        channel_level=True, assumptions=dom, cover=cover, spec=spec))
    for fam in fams:
        gk = greek[fam]
        claims.append(Claim(
            f"all_channels_adjoint_{fam}", G,
            f"For all {grps}, {sz}: the full Jᵀg, Σ_c Σ_p g[c,p]·∂y[c,p]/∂{gk}[c'], equals the closed "
            f"form d{gk}[c'] [{cf.name}]", (("c2", "J"),),
            full_adjoint(fam, lambda i: (i["c2"],)),
            (lambda be, i, fam=fam: cf_of[fam](_model(be), i["c2"])), lean_name=spec.lean_backprop,
            channel_level=True, assumptions=dom, cover=cover, spec=spec))

    def dot_lhs(be, i):
        M = _model(be)
        tan = jvp(M, _tangents(M), jvp_rules)
        return be.sum("C", lambda c: M.sum(lambda p: M.g(c, p) * tan[out_slot](c, p)))

    def dot_rhs(be, i):
        M = _model(be)
        gr = backprop(M, {out_slot: lambda c_, p: M.g(c_, p)}, vjp_rules)
        total = be.sum("C", lambda c: M.sum(lambda p: M.t(c, p) * gr["x"](c, p)))
        total += be.sum("J", lambda k: M.tgamma(k) * gr["gamma"](k))
        if spec.bias:
            total += be.sum("J", lambda k: M.tbeta(k) * gr["beta"](k))
        return total

    claims.append(Claim(
        "all_channels_dot_product", G,
        f"For all {grps}, {sz}: over the whole context, ⟨J t, g⟩ = Σ_c Σ_p g[c,p](J t)[c,p] equals "
        f"⟨t, Jᵀ g⟩ = Σ_c Σ_p t[c,p] dx[c,p] + Σ_j tγ[j] dγ[j]" + (" + Σ_j tβ[j] dβ[j]" if spec.bias else "")
        + " with the stagewise JVP and backprop", (), dot_lhs, dot_rhs,
        lean_name="Graph.backprop_correct_inner", channel_level=True, assumptions=dom, cover=cover, spec=spec))
    return claims


def claims(closed_form: ClosedForm | None = None, vjp_rules: dict | None = None,
           jvp_rules: dict | None = None, layer=None) -> list[Claim]:
    """Every parametric claim of ``layer`` (default batchnorm_channel_first), in certificate order."""
    spec = layer if isinstance(layer, SizeModel) else size_model(layer)
    cf = closed_form or standard_closed_form(spec)
    return (_lemma_claims(spec) + _stage_claims(spec, vjp_rules) + _stage_jvp_claims(spec, jvp_rules)
            + _graph_claims(spec, cf, vjp_rules, jvp_rules)
            + _channel_block_claims(spec) + _all_channel_claims(spec, cf, vjp_rules, jvp_rules))


def prove_all_sizes(layer=None, budget: float | None = 60.0, *, closed_form: ClosedForm | None = None,
                    vjp_rules: dict | None = None, jvp_rules: dict | None = None,
                    sizes=range(1, 7), only=None) -> Certificate:
    """Certificate "<layer>, all sizes": every obligation for symbolic group size and number of
    groups (module docstring), each confirmed at concrete sizes.

    ``layer``: a :class:`symbolic_bn.layers.Layer` (its kind and ε are used, not its shape), a
    layer name, or None -- TorchLean's batchnorm_channel_first (symbolic C and N = H·W).
    ``budget``: seconds per obligation (``None`` or ``math.inf``: unbounded; see
    :func:`symbolic_bn.exact.budget.check_budget`).  ``closed_form``: the closed form to
    check (default :func:`standard_closed_form` of the layer).  ``vjp_rules``: overrides of
    :data:`VJP_RULES` by node kind, ``jvp_rules`` of :data:`JVP_RULES` (so that tests can pass
    wrong rules).  ``sizes``: the concrete group sizes of the confirmation.  ``only``: names of
    the obligations to run.
    """
    spec = size_model(layer)
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
    cf = closed_form or standard_closed_form(spec)
    params = ({"N": "symbolic, N = H·W ≥ 1", "C": "symbolic, C ≥ 1"}
              if spec.layer == "batchnorm_channel_first" else
              {"layer": spec.layer, "group": spec.group_assumption, "positions": spec.size_assumption})
    params.update({"legend": spec.legend, "eps": "symbolic ε" if spec.eps == EPS else str(spec.eps),
                   ("confirmed_at_N" if spec.layer == "batchnorm_channel_first" else "confirmed_at_group_sizes"): sizes,
                   "closed_form": cf.name, "budget_per_obligation_s": budget})
    cert = Certificate(subject=spec.title, parameters=params)
    all_claims = claims(cf, vjp_rules, jvp_rules, layer=spec)
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
