"""Number conversion rules of the SymPy and mpmath namespaces: what a Python/NumPy number becomes.

Floats (read this before cross-checking)
----------------------------------------
* Symbolic namespace: a float is the decimal it prints as -- its shortest round-trip ``repr`` -- so
  ``1e-6`` is exactly 10^-6, as TorchLean's real-number ``epsilon`` is.  A ``numpy.float32`` entry is
  read through float32's own shortest repr (``float32(0.1)`` -> 1/10).  ``to_sympy_array(...,
  floats='exact')`` gives the exact binary value instead.
* mpmath namespace: a float is its exact binary value (``mpf(float)`` is exact; float64/float32
  values are never rounded, even below 16 digits), i.e. the number NumPy computes with.
  ``to_mpf_array(..., floats='decimal')`` reads the decimal instead.
* Therefore the *same Python float* is a slightly different number in the two exact namespaces
  (``1e-6`` differs from the double nearest to it by ~5e-23).  For cross-checks at 1e-45 pass
  ``fractions.Fraction`` values (or strings, to the converters) to both.
* ``Fraction``/``sympy.Rational`` values are exact symbolically and correctly rounded at ``dps`` in
  mpmath.  Strings are parsed strictly with ``fractions.Fraction(str)`` (``'1e-6'``, ``'1/3'``),
  never with ``sympify``/``eval``.  NaN and infinities are rejected with ``ValueError`` everywhere.

The same rules serve two modes: ``operand=True`` is the stricter one for values met in arithmetic
(no strings; no mpmath values in the symbolic namespace), ``operand=False`` the explicit
conversion of ``to_sympy_array`` / ``to_mpf_array`` (:mod:`symbolic_bn.xp.sympy_namespace`,
:mod:`symbolic_bn.xp.mpf_namespace`).
"""
from __future__ import annotations

import numbers
from decimal import Decimal
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
import sympy
from mpmath.libmp import fnan, finf, fninf, from_int, from_man_exp, from_rational

# one error class for every namespace (the exact engine's): the message names the operation
from ..exact.errors import UnsupportedOperation

FLOAT_MODES = ("decimal", "exact")


def _check_float_mode(floats: str) -> None:
    if floats not in FLOAT_MODES:
        raise ValueError(f"floats must be one of {FLOAT_MODES}, got {floats!r}")


def _float_fraction(v: Any, floats: str) -> Fraction:
    """A finite Python/NumPy float as a Fraction: shortest decimal repr, or exact binary value."""
    if not np.isfinite(v):
        raise ValueError(f"cannot convert non-finite float {v!r} to an exact or mpmath value")
    if floats == "exact":
        p, q = v.as_integer_ratio()
        return Fraction(int(p), int(q))
    # str() of a Python float or a NumPy float scalar is its shortest round-trip repr
    # (float32 values use float32's repr, so float32(0.1) reads as 1/10).
    return Fraction(str(v))


def _parse_str(s: str) -> Fraction:
    """Strict exact parse of a numeric string (``'1e-6'``, ``'-3/4'``); never sympify/eval."""
    try:
        return Fraction(s)
    except (ValueError, ZeroDivisionError) as exc:
        raise ValueError(
            f"cannot parse {s!r} as an exact number (accepted: integers, decimals such as "
            f"'1e-6', fractions such as '1/3'; parsed with fractions.Fraction): {exc}"
        ) from None


def _is_mpmath_value(v: Any) -> bool:
    return hasattr(v, "_mpf_") and not isinstance(v, sympy.Basic)


def _is_complex(v: Any) -> bool:
    return isinstance(v, (complex, np.complexfloating)) or hasattr(v, "_mpc_")


