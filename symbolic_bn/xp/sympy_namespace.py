"""The SymPy namespace ``symbolic``: exact NumPy object arrays of SymPy expressions, for display.

The SymPy namespace does not decide anything
-------------------------------------------
SymPy simplifies while it builds (``a*b/(a*c)`` becomes ``b/c``, ``sqrt(u)*sqrt(u)`` becomes ``u``),
hiding divisions and square roots the code carried out.  So no verdict of symbolic-bn is decided
on this namespace: checks and proofs run users' code on the exact engine
(:mod:`symbolic_bn.xp.engine`), whose atoms keep every side condition.  This namespace is for
display, for evaluating closed forms at exact points, and as the independent side of tests.

Building and converting arrays: :func:`symbols_array`, :func:`to_sympy_array` /
:func:`to_sympy` (rules in :mod:`symbolic_bn.xp.conversions`), :func:`bind` and
:func:`xreplace_array` for exact substitution.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Mapping

import numpy as np
import sympy

from ..exact.errors import UnsupportedOperation
from .array_api import _ExactNamespace
from .arrays import SymbolicArray, _namespace_of_array
from .conversions import _check_float_mode, _sympy_scalar
from .routing import _COMPARISONS


class SymbolicNamespace(_ExactNamespace):
    """Exact namespace: object arrays of SymPy expressions (see the module docstring).

    Floats are read as their shortest decimal repr; means divide by ``Rational(1, n)``; sums are
    single ``sympy.Add`` nodes; nothing is ``expand``-ed or ``simplify``-ed.
    """

    name = "symbolic"
    is_exact = True
    _array_type = SymbolicArray
    _promise = "exactly"
    _cast_loss = "replace exact values by rounded floats"

    def __repr__(self):
        return "SymbolicNamespace()"

    def __reduce__(self):
        return "symbolic"  # the module-level instance

    def __eq__(self, other):
        return isinstance(other, SymbolicNamespace)

    def __hash__(self):
        return hash("SymbolicNamespace")

    @property
    def pi(self):
        return sympy.pi

    @property
    def e(self):
        return sympy.E

    def _scalar(self, v, floats="decimal"):
        return _sympy_scalar(v, floats)

    def _operand_scalar(self, v):
        return _sympy_scalar(v, "decimal", operand=True)

    @staticmethod
    def _divide_by_count(total, n):
        return total * sympy.Rational(1, n)

    @staticmethod
    def _is_zero(v):
        return v is sympy.S.Zero or (isinstance(v, (int, Fraction)) and v == 0)

    @staticmethod
    def _is_negative_number(v):
        return isinstance(v, sympy.Number) and v.is_negative

    @staticmethod
    def _is_positive_number(v):
        return isinstance(v, sympy.Number) and v.is_positive

    # elementwise
    @staticmethod
    def _fn_sqrt(v):
        if isinstance(v, sympy.Number) and v.is_negative:
            raise ValueError(
                f"sqrt of the negative number {v}: not real (NumPy returns nan; TorchLean's "
                "sqrtSpec clamps at 0 -- write xp.sqrt(xp.maximum(z, 0)) for that)"
            )
        return sympy.sqrt(v)

    @staticmethod
    def _fn_exp(v):
        return sympy.exp(v)

    @staticmethod
    def _fn_log(v):
        if isinstance(v, sympy.Number) and not v.is_positive:
            raise ValueError(f"log of the non-positive number {v}: not a real number")
        return sympy.log(v)

    @staticmethod
    def _fn_abs(v):
        return sympy.Abs(v)

    @staticmethod
    def _fn_square(v):
        return v**2

    @staticmethod
    def _fn_reciprocal(v):
        return 1 / v

    @staticmethod
    def _fn_conjugate(v):
        # numpy's a.var() calls conjugate; rebuilding a large real expression is wasted work
        if v.is_extended_real:
            return v
        return sympy.conjugate(v)

    @staticmethod
    def _fn_max2(a, b):
        return sympy.Max(a, b)

    @staticmethod
    def _fn_min2(a, b):
        return sympy.Min(a, b)

    @staticmethod
    def _fn_clip(v, lo, hi):
        return sympy.Min(sympy.Max(v, lo), hi)

    def _compare(self, name, a, b):
        symbol, rel = _COMPARISONS[name]

        def decide(x, y):
            try:
                r = rel(x, y)
            except TypeError as exc:
                raise UnsupportedOperation(f"comparison {x} {symbol} {y}: {exc}") from None
            if r is sympy.true:
                return True
            if r is sympy.false:
                return False
            raise UnsupportedOperation(
                f"comparison ({name}) {x} {symbol} {y}: SymPy cannot decide it from the "
                "symbols' assumptions; data-dependent branching cannot be checked "
                "symbolically (use xp.maximum/xp.minimum, or substitute values first)"
            )

        res = np.frompyfunc(decide, 2, 1)(a, b)
        if isinstance(res, np.ndarray):
            return res.astype(bool)
        return np.bool_(res)

    # reductions
    @staticmethod
    def _sum_terms(terms):
        return sympy.Add(*terms)

    @staticmethod
    def _prod_terms(terms):
        return sympy.Mul(*terms)

    @staticmethod
    def _max_terms(terms):
        return sympy.Max(*terms)

    @staticmethod
    def _min_terms(terms):
        return sympy.Min(*terms)

    def _where_error(self, v):
        return UnsupportedOperation(
            f"xp.where: data-dependent branching cannot be checked symbolically; the condition "
            f"entry {v!r} is not a concrete boolean.  Rewrite the branch with xp.maximum/"
            "xp.minimum (sympy Max/Min) or prove each case separately"
        )


symbolic = SymbolicNamespace()


def symbols_array(prefix: str, shape, real: bool = True, **assumptions) -> SymbolicArray:
    """Object array of SymPy Symbols named ``{prefix}_{i}_{j}_...`` in row-major order.

    ``real=True`` (default) declares the symbols real; ``real=False`` adds no realness
    assumption.  Further SymPy assumptions (``positive=True``, ...) pass through.  A 0-d shape
    gives the single symbol ``prefix``.
    """
    if not isinstance(prefix, str) or not prefix:
        raise ValueError("prefix must be a non-empty string")
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    if real:
        assumptions.setdefault("real", True)
    out = np.empty(shape, dtype=object)
    for idx in np.ndindex(*shape):
        name = "_".join([prefix, *map(str, idx)])
        out[idx] = sympy.Symbol(name, **assumptions)
    return symbolic._wrap(out)


def to_sympy(value, floats: str = "decimal") -> sympy.Expr:
    """One value as an exact SymPy number (conventions as :func:`to_sympy_array`)."""
    _check_float_mode(floats)
    return _sympy_scalar(value, floats)


def to_sympy_array(obj, floats: str = "decimal") -> SymbolicArray:
    """Convert numbers exactly to a :class:`SymbolicArray`.

    ints -> ``Integer``; ``Fraction``/``Decimal`` -> ``Rational``; floats -> the decimal of
    their shortest repr (``floats='decimal'``, the project convention: ``1e-6`` is 10^-6) or
    their exact binary value (``floats='exact'``); strings -> ``Fraction(str)`` (strict);
    mpf -> exact binary value; SymPy expressions are kept (``Float`` atoms are rejected).
    NaN/inf raise ``ValueError``.
    """
    _check_float_mode(floats)
    if isinstance(obj, SymbolicArray) and _namespace_of_array(obj) == symbolic:
        return obj
    return symbolic._wrap(symbolic._to_base_array(obj, lambda v: _sympy_scalar(v, floats)))


def bind(symbols, values, floats: str = "decimal") -> dict:
    """``{symbol: exact value}`` pairing two same-shape arrays entry by entry (for xreplace)."""
    sym = np.asarray(symbols.view(np.ndarray) if isinstance(symbols, np.ndarray) else symbols,
                     dtype=object)
    vals = to_sympy_array(values, floats).view(np.ndarray)
    if sym.shape != vals.shape:
        raise ValueError(f"bind: shapes differ: {sym.shape} vs {vals.shape}")
    out = {}
    for s, v in zip(sym.flat, vals.flat):
        if not isinstance(s, sympy.Symbol):
            raise TypeError(f"bind: {s!r} is not a sympy Symbol")
        out[s] = v
    return out


def xreplace_array(arr, mapping: Mapping) -> SymbolicArray:
    """Exact substitution ``e.xreplace(mapping)`` on every entry (values converted exactly)."""
    m = {k: _sympy_scalar(v) for k, v in mapping.items()}
    base = to_sympy_array(arr).view(np.ndarray)
    return symbolic._wrap(symbolic._convert_object_array(base, lambda e: e.xreplace(m)))
