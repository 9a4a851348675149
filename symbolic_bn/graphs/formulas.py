r"""Closed-form forwards of the normalization layers, written from the mathematics.

Every function has the project's forward signature ``forward(x, weight, bias, eps, xp)`` (plus
keyword-only hyperparameters for layer_norm / group_norm / rms_norm, bound by
:func:`forward_for`), takes arrays in the layer's *own* layout, and uses only portable
array-namespace calls: ``xp.asarray``, ``xp.mean`` with an axis tuple and ``keepdims=True``,
``xp.sqrt``, ``xp.reshape`` and arithmetic.  It therefore runs unchanged on

* ``xp = numpy`` (floats; an exact ``eps`` such as ``Fraction(1, 10**5)`` is turned into a float),
* ``xp = symbolic_bn.xp.mpmath_namespace(dps)`` (mpf object arrays),
* ``xp = symbolic_bn.xp.symbolic`` (exact SymPy; ``eps`` may be a ``sympy.Symbol``),
* ``xp = symbolic_bn.checks.jets.jet_namespace(k, dps)`` (truncated Taylor jets, for exact-order
  directional derivatives).

Semantics (layers-spec.md; layers-orders-frameworks.md §1).  For a statistics group ``G`` (the
entries sharing one mean and variance)::

    μ = mean_G x,   v = mean_G (x − μ)²   (population / biased variance, two passes)
    x̂ = (x − μ) / sqrt(v + ε),   y = weight · x̂ + bias

and, for rms_norm (no centering, no bias), ``y = x / sqrt(mean_G x² + ε) · weight``.

=========================  =====================  ==============================  =============
name                       x layout               statistics group                weight, bias
=========================  =====================  ==============================  =============
batchnorm_channel_first    (C, H, W)              per c: the H·W positions        (C,)
batch_norm                 (N, C, *spatial)       per c: all n and positions      (C,)
instance_norm              (N, C, *spatial)       per (n, c): the positions       (C,)
layer_norm                 (*, *normalized_shape) per leading index: the block    normalized_shape
group_norm                 (N, C, *spatial)       per (n, g): C/G channels ×      (C,)
                                                  positions
rms_norm                   (*, *normalized_shape) per leading index (no centering) normalized_shape
=========================  =====================  ==============================  =============

``spatial`` may be empty for batch_norm (``(N, C)``, BatchNorm1d on features) and group_norm; it
must be non-empty for instance_norm and batchnorm_channel_first has exactly two spatial axes.
Group ``g`` of group_norm holds the contiguous channels ``g·(C/G) … (g+1)·(C/G) − 1`` (as torch
lays them out).  ``weight`` or ``bias`` may be ``None`` (no scale / no shift, torch's
``weight=None``); for rms_norm ``bias`` must be ``None``.

torch.nn.functional correspondence (eps the same number; same layouts)::

    batchnorm_channel_first(x, w, b, eps)   == F.instance_norm(x[None], weight=w, bias=b, eps=eps)[0]
    batch_norm(x, w, b, eps)                == F.batch_norm(x, None, None, w, b, training=True, eps=eps)
    instance_norm(x, w, b, eps)             == F.instance_norm(x, weight=w, bias=b, eps=eps)
    layer_norm(x, w, b, eps, normalized_shape=s) == F.layer_norm(x, s, w, b, eps)
    group_norm(x, w, b, eps, groups=G)      == F.group_norm(x, G, w, b, eps)
    rms_norm(x, w, None, eps, normalized_shape=s) == F.rms_norm(x, s, w, eps)

(``batchnorm_channel_first`` is TorchLean's graph: InstanceNorm with N = 1, not BatchNorm2d in
training mode.)  Running statistics of batch_norm are outside the function, as they are outside
the gradient.

Lookup: ``FORWARDS[name]`` is the function (hyperparameters keyword-only; layer_norm / rms_norm
default ``normalized_shape`` to ``weight.shape``, group_norm needs ``groups``);
``forward_for(name, **hyper)`` returns a function of exactly ``(x, weight, bias, eps, xp)`` with
the hyperparameters bound.  :func:`statistics_axes` gives the input axes each statistic reduces
over.  Bad shapes and hyperparameters raise a one-line ``ValueError`` naming the argument.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy

__all__ = [
    "LAYER_NAMES",
    "FORWARDS",
    "forward_for",
    "statistics_axes",
    "channel_parameter_shape",
    "batchnorm_channel_first",
    "batch_norm",
    "instance_norm",
    "layer_norm",
    "group_norm",
    "rms_norm",
]

LAYER_NAMES = ("batchnorm_channel_first", "batch_norm", "instance_norm", "layer_norm",
               "group_norm", "rms_norm")


# --------------------------------------------------------------------------------------------
# helpers: shapes, axes, broadcasting, scalars
# --------------------------------------------------------------------------------------------
def _shape(a, name: str) -> tuple:
    shape = getattr(a, "shape", None)
    if shape is None:
        raise ValueError(f"{name} must be an array, got {type(a).__name__}")
    return tuple(int(s) for s in shape)


def _normalized_shape(normalized_shape, weight, name: str) -> tuple:
    if normalized_shape is None:
        if weight is None:
            raise ValueError(f"{name}: normalized_shape is required (the forward defaults it to "
                             "weight.shape only when weight is given)")
        return _shape(weight, "weight")
    if isinstance(normalized_shape, (int, numpy.integer)) and not isinstance(normalized_shape, bool):
        normalized_shape = (normalized_shape,)
    try:
        out = tuple(int(s) for s in normalized_shape)
    except TypeError:
        raise ValueError(f"normalized_shape must be a tuple of sizes, got {normalized_shape!r}") from None
    if not out or any(s < 1 for s in out):
        raise ValueError(f"normalized_shape must be a non-empty tuple of positive sizes, got {out}")
    return out


def _check_groups_value(groups) -> int:
    if groups is None:
        raise ValueError("group_norm needs groups (use forward_for('group_norm', groups=G))")
    if isinstance(groups, bool) or not isinstance(groups, (int, numpy.integer)) or groups < 1:
        raise ValueError(f"groups must be a positive integer, got {groups!r}")
    return int(groups)


def _check_groups(groups, channels: int) -> int:
    _check_groups_value(groups)
    if channels % int(groups):
        raise ValueError(f"groups={groups} does not divide the number of channels C={channels}")
    return int(groups)


def statistics_axes(name: str, shape, *, groups: Optional[int] = None,
                    normalized_shape=None) -> tuple:
    """The axes of an input of ``shape`` that one statistic of layer ``name`` reduces over.

    group_norm: ``(1, 2, …)`` -- the channel axis *within a group* and the spatial axes (the
    input is viewed as ``(N, G, C/G, *spatial)`` and each (n, g) reduces over its C/G channels
    and all positions).  Raises ``ValueError`` for a shape the layer does not accept.
    """
    shape = tuple(int(s) for s in shape)
    nd = len(shape)
    if name == "batchnorm_channel_first":
        if nd != 3:
            raise ValueError(f"batchnorm_channel_first: x must have shape (C, H, W), got {shape}")
        return (1, 2)
    if name in ("batch_norm", "instance_norm", "group_norm"):
        if nd < 2:
            raise ValueError(f"{name}: x must have shape (N, C, *spatial), got {shape}")
        if name == "batch_norm":
            return (0,) + tuple(range(2, nd))
        if name == "instance_norm":
            if nd < 3:
                raise ValueError(f"instance_norm: x must have at least one spatial axis "
                                 f"(N, C, *spatial), got {shape}")
            return tuple(range(2, nd))
        _check_groups(groups, shape[1])
        return tuple(range(1, nd))
    if name in ("layer_norm", "rms_norm"):
        ns = _normalized_shape(normalized_shape, None, name)
        if len(ns) > nd or shape[nd - len(ns):] != ns:
            raise ValueError(f"normalized_shape {ns} is not a suffix of the input shape {shape}")
        return tuple(range(nd - len(ns), nd))
    raise ValueError(f"unknown layer name {name!r}; known: {', '.join(LAYER_NAMES)}")


def channel_parameter_shape(ndim: int, channel_axis: int = 1) -> tuple:
    """The shape a per-channel (C,) parameter is reshaped to for broadcasting (``-1`` = C)."""
    return tuple(-1 if i == channel_axis else 1 for i in range(ndim))


def _scalar(eps, xp):
    """``eps`` as the namespace takes it: NumPy gets a float; other namespaces convert it."""
    if xp is numpy:
        if isinstance(eps, (float, numpy.floating)):
            return eps
        try:
            return float(eps)
        except (TypeError, ValueError):
            raise ValueError(f"eps={eps!r} is not a number; NumPy needs a numeric eps "
                             "(a symbolic eps needs the symbolic namespace)") from None
    return eps


def _parameter(p, name: str, want: tuple, xp, broadcast_shape: Optional[tuple]):
    """Check ``p``'s shape and reshape it for broadcasting against x."""
    if p is None:
        return None
    p = xp.asarray(p)
    got = _shape(p, name)
    if got != want:
        raise ValueError(f"{name} must have shape {want}, got {got}")
    if broadcast_shape is None:
        return p
    return xp.reshape(p, tuple(want[0] if s == -1 else s for s in broadcast_shape))


