"""symbolic_bn.testing: failure messages (each obligation once, user's names), default shapes,
options passed through.  (The pass/fail behaviour of assert_*_correct is also in test_check.py.)"""
import re

import pytest
from hypothesis import given, strategies as st

import bn_implementations as B
from symbolic_bn.obligations.certificate import Certificate, Obligation
from symbolic_bn.testing import (DEFAULT_SHAPES, assert_backward_correct, assert_forward_correct,
                                 failure_message, readable_names)

AX = (1, 2)


# ---------------------------------------------------------------------------------------------
# readable_names


indices = st.lists(st.integers(min_value=0, max_value=99), min_size=1, max_size=3)


@given(st.sampled_from(["x", "gamma", "beta", "g"]), indices)
def test_old_and_new_symbol_names_read_the_same(name, idx):
    old = f"{name}_{'_'.join(map(str, idx))}"
    new = f"{name}[{', '.join(map(str, idx))}]"
    user = "grad_out" if name == "g" else name
    want = f"{user}[{', '.join(map(str, idx))}]"
    assert readable_names(f"{old} - 1 != 0") == f"{want} - 1 != 0"
    assert readable_names(f"{new} - 1 != 0") == f"{want} - 1 != 0"


@given(st.text(alphabet="abcdefghijklmnopqrstuvwyz+-*/ ()=!<>0123456789.,ε"))
def test_text_without_input_symbols_is_unchanged(text):
    # no 'x' and no '_' in the alphabet: nothing looks like an input symbol
    assert readable_names(text) == text


@pytest.mark.parametrize("text", ["var_0 + ε > 0", "max_1", "xx_0", "x_", "sigma_0", "eps_1", "dx[0, 1, 2]",
                                  "mygamma_2", "beta_x"])
def test_other_names_are_left_alone(text):
    assert readable_names(text) == text


# ---------------------------------------------------------------------------------------------
# failure messages


def _cex(location, **extra):
    base = {"location": location, "implementation": "1/2", "reference": "3/4",
            "implementation_approx": 0.5, "reference_approx": 0.75,
            "x": [[["1", "2"]]], "gamma": ["3"], "beta": ["0"], "grad_out": [[["1", "-1"]]], "eps": "1/10"}
    return {**base, **extra}


def _cert():
    cert = Certificate("backward mine at 1x1x2")
    cert.add(Obligation("backward.dx", "dx statement", "failed", "m", counterexample=_cex("dx[0, 0, 1]")))
    cert.add(Obligation("backward.dgamma", "dgamma statement", "failed", "m",
                        counterexample=_cex("dgamma[0]")))
    cert.add(Obligation("backward.dbeta", "dbeta statement", "proved", "m"))
    cert.add(Obligation("backward.extra1", "e1", "undecided", "m", detail="x_0_0_1 - gamma_0 != 0 (a divisor)"))
    cert.add(Obligation("backward.extra2", "e2", "undecided", "m", detail="x_0_0_1 - gamma_0 != 0 (a divisor)"))
    cert.add(Obligation("backward.extra3", "e3", "undecided", "m", detail="time budget of 1 s exceeded"))
    return cert


def test_message_names_each_obligation_once():
    msg = failure_message(_cert(), "who")
    for name in ("backward.dx", "backward.dgamma", "backward.dbeta", "backward.extra1",
                 "backward.extra2", "backward.extra3"):
        assert len(re.findall(re.escape(name) + r"\b", msg)) == 1, (name, msg)
    assert msg.splitlines()[0] == "who: backward mine at 1x1x2 is not proved correct"
    assert "6 obligation(s): 1 proved (backward.dbeta), 2 failed, 3 undecided" in msg


def test_message_shows_counterexamples_and_prints_shared_inputs_once():
    msg = failure_message(_cert(), "who")
    assert "counterexample at dx[0, 0, 1]:" in msg and "counterexample at dgamma[0]:" in msg
    assert "implementation = 1/2  (≈ 0.5)" in msg and "reference      = 3/4  (≈ 0.75)" in msg
    assert msg.count("inputs: x = [[['1', '2']]], gamma = ['3'], beta = ['0'], grad_out = [[['1', '-1']]], "
                     "eps = 1/10") == 1
    assert "inputs: the same as above" in msg


def test_message_groups_undecided_by_reason_in_the_users_names():
    msg = failure_message(_cert(), "who")
    assert "UNDECIDED backward.extra1, backward.extra2: not decided" in msg
    assert msg.count("why: x[0, 0, 1] - gamma[0] != 0 (a divisor)") == 1
    assert "UNDECIDED backward.extra3: e3" in msg and "why: time budget of 1 s exceeded" in msg
    assert "x_0_0_1" not in msg and "gamma_0" not in msg
    assert "undecided is not a pass" in msg


