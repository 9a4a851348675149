"""Exact numbers from user input (exact/numbers.py): what an ε may be, and real-only scalars.

Regression tests for issue 11.7: ε = sympy.sqrt(2) crashed deep inside check/prove
(AttributeError, "parameter sqrt(2) has no generator") and ε = sympy.I was accepted.
"""
from fractions import Fraction

import pytest
import sympy
from hypothesis import given, settings, strategies as st

from symbolic_bn.exact.numbers import to_exact, to_exact_eps

e_real = sympy.Symbol("e", real=True)


@pytest.mark.parametrize("value, expected", [
    (0, sympy.Integer(0)), (-3, sympy.Integer(-3)), (1e-5, sympy.Rational(1, 10 ** 5)),
    (Fraction(2, 7), sympy.Rational(2, 7)), ("3/4", sympy.Rational(3, 4)), ("1e-6", sympy.Rational(1, 10 ** 6)),
    (sympy.Rational(1, 3), sympy.Rational(1, 3)), (sympy.Integer(2), sympy.Integer(2)),
])
def test_rational_eps_is_exact(value, expected):
    got = to_exact_eps(value)
    assert got == expected and isinstance(got, sympy.Rational)


@pytest.mark.parametrize("symbol", [
    sympy.Symbol("e", real=True), sympy.Symbol("e", positive=True), sympy.Symbol("e", negative=True),
    sympy.Symbol("e", nonnegative=True), sympy.Symbol("k", integer=True),
])
def test_real_symbols_are_accepted_as_they_are(symbol):
    assert to_exact_eps(symbol) is symbol


@pytest.mark.parametrize("value, why", [
    (sympy.sqrt(2), "irrational"), (sympy.pi, "irrational"), (sympy.E, "irrational"),
    (sympy.I, "not real"), (1 + sympy.I, "not real"), (sympy.sqrt(-2), "not real"),
    (sympy.Symbol("e"), "not known to be real"), (sympy.Symbol("z", complex=True), "not known to be real"),
    (e_real + 1, "an expression"), (2 * e_real, "an expression"), (sympy.sqrt(e_real), "an expression"),
    (sympy.Float(0.5), "inexact SymPy Float"), (sympy.oo, "finite"), (sympy.nan, "finite"),
    (float("nan"), "finite"), (float("inf"), "finite"), (True, "bool"), ([1], "list"),
    ("1e-6; rm -rf", "decimal or fraction"), (None, "NoneType"), (1j, "complex"),
])
def test_other_eps_are_refused_in_one_line_naming_the_argument(value, why):
    with pytest.raises(ValueError) as info:
        to_exact_eps(value, name="my_eps")
    msg = str(info.value)
    assert msg.startswith("my_eps ") and why in msg and "\n" not in msg


@settings(max_examples=200, deadline=None)
@given(st.fractions(max_denominator=10 ** 12).filter(lambda f: abs(f.numerator) < 10 ** 30))
def test_fractions_are_kept_exactly(f):
    assert to_exact_eps(f) == sympy.Rational(f.numerator, f.denominator)


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_are_their_shortest_decimal(x):
    assert to_exact_eps(x) == sympy.Rational(Fraction(repr(x)).numerator, Fraction(repr(x)).denominator)


def test_to_exact_refuses_non_real_sympy_numbers_and_keeps_real_ones():
    for bad in (sympy.I, 2 - 3 * sympy.I, sympy.sqrt(-1)):
        with pytest.raises(ValueError, match="^entry must be a real number"):
            to_exact(bad, name="entry")
    assert to_exact(sympy.sqrt(2), name="entry") == sympy.sqrt(2)       # real irrationals pass
    assert to_exact(e_real + 1, name="entry") == e_real + 1             # expressions pass
