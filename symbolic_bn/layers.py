"""The normalization layers people ship, as exact references: shapes, statistics groups, formulas.

Each constructor returns a :class:`Layer`.  Notation: input ``x``, a *statistics group* is the set
of entries sharing one mean and variance, ``μ`` its mean, ``v = mean((x − μ)²)`` its population
(biased) variance, ``r = 1/sqrt(v + ε)``, ``x̂ = (x − μ)·r``; the output is ``x̂·γ + β`` with γ, β
broadcast as the layer says.

=============================  ====================  ===============================  ===========
constructor                    input                 statistics group                 γ, β over
=============================  ====================  ===============================  ===========
``batchnorm_channel_first``    (C, H, W)             one per channel: its H·W         channel
``batch_norm``                 (N, C, *spatial)      one per channel: all n, spatial  channel
``instance_norm``              (N, C, *spatial)      one per (n, c): spatial          channel
``layer_norm``                 (*, *normalized)      one per leading index            normalized
``group_norm``                 (N, C, *spatial)      one per (n, g): C/G channels ×   channel
                                                     spatial (group g holds channels
                                                     g·C/G … (g+1)·C/G − 1, as torch)
``rms_norm``                   (*, *normalized)      one per leading index; no        normalized
                                                     centering, y = x/sqrt(mean(x²)+ε)·γ, no β
=============================  ====================  ===============================  ===========

These are ``torch.nn.functional.batch_norm(training=True)`` (running statistics do not take part
in the gradient), ``instance_norm``, ``layer_norm``, ``group_norm`` and ``rms_norm``.  Eval-mode
BatchNorm is an affine map per channel: :mod:`symbolic_bn.bounds`.  ``batchnorm_channel_first`` is
TorchLean's graph (``NN/Proofs/Autograd/Tape/Ops/Norm/BatchNormChannelFirst.lean``), which is
instance_norm with N = 1.

``eps``: None gives a real symbol ε (the domain is then var + ε > 0 for every group, whatever the
sign of ε); a number is read exactly (a float as the simplest rational within half an ulp, so
``1e-5`` is 1/100000).  A statistics group of one element has variance 0, so an exact ε ≤ 0 would
make the domain empty: refused.
"""
from __future__ import annotations

import numbers
from fractions import Fraction
from typing import Callable

import numpy as np
import sympy

__all__ = ["Layer", "batchnorm_channel_first", "batch_norm", "instance_norm", "layer_norm",
           "group_norm", "rms_norm", "LAYER_NAMES", "EPS_SYMBOL"]

EPS_SYMBOL = sympy.Symbol("ε", real=True)
LAYER_NAMES = ("batchnorm_channel_first", "batch_norm", "instance_norm", "layer_norm", "group_norm",
               "rms_norm")
#: Largest input and statistics group accepted (the exact engine would not finish in reasonable
#: time beyond them).
MAX_ELEMENTS = 4096
MAX_GROUP = 1024


def _dims(shape, name, min_rank=1, max_rank=6):
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
        raise ValueError(f"{name} must be a tuple of positive integers, got {shape!r}")
    shape = tuple(shape)
    if not min_rank <= len(shape) <= max_rank:
        raise ValueError(f"{name} must have {min_rank} to {max_rank} dimensions, got {len(shape)} ({shape!r})")
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, numbers.Integral) or int(d) <= 0:
            raise ValueError(f"{name} must be a tuple of positive integers, got {shape!r}")
    shape = tuple(int(d) for d in shape)
    if int(np.prod(shape)) > MAX_ELEMENTS:
        raise ValueError(f"{name} {shape} is too large: at most {MAX_ELEMENTS} elements (the exact engine "
                         "would not finish in reasonable time)")
    return shape


