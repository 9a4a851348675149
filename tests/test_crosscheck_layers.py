"""crosscheck(..., layer=L): every layer in its own layout against its mpmath reference.

The catalog of right and wrong implementations is tests/test_layer_catalog.py; torch parity is
tests/test_torch_parity.py.  Here: the reference itself, the layout conventions (no xp unless
declared, rms_norm's bias None and two gradients), the ε rules, bad input, and properties.
"""
import math
from fractions import Fraction

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mpmath import mp

from symbolic_bn import layers, numeric
from symbolic_bn.checks import crosscheck as cc_mod
from symbolic_bn.checks.crosscheck import (FAMILIES, ImplementationError, ReferenceCheckError, crosscheck,
                                           layer_reference)
from symbolic_bn.graphs import closed_forms
from symbolic_bn.testing import assert_backward_correct, assert_forward_correct


def closed_form_functions(layer):
    """The layer's own closed forms on NumPy: a correct forward/backward in its layout."""
    def forward(x, weight, bias, eps, xp):
        return layer.forward(x, weight, bias, eps, xp)

    def backward(x, weight, bias, grad_out, eps, xp):
        return closed_forms.backward(layer, x, weight, bias, grad_out, eps, xp)
    return forward, backward


LAYERS = [
    layers.batch_norm((3, 2), eps=1e-5),
    layers.batch_norm((2, 3, 2, 2)),
    layers.instance_norm((2, 2, 5)),
    layers.layer_norm((2, 3, 4), (3, 4)),
    layers.layer_norm((5, 4), (4,), eps=Fraction(1, 1000)),
    layers.group_norm((2, 6, 2), 3),
    layers.group_norm((1, 4), 2, eps=1e-5),
    layers.rms_norm((2, 3, 4), (4,)),
    layers.rms_norm((4, 6), (6,), eps=1e-6),
]


@pytest.mark.parametrize("layer", LAYERS, ids=repr)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_closed_forms_pass_on_every_family(layer, dtype):
    fw, bw = closed_form_functions(layer)
    res = crosscheck(fw, bw, layer=layer, dtype=dtype, points=10)
    assert res.ok, res.summary()
    assert set(res.families) == set(FAMILIES)
    assert res.eps_probe is not None and res.eps_probe.ok
    assert res.reference_check and all(rc["groups_vs_closed_forms"] < 1e-40 for rc in res.reference_check)
    n = layer.group_size
    assert res.statistics_size == n and res.to_dict()["group_size"] == n
    names = ("y", "dx", "d" + layer.argument_names[1]) + (("d" + layer.argument_names[2],)
                                                           if layer.bias_shape else ())
    assert tuple(res.outputs) == names
    assert "layer=" + layer.name in res.summary()


def test_batchnorm_channel_first_as_a_layer_sees_the_same_points_as_without():
    """Same points (families, eps probe) and references; only the bound's generalized scales
    differ, so the measured errors are identical."""
    a = crosscheck(numeric.forward, numeric.backward, shape=(2, 3, 4), points=6, dtype="float32")
    b = crosscheck(numeric.forward, numeric.backward, layer=layers.batchnorm_channel_first(2, 3, 4, eps=1e-5),
                   points=6, dtype="float32")
    assert a.ok and b.ok
    assert tuple(a.outputs) == tuple(b.outputs) == ("y", "dx", "dgamma", "dbeta")
    for name in a.outputs:
        assert math.isclose(a.outputs[name].max_abs, b.outputs[name].max_abs, rel_tol=1e-12, abs_tol=1e-300)
        assert a.outputs[name].components == b.outputs[name].components


# ----------------------------------------------------------------------------- the ε rules

def test_numeric_eps_layer_is_checked_at_its_eps():
    layer = layers.layer_norm((2, 4), (4,), eps=Fraction(1, 1000))
    fw, bw = closed_form_functions(layer)
    res = crosscheck(fw, bw, layer=layer, points=2)
    assert res.ok and res.eps_used == 1e-3
    res = crosscheck(fw, bw, layer=layer, points=2, eps=1e-3)  # repeating it is fine
    assert res.eps_used == 1e-3
    with pytest.raises(ValueError, match=r"eps=1e-05 differs from the layer's ε = 1/1000"):
        crosscheck(fw, bw, layer=layer, points=2, eps=1e-5)


