"""Numeric runtime for channel-first BatchNorm ("BatchNormChannelFirst", torchlean.md §2, §5.4).

Semantics (per channel ``c``, ``N = H*W``; stateless, per example, statistics over the spatial
axes -- i.e. InstanceNorm with batch 1)::

    mean_c = (1/N) Σ_p x_{c,p}
    var_c  = (1/N) Σ_p (x_{c,p} - mean_c)²          population variance, two passes
    std_c  = sqrt(var_c + eps),   r_c = 1/std_c
    x̂      = (x - mean_c) · r_c
    y      = γ_c x̂ + β_c

Backward for an upstream cotangent ``g`` (the closed form of ``Spec.batchNorm2dBackward``)::

    dβ_c = Σ_p g
    dγ_c = Σ_p g x̂
    dx   = (γ_c r_c / N) (N g − Σ_p g − x̂ Σ_p g x̂)

JVP (``Spec.batchNorm2dJvp``)::

    dy = γ r (dx − mean_p(dx) − x̂ mean_p(dx ⊙ x̂)) + x̂ dγ + dβ

All functions compute in the floating dtype of ``x``: a float32 ``x`` gives float32 results
(``gamma``/``beta``/cotangents of another float dtype are cast to it, and ``eps`` is used as a
weak Python scalar, so NumPy 2 does not promote).  The variance is computed in two passes,
``mean((x − mean)²)``, never as ``E[x²] − E[x]²`` (which cancels catastrophically when
``|mean| ≫ std``; ecosystem.md §5.5).

``forward(x, gamma, beta, eps, xp)`` and ``backward(x, gamma, beta, grad_out, eps, xp)`` have the
project's standard user-function signatures.  Their bodies use only ``xp.mean``, ``xp.sum``,
``xp.sqrt``, arithmetic and ``[:, None, None]`` indexing, so they also run on other array
namespaces that provide those (the dtype coercion above only touches NumPy arrays and NumPy
scalars).  No ``max(var, 0)`` clamp is applied: the two-pass variance is a mean of squares and
cannot be negative, and the Lean graph has no such clamp either (torchlean.md §2.3).
"""
from __future__ import annotations

import numpy

__all__ = ["forward", "backward", "jvp"]

_AXES = (1, 2)


def _check_shapes(x, gamma, beta, full=(), per_channel=()):
    """x must be (C, H, W); gamma, beta and the ``per_channel`` (name, array) pairs (C,); the
    ``full`` pairs (C, H, W)."""
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) != 3:
        raise ValueError(f"x must have shape (C, H, W); got shape {shape!r}")
    shape = tuple(shape)
    checks = [("gamma", gamma, (shape[0],)), ("beta", beta, (shape[0],))]
    checks += [(name, arr, shape) for name, arr in full]
    checks += [(name, arr, (shape[0],)) for name, arr in per_channel]
    for name, arr, want in checks:
        got = getattr(arr, "shape", None)
        if got is None or tuple(got) != want:
            raise ValueError(f"{name} must have shape {want} to match x of shape {shape}; "
                             f"got {got!r}")


def _coerce(x, *arrays):
    """Cast NumPy arrays to x's dtype so that float32 stays float32 (other namespaces untouched)."""
    if not isinstance(x, numpy.ndarray) or x.dtype.kind == "O":
        return arrays  # other namespaces, or object arrays (e.g. of SymPy expressions)
    if x.dtype.kind != "f":
        raise ValueError(f"x must be a real floating array (float32 or float64); got dtype {x.dtype}")
    out = []
    for a in arrays:
        if isinstance(a, numpy.ndarray) and a.dtype != x.dtype:
            a = a.astype(x.dtype)
        out.append(a)
    return tuple(out)


def _scalar(eps):
    """NumPy scalars become Python floats (weak under NEP 50); anything else is left alone."""
    if isinstance(eps, numpy.generic):
        return eps.item()
    return eps


def _stats(x, eps, xp):
    """mean (C,1,1), centered x − mean, r = 1/sqrt(var + eps) (C,1,1), x̂."""
    mean = xp.mean(x, axis=_AXES, keepdims=True)
    centered = x - mean
    var = xp.mean(centered * centered, axis=_AXES, keepdims=True)
    std = xp.sqrt(var + eps)
    r = 1 / std
    xhat = centered * r
    return mean, centered, r, xhat


def forward(x, gamma, beta, eps, xp=numpy):
    """y = γ_c (x − mean_c)/sqrt(var_c + eps) + β_c for x of shape (C, H, W)."""
    _check_shapes(x, gamma, beta)
    gamma, beta = _coerce(x, gamma, beta)
    eps = _scalar(eps)
    _, _, _, xhat = _stats(x, eps, xp)
    return gamma[:, None, None] * xhat + beta[:, None, None]


def backward(x, gamma, beta, grad_out, eps, xp=numpy):
    """Return (dx, dgamma, dbeta) = J(x, γ, β)ᵀ grad_out (``beta`` is unused but kept for the
    standard signature)."""
    _check_shapes(x, gamma, beta, full=[("grad_out", grad_out)])
    gamma, beta, grad_out = _coerce(x, gamma, beta, grad_out)
    eps = _scalar(eps)
    H, W = x.shape[1], x.shape[2]
    n = H * W
    _, _, r, xhat = _stats(x, eps, xp)
    g = grad_out
    s1 = xp.sum(g, axis=_AXES, keepdims=True)          # Σ_p g
    s2 = xp.sum(g * xhat, axis=_AXES, keepdims=True)   # Σ_p g x̂
    dbeta = s1[:, 0, 0]
    dgamma = s2[:, 0, 0]
    coef = gamma[:, None, None] * r / n
    dx = coef * (n * g - s1 - xhat * s2)
    return dx, dgamma, dbeta


def jvp(x, gamma, beta, dx, dgamma, dbeta, eps, xp=numpy):
    """Forward-mode derivative dy = J(x, γ, β)·(dx, dγ, dβ) (``beta`` is unused)."""
    _check_shapes(x, gamma, beta, full=[("dx", dx)],
                  per_channel=[("dgamma", dgamma), ("dbeta", dbeta)])
    gamma, beta, dx, dgamma, dbeta = _coerce(x, gamma, beta, dx, dgamma, dbeta)
    eps = _scalar(eps)
    _, _, r, xhat = _stats(x, eps, xp)
    m1 = xp.mean(dx, axis=_AXES, keepdims=True)
    m2 = xp.mean(dx * xhat, axis=_AXES, keepdims=True)
    return (gamma[:, None, None] * r * (dx - m1 - xhat * m2)
            + xhat * dgamma[:, None, None] + dbeta[:, None, None])
