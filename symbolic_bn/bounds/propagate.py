"""The public inference bound computations: :func:`scale`, :func:`offset`, :func:`ibp`,
:func:`deriv`, :func:`second_deriv` and :func:`affine`, in round-to-nearest float64 or exactly,
dispatching ``rounding='outward'`` to :mod:`symbolic_bn.bounds.outward`.

``rounding='nearest'`` (default) computes in float64 with round-to-nearest when both containers
are float containers (results: float64 arrays), and exactly otherwise (results: NumPy object
arrays of SymPy numbers; square roots stay exact).  Round-to-nearest refuses float64 overflow
(of the results or of any intermediate) but does not detect *underflow*: a scale or ``γ·μ`` below
2⁻¹⁰²² in magnitude loses relative precision (or becomes 0), which a large box or a small
``sqrt(max(σ², 0) + ε)`` can then amplify.  ``rounding='outward'`` returns float64 boxes
that contain the exact real image of the box under the exact real map, for the denoted values (see
:func:`symbolic_bn.bounds.outward._outward_box` for the design and why it is sound).  Containers
and number modes: :mod:`symbolic_bn.bounds.inputs`; the rules applied:
:mod:`symbolic_bn.bounds.rules`.

Boxes may have any shape with the C channels along ``channel_axis``: 1-D feature vectors as in
TorchLean (``channel_axis=0``), NCHW with ``channel_axis=1`` as in PyTorch ``BatchNorm2d``.

Bad input (mismatched lengths or shapes, ``lo > hi`` anywhere, NaN or inf, a non-number,
``max(σ², 0) + ε ≤ 0``, a float64 overflow in round-to-nearest mode) raises ``ValueError`` saying
which argument and what is wrong; no function returns a NaN box.
"""
from __future__ import annotations

import numpy as np

from .inputs import _as_array, _exact_array, _exact_sign
from .outward import _outward_box
from .params import BatchNormParams
from .rules import (NUMPY_OPS, SYMPY_OPS, affine_rule, compute_offset, compute_scale, deriv_rule,
                    ibp_rule, second_deriv_rule)

ROUNDINGS = ("nearest", "outward")


def _check_params(p):
    if not isinstance(p, BatchNormParams):
        raise ValueError(f"p must be a BatchNormParams, got {type(p).__name__}")


def _check_rounding(rounding):
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")


def _scale_offset(p: BatchNormParams, exact: bool):
    """(scale, offset, sign) per channel: float64 arrays, or object arrays of SymPy numbers."""
    if not exact:
        f = p._float_values()
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            s = compute_scale(f["gamma"], f["running_var"], f["eps"], NUMPY_OPS)
            o = compute_offset(f["gamma"], f["beta"], f["running_mean"], f["running_var"], f["eps"],
                               NUMPY_OPS)
            # The only intermediate whose overflow can hide in a finite s and o: the denominator
            # (max(var, 0) + eps = inf gives sqrt = inf and scale γ/inf = 0, silently wrong).
            # Every other intermediate (γ·μ, the quotients) overflows into s or o themselves.
            denom = NUMPY_OPS.maximum(f["running_var"], 0) + f["eps"]
        bad = ~np.isfinite(denom)
        if bad.any():
            c = int(np.argwhere(bad)[0][0])
            raise ValueError(f"float64 overflowed: max(running_var[{c}], 0) + eps is inf in "
                             f"round-to-nearest (running_var = {p.running_var[c]}, eps = {p.eps}), "
                             f"so scale and offset of channel {c} would be wrong; use "
                             f"rounding='outward' or exact parameters (Fraction)")
        for name, arr in (("scale", s), ("offset", o)):
            bad = ~np.isfinite(arr)
            if bad.any():
                c = int(np.argwhere(bad)[0][0])
                raise ValueError(f"float64 overflowed: {name} of channel {c} overflows float64 "
                                 f"(gamma = {p.gamma[c]}, running_var = {p.running_var[c]}, "
                                 f"eps = {p.eps}); use rounding='outward' or exact parameters "
                                 f"(Fraction)")
        return s, o, np.sign(s).astype(int)
    e = p._exact_values()
    C = p.dim
    s = np.empty(C, dtype=object)
    o = np.empty(C, dtype=object)
    sign = np.zeros(C, dtype=int)
    for c in range(C):
        s[c] = compute_scale(e["gamma"][c], e["running_var"][c], e["eps"], SYMPY_OPS)
        o[c] = compute_offset(e["gamma"][c], e["beta"][c], e["running_mean"][c],
                              e["running_var"][c], e["eps"], SYMPY_OPS)
        # sign(scale) = sign(gamma): scale * sqrt(max(var,0)+eps) = gamma with a positive root
        # (obligation 'scale_sign' of prove()).
        sign[c] = _exact_sign(e["gamma"][c], f"gamma[{c}]")
    return s, o, sign


