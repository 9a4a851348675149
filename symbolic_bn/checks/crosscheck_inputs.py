r"""The points a cross-check visits: the families, the eps probe, the degenerate points, users' inputs.

Used by :func:`symbolic_bn.checks.crosscheck.crosscheck`; every point is a tuple ``(family, index,
x, weight, bias, grad_out, eps)`` of arrays already rounded to the checked dtype.

Point families
--------------
* ``normal``         -- x ~ N(0, 1).
* ``large_mean``     -- x ~ ±1e4 + N(0, 1) per channel: E[x²]−E[x]² cancels catastrophically here.
* ``small_variance`` -- per channel, mean ~ N(0, 1) and population variance set to |eps|·10^U(−1,1)
  (variance comparable to eps, so eps matters and the centered values are small).
* ``mixed_scales``   -- channels with spreads log-spaced from 1e−3 to 1e3 (jittered), means of the
  order of max(1, spread).
* ``sparse``         -- per channel, x is zero except in its bottom-right ``min(H,2) × min(W,4)``
  corner (at most ``SPARSE_NONZEROS = 8`` entries), which holds integers of magnitude ≤ 384 times
  a power of two with every row and every column of the corner summing to exactly 0; grad_out is
  small integers (|g| ≤ 5, not constant in a channel), in the corner with the sign of x (so that
  dγ = Σ g·x̂ does not cancel).  Here the sums a correct implementation
  forms are exact or nearly so: Σx, Σ(x − μ)² and Σg are sums of exactly representable integers
  (times a power of two), exact in float32 and float64 in *any* order, so μ = 0 exactly, and the
  only rounded sum, Σ g·x̂, has at most 8 nonzero terms.  One-pass (Welford) updates are nearly
  exact too, in row-major or column-major order, sequential, blocked or in interleaved lanes:
  the running mean returns to ~0 after each row and each column of the corner, so the zeros are
  never combined with a large running mean.  This family is what catches an N − 1 variance at
  large N (see "What the bound can and cannot catch" in :mod:`.crosscheck_bound`).
* ``user``           -- the dicts given in ``inputs``.

Points are assigned to families round-robin; point ``i`` is generated from
``numpy.random.default_rng([seed, i])`` so it depends only on ``(seed, i)``.  After them comes
one **eps probe**: a ``small_variance`` point (or, when ``families`` leaves that family out, a
point of the first family given) generated for, and checked at, another eps (``2·eps``;
``eps/2`` for a negative eps, ``1e-6`` for eps = 0).  A function that ignores its
``eps`` argument (hard-codes PyTorch's default 1e-5, crosscheck's default too) passes every point
at that eps but fails the probe.  Its figures count in the outputs (``worst`` then names the
family ``eps_probe``) and are reported in ``CrosscheckResult.eps_probe``, not in ``families``.
Then two **degenerate** points (family ``degenerate``), where code that branches on data behaves
differently and no random family lands: channel 0 exactly constant (variance 0 in floating point
too; only when eps > 0) and ``gamma[0] = 0``.  γ is generic
(magnitudes U(0.5, 2), random signs, and every even point has at least one negative γ), β ~ N(0,1),
and the cotangent ``grad_out`` is a generic random array (N(0,1) plus a per-channel offset) --
never all ones, because with ``g ≡ 1`` the exact ``dx`` is 0 for *any* rule of the form
``a·g + b·Σg + c·x̂·Σ(g x̂)`` with a = −b, since ``Σ x̂ = 0`` (ecosystem.md §0 item 2).

Every layer
-----------
Each statistics group is laid out as a matrix -- its members in C order, the width
the innermost input axis when the group runs along it (batchnorm_channel_first: H × W, exactly
the points of the C×H×W path; batch_norm (N, C, H, W): an (N·H) × W matrix per channel) -- and
the families above are generated per group (per-group means, variances, spreads, sparse corner
blocks, cotangent offsets); weight and bias get one generic value per entry.  For rms_norm
``small_variance`` makes mean(x²) comparable to eps.  The degenerate points are then the first
statistics group constant 0 and the weight entry that group uses 0.

A *layout* is what the point plan needs of the C×H×W path (:class:`ChannelFirstLayout`) or of a
layer (:class:`~symbolic_bn.checks.crosscheck_layer_view._LayerView`): ``generate(family, rng, i,
eps, np_dtype) -> (x, weight, bias or None, grad_out)``, ``user_grad(rng, x)`` (a cotangent for a
user point without one), ``first_group`` (flat indices of the first statistics group) and
``first_weight`` (the flat index of the weight entry its first member uses).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["FAMILIES", "SPARSE_NONZEROS", "EPS_PROBE", "DEGENERATE", "ChannelFirstLayout",
           "point_plan", "prepare_inputs"]

FAMILIES = ("normal", "large_mean", "small_variance", "mixed_scales", "sparse")
#: Nonzero entries per channel of the ``sparse`` family (the length of its only rounded sums).
SPARSE_NONZEROS = 8
EPS_PROBE = "eps_probe"
#: Family of the degenerate points every crosscheck also visits.
DEGENERATE = "degenerate"


def _validate_array(name, value, dtype, want_shape=None, ndim=None):
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a real numeric array: {exc}") from None
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional; got shape {arr.shape}")
    if want_shape is not None and arr.shape != tuple(want_shape):
        raise ValueError(f"{name} must have shape {tuple(want_shape)}; got {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    with np.errstate(over="ignore"):
        rounded = arr.astype(dtype)
    if not np.all(np.isfinite(rounded)):
        raise ValueError(f"{name} overflows {np.dtype(dtype).name}")
    return rounded


def prepare_inputs(inputs, dtype, keys, input_shape=None, weight_shape=None):
    """The users' ``inputs`` (a list of dicts with ``keys`` = ('x', the weight's name[, the bias's
    name]) and optionally 'grad_out') as ``(x, weight, bias or None, grad_out or None)`` arrays
    of ``dtype``.  ``input_shape`` None (the C×H×W path): any 3-dimensional x, and weight and bias
    of shape (C,)."""
    if inputs is None:
        return []
    names = ", ".join(map(repr, keys))
    if isinstance(inputs, dict) or not hasattr(inputs, "__iter__"):
        raise ValueError(f"inputs must be a list of dicts with keys {names} (and optionally 'grad_out')")
    prepared = []
    for k, item in enumerate(inputs):
        if not isinstance(item, dict):
            raise ValueError(f"inputs[{k}] must be a dict with keys {names}")
        missing = [key for key in keys if key not in item]
        if missing:
            raise ValueError(f"inputs[{k}] is missing key(s) {missing}")
        unknown = set(item) - set(keys) - {"grad_out"}
        if unknown:
            raise ValueError(f"inputs[{k}] has unknown key(s) {sorted(unknown)}")
        if input_shape is None:
            x = _validate_array(f"inputs[{k}]['x']", item["x"], dtype, ndim=3)
            param_shape = x.shape[:1]
        else:
            x = _validate_array(f"inputs[{k}]['x']", item["x"], dtype, want_shape=input_shape)
            param_shape = weight_shape
        w = _validate_array(f"inputs[{k}][{keys[1]!r}]", item[keys[1]], dtype, want_shape=param_shape)
        b = None
        if len(keys) > 2:
            b = _validate_array(f"inputs[{k}][{keys[2]!r}]", item[keys[2]], dtype,
                                want_shape=param_shape)
        g = None
        if item.get("grad_out") is not None:
            g = _validate_array(f"inputs[{k}]['grad_out']", item["grad_out"], dtype,
                                want_shape=x.shape)
        prepared.append((x, w, b, g))
    return prepared


def _gen_params(rng, C, i):
    signs = rng.choice(np.array([-1.0, 1.0]), size=C)
    if i % 2 == 0 and np.all(signs > 0):
        signs[rng.integers(C)] = -1.0
    gamma = signs * rng.uniform(0.5, 2.0, size=C)
    beta = rng.standard_normal(C)
    return gamma, beta


def _gen_grad(rng, shape):
    C = shape[0]
    return rng.standard_normal(shape) + rng.uniform(-1.0, 1.0, size=C)[:, None, None]


def _zero_sum_integers(rng, k):
    """k nonzero integers of magnitude <= 3*128 summing to exactly 0 (k = 1: one nonzero)."""
    vals = rng.integers(1, 129, size=k) * rng.choice(np.array([-1, 1]), size=k)
    if k > 1:
        vals[-1] = -int(vals[:-1].sum())
        if vals[-1] == 0:
            vals[0] += 1 if vals[0] > 0 else -1
            vals[-1] = -int(vals[:-1].sum())
    return vals


def _gen_sparse(rng, shape):
    """x and grad_out of the ``sparse`` family (module docstring).

    Per channel, x is zero except in its bottom-right ``h × w`` corner (``h = min(H, 2)``,
    ``w = min(W, 4)``, so at most :data:`SPARSE_NONZEROS` entries), which holds small integers times
    a power of two with every row and every column summing to exactly 0 (``[[v], [−v]]`` with
    Σv = 0).  grad_out is small integers, not constant in a channel."""
    C, H, W = shape
    n = H * W
    h, w = min(H, 2), min(W, SPARSE_NONZEROS // 2)
    x = np.zeros((C, H, W))
    g = rng.integers(-4, 5, size=(C, H, W)).astype(np.float64)
    for c in range(C):
        if h == 2:
            v = _zero_sum_integers(rng, w) if w > 1 else _zero_sum_integers(rng, 1)
            block = np.stack([v, -v])
        else:
            block = _zero_sum_integers(rng, w)[None, :]
        var = float((block.astype(np.float64) ** 2).sum()) / n if n > 1 else 1.0
        target = 10.0 ** rng.uniform(-1.0, 1.0)
        scale = 2.0 ** round(math.log2(math.sqrt(target / var)))
        x[c, H - h:, W - w:] = block * scale
        # in the corner, grad_out has the sign of x: Σ g·x̂ = dγ then does not cancel, which
        # keeps dγ sensitive to an N − 1 variance (relative to its bound) at large N
        g[c, H - h:, W - w:] = np.sign(block) * rng.integers(1, 5, size=block.shape)
        if n > 1 and np.all(g[c] == g[c].flat[0]):
            g[c].flat[0] += 1.0
    return x, g


def _gen_x(family, rng, shape, eps):
    C, H, W = shape
    if family == "normal":
        return rng.standard_normal(shape)
    if family == "large_mean":
        centers = 1e4 * rng.choice(np.array([-1.0, 1.0]), size=C)
        return centers[:, None, None] + rng.standard_normal(shape)
    if family == "small_variance":
        base = abs(eps) if eps != 0 else 1e-6
        lo, hi = (-1.0, 1.0) if eps > 0 else (0.5, 1.5)
        target = base * 10.0 ** rng.uniform(lo, hi, size=C)
        z = rng.standard_normal(shape)
        z = z - z.mean(axis=(1, 2), keepdims=True)
        sd = np.sqrt((z * z).mean(axis=(1, 2), keepdims=True))
        z = np.where(sd > 0, z / np.where(sd > 0, sd, 1.0), 0.0)
        means = rng.standard_normal(C)
        return means[:, None, None] + np.sqrt(target)[:, None, None] * z
    if family == "mixed_scales":
        exps = np.linspace(-3.0, 3.0, C) if C > 1 else rng.uniform(-3.0, 3.0, size=1)
        spreads = 10.0 ** (exps + rng.uniform(-0.25, 0.25, size=C))
        means = rng.standard_normal(C) * np.maximum(1.0, spreads)
        return means[:, None, None] + spreads[:, None, None] * rng.standard_normal(shape)
    raise ValueError(f"unknown family {family!r}")  # pragma: no cover


def family_values(family, rng, i, eps, matrix, weights, centered=True):
    """Float64 ``(x, weight, bias, grad_out)`` of point ``i`` of a generated ``family``: x and
    grad_out as ``matrix`` = (groups, rows, columns), weight and bias with ``weights`` entries.
    ``centered=False`` (rms_norm): ``small_variance`` makes mean(x²), not the variance,
    comparable to eps."""
    gamma, beta = _gen_params(rng, weights, i)
    if family == "sparse":
        x, g = _gen_sparse(rng, matrix)
    else:
        x = _gen_x(family, rng, matrix, eps)
        g = _gen_grad(rng, matrix)
        if family == "small_variance" and not centered:
            x = x - x.mean(axis=(1, 2), keepdims=True)
    return x, gamma, beta, g


def _probe_eps(eps, np_dtype) -> float:
    """The eps of the extra point: 2·eps (eps > 0), eps/2 (eps < 0), 1e-6 (eps = 0), in dtype."""
    value = 2.0 * eps if eps > 0 else (eps / 2.0 if eps < 0 else 1e-6)
    with np.errstate(over="ignore"):
        out = float(np_dtype(value))
    return out if math.isfinite(out) else eps


def _reduction_terms(family, x):
    """How many terms of the implementation's sums carry rounding errors (the N of growth(N))."""
    n = x.shape[1] * x.shape[2]
    if family == "sparse":
        return max(1, int(np.max(np.count_nonzero(x.reshape(x.shape[0], -1), axis=1))))
    return n


