"""crosscheck_autodiff: the harness passes primitive-op compositions in every mode up to order 3,
fails wrong higher-order rules (the PyTorch failure class), reports framework errors as rows,
and refuses bad input with one-line errors."""
import json
import math
import types
from fractions import Fraction

import pytest
import sympy

from symbolic_bn.checks import autodiff
from symbolic_bn.checks.autodiff import (MODES, MODES_BY_ORDER, TOLERANCE, crosscheck_autodiff,
                                         mode_plan)
from symbolic_bn.graphs import formulas as fm

EPS = Fraction(1, 10**5)


def make_layer(name, shape, eps=EPS, **hyper):
    """A stand-in for symbolic_bn.layers (layers-spec.md), forward from formulas.py."""
    shape = tuple(shape)
    if name in ("layer_norm", "rms_norm"):
        wshape = tuple(hyper["normalized_shape"])
    else:
        wshape = (shape[0] if name == "batchnorm_channel_first" else shape[1],)
    return types.SimpleNamespace(
        name=name, input_shape=shape, weight_shape=wshape,
        bias_shape=None if name == "rms_norm" else wshape, eps=eps,
        forward=fm.forward_for(name, **hyper), groups=hyper.get("groups"),
        normalized_shape=hyper.get("normalized_shape"),
        statistics_axes=fm.statistics_axes(name, shape, **hyper))


LAYERS = [
    ("batchnorm_channel_first", (2, 2, 3), {}),
    ("batch_norm", (2, 2, 3), {}),
    ("instance_norm", (1, 2, 2, 2), {}),
    ("layer_norm", (2, 2, 3), {"normalized_shape": (2, 3)}),
    ("group_norm", (1, 4, 3), {"groups": 2}),
    ("rms_norm", (2, 4), {"normalized_shape": (4,)}),
]


# ------------------------------------------------------------------------------ pure Python
def test_mode_names_and_counts():
    assert MODES_BY_ORDER[1] == ("fwd", "rev")
    assert MODES_BY_ORDER[2] == ("fwd-over-fwd", "fwd-over-rev", "rev-over-fwd", "rev-over-rev")
    assert len(MODES_BY_ORDER[3]) == 8 and len(set(MODES)) == 14


@pytest.mark.parametrize("mode,plan", [
    ("fwd", (("fwd",), ("u1",), "g")),
    ("rev", (("rev",), ("g",), "u1")),
    # A-over-B = A(B(f)): the inner step (B) comes first
    ("fwd-over-rev", (("rev", "fwd"), ("g", "u1"), "u2")),
    ("rev-over-fwd", (("fwd", "rev"), ("u1", "g"), "u2")),
    ("rev-over-rev", (("rev", "rev"), ("g", "u1"), "u2")),
    ("fwd-over-fwd-over-fwd", (("fwd", "fwd", "fwd"), ("u1", "u2", "u3"), "g")),
    ("rev-over-fwd-over-rev", (("rev", "fwd", "rev"), ("g", "u1", "u2"), "u3")),
    ("rev-over-rev-over-fwd", (("fwd", "rev", "rev"), ("u1", "g", "u2"), "u3")),
])
def test_mode_plans(mode, plan):
    assert mode_plan(mode) == plan


def test_every_plan_uses_each_vector_once():
    for m in MODES:
        steps, vecs, final = mode_plan(m)
        used = list(vecs) + [final]
        assert sorted(used) == sorted(["g"] + [f"u{i + 1}" for i in range(len(steps))])


def test_tolerance_table_grows_with_order_and_dtype():
    for dt in TOLERANCE:
        assert [TOLERANCE[dt][k] for k in range(4)] == sorted(TOLERANCE[dt][k] for k in range(4))
    assert TOLERANCE["float32"][3] > 1e8 * TOLERANCE["float64"][3] / 2**29 > 0


# ------------------------------------------------------------------------------ torch
def primitive_torch(layer):
    """The layer composed only of torch mean, sub, mul, sqrt, div (and reshapes)."""
    pytest.importorskip("torch")
    from symbolic_bn.frontends.torch_primitive import primitive_function
    return primitive_function(layer)


