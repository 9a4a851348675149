"""Tests for symbolic_bn.xp: one NumPy-style BatchNorm function, three number systems.

Three independently written BatchNorm implementations (forward and backward) run unchanged with
``numpy``, the exact SymPy namespace and the mpmath namespace.  Their symbolic results, evaluated
exactly at rational points, equal an independent exact reference; the mpmath results agree to
~1e-45 and NumPy float64 to ~1e-12.  The remaining tests pin the conventions: exact means, float
conversion, what raises, and that mpmath precision is local to the namespace.
"""
from __future__ import annotations

import pickle
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache

import mpmath
import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from mpmath.libmp import dps_to_prec, from_rational

from symbolic_bn import xp as X
from symbolic_bn.xp import UnsupportedOperation

S = X.symbolic
M50 = X.mpmath_namespace(50)

SLOW = settings(deadline=None, max_examples=25,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---------------------------------------------------------------------------------------------
# Three user implementations, written as ordinary NumPy code against ``xp``
# ---------------------------------------------------------------------------------------------
def forward_two_pass(x, gamma, beta, eps, xp):
    """Two-pass variance with xp.mean(..., axis=(1, 2), keepdims=True)."""
    mu = xp.mean(x, axis=(1, 2), keepdims=True)
    xc = x - mu
    var = xp.mean(xc * xc, axis=(1, 2), keepdims=True)
    inv_std = 1 / xp.sqrt(var + eps)
    return xc * inv_std * xp.reshape(gamma, (-1, 1, 1)) + xp.reshape(beta, (-1, 1, 1))


def backward_two_pass(x, gamma, beta, grad_out, eps, xp):
    mu = xp.mean(x, axis=(1, 2), keepdims=True)
    xc = x - mu
    var = xp.mean(xc * xc, axis=(1, 2), keepdims=True)
    inv_std = 1 / xp.sqrt(var + eps)
    xhat = xc * inv_std
    dbeta = xp.sum(grad_out, axis=(1, 2))
    dgamma = xp.sum(grad_out * xhat, axis=(1, 2))
    ghat = grad_out * xp.reshape(gamma, (-1, 1, 1))
    dx = inv_std * (ghat - xp.mean(ghat, axis=(1, 2), keepdims=True)
                    - xhat * xp.mean(ghat * xhat, axis=(1, 2), keepdims=True))
    return dx, dgamma, dbeta


def forward_flat(x, gamma, beta, eps, xp):
    """x.reshape(C, -1) and .sum(axis=1) method calls, as TorchLean's C x N matrix."""
    C, H, W = x.shape
    N = H * W
    x2 = x.reshape(C, -1)
    mean = x2.sum(axis=1) / N
    centered = x2 - mean[:, None]
    var = (centered ** 2).sum(axis=1) / N
    std = xp.sqrt(var + eps)
    y2 = centered / std[:, None] * gamma[:, None] + beta[:, None]
    return y2.reshape(C, H, W)


def backward_flat(x, gamma, beta, grad_out, eps, xp):
    """TorchLean's Spec.batchNorm2dBackward order: ((N*ghat - S1 - xhat*S2) * r) / N."""
    C, H, W = x.shape
    N = H * W
    x2 = x.reshape(C, -1)
    g = grad_out.reshape(C, -1)
    mean = x2.sum(axis=1) / N
    centered = x2 - mean[:, None]
    var = (centered ** 2).sum(axis=1) / N
    r = 1 / xp.sqrt(var + eps)
    xhat = centered * r[:, None]
    ghat = g * gamma[:, None]
    s1 = ghat.sum(axis=1)
    s2 = (ghat * xhat).sum(axis=1)
    dx = ((N * ghat - s1[:, None] - xhat * s2[:, None]) * r[:, None]) / N
    return dx.reshape(C, H, W), (g * xhat).sum(axis=1), g.sum(axis=1)


def forward_methods(x, gamma, beta, eps, xp):
    """gamma[:, None, None], x.mean/x.var methods and a float exponent -0.5."""
    mu = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)
    return gamma[:, None, None] * (x - mu) * (var + eps) ** -0.5 + beta[:, None, None]


def backward_methods(x, gamma, beta, grad_out, eps, xp):
    N = x.shape[1] * x.shape[2]
    mu = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)
    r = (var + eps) ** -0.5
    xhat = (x - mu) * r
    dgamma = (grad_out * xhat).sum(axis=(1, 2))
    dbeta = grad_out.sum(axis=(1, 2))
    dx = gamma[:, None, None] * r / N * (N * grad_out - dbeta[:, None, None]
                                         - xhat * dgamma[:, None, None])
    return dx, dgamma, dbeta


IMPLS = {
    "two_pass": (forward_two_pass, backward_two_pass),
    "flat": (forward_flat, backward_flat),
    "methods": (forward_methods, backward_methods),
}
SHAPES = [(1, 1, 2), (2, 1, 1), (1, 2, 2), (2, 1, 3), (2, 2, 2), (1, 3, 3)]