def test_symbolic_eps_layer_uses_crosschecks_eps():
    layer = layers.instance_norm((1, 2, 4))
    fw, bw = closed_form_functions(layer)
    assert crosscheck(fw, bw, layer=layer, points=2).eps_used == 1e-5
    assert crosscheck(fw, bw, layer=layer, points=2, eps=0.25).eps_used == 0.25
    positive = layers.instance_norm((1, 2, 4), eps=sympy.Symbol("e", positive=True))
    with pytest.raises(ValueError, match="declared > 0"):
        crosscheck(fw, bw, layer=positive, points=2, eps=-1e-3)


def test_a_function_ignoring_its_eps_fails_the_eps_probe():
    layer = layers.group_norm((2, 4, 3), 2, eps=1e-3)

    def forward_fixed_eps(x, weight, bias, eps, xp):
        return layer.forward(x, weight, bias, 1e-3, xp)   # ignores eps (= 1e-3 here)
    res = crosscheck(forward_fixed_eps, layer=layer, points=5)
    assert not res.ok
    assert all(f.ok for f in res.families.values()) and not res.eps_probe.ok


# ----------------------------------------------------------------------------- conventions

def test_xp_is_passed_only_to_functions_that_declare_it_and_rms_bias_is_none():
    layer = layers.rms_norm((3, 4), (4,))
    seen = {}

    def forward(x, weight, bias, eps):
        seen["forward"] = bias
        return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps) * weight

    def backward(x, weight, bias, grad_out, eps, xp):
        seen["backward"] = (bias, xp)
        return closed_forms.backward(layer, x, weight, bias, grad_out, eps, np)
    res = crosscheck(forward, backward, layer=layer, points=3)
    assert res.ok, res.summary()
    assert seen["forward"] is None and seen["backward"] == (None, np)
    assert tuple(res.outputs) == ("y", "dx", "dweight")


def test_writing_into_arguments_is_allowed_and_noted():
    layer = layers.batch_norm((2, 3))
    fw, _ = closed_form_functions(layer)

    def forward(x, weight, bias, eps, xp):
        y = fw(x.copy(), weight, bias, eps, xp)
        x -= 1.0
        return y
    res = crosscheck(forward, layer=layer, points=3)
    assert res.ok and any("writes into its argument 'x'" in n for n in res.notes)


def test_wrong_shaped_weight_gradient_names_expected_and_actual_shape():
    """The LayerNorm backward that assumes a 2-D input: dweight summed over axis 0 only."""
    layer = layers.layer_norm((2, 3, 4), (4,))
    _, bw = closed_form_functions(layer)

    def backward_2d(x, weight, bias, grad_out, eps):
        dx, _, _ = bw(x, weight, bias, grad_out, eps, np)
        mu = x.mean(axis=-1, keepdims=True)
        xhat = (x - mu) / np.sqrt(x.var(axis=-1, keepdims=True) + eps)
        return dx, (grad_out * xhat).sum(axis=0), grad_out.sum(axis=0)
    with pytest.raises(ImplementationError, match=r"dweight has shape \(3, 4\), expected \(4,\)"):
        crosscheck(backward=backward_2d, layer=layer, points=1)


def test_rms_backward_must_return_two_arrays():
    layer = layers.rms_norm((2, 3), (3,))

    def backward3(x, weight, bias, grad_out, eps):
        return x, weight, weight
    with pytest.raises(ImplementationError, match=r"must return 2 arrays \(dx, dweight\); got 3"):
        crosscheck(backward=backward3, layer=layer, points=1)


def test_nan_output_is_a_failing_result():
    layer = layers.instance_norm((2, 2, 3))
    fw, _ = closed_form_functions(layer)

    def forward_nan(x, weight, bias, eps, xp):
        y = fw(x, weight, bias, eps, xp)
        y[0, 0, 0] = np.nan
        return y
    res = crosscheck(forward_nan, layer=layer, points=2)
    # 2 points + the eps probe + 2 degenerate points
    assert not res.ok and res.outputs["y"].nonfinite == 5 and "returned NaN" in res.problems[0]


def test_budget_exhausted_is_incomplete_not_pass():
    layer = layers.layer_norm((4, 8), (8,))
    fw, bw = closed_form_functions(layer)
    res = crosscheck(fw, bw, layer=layer, points=50, budget=1e-3)
    assert not res.ok and not res.complete and "INCOMPLETE" in res.summary()


