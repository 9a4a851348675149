"""check_forward / check_backward on the exact engine: verdicts, bad user functions, bad arguments,
branches, float constants, side conditions, degenerate points, unmodified NumPy code, properties."""
import math
from fractions import Fraction

import numpy as np
import pytest
import sympy
from hypothesis import given, settings, strategies as st

import bn_implementations as B
import numpy_implementations as M
from symbolic_bn.checks.check import DEFAULT_SHAPE, check_backward, check_forward
from symbolic_bn.checks.crosscheck import ImplementationError
from symbolic_bn.exact.decide import differ_exactly
from symbolic_bn.exact.errors import BranchError, UnsupportedOperation

SHAPE = (1, 2, 2)
AX = (1, 2)


def good(x, gamma, beta, g, eps, xp):
    return B.backward_closed_form(x, gamma, beta, g, eps, xp)


def _stats(x, xp):
    mu = xp.mean(x, axis=AX, keepdims=True)
    return mu, xp.mean((x - mu) ** 2, axis=AX, keepdims=True)


# ---------------------------------------------------------------------------------------------
# verdicts: every correct variant proved, every wrong one failed with a re-confirmed counterexample

CORRECT_BACKWARDS = [B.backward_closed_form, B.backward_staged, B.backward_moments, B.backward_division,
                     B.backward_var_power, B.backward_torch, B.backward_sqrt_n, B.backward_into_grad_out,
                     M.cs231n_style_backward, M.compact_backward, M.matmul_backward]
WRONG_BACKWARDS = [getattr(B, n) for n in dir(B) if n.startswith("wrong_")] + \
                  [M.cs231n_wrong_forgets_dmu, M.cs231n_wrong_bessel]


