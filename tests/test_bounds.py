"""Inference BatchNorm bounds: proofs, deliberately wrong rules, TorchLean fixtures, modes, bad input."""
from __future__ import annotations

import math
from fractions import Fraction as F

import numpy as np
import pytest
import sympy
from hypothesis import given, settings, strategies as st

from symbolic_bn.bounds import inference as B
from symbolic_bn.exact.decide import sign_exactly


def sgn(v) -> int:
    """Exact sign, independent of the module under test for rationals."""
    v = sympy.sympify(v)
    if v.is_Rational:
        return int(bool(v > 0)) - int(bool(v < 0))
    s = sign_exactly(v)
    assert s is not None
    return s


def bn_exact(x, mean, var, gamma, beta, eps):
    """BN(x) from scratch with exact SymPy numbers and a plain Python max."""
    x, mean, var, gamma, beta, eps = (sympy.Rational(str(v)) if not isinstance(v, sympy.Basic) else v
                                      for v in (x, mean, var, gamma, beta, eps))
    return gamma * (x - mean) / sympy.sqrt(max(var, 0) + eps) + beta


# ---------------------------------------------------------------------------------------------
# Proofs

EXPECTED_NAMES = (
    ["scale_offset_identity", "offset_graph_form", "scale_sign"]
    + [f"ibp_{k}_{c}" for k in ("sound", "exact") for c in ("pos", "neg", "zero")]
    + ["affine_composition", "jacobian_diag", "deriv_chain_rule"]
    + [f"deriv_{k}_{c}" for k in ("sound", "exact") for c in ("pos", "neg", "zero")]
    + ["hessian_zero", "second_deriv_chain_rule"]
    + [f"second_deriv_{k}_{c}" for k in ("sound", "exact") for c in ("pos", "neg", "zero")]
)


@pytest.fixture(scope="module")
def cert():
    return B.prove(budget=60)


def test_every_obligation_proved(cert):
    assert [ob.name for ob in cert] == EXPECTED_NAMES
    assert cert.ok, cert.summary()
    assert cert.counts() == {"proved": len(EXPECTED_NAMES), "failed": 0, "undecided": 0}
    assert cert.subject == "inference BatchNorm bounds"
    for ob in cert:
        assert ob.statement and ob.method and ob.assumptions
        assert any("max(σ²_c, 0) + ε > 0" in a for a in ob.assumptions)
        assert ob.seconds >= 0 and ob.counterexample is None
    d = cert.to_dict()
    assert d["ok"] and len(d["obligations"]) == len(EXPECTED_NAMES)


def test_lean_names(cert):
    assert "batchNorm_inference_eq_mul_add" in cert["scale_offset_identity"].lean_name
    assert "computeScale" in cert["scale_offset_identity"].lean_name
    assert cert["scale_sign"].lean_name is None
    for kind, lean in (("ibp", "ibpBatchnorm"), ("deriv", "derivBatchnorm"),
                       ("second_deriv", "secondDerivBatchnorm")):
        for c in ("pos", "neg", "zero"):
            assert cert[f"{kind}_sound_{c}"].lean_name.endswith(lean)
            assert "Operators/Batchnorm.lean" in cert[f"{kind}_exact_{c}"].lean_name
    assert cert["affine_composition"].lean_name.endswith("affBatchnorm")
    assert "2×3" in cert["affine_composition"].statement  # the sizes are stated


def test_case_split_certificates_are_the_expected_products(cert):
    assert "ibp_hi − BN(x) ≡ s·(hi − x)" in cert["ibp_sound_pos"].detail
    assert "ibp_hi − BN(x) ≡ (−s)·(x − lo)" in cert["ibp_sound_neg"].detail
    assert "≡ 0;" in cert["ibp_sound_zero"].detail
    assert "ibp_lo ≡ T(hi)" in cert["ibp_exact_neg"].detail


# -- deliberately wrong rules -------------------------------------------------------------------


def ibp_no_swap(s, o, lo, hi, sign):
    return s * lo + o, s * hi + o


def ibp_ge(s, o, lo, hi, sign):  # `>=` instead of TorchLean's strict `>`
    pos = sign >= 0
    return B._select(pos, s * lo + o, s * hi + o), B._select(pos, s * hi + o, s * lo + o)


def ibp_widened(s, o, lo, hi, sign):  # sound but not exact
    a, b = B.ibp_rule(s, o, lo, hi, sign)
    return a - 1, b + 1


