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
