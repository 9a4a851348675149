"""Numeric runtime (symbolic_bn.numeric) against the mpmath reference, adjointness, properties."""
import math
import types

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from symbolic_bn import numeric
from symbolic_bn.checks.crosscheck import reference

EPS = 1e-5


def _point(rng, shape=(3, 2, 4), dtype=np.float64, loc=0.0):
    C = shape[0]
    x = (loc + rng.standard_normal(shape)).astype(dtype)
    gamma = (rng.choice([-1.0, 1.0], C) * rng.uniform(0.5, 2, C)).astype(dtype)
    beta = rng.standard_normal(C).astype(dtype)
    g = (rng.standard_normal(shape) + 0.5).astype(dtype)
    return x, gamma, beta, g


def _close_to_ref(got, ref, scale, tol):
    got = np.asarray(got, dtype=np.float64)
    assert got.shape == ref.shape
    assert np.max(np.abs(got - ref)) <= tol * scale, (got, ref)


@pytest.mark.parametrize("seed", range(5))
def test_forward_backward_match_mpmath_reference_float64(seed):
    rng = np.random.default_rng(seed)
    x, gamma, beta, g = _point(rng)
    ref = reference(x, gamma, beta, EPS, grad_out=g, dps=40)
    _close_to_ref(numeric.forward(x, gamma, beta, EPS), ref["y"], 1.0, 1e-13)
    dx, dgamma, dbeta = numeric.backward(x, gamma, beta, g, EPS)
    _close_to_ref(dx, ref["dx"], np.max(np.abs(ref["dx"])), 1e-13)
    _close_to_ref(dgamma, ref["dgamma"], np.sum(np.abs(g)), 1e-13)
    _close_to_ref(dbeta, ref["dbeta"], np.sum(np.abs(g)), 1e-14)
    # the reference statistics themselves
    xm = x.reshape(x.shape[0], -1)
    assert np.allclose(ref["mean"], xm.mean(axis=1), rtol=0, atol=1e-15)
    assert np.allclose(ref["var"], xm.var(axis=1), rtol=1e-13, atol=0)


@pytest.mark.parametrize("seed", range(3))
def test_float32_runtime_close_to_reference_on_float32_inputs(seed):
    rng = np.random.default_rng(100 + seed)
    x, gamma, beta, g = _point(rng, dtype=np.float32)
    ref = reference(x, gamma, beta, float(np.float32(EPS)), grad_out=g)
    y = numeric.forward(x, gamma, beta, EPS)
    dx, dgamma, dbeta = numeric.backward(x, gamma, beta, g, EPS)
    _close_to_ref(y, ref["y"], 1.0, 2e-6)
    _close_to_ref(dx, ref["dx"], np.max(np.abs(ref["dx"])), 5e-6)
    _close_to_ref(dgamma, ref["dgamma"], np.sum(np.abs(g)), 2e-6)
    _close_to_ref(dbeta, ref["dbeta"], np.sum(np.abs(g)), 2e-6)


def test_dtype_is_preserved():
    rng = np.random.default_rng(1)
    x, gamma, beta, g = _point(rng, dtype=np.float32)
    g64, b64 = gamma.astype(np.float64), beta.astype(np.float64)
    for eps in (EPS, np.float64(EPS), np.float32(EPS)):
        assert numeric.forward(x, g64, b64, eps).dtype == np.float32
        outs = numeric.backward(x, g64, b64, g.astype(np.float64), eps)
        assert [o.dtype for o in outs] == [np.float32] * 3
        dy = numeric.jvp(x, g64, b64, g, g64, b64, eps)
        assert dy.dtype == np.float32
    x64, gamma64, beta64, g64 = _point(rng)
    assert numeric.forward(x64, gamma64, beta64, EPS).dtype == np.float64


def test_backward_shapes_and_dbeta_is_sum_of_cotangent():
    rng = np.random.default_rng(2)
    x, gamma, beta, g = _point(rng, shape=(4, 3, 5))
    dx, dgamma, dbeta = numeric.backward(x, gamma, beta, g, EPS)
    assert dx.shape == x.shape and dgamma.shape == (4,) and dbeta.shape == (4,)
    for c in range(4):
        assert dbeta[c] == pytest.approx(math.fsum(g[c].ravel()), rel=1e-14, abs=1e-14)