@pytest.mark.parametrize("fn", CORRECT_BACKWARDS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("eps", [None, 1e-5])
def test_correct_backwards_are_proved(fn, eps):
    cert = check_backward(fn, (2, 3, 4), eps=eps)
    assert cert.ok, [(ob.name, ob.status, ob.detail) for ob in cert]


@pytest.mark.parametrize("fn", WRONG_BACKWARDS, ids=lambda f: f.__name__)
def test_wrong_backwards_fail_with_confirmed_counterexamples(fn):
    cert = check_backward(fn, (2, 3, 4))
    failed = cert.failed()
    assert failed and not cert.ok
    for ob in failed:
        cex = ob.counterexample
        if cex.get("undefined"):
            continue
        assert differ_exactly(cex["implementation"], cex["reference"]) is True
        # the point is inside the domain
        x = np.array(cex["x"], dtype=object)
        for c in range(x.shape[0]):
            xs = list(x[c].flat)
            mu = sum(xs) / len(xs)
            assert sum((v - mu) ** 2 for v in xs) / len(xs) + cex["eps"] > 0


@pytest.mark.parametrize("fn", [B.forward_plain, B.forward_moments_pow, B.forward_clamped, B.forward_sqrt_n])
def test_correct_forwards_are_proved(fn):
    assert check_forward(fn, (2, 3, 4)).ok


@pytest.mark.parametrize("fn", [B.forward_unbiased_var, B.forward_eps_outside, B.forward_no_beta])
def test_wrong_forwards_fail(fn):
    assert check_forward(fn, (2, 3, 4))["forward.y"].status == "failed"


def test_default_shape_is_pairwise_different_with_two_channels():
    C, H, W = DEFAULT_SHAPE
    assert C >= 2 and len({C, H, W}) == 3

    def h_squared(x, gamma, beta, eps, xp):
        n = x.shape[1] * x.shape[1]  # BUG: H·H instead of H·W
        mu = xp.sum(x, axis=AX, keepdims=True) / n
        d = x - mu
        return d / xp.sqrt(xp.sum(d * d, axis=AX, keepdims=True) / n + eps) * gamma[:, None, None] \
            + beta[:, None, None]

    def c_times_w(x, gamma, beta, eps, xp):
        n = x.shape[0] * x.shape[2]  # BUG: C·W instead of H·W
        mu = xp.sum(x, axis=AX, keepdims=True) / n
        d = x - mu
        return d / xp.sqrt(xp.sum(d * d, axis=AX, keepdims=True) / n + eps) * gamma[:, None, None] \
            + beta[:, None, None]

    assert check_forward(h_squared)["forward.y"].status == "failed"
    assert check_forward(c_times_w)["forward.y"].status == "failed"


# ---------------------------------------------------------------------------------------------
# unmodified NumPy code and float constants


def test_unmodified_numpy_backward_is_proved_at_4x8x8_by_the_api_and_the_helper():
    # issue 10, done when (2x3x4: the test below; the CLI: test_cli.py)
    from symbolic_bn.testing import assert_backward_correct
    cert = check_backward(M.cs231n_style_backward, (4, 8, 8))
    assert cert.ok and [ob.status for ob in cert] == ["proved"] * 3
    (again,) = assert_backward_correct(M.cs231n_style_backward, shape=(4, 8, 8))
    assert again.ok


def test_unmodified_numpy_backward_is_proved_and_its_floats_listed():
    cert = check_backward(M.cs231n_style_backward, (2, 3, 4))
    assert cert.ok
    readings = cert.parameters["float_constants"]
    assert any("0.08333333333333333" in r and "read as 1/12" in r and "numpy_implementations.py" in r
               for r in readings)
    # inexact readings are assumptions of every obligation; exact ones (1.0, 0.5) are not
    for ob in cert:
        floats = [a for a in ob.assumptions if a.startswith("the float")]
        assert floats and all("read as 1/12" in a for a in floats)


def test_one_sixth_written_as_a_float_is_read_as_one_sixth():
    """N = 6: 1./N is 0.16666666666666666; read as its shortest decimal the check would fail."""
    cert = check_backward(M.cs231n_style_backward, (1, 2, 3))
    assert cert.ok
    assert any("read as 1/6" in r for r in cert.parameters["float_constants"])


def test_float_buffer_from_a_shape_names_the_line_and_the_fix():
    with pytest.raises(ImplementationError, match=r"numpy_implementations.py:\d+.*np.zeros_like\(x\)"):
        check_backward(M.float_buffer_backward, (1, 2, 3))


def test_math_module_on_exact_values_is_refused_with_the_line():
    def uses_math(x, gamma, beta, eps):
        mu = np.mean(x, axis=AX, keepdims=True)
        s = math.sqrt(np.mean((x - mu) ** 2) + eps)
        return (x - mu) / s * gamma[:, None, None] + beta[:, None, None]
    with pytest.raises(ImplementationError, match=r"test_check.py:\d+.*math module works on floats"):
        check_forward(uses_math, SHAPE)


def test_unmodified_numpy_forward_with_np_var_std_and_broadcast_to():
    def fwd(x, gamma, beta, eps):
        mu = x.mean(axis=(1, 2), keepdims=True)
        sd = np.sqrt(x.var(axis=(1, 2), keepdims=True) + eps)
        return (x - mu) / sd * np.broadcast_to(gamma[:, None, None], x.shape) + beta.reshape(-1, 1, 1)
    assert check_forward(fwd, (2, 3, 4)).ok


def test_cast_to_float32_is_refused():
    def cast(x, gamma, beta, eps):
        return B.forward_plain(x.astype(np.float32), gamma, beta, eps, np)
    with pytest.raises(ImplementationError, match="float32"):
        check_forward(cast, SHAPE)


# ---------------------------------------------------------------------------------------------
# data-dependent branches: decided on the whole domain, or refused naming the line


def test_branch_on_a_variance_is_refused_with_file_and_line():
    def branchy(x, gamma, beta, eps, xp):
        mu, var = _stats(x, xp)
        if var[0, 0, 0] == 0:  # a constant channel
            return x * 0 + beta[:, None, None]
        return (x - mu) / xp.sqrt(var + eps) * gamma[:, None, None] + beta[:, None, None]
    with pytest.raises(ImplementationError, match=r"data-dependent branch at test_check.py:\d+") as info:
        check_forward(branchy, SHAPE)
    assert isinstance(info.value.__cause__, BranchError)


def test_truthiness_of_gamma_and_symbolic_eps_are_never_silently_decided():
    """``if not gamma[c]`` / ``eps or 1e-3``: wrong exactly at γ = 0 / ε = 0.  The symbolic run
    refuses the branch, and the degenerate points show the function wrong there."""
    def if_gamma(x, gamma, beta, g, eps, xp):
        dx, dg, db = good(x, gamma, beta, g, eps, xp)
        if not gamma[0]:
            dx = dx * 0 + 1
        return dx, dg, db

    def eps_or(x, gamma, beta, eps, xp):
        eps = eps or 1e-3
        return B.forward_plain(x, gamma, beta, eps, xp)
    cert = check_backward(if_gamma, SHAPE)
    assert cert["backward.dx"].status == "failed"
    assert cert["backward.dx"].counterexample["point"] == "weight zero"
    ob = check_forward(eps_or, SHAPE)["forward.y"]
    assert ob.status == "failed" and ob.counterexample["point"] == "eps zero"


def test_branch_right_at_every_point_tried_is_still_refused():
    def far_branch(x, gamma, beta, eps, xp):
        mu, var = _stats(x, xp)
        if var[0, 0, 0] > 10 ** 6:  # never true at the points tried, true somewhere in the domain
            return x
        return B.forward_plain(x, gamma, beta, eps, xp)
    with pytest.raises(ImplementationError, match=r"data-dependent branch at test_check.py:\d+"):
        check_forward(far_branch, SHAPE)


def test_wrong_branch_at_a_degenerate_point_is_failed_not_refused():
    """``if var == 0`` taking the wrong side for a constant channel: the symbolic run refuses the
    branch, and the constant-channel point shows the function is wrong there."""
    def wrong_on_constant(x, gamma, beta, eps, xp):
        mu, var = _stats(x, xp)
        y = (x - mu) / xp.sqrt(var + eps) * gamma[:, None, None] + beta[:, None, None]
        out = y.copy()
        for c in range(x.shape[0]):
            if var[c, 0, 0] == 0:
                out[c] = 0  # should be beta[c]
        return out
    ob = check_forward(wrong_on_constant, (2, 2, 3), eps=1e-5)["forward.y"]
    assert ob.status == "failed" and ob.counterexample["point"] == "constant group"


def test_decidable_comparisons_are_followed():
    def clamps(x, gamma, beta, eps, xp):
        mu, var = _stats(x, xp)
        var = xp.maximum(var, 0)           # var ≥ 0 on the whole domain
        std = xp.sqrt(var + eps)
        assert (std > 0).all()             # std > 0 on the domain
        std = abs(std)
        v2 = max(var[0, 0, 0], 0)          # Python max decides too
        assert v2 is var[0, 0, 0]
        return (x - mu) / std * gamma[:, None, None] + beta[:, None, None]
    assert check_forward(clamps, (2, 2, 3)).ok


def test_np_where_on_data_is_refused_or_failed():
    def branch(x, gamma, beta, eps, xp):
        return xp.where(x > 0, x, -x)

    def where_right(x, gamma, beta, eps, xp):
        y = B.forward_plain(x, gamma, beta, eps, xp)
        return xp.where(x > 10 ** 6, 0 * y, y)
    assert check_forward(branch, SHAPE)["forward.y"].status == "failed"
    with pytest.raises(ImplementationError, match="data-dependent branch"):
        check_forward(where_right, SHAPE)


# ---------------------------------------------------------------------------------------------
# side conditions: nothing cancels behind the user's back


def test_cancelled_division_a_b_over_a_c_is_not_proved():
    def cancels(x, gamma, beta, g, eps, xp):
        dx, dg, db = good(x, gamma, beta, g, eps, xp)
        a = x[:, :1, :1] - x[:, 1:2, :1]  # possibly zero
        return dx * a / a, dg, db
    cert = check_backward(cancels, (1, 2, 2))
    assert not cert["backward.dx"].proved
    ob = cert["backward.dx"]
    assert ob.status in ("failed", "undecided")
    if ob.status == "failed":
        assert ob.counterexample.get("undefined")


def fw_sqrt_var_rescaled(x, gamma, beta, eps, xp):
    """x̂ = (x − μ)/sqrt(var), then rescaled by sqrt(var)/sqrt(var + ε): undefined for a constant channel."""
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


@pytest.mark.parametrize("fn", [fw_sqrt_var_rescaled, fw_cancel_centered, fw_sqrt_var_minus_one],
                         ids=lambda f: f.__name__)
@pytest.mark.parametrize("eps", [None, 1e-5])
def test_undefined_somewhere_in_the_domain_is_failed_at_that_point(fn, eps):
    ob = check_forward(fn, (2, 2, 2), eps=eps)["forward.y"]
    assert ob.status == "failed", (ob.status, ob.detail)
    cex = ob.counterexample
    assert "undefined" in cex and "var_c + ε > 0" in cex["undefined"]
    x = np.array(cex["x"], dtype=object)
    for c in range(x.shape[0]):
        xs = list(x[c].flat)
        mu = sum(xs) / len(xs)
        assert sum((v - mu) ** 2 for v in xs) / len(xs) + cex["eps"] > 0


def test_inplace_abn_backward_undefined_at_gamma_zero_is_failed():
    def bw_inplace_abn(x, gamma, beta, g, eps, xp):
        n = x.shape[1] * x.shape[2]
        mu, var = _stats(x, xp)
        std = xp.sqrt(var + eps)
        G, Bt = gamma[:, None, None], beta[:, None, None]
        xhat = ((x - mu) / std * G + Bt - Bt) / G  # x̂ recovered from y: divides by γ
        dbeta = xp.sum(g, axis=AX)
        dgamma = xp.sum(g * xhat, axis=AX)
        dx = G / std / n * (n * g - dbeta[:, None, None] - xhat * dgamma[:, None, None])
        return dx, dgamma, dbeta
    cert = check_backward(bw_inplace_abn, (2, 2, 2))
    assert not any(ob.proved for ob in cert if ob.name != "backward.dbeta")
    cex = cert.failed()[0].counterexample
    assert cex["undefined"] and 0 in cex["gamma"]


def test_divisor_never_zero_but_not_implied_is_undecided_and_named():
    def fw(x, gamma, beta, eps, xp):
        d = x[:, :1, :1] * x[:, :1, :1] + 1  # ≥ 1, but not a consequence of var_c + ε > 0 here
        return B.forward_plain(x, gamma, beta, eps, xp) * d / d
    ob = check_forward(fw, (2, 2, 2))["forward.y"]
    # x² + 1 > 0 is shown by the term test (a square plus a positive constant): proved
    assert ob.proved

    def fw2(x, gamma, beta, eps, xp):
        d = x[:, :1, :1] - x[:, 1:, :1] + 3  # zero somewhere in the domain
        return B.forward_plain(x, gamma, beta, eps, xp) * d / d
    ob = check_forward(fw2, (2, 2, 2))["forward.y"]
    assert ob.status == "undecided" and "division by it" in ob.detail and "x[0, 0, 0]" in ob.detail


def test_side_conditions_of_correct_code_are_accepted():
    """Divisions by std, std², (var + ε)^(-3/2), sqrt(var) radicands are implied by the domain."""
    def fw(x, gamma, beta, eps, xp):
        mu, var = _stats(x, xp)
        std = xp.sqrt(var + eps)
        r = xp.sqrt(var) * 0 + std / (std * std) * (var + eps) ** -0.5 * std
        return (x - mu) * r * gamma[:, None, None] + beta[:, None, None]
    assert check_forward(fw, (2, 2, 2)).ok


def test_radicand_negative_multiple_is_not_accepted():
    def fw(x, gamma, beta, eps, xp):
        mu, var = _stats(x, xp)
        return (x - mu) / xp.sqrt(-(var + eps)) * gamma[:, None, None] + beta[:, None, None]
    assert not check_forward(fw, (1, 2, 2)).ok


def test_sqrt_of_a_square_of_the_radicand_is_exact():
    def odd(x, gamma, beta, eps, xp):
        mu, var = _stats(x, xp)
        std = xp.sqrt(xp.sqrt((var + eps) ** 2))  # |var + ε| = var + ε on the domain
        return (x - mu) / std * gamma[:, None, None] + beta[:, None, None]
    assert check_forward(odd, (1, 2, 2)).ok


# ---------------------------------------------------------------------------------------------
# bad user functions and arguments


def test_raising_function_is_wrapped():
    def boom(x, gamma, beta, g, eps, xp):
        raise ValueError("kaput")
    with pytest.raises(ImplementationError, match=r"backward .*boom.* raised ValueError: kaput"):
        check_backward(boom, SHAPE)


def test_wrong_number_of_outputs_and_shapes():
    def two(x, gamma, beta, g, eps, xp):
        return good(x, gamma, beta, g, eps, xp)[:2]

    def flat(x, gamma, beta, g, eps, xp):
        dx, dg, db = good(x, gamma, beta, g, eps, xp)
        return xp.reshape(dx, (2, 4)), dg, db

    def keep(x, gamma, beta, g, eps, xp):
        dx, dg, db = good(x, gamma, beta, g, eps, xp)
        return dx, dg[:, None], db
    with pytest.raises(ImplementationError, match=r"returned 2 arrays, expected 3 \(dx, dgamma, dbeta\)"):
        check_backward(two, SHAPE)
    with pytest.raises(ImplementationError, match=r"dx has shape \(2, 4\), expected \(2, 2, 2\)"):
        check_backward(flat, (2, 2, 2))
    with pytest.raises(ImplementationError, match=r"dgamma has shape \(1, 1\), expected \(1,\)"):
        check_backward(keep, SHAPE)


def test_nan_output_is_failed_as_undefined():
    def nan(x, gamma, beta, g, eps, xp):
        dx, dg, db = good(x, gamma, beta, g, eps, xp)
        return dx, dg, [math.nan]
    ob = check_backward(nan, SHAPE)["backward.dbeta"]
    assert ob.status == "failed" and ob.counterexample["undefined"]


def test_unsupported_operation_names_function_and_keeps_cause():
    def uses_linalg(x, gamma, beta, g, eps, xp):
        xp.linalg.norm(x)
    with pytest.raises(ImplementationError, match="uses_linalg.*cannot do") as info:
        check_backward(uses_linalg, SHAPE)
    assert isinstance(info.value.__cause__, UnsupportedOperation)


def test_values_kept_from_an_earlier_run_are_refused():
    kept = []

    def stateful(x, gamma, beta, eps, xp):
        kept.append(x)
        return B.forward_plain(kept[0], gamma, beta, eps, xp)
    with pytest.raises(ImplementationError, match="another check.*keep state"):
        check_forward(stateful, SHAPE)


@pytest.mark.parametrize("shape, msg", [((2, 2), "shape must be a"), ((0, 2, 2), "positive integers"),
                                        ((1, 2.5, 2), "positive integers"), ("abc", "shape must be a"),
                                        ((1, 64, 64), "too large")])
def test_bad_shape(shape, msg):
    with pytest.raises(ValueError, match=f"check_backward: .*{msg}"):
        check_backward(good, shape)


@pytest.mark.parametrize("eps", [float("nan"), float("inf"), "abc", [1], sympy.Symbol("e"), sympy.sqrt(2),
                                 sympy.I])
def test_bad_eps(eps):
    with pytest.raises(ValueError, match="eps"):
        check_forward(B.forward_plain, SHAPE, eps=eps)


@pytest.mark.parametrize("budget", [0, -1, "5", True, float("nan")])
def test_bad_budget(budget):
    with pytest.raises(ValueError, match="budget"):
        check_backward(good, SHAPE, budget=budget)


@pytest.mark.parametrize("seed", [[1], 1.5, "3", None])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match="seed must be an integer"):
        check_backward(good, SHAPE, seed=seed)


