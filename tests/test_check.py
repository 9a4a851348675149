"""check_forward / check_backward: bad user functions, bad arguments, Float leaks, unsupported
operations, assert_* messages, and properties (hypothesis)."""
import math

import numpy as np
import pytest
import sympy
from hypothesis import given, settings, strategies as st

import bn_implementations as B
from symbolic_bn import xp as X
from symbolic_bn.checks.check import check_backward, check_forward
from symbolic_bn.checks.crosscheck import ImplementationError
from symbolic_bn.exact.decide import differ_exactly
from symbolic_bn.testing import assert_backward_correct, assert_forward_correct

SHAPE = (1, 2, 2)


def good(x, gamma, beta, g, eps, xp):
    return B.backward_closed_form(x, gamma, beta, g, eps, xp)


# ---------------------------------------------------------------------------------------------
# bad user functions


def test_raising_function_is_wrapped():
    def boom(x, gamma, beta, g, eps, xp):
        raise ValueError("kaput")
    with pytest.raises(ImplementationError, match=r"backward .*boom.* raised ValueError: kaput"):
        check_backward(boom, SHAPE)


def test_wrong_number_of_outputs():
    def two(x, gamma, beta, g, eps, xp):
        return good(x, gamma, beta, g, eps, xp)[:2]
    with pytest.raises(ImplementationError, match=r"returned 2 arrays, expected 3 \(dx, dgamma, dbeta\)"):
        check_backward(two, SHAPE)


def test_single_array_instead_of_tuple():
    def arr(x, gamma, beta, g, eps, xp):
        return good(x, gamma, beta, g, eps, xp)[0]
    with pytest.raises(ImplementationError, match="expected a tuple of 3"):
        check_backward(arr, SHAPE)


def test_wrong_shape_of_dx():
    def flat(x, gamma, beta, g, eps, xp):
        dx, dg, db = good(x, gamma, beta, g, eps, xp)
        return xp.reshape(dx, (2, 4)), dg, db
    with pytest.raises(ImplementationError, match=r"dx has shape \(2, 4\), expected \(2, 2, 2\)"):
        check_backward(flat, (2, 2, 2))


def test_wrong_shape_of_dgamma():
    def keep(x, gamma, beta, g, eps, xp):
        dx, dg, db = good(x, gamma, beta, g, eps, xp)
        return dx, dg[:, None], db
    with pytest.raises(ImplementationError, match=r"dgamma has shape \(1, 1\), expected \(1,\)"):
        check_backward(keep, SHAPE)


def test_wrong_forward_shape():
    def fwd(x, gamma, beta, eps, xp):
        return B.forward_plain(x, gamma, beta, eps, xp)[0]
    with pytest.raises(ImplementationError, match=r"y has shape \(2, 2\), expected \(1, 2, 2\)"):
        check_forward(fwd, SHAPE)


def test_float_leak_via_math_is_reported_with_output_name():
    def leak(x, gamma, beta, g, eps, xp):
        dx, dg, db = good(x, gamma, beta, g, eps, xp)
        return dx, dg, [db[0] * 0.5]  # bare SymPy entry times a float: a Float atom
    with pytest.raises(ImplementationError, match=r"dbeta\[0\] contains an inexact Float"):
        check_backward(leak, SHAPE)


def test_float_caught_inside_namespace_is_wrapped():
    def leak(x, gamma, beta, g, eps, xp):
        dx, dg, db = good(x, gamma, beta, g, eps, xp)
        return dx, dg, xp.asarray([db[0] * 0.5])
    with pytest.raises(ImplementationError, match=r"leak.* raised ValueError: .*inexact sympy.Float"):
        check_backward(leak, SHAPE)


def test_numpy_float_array_is_reported():
    def npfloat(x, gamma, beta, g, eps, xp):
        dx, dg, db = good(x, gamma, beta, g, eps, xp)
        return dx, dg, np.zeros(1)
    with pytest.raises(ImplementationError, match="dbeta is a float64 array in the symbolic run"):
        check_backward(npfloat, SHAPE)


