"""Adversarial regression tests (issue 11, "No false verdicts"): each one a way a hostile or
careless function (or argument) made a check give a wrong verdict, hang, or end the process.

Each test fails on the code before its fix; shapes are small and nothing asserts a time.
"""
import sys
import time

import numpy as np
import pytest
import sympy

import bn_implementations as B
from symbolic_bn import check_backward, check_forward, crosscheck, layers
from symbolic_bn.checks.crosscheck import ImplementationError


# -- a symbolic ε declared ≤ 0 with one-element statistics groups: an empty domain ---------------

@pytest.mark.parametrize("assumption", ["negative", "nonpositive", "zero"])
def test_symbolic_eps_declared_nonpositive_with_one_element_groups_is_refused(assumption):
    eps = sympy.Symbol("e", **{assumption: True})
    # before: a deep "no rational point found" ValueError (negative) or 3 vacuous 'proved' (zero)
    with pytest.raises(ValueError, match=r"^check_backward: eps = e is declared ≤ 0 .* is empty"):
        check_backward(B.backward_closed_form, shape=(2, 1, 1), eps=eps)
    with pytest.raises(ValueError, match=r"^eps = e is declared ≤ 0 .* is empty"):
        layers.instance_norm((1, 2, 1), eps=eps)
    assert check_backward(B.backward_closed_form, shape=(2, 1, 2), eps=eps).ok  # var > 0 possible


# -- the checked code ends the check: sys.exit, BaseException ----------------------------------

def _exits(x, gamma, beta, g, eps, xp):
    sys.exit(0)


class _Escape(BaseException):
    pass


def _escapes(x, gamma, beta, g, eps, xp):
    raise _Escape("not an Exception")


@pytest.mark.parametrize("fn, name", [(_exits, "SystemExit"), (_escapes, "_Escape")])
def test_checked_code_that_exits_is_an_implementation_error(fn, name):
    # before: SystemExit(0) left check_backward (a script's exit status 0 after a check)
    with pytest.raises(ImplementationError, match=f"raised {name}"):
        check_backward(fn)
    with pytest.raises(ImplementationError, match=f"raised {name}"):
        crosscheck(backward=fn, shape=(2, 2, 3), points=2)


# -- the checked code swallows the budget ------------------------------------------------------

def test_except_exception_in_checked_code_cannot_swallow_the_budget():
    caught = []

    def stubborn(x, gamma, beta, g, eps, xp):
        for _ in range(40):  # a retry loop: before, it caught the budget and ran on (or forever)
            try:
                time.sleep(0.05)
            except Exception as exc:  # noqa: BLE001 - the point of the test
                caught.append(exc)
        return B.backward_closed_form(x, gamma, beta, g, eps, xp)

    cert = check_backward(stubborn, budget=0.3)
    assert caught == []
    assert [ob.status for ob in cert] == ["undecided"] * 3
    assert "budget" in cert.obligations[0].detail


# -- ε ≤ 0 with two-element groups: the 'entry at mean' point made the group constant ---------

@pytest.mark.parametrize("eps", [-0.01, sympy.Symbol("e", negative=True)])
def test_entry_at_mean_point_stays_inside_a_domain_with_nonpositive_eps(eps):
    # before: ValueError "no rational point with var_c + ε > 0 ... found" from the point search
    cert = check_backward(B.backward_closed_form, shape=(2, 1, 2), eps=eps)
    assert cert.ok
    wrong = check_backward(B.wrong_sign, shape=(2, 1, 2), eps=eps)
    assert wrong.failed()


# -- prove(graph) with a hostile node ----------------------------------------------------------

@pytest.mark.parametrize("returns", [None, "z"])
def test_node_whose_forward_returns_a_non_number_is_undecided_not_a_crash(returns):
    import dataclasses
    from symbolic_bn import batchnorm_channel_first, prove
    g = batchnorm_channel_first(1, 2, 2, eps=sympy.Rational(1, 10))
    node = next(n for n in g.nodes if n.name == "var_eps")
    # before: AttributeError ('NoneType' object has no attribute 'is_Add') out of prove
    cert = prove(g.replace("var_eps", dataclasses.replace(node, f=lambda alg, z: returns)), jobs=1)
    assert not cert.ok
    assert cert["end_to_end.backprop_eq_adjoint_fderiv"].status == "undecided"
    assert cert["stage.var_eps.derivative"].status == "undecided"


