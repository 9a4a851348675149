"""PyTorch parity: F.instance_norm on a (1, C, H, W) tensor is our BatchNormChannelFirst.

InstanceNorm with batch 1 = training-mode BN over (1, C, H, W) with n = H·W (ecosystem.md §5.1),
biased variance, eps inside the sqrt.  torch's default eps is 1e-5; it is always passed explicitly.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from symbolic_bn import numeric  # noqa: E402
from symbolic_bn.checks.crosscheck import FAMILIES, crosscheck, reference  # noqa: E402


from symbolic_bn.frontends.torch_reference import instance_norm_backward as torch_backward  # noqa: E402
from symbolic_bn.frontends.torch_reference import instance_norm_forward as torch_forward  # noqa: E402


def torch_forward_default_eps(x, gamma, beta, eps, xp=np):
    """Ignores the requested eps (uses torch's default 1e-5): a common parity bug."""
    with torch.no_grad():
        y = F.instance_norm(torch.from_numpy(x)[None], weight=torch.from_numpy(gamma),
                            bias=torch.from_numpy(beta))
    return y[0].numpy()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_torch_instance_norm_passes_crosscheck_on_every_family(dtype):
    res = crosscheck(torch_forward, torch_backward, dtype=dtype, points=20, seed=0)
    assert res.ok, res.summary()
    assert set(res.families) == set(FAMILIES) and all(f.ok for f in res.families.values())
    assert all(o.returned_dtypes == [dtype] for o in res.outputs.values())


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_torch_passes_at_other_shapes_and_eps(dtype):
    for shape, eps in (((3, 5, 2), 1e-3), ((1, 3, 3), 1e-6), ((4, 1, 2), 1e-5)):
        res = crosscheck(torch_forward, torch_backward, shape=shape, eps=eps, dtype=dtype, points=8,
                         seed=11)
        assert res.ok, res.summary()


def test_ignoring_eps_is_caught_where_the_variance_is_comparable_to_eps():
    res = crosscheck(torch_forward_default_eps, eps=1e-3, dtype="float64", points=8)
    assert not res.ok
    assert not res.families["small_variance"].ok


def test_torch_and_numeric_agree_directly_float64():
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.standard_normal((3, 4, 5)) * 3 + 1
        gamma = rng.uniform(-2, 2, 3)
        beta = rng.standard_normal(3)
        g = rng.standard_normal(x.shape)
        assert np.allclose(torch_forward(x, gamma, beta, 1e-5), numeric.forward(x, gamma, beta, 1e-5),
                           rtol=0, atol=1e-13)
        for a, b in zip(torch_backward(x, gamma, beta, g, 1e-5),
                        numeric.backward(x, gamma, beta, g, 1e-5)):
            assert np.allclose(a, b, rtol=0, atol=1e-12)


def test_torch_forward_mode_matches_numeric_jvp():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 3))
    gamma, beta = np.array([1.5, -0.7]), np.array([0.2, -0.1])
    tx, tg, tb = rng.standard_normal(x.shape), rng.standard_normal(2), rng.standard_normal(2)

    def f(xt, w, b):
        return F.instance_norm(xt[None], weight=w, bias=b, eps=1e-5)[0]

    _, dy = torch.func.jvp(f, (torch.from_numpy(x), torch.from_numpy(gamma), torch.from_numpy(beta)),
                           (torch.from_numpy(tx), torch.from_numpy(tg), torch.from_numpy(tb)))
    ours = numeric.jvp(x, gamma, beta, tx, tg, tb, 1e-5)
    assert np.max(np.abs(ours)) > 0.1
    assert np.allclose(dy.numpy(), ours, rtol=0, atol=1e-13)


def test_torch_matches_torchlean_8_2_fixture_float32_within_cuda_tolerance():
    """§8.2 compares a float32 CUDA tape with a float64 CPU tape at 5e-3; torch float32 on CPU,
    against our float64 mpmath reference, is within 1e-6."""
    x = np.array([[[1.0, 2.0], [3.0, 4.0]], [[-0.5, 0.5], [1.5, -1.0]]])
    gamma, beta = np.array([1.0, 0.5]), np.array([0.0, 0.1])
    ref = reference(x, gamma, beta, 1e-6, grad_out=np.ones_like(x))
    y32 = torch_forward(x.astype(np.float32), gamma.astype(np.float32), beta.astype(np.float32), 1e-6)
    assert np.max(np.abs(y32 - ref["y"])) < 1e-6
    dx, dg, db = torch_backward(x.astype(np.float32), gamma.astype(np.float32),
                                beta.astype(np.float32), np.ones((2, 2, 2), np.float32), 1e-6)
    assert np.max(np.abs(dx)) < 1e-6 and np.max(np.abs(dg)) < 1e-5
    assert np.array_equal(db, np.array([4.0, 4.0], dtype=np.float32))


# ------------------------------------------------------------------ every layer (issue 12 item 5)

from symbolic_bn import layers  # noqa: E402
from symbolic_bn.frontends.torch_reference import TORCH_FUNCTION, torch_functions, torch_parity  # noqa: E402

