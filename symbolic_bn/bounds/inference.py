"""Inference BatchNorm bounds: IBP, affine, derivative and second-derivative propagation.

At inference BatchNorm is the per-channel affine map (TorchLean ``computeScale`` /
``computeOffset``, ``NN/MLTheory/CROWN/Operators/Batchnorm.lean``)::

    y = γ (x − μ) / sqrt(max(σ², 0) + ε) + β = scale · x + offset
    scale  = γ / sqrt(max(σ², 0) + ε)
    offset = β − γ · μ / sqrt(max(σ², 0) + ε)      (the graph engine writes β − μ · scale)

**Totalization.**  Exactly as TorchLean, a negative running variance is clamped: the denominator is
``sqrt(max(σ², 0) + ε)`` (so ``σ² = −4, ε = 1`` gives the denominator 1).  The parameters are
accepted only when ``max(σ², 0) + ε > 0`` in every channel (TorchLean would divide by zero, or take
the square root of a negative number, otherwise).

**Rules** (one channel; ``s`` = scale, ``o`` = offset; TorchLean's strict ``s > 0`` test, so
``s = 0`` takes the else branch, where both branches agree anyway)::

    ibp:          lo' = s>0 ? s·lo + o : s·hi + o     hi' = s>0 ? s·hi + o : s·lo + o
    affine:       A'  = diag(s) A                     c'  = s ⊙ c + o
    deriv:        lo' = s>0 ? s·dlo : s·dhi           hi' = s>0 ? s·dhi : s·dlo
    second_deriv: the deriv rule, because d²/dt² BN(x(t)) = s · x''(t)

The rules are the module-level functions :func:`ibp_rule`, :func:`affine_rule`,
:func:`deriv_rule`, :func:`second_deriv_rule`, :func:`compute_scale` and :func:`compute_offset`;
the public functions :func:`ibp`, :func:`affine`, :func:`deriv`, :func:`second_deriv`,
:func:`scale`, :func:`offset` call exactly these, and :func:`prove` proves them (or any
replacement passed in ``rules=``) symbolically, so the proofs are about the code that runs.

**Number modes.**  Values come in two *containers*: the parameters (all five fields together) and
the box (``lo`` and ``hi`` together; ``A`` and ``c`` for :func:`affine`).

* A container holding only floats and ints (lists, NumPy float/int arrays) is a *float* container;
  its floats denote their exact binary float64 values.
* A container holding any ``fractions.Fraction`` or SymPy number is *exact*; floats inside it are
  read as their shortest decimal ``repr`` (``symbolic_bn.exact.decide.to_exact``: ``1e-5`` is 10⁻⁵).
* SymPy ``Float`` values (or expressions containing one) are refused: their value depends on a
  precision that rounding to a double or reading as a decimal would silently change.

``rounding='nearest'`` (default) computes in float64 with round-to-nearest when both containers
are float containers (results: float64 arrays), and exactly otherwise (results: NumPy object
arrays of SymPy numbers; square roots stay exact).  Round-to-nearest refuses float64 overflow
(of the results or of any intermediate) but does not detect *underflow*: a scale or ``γ·μ`` below
2⁻¹⁰²² in magnitude loses relative precision (or becomes 0), which a large box or a small
``sqrt(max(σ², 0) + ε)`` can then amplify.  ``rounding='outward'`` returns float64 boxes
that contain the exact real image of the box under the exact real map, for the denoted values (see
:func:`_outward_box` for the design and why it is sound).

Boxes may have any shape with the C channels along ``channel_axis``: 1-D feature vectors as in
TorchLean (``channel_axis=0``), NCHW with ``channel_axis=1`` as in PyTorch ``BatchNorm2d``.

Bad input (mismatched lengths or shapes, ``lo > hi`` anywhere, NaN or inf, a non-number,
``max(σ², 0) + ε ≤ 0``, a float64 overflow in round-to-nearest mode) raises ``ValueError`` saying
which argument and what is wrong; no function returns a NaN box.
"""
from __future__ import annotations

import math
import time
from fractions import Fraction
from typing import Callable

import numpy as np
import sympy

from ..obligations.certificate import Certificate, Obligation
from ..exact.budget import BudgetExceeded, check_budget, time_budget
from ..exact.decide import decide_zero, differ_exactly, sign_exactly, to_exact

__all__ = [
    "BatchNormParams", "scale", "offset", "ibp", "affine", "deriv", "second_deriv", "prove",
    "compute_scale", "compute_offset", "bn_forward", "ibp_rule", "affine_rule", "deriv_rule",
    "second_deriv_rule", "DEFAULT_RULES", "NUMPY_OPS", "SYMPY_OPS",
]

ROUNDINGS = ("nearest", "outward")


# =============================================================================================
# Kernels: the formulas themselves, written once for NumPy floats, SymPy numbers and symbols


class _Ops:
    """The two non-field operations the formulas use (``sqrt`` and ``maximum``)."""

    def __init__(self, name: str, sqrt: Callable, maximum: Callable):
        self.name, self.sqrt, self.maximum = name, sqrt, maximum

    def __repr__(self) -> str:
        return f"<ops {self.name}>"


NUMPY_OPS = _Ops("numpy", np.sqrt, np.maximum)
SYMPY_OPS = _Ops("sympy", sympy.sqrt, lambda a, b: sympy.Max(a, b))


def compute_scale(gamma, var, eps, ops=SYMPY_OPS):
    """TorchLean ``computeScale``: ``γ / sqrt(max(σ², 0) + ε)``."""
    return gamma / ops.sqrt(ops.maximum(var, 0) + eps)


def compute_offset(gamma, beta, mean, var, eps, ops=SYMPY_OPS):
    """TorchLean ``computeOffset``: ``β − γ · μ / sqrt(max(σ², 0) + ε)``."""
    return beta - gamma * mean / ops.sqrt(ops.maximum(var, 0) + eps)


def bn_forward(x, mean, var, gamma, beta, eps, ops=SYMPY_OPS):
    """The inference forward pass as TorchLean's IR evaluates it
    (``batchNorm2dNchwEvalScalar``): ``((x − μ) / sqrt(max(σ², 0) + ε)) · γ + β``."""
    return ((x - mean) / ops.sqrt(ops.maximum(var, 0) + eps)) * gamma + beta


def _select(cond, a, b):
    """``cond ? a : b`` for a Python/NumPy bool or elementwise for a boolean array."""
    if isinstance(cond, np.ndarray):
        return np.where(cond, a, b)
    return a if bool(cond) else b


def ibp_rule(s, o, lo, hi, sign):
    """TorchLean ``ibpBatchnorm``.  ``sign`` is the exact sign of ``s`` (−1, 0 or 1, or an array of
    them); the branch test is TorchLean's strict ``s > 0``."""
    pos = sign > 0
    return _select(pos, s * lo + o, s * hi + o), _select(pos, s * hi + o, s * lo + o)


def affine_rule(s, o, A, c):
    """TorchLean ``affBatchnorm``: ``A' = diag(s) A``, ``c' = s ⊙ c + o`` (``s``, ``o``, ``c`` of
    length C, ``A`` of shape C×n, all NumPy arrays)."""
    return s[:, None] * A, s * c + o


def deriv_rule(s, o, dlo, dhi, sign):
    """TorchLean ``derivBatchnorm``: ``s·[dlo, dhi]`` with the endpoints swapped unless ``s > 0``.
    (``o`` is unused: the derivative of an affine map has no offset.)"""
    pos = sign > 0
    return _select(pos, s * dlo, s * dhi), _select(pos, s * dhi, s * dlo)