def _affine(xhat, weight, bias):
    y = xhat
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def _standardize(x, axes, eps, xp):
    """(x − μ) / sqrt(v + ε) with μ, v the mean and population variance over ``axes``."""
    mu = xp.mean(x, axis=axes, keepdims=True)
    centered = x - mu
    var = xp.mean(centered * centered, axis=axes, keepdims=True)
    return centered / xp.sqrt(var + _scalar(eps, xp))


def _channel_layer(name, x, weight, bias, eps, xp, axes):
    x = xp.asarray(x)
    shape = _shape(x, "x")
    channel_axis = 0 if name == "batchnorm_channel_first" else 1
    want = (shape[channel_axis],)
    bshape = channel_parameter_shape(len(shape), channel_axis)
    weight = _parameter(weight, "weight", want, xp, bshape)
    bias = _parameter(bias, "bias", want, xp, bshape)
    return _affine(_standardize(x, axes, eps, xp), weight, bias)


# --------------------------------------------------------------------------------------------
# the layers
# --------------------------------------------------------------------------------------------
def batchnorm_channel_first(x, weight, bias, eps, xp):
    """TorchLean's BatchNormChannelFirst: x (C, H, W), statistics per channel over H·W."""
    return _channel_layer("batchnorm_channel_first", x, weight, bias, eps, xp,
                          statistics_axes("batchnorm_channel_first", _shape(x, "x")))


