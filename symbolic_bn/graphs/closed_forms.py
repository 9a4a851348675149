r"""Closed-form derivatives of every normalization layer, written from the mathematics.

For a :class:`~symbolic_bn.layers.Layer` ``L`` and its forward ``y = L.forward(x, w, b, ε)``:

* :func:`backward` -- ``Jᵀ·grad_out``: ``(dx, dweight, dbias)`` (rms_norm: ``(dx, dweight)``);
* :func:`jvp` -- ``J·(dx, dweight, dbias)``: the forward-mode derivative ``dy``;
* :func:`double_backward` -- PyTorch's double-backward shape: the derivative of the backward map
  ``(x, w, g) ↦ (dx, dw, db)`` contracted with a cotangent ``(ggx, ggw, ggb)`` on its outputs,
  returned as ``(gx, gweight, ggrad_out)``.

They are the analogues of TorchLean's ``Spec.batchNorm2dBackward`` / ``batchNorm2dJvp``
(torchlean.md §5.4), extended to every layer and to second order.  Each is a function of arrays
in the layer's own layout against an array namespace ``xp`` and uses only ``xp.asarray``,
``xp.reshape``, ``xp.sum``/``xp.mean`` with axis tuples and ``keepdims``, ``xp.sqrt`` and
arithmetic, so the same code runs on NumPy floats, ``symbolic_bn.xp.mpmath_namespace(dps)``,
``symbolic_bn.xp.symbolic`` (exact SymPy) and the exact engine's ``ExactNamespace``.

Notation (one statistics group at a time; ⟨·⟩ is the mean over the group, n its size)
-----------------------------------------------------------------------------------
``w``, ``b`` are the weight and bias broadcast to the input (``W = ggweight``, ``B = ggbias``
likewise), ``g = grad_out``, ``t = ggx``, and ``c = 1`` for the centred layers, ``c = 0`` for
rms_norm::

    μ = ⟨x⟩ (c = 1),  v = ⟨(x − μ)²⟩,  r = 1/sqrt(v + ε),  x̂ = (x − μ)·r
    rms_norm:         s = ⟨x²⟩,        r = 1/sqrt(s + ε),  x̂ = x·r
    y = w·x̂ + b   (rms_norm: no b)

Derivations
-----------
*Jacobian of x̂.*  ∂v/∂x_j = (2/n)·(x_j − μ) because Σ(x − μ) = 0; ∂s/∂x_j = (2/n)·x_j.  With
∂r/∂(v or s) = −r³/2 both give **∂r/∂x_j = −r²·x̂_j/n**, hence

    ∂x̂_i/∂x_j = r·(δ_ij − c/n − x̂_i·x̂_j/n)            (symmetric in i, j)

so for any per-position array u,  ``(J u)_i = Σ_j ∂x̂_i/∂x_j u_j = (Jᵀu)_i = P(u)_i`` with

    P(u) = r·(u − c·⟨u⟩ − x̂·⟨x̂·u⟩).

*Backward.*  With ĝ = g·w:

    dx      = P(ĝ) = r·(ĝ − c·⟨ĝ⟩ − x̂·⟨ĝ·x̂⟩) = (r/n)·(n·ĝ − c·Σĝ − x̂·Σ ĝx̂)
    dweight = Σ over the positions sharing a weight entry of g·x̂
    dbias   = Σ likewise of g

(rms_norm: ``dx = r·(ĝ − x̂·⟨ĝx̂⟩)``, the c = 0 case.)

*JVP* along (dx, dweight, dbias) = (t, W, B):

    dy = w·P(t) + W·x̂ + B.

*Double backward.*  Φ = ⟨dx, t⟩ + ⟨dweight, W⟩ + ⟨dbias, B⟩ (sums over all entries).  By the
symmetry of J, ⟨dx, t⟩ = Σ ĝ·P(t); and ⟨dweight, W⟩ = Σ g·W·x̂, ⟨dbias, B⟩ = Σ g·B, so

    Φ = Σ_i g_i·(w_i·P(t)_i + W_i·x̂_i + B_i).

* ``ggrad_out = ∂Φ/∂g = w·P(t) + W·x̂ + B`` -- the JVP of the forward along (t, W, B);
* ``gweight = ∂Φ/∂w = Σ over the positions sharing a weight entry of g·P(t)``;
* ``gx = ∂Φ/∂x``.  Per group, with a = g·W, the term Σ a·x̂ contributes J a = P(a).  The term
  Σ ĝ·P(t) = r·(Σĝt − c·n·⟨ĝ⟩⟨t⟩ − n·⟨ĝx̂⟩⟨x̂t⟩) depends on x through r (∂r/∂x_j = −r²x̂_j/n) and
  through Σĝx̂ and Σx̂t (their gradients are P(ĝ) and P(t)), which gives
  −r·[x̂·⟨ĝ·P(t)⟩ + ⟨ĝx̂⟩·P(t) + ⟨x̂t⟩·P(ĝ)].  Expanding P and collecting the x̂ terms:

      gx = r·(a − c·⟨a⟩ − x̂·⟨x̂a⟩)
           − r²·[ x̂·(⟨ĝt⟩ − c·⟨ĝ⟩⟨t⟩ − 3·⟨ĝx̂⟩⟨x̂t⟩) + ⟨ĝx̂⟩·(t − c·⟨t⟩) + ⟨x̂t⟩·(ĝ − c·⟨ĝ⟩) ].

  (If μ and r are wrongly held constant -- saved statistics without history -- one gets
  ``r·a − r²·(⟨x̂t⟩·ĝ + ⟨ĝx̂⟩·t)`` instead: the failure class of fused double backwards.)

Every formula was checked against the exact engine's chain rule of ``layer.forward`` (first
and second derivatives, tests/test_closed_forms.py) and against torch's autograd in float64.

Cotangents and tangents may be ``None`` (a zero contribution: torch's undefined gradients);
``bias`` is not used by any derivative and must be None for rms_norm, as must ``dbias`` and
``ggbias``.  ``eps`` is the number (or SymPy symbol, or exact-engine value) ε; on NumPy an exact
ε (``Fraction``, SymPy rational) is turned into a float.  Wrong shapes raise a one-line
ValueError naming the argument.
"""
from __future__ import annotations