def test_not_callable():
    with pytest.raises(ValueError, match="check_backward: the function must be callable"):
        check_backward("backward", SHAPE)


@pytest.mark.parametrize("shape, eps", [((1, 1, 1), 0), ((2, 1, 1), -1), ((1, 1, 1), "-1/10")])
def test_empty_domain_is_refused_naming_eps(shape, eps):
    with pytest.raises(ValueError, match=r"check_forward: eps = .* the domain var_c \+ ε > 0 .* is empty"):
        check_forward(B.forward_plain, shape, eps=eps)
    assert check_forward(B.forward_plain, (2, 1, 1), eps=None).ok  # symbolic ε: ε > 0 possible


# ---------------------------------------------------------------------------------------------
# certificates, counterexamples, budgets


def test_certificate_states_the_domain_and_the_eps_range():
    cert = check_backward(good, (2, 2, 1))
    assert cert.ok
    assert "2x2x1" in cert.subject and cert.parameters["eps"] == "symbolic ε"
    for ob in cert:
        assert any("var_c + ε > 0" in a for a in ob.assumptions)
        assert any("every ε for which the domain holds" in a for a in ob.assumptions)
        assert "exact normal forms" in ob.method and "degenerate points" in ob.method
    assert cert.to_json()
    exact = check_backward(good, (2, 2, 1), eps=1e-5)
    assert any("ε = 1/100000" in a for ob in exact for a in ob.assumptions)


