"""Float-sound ('outward') BatchNorm boxes contain the exact real image.

The exact image is decided here independently of the library, with exact rationals only: the
float inputs are taken at their binary values (``Fraction(float)``), and ``BN(x) − f`` is compared
with 0 without any square root, since for ``R = sqrt(d) > 0``

    sign(u/R + w) = sign(u + w·R),  and  u + w·R  with signs of u, w mixed  compares u² with w²·d.
"""
from __future__ import annotations

import math
from fractions import Fraction as F

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from symbolic_bn.bounds import inference as B


def sign_bn_minus(f, gamma, x, mean, d, beta) -> int:
    """Exact sign of BN(x) − f = gamma·(x − mean)/sqrt(d) + beta − f, all arguments rational."""
    u = F(gamma) * (F(x) - F(mean))
    w = F(beta) - F(f)
    if u >= 0 and w >= 0:
        return 0 if u == 0 and w == 0 else 1
    if u <= 0 and w <= 0:
        return -1
    diff = u * u - w * w * F(d)   # |u| vs |w|·R
    if u > 0:  # w < 0
        return (diff > 0) - (diff < 0)
    return (diff < 0) - (diff > 0)  # u < 0 < w


def below(f, *args) -> bool:
    """f ≤ BN(x), exactly (−inf always is)."""
    return f == -math.inf or (f != math.inf and sign_bn_minus(f, *args) >= 0)


def above(f, *args) -> bool:
    """f ≥ BN(x), exactly (+inf always is)."""
    return f == math.inf or (f != -math.inf and sign_bn_minus(f, *args) <= 0)


def exact_image_checks(p, lo, hi, out_lo, out_hi, channel_axis):
    """For every box entry: out_lo ≤ min image and out_hi ≥ max image (exactly).  Returns the
    number of entries checked."""
    C = p.dim
    lo_m, hi_m = np.moveaxis(lo, channel_axis, -1), np.moveaxis(hi, channel_axis, -1)
    olo_m, ohi_m = np.moveaxis(out_lo, channel_axis, -1), np.moveaxis(out_hi, channel_axis, -1)
    n = 0
    for c in range(C):
        g, b, m, v = (F(p.gamma[c]), F(p.beta[c]), F(p.running_mean[c]), F(p.running_var[c]))
        d = max(v, F(0)) + F(p.eps)
        for idx in np.ndindex(lo_m.shape[:-1]):
            xl, xh = float(lo_m[idx + (c,)]), float(hi_m[idx + (c,)])
            fl, fh = float(olo_m[idx + (c,)]), float(ohi_m[idx + (c,)])
            assert not (math.isnan(fl) or math.isnan(fh))
            # the image is [BN(corner), BN(other corner)]: check the bounds against both corners
            for xc in (xl, xh):
                assert below(fl, g, xc, m, d, b), (c, idx, xl, xh, fl)
                assert above(fh, g, xc, m, d, b), (c, idx, xl, xh, fh)
            n += 1
    return n


def random_params(rng, C):
    def mag(lo, hi, size):
        return 10.0 ** rng.uniform(lo, hi, size)

    sgn = rng.choice([-1.0, 1.0], C)
    gamma = sgn * mag(-30, 30, C)
    gamma[rng.random(C) < 0.1] = 0.0
    mean = rng.choice([-1.0, 1.0], C) * mag(-30, 30, C)
    mean[rng.random(C) < 0.1] = 0.0
    var = mag(-30, 30, C)
    r = rng.random(C)
    var[r < 0.1] = 0.0
    var[(r >= 0.1) & (r < 0.2)] *= -1.0                 # negative running variance: totalized
    beta = rng.choice([-1.0, 1.0], C) * mag(-30, 30, C)
    beta[rng.random(C) < 0.1] = 0.0
    eps = float(mag(-30, 0, 1)[0])
    # small integer-valued channels too (exact products are common there)
    k = rng.random(C) < 0.1
    gamma[k] = rng.integers(-3, 4, k.sum()).astype(float)
    return B.BatchNormParams(mean, var, gamma, beta, eps)


