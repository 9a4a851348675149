"""Implementations handed to ``symbolic-bn check --layer / --framework / --double-backward`` and
``symbolic-bn autodiff`` by tests/test_cli.py (imported by the CLI's child process through
PYTHONPATH=tests/).  Written for these tests: plain NumPy (no xp), xp code, torch and jax code."""
import numpy as np


# ---------------------------------------------------------------- batch_norm (N, C, *spatial), NumPy only
def _bn_axes(x):
    return (0,) + tuple(range(2, x.ndim))


def batch_norm_backward(x, weight, bias, grad_out, eps):
    """Correct training-mode BatchNorm backward, statistics per channel over N and the spatial axes."""
    axes = _bn_axes(x)
    per_channel = (1, -1) + (1,) * (x.ndim - 2)
    n = x.size // x.shape[1]
    mu = x.mean(axis=axes, keepdims=True)
    xc = x - mu
    inv = 1.0 / np.sqrt((xc * xc).mean(axis=axes, keepdims=True) + eps)
    xhat = xc * inv
    dbias = grad_out.sum(axis=axes)
    dweight = (grad_out * xhat).sum(axis=axes)
    dx = weight.reshape(per_channel) * inv / n * (
        n * grad_out - dbias.reshape(per_channel) - xhat * dweight.reshape(per_channel))
    return dx, dweight, dbias


def batch_norm_backward_per_sample(x, weight, bias, grad_out, eps):
    """Wrong: statistics per (sample, channel) -- InstanceNorm's -- where BatchNorm's belong."""
    axes = tuple(range(2, x.ndim))
    per_channel = (1, -1) + (1,) * (x.ndim - 2)
    n = int(np.prod(x.shape[2:]))
    mu = x.mean(axis=axes, keepdims=True)
    xc = x - mu
    inv = 1.0 / np.sqrt((xc * xc).mean(axis=axes, keepdims=True) + eps)
    xhat = xc * inv
    sg = grad_out.sum(axis=axes, keepdims=True)
    sgx = (grad_out * xhat).sum(axis=axes, keepdims=True)
    dx = weight.reshape(per_channel) * inv / n * (n * grad_out - sg - xhat * sgx)
    return dx, sgx.sum(axis=(0,) + axes), sg.sum(axis=(0,) + axes)


def batch_norm_forward(x, weight, bias, eps, xp):
    axes = _bn_axes(x)
    per_channel = (1, -1) + (1,) * (x.ndim - 2)
    mu = xp.mean(x, axis=axes, keepdims=True)
    v = xp.mean((x - mu) * (x - mu), axis=axes, keepdims=True)
    return (x - mu) / xp.sqrt(v + eps) * xp.reshape(weight, per_channel) + xp.reshape(bias, per_channel)