# ---------------------------------------------------------------------------------------------
# Exact references that use neither NumPy nor the namespaces
# ---------------------------------------------------------------------------------------------
def reference_sympy(x, gamma, beta, g, eps):
    """Closed form (torchlean.md §5.4) in pure Python on Fractions, with sympy.sqrt for std."""
    C = len(x)
    ys, dxs, dgs, dbs = [], [], [], []
    for c in range(C):
        vals = [v for row in x[c] for v in row]
        gs = [v for row in g[c] for v in row]
        n = len(vals)
        mu = sum(vals, Fraction(0)) / n
        var = sum(((v - mu) ** 2 for v in vals), Fraction(0)) / n
        r = 1 / sympy.sqrt(sympy.Rational(var + eps))
        xhat = [sympy.Rational(v - mu) * r for v in vals]
        ga, be = sympy.Rational(gamma[c]), sympy.Rational(beta[c])
        ys.append([ga * xh + be for xh in xhat])
        s1 = sum(gs, Fraction(0))
        s2 = sympy.Add(*[sympy.Rational(gp) * xh for gp, xh in zip(gs, xhat)])
        dxs.append([ga * r / n * (n * sympy.Rational(gp) - sympy.Rational(s1) - xh * s2)
                    for gp, xh in zip(gs, xhat)])
        dgs.append(s2)
        dbs.append(sympy.Rational(s1))
    return ys, dxs, dgs, dbs


def reference_fraction(x, gamma, beta, g, eps, std):
    """Pure-Fraction closed form when every channel's var + eps == std**2 (no surds at all)."""
    ys, dxs, dgs, dbs = [], [], [], []
    for c in range(len(x)):
        vals = [v for row in x[c] for v in row]
        gs = [v for row in g[c] for v in row]
        n = len(vals)
        mu = sum(vals, Fraction(0)) / n
        var = sum(((v - mu) ** 2 for v in vals), Fraction(0)) / n
        assert var + eps == std * std
        xhat = [(v - mu) / std for v in vals]
        ys.append([gamma[c] * xh + beta[c] for xh in xhat])
        s1 = sum(gs, Fraction(0))
        s2 = sum((gp * xh for gp, xh in zip(gs, xhat)), Fraction(0))
        dxs.append([gamma[c] / std / n * (n * gp - s1 - xh * s2) for gp, xh in zip(gs, xhat)])
        dgs.append(s2)
        dbs.append(s1)
    return ys, dxs, dgs, dbs


def _flat_results(y, dx, dg, db):
    return [list(np.asarray(y, dtype=object).ravel()), list(np.asarray(dx, dtype=object).ravel()),
            list(np.asarray(dg, dtype=object).ravel()), list(np.asarray(db, dtype=object).ravel())]


def _flat_reference(ref):
    ys, dxs, dgs, dbs = ref
    return [[v for ch in ys for v in ch], [v for ch in dxs for v in ch], list(dgs), list(dbs)]


@lru_cache(maxsize=None)
def symbolic_run(impl: str, shape: tuple):
    """Forward and backward on symbol arrays (eps a positive symbol), built once per shape."""
    fwd, bwd = IMPLS[impl]
    C, H, W = shape
    xs = X.symbols_array("x", shape)
    gs = X.symbols_array("gamma", (C,))
    bs = X.symbols_array("beta", (C,))
    gos = X.symbols_array("g", shape)
    eps = sympy.Symbol("eps", positive=True)
    y = fwd(xs, gs, bs, eps, S)
    dx, dg, db = bwd(xs, gs, bs, gos, eps, S)
    return (xs, gs, bs, gos, eps), (y, dx, dg, db)


def evaluate_symbolic(impl, shape, x, gamma, beta, g, eps):
    (xs, gs, bs, gos, es), results = symbolic_run(impl, shape)
    sub = {**X.bind(xs, x), **X.bind(gs, gamma), **X.bind(bs, beta), **X.bind(gos, g),
           es: sympy.Rational(eps)}
    return [[e for e in X.xreplace_array(r, sub).ravel()] for r in results]


def to_hi(e, dps=70):
    """An exact SymPy number as an mpf with ``dps`` digits (independent of the global mp.dps)."""
    return X.to_mpf(sympy.N(e, dps + 10), dps)


# ---------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------
small_q = st.fractions(min_value=-4, max_value=4, max_denominator=8)
eps_q = st.sampled_from([Fraction(1, 10**6), Fraction(1, 10**5), Fraction(1, 1000),
                         Fraction(1, 7), Fraction(1)])


@st.composite
def bn_points(draw):
    C, H, W = draw(st.sampled_from(SHAPES))
    grid = lambda: [[[draw(small_q) for _ in range(W)] for _ in range(H)] for _ in range(C)]
    x, g = grid(), grid()
    gamma = [draw(small_q) for _ in range(C)]
    beta = [draw(small_q) for _ in range(C)]
    return (C, H, W), x, gamma, beta, g, draw(eps_q)


# ---------------------------------------------------------------------------------------------
# The same code in three namespaces
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("impl", sorted(IMPLS))
@SLOW
@given(point=bn_points())
def test_symbolic_results_equal_exact_reference_at_rational_points(impl, point):
    shape, x, gamma, beta, g, eps = point
    got = evaluate_symbolic(impl, shape, x, gamma, beta, g, eps)
    want = _flat_reference(reference_sympy(x, gamma, beta, g, eps))
    for got_part, want_part in zip(got, want):
        assert len(got_part) == len(want_part)
        for a, b in zip(got_part, want_part):
            assert a.atoms(sympy.Symbol) == set()
            assert sympy.expand(a - b) == 0, (a, b)


@pytest.mark.parametrize("impl", sorted(IMPLS))
@SLOW
@given(point=bn_points())
def test_mpmath_and_numpy_agree_with_exact_values(impl, point):
    shape, x, gamma, beta, g, eps = point
    fwd, bwd = IMPLS[impl]
    exact = evaluate_symbolic(impl, shape, x, gamma, beta, g, eps)

    m = [X.to_mpf_array(a, 50) for a in (x, gamma, beta, g)]
    mp_res = _flat_results(fwd(m[0], m[1], m[2], eps, M50), *bwd(*m, eps, M50))

    f = [np.array(a, dtype=np.float64) for a in (x, gamma, beta, g)]
    np_res = _flat_results(fwd(f[0], f[1], f[2], float(eps), np), *bwd(*f, float(eps), np))

    for e_part, m_part, n_part in zip(exact, mp_res, np_res):
        scale = 1 + max(abs(to_hi(e)) for e in e_part)
        for e, mv, nv in zip(e_part, m_part, n_part):
            assert isinstance(mv, X.mpf_type(50))
            assert abs(to_hi(e) - mv) <= mpmath.mpf("1e-45") * scale
            assert isinstance(nv, (float, np.floating))
            assert abs(float(to_hi(e)) - nv) <= 1e-12 * float(scale)