def test_nan_is_reported():
    def nan(x, gamma, beta, g, eps, xp):
        dx, dg, db = good(x, gamma, beta, g, eps, xp)
        return dx, dg, [math.nan]
    with pytest.raises(ImplementationError, match=r"dbeta\[0\] is NaN/inf"):
        check_backward(nan, SHAPE)


def test_sympy_infinity_is_reported():
    def inf(x, gamma, beta, eps, xp):
        return B.forward_plain(x, gamma, beta, eps, xp) * sympy.oo
    with pytest.raises(ImplementationError, match="not finite"):
        check_forward(inf, SHAPE)


def test_unsupported_operation_names_function_and_keeps_cause():
    def uses_linalg(x, gamma, beta, g, eps, xp):
        xp.linalg.norm(x)
    with pytest.raises(ImplementationError, match="uses_linalg.*cannot do") as info:
        check_backward(uses_linalg, SHAPE)
    assert isinstance(info.value.__cause__, X.UnsupportedOperation)


def test_data_dependent_branching_is_unsupported():
    def branch(x, gamma, beta, eps, xp):
        return xp.where(x > 0, x, -x)
    with pytest.raises(ImplementationError, match="cannot do") as info:
        check_forward(branch, SHAPE)
    assert isinstance(info.value.__cause__, X.UnsupportedOperation)


# ---------------------------------------------------------------------------------------------
# bad arguments


@pytest.mark.parametrize("shape, msg", [((2, 2), "shape must be a"), ((0, 2, 2), "C must be a positive"),
                                        ((1, 2.5, 2), "H must be a positive"), ("abc", "shape must be a"),
                                        ((1, 64, 64), "too large")])
def test_bad_shape(shape, msg):
    with pytest.raises(ValueError, match=f"check_backward: .*{msg}"):
        check_backward(good, shape)


@pytest.mark.parametrize("eps", [float("nan"), float("inf"), "abc", [1], sympy.Symbol("e")])
def test_bad_eps(eps):
    with pytest.raises(ValueError, match="check_forward: eps"):
        check_forward(B.forward_plain, SHAPE, eps=eps)


@pytest.mark.parametrize("budget", [0, -1, "5", True, float("nan")])
def test_bad_budget(budget):
    with pytest.raises(ValueError, match="budget must be a positive"):
        check_backward(good, SHAPE, budget=budget)


def test_not_callable():
    with pytest.raises(ValueError, match="check_backward: backward must be callable"):
        check_backward("backward", SHAPE)


# ---------------------------------------------------------------------------------------------
# certificates


def test_certificate_structure_and_assumptions():
    cert = check_backward(good, (2, 2, 1))
    assert cert.ok
    assert "good" in cert.subject and "2x2x1" in cert.subject
    for ob in cert:
        assert any("var_c + ε > 0" in a for a in ob.assumptions)
        assert "decide_zero" in ob.method and "sympy.diff" in ob.method
    assert cert.to_json()


def test_exact_eps_counterexample_keeps_eps_and_radicand():
    cert = check_backward(B.wrong_var_without_eps, SHAPE, eps="1/10")
    ob = cert["backward.dx"]
    assert ob.status == "failed" and ob.counterexample["eps"] == sympy.Rational(1, 10)


def test_nonpositive_exact_eps_points_stay_in_domain():
    cert = check_backward(B.wrong_sign, SHAPE, eps=-sympy.Rational(1, 100))
    cex = cert["backward.dx"].counterexample
    x = np.array(cex["x"], dtype=object)[0].ravel()
    mu = sum(x) / len(x)
    assert sum((v - mu) ** 2 for v in x) / len(x) - sympy.Rational(1, 100) > 0


def test_sqrt_of_other_radicand_is_not_proved():
    """std computed as sqrt((var + eps)**2)**(1/2)... a different radicand: never 'proved'."""
    def odd(x, gamma, beta, eps, xp):
        mu = xp.mean(x, axis=(1, 2), keepdims=True)
        var = xp.mean((x - mu) ** 2, axis=(1, 2), keepdims=True)
        std = xp.sqrt(xp.sqrt((var + eps) ** 2))
        return (x - mu) / std * gamma[:, None, None] + beta[:, None, None]
    ob = check_forward(odd, SHAPE)["forward.y"]
    assert ob.status != "proved"


