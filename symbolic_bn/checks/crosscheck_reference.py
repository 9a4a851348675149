r"""The mpmath reference of the channel-first BatchNorm (C×H×W) and its self-check.

The reference is evaluated at ``dps`` digits on *exactly* the float inputs it is given (each
float32/float64 value is converted to ``mpf`` exactly; ``eps`` too): forward (mean, variance,
``r = 1/sqrt(var + eps)``, x̂, ``y = γ x̂ + β``), the closed-form backward (dx, dγ, dβ) and the JVP,
as plain Python loops over ``mpf`` at the caller's ``mp.workdps`` (:func:`reference` sets its own;
the global precision is never changed).  Semantics of the layer: :mod:`symbolic_bn.numeric`.

The reference is itself checked without symbolic differentiation: at the first point of every
family (``mp.diff`` at ``dps`` digits) the directional derivative of ``⟨y(p + s·t), g⟩`` along a random
tangent ``t = (tx, tγ, tβ)`` is compared with ``⟨t, Jᵀg⟩`` from the reference backward and with
``⟨J t, g⟩`` from the reference JVP (the dot-product test).  A discrepancy above
``10^(−⌊dps/2⌋)·(1 + Σ|terms|)`` raises :class:`ReferenceCheckError` (an internal error: the
reference would be wrong).  At ``dps = 50`` the discrepancies are ~1e−48.
"""
from __future__ import annotations

import numbers

import mpmath
import numpy as np
from mpmath import mp

__all__ = ["reference", "ReferenceCheckError", "MIN_DPS"]

MIN_DPS = 20


class ReferenceCheckError(RuntimeError):
    """Internal error: the mpmath reference failed its own finite-difference/dot-product check."""


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _validate_dps(dps):
    if not _is_int(dps) or dps < MIN_DPS:
        raise ValueError(f"dps must be an int >= {MIN_DPS}; got {dps!r}")


def _to_mp_rows(arr):
    """(C, H, W) float array -> list of C lists of N exact mpf values."""
    C = arr.shape[0]
    flat = arr.reshape(C, -1)
    return [[mp.mpf(float(v)) for v in row] for row in flat]


def _to_mp_vec(arr):
    return [mp.mpf(float(v)) for v in arr]


def _standardize(row, eps, ddof=0, centered=True, word="var", group="channel 0"):
    """One statistics group of mpf values: ``(mean, statistic, sqrt(statistic + eps), r, x̂)`` with
    ``r = 1/sqrt(statistic + eps)``; the statistic is the variance (``centered=False``, rms_norm:
    mean(x²), the mean taken as 0) over ``n − ddof``.  Outside the domain statistic + eps > 0 it
    raises ValueError naming ``group``."""
    n = len(row)
    m = mp.fsum(row) / n if centered else mp.zero
    cen = [v - m for v in row]
    stat = mp.fsum(t * t for t in cen) / (n - ddof)
    ve = stat + eps
    if ve <= 0:
        raise ValueError(f"point outside the domain {word} + eps > 0 ({group}: {word} + eps = "
                         f"{mpmath.nstr(ve, 5)})")
    s = mp.sqrt(ve)
    rc = 1 / s
    return m, stat, s, rc, [t * rc for t in cen]


def _ref_forward(xs, gam, bet, eps, ddof=0):
    """Reference forward on mpf rows.  Returns dict of per-channel lists.  ``ddof=1`` gives the
    N − 1 (Bessel-corrected) variance, used only to measure whether that bug would be caught."""
    mean, var, std, r, xhat, y = [], [], [], [], [], []
    for c, row in enumerate(xs):
        m, v, s, rc, xh = _standardize(row, eps, ddof, group=f"channel {c}")
        mean.append(m)
        var.append(v)
        std.append(s)
        r.append(rc)
        xhat.append(xh)
        y.append([gam[c] * t + bet[c] for t in xh])
    return {"mean": mean, "var": var, "std": std, "r": r, "xhat": xhat, "y": y}


def _ref_backward(fw, gam, gs):
    dx, dgamma, dbeta, s2s = [], [], [], []
    for c, (xh, g) in enumerate(zip(fw["xhat"], gs)):
        n = len(g)
        s1 = mp.fsum(g)
        s2 = mp.fsum(a * b for a, b in zip(g, xh))
        coef = gam[c] * fw["r"][c] / n
        dx.append([coef * (n * gp - s1 - xp * s2) for gp, xp in zip(g, xh)])
        dgamma.append(s2)
        dbeta.append(s1)
        s2s.append(s2)
    return {"dx": dx, "dgamma": dgamma, "dbeta": dbeta, "S2": s2s}


def _ref_jvp(fw, gam, tx, tg, tb):
    out = []
    for c, (xh, t) in enumerate(zip(fw["xhat"], tx)):
        n = len(t)
        m1 = mp.fsum(t) / n
        m2 = mp.fsum(a * b for a, b in zip(t, xh)) / n
        k = gam[c] * fw["r"][c]
        out.append([k * (tp - m1 - xp * m2) + xp * tg[c] + tb[c] for tp, xp in zip(t, xh)])
    return out