class ChannelFirstLayout:
    """The layout of the C×H×W path: one statistics group per channel, its H × W matrix as the
    family generators lay it out, one weight entry per channel."""

    def __init__(self, shape):
        self.shape = shape
        self.first_group = np.arange(shape[1] * shape[2])
        self.first_weight = 0

    def generate(self, family, rng, i, eps, np_dtype):
        """(x, gamma, beta, grad_out) of point ``i`` of ``family``, in dtype."""
        x, gamma, beta, g = family_values(family, rng, i, eps, self.shape, self.shape[0])
        return x.astype(np_dtype), gamma.astype(np_dtype), beta.astype(np_dtype), g.astype(np_dtype)

    @staticmethod
    def user_grad(rng, x):
        return _gen_grad(rng, x.shape)

    @staticmethod
    def reduction_terms(family, x):
        return _reduction_terms(family, x)


def degenerate_points(layout, seed, first, eps, np_dtype, family):
    """Points where code that branches on data (``if var == 0``, ``if gamma[c] == 0``) behaves
    differently and no random family ever lands, drawn from ``family`` (one of the requested
    families): the first statistics group constant 0 (its mean and variance 0 are exact in
    floating point, a one-pass variance of a constant c ≠ 0 is not; only when eps > 0 keeps it
    inside the domain) and the weight entry the first group uses set to 0."""
    out = []
    for k, kind in enumerate(("constant group", "weight zero")):
        if kind == "constant group" and not eps > 0:
            continue
        x, w, b, g = layout.generate(family, np.random.default_rng([seed, first + k, 4]), first + k,
                                     eps, np_dtype)
        if kind == "constant group":
            x = x.copy()
            x.reshape(-1)[layout.first_group] = 0
        else:
            w = w.copy()
            w.reshape(-1)[layout.first_weight] = 0
        out.append((DEGENERATE, first + k, x, w, b, g, eps))
    return out


