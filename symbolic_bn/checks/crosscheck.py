r"""High-precision cross-check of a numeric normalization layer against an mpmath reference.

Without ``layer`` this is the channel-first BatchNorm (C×H×W); with ``layer=L`` (any
:class:`symbolic_bn.layers.Layer`) it is that layer in its own layout: section "Every layer"
below.

``crosscheck(forward, backward, ...)`` runs a user's float32/float64 implementation of the
BatchNormChannelFirst forward and/or backward (semantics in :mod:`symbolic_bn.numeric`) at a set of
deterministic points and compares every output with an mpmath reference evaluated at ``dps``
digits on *exactly* the dtype-rounded inputs the implementation received (each float32/float64
value is converted to ``mpf`` exactly; ``eps`` is rounded to the dtype too and passed to the
function as that exact value).  The difference is therefore the implementation's own error, with
no input-rounding noise.

This module is the driver: it validates the arguments, visits the points (one loop for both
paths) and scores every output against the bound.  The parts, one module each (every public name
stays importable from here):

* :mod:`.crosscheck_inputs` -- the point families, the eps probe, the degenerate points, users'
  ``inputs``;
* :mod:`.crosscheck_layer_view` -- a Layer seen as its statistics groups;
* :mod:`.crosscheck_reference` -- the mpmath reference of the C×H×W path (:func:`reference`) and
  its finite-difference / dot-product self-check;
* :mod:`.crosscheck_layer_reference` -- the mpmath reference of any Layer
  (:func:`layer_reference`) and its self-check;
* :mod:`.crosscheck_bound` -- the pass/fail bound: why it is what it is, and what it cannot catch
  (an N − 1 variance at large N in float32);
* :mod:`.crosscheck_calls` -- calling the user's functions (fresh copies, malformed returns);
* :mod:`.crosscheck_result` -- :class:`CrosscheckResult` and its summary.

Every layer: ``crosscheck(..., layer=L)``
------------------------------------------
The user's functions are ``forward(x, weight, bias, eps[, xp])`` and ``backward(x, weight, bias,
grad_out, eps[, xp]) -> (dx, dweight, dbias)`` on arrays in the layer's own layout (rms_norm:
``bias`` is None and the backward returns ``(dx, dweight)``; batchnorm_channel_first keeps the
names gamma, beta, dgamma, dbeta); ``xp = numpy`` is passed only to a function that declares it
(a parameter ``xp``, or one positional parameter more than the data).  ε: the layer's when it is a
number (``eps`` may only repeat it), crosscheck's ``eps`` (default 1e-5) when it is symbolic.
Its points, reference and bound: the sections "Every layer" of :mod:`.crosscheck_inputs` and
:mod:`.crosscheck_bound`, and :mod:`.crosscheck_layer_reference`.

Errors
------
Bad arguments raise ``ValueError`` naming the argument.  ``eps`` may be 0 or negative, but the
generated families need ``var + eps > 0`` in every channel: if a generated point violates that
(``eps ≤ 0`` with ``H·W = 1``, or ``eps`` below minus a channel variance) a ``ValueError`` names
``eps`` and the point; a user input that violates it is refused naming ``inputs[k]``.  A user
function that raises, returns the wrong number of arrays, wrong shapes or non-real values raises
:class:`ImplementationError` (a ``ValueError``) naming the function, the family and the point: a
malfunction is never reported as a pass.  Every call receives fresh copies of the point's arrays,
so a function may write into its arguments (a backward that stores dx in ``grad_out``, an
in-place ``x -= mean``): that cannot change the reference or any other call, is not an error, and
is listed once per function and argument in ``CrosscheckResult.notes``.  NaN/inf outputs
are failing results (:mod:`.crosscheck_calls`), never a pass either.  All mpmath work happens inside
``mp.workdps(dps)``; the global precision is never changed.
"""
from __future__ import annotations

import math
import numbers
from typing import Callable, Optional

import numpy as np
from mpmath import mp

from ..exact.budget import BudgetExceeded, check_budget, time_budget
from .crosscheck_bound import (BESSEL_MARGIN, BOUND_FACTOR, BOUND_FORMULA, _UNIT_ROUNDOFF, _growth,
                               _layer_scales, _scales, _score)
from .crosscheck_calls import ImplementationError, _fname, _note_nonfinite, call_implementation
from .crosscheck_inputs import (DEGENERATE, EPS_PROBE, FAMILIES, SPARSE_NONZEROS, ChannelFirstLayout,
                                _gen_sparse, point_plan, prepare_inputs)
