r"""The mpmath reference of any layer of :mod:`symbolic_bn.layers`, and its self-check.

y is ``layer.forward`` and (dx, dweight, dbias) the layer's closed forms
(:func:`symbolic_bn.graphs.closed_forms.backward`), both evaluated on object arrays of mpf at
``dps`` digits on the exact dtype-rounded inputs (:func:`layer_reference` gives the same values
for any input).  At the first point of every family the reference checks itself: ``mp.diff`` of
⟨layer.forward(p + s·t), g⟩ against the closed-form backward and JVP (the dot-product test of
:mod:`.crosscheck_reference`), and a separate per-group evaluation (the one the scales and the
N − 1 figures use) against the closed forms entry by entry, so the groups and weight positions
used for the bound are the layer's; a discrepancy raises
:class:`~symbolic_bn.checks.crosscheck_reference.ReferenceCheckError`.
"""
from __future__ import annotations

import numbers
from fractions import Fraction

import mpmath
import numpy as np
from mpmath import mp

from .crosscheck_layer_view import _LayerView
from .crosscheck_reference import ReferenceCheckError, _standardize, _validate_dps

__all__ = ["layer_reference"]


class _MpmathArrays:
    """The few NumPy functions that ``Layer.forward`` and the closed forms
    (:mod:`symbolic_bn.graphs.closed_forms`) use, on object arrays of ``mpf`` (evaluated at the
    caller's ``mp.workdps``; the reductions are plain left-to-right sums, exact to ~``dps``
    digits at the sizes a Layer allows)."""

    @staticmethod
    def asarray(a):
        return np.asarray(a, dtype=object)

    @staticmethod
    def reshape(a, shape):
        return np.reshape(np.asarray(a, dtype=object), shape)

    @staticmethod
    def sum(a, axis=None, keepdims=False):
        return np.sum(np.asarray(a, dtype=object), axis=axis, keepdims=keepdims)

    @classmethod
    def mean(cls, a, axis=None, keepdims=False):
        a = np.asarray(a, dtype=object)
        if axis is None:
            axes = tuple(range(a.ndim))
        else:
            axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
        count = int(np.prod([a.shape[k] for k in axes]))
        return cls.sum(a, axis=axis, keepdims=keepdims) / count

    @staticmethod
    def sqrt(a):
        return np.vectorize(mp.sqrt, otypes=[object])(a)


_MP_ARRAYS = _MpmathArrays()


def _mpf_exact(v):
    """``v`` as an mpf: floats and ints exactly, rationals (``Fraction``, SymPy ``Rational``) to
    the working precision."""
    if isinstance(v, mpmath.mpf):
        return v
    if isinstance(v, (bool, np.bool_)):
        raise ValueError(f"expected a number, got the bool {v!r}")
    if isinstance(v, numbers.Integral):
        return mp.mpf(int(v))
    if isinstance(v, Fraction):
        return mp.mpf(v.numerator) / v.denominator
    if getattr(v, "is_Rational", False):        # SymPy Rational / Integer
        return mp.mpf(int(v.p)) / int(v.q)
    return mp.mpf(float(v))


_to_mpf = np.vectorize(_mpf_exact, otypes=[object])


def _mp_array(a):
    return None if a is None else _to_mpf(np.asarray(a, dtype=object))


def _rows_forward(view, xs, ws, bs, eps, ddof=0):
    """Per statistics group: mean, r, x̂ and y (``ddof=1``: an N − 1 statistic, only to measure
    whether that bug would be caught).  ``ws``/``bs`` give the weight/bias at every member."""
    mean, r, xhat, y = [], [], [], []
    for c, row in enumerate(xs):
        m, _, _, rc, xh = _standardize(row, eps, ddof, view.centered, view.word,
                                       f"statistics group {c}")
        mean.append(m)
        r.append(rc)
        xhat.append(xh)
        if bs is None:
            y.append([w * t for w, t in zip(ws[c], xh)])
        else:
            y.append([w * t + b for w, t, b in zip(ws[c], xh, bs[c])])
    return {"mean": mean, "r": r, "xhat": xhat, "y": y}