def test_user_inputs_in_the_layers_layout():
    layer = layers.group_norm((1, 4, 2), 2, eps=1e-5)
    fw, bw = closed_form_functions(layer)
    x = np.arange(8.0).reshape(1, 4, 2)
    res = crosscheck(fw, bw, layer=layer, points=1,
                     inputs=[{"x": x, "weight": [1, -1, 2, 0.5], "bias": [0, 0, 1, 1]},
                             {"x": x ** 2, "weight": np.ones(4), "bias": np.zeros(4), "grad_out": x}])
    assert res.ok and res.user_points == 2 and res.families["user"].points == 2
    with pytest.raises(ValueError, match=r"inputs\[0\] is missing key\(s\) \['bias'\]"):
        crosscheck(fw, layer=layer, points=1, inputs=[{"x": x, "weight": np.ones(4)}])
    with pytest.raises(ValueError, match=r"inputs\[0\] has unknown key\(s\) \['gamma'\]"):
        crosscheck(fw, layer=layer, points=1,
                   inputs=[{"x": x, "weight": np.ones(4), "bias": np.ones(4), "gamma": 1}])
    with pytest.raises(ValueError, match=r"inputs\[0\]\['weight'\] must have shape \(4,\)"):
        crosscheck(fw, layer=layer, points=1, inputs=[{"x": x, "weight": np.ones(2), "bias": np.ones(4)}])
    zero_var = layers.group_norm((1, 4, 2), 2, eps=0)
    with pytest.raises(ValueError, match=r"inputs\[0\] \(eps=0.0 as float64\).*var \+ eps > 0"):
        crosscheck(fw, layer=zero_var, points=1, families=("normal",),
                   inputs=[{"x": np.ones((1, 4, 2)), "weight": np.ones(4), "bias": np.ones(4)}])


@pytest.mark.parametrize("kwargs, match", [
    (dict(layer="batch_norm"), "layer must be a symbolic_bn.layers.Layer"),
    (dict(shape=(2, 3)), r"shape \(2, 3\) differs from the layer's input shape \(2, 3, 4\)"),
    (dict(dtype="float16"), "dtype"),
    (dict(points=0), "points"),
    (dict(eps=float("nan")), "eps"),
    (dict(families=("bogus",)), "families"),
    (dict(forward=None, backward=None), "both are None"),
])
def test_bad_arguments_with_a_layer(kwargs, match):
    layer = layers.instance_norm((2, 3, 4))
    args = dict(forward=closed_form_functions(layer)[0], layer=layer, points=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        crosscheck(**args)


def test_eps_below_the_groups_statistics_is_refused_naming_eps():
    layer = layers.rms_norm((2, 3), (3,))
    with pytest.raises(ValueError, match=r"eps=-10.0 .*mean\(x²\) \+ eps > 0 in every statistics group"):
        crosscheck(closed_form_functions(layer)[0], layer=layer, points=1, eps=-10.0)


# ----------------------------------------------------------------------------- the reference

def test_reference_self_check_catches_a_wrong_closed_form(monkeypatch):
    layer = layers.layer_norm((2, 3), (3,))
    fw, bw = closed_form_functions(layer)
    original = closed_forms.backward

    def off(layer_, *args):
        out = list(original(layer_, *args))
        out[0] = out[0] * (1 + mp.mpf(10) ** -20)   # dx off by 1e-20 relative
        return tuple(out)
    monkeypatch.setattr(closed_forms, "backward", off)
    with pytest.raises(ReferenceCheckError, match="self-check"):
        crosscheck(fw, bw, layer=layer, points=1)


def test_layer_reference_at_exact_rational_points():
    layer = layers.rms_norm((1, 2), (2,))
    x = np.array([[Fraction(3), Fraction(4)]], dtype=object)
    ref = layer_reference(layer, x, np.array([Fraction(1), Fraction(2)], dtype=object), None, 0,
                          grad_out=np.array([[1, 0]], dtype=object), as_float=False)
    # mean(x²) = 25/2, r = sqrt(2)/5: y = (3r, 8r); dx = r·(ĝ − x̂⟨ĝx̂⟩), ĝ = (1, 0)
    with mp.workdps(50):
        r = mp.sqrt(2) / 5
        assert abs(ref["y"][0, 0] - 3 * r) < mp.mpf(10) ** -45
        assert abs(ref["y"][0, 1] - 8 * r) < mp.mpf(10) ** -45
        xh = [3 * r, 4 * r]
        proj = (1 * xh[0]) / 2
        assert abs(ref["dx"][0, 0] - r * (1 - xh[0] * proj)) < mp.mpf(10) ** -45
        assert abs(ref["dweight"][0] - xh[0]) < mp.mpf(10) ** -45
    assert set(ref) == {"y", "dx", "dweight"}


def test_layer_reference_bad_input():
    layer = layers.batch_norm((2, 2))
    with pytest.raises(ValueError, match="layer must be"):
        layer_reference("x", np.ones((2, 2)), np.ones(2), np.ones(2), 1e-5)
    with pytest.raises(ValueError, match=r"weight must have shape \(2,\)"):
        layer_reference(layer, np.ones((2, 2)), np.ones(3), np.ones(2), 1e-5)
    with pytest.raises(ValueError, match="bias is required"):
        layer_reference(layer, np.ones((2, 2)), np.ones(2), None, 1e-5)
    with pytest.raises(ValueError, match="bias must be None for rms_norm"):
        layer_reference(layers.rms_norm((2, 2), (2,)), np.ones((2, 2)), np.ones(2), np.ones(2), 1e-5)
    with pytest.raises(ValueError, match=r"var \+ eps > 0"):
        layer_reference(layer, np.ones((2, 2)), np.ones(2), np.ones(2), 0)


# ----------------------------------------------------------------------------- properties

def _layer_strategy():
    def build(kind, n, c, s, eps):
        if kind == "batch_norm":
            return layers.batch_norm((n + 1, c) + ((s,) if s > 1 else ()), eps=eps)
        if kind == "instance_norm":
            return layers.instance_norm((n, c, s + 1), eps=eps)
        if kind == "layer_norm":
            return layers.layer_norm((n, c, s + 1), (s + 1,) if c % 2 else (c, s + 1), eps=eps)
        if kind == "group_norm":
            # at least two elements per group: with one, dx is identically 0 and no error shows
            return layers.group_norm((n, 2 * c, s + 1), c if c > 1 else 2, eps=eps)
        return layers.rms_norm((n, c, s), (s,), eps=eps)
    return st.builds(build, st.sampled_from(["batch_norm", "instance_norm", "layer_norm", "group_norm",
                                             "rms_norm"]),
                     st.integers(1, 2), st.integers(1, 3), st.integers(1, 3),
                     st.sampled_from([None, 1e-5, Fraction(1, 100)]))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layer=_layer_strategy(), seed=st.integers(0, 2 ** 16), dtype=st.sampled_from(["float32", "float64"]))