@pytest.mark.parametrize("name,shape,hyper", LAYERS, ids=[c[0] for c in LAYERS])
def test_primitive_composition_passes_every_mode_to_order_3(name, shape, hyper):
    layer = make_layer(name, shape, **hyper)
    res = crosscheck_autodiff(primitive_torch(layer), layer, order=3, points=1, seed=3)
    assert res.ok, str(res)
    # every mode, with every API that implements it: 14 torch.func rows, 3 autograd, 6 forward_ad
    apis = [r.api for r in res.rows if r.order > 0]
    assert (apis.count("torch.func"), apis.count("torch.autograd"),
            apis.count("torch.autograd.forward_ad")) == (14, 3, 6)
    assert {r.mode for r in res.rows} == set(MODES) | {"primal"}
    for r in res.rows:  # a real comparison happened, well inside the bound
        assert r.worst is not None and r.err_over_bound < 0.1, (r.mode, r.api)


def test_primitive_composition_passes_in_float32():
    layer = make_layer("layer_norm", (2, 2, 3), normalized_shape=(2, 3))
    res = crosscheck_autodiff(primitive_torch(layer), layer, order=3, dtype="float32", points=1)
    assert res.ok, str(res)
    assert res.dtype == "float32"
    # float32 errors are far above float64 rounding: the reference really is the exact one
    assert max(r.max_rel for r in res.rows if r.order == 1) > 1e-12


# ---- wrong higher-order rules: torch.autograd.Function with a fused double backward ----------
def _stats(x, axes):
    mean = x.mean(dim=axes, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=axes, keepdim=True)
    return mean, var


def make_instance_norm_function(variant, eps=1e-5):
    """instance_norm as autograd.Functions in the style of torch's native kernels.

    The backward is another Function whose forward is the closed-form VJP and whose backward is a
    closed-form *double backward* written in differentiable torch ops, taking the saved mean and
    inverse std as inputs with no autograd history.  ``variant``:

    * ``"constant_stats"``: right to order 2; the third derivative misses the dependence of the
      saved statistics on x (pytorch#175754 / #186256);
    * ``"dropped_term"``: the double backward drops the -γ A r² x̂ / m term of ∂/∂x;
    * ``"wrong_sign"``: the first-order input gradient adds x̂·mean(g x̂) instead of subtracting.
    """
    torch = pytest.importorskip("torch")

    def axes_of(x):
        return tuple(range(2, x.dim()))

    def per_channel(p, x):
        return p.reshape((1, -1) + (1,) * (x.dim() - 2))

    class Backward(torch.autograd.Function):
        @staticmethod
        def forward(x, w, g, mean, rstd):
            axes = axes_of(x)
            xhat = (x - mean) * rstd
            gb = g.sum(dim=(0,) + axes)
            gw = (g * xhat).sum(dim=(0,) + axes)
            sign = 1.0 if variant == "wrong_sign" else -1.0
            inner = (g - g.mean(dim=axes, keepdim=True)
                     + sign * xhat * (g * xhat).mean(dim=axes, keepdim=True))
            gx = per_channel(w, x) * rstd * inner
            return gx, gw, gb

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(*inputs)

        @staticmethod
        def backward(ctx, ggx, ggw, ggb):
            x, w, g, mean, rstd = ctx.saved_tensors
            axes = axes_of(x)
            m = math.prod(x.shape[2:])
            wc = per_channel(w, x)
            xhat = (x - mean) * rstd

            def gmean(t):
                return t.mean(dim=axes, keepdim=True)

            def gsum(t):
                return t.sum(dim=axes, keepdim=True)

            ggw_c, ggb_c = per_channel(ggw, x), per_channel(ggb, x)
            # ∂Φ/∂g, Φ = <ggx, gx> + <ggw, gw> + <ggb, gb>
            dg = wc * rstd * (ggx - gmean(ggx) - xhat * gmean(ggx * xhat)) + ggw_c * xhat + ggb_c
            # ∂Φ/∂w (per channel, summed over the batch)
            proj_g = g - gmean(g) - xhat * gmean(g * xhat)
            dw = (rstd * ggx * proj_g).sum(dim=(0,) + axes)
            # ∂Φ/∂x through x̂ and r (with the saved statistics as values only)
            a = gsum(ggx * proj_g)
            q = wc * rstd * (-(gsum(g * xhat) / m) * ggx - (gsum(ggx * xhat) / m) * g) + ggw_c * g
            dx = rstd * (q - gmean(q) - xhat * gmean(q * xhat))
            if variant != "dropped_term":
                dx = dx - wc * a * rstd * rstd * xhat / m
            return dx, dw, dg, None, None

    class InstanceNorm(torch.autograd.Function):
        @staticmethod
        def forward(x, w, b):
            mean, var = _stats(x, axes_of(x))
            return (x - mean) / torch.sqrt(var + eps) * per_channel(w, x) + per_channel(b, x)

        @staticmethod
        def setup_context(ctx, inputs, output):
            x, w, b = inputs
            mean, var = _stats(x.detach(), axes_of(x))
            ctx.save_for_backward(x, w, mean, 1 / torch.sqrt(var + eps))  # saved: no history

        @staticmethod
        def backward(ctx, g):
            x, w, mean, rstd = ctx.saved_tensors
            return Backward.apply(x, w, g, mean.detach(), rstd.detach())

    def f(x, w, b):
        return InstanceNorm.apply(x, w, b)

    f.__qualname__ = f"instance_norm_{variant}"
    return f