def _rows_backward(view, fw, ws, gs):
    """Jᵀg per group: dx = (r/n)(n ĝ − c Σĝ − x̂ Σĝx̂), ĝ = g·w; dweight_k = Σ g x̂ and dbias_k = Σ g
    over the positions of weight entry k."""
    dx, s1s, s2s = [], [], []
    dw_terms = [[] for _ in range(view.P)]
    db_terms = [[] for _ in range(view.P)]
    for c, (xh, g) in enumerate(zip(fw["xhat"], gs)):
        n = len(g)
        gh = [a * w for a, w in zip(g, ws[c])]
        s1 = mp.fsum(gh) if view.centered else mp.zero
        s2 = mp.fsum(a * b for a, b in zip(gh, xh))
        k = fw["r"][c] / n
        dx.append([k * (n * a - s1 - b * s2) for a, b in zip(gh, xh)])
        s1s.append(s1)
        s2s.append(s2)
        for p, (a, b) in enumerate(zip(g, xh)):
            kk = int(view.param[c, p])
            dw_terms[kk].append(a * b)
            db_terms[kk].append(a)
    return {"dx": dx, "dweight": [mp.fsum(t) for t in dw_terms],
            "dbias": [mp.fsum(t) for t in db_terms], "S1": s1s, "S2": s2s}


def _closed_form_reference(layer, xm, wm, bm, gm, eps):
    """y = ``layer.forward`` and Jᵀg by the layer's closed forms, on mpf arrays (exact inputs)."""
    from ..graphs import closed_forms
    out = {"y": layer.forward(xm, wm, bm, eps, _MP_ARRAYS)}
    if gm is not None:
        grads = closed_forms.backward(layer, xm, wm, bm, gm, eps, _MP_ARRAYS)
        out["dx"], out["dweight"] = grads[0], grads[1]
        if len(grads) > 2:
            out["dbias"] = grads[2]
    return out


