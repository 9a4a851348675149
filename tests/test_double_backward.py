"""check_double_backward: users' double backwards proved exactly, wrong ones refuted exactly.

The rules here are written for TorchLean's batchnorm_channel_first (x: C×H×W, statistics per
channel over H·W, gamma/beta per channel) unless a test says otherwise.  Per channel, with
ĝ = g·γ, t = ggx, a = g·ggγ, x̂ = (x − μ)·r, r = 1/sqrt(var + ε), ⟨·⟩ the channel mean:

    gx        = r(a − ⟨a⟩ − x̂⟨x̂a⟩) − r²[x̂(⟨ĝt⟩ − ⟨ĝ⟩⟨t⟩ − 3⟨ĝx̂⟩⟨x̂t⟩) + ⟨ĝx̂⟩(t − ⟨t⟩) + ⟨x̂t⟩(ĝ − ⟨ĝ⟩)]
    ggamma    = Σ g·r(t − ⟨t⟩ − x̂⟨x̂t⟩)
    ggrad_out = γ·r(t − ⟨t⟩ − x̂⟨x̂t⟩) + ggγ·x̂ + ggβ

(derived in symbolic_bn/graphs/closed_forms.py).  Each wrong rule changes one thing.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import sympy

from symbolic_bn import layers as L
from symbolic_bn.checks.crosscheck import ImplementationError
from symbolic_bn.checks.double_backward import check_double_backward
from symbolic_bn.exact.decide import differ_exactly
from symbolic_bn.graphs import closed_forms
from symbolic_bn.testing import assert_double_backward_correct

SHAPE = (2, 2, 3)


def _rule(bug=None):
    """The double backward of batchnorm_channel_first against xp, with one deliberate bug."""

    def double_backward(x, gamma, beta, g, ggx, ggg, ggb, eps, xp):
        n = x.shape[1] * x.shape[2]
        ax = (1, 2)

        def mean(a):
            return xp.sum(a, axis=ax, keepdims=True) / n

        mu = mean(x)
        d = x - mu
        var = xp.sum(d * d, axis=ax, keepdims=True) / (n - 1 if bug == "wrong N" else n)
        r = 1 / xp.sqrt(var + eps)
        xh = d * r
        w = xp.reshape(gamma, (-1, 1, 1))
        W = xp.reshape(ggg, (-1, 1, 1))
        B = xp.reshape(ggb, (-1, 1, 1))
        gh = g if bug == "missing gamma" else g * w
        t = ggx
        pt = r * (t - mean(t) - xh * mean(xh * t))
        a = g * W
        m_gx, m_xt = mean(gh * xh), mean(xh * t)
        if bug == "saved statistics constant":  # μ and r without history: only x̂'s own derivative
            gx = r * a - r * r * (m_gx * t + m_xt * gh)
        else:
            first = r * ((a if bug == "dropped mean" else a - mean(a)) - xh * mean(xh * a))
            inner = mean(gh * t) - mean(gh) * mean(t) - (0 if bug == "dropped variance" else 3 * m_gx * m_xt)
            bracket = xh * inner + m_gx * (t - mean(t)) + m_xt * (gh - mean(gh))
            gx = first + r * r * bracket if bug == "sign" else first - r * r * bracket
        ggamma = xp.sum(g * pt, axis=ax)
        ggrad_out = w * pt + W * xh + (0 if bug == "no ggbeta" else B)
        return gx, ggamma, ggrad_out

    double_backward.__name__ = double_backward.__qualname__ = f"double_backward[{bug or 'correct'}]"
    return double_backward


def numpy_double_backward(x, gamma, beta, g, ggx, ggg, ggb, eps):
    """Unmodified NumPy, written differently: np.mean/np.var, powers, the bracket expanded."""
    mu = np.mean(x, axis=(1, 2), keepdims=True)
    r = 1 / np.sqrt(np.var(x, axis=(1, 2), keepdims=True) + eps)
    xh = (x - mu) * r
    w, W, B = gamma[:, None, None], ggg[:, None, None], ggb[:, None, None]
    gh = g * w
    a = g * W

    def m(v):
        return np.mean(v, axis=(1, 2), keepdims=True)

    m_gx, m_xt = m(gh * xh), m(xh * ggx)
    gx = (r * a - r * m(a) - r * xh * m(xh * a)
          - r ** 2 * xh * m(gh * ggx) + r ** 2 * xh * m(gh) * m(ggx) + 3 * r ** 2 * xh * m_gx * m_xt
          - r ** 2 * m_gx * ggx + r ** 2 * m_gx * m(ggx) - r ** 2 * m_xt * gh + r ** 2 * m_xt * m(gh))
    pt = r * ggx - r * m(ggx) - r * xh * m_xt
    return gx, np.sum(g * pt, axis=(1, 2)), w * pt + W * xh + B


def closed_form_double_backward(layer):
    def double_backward(x, weight, bias, g, ggx, ggw, ggb, eps, xp):
        return closed_forms.double_backward(layer, x, weight, g, ggx, ggw, ggb, eps, xp)
    return double_backward


WRONG = ("dropped mean", "dropped variance", "saved statistics constant", "sign", "missing gamma",
         "wrong N", "no ggbeta")


# ------------------------------------------------------------------------------ correct rules

@pytest.mark.parametrize("eps", [None, Fraction(1, 10 ** 5)])
def test_three_differently_written_correct_rules_are_proved(eps):
    layer = L.batchnorm_channel_first(*SHAPE, eps=eps)
    for fn in (_rule(), numpy_double_backward, closed_form_double_backward(layer)):
        cert = check_double_backward(fn, layer=layer)
        assert cert.ok, cert.summary()
        assert [ob.name for ob in cert] == ["double_backward.gx", "double_backward.ggamma",
                                            "double_backward.ggrad_out"]


@pytest.mark.parametrize("layer", [
    L.batch_norm((2, 2, 2)), L.instance_norm((2, 2, 2)), L.layer_norm((2, 3), (3,)),
    L.group_norm((1, 4, 1), 2), L.rms_norm((2, 3), (3,), eps=Fraction(1, 10 ** 5)),
], ids=lambda l: l.name)
def test_closed_form_double_backward_of_every_layer_is_proved(layer):
    cert = check_double_backward(closed_form_double_backward(layer), layer=layer)
    assert cert.ok, cert.summary()


def test_rms_norm_gets_none_for_bias_and_ggbias():
    layer = L.rms_norm((2, 2), (2,))
    seen = {}

    def fn(x, weight, bias, g, ggx, ggw, ggb, eps, xp):
        seen["bias"], seen["ggb"] = bias, ggb
        return closed_forms.double_backward(layer, x, weight, g, ggx, ggw, None, eps, xp)

    assert check_double_backward(fn, layer=layer).ok
    assert seen == {"bias": None, "ggb": None}


# ------------------------------------------------------------------------------ wrong rules

def _confirm(ob):
    """The counterexample re-evaluated: implementation and reference differ exactly."""
    cex = ob.counterexample
    assert cex is not None
    for key in ("x", "gamma", "beta", "grad_out", "ggx", "gggamma", "ggbeta", "eps"):
        assert key in cex, key
    assert differ_exactly(cex["implementation"], cex["reference"]) is True
    # the point is inside the domain: var + ε > 0 in every channel
    x = np.array(cex["x"], dtype=object)
    for c in range(x.shape[0]):
        vals = list(x[c].ravel())
        mu = sum(vals, sympy.Integer(0)) / len(vals)
        assert sum(((v - mu) ** 2 for v in vals), sympy.Integer(0)) / len(vals) + cex["eps"] > 0


@pytest.mark.parametrize("bug", WRONG)
def test_wrong_rules_fail_with_confirmed_counterexamples(bug):
    cert = check_double_backward(_rule(bug), layer=L.batchnorm_channel_first(*SHAPE))
    failed = cert.failed()
    assert failed, f"{bug}: {cert.summary()}"
    assert not cert.ok
    for ob in failed:
        _confirm(ob)
    names = {ob.name for ob in failed}
    if bug in ("saved statistics constant", "dropped mean", "dropped variance", "sign", "missing gamma"):
        assert "double_backward.gx" in names
    if bug == "no ggbeta":
        assert names == {"double_backward.ggrad_out"}


def test_saved_statistics_rule_recomputed_by_hand_at_the_counterexample():
    """Independent of the engine: re-evaluate the wrong gx and the right gx (the numpy rule) in
    SymPy rationals at the counterexample point."""
    cert = check_double_backward(_rule("saved statistics constant"), layer=L.batchnorm_channel_first(*SHAPE))
    ob = cert["double_backward.gx"]
    cex = ob.counterexample
    arrays = {k: np.array(cex[k], dtype=object) for k in ("x", "gamma", "beta", "grad_out", "ggx", "gggamma",
                                                         "ggbeta")}
    idx = tuple(int(i) for i in cex["location"][len("gx["):-1].split(","))

    class SympyXp:
        @staticmethod
        def sum(a, axis=None, keepdims=False):
            return np.sum(a, axis=axis, keepdims=keepdims)

        @staticmethod
        def sqrt(a):
            return np.vectorize(sympy.sqrt, otypes=[object])(a)

        @staticmethod
        def reshape(a, s):
            return np.reshape(a, s)

    args = [arrays[k] for k in ("x", "gamma", "beta", "grad_out", "ggx", "gggamma", "ggbeta")]
    wrong = _rule("saved statistics constant")(*args, cex["eps"], SympyXp)[0][idx]
    right = _rule()(*args, cex["eps"], SympyXp)[0][idx]
    assert differ_exactly(wrong, cex["implementation"]) is False
    assert differ_exactly(right, cex["reference"]) is False
    assert differ_exactly(wrong, right) is True


def test_wrong_rules_fail_with_an_exact_eps_too():
    layer = L.batchnorm_channel_first(*SHAPE, eps=Fraction(1, 10 ** 5))
    for bug in ("saved statistics constant", "wrong N"):
        cert = check_double_backward(_rule(bug), layer=layer)
        assert cert.failed(), bug
        for ob in cert.failed():
            _confirm(ob)
            assert ob.counterexample["eps"] == sympy.Rational(1, 10 ** 5)


def test_wrong_rule_on_another_layer():
    layer = L.layer_norm((2, 3), (3,))

    def no_variance_history(x, weight, bias, g, ggx, ggw, ggb, eps, xp):
        gx, gw, ggo = closed_forms.double_backward(layer, x, weight, g, ggx, ggw, ggb, eps, xp)
        return gx * 2, gw, ggo

    cert = check_double_backward(no_variance_history, layer=layer)
    assert [ob.name for ob in cert.failed()] == ["double_backward.gx"]
    assert "ggweight" in cert.failed()[0].counterexample


# ------------------------------------------------------------------------------ the decision path

def test_division_by_the_weight_is_not_proved():
    """gγ·γ/γ is right where γ ≠ 0 only: the weight-zero point refutes it (or it stays undecided)."""
    right = _rule()

    def divides(x, gamma, beta, g, ggx, ggg, ggb, eps, xp):
        gx, gg, ggo = right(x, gamma, beta, g, ggx, ggg, ggb, eps, xp)
        w = xp.reshape(gamma, (-1, 1, 1))
        return gx, gg, (ggo * w) / w

    cert = check_double_backward(divides, layer=L.batchnorm_channel_first(*SHAPE))
    assert not cert.ok
    ob = cert["double_backward.ggrad_out"]
    assert ob.status == "failed"  # undefined at the weight-zero point, which is inside the domain
    assert ob.counterexample["point"] == "weight zero" and ob.counterexample.get("undefined")


def test_a_hard_coded_eps_fails_for_another_eps():
    right = _rule()

    def hard_coded(x, gamma, beta, g, ggx, ggg, ggb, eps, xp):
        return right(x, gamma, beta, g, ggx, ggg, ggb, 1e-5, xp)

    assert check_double_backward(hard_coded, layer=L.batchnorm_channel_first(*SHAPE, eps=Fraction(1, 10 ** 5))).ok
    assert check_double_backward(hard_coded, layer=L.batchnorm_channel_first(*SHAPE, eps=Fraction(1, 10))).failed()
    assert check_double_backward(hard_coded, layer=L.batchnorm_channel_first(*SHAPE)).failed()


def test_data_dependent_branch_is_refused_or_refuted():
    right = _rule()

    def branches(x, gamma, beta, g, ggx, ggg, ggb, eps, xp):
        if np.sum(ggx * ggx) == 0:  # a branch on the data: not decidable for a symbolic ggx
            return right(x, gamma, beta, g, ggx * 0, ggg, ggb, eps, xp)
        return right(x, gamma, beta, g, ggx, ggg, ggb, eps, xp)

    with pytest.raises(ImplementationError, match="test_double_backward.py"):
        check_double_backward(branches, layer=L.batchnorm_channel_first(*SHAPE))


def test_wrong_output_shape_and_count_are_implementation_errors():
    right = _rule()

    def two(x, gamma, beta, g, ggx, ggg, ggb, eps, xp):
        return right(x, gamma, beta, g, ggx, ggg, ggb, eps, xp)[:2]

    def transposed(x, gamma, beta, g, ggx, ggg, ggb, eps, xp):
        gx, gg, ggo = right(x, gamma, beta, g, ggx, ggg, ggb, eps, xp)
        return gx, gg, xp.reshape(ggo, (SHAPE[0], SHAPE[2], SHAPE[1]))

    with pytest.raises(ImplementationError, match="3"):
        check_double_backward(two, layer=L.batchnorm_channel_first(*SHAPE))
    with pytest.raises(ImplementationError, match="ggrad_out has shape"):
        check_double_backward(transposed, layer=L.batchnorm_channel_first(*SHAPE))


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="callable"):
        check_double_backward(3, layer=L.batchnorm_channel_first(*SHAPE))
    with pytest.raises(ValueError, match="layer"):
        check_double_backward(_rule(), layer="batch_norm")
    with pytest.raises(ValueError, match="eps"):
        check_double_backward(_rule(), layer=L.batchnorm_channel_first(*SHAPE), eps=0.1)
    with pytest.raises(ValueError, match="budget"):
        check_double_backward(_rule(), layer=L.batchnorm_channel_first(*SHAPE), budget=-1)


# ------------------------------------------------------------------------------ testing helper

def test_assert_double_backward_correct():
    certs = assert_double_backward_correct(numpy_double_backward, shapes=[(1, 2, 2), SHAPE])
    assert len(certs) == 2 and all(c.ok for c in certs)
    layer = L.layer_norm((2, 3), (3,))
    assert assert_double_backward_correct(closed_form_double_backward(layer), layer=layer)[0].ok
    with pytest.raises(AssertionError) as info:
        assert_double_backward_correct(_rule("saved statistics constant"), shapes=[SHAPE])
    text = str(info.value)
    assert "FAILED double_backward.gx" in text and "ggx = " in text and "counterexample" in text
    with pytest.raises(ValueError, match="not both"):
        assert_double_backward_correct(numpy_double_backward, shapes=[SHAPE], layer=layer)
    with pytest.raises(TypeError, match="unknown option"):
        assert_double_backward_correct(numpy_double_backward, colour="red")
