"""BatchNorm backwards written as plain NumPy code (no ``xp``): checked through NumPy's override
protocols.  Channel-first C×H×W in and out, with the (N, D) layout of course code inside:
samples as rows, channels as features."""
import numpy as np


def cs231n_style_backward(x, gamma, beta, grad_out, eps):
    """The staged backward of a course assignment, with float constants like 1./N."""
    C = x.shape[0]
    X = x.reshape(C, -1).T
    G = grad_out.reshape(C, -1).T
    N = X.shape[0]
    mu = 1. / N * np.sum(X, axis=0)
    xmu = X - mu
    var = 1. / N * np.sum(xmu ** 2, axis=0)
    sqrtvar = np.sqrt(var + eps)
    ivar = 1. / sqrtvar
    xhat = xmu * ivar
    dbeta = np.sum(G, axis=0)
    dgamma = np.sum(G * xhat, axis=0)
    dxhat = G * gamma
    divar = np.sum(dxhat * xmu, axis=0)
    dxmu1 = dxhat * ivar
    dsqrtvar = -1. / (sqrtvar ** 2) * divar
    dvar = 0.5 * 1. / np.sqrt(var + eps) * dsqrtvar
    dsq = 1. / N * np.ones((N, C)) * dvar
    dxmu2 = 2 * xmu * dsq
    dx1 = dxmu1 + dxmu2
    dmu = -1 * np.sum(dx1, axis=0)
    dx2 = 1. / N * np.ones((N, C)) * dmu
    dX = dx1 + dx2
    return dX.T.reshape(x.shape), dgamma, dbeta


def compact_backward(x, gamma, beta, grad_out, eps):
    """The one-line form, with np.mean, np.var, keepdims and np.newaxis."""
    mu = np.mean(x, axis=(1, 2), keepdims=True)
    inv = 1.0 / np.sqrt(np.var(x, axis=(1, 2), keepdims=True) + eps)
    xhat = (x - mu) * inv
    g = grad_out
    dbeta = g.sum(axis=(1, 2))
    dgamma = np.sum(g * xhat, axis=(1, 2))
    gm = np.mean(g, axis=(1, 2), keepdims=True)
    gx = np.mean(g * xhat, axis=(1, 2), keepdims=True)
    dx = gamma[:, np.newaxis, np.newaxis] * inv * (g - gm - xhat * gx)
    return dx, dgamma, dbeta


def matmul_backward(x, gamma, beta, grad_out, eps):
    """Reductions written as products with a ones vector (@ and np.dot)."""
    C = x.shape[0]
    X = x.reshape(C, -1)
    G = grad_out.reshape(C, -1)
    n = X.shape[1]
    ones = np.ones(n)
    mu = (X @ ones) / n
    xc = X - mu[:, None]
    var = np.dot(xc * xc, ones) / n
    inv = 1 / np.sqrt(var + eps)
    xhat = xc * inv[:, None]
    dbeta = G @ ones
    dgamma = (G * xhat) @ ones
    dx = (gamma * inv)[:, None] / n * (n * G - dbeta[:, None] - xhat * dgamma[:, None])
    return dx.reshape(x.shape), dgamma, dbeta


def float_buffer_backward(x, gamma, beta, grad_out, eps):
    """Writes exact values into a float buffer made from a shape alone."""
    dx = np.zeros(x.shape)
    out = compact_backward(x, gamma, beta, grad_out, eps)
    dx[...] = out[0]
    return dx, out[1], out[2]


def cs231n_wrong_forgets_dmu(x, gamma, beta, grad_out, eps):
    """As cs231n_style_backward without the path through the mean."""
    C = x.shape[0]
    X = x.reshape(C, -1).T
    G = grad_out.reshape(C, -1).T
    N = X.shape[0]
    mu = 1. / N * np.sum(X, axis=0)
    xmu = X - mu
    var = 1. / N * np.sum(xmu ** 2, axis=0)
    ivar = 1. / np.sqrt(var + eps)
    xhat = xmu * ivar
    dxhat = G * gamma
    divar = np.sum(dxhat * xmu, axis=0)
    dvar = -0.5 * ivar ** 3 * divar
    dX = dxhat * ivar + 2. / N * xmu * dvar
    return dX.T.reshape(x.shape), np.sum(G * xhat, axis=0), np.sum(G, axis=0)


def cs231n_wrong_bessel(x, gamma, beta, grad_out, eps):
    """compact_backward with the unbiased (N − 1) variance."""
    mu = np.mean(x, axis=(1, 2), keepdims=True)
    inv = 1.0 / np.sqrt(np.var(x, axis=(1, 2), keepdims=True, ddof=1) + eps)
    xhat = (x - mu) * inv
    g = grad_out
    gm = np.mean(g, axis=(1, 2), keepdims=True)
    gx = np.mean(g * xhat, axis=(1, 2), keepdims=True)
    dx = gamma[:, None, None] * inv * (g - gm - xhat * gx)
    return dx, np.sum(g * xhat, axis=(1, 2)), g.sum(axis=(1, 2))