def random_box(rng, shape):
    center = rng.choice([-1.0, 1.0], shape) * 10.0 ** rng.uniform(-30, 30, shape)
    center[rng.random(shape) < 0.05] = 0.0
    radius = 10.0 ** rng.uniform(-30, 30, shape)
    radius[rng.random(shape) < 0.2] = 0.0                # degenerate boxes
    lo, hi = center - radius, center + radius
    return lo, hi


def test_outward_contains_exact_image_over_many_magnitudes():
    rng = np.random.default_rng(20260521)
    checked = nearest_misses = outward_wins = 0
    for _ in range(120):
        C = 12
        p = random_params(rng, C)
        lo, hi = random_box(rng, (3, C))
        out_lo, out_hi = B.ibp(p, lo, hi, channel_axis=1, rounding="outward")
        assert out_lo.dtype == np.float64 and out_lo.shape == lo.shape
        assert np.all(np.isfinite(out_lo)) and np.all(np.isfinite(out_hi))  # no overflow here
        assert np.all(out_lo <= out_hi)
        checked += exact_image_checks(p, lo, hi, out_lo, out_hi, 1)
        # round to nearest: within a few ulps of the outward box (which is therefore tight), but
        # not always containing the image (nearest may land on either side of an exact endpoint)
        n_lo, n_hi = B.ibp(p, lo, hi, channel_axis=1)
        s, o = B.scale(p)[None, :], B.offset(p)[None, :]
        mag = np.abs(s) * np.maximum(np.abs(lo), np.abs(hi)) + np.abs(o)
        slack = 8 * np.spacing(mag) + 1e-307
        assert np.all(np.abs(n_lo - out_lo) <= slack) and np.all(np.abs(out_hi - n_hi) <= slack)
        for c in range(C):
            g, b, m, v = (F(p.gamma[c]), F(p.beta[c]), F(p.running_mean[c]), F(p.running_var[c]))
            d = max(v, F(0)) + F(p.eps)
            for n in range(3):
                corners = (float(lo[n, c]), float(hi[n, c]))
                miss_lo = not all(below(float(n_lo[n, c]), g, xc, m, d, b) for xc in corners)
                miss_hi = not all(above(float(n_hi[n, c]), g, xc, m, d, b) for xc in corners)
                if miss_lo or miss_hi:
                    nearest_misses += 1
                    outward_wins += 1  # the outward box was checked to contain it above
    assert checked == 120 * 3 * 12
    # the nearest box misses part of the exact image often: outward mode is not a formality
    assert nearest_misses > 100 and outward_wins == nearest_misses


_DBL_MAX = float(np.finfo(np.float64).max)
_TINY = float(np.finfo(np.float64).tiny)  # smallest normal; below it: subnormals


def extreme_values(rng, size, lo_exp=-323.5, hi_exp=308.25):
    """Signed values over the whole float64 range: 10**U(lo_exp, hi_exp) (subnormals included),
    plus ±DBL_MAX, ±5e-324, ±0 and random subnormals."""
    v = 10.0 ** rng.uniform(lo_exp, hi_exp, size)
    r = rng.random(size)
    v[r < 0.05] = _DBL_MAX
    v[(r >= 0.05) & (r < 0.1)] = 5e-324
    v[(r >= 0.1) & (r < 0.15)] = 0.0
    sub = (r >= 0.15) & (r < 0.2)
    v[sub] = _TINY * rng.random(sub.sum())
    return v * rng.choice([-1.0, 1.0], size)


