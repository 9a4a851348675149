"""A user's channel-first BatchNorm (x: C×H×W, gamma/beta: C), written once against an array namespace.

``xp`` defaults to NumPy; symbolic-bn passes its exact symbolic namespace instead to prove the code.
Used by the README's examples (``symbolic-bn check my_bn:wrong_backward``) and by test_my_bn.py.
"""
import numpy

AXES = (1, 2)  # the spatial axes H, W: statistics are per channel


def forward(x, gamma, beta, eps, xp=numpy):
    """y = (x − mean)/sqrt(var + eps)·gamma + beta, population variance over H·W."""
    mean = xp.mean(x, axis=AXES, keepdims=True)
    centered = x - mean
    var = xp.mean(centered * centered, axis=AXES, keepdims=True)
    return centered / xp.sqrt(var + eps) * gamma[:, None, None] + beta[:, None, None]


def backward(x, gamma, beta, grad_out, eps, xp=numpy):
    """(dx, dgamma, dbeta) = Jᵀ·grad_out, the closed form dx = gamma·r/N·(N·g − Σg − x̂·Σ(g·x̂))."""
    n = x.shape[1] * x.shape[2]
    mean = xp.mean(x, axis=AXES, keepdims=True)
    centered = x - mean
    var = xp.mean(centered * centered, axis=AXES, keepdims=True)
    r = 1 / xp.sqrt(var + eps)
    xhat = centered * r
    sum_g = xp.sum(grad_out, axis=AXES, keepdims=True)
    sum_g_xhat = xp.sum(grad_out * xhat, axis=AXES, keepdims=True)
    dx = gamma[:, None, None] * r / n * (n * grad_out - sum_g - xhat * sum_g_xhat)
    return dx, sum_g_xhat[:, 0, 0], sum_g[:, 0, 0]


def wrong_backward(x, gamma, beta, grad_out, eps, xp=numpy):
    """The same closed form without the x̂·Σ(g·x̂) term of dx: wrong for every non-constant input."""
    n = x.shape[1] * x.shape[2]
    mean = xp.mean(x, axis=AXES, keepdims=True)
    centered = x - mean
    var = xp.mean(centered * centered, axis=AXES, keepdims=True)
    r = 1 / xp.sqrt(var + eps)
    xhat = centered * r
    sum_g = xp.sum(grad_out, axis=AXES, keepdims=True)
    sum_g_xhat = xp.sum(grad_out * xhat, axis=AXES, keepdims=True)
    dx = gamma[:, None, None] * r / n * (n * grad_out - sum_g)
    return dx, sum_g_xhat[:, 0, 0], sum_g[:, 0, 0]