from .crosscheck_layer_reference import (_closed_form_reference, _layer_self_check, _mp_array,
                                         _rows_backward, _rows_forward, layer_reference)
from .crosscheck_layer_view import _LayerView
from .crosscheck_reference import (MIN_DPS, ReferenceCheckError, _is_int, _ref_backward, _ref_forward,
                                   _reference_self_check, _to_mp_rows, _to_mp_vec, _validate_dps,
                                   reference)
from .crosscheck_result import CrosscheckResult, FamilyReport, OutputReport

__all__ = [
    "crosscheck",
    "reference",
    "layer_reference",
    "CrosscheckResult",
    "OutputReport",
    "FamilyReport",
    "ImplementationError",
    "ReferenceCheckError",
    "FAMILIES",
    "BOUND_FACTOR",
    "BOUND_FORMULA",
    "BESSEL_MARGIN",
    "SPARSE_NONZEROS",
]

#: Names imported from this module (``MIN_DPS``: symbolic_bn.cli.parsing; ``_gen_sparse``: tests) that now live in
#: the modules above and are not used here.
_IMPORTED_FROM_HERE = (MIN_DPS, _gen_sparse)

_NP_DTYPES = {"float32": np.float32, "float64": np.float64}
FORWARD_OUTPUTS = ("y",)
DEFAULT_SHAPE = (2, 4, 4)
DEFAULT_EPS = 1e-5
BACKWARD_OUTPUTS = ("dx", "dgamma", "dbeta")


# --------------------------------------------------------------------------------------------
# argument validation
# --------------------------------------------------------------------------------------------

def _normalize_dtype(dtype) -> str:
    if isinstance(dtype, str):
        if dtype in _NP_DTYPES:
            return dtype
        raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}")
    try:
        d = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}") from None
    if d == np.float32:
        return "float32"
    if d == np.float64:
        return "float64"
    raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}")


def _validate_shape(shape):
    try:
        shape = tuple(shape)
    except TypeError:
        raise ValueError(f"shape must be a tuple of 3 positive ints (C, H, W); got {shape!r}") from None
    if len(shape) != 3 or not all(_is_int(s) and s > 0 for s in shape):
        raise ValueError(f"shape must be a tuple of 3 positive ints (C, H, W); got {shape!r}")
    return tuple(int(s) for s in shape)


def _common_arguments(forward, backward, dtype, dps, points, seed, budget, families):
    if forward is None and backward is None:
        raise ValueError("give forward and/or backward: both are None, nothing to check")
    for role, fn in (("forward", forward), ("backward", backward)):
        if fn is not None and not callable(fn):
            raise ValueError(f"{role} must be callable; got {type(fn).__name__}")
    dtype = _normalize_dtype(dtype)
    _validate_dps(dps)
    if not _is_int(points) or points < 1:
        raise ValueError(f"points must be an int >= 1; got {points!r}")
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative int; got {seed!r}")
    budget = check_budget(budget)
    if isinstance(families, str):
        families = (families,)
    families = tuple(families)
    if not families or any(f not in FAMILIES for f in families):
        raise ValueError(f"families must be a non-empty subset of {FAMILIES}; got {families!r}")
    return dtype, budget, families


def _eps_in_dtype(eps, dtype, name="eps"):
    if isinstance(eps, bool) or not isinstance(eps, (numbers.Real, np.floating)):
        raise ValueError(f"{name} must be a finite real number; got {eps!r}")
    if not math.isfinite(float(eps)):
        raise ValueError(f"{name} must be finite; got {eps!r}")
    with np.errstate(over="ignore"):
        eps_used = float(_NP_DTYPES[dtype](float(eps)))
    if not math.isfinite(eps_used):
        raise ValueError(f"{name}={eps!r} overflows {dtype}")
    return eps_used


# --------------------------------------------------------------------------------------------
# one point: the reference, its scales and the components to score, per path
# --------------------------------------------------------------------------------------------