def reference(x, gamma, beta, eps, grad_out=None, dps=50):
    """mpmath reference values at ``dps`` digits for float inputs taken exactly as given.

    Returns a dict of float64 NumPy arrays (each the nearest double to the high-precision value):
    ``mean``, ``var``, ``std`` (shape (C,)), ``xhat``, ``y`` (shape (C, H, W)) and, when
    ``grad_out`` is given, ``dx``, ``dgamma``, ``dbeta``.  ``eps`` is used exactly as the given
    Python/NumPy float.
    """
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"x must have shape (C, H, W); got {x.shape}")
    _validate_dps(dps)
    C = x.shape[0]
    gamma = np.asarray(gamma).reshape(-1)
    beta = np.asarray(beta).reshape(-1)
    if gamma.shape != (C,) or beta.shape != (C,):
        raise ValueError("gamma and beta must have shape (C,)")
    with mp.workdps(dps):
        xs = _to_mp_rows(x)
        gam, bet = _to_mp_vec(gamma), _to_mp_vec(beta)
        fw = _ref_forward(xs, gam, bet, mp.mpf(float(eps)))
        res = {
            "mean": np.array([float(v) for v in fw["mean"]]),
            "var": np.array([float(v) for v in fw["var"]]),
            "std": np.array([float(v) for v in fw["std"]]),
            "xhat": np.array([[float(v) for v in row] for row in fw["xhat"]]).reshape(x.shape),
            "y": np.array([[float(v) for v in row] for row in fw["y"]]).reshape(x.shape),
        }
        if grad_out is not None:
            g = np.asarray(grad_out)
            if g.shape != x.shape:
                raise ValueError(f"grad_out must have shape {x.shape}; got {g.shape}")
            bw = _ref_backward(fw, gam, _to_mp_rows(g))
            res["dx"] = np.array([[float(v) for v in row] for row in bw["dx"]]).reshape(x.shape)
            res["dgamma"] = np.array([float(v) for v in bw["dgamma"]])
            res["dbeta"] = np.array([float(v) for v in bw["dbeta"]])
    return res


def _reference_self_check(xs, gam, bet, gs, eps, fw, bw, rng, dps):
    """FD (mp.diff) + dot-product test of the reference at one point.  Returns a dict of figures."""
    C = len(xs)
    tx = [[mp.mpf(float(v)) for v in rng.standard_normal(len(row))] for row in xs]
    tg = [mp.mpf(float(v)) for v in rng.standard_normal(C)]
    tb = [mp.mpf(float(v)) for v in rng.standard_normal(C)]

    def phi(s):
        xs_s = [[v + s * t for v, t in zip(row, trow)] for row, trow in zip(xs, tx)]
        gam_s = [a + s * b for a, b in zip(gam, tg)]
        bet_s = [a + s * b for a, b in zip(bet, tb)]
        y = _ref_forward(xs_s, gam_s, bet_s, eps)["y"]
        return mp.fsum(a * b for yrow, grow in zip(y, gs) for a, b in zip(yrow, grow))

    fd = mp.diff(phi, mp.mpf(0))
    terms = ([a * b for trow, drow in zip(tx, bw["dx"]) for a, b in zip(trow, drow)]
             + [a * b for a, b in zip(tg, bw["dgamma"])] + [a * b for a, b in zip(tb, bw["dbeta"])])
    vjp_dot = mp.fsum(terms)
    jv = _ref_jvp(fw, gam, tx, tg, tb)
    jvp_terms = [a * b for jrow, grow in zip(jv, gs) for a, b in zip(jrow, grow)]
    jvp_dot = mp.fsum(jvp_terms)
    magnitude = 1 + mp.fsum(abs(t) for t in terms) + mp.fsum(abs(t) for t in jvp_terms)
    threshold = mp.mpf(10) ** (-(dps // 2)) * magnitude
    fd_vs_vjp = abs(fd - vjp_dot)
    jvp_vs_vjp = abs(jvp_dot - vjp_dot)
    fd_vs_jvp = abs(fd - jvp_dot)
    figures = {
        "fd_directional": float(fd),
        "vjp_dot": float(vjp_dot),
        "jvp_dot": float(jvp_dot),
        "fd_vs_vjp": float(fd_vs_vjp),
        "jvp_vs_vjp": float(jvp_vs_vjp),
        "fd_vs_jvp": float(fd_vs_jvp),
        "threshold": float(threshold),
    }
    worst = max(fd_vs_vjp, jvp_vs_vjp, fd_vs_jvp)
    if not worst <= threshold:
        raise ReferenceCheckError(
            "mpmath reference failed its self-check: finite-difference / dot-product "
            f"discrepancy {mpmath.nstr(worst, 5)} exceeds {mpmath.nstr(threshold, 5)} "
            f"(figures: {figures})")
    return figures
