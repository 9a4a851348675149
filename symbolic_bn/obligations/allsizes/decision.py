"""Exact decision of a normal form of the term language, on the exact engine.

Decisions are exact and made by the exact engine (:mod:`symbolic_bn.exact`): the difference of
both sides is brought to normal form; if it is not already the zero polynomial, :func:`decide_nf`
moves it to an engine :class:`~symbolic_bn.exact.space.Space` -- input atoms, deltas, named sums,
the sizes (declared positive) and ε as variables, each σ an engine square-root atom of its
radicand, each ι an engine inverse atom of its base -- and :func:`symbolic_bn.exact.normal.
is_zero_value` decides (σ² = u, σ·σ⁻¹ = 1, size·size⁻¹ = 1, denominators cleared by their
nonzero bases).  A zero normal form is a proof; ``simplify()`` is never used.

For explicit SymPy expressions (the concrete backend's), :func:`engine_zero` decides zero and
:func:`engine_differ` decides that two exact numbers differ (the engine's exact sign).
"""
from __future__ import annotations

from fractions import Fraction

import sympy
from sympy import Add, Integer

from ...exact import normal, sign as _sign
from ...exact.convert import SympyImport
from ...exact.errors import ExactArithmeticError, UndefinedValue, UnsupportedOperation
from ...exact.space import Space
from .terms import _ATOMS, _exp_of, _kind, normalize, SIZE_SYMBOLS


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
