"""Hand-written forwards and backwards of every normalization layer, right and wrong, each in its
layer's own layout (``symbolic_bn.layers``; no transposing to C×H×W).

    forward(x, weight, bias, eps[, xp]) -> y
    backward(x, weight, bias, grad_out, eps[, xp]) -> (dx, dweight, dbias)     rms_norm: (dx, dweight)

:data:`CATALOG` maps a layer name to a :class:`LayerCatalog`: the layer the entries are written
for (small shapes: N ≥ 2 for batch_norm, a 3-D input for layer_norm, G ∉ {1, C} for group_norm,
ε symbolic) and its entries.  Each :class:`Entry` says whether it is correct and, when it is not,
which bug it has -- the bugs of public kernels and course code: statistics over the wrong axes, an
N − 1 variance, a missing term, a per-sample statistic where a per-channel one belongs, an
inverted standard deviation, a term subtracted twice, the weight applied per group instead of
per channel, ...  The correct ones are written differently on purpose: plain NumPy (run through
NumPy's override protocols, no ``xp``), against ``xp``, staged with float constants like ``1./M``
(course style), and with ``einsum`` / ``@`` reductions.

tests/test_layer_catalog.py checks every entry exactly (``check_forward/check_backward(fn,
layer=L)``: correct ones 'proved', wrong ones 'failed' with a counterexample it re-confirms) and
numerically (``crosscheck(..., layer=L)``).  These are this project's own implementations, written
from the formulas in ``symbolic_bn/graphs/closed_forms.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from symbolic_bn import layers


@dataclass
class Entry:
    name: str
    fn: Callable
    role: str            # 'forward' or 'backward'
    correct: bool
    bug: str = ""        # what is wrong ('' for a correct one)


@dataclass
class LayerCatalog:
    make: Callable       # eps -> Layer (eps None: symbolic)
    entries: list = field(default_factory=list)

    def layer(self, eps=None):
        return self.make(eps)

    def select(self, role, correct):
        return [e for e in self.entries if e.role == role and e.correct is correct]


def _ok(name, role):
    def register(fn):
        _CURRENT.entries.append(Entry(name, fn, role, True))
        return fn
    return register


def _bug(name, role, bug):
    def register(fn):
        _CURRENT.entries.append(Entry(name, fn, role, False, bug))
        return fn
    return register


# ============================================================================ batch_norm
# x (N, C, *spatial); one statistics group per channel over N and the spatial axes.

BATCH_NORM = LayerCatalog(lambda eps: layers.batch_norm((2, 3, 4), eps=eps))
_CURRENT = BATCH_NORM


def _bn_axes(x):
    return (0,) + tuple(range(2, x.ndim))


def _bn_param(p, x):
    return p.reshape((1, -1) + (1,) * (x.ndim - 2))


def _bn_backward(x, weight, grad_out, eps, *, axes=None, ddof=0, drop_mean=False, drop_proj=False,
                 invert=False, dweight_raw=False, twice=False):
    """A per-channel backward with one defect switched on (the wrong backwards below)."""
    axes = _bn_axes(x) if axes is None else axes
    m = np.prod([x.shape[a] for a in axes])
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).sum(axis=axes, keepdims=True) / (m - ddof)
    inv = np.sqrt(var + eps) if invert else 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * inv
    gh = grad_out * _bn_param(weight, x)
    dx = gh
    if not drop_mean:
        dx = dx - gh.mean(axis=axes, keepdims=True)
    if not drop_proj:
        proj = xhat * (gh * xhat).mean(axis=axes, keepdims=True)
        dx = dx - (2 * proj if twice else proj)
    dx = dx * inv
    paxes = _bn_axes(x)
    dweight = (grad_out * ((x - mu) if dweight_raw else xhat)).sum(axis=paxes)
    return dx, dweight, grad_out.sum(axis=paxes)


@_ok("numpy_mean_keepdims", "backward")
def bn_backward_numpy(x, weight, bias, grad_out, eps):
    """Plain NumPy, keepdims reductions over (0, 2, ...)."""
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    inv = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * inv
    gh = grad_out * weight.reshape(shape)
    dx = inv * (gh - gh.mean(axis=axes, keepdims=True)
                - xhat * (gh * xhat).mean(axis=axes, keepdims=True))
    return dx, (grad_out * xhat).sum(axis=axes), grad_out.sum(axis=axes)


@_ok("xp_namespace", "backward")
def bn_backward_xp(x, weight, bias, grad_out, eps, xp):
    """Against the namespace ``xp``: the (r/M)(M ĝ − Σĝ − x̂ Σĝx̂) form."""
    axes = (0,) + tuple(range(2, x.ndim))
    m = 1
    for a in axes:
        m *= x.shape[a]
    w = xp.reshape(weight, (1, -1) + (1,) * (x.ndim - 2))
    mu = xp.mean(x, axis=axes, keepdims=True)
    d = x - mu
    r = 1 / xp.sqrt(xp.mean(d * d, axis=axes, keepdims=True) + eps)
    xhat = d * r
    gh = grad_out * w
    s1 = xp.sum(gh, axis=axes, keepdims=True)
    s2 = xp.sum(gh * xhat, axis=axes, keepdims=True)
    dx = (r / m) * (m * gh - s1 - xhat * s2)
    return dx, xp.sum(grad_out * xhat, axis=axes), xp.sum(grad_out, axis=axes)


@_ok("course_style_staged_1_over_M", "backward")
def bn_backward_staged(x, weight, bias, grad_out, eps):
    """cs231n-style staged backprop on the (M, C) matrix (channels as features), with 1./M."""
    C = x.shape[1]
    X = np.moveaxis(x, 1, -1).reshape(-1, C)
    G = np.moveaxis(grad_out, 1, -1).reshape(-1, C)
    M = X.shape[0]
    mu = 1. / M * np.sum(X, axis=0)
    xmu = X - mu
    var = 1. / M * np.sum(xmu ** 2, axis=0)
    sqrtvar = np.sqrt(var + eps)
    ivar = 1. / sqrtvar
    xhat = xmu * ivar
    dxhat = G * weight
    divar = np.sum(dxhat * xmu, axis=0)
    dxmu1 = dxhat * ivar
    dsqrtvar = -1. / (sqrtvar ** 2) * divar
    dvar = 0.5 * 1. / np.sqrt(var + eps) * dsqrtvar
    dxmu2 = 2 * xmu * (1. / M * np.ones((M, C)) * dvar)
    dx1 = dxmu1 + dxmu2
    dmu = -1 * np.sum(dx1, axis=0)
    dX = dx1 + 1. / M * np.ones((M, C)) * dmu
    moved = dX.reshape(np.moveaxis(x, 1, -1).shape)
    return np.moveaxis(moved, -1, 1), np.sum(G * xhat, axis=0), np.sum(G, axis=0)


@_ok("einsum_reductions", "backward")
def bn_backward_einsum(x, weight, bias, grad_out, eps):
    """Channel sums by einsum over the flattened (N, C, S) view."""
    N, C = x.shape[0], x.shape[1]
    X = x.reshape(N, C, -1)
    G = grad_out.reshape(N, C, -1)
    m = N * X.shape[2]
    mu = np.einsum("ncs->c", X) / m
    d = X - mu[None, :, None]
    var = np.einsum("ncs,ncs->c", d, d) / m
    r = 1 / np.sqrt(var + eps)
    xhat = d * r[None, :, None]
    dbias = np.einsum("ncs->c", G)
    dweight = np.einsum("ncs,ncs->c", G, xhat)
    dx = (weight * r / m)[None, :, None] * (m * G - dbias[None, :, None] - xhat * dweight[None, :, None])
    return dx.reshape(x.shape), dweight, dbias


@_bug("per_sample_statistics", "backward", "statistics per (n, c) over the spatial axes "
      "(InstanceNorm's) where BatchNorm's per-channel statistics over N and spatial belong")
def bn_backward_per_sample(x, weight, bias, grad_out, eps):
    return _bn_backward(x, weight, grad_out, eps, axes=tuple(range(2, x.ndim)))


@_bug("batch_axis_only", "backward", "statistics over the batch axis only (spatial axes left out)")
def bn_backward_batch_axis_only(x, weight, bias, grad_out, eps):
    return _bn_backward(x, weight, grad_out, eps, axes=(0,))


@_bug("bessel_variance", "backward", "N − 1 (Bessel-corrected) variance")
def bn_backward_bessel(x, weight, bias, grad_out, eps):
    return _bn_backward(x, weight, grad_out, eps, ddof=1)


@_bug("missing_projection_term", "backward", "dx misses the −x̂·⟨ĝx̂⟩ term")
def bn_backward_no_projection(x, weight, bias, grad_out, eps):
    return _bn_backward(x, weight, grad_out, eps, drop_proj=True)


@_bug("missing_mean_term", "backward", "dx misses the −⟨ĝ⟩ term")
def bn_backward_no_mean(x, weight, bias, grad_out, eps):
    return _bn_backward(x, weight, grad_out, eps, drop_mean=True)


@_bug("inverted_std", "backward", "multiplies by sqrt(var + ε) (an already-inverted std inverted "
      "again); right only where var + ε = 1")
def bn_backward_inverted_std(x, weight, bias, grad_out, eps):
    return _bn_backward(x, weight, grad_out, eps, invert=True)


@_bug("projection_subtracted_twice", "backward", "the fused kernel subtracts x̂·⟨ĝx̂⟩ twice")
def bn_backward_twice(x, weight, bias, grad_out, eps):
    return _bn_backward(x, weight, grad_out, eps, twice=True)


@_bug("dweight_unnormalized", "backward", "dweight = Σ g·(x − μ): the 1/std is missing")
def bn_backward_dweight_raw(x, weight, bias, grad_out, eps):
    return _bn_backward(x, weight, grad_out, eps, dweight_raw=True)


@_ok("numpy_np_var", "forward")
def bn_forward_numpy(x, weight, bias, eps):
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mu = np.mean(x, axis=axes, keepdims=True)
    return (x - mu) / np.sqrt(np.var(x, axis=axes, keepdims=True) + eps) * weight.reshape(shape) \
        + bias.reshape(shape)


@_ok("xp_scale_shift", "forward")
def bn_forward_xp(x, weight, bias, eps, xp):
    """The fused scale/shift form y = x·(w r) + (b − μ w r), as PyTorch evaluates y."""
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mu = xp.mean(x, axis=axes, keepdims=True)
    r = 1 / xp.sqrt(xp.mean((x - mu) * (x - mu), axis=axes, keepdims=True) + eps)
    a = xp.reshape(weight, shape) * r
    return x * a + (xp.reshape(bias, shape) - mu * a)


@_bug("bessel_variance", "forward", "N − 1 (Bessel-corrected) variance")
def bn_forward_bessel(x, weight, bias, eps):
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mu = np.mean(x, axis=axes, keepdims=True)
    var = np.var(x, axis=axes, keepdims=True, ddof=1)
    return (x - mu) / np.sqrt(var + eps) * weight.reshape(shape) + bias.reshape(shape)


@_bug("per_sample_statistics", "forward", "InstanceNorm's per-(n, c) statistics")
def bn_forward_per_sample(x, weight, bias, eps):
    axes = tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mu = np.mean(x, axis=axes, keepdims=True)
    return (x - mu) / np.sqrt(np.var(x, axis=axes, keepdims=True) + eps) * weight.reshape(shape) \
        + bias.reshape(shape)


@_bug("eps_outside_sqrt", "forward", "divides by sqrt(var) + ε instead of sqrt(var + ε)")
def bn_forward_eps_outside(x, weight, bias, eps):
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mu = np.mean(x, axis=axes, keepdims=True)
    return (x - mu) / (np.sqrt(np.var(x, axis=axes, keepdims=True)) + eps) * weight.reshape(shape) \
        + bias.reshape(shape)


# ============================================================================ instance_norm
# x (N, C, *spatial); one statistics group per (n, c) over the spatial axes; weight per channel.

INSTANCE_NORM = LayerCatalog(lambda eps: layers.instance_norm((2, 3, 4), eps=eps))
_CURRENT = INSTANCE_NORM


def _in_backward(x, weight, grad_out, eps, *, axes=None, ddof=0, drop_proj=False, no_weight=False,
                 invert=False, plus=False):
    axes = tuple(range(2, x.ndim)) if axes is None else axes
    m = np.prod([x.shape[a] for a in axes])
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).sum(axis=axes, keepdims=True) / (m - ddof)
    inv = np.sqrt(var + eps) if invert else 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * inv
    gh = grad_out if no_weight else grad_out * _bn_param(weight, x)
    dx = gh - gh.mean(axis=axes, keepdims=True)
    if not drop_proj:
        proj = xhat * (gh * xhat).mean(axis=axes, keepdims=True)
        dx = dx + proj if plus else dx - proj
    paxes = _bn_axes(x)
    return dx * inv, (grad_out * xhat).sum(axis=paxes), grad_out.sum(axis=paxes)


@_ok("numpy_mean_keepdims", "backward")
def in_backward_numpy(x, weight, bias, grad_out, eps):
    axes = tuple(range(2, x.ndim))
    paxes = (0,) + axes
    mu = x.mean(axis=axes, keepdims=True)
    inv = 1.0 / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    xhat = (x - mu) * inv
    gh = grad_out * weight.reshape((1, -1) + (1,) * (x.ndim - 2))
    dx = inv * (gh - gh.mean(axis=axes, keepdims=True) - xhat * (gh * xhat).mean(axis=axes, keepdims=True))
    return dx, (grad_out * xhat).sum(axis=paxes), grad_out.sum(axis=paxes)


@_ok("xp_namespace", "backward")
def in_backward_xp(x, weight, bias, grad_out, eps, xp):
    axes = tuple(range(2, x.ndim))
    m = 1
    for a in axes:
        m *= x.shape[a]
    w = xp.reshape(weight, (1, -1) + (1,) * (x.ndim - 2))
    d = x - xp.mean(x, axis=axes, keepdims=True)
    r = 1 / xp.sqrt(xp.sum(d * d, axis=axes, keepdims=True) / m + eps)
    xhat = d * r
    gh = grad_out * w
    dx = (r / m) * (m * gh - xp.sum(gh, axis=axes, keepdims=True)
                    - xhat * xp.sum(gh * xhat, axis=axes, keepdims=True))
    return dx, xp.sum(xp.sum(grad_out * xhat, axis=axes), axis=0), xp.sum(xp.sum(grad_out, axis=axes), axis=0)


@_ok("course_style_rows_1_over_S", "backward")
def in_backward_rows(x, weight, bias, grad_out, eps):
    """Each (n, c) as a row of an (N·C, S) matrix, staged backprop with 1./S."""
    N, C = x.shape[0], x.shape[1]
    X = x.reshape(N * C, -1)
    G = grad_out.reshape(N * C, -1)
    S = X.shape[1]
    w = np.tile(weight, N)[:, None]
    mu = 1. / S * X.sum(axis=1, keepdims=True)
    xmu = X - mu
    var = 1. / S * (xmu ** 2).sum(axis=1, keepdims=True)
    ivar = 1. / np.sqrt(var + eps)
    xhat = xmu * ivar
    dxhat = G * w
    dvar = -0.5 * (dxhat * xmu).sum(axis=1, keepdims=True) * ivar ** 3
    dmu = -(dxhat * ivar).sum(axis=1, keepdims=True) - 2. / S * dvar * xmu.sum(axis=1, keepdims=True)
    dX = dxhat * ivar + 2. / S * dvar * xmu + 1. / S * dmu
    dweight = (G * xhat).reshape(N, C, S).sum(axis=(0, 2))
    dbias = G.reshape(N, C, S).sum(axis=(0, 2))
    return dX.reshape(x.shape), dweight, dbias


@_ok("matmul_reductions", "backward")
def in_backward_matmul(x, weight, bias, grad_out, eps):
    """Sums over the spatial positions as products with a ones vector."""
    N, C = x.shape[0], x.shape[1]
    X = x.reshape(N, C, -1)
    G = grad_out.reshape(N, C, -1)
    S = X.shape[2]
    ones = np.ones(S)
    mu = (X @ ones) / S
    d = X - mu[..., None]
    r = 1 / np.sqrt(((d * d) @ ones) / S + eps)
    xhat = d * r[..., None]
    gh = G * weight[None, :, None]
    dx = r[..., None] * (gh - ((gh @ ones) / S)[..., None] - xhat * (((gh * xhat) @ ones) / S)[..., None])
    return dx.reshape(x.shape), ((G * xhat) @ ones).sum(axis=0), (G @ ones).sum(axis=0)


@_bug("batch_statistics", "backward", "BatchNorm's per-channel statistics over N and spatial "
      "where per-sample (n, c) ones belong")
def in_backward_batch_stats(x, weight, bias, grad_out, eps):
    return _in_backward(x, weight, grad_out, eps, axes=_bn_axes(x))


@_bug("channel_axis_statistics", "backward", "statistics over the channel axis (1) instead of "
      "the spatial axes")
def in_backward_channel_axis(x, weight, bias, grad_out, eps):
    return _in_backward(x, weight, grad_out, eps, axes=(1,))


@_bug("bessel_variance", "backward", "N − 1 (Bessel-corrected) variance")
def in_backward_bessel(x, weight, bias, grad_out, eps):
    return _in_backward(x, weight, grad_out, eps, ddof=1)


@_bug("missing_projection_term", "backward", "dx misses the −x̂·⟨ĝx̂⟩ term")
def in_backward_no_projection(x, weight, bias, grad_out, eps):
    return _in_backward(x, weight, grad_out, eps, drop_proj=True)


@_bug("weight_not_applied", "backward", "dx uses grad_out where grad_out·weight belongs")
def in_backward_no_weight(x, weight, bias, grad_out, eps):
    return _in_backward(x, weight, grad_out, eps, no_weight=True)


@_bug("inverted_std", "backward", "multiplies by sqrt(var + ε) instead of dividing")
def in_backward_inverted_std(x, weight, bias, grad_out, eps):
    return _in_backward(x, weight, grad_out, eps, invert=True)


@_bug("projection_sign", "backward", "x̂·⟨ĝx̂⟩ added instead of subtracted")
def in_backward_plus(x, weight, bias, grad_out, eps):
    return _in_backward(x, weight, grad_out, eps, plus=True)


@_ok("numpy", "forward")
def in_forward_numpy(x, weight, bias, eps):
    axes = tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mu = x.mean(axis=axes, keepdims=True)
    return weight.reshape(shape) * (x - mu) / np.sqrt(((x - mu) ** 2).mean(axis=axes, keepdims=True) + eps) \
        + bias.reshape(shape)


@_ok("xp_namespace", "forward")
def in_forward_xp(x, weight, bias, eps, xp):
    axes = tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    d = x - xp.mean(x, axis=axes, keepdims=True)
    return d / xp.sqrt(xp.mean(d * d, axis=axes, keepdims=True) + eps) * xp.reshape(weight, shape) \
        + xp.reshape(bias, shape)


@_bug("batch_statistics", "forward", "BatchNorm's per-channel statistics")
def in_forward_batch_stats(x, weight, bias, eps):
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mu = x.mean(axis=axes, keepdims=True)
    return weight.reshape(shape) * (x - mu) / np.sqrt(((x - mu) ** 2).mean(axis=axes, keepdims=True) + eps) \
        + bias.reshape(shape)


@_bug("bessel_variance", "forward", "N − 1 (Bessel-corrected) variance")
def in_forward_bessel(x, weight, bias, eps):
    axes = tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mu = x.mean(axis=axes, keepdims=True)
    return weight.reshape(shape) * (x - mu) / np.sqrt(x.var(axis=axes, keepdims=True, ddof=1) + eps) \
        + bias.reshape(shape)


# ============================================================================ layer_norm
# x (2, 3, 4), normalized_shape (3, 4): one statistics group per leading index; elementwise
# weight and bias of shape (3, 4).

LAYER_NORM = LayerCatalog(lambda eps: layers.layer_norm((2, 3, 4), (3, 4), eps=eps))
_CURRENT = LAYER_NORM
LN_AXES = (-2, -1)


def _ln_backward(x, weight, grad_out, eps, *, axes=LN_AXES, ddof=0, drop_mean=False, no_weight=False,
                 invert=False, dweight_from_x=False, plus=False):
    m = np.prod([x.shape[a] for a in axes])
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).sum(axis=axes, keepdims=True) / (m - ddof)
    inv = np.sqrt(var + eps) if invert else 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * inv
    gh = grad_out if no_weight else grad_out * weight
    proj = xhat * (gh * xhat).mean(axis=axes, keepdims=True)
    dx = gh + proj if plus else gh - proj
    if not drop_mean:
        dx = dx - gh.mean(axis=axes, keepdims=True)
    return dx * inv, (grad_out * (x if dweight_from_x else xhat)).sum(axis=0), grad_out.sum(axis=0)


@_ok("numpy_mean_keepdims", "backward")
def ln_backward_numpy(x, weight, bias, grad_out, eps):
    axes = (-2, -1)
    mu = x.mean(axis=axes, keepdims=True)
    inv = 1.0 / np.sqrt(((x - mu) ** 2).mean(axis=axes, keepdims=True) + eps)
    xhat = (x - mu) * inv
    gh = grad_out * weight
    dx = inv * (gh - gh.mean(axis=axes, keepdims=True) - xhat * (gh * xhat).mean(axis=axes, keepdims=True))
    return dx, (grad_out * xhat).sum(axis=0), grad_out.sum(axis=0)


@_ok("xp_namespace", "backward")
def ln_backward_xp(x, weight, bias, grad_out, eps, xp):
    axes = (1, 2)
    m = x.shape[1] * x.shape[2]
    d = x - xp.mean(x, axis=axes, keepdims=True)
    r = 1 / xp.sqrt(xp.mean(d * d, axis=axes, keepdims=True) + eps)
    xhat = d * r
    gh = grad_out * weight
    dx = (r / m) * (m * gh - xp.sum(gh, axis=axes, keepdims=True)
                    - xhat * xp.sum(gh * xhat, axis=axes, keepdims=True))
    return dx, xp.sum(grad_out * xhat, axis=0), xp.sum(grad_out, axis=0)


@_ok("rows_1_over_D", "backward")
def ln_backward_rows(x, weight, bias, grad_out, eps):
    """Flattened to (rows, D) with 1./D float constants, torch-kernel style dx = a·ĝ + b·x + c."""
    lead = x.shape[0]
    X = x.reshape(lead, -1)
    G = grad_out.reshape(lead, -1)
    D = X.shape[1]
    w = weight.reshape(-1)
    mu = 1. / D * X.sum(axis=1, keepdims=True)
    rstd = 1. / np.sqrt(1. / D * ((X - mu) ** 2).sum(axis=1, keepdims=True) + eps)
    gh = G * w
    ds = (gh * X).sum(axis=1, keepdims=True)
    db = gh.sum(axis=1, keepdims=True)
    b = (db * mu - ds) * rstd ** 3 * (1. / D)
    c = -b * mu - db * rstd * (1. / D)
    dX = rstd * gh + b * X + c
    xhat = (X - mu) * rstd
    return dX.reshape(x.shape), (G * xhat).sum(axis=0).reshape(weight.shape), G.sum(axis=0).reshape(weight.shape)


@_ok("einsum_reductions", "backward")
def ln_backward_einsum(x, weight, bias, grad_out, eps):
    D = x.shape[1] * x.shape[2]
    mu = np.einsum("nij->n", x) / D
    d = x - mu[:, None, None]
    r = 1 / np.sqrt(np.einsum("nij,nij->n", d, d) / D + eps)
    xhat = d * r[:, None, None]
    gh = grad_out * weight[None]
    s1 = np.einsum("nij->n", gh)
    s2 = np.einsum("nij,nij->n", gh, xhat)
    dx = (r / D)[:, None, None] * (D * gh - s1[:, None, None] - xhat * s2[:, None, None])
    return dx, np.einsum("nij,nij->ij", grad_out, xhat), np.einsum("nij->ij", grad_out)


@_bug("last_axis_statistics", "backward", "statistics over the last axis only (code written for "
      "a 2-D input / a one-dimensional normalized_shape)")
def ln_backward_last_axis(x, weight, bias, grad_out, eps):
    return _ln_backward(x, weight, grad_out, eps, axes=(-1,))


@_bug("bessel_variance", "backward", "N − 1 (Bessel-corrected) variance")
def ln_backward_bessel(x, weight, bias, grad_out, eps):
    return _ln_backward(x, weight, grad_out, eps, ddof=1)


@_bug("missing_mean_term", "backward", "dx misses the −⟨ĝ⟩ term")
def ln_backward_no_mean(x, weight, bias, grad_out, eps):
    return _ln_backward(x, weight, grad_out, eps, drop_mean=True)


@_bug("weight_not_applied", "backward", "dx uses grad_out where grad_out·weight belongs")
def ln_backward_no_weight(x, weight, bias, grad_out, eps):
    return _ln_backward(x, weight, grad_out, eps, no_weight=True)


@_bug("inverted_std", "backward", "multiplies by sqrt(var + ε) instead of dividing")
def ln_backward_inverted_std(x, weight, bias, grad_out, eps):
    return _ln_backward(x, weight, grad_out, eps, invert=True)


@_bug("dweight_from_x", "backward", "dweight = Σ g·x (x̂ replaced by the raw input)")
def ln_backward_dweight_from_x(x, weight, bias, grad_out, eps):
    return _ln_backward(x, weight, grad_out, eps, dweight_from_x=True)


@_bug("projection_sign", "backward", "x̂·⟨ĝx̂⟩ added instead of subtracted")
def ln_backward_plus(x, weight, bias, grad_out, eps):
    return _ln_backward(x, weight, grad_out, eps, plus=True)


@_ok("numpy_np_var", "forward")
def ln_forward_numpy(x, weight, bias, eps):
    mu = x.mean(axis=(-2, -1), keepdims=True)
    return (x - mu) / np.sqrt(x.var(axis=(-2, -1), keepdims=True) + eps) * weight + bias


@_ok("xp_rows", "forward")
def ln_forward_xp(x, weight, bias, eps, xp):
    X = xp.reshape(x, (x.shape[0], -1))
    d = X - xp.mean(X, axis=1, keepdims=True)
    xhat = d / xp.sqrt(xp.mean(d * d, axis=1, keepdims=True) + eps)
    return xp.reshape(xhat, x.shape) * weight + bias


@_bug("last_axis_statistics", "forward", "statistics over the last axis only")
def ln_forward_last_axis(x, weight, bias, eps):
    mu = x.mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(x.var(axis=-1, keepdims=True) + eps) * weight + bias


@_bug("eps_outside_sqrt", "forward", "divides by sqrt(var) + ε")
def ln_forward_eps_outside(x, weight, bias, eps):
    mu = x.mean(axis=(-2, -1), keepdims=True)
    return (x - mu) / (np.sqrt(x.var(axis=(-2, -1), keepdims=True)) + eps) * weight + bias


# ============================================================================ group_norm
# x (2, 4, 3), G = 2: group g holds channels 2g, 2g + 1 (contiguous, as torch); statistics per
# (n, g) over those channels and the spatial axes; weight and bias per channel.

GROUPS = 2
GROUP_NORM = LayerCatalog(lambda eps: layers.group_norm((2, 4, 3), GROUPS, eps=eps))
_CURRENT = GROUP_NORM


def _gn_backward(x, weight, grad_out, eps, *, interleaved=False, per_channel=False, ddof=0,
                 drop_proj=False, group_weight=False, invert=False, drop_mean=False):
    N, C = x.shape[0], x.shape[1]
    G = C if per_channel else GROUPS
    if interleaved:   # channel c in group c % G: (N, C/G, G, ...) then groups on axis 2
        xg = np.moveaxis(x.reshape((N, C // G, G) + x.shape[2:]), 2, 1)
        gg = np.moveaxis(grad_out.reshape((N, C // G, G) + x.shape[2:]), 2, 1)
        wg = np.moveaxis(weight.reshape(C // G, G), 1, 0)
    else:
        xg = x.reshape((N, G, C // G) + x.shape[2:])
        gg = grad_out.reshape((N, G, C // G) + x.shape[2:])
        wg = weight.reshape(G, C // G)
    if group_weight:  # one weight per group (its first channel's)
        wg = wg[:, :1] * np.ones_like(wg)
    wg = wg.reshape((1, G, C // G) + (1,) * (x.ndim - 2))
    axes = tuple(range(2, xg.ndim))
    m = np.prod([xg.shape[a] for a in axes])
    mu = xg.mean(axis=axes, keepdims=True)
    var = ((xg - mu) ** 2).sum(axis=axes, keepdims=True) / (m - ddof)
    inv = np.sqrt(var + eps) if invert else 1.0 / np.sqrt(var + eps)
    xhat = (xg - mu) * inv
    gh = gg * wg
    dx = gh if drop_mean else gh - gh.mean(axis=axes, keepdims=True)
    if not drop_proj:
        dx = dx - xhat * (gh * xhat).mean(axis=axes, keepdims=True)
    dx = dx * inv
    if interleaved:
        dx = np.moveaxis(dx, 1, 2)
        xhat = np.moveaxis(xhat, 1, 2)
    dx = dx.reshape(x.shape)
    xhat = xhat.reshape(x.shape)
    paxes = _bn_axes(x)
    return dx, (grad_out * xhat).sum(axis=paxes), grad_out.sum(axis=paxes)


@_ok("numpy_grouped_view", "backward")
def gn_backward_numpy(x, weight, bias, grad_out, eps):
    N, C = x.shape[0], x.shape[1]
    G = GROUPS
    shape = (N, G, C // G) + x.shape[2:]
    xg, g = x.reshape(shape), grad_out.reshape(shape)
    axes = tuple(range(2, xg.ndim))
    mu = xg.mean(axis=axes, keepdims=True)
    inv = 1.0 / np.sqrt(((xg - mu) ** 2).mean(axis=axes, keepdims=True) + eps)
    xhat = (xg - mu) * inv
    gh = g * weight.reshape((1, G, C // G) + (1,) * (x.ndim - 2))
    dx = inv * (gh - gh.mean(axis=axes, keepdims=True) - xhat * (gh * xhat).mean(axis=axes, keepdims=True))
    paxes = (0,) + tuple(range(2, x.ndim))
    xhat = xhat.reshape(x.shape)
    return dx.reshape(x.shape), (grad_out * xhat).sum(axis=paxes), grad_out.sum(axis=paxes)


@_ok("xp_namespace", "backward")
def gn_backward_xp(x, weight, bias, grad_out, eps, xp):
    N, C = x.shape[0], x.shape[1]
    G = GROUPS
    shape = (N, G, C // G) + tuple(x.shape[2:])
    xg = xp.reshape(x, shape)
    gg = xp.reshape(grad_out, shape)
    axes = tuple(range(2, len(shape)))
    m = 1
    for a in axes:
        m *= shape[a]
    d = xg - xp.mean(xg, axis=axes, keepdims=True)
    r = 1 / xp.sqrt(xp.mean(d * d, axis=axes, keepdims=True) + eps)
    xhat = d * r
    gh = gg * xp.reshape(weight, (1, G, C // G) + (1,) * (len(shape) - 3))
    dx = (r / m) * (m * gh - xp.sum(gh, axis=axes, keepdims=True)
                    - xhat * xp.sum(gh * xhat, axis=axes, keepdims=True))
    paxes = (0,) + tuple(range(2, x.ndim))
    return (xp.reshape(dx, x.shape), xp.sum(grad_out * xp.reshape(xhat, x.shape), axis=paxes),
            xp.sum(grad_out, axis=paxes))


@_ok("rows_1_over_M_python_loop", "backward")
def gn_backward_rows(x, weight, bias, grad_out, eps):
    """A Python loop over the (n, g) rows of an (N·G, M) matrix, staged with 1./M."""
    N, C = x.shape[0], x.shape[1]
    G = GROUPS
    per = C // G
    X = x.reshape(N * G, -1)
    Gr = grad_out.reshape(N * G, -1)
    M = X.shape[1]
    # the weight of each entry of a row: channel-major, each channel repeated over the spatial size
    w_row = np.repeat(weight.reshape(G, per), M // per, axis=1)
    rows = []
    xhats = []
    for k in range(N * G):
        xr, gr, wr = X[k], Gr[k], w_row[k % G]
        mu = 1. / M * xr.sum()
        xmu = xr - mu
        ivar = 1. / np.sqrt(1. / M * (xmu * xmu).sum() + eps)
        xhat = xmu * ivar
        gh = gr * wr
        rows.append(ivar * (gh - 1. / M * gh.sum() - xhat * (1. / M * (gh * xhat).sum())))
        xhats.append(xhat)
    dx = np.stack(rows).reshape(x.shape)
    xhat = np.stack(xhats).reshape(x.shape)
    paxes = (0,) + tuple(range(2, x.ndim))
    return dx, (grad_out * xhat).sum(axis=paxes), grad_out.sum(axis=paxes)


@_ok("einsum_reductions", "backward")
def gn_backward_einsum(x, weight, bias, grad_out, eps):
    N, C = x.shape[0], x.shape[1]
    G = GROUPS
    per = C // G
    xg = x.reshape(N, G, per, -1)
    gg = grad_out.reshape(N, G, per, -1)
    m = per * xg.shape[3]
    mu = np.einsum("ngcs->ng", xg) / m
    d = xg - mu[:, :, None, None]
    r = 1 / np.sqrt(np.einsum("ngcs,ngcs->ng", d, d) / m + eps)
    xhat = d * r[:, :, None, None]
    gh = gg * weight.reshape(1, G, per, 1)
    s1 = np.einsum("ngcs->ng", gh)
    s2 = np.einsum("ngcs,ngcs->ng", gh, xhat)
    dx = (r / m)[:, :, None, None] * (m * gh - s1[:, :, None, None] - xhat * s2[:, :, None, None])
    dweight = np.einsum("ngcs,ngcs->gc", gg, xhat).reshape(C)
    dbias = np.einsum("ngcs->gc", gg).reshape(C)
    return dx.reshape(x.shape), dweight, dbias


@_bug("interleaved_groups", "backward", "channel c put in group c % G (interleaved) instead of the "
      "contiguous groups c // (C/G)")
def gn_backward_interleaved(x, weight, bias, grad_out, eps):
    return _gn_backward(x, weight, grad_out, eps, interleaved=True)


@_bug("per_channel_statistics", "backward", "per-(n, c) statistics (InstanceNorm's) where "
      "per-(n, group) ones belong")
def gn_backward_per_channel(x, weight, bias, grad_out, eps):
    return _gn_backward(x, weight, grad_out, eps, per_channel=True)


@_bug("bessel_variance", "backward", "N − 1 (Bessel-corrected) variance")
def gn_backward_bessel(x, weight, bias, grad_out, eps):
    return _gn_backward(x, weight, grad_out, eps, ddof=1)


@_bug("missing_projection_term", "backward", "dx misses the −x̂·⟨ĝx̂⟩ term")
def gn_backward_no_projection(x, weight, bias, grad_out, eps):
    return _gn_backward(x, weight, grad_out, eps, drop_proj=True)


@_bug("weight_per_group", "backward", "ĝ uses one weight per group (its first channel's) where "
      "the weight is per channel")
def gn_backward_group_weight(x, weight, bias, grad_out, eps):
    return _gn_backward(x, weight, grad_out, eps, group_weight=True)


@_bug("inverted_std", "backward", "multiplies by sqrt(var + ε) instead of dividing")
def gn_backward_inverted_std(x, weight, bias, grad_out, eps):
    return _gn_backward(x, weight, grad_out, eps, invert=True)


@_bug("missing_mean_term", "backward", "dx misses the −⟨ĝ⟩ term")
def gn_backward_no_mean(x, weight, bias, grad_out, eps):
    return _gn_backward(x, weight, grad_out, eps, drop_mean=True)


@_ok("numpy_grouped_view", "forward")
def gn_forward_numpy(x, weight, bias, eps):
    N, C = x.shape[0], x.shape[1]
    xg = x.reshape(N, GROUPS, -1)
    mu = xg.mean(axis=2, keepdims=True)
    xhat = ((xg - mu) / np.sqrt(xg.var(axis=2, keepdims=True) + eps)).reshape(x.shape)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return xhat * weight.reshape(shape) + bias.reshape(shape)


@_ok("xp_namespace", "forward")
def gn_forward_xp(x, weight, bias, eps, xp):
    N, C = x.shape[0], x.shape[1]
    xg = xp.reshape(x, (N, GROUPS, -1))
    d = xg - xp.mean(xg, axis=2, keepdims=True)
    xhat = xp.reshape(d / xp.sqrt(xp.mean(d * d, axis=2, keepdims=True) + eps), x.shape)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return xhat * xp.reshape(weight, shape) + xp.reshape(bias, shape)


@_bug("interleaved_groups", "forward", "channel c in group c % G")
def gn_forward_interleaved(x, weight, bias, eps):
    N, C = x.shape[0], x.shape[1]
    xg = np.moveaxis(x.reshape((N, C // GROUPS, GROUPS) + x.shape[2:]), 2, 1).reshape(N, GROUPS, -1)
    mu = xg.mean(axis=2, keepdims=True)
    xhat = (xg - mu) / np.sqrt(xg.var(axis=2, keepdims=True) + eps)
    xhat = np.moveaxis(xhat.reshape((N, GROUPS, C // GROUPS) + x.shape[2:]), 1, 2).reshape(x.shape)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return xhat * weight.reshape(shape) + bias.reshape(shape)


@_bug("bessel_variance", "forward", "N − 1 (Bessel-corrected) variance")
def gn_forward_bessel(x, weight, bias, eps):
    N, C = x.shape[0], x.shape[1]
    xg = x.reshape(N, GROUPS, -1)
    mu = xg.mean(axis=2, keepdims=True)
    xhat = ((xg - mu) / np.sqrt(xg.var(axis=2, keepdims=True, ddof=1) + eps)).reshape(x.shape)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return xhat * weight.reshape(shape) + bias.reshape(shape)


# ============================================================================ rms_norm
# x (2, 3, 4), normalized_shape (4,): y = x / sqrt(mean(x²) + ε) · weight per row; no centering,
# no bias (bias is None; the backward returns (dx, dweight)).

RMS_NORM = LayerCatalog(lambda eps: layers.rms_norm((2, 3, 4), (4,), eps=eps))
_CURRENT = RMS_NORM


def _rms_backward(x, weight, grad_out, eps, *, axes=(-1,), ddof=0, centered=False, drop_proj=False,
                  no_half=False, invert=False, dweight_raw=False, plus=False, eps_outside=False):
    m = np.prod([x.shape[a] for a in axes])
    c = x - x.mean(axis=axes, keepdims=True) if centered else x
    ms = (c * c).sum(axis=axes, keepdims=True) / (m - ddof)
    if eps_outside:
        r = 1.0 / (np.sqrt(ms) + eps)
    else:
        r = np.sqrt(ms + eps) if invert else 1.0 / np.sqrt(ms + eps)
    xhat = c * r
    gh = grad_out * weight
    if centered:
        gh = gh - gh.mean(axis=axes, keepdims=True)
    dx = gh * r
    if not drop_proj:
        # d/dx of r = −r³·x/m; forgetting the ½ of d sqrt doubles it
        proj = (2 if no_half else 1) * xhat * r * (gh * xhat).mean(axis=axes, keepdims=True)
        dx = dx + proj if plus else dx - proj
    lead = tuple(range(x.ndim - 1))
    return dx, (grad_out * (x if dweight_raw else xhat)).sum(axis=lead)


@_ok("numpy_mean_keepdims", "backward")
def rms_backward_numpy(x, weight, bias, grad_out, eps):
    r = 1.0 / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)
    xhat = x * r
    gh = grad_out * weight
    dx = r * (gh - xhat * (gh * xhat).mean(axis=-1, keepdims=True))
    return dx, (grad_out * xhat).sum(axis=(0, 1))


@_ok("xp_namespace", "backward")
def rms_backward_xp(x, weight, bias, grad_out, eps, xp):
    d = x.shape[-1]
    r = 1 / xp.sqrt(xp.sum(x * x, axis=-1, keepdims=True) / d + eps)
    gh = grad_out * weight
    dx = r * gh - x * r * r * r * xp.sum(gh * x, axis=-1, keepdims=True) / d
    return dx, xp.sum(xp.reshape(grad_out * x * r, (-1, d)), axis=0)


@_ok("chain_rule_staged_half", "backward")
def rms_backward_staged(x, weight, bias, grad_out, eps):
    """Staged chain rule through ms = mean(x²), s = sqrt(ms + ε), with the float constants 0.5
    and 2./D."""
    D = x.shape[-1]
    ms = 1. / D * (x ** 2).sum(axis=-1, keepdims=True)
    s = np.sqrt(ms + eps)
    y_hat = x / s
    dyhat = grad_out * weight
    ds = -(dyhat * x).sum(axis=-1, keepdims=True) / s ** 2
    dms = 0.5 / s * ds
    dx = dyhat / s + 2. / D * x * dms
    return dx, (grad_out * y_hat).reshape(-1, D).sum(axis=0)


@_ok("einsum_reductions", "backward")
def rms_backward_einsum(x, weight, bias, grad_out, eps):
    D = x.shape[-1]
    r = 1 / np.sqrt(np.einsum("abd,abd->ab", x, x) / D + eps)
    xhat = x * r[..., None]
    gh = grad_out * weight
    proj = np.einsum("abd,abd->ab", gh, xhat) / D
    return r[..., None] * (gh - xhat * proj[..., None]), np.einsum("abd,abd->d", grad_out, xhat)


@_bug("centered", "backward", "subtracts the mean (LayerNorm's gradient) where RMSNorm has no "
      "centering")
def rms_backward_centered(x, weight, bias, grad_out, eps):
    return _rms_backward(x, weight, grad_out, eps, centered=True)


@_bug("bessel_mean_square", "backward", "mean(x²) with n − 1 in the denominator")
def rms_backward_bessel(x, weight, bias, grad_out, eps):
    return _rms_backward(x, weight, grad_out, eps, ddof=1)


@_bug("missing_projection_term", "backward", "dx = r·ĝ: the term through mean(x²) is missing")
def rms_backward_no_projection(x, weight, bias, grad_out, eps):
    return _rms_backward(x, weight, grad_out, eps, drop_proj=True)


@_bug("missing_half", "backward", "the ½ of d sqrt forgotten: the projection term doubled")
def rms_backward_no_half(x, weight, bias, grad_out, eps):
    return _rms_backward(x, weight, grad_out, eps, no_half=True)


@_bug("inverted_rms", "backward", "multiplies by sqrt(mean(x²) + ε) instead of dividing")
def rms_backward_inverted(x, weight, bias, grad_out, eps):
    return _rms_backward(x, weight, grad_out, eps, invert=True)


@_bug("dweight_unnormalized", "backward", "dweight = Σ g·x: the 1/rms is missing")
def rms_backward_dweight_raw(x, weight, bias, grad_out, eps):
    return _rms_backward(x, weight, grad_out, eps, dweight_raw=True)


@_bug("all_trailing_axes", "backward", "statistics over axes (1, 2) where normalized_shape is (4,)")
def rms_backward_wrong_axes(x, weight, bias, grad_out, eps):
    return _rms_backward(x, weight, grad_out, eps, axes=(1, 2))


@_bug("projection_sign", "backward", "the term through mean(x²) added instead of subtracted")
def rms_backward_plus(x, weight, bias, grad_out, eps):
    return _rms_backward(x, weight, grad_out, eps, plus=True)


@_bug("eps_outside_sqrt", "backward", "r = 1/(sqrt(mean(x²)) + ε) and the rest as if it were right")
def rms_backward_eps_outside(x, weight, bias, grad_out, eps):
    return _rms_backward(x, weight, grad_out, eps, eps_outside=True)


@_ok("numpy", "forward")
def rms_forward_numpy(x, weight, bias, eps):
    return x / np.sqrt(np.mean(x ** 2, axis=-1, keepdims=True) + eps) * weight


@_ok("xp_namespace", "forward")
def rms_forward_xp(x, weight, bias, eps, xp):
    return x * (1 / xp.sqrt(xp.mean(x * x, axis=-1, keepdims=True) + eps)) * weight


@_bug("centered", "forward", "subtracts the mean (LayerNorm without bias)")
def rms_forward_centered(x, weight, bias, eps):
    c = x - x.mean(axis=-1, keepdims=True)
    return c / np.sqrt(np.mean(c ** 2, axis=-1, keepdims=True) + eps) * weight


@_bug("eps_outside_sqrt", "forward", "divides by sqrt(mean(x²)) + ε")
def rms_forward_eps_outside(x, weight, bias, eps):
    return x / (np.sqrt(np.mean(x ** 2, axis=-1, keepdims=True)) + eps) * weight


del _CURRENT

#: layer name -> its catalog
CATALOG = {"batch_norm": BATCH_NORM, "instance_norm": INSTANCE_NORM, "layer_norm": LAYER_NORM,
           "group_norm": GROUP_NORM, "rms_norm": RMS_NORM}