def affine_no_offset(s, o, A, c):
    return s[:, None] * A, s * c


def deriv_no_swap(s, o, dlo, dhi, sign):
    return s * dlo, s * dhi


def second_deriv_plus_offset(s, o, lo, hi, sign):
    a, b = B.deriv_rule(s, o, lo, hi, sign)
    return a + o, b + o


def scale_without_clamp(gamma, var, eps, ops=B.SYMPY_OPS):
    return gamma / ops.sqrt(var + eps)


def offset_wrong_sign(gamma, beta, mean, var, eps, ops=B.SYMPY_OPS):
    return beta + gamma * mean / ops.sqrt(ops.maximum(var, 0) + eps)


RULES = {"ibp": B.ibp_rule, "deriv": B.deriv_rule, "second_deriv": B.second_deriv_rule}


def _recheck_box(kind, rule, ce):
    """Re-evaluate a box counterexample from scratch: the claimed inequality really fails."""
    g, b, m, v, e = (ce[k] for k in ("gamma", "beta", "mean", "var", "eps"))
    assert all(sympy.sympify(t).is_Rational for t in (g, b, m, v, e))
    root = sympy.sqrt(max(v, 0) + e)
    s = g / root
    o = b - g * m / root
    lo_n, hi_n, pt = ("lo", "hi", "x") if kind == "ibp" else ("dlo", "dhi", "d")
    lo, hi, point = ce[lo_n], ce[hi_n], ce[pt]
    assert sgn(point - lo) >= 0 and sgn(hi - point) >= 0  # the point is in the box
    if kind == "ibp":
        true = bn_exact(point, m, v, g, b, e)
    else:  # d/dt or d²/dt² of BN(x(t)) is scale · (x' or x'')
        true = s * point
    blo, bhi = rule(s, o, lo, hi, sgn(s))
    if ce["claim"].startswith("valid box"):
        assert sgn(hi - lo) >= 0 and sgn(bhi - blo) < 0
    elif ce["claim"].startswith(f"{kind}_lo <="):
        assert sgn(true - blo) < 0
    elif ce["claim"].startswith("value <="):
        assert sgn(bhi - true) < 0
    else:  # exactness: the bound is attained at neither corner
        if kind == "ibp":
            t_lo, t_hi = bn_exact(lo, m, v, g, b, e), bn_exact(hi, m, v, g, b, e)
        else:
            t_lo, t_hi = s * lo, s * hi
        bound = blo if "_lo equals" in ce["claim"] else bhi
        assert sgn(bound - t_lo) != 0 and sgn(bound - t_hi) != 0


@pytest.mark.parametrize("kind, rule, expect_failed, expect_undecided", [
    # without the swap the box is inverted for γ < 0: unsound, and not exact either (each bound
    # is a corner value, but lower > upper)
    ("ibp", ibp_no_swap, {"ibp_sound_neg", "ibp_exact_neg"}, set()),
    ("deriv", deriv_no_swap, {"deriv_sound_neg", "deriv_exact_neg"}, set()),
    ("second_deriv", second_deriv_plus_offset,
     {f"second_deriv_{k}_{c}" for k in ("sound", "exact") for c in ("pos", "neg", "zero")}, set()),
    # sound but not exact: exactness fails; soundness is true but outside the certificate form
    # (hi' - BN(x) = s·(hi - x) + 1), and no counterexample exists, so it is undecided
    ("ibp", ibp_widened, {"ibp_exact_pos", "ibp_exact_neg", "ibp_exact_zero"},
     {"ibp_sound_pos", "ibp_sound_neg", "ibp_sound_zero"}),
])
def test_wrong_box_rule_fails_with_real_counterexample(kind, rule, expect_failed, expect_undecided):
    c = B.prove(rules={kind: rule})
    assert not c.ok
    assert {ob.name for ob in c.failed()} == expect_failed
    assert {ob.name for ob in c.undecided()} == expect_undecided
    for ob in c.failed():
        assert ob.counterexample
        _recheck_box(kind, rule, ob.counterexample)