def _status(res):
    return {(r.mode, r.api): r.status for r in res.rows}


IN_LAYER = ("instance_norm", (2, 2, 2, 2))


def test_saved_statistics_without_history_fail_at_order_3_only():
    layer = make_layer(*IN_LAYER)
    res = crosscheck_autodiff(make_instance_norm_function("constant_stats"), layer, order=3,
                              points=2)
    st = _status(res)
    for api in ("torch.autograd", "torch.func"):
        assert st[("rev", api)] == "PASS"
        assert st[("rev-over-rev", api)] == "PASS"
        assert st[("rev-over-rev-over-rev", api)] == "FAIL"
    bad = res.row("rev-over-rev-over-rev", "torch.autograd")
    assert bad.err_over_bound > 1e6 and bad.max_rel > 1e-3
    w = bad.worst
    assert w.framework_value != pytest.approx(float(w.reference_value), rel=1e-6)
    assert set(w.inputs) == {"x", "weight", "bias", "u1", "u2", "u3", "g"}
    # no jvp rule: every mode with a forward step is an ERROR row, with torch's message
    for r in res.rows:
        if "fwd" in r.mode:
            assert r.status == "ERROR" and r.message and r.worst is None, (r.mode, r.api)
    assert not res.ok


def test_dropped_double_backward_term_fails_at_order_2():
    layer = make_layer(*IN_LAYER)
    res = crosscheck_autodiff(make_instance_norm_function("dropped_term"), layer, order=2,
                              points=2, modes=("rev", "rev-over-rev"))
    st = _status(res)
    assert st[("rev", "torch.autograd")] == "PASS"
    assert st[("rev-over-rev", "torch.autograd")] == "FAIL"
    assert st[("rev-over-rev", "torch.func")] == "FAIL"


def test_wrong_sign_fails_at_order_1():
    layer = make_layer(*IN_LAYER)
    res = crosscheck_autodiff(make_instance_norm_function("wrong_sign"), layer, order=1, points=1)
    st = _status(res)
    assert st[("primal", "torch")] == "PASS"
    assert st[("rev", "torch.autograd")] == "FAIL"
    assert st[("fwd", "torch.func")] == "ERROR"


def test_wrong_forward_fails_the_primal_row():
    torch = pytest.importorskip("torch")
    layer = make_layer("layer_norm", (2, 3), normalized_shape=(3,))
    F = torch.nn.functional

    def unbiased(x, w, b):  # N-1 variance
        mu = x.mean(dim=-1, keepdim=True)
        return (x - mu) / torch.sqrt(x.var(dim=-1, keepdim=True) + 1e-5) * w + b

    res = crosscheck_autodiff(unbiased, layer, order=1, points=1)
    assert _status(res)[("primal", "torch")] == "FAIL"
    good = crosscheck_autodiff(lambda x, w, b: F.layer_norm(x, (3,), w, b, 1e-5), layer,
                               order=1, points=1)
    assert good.ok, str(good)


def test_result_table_and_dict():
    layer = make_layer("rms_norm", (2, 3), normalized_shape=(3,))
    res = crosscheck_autodiff(primitive_torch(layer), layer, order=2, points=1)
    text = str(res)
    assert "fwd-over-rev" in text and "torch.autograd.forward_ad" in text and "PASS" in text
    d = json.loads(json.dumps(res.to_dict()))
    assert d["ok"] is True and d["layer"] == "rms_norm" and d["eps"] == "1/100000"
    assert len(d["rows"]) == len(res.rows) == 1 + 4 + 7
    assert d["rows"][1]["worst"]["inputs"]["x"] and "bias" not in d["rows"][1]["worst"]["inputs"]