def second_deriv_rule(s, o, lo, hi, sign):
    """TorchLean ``secondDerivBatchnorm``: the derivative rule, since d²/dt² BN(x(t)) = s·x''(t)."""
    return deriv_rule(s, o, lo, hi, sign)


DEFAULT_RULES = {
    "scale": compute_scale,
    "offset": compute_offset,
    "ibp": ibp_rule,
    "affine": affine_rule,
    "deriv": deriv_rule,
    "second_deriv": second_deriv_rule,
}


# =============================================================================================
# Input validation and number modes


def _is_exact_scalar(v) -> bool:
    return isinstance(v, (Fraction, sympy.Basic))


def _check_scalar(v, where: str):
    """Validate one user scalar; return it normalized (NumPy scalars become Python numbers)."""
    if isinstance(v, (bool, np.bool_)):
        raise ValueError(f"{where} must be a real number, got a bool ({v!r})")
    if isinstance(v, np.integer):
        v = int(v)
    elif isinstance(v, np.floating):
        v = float(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        if math.isnan(v):
            raise ValueError(f"{where} is NaN; every value must be a finite real number")
        if math.isinf(v):
            raise ValueError(f"{where} is {v} (not finite); every value must be finite")
        return v
    if isinstance(v, Fraction):
        return v
    if isinstance(v, sympy.Basic):
        if not isinstance(v, sympy.Expr):
            raise ValueError(f"{where} must be a real number, got {v!r}")
        if v.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo):
            raise ValueError(f"{where} = {v} is not finite; every value must be finite")
        if v.free_symbols:
            raise ValueError(f"{where} = {v} contains symbols {sorted(map(str, v.free_symbols))}; "
                             f"it must be a number")
        if v.is_extended_real is False:
            raise ValueError(f"{where} = {v} is not real")
        if v.atoms(sympy.Float):
            # A SymPy Float carries its own precision; rounding it to a double (or reading it as
            # a decimal) would silently change the value, so it is refused (as decide.to_exact).
            raise ValueError(f"{where} = {v} is an inexact SymPy Float; pass a Rational, "
                             f"Fraction (e.g. Fraction('1.5e-5') from a decimal string) or "
                             f"Python float")
        return v
    if isinstance(v, (complex, np.complexfloating)):
        raise ValueError(f"{where} must be a real number, got the complex number {v!r}")
    raise ValueError(f"{where} must be a real number (int, float, Fraction or SymPy number), "
                     f"got {type(v).__name__} {v!r}")


def _exact_of(v, exact_container: bool, where: str):
    """The exact SymPy number a validated scalar denotes in its container (see module docstring)."""
    if isinstance(v, sympy.Basic):
        return v
    if isinstance(v, float) and not exact_container:
        fr = Fraction(v)  # the binary value
        return sympy.Rational(fr.numerator, fr.denominator)
    return to_exact(v, name=where)


def _fraction_of(v, exact_container: bool, where: str) -> Fraction:
    """Like :func:`_exact_of` but as a Fraction; refuses irrational values (outward mode)."""
    if isinstance(v, Fraction):
        return v
    if isinstance(v, int):
        return Fraction(v)
    if isinstance(v, float) and not exact_container:
        return Fraction(v)
    e = _exact_of(v, exact_container, where)
    if not e.is_Rational:
        raise ValueError(f"rounding='outward' needs rational values; {where} = {e} is not "
                         f"rational (pass a Fraction/float, or use rounding='nearest' for exact "
                         f"output)")
    return Fraction(int(e.p), int(e.q))


def _sign(v) -> int | None:
    """Exact sign of an exact number: rationals directly, algebraic numbers via
    ``decide.sign_exactly`` (whose rational fast path currently raises TypeError on SymPy 1.14,
    because it subtracts SymPy booleans -- reported to the lead).  None if undecidable."""
    if isinstance(v, (int, Fraction)):
        return (v > 0) - (v < 0)
    v = v if isinstance(v, sympy.Basic) else sympy.sympify(v)
    if v.is_Rational:
        return 1 if v.p > 0 else (-1 if v.p < 0 else 0)
    try:
        return sign_exactly(v)
    except TypeError:
        return None


def _exact_sign(v, where: str) -> int:
    sgn = _sign(v)
    if sgn is None:
        raise ValueError(f"could not decide the sign of {where} = {v} exactly")
    return sgn


def _as_array(value, name: str):
    """Validate an array argument; return (array, exact_container).

    Float containers come back as float64 arrays, exact ones as object arrays of validated scalars
    (not yet converted: conversion depends on the container, see :func:`_exact_of`).
    """
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be an array of real numbers, got a string")
    if isinstance(value, np.ndarray):
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name} must be a rectangular array of real numbers ({exc})") from None
    kind = arr.dtype.kind
    if kind in "fiu":
        out = arr.astype(np.float64)
        bad = ~np.isfinite(out)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            what = "NaN" if np.isnan(out[idx]) else f"{out[idx]} (not finite)"
            raise ValueError(f"{name}{list(idx)} is {what}; every value must be finite")
        return out, False
    if kind == "b":
        raise ValueError(f"{name} must hold real numbers, got a boolean array")
    if kind == "c":
        raise ValueError(f"{name} must hold real numbers, got a complex array")
    if kind != "O":
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    flat = [_check_scalar(v, f"{name}{[int(k) for k in np.unravel_index(i, arr.shape)]}")
            for i, v in enumerate(arr.reshape(-1))]
    exact = any(_is_exact_scalar(v) for v in flat)
    if not exact:
        try:
            out = np.array([float(v) for v in flat], dtype=np.float64).reshape(arr.shape)
        except OverflowError:
            raise ValueError(f"{name} has an int too large for float64") from None
        return out, False
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(arr.shape), True


def _exact_array(arr: np.ndarray, exact_container: bool, name: str) -> np.ndarray:
    out = np.empty(arr.shape, dtype=object)
    for idx in np.ndindex(arr.shape):
        out[idx] = _exact_of(arr[idx] if exact_container else float(arr[idx]),
                             exact_container, f"{name}{list(idx)}")
    return out