def scale(p: BatchNormParams) -> np.ndarray:
    """Per-channel ``γ / sqrt(max(σ², 0) + ε)``: float64, or exact SymPy numbers (object array)."""
    _check_params(p)
    return _scale_offset(p, p.exact)[0]


def offset(p: BatchNormParams) -> np.ndarray:
    """Per-channel ``β − γ·μ / sqrt(max(σ², 0) + ε)``: float64, or exact (object array)."""
    _check_params(p)
    return _scale_offset(p, p.exact)[1]


def _check_box(p, lo, hi, channel_axis, names):
    lo_a, lo_exact = _as_array(lo, names[0])
    hi_a, hi_exact = _as_array(hi, names[1])
    if lo_a.shape != hi_a.shape:
        raise ValueError(f"{names[0]} has shape {lo_a.shape} but {names[1]} has shape {hi_a.shape}")
    if lo_a.ndim == 0:
        raise ValueError(f"{names[0]} and {names[1]} must have at least one axis (the channel axis)")
    if isinstance(channel_axis, (bool, np.bool_)) or not isinstance(channel_axis, (int, np.integer)):
        raise ValueError(f"channel_axis must be an int, got {channel_axis!r}")
    axis = int(channel_axis)
    if not -lo_a.ndim <= axis < lo_a.ndim:
        raise ValueError(f"channel_axis={axis} is out of range for {names[0]} of shape {lo_a.shape}")
    axis %= lo_a.ndim
    if lo_a.shape[axis] != p.dim:
        raise ValueError(f"{names[0]} has {lo_a.shape[axis]} entries along channel_axis={channel_axis} "
                         f"(shape {lo_a.shape}) but the parameters have {p.dim} channels")
    exact = lo_exact or hi_exact
    if exact:  # lo and hi form one exact container: floats in it are read by to_exact
        lo_a = _exact_array(lo_a.astype(object), True, names[0])
        hi_a = _exact_array(hi_a.astype(object), True, names[1])
        for idx in np.ndindex(lo_a.shape):
            if _exact_sign(hi_a[idx] - lo_a[idx], f"{names[1]}{list(idx)} - {names[0]}{list(idx)}") < 0:
                raise ValueError(f"{names[0]} > {names[1]} at index {list(idx)}: {names[0]} = "
                                 f"{lo_a[idx]}, {names[1]} = {hi_a[idx]}; a box needs lo <= hi")
    else:
        bad = lo_a > hi_a
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{names[0]} > {names[1]} at index {list(idx)}: {names[0]} = "
                             f"{lo_a[idx]!r}, {names[1]} = {hi_a[idx]!r}; a box needs lo <= hi")
    bshape = [1] * lo_a.ndim
    bshape[axis] = p.dim
    return lo_a, hi_a, exact, tuple(bshape)