def test_jvp_matches_central_difference_of_forward():
    rng = np.random.default_rng(3)
    x, gamma, beta, _ = _point(rng)
    tx, tg, tb = rng.standard_normal(x.shape), rng.standard_normal(3), rng.standard_normal(3)
    h = 1e-6
    fd = (numeric.forward(x + h * tx, gamma + h * tg, beta + h * tb, EPS)
          - numeric.forward(x - h * tx, gamma - h * tg, beta - h * tb, EPS)) / (2 * h)
    dy = numeric.jvp(x, gamma, beta, tx, tg, tb, EPS)
    assert np.max(np.abs(dy - fd)) < 1e-7
    assert np.max(np.abs(dy)) > 0.1  # non-trivial direction


def test_all_ones_cotangent_trap_gives_zero_dx_but_generic_does_not():
    """torchlean.md §8.2: with g ≡ 1, dx = 0 for the right rule -- so it cannot test dx."""
    rng = np.random.default_rng(4)
    x, gamma, beta, g = _point(rng)
    dx1, dgamma1, dbeta1 = numeric.backward(x, gamma, beta, np.ones_like(x), EPS)
    assert np.max(np.abs(dx1)) < 1e-14
    assert np.max(np.abs(dgamma1)) < 1e-13
    assert np.allclose(dbeta1, x.shape[1] * x.shape[2])
    dx, _, _ = numeric.backward(x, gamma, beta, g, EPS)
    assert np.max(np.abs(dx)) > 1e-2


# ----------------------------------------------------------------------------------- hypothesis