@settings(deadline=None, max_examples=30)
@given(
    shape=st.sampled_from(SHAPES),
    data=st.data(),
    t=st.fractions(min_value=Fraction(1, 2), max_value=6, max_denominator=9),
)
def test_rational_points_give_rational_results_in_all_namespaces(shape, data, t):
    """Channels c = a_c +- d share one variance v; eps = t**2 - v makes every std rational, so the
    whole computation is rational: symbolic == pure-Fraction reference exactly, mpmath to 1e-45."""
    C, H, W = shape
    d = [[data.draw(small_q) for _ in range(W)] for _ in range(H)]
    vals = [v for row in d for v in row]
    mu = sum(vals, Fraction(0)) / len(vals)
    v = sum(((u - mu) ** 2 for u in vals), Fraction(0)) / len(vals)
    assume(t * t > v)
    eps = t * t - v
    x = []
    for c in range(C):
        a_c, s_c = data.draw(small_q), data.draw(st.sampled_from([1, -1]))
        x.append([[a_c + s_c * u for u in row] for row in d])
    g = [[[data.draw(small_q) for _ in range(W)] for _ in range(H)] for _ in range(C)]
    gamma = [data.draw(small_q) for _ in range(C)]
    beta = [data.draw(small_q) for _ in range(C)]
    want = _flat_reference(reference_fraction(x, gamma, beta, g, eps, t))
    m = [X.to_mpf_array(a, 50) for a in (x, gamma, beta, g)]
    for impl, (fwd, bwd) in IMPLS.items():
        got = evaluate_symbolic(impl, shape, x, gamma, beta, g, eps)
        mp_res = _flat_results(fwd(m[0], m[1], m[2], eps, M50), *bwd(*m, eps, M50))
        for got_part, mp_part, want_part in zip(got, mp_res, want):
            for a, mv, b in zip(got_part, mp_part, want_part):
                assert isinstance(a, sympy.Rational)
                assert a == sympy.Rational(b.numerator, b.denominator), (impl, a, b)
                assert abs(mv - b) <= mpmath.mpf("1e-45") * (1 + abs(X.to_mpf(b, 60)))


def test_backward_is_the_gradient_of_forward():
    """d/dx, d/dgamma, d/dbeta of sum(y * g), differentiated by SymPy, equal each backward."""
    shape = (2, 1, 3)
    for impl in IMPLS:
        (xs, gs, bs, gos, eps), (y, dx, dg, db) = symbolic_run(impl, shape)
        loss = sympy.Add(*[a * b for a, b in zip(y.ravel(), gos.ravel())])
        sub = {**X.bind(xs, [[[1, Fraction(-2, 3), 5]], [[0, 2, Fraction(7, 2)]]]),
               **X.bind(gs, [Fraction(3, 2), -2]), **X.bind(bs, [1, Fraction(1, 3)]),
               **X.bind(gos, [[[2, -1, Fraction(1, 4)]], [[3, 0, -5]]]),
               eps: sympy.Rational(1, 1000)}
        for wrt, got in ((xs, dx), (gs, dg), (bs, db)):
            for s, e in zip(wrt.ravel(), got.ravel()):
                lhs = sympy.diff(loss, s).xreplace(sub)
                assert sympy.expand(lhs - e.xreplace(sub)) == 0, (impl, s)


@pytest.mark.parametrize("impl", sorted(IMPLS))
def test_symbolic_forward_at_4x8x8_stays_exact_and_unexpanded(impl):
    fwd, bwd = IMPLS[impl]
    shape = (4, 8, 8)
    xs, gos = X.symbols_array("x", shape), X.symbols_array("g", shape)
    gs, bs = X.symbols_array("gamma", (4,)), X.symbols_array("beta", (4,))
    y = fwd(xs, gs, bs, 1e-5, S)
    dx, dg, db = bwd(xs, gs, bs, gos, 1e-5, S)
    assert y.shape == dx.shape == shape and dg.shape == db.shape == (4,)
    # the mean is one flat Add of 64 exact terms: nothing was expanded or turned into Floats
    mu = S.mean(xs, axis=(1, 2))
    assert isinstance(mu[0], sympy.Add) and len(mu[0].args) == 64
    assert y[3, 7, 7].atoms(sympy.Float) == set()


# ---------------------------------------------------------------------------------------------
# Exact means, sums and float literals in the symbolic namespace
# ---------------------------------------------------------------------------------------------
def _coeffs_are(expr, symbols, value):
    return all(expr.coeff(s) == value for s in symbols)


