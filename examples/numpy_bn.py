"""A cs231n-style channel-first BatchNorm backward in unmodified NumPy (no xp parameter):
``symbolic-bn check numpy_bn:backward`` proves it exactly."""
import numpy as np


def backward(x, gamma, beta, grad_out, eps):
    C = x.shape[0]
    xm = x.reshape(C, -1)
    g = grad_out.reshape(C, -1)
    N = xm.shape[1]
    mu = np.mean(xm, axis=1, keepdims=True)
    var = np.var(xm, axis=1, keepdims=True)
    xhat = (xm - mu) / np.sqrt(var + eps)
    dgamma = np.sum(g * xhat, axis=1)
    dbeta = np.sum(g, axis=1)
    dxhat = g * gamma[:, None]
    dx = (1. / N) / np.sqrt(var + eps) * (N * dxhat - np.sum(dxhat, axis=1, keepdims=True)
                                          - xhat * np.sum(dxhat * xhat, axis=1, keepdims=True))
    return dx.reshape(x.shape), dgamma, dbeta