def test_clamped_forward_proved():
    assert check_forward(B.forward_clamped, SHAPE).ok  # SymPy removes Max(Σ squares, 0) itself


def test_clamped_moment_variance_is_unclamped_and_says_so():
    def fwd(x, gamma, beta, eps, xp):
        mu = xp.mean(x, axis=(1, 2), keepdims=True)
        var = xp.maximum(xp.mean(x * x, axis=(1, 2), keepdims=True) - mu * mu, 0)
        return (x - mu) / xp.sqrt(var + eps) * gamma[:, None, None] + beta[:, None, None]
    ob = check_forward(fwd, (2, 2, 2))["forward.y"]
    assert ob.proved and "Max(var_c, 0)" in ob.method


# ---------------------------------------------------------------------------------------------
# testing.py


def test_assert_backward_correct_passes_correct():
    assert_backward_correct(B.backward_staged, shapes=[(1, 2, 2), (2, 1, 3)])
    assert_forward_correct(B.forward_plain, shapes=[(1, 2, 2)])


def test_assert_backward_correct_message_has_counterexample():
    with pytest.raises(AssertionError) as info:
        assert_backward_correct(B.wrong_missing_sum_g_term, shapes=[(1, 2, 2)])
    msg = str(info.value)
    for part in ("backward.dx", "counterexample at dx[", "implementation =", "reference      =",
                 "grad_out =", "x =", "gamma =", "FAILED"):
        assert part in msg, part


def test_assert_forward_correct_message():
    with pytest.raises(AssertionError, match=r"forward.y(.|\n)*counterexample at y\["):
        assert_forward_correct(B.forward_unbiased_var, shapes=[(1, 2, 2)])


def _torch_only_backward(x, gamma, beta, g, eps, xp):
    """Uses a function the symbolic namespace lacks (like a torch-only call) but runs on NumPy."""
    if not hasattr(xp, "float32"):
        raise X.UnsupportedOperation("torch-only kernel")
    return B.backward_closed_form(x, gamma, beta, g, eps, xp)


def test_assert_falls_back_to_crosscheck_on_unsupported():
    assert_backward_correct(_torch_only_backward, shapes=[(1, 2, 2)], points=4)
    with pytest.raises(AssertionError, match="cannot do"):
        assert_backward_correct(_torch_only_backward, shapes=[(1, 2, 2)], numeric=False)


def test_assert_numeric_failure_is_reported():
    def wrong_torch_only(x, gamma, beta, g, eps, xp):
        if not hasattr(xp, "float32"):
            raise X.UnsupportedOperation("torch-only kernel")
        return B.wrong_sign(x, gamma, beta, g, eps, xp)
    with pytest.raises(AssertionError, match="numeric cross-check of backward failed"):
        assert_backward_correct(wrong_torch_only, shapes=[(1, 2, 2)], points=4)


def test_assert_numeric_true_uses_crosscheck():
    assert_backward_correct(B.backward_closed_form, shapes=[(1, 2, 2)], numeric=True, points=4)
    with pytest.raises(AssertionError):
        assert_backward_correct(B.wrong_dx_zeros, shapes=[(1, 2, 2)], numeric=True, points=4)


def test_assert_bad_arguments():
    with pytest.raises(ValueError, match="numeric must be"):
        assert_backward_correct(good, numeric="yes")
    with pytest.raises(ValueError, match="shapes is empty"):
        assert_backward_correct(good, shapes=[])


# ---------------------------------------------------------------------------------------------
# properties


@settings(max_examples=12, deadline=None)
@given(k=st.integers(-3, 3).filter(bool), shape=st.sampled_from([(1, 2, 2), (2, 1, 2), (1, 3, 1)]))
def test_scaled_dx_is_failed_unless_k_is_one(k, shape):
    """dx scaled by k: proved iff k == 1; otherwise 'failed' with a confirmed counterexample."""
    def scaled(x, gamma, beta, g, eps, xp):
        dx, dg, db = B.backward_closed_form(x, gamma, beta, g, eps, xp)
        return dx * k, dg, db
    ob = check_backward(scaled, shape)["backward.dx"]
    if k == 1:
        assert ob.proved
    else:
        assert ob.status == "failed"
        cex = ob.counterexample
        assert differ_exactly(cex["implementation"], cex["reference"]) is True
        assert sympy.expand(cex["implementation"] - k * cex["reference"]) == 0 or cex["reference"] != 0