@pytest.mark.parametrize("shape", [(2, 2, 3), (3, 1, 5), (1, 3, 3)])
def test_means_are_exact_by_every_route(shape):
    C, H, W = shape
    xs = X.symbols_array("x", shape)
    routes = {
        "xp.mean keepdims": S.mean(xs, axis=(1, 2), keepdims=True)[:, 0, 0],
        "xp.mean": S.mean(xs, axis=(1, 2)),
        "method": xs.mean(axis=(1, 2)),
        "method keepdims": xs.mean(axis=(1, 2), keepdims=True)[:, 0, 0],
        "reshape sum / N": xs.reshape(C, -1).sum(axis=1) / (H * W),
        "numpy.mean": np.mean(xs, axis=(1, 2)),
    }
    for name, mu in routes.items():
        assert isinstance(mu, X.SymbolicArray), name
        for c in range(C):
            assert mu[c].atoms(sympy.Float) == set(), name
            assert _coeffs_are(mu[c], xs[c].ravel(), sympy.Rational(1, H * W)), name
            assert mu[c].atoms(sympy.Symbol) == set(xs[c].ravel()), name
    whole = xs.mean()
    assert isinstance(whole, X.SymbolicArray) and whole.shape == ()
    assert _coeffs_are(whole[()], xs.ravel(), sympy.Rational(1, C * H * W))


def test_variances_are_exact_by_every_route():
    xs = X.symbols_array("x", (2, 2, 2))
    n = 4
    for ddof in (0, 1):
        for name, var in {"xp.var": S.var(xs, axis=(1, 2), ddof=ddof),
                          "method": xs.var(axis=(1, 2), ddof=ddof),
                          "std**2": xs.std(axis=(1, 2), ddof=ddof) ** 2}.items():
            for c in range(2):
                vals = list(xs[c].ravel())
                mu = sympy.Add(*vals) / n
                want = sympy.Add(*[(v - mu) ** 2 for v in vals]) / (n - ddof)
                assert var[c].atoms(sympy.Float) == set(), name
                assert sympy.expand(var[c] - want) == 0, (name, ddof)
    with pytest.raises(ValueError, match="n - ddof"):
        S.var(xs, axis=(1, 2), ddof=4)


@given(f=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12))
@settings(max_examples=60, deadline=None)
def test_float_operands_enter_the_symbolic_namespace_as_their_decimal(f):
    x = X.symbols_array("x", (2,))
    want = sympy.Rational(Fraction(repr(f)))
    for got in ((x + f)[0] - x[0], (f + x)[0] - x[0], (x * f)[1].coeff(x[1]),
                x[0] - (x - np.float64(f))[0]):
        assert got == want if got.is_Number else sympy.expand(got - want) == 0
        assert got.atoms(sympy.Float) == set()
    # the contrast that makes the hook necessary: NumPy's own object loop hands SymPy a Float
    if f not in (0.0, 1.0, -1.0) and float(f) != int(f):
        assert (x.view(np.ndarray) * f)[0].atoms(sympy.Float) != set()


def test_exponent_floats_are_exact():
    x = X.symbols_array("x", (1,), positive=True)
    assert (x ** 0.5)[0] == sympy.sqrt(x[0])
    assert (x ** -0.5)[0] == 1 / sympy.sqrt(x[0])
    assert (x + 1e-6)[0] == x[0] + sympy.Rational(1, 10**6)


def test_symbolic_sum_is_one_add_over_the_reduced_axis():
    xs = X.symbols_array("x", (3, 4, 5))
    s = S.sum(xs, axis=(0, 2))
    assert s.shape == (4,)
    for j in range(4):
        assert isinstance(s[j], sympy.Add) and set(s[j].args) == set(xs[:, j, :].ravel())
    kd = xs.sum(axis=1, keepdims=True)
    assert kd.shape == (3, 1, 5) and set(kd[2, 0, 4].args) == set(xs[2, :, 4])
    total = S.sum(xs)
    assert total.shape == () and len(total[()].args) == 60
    assert S.prod(xs[0, 0]).item() == sympy.Mul(*xs[0, 0])
    assert S.max(xs[0, 0]).item() == sympy.Max(*xs[0, 0])


# ---------------------------------------------------------------------------------------------
# Conversions
# ---------------------------------------------------------------------------------------------
def test_symbols_array_names_are_row_major_and_real():
    a = X.symbols_array("x", (2, 3, 2))
    names = [s.name for s in a.ravel()]
    assert names == [f"x_{i}_{j}_{k}" for i in range(2) for j in range(3) for k in range(2)]
    assert a[1, 2, 0].name == "x_1_2_0"
    assert all(s.is_real for s in a.ravel())
    assert isinstance(a, X.SymbolicArray) and a.xp == S
    assert X.symbols_array("z", (2,), real=False)[0].is_real is None
    assert X.symbols_array("p", 3, positive=True)[2].is_positive
    assert X.symbols_array("e", ())[()].name == "e"


@given(f=st.floats(allow_nan=False, allow_infinity=False))
@settings(max_examples=200)
def test_float_conversion_conventions(f):
    dec = X.to_sympy(f)
    assert dec == sympy.Rational(Fraction(repr(f)))
    assert float(Fraction(int(dec.p), int(dec.q))) == f  # the decimal rounds back to f
    assert X.to_sympy(f, floats="exact") == sympy.Rational(*f.as_integer_ratio())
    for dps in (5, 50):  # mpf of a float is exact at any precision
        m = X.to_mpf(f, dps)
        assert m._mpf_ == mpmath.mpf(f)._mpf_
        assert X.to_mpf_array([f], dps)[0]._mpf_ == m._mpf_


@given(f=st.floats(width=32, allow_nan=False, allow_infinity=False))
@settings(max_examples=100)
def test_float32_values_read_by_float32_repr_and_stored_exactly(f):
    v = np.float32(f)
    arr = np.array([v, v], dtype=np.float32)
    dec = X.to_sympy_array(arr)[0]
    assert dec == sympy.Rational(Fraction(str(v)))  # float32's shortest repr, e.g. 0.1 -> 1/10
    assert X.to_sympy_array([v])[0] == dec  # a list of float32 scalars reads the same
    assert X.to_mpf_array(arr, 5)[1]._mpf_ == mpmath.mpf(float(v))._mpf_