def _box_op(p, lo, hi, channel_axis, rounding, rule, with_offset, names):
    _check_params(p)
    _check_rounding(rounding)
    lo_a, hi_a, box_exact, bshape = _check_box(p, lo, hi, channel_axis, names)
    if rounding == "outward":
        return _outward_box(p, lo_a, hi_a, box_exact, bshape, with_offset)
    exact = p.exact or box_exact
    s, o, sign = _scale_offset(p, exact)
    if exact and not box_exact:  # a float box in an exact computation: its binary values
        lo_a = _exact_array(lo_a, False, names[0])
        hi_a = _exact_array(hi_a, False, names[1])
    with np.errstate(over="ignore", invalid="ignore"):
        out_lo, out_hi = rule(s.reshape(bshape), o.reshape(bshape), lo_a, hi_a, sign.reshape(bshape))
    if not exact:
        for name, arr in (("lower", out_lo), ("upper", out_hi)):
            bad = ~np.isfinite(arr)
            if bad.any():
                idx = tuple(int(i) for i in np.argwhere(bad)[0])
                raise ValueError(f"the {name} bound at index {list(idx)} overflows float64 in "
                                 f"round-to-nearest; use rounding='outward' (sound, may return "
                                 f"±inf) or exact inputs")
    return out_lo, out_hi


def ibp(p: BatchNormParams, lo, hi, channel_axis: int = 0, rounding: str = "nearest"):
    """Interval bound propagation through inference BatchNorm (TorchLean ``ibpBatchnorm``).

    ``lo``, ``hi``: arrays of one shape with C entries along ``channel_axis``.  Returns
    ``(lo', hi')`` with ``lo'_i = s>0 ? s·lo_i + o : s·hi_i + o`` and symmetrically for ``hi'``.
    Exact over ℝ: the box is the image of the input box (obligations ``ibp_sound_*`` and
    ``ibp_exact_*`` of :func:`prove`).  ``rounding='outward'``: float64 endpoints guaranteed to
    contain the exact real image.
    """
    return _box_op(p, lo, hi, channel_axis, rounding, ibp_rule, True, ("lo", "hi"))


def deriv(p: BatchNormParams, dlo, dhi, channel_axis: int = 0, rounding: str = "nearest"):
    """Derivative-box propagation (TorchLean ``derivBatchnorm``): ``s·[dlo, dhi]``, endpoints
    swapped unless ``s > 0``."""
    return _box_op(p, dlo, dhi, channel_axis, rounding, deriv_rule, False, ("dlo", "dhi"))


def second_deriv(p: BatchNormParams, lo, hi, channel_axis: int = 0, rounding: str = "nearest"):
    """Second-derivative-box propagation (TorchLean ``secondDerivBatchnorm``): the derivative rule,
    since d²/dt² BN(x(t)) = s·x''(t)."""
    return _box_op(p, lo, hi, channel_axis, rounding, second_deriv_rule, False, ("lo", "hi"))


def affine(p: BatchNormParams, A, c):
    """Compose an affine form ``x ↦ A x + c`` (A: C×n, c: C) with BatchNorm (TorchLean
    ``affBatchnorm``): returns ``(diag(scale) A, scale ⊙ c + offset)``.  Round-to-nearest float64 for
    float inputs, exact otherwise."""
    _check_params(p)
    A_a, A_exact = _as_array(A, "A")
    c_a, c_exact = _as_array(c, "c")
    if A_a.ndim != 2:
        raise ValueError(f"A must be a C×n matrix, got shape {A_a.shape}")
    if A_a.shape[0] != p.dim:
        raise ValueError(f"A has {A_a.shape[0]} rows but the parameters have {p.dim} channels")
    if c_a.shape != (p.dim,):
        raise ValueError(f"c must have shape ({p.dim},) (one entry per channel), got {c_a.shape}")
    box_exact = A_exact or c_exact
    exact = p.exact or box_exact
    s, o, _ = _scale_offset(p, exact)
    if exact:
        if box_exact:
            A_a = A_a.astype(object)
            c_a = c_a.astype(object)
        A_a = _exact_array(A_a, box_exact, "A")
        c_a = _exact_array(c_a, box_exact, "c")
    A2, c2 = affine_rule(s, o, A_a, c_a)
    if not exact:
        if not (np.isfinite(A2).all() and np.isfinite(c2).all()):
            raise ValueError("the composed affine form overflows float64; use exact inputs")
    return A2, c2