def _eps(eps):
    """None → the real symbol ε; a SymPy real Symbol as is; numbers → exact Fractions."""
    from .exact.floats import read_float
    if eps is None:
        return EPS_SYMBOL
    if isinstance(eps, sympy.Symbol):
        if eps.is_real is not True:
            raise ValueError(f"eps: a symbolic ε must be a real Symbol (Symbol('ε', real=True)), got {eps!r}")
        return eps
    if isinstance(eps, bool):
        raise ValueError("eps must be a number or None, got a bool")
    if isinstance(eps, sympy.Basic):
        if isinstance(eps, sympy.Rational):
            return Fraction(int(eps.p), int(eps.q))
        raise ValueError(f"eps must be rational (or None for a symbolic ε), got {eps} -- the exact engine "
                         "works over the rationals")
    if isinstance(eps, Fraction):
        return eps
    if isinstance(eps, numbers.Integral):
        return Fraction(int(eps))
    if isinstance(eps, (float, np.floating)):
        if not np.isfinite(eps):
            raise ValueError(f"eps must be finite, got {eps}")
        return read_float(eps)
    if isinstance(eps, str):
        from .exact.numbers import to_exact
        r = to_exact(eps, name="eps")
        return Fraction(int(r.p), int(r.q))
    raise ValueError(f"eps must be None, a number or a real SymPy Symbol, got {type(eps).__name__}")