@given(q=st.fractions(max_denominator=10**30), dps=st.integers(min_value=3, max_value=60))
@settings(max_examples=100)
def test_fractions_exact_symbolically_and_correctly_rounded_in_mpmath(q, dps):
    assert X.to_sympy(q) == sympy.Rational(q.numerator, q.denominator)
    got = X.to_mpf(q, dps)
    if q.denominator & (q.denominator - 1):  # not dyadic: correctly rounded at dps
        assert got._mpf_ == from_rational(q.numerator, q.denominator, dps_to_prec(dps), "n")
    else:  # dyadic (e.g. every float): stored exactly, whatever dps is
        assert mpf_fraction(got) == q


def mpf_fraction(v):
    sign, man, exp, _ = v._mpf_
    val = Fraction(int(man)) * Fraction(2) ** int(exp)
    return -val if sign else val


def test_specific_conversions():
    assert X.to_sympy(1e-6) == sympy.Rational(1, 10**6)
    assert X.to_sympy(0.1) == sympy.Rational(1, 10)
    assert X.to_sympy("1e-6") == sympy.Rational(1, 10**6)
    assert X.to_sympy(" -3/4 ") == sympy.Rational(-3, 4)
    assert X.to_sympy(Decimal("0.125")) == sympy.Rational(1, 8)
    assert X.to_sympy(True) == 1
    big = 2**70 + 1  # a list with a float must not round the big int through float64
    assert list(X.to_sympy_array([big, 0.5])) == [sympy.Integer(big), sympy.Rational(1, 2)]
    assert X.to_mpf_array([big, 0.5], 50)[0] == big
    exact_bin = Fraction(1e-6)
    assert Fraction(exact_bin) != Fraction(1, 10**6)
    m = X.to_mpf(1e-6, 50)
    assert m._mpf_ == mpmath.mpf(1e-6)._mpf_  # the double, not 10**-6
    md = X.to_mpf(1e-6, 50, floats="decimal")
    assert md._mpf_ == from_rational(1, 10**6, dps_to_prec(50), "n")
    assert X.to_sympy_array(np.array([[1, 2]], dtype=np.int8)).tolist() == [[1, 2]]
    with pytest.raises(ValueError, match="floats must be"):
        X.to_sympy(1.0, floats="binary")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), np.float32("nan"),
                                 np.float64("-inf"), Decimal("NaN"), Decimal("Infinity"),
                                 mpmath.mpf("inf"), mpmath.mpf("nan")])
def test_nan_and_inf_are_rejected_everywhere(bad):
    with pytest.raises(ValueError):
        X.to_sympy_array([1, bad])
    with pytest.raises(ValueError):
        X.to_mpf_array([1, bad], 30)
    if isinstance(bad, (float, np.floating)):
        with pytest.raises(ValueError):
            X.symbols_array("x", (2,)) + bad
        with pytest.raises(ValueError):
            M50.asarray([1, 2]) * bad
        with pytest.raises(ValueError):
            M50.asarray([1, 2])[0] + bad  # a bare entry too


@pytest.mark.parametrize("text", ["nan", "inf", "abc", "1e-6x", "2**3", "sqrt(2)",
                                  "__import__('os').getcwd()", "1/0", ""])
def test_strings_are_parsed_strictly(text):
    with pytest.raises((ValueError, ZeroDivisionError)):
        X.to_sympy(text)
    with pytest.raises((ValueError, ZeroDivisionError)):
        X.to_mpf(text, 20)


def test_same_float_is_a_different_number_in_the_two_exact_namespaces():
    """The documented convention: 1e-5 is 10**-5 symbolically, the double in mpmath.  With
    Fraction eps the two agree to 1e-45; with the float they differ at the ~1e-22 level."""
    shape = (1, 2, 2)
    x = [[[Fraction(1), Fraction(3, 2)], [Fraction(-1, 4), Fraction(2)]]]
    gamma, beta = [Fraction(2)], [Fraction(1, 3)]
    xs = X.symbols_array("x", shape)
    sub = X.bind(xs, x)
    y_sym = X.xreplace_array(forward_two_pass(xs, S.asarray(gamma), S.asarray(beta), 1e-5, S), sub)
    m = [X.to_mpf_array(a, 50) for a in (x, gamma, beta)]
    y_frac = forward_two_pass(*m, Fraction(1, 10**5), M50)
    y_float = forward_two_pass(*m, 1e-5, M50)
    d_frac = max(abs(to_hi(a) - b) for a, b in zip(y_sym.ravel(), y_frac.ravel()))
    d_float = max(abs(to_hi(a) - b) for a, b in zip(y_sym.ravel(), y_float.ravel()))
    assert d_frac < mpmath.mpf("1e-45")
    assert mpmath.mpf("1e-30") < d_float < mpmath.mpf("1e-15")


# ---------------------------------------------------------------------------------------------
# What raises
# ---------------------------------------------------------------------------------------------
def _sym():
    return X.symbols_array("x", (2, 2))


