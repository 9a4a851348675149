"""Multi-dual jets: exact-order directional derivatives against closed forms, SymPy and mpmath."""
import itertools
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import sympy
from hypothesis import given, settings, strategies as st

from symbolic_bn.checks import jets
from symbolic_bn.checks.jets import Jet, directional_derivative, jet_namespace, seed, taylor
from symbolic_bn.graphs import formulas as fm
from symbolic_bn.xp import symbolic, to_sympy_array

DPS = 50
TOL = mpmath.mpf(10) ** -45


def _close(a, b, tol=TOL):
    with mpmath.workdps(DPS + 10):  # mpmath.mpf(v) rounds to the working precision
        a, b = mpmath.mpf(a), mpmath.mpf(b)
        return abs(a - b) <= tol * (1 + abs(b))


def _scalar_derivative(fn, x0, k, dps=DPS):
    """k-th derivative of a scalar function by one jet with k equal unit directions."""
    res = taylor(lambda x, xp: fn(x, xp), [np.array(x0)], [[np.array(1.0)]] * k, dps)
    return res.coefficient(None)[()]


# --------------------------------------------------------------------------- closed forms
def test_polynomial_derivatives_are_exact():
    # p(x) = x^5 - 3x^2 + 1 at x = 2: p' = 5x^4 - 6x = 68, p'' = 20x^3 - 6 = 154, p''' = 60x^2 = 240
    p = lambda x, xp: x**5 - 3 * x * x + 1  # noqa: E731
    for k, want in [(1, 68), (2, 154), (3, 240)]:
        assert _scalar_derivative(p, 2.0, k) == want
    res = taylor(p, [np.array(2.0)], [[np.array(1.0)]] * 3)
    assert res.coefficient(())[()] == 32 - 12 + 1
    assert res.coefficient((1, 3))[()] == 154  # every sub-product of directions


X = sympy.Symbol("x", positive=True)
ELEMENTARY = [
    ("sqrt", lambda x, xp: xp.sqrt(x), sympy.sqrt(X)),
    ("exp", lambda x, xp: xp.exp(x), sympy.exp(X)),
    ("log", lambda x, xp: xp.log(x), sympy.log(X)),
    ("reciprocal", lambda x, xp: 1 / x, 1 / X),
    ("real power", lambda x, xp: x ** Fraction(-3, 7), X ** sympy.Rational(-3, 7)),
    ("float power", lambda x, xp: x ** 0.75, X ** sympy.Rational(3, 4)),
    ("composite", lambda x, xp: xp.exp(xp.sqrt(x) / (1 + x * x)) * xp.log(3 * x),
     sympy.exp(sympy.sqrt(X) / (1 + X**2)) * sympy.log(3 * X)),
    ("jet power", lambda x, xp: x ** (x / 2), X ** (X / 2)),
]


@pytest.mark.parametrize("name,fn,expr", ELEMENTARY, ids=[e[0] for e in ELEMENTARY])
@pytest.mark.parametrize("x0", [Fraction(3, 8), Fraction(5, 2)])
def test_elementary_functions_match_sympy(name, fn, expr, x0):
    """Orders 1-3 against SymPy's exact derivatives evaluated at 60 digits."""
    for k in (1, 2, 3):
        want = sympy.diff(expr, X, k).subs(X, sympy.Rational(x0.numerator, x0.denominator))
        got = _scalar_derivative(fn, float(x0), k)
        assert _close(got, sympy.N(want, 60)), (name, k)


def test_agrees_with_mpmath_diff():
    """A finite-difference-free-in-spirit check: mpmath.diff (extrapolated differences at raised
    precision) on a non-polynomial function, orders 1-3."""
    f = lambda t: mpmath.exp(t) * mpmath.sqrt(1 + t * t) / (2 + mpmath.log(1 + t))  # noqa: E731
    fn = lambda x, xp: xp.exp(x) * xp.sqrt(1 + x * x) / (2 + xp.log(1 + x))  # noqa: E731
    with mpmath.workdps(DPS):
        for k in (1, 2, 3):
            want = mpmath.diff(f, mpmath.mpf("0.625"), k)
            assert _close(_scalar_derivative(fn, 0.625, k), want, mpmath.mpf(10) ** -40)


def test_mixed_partials_of_a_monomial():
    # f(x, y) = x^2 y^3; d/dx d/dy d/dy f = 2x * 6y = 12xy at (3, 5) -> 180
    f = lambda x, y, xp: x * x * y**3  # noqa: E731
    e1 = [np.array(1.0), None]
    e2 = [None, np.array(1.0)]
    assert directional_derivative(f, [np.array(3.0), np.array(5.0)], [e1, e2, e2])[()] == 180
    assert directional_derivative(f, [np.array(3.0), np.array(5.0)], [e1, e1, e1])[()] == 0