# -- crosscheck: degenerate points (a constant channel, gamma = 0) ----------------------------

def _wrong_at_a_constant_channel(x, gamma, beta, g, eps, xp):
    _ = np.sort(x.reshape(-1))  # not exact: sends assert_backward_correct to the numeric check
    dx, dgamma, dbeta = B.backward_closed_form(x, gamma, beta, g, eps, np)
    var = x.var(axis=(1, 2))
    for c in range(x.shape[0]):
        if var[c] == 0:
            dx[c] = 123.0
    return dx, dgamma, dbeta


def _wrong_at_gamma_zero(x, gamma, beta, g, eps, xp):
    dx, dgamma, dbeta = B.backward_closed_form(x, gamma, beta, g, eps, np)
    return np.where(gamma == 0, 1.0, 1.0)[:, None, None] * dx, dgamma, np.where(gamma == 0, 7.0, dbeta)


@pytest.mark.parametrize("fn", [_wrong_at_a_constant_channel, _wrong_at_gamma_zero])
def test_crosscheck_visits_a_constant_channel_and_a_zero_gamma(fn):
    # before: PASS (no random family has var = 0 or gamma = 0 exactly)
    res = crosscheck(backward=fn, shape=(2, 2, 3), points=5)
    assert not res.ok
    assert res.degenerate is not None and not res.degenerate.ok and "degenerate points" in res.summary()
    assert crosscheck(backward=B.backward_closed_form, shape=(2, 2, 3), points=5).ok


def test_assert_backward_correct_numeric_fallback_is_not_a_pass_for_a_data_branch():
    from symbolic_bn.testing import assert_backward_correct
    with pytest.raises(AssertionError, match="numeric cross-check of backward failed"):
        assert_backward_correct(_wrong_at_a_constant_channel)


def test_numeric_fallback_runs_plain_numpy_code_without_a_namespace_argument():
    # a plain-NumPy backward with one op the engine refuses (np.sort) falls back to the numeric
    # cross-check, which used to pass xp positionally ("takes 5 positional arguments but 6 were given")
    import numpy as np
    from bn_implementations import backward_closed_form
    from symbolic_bn.testing import assert_backward_correct

    def plain(x, gamma, beta, g, eps):
        np.sort(x.reshape(-1))
        return backward_closed_form(x, gamma, beta, g, eps, np)

    def plain_wrong(x, gamma, beta, g, eps):
        dx, dg, db = plain(x, gamma, beta, g, eps)
        return dx * 1.001, dg, db

    results = assert_backward_correct(plain, shapes=[(1, 2, 3)])
    assert results and all(r.ok for r in results)
    with pytest.raises(AssertionError, match="numeric cross-check of backward failed"):
        assert_backward_correct(plain_wrong, shapes=[(1, 2, 3)])


@pytest.mark.parametrize("bug", ["variance zero", "weight zero"])
def test_layer_crosscheck_visits_a_constant_group_and_a_zero_weight(bug):
    # crosscheck(layer=L) used to visit random families only, so a branch on var == 0 or on a
    # zero weight passed it
    import layer_catalog as C
    lay = layers.batch_norm((2, 3, 2), eps=1e-5)
    good = C.bn_backward_numpy

    def wrong(x, weight, bias, grad_out, eps):
        dx, dw, db = good(x, weight, bias, grad_out, eps)
        dx = dx.copy()
        for c in range(x.shape[1]):
            if (x.var(axis=(0, 2))[c] == 0) if bug == "variance zero" else (weight[c] == 0):
                dx[:, c] = 123.0
        return dx, dw, db

    assert crosscheck(backward=good, layer=lay).ok
    res = crosscheck(backward=wrong, layer=lay)
    assert not res.ok and res.degenerate is not None and not res.degenerate.ok


# -- rms_norm: mean(x²) + ε > 0 is never empty, even with one-element groups and ε ≤ 0 -----------

def test_rms_norm_with_one_element_groups_and_nonpositive_eps_is_not_refused():
    # before: refused as an empty domain ("their variance is 0"), which holds only when centered
    assert layers.rms_norm((2, 1), (1,), eps=0).eps == 0
    with pytest.raises(ValueError, match="is empty"):
        layers.layer_norm((2, 1), (1,), eps=0)