def test_ge_instead_of_strict_gt_is_harmless():
    """`s >= 0` takes the then-branch at s = 0, where both branches equal the offset: proved."""
    c = B.prove(rules={"ibp": ibp_ge})
    assert c.ok, c.summary()
    # and numerically: at gamma = 0 the two rules agree exactly, elsewhere too
    p = B.BatchNormParams([F(1), F(2)], [F(4), F(-1)], [F(0), F(-3)], [F(5), F(1)], F(1, 4))
    s, o = B.scale(p), B.offset(p)
    sign = np.array([sgn(v) for v in s])
    lo = np.array([F(-2), F(1)], dtype=object)
    hi = np.array([F(3), F(7)], dtype=object)
    a = B.ibp_rule(s, o, lo, hi, sign)
    b = ibp_ge(s, o, lo, hi, sign)
    assert all(sympy.sympify(x - y) == 0 for x, y in zip(np.concatenate(a), np.concatenate(b)))
    assert a[0][0] == a[1][0] == 5  # s = 0: the box collapses to beta


def test_affine_without_offset_fails_with_real_counterexample():
    c = B.prove(rules={"affine": affine_no_offset})
    assert [ob.name for ob in c.failed()] == ["affine_composition"]
    ce = c["affine_composition"].counterexample
    i = int(ce["component"].split()[-1])
    A = np.array([[ce[f"A_{r}{j}"] for j in range(3)] for r in range(2)], dtype=object)
    cv = np.array([ce["c_0"], ce["c_1"]], dtype=object)
    x = [ce[f"x_{j}"] for j in range(3)]
    params = [(ce[f"mean[{k}]"], ce[f"var[{k}]"], ce[f"gamma[{k}]"], ce[f"beta[{k}]"]) for k in range(2)]
    s = np.array([g / sympy.sqrt(max(v, 0) + ce["eps"]) for (_, v, g, _) in params], dtype=object)
    A2, c2 = affine_no_offset(s, None, A, cv)
    m, v, g, b = params[i]
    lhs = bn_exact(sum(A[i, j] * x[j] for j in range(3)) + cv[i], m, v, g, b, ce["eps"])
    rhs = sum(A2[i, j] * x[j] for j in range(3)) + c2[i]
    assert sgn(lhs - rhs) != 0
    assert sympy.sympify(lhs - ce["lhs"]) == 0 and sympy.sympify(rhs - ce["rhs"]) == 0


@pytest.mark.parametrize("name, rule, must_fail", [
    ("scale", scale_without_clamp, "scale_offset_identity"),
    ("offset", offset_wrong_sign, "scale_offset_identity"),
])
def test_wrong_scale_or_offset_fails(name, rule, must_fail):
    c = B.prove(rules={name: rule})
    ob = c[must_fail]
    assert ob.status == "failed"
    ce = ob.counterexample
    if name == "scale":
        assert ce["var"] < 0  # exactly the totalization max(var, 0) is what was dropped
    m, v, g, b, e, x = (ce[k] for k in ("mean", "var", "gamma", "beta", "eps", "x"))
    wrong = (rule(g, v, e) * x + B.compute_offset(g, b, m, v, e) if name == "scale"
             else B.compute_scale(g, v, e) * x + rule(g, b, m, v, e))
    assert sgn(bn_exact(x, m, v, g, b, e) - wrong) != 0


def test_prove_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown rule names"):
        B.prove(rules={"ibpp": B.ibp_rule})
    with pytest.raises(ValueError, match="must be callable"):
        B.prove(rules={"ibp": 3})
    with pytest.raises(ValueError, match="budget"):
        B.prove(budget=-1)


# ---------------------------------------------------------------------------------------------
# TorchLean fixtures

X81 = np.array([1, 2, 3, 4, -5, -6, -7, -8, 9, 10, 11, 12, -13, -14, -15, -16],
               dtype=float).reshape(2, 2, 2, 2)
EXPECTED81 = [-0.499999375, 0, 0.499999375, 0.99999875, -0.2333331481, -0.3999997222,
              -0.5666662963, -0.7333328704, 3.499995625, 3.999995, 4.499994375, 4.99999375,
              -1.566665741, -1.733332315, -1.899998889, -2.066665463]


def params81(**kw):
    return B.BatchNormParams([2.0, -3.0], [4.0, 9.0], [1.0, 0.5], [0.0, 0.1], 1e-5, **kw)


def test_torchlean_8_1_degenerate_box_first_entry():
    p = B.BatchNormParams([2.0], [4.0], [1.0], [0.0], 1e-5)
    lo, hi = B.ibp(p, [1.0], [1.0])
    assert abs(lo[0] - (-0.49999937500)) <= 1e-5 and abs(hi[0] - (-0.49999937500)) <= 1e-5
    assert abs(lo[0] - (-0.499999375001171875)) < 1e-15