def batch_norm(x, weight, bias, eps, xp):
    """Training-mode BatchNorm: x (N, C, *spatial), statistics per channel over N and spatial."""
    return _channel_layer("batch_norm", x, weight, bias, eps, xp,
                          statistics_axes("batch_norm", _shape(x, "x")))


def instance_norm(x, weight, bias, eps, xp):
    """InstanceNorm: x (N, C, *spatial), statistics per (n, c) over the spatial axes."""
    return _channel_layer("instance_norm", x, weight, bias, eps, xp,
                          statistics_axes("instance_norm", _shape(x, "x")))


def layer_norm(x, weight, bias, eps, xp, *, normalized_shape=None):
    """LayerNorm: statistics over the trailing ``normalized_shape`` block (default weight.shape);
    weight and bias elementwise over that block."""
    x = xp.asarray(x)
    shape = _shape(x, "x")
    ns = _normalized_shape(normalized_shape, weight, "layer_norm")
    axes = statistics_axes("layer_norm", shape, normalized_shape=ns)
    weight = _parameter(weight, "weight", ns, xp, None)
    bias = _parameter(bias, "bias", ns, xp, None)
    return _affine(_standardize(x, axes, eps, xp), weight, bias)


def group_norm(x, weight, bias, eps, xp, *, groups=None):
    """GroupNorm: x (N, C, *spatial), statistics per (n, g) over the g-th block of C/G
    contiguous channels and all spatial positions; weight and bias per channel."""
    x = xp.asarray(x)
    shape = _shape(x, "x")
    statistics_axes("group_norm", shape, groups=groups)  # validates rank and groups
    g = int(groups)
    n, c = shape[0], shape[1]
    grouped = xp.reshape(x, (n, g, c // g) + shape[2:])
    xhat = xp.reshape(_standardize(grouped, tuple(range(2, len(shape) + 1)), eps, xp), shape)
    bshape = channel_parameter_shape(len(shape), 1)
    weight = _parameter(weight, "weight", (c,), xp, bshape)
    bias = _parameter(bias, "bias", (c,), xp, bshape)
    return _affine(xhat, weight, bias)


def rms_norm(x, weight, bias, eps, xp, *, normalized_shape=None):
    """RMSNorm: y = x / sqrt(mean(x²) + ε) · weight over the trailing ``normalized_shape`` block;
    no centering and no bias (``bias`` must be None)."""
    if bias is not None:
        raise ValueError("rms_norm has no bias: pass bias=None")
    x = xp.asarray(x)
    shape = _shape(x, "x")
    ns = _normalized_shape(normalized_shape, weight, "rms_norm")
    axes = statistics_axes("rms_norm", shape, normalized_shape=ns)
    weight = _parameter(weight, "weight", ns, xp, None)
    mean_square = xp.mean(x * x, axis=axes, keepdims=True)
    return _affine(x / xp.sqrt(mean_square + _scalar(eps, xp)), weight, None)


FORWARDS: dict[str, Callable] = {
    "batchnorm_channel_first": batchnorm_channel_first,
    "batch_norm": batch_norm,
    "instance_norm": instance_norm,
    "layer_norm": layer_norm,
    "group_norm": group_norm,
    "rms_norm": rms_norm,
}

_HYPERPARAMETERS = {
    "batchnorm_channel_first": (),
    "batch_norm": (),
    "instance_norm": (),
    "layer_norm": ("normalized_shape",),
    "group_norm": ("groups",),
    "rms_norm": ("normalized_shape",),
}


def forward_for(name: str, **hyper) -> Callable:
    """The forward of layer ``name`` as a function of exactly ``(x, weight, bias, eps, xp)``.

    ``hyper``: ``groups`` (group_norm, required), ``normalized_shape`` (layer_norm / rms_norm;
    default: the weight's shape).  Unknown layers or hyperparameters raise ``ValueError``.
    """
    if name not in FORWARDS:
        raise ValueError(f"unknown layer name {name!r}; known: {', '.join(LAYER_NAMES)}")
    allowed = _HYPERPARAMETERS[name]
    extra = sorted(set(hyper) - set(allowed))
    if extra:
        raise ValueError(f"{name} takes no hyperparameter {extra[0]!r} "
                         f"(it takes: {', '.join(allowed) or 'none'})")
    if name == "group_norm":
        hyper["groups"] = _check_groups_value(hyper.get("groups"))
    if "normalized_shape" in hyper:
        hyper["normalized_shape"] = _normalized_shape(hyper["normalized_shape"], None, name)
    base = FORWARDS[name]
    if not hyper:
        return base

    def forward(x, weight, bias, eps, xp):
        return base(x, weight, bias, eps, xp, **hyper)

    described = ", ".join(f"{k}={v!r}" for k, v in hyper.items())
    forward.__name__ = f"{name}_forward"
    forward.__qualname__ = forward.__name__
    forward.__doc__ = f"{name} forward with {described} (see symbolic_bn.graphs.formulas.{name})."
    return forward
