"""The implementations the benchmarks check (kept here so benchmarks do not depend on tests/).

* ``backward_staged`` -- the README's staged channel-first backward, written against ``xp``;
* ``numpy_backward`` -- an unmodified NumPy backward (no ``xp``), the (N, D) layout of course
  code reshaped inside, float constants ``1./N``;
* ``batch_norm_backward`` -- a correct training-mode BatchNorm backward over (N, C, H, W).
"""
import numpy as np


def backward_staged(x, gamma, beta, g, eps, xp):
    n = x.shape[1] * x.shape[2]
    mu = xp.mean(x, axis=(1, 2), keepdims=True)
    xc = x - mu
    var = xp.mean(xc * xc, axis=(1, 2), keepdims=True)
    inv = 1 / xp.sqrt(var + eps)
    xhat = xc * inv
    dxhat = g * gamma[:, None, None]
    dvar = xp.sum(dxhat * xc, axis=(1, 2), keepdims=True) * (-inv ** 3) / 2
    dmu = -xp.sum(dxhat * inv, axis=(1, 2), keepdims=True)
    dx = dxhat * inv + dvar * 2 * xc / n + dmu / n
    return dx, xp.sum(g * xhat, axis=(1, 2)), xp.sum(g, axis=(1, 2))


def numpy_backward(x, gamma, beta, grad_out, eps):
    C = x.shape[0]
    X = x.reshape(C, -1).T            # (N, D): samples as rows, channels as features
    G = grad_out.reshape(C, -1).T
    N = X.shape[0]
    mu = 1. / N * np.sum(X, axis=0)
    xmu = X - mu
    var = 1. / N * np.sum(xmu ** 2, axis=0)
    ivar = 1. / np.sqrt(var + eps)
    xhat = xmu * ivar
    dxhat = G * gamma
    dX = ivar / N * (N * dxhat - np.sum(dxhat, axis=0) - xhat * np.sum(dxhat * xhat, axis=0))
    return dX.T.reshape(x.shape), np.sum(G * xhat, axis=0), np.sum(G, axis=0)


def batch_norm_backward(x, weight, bias, grad_out, eps, xp):
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    m = 1
    for a in axes:
        m *= x.shape[a]
    mu = xp.mean(x, axis=axes, keepdims=True)
    xc = x - mu
    inv = 1 / xp.sqrt(xp.mean(xc * xc, axis=axes, keepdims=True) + eps)
    xhat = xc * inv
    dxhat = grad_out * xp.reshape(weight, shape)
    dx = inv / m * (m * dxhat - xp.sum(dxhat, axis=axes, keepdims=True)
                    - xhat * xp.sum(dxhat * xhat, axis=axes, keepdims=True))
    return dx, xp.sum(grad_out * xhat, axis=axes), xp.sum(grad_out, axis=axes)