def test_real_undecided_check_names_the_condition_in_users_terms():
    def divides_by_a_difference(x, gamma, beta, g, eps, xp):
        dx, dgamma, dbeta = B.backward_closed_form(x, gamma, beta, g, eps, xp)
        d = x[:, 0, 0] - x[:, 0, 1] + 1  # may be 0 inside the domain: the check cannot prove this
        return dx, dgamma, dbeta * d / d
    with pytest.raises(AssertionError) as info:
        assert_backward_correct(divides_by_a_difference, shapes=[(1, 2, 3)])
    msg = str(info.value)
    # the function divides by d, which may be 0 in the domain: every output is undecided, and
    # the condition is shown once, in the input names
    assert "x[0, 0, 0] - x[0, 0, 1] + 1 ≠ 0" in msg and "x_0_0_0" not in msg
    assert msg.count("x[0, 0, 0] - x[0, 0, 1] + 1 ≠ 0") == 1 and msg.count("backward.dx") == 1


def test_real_failure_message_shows_each_obligation_once():
    with pytest.raises(AssertionError) as info:
        assert_backward_correct(B.wrong_missing_sum_g_term, shapes=[(1, 2, 3)])
    msg = str(info.value)
    assert msg.count("backward.dx") == 1 and msg.count("counterexample at") == 1
    assert "2 proved (backward.dgamma, backward.dbeta), 1 failed, 0 undecided" in msg
    assert "PROVED" not in msg  # no per-obligation listing of proved ones
    assert re.search(r"implementation = \S+  \(≈ -?\d", msg) and "grad_out = [[[" in msg


# ---------------------------------------------------------------------------------------------
# default shapes


def test_default_shapes_are_two_with_pairwise_different_dimensions():
    assert len(DEFAULT_SHAPES) >= 2
    assert any(len({c, h, w}) == 3 and c >= 2 for c, h, w in DEFAULT_SHAPES)


def _forward_with_count(count):
    def forward(x, gamma, beta, eps, xp):
        n = count(x.shape)
        mu = xp.sum(x, axis=AX, keepdims=True) / n
        d = x - mu
        var = xp.sum(d * d, axis=AX, keepdims=True) / n
        return d / xp.sqrt(var + eps) * gamma[:, None, None] + beta[:, None, None]
    return forward


@pytest.mark.parametrize("label, count", [
    ("H*H", lambda s: s[1] * s[1]), ("W*W", lambda s: s[2] * s[2]), ("C*W", lambda s: s[0] * s[2]),
    ("C*H", lambda s: s[0] * s[1]), ("C*H*W", lambda s: s[0] * s[1] * s[2]),
])
def test_default_shapes_catch_a_wrong_element_count(label, count):
    """Each count equals H·W at some shape (H·H and W·W when H = W, C·W when C = H, C·H when C = W,
    C·H·W when C = 1); at 2x3x4 none does."""
    with pytest.raises(AssertionError, match="FAILED forward.y"):
        assert_forward_correct(_forward_with_count(count))


def test_a_bug_that_needs_the_second_shape_says_where_it_was_proved():
    """C·H·W instead of H·W is right when C = 1: proved at 1x2x3, failed at 2x3x4."""
    with pytest.raises(AssertionError) as info:
        assert_forward_correct(_forward_with_count(lambda s: s[0] * s[1] * s[2]))
    first = str(info.value).splitlines()[0]
    assert first == ("assert_forward_correct: forward _forward_with_count.<locals>.forward at 2x3x4 "
                     "is not proved correct "
                     "(proved at 1x2x3 before)")


def test_correct_code_passes_at_the_default_shapes_and_returns_the_certificates():
    certs = assert_forward_correct(B.forward_plain)
    assert [c.subject for c in certs] == ["forward forward_plain at 1x2x3", "forward forward_plain at 2x3x4"]
    assert all(c.ok for c in certs)


# ---------------------------------------------------------------------------------------------
# options passed through


def test_options_reach_the_check():
    certs = assert_forward_correct(B.forward_plain, shapes=[(1, 2, 2)], seed=5, eps="1/100")
    assert str(certs[0].parameters["eps"]) == "1/100"


def test_unknown_option_is_refused_naming_it():
    with pytest.raises(TypeError, match=r"assert_forward_correct: unknown option\(s\) frobnicate "
                                        r"\(not accepted by check_forward\)"):
        assert_forward_correct(B.forward_plain, shapes=[(1, 2, 2)], frobnicate="layernorm")


@pytest.mark.parametrize("shapes", ["2x3x4", [], 5])
def test_bad_shapes_are_refused(shapes):
    with pytest.raises(ValueError, match="assert_backward_correct: shapes"):
        assert_backward_correct(B.backward_closed_form, shapes=shapes)


def test_one_shape_keyword_as_the_checks_spell_it():
    certs = assert_backward_correct(B.backward_staged, shape=(1, 2, 3))
    assert len(certs) == 1 and "1x2x3" in certs[0].to_dict()["subject"]
    with pytest.raises(TypeError, match="shape= or shapes="):
        assert_backward_correct(B.backward_staged, shape=(1, 2, 3), shapes=[(1, 2, 2)])
