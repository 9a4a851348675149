"""Exact numbers from what users type: ints, Fractions, floats, strict decimal strings, SymPy numbers.

Nothing goes through ``eval`` or ``sympify``.
"""
from __future__ import annotations

import re
from fractions import Fraction

import sympy


_DECIMAL_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([+-]?[0-9]+))?")
_FRACTION_RE = re.compile(r"[+-]?[0-9]+/[0-9]+")
#: Limits on user-supplied exact numbers, so that a typo cannot make a decision run for hours.
MAX_TEXT_LENGTH = 100
MAX_EXPONENT = 1000
MAX_BITS = 4096


def _bounded(r: sympy.Rational, name: str) -> sympy.Rational:
    if int(r.p).bit_length() > MAX_BITS or int(r.q).bit_length() > MAX_BITS:
        raise ValueError(f"{name} is too large an exact number (more than {MAX_BITS} bits)")
    return r


def to_exact(value, *, name: str = "value"):
    """Convert a user-supplied scalar to an exact SymPy number without eval/sympify.

    ints -> Integer; Fraction -> Rational; float -> its shortest round-trip decimal (``repr``), so
    ``1e-6`` is exactly 10**-6; str -> an ASCII decimal (``"1e-6"``) or fraction (``"3/4"``) of at
    most 100 characters and exponent at most 1000 in size, parsed by ``fractions.Fraction``; exact
    SymPy numbers and expressions pass through.  NaN, infinities and inexact SymPy ``Float`` values
    are refused (a Float's intended value is ambiguous: pass a Rational or a Python float).
    """
    if isinstance(value, sympy.Basic):
        if value.has(sympy.nan, sympy.oo, -sympy.oo, sympy.zoo):
            raise ValueError(f"{name} must be finite, got {value}")
        if isinstance(value, sympy.Float) or value.atoms(sympy.Float):
            raise ValueError(f"{name} is an inexact SymPy Float ({value}); pass a Rational, Fraction, "
                             f"decimal string or Python float")
        if isinstance(value, sympy.Rational):
            return _bounded(value, name)
        return value
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got a bool")
    if isinstance(value, int):
        return _bounded(sympy.Integer(value), name)
    if isinstance(value, Fraction):
        return _bounded(sympy.Rational(value.numerator, value.denominator), name)
    if isinstance(value, float) or type(value).__name__ in ("float32", "float64", "float16"):
        f = float(value)
        if f != f or f in (float("inf"), float("-inf")):
            raise ValueError(f"{name} must be finite, got {f}")
        fr = Fraction(repr(f))
        return sympy.Rational(fr.numerator, fr.denominator)
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return to_exact(value.item(), name=name)
    if isinstance(value, str):
        text = value.strip()
        bad = (f"{name} must be a decimal or fraction like '1e-6' or '3/4' (ASCII digits, at most "
               f"{MAX_TEXT_LENGTH} characters, exponent at most {MAX_EXPONENT}), got {value[:40]!r}")
        if len(text) > MAX_TEXT_LENGTH:
            raise ValueError(bad)
        m = _DECIMAL_RE.fullmatch(text)
        if m is None and _FRACTION_RE.fullmatch(text) is None:
            raise ValueError(bad)
        if m is not None and m.group(1) is not None and abs(int(m.group(1))) > MAX_EXPONENT:
            raise ValueError(bad)
        try:
            fr = Fraction(text)
        except (ValueError, ZeroDivisionError):
            raise ValueError(bad) from None
        return _bounded(sympy.Rational(fr.numerator, fr.denominator), name)
    raise TypeError(f"{name} must be an int, float, Fraction, decimal string or SymPy number, "
                    f"got {type(value).__name__}")
