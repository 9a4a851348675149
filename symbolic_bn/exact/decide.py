"""Exact zero tests, exact comparisons of numbers, and time budgets.

Everything that lets a verdict say 'proved' or 'failed' goes through this module.

* :func:`decide_zero` decides whether a SymPy expression is identically zero on a stated domain,
  by exact algebra only:

  1. every square root ``sqrt(u)`` becomes a positive symbol ``σ`` with the relation ``σ² = u``
     (the radicand ``u`` must be a polynomial; equal radicands, compared in canonical polynomial
     form, share one ``σ``); a half-integer power ``u**(k/2)`` becomes ``σ**k``;
  2. every negative power of a non-constant ``q`` becomes ``ι**k`` with the relation ``q·ι = 1``;
  3. anything else that is not a polynomial operation (``Piecewise``, ``Max``, an undefined
     function, ...) becomes an *opaque* symbol, one per structurally equal subexpression -- an
     identity that holds for an arbitrary value of that symbol holds for its actual value;
  4. the result is a polynomial ``P`` over ℚ.  Each ``ι`` is eliminated by multiplying with the
     matching power of ``q`` (nonzero on the domain), then each ``σ**k`` with ``k ≥ 2`` is replaced
     by ``u**(k//2)·σ**(k%2)`` until no power of ``σ`` exceeds 1.  A zero normal form is a proof
     (every step multiplies by a nonzero factor or uses a relation that holds on the domain).

  Radicands and inverted denominators must themselves become polynomials in the atoms (a
  radicand containing ``1/q`` is not reduced), so such identities may end with a nonzero
  remainder: incomplete, never unsound.  A nonzero normal form is *not* a disproof (a radicand may be a perfect square, say); callers
  then look for an exact counterexample with :func:`differ_exactly`.  ``simplify()`` is never used.

* :func:`differ_exactly` decides that two exact numbers (rationals, square roots of rationals,
  sums and products of them) differ -- by exact rational arithmetic when both are rational, else by
  outward-rounded interval arithmetic (mpmath ``iv``) at increasing precision, which is rigorous
  when the interval excludes zero.

* :func:`time_budget` bounds the time a decision may take; a decision that runs out of time is
  'undecided', never 'proved'.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import mpmath
import sympy
from sympy.polys.domains import QQ
from sympy.polys.rings import ring as _poly_ring

from .budget import BudgetExceeded, time_budget  # noqa: F401 - re-exported
from .numbers import to_exact  # noqa: F401 - re-exported



@dataclass
class Decision:
    """Verdict of an exact zero test.

    ``status``: 'proved' (identically zero on the domain), 'remainder' (the exact normal form is not
    zero: look for a counterexample), or 'timeout'.
    """

    status: str
    method: str
    remainder: object = None
    radicands: list = field(default_factory=list)        # u with sqrt(u) used: needs u > 0
    nonzero_denominators: list = field(default_factory=list)  # q with 1/q used: needs q != 0
    opaque: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def proved(self) -> bool:
        return self.status == "proved"


METHOD_ZERO = ("exact normal form over Q: sqrt(u) -> sigma with sigma^2 = u, 1/q -> iota with "
               "q*iota = 1 (cleared by multiplying with q^k), sigma^k reduced to degree <= 1; "
               "zero remainder")


class _Atomizer:
    """Rewrites an expression into a polynomial in symbols, radical symbols σ, inverse symbols ι
    and opaque symbols, recording the relations (see module docstring)."""

    def __init__(self):
        self.radicals: dict = {}      # canonical radicand expr -> sigma symbol
        self.radicand_of: dict = {}   # sigma -> radicand expr (atomized, polynomial)
        self.inverses: dict = {}      # canonical denominator expr -> iota symbol
        self.inverse_of: dict = {}    # iota -> denominator expr (atomized, polynomial)
        self.opaque: dict = {}        # expr -> symbol
        self.order: list = []         # creation order of sigma/iota symbols
        self._memo: dict = {}
        self._count = 0

    def _fresh(self, prefix, **assumptions):
        self._count += 1
        return sympy.Dummy(f"{prefix}{self._count}", **assumptions)

    @staticmethod
    def canonical(expr):
        return sympy.expand(expr)

    def radical(self, radicand):
        key = self.canonical(radicand)
        if key.is_Rational and key < 0:
            return None  # imaginary: not a real radical, stays opaque
        sym = self.radicals.get(key)
        if sym is None:
            sym = self._fresh("sigma", positive=True)
            self.radicals[key] = sym
            self.radicand_of[sym] = key
            self.order.append(sym)
        return sym

    def inverse(self, denominator):
        key = self.canonical(denominator)
        if key.is_Number:
            if key == 0:
                raise ZeroDivisionError("division by the constant 0")
            return 1 / key
        sym = self.inverses.get(key)
        if sym is None:
            sym = self._fresh("iota")
            self.inverses[key] = sym
            self.inverse_of[sym] = key
            self.order.append(sym)
        return sym

    def __call__(self, expr):
        got = self._memo.get(expr)
        if got is not None:
            return got
        out = self._atomize(expr)
        self._memo[expr] = out
        return out

    def _atomize(self, expr):
        if expr.is_Atom:
            if expr.is_Symbol or expr.is_Rational:
                return expr
            if expr.is_Number:  # Float or other inexact number: refuse, proofs are exact
                raise TypeError(f"inexact number {expr!r} in an exact decision")
            return self._opaque(expr)
        if expr.is_Add:
            return sympy.Add(*[self(a) for a in expr.args])
        if expr.is_Mul:
            return sympy.Mul(*[self(a) for a in expr.args])
        if expr.is_Pow:
            base, exp = expr.args
            if exp.is_Integer:
                b = self(base)
                if exp >= 0:
                    return b ** exp
                return self._inverse_power(b, -int(exp))
            if exp.is_Rational and exp.q == 2:
                b = self(base)
                k = int(exp.p)
                sig = self.radical(b)
                if sig is None:
                    return self._opaque(expr)
                if k >= 0:
                    return sig ** k
                return self._inverse_power(sig, -k)
            return self._opaque(expr)
        return self._opaque(expr)

    def _inverse_power(self, b, k):
        if b.is_Number:
            if b == 0:
                raise ZeroDivisionError("division by the constant 0")
            return b ** (-k)
        return self.inverse(b) ** k

    def _opaque(self, expr):
        sym = self.opaque.get(expr)
        if sym is None:
            sym = self._fresh("opaque", real=True)
            self.opaque[expr] = sym
        return sym


def _split(P, i, key):
    """Terms of P grouped by key(exponent of generator i) -> (group, new exponent); each group a
    polynomial (one pass over P's terms)."""
    groups = {}
    for m, c in P.items():
        k, e = key(m[i])
        groups.setdefault(k, {})[m[:i] + (e,) + m[i + 1:]] = c
    return {k: P.new(d) for k, d in groups.items()}


def _iadd(acc, P):
    get = acc.get
    for m, c in P.items():
        v = get(m, 0) + c
        if v:
            acc[m] = v
        else:
            del acc[m]


def _mul(P, Q, R):
    """P·Q; a monomial Q (e.g. a power of σ) is an exponent shift."""
    if len(Q) == 1:
        ((mq, cq),) = Q.items()
        out = R.zero
        for m, c in P.items():
            out[tuple(a + b for a, b in zip(m, mq))] = c * cq
        return out
    return P * Q


def _normal_form(P, R, index, at, conv):
    """Eliminate each ι by multiplying with the matching power of its denominator, then reduce each
    σ^k to u^(k//2)·σ^(k%2), latest atom first; linear-time grouping and in-place sums.
    Returns the normal form in ring R."""
    for sym in reversed(at.order):
        if sym not in at.inverse_of or sym not in index:
            continue
        i = index[sym]
        K = P.degree(i)
        if K <= 0:
            continue
        q = conv(at.inverse_of[sym])
        parts = _split(P, i, lambda e: (e, 0))
        qpow = [R.one]
        for _ in range(K):
            qpow.append(_mul(qpow[-1], q, R))
        new = R.zero
        for e, part in parts.items():
            _iadd(new, _mul(part, qpow[K - e], R))
        P = new
    for sym in reversed(at.order):
        if sym not in at.radicand_of or sym not in index:
            continue
        i = index[sym]
        if P.degree(i) < 2:
            continue
        u = conv(at.radicand_of[sym])
        parts = _split(P, i, lambda e: (e // 2, e % 2))
        upow = [R.one]
        new = R.zero
        for k in sorted(parts):
            while len(upow) <= k:
                upow.append(_mul(upow[-1], u, R))
            _iadd(new, _mul(parts[k], upow[k], R))
        P = new
    return P


def decide_zero(expr, *, budget: float | None = None) -> Decision:
    """Decide exactly whether ``expr`` (a SymPy expression) is identically zero.

    Returns a :class:`Decision`; ``'proved'`` requires the radicands in ``decision.radicands`` to
    be positive and the denominators in ``decision.nonzero_denominators`` to be nonzero on the
    domain -- callers must check that their stated assumptions imply this.
    """
    start = time.perf_counter()
    if not isinstance(expr, sympy.Basic):
        expr = to_exact(expr, name="expr")
    try:
        with time_budget(budget):
            if expr == 0:
                return Decision("proved", "syntactically zero", seconds=time.perf_counter() - start)
            at = _Atomizer()
            poly_expr = at(expr)
            # Radicands and denominators must themselves be polynomials in the atoms.
            gens = set(poly_expr.free_symbols)
            for e in list(at.radicand_of.values()) + list(at.inverse_of.values()):
                gens |= e.free_symbols
            gens = sorted(gens, key=lambda s: (s.name, s.dummy_index if isinstance(s, sympy.Dummy) else 0))
            if not gens:  # a rational number
                status = "proved" if poly_expr == 0 else "remainder"
                return Decision(status, "exact rational arithmetic",
                                remainder=None if poly_expr == 0 else poly_expr,
                                seconds=time.perf_counter() - start)
            R, *_ = _poly_ring(gens, QQ)
            gens_index = {g: i for i, g in enumerate(gens)}

            def ring_of(e):
                return R(e)

            P = R(poly_expr)
            P = _normal_form(P, R, gens_index, at, ring_of)
            seconds = time.perf_counter() - start
            decision = Decision(
                "proved" if not P else "remainder", METHOD_ZERO, remainder=None if not P else P,
                radicands=list(at.radicand_of.values()),
                nonzero_denominators=list(at.inverse_of.values()),
                opaque=list(at.opaque.keys()), seconds=seconds)
            return decision
    except BudgetExceeded:
        return Decision("timeout", "time budget exceeded", seconds=time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------
# Exact comparison of numbers


def _iv_eval(expr, ctx):
    """Outward-rounded interval value of an exact numeric SymPy expression (rationals, +, *,
    integer and half-integer powers)."""
    if expr.is_Integer:
        return ctx.mpf(int(expr))
    if expr.is_Rational:
        return ctx.mpf(int(expr.p)) / ctx.mpf(int(expr.q))
    if expr.is_Add:
        total = ctx.mpf(0)
        for a in expr.args:
            total = total + _iv_eval(a, ctx)
        return total
    if expr.is_Mul:
        total = ctx.mpf(1)
        for a in expr.args:
            total = total * _iv_eval(a, ctx)
        return total
    if expr.is_Pow:
        base, exp = expr.args
        b = _iv_eval(base, ctx)
        if exp.is_Integer:
            e = int(exp)
            if e >= 0:
                return b ** e
            return ctx.mpf(1) / (b ** (-e))
        if exp.is_Rational and exp.q == 2:
            r = ctx.sqrt(b)
            e = int(exp.p)
            return r ** e if e >= 0 else ctx.mpf(1) / (r ** (-e))
    raise TypeError(f"cannot evaluate {expr!r} rigorously")


def differ_exactly(a, b, max_prec: int = 4096) -> bool | None:
    """True if the exact numbers ``a`` and ``b`` provably differ, False if provably equal,
    None if equality could not be excluded (both are then equal to within 2**-max_prec)."""
    a = a if isinstance(a, sympy.Basic) else to_exact(a, name="a")
    b = b if isinstance(b, sympy.Basic) else to_exact(b, name="b")
    d = sympy.Add(a, -b)
    if d.is_Rational:
        return bool(d != 0)
    prec = 64
    while prec <= max_prec:
        ctx = mpmath.iv
        old = ctx.prec
        try:
            ctx.prec = prec
            value = _iv_eval(d, ctx)
            lo, hi = value.a, value.b
            if lo > 0 or hi < 0:
                return True
        finally:
            ctx.prec = old
        prec *= 4
    # Could be zero: try an exact decision of the algebraic number.
    dec = decide_zero(d)
    if dec.proved:
        return False
    return None


def sign_exactly(x, max_prec: int = 4096) -> int | None:
    """Sign (-1, 0, 1) of an exact number, or None if it could not be determined."""
    x = x if isinstance(x, sympy.Basic) else to_exact(x, name="x")
    if x.is_Rational:
        return int(bool(x > 0)) - int(bool(x < 0))
    prec = 64
    while prec <= max_prec:
        old = mpmath.iv.prec
        try:
            mpmath.iv.prec = prec
            v = _iv_eval(x, mpmath.iv)
            if v.a > 0:
                return 1
            if v.b < 0:
                return -1
        finally:
            mpmath.iv.prec = old
        prec *= 4
    return 0 if decide_zero(x).proved else None
