"""The engine's zero test (symbolic_bn.exact.normal): the cheap Laurent stage (only σ·ι = 1) may
only ever confirm zero; identities that need σ² = z still go through the full reduction, and
nonzero values stay nonzero."""
from fractions import Fraction

import pytest

from symbolic_bn.exact import normal
from symbolic_bn.exact.space import Space


def _setup():
    sp = Space()
    for name in ("a", "b", "e"):
        sp.variable(name)
    a, b, e = sp.var("a"), sp.var("b"), sp.var("e")
    z = a * a + b * b + e * e + 1          # positive everywhere
    s = sp.sqrt(z)
    return sp, a, b, z, s, 1 / s


def test_laurent_identities_are_zero():
    sp, a, b, z, s, i = _setup()
    assert normal.is_zero_value(sp, s * i - 1)
    assert normal.is_zero_value(sp, (a * i ** 3) * s ** 2 - a * i)


def test_identities_needing_the_radicand_still_decided():
    sp, a, b, z, s, i = _setup()
    assert normal.is_zero_value(sp, s * s - z)
    assert normal.is_zero_value(sp, i ** 2 * z - 1)
    assert normal.is_zero_value(sp, (z * i ** 3) - i)


@pytest.mark.parametrize("build", [lambda a, b, z, s, i: s - 1,
                                   lambda a, b, z, s, i: i ** 3 * z - 2 * i,
                                   lambda a, b, z, s, i: s * i - 1 + Fraction(1, 10 ** 9) * a,
                                   lambda a, b, z, s, i: i * i - z])
def test_nonzero_values_are_not_zero(build):
    sp, a, b, z, s, i = _setup()
    assert not normal.is_zero_value(sp, build(a, b, z, s, i))