def _sympy_scalar(v: Any, floats: str = "decimal", *, operand: bool = False) -> sympy.Expr:
    """Convert one value to an exact SymPy expression.

    ``operand=True`` is the stricter mode used for values met in arithmetic (no strings, no
    mpmath values); ``operand=False`` is the explicit conversion of ``to_sympy_array``.
    """
    if isinstance(v, sympy.Basic):
        if not isinstance(v, sympy.Expr):
            raise TypeError(f"{v!r} ({type(v).__name__}) is not a SymPy number or expression")
        if v.has(sympy.Float):
            raise ValueError(
                f"{v} contains an inexact sympy.Float; pass Rationals, Fractions or strings "
                "(floats are read by the namespace convention)"
            )
        return v
    if isinstance(v, (bool, np.bool_, int, np.integer)):
        return sympy.Integer(int(v))
    if isinstance(v, (float, np.floating)):
        f = _float_fraction(v, floats)
        return sympy.Rational(f.numerator, f.denominator)
    if isinstance(v, Fraction):
        return sympy.Rational(v.numerator, v.denominator)
    if isinstance(v, Decimal):
        if not v.is_finite():
            raise ValueError(f"cannot convert non-finite Decimal {v!r} to an exact value")
        f = Fraction(v)
        return sympy.Rational(f.numerator, f.denominator)
    if isinstance(v, numbers.Rational):  # e.g. gmpy2.mpq
        return sympy.Rational(int(v.numerator), int(v.denominator))
    if isinstance(v, str):
        if operand:
            raise TypeError(f"a string ({v!r}) cannot be an arithmetic operand; convert it first")
        f = _parse_str(v)
        return sympy.Rational(f.numerator, f.denominator)
    if _is_complex(v):
        raise UnsupportedOperation(f"complex value {v!r}: the namespaces model real numbers only")
    if _is_mpmath_value(v):
        if operand:
            raise UnsupportedOperation(
                f"mixing the mpmath value {v!r} into the symbolic namespace: it is a rounded "
                "value; convert it explicitly with to_sympy_array(...) if that is intended"
            )
        t = v._mpf_
        if t in (fnan, finf, fninf):
            raise ValueError(f"cannot convert non-finite mpf {v!r} to an exact value")
        sign, man, exp, _ = t
        val = sympy.Integer(int(man)) * sympy.Integer(2) ** int(exp)
        return -val if sign else val
    if v is None:
        raise TypeError("None is not a number (an uninitialised object-array entry?)")
    raise TypeError(f"cannot convert {type(v).__name__} {v!r} to an exact SymPy number")


def _dyadic(p: int, q: int):
    """Exact mpf tuple of p/q when q is a power of two, else None."""
    if q & (q - 1) == 0:
        return from_man_exp(p, -(q.bit_length() - 1))
    return None


def _mpf_tuple(v: Any, prec: int, floats: str = "exact", *, operand: bool = False):
    """Convert one value to an mpf tuple.

    Ints, floats (in 'exact' mode) and other dyadic rationals are kept exactly (never rounded);
    other rationals are correctly rounded to ``prec`` bits.  Returns NotImplemented for types
    that are not numbers (so that Python can try the other operand).
    """
    # isinstance first: the namespace's own entries, the common case, skip the duck-typed tests
    if isinstance(v, mpmath.mpf) or (_is_mpmath_value(v) and not _is_complex(v)):
        t = v._mpf_
        if t in (fnan, finf, fninf):
            raise ValueError(f"non-finite mpf value {v!r} is not accepted")
        return t
    if isinstance(v, (bool, np.bool_, int, np.integer)):
        return from_int(int(v))
    if isinstance(v, (float, np.floating)):
        f = _float_fraction(v, floats)
        p, q = f.numerator, f.denominator
    elif isinstance(v, Fraction):
        p, q = v.numerator, v.denominator
    elif isinstance(v, sympy.Basic):
        if isinstance(v, sympy.Rational):
            p, q = int(v.p), int(v.q)
        elif isinstance(v, sympy.Float):
            t = v._mpf_
            if t in (fnan, finf, fninf):
                raise ValueError(f"non-finite value {v!r} is not accepted")
            return t
        else:
            raise UnsupportedOperation(
                f"the SymPy expression {v} cannot enter the mpmath namespace: it is not a "
                "rational number (evaluate it first, e.g. with to_mpf_array(sympy.N(e, dps)))"
            )
    elif isinstance(v, Decimal):
        if not v.is_finite():
            raise ValueError(f"cannot convert non-finite Decimal {v!r}")
        f = Fraction(v)
        p, q = f.numerator, f.denominator
    elif isinstance(v, numbers.Rational):
        p, q = int(v.numerator), int(v.denominator)
    elif isinstance(v, str):
        if operand:
            return NotImplemented
        f = _parse_str(v)
        p, q = f.numerator, f.denominator
    elif _is_complex(v):
        raise UnsupportedOperation(f"complex value {v!r}: the namespaces model real numbers only")
    else:
        if operand:
            return NotImplemented
        if v is None:
            raise TypeError("None is not a number (an uninitialised object-array entry?)")
        raise TypeError(f"cannot convert {type(v).__name__} {v!r} to an mpmath number")
    exact = _dyadic(p, q)
    if exact is not None:
        return exact
    return from_rational(p, q, prec, "n")