def test_modes_subset_and_deterministic_points():
    layer = make_layer("batch_norm", (3, 2), )
    f = primitive_torch(layer)
    a = crosscheck_autodiff(f, layer, order=2, modes=["fwd-over-rev"], points=1, seed=7)
    b = crosscheck_autodiff(f, layer, order=2, modes="fwd-over-rev", points=1, seed=7)
    assert [r.mode for r in a.rows] == ["primal", "fwd-over-rev", "fwd-over-rev"]
    assert a.rows[1].worst.reference_value == b.rows[1].worst.reference_value
    c = crosscheck_autodiff(f, layer, order=2, modes="fwd-over-rev", points=1, seed=8)
    assert c.rows[1].worst.reference_value != a.rows[1].worst.reference_value
    # the points do not depend on order: order-2 rows of an order-3 run are the same numbers
    d = crosscheck_autodiff(f, layer, order=3, modes="fwd-over-rev", points=1, seed=7)
    assert d.rows[1].worst.reference_value == a.rows[1].worst.reference_value


def test_nan_from_the_framework_is_a_failure():
    torch = pytest.importorskip("torch")
    layer = make_layer("batch_norm", (3, 2))
    good = primitive_torch(layer)

    class NanGrad(torch.autograd.Function):
        @staticmethod
        def forward(x):
            return x.clone()

        @staticmethod
        def setup_context(ctx, inputs, output):
            pass

        @staticmethod
        def backward(ctx, g):
            return g * float("nan")

    res = crosscheck_autodiff(lambda x, w, b: good(NanGrad.apply(x), w, b), layer, order=1,
                              points=1)
    row = res.row("rev", "torch.autograd")
    assert row.status == "FAIL" and row.err_over_bound == math.inf


# ---- bad input --------------------------------------------------------------------------------
def _ok_layer():
    return make_layer("batch_norm", (3, 2))


@pytest.mark.parametrize("kwargs,match", [
    ({"order": 4}, "order must be 1, 2 or 3"),
    ({"order": 0}, "order must be 1, 2 or 3"),
    ({"order": True}, "order must be 1, 2 or 3"),
    ({"modes": ["fwd", "sideways"]}, "modes: unknown mode 'sideways'"),
    ({"modes": ["rev-over-rev"], "order": 1}, "is of order 2 but order=1"),
    ({"modes": []}, "modes is empty"),
    ({"framework": "tensorflow"}, "framework must be one of"),
    ({"dtype": "float16"}, "dtype must be 'float32' or 'float64'"),
    ({"points": 0}, "points must be an integer >= 1"),
    ({"seed": -1}, "seed must be an integer >= 0"),
    ({"dps": 30}, "dps must be an integer >= 50"),
])
def test_bad_arguments(kwargs, match):
    layer = _ok_layer()
    with pytest.raises(ValueError, match=match) as info:  # refused before any framework runs
        crosscheck_autodiff(lambda x, w, b: x, layer, **kwargs)
    assert "\n" not in str(info.value)


def test_bad_layers_and_functions():
    torch = pytest.importorskip("torch")
    layer = _ok_layer()
    f = primitive_torch(layer)
    symbolic = make_layer("batch_norm", (3, 2), eps=sympy.Symbol("epsilon"))
    with pytest.raises(ValueError, match="layer.eps must be a number"):
        crosscheck_autodiff(f, symbolic)
    with pytest.raises(ValueError, match="lacks the attribute"):
        crosscheck_autodiff(f, types.SimpleNamespace(name="batch_norm"))
    with pytest.raises(ValueError, match=r"f returned shape \(3, 1\)"):
        crosscheck_autodiff(lambda x, w, b: f(x, w, b)[:, :1], layer)
    with pytest.raises(ValueError, match="f returned dtype torch.float32"):
        crosscheck_autodiff(lambda x, w, b: f(x, w, b).float(), layer)
    with pytest.raises(ValueError, match="f must return a torch.Tensor"):
        crosscheck_autodiff(lambda x, w, b: f(x, w, b).numpy(), layer)
    with pytest.raises(ValueError, match="f raised at point 0: RuntimeError"):
        crosscheck_autodiff(lambda x, w, b: torch.mm(x, x), layer)
    with pytest.raises(ValueError, match="f must be callable"):
        crosscheck_autodiff(None, layer)