def test_property_closed_forms_pass_and_a_one_percent_error_in_dx_fails(layer, seed, dtype):
    fw, bw = closed_form_functions(layer)
    res = crosscheck(fw, bw, layer=layer, points=3, seed=seed, dtype=dtype,
                     families=("normal", "mixed_scales", "sparse"))
    assert res.ok, res.summary()

    def bw_off(x, weight, bias, grad_out, eps, xp):
        out = list(bw(x, weight, bias, grad_out, eps, xp))
        out[0] = out[0] * 1.01
        return tuple(out)
    bad = crosscheck(backward=bw_off, layer=layer, points=3, seed=seed, dtype=dtype,
                     families=("normal", "mixed_scales", "sparse"))
    assert not bad.outputs["dx"].ok, bad.summary()
    assert all(o.ok for k, o in bad.outputs.items() if k != "dx")


# ----------------------------------------------------------------------------- testing.py

def test_assertions_take_a_layer():
    layer = layers.group_norm((2, 4, 3), 2)
    fw, bw = closed_form_functions(layer)
    certs = assert_backward_correct(bw, layer=layer)
    assert len(certs) == 1 and certs[0].ok
    assert_forward_correct(fw, layer=layer)

    def bw_no_mean(x, weight, bias, grad_out, eps, xp):
        dx, dw, db = bw(x, weight, bias, grad_out, eps, xp)
        return dx + 0.5, dw, db
    with pytest.raises(AssertionError, match="FAILED backward.dx"):
        assert_backward_correct(bw_no_mean, layer=layer)
    # the numeric fallback with a layer, at the layer's own ε when it has one
    results = assert_backward_correct(bw, layer=layers.group_norm((2, 4, 3), 2, eps=1e-3), numeric=True)
    assert [r.dtype for r in results] == ["float64", "float32"] and all(r.eps_used == pytest.approx(1e-3)
                                                                          for r in results)
    with pytest.raises(AssertionError, match="numeric cross-check of backward failed"):
        assert_backward_correct(bw_no_mean, layer=layer, numeric=True)