class BatchNormParams:
    """Frozen inference BatchNorm parameters of C channels (TorchLean ``BatchNormParams``).

    ``running_mean``, ``running_var``, ``gamma``, ``beta``: 1-D sequences of C finite reals;
    ``eps``: a finite real.  Validated: equal lengths (C ≥ 1), finite real values, and
    ``max(running_var[c], 0) + eps > 0`` for every channel (decided exactly on the denoted values;
    a negative running variance is allowed and totalized to 0, as in TorchLean).

    ``exact`` is True when any value is a Fraction or SymPy number (see the module docstring).
    """

    FIELDS = ("running_mean", "running_var", "gamma", "beta")

    def __init__(self, running_mean, running_var, gamma, beta, eps):
        vectors = {}
        for name, value in zip(self.FIELDS, (running_mean, running_var, gamma, beta)):
            try:
                ndim = np.ndim(value)
            except (ValueError, TypeError):
                ndim = None
            if isinstance(value, (str, bytes)) or ndim != 1:
                raise ValueError(f"{name} must be a 1-D sequence of per-channel values, got "
                                 f"{'a string' if isinstance(value, (str, bytes)) else repr(value)}")
            seq = list(value.tolist() if isinstance(value, np.ndarray) and value.dtype.kind != "O"
                       else value)
            vectors[name] = tuple(_check_scalar(v, f"{name}[{i}]") for i, v in enumerate(seq))
        lengths = {name: len(v) for name, v in vectors.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError("mismatched lengths: " + ", ".join(f"{k} has {n}" for k, n in lengths.items())
                             + "; all four must have one entry per channel")
        if lengths["gamma"] == 0:
            raise ValueError("the parameters must have at least one channel (got length 0)")
        if np.ndim(eps) != 0 or isinstance(eps, (str, bytes, list, tuple)):
            raise ValueError(f"eps must be a single real number, got {eps!r}")
        if isinstance(eps, np.ndarray):
            eps = eps.item()
        eps = _check_scalar(eps, "eps")
        self._v = vectors
        self._eps = eps
        self._exact = any(_is_exact_scalar(v) for vals in vectors.values() for v in vals) or \
            _is_exact_scalar(eps)
        # max(var, 0) + eps > 0, decided exactly on the denoted values
        e = self._exact_values()
        for c in range(self.dim):
            var = e["running_var"][c]
            clamped = var if _exact_sign(var, f"running_var[{c}]") > 0 else sympy.Integer(0)
            denom = clamped + e["eps"]
            if _exact_sign(denom, f"max(running_var[{c}], 0) + eps") <= 0:
                raise ValueError(
                    f"max(running_var[{c}], 0) + eps = {denom} must be > 0 (running_var[{c}] = "
                    f"{self._v['running_var'][c]}, eps = {self._eps}); the BatchNorm denominator "
                    f"sqrt(max(var, 0) + eps) would be zero or undefined")

    # -- read-only views ---------------------------------------------------------------------
    running_mean = property(lambda self: self._v["running_mean"])
    running_var = property(lambda self: self._v["running_var"])
    gamma = property(lambda self: self._v["gamma"])
    beta = property(lambda self: self._v["beta"])
    eps = property(lambda self: self._eps)
    dim = property(lambda self: len(self._v["gamma"]))
    exact = property(lambda self: self._exact)

    def __repr__(self) -> str:
        return (f"BatchNormParams(running_mean={list(self.running_mean)}, running_var="
                f"{list(self.running_var)}, gamma={list(self.gamma)}, beta={list(self.beta)}, "
                f"eps={self.eps})")

    @classmethod
    def from_torch(cls, module) -> "BatchNormParams":
        """Parameters of an eval-mode ``torch.nn.BatchNorm{1,2,3}d`` (as float64 values; float32
        parameters convert exactly)."""
        if getattr(module, "running_mean", None) is None or getattr(module, "running_var", None) is None:
            raise ValueError("module has no running statistics (track_running_stats=False?)")

        def vec(t):
            return t.detach().cpu().double().numpy()
        C = module.running_mean.shape[0]
        gamma = vec(module.weight) if getattr(module, "weight", None) is not None else np.ones(C)
        beta = vec(module.bias) if getattr(module, "bias", None) is not None else np.zeros(C)
        return cls(vec(module.running_mean), vec(module.running_var), gamma, beta, float(module.eps))

    # -- denoted values ----------------------------------------------------------------------
    def _exact_values(self) -> dict:
        out = {k: [_exact_of(v, self._exact, f"{k}[{i}]") for i, v in enumerate(vals)]
               for k, vals in self._v.items()}
        out["eps"] = _exact_of(self._eps, self._exact, "eps")
        return out

    def _float_values(self) -> dict:
        assert not self._exact
        try:
            out = {k: np.array([float(v) for v in vals], dtype=np.float64) for k, vals in self._v.items()}
            out["eps"] = float(self._eps)
        except OverflowError:
            raise ValueError("a parameter is an int too large for float64") from None
        return out

    def _fraction_values(self) -> dict:
        out = {k: [_fraction_of(v, self._exact, f"{k}[{i}]") for i, v in enumerate(vals)]
               for k, vals in self._v.items()}
        out["eps"] = _fraction_of(self._eps, self._exact, "eps")
        return out


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


# =============================================================================================
# Float-sound ("outward") mode


_DBL_MAX = np.finfo(np.float64).max


def _round_down(q: Fraction) -> float:
    """The largest float64 ≤ q (−inf if q < −DBL_MAX)."""
    try:
        f = float(q)  # int/int true division: correctly rounded
    except OverflowError:
        f = math.inf if q > 0 else -math.inf
    if f == math.inf:
        return float(_DBL_MAX)  # q >= DBL_MAX + ulp/2 > DBL_MAX
    while f != -math.inf and Fraction(f) > q:
        with np.errstate(over="ignore"):  # -DBL_MAX steps to -inf: still a lower bound
            f = float(np.nextafter(f, -math.inf))
    return f


def _round_up(q: Fraction) -> float:
    return -_round_down(-q)


def _sqrt_enclosure(d: Fraction, bits: int = 160) -> tuple[Fraction, Fraction]:
    """Rationals ``r_lo ≤ sqrt(d) ≤ r_hi`` (d > 0) with relative width < 2**-bits, by integer
    square roots: sqrt(N/D) = sqrt(N·D)/D and isqrt(M) ≤ sqrt(M) < isqrt(M) + 1."""
    N, D = d.numerator, d.denominator
    M = N * D
    k = max(0, (2 * bits - M.bit_length()) // 2 + 1)
    scaled = M << (2 * k)
    a = math.isqrt(scaled)
    den = D << k
    if a * a == scaled:
        return Fraction(a, den), Fraction(a, den)
    return Fraction(a, den), Fraction(a + 1, den)


def _channel_enclosures(p: BatchNormParams, with_offset: bool):
    """Float64 arrays S_lo ≤ scale ≤ S_hi and O_lo ≤ offset ≤ O_hi per channel, from the exact
    rational parameters and a rational enclosure of the square root."""
    fv = p._fraction_values()
    C = p.dim
    S_lo, S_hi, O_lo, O_hi = (np.zeros(C) for _ in range(4))
    for c in range(C):
        g, b, m, v, eps = (fv["gamma"][c], fv["beta"][c], fv["running_mean"][c],
                           fv["running_var"][c], fv["eps"])
        if g == 0:  # scale = 0 exactly, offset = beta exactly
            s_lo = s_hi = Fraction(0)
        else:
            r_lo, r_hi = _sqrt_enclosure(max(v, Fraction(0)) + eps)
            s_lo, s_hi = sorted((g / r_lo, g / r_hi))        # s = g/r is monotone in r > 0
        o1, o2 = sorted((b - m * s_lo, b - m * s_hi)) if with_offset else (Fraction(0), Fraction(0))
        S_lo[c], S_hi[c] = _round_down(s_lo), _round_up(s_hi)
        O_lo[c], O_hi[c] = _round_down(o1), _round_up(o2)
    return S_lo, S_hi, O_lo, O_hi


def _mul_bounds(S_lo, S_hi, x):
    """Float64 (lower, upper) bounds of {s·x : S_lo ≤ s ≤ S_hi} for float64 x, elementwise.

    ``x`` may be ±inf: an exact box endpoint beyond ±DBL_MAX rounded outward stands for a finite
    real, so a product with a zero factor is exactly 0 (never 0·inf = NaN) -- this happens when
    a tiny positive scale rounds down to ``S_lo = 0``."""
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        zero_lo = (S_lo == 0) | (x == 0)   # exact zero products
        zero_hi = (S_hi == 0) | (x == 0)
        p_lo = np.where(zero_lo, 0.0, S_lo * x)
        p_hi = np.where(zero_hi, 0.0, S_hi * x)
        pos = x >= 0
        lo, lo_exact = np.where(pos, p_lo, p_hi), np.where(pos, zero_lo, zero_hi)
        hi, hi_exact = np.where(pos, p_hi, p_lo), np.where(pos, zero_hi, zero_lo)
        lo = np.where(lo_exact, 0.0, np.nextafter(lo, -np.inf))
        hi = np.where(hi_exact, 0.0, np.nextafter(hi, np.inf))
    return lo, hi


def _add_down(a, b):
    """A float64 lower bound of a + b (exact when TwoSum shows the rounded sum is ≤ a + b)."""
    with np.errstate(over="ignore", invalid="ignore"):
        r = a + b
        bp = r - a
        err = (a - (r - bp)) + (b - bp)        # TwoSum: a + b = r + err exactly when finite
        ok = np.isfinite(err) & (err >= 0)
        return np.where(ok, r, np.nextafter(r, -np.inf))


def _add_up(a, b):
    return -_add_down(-a, -b)


def _outward_box(p, lo_a, hi_a, box_exact, bshape, with_offset):
    """Float-sound box.

    Design:

    1. Every parameter is taken at the exact rational value it denotes (floats of a float container
       at their binary value).  Per channel, ``R = sqrt(max(σ², 0) + ε)`` is enclosed in rationals
       ``[r_lo, r_hi]`` by integer square roots (relative width < 2⁻¹⁶⁰), so the exact scale
       ``s = γ/R`` lies between ``γ/r_lo`` and ``γ/r_hi`` and the exact offset ``o = β − μ·s``
       between ``β − μ·s_lo`` and ``β − μ·s_hi`` (all exact rationals).  These are rounded to float64
       with directed rounding (round to nearest by ``Fraction.__float__``, then stepped with
       ``nextafter`` until the float is on the correct side, checked exactly with ``Fraction``):
       ``S_lo ≤ s ≤ S_hi``, ``O_lo ≤ o ≤ O_hi``.  γ = 0 gives ``S = [0, 0]``, ``O = β`` rounded.
    2. An exact box is rounded outward to float64 (lo down, hi up); a float box is used as is.  A
       larger input box has a larger image, so this is sound.
    3. The exact image ``{s·x + o : lo ≤ x ≤ hi}`` is contained in
       ``[min(s·x) + O_lo, max(s·x) + O_hi]`` over ``s ∈ [S_lo, S_hi]``, ``x ∈ {lo, hi}`` (s·x is
       bilinear, so its extremes are at corners).  Each float product is rounded to nearest and
       then moved one step outward with ``nextafter`` (a round-to-nearest result is within half a
       spacing of the exact value, so its outward neighbour is on the correct side; this holds for
       subnormals and on overflow too, where ±inf steps back to ±DBL_MAX only on the side where
       that is still a bound).  Products that are exactly 0 (x = 0 or S = 0) are kept exact.
    4. The sums use TwoSum: ``a + b = r + err`` exactly whenever ``err`` is finite, so ``r`` is kept
       when ``err`` has the right sign and stepped outward otherwise (or when ``err`` is not finite,
       i.e. on overflow).  Lower operands are never +inf and upper ones never −inf, so no NaN
       arises; endpoints beyond the float64 range come out as ±inf, which are still bounds.

    The result is at most a few ulps of ``|s·x| + |o|`` wider than the exact image.
    """
    S_lo, S_hi, O_lo, O_hi = _channel_enclosures(p, with_offset)
    if box_exact:
        xlo = np.empty(lo_a.shape)
        xhi = np.empty(hi_a.shape)
        for idx in np.ndindex(lo_a.shape):
            xlo[idx] = _round_down(_fraction_of(lo_a[idx], True, f"lo{list(idx)}"))
            xhi[idx] = _round_up(_fraction_of(hi_a[idx], True, f"hi{list(idx)}"))  # SymPy values
    else:
        xlo, xhi = lo_a, hi_a
    S_lo, S_hi, O_lo, O_hi = (a.reshape(bshape) for a in (S_lo, S_hi, O_lo, O_hi))
    l1, h1 = _mul_bounds(S_lo, S_hi, xlo)
    l2, h2 = _mul_bounds(S_lo, S_hi, xhi)
    out_lo = _add_down(np.minimum(l1, l2), np.broadcast_to(O_lo, l1.shape))
    out_hi = _add_up(np.maximum(h1, h2), np.broadcast_to(O_hi, h1.shape))
    if np.isnan(out_lo).any() or np.isnan(out_hi).any():  # cannot happen (see step 4)
        raise RuntimeError("internal error: NaN in an outward box")
    return out_lo, out_hi


# =============================================================================================
# Proofs
#
# Symbols: per channel γ, β, μ, σ² (real), ε (real), and R = sqrt(max(σ², 0) + ε), a *positive*
# symbol (it exists and is positive exactly under the assumption max(σ², 0) + ε > 0).  Every
# occurrence of max(σ², 0) is replaced by R² − ε, so sqrt(max(σ², 0) + ε) becomes sqrt(R²) = R.
# An identity proved for all real ε and R > 0 holds for all parameters satisfying the assumption.
# Zero tests go through decide_zero; its side conditions (radicands > 0, denominators ≠ 0) are
# checked to be implied: no radicand may remain, every denominator must be a monomial in positive
# symbols.


_DENOM_ASSUMPTION = "max(σ²_c, 0) + ε > 0 in every channel c (R_c = sqrt(max(σ²_c, 0) + ε) > 0)"
_REAL_ASSUMPTION = "γ, β, μ, σ², ε real"
_R_METHOD = ("R := sqrt(max(σ²,0)+ε) as a positive symbol (max(σ²,0) ↦ R² − ε); "
             "decide_zero (exact normal form over ℚ with 1/R cleared)")

LEAN_FILE = "NN/MLTheory/CROWN/Operators/Batchnorm.lean"


class _Channel:
    """Symbols (or numbers) of one channel and the substitution that introduces R."""

    def __init__(self, k: int | str, gamma=None, eps=None):
        sfx = f"_{k}" if k != "" else ""
        self.mean = sympy.Symbol(f"mu{sfx}", real=True)
        self.var = sympy.Symbol(f"var{sfx}", real=True)
        self.beta = sympy.Symbol(f"beta{sfx}", real=True)
        self.gamma = sympy.Symbol(f"gamma{sfx}", real=True) if gamma is None else gamma
        self.eps = eps if eps is not None else sympy.Symbol("eps", real=True)
        self.R = sympy.Symbol(f"R{sfx}", positive=True)
        self.sub = {sympy.Max(self.var, 0): self.R ** 2 - self.eps}

    def params(self):
        return dict(mean=self.mean, var=self.var, gamma=self.gamma, beta=self.beta, eps=self.eps)


def _concrete_channel(mean, var, gamma, beta, eps):
    ch = _Channel.__new__(_Channel)
    ch.mean, ch.var, ch.gamma, ch.beta, ch.eps = (sympy.Rational(v) for v in (mean, var, gamma, beta, eps))
    ch.R = None
    ch.sub = {}
    return ch


def _scale_of(rules, ch):
    return rules["scale"](ch.gamma, ch.var, ch.eps, SYMPY_OPS)


def _offset_of(rules, ch):
    return rules["offset"](ch.gamma, ch.beta, ch.mean, ch.var, ch.eps, SYMPY_OPS)


def _forward(ch, x):
    return bn_forward(x, ch.mean, ch.var, ch.gamma, ch.beta, ch.eps, SYMPY_OPS)


def _positive_monomial(q, positive: set) -> bool:
    """q is a nonzero rational times a product of powers of positive symbols."""
    q = sympy.expand(q)
    if q.is_Rational:
        return q != 0
    if not q.free_symbols <= positive:
        return False
    factors = q.args if q.is_Mul else (q,)
    for f in factors:
        if f.is_Rational:
            if f == 0:
                return False
        elif f.is_Symbol:
            continue
        elif f.is_Pow and f.base.is_Symbol and f.exp.is_Integer:
            continue
        else:
            return False
    return True


class _Undecided(Exception):
    pass


# Exceptions never taken for the rule's fault: a timeout must stay a timeout.  (_Undecided is
# also a timeout in the symbolic phase; at a single grid point it only means "skip this point".)
_PASS_THROUGH = (BudgetExceeded, _Undecided)


def _raised(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())
    if len(msg) > 300:
        msg = msg[:300] + "…"
    return f"the rule raised {type(exc).__name__} (evaluating it or deciding its output): {msg}"


def _is_zero(expr, positive: set):
    """True if decide_zero proves ``expr ≡ 0`` with side conditions implied by the assumptions
    (no radicand left, every denominator a monomial in positive symbols); False if its normal
    form is not zero; None if it is zero only under side conditions that the assumptions do not
    imply.  A timeout raises _Undecided."""
    expr = expr if isinstance(expr, sympy.Basic) else sympy.sympify(expr)
    dec = decide_zero(expr)
    if dec.status == "timeout":
        raise _Undecided("decide_zero ran out of time")
    if dec.status != "proved":
        return False
    if dec.radicands or not all(_positive_monomial(q, positive) for q in dec.nonzero_denominators):
        return None
    return True


# -- counterexample grids (exact rationals; R rational for the first (σ², ε) pairs) -----------

_R = sympy.Rational
_GAMMAS = {1: [_R(2), _R(1, 2)], -1: [_R(-2), _R(-1, 2)], 0: [_R(0)]}
_MEANS = [_R(1), _R(-2)]
_BETAS = [_R(3), _R(-3)]
_VAR_EPS = [(_R(4), _R(5)), (_R(-4), _R(9)), (_R(0), _R(1, 4)), (_R(1), _R(1))]
_BOXES = [(_R(-1), _R(2)), (_R(1), _R(3)), (_R(-3), _R(-1)), (_R(0), _R(0))]
_CASES = [(1, "pos", "γ > 0 (⇔ scale > 0)"), (-1, "neg", "γ < 0 (⇔ scale < 0)"),
          (0, "zero", "γ = 0 (⇔ scale = 0; TorchLean's strict `>` takes the else branch)")]


def _box_grid(case_sign):
    for (var, eps) in _VAR_EPS:
        for gamma in _GAMMAS[case_sign]:
            for mean in _MEANS:
                for beta in _BETAS:
                    for lo, hi in _BOXES:
                        yield dict(mean=mean, var=var, gamma=gamma, beta=beta, eps=eps, lo=lo, hi=hi)


def _targets():
    """Box properties: name -> (point name, target(ch, x) = the true value at the point)."""
    t = sympy.Symbol("t", real=True)
    X = sympy.Function("x")

    def first(ch, d):
        expr = sympy.diff(_forward(ch, X(t)), t)
        return expr.xreplace({sympy.Derivative(X(t), t): d})

    def second(ch, d):
        expr = sympy.diff(_forward(ch, X(t)), t, 2)
        return expr.xreplace({sympy.Derivative(X(t), (t, 2)): d})

    return {
        "ibp": ("x", _forward, "BN(x)"),
        "deriv": ("d", first, "d/dt BN(x(t)) at x'(t) = d"),
        "second_deriv": ("d", second, "d²/dt² BN(x(t)) at x''(t) = d"),
    }


def _eval_box_rule(rules, kind, case_point, target):
    """Evaluate rule and target at a concrete point; return (lo', hi', T) exact SymPy numbers."""
    ch = _concrete_channel(case_point["mean"], case_point["var"], case_point["gamma"],
                           case_point["beta"], case_point["eps"])
    s, o = _scale_of(rules, ch), _offset_of(rules, ch)
    sign = _sign(s)
    if sign is None:
        raise _Undecided("sign")
    blo, bhi = rules[kind](s, o, case_point["lo"], case_point["hi"], sign)
    T = target(ch, case_point["point"])
    return sympy.sympify(blo), sympy.sympify(bhi), T


def _box_counterexample(rules, kind, case_sign, check):
    """First grid point where ``check(lo', hi', T, point)`` returns a violation description."""
    pname, target, tname = _targets()[kind]
    for pt in _box_grid(case_sign):
        for point in (pt["lo"], pt["hi"], (pt["lo"] + pt["hi"]) / 2):
            cp = dict(pt, point=point)
            try:
                blo, bhi, T = _eval_box_rule(rules, kind, cp, target)
                violation = check(blo, bhi, T, cp)
            except BudgetExceeded:
                raise
            except Exception:  # a point where a (wrong) rule is undefined or not real: skip it
                continue
            if violation:
                names = {"lo": "lo" if kind == "ibp" else "dlo", "hi": "hi" if kind == "ibp" else "dhi"}
                ce = {"gamma": cp["gamma"], "beta": cp["beta"], "mean": cp["mean"],
                      "var": cp["var"], "eps": cp["eps"], names["lo"]: cp["lo"],
                      names["hi"]: cp["hi"], pname: point,
                      f"{kind}_lo": blo, f"{kind}_hi": bhi, "value": T, "value_of": tname}
                ce.update(violation)
                return ce
    return None


def _linear_certificate(diff, case_sign, g, ch, lo, a, b, terms_names):
    """Prove ``diff ≥ 0`` for all lo ∈ ℝ, a, b ≥ 0 (x = lo + a, hi = lo + a + b).

    diff must be affine: diff ≡ K0 + K1·lo + Ka·a + Kb·b (decide_zero), with K1 ≡ 0 and each of K0,
    Ka, Kb ≡ 0, +s or −s where s = γ/R (decide_zero); the sign of s is the case's.  Returns a
    readable certificate string, or None if some step does not hold.
    """
    positive = {ch.R} | ({g} if g is not None else set())
    z = {lo: 0, a: 0, b: 0}
    K0 = diff.xreplace(z)
    K1, Ka, Kb = (sympy.diff(diff, v).xreplace(z) for v in (lo, a, b))
    if _is_zero(diff - (K0 + K1 * lo + Ka * a + Kb * b), positive) is not True:
        return None
    if _is_zero(K1, positive) is not True:
        return None
    s = ch.gamma / ch.R
    pieces = []
    for K, factor in ((K0, None), (Ka, terms_names[0]), (Kb, terms_names[1])):
        for cand, sgn, label in ((0, 0, "0"), (s, case_sign, "s"), (-s, -case_sign, "(−s)")):
            if _is_zero(K - cand, positive) is True:
                break
        else:
            return None
        if sgn < 0:
            return None
        if sgn > 0:
            pieces.append(f"{label}·{factor}" if factor else label)
    return " + ".join(pieces) if pieces else "0"


def _prove_box_sound(rules, kind, case_sign, case_label):
    """Soundness of a box rule in one sign case: lo ≤ point ≤ hi ⇒ lo' ≤ T(point) ≤ hi'."""
    pname, target, tname = _targets()[kind]
    g = sympy.Symbol("g", positive=True)
    gamma = case_sign * g
    ch = _Channel("", gamma=gamma)
    lo = sympy.Symbol("lo", real=True)
    a = sympy.Symbol("a", nonnegative=True)
    b = sympy.Symbol("b", nonnegative=True)
    x = lo + a
    hi = lo + a + b
    lo_n, hi_n = ("lo", "hi") if kind == "ibp" else ("dlo", "dhi")
    factors = (f"({pname} − {lo_n})", f"({hi_n} − {pname})")
    raised = None
    try:
        s, o = _scale_of(rules, ch).xreplace(ch.sub), _offset_of(rules, ch).xreplace(ch.sub)
        blo, bhi = rules[kind](s, o, lo, hi, case_sign)
        T = target(ch, x).xreplace(ch.sub)
        upper = _linear_certificate(sympy.sympify(bhi) - T, case_sign, g if case_sign else None,
                                    ch, lo, a, b, factors)
        lower = _linear_certificate(T - sympy.sympify(blo), case_sign, g if case_sign else None,
                                    ch, lo, a, b, factors)
    except _PASS_THROUGH:
        raise
    except Exception as exc:  # the rule under test (or its output) is not usable symbolically
        raised, upper, lower = _raised(exc), None, None
    if upper is not None and lower is not None:
        return "proved", (f"{kind}_hi − {tname} ≡ {upper};  {tname} − {kind}_lo ≡ {lower}  "
                          f"(s = γ/R with sign({case_sign:+d}), {factors[0]} ≥ 0, {factors[1]} ≥ 0)"), None

    def check(blo_, bhi_, T_, cp):
        if _exact_sign_or_none(T_ - blo_) == -1:
            return {"claim": f"{kind}_lo <= value", "violated_by": blo_ - T_}
        if _exact_sign_or_none(bhi_ - T_) == -1:
            return {"claim": f"value <= {kind}_hi", "violated_by": T_ - bhi_}
        return None
    ce = _box_counterexample(rules, kind, case_sign, check)
    why = raised or "exact case analysis did not go through"
    if ce is not None:
        return "failed", f"{why}; exact counterexample found", ce
    if raised:
        return "undecided", f"{raised}; no counterexample on the grid", None
    return "undecided", "no sign certificate and no counterexample on the grid", None


def _exact_sign_or_none(v):
    return _sign(sympy.sympify(v))


def _prove_box_exact(rules, kind, case_sign, case_label):
    """Exactness: the output is a valid box (lower ≤ upper whenever lo ≤ hi) and each output bound
    equals T at a corner of the input box.  Then every sound box contains the output box (it
    contains T at both corners, hence the interval between them); with soundness
    (``*_sound_*``) the output is exactly the image.  Without the validity part an inverted
    output (e.g. IBP without the swap for γ < 0: both bounds are corner values, in the wrong
    order) would count as exact."""
    pname, target, tname = _targets()[kind]
    g = sympy.Symbol("g", positive=True)
    ch = _Channel("", gamma=case_sign * g)
    lo = sympy.Symbol("lo", real=True)
    hi = sympy.Symbol("hi", real=True)
    a = sympy.Symbol("a", nonnegative=True)
    b = sympy.Symbol("b", nonnegative=True)
    positive = {ch.R, g}
    lo_n, hi_n = ("lo", "hi") if kind == "ibp" else ("dlo", "dhi")
    found, valid, raised = {}, None, None
    try:
        s, o = _scale_of(rules, ch).xreplace(ch.sub), _offset_of(rules, ch).xreplace(ch.sub)
        blo, bhi = rules[kind](s, o, lo, hi, case_sign)
        corners = {"lo": target(ch, lo).xreplace(ch.sub), "hi": target(ch, hi).xreplace(ch.sub)}
        for which, bound in (("lower", sympy.sympify(blo)), ("upper", sympy.sympify(bhi))):
            for cname, cval in corners.items():
                if _is_zero(bound - cval, positive) is True:
                    found[which] = cname
                    break
        # validity: hi = lo + b with b ≥ 0 ⇒ upper − lower ≥ 0 (same certificate form as soundness)
        vlo, vhi = rules[kind](s, o, lo, lo + b, case_sign)
        valid = _linear_certificate(sympy.sympify(vhi) - sympy.sympify(vlo), case_sign,
                                    g if case_sign else None, ch, lo, a, b,
                                    ("", f"({hi_n} − {lo_n})"))
    except _PASS_THROUGH:
        raise
    except Exception as exc:  # the rule under test (or its output) is not usable symbolically
        raised = _raised(exc)
    if len(found) == 2 and valid is not None:
        ren = {"lo": lo_n, "hi": hi_n}
        return "proved", (f"{kind}_lo ≡ T({ren[found['lower']]}), {kind}_hi ≡ T({ren[found['upper']]}) "
                          f"where T = {tname}; {kind}_hi − {kind}_lo ≡ {valid} ≥ 0"), None

    def check(blo_, bhi_, T_, cp):
        if _exact_sign_or_none(bhi_ - blo_) == -1:  # the grid boxes have lo ≤ hi
            return {"claim": f"valid box: {kind}_lo <= {kind}_hi", "violated_by": blo_ - bhi_}
        c = _concrete_channel(cp["mean"], cp["var"], cp["gamma"], cp["beta"], cp["eps"])
        t_lo, t_hi = target(c, cp["lo"]), target(c, cp["hi"])
        for which, bound in (("lower", blo_), ("upper", bhi_)):
            if differ_exactly(bound, t_lo) and differ_exactly(bound, t_hi):
                return {"claim": f"{kind}_{'lo' if which == 'lower' else 'hi'} equals the value "
                                 f"at a corner", "value_at_lo_corner": t_lo, "value_at_hi_corner": t_hi}
        return None
    ce = _box_counterexample(rules, kind, case_sign, check)
    if ce is not None:
        why = raised or ("the output box is inverted (lower > upper)" if ce["claim"].startswith("valid")
                         else "a bound is not T at either corner")
        return "failed", f"{why}; exact counterexample found", ce
    if raised:
        return "undecided", f"{raised}; no counterexample on the grid", None
    what = ("no corner identity" if len(found) < 2 else "no certificate that lower ≤ upper")
    return "undecided", f"{what} and no counterexample on the grid", None


# -- identities --------------------------------------------------------------------------------

_ID_GRID = [
    dict(mean=[_R(1), _R(-2)], var=[_R(4), _R(-4)], gamma=[_R(2), _R(-1, 2)], beta=[_R(3), _R(-3)],
         eps=_R(5)),
    dict(mean=[_R(-1, 3), _R(5)], var=[_R(0), _R(11)], gamma=[_R(-3), _R(7, 5)],
         beta=[_R(1, 2), _R(2)], eps=_R(1, 4)),
    dict(mean=[_R(2), _R(0)], var=[_R(1), _R(3)], gamma=[_R(1), _R(1)], beta=[_R(0), _R(1)],
         eps=_R(1)),
    dict(mean=[_R(3), _R(-1)], var=[_R(-4), _R(16)], gamma=[_R(-2), _R(3)], beta=[_R(1), _R(-1)],
         eps=_R(9)),   # a negative variance in channel 0 (totalization)
]
_VEC_VALUES = [_R(2), _R(-1), _R(1, 3), _R(5), _R(-7, 2), _R(3), _R(-2), _R(4), _R(1, 5)]


def _prove_identity(builder, n_channels, extra_symbols=()):
    """builder(channels, extra) -> list of (label, lhs, rhs); prove lhs ≡ rhs for each.

    Symbolic channels use R; counterexamples instantiate the channels and the extra symbols with
    exact rationals from fixed grids and are confirmed with differ_exactly.
    """
    eps = sympy.Symbol("eps", real=True)
    chans = [_Channel(k if n_channels > 1 else "", eps=eps) for k in range(n_channels)]
    sub = {}
    for ch in chans:
        sub.update(ch.sub)
    positive = {ch.R for ch in chans}
    raised = None
    try:
        pairs = builder(chans, list(extra_symbols))
        failing = []
        for label, lhs, rhs in pairs:
            d = (sympy.sympify(lhs) - sympy.sympify(rhs)).xreplace(sub)
            if _is_zero(d, positive) is not True:
                failing.append(label)
    except _PASS_THROUGH:
        raise
    except Exception as exc:  # the rule under test (or its output) is not usable symbolically
        raised, failing = _raised(exc), ["all components"]
    if not failing:
        return "proved", f"{len(pairs)} component identities, each by decide_zero", None
    for gi, grid in enumerate(_ID_GRID):
        cc = [_concrete_channel(grid["mean"][k], grid["var"][k], grid["gamma"][k], grid["beta"][k],
                                grid["eps"]) for k in range(n_channels)]
        extra = [_VEC_VALUES[(i + gi) % len(_VEC_VALUES)] for i in range(len(extra_symbols))]
        try:
            cpairs = builder(cc, extra)
        except BudgetExceeded:
            raise
        except Exception:  # a (wrong) rule undefined at this point: try the next one
            continue
        for label, lhs, rhs in cpairs:
            lhs, rhs = sympy.sympify(lhs), sympy.sympify(rhs)
            if lhs.free_symbols or rhs.free_symbols:
                continue
            try:
                differ = differ_exactly(lhs, rhs)
            except BudgetExceeded:
                raise
            except Exception:  # not an exact real number (e.g. sqrt of a negative): skip
                continue
            if differ:
                ce = {}
                for k in ("mean", "var", "gamma", "beta"):
                    for c in range(n_channels):
                        ce[f"{k}[{c}]" if n_channels > 1 else k] = grid[k][c]
                ce["eps"] = grid["eps"]
                ce.update({str(sym): val for sym, val in zip(extra_symbols, extra)})
                ce.update({"claim": f"{label} = 0", "component": label, "lhs": lhs, "rhs": rhs})
                why = raised if raised else "normal form not zero"
                return "failed", f"{label}: {why}; exact counterexample found", ce
    if raised:
        return "undecided", f"{raised}; no counterexample on the grid", None
    return "undecided", f"normal form of {failing} not zero, no counterexample on the grid", None


def _identity_obligations(rules):
    """(name, group, statement, lean_name, extra assumptions, builder, n_channels, extra symbols)."""
    x = sympy.Symbol("x", real=True)
    t = sympy.Symbol("t", real=True)
    X = sympy.Function("x")
    C, n = 2, 3
    A = [[sympy.Symbol(f"A_{i}{j}", real=True) for j in range(n)] for i in range(C)]
    cvec = [sympy.Symbol(f"c_{i}", real=True) for i in range(C)]
    xs = [sympy.Symbol(f"x_{j}", real=True) for j in range(n)]
    xv = [sympy.Symbol(f"x_{i}", real=True) for i in range(C)]

    def affine_form(ch, e):
        return [("BN(x) − (scale·x + offset)", _forward(ch[0], e[0]),
                 _scale_of(rules, ch[0]) * e[0] + _offset_of(rules, ch[0]))]

    def graph_offset(ch, e):
        c0 = ch[0]
        return [("β − μ·scale − offset", c0.beta - c0.mean * _scale_of(rules, c0), _offset_of(rules, c0))]

    def scale_sign(ch, e):
        c0 = ch[0]
        root = sympy.sqrt(sympy.Max(c0.var, 0) + c0.eps)
        return [("scale·sqrt(max(σ²,0)+ε) − γ", _scale_of(rules, c0) * root, c0.gamma)]

    def affine_comp(ch, e):
        Am = np.array(e[:C * n], dtype=object).reshape(C, n)
        cv = np.array(e[C * n:C * n + C], dtype=object)
        xx = e[C * n + C:]
        s = np.array([_scale_of(rules, c) for c in ch], dtype=object)
        o = np.array([_offset_of(rules, c) for c in ch], dtype=object)
        A2, c2 = rules["affine"](s, o, Am, cv)
        out = []
        for i in range(C):
            pre = sum(Am[i, j] * xx[j] for j in range(n)) + cv[i]
            lhs = _forward(ch[i], pre)
            rhs = sum(A2[i, j] * xx[j] for j in range(n)) + c2[i]
            out.append((f"channel {i}", lhs, rhs))
        return out

    def jacobian(ch, e):
        ys = [_forward(ch[i], xv[i]) for i in range(C)]
        return [(f"J[{i}][{j}]", sympy.diff(ys[i], xv[j]), _scale_of(rules, ch[i]) if i == j else 0)
                for i in range(C) for j in range(C)]

    def hessian(ch, e):
        ys = [_forward(ch[i], xv[i]) for i in range(C)]
        return [(f"H[{i}][{j}][{k}]", sympy.diff(ys[i], xv[j], xv[k]), 0)
                for i in range(C) for j in range(C) for k in range(C)]

    # x'(t) (resp. x''(t)) is an opaque value: both sides are written with it replaced by one
    # fresh symbol, so counterexamples can instantiate it.
    dx = sympy.Symbol("xdot", real=True)
    ddx = sympy.Symbol("xddot", real=True)

    def chain1(ch, e):
        lhs = sympy.diff(_forward(ch[0], X(t)), t).xreplace({sympy.Derivative(X(t), t): e[0]})
        return [("d/dt BN(x(t)) − scale·x'(t)", lhs, _scale_of(rules, ch[0]) * e[0])]

    def chain2(ch, e):
        lhs = sympy.diff(_forward(ch[0], X(t)), t, 2).xreplace(
            {sympy.Derivative(X(t), (t, 2)): e[0], sympy.Derivative(X(t), t): e[1]})
        return [("d²/dt² BN(x(t)) − scale·x''(t)", lhs, _scale_of(rules, ch[0]) * e[0])]

    flat = [A[i][j] for i in range(C) for j in range(n)] + cvec + xs
    return [
        ("scale_offset_identity", "identity",
         "BN(x) = ((x − μ)/sqrt(max(σ²,0)+ε))·γ + β equals scale·x + offset with scale = "
         "γ/sqrt(max(σ²,0)+ε) (computeScale) and offset = β − γ·μ/sqrt(max(σ²,0)+ε) (computeOffset), "
         "for all real x",
         f"Proofs.Normalization.batchNorm_inference_eq_mul_add; {LEAN_FILE}: computeScale/computeOffset",
         [], affine_form, 1, [x]),
        ("offset_graph_form", "identity",
         "β − μ·scale = offset (the graph engine's batchNorm2dNchwEvalBias equals computeOffset over ℝ)",
         "NN/MLTheory/CROWN/Graph/Engine/Base.lean: batchNorm2dNchwEvalBias", [], graph_offset, 1, []),
        ("scale_sign", "identity",
         "scale·sqrt(max(σ²,0)+ε) = γ; with sqrt(max(σ²,0)+ε) > 0 this gives sign(scale) = sign(γ), "
         "which justifies the case split γ > 0 / γ < 0 / γ = 0 below",
         None, [], scale_sign, 1, []),
        ("affine_composition", "affine",
         f"for symbolic A (C×n = {C}×{n}), c (C = {C}) and x (n = {n}): BN(A x + c) = (diag(scale) A) x "
         f"+ (scale ⊙ c + offset), channel by channel (affBatchnorm); shown at these sizes only",
         f"{LEAN_FILE}: affBatchnorm", [], affine_comp, C, flat),
        ("jacobian_diag", "deriv",
         f"the Jacobian of BN (sympy.diff of the forward expression, C = {C} channels) is diag(scale)",
         f"{LEAN_FILE}: derivBatchnorm (docstring: d(BN)/dx = scale)", [], jacobian, C, []),
        ("deriv_chain_rule", "deriv",
         "for a differentiable curve x(t) (sympy Function): d/dt BN(x(t)) = scale·x'(t)",
         f"{LEAN_FILE}: derivBatchnorm", ["x(t) differentiable"], chain1, 1, [dx]),
        ("hessian_zero", "second_deriv",
         f"every second partial derivative of BN (C = {C} channels) is 0",
         f"{LEAN_FILE}: secondDerivBatchnorm (docstring: second derivative is zero)", [], hessian, C, []),
        ("second_deriv_chain_rule", "second_deriv",
         "for a twice-differentiable curve x(t) (sympy Function): d²/dt² BN(x(t)) = scale·x''(t)",
         f"{LEAN_FILE}: secondDerivBatchnorm", ["x(t) twice differentiable"], chain2, 1,
         [ddx, dx]),
    ]


_BOX_KINDS = {
    "ibp": ("ibp", "lo ≤ x ≤ hi", "ibp_lo ≤ BN(x) ≤ ibp_hi", f"{LEAN_FILE}: ibpBatchnorm"),
    "deriv": ("deriv", "dlo ≤ x'(t) ≤ dhi",
              "deriv_lo ≤ d/dt BN(x(t)) ≤ deriv_hi", f"{LEAN_FILE}: derivBatchnorm"),
    "second_deriv": ("second_deriv", "lo ≤ x''(t) ≤ hi",
                     "second_deriv_lo ≤ d²/dt² BN(x(t)) ≤ second_deriv_hi",
                     f"{LEAN_FILE}: secondDerivBatchnorm"),
}


def _run(budget, fn):
    """Run one decision under a time budget; a timeout or unverifiable step is 'undecided'."""
    start = time.perf_counter()
    try:
        with time_budget(budget):
            status, detail, ce = fn()
    except (BudgetExceeded, _Undecided) as exc:
        status, detail, ce = "undecided", str(exc) or "time budget exceeded", None
    except Exception as exc:  # last resort (e.g. a rule failing inside the counterexample check)
        status, detail, ce = "undecided", f"the obligation raised {type(exc).__name__}: {exc}", None
    return status, detail, ce, time.perf_counter() - start


def prove(budget: float | None = 60.0, rules: dict | None = None) -> Certificate:
    """Prove the inference BatchNorm bound rules; returns a Certificate.

    ``rules`` replaces any of :data:`DEFAULT_RULES` (keys ``scale``, ``offset``, ``ibp``,
    ``affine``, ``deriv``, ``second_deriv``; same signatures) -- for instance with a deliberately
    wrong rule, which is then reported 'failed' with an exact counterexample.  ``budget``: seconds
    per obligation (``None`` or ``math.inf``: unbounded; see :func:`symbolic_bn.exact.budget.check_budget`).
    """
    budget = check_budget(budget)
    if rules is None:
        rules = {}
    if not isinstance(rules, dict):
        raise ValueError(f"rules must be a dict, got {type(rules).__name__}")
    unknown = set(rules) - set(DEFAULT_RULES)
    if unknown:
        raise ValueError(f"unknown rule names {sorted(unknown)}; known: {sorted(DEFAULT_RULES)}")
    for k, f in rules.items():
        if not callable(f):
            raise ValueError(f"rules[{k!r}] must be callable")
    rules = {**DEFAULT_RULES, **rules}
    cert = Certificate("inference BatchNorm bounds", parameters={
        "rules": {k: getattr(f, "__qualname__", repr(f)) for k, f in rules.items()},
        "affine_sizes": "C=2, n=3", "jacobian_channels": 2, "budget_per_obligation": budget})
    t0 = time.perf_counter()
    base = [_REAL_ASSUMPTION, _DENOM_ASSUMPTION]

    box_after = {"scale_sign": "ibp", "deriv_chain_rule": "deriv",
                 "second_deriv_chain_rule": "second_deriv"}
    for name, group, statement, lean, extra_as, builder, nch, extra in _identity_obligations(rules):
        status, detail, ce, secs = _run(budget, lambda: _prove_identity(builder, nch, extra))
        cert.add(Obligation(name=name, group=group, statement=statement, lean_name=lean,
                            assumptions=base + extra_as, method=_R_METHOD, status=status,
                            seconds=secs, counterexample=ce, detail=detail))
        if name in box_after:  # the box obligations follow the identity they rely on
            _add_box_obligations(cert, rules, budget, base, box_after[name])
    cert.seconds = time.perf_counter() - t0
    return cert


def _add_box_obligations(cert, rules, budget, base, kind):
    group, hyp, concl, lean = _BOX_KINDS[kind]
    what = {"ibp": "the input box", "deriv": "the derivative box",
            "second_deriv": "the second-derivative box"}[kind]
    for case_sign, tag, case_text in _CASES:
        method = ("exact case analysis on sign(γ) = sign(scale) (obligation scale_sign); " + _R_METHOD
                  + "; point = lo + a, hi = point + b with a, b ≥ 0; each difference ≡ K0 + Ka·a + Kb·b"
                  " with every K ≡ 0 or ±scale of known sign (decide_zero), so it is a sum of"
                  " products of nonnegative factors; counterexamples from an exact rational grid")
        status, detail, ce, secs = _run(budget, lambda: _prove_box_sound(rules, kind, case_sign, case_text))
        cert.add(Obligation(
            name=f"{kind}_sound_{tag}", group=group,
            statement=f"case {case_text}: {hyp} ⇒ {concl}", lean_name=lean,
            assumptions=base + [case_text, hyp], method=method, status=status, seconds=secs,
            counterexample=ce, detail=detail))
    for case_sign, tag, case_text in _CASES:
        method = ("exact case analysis on sign(γ); " + _R_METHOD
                  + "; each output bound minus the true value at a corner of the box ≡ 0; upper −"
                  " lower with hi = lo + b, b ≥ 0, ≡ 0 or ±scale·b of known sign")
        status, detail, ce, secs = _run(budget, lambda: _prove_box_exact(rules, kind, case_sign, case_text))
        cert.add(Obligation(
            name=f"{kind}_exact_{tag}", group=group,
            statement=(f"case {case_text}: the output is a valid box (lower ≤ upper whenever "
                       f"{what} has lo ≤ hi) and each output bound is attained at a corner of "
                       f"{what} (bound − value at that corner ≡ 0), so every sound box contains it"),
            lean_name=lean, assumptions=base + [case_text], method=method, status=status,
            seconds=secs, counterexample=ce, detail=detail))
