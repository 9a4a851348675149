"""Links from a layer's graph to its closed forms (not in TorchLean for the channel-first graph).

* ``link.variance_nonnegative`` -- the graph's own variance slot equals ``(1/n)Σ(x − μ)²`` (a sum of
  squares built from the inputs), so it is ≥ 0 and the spec's ``max(var, 0)`` is a no-op;
* ``link.backward_closed_form`` -- with a seed g on the output only, backprop equals the layer's
  closed-form backward (:func:`symbolic_bn.graphs.closed_forms.backward`; for TorchLean's graph
  this is ``Spec.batchNorm2dBackward``);
* ``link.jvp_closed_form`` -- the graph's JVP on the output equals the closed-form JVP
  (``Spec.batchNorm2dJvp``);
* ``link.forward_spec`` -- the output equals the layer's closed form, written with TorchLean's
  clamps ``(x − μ)/sqrt(max(max(var, 0) + ε, 0))·γ + β`` (rms_norm: ``max(mean(x²) + ε, 0)``); the
  clamps are decided by the engine on the domain.

The cotangent and the tangent are fully symbolic (variables of the Space), all identities are
decided entry by entry by the engine's zero test, and every side condition met must follow from
the domain stated on the graph's own statistics.
"""
from __future__ import annotations

import time
from fractions import Fraction

import numpy as np

from ..exact import normal
from ..exact.budget import BudgetExceeded, time_budget
from ..exact.errors import ExactError
from ..exact.linear import LinearForm
from ..exact.value import Value
from .raw_forms import LeavesRing, RawForm
from . import seed_forms
from ..graphs import closed_forms
from .certificate import Obligation
from .setting import ProofSetting, point_counterexample

__all__ = ["link_obligations"]


def _unequal(space, got, want, name):
    """(label, got, want) for the entries where the two arrays differ in normal form."""
    bad = []
    got, want = np.asarray(got, dtype=object), np.asarray(want, dtype=object)
    for idx in np.ndindex(*want.shape):
        a, b = space.constant(got[idx]), space.constant(want[idx])
        if not normal.is_zero_value(space, a - b):
            bad.append((f"{name}[{', '.join(map(str, idx))}]", a, b))
    return bad


