"""PyTorch's implementation as checkable functions (optional: needs ``torch``).

``torch.nn.functional.instance_norm`` on a ``(1, C, H, W)`` tensor is this project's
BatchNormChannelFirst: training-mode statistics over H×W per channel, biased variance, ε inside the
square root (``ecosystem.md`` §5.1).  ε is always passed explicitly (torch's default is 1e-5).
The functions have the project's standard signatures, so they go straight into ``crosscheck``.

Every layer of :mod:`symbolic_bn.layers`: :func:`torch_functions(layer) <torch_functions>` gives
``(forward, backward)`` by the matching ``torch.nn.functional`` function (:data:`TORCH_FUNCTION`:
batch_norm with ``training=True`` and no running statistics, instance_norm, layer_norm,
group_norm, rms_norm) and ``torch.autograd.grad``, in the layer's layout; :func:`torch_parity`
cross-checks them against the layer's mpmath reference in float32 and float64.
"""
from __future__ import annotations

import numpy as np


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("symbolic_bn.frontends.torch_reference needs PyTorch: pip install torch") from exc
    return torch


def instance_norm_forward(x, gamma, beta, eps, xp=np):
    torch = _torch()
    with torch.no_grad():
        y = torch.nn.functional.instance_norm(torch.from_numpy(x)[None], weight=torch.from_numpy(gamma),
                                              bias=torch.from_numpy(beta), eps=eps)
    return y[0].numpy()


def instance_norm_backward(x, gamma, beta, grad_out, eps, xp=np):
    """(dx, dγ, dβ) by torch.autograd for the cotangent ``grad_out``."""
    torch = _torch()
    xt = torch.from_numpy(x)[None].requires_grad_(True)
    w = torch.from_numpy(gamma).requires_grad_(True)
    b = torch.from_numpy(beta).requires_grad_(True)
    y = torch.nn.functional.instance_norm(xt, weight=w, bias=b, eps=eps)
    dx, dw, db = torch.autograd.grad(y, (xt, w, b), grad_outputs=torch.from_numpy(grad_out)[None])
    return dx[0].numpy(), dw.numpy(), db.numpy()


# ------------------------------------------------------------------------------ every layer

#: The ``torch.nn.functional`` function behind each layer of :mod:`symbolic_bn.layers`.
TORCH_FUNCTION = {
    "batchnorm_channel_first": "instance_norm (on x[None]: a batch of one)",
    "batch_norm": "batch_norm(training=True, no running statistics)",
    "instance_norm": "instance_norm",
    "layer_norm": "layer_norm",
    "group_norm": "group_norm",
    "rms_norm": "rms_norm",
}


def _torch_output(layer, x, weight, bias, eps):
    """The layer's output by its ``torch.nn.functional`` function, on tensors in its layout."""
    torch = _torch()
    F = torch.nn.functional
    eps = float(eps)
    name = layer.name
    if name == "batchnorm_channel_first":
        return F.instance_norm(x[None], weight=weight, bias=bias, eps=eps)[0]
    if name == "batch_norm":
        return F.batch_norm(x, None, None, weight=weight, bias=bias, training=True, eps=eps)
    if name == "instance_norm":
        return F.instance_norm(x, weight=weight, bias=bias, eps=eps)
    if name == "layer_norm":
        return F.layer_norm(x, tuple(layer.normalized_shape), weight=weight, bias=bias, eps=eps)
    if name == "group_norm":
        return F.group_norm(x, int(layer.groups), weight=weight, bias=bias, eps=eps)
    if name == "rms_norm":
        return F.rms_norm(x, tuple(layer.normalized_shape), weight=weight, eps=eps)
    raise ValueError(f"layer: no torch function for {layer!r}")


def torch_functions(layer):
    """``(forward, backward)`` of PyTorch's implementation of ``layer`` (a
    :class:`symbolic_bn.layers.Layer`), in the checks' convention and the layer's own layout::

        forward(x, weight, bias, eps) -> y
        backward(x, weight, bias, grad_out, eps) -> (dx, dweight, dbias)    (rms_norm: (dx, dweight))

    NumPy arrays in and out, in the dtype given (torch computes in that dtype); the forward
    runs under ``no_grad``, the backward is ``torch.autograd.grad`` of the forward for the
    cotangent ``grad_out``.  ε is always passed explicitly; ``bias`` must be None for rms_norm.
    Which torch function: :data:`TORCH_FUNCTION`.
    """
    from ..layers import Layer
    if not isinstance(layer, Layer):
        raise ValueError(f"layer must be a symbolic_bn.layers.Layer, got {type(layer).__name__}")
    if layer.name not in TORCH_FUNCTION:
        raise ValueError(f"layer: no torch function for {layer!r}")
    has_bias = layer.bias_shape is not None

    def tensors(x, weight, bias, grad=False):
        torch = _torch()
        if not has_bias and bias is not None:
            raise ValueError(f"bias must be None for {layer.name}")
        out = [torch.from_numpy(np.ascontiguousarray(a)) for a in (x, weight)]
        if has_bias:
            out.append(torch.from_numpy(np.ascontiguousarray(bias)))
        if grad:
            out = [t.requires_grad_(True) for t in out]
        return out + ([None] if not has_bias else [])

    def forward(x, weight, bias, eps):
        torch = _torch()
        with torch.no_grad():
            xt, wt, bt = tensors(x, weight, bias)
            return _torch_output(layer, xt, wt, bt, eps).numpy()

    def backward(x, weight, bias, grad_out, eps):
        torch = _torch()
        xt, wt, bt = tensors(x, weight, bias, grad=True)
        y = _torch_output(layer, xt, wt, bt, eps)
        wrt = (xt, wt) + ((bt,) if has_bias else ())
        grads = torch.autograd.grad(y, wrt, grad_outputs=torch.from_numpy(np.ascontiguousarray(grad_out)))
        return tuple(g.numpy() for g in grads)

    forward.__qualname__ = f"torch.nn.functional.{layer.name}.forward"
    backward.__qualname__ = f"torch.nn.functional.{layer.name}.backward"
    return forward, backward


def torch_parity(layer, dtypes=("float32", "float64"), points=10, seed=0, eps=None, **options):
    """``{dtype: CrosscheckResult}``: PyTorch's forward and autograd backward of ``layer``
    cross-checked against the layer's mpmath reference (:func:`symbolic_bn.checks.crosscheck.
    crosscheck` with ``layer=``).  ``eps`` only for a symbolic-ε layer (default 1e-5);
    ``options`` go to crosscheck (``families``, ``dps``, ``budget``, ``inputs``)."""
    from ..checks.crosscheck import crosscheck
    forward, backward = torch_functions(layer)
    if isinstance(dtypes, str):
        dtypes = (dtypes,)
    return {dtype: crosscheck(forward, backward, layer=layer, dtype=dtype, points=points, seed=seed,
                              eps=eps, **options)
            for dtype in dtypes}