def _layer_self_check(view, xm, wm, bm, gm, eps, ref, fw, bw, rng, dps):
    """The reference checked at one point without symbolic differentiation: ``mp.diff`` of
    ⟨layer.forward(p + s·t), g⟩ against ⟨t, Jᵀg⟩ of the closed-form backward and ⟨J t, g⟩ of the
    closed-form JVP (the dot-product test), and the per-group evaluation (which the bound's
    scales and the N − 1 figures use) against the closed forms entry by entry (so the view's
    statistics groups and weight positions are the layer's)."""
    from ..graphs import closed_forms
    layer = view.layer
    tx = _mp_array(rng.standard_normal(view.shape))
    tw = _mp_array(rng.standard_normal(view.weight_shape))
    tb = _mp_array(rng.standard_normal(view.weight_shape)) if view.has_bias else None

    def phi(s):
        y = layer.forward(xm + s * tx, wm + s * tw, None if bm is None else bm + s * tb, eps, _MP_ARRAYS)
        return mp.fsum(list((y * gm).ravel()))

    fd = mp.diff(phi, mp.mpf(0))
    terms = list((tx * ref["dx"]).ravel()) + list((tw * ref["dweight"]).ravel())
    if view.has_bias:
        terms += list((tb * ref["dbias"]).ravel())
    vjp_dot = mp.fsum(terms)
    jv = closed_forms.jvp(layer, xm, wm, bm, tx, tw, tb, eps, _MP_ARRAYS)
    jvp_terms = list((jv * gm).ravel())
    jvp_dot = mp.fsum(jvp_terms)
    magnitude = 1 + mp.fsum(abs(t) for t in terms) + mp.fsum(abs(t) for t in jvp_terms)
    threshold = mp.mpf(10) ** (-(dps // 2)) * magnitude
    # per-group evaluation against the closed forms
    pairs = []
    for c, row in enumerate(view.groups):
        for p, j in enumerate(row):
            pairs.append((fw["y"][c][p], ref["y"].flat[j]))
            pairs.append((bw["dx"][c][p], ref["dx"].flat[j]))
    pairs += list(zip(bw["dweight"], ref["dweight"].ravel()))
    if view.has_bias:
        pairs += list(zip(bw["dbias"], ref["dbias"].ravel()))
    scale = 1 + max(abs(b) for _, b in pairs)
    rows_vs_closed = max(abs(a - b) for a, b in pairs)
    rows_threshold = mp.mpf(10) ** (-(dps // 2)) * scale
    fd_vs_vjp, jvp_vs_vjp, fd_vs_jvp = abs(fd - vjp_dot), abs(jvp_dot - vjp_dot), abs(fd - jvp_dot)
    figures = {
        "fd_directional": float(fd), "vjp_dot": float(vjp_dot), "jvp_dot": float(jvp_dot),
        "fd_vs_vjp": float(fd_vs_vjp), "jvp_vs_vjp": float(jvp_vs_vjp), "fd_vs_jvp": float(fd_vs_jvp),
        "threshold": float(threshold), "groups_vs_closed_forms": float(rows_vs_closed),
    }
    if not max(fd_vs_vjp, jvp_vs_vjp, fd_vs_jvp) <= threshold or not rows_vs_closed <= rows_threshold:
        raise ReferenceCheckError(
            f"mpmath reference for {view.text} failed its self-check: finite-difference / "
            f"dot-product discrepancy {mpmath.nstr(max(fd_vs_vjp, jvp_vs_vjp, fd_vs_jvp), 5)} "
            f"(threshold {mpmath.nstr(threshold, 5)}), per-group evaluation vs closed forms "
            f"{mpmath.nstr(rows_vs_closed, 5)} (threshold {mpmath.nstr(rows_threshold, 5)})")
    return figures


def layer_reference(layer, x, weight, bias, eps, grad_out=None, dps=50, as_float=True):
    """mpmath reference of ``layer`` (:mod:`symbolic_bn.layers`) at ``dps`` digits.

    ``x``, ``weight``, ``bias`` (None for rms_norm), ``grad_out`` in the layer's layout; entries
    may be floats (taken exactly), ints, ``Fraction`` or SymPy rationals (to ``dps`` digits).
    ``eps``: a number (the layer's own ε is not used, so a symbolic-ε layer can be evaluated).
    Returns ``{'y': ...}`` and, with ``grad_out``, the gradients named as the check names them
    (``dx``, ``dweight``, ``dbias``; ``dgamma``, ``dbeta`` for batchnorm_channel_first): float64
    arrays (nearest doubles), or object arrays of mpf with ``as_float=False``.  Computed by
    ``layer.forward`` and the closed-form backward (:mod:`symbolic_bn.graphs.closed_forms`).
    """
    from .. import layers as L
    if not isinstance(layer, L.Layer):
        raise ValueError(f"layer must be a symbolic_bn.layers.Layer; got {type(layer).__name__}")
    _validate_dps(dps)
    view = _LayerView(layer)
    with mp.workdps(dps):
        arrays = {}
        for name, value, want in (("x", x, view.shape), ("weight", weight, view.weight_shape),
                                  ("bias", bias, view.weight_shape if view.has_bias else None),
                                  ("grad_out", grad_out, view.shape)):
            if value is None:
                if name in ("x", "weight") or (name == "bias" and view.has_bias):
                    raise ValueError(f"{name} is required for {layer.name}")
                arrays[name] = None
                continue
            if want is None:
                raise ValueError(f"bias must be None for {layer.name} (it has no bias)")
            arr = np.asarray(value, dtype=object)
            if arr.shape != tuple(want):
                raise ValueError(f"{name} must have shape {tuple(want)}; got {arr.shape}")
            arrays[name] = _mp_array(arr)
        eps_mp = _mpf_exact(eps)
        xs = view.mp_rows(arrays["x"])
        ws = view.param_rows(arrays["weight"])
        bs = view.param_rows(arrays["bias"]) if view.has_bias else None
        _rows_forward(view, xs, ws, bs, eps_mp)  # refuses a point outside the domain
        ref = _closed_form_reference(layer, arrays["x"], arrays["weight"], arrays["bias"],
                                     arrays["grad_out"], eps_mp)
        out = {"y": ref["y"]}
        if arrays["grad_out"] is not None:
            out[view.grad_names[0]] = ref["dx"]
            out[view.grad_names[1]] = ref["dweight"]
            if view.has_bias:
                out[view.grad_names[2]] = ref["dbias"]
        if as_float:
            out = {k: np.vectorize(float, otypes=[np.float64])(v) for k, v in out.items()}
    return out