def test_torchlean_8_1_full_nchw_output():
    lo, hi = B.ibp(params81(), X81, X81, channel_axis=1)
    assert lo.shape == hi.shape == (2, 2, 2, 2)
    assert np.array_equal(lo, hi)
    assert np.allclose(lo.ravel(), EXPECTED81, rtol=0, atol=1e-5)  # TorchLean's assertApprox
    assert np.allclose(lo.ravel(), EXPECTED81, rtol=0, atol=6e-10)  # the listed digits
    # the formula TorchLean's test uses, in float64
    mean, var, gamma, beta = (np.array(v)[None, :, None, None] for v in
                              ([2.0, -3.0], [4.0, 9.0], [1.0, 0.5], [0.0, 0.1]))
    expected = (X81 - mean) / np.sqrt(np.maximum(var, 0) + 1e-5) * gamma + beta
    assert np.allclose(lo, expected, rtol=0, atol=1e-15)


def test_torchlean_8_1_exact_mode_agrees():
    pe = B.BatchNormParams([2, -3], [4, 9], [1, F(1, 2)], [0, F(1, 10)], F(1, 100000))
    lo, hi = B.ibp(pe, X81, X81, channel_axis=1)
    assert lo.dtype == object and all(isinstance(v, sympy.Expr) for v in lo.ravel())
    assert all(sympy.sympify(a - b) == 0 for a, b in zip(lo.ravel(), hi.ravel()))
    # exact values: channel 0 entry x=1: (1 - 2)/sqrt(4 + 1/100000)
    assert sympy.sympify(lo[0, 0, 0, 0] - (-1 / sympy.sqrt(sympy.Rational(400001, 100000)))) == 0
    assert np.allclose(np.array([float(v) for v in lo.ravel()]), EXPECTED81, atol=6e-10, rtol=0)


def test_torchlean_8_4_negative_variance_totalization():
    p = B.BatchNormParams([1], [-4], [2], [3], 1)
    assert not p.exact
    assert B.scale(p).tolist() == [2.0] and B.offset(p).tolist() == [1.0]
    pf = B.BatchNormParams([F(1)], [F(-4)], [F(2)], [F(3)], F(1))
    assert pf.exact
    s, o = B.scale(pf)[0], B.offset(pf)[0]
    assert isinstance(s, sympy.Integer) and s == 2 and s == F(2)
    assert isinstance(o, sympy.Integer) and o == 1
    ps = B.BatchNormParams([sympy.Integer(1)], [sympy.Integer(-4)], [sympy.Integer(2)],
                           [sympy.Integer(3)], sympy.Integer(1))
    assert B.scale(ps)[0] == 2 and B.offset(ps)[0] == 1
    lo, hi = B.ibp(pf, [F(-1)], [F(5)])
    assert (lo[0], hi[0]) == (-1, 11)


# ---------------------------------------------------------------------------------------------
# Shapes and modes


def test_channel_axis_variants_agree():
    rng = np.random.default_rng(0)
    p = B.BatchNormParams(rng.normal(size=3), rng.normal(size=3), [1.5, -0.5, 0.0],
                          rng.normal(size=3), 1e-3)
    x = rng.normal(size=(4, 3, 2, 5))
    w = rng.uniform(0, 1, size=x.shape)
    lo1, hi1 = B.ibp(p, x, x + w, channel_axis=1)
    lo2, hi2 = B.ibp(p, np.moveaxis(x, 1, -1), np.moveaxis(x + w, 1, -1), channel_axis=-1)
    assert np.array_equal(np.moveaxis(lo1, 1, -1), lo2) and np.array_equal(np.moveaxis(hi1, 1, -1), hi2)
    # 1-D feature vector, channel by channel
    for n in range(4):
        lo3, hi3 = B.ibp(p, x[n, :, 0, 0], (x + w)[n, :, 0, 0])
        assert np.array_equal(lo3, lo1[n, :, 0, 0]) and np.array_equal(hi3, hi1[n, :, 0, 0])
    # zero gamma: box collapses to beta
    assert np.all(lo1[:, 2] == p.beta[2]) and np.all(hi1[:, 2] == p.beta[2])