class _ChannelFirstCheck:
    """The C×H×W path at one point: the reference and self-check of :mod:`.crosscheck_reference`,
    the scales of :mod:`.crosscheck_bound`, the outputs' shapes and indices (a user point may
    have its own C, H and W)."""

    arg_names = ("x", "gamma", "beta")
    grad_names = BACKWARD_OUTPUTS

    def __init__(self, shape, eps, eps_used, dtype, points):
        self.layout = ChannelFirstLayout(shape)
        self.eps, self.eps_used, self.dtype, self.points = eps, eps_used, dtype, points

    def evaluate(self, fam, i, where, x, gamma, beta, g, pt_eps, eps_mp):
        """The reference at one point (a ValueError naming it when it is outside the domain)."""
        xs = _to_mp_rows(x)
        gam, bet = _to_mp_vec(gamma), _to_mp_vec(beta)
        gs = _to_mp_rows(g)
        try:
            fw = _ref_forward(xs, gam, bet, eps_mp)
        except ValueError as exc:
            if fam == "user":
                raise ValueError(f"inputs[{i - self.points}] (eps={self.eps_used!r} as {self.dtype}): "
                                 f"{exc}") from None
            detail = str(exc).replace("point outside the domain var + eps > 0 ", "")
            raise ValueError(
                f"eps={float(self.eps)!r} (as {self.dtype}: {self.eps_used!r}) is not usable here: the "
                "generated point families need var + eps > 0 in every channel, but the "
                f"generated {where} has var + eps <= 0 ({detail.strip('()')}).  Their variances are not "
                "bounded below when eps <= 0 ('normal' has variances around 1, and with "
                "H*W = 1 every variance is 0), so use eps > 0 or a negative eps much "
                "smaller in magnitude than the variances") from None
        bw = _ref_backward(fw, gam, gs)
        scales = _scales(xs, gam, bet, gs, fw, bw)
        # the same outputs with an N − 1 variance: would that bug exceed the bound here?
        if x.shape[1] * x.shape[2] > 1:
            fw_b = _ref_forward(xs, gam, bet, eps_mp, ddof=1)
            bessel = {"y": fw_b["y"], **_ref_backward(fw_b, gam, gs)}
        else:
            bessel = None  # N − 1 = 0: such a variance is 0/0, its output NaN (caught)
        return {"mp": (xs, gam, bet, gs), "fw": fw, "bw": bw, "scales": scales, "bessel": bessel}

    @staticmethod
    def self_check(point, eps_mp, rng, dps):
        xs, gam, bet, gs = point["mp"]
        return _reference_self_check(xs, gam, bet, gs, eps_mp, point["fw"], point["bw"], rng, dps)

    @staticmethod
    def output_shapes(x):
        """Of y, dx, dgamma, dbeta."""
        return x.shape, x.shape, x.shape[:1], x.shape[:1]

    @staticmethod
    def items(name, arr, point, measured):
        """``(index, got, ref, (E, R), kappa, N − 1 ref or None)`` per component of output ``name``
        (``measured``: whether its N − 1 figure is recorded)."""
        fw, bw, scales, bessel = point["fw"], point["bw"], point["scales"], point["bessel"]
        C, W = arr.shape[0], arr.shape[-1]
        brefs = bessel[name] if bessel and measured else None
        if name in ("y", "dx"):
            refs = fw["y"] if name == "y" else bw["dx"]
            flat = arr.reshape(C, -1)
            return [((c, p // W, p % W), flat[c, p], refs[c][p],
                     scales[name][c][p], scales["kappa"][c],
                     brefs[c][p] if brefs else None)
                    for c in range(C) for p in range(flat.shape[1])]
        refs = bw[name]
        return [((c,), arr[c], refs[c], scales[name][c], scales["kappa"][c],
                 brefs[c] if brefs else None) for c in range(C)]


class _LayerCheck:
    """A Layer at one point: the per-group forms and closed forms of
    :mod:`.crosscheck_layer_reference`, the generalized scales of :mod:`.crosscheck_bound`, the
    outputs in the layer's layout (:class:`~.crosscheck_layer_view._LayerView`)."""

    def __init__(self, view, eps_value, dtype, points):
        self.layout = self.view = view
        self.eps_value, self.dtype, self.points = eps_value, dtype, points
        self.arg_names = view.arg_names if view.has_bias else view.arg_names + ("bias",)
        self.grad_names = view.grad_names

    def evaluate(self, fam, i, where, x, w, b, g, pt_eps, eps_mp):
        """The reference at one point (a ValueError naming it when it is outside the domain)."""
        view = self.view
        xm, wm, bm, gm = _mp_array(x), _mp_array(w), _mp_array(b), _mp_array(g)
        xs, gs = view.mp_rows(xm), view.mp_rows(gm)
        ws = view.param_rows(wm)
        bs = view.param_rows(bm) if view.has_bias else None
        try:
            fw = _rows_forward(view, xs, ws, bs, eps_mp)
        except ValueError as exc:
            if fam == "user":
                raise ValueError(f"inputs[{i - self.points}] (eps={pt_eps!r} as {self.dtype}): "
                                 f"{exc}") from None
            raise ValueError(
                f"eps={self.eps_value!r} (as {self.dtype}: {pt_eps!r}) is not usable here: the "
                f"generated point families need {view.word} + eps > 0 in every statistics "
                f"group of {view.text}, but the generated {where} violates it ({exc}).  "
                "Use eps > 0 or a negative eps much smaller in magnitude than the "
                "groups' statistics") from None
        bw = _rows_backward(view, fw, ws, gs)
        ref = _closed_form_reference(view.layer, xm, wm, bm, gm, eps_mp)
        scales = _layer_scales(view, xs, ws, bs, gs, fw, bw)
        if view.n > 1:
            fw_b = _rows_forward(view, xs, ws, bs, eps_mp, ddof=1)
            bessel = {"y": fw_b["y"], **_rows_backward(view, fw_b, ws, gs)}
        else:
            bessel = None
        return {"mp": (xm, wm, bm, gm), "fw": fw, "bw": bw, "ref": ref, "scales": scales,
                "bessel": bessel}

    def self_check(self, point, eps_mp, rng, dps):
        xm, wm, bm, gm = point["mp"]
        return _layer_self_check(self.view, xm, wm, bm, gm, eps_mp, point["ref"], point["fw"],
                                 point["bw"], rng, dps)

    def output_shapes(self, x):
        """Of y, then of each of ``grad_names``."""
        view = self.view
        return view.shape, view.shape, view.weight_shape, view.weight_shape

    def items(self, name, arr, point, measured):
        """As :meth:`_ChannelFirstCheck.items`, in the layer's layout."""
        view, ref, scales, bessel = self.view, point["ref"], point["scales"], point["bessel"]
        ref_key = dict(zip(("y",) + view.grad_names, ("y", "dx", "dweight", "dbias")))
        bref_of = ({"y": bessel["y"], "dx": bessel["dx"], view.grad_names[1]: bessel["dweight"]}
                   if bessel is not None else {})
        flat_got = arr.reshape(-1)
        flat_ref = np.asarray(ref[ref_key[name]], dtype=object).reshape(-1)
        brefs = bref_of.get(name) if measured else None
        if name in ("y", "dx"):
            key = "y" if name == "y" else "dx"
            items = [(np.unravel_index(int(j), view.shape), flat_got[j], flat_ref[j],
                      scales[key][c][p], scales["kappa"][c],
                      brefs[c][p] if brefs else None)
                     for c, row in enumerate(view.groups) for p, j in enumerate(row)]
        else:
            key = "dweight" if name == view.grad_names[1] else "dbias"
            items = [(np.unravel_index(kk, view.weight_shape), flat_got[kk], flat_ref[kk],
                      scales[key][kk], scales["kappa_param"][kk],
                      brefs[kk] if brefs else None) for kk in range(view.P)]
        return [(tuple(int(t) for t in idx),) + tuple(rest) for idx, *rest in items]


# --------------------------------------------------------------------------------------------
# the run: every point, both paths
# --------------------------------------------------------------------------------------------

def _run(check, forward, backward, *, user, eps, eps_used, dtype, dps, points, seed, families,
         budget, degenerate, shape, layer=None, group_size=None) -> CrosscheckResult:
    """Visit every point of the plan with ``check`` (:class:`_ChannelFirstCheck` or
    :class:`_LayerCheck`), score every output, and return the result."""
    from .calling import takes_namespace  # here: calling imports this module
    np_dtype = _NP_DTYPES[dtype]
    plan, probe_eps, probe_family, n_degenerate = point_plan(
        check.layout, user, families, points, seed, eps_used, np_dtype, degenerate)
    checked = (("forward",) if forward is not None else ()) + \
              (("backward",) if backward is not None else ())
    out_names = (FORWARD_OUTPUTS if forward is not None else ()) + \
                (check.grad_names if backward is not None else ())
    u = _UNIT_ROUNDOFF[dtype]

    reports = {name: OutputReport(name) for name in out_names}
    # per output: largest |ref with an N − 1 variance − ref| / bound over its components (the
    # bias gradient does not depend on the variance)
    bessel_ratios = {name: 0.0 for name in out_names if name not in check.grad_names[2:]}
    fam_reports: dict = {}
    ref_checks, seen_family, problems, notes = [], set(), [], []
    points_done, timed_out = 0, False
    fw_xp = forward is not None and takes_namespace(forward, 4)
    bw_xp = backward is not None and takes_namespace(backward, 5)

    with mp.workdps(dps):
        try:
            with time_budget(budget):
                for fam, i, x, w, b, g, pt_eps in plan:
                    eps_mp = mp.mpf(pt_eps)
                    where = f"point {i} (family {fam!r})"
                    fr = fam_reports.setdefault(fam, FamilyReport(fam))
                    fr.points += 1
                    point = check.evaluate(fam, i, where, x, w, b, g, pt_eps, eps_mp)
                    if point["bessel"] is None:
                        bessel_ratios = {name: math.inf for name in bessel_ratios}
                    if fam not in seen_family and fam not in (EPS_PROBE, DEGENERATE):
                        seen_family.add(fam)
                        fig = check.self_check(point, eps_mp, np.random.default_rng([seed, i, 2]), dps)
                        ref_checks.append({"family": fam, "point": i, **fig})

                    got, got_label = call_implementation(
                        forward, backward, (x, w, b, g, pt_eps), check.arg_names, check.grad_names,
                        check.output_shapes(x), where, notes, fw_xp, bw_xp)

                    tol_e = mp.mpf(BOUND_FACTOR) * mp.mpf(u)
                    tol_r = tol_e * _growth(check.layout.reduction_terms(
                        probe_family if fam == EPS_PROBE else fam, x))
                    for name in out_names:
                        arr, rdtype = got[name]
                        _note_nonfinite(problems, reports[name], arr, name, got_label[name], where)
                        rep = reports[name]
                        if str(rdtype) not in rep.returned_dtypes:
                            rep.returned_dtypes.append(str(rdtype))
                        items = check.items(name, arr, point, name in bessel_ratios)
                        _score(rep, fr, name, items, tol_e, tol_r, bessel_ratios, fam, i, np_dtype)
                    points_done += 1
        except BudgetExceeded:
            timed_out = True

    for rep in reports.values():
        rep.ok = rep.max_ratio <= 1.0
    ok = all(rep.ok for rep in reports.values()) and not timed_out
    probe_report = fam_reports.pop(EPS_PROBE, None)
    return CrosscheckResult(
        ok=ok, outputs=reports, families=fam_reports, reference_check=ref_checks,
        dtype=dtype, dps=dps, eps=float(eps), eps_used=eps_used, shape=shape, seed=int(seed),
        points=points, user_points=len(user), unit_roundoff=u, bound_factor=BOUND_FACTOR,
        checked=checked, bessel_ratios=bessel_ratios,
        forward_name=None if forward is None else _fname(forward, "forward"),
        backward_name=None if backward is None else _fname(backward, "backward"),
        problems=problems, notes=notes, budget=budget, complete=not timed_out,
        points_checked=points_done, eps_probe=probe_report, eps_probe_value=probe_eps,
        eps_probe_family=probe_family, degenerate_points=n_degenerate,
        degenerate=fam_reports.pop(DEGENERATE, None), layer=layer, group_size=group_size)


# --------------------------------------------------------------------------------------------
# main entry point
# --------------------------------------------------------------------------------------------

def _crosscheck_with_layer(forward, backward, shape, eps, dtype, dps, points, seed, inputs,
                           families, budget, layer, degenerate=True):
    from .. import layers as L
    if not isinstance(layer, L.Layer):
        raise ValueError("layer must be a symbolic_bn.layers.Layer (e.g. layers.batch_norm((2, 3, 4)))"
                         f"; got {type(layer).__name__}")
    dtype, budget, families = _common_arguments(forward, backward, dtype, dps, points, seed,
                                                budget, families)
    if shape is not None:
        try:
            given = tuple(shape)
        except TypeError:
            raise ValueError(f"shape must be a tuple of ints; got {shape!r}") from None
        if given != tuple(layer.input_shape):
            raise ValueError(f"shape {given} differs from the layer's input shape "
                             f"{tuple(layer.input_shape)}; pass one of them")
    if layer.symbolic_eps:
        value = DEFAULT_EPS if eps is None else eps
        eps_used = _eps_in_dtype(value, dtype)
        sym = layer.eps
        for attr, ok, text in (("is_positive", lambda e: e > 0, "> 0"),
                               ("is_negative", lambda e: e < 0, "< 0"),
                               ("is_nonnegative", lambda e: e >= 0, ">= 0"),
                               ("is_nonpositive", lambda e: e <= 0, "<= 0")):
            if getattr(sym, attr) and not ok(float(value)):
                raise ValueError(f"eps={value!r}: the layer's symbolic ε is declared {text}")
    else:
        value = float(layer.eps)
        if eps is not None:
            try:
                same = float(eps) == value and not isinstance(eps, bool)
            except (TypeError, ValueError):
                same = False
            if not same:
                raise ValueError(f"eps={eps!r} differs from the layer's ε = {layer.eps}: a layer with "
                                 "a numeric ε is checked at that ε (pass eps only for a symbolic-ε layer)")
        eps_used = _eps_in_dtype(value, dtype, "the layer's eps")
    view = _LayerView(layer)
    user = view.prepare_inputs(inputs, _NP_DTYPES[dtype])
    return _run(_LayerCheck(view, value, dtype, points), forward, backward, user=user, eps=value,
                eps_used=eps_used, dtype=dtype, dps=dps, points=points, seed=seed, families=families,
                budget=budget, degenerate=degenerate, shape=view.shape, layer=view.text,
                group_size=view.n)


def crosscheck(forward: Optional[Callable] = None, backward: Optional[Callable] = None,
               shape=None, eps=None, dtype="float64", dps=50, points=20, seed=0,
               inputs=None, families=FAMILIES, budget=None, *, layer=None,
               degenerate: bool = True) -> CrosscheckResult:
    """Cross-check ``forward(x, gamma, beta, eps, xp)`` and/or
    ``backward(x, gamma, beta, grad_out, eps, xp) -> (dx, dgamma, dbeta)`` against mpmath.

    Without ``layer``: the channel-first BatchNorm at ``shape`` = (C, H, W) (default (2, 4, 4)),
    ``eps`` default 1e-5.  The functions are called positionally with NumPy arrays of ``dtype``
    and ``xp=numpy``; ``eps`` is passed as a Python float equal to ``eps`` rounded to ``dtype``.
    ``points`` generated points are spread round-robin over ``families`` (a subset of
    :data:`FAMILIES`), and every dict of ``inputs`` is checked too (family ``'user'``).  See
    :mod:`.crosscheck_bound` for the bound.  ``budget``: seconds for the whole run (``None`` or
    ``math.inf``: no limit); when it runs out the result is incomplete (``complete`` false, ``ok``
    false, "RESULT: INCOMPLETE"), never a PASS.  ``degenerate=False`` leaves out the two
    degenerate points (a constant group, a zero weight), only to save time at large shapes where
    they are not the point of the test.

    With ``layer`` (a :class:`symbolic_bn.layers.Layer`, section "Every layer" of the module
    docstring): ``forward(x, weight, bias, eps[, xp])`` / ``backward(x, weight, bias, grad_out,
    eps[, xp]) -> (dx, dweight, dbias)`` in the layer's own layout (rms_norm: ``bias`` is None and
    the backward returns ``(dx, dweight)``); ``xp=numpy`` is passed only to functions that declare
    it.  ``shape`` may be left out (else it must be the layer's).  The layer's ε is used when it
    is a number (``eps`` may then only repeat it); with a symbolic ε, ``eps`` (default 1e-5) is
    used.  ``inputs`` dicts have the keys ``'x'``, the weight's and bias's argument names
    (``'weight'``, ``'bias'``; ``'gamma'``, ``'beta'`` for batchnorm_channel_first) and optionally
    ``'grad_out'``.
    """
    if not isinstance(degenerate, bool):
        raise ValueError(f"degenerate must be True or False, got {degenerate!r}")
    if layer is not None:
        return _crosscheck_with_layer(forward, backward, shape, eps, dtype, dps, points, seed,
                                      inputs, families, budget, layer, degenerate)
    if shape is None:
        shape = DEFAULT_SHAPE
    if eps is None:
        eps = DEFAULT_EPS
    dtype, budget, families = _common_arguments(forward, backward, dtype, dps, points, seed,
                                                budget, families)
    np_dtype = _NP_DTYPES[dtype]
    shape = _validate_shape(shape)
    eps_used = _eps_in_dtype(eps, dtype)
    user = prepare_inputs(inputs, np_dtype, ("x", "gamma", "beta"))
    return _run(_ChannelFirstCheck(shape, eps, eps_used, dtype, points), forward, backward, user=user,
                eps=eps, eps_used=eps_used, dtype=dtype, dps=dps, points=points, seed=seed,
                families=families, budget=budget, degenerate=degenerate, shape=shape)