def test_partition_counts_are_bell_numbers():
    for k, bell in [(1, 1), (2, 2), (3, 5), (4, 15)]:
        assert len(jets._partitions(k)[(1 << k) - 1]) == bell
        assert sum(len(p) for p in jets._product_pairs(k)) == 3**k


# --------------------------------------------------------------------------- a small layer
def _layer_point(seed_):
    rng = np.random.default_rng(seed_)
    x = rng.normal(size=(1, 2, 3))
    w, b = rng.normal(size=2), rng.normal(size=2)
    dirs = [[rng.normal(size=(1, 2, 3)), rng.normal(size=2), rng.normal(size=2)]
            for _ in range(3)]
    return [x, w, b], dirs


def _instance_norm(x, w, b, xp):
    return fm.instance_norm(x, w, b, Fraction(1, 10), xp)


def test_layer_third_derivative_matches_sympy_at_rational_points():
    """instance_norm (1, 2, 3): the jet's D³y[u1, u2, u3] against SymPy's exact derivative of
    y(x + t1 u1 + t2 u2 + t3 u3) in t1, t2, t3 at 0, on a rational point."""
    rng = np.random.default_rng(11)
    q = lambda shape: np.round(rng.normal(size=shape) * 8) / 8  # noqa: E731 - dyadic rationals
    x, w, b = q((1, 2, 3)), q(2), q(2)
    dirs = [[q((1, 2, 3)), q(2), q(2)] for _ in range(3)]
    t = sympy.symbols("t1:4", real=True)
    args = [to_sympy_array(p) + sum(ti * to_sympy_array(d[j]) for ti, d in zip(t, dirs))
            for j, p in enumerate((x, w, b))]
    y_sym = np.asarray(_instance_norm(*args, symbolic))
    got = directional_derivative(_instance_norm, [x, w, b], dirs)
    at0 = {ti: 0 for ti in t}
    for idx in [(0, 0, 0), (0, 1, 2), (0, 0, 1)]:
        exact = sympy.diff(y_sym[idx], *t).subs(at0)
        assert _close(got[idx], sympy.N(exact, 60)), idx
    # and the second-order coefficient of the same jet
    res = taylor(_instance_norm, [x, w, b], dirs)
    exact2 = sympy.diff(y_sym[0, 1, 1], t[0], t[2]).subs(at0)
    assert _close(res.coefficient((1, 3))[0, 1, 1], sympy.N(exact2, 60))


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 10**6), st.permutations([0, 1, 2]))
def test_symmetric_in_the_directions(seed_, perm):
    primals, dirs = _layer_point(seed_)
    a = directional_derivative(_instance_norm, primals, dirs)
    b = directional_derivative(_instance_norm, primals, [dirs[i] for i in perm])
    for u, v in zip(a.flat, b.flat):
        assert _close(u, v)


def test_sub_jets_agree_with_lower_order_jets():
    primals, dirs = _layer_point(3)
    res3 = taylor(_instance_norm, primals, dirs)
    res2 = taylor(_instance_norm, primals, dirs[:2])
    res1 = taylor(_instance_norm, primals, [dirs[1]])
    for u, v in zip(res3.coefficient((1, 2)).flat, res2.coefficient(None).flat):
        assert _close(u, v)
    for u, v in zip(res3.coefficient((2,)).flat, res1.coefficient(None).flat):
        assert _close(u, v)


def test_multilinear_in_each_direction():
    primals, dirs = _layer_point(4)
    base = directional_derivative(_instance_norm, primals, dirs)
    scaled = [dirs[0], [4 * a for a in dirs[1]], dirs[2]]  # exact in binary
    tripled = directional_derivative(_instance_norm, primals, scaled)
    for u, v in zip(base.flat, tripled.flat):
        assert _close(4 * u, v)


def test_precision_is_the_requested_one_and_global_state_is_untouched():
    before = mpmath.mp.dps
    primals, dirs = _layer_point(5)
    lo = directional_derivative(_instance_norm, primals, dirs, dps=60)
    hi = directional_derivative(_instance_norm, primals, dirs, dps=120)
    assert mpmath.mp.dps == before
    with mpmath.workdps(130):
        diffs = [abs(mpmath.mpf(u) - mpmath.mpf(v)) / (1 + abs(mpmath.mpf(v)))
                 for u, v in zip(lo.flat, hi.flat)]
    assert max(diffs) < mpmath.mpf(10) ** -57
    assert max(diffs) > 0  # 60 digits really are 60, not 120


# --------------------------------------------------------------------------- the namespace
def test_sums_are_exact_and_rounded_once():
    xp = jet_namespace(1, 30)
    a = xp.asarray(np.array([1e16, 1.0, -1e16]))
    assert xp.sum(a)[()].primal == 1  # NumPy's float sum gives 0
    assert xp.mean(xp.asarray([1, 2]))[()].primal == Fraction(3, 2)


