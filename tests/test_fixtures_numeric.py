"""TorchLean's numeric test vectors (torchlean.md §8) as regression tests for the runtime."""
import numpy as np
import pytest

from symbolic_bn import numeric
from symbolic_bn.checks.crosscheck import reference

# ------------------------------------------------------------------ §8.1 / §8.4 shared NCHW input

def nchw_input():
    """x[n,c,h,w] = b if c = 0 else −b, b = n·8 + c·4 + h·2 + w + 1 (NCHW 2×2×2×2)."""
    x = np.empty((2, 2, 2, 2))
    for n in range(2):
        for c in range(2):
            for h in range(2):
                for w in range(2):
                    b = n * 8 + c * 4 + h * 2 + w + 1
                    x[n, c, h, w] = b if c == 0 else -b
    return x


GAMMA = np.array([1.0, 0.5])
BETA = np.array([0.0, 0.1])
RUN_MEAN = np.array([2.0, -3.0])
RUN_VAR = np.array([4.0, 9.0])

EXPECTED_8_1 = [-0.499999375, 0, 0.499999375, 0.99999875, -0.2333331481, -0.3999997222,
                -0.5666662963, -0.7333328704, 3.499995625, 3.999995, 4.499994375, 4.99999375,
                -1.566665741, -1.733332315, -1.899998889, -2.066665463]

EXPECTED_8_4 = [-1.324244346, -1.083472646, -0.8427009472, -0.601929248, 0.7621221728,
                0.6417363232, 0.5213504736, 0.400964624, 0.601929248, 0.8427009472, 1.083472646,
                1.324244346, -0.200964624, -0.3213504736, -0.4417363232, -0.5621221728]


def test_nchw_input_flattened_matches_listing():
    assert nchw_input().ravel().tolist() == [1, 2, 3, 4, -5, -6, -7, -8, 9, 10, 11, 12,
                                             -13, -14, -15, -16]


def eval_bn(x, gamma, beta, mean, var, eps):
    """§8.1 expected formula ((x − mean)/sqrt(max(var,0) + eps))·γ + β, channel-wise on NCHW."""
    s = np.sqrt(np.maximum(var, 0) + eps)
    return ((x - mean[None, :, None, None]) / s[None, :, None, None]) * gamma[None, :, None, None] \
        + beta[None, :, None, None]


def test_8_1_eval_mode_ir_batchnorm_expected_output():
    y = eval_bn(nchw_input(), GAMMA, BETA, RUN_MEAN, RUN_VAR, 1e-5)
    assert np.max(np.abs(y.ravel() - np.array(EXPECTED_8_1))) <= 1e-5
    # a tighter check: the listing has ~10 significant digits
    assert np.allclose(y.ravel(), EXPECTED_8_1, rtol=1e-9, atol=1e-9)
    # IBP on the degenerate box lo = hi = input: lo[0] = hi[0] = expected(x=1, γ=1, β=0, μ=2, σ²=4)
    assert y.ravel()[0] == pytest.approx(-0.49999937500, abs=1e-11)
    # the wrong eps (1e-6, TorchLean's default) is visible at this precision
    y6 = eval_bn(nchw_input(), GAMMA, BETA, RUN_MEAN, RUN_VAR, 1e-6)
    assert not np.allclose(y6.ravel(), EXPECTED_8_1, rtol=1e-9, atol=1e-9)


def test_8_1_eval_mode_is_the_affine_map_scale_x_plus_offset():
    """batchNorm_inference_eq_mul_add (§5.3): y = x·(γ/std) + (β − μ·γ/std), per n."""
    x = nchw_input()
    std = np.sqrt(np.maximum(RUN_VAR, 0) + 1e-5)
    scale = GAMMA / std
    offset = BETA - RUN_MEAN * scale
    for n in range(2):
        y_aff = x[n] * scale[:, None, None] + offset[:, None, None]
        assert np.allclose(y_aff.ravel(), np.array(EXPECTED_8_1).reshape(2, 8)[n], atol=1e-9)


# --------------------------------------------------------------------------------------- §8.2

X_8_2 = np.array([[[1.0, 2.0], [3.0, 4.0]], [[-0.5, 0.5], [1.5, -1.0]]])
MU_8_2 = [2.5, 0.125]
VAR_8_2 = [1.25, 0.921875]
STD_8_2 = [1.118034436, 0.9601437392]
Y_8_2 = [-1.3416402498, -0.4472134166, 0.4472134166, 1.3416402498, -0.2254721009, 0.2952832606,
         0.8160386220, -0.4858497817]