def _clamped_forward(layer, x, w, b, eps, xp):
    """The layer's output with TorchLean's clamps (decided by the engine on the domain)."""
    axes = layer.statistics_axes
    if layer.name == "group_norm":
        shape = layer.input_shape
        N, C = shape[0], shape[1]
        G = layer.groups
        xg = xp.reshape(x, (N, G, C // G) + shape[2:])
        ax = tuple(range(2, xg.ndim))
        mu = xp.mean(xg, axis=ax, keepdims=True)
        d = xg - mu
        v = xp.maximum(xp.mean(d * d, axis=ax, keepdims=True), 0)
        xhat = xp.reshape(d / xp.sqrt(xp.maximum(v + eps, 0)), shape)
    elif layer.centered:
        mu = xp.mean(x, axis=axes, keepdims=True)
        d = x - mu
        v = xp.maximum(xp.mean(d * d, axis=axes, keepdims=True), 0)
        xhat = d / xp.sqrt(xp.maximum(v + eps, 0))
    else:
        ms = xp.mean(x * x, axis=axes, keepdims=True)
        xhat = x / xp.sqrt(xp.maximum(ms + eps, 0))
    y = xhat * layer._broadcast_param(w, xp)
    if layer.bias_shape is not None:
        y = y + layer._broadcast_param(b, xp)
    return y


def link_obligations(layer, graph, budget, rng, *, backend=None, spec_names=None) -> list:
    spec_names = spec_names or {}
    out = []
    timer = time.perf_counter()
    try:
        with time_budget(budget):
            setting = ProofSetting(layer, graph, backend=backend)
    except BudgetExceeded:
        return [Obligation(n, f"{n} ({layer.name})", "undecided", "time budget exceeded while setting up",
                           group="link", seconds=time.perf_counter() - timer,
                           detail="time budget exceeded")
                for n in ("link.variance_nonnegative", "link.backward_closed_form", "link.jvp_closed_form",
                          "link.forward_spec")]
    problem, space = setting.problem, setting.space
    xp, eps = problem.xp, problem.eps
    domain = [f"{layer.domain_text()} (on the graph's own {setting.stat_slot})"]
    word = "var" if layer.centered else "mean(x²)"

    def run(name, statement, fn, assumptions=domain, lean=None):
        t0 = time.perf_counter()
        status, method, detail, cex = "undecided", "time budget exceeded", None, None
        try:
            with time_budget(budget):
                bad, method = fn()
                unmet = space.unmet_conditions()
                if bad:
                    cex = point_counterexample(setting, bad, rng)
                    if cex is not None:
                        status, method = "failed", ("exact counterexample at a rational point of the "
                                                    "domain, confirmed by SymPy interval arithmetic")
                    else:
                        status, detail = "undecided", f"normal forms differ at {bad[0][0]}, but no rational point "\
                                                      "showed a difference"
                elif unmet:
                    status = "undecided"
                    detail = "; ".join(space.condition_text(a) for a in unmet)
                else:
                    status = "proved"
        except BudgetExceeded:
            detail = "time budget exceeded"
        except (ExactError, ValueError, TypeError, ZeroDivisionError) as exc:
            status, method = "undecided", "not decided"
            detail = f"could not be evaluated exactly: {type(exc).__name__}: {exc}"
        out.append(Obligation(name, statement, status, method, assumptions=list(assumptions),
                              lean_name=lean, seconds=time.perf_counter() - t0, group="link",
                              detail=detail, counterexample=cex))

    def variance():
        stats = setting.values[setting.stat_slot]
        bad = []
        for r, group in enumerate(_row_groups(setting)):
            sos, _ = problem.statistics[group]
            a = np.ravel(stats)[r]
            if not normal.is_zero_value(space, a - sos):
                bad.append((f"{setting.stat_slot}[{r}]", a, sos))
        return bad, ("exact polynomial identity: the graph's statistic equals (1/n)·Σ (x − μ)² (rms_norm: "
                     "(1/n)·Σ x²) built from the inputs as a sum of squares, hence ≥ 0")

    run("link.variance_nonnegative",
        f"the graph's {setting.stat_slot} equals {word} = (1/n)Σ {'(x − μ)²' if layer.centered else 'x²'} over each "
        f"statistics group, so it is ≥ 0 for every input and the spec's clamp max({word}, 0) is a no-op",
        variance, assumptions=[])

    def backward():
        out_slot = setting.output
        bad = []
        for chunk in _by_ring({out_slot: setting.values[out_slot]}):
            if _backward_packed(chunk):
                continue  # every coefficient agrees (seed_forms): nothing to report
            try:
                bad += _backward(chunk, raw=True)
            except LeavesRing:  # a parameter shared by groups: the same with Value coefficients
                bad += _backward(chunk, raw=False)
        return bad, ("coefficient by coefficient on the exact engine, the cotangent g on the output a vector "
                     "of independent symbols (linear forms, one statistics group at a time); the layer's closed-form "
                     "backward written from the mathematics")

    def _backward(chunk, raw):
        out_slot = setting.output
        g = _units(graph.shapes[out_slot], "g", space, setting.values[out_slot] if raw else None,
                   only=chunk[out_slot])
        cot = graph.backprop(setting.inputs, {out_slot: g}, setting.alg, values=setting.values)
        want = closed_forms.backward(layer, _plain(problem.x), _plain(problem.weight),
                                     _plain(problem.bias) if problem.b_name else None, g, eps, _OBJECTS)
        bad = []
        for name, w in zip(layer.argument_names, want):
            bad += _unequal_forms(space, cot[name], w, "d" + name)
        return bad

    def _backward_packed(chunk):
        out_slot = setting.output
        shapes = {out_slot: graph.shapes[out_slot]}
        packed = _packed_units(chunk, {out_slot: setting.values[out_slot]}, shapes, space)
        if packed is None:
            return False
        ring, packing, units = packed
        try:
            g = units[out_slot]
            cot = graph.backprop(setting.inputs, {out_slot: g}, setting.alg, values=setting.values)
            want = closed_forms.backward(layer, _plain(problem.x), _plain(problem.weight),
                                         _plain(problem.bias) if problem.b_name else None, g, eps, _OBJECTS)
            same = all(_same_packed(ring, cot[name], w) for name, w in zip(layer.argument_names, want))
        except (seed_forms.Unused,) + seed_forms.FAST_PATH_ERRORS:
            return False
        return same and seed_forms.still_free(ring, packing)

    run("link.backward_closed_form",
        spec_names.get("backward", f"with a seed g on the output only, backprop = the closed-form backward "
                       f"of {layer.name}: dx = (r/n)(n ĝ − Σĝ − x̂ Σ ĝ x̂) per statistics group (ĝ = g·γ, "
                       "r = 1/sqrt(var + ε), x̂ = (x − μ)·r; rms_norm: dx = r(ĝ − x̂·mean(ĝ x̂))), dγ = Σ g x̂ "
                       "and dβ = Σ g over the positions sharing each parameter entry"),
        backward, lean=None)

    def jvp():
        bad = []
        names = layer.argument_names
        for chunk in _by_ring({n: setting.inputs[n] for n in names}):
            if _jvp_packed(chunk):
                continue  # every coefficient agrees (seed_forms): nothing to report
            try:
                bad += _jvp(chunk, raw=True)
            except LeavesRing:
                bad += _jvp(chunk, raw=False)
        return bad, ("coefficient by coefficient on the exact engine, the tangent (dx, dγ, dβ) a vector of "
                     "independent symbols (linear forms, a group at a time); the layer's closed-form JVP written "
                     "from the mathematics")

    def _jvp(chunk, raw):
        names = layer.argument_names
        tangents = {n: _units(setting.inputs[n].shape, "t" + n, space, setting.inputs[n] if raw else None,
                              only=chunk.get(n, ())) for n in names}
        tan = graph.jvp(setting.inputs, tangents, setting.alg, values=setting.values)
        want = closed_forms.jvp(layer, _plain(problem.x), _plain(problem.weight),
                                _plain(problem.bias) if problem.b_name else None,
                                tangents[names[0]], tangents[names[1]],
                                tangents[names[2]] if len(names) > 2 else None, eps, _OBJECTS)
        return _unequal_forms(space, tan[setting.output], want, "dy")

    def _jvp_packed(chunk):
        names = layer.argument_names
        packed = _packed_units(chunk, {n: setting.inputs[n] for n in names},
                               {n: setting.inputs[n].shape for n in names}, space)
        if packed is None:
            return False
        ring, packing, tangents = packed
        try:
            tan = graph.jvp(setting.inputs, tangents, setting.alg, values=setting.values)
            want = closed_forms.jvp(layer, _plain(problem.x), _plain(problem.weight),
                                    _plain(problem.bias) if problem.b_name else None,
                                    tangents[names[0]], tangents[names[1]],
                                    tangents[names[2]] if len(names) > 2 else None, eps, _OBJECTS)
            same = _same_packed(ring, tan[setting.output], want)
        except (seed_forms.Unused,) + seed_forms.FAST_PATH_ERRORS:
            return False
        return same and seed_forms.still_free(ring, packing)

    run("link.jvp_closed_form",
        spec_names.get("jvp", "the graph's JVP on the output = the closed-form JVP: dy = γ r (dx − mean(dx) − "
                       "x̂·mean(dx ⊙ x̂)) + x̂ dγ + dβ per statistics group (rms_norm: dy = γ r (dx − x̂·mean(dx ⊙ x̂)) "
                       "+ x̂ dγ)"), jvp)

    def forward():
        want = _clamped_forward(layer, problem.x, problem.weight, problem.bias, eps, xp)
        return _unequal(space, setting.values[setting.output], want, "y"), (
            "entry by entry on the exact engine; the clamps max(·, 0) decided on the domain by exact sign "
            "arguments (a sum of squares is ≥ 0; the domain gives stat + ε > 0)")

    run("link.forward_spec",
        spec_names.get("forward", "the output = the closed form with TorchLean's clamps: (x − μ)/sqrt(max(max("
                       "var, 0) + ε, 0))·γ + β (rms_norm: x/sqrt(max(mean(x²) + ε, 0))·γ)"), forward)
    return out


class _ObjectNamespace:
    """NumPy on plain object arrays whose entries are Values or linear forms (the closed forms are
    linear in the cotangent and the tangent, so they run on linear forms as they are)."""

    @staticmethod
    def _base(a):
        arr = np.asarray(a, dtype=object)
        return arr.view(np.ndarray) if type(arr) is not np.ndarray else arr

    def asarray(self, a):
        return self._base(a)

    def sum(self, a, axis=None, keepdims=False):
        """Pairwise sums along ``axis`` (a running sum of n linear forms would copy n² terms)."""
        a = self._base(a)
        axes = tuple(range(a.ndim)) if axis is None else ((axis,) if isinstance(axis, int) else tuple(axis))
        axes = tuple(sorted(d % a.ndim for d in axes))
        kept = [d for d in range(a.ndim) if d not in axes]
        moved = np.transpose(a, kept + list(axes))
        outer = moved.shape[:len(kept)]
        moved = moved.reshape(outer + (-1,))
        out = np.empty(outer, dtype=object)
        for idx in np.ndindex(*outer):
            items = list(moved[idx])
            while len(items) > 1:
                nxt = [items[i] + items[i + 1] for i in range(0, len(items) - 1, 2)]
                if len(items) % 2:
                    nxt.append(items[-1])
                items = nxt
            out[idx] = items[0]
        if keepdims:
            out = out.reshape(tuple(1 if d in axes else a.shape[d] for d in range(a.ndim)))
        return out

    def mean(self, a, axis=None, keepdims=False):
        a = self._base(a)
        axes = range(a.ndim) if axis is None else ((axis,) if isinstance(axis, int) else axis)
        n = 1
        for d in axes:
            n *= a.shape[d]
        total = self.sum(a, axis=axis, keepdims=keepdims)
        out = np.empty(total.shape, dtype=object)
        for idx in np.ndindex(*total.shape):
            out[idx] = total[idx] * Fraction(1, n)
        return out

    def sqrt(self, a):
        a = self._base(a)
        out = np.empty(a.shape, dtype=object)
        for idx in np.ndindex(*a.shape):
            out[idx] = a[idx].sqrt()
        return out

    def reshape(self, a, shape):
        return np.reshape(self._base(a), shape)


_OBJECTS = _ObjectNamespace()


def _by_ring(arrays: dict) -> list:
    """Chunks ``{name: set of indices}``: the positions of the arrays' entries, grouped by the
    ring of their value (a statistics group, or the shared ring), so that each chunk's linear
    forms stay in one ring."""
    chunks: dict = {}
    for name, arr in arrays.items():
        for idx in np.ndindex(*arr.shape):
            ring = getattr(arr[idx], "ring", None)
            chunks.setdefault(id(ring), {}).setdefault(name, set()).add(idx)
    return list(chunks.values())


def _units(shape, prefix, space, rings_from=None, only=None):
    """Independent symbols as linear forms at the indices ``only`` (all when None; zero
    elsewhere): raw forms in the ring of ``rings_from``'s entry at the same index (fast), or
    Value-coefficient forms."""
    arr = np.empty(shape, dtype=object)
    one = space.fraction(1)
    zero = space.zero()
    for idx in np.ndindex(*shape):
        key = (prefix,) + tuple(int(i) for i in idx)
        if only is not None and idx not in only:
            arr[idx] = zero
        elif rings_from is not None:
            ring = rings_from[idx].ring
            if ring is None or not getattr(ring, "fast", False) or ring.__class__.__name__ != "Ring":
                raise LeavesRing
            arr[idx] = RawForm.unit(key, ring)
        else:
            arr[idx] = LinearForm.unit(key, one)
    return arr


def _packed_units(chunk, rings_from, shapes, space):
    """(ring, packing, {name: array}): independent symbols at the chunk's indices as packed
    :class:`~symbolic_bn.obligations.seed_forms.SeedForm` s (zero elsewhere), numbered in the
    order of ``shapes`` and of the indices; None when the chunk's entries do not share one ring
    with a free packing generator."""
    rings = {}
    for name, idxs in chunk.items():
        for idx in idxs:
            ring = getattr(rings_from[name][idx], "ring", None)
            rings[id(ring)] = ring
    if len(rings) != 1:
        return None
    ring, = rings.values()
    packing = seed_forms.free_generator(ring) if ring is not None else None
    if packing is None:
        return None
    t = ring.gens[packing[1]]
    zero = space.zero()
    out, j = {}, 0
    for name, shape in shapes.items():
        arr = np.empty(shape, dtype=object)
        arr.fill(zero)
        for idx in sorted(chunk.get(name, ())):
            arr[idx] = seed_forms.SeedForm.seed(ring, t, j)
            j += 1
        out[name] = arr
    return ring, packing, out


def _packed_poly(ring, form):
    if type(form) is seed_forms.SeedForm and form.ring is ring:
        return form.p
    if type(form) is Value and form.is_syntactic_zero():
        return ring.zero
    raise seed_forms.Unused


def _same_packed(ring, got, want) -> bool:
    """Whether two arrays of packed forms have the same polynomials (so the same coefficients)."""
    got, want = np.asarray(got, dtype=object), np.asarray(want, dtype=object)
    if got.shape != want.shape:
        return False
    return all(_packed_poly(ring, got[idx]) == _packed_poly(ring, want[idx]) for idx in np.ndindex(*want.shape))


def _unequal_forms(space, got, want, name):
    """(label, got, want) for the coefficients where two arrays of linear forms differ."""
    bad = []
    got, want = np.asarray(got, dtype=object), np.asarray(want, dtype=object)
    zero = space.zero()
    for idx in np.ndindex(*want.shape):
        a, b = got[idx], want[idx]
        ta, tb = _terms(space, a), _terms(space, b)
        for key in set(ta) | set(tb):
            u, v = ta.get(key, zero), tb.get(key, zero)
            if u.ring is v.ring and u.ring is not None and u.p == v.p:
                continue  # the same polynomial (the common case)
            if not normal.is_zero_value(space, u - v):
                bad.append((f"{name}[{', '.join(map(str, idx))}] / {key[0]}{list(key[1:])}", u, v))
    return bad


def _terms(space, form):
    """A linear form's coefficients as Values (raw forms' polynomials wrapped)."""
    if isinstance(form, LinearForm):
        return form.terms
    if isinstance(form, RawForm):
        return {k: Value(space, form.ring, q) for k, q in form.terms.items()}
    return {}


def _plain(arr):
    out = np.empty(arr.shape, dtype=object)
    for idx in np.ndindex(*arr.shape):
        out[idx] = arr[idx]
    return out


def _row_groups(setting):
    """The statistics group of each row of the graph's statistic slot, in order."""
    layer, graph = setting.layer, setting.graph
    if getattr(graph, "row_groups", None) is not None:
        by_label = {(", ".join(map(str, g)) if isinstance(g, tuple) else str(g)): g for g in layer.members}
        return [by_label[label] for label in graph.row_groups]
    return list(layer.members)  # TorchLean's graph: row c is channel c