def test_floats_are_their_exact_binary_values():
    xp = jet_namespace(1, 60)
    c = xp.constant(0.1).primal
    assert c == mpmath.mpf(0.1)
    with mpmath.workdps(60):
        assert c != mpmath.mpf(1) / 10
    assert xp.constant(Fraction(1, 10)).primal != c


def test_namespace_functions_and_shapes():
    xp = jet_namespace(2, 50)
    x = seed([np.arange(6.0).reshape(2, 3) + 1], [[np.ones((2, 3))], [np.ones((2, 3))]])[0]
    v = xp.var(x, axis=1, keepdims=True)
    assert v.shape == (2, 1)
    assert _close(3 * v[0, 0].primal, 2)
    assert v[0, 0].coefficient((1,)) == 0  # adding a constant does not change the variance
    s = xp.std(x, axis=(0, 1))
    assert s.shape == ()
    assert xp.reshape(x, (3, 2)).shape == (3, 2)
    assert xp.transpose(x).shape == (3, 2)
    assert xp.moveaxis(x, 0, 1).shape == (3, 2)
    assert xp.expand_dims(x, 0).shape == (1, 2, 3)
    assert xp.concatenate([x, x]).shape == (4, 3)
    e = xp.exp(xp.log(x))
    assert _close(e[1, 2].primal, 6) and _close(e[1, 2].coefficient((1, 2)), 0)
    p = xp.power(x, 2)
    assert p[0, 0].coefficient((1, 2)) == 2
    with pytest.raises(AttributeError, match="xp.linalg"):
        xp.linalg


# --------------------------------------------------------------------------- what raises
def _jet(value, *tangent, k=1):
    xp = jet_namespace(k, 50)
    j = xp.constant(value)
    c = list(j.c)
    for i, t in enumerate(tangent):
        c[1 << i] = xp.constant(t).c[0]
    return Jet(c, j.prec)


@pytest.mark.parametrize("call,exc,match", [
    (lambda: _jet(-1.0, 1.0).sqrt(), ValueError, "negative"),
    (lambda: _jet(0.0, 1.0).sqrt(), ValueError, "not differentiable at 0"),
    (lambda: _jet(0.0, 1.0).log(), ValueError, "non-positive"),
    (lambda: 1 / _jet(0.0, 1.0), ZeroDivisionError, "value 0"),
    (lambda: _jet(1.0, 1.0) / 0, ZeroDivisionError, "division by zero"),
    (lambda: _jet(-2.0, 1.0) ** 0.5, ValueError, "positive value"),
    (lambda: _jet(1.0, 1.0) < 2, TypeError, "data-dependent branch"),
    (lambda: float(_jet(1.0, 1.0)), TypeError, "drop its derivative"),
    (lambda: _jet(1.0, 1.0) + _jet(1.0, 1.0, 1.0, k=2), ValueError, "mixing jets"),
    (lambda: _jet(1.0, 1.0) + float("nan"), ValueError, "non-finite"),
    (lambda: _jet(1.0, 1.0) * sympy.Symbol("a"), TypeError, "cannot enter a jet"),
    (lambda: _jet(1.0, 1.0) + "1", TypeError, "cannot enter a jet"),
    (lambda: jet_namespace(9), ValueError, "k"),
    (lambda: jet_namespace(1, 0), ValueError, "dps"),
    (lambda: seed([np.ones(2)], [[np.ones(3)]]), ValueError, r"directions\[0\]\[0\]"),
    (lambda: jets.subset_mask((1, 1), 2), ValueError, "repeats"),
])
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_sqrt_of_an_exact_zero_without_derivatives_is_zero():
    z = _jet(0.0).sqrt()
    assert z.primal == 0 and z.coefficient((1,)) == 0


def test_exhaustive_low_order_product_rule():
    """(ab)_S = Σ_{T⊆S} a_T b_{S∖T} against a brute-force expansion with SymPy nilpotents."""
    t = sympy.symbols("t1:4")
    a_vals = [Fraction(i + 2, 3) for i in range(8)]
    b_vals = [Fraction(5 - i, 7) for i in range(8)]

    def poly(vals):
        return sum(v * sympy.Mul(*[t[i] for i in range(3) if s >> i & 1])
                   for s, v in enumerate(vals))

    prod = sympy.expand(poly(a_vals) * poly(b_vals))
    for ti in t:  # t_i^2 = 0
        prod = prod.subs(ti**2, 0)
    prod = sympy.expand(prod)
    ja = Jet(a_vals, 200)
    jb = Jet(b_vals, 200)
    jc = ja * jb
    for s in range(8):
        mono = sympy.Mul(*[t[i] for i in range(3) if s >> i & 1])
        coeff = prod.coeff(mono) if s else prod.subs({ti: 0 for ti in t})
        if s:
            for other in itertools.chain(t):
                if other not in mono.free_symbols:
                    coeff = coeff.subs(other, 0)
        assert _close(jc.coefficient(s), sympy.N(coeff, 60))
