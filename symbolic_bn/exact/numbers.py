"""Exact numbers from what users type: ints, Fractions, floats, strict decimal strings, SymPy numbers.

Nothing goes through ``eval`` or ``sympify``.

* :func:`to_exact` -- any real scalar the engine may meet (entries, parameters, bounds): a number
  becomes an exact SymPy Rational, an exact SymPy number or expression passes through; SymPy
  numbers that are not real (``sympy.I``, ``1 + 2*I``) are refused.
* :func:`to_exact_eps` -- what an ε may be.  The exact engine works in polynomial rings over ℚ
  whose generators are the entries' symbols and ε, so ε must be **a rational number** (given as
  an int, float, Fraction, decimal/fraction string or SymPy Rational) **or a real SymPy Symbol**
  (``real=True``, or an assumption implying it such as ``positive=True``).  Irrational numbers
  (``sympy.sqrt(2)``, ``sympy.pi``), non-real numbers (``sympy.I``), Symbols without a real
  assumption and other expressions (``2*e``) are refused with a one-line ``ValueError`` naming
  the argument.
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
        if getattr(value, "is_number", False) and value.is_real is False:
            raise ValueError(f"{name} must be a real number, got {value} (not real)")
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


def to_exact_eps(value, *, name: str = "eps"):
    """An ε for the exact engine: a rational number (as :func:`to_exact` reads it, so ``1e-6``
    is exactly 10⁻⁶) or a real SymPy Symbol; anything else is a ``ValueError`` naming ``name``.

    ``None`` is not handled here: callers choose their own default (the graphs use a real symbol).
    """
    what = f"{name} must be a rational number or a real SymPy Symbol"
    if isinstance(value, sympy.Symbol):
        if value.is_real is not True:
            raise ValueError(f"{what}; the Symbol {value} is not known to be real "
                             f"(declare it as sympy.Symbol({value.name!r}, real=True))")
        return value
    if isinstance(value, sympy.Basic) and not isinstance(value, (sympy.Rational, sympy.Float)):
        if not value.has(sympy.nan, sympy.oo, -sympy.oo, sympy.zoo):
            if value.is_number and value.is_real is False:
                kind = "not real"
            elif value.is_number:
                kind = "irrational" if value.is_rational is False else "not a rational number"
            else:
                kind = "an expression, not a Symbol"
            raise ValueError(f"{what}; got {value} ({kind})")
    try:
        exact = to_exact(value, name=name)
    except TypeError:  # a bool, a list, ...: a bad value of the argument, one line
        raise ValueError(f"{what}; got {type(value).__name__} {str(value)[:40]}") from None
    if not isinstance(exact, sympy.Rational):  # pragma: no cover - to_exact returns Rationals here
        raise ValueError(f"{what}; got {exact}")
    return exact
