"""PyTorch cross-check: eval-mode torch.nn.BatchNorm2d stays inside the IBP box (NCHW, channel_axis=1)."""
from __future__ import annotations

import numpy as np
import pytest

from symbolic_bn.bounds import inference as B

torch = pytest.importorskip("torch")

U = np.finfo(np.float64).eps  # 2**-52


def make_bn(p: B.BatchNormParams):
    C = p.dim
    bn = torch.nn.BatchNorm2d(C, eps=float(p.eps), dtype=torch.float64)
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor(p.running_mean, dtype=torch.float64))
        bn.running_var.copy_(torch.tensor(p.running_var, dtype=torch.float64))
        bn.weight.copy_(torch.tensor(p.gamma, dtype=torch.float64))
        bn.bias.copy_(torch.tensor(p.beta, dtype=torch.float64))
    return bn.eval()


def torch_tolerance(p, x, y):
    """A few float64 roundings of the magnitudes torch's eval kernel combines."""
    b = (1,) + (p.dim,) + (1,) * (x.ndim - 2)
    s = np.abs(B.scale(p)).reshape(b)
    mu = np.abs(np.array(p.running_mean)).reshape(b)
    beta = np.abs(np.array(p.beta)).reshape(b)
    return 8 * U * (s * (np.abs(x) + mu) + beta + np.abs(y)) + 1e-300


@pytest.mark.parametrize("seed", range(12))
def test_torch_batchnorm2d_eval_stays_in_ibp_box(seed):
    rng = np.random.default_rng(seed)
    C = int(rng.integers(1, 5))
    N, H, W = (int(v) for v in rng.integers(1, 4, 3))
    gamma = rng.normal(size=C) * 10.0 ** rng.uniform(-3, 3, C)
    gamma[rng.random(C) < 0.2] = 0.0
    gamma[0] = -abs(gamma[0]) if seed % 2 else gamma[0]   # negative scale in half the seeds
    p = B.BatchNormParams(rng.normal(size=C) * 10.0 ** rng.uniform(-2, 2, C),
                          rng.uniform(0, 5, C) ** 2,       # torch needs var >= 0 (no clamp)
                          gamma, rng.normal(size=C), float(rng.choice([1e-5, 1e-3, 0.1])))
    bn = make_bn(p)
    center = rng.normal(size=(N, C, H, W)) * 10.0 ** rng.uniform(-2, 2)
    radius = rng.uniform(0, 1, size=center.shape) * 10.0 ** rng.uniform(-3, 1)
    radius[rng.random(radius.shape) < 0.2] = 0.0
    lo, hi = center - radius, center + radius
    ibp_lo, ibp_hi = B.ibp(p, lo, hi, channel_axis=1)
    out_lo, out_hi = B.ibp(p, lo, hi, channel_axis=1, rounding="outward")

    points = [lo, hi]
    for _ in range(8):  # random corners (each coordinate at lo or hi) and interior points
        points.append(np.where(rng.random(lo.shape) < 0.5, lo, hi))
        t = rng.uniform(0, 1, lo.shape)
        points.append(np.clip(lo + t * (hi - lo), lo, hi))
    for x in points:
        with torch.no_grad():
            y = bn(torch.from_numpy(x)).numpy()
        tol = torch_tolerance(p, x, y)
        assert np.all(ibp_lo - tol <= y) and np.all(y <= ibp_hi + tol)
        assert np.all(out_lo - tol <= y) and np.all(y <= out_hi + tol)
    # degenerate box: IBP is the forward pass
    with torch.no_grad():
        y = bn(torch.from_numpy(center)).numpy()
    d_lo, d_hi = B.ibp(p, center, center, channel_axis=1)
    assert np.array_equal(d_lo, d_hi)
    assert np.all(np.abs(d_lo - y) <= torch_tolerance(p, center, y))


def test_torch_torchlean_8_1_fixture():
    x = np.array([1, 2, 3, 4, -5, -6, -7, -8, 9, 10, 11, 12, -13, -14, -15, -16],
                 dtype=float).reshape(2, 2, 2, 2)
    p = B.BatchNormParams([2.0, -3.0], [4.0, 9.0], [1.0, 0.5], [0.0, 0.1], 1e-5)
    with torch.no_grad():
        y = make_bn(p)(torch.from_numpy(x)).numpy()
    lo, hi = B.ibp(p, x, x, channel_axis=1)
    assert np.allclose(lo, y, rtol=0, atol=1e-14) and np.allclose(hi, y, rtol=0, atol=1e-14)


def test_from_torch_reads_an_eval_module():
    bn = torch.nn.BatchNorm2d(3, eps=1e-3)
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
        bn.running_var.copy_(torch.tensor([1.0, 0.25, 4.0]))
        bn.weight.copy_(torch.tensor([1.0, -2.0, 0.0]))
        bn.bias.copy_(torch.tensor([0.1, 0.2, 0.3]))
    p = B.BatchNormParams.from_torch(bn.eval())
    assert p.dim == 3 and not p.exact
    assert p.eps == 1e-3  # module.eps is a Python float
    x = np.linspace(-2, 2, 3 * 4).reshape(1, 3, 2, 2)
    with torch.no_grad():
        y = bn(torch.from_numpy(x).float()).double().numpy()
    lo, hi = B.ibp(p, x, x, channel_axis=1)
    assert np.allclose(lo, y, atol=1e-5)  # the module computes in float32
    with pytest.raises(ValueError, match="no running statistics"):
        B.BatchNormParams.from_torch(torch.nn.BatchNorm2d(2, track_running_stats=False))