def test_outward_contains_exact_image_at_the_float_extremes():
    """Review sweep, bounded: parameters and boxes from ±DBL_MAX down to subnormals, eps from
    5e-324 to DBL_MAX.  The outward box always contains the exact image (±inf allowed, never
    NaN, never inverted); round-to-nearest either answers or raises ValueError (float64
    overflow), never returns NaN or inf."""
    rng = np.random.default_rng(20260522)
    checked = infinite = nearest_refused = 0
    for i in range(150):
        C = 6
        mean, var, gamma, beta = (extreme_values(rng, C) for _ in range(4))
        eps = (5e-324, _DBL_MAX)[i] if i < 2 else abs(float(extreme_values(rng, 1)[0])) or 5e-324
        p = B.BatchNormParams(mean, var, gamma, beta, eps)
        a, b = extreme_values(rng, (2, C)), extreme_values(rng, (2, C))
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        out_lo, out_hi = B.ibp(p, lo, hi, channel_axis=1, rounding="outward")
        assert not (np.isnan(out_lo).any() or np.isnan(out_hi).any())
        assert np.all(out_lo <= out_hi)
        infinite += int((~np.isfinite(out_lo)).sum() + (~np.isfinite(out_hi)).sum())
        checked += exact_image_checks(p, lo, hi, out_lo, out_hi, 1)
        for kind in (B.deriv, B.second_deriv):  # s·[lo, hi] without offset
            d_lo, d_hi = kind(p, lo, hi, channel_axis=1, rounding="outward")
            zero = B.BatchNormParams(np.zeros(C), var, gamma, np.zeros(C), eps)
            exact_image_checks(zero, lo, hi, d_lo, d_hi, 1)
        try:
            n_lo, n_hi = B.ibp(p, lo, hi, channel_axis=1)
        except ValueError as exc:
            assert "overflow" in str(exc)
            nearest_refused += 1
        else:
            assert np.all(np.isfinite(n_lo)) and np.all(np.isfinite(n_hi))
    assert checked == 150 * 2 * 6
    assert infinite > 0 and nearest_refused > 0  # the extremes were really reached


def test_torchlean_fixture_is_a_concrete_nearest_miss():
    """§8.1's first entry: x = 1, γ = 1, β = 0, μ = 2, σ² = 4, eps = 1e-5 (as float64)."""
    p = B.BatchNormParams([2.0], [4.0], [1.0], [0.0], 1e-5)
    d = F(4) + F(1e-5)
    n_lo, n_hi = B.ibp(p, [1.0], [1.0])
    assert n_lo[0] == n_hi[0] == -0.49999937500117186
    assert not below(float(n_lo[0]), 1, 1.0, 2, d, 0)    # nearest lo lies above BN(1): a miss
    o_lo, o_hi = B.ibp(p, [1.0], [1.0], rounding="outward")
    assert below(float(o_lo[0]), 1, 1.0, 2, d, 0) and above(float(o_hi[0]), 1, 1.0, 2, d, 0)
    assert o_lo[0] < n_lo[0] <= o_hi[0]
    assert (o_hi[0] - o_lo[0]) <= 4 * np.spacing(0.5)   # a few ulps wide


def test_full_torchlean_nchw_fixture_outward():
    x = np.array([1, 2, 3, 4, -5, -6, -7, -8, 9, 10, 11, 12, -13, -14, -15, -16],
                 dtype=float).reshape(2, 2, 2, 2)
    p = B.BatchNormParams([2.0, -3.0], [4.0, 9.0], [1.0, 0.5], [0.0, 0.1], 1e-5)
    o_lo, o_hi = B.ibp(p, x, x, channel_axis=1, rounding="outward")
    assert exact_image_checks(p, x, x, o_lo, o_hi, 1) == 16
    n_lo, _ = B.ibp(p, x, x, channel_axis=1)
    assert np.all(o_lo <= n_lo) and np.all(n_lo <= o_hi)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(*[st.floats(-1e30, 1e30)] * 4, st.floats(-1e30, 1e30),
                          st.floats(0, 1e30)), min_size=1, max_size=3),
       st.floats(1e-30, 1e30))