@settings(max_examples=10, deadline=None)
@given(num=st.integers(1, 50), den=st.integers(1, 1000))
def test_correct_backward_proved_for_any_positive_exact_eps(num, den):
    from fractions import Fraction
    assert check_backward(B.backward_division, (1, 2, 2), eps=Fraction(num, den)).ok


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_counterexample_grad_out_is_never_constant(seed):
    cex = check_backward(B.wrong_dx_zeros, (1, 2, 2), seed=seed)["backward.dx"].counterexample
    assert len(set(np.array(cex["grad_out"], dtype=object).ravel())) > 1


# ---------------------------------------------------------------------------------------------
# review regressions: divisions SymPy cancels while the user's function runs (S1)

AX = (1, 2)


def _stats(x, xp):
    mu = xp.mean(x, axis=AX, keepdims=True)
    return mu, xp.mean((x - mu) ** 2, axis=AX, keepdims=True)


def fw_sqrt_var_rescaled(x, gamma, beta, eps, xp):
    """x̂ = (x − μ)/sqrt(var), then rescaled by sqrt(var)/sqrt(var + ε): NaN for a constant channel."""
    mu, var = _stats(x, xp)
    return (x - mu) / xp.sqrt(var) * (xp.sqrt(var) / xp.sqrt(var + eps)) * gamma[:, None, None] \
        + beta[:, None, None]


def fw_cancel_centered(x, gamma, beta, eps, xp):
    """(t·t)/(t·std) with t = x − μ: undefined wherever x equals its channel mean."""
    mu, var = _stats(x, xp)
    t = x - mu
    return (t * t) / (t * xp.sqrt(var + eps)) * gamma[:, None, None] + beta[:, None, None]


def fw_sqrt_var_minus_one(x, gamma, beta, eps, xp):
    """s = sqrt(var − 1) is not real for var < 1, though s·s + 1 + ε = var + ε."""
    mu, var = _stats(x, xp)
    s = xp.sqrt(var - 1)
    return (x - mu) / xp.sqrt(s * s + 1 + eps) * gamma[:, None, None] + beta[:, None, None]


def fw_divide_by_zero_everywhere(x, gamma, beta, eps, xp):
    """d = max(x, μ) + min(x, μ) − x − μ is 0 for all real inputs: 0/0 everywhere."""
    mu, var = _stats(x, xp)
    d = xp.maximum(x, mu) + xp.minimum(x, mu) - x - mu
    return (x - mu) * d / (xp.sqrt(var + eps) * d) * gamma[:, None, None] + beta[:, None, None]


def bw_inplace_abn(x, gamma, beta, g, eps, xp):
    """InPlace-ABN style: x̂ recovered as (y − β)/γ -- undefined at γ = 0."""
    n = x.shape[1] * x.shape[2]
    mu, var = _stats(x, xp)
    std = xp.sqrt(var + eps)
    G, Bt = gamma[:, None, None], beta[:, None, None]
    xhat = ((x - mu) / std * G + Bt - Bt) / G
    dbeta = xp.sum(g, axis=AX)
    dgamma = xp.sum(g * xhat, axis=AX)
    dx = G / std / n * (n * g - dbeta[:, None, None] - xhat * dgamma[:, None, None])
    return dx, dgamma, dbeta


@pytest.mark.parametrize("fn", [fw_sqrt_var_rescaled, fw_cancel_centered, fw_sqrt_var_minus_one,
                                fw_divide_by_zero_everywhere], ids=lambda f: f.__name__)
@pytest.mark.parametrize("eps", [None, 1e-5])
def test_cancelled_division_or_radicand_is_never_proved(fn, eps):
    ob = check_forward(fn, (2, 2, 2), eps=eps)["forward.y"]
    assert ob.status == "failed", (ob.status, ob.detail)
    cex = ob.counterexample
    assert "undefined" in cex and "var_c + ε > 0" in cex["undefined"]
    # the point is inside the domain and the function really has no value there
    x = np.array(cex["x"], dtype=object)
    for c in range(x.shape[0]):
        xs = list(x[c].flat)
        mu = sum(xs) / len(xs)
        assert sum((v - mu) ** 2 for v in xs) / len(xs) + cex["eps"] > 0
    with pytest.raises((ZeroDivisionError, ValueError)):
        fn(X.to_sympy_array(x), X.to_sympy_array(cex["gamma"]), X.to_sympy_array(cex["beta"]),
           cex["eps"], X.symbolic)