import numbers
import weakref
from fractions import Fraction

import numpy as np

__all__ = ["backward", "jvp", "double_backward", "Layout", "layout"]


# ------------------------------------------------------------------------------ layouts

class Layout:
    """How the closed forms see a layer: an array shape in which every statistics group is the
    set of entries that differ only along ``statistics_axes``, and every weight entry the set
    that differs only outside ``param_axes``.

    ``grouped_shape`` is the input shape except for group_norm, whose channel axis is split
    into (G, C/G).  ``param_broadcast`` is the shape the weight is reshaped to so that it
    broadcasts against the grouped input; ``param_sum_axes`` the axes summed for dweight.
    """

    def __init__(self, layer, grouped_shape, statistics_axes, param_axes):
        self.layer = layer
        self.input_shape = tuple(layer.input_shape)
        self.weight_shape = tuple(layer.weight_shape)
        self.grouped_shape = tuple(grouped_shape)
        self.statistics_axes = tuple(statistics_axes)
        self.param_axes = tuple(param_axes)
        rank = len(self.grouped_shape)
        self.param_broadcast = tuple(self.grouped_shape[a] if a in self.param_axes else 1
                                     for a in range(rank))
        self.param_sum_axes = tuple(a for a in range(rank) if a not in self.param_axes)
        self.centered = bool(layer.centered)
        self.has_bias = layer.bias_shape is not None

    def __repr__(self):
        return (f"<Layout {self.layer.name} grouped {self.grouped_shape}, statistics over "
                f"{self.statistics_axes}, weight along {self.param_axes}>")

    # -- operations on arrays of namespace xp
    def group_mean(self, a, xp):
        return xp.mean(a, axis=self.statistics_axes, keepdims=True)

    def to_grouped(self, a, xp):
        return xp.reshape(a, self.grouped_shape)

    def to_input(self, a, xp):
        return xp.reshape(a, self.input_shape)

    def broadcast_param(self, p, xp):
        return xp.reshape(p, self.param_broadcast)

    def param_sum(self, a, xp):
        """Σ of the grouped array ``a`` over the positions sharing each weight entry."""
        if self.param_sum_axes:
            a = xp.sum(a, axis=self.param_sum_axes, keepdims=True)
        return xp.reshape(a, self.weight_shape)

    # -- the check that this layout is the layer's (its members and param_of)
    def _verify(self):
        layer = self.layer
        n = int(np.prod(self.input_shape))
        flat = np.arange(n)
        grouped = np.unravel_index(flat, self.grouped_shape) if self.grouped_shape else ()
        other = [a for a in range(len(self.grouped_shape)) if a not in self.statistics_axes]
        pshape = tuple(self.grouped_shape[a] for a in self.param_axes)
        group_to_layer, layer_to_group = {}, {}
        for k, idx in enumerate(np.ndindex(*self.input_shape)):
            gi = tuple(int(grouped[a][k]) for a in range(len(self.grouped_shape)))
            mine = tuple(gi[a] for a in other)
            theirs = layer.group_of(idx)
            if group_to_layer.setdefault(mine, theirs) != theirs or \
                    layer_to_group.setdefault(theirs, mine) != mine:
                raise ValueError(f"layer: {layer!r} has statistics groups the closed forms do not "
                                 f"know (entry {idx})")
            p_mine = int(np.ravel_multi_index(tuple(gi[a] for a in self.param_axes), pshape)) if pshape else 0
            p_theirs = int(np.ravel_multi_index(tuple(layer.param_of(idx)), self.weight_shape))
            if p_mine != p_theirs:
                raise ValueError(f"layer: {layer!r} applies its weight in a way the closed forms do "
                                 f"not know (entry {idx})")


_LAYOUTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def layout(layer) -> Layout:
    """The :class:`Layout` of ``layer`` (checked once against ``layer.group_of`` and
    ``layer.param_of``)."""
    try:
        got = _LAYOUTS.get(layer)
    except TypeError:
        got = None
    if got is not None:
        return got
    name = getattr(layer, "name", None)
    shape = tuple(getattr(layer, "input_shape", ()))
    rank = len(shape)
    if name == "group_norm":
        N, C = shape[0], shape[1]
        G = int(layer.groups)
        grouped = (N, G, C // G) + shape[2:]
        lay = Layout(layer, grouped, tuple(range(2, len(grouped))), (1, 2))
    elif name == "batchnorm_channel_first":
        lay = Layout(layer, shape, (1, 2), (0,))
    elif name in ("batch_norm", "instance_norm"):
        lay = Layout(layer, shape, tuple(layer.statistics_axes), (1,))
    elif name in ("layer_norm", "rms_norm"):
        k = rank - len(tuple(layer.normalized_shape))
        lay = Layout(layer, shape, tuple(range(k, rank)), tuple(range(k, rank)))
    else:
        raise ValueError(f"layer: no closed forms for {layer!r} (known: batchnorm_channel_first, "
                         "batch_norm, instance_norm, layer_norm, group_norm, rms_norm)")
    lay._verify()
    try:
        _LAYOUTS[layer] = lay
    except TypeError:
        pass
    return lay


# ------------------------------------------------------------------------------ helpers

def _eps_for(eps, xp):
    """ε as the namespace wants it: NumPy gets a float (a Fraction would make object arrays)."""
    if xp is np:
        if isinstance(eps, (bool, np.bool_)):
            raise ValueError("eps must be a number, got a bool")
        if isinstance(eps, (numbers.Real, Fraction)):
            return float(eps)
        try:
            import sympy
        except ImportError:  # pragma: no cover - sympy is a core dependency
            sympy = None
        if sympy is not None and isinstance(eps, sympy.Basic):
            if eps.is_Number and eps.is_real:
                return float(eps)
            raise ValueError(f"eps: the NumPy namespace needs a number, got the symbolic {eps}")
        raise ValueError(f"eps: the NumPy namespace needs a number, got {type(eps).__name__}")
    return eps


def _array(a, name, shape, xp):
    """``a`` as an array of ``xp`` with the expected shape, or a one-line ValueError."""
    if a is None:
        raise ValueError(f"{name} is required")
    arr = xp.asarray(a)
    if tuple(arr.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(arr.shape)}, the layer expects {tuple(shape)}")
    return arr


def _optional(a, name, shape, xp):
    return None if a is None else _array(a, name, shape, xp)


def _no_bias(layer, value, name):
    if layer.bias_shape is None and value is not None:
        raise ValueError(f"{name} must be None for {layer.name} (it has no bias)")


class _Normalized:
    """x̂ and r of one input, in the grouped layout, and the projection P."""

    def __init__(self, lay: Layout, x, eps, xp):
        self.lay, self.xp = lay, xp
        xg = lay.to_grouped(x, xp)
        if lay.centered:
            d = xg - lay.group_mean(xg, xp)
            stat = lay.group_mean(d * d, xp)
        else:
            d = xg
            stat = lay.group_mean(xg * xg, xp)
        self.r = 1 / xp.sqrt(stat + eps)
        self.xhat = d * self.r

    def mean(self, a):
        return self.lay.group_mean(a, self.xp)

    def centered(self, a):
        """a − c·⟨a⟩."""
        return a - self.mean(a) if self.lay.centered else a

    def project(self, u):
        """P(u) = r·(u − c·⟨u⟩ − x̂·⟨x̂u⟩) = J u = Jᵀu."""
        return self.r * (self.centered(u) - self.xhat * self.mean(self.xhat * u))


# ------------------------------------------------------------------------------ public API

def backward(layer, x, weight, bias, grad_out, eps, xp):
    """``(dx, dweight, dbias)`` = Jᵀ·grad_out of ``layer.forward`` (rms_norm: ``(dx, dweight)``).

    dx = r·(ĝ − c·⟨ĝ⟩ − x̂·⟨ĝx̂⟩) with ĝ = grad_out·w per statistics group; dweight = Σ g·x̂ and
    dbias = Σ g over the positions sharing each entry (module docstring).
    """
    lay = layout(layer)
    _no_bias(layer, bias, "bias")
    eps = _eps_for(eps, xp)
    x = _array(x, "x", lay.input_shape, xp)
    weight = _array(weight, "weight", lay.weight_shape, xp)
    g = lay.to_grouped(_array(grad_out, "grad_out", lay.input_shape, xp), xp)
    nz = _Normalized(lay, x, eps, xp)
    ghat = g * lay.broadcast_param(weight, xp)
    dx = lay.to_input(nz.project(ghat), xp)
    dweight = lay.param_sum(g * nz.xhat, xp)
    if not lay.has_bias:
        return dx, dweight
    return dx, dweight, lay.param_sum(g, xp)


def jvp(layer, x, weight, bias, dx, dweight, dbias, eps, xp):
    """``dy`` = J·(dx, dweight, dbias) of ``layer.forward``: w·P(dx) + dweight·x̂ + dbias
    (each broadcast; a None tangent contributes 0)."""
    lay = layout(layer)
    _no_bias(layer, bias, "bias")
    _no_bias(layer, dbias, "dbias")
    eps = _eps_for(eps, xp)
    x = _array(x, "x", lay.input_shape, xp)
    weight = _array(weight, "weight", lay.weight_shape, xp)
    dx = _optional(dx, "dx", lay.input_shape, xp)
    dweight = _optional(dweight, "dweight", lay.weight_shape, xp)
    dbias = _optional(dbias, "dbias", lay.weight_shape, xp)
    nz = _Normalized(lay, x, eps, xp)
    dy = nz.xhat * 0
    if dx is not None:
        dy = dy + lay.broadcast_param(weight, xp) * nz.project(lay.to_grouped(dx, xp))
    if dweight is not None:
        dy = dy + lay.broadcast_param(dweight, xp) * nz.xhat
    if dbias is not None:
        dy = dy + lay.broadcast_param(dbias, xp)
    return lay.to_input(dy, xp)


def double_backward(layer, x, weight, grad_out, ggx, ggweight, ggbias, eps, xp):
    """``(gx, gweight, ggrad_out)``: the gradient of Φ = ⟨dx, ggx⟩ + ⟨dweight, ggweight⟩ +
    ⟨dbias, ggbias⟩ with respect to (x, weight, grad_out), (dx, dweight, dbias) the backward.

    Per statistics group, with ĝ = g·w, t = ggx, a = g·ggweight (broadcast), B = ggbias:

    * ``gx = r·(a − c⟨a⟩ − x̂⟨x̂a⟩) − r²·[x̂·(⟨ĝt⟩ − c⟨ĝ⟩⟨t⟩ − 3⟨ĝx̂⟩⟨x̂t⟩)
      + ⟨ĝx̂⟩·(t − c⟨t⟩) + ⟨x̂t⟩·(ĝ − c⟨ĝ⟩)]``;
    * ``gweight = Σ over the positions sharing a weight entry of g·r·(t − c⟨t⟩ − x̂⟨x̂t⟩)``;
    * ``ggrad_out = w·r·(t − c⟨t⟩ − x̂⟨x̂t⟩) + ggweight·x̂ + B`` (the JVP along the cotangent).

    A None cotangent contributes 0; ggbias must be None for rms_norm.
    """
    lay = layout(layer)
    _no_bias(layer, ggbias, "ggbias")
    eps = _eps_for(eps, xp)
    x = _array(x, "x", lay.input_shape, xp)
    weight = _array(weight, "weight", lay.weight_shape, xp)
    g = lay.to_grouped(_array(grad_out, "grad_out", lay.input_shape, xp), xp)
    t = _optional(ggx, "ggx", lay.input_shape, xp)
    ggweight = _optional(ggweight, "ggweight", lay.weight_shape, xp)
    ggbias = _optional(ggbias, "ggbias", lay.weight_shape, xp)
    nz = _Normalized(lay, x, eps, xp)
    r, xhat, mean = nz.r, nz.xhat, nz.mean
    w = lay.broadcast_param(weight, xp)
    ghat = g * w
    zero = xhat * 0
    gx, gweight, ggrad_out = zero, None, zero
    if t is not None:
        t = lay.to_grouped(t, xp)
        pt = nz.project(t)
        m_gx, m_xt = mean(ghat * xhat), mean(xhat * t)
        inner = mean(ghat * t) - (mean(ghat) * mean(t) if lay.centered else 0) - 3 * m_gx * m_xt
        gx = gx - r * r * (xhat * inner + m_gx * nz.centered(t) + m_xt * nz.centered(ghat))
        gweight = lay.param_sum(g * pt, xp)
        ggrad_out = ggrad_out + w * pt
    if ggweight is not None:
        W = lay.broadcast_param(ggweight, xp)
        gx = gx + nz.project(g * W)
        ggrad_out = ggrad_out + W * xhat
    if ggbias is not None:
        ggrad_out = ggrad_out + lay.broadcast_param(ggbias, xp)
    if gweight is None:
        gweight = lay.param_sum(zero, xp)
    return lay.to_input(gx, xp), gweight, lay.to_input(ggrad_out, xp)