def test_outward_contains_exact_image_hypothesis(rows, eps):
    mean, var, gamma, beta, x, w = (np.array(t) for t in zip(*rows))
    p = B.BatchNormParams(mean, var, gamma, beta, eps)
    hi = x + w
    hi[~np.isfinite(hi)] = x[~np.isfinite(hi)]
    out_lo, out_hi = B.ibp(p, x, hi, rounding="outward")
    exact_image_checks(p, x, hi, out_lo, out_hi, 0)


def test_outward_with_exact_parameters_uses_their_exact_values():
    # eps = 1/100000 exactly (a decimal, not the float 1e-5)
    p = B.BatchNormParams([F(2)], [F(4)], [F(1)], [F(0)], F(1, 100000))
    o_lo, o_hi = B.ibp(p, [1.0], [1.0], rounding="outward")
    d = F(4) + F(1, 100000)
    assert below(float(o_lo[0]), 1, 1, 2, d, 0) and above(float(o_hi[0]), 1, 1, 2, d, 0)
    # an exact box that is not a float is rounded outward first
    o_lo, o_hi = B.ibp(p, [F(1, 3)], [F(1, 3)], rounding="outward")
    sgn_lo = F(1) * (F(1, 3) - 2)  # BN(1/3) = -(5/3)/sqrt(d): compare via squares
    assert float(o_lo[0]) < 0 and F(float(o_lo[0])) ** 2 * d >= sgn_lo ** 2
    assert float(o_hi[0]) < 0 and F(float(o_hi[0])) ** 2 * d <= sgn_lo ** 2
    # irrational values cannot be used in outward mode
    import sympy
    q = B.BatchNormParams([0], [0], [sympy.sqrt(2)], [0], 1)
    with pytest.raises(ValueError, match=r"needs rational values; gamma\[0\] = sqrt\(2\)"):
        B.ibp(q, [0.0], [1.0], rounding="outward")


def test_outward_zero_gamma_is_exactly_beta_and_negative_gamma_swaps():
    p = B.BatchNormParams([1.0, 1.0], [1.0, 1.0], [0.0, -2.0], [0.1, 0.1], 3.0)
    o_lo, o_hi = B.ibp(p, [-1e30, 0.0], [1e30, 4.0], rounding="outward")
    assert o_lo[0] == o_hi[0] == 0.1
    # gamma = -2, R = 2: image of [0, 4] is [0.1 - 3, 0.1 + 1] = [-2.9, 1.1]
    assert o_lo[1] <= -2.9 <= o_lo[1] + 4 * np.spacing(2.9)
    assert o_hi[1] - 4 * np.spacing(1.1) <= 1.1 <= o_hi[1]
    exact_image_checks(p, np.array([-1e30, 0.0]), np.array([1e30, 4.0]), o_lo, o_hi, 0)


def test_outward_deriv_and_second_deriv():
    rng = np.random.default_rng(7)
    for _ in range(40):
        p = random_params(rng, 6)
        dlo, dhi = random_box(rng, (6,))
        for fn in (B.deriv, B.second_deriv):
            o_lo, o_hi = fn(p, dlo, dhi, rounding="outward")
            for c in range(6):
                g, v = F(p.gamma[c]), F(p.running_var[c])
                d = max(v, F(0)) + F(p.eps)
                for dc in (float(dlo[c]), float(dhi[c])):  # value s·d: BN with mean 0, beta 0
                    assert below(float(o_lo[c]), g, dc, 0, d, 0)
                    assert above(float(o_hi[c]), g, dc, 0, d, 0)