#: two shapes per layer: N >= 2 for batch_norm (with and without spatial axes), a 3-D input for
#: layer_norm, G not in {1, C} for group_norm
PARITY_LAYERS = [
    ("batchnorm_channel_first", lambda eps: layers.batchnorm_channel_first(2, 3, 4, eps=eps)),
    ("batch_norm", lambda eps: layers.batch_norm((4, 3), eps=eps)),
    ("batch_norm", lambda eps: layers.batch_norm((2, 3, 2, 3), eps=eps)),
    ("instance_norm", lambda eps: layers.instance_norm((2, 3, 5), eps=eps)),
    ("instance_norm", lambda eps: layers.instance_norm((2, 2, 3, 3), eps=eps)),
    ("layer_norm", lambda eps: layers.layer_norm((2, 3, 4), (3, 4), eps=eps)),
    ("layer_norm", lambda eps: layers.layer_norm((8, 32), (32,), eps=eps)),
    ("group_norm", lambda eps: layers.group_norm((2, 4, 3), 2, eps=eps)),
    ("group_norm", lambda eps: layers.group_norm((2, 6, 2, 2), 3, eps=eps)),
    ("rms_norm", lambda eps: layers.rms_norm((2, 3, 4), (4,), eps=eps)),
    ("rms_norm", lambda eps: layers.rms_norm((3, 2, 6), (2, 6), eps=eps)),
]


@pytest.mark.parametrize("name, make", PARITY_LAYERS,
                         ids=[f"{n}-{'x'.join(map(str, m(None).input_shape))}" for n, m in PARITY_LAYERS])
def test_torch_parity_every_layer_float32_and_float64(name, make):
    layer = make(1e-5)
    results = torch_parity(layer, points=10, seed=0)
    assert set(results) == {"float32", "float64"}
    for dtype, res in results.items():
        assert res.ok, res.summary()
        assert set(res.families) == set(FAMILIES) and all(f.ok for f in res.families.values())
        assert res.eps_probe.ok
        want = ("y", "dx", "dweight") + (("dbias",) if layer.bias_shape else ()) \
            if name != "batchnorm_channel_first" else ("y", "dx", "dgamma", "dbeta")
        assert tuple(res.outputs) == want
        assert all(o.returned_dtypes == [dtype] for o in res.outputs.values())
        # an N - 1 variance would not pass these runs
        assert res.bessel_caught
        assert res.layer.startswith(name)


@pytest.mark.parametrize("name, make", PARITY_LAYERS[::2])
def test_torch_parity_with_a_symbolic_eps_layer_uses_crosschecks_eps(name, make):
    layer = make(None)
    res = torch_parity(layer, dtypes="float64", points=5, eps=1e-3)["float64"]
    assert res.ok, res.summary()
    assert res.eps_used == 1e-3


def test_torch_functions_agree_with_the_closed_forms_in_float64():
    from symbolic_bn.graphs import closed_forms
    rng = np.random.default_rng(3)
    for _, make in PARITY_LAYERS:
        layer = make(1e-5)
        fw, bw = torch_functions(layer)
        x = rng.standard_normal(layer.input_shape) * 2 + 1
        w = rng.uniform(-2, 2, layer.weight_shape)
        b = rng.standard_normal(layer.weight_shape) if layer.bias_shape else None
        g = rng.standard_normal(layer.input_shape)
        assert np.allclose(fw(x, w, b, 1e-5), layer.forward(x, w, b, 1e-5, np), rtol=0, atol=1e-12)
        got = bw(x, w, b, g, 1e-5)
        want = closed_forms.backward(layer, x, w, b, g, 1e-5, np)
        assert len(got) == len(want) == (3 if layer.bias_shape else 2)
        for a, c in zip(got, want):
            assert a.shape == c.shape and np.allclose(a, c, rtol=0, atol=1e-11)


def test_torch_functions_bad_input():
    with pytest.raises(ValueError, match="layer must be a symbolic_bn.layers.Layer"):
        torch_functions("layer_norm")
    fw, _ = torch_functions(layers.rms_norm((2, 3), (3,)))
    with pytest.raises(ValueError, match="bias must be None for rms_norm"):
        fw(np.ones((2, 3)), np.ones(3), np.ones(3), 1e-5)
    assert set(TORCH_FUNCTION) == set(layers.LAYER_NAMES)


def _wrong_torch(layer_name):
    """torch calls with a parity bug: the layer's statistics on the wrong axes, or a wrong eps."""
    if layer_name == "layer_norm":     # normalized over the last axis only
        return lambda x, w, b, eps: F.layer_norm(torch.from_numpy(x), (x.shape[-1],), eps=eps).numpy() \
            * w + b
    if layer_name == "group_norm":     # G = C: instance norm statistics
        return lambda x, w, b, eps: F.group_norm(torch.from_numpy(x), x.shape[1], torch.from_numpy(w),
                                                 torch.from_numpy(b), eps=eps).numpy()
    if layer_name == "batch_norm":     # eval mode with the initial running statistics (0, 1)
        return lambda x, w, b, eps: F.batch_norm(
            torch.from_numpy(x), torch.zeros(x.shape[1], dtype=torch.from_numpy(x).dtype),
            torch.ones(x.shape[1], dtype=torch.from_numpy(x).dtype), torch.from_numpy(w),
            torch.from_numpy(b), training=False, eps=eps).numpy()
    if layer_name == "instance_norm":  # torch's default eps instead of the requested one
        return lambda x, w, b, eps: F.instance_norm(torch.from_numpy(x), weight=torch.from_numpy(w),
                                                    bias=torch.from_numpy(b)).numpy()
    return lambda x, w, b, eps: F.rms_norm(torch.from_numpy(x), (x.shape[-1],), torch.from_numpy(w),
                                           eps=eps * 100).numpy()  # rms_norm: eps scaled


@pytest.mark.parametrize("name, make", [p for p in PARITY_LAYERS if p[0] != "batchnorm_channel_first"][::2])
def test_torch_calls_with_a_parity_bug_fail(name, make):
    layer = make(1e-3)
    if name == "layer_norm":
        layer = layers.layer_norm((2, 3, 4), (3, 4), eps=1e-3)
    res = crosscheck(_wrong_torch(name), layer=layer, dtype="float32", points=6)
    assert not res.ok, res.summary()