class Layer:
    """A normalization layer at one input shape (module docstring).

    Attributes: ``name``, ``input_shape``, ``weight_shape``, ``bias_shape`` (None for rms_norm),
    ``eps`` (a Fraction, or a SymPy Symbol for a symbolic ε), ``statistics_axes`` (the input axes
    one statistic reduces over; group_norm: the channel axis is split into groups of C/G
    contiguous channels, and the statistics reduce over those and the spatial axes), ``centered``
    (False for rms_norm), ``groups`` (group_norm), ``normalized_shape`` (layer_norm, rms_norm),
    ``argument_names`` (the names the certificates use for the inputs).
    """

    def __init__(self, name, input_shape, param_shape, *, statistics_axes, eps, centered=True,
                 has_bias=True, groups=None, normalized_shape=None, param_of: Callable = None,
                 group_of: Callable = None, argument_names=("x", "weight", "bias"), group_word="group"):
        self.name = name
        self.input_shape = tuple(input_shape)
        self.weight_shape = tuple(param_shape)
        self.bias_shape = tuple(param_shape) if has_bias else None
        self.statistics_axes = tuple(statistics_axes)
        self.eps = _eps(eps)
        self.centered = centered
        self.groups = groups
        self.normalized_shape = normalized_shape
        self._param_of = param_of
        self._group_of = group_of
        self.argument_names = tuple(argument_names)
        self.group_word = group_word
        members: dict = {}
        for idx in np.ndindex(*self.input_shape):
            members.setdefault(self._group_of(idx), []).append(idx)
        self.members = members
        largest = max(len(m) for m in members.values())
        if largest > MAX_GROUP:
            raise ValueError(f"shape {self.input_shape} is too large: its statistics groups have {largest} "
                             f"elements, at most {MAX_GROUP} are accepted (the exact engine would not finish "
                             "in reasonable time)")
        # (rms_norm's mean(x²) + ε > 0 holds for large enough x whatever ε: never empty)
        if (not isinstance(self.eps, sympy.Symbol) and centered and self.eps <= 0
                and min(len(m) for m in members.values()) == 1):
            raise ValueError(
                f"eps = {self.eps} with statistics groups of one element: their variance is 0, so the "
                f"domain {self.domain_text()} is empty (every statement would hold vacuously); use "
                "eps > 0 or larger groups")
        if (isinstance(self.eps, sympy.Symbol) and centered and min(len(m) for m in members.values()) == 1
                and (self.eps.is_nonpositive or self.eps.is_negative)):
            # the same emptiness for a symbol declared ≤ 0 (a symbol with zero=True included)
            raise ValueError(
                f"eps = {self.eps} is declared ≤ 0 and the statistics groups have one element: their "
                f"variance is 0, so the domain {self.domain_text()} is empty (every statement would hold "
                "vacuously); use a real or positive ε, or larger groups")

    # -- structure
    @property
    def symbolic_eps(self) -> bool:
        return isinstance(self.eps, sympy.Symbol)

    def group_of(self, idx):
        """The statistics group of the input entry at ``idx``."""
        return self._group_of(tuple(idx))

    def param_of(self, idx):
        """The index of the weight (and bias) entry applied at input position ``idx``."""
        return self._param_of(tuple(idx))

    @property
    def group_size(self) -> int:
        return len(next(iter(self.members.values())))

    @property
    def number_of_groups(self) -> int:
        return len(self.members)

    def param_groups(self) -> dict:
        """weight index -> the set of statistics groups it is applied in."""
        out: dict = {}
        for idx in np.ndindex(*self.input_shape):
            out.setdefault(self.param_of(idx), set()).add(self.group_of(idx))
        return out

    def domain_text(self) -> str:
        """The domain of the layer's theorems, in words."""
        return {
            "batchnorm_channel_first": "var_c + ε > 0 for every channel c",
            "batch_norm": "var_c + ε > 0 for every channel c (statistics over the batch and spatial axes)",
            "instance_norm": "var_{n,c} + ε > 0 for every sample n and channel c",
            "layer_norm": "var_r + ε > 0 for every row r (each index of the leading axes)",
            "group_norm": "var_{n,g} + ε > 0 for every sample n and group g",
            "rms_norm": "mean(x²)_r + ε > 0 for every row r (each index of the leading axes)",
        }[self.name]

    def group_description(self) -> str:
        return {"batchnorm_channel_first": "a channel's H·W entries",
                "batch_norm": "a channel over the batch and spatial axes",
                "instance_norm": "one (sample, channel) over the spatial axes",
                "layer_norm": "one leading index over normalized_shape",
                "group_norm": "one (sample, group of C/G channels) over those channels and the spatial axes",
                "rms_norm": "one leading index over normalized_shape"}[self.name]

    def shape_text(self) -> str:
        text = "x".join(map(str, self.input_shape))
        if self.name == "group_norm":
            text += f", G={self.groups}"
        if self.normalized_shape is not None:
            text += f", normalized_shape={tuple(self.normalized_shape)}"
        return text

    def eps_text(self) -> str:
        if self.symbolic_eps:
            return "ε symbolic (any real ε with " + ("var" if self.centered else "mean(x²)") + " + ε > 0)"
        return f"ε = {self.eps}"

    def __repr__(self):
        return f"<Layer {self.name} {self.shape_text()}, {self.eps_text()}>"

    # -- the closed-form forward, written from the mathematics against a namespace xp
    def forward(self, x, weight, bias, eps, xp):
        """``y`` for input ``x`` (layout of ``input_shape``) on namespace ``xp``."""
        shape = self.input_shape
        if self.name == "group_norm":
            N, C = shape[0], shape[1]
            G = self.groups
            xg = xp.reshape(x, (N, G, C // G) + shape[2:])
            axes = tuple(range(2, xg.ndim))
            mu = xp.mean(xg, axis=axes, keepdims=True)
            d = xg - mu
            v = xp.mean(d * d, axis=axes, keepdims=True)
            xhat = xp.reshape(d / xp.sqrt(v + eps), shape)
        else:
            axes = self.statistics_axes
            if self.centered:
                mu = xp.mean(x, axis=axes, keepdims=True)
                d = x - mu
                v = xp.mean(d * d, axis=axes, keepdims=True)
                xhat = d / xp.sqrt(v + eps)
            else:
                ms = xp.mean(x * x, axis=axes, keepdims=True)
                xhat = x / xp.sqrt(ms + eps)
        w = self._broadcast_param(weight, xp)
        y = xhat * w
        if self.bias_shape is not None:
            y = y + self._broadcast_param(bias, xp)
        return y

    def _broadcast_param(self, p, xp):
        shape = self.input_shape
        if self.name == "batchnorm_channel_first":
            return xp.reshape(p, (shape[0],) + (1,) * (len(shape) - 1))
        if self.name in ("batch_norm", "instance_norm", "group_norm"):
            return xp.reshape(p, (1, shape[1]) + (1,) * (len(shape) - 2))
        return p  # layer_norm / rms_norm: trailing dimensions broadcast as they are


# ------------------------------------------------------------------------------ constructors

def batchnorm_channel_first(C, H, W, eps=None) -> Layer:
    """TorchLean's per-example channel-first BatchNorm: x (C, H, W), statistics per channel."""
    shape = _dims((C, H, W), "shape", 3, 3)
    return Layer("batchnorm_channel_first", shape, (shape[0],), statistics_axes=(1, 2), eps=eps,
                 param_of=lambda idx: (idx[0],), group_of=lambda idx: idx[0],
                 argument_names=("x", "gamma", "beta"), group_word="channel")


def _nc_shape(shape, name):
    shape = _dims(shape, "shape", 2, 5)
    return shape


def batch_norm(shape, eps=None) -> Layer:
    """Training-mode BatchNorm over (N, C, *spatial): statistics per channel over N and spatial."""
    shape = _nc_shape(shape, "batch_norm")
    axes = (0,) + tuple(range(2, len(shape)))
    return Layer("batch_norm", shape, (shape[1],), statistics_axes=axes, eps=eps,
                 param_of=lambda idx: (idx[1],), group_of=lambda idx: idx[1], group_word="channel")


def instance_norm(shape, eps=None) -> Layer:
    """InstanceNorm over (N, C, *spatial): statistics per (n, c) over the spatial axes."""
    shape = _nc_shape(shape, "instance_norm")
    if len(shape) < 3:
        raise ValueError(f"shape: instance_norm needs at least one spatial axis, got {shape}")
    axes = tuple(range(2, len(shape)))
    return Layer("instance_norm", shape, (shape[1],), statistics_axes=axes, eps=eps,
                 param_of=lambda idx: (idx[1],), group_of=lambda idx: (idx[0], idx[1]),
                 group_word="(sample, channel)")


def _normalized(shape, normalized_shape):
    shape = _dims(shape, "shape", 1, 6)
    if isinstance(normalized_shape, numbers.Integral) and not isinstance(normalized_shape, bool):
        normalized_shape = (int(normalized_shape),)
    ns = _dims(normalized_shape, "normalized_shape", 1, len(shape))
    if tuple(shape[len(shape) - len(ns):]) != ns:
        raise ValueError(f"normalized_shape {ns} is not a suffix of the shape {shape}")
    return shape, ns


def layer_norm(shape, normalized_shape, eps=None) -> Layer:
    """LayerNorm: statistics over the trailing ``normalized_shape``; γ, β of that shape."""
    shape, ns = _normalized(shape, normalized_shape)
    k = len(shape) - len(ns)
    axes = tuple(range(k, len(shape)))
    return Layer("layer_norm", shape, ns, statistics_axes=axes, eps=eps, normalized_shape=ns,
                 param_of=lambda idx: tuple(idx[k:]), group_of=lambda idx: tuple(idx[:k]),
                 group_word="row")


def group_norm(shape, groups, eps=None) -> Layer:
    """GroupNorm over (N, C, *spatial) with ``groups`` groups of C/G contiguous channels."""
    shape = _nc_shape(shape, "group_norm")
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or int(groups) <= 0:
        raise ValueError(f"groups must be a positive integer, got {groups!r}")
    G = int(groups)
    C = shape[1]
    if C % G:
        raise ValueError(f"groups = {G} does not divide the number of channels C = {C}")
    per = C // G
    axes = tuple(range(1, len(shape)))
    return Layer("group_norm", shape, (C,), statistics_axes=axes, eps=eps, groups=G,
                 param_of=lambda idx: (idx[1],), group_of=lambda idx: (idx[0], idx[1] // per),
                 group_word="(sample, group)")


def rms_norm(shape, normalized_shape, eps=None) -> Layer:
    """RMSNorm: y = x / sqrt(mean(x²) + ε) · γ over the trailing ``normalized_shape``; no β."""
    shape, ns = _normalized(shape, normalized_shape)
    k = len(shape) - len(ns)
    axes = tuple(range(k, len(shape)))
    return Layer("rms_norm", shape, ns, statistics_axes=axes, eps=eps, centered=False, has_bias=False,
                 normalized_shape=ns, param_of=lambda idx: tuple(idx[k:]),
                 group_of=lambda idx: tuple(idx[:k]), argument_names=("x", "weight"), group_word="row")