finite = st.floats(-100, 100, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def bn_points(draw, max_c=3, max_hw=4):
    C = draw(st.integers(1, max_c))
    H = draw(st.integers(1, max_hw))
    W = draw(st.integers(1, max_hw))
    x = draw(arrays(np.float64, (C, H, W), elements=finite))
    gamma = draw(arrays(np.float64, (C,), elements=st.floats(-3, 3, width=64)))
    beta = draw(arrays(np.float64, (C,), elements=st.floats(-3, 3, width=64)))
    g = draw(arrays(np.float64, (C, H, W), elements=st.floats(-3, 3, width=64)))
    return x, gamma, beta, g


@settings(max_examples=60, deadline=None)
@given(bn_points(), st.floats(-1e3, 1e3, width=64))
def test_forward_is_invariant_under_per_channel_shift(pt, shift):
    x, gamma, beta, _ = pt
    shifts = shift * np.arange(1, x.shape[0] + 1, dtype=np.float64)[:, None, None]
    # Shift by an amount whose addition is exact for these inputs is not guaranteed, so compare
    # against the bound a backward-stable evaluation allows: |y − y'| ≲ u·N·|γ|(|x|+|shift|)/std.
    y0 = numeric.forward(x, gamma, beta, EPS)
    y1 = numeric.forward(x + shifts, gamma, beta, EPS)
    std = np.sqrt(x.reshape(x.shape[0], -1).var(axis=1) + EPS)[:, None, None]
    N = x.shape[1] * x.shape[2]
    big = np.abs(x).max(axis=(1, 2), keepdims=True) + np.abs(shifts)
    scale = np.abs(gamma)[:, None, None] * 2 * big / std
    assert np.all(np.abs(y1 - y0) <= 8 * (N + 2) * 2.0 ** -53 * scale)
    # a forward that forgot to subtract the mean is not shift invariant
    c = int(np.argmax(np.abs(gamma)))
    if abs(shift) > 1 and abs(gamma[c]) > 0.1:
        wrong0 = gamma[c] * x[c] / std[c] + beta[c]
        wrong1 = gamma[c] * (x[c] + shifts[c]) / std[c] + beta[c]
        assert np.max(np.abs(wrong1 - wrong0)) > 8 * (N + 2) * 2.0 ** -53 * np.max(scale[c])


@settings(max_examples=60, deadline=None)
@given(bn_points())
def test_dbeta_is_sum_g_and_dgamma_is_sum_g_xhat_and_dx_sums_to_zero(pt):
    x, gamma, beta, g = pt
    dx, dgamma, dbeta = numeric.backward(x, gamma, beta, g, EPS)
    N = x.shape[1] * x.shape[2]
    xhat = numeric.forward(x, np.ones_like(gamma), np.zeros_like(beta), EPS)
    for c in range(x.shape[0]):
        sabs = math.fsum(np.abs(g[c]).ravel())
        assert abs(dbeta[c] - math.fsum(g[c].ravel())) <= 4 * N * 2.0 ** -53 * sabs
        assert abs(dgamma[c] - math.fsum((g[c] * xhat[c]).ravel())) <= 1e-12 * (1 + sabs * np.max(np.abs(xhat[c])))
    # translation invariance of y in x  =>  Σ_p dx_{c,p} = 0 (a rule missing the Σg term breaks it);
    # in floats the residual is ~N·u·|γ| r Σ|g| (1 + max|x̂|) a_max, a_max = (max|x| + mean|x|)/std
    std = np.sqrt(x.reshape(x.shape[0], -1).var(axis=1) + EPS)
    a_max = (np.abs(x).max(axis=(1, 2)) + np.abs(x).mean(axis=(1, 2))) / std
    scale = (np.abs(gamma) / std * np.abs(g).sum(axis=(1, 2))
             * (1 + np.abs(xhat).max(axis=(1, 2))) * (1 + a_max))
    assert np.all(np.abs(dx.sum(axis=(1, 2))) <= 1e-12 * scale + 1e-300)


@settings(max_examples=60, deadline=None)
@given(bn_points(), st.integers(0, 2 ** 32 - 1))
def test_jvp_and_backward_satisfy_the_dot_product_identity(pt, seed):
    """⟨J t, g⟩ = ⟨t, Jᵀ g⟩ (Node.correct / Graph.backprop_correct, torchlean.md §1.4)."""
    x, gamma, beta, g = pt
    rng = np.random.default_rng(seed)
    tx, tg, tb = rng.standard_normal(x.shape), rng.standard_normal(x.shape[0]), rng.standard_normal(x.shape[0])
    dy = numeric.jvp(x, gamma, beta, tx, tg, tb, EPS)
    dx, dgamma, dbeta = numeric.backward(x, gamma, beta, g, EPS)
    terms_l = (dy * g).ravel()
    terms_r = np.concatenate([(tx * dx).ravel(), tg * dgamma, tb * dbeta])
    lhs, rhs = math.fsum(terms_l), math.fsum(terms_r)
    mag = 1 + np.abs(terms_l).sum() + np.abs(terms_r).sum()
    std = np.sqrt(x.reshape(x.shape[0], -1).var(axis=1) + EPS)
    cond = 1 + np.max(np.abs(x)) / np.min(std)
    assert abs(lhs - rhs) <= 1e-13 * mag * cond


@settings(max_examples=30, deadline=None)
@given(bn_points(max_c=2, max_hw=3))
def test_scale_covariance_y_of_ax_with_eps_a2(pt):
    """y(a·x; eps·a²) = y(x; eps) for a > 0 over ℝ.  With a = 4 every float operation scales
    exactly (barring subnormal underflow), so float64 results agree to the last bit in practice;
    a tiny absolute slack covers subnormal rounding.  A forward using sqrt(var) + eps, or eps
    outside the sqrt, breaks the identity."""
    x, gamma, beta, _ = pt
    a = 4.0
    y0 = numeric.forward(x, gamma, beta, EPS)
    y1 = numeric.forward(a * x, gamma, beta, EPS * a * a)
    assert np.allclose(y0, y1, rtol=4 * 2.0 ** -53, atol=1e-300)


# ------------------------------------------------------------------------ namespaces and errors

def test_forward_backward_use_the_given_namespace():
    calls = []

    def wrap(name):
        f = getattr(np, name)

        def g(*args, **kwargs):
            calls.append(name)
            return f(*args, **kwargs)
        return g

    xp = types.SimpleNamespace(mean=wrap("mean"), sum=wrap("sum"), sqrt=wrap("sqrt"))
    rng = np.random.default_rng(5)
    x, gamma, beta, g = _point(rng)
    assert np.array_equal(numeric.forward(x, gamma, beta, EPS, xp), numeric.forward(x, gamma, beta, EPS))
    assert {"mean", "sqrt"} <= set(calls)
    calls.clear()
    for a, b in zip(numeric.backward(x, gamma, beta, g, EPS, xp), numeric.backward(x, gamma, beta, g, EPS)):
        assert np.array_equal(a, b)
    assert {"mean", "sum", "sqrt"} <= set(calls)


def test_symbolic_namespace_backward_equals_sympy_jacobian_transpose():
    """Run the runtime on SymPy object arrays (xp.sqrt = sympy.sqrt) and check the backward
    against the exact Jacobian of the traced forward at a rational point (C=1, H=1, W=3)."""
    xs = sp.symbols("x0:3", real=True)
    gs = sp.symbols("g0:3", real=True)
    gam, bet = sp.symbols("gamma beta", real=True)
    eps = sp.Rational(1, 10 ** 5)
    xp = types.SimpleNamespace(mean=np.mean, sum=np.sum,
                               sqrt=lambda z: np.vectorize(sp.sqrt, otypes=[object])(z))
    X = np.array(xs, dtype=object).reshape(1, 1, 3)
    G = np.array(gs, dtype=object).reshape(1, 1, 3)
    gv, bv = np.array([gam], dtype=object), np.array([bet], dtype=object)
    y = list(numeric.forward(X, gv, bv, eps, xp).ravel())
    dx, dgamma, dbeta = numeric.backward(X, gv, bv, G, eps, xp)
    wrt = list(xs) + [gam, bet]
    J = sp.Matrix(y).jacobian(wrt)
    vjp = J.T * sp.Matrix(gs)
    ours = list(dx.ravel()) + [dgamma[0], dbeta[0]]
    point = {xs[0]: sp.Rational(1, 3), xs[1]: -2, xs[2]: sp.Rational(5, 7), gam: sp.Rational(-3, 2),
             bet: sp.Rational(1, 5), gs[0]: sp.Rational(2, 3), gs[1]: -1, gs[2]: sp.Rational(1, 4)}
    for a, b in zip(vjp, ours):
        diff = (a - b).subs(point)
        assert abs(sp.N(diff, 50)) < sp.Float("1e-45")
    # and a wrong rule (missing the Σg term) is detected by the same check
    wrong = dx.ravel()[0] + gam / 3 * sum(gs) / sp.sqrt(1)  # perturbation proportional to Σg
    assert abs(sp.N((vjp[0] - wrong).subs(point), 30)) > 1e-3


def test_shape_errors():
    x = np.zeros((2, 3, 3))
    with pytest.raises(ValueError, match="x must have shape"):
        numeric.forward(np.zeros((2, 3)), np.ones(2), np.zeros(2), EPS)
    with pytest.raises(ValueError, match="gamma must have shape"):
        numeric.forward(x, np.ones(3), np.zeros(2), EPS)
    with pytest.raises(ValueError, match="beta must have shape"):
        numeric.forward(x, np.ones(2), np.zeros((2, 1)), EPS)
    with pytest.raises(ValueError, match="grad_out must have shape"):
        numeric.backward(x, np.ones(2), np.zeros(2), np.zeros((2, 3, 4)), EPS)
    with pytest.raises(ValueError, match="dgamma must have shape"):
        numeric.jvp(x, np.ones(2), np.zeros(2), x, np.ones(3), np.zeros(2), EPS)
    with pytest.raises(ValueError, match="real floating"):
        numeric.forward(np.zeros((2, 3, 3), dtype=np.int64), np.ones(2), np.zeros(2), EPS)


def test_constant_channel_is_in_domain_and_maps_to_beta():
    """var = 0 with eps > 0: std = sqrt(eps), x̂ = 0, y = β (BugZoo ConstantNormalizationSlice)."""
    x = np.full((2, 2, 2), 3.25)
    gamma, beta = np.array([2.0, -1.0]), np.array([0.5, -0.25])
    y = numeric.forward(x, gamma, beta, EPS)
    assert np.array_equal(y, np.broadcast_to(beta[:, None, None], x.shape))
    g = np.arange(8.0).reshape(2, 2, 2)
    dx, dgamma, dbeta = numeric.backward(x, gamma, beta, g, EPS)
    # dx = γ/sqrt(eps) · (g − mean g) exactly when x̂ = 0
    expect = gamma[:, None, None] / math.sqrt(EPS) * (g - g.mean(axis=(1, 2), keepdims=True))
    assert np.allclose(dx, expect, rtol=1e-14, atol=0)
    assert np.array_equal(dgamma, [0.0, 0.0])


def test_runtime_runs_on_the_project_mpmath_namespace_and_matches_reference():
    """The same forward/backward code on symbolic_bn.xp's mpmath namespace (object arrays of mpf
    at 50 digits) reproduces the independent mpmath reference to the last double bit."""
    xpmod = pytest.importorskip("symbolic_bn.xp")
    if not hasattr(xpmod, "mpmath_namespace"):
        pytest.skip("symbolic_bn.xp has no mpmath_namespace")
    ns = xpmod.mpmath_namespace(50)
    rng = np.random.default_rng(6)
    x, gamma, beta, g = _point(rng)
    ref = reference(x, gamma, beta, EPS, grad_out=g, dps=50)
    y = numeric.forward(ns.asarray(x), ns.asarray(gamma), ns.asarray(beta), EPS, ns)
    dx, dgamma, dbeta = numeric.backward(ns.asarray(x), ns.asarray(gamma), ns.asarray(beta),
                                         ns.asarray(g), EPS, ns)
    for got, want in ((y, ref["y"]), (dx, ref["dx"]), (dgamma, ref["dgamma"]), (dbeta, ref["dbeta"])):
        got = np.array(got, dtype=np.float64)
        assert got.shape == want.shape
        assert np.max(np.abs(got - want) / (np.abs(want) + 1e-300)) <= 2.0 ** -52