def test_deriv_and_second_deriv():
    p = B.BatchNormParams([0.0, 0.0, 5.0], [3.0, 0.0, 1.0], [2.0, -1.0, 0.0], [7.0, 7.0, 7.0], 1.0)
    s = B.scale(p)
    dlo, dhi = np.array([-1.0, -1.0, -1.0]), np.array([3.0, 3.0, 3.0])
    lo, hi = B.deriv(p, dlo, dhi)
    assert np.array_equal(lo, [s[0] * -1, s[1] * 3, 0.0]) and np.array_equal(hi, [s[0] * 3, s[1] * -1, 0.0])
    assert np.array_equal(np.stack(B.second_deriv(p, dlo, dhi)), np.stack((lo, hi)))  # no offset
    pe = B.BatchNormParams([0, 0], [3, 0], [2, -1], [7, 7], 1)
    lo_e, hi_e = B.deriv(pe, [F(-1), F(-1)], [3, 3])
    assert sympy.sympify(lo_e[0] - (-1)) == 0 and sympy.sympify(hi_e[0] - 3) == 0  # s = 2/sqrt(4)
    assert lo_e[1] == -3 and hi_e[1] == 1


def test_affine_float_and_exact():
    p = B.BatchNormParams([1.0, -2.0], [4.0, -4.0], [2.0, -0.5], [3.0, 0.0], 5.0)
    A = np.arange(6.0).reshape(2, 3)
    c = np.array([1.0, -1.0])
    A2, c2 = B.affine(p, A, c)
    s, o = B.scale(p), B.offset(p)
    assert np.array_equal(A2, s[:, None] * A) and np.array_equal(c2, s * c + o)
    pe = B.BatchNormParams([1, -2], [4, -4], [2, F(-1, 2)], [3, 0], 5)
    A2e, c2e = B.affine(pe, A, c)
    x = [F(1, 3), F(-2), F(5)]
    for i in range(2):
        pre = sum(F(A[i, j]) * x[j] for j in range(3)) + F(c[i])
        m, v, g, b = (pe.running_mean[i], pe.running_var[i], pe.gamma[i], pe.beta[i])
        lhs = bn_exact(pre, m, v, g, b, 5)
        rhs = sum(A2e[i, j] * x[j] for j in range(3)) + c2e[i]
        assert sgn(lhs - rhs) == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.fractions(-5, 5, max_denominator=7),   # mean
                       st.fractions(-5, 5, max_denominator=7),   # var (negative too)
                       st.fractions(-5, 5, max_denominator=7),   # gamma (0 too)
                       st.fractions(-5, 5, max_denominator=7)),  # beta
             min_size=1, max_size=3),
    st.fractions(F(1, 9), 3, max_denominator=9),                 # eps
    st.data(),
)
def test_exact_ibp_is_sound_and_attained(channels, eps, data):
    mean, var, gamma, beta = (list(t) for t in zip(*channels))
    p = B.BatchNormParams(mean, var, gamma, beta, eps)
    C = len(channels)
    lo = [data.draw(st.fractions(-9, 9, max_denominator=5)) for _ in range(C)]
    hi = [l + data.draw(st.fractions(0, 9, max_denominator=5)) for l in lo]
    olo, ohi = B.ibp(p, lo, hi)
    for i in range(C):
        t = data.draw(st.fractions(0, 1, max_denominator=6))
        x = lo[i] + t * (hi[i] - lo[i])
        y = bn_exact(x, mean[i], var[i], gamma[i], beta[i], eps)
        assert sgn(y - olo[i]) >= 0 and sgn(ohi[i] - y) >= 0
        corners = [bn_exact(c, mean[i], var[i], gamma[i], beta[i], eps) for c in (lo[i], hi[i])]
        assert any(sgn(olo[i] - c) == 0 for c in corners)
        assert any(sgn(ohi[i] - c) == 0 for c in corners)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6), st.floats(-1e3, 1e3),
                          st.floats(-1e3, 1e3), st.floats(-1e3, 1e3), st.floats(0, 1e3)),
                min_size=1, max_size=4),
       st.floats(1e-8, 1.0))
def test_float_ibp_matches_torchlean_formula(rows, eps):
    mean, var, gamma, beta, x, w = (np.array(t) for t in zip(*rows))
    p = B.BatchNormParams(mean, var, gamma, beta, eps)
    lo, hi = B.ibp(p, x, x + w)
    s = gamma / np.sqrt(np.maximum(var, 0) + eps)
    o = beta - gamma * mean / np.sqrt(np.maximum(var, 0) + eps)
    assert np.array_equal(lo, np.where(s > 0, s * x + o, s * (x + w) + o))
    assert np.array_equal(hi, np.where(s > 0, s * (x + w) + o, s * x + o))
    assert np.all(lo <= hi)