def test_inplace_abn_backward_undefined_at_gamma_zero_is_failed():
    cert = check_backward(bw_inplace_abn, (2, 2, 2))
    assert not any(ob.proved for ob in cert)
    cex = cert["backward.dx"].counterexample
    assert cex["undefined"] and 0 in cex["gamma"]


def test_cancelled_divisor_not_hit_by_any_point_is_undecided_and_named():
    def fw(x, gamma, beta, eps, xp):
        d = x[:, :1, :1] * x[:, :1, :1] + 1  # never 0, but not implied by var_c + ε > 0 here
        return B.forward_plain(x, gamma, beta, eps, xp) * d / d
    ob = check_forward(fw, (2, 2, 2))["forward.y"]
    assert ob.status == "undecided"
    assert "x_0_0_0**2 + 1 != 0 (a divisor)" in ob.detail


def test_recorded_side_conditions_of_correct_code_are_accepted():
    """Divisions by std, std², (var + ε)^(-3/2) and sqrt(var) radicands are implied by the domain."""
    def fw(x, gamma, beta, eps, xp):
        mu, var = _stats(x, xp)
        std = xp.sqrt(var + eps)
        r = xp.sqrt(var) * 0 + std / (std * std) * (var + eps) ** -0.5 * std
        return (x - mu) * r * gamma[:, None, None] + beta[:, None, None]
    assert check_forward(fw, (2, 2, 2)).ok


# ---------------------------------------------------------------------------------------------
# outputs that do not come from the inputs (S2), constants the interval check cannot evaluate (B4)


def test_output_rebuilt_from_symbol_names_is_an_implementation_error():
    def by_name(x, gamma, beta, eps, xp):
        C, H, W = x.shape
        xs, gs, bs = X.symbols_array("x", (C, H, W)), X.symbols_array("gamma", (C,)), X.symbols_array("beta", (C,))
        return B.forward_plain(xs, gs, bs, sympy.Symbol("ε", real=True), xp)
    with pytest.raises(ImplementationError, match=r"at numeric inputs y\[0, 0, 0\] still contains the symbol"):
        check_forward(by_name, (1, 2, 2))


def test_pi_in_a_wrong_output_is_undecided_with_the_reason():
    def with_pi(x, gamma, beta, eps, xp):
        return B.forward_plain(x, gamma, beta, eps, xp) + (xp.pi - 3)
    ob = check_forward(with_pi, (1, 2, 2))["forward.y"]
    assert ob.status == "undecided"
    assert "could not be compared exactly" in ob.detail and "pi" in ob.detail


# ---------------------------------------------------------------------------------------------
# default shapes (S4)


def _fw_h_squared(x, gamma, beta, eps, xp):
    n = x.shape[1] * x.shape[1]  # BUG: H·H instead of H·W
    mu = xp.sum(x, axis=AX, keepdims=True) / n
    d = x - mu
    var = xp.sum(d * d, axis=AX, keepdims=True) / n
    return d / xp.sqrt(var + eps) * gamma[:, None, None] + beta[:, None, None]


def test_default_shapes_have_two_channels_and_a_non_square_plane():
    from symbolic_bn import testing
    from symbolic_bn.checks.check import DEFAULT_SHAPE
    assert DEFAULT_SHAPE[0] >= 2 and DEFAULT_SHAPE[1] != DEFAULT_SHAPE[2]
    assert any(c >= 2 and h != w for c, h, w in testing.DEFAULT_SHAPES)
    assert check_forward(_fw_h_squared)["forward.y"].status == "failed"
    with pytest.raises(AssertionError, match="FAILED"):
        assert_forward_correct(_fw_h_squared)


# ---------------------------------------------------------------------------------------------
# functions that write into their arguments (W1)