def test_outward_sqrt_enclosure_and_directed_rounding_helpers():
    for d in (F(2), F(1, 3), F(10) ** -30, F(10) ** 30, F(4), F(9, 16), F(1e-5) + 4):
        r_lo, r_hi = B._sqrt_enclosure(d)
        assert 0 < r_lo <= r_hi and r_lo * r_lo <= d <= r_hi * r_hi
        assert (r_hi - r_lo) / r_lo < F(1, 2 ** 150)
    assert B._sqrt_enclosure(F(9, 16)) == (F(3, 4), F(3, 4))
    for q in (F(1, 3), F(-1, 3), F(1, 10) ** 320, F(10) ** 400, -F(10) ** 400, F(0), F(5, 4)):
        lo, hi = B._round_down(q), B._round_up(q)
        assert lo <= hi
        assert lo == -math.inf or F(lo) <= q
        assert hi == math.inf or F(hi) >= q
        if lo != -math.inf and hi != math.inf:
            assert lo == hi or np.nextafter(lo, math.inf) == hi   # adjacent floats
    assert B._round_down(F(10) ** 400) == np.finfo(float).max and B._round_up(F(10) ** 400) == math.inf


# ---------------------------------------------------------------------------------------------
# Exact parameters and boxes far outside the float64 range (issue 11.7 / adversarial review)


def test_outward_scale_that_underflows_with_a_box_beyond_dbl_max_is_not_nan():
    """s = 10⁻³⁵⁰ rounds to [0, 5e-324] and the box endpoint −10⁴⁰⁰ to −inf: 0·(−inf) used to
    make a NaN ("internal error: NaN in an outward box")."""
    p = B.BatchNormParams([F(0)], [F(10) ** 700], [F(1)], [F(0)], F(1))
    for lo, hi in ((-F(10) ** 400, F(1)), (F(-1), F(10) ** 400), (-F(10) ** 400, F(10) ** 400)):
        for fn in (B.ibp, B.deriv, B.second_deriv):
            o_lo, o_hi = fn(p, [lo], [hi], rounding="outward")
            assert not (np.isnan(o_lo).any() or np.isnan(o_hi).any())
            d = F(10) ** 700 + 1
            for xc in (lo, hi):   # BN(x) = x/sqrt(d) here: the exact image endpoints
                assert o_lo[0] == -math.inf or sign_bn_minus(F(float(o_lo[0])), 1, xc, 0, d, 0) >= 0
                assert o_hi[0] == math.inf or sign_bn_minus(F(float(o_hi[0])), 1, xc, 0, d, 0) <= 0


def _huge_or_tiny():
    mantissa = st.integers(1, 10 ** 6)
    exponent = st.integers(-700, 700)
    return st.builds(lambda m, e, s: s * F(m) * F(10) ** e, mantissa, exponent, st.sampled_from([-1, 1]))


@settings(max_examples=300, deadline=None)
@given(_huge_or_tiny(), _huge_or_tiny(), _huge_or_tiny(), _huge_or_tiny(), _huge_or_tiny(),
       _huge_or_tiny(), _huge_or_tiny(), st.booleans())
def test_outward_contains_exact_image_for_exact_values_beyond_float64(mean, var, gamma, beta, eps,
                                                                      a, b, zero_gamma):
    gamma = F(0) if zero_gamma and gamma > 0 else gamma
    p = B.BatchNormParams([mean], [abs(var)], [gamma], [beta], abs(eps))
    lo, hi = min(a, b), max(a, b)
    d = abs(var) + abs(eps)
    for fn, m, bt in ((B.ibp, mean, beta), (B.deriv, F(0), F(0)), (B.second_deriv, F(0), F(0))):
        o_lo, o_hi = fn(p, [lo], [hi], rounding="outward")
        fl, fh = float(o_lo[0]), float(o_hi[0])
        assert not (math.isnan(fl) or math.isnan(fh)) and fl <= fh
        for xc in (lo, hi):
            assert fl == -math.inf or (fl != math.inf and sign_bn_minus(F(fl), gamma, xc, m, d, bt) >= 0)
            assert fh == math.inf or (fh != -math.inf and sign_bn_minus(F(fh), gamma, xc, m, d, bt) <= 0)