def point_plan(layout, user, families, points, seed, eps, np_dtype, degenerate=True):
    """Every point of one cross-check, in order: ``points`` generated ones (round-robin over
    ``families``), the ``user`` ones (``(x, weight, bias, grad_out or None)``, already in dtype),
    the eps probe and (``degenerate``) the degenerate points.  Returns ``(plan, probe_eps,
    probe_family, number of degenerate points)``."""
    plan = []
    for i in range(points):
        fam = families[i % len(families)]
        rng = np.random.default_rng([seed, i])
        plan.append((fam, i) + layout.generate(fam, rng, i, eps, np_dtype) + (eps,))
    for k, (x, w, b, g) in enumerate(user):
        if g is None:
            g = layout.user_grad(np.random.default_rng([seed, points + k, 1]), x).astype(np_dtype)
        plan.append(("user", points + k, x, w, b, g, eps))
    # one more point at another eps (variance comparable to it): a function that ignores its
    # eps argument (say, hard-codes PyTorch's 1e-5) would otherwise pass at that same eps
    probe_eps = _probe_eps(eps, np_dtype)
    probe_family = "small_variance" if "small_variance" in families else families[0]
    i = points + len(user)
    plan.append((EPS_PROBE, i) + layout.generate(probe_family, np.random.default_rng([seed, i, 3]), i,
                                                 probe_eps, np_dtype) + (probe_eps,))
    extra = degenerate_points(layout, seed, i + 1, eps, np_dtype,
                              "normal" if "normal" in families else families[0]) if degenerate else []
    return plan + extra, probe_eps, probe_family, len(extra)