# ---------------------------------------------------------------- group_norm / layer_norm, NumPy only
def group_norm_backward_2_groups(x, weight, bias, grad_out, eps):
    """Correct GroupNorm backward for G = 2 (the user binds groups; here in the function)."""
    N, C = x.shape[:2]
    G = 2
    rest = x.shape[2:]
    xg = x.reshape((N, G, C // G) + rest)
    gg = grad_out.reshape(xg.shape)
    axes = tuple(range(2, xg.ndim))
    n = int(np.prod(xg.shape[2:]))
    mu = xg.mean(axis=axes, keepdims=True)
    inv = 1.0 / np.sqrt(((xg - mu) ** 2).mean(axis=axes, keepdims=True) + eps)
    xhat = (xg - mu) * inv
    w = weight.reshape((1, G, C // G) + (1,) * len(rest))
    gh = gg * w
    dxg = inv / n * (n * gh - gh.sum(axis=axes, keepdims=True) - xhat * (gh * xhat).sum(axis=axes, keepdims=True))
    sum_axes = (0,) + tuple(range(2, x.ndim))
    dweight = (grad_out * xhat.reshape(x.shape)).sum(axis=sum_axes)
    dbias = grad_out.sum(axis=sum_axes)
    return dxg.reshape(x.shape), dweight, dbias


def layer_norm_backward(x, weight, bias, grad_out, eps):
    """Correct LayerNorm backward over the last axis (normalized_shape = (D,)), NumPy only."""
    n = x.shape[-1]
    mu = np.mean(x, axis=-1, keepdims=True)
    inv = 1.0 / np.sqrt(np.var(x, axis=-1, keepdims=True) + eps)
    xhat = (x - mu) * inv
    lead = tuple(range(x.ndim - 1))
    gh = grad_out * weight
    dx = inv / n * (n * gh - gh.sum(axis=-1, keepdims=True) - xhat * (gh * xhat).sum(axis=-1, keepdims=True))
    return dx, (grad_out * xhat).sum(axis=lead), grad_out.sum(axis=lead)


# ---------------------------------------------------------------- double backward (channel-first, xp)
def double_backward(x, gamma, beta, grad_out, ggx, gggamma, ggbeta, eps, xp):
    """Correct: the project's closed-form double backward of the channel-first layer."""
    from symbolic_bn import layers
    from symbolic_bn.graphs import closed_forms
    layer = layers.batchnorm_channel_first(*x.shape)
    return closed_forms.double_backward(layer, x, gamma, grad_out, ggx, gggamma, ggbeta, eps, xp)


def double_backward_without_ggbeta(x, gamma, beta, grad_out, ggx, gggamma, ggbeta, eps, xp):
    """Wrong: ggrad_out forgets the ggbeta term."""
    gx, ggamma, ggrad_out = double_backward(x, gamma, beta, grad_out, ggx, gggamma, ggbeta, eps, xp)
    return gx, ggamma, ggrad_out - xp.reshape(ggbeta, (-1, 1, 1))


# ---------------------------------------------------------------- torch (framework-native)
def torch_batch_norm_backward(x, weight, bias, grad_out, eps):
    """torch's own autograd of F.batch_norm(training=True): correct."""
    import torch
    x, weight, bias = (t.requires_grad_() for t in (x, weight, bias))
    y = torch.nn.functional.batch_norm(x, None, None, weight, bias, training=True, eps=eps)
    return torch.autograd.grad(y, (x, weight, bias), grad_out)


def torch_batch_norm_backward_wrong_dbias(x, weight, bias, grad_out, eps):
    """Wrong: dbias doubled."""
    dx, dw, db = torch_batch_norm_backward(x, weight, bias, grad_out, eps)
    return dx, dw, 2 * db


def torch_cumsum_forward(x, weight, bias, eps):
    """Uses aten.cumsum, which the exact interpreter does not run."""
    import torch
    return torch.cumsum(x, 0) * 0 + x


def torch_instance_norm_primitive(x, weight, bias):
    """InstanceNorm from primitive torch ops (mean, sub, mul, sqrt, div), eps = 1e-5."""
    axes = tuple(range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mu = x.mean(dim=axes, keepdim=True)
    v = ((x - mu) * (x - mu)).mean(dim=axes, keepdim=True)
    return (x - mu) / (v + 1e-5).sqrt() * weight.reshape(shape) + bias.reshape(shape)


def torch_instance_norm_bessel(x, weight, bias):
    """Wrong: the unbiased (N - 1) variance."""
    axes = tuple(range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mu = x.mean(dim=axes, keepdim=True)
    v = x.var(dim=axes, keepdim=True, unbiased=True)
    return (x - mu) / (v + 1e-5).sqrt() * weight.reshape(shape) + bias.reshape(shape)


def torch_raises(x, weight, bias):
    raise RuntimeError("this forward is broken")


def torch_instance_norm_without_jvp(x, weight, bias):
    """Correct values, but through an autograd.Function without a jvp: forward-mode rows ERROR."""
    import torch

    class Identity(torch.autograd.Function):
        @staticmethod
        def forward(ctx, y):
            return y.clone()

        @staticmethod
        def backward(ctx, g):
            return g

    return Identity.apply(torch_instance_norm_primitive(x, weight, bias))