def test_8_2_reference_statistics_and_output_mpmath():
    ref = reference(X_8_2, GAMMA, BETA, 1e-6, grad_out=np.ones_like(X_8_2), dps=50)
    assert np.array_equal(ref["mean"], MU_8_2)       # exact binary fractions
    assert np.array_equal(ref["var"], VAR_8_2)
    assert np.allclose(ref["std"], STD_8_2, rtol=0, atol=1e-9)
    assert np.allclose(ref["y"].ravel(), Y_8_2, rtol=0, atol=1e-9)
    assert np.max(np.abs(ref["dx"])) == 0.0            # exactly 0 at 50 digits, rounded to double
    assert np.max(np.abs(ref["dgamma"])) == 0.0
    assert np.array_equal(ref["dbeta"], [4.0, 4.0])


@pytest.mark.parametrize("dtype, atol", [(np.float64, 1e-9), (np.float32, 2e-6)])
def test_8_2_runtime_forward(dtype, atol):
    x = X_8_2.astype(dtype)
    y = numeric.forward(x, GAMMA.astype(dtype), BETA.astype(dtype), 1e-6)
    assert y.dtype == dtype
    assert np.allclose(y.ravel(), Y_8_2, rtol=0, atol=atol)
    # the CUDA-vs-CPU tolerance of the Lean test, 5e-3, is met with a wide margin
    assert np.max(np.abs(y.ravel() - np.array(Y_8_2))) < 5e-3 / 100


@pytest.mark.parametrize("dtype, tiny", [(np.float64, 1e-15), (np.float32, 1e-6)])
def test_8_2_runtime_backward_with_all_ones_seed(dtype, tiny):
    x = X_8_2.astype(dtype)
    dx, dgamma, dbeta = numeric.backward(x, GAMMA.astype(dtype), BETA.astype(dtype),
                                         np.ones_like(x), 1e-6)
    assert np.max(np.abs(dx)) <= tiny          # Σ x̂ = 0 makes dx vanish (the all-ones trap)
    assert np.max(np.abs(dgamma)) <= tiny * 10  # dγ = Σ x̂ ≈ 0
    assert np.array_equal(dbeta, np.array([4.0, 4.0], dtype=dtype))


def test_8_2_runtime_backward_generic_seed_matches_reference():
    """The same fixture with a generic seed: here dx is not zero, and must match mpmath."""
    g = np.array([[[0.3, -1.2], [0.7, 2.0]], [[-0.4, 0.9], [1.1, -0.6]]])
    ref = reference(X_8_2, GAMMA, BETA, 1e-6, grad_out=g)
    dx, dgamma, dbeta = numeric.backward(X_8_2, GAMMA, BETA, g, 1e-6)
    assert np.max(np.abs(ref["dx"])) > 0.1
    assert np.allclose(dx, ref["dx"], rtol=0, atol=1e-14)
    assert np.allclose(dgamma, ref["dgamma"], rtol=0, atol=1e-14)
    assert np.allclose(dbeta, ref["dbeta"], rtol=0, atol=1e-15)


# --------------------------------------------------------------------------------------- §8.4

def train_mode_via_channel_first(x_nchw, gamma, beta, eps):
    """Stats over (N, H, W): view channel c's N×H×W values as one channel of a C×(N·H)×W input."""
    n, c, h, w = x_nchw.shape
    xcf = x_nchw.transpose(1, 0, 2, 3).reshape(c, n * h, w)
    y = numeric.forward(xcf, gamma, beta, eps)
    return xcf, y.reshape(c, n, h, w).transpose(1, 0, 2, 3)


def test_8_4_train_mode_statistics_and_output():
    xcf, y = train_mode_via_channel_first(nchw_input(), GAMMA, BETA, 1e-6)
    ref = reference(xcf, GAMMA, BETA, 1e-6)
    assert np.array_equal(ref["mean"], [6.5, -10.5])
    assert np.array_equal(ref["var"], [17.25, 17.25])
    assert np.allclose(y.ravel(), EXPECTED_8_4, rtol=0, atol=1e-5)   # the Lean test's tolerance
    assert np.allclose(y.ravel(), EXPECTED_8_4, rtol=0, atol=1e-9)   # the listing's precision
    # statistics over H, W only (our per-example semantics) give a different answer
    y_inst = numeric.forward(nchw_input()[0], GAMMA, BETA, 1e-6)
    assert not np.allclose(y_inst.ravel(), EXPECTED_8_4[:8], atol=1e-3)