def test_missing_torch_is_a_value_error_naming_the_extra(monkeypatch):
    real = autodiff.importlib.import_module

    def fake(name):
        if name == "torch":
            raise ImportError("No module named 'torch'")
        return real(name)

    monkeypatch.setattr(autodiff.importlib, "import_module", fake)
    with pytest.raises(ValueError, match=r"framework='torch'.*symbolic-bn\[torch\]"):
        crosscheck_autodiff(lambda x, w, b: x, _ok_layer())
    with pytest.raises(ValueError, match=r"symbolic-bn\[torch\]"):
        autodiff.builtin_function("batch_norm", _ok_layer())


def test_uninstalled_framework_names_the_extra(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "jax" or name.startswith("jax."):
            raise ImportError("No module named 'jax'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(autodiff.importlib, "import_module",
                        lambda name: fake_import(name))
    layer = _ok_layer()
    with pytest.raises(ValueError, match=r"symbolic-bn\[jax\]"):
        crosscheck_autodiff(lambda x, w, b: x, layer, framework="jax")


def test_builtin_functions_match_their_layers_at_order_1():
    pytest.importorskip("torch")
    cases = [
        ("torch.nn.functional.batch_norm", make_layer("batch_norm", (3, 2, 2))),
        ("instance_norm", make_layer("batchnorm_channel_first", (2, 2, 2))),
        ("torch.nn.functional.group_norm", make_layer("group_norm", (1, 4, 2), groups=2)),
        ("torch.nn.functional.rms_norm", make_layer("rms_norm", (2, 3), normalized_shape=(3,))),
    ]
    for target, layer in cases:
        res = crosscheck_autodiff(autodiff.builtin_function(target, layer), layer, order=1,
                                  points=1)
        assert res.ok, str(res)
    with pytest.raises(ValueError, match="target must be one of"):
        autodiff.builtin_function("torch.nn.functional.dropout", _ok_layer())


def test_with_the_layers_of_symbolic_bn():
    """The real Layer objects (their own closed-form forward) give the same verdicts."""
    layers = pytest.importorskip("symbolic_bn.layers")
    for layer in (layers.group_norm((1, 4, 3), 2, eps=1e-5),
                  layers.rms_norm((2, 4), (4,), eps=1e-5),
                  layers.batchnorm_channel_first(2, 2, 3, eps=1e-5)):
        res = crosscheck_autodiff(primitive_torch(layer), layer, order=3, points=1)
        assert res.ok, str(res)
    layer = layers.instance_norm(IN_LAYER[1], eps=1e-5)
    res = crosscheck_autodiff(make_instance_norm_function("constant_stats"), layer, order=3,
                              points=1, modes=["rev-over-rev", "rev-over-rev-over-rev"])
    assert _status(res)[("rev-over-rev", "torch.autograd")] == "PASS"
    assert _status(res)[("rev-over-rev-over-rev", "torch.autograd")] == "FAIL"


# ------------------------------------------------------------------------------ jax
def test_jax_composition_passes_every_mode():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    layer = make_layer("layer_norm", (2, 3), normalized_shape=(3,))

    def f(x, w, b):
        mu = jnp.mean(x, axis=-1, keepdims=True)
        d = x - mu
        return d / jnp.sqrt(jnp.mean(d * d, axis=-1, keepdims=True) + 1e-5) * w + b

    res = crosscheck_autodiff(f, layer, framework="jax", order=2, points=1)
    assert res.ok, str(res)
    assert {r.api for r in res.rows if r.order} == {"jax"} and len(res.rows) == 1 + 6

    def wrong(x, w, b):  # the variance's mean is stopped: first order already wrong
        mu = jnp.mean(x, axis=-1, keepdims=True)
        d = x - jax.lax.stop_gradient(mu)
        return d / jnp.sqrt(jnp.mean(d * d, axis=-1, keepdims=True) + 1e-5) * w + b

    bad = crosscheck_autodiff(wrong, layer, framework="jax", order=1, points=1)
    assert _status(bad)[("primal", "jax")] == "PASS"
    assert _status(bad)[("fwd", "jax")] == "FAIL" and _status(bad)[("rev", "jax")] == "FAIL"
