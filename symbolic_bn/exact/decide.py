"""SymPy expressions decided on the exact engine, and exact comparisons of numbers.

* :func:`decide_zero` decides whether a SymPy expression is identically zero.  It is the front
  door of the engine (:mod:`symbolic_bn.exact.space`) for callers that hold SymPy expressions
  (the inference bounds, the all-sizes certificate, counterexample checks): the expression is
  imported into a fresh :class:`~symbolic_bn.exact.space.Space` -- each free symbol a variable
  carrying the symbol's sign assumptions, ``sqrt(u)`` and half-integer powers a σ atom with
  σ² = u, negative powers an ι atom with q·ι = 1, ``exp``/``log`` their atoms, anything else
  (``Piecewise``, ``Max``, an undefined function, ``I``) an *opaque* variable, one per
  structurally equal subexpression (an identity that holds for an arbitrary value of it holds
  for its actual value) -- and the engine's normal form decides (``normal.is_zero_value``).
  A zero normal form is a proof provided the atoms' side conditions hold; they are returned
  (``radicands``: need u > 0 -- stated strictly, as the old contract said; ``nonzero_denominators``:
  need q ≠ 0) for the caller to discharge against its assumptions.  A nonzero normal form is *not*
  a disproof: callers then look for an exact counterexample with :func:`differ_exactly`.
  ``simplify()`` is never used, and SymPy's own automatic evaluation only ever happened when the
  caller built the expression.

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

from .budget import BudgetExceeded, time_budget  # noqa: F401 - re-exported
from .errors import ExactArithmeticError
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


METHOD_ZERO = ("exact normal form on the engine: sqrt(u) -> sigma with sigma^2 = u, 1/q -> iota with "
               "q*iota = 1, reduced modulo the atoms' relations; zero remainder")


def _engine_zero(expr):
    """(is zero, radicands, denominators, opaque) for a SymPy expression, on a fresh Space."""
    from .convert import SympyImport, to_sympy
    from .normal import is_zero_value
    from .space import Space
    from .value import Value
    space = Space(name="decide_zero")
    importer = SympyImport(space)
    importer.declare(expr)
    space.freeze()
    value = importer(expr)
    zero = value.is_syntactic_zero() or is_zero_value(space, value)
    radicands, denominators = [], []
    for atom in space.atoms:
        argument = to_sympy(Value(space, atom.home, atom.argument))
        if atom.kind == "sqrt":
            radicands.append(argument)
        elif atom.kind == "inv" and atom.base is None:  # 1/σ needs only σ's radicand > 0
            denominators.append(argument)
        elif atom.kind == "log":
            radicands.append(argument)
    return zero, radicands, denominators, list(importer.opaque)


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
            floats = expr.atoms(sympy.Float)
            if floats:
                raise TypeError(f"inexact number {min(floats, key=str)!r} in an exact decision "
                                "(pass Fractions or sympy.Rational)")
            if expr.is_Rational:
                return Decision("remainder", "exact rational arithmetic", remainder=expr,
                                seconds=time.perf_counter() - start)
            try:
                zero, radicands, denominators, opaque = _engine_zero(expr)
            except (ExactArithmeticError, ZeroDivisionError, TypeError, ValueError) as exc:
                # the engine refuses what it cannot represent exactly (an inexact Float, a
                # division by an exact zero): not a proof
                return Decision("remainder", f"not decided on the engine: {exc}",
                                remainder=expr, seconds=time.perf_counter() - start)
            return Decision("proved" if zero else "remainder", METHOD_ZERO,
                            remainder=None if zero else expr, radicands=radicands,
                            nonzero_denominators=denominators, opaque=opaque,
                            seconds=time.perf_counter() - start)
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