def test_backward_writing_into_grad_out_is_proved():
    cert = check_backward(B.backward_into_grad_out, (2, 2, 2))
    assert cert.ok, [(ob.name, ob.status, ob.detail) for ob in cert]


def test_mutating_x_or_gamma_cannot_corrupt_the_reference():
    def mut_x(x, gamma, beta, g, eps, xp):
        x -= xp.mean(x, axis=AX, keepdims=True)  # shift invariance: still correct
        return B.backward_closed_form(x, gamma, beta, g, eps, xp)

    def mut_gamma(x, gamma, beta, g, eps, xp):
        out = B.backward_closed_form(x, gamma, beta, g, eps, xp)
        gamma *= 2
        return out

    def mut_g_wrong(x, gamma, beta, g, eps, xp):
        dx, dgamma, _ = B.backward_closed_form(x, gamma, beta, g, eps, xp)
        g *= gamma[:, None, None]
        return dx, dgamma, xp.sum(g, axis=AX)  # dbeta = Σ γ·g: wrong

    assert check_backward(mut_x, (1, 2, 2)).ok
    assert check_backward(mut_gamma, (1, 2, 2)).ok
    cert = check_backward(mut_g_wrong, (1, 2, 2))
    assert cert["backward.dx"].proved and cert["backward.dbeta"].status == "failed"


# ---------------------------------------------------------------------------------------------
# torch-style variants at 2x4x4 (W2)


@pytest.mark.parametrize("fn", [B.backward_torch, B.backward_sqrt_n], ids=lambda f: f.__name__)
def test_torch_style_backward_proved_at_2x4x4(fn):
    cert = check_backward(fn, (2, 4, 4), budget=30)
    assert cert.ok, [(ob.name, ob.status, ob.detail) for ob in cert]


def test_radicand_positive_multiple_of_var_plus_eps_is_accepted():
    ob = check_forward(B.forward_sqrt_n, (2, 2, 3))["forward.y"]
    assert ob.proved, ob.detail


def test_radicand_negative_multiple_is_not_accepted():
    def fw(x, gamma, beta, eps, xp):
        mu, var = _stats(x, xp)
        return (x - mu) / xp.sqrt(-(var + eps)) * gamma[:, None, None] + beta[:, None, None]
    assert not check_forward(fw, (1, 2, 2)).ok


# ---------------------------------------------------------------------------------------------
# budget (B1) and empty domains (B2)


def test_budget_bounds_the_whole_check():
    # an unbounded check at 1x16x16 would prove the forward: 'undecided' shows the budget stopped it
    cert = check_forward(B.forward_plain, (1, 16, 16), budget=1)
    ob = cert["forward.y"]
    assert ob.status == "undecided" and "time budget of 1 s exceeded" in ob.detail


def test_budget_running_out_inside_the_users_function_is_undecided_not_an_error():
    import time

    def slow(x, gamma, beta, eps, xp):
        t = time.perf_counter()
        while time.perf_counter() - t < 5:
            pass
        return B.forward_plain(x, gamma, beta, eps, xp)
    # without the budget, slow() returns a correct forward after 5 s and the check proves it
    ob = check_forward(slow, (1, 2, 2), budget=0.3)["forward.y"]
    assert ob.status == "undecided"


@pytest.mark.parametrize("shape, eps", [((1, 1, 1), 0), ((2, 1, 1), -1), ((1, 1, 1), "-1/10")])
def test_empty_domain_is_refused_naming_eps_and_shape(shape, eps):
    with pytest.raises(ValueError, match=r"check_forward: eps=.* with shape .*x1x1: the domain var_c \+ ε > 0 is empty"):
        check_forward(B.forward_plain, shape, eps=eps)
    assert check_forward(B.forward_plain, (2, 1, 1), eps=None).ok  # symbolic ε: ε > 0 possible


def test_very_negative_eps_points_stay_in_domain():
    cert = check_backward(B.wrong_sign, (1, 2, 2), eps=-50)
    cex = cert["backward.dx"].counterexample
    x = np.array(cex["x"], dtype=object)[0].ravel()
    mu = sum(x) / len(x)
    assert sum((v - mu) ** 2 for v in x) / len(x) - 50 > 0
