"""The exact decision procedure: proofs, non-proofs, exact comparisons, conversions, budgets."""
import time
from fractions import Fraction

import pytest
import sympy
from hypothesis import given, settings, strategies as st

from symbolic_bn.obligations.certificate import Certificate, Obligation
from symbolic_bn.exact.decide import (BudgetExceeded, decide_zero, differ_exactly, sign_exactly, time_budget,
                                to_exact)

x, y, e = sympy.symbols("x y e", real=True)
V = ((x - (x + y) / 2) ** 2 + (y - (x + y) / 2) ** 2) / 2


def test_radical_relations_prove_identities():
    s = sympy.sqrt(V + e)
    assert decide_zero(s ** 2 - V - e).proved
    assert decide_zero(1 / s - s / (V + e)).proved
    # the same radicand written differently (E[x²] − E[x]²) shares one σ
    s2 = sympy.sqrt((x ** 2 + y ** 2) / 2 - ((x + y) / 2) ** 2 + e)
    assert decide_zero((x - y) / s - (x - y) / s2).proved
    d = decide_zero(1 / s - s / (V + 2 * e))
    assert d.status == "remainder"
    assert d.radicands and d.nonzero_denominators


def test_opaque_subexpressions_are_arbitrary_values():
    pw = sympy.Piecewise((1 / (2 * sympy.sqrt(x)), x > 0), (0, True))
    a, b = sympy.symbols("a b")
    assert decide_zero(a * pw * b - b * (a * pw)).proved
    assert decide_zero(a * pw - 2 * a * pw).status == "remainder"


def test_inexact_floats_are_refused():
    with pytest.raises(TypeError, match="inexact"):
        decide_zero(x - sympy.Float(0.5) * x)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-5, 5), min_size=4, max_size=4))
def test_polynomial_identities_and_non_identities(c):
    p = sum(ci * x ** i for i, ci in enumerate(c))
    assert decide_zero(sympy.expand(p * (x + y)) - p * x - p * y).proved
    assert decide_zero(p * (x + y) - p * x).proved == (all(ci == 0 for ci in c))


def test_differ_exactly_and_sign():
    assert differ_exactly(sympy.Rational(1, 3), sympy.Rational(2, 6)) is False
    assert differ_exactly(sympy.sqrt(2), sympy.Rational(141421356, 10 ** 8)) is True
    assert differ_exactly(sympy.sqrt(2) * sympy.sqrt(3), sympy.sqrt(6)) is False
    assert sign_exactly(sympy.sqrt(2) - sympy.Rational(3, 2)) == -1
    assert sign_exactly(sympy.sqrt(10 ** 12 + 1) - 10 ** 6) == 1
    assert [sign_exactly(sympy.Integer(v)) for v in (-4, 0, 3)] == [-1, 0, 1]
    assert sign_exactly(sympy.Rational(-1, 3)) == -1


def test_to_exact_conversions():
    assert to_exact(1e-6) == sympy.Rational(1, 10 ** 6)
    assert to_exact("3/4") == sympy.Rational(3, 4)
    assert to_exact(Fraction(1, 7)) == sympy.Rational(1, 7)
    for bad, exc, match in [(float("nan"), ValueError, "finite"), ("1+1", ValueError, "decimal or fraction"),
                            ("1e-99999999", ValueError, "exponent at most"), ("١٥", ValueError, "ASCII"),
                            ("1" * 101, ValueError, "at most 100"), (sympy.Float(0.5), ValueError, "inexact"),
                            (10 ** 2000, ValueError, "too large"), ("1/0", ValueError, "decimal or fraction"),
                            ("__import__('os')", ValueError, "decimal or fraction"), (True, TypeError, "bool"),
                            ([1], TypeError, "must be")]:
        with pytest.raises(exc, match=match):
            to_exact(bad)


def test_time_budget_nests_without_extending():
    # The inner 1000 s must not extend the outer 0.2 s.  The loop ends by itself after 30 s, so a
    # budget that extends makes pytest.raises fail (instead of the test hanging); no time is asserted.
    with pytest.raises(BudgetExceeded):
        with time_budget(0.2):
            with time_budget(1000):
                t = time.perf_counter()
                while time.perf_counter() - t < 30:
                    pass


def test_certificate_invariants():
    with pytest.raises(ValueError, match="counterexample"):
        Obligation(name="a", statement="s", status="failed", method="m")
    with pytest.raises(ValueError, match="status"):
        Obligation(name="a", statement="s", status="maybe", method="m")
    cert = Certificate("empty")
    assert not cert.ok  # nothing proved is not OK
    cert.add(Obligation(name="a", statement="s", status="proved", method="m"))
    assert cert.ok and cert["a"].proved and "1 proved" in cert.summary()
    with pytest.raises(KeyError):
        cert["b"]