def test_exact_eps_counterexample_keeps_eps():
    cert = check_backward(B.wrong_var_without_eps, SHAPE, eps="1/10")
    ob = cert["backward.dx"]
    assert ob.status == "failed" and ob.counterexample["eps"] == sympy.Rational(1, 10)


@pytest.mark.parametrize("eps", [-sympy.Rational(1, 100), -50])
def test_negative_exact_eps_points_stay_in_domain(eps):
    cert = check_backward(B.wrong_sign, SHAPE, eps=eps)
    cex = cert["backward.dx"].counterexample
    x = np.array(cex["x"], dtype=object)[0].ravel()
    mu = sum(x) / len(x)
    assert sum((v - mu) ** 2 for v in x) / len(x) + eps > 0


def test_mutating_inputs_cannot_corrupt_the_reference():
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


def test_budget_bounds_the_whole_check():
    cert = check_forward(B.forward_plain, (1, 16, 16), budget=0.05)
    assert cert["forward.y"].status == "undecided"
    # and leaves no timer behind: the next check is decided
    assert check_forward(B.forward_plain, SHAPE).ok


def test_budget_running_out_inside_the_users_function_is_undecided_not_an_error():
    import time

    def slow(x, gamma, beta, eps, xp):
        t = time.perf_counter()
        while time.perf_counter() - t < 5:
            pass
        return B.forward_plain(x, gamma, beta, eps, xp)
    ob = check_forward(slow, (1, 2, 2), budget=0.3)["forward.y"]
    assert ob.status == "undecided"


# ---------------------------------------------------------------------------------------------
# properties


@settings(max_examples=12, deadline=None)
@given(k=st.integers(-3, 3).filter(bool), shape=st.sampled_from([(1, 2, 2), (2, 1, 2), (1, 3, 1)]))
def test_scaled_dx_is_failed_unless_k_is_one(k, shape):
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
        assert sympy.expand(cex["implementation"] - k * cex["reference"]) == 0


@settings(max_examples=10, deadline=None)
@given(num=st.integers(1, 50), den=st.integers(1, 1000))
def test_correct_backward_proved_for_any_positive_exact_eps(num, den):
    assert check_backward(B.backward_division, (1, 2, 2), eps=Fraction(num, den)).ok


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_counterexample_grad_out_is_never_constant(seed):
    cex = check_backward(B.wrong_dx_zeros, (1, 2, 2), seed=seed)["backward.dx"].counterexample
    assert len(set(np.array(cex["grad_out"], dtype=object).ravel())) > 1