def test_mixed_containers():
    # float params + exact box: exact computation with the params' binary values
    p = B.BatchNormParams([0.0], [0.0], [1.0], [0.0], 0.25)
    lo, hi = B.ibp(p, [F(1, 3)], [F(1, 2)])
    assert lo[0] == sympy.Rational(2, 3) and hi[0] == 1
    p2 = B.BatchNormParams([0.0], [0.0], [1.0], [0.0], 0.1)   # 0.1 as a binary float
    lo2, _ = B.ibp(p2, [F(1)], [F(1)])
    assert sympy.sympify(lo2[0] - 1 / sympy.sqrt(sympy.Rational(F(0.1).numerator, F(0.1).denominator))) == 0
    p3 = B.BatchNormParams([0.0], [0.0], [1.0], [0.0], F(1, 10))  # exact container: decimals
    lo3, _ = B.ibp(p3, [1.0], [1.0])
    assert sympy.sympify(lo3[0] - sympy.sqrt(10)) == 0


# ---------------------------------------------------------------------------------------------
# Bad input


GOOD = dict(running_mean=[0.0, 1.0], running_var=[1.0, 2.0], gamma=[1.0, -1.0], beta=[0.0, 0.5],
            eps=1e-5)


@pytest.mark.parametrize("change, match", [
    (dict(running_var=[1.0]), r"mismatched lengths.*running_var has 1"),
    (dict(gamma=[1.0, 2.0, 3.0]), r"mismatched lengths.*gamma has 3"),
    (dict(running_mean=[], running_var=[], gamma=[], beta=[]), "at least one channel"),
    (dict(gamma=[float("nan"), 1.0]), r"gamma\[0\] is NaN"),
    (dict(beta=[0.0, float("inf")]), r"beta\[1\] is inf \(not finite\)"),
    (dict(eps=float("-inf")), r"eps is -inf"),
    (dict(running_mean=[0.0, sympy.oo]), r"running_mean\[1\] = oo is not finite"),
    (dict(running_var=[-1.0, 2.0], eps=0.0), r"max\(running_var\[0\], 0\) \+ eps = 0 must be > 0"),
    (dict(eps=-3.0), r"max\(running_var\[0\], 0\) \+ eps = -2 must be > 0"),
    (dict(running_var=[F(-1), F(1)], eps=F(-1)), r"max\(running_var\[0\], 0\) \+ eps = -1 must be > 0"),
    (dict(gamma=1.0), "gamma must be a 1-D sequence"),
    (dict(gamma=[[1.0], [2.0]]), "gamma must be a 1-D sequence"),
    (dict(gamma=["a", "b"]), r"gamma\[0\] must be a real number"),
    (dict(gamma=[True, 1.0]), r"gamma\[0\] must be a real number, got a bool"),
    (dict(gamma=[1j, 1.0]), r"gamma\[0\] must be a real number, got the complex"),
    (dict(gamma=[sympy.Symbol("g"), 1]), r"gamma\[0\] = g contains symbols"),
    (dict(eps=[1e-5]), "eps must be a single real number"),
])
def test_bad_params(change, match):
    with pytest.raises(ValueError, match=match):
        B.BatchNormParams(**{**GOOD, **change})


