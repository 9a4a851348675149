"""Float-sound ("outward") mode: float64 boxes that contain the exact real image of the box under
the exact real BatchNorm map, for the denoted values (``rounding='outward'``).

Directed rounding of exact rationals (:func:`_round_down`, :func:`_round_up`), a rational
enclosure of the square root by integer square roots (:func:`_sqrt_enclosure`), outward products
and TwoSum sums; :func:`_outward_box` states the design and why it is sound.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from .inputs import _fraction_of
from .params import BatchNormParams


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
