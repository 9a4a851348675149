"""LayerNorm over the last axis of a (B, D) input, backward in unmodified NumPy:
``symbolic-bn check layer_norm_np:layer_norm_backward --layer layer_norm ...``."""
import numpy as np


def layer_norm_backward(x, weight, bias, grad_out, eps):
    mu = x.mean(axis=-1, keepdims=True)
    xc = x - mu
    var = (xc * xc).mean(axis=-1, keepdims=True)
    rstd = 1 / np.sqrt(var + eps)
    xhat = xc * rstd
    gw = grad_out * weight
    dx = rstd * (gw - gw.mean(axis=-1, keepdims=True) - xhat * (gw * xhat).mean(axis=-1, keepdims=True))
    return dx, (grad_out * xhat).sum(axis=0), grad_out.sum(axis=0)