def test_bad_boxes():
    p = B.BatchNormParams(**GOOD)
    with pytest.raises(ValueError, match=r"lo > hi at index \[1\]"):
        B.ibp(p, [0.0, 2.0], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"lo > hi at index \[0, 1, 0\]"):
        B.ibp(p, np.zeros((1, 2, 1)) + [[[0], [5]]], np.ones((1, 2, 1)), channel_axis=1)
    with pytest.raises(ValueError, match=r"lo > hi at index \[0\]"):
        B.ibp(p, [F(1, 2), 0], [F(1, 3), 0])
    with pytest.raises(ValueError, match=r"dlo > dhi"):
        B.deriv(p, [1.0, 0.0], [0.0, 0.0])
    with pytest.raises(ValueError, match=r"lo\[1\] is NaN"):
        B.ibp(p, [0.0, float("nan")], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"hi\[0, 1\] is inf \(not finite\)"):
        B.ibp(p, [[0.0, 0.0]], [[1.0, np.inf]], channel_axis=1)
    with pytest.raises(ValueError, match=r"lo has shape \(2,\) but hi has shape \(3,\)"):
        B.ibp(p, [0.0, 0.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"3 entries along channel_axis=0 .* 2 channels"):
        B.ibp(p, [0.0] * 3, [1.0] * 3)
    with pytest.raises(ValueError, match="channel_axis=2 is out of range"):
        B.ibp(p, [[0.0, 0.0]], [[1.0, 1.0]], channel_axis=2)
    with pytest.raises(ValueError, match="at least one axis"):
        B.ibp(p, 0.0, 1.0)
    with pytest.raises(ValueError, match="rounding must be one of"):
        B.ibp(p, [0.0, 0.0], [1.0, 1.0], rounding="up")
    with pytest.raises(ValueError, match="rectangular"):
        B.ibp(p, [[0.0], [0.0, 1.0]], [[1.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match="boolean"):
        B.ibp(p, np.array([False, False]), np.array([True, True]))
    with pytest.raises(ValueError, match="p must be a BatchNormParams"):
        B.ibp({"gamma": [1]}, [0.0], [1.0])
    with pytest.raises(ValueError, match=r"A has 3 rows"):
        B.affine(p, np.zeros((3, 2)), [0.0, 0.0])
    with pytest.raises(ValueError, match=r"c must have shape \(2,\)"):
        B.affine(p, np.zeros((2, 2)), [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match=r"A\[1, 0\] is NaN"):
        B.affine(p, np.array([[0.0], [np.nan]]), [0.0, 0.0])


def test_overflow_is_an_error_in_nearest_mode_never_a_nan_box():
    p = B.BatchNormParams([0.0], [0.0], [1e300], [0.0], 1e-300)  # scale 1e450
    with pytest.raises(ValueError, match="scale of channel 0 overflows float64"):
        B.ibp(p, [0.0], [1.0])
    p2 = B.BatchNormParams([0.0], [0.0], [1e200], [0.0], 1.0)
    with pytest.raises(ValueError, match="upper bound at index \\[0\\] overflows"):
        B.ibp(p2, [0.0], [1e200])
    lo, hi = B.ibp(p, [0.0], [1.0], rounding="outward")  # sound, ±inf allowed, never NaN
    assert lo[0] == 0.0 and hi[0] == np.inf
    lo, hi = B.ibp(p, [-1.0], [1.0], rounding="outward")
    assert lo[0] == -np.inf and hi[0] == np.inf


# ---------------------------------------------------------------------------------------------
# Review regressions


def test_sympy_float_is_refused_not_rounded_to_a_double():
    """S1: a 30-digit SymPy Float used to be rounded to the double 1.0, so exact mode returned
    hi' = 1 for hi = 1.000000000000000000001 (and an outward box could miss the image)."""
    pe = B.BatchNormParams([0], [0], [1], [0], 1)
    big = sympy.Float("1.000000000000000000001", 30)
    for rounding in ("nearest", "outward"):
        with pytest.raises(ValueError, match=r"hi\[0\] = 1\.0+1\d* is an inexact SymPy Float"):
            B.ibp(pe, [0], [big], rounding=rounding)
    with pytest.raises(ValueError, match=r"gamma\[0\] .* inexact SymPy Float"):
        B.BatchNormParams([0], [0], [sympy.Float(1.5)], [0], 1)
    with pytest.raises(ValueError, match=r"eps .* inexact SymPy Float; pass a Rational, Fraction"):
        B.BatchNormParams([0], [0], [1], [0], sympy.Float("1e-5"))
    with pytest.raises(ValueError, match=r"beta\[0\] .* inexact SymPy Float"):  # inside an expression
        B.BatchNormParams([0], [0], [1], [sympy.sqrt(2) * sympy.Float("1.5")], 1)
    with pytest.raises(ValueError, match=r"A\[1, 0\] .* inexact SymPy Float"):
        B.affine(B.BatchNormParams([0, 0], [0, 0], [1, 1], [0, 0], 1),
                 np.array([[F(1)], [sympy.Float(2.0)]], dtype=object), [0, 0])
    # the same value as a Rational works and is not rounded
    lo, hi = B.ibp(pe, [0], [sympy.Rational("1.000000000000000000001")])
    assert hi[0] == sympy.Rational("1.000000000000000000001") and hi[0] != 1


def test_nearest_mode_overflowing_denominator_is_an_error_and_outward_is_right():
    """S3: max(var, 0) + eps = 1e308 + 1e308 overflowed to inf, giving scale 0 and the box [0, 0]
    for [1, 2] (true scale 1e300/sqrt(2e308) ≈ 7.07e145)."""
    p = B.BatchNormParams([0.], [1e308], [1e300], [0.], 1e308)
    for call in (lambda: B.scale(p), lambda: B.offset(p), lambda: B.ibp(p, [1.], [2.]),
                 lambda: B.deriv(p, [1.], [2.]), lambda: B.affine(p, [[1.]], [0.])):
        with pytest.raises(ValueError, match=r"float64 overflowed: max\(running_var\[0\], 0\) \+ "
                                             r"eps is inf.*rounding='outward' or exact"):
            call()
    lo, hi = B.ibp(p, [1.], [2.], rounding="outward")
    # the exact image is [s, 2s] with s = g/sqrt(d) (binary values); checked with rationals only:
    # for f > 0, f <= k·s  <=>  f²·d <= k²·g²
    g, d = F(1e300), F(1e308) + F(1e308)
    assert 0 < lo[0] <= hi[0] < np.inf
    assert F(lo[0]) ** 2 * d <= g * g and F(hi[0]) ** 2 * d >= 4 * g * g
    s = 1e300 / (math.sqrt(2.0) * 1e154)
    assert abs(lo[0] / s - 1) < 1e-14 and abs(hi[0] / (2 * s) - 1) < 1e-14  # and tight
    # exact parameters: the exact scale
    pe = B.BatchNormParams([F(0)], [F(1e308)], [F(1e300)], [F(0)], F(1e308))
    assert sympy.simplify(B.scale(pe)[0] - sympy.Rational(F(1e300)) / sympy.sqrt(sympy.Rational(d))) == 0


def test_inverted_box_is_not_called_exact():
    """The no-swap rule used to get ibp_exact_neg 'proved' (each bound is a corner value)."""
    c = B.prove(rules={"ibp": ibp_no_swap})
    ob = c["ibp_exact_neg"]
    assert ob.status == "failed" and "inverted" in ob.detail
    ce = ob.counterexample
    assert ce["claim"] == "valid box: ibp_lo <= ibp_hi"
    _recheck_box("ibp", ibp_no_swap, ce)
    assert c["ibp_exact_pos"].status == c["ibp_exact_zero"].status == "proved"
    assert "valid box" in c["ibp_exact_pos"].statement
    good = B.prove()
    assert "ibp_hi − ibp_lo ≡ (−s)·(hi − lo) ≥ 0" in good["ibp_exact_neg"].detail


def affine_broadcast_bug(s, o, A, c):  # A*s broadcasts along the wrong axis
    return A * s, s * c + o


def ibp_python_minmax(s, o, lo, hi, sign):  # min/max cannot order symbolic expressions
    return min(s * lo + o, s * hi + o), max(s * lo + o, s * hi + o)


def scale_with_float(gamma, var, eps, ops=B.SYMPY_OPS):  # a float constant: inexact
    return 1.0 * gamma / ops.sqrt(ops.maximum(var, 0) + eps)


def scale_with_float_wrong(gamma, var, eps, ops=B.SYMPY_OPS):
    return gamma / ops.sqrt(ops.maximum(var, 0) + eps + 0.5)


def ibp_raises_always(s, o, lo, hi, sign):
    raise RuntimeError("boom")


@pytest.mark.parametrize("name, rule, exc, obligations", [
    ("affine", affine_broadcast_bug, "ValueError", {"affine_composition"}),
    ("ibp", ibp_python_minmax, "TypeError",
     {f"ibp_{k}_{c}" for k in ("sound", "exact") for c in ("pos", "neg")}),
    ("scale", scale_with_float, "TypeError", None),
    ("scale", scale_with_float_wrong, "TypeError", None),
    ("ibp", ibp_raises_always, "RuntimeError",
     {f"ibp_{k}_{c}" for k in ("sound", "exact") for c in ("pos", "neg", "zero")}),
])
def test_a_rule_that_raises_is_reported_never_a_crash_never_proved(name, rule, exc, obligations):
    """S4: prove(rules=...) used to crash on these rules."""
    c = B.prove(rules={name: rule})
    assert not c.ok
    bad = {ob.name for ob in c if ob.status != "proved"}
    if obligations is not None:
        assert bad == obligations
    else:
        assert "scale_offset_identity" in bad and len(bad) > 5
    for ob in c:
        if ob.name in bad:
            assert ob.status == "undecided" and ob.counterexample is None, (ob.name, ob.status)
            assert f"the rule raised {exc}" in ob.detail, ob.detail