UNSUPPORTED = [
    ("where on a symbolic comparison", lambda: S.where(_sym() > 0, _sym(), 0),
     "data-dependent branching"),
    ("where on relationals", lambda: S.where(
        np.array([sympy.Gt(sympy.Symbol("q"), 0)], dtype=object), 1, 2), "xp.where"),
    ("astype float32", lambda: _sym().astype(np.float32), "astype"),
    ("astype float", lambda: _sym().astype(float), "astype"),
    ("astype on numbers", lambda: S.asarray([1, 2]).astype(np.float64), "astype"),
    ("asarray dtype", lambda: S.asarray([1, 2], dtype=np.float64), "asarray"),
    ("sum dtype", lambda: S.sum(_sym(), dtype=np.float32), "sum"),
    ("mean method dtype", lambda: _sym().mean(dtype=np.float64), "add"),
    ("float()", lambda: float(S.sum(_sym())), "float()"),
    ("bool()", lambda: bool(S.sum(_sym())), "bool()"),
    ("if on an entry", lambda: S.where(S.sum(_sym()) > 1, 1, 0), "greater"),
    ("finfo", lambda: S.finfo(np.float64), "xp.finfo"),
    ("random", lambda: S.random.normal(size=3), "xp.random"),
    ("linalg", lambda: S.linalg.inv(_sym()), "xp.linalg"),
    ("float32 dtype", lambda: S.float32, "xp.float32"),
    ("isnan", lambda: S.isnan(_sym()), "xp.isnan"),
    ("unknown name", lambda: S.frobnicate(_sym()), "xp.frobnicate"),
    ("numpy.floor", lambda: np.floor(_sym()), "floor"),
    ("numpy.sign", lambda: np.sign(_sym()), "sign"),
    ("numpy.logical_and.reduce", lambda: np.logical_and.reduce(_sym()), "logical_and"),
    ("symbolic < symbolic", lambda: _sym() < _sym().T, "less"),
    ("symbolic == symbolic", lambda: _sym() == _sym().T, "equal"),
    ("mixing namespaces", lambda: _sym() + M50.asarray([1, 2]), "mixing"),
    ("mpf into symbolic", lambda: _sym() + mpmath.mpf(1), "mpmath value"),
    ("symbolic into mpmath", lambda: M50.asarray(_sym()), "cannot enter"),
    ("expression into mpmath", lambda: M50.asarray([sympy.Symbol("q")]), "SymPy expression"),
    ("expression times mpf", lambda: M50.asarray([1])[0] * sympy.Symbol("q"), "SymPy expression"),
    ("mpmath finfo", lambda: M50.finfo(np.float64), "xp.finfo"),
    ("mpmath astype", lambda: M50.asarray([1, 2]).astype(np.float32), "astype"),
    ("mpmath float32", lambda: M50.float32, "xp.float32"),
    ("complex", lambda: S.asarray([1 + 2j]), "complex"),
    ("float arange", lambda: S.arange(0, 1, 0.1), "xp.arange"),
]


@pytest.mark.parametrize("what,call,needle", UNSUPPORTED, ids=[u[0] for u in UNSUPPORTED])
def test_unsupported_operations_raise_and_name_the_operation(what, call, needle):
    with pytest.raises(UnsupportedOperation) as info:
        call()
    assert isinstance(info.value, TypeError)
    assert needle in str(info.value)


def test_namespace_attributes_follow_the_attribute_protocol():
    assert not hasattr(S, "linalg") and not hasattr(M50, "random")
    assert hasattr(S, "mean") and hasattr(M50, "einsum") and S.newaxis is None
    with pytest.raises(AttributeError):
        S.__array_namespace_info__
    for name in X.SUPPORTED_FUNCTIONS:
        assert hasattr(S, name) and hasattr(M50, name), name


def test_domain_errors_raise_instead_of_nan():
    with pytest.raises(ValueError, match="sqrt of the negative"):
        S.sqrt(S.asarray([4, -1]))
    with pytest.raises(ValueError, match="sqrt of the negative"):
        M50.sqrt(M50.asarray([4, -1]))
    with pytest.raises(ValueError, match="sqrt of the negative"):
        np.sqrt(M50.asarray([-2]))
    with pytest.raises(ValueError, match="not real"):
        M50.asarray([-8])[0] ** 0.5  # a bare entry: no silent mpc
    with pytest.raises(ValueError, match="log"):
        S.log(S.asarray([0]))
    with pytest.raises(ValueError, match="log"):
        M50.log(M50.asarray([-1]))
    with pytest.raises(ZeroDivisionError):
        _sym() / S.zeros((2, 2))
    with pytest.raises(ZeroDivisionError):
        S.asarray([0, 1]) ** -1
    with pytest.raises(ZeroDivisionError):
        M50.asarray([1]) / 0
    # symbolic expressions (sign unknown) are kept as principal values, not rejected
    assert S.sqrt(_sym())[0, 0] == sympy.sqrt(_sym()[0, 0])


# ---------------------------------------------------------------------------------------------
# mpmath precision is local to the namespace
# ---------------------------------------------------------------------------------------------
def _bn_mpf_tuples(ns):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 3, 3))
    g = rng.normal(size=(2, 3, 3))
    args = [X.to_mpf_array(a, ns.dps) for a in (x, [1.5, -0.5], [0.25, 2.0], g)]
    out = []
    for fwd, bwd in IMPLS.values():
        y = fwd(args[0], args[1], args[2], Fraction(1, 10**5), ns)
        dx, dg, db = bwd(*args, Fraction(1, 10**5), ns)
        # bare-entry arithmetic as user loops would do it
        scalar = args[1][0] / (y[0, 0, 0] + 3) - dg[1] * 0.1
        out += [v._mpf_ for a in (y, dx, dg, db) for v in a.ravel()] + [scalar._mpf_]
    return out


def test_mpmath_results_do_not_depend_on_or_change_the_global_precision():
    before = (mpmath.mp.dps, mpmath.mp.prec)
    reference = _bn_mpf_tuples(M50)
    assert (mpmath.mp.dps, mpmath.mp.prec) == before
    try:
        for global_dps in (5, 15, 100):
            mpmath.mp.dps = global_dps
            assert _bn_mpf_tuples(M50) == reference
            assert mpmath.mp.dps == global_dps
    finally:
        mpmath.mp.dps = before[0]
    assert (mpmath.mp.dps, mpmath.mp.prec) == before


