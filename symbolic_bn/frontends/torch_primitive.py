"""Each layer written in PyTorch with primitive ops only (mean, sub, mul, sqrt, div, reshape).

Their derivatives of every order are whatever torch's autograd makes of these elementary ops, so
they are the control group of ``crosscheck_autodiff`` / ``check_autodiff``: every mode must pass
for them (evidence that the harness is right), while the fused kernels (``F.batch_norm``,
``F.instance_norm``, ``F.layer_norm``, ...) go through torch's own derivative formulas.
Optional: needs ``torch``.
"""
from __future__ import annotations

__all__ = ["primitive_function"]


def primitive_function(layer):
    """``f(x, weight, bias)`` computing ``layer``'s forward (its ε must be a number) with torch's
    primitive ops; ``bias`` is ignored (None) for rms_norm."""
    import torch
    if getattr(layer, "symbolic_eps", False):
        raise ValueError(f"primitive_function: layer.eps must be a number, got the symbol {layer.eps}")
    eps = float(layer.eps)
    nd = len(layer.input_shape)

    def standardize(x, axes):
        mu = x.mean(dim=axes, keepdim=True)
        d = x - mu
        return d / torch.sqrt((d * d).mean(dim=axes, keepdim=True) + eps)

    def per_channel(p, axis):
        shape = [1] * nd
        shape[axis] = -1
        return p.reshape(shape)

    name = layer.name
    if name == "batchnorm_channel_first":
        return lambda x, w, b: standardize(x, (1, 2)) * per_channel(w, 0) + per_channel(b, 0)
    if name == "batch_norm":
        axes = (0,) + tuple(range(2, nd))
        return lambda x, w, b: standardize(x, axes) * per_channel(w, 1) + per_channel(b, 1)
    if name == "instance_norm":
        axes = tuple(range(2, nd))
        return lambda x, w, b: standardize(x, axes) * per_channel(w, 1) + per_channel(b, 1)
    if name == "group_norm":
        groups = layer.groups

        def group_norm(x, w, b):
            n, c = x.shape[:2]
            grouped = x.reshape((n, groups, c // groups) + tuple(x.shape[2:]))
            xhat = standardize(grouped, tuple(range(2, nd + 1))).reshape(x.shape)
            return xhat * per_channel(w, 1) + per_channel(b, 1)
        return group_norm
    axes = tuple(range(nd - len(layer.normalized_shape), nd))
    if name == "layer_norm":
        return lambda x, w, b: standardize(x, axes) * w + b
    if name == "rms_norm":
        return lambda x, w, b: x / torch.sqrt((x * x).mean(dim=axes, keepdim=True) + eps) * w
    raise ValueError(f"primitive_function: unknown layer {name!r}")
