"""Validation of user numbers and arrays, and the number modes of the inference bounds.

**Number modes.**  Values come in two *containers*: the parameters (all five fields together) and
the box (``lo`` and ``hi`` together; ``A`` and ``c`` for ``affine``).

* A container holding only floats and ints (lists, NumPy float/int arrays) is a *float* container;
  its floats denote their exact binary float64 values.
* A container holding any ``fractions.Fraction`` or SymPy number is *exact*; floats inside it are
  read as their shortest decimal ``repr`` (``symbolic_bn.exact.decide.to_exact``: ``1e-5`` is 10⁻⁵).
* SymPy ``Float`` values (or expressions containing one) are refused: their value depends on a
  precision that rounding to a double or reading as a decimal would silently change.

Bad input (a non-number, a bool, a complex number, NaN or inf, a symbol, a non-rectangular or
non-real array) raises ``ValueError`` naming the argument (with its index) and the problem.
Signs are decided exactly (:func:`_sign`, :func:`_exact_sign`).
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import sympy

from ..exact.decide import sign_exactly, to_exact


def _is_exact_scalar(v) -> bool:
    return isinstance(v, (Fraction, sympy.Basic))


def _check_scalar(v, where: str):
    """Validate one user scalar; return it normalized (NumPy scalars become Python numbers)."""
    if isinstance(v, (bool, np.bool_)):
        raise ValueError(f"{where} must be a real number, got a bool ({v!r})")
    if isinstance(v, np.integer):
        v = int(v)
    elif isinstance(v, np.floating):
        v = float(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        if math.isnan(v):
            raise ValueError(f"{where} is NaN; every value must be a finite real number")
        if math.isinf(v):
            raise ValueError(f"{where} is {v} (not finite); every value must be finite")
        return v
    if isinstance(v, Fraction):
        return v
    if isinstance(v, sympy.Basic):
        if not isinstance(v, sympy.Expr):
            raise ValueError(f"{where} must be a real number, got {v!r}")
        if v.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo):
            raise ValueError(f"{where} = {v} is not finite; every value must be finite")
        if v.free_symbols:
            raise ValueError(f"{where} = {v} contains symbols {sorted(map(str, v.free_symbols))}; "
                             f"it must be a number")
        if v.is_extended_real is False:
            raise ValueError(f"{where} = {v} is not real")
        if v.atoms(sympy.Float):
            # A SymPy Float carries its own precision; rounding it to a double (or reading it as
            # a decimal) would silently change the value, so it is refused (as decide.to_exact).
            raise ValueError(f"{where} = {v} is an inexact SymPy Float; pass a Rational, "
                             f"Fraction (e.g. Fraction('1.5e-5') from a decimal string) or "
                             f"Python float")
        return v
    if isinstance(v, (complex, np.complexfloating)):
        raise ValueError(f"{where} must be a real number, got the complex number {v!r}")
    raise ValueError(f"{where} must be a real number (int, float, Fraction or SymPy number), "
                     f"got {type(v).__name__} {v!r}")


def _exact_of(v, exact_container: bool, where: str):
    """The exact SymPy number a validated scalar denotes in its container (see module docstring)."""
    if isinstance(v, sympy.Basic):
        return v
    if isinstance(v, float) and not exact_container:
        fr = Fraction(v)  # the binary value
        return sympy.Rational(fr.numerator, fr.denominator)
    return to_exact(v, name=where)


def _fraction_of(v, exact_container: bool, where: str) -> Fraction:
    """Like :func:`_exact_of` but as a Fraction; refuses irrational values (outward mode)."""
    if isinstance(v, Fraction):
        return v
    if isinstance(v, int):
        return Fraction(v)
    if isinstance(v, float) and not exact_container:
        return Fraction(v)
    e = _exact_of(v, exact_container, where)
    if not e.is_Rational:
        raise ValueError(f"rounding='outward' needs rational values; {where} = {e} is not "
                         f"rational (pass a Fraction/float, or use rounding='nearest' for exact "
                         f"output)")
    return Fraction(int(e.p), int(e.q))


def _sign(v) -> int | None:
    """Exact sign of an exact number: rationals directly, algebraic numbers via
    ``decide.sign_exactly`` (whose rational fast path currently raises TypeError on SymPy 1.14,
    because it subtracts SymPy booleans -- reported to the lead).  None if undecidable."""
    if isinstance(v, (int, Fraction)):
        return (v > 0) - (v < 0)
    v = v if isinstance(v, sympy.Basic) else sympy.sympify(v)
    if v.is_Rational:
        return 1 if v.p > 0 else (-1 if v.p < 0 else 0)
    try:
        return sign_exactly(v)
    except TypeError:
        return None


def _exact_sign(v, where: str) -> int:
    sgn = _sign(v)
    if sgn is None:
        raise ValueError(f"could not decide the sign of {where} = {v} exactly")
    return sgn


def _as_array(value, name: str):
    """Validate an array argument; return (array, exact_container).

    Float containers come back as float64 arrays, exact ones as object arrays of validated scalars
    (not yet converted: conversion depends on the container, see :func:`_exact_of`).
    """
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be an array of real numbers, got a string")
    if isinstance(value, np.ndarray):
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name} must be a rectangular array of real numbers ({exc})") from None
    kind = arr.dtype.kind
    if kind in "fiu":
        out = arr.astype(np.float64)
        bad = ~np.isfinite(out)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            what = "NaN" if np.isnan(out[idx]) else f"{out[idx]} (not finite)"
            raise ValueError(f"{name}{list(idx)} is {what}; every value must be finite")
        return out, False
    if kind == "b":
        raise ValueError(f"{name} must hold real numbers, got a boolean array")
    if kind == "c":
        raise ValueError(f"{name} must hold real numbers, got a complex array")
    if kind != "O":
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    flat = [_check_scalar(v, f"{name}{[int(k) for k in np.unravel_index(i, arr.shape)]}")
            for i, v in enumerate(arr.reshape(-1))]
    exact = any(_is_exact_scalar(v) for v in flat)
    if not exact:
        try:
            out = np.array([float(v) for v in flat], dtype=np.float64).reshape(arr.shape)
        except OverflowError:
            raise ValueError(f"{name} has an int too large for float64") from None
        return out, False
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(arr.shape), True


def _exact_array(arr: np.ndarray, exact_container: bool, name: str) -> np.ndarray:
    out = np.empty(arr.shape, dtype=object)
    for idx in np.ndindex(arr.shape):
        out[idx] = _exact_of(arr[idx] if exact_container else float(arr[idx]),
                             exact_container, f"{name}{list(idx)}")
    return out