def test_mpmath_namespace_really_computes_at_its_precision():
    with mpmath.workdps(130):
        true_sqrt2 = mpmath.sqrt(2)  # a 130-digit value (differences below round relatively)
    for dps in (20, 50, 80):
        ns = X.mpmath_namespace(dps)
        got = ns.sqrt(ns.asarray([2])).item()
        assert isinstance(got, X.mpf_type(dps)) and isinstance(got, mpmath.mpf)
        err = abs(got - true_sqrt2)
        assert err <= mpmath.mpf(10) ** (-dps + 1)
        assert err > mpmath.mpf(10) ** (-dps - 5)  # ... and not at a higher precision either
    third = M50.asarray([Fraction(1, 3)])
    assert abs(third.item() * 3 - 1) < mpmath.mpf("1e-49")
    assert abs(M50.mean(M50.asarray([1, 1, 2])).item() - X.to_mpf(Fraction(4, 3), 60)) < mpmath.mpf("1e-49")
    assert str(M50.pi) == "3.1415926535897932384626433832795028841971693993751"  # 50 digits


@given(vals=st.lists(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e30,
                                max_value=1e30), min_size=1, max_size=12),
       dps=st.integers(min_value=3, max_value=25))
@settings(max_examples=150, deadline=None)
def test_mpmath_sum_is_exact_then_rounded_once(vals, dps):
    ns = X.mpmath_namespace(dps)
    arr = ns.asarray(vals)
    exact = sum((Fraction(v) for v in vals), Fraction(0))
    want = from_rational(exact.numerator, exact.denominator, dps_to_prec(dps), "n")
    assert ns.sum(arr).item()._mpf_ == want
    assert arr.sum().item()._mpf_ == want  # the method goes the same way


def test_mixed_precisions_use_the_higher_one():
    lo, hi = X.to_mpf_array([Fraction(1, 3)], 20), X.to_mpf_array([Fraction(1, 3)], 60)
    for res in (lo + hi, hi + lo, lo[0] + hi[0], hi[0] + lo[0]):
        v = res.item() if isinstance(res, np.ndarray) else res
        assert type(v) is X.mpf_type(60)
    assert (lo + hi).xp == X.mpmath_namespace(60)
    assert type(mpmath.mpf(1) + hi[0]) is X.mpf_type(60)  # a plain mpf on the left too


def test_where_and_comparisons_work_where_the_values_are_concrete():
    a = M50.asarray([[1, 2, 3], [4, 5, 6]])
    mask = a > Fraction(5, 2)
    assert mask.dtype == bool and mask.tolist() == [[False, False, True], [True, True, True]]
    w = M50.where(mask, a, 0)
    assert isinstance(w, X.MpfArray) and [float(v) for v in w.ravel()] == [0, 0, 3, 4, 5, 6]
    s = S.asarray([1, 2])
    assert (s < S.asarray([Fraction(3, 2), 1])).tolist() == [True, False]
    pos = X.symbols_array("p", (2,), positive=True)
    assert (pos > 0).tolist() == [True, True]  # decided by the assumptions
    assert S.where(np.array([True, False]), pos, s).tolist() == [pos[0], 2]
    m = S.maximum(X.symbols_array("x", (2,)), 0)
    assert m[0] == sympy.Max(X.symbols_array("x", (2,))[0], 0)
    assert S.maximum(S.asarray([Fraction(1, 3)]), Fraction(1, 2))[0] == sympy.Rational(1, 2)
    assert M50.maximum(M50.asarray([-1, 2]), 0).tolist() == [0, 2]


# ---------------------------------------------------------------------------------------------
# Namespace plumbing
# ---------------------------------------------------------------------------------------------
def test_get_namespace():
    assert X.numpy_namespace is np
    assert X.get_namespace("numpy") is np and X.get_namespace("np") is np
    assert X.get_namespace("symbolic") is S and X.get_namespace("sympy") == S
    assert X.get_namespace("mpmath") == M50 and X.get_namespace("mp", dps=30).dps == 30
    assert X.get_namespace(np) is np and X.get_namespace(S) is S
    assert X.get_namespace(M50) is M50 and X.get_namespace(X.MpmathNamespace(50)) == M50
    assert X.get_namespace(np.zeros(3)) is np
    assert X.get_namespace(X.symbols_array("x", 2)) == S
    assert X.get_namespace(X.to_mpf_array([1], 33)) == X.mpmath_namespace(33)
    assert X.mpmath_namespace(50) is M50
    for bad, kw, exc in [("torch", {}, ValueError), ("numpy", {"dps": 50}, ValueError),
                         ("symbolic", {"dps": 50}, ValueError), (M50, {"dps": 40}, ValueError),
                         (np.zeros(2, dtype=object), {}, TypeError), (3, {}, TypeError)]:
        with pytest.raises(exc):
            X.get_namespace(bad, **kw)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError):
            X.mpmath_namespace(bad)


@pytest.mark.parametrize("ns", [S, M50], ids=["symbolic", "mpmath"])
def test_creation_and_shape_functions_match_numpy(ns):
    base = np.arange(24).reshape(2, 3, 4)
    a = ns.asarray(base)
    as_int = lambda arr: np.array([int(v) for v in np.asarray(arr).ravel()]).reshape(np.shape(arr))
    cases = {
        "reshape": (ns.reshape(a, (4, 6)), base.reshape(4, 6)),
        "method reshape": (a.reshape(6, -1), base.reshape(6, -1)),
        "transpose": (ns.transpose(a, (2, 0, 1)), base.transpose(2, 0, 1)),
        "expand_dims": (ns.expand_dims(a, 1), np.expand_dims(base, 1)),
        "newaxis": (a[:, ns.newaxis], base[:, None]),
        "broadcast_to": (ns.broadcast_to(a[0, 0], (3, 4)), np.broadcast_to(base[0, 0], (3, 4))),
        "stack": (ns.stack([a, a], axis=1), np.stack([base, base], axis=1)),
        "concatenate": (ns.concatenate([a, a], axis=2), np.concatenate([base, base], axis=2)),
        "moveaxis": (ns.moveaxis(a, 0, -1), np.moveaxis(base, 0, -1)),
        "squeeze": (ns.squeeze(a[:1]), base[:1].squeeze()),
        "matmul": (ns.matmul(a, ns.ones((4, 2))), base @ np.ones((4, 2), dtype=int)),
        "@": (a @ ns.ones((4,)), base @ np.ones(4, dtype=int)),
        "dot": (ns.dot(a[0], base[0].T), base[0] @ base[0].T),
        "einsum": (ns.einsum("cij,cij->c", a, a), np.einsum("cij,cij->c", base, base)),
        "sum": (ns.sum(a, axis=(0, 2), keepdims=True), base.sum(axis=(0, 2), keepdims=True)),
        "prod": (ns.prod(a[:, :, :2], axis=2), base[:, :, :2].prod(axis=2)),
        "max": (ns.max(a, axis=1), base.max(axis=1)),
        "min": (a.min(axis=0), base.min(axis=0)),
        "cumsum": (a.cumsum(axis=2), base.cumsum(axis=2)),
        "zeros_like": (ns.zeros_like(a), np.zeros_like(base)),
        "ones": (ns.ones((2, 2)), np.ones((2, 2), dtype=int)),
        "full_like": (ns.full_like(a, 7), np.full_like(base, 7)),
        "eye": (ns.eye(3, k=1), np.eye(3, k=1, dtype=int)),
        "arange": (ns.arange(2, 9, 3), np.arange(2, 9, 3)),
        "square": (ns.square(a), base ** 2),
        "abs": (ns.abs(-a), base),
        "clip": (ns.clip(a, 3, 20), np.clip(base, 3, 20)),
    }
    for name, (got, want) in cases.items():
        assert isinstance(got, X.ExactArray) and got.xp == ns, name
        assert got.shape == want.shape, name
        assert np.array_equal(as_int(got), want), name
        assert all(isinstance(v, (sympy.Integer, X.mpf_type(50))) for v in np.ravel(got)), name
    assert ns.shape(a) == (2, 3, 4) and ns.ndim(a) == 3 and ns.size(a) == 24
    assert ns.float64(Fraction(1, 4)) * 4 == 1 and ns.float64(0.5) == Fraction(1, 2)
    assert ns.zeros(2, dtype=ns.float64).shape == (2,)


def test_pickling_keeps_namespace_and_precision():
    m = X.to_mpf_array([Fraction(1, 3), 2], 40)
    m2 = pickle.loads(pickle.dumps(m))
    assert m2.xp == X.mpmath_namespace(40) and [v._mpf_ for v in m2] == [v._mpf_ for v in m]
    e = pickle.loads(pickle.dumps(m[0]))
    assert type(e) is X.mpf_type(40) and abs(e * 3 - 1) < mpmath.mpf("1e-39")
    assert pickle.loads(pickle.dumps(S)) is S
    assert pickle.loads(pickle.dumps(X.mpmath_namespace(40))) is X.mpmath_namespace(40)
    s = pickle.loads(pickle.dumps(X.symbols_array("x", (2,))))
    assert s.xp == S and (s * 0.5)[0].atoms(sympy.Float) == set()


def test_plain_object_arrays_are_converted_when_mixed_in():
    x = X.symbols_array("x", (2,))
    plain = np.array([0.5, Fraction(1, 3)], dtype=object)
    res = x + plain
    assert isinstance(res, X.SymbolicArray)
    assert res[0] - x[0] == sympy.Rational(1, 2) and res[1] - x[1] == sympy.Rational(1, 3)
    res = M50.asarray([1, 1]) + np.array([0.1, 0.2], dtype=np.float32)
    assert res[0]._mpf_ == (mpmath.mpf(1) + mpmath.mpf(float(np.float32(0.1))))._mpf_


def test_stored_values_and_in_place_updates_are_converted():
    """Storing 0.5 into an array must not leave a raw float that SymPy later turns into Float."""
    x = X.symbols_array("x", (2, 2))
    y = S.zeros((2, 2))
    y[0] = 0.5
    y[1, 1] = x[0, 0]
    y += 1e-6
    y *= x
    assert isinstance(y, X.SymbolicArray)
    assert y[0, 1] == (sympy.Rational(1, 2) + sympy.Rational(1, 10**6)) * x[0, 1]
    assert all(e.atoms(sympy.Float) == set() for e in y.ravel())
    y.fill(0.1)
    assert set(y.ravel()) == {sympy.Rational(1, 10)}
    m = X.mpmath_namespace(30).zeros(3)
    m[1:] = [0.1, Fraction(1, 3)]
    assert all(type(v) is X.mpf_type(30) for v in m)
    assert m[1]._mpf_ == mpmath.mpf(0.1)._mpf_ and abs(m[2] * 3 - 1) < mpmath.mpf("1e-29")
    assert bool(S.asarray([0])) is False and bool(S.asarray(Fraction(1, 3))) is True


