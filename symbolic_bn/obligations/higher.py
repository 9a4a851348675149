"""Higher-order obligations of a layer's graph: second and third derivatives, exactly.

``prove(layer, order=2)`` / ``order=3`` add these to the first-order certificate (group
``'higher-order'``).  The graph ``G`` is the layer's tape; its backward and JVP are built *as
graphs of node kinds* (:mod:`symbolic_bn.graphs.backward_graph`), so the tape's own ``jvp`` and
``backprop`` apply to them again.  p = (x, weight, bias) are the layer's inputs; the cotangent g
and the directions u1, u2, u3 on p are fully symbolic (independent variables of the Space).

Families (every verdict by the engine's exact zero test with every side condition shown on the
domain, stated on the graph's own statistics; 'failed' only with an exact rational counterexample
re-evaluated; anything else 'undecided'):

* ``higher.kind.<node>.jvp_as_nodes`` / ``.vjp_as_nodes`` -- per node kind (each distinct kind,
  parameter and shape of the graphs being transformed): the JVP / VJP written with node kinds
  evaluates to the node's own ``jvp`` / ``vjp``, for a fully symbolic context (under the node's
  side condition: z > 0 for sqrtClamp, z ≠ 0 for inv).  New kinds the transformed graphs use
  (scale, scatterAdd, zeros, ...) also get the three local laws of the first-order stages
  (``.adjoint``, ``.derivative``, ``.transpose``).
* ``higher.tape.<mode>`` -- the graph of a nesting computes what the tape's method computes on
  the graph one level down (the backward graph evaluates to ``backprop``, the JVP graph to
  ``jvp``, the JVP of the backward graph to ``jvp`` of the backward graph, ...).
* ``higher.closure.<mode>.rev`` / ``.fwd`` -- the tape is closed under differentiation: for the
  graph H of every nesting of order < k, ``backprop_H(inputs, s) = (D E_H)ᵀ s`` for every seed s
  on its outputs and ``jvp_H(inputs, t) = D E_H · t`` for every tangent t on *all* its inputs
  (the vectors included), E_H : inputs ↦ outputs, with ``D E_H`` from H's own evaluation by the
  engine's chain rule.  Seeds and tangents are linear forms (every coefficient compared).
* ``higher.mode.<mode>`` -- every nesting of fwd and rev up to the order (names and vector
  conventions of :func:`symbolic_bn.checks.autodiff.mode_plan`: ``"fwd-over-rev"`` is a JVP of the
  backward) computed on the tape equals ``⟨g, D^k y(p)[u1, …, uk]⟩``, the k-th derivative of the
  layer's *forward* (``layer.forward`` on the exact namespace, not the graph) derived
  independently by the engine's chain rule (``R_0 = ⟨g, y⟩``, ``R_i = ⟨∇_p R_{i−1}, u_i⟩``).  The
  final vector is symbolic, so the scalar identity is the entrywise identity of the arrays.
* ``higher.hessian_symmetric.<mode>`` -- ``⟨H[u1], u2⟩ = ⟨u1, H[u2]⟩`` with H the tape's Hessian
  of ⟨g, y⟩ (by the JVP of the backward graph, and by the backward of the backward graph).
* ``higher.double_backward_closed_form.<output>`` -- the closed-form double backward written from
  the mathematics (:func:`symbolic_bn.graphs.closed_forms.double_backward`, PyTorch's shape:
  (x, weight, g, ggx, ggweight, ggbias) ↦ (gx, gweight, ggrad_out)) equals the derivative of the
  engine's own Jᵀg contracted with (ggx, ggweight, ggbias) = u1; ``.tape``: and equals the tape's
  backprop of the backward graph.

Order k includes the obligations of every order below it.
"""
from __future__ import annotations

import time
from fractions import Fraction

import numpy as np
import sympy

from ..checks.autodiff import MODES_BY_ORDER, mode_plan
from ..exact import normal
from ..exact.budget import BudgetExceeded, time_budget
from ..exact.coordinates import Inputs
from ..exact.errors import ExactError
from ..exact.linear import LinearForm
from ..exact.space import Space
from ..graphs import closed_forms
from ..graphs.backward_graph import (UnsupportedNode, base_tape, jvp_fragment, node_signature,
                                     tape_for_steps, vjp_fragment, _Builder, _Namer, _kind_of)
from ..graphs.graph import Graph
from ..xp.engine import _pairwise_sum
from .certificate import Obligation
from .setting import EngineAlgebra, ProofSetting, point_counterexample
from .stages import stage_obligations

__all__ = ["GROUP", "ORDERS", "check_order", "higher_tasks", "run_task", "task_names"]

GROUP = "higher-order"
ORDERS = (1, 2, 3)
_GUARDED = (ExactError, ValueError, TypeError, KeyError, ZeroDivisionError, ArithmeticError)


def check_order(order) -> int:
    """``order`` as an int in {1, 2, 3}, else a one-line ValueError naming ``order``."""
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or int(order) not in ORDERS:
        raise ValueError(f"order must be 1, 2 or 3, got {order!r}")
    return int(order)


def _steps_of(mode: str) -> tuple:
    return tuple(reversed(mode.split("-over-")))


def _mode_of(steps) -> str:
    return "-over-".join(reversed(steps))


def _tape_words(steps) -> str:
    if len(steps) == 1:
        return "the backward graph" if steps[0] == "rev" else "the JVP graph"
    inner = _tape_words(steps[:-1])
    outer = "the backward of" if steps[-1] == "rev" else "the JVP of"
    return f"the graph of {_mode_of(steps)} ({outer} {inner})"


def higher_tasks(order: int) -> list:
    """The independent groups of higher-order obligations of ``order`` (empty for order 1)."""
    tasks = []
    if order < 2:
        return tasks
    for k in range(2, order + 1):
        tasks.append(("higher", "kinds", k))
    for j in range(1, order):
        for mode in MODES_BY_ORDER[j]:
            tasks.append(("higher", "closure", _steps_of(mode)))
    for k in range(1, order + 1):
        tasks.append(("higher", "modes", k))
    tasks.append(("higher", "symmetry"))
    tasks.append(("higher", "closed_form"))
    return tasks


# ------------------------------------------------------------------------------ the setting

class _Setting:
    """The layer's graph and its tapes evaluated in one Space with symbolic g, u1 … u_order."""

    def __init__(self, layer, graph, backend, order):
        self.layer, self.graph = layer, graph
        self.base = ProofSetting(layer, graph, backend=backend, cotangent=True, directions=order)
        problem = self.problem = self.base.problem
        self.space, self.alg = self.base.space, self.base.alg
        self.names = tuple(layer.argument_names)
        self.vector_names = {"g": ("grad_out",)}
        for i, names in enumerate(problem.direction_names, 1):
            self.vector_names[f"u{i}"] = tuple(names)
        self.arrays = dict(self.base.inputs)
        self.arrays["grad_out"] = _plain(problem.grad_out)
        for names, arrs in zip(problem.direction_names, problem.directions):
            for n, a in zip(names, arrs):
                self.arrays[n] = _plain(a)
        self._tapes: dict = {(): base_tape(graph)}
        self._values: dict = {(): self.base.values}

    def names_of(self, vector, swap=False):
        if swap and vector in ("u1", "u2"):
            vector = "u2" if vector == "u1" else "u1"
        return self.vector_names[vector]

    def tape(self, steps, swap=False):
        key = (tuple(steps), swap)
        if not steps:
            return self._tapes[()]
        if key not in self._tapes:
            _, vectors, _ = mode_plan(_mode_of(steps))
            self._tapes[key] = tape_for_steps(self.graph, steps, [self.names_of(v, swap) for v in vectors])
        return self._tapes[key]

    def inputs_of(self, tape):
        return {n: self.arrays[n] for n in tape.graph.input_names}

    def values(self, steps, swap=False):
        key = (tuple(steps), swap)
        if not steps:
            return self._values[()]
        if key not in self._values:
            tape = self.tape(steps, swap)
            self._values[key] = tape.graph.evaluate(self.inputs_of(tape), self.alg)
        return self._values[key]

    def outputs(self, steps, swap=False):
        tape, values = self.tape(steps, swap), self.values(steps, swap)
        return [values[o] for o in tape.outputs]

    def apply(self, steps, step, vector, swap=False):
        """The tape's own method ``step`` ('fwd': jvp along ``vector``; 'rev': backprop seeded with
        ``vector``) on the graph of ``steps``: arrays aligned with its outputs (fwd) or p (rev)."""
        tape, values = self.tape(steps, swap), self.values(steps, swap)
        names = self.names_of(vector, swap)
        inputs = self.inputs_of(tape)
        if step == "fwd":
            tangents = {w: self.arrays[n] for w, n in zip(tape.wrt, names)}
            tan = tape.graph.jvp(inputs, tangents, self.alg, values=values)
            return [tan[o] for o in tape.outputs]
        seed: dict = {}
        for o, n in zip(tape.outputs, names):
            seed[o] = seed[o] + self.arrays[n] if o in seed else self.arrays[n]
        cot = tape.graph.backprop(inputs, seed, self.alg, values=values)
        return [cot[w] for w in tape.wrt]

    def pair(self, arrays, vector, swap=False):
        names = self.names_of(vector, swap)
        terms = []
        for arr, n in zip(arrays, names):
            other = self.arrays[n]
            terms += [self.space.multiply(a, b) for a, b in zip(np.ravel(arr), np.ravel(other))]
        return _pairwise_sum(self.space, terms)

    def mode_value(self, mode, swap=False):
        steps, vectors, final = mode_plan(mode)
        out = self.apply(steps[:-1], steps[-1], vectors[-1], swap)
        return self.pair(out, final, swap)

    def reference(self, k):
        """``R_k = ⟨g, D^k y[u1, …, uk]⟩`` of the layer's forward, by the engine's chain rule."""
        cache = self.__dict__.setdefault("_reference", {})
        if k in cache:
            return cache[k]
        if k == 0:
            y = self.problem.y
            value = self.pair([np.asarray(y.view(np.ndarray))], "g")
        else:
            previous = self.reference(k - 1)
            grads = self.problem.inputs.gradient(previous, list(self.names))
            value = self.pair([grads[n] for n in self.names], f"u{k}")
        cache[k] = value
        return value


def _plain(arr):
    out = np.empty(arr.shape, dtype=object)
    for idx in np.ndindex(*arr.shape):
        out[idx] = arr[idx]
    return out


def _same(space, a, b) -> bool:
    zero = space.zero()
    a = zero if a is None else a
    b = zero if b is None else b
    if a.ring is b.ring and a.ring is not None and type(a.p) is type(b.p) and a.p == b.p:
        return True
    return normal.is_zero_value(space, a - b)


def _label(idx) -> str:
    return f"[{', '.join(map(str, idx))}]" if len(idx) else ""


def _domain_words(layer, setting=None):
    return f"{layer.domain_text()} (on the graph's own {setting.base.stat_slot if setting else 'statistic'})"


# ------------------------------------------------------------------------------ deciding

class _Run:
    """Collects the obligations of one task, each decided with the same rules."""

    def __init__(self, layer, budget, rng):
        self.layer, self.budget, self.rng = layer, budget, rng
        self.out: list = []
        self.setting = None

    def add(self, name, statement, status, method, t0, detail=None, cex=None, assumptions=None):
        if assumptions is None:
            assumptions = [_domain_words(self.layer, self.setting)]
        self.out.append(Obligation(name, statement, status, method, assumptions=list(assumptions),
                                   seconds=time.perf_counter() - t0, counterexample=cex, group=GROUP,
                                   detail=detail))

    def decide(self, name, statement, method, compute, assumptions=None):
        """``compute()`` returns (label, left, right) triples of Values of the setting's Space that
        must all be equal; the verdict follows the house rules."""
        t0 = time.perf_counter()
        setting = self.setting
        try:
            with time_budget(self.budget):
                bad = []
                for label, a, b in compute():
                    if not _same(setting.space, a, b):
                        bad.append((label, a, b))
                        if len(bad) >= 8:
                            break
                unmet = setting.space.unmet_conditions()
                if bad:
                    cex = point_counterexample(setting.base, bad, self.rng)
                    if cex is not None:
                        self.add(name, statement, "failed",
                                 "exact counterexample at a rational point of the domain (every vector "
                                 "drawn as exact rationals too), confirmed by SymPy interval arithmetic",
                                 t0, detail=f"{len(bad)}+ entries differ, first {bad[0][0]}", cex=cex,
                                 assumptions=assumptions)
                    else:
                        self.add(name, statement, "undecided", "not decided", t0,
                                 detail=f"the exact normal form of {bad[0][0]} differs, but no rational point "
                                        "showed a difference", assumptions=assumptions)
                elif unmet:
                    self.add(name, statement, "undecided", method, t0,
                             detail="zero only where these side conditions hold, which the domain does not "
                                    "give: " + "; ".join(setting.space.condition_text(a) for a in unmet),
                             assumptions=assumptions)
                else:
                    self.add(name, statement, "proved", method, t0, assumptions=assumptions)
        except BudgetExceeded:
            self.add(name, statement, "undecided", "not decided", t0,
                     detail=f"time budget of {self.budget:g} s exceeded" if self.budget else "time budget exceeded",
                     assumptions=assumptions)
        except _GUARDED as exc:
            self.add(name, statement, "undecided", "not decided", t0,
                     detail=f"could not be evaluated exactly: {type(exc).__name__}: {exc}",
                     assumptions=assumptions)


_ZERO_TEST = ("on the exact engine (polynomials over ℚ in the inputs, cotangent and directions, "
              "atoms σ = sqrt(z), ι = 1/q with their side conditions), decided by its exact zero "
              "test; every side condition shown on the domain")


# ------------------------------------------------------------------------------ families

def _modes(run, k):
    s = run.setting
    ref_words = ("⟨g, y⟩" if k == 0 else
                 f"⟨g, D{'²' if k == 2 else '³' if k == 3 else ''}y(p)[{', '.join(f'u{i}' for i in range(1, k + 1))}]⟩")
    for mode in MODES_BY_ORDER[k]:
        steps, vectors, final = mode_plan(mode)
        inner = _tape_words(steps[:-1]) if len(steps) > 1 else "the graph"
        outer = "jvp along" if steps[-1] == "fwd" else "backprop seeded with"
        statement = (f"{mode} on the tape -- the tape's {outer} {vectors[-1]} applied to {inner}, paired "
                     f"with {final} -- equals {ref_words}, the derivative of order {k} of the layer's "
                     f"forward computed independently by the engine's chain rule, for a symbolic "
                     f"cotangent g and symbolic directions {', '.join(f'u{i}' for i in range(1, k + 1))} on the "
                     f"inputs ({', '.join(s.names)}) (so for every "
                     f"output and input entry), at every input with {run.layer.domain_text()}")
        run.decide(f"higher.mode.{mode}", statement,
                   "the tape's value and the reference (R_0 = ⟨g, y⟩, R_i = ⟨∇_p R_(i−1), u_i⟩ from the "
                   "layer's forward) " + _ZERO_TEST,
                   lambda mode=mode: [(mode, s.mode_value(mode), s.reference(k))])


def _symmetry(run):
    s = run.setting
    for mode, words in (("fwd-over-rev", "the JVP of the backward graph (the Hessian-vector product)"),
                        ("rev-over-rev", "the backward of the backward graph (the double backward)")):
        statement = (f"Hessian symmetry on the tape: ⟨H[u1], u2⟩ = ⟨u1, H[u2]⟩ with H[u] = {words} of "
                     f"⟨g, y⟩ along u, for symbolic g, u1, u2 (so for every output pairing), at every input "
                     f"with {run.layer.domain_text()}")
        run.decide(f"higher.hessian_symmetric.{mode}", statement,
                   "both sides computed by the tape's own methods " + _ZERO_TEST,
                   lambda mode=mode: [(mode, s.mode_value(mode), s.mode_value(mode, swap=True))])


def _closure(run, steps):
    s = run.setting
    mode = _mode_of(steps)
    words = _tape_words(steps)
    domain = run.layer.domain_text()

    def describe():
        tape = s.tape(steps)
        return (f"{len(tape.graph.nodes)} nodes, inputs {', '.join(tape.graph.input_names)}")

    try:
        detail_words = describe()
    except UnsupportedNode as exc:
        detail_words = None
        why = str(exc)
    # the tape computes what the tape's method one level down computes
    parent, step = steps[:-1], steps[-1]
    _, vectors, _ = mode_plan(mode)

    def tape_pairs():
        got = s.outputs(steps)
        want = s.apply(parent, step, vectors[-1])
        tape = s.tape(steps)
        for o, a, b in zip(tape.outputs, got, want):
            for idx in np.ndindex(*b.shape):
                yield (f"{o}{_label(idx)}", a[idx], b[idx])

    method_name = "jvp along" if step == "fwd" else "backprop seeded with"
    below = "the graph" if not parent else _tape_words(parent)
    run.decide(f"higher.tape.{mode}",
               f"{words}, written with node kinds, evaluates to the tape's {method_name} {vectors[-1]} of "
               f"{below}, entry by entry, for symbolic vectors, at every input with {domain}",
               "both sides evaluated " + _ZERO_TEST, tape_pairs)
    if detail_words is None:
        for suffix in ("rev", "fwd"):
            run.add(f"higher.closure.{mode}.{suffix}", f"{words} is closed under differentiation "
                    f"({suffix})", "undecided", "not decided", time.perf_counter(), detail=why)
        return
    jac_cache: dict = {}

    def want_of(tape, values, o, idx):
        key = (o, idx)
        if key not in jac_cache:
            jac = jac_cache.setdefault("jac", s.problem.inputs.jacobian())
            inputs = set(tape.graph.input_names)
            jac_cache[key] = {e: d for e, d in jac.of(values[o][idx]).items() if e[0] in inputs}
        return jac_cache[key]

    def rev_pairs():
        tape, values = s.tape(steps), s.values(steps)
        one = s.alg.one
        seed: dict = {}
        for k, o in enumerate(tape.outputs):
            arr = np.empty(tape.graph.shapes[o], dtype=object)
            for idx in np.ndindex(*arr.shape):
                arr[idx] = LinearForm.unit((k, idx), one)
            seed[o] = seed[o] + arr if o in seed else arr
        cot = tape.graph.backprop(s.inputs_of(tape), seed, s.alg, values=values)
        got: dict = {}
        for n in tape.graph.input_names:
            for idx in np.ndindex(*cot[n].shape):
                form = cot[n][idx]
                if isinstance(form, LinearForm):
                    for key, c in form.terms.items():
                        got.setdefault(key, {})[(n, idx)] = c
                elif not form.is_syntactic_zero():  # not linear in the seed: never proved
                    yield (f"the cotangent of {n}{_label(idx)} is not linear in the seed", form, None)
        for k, o in enumerate(tape.outputs):
            for idx in np.ndindex(*tape.graph.shapes[o]):
                want = want_of(tape, values, o, idx)
                mine = got.get((k, idx), {})
                for e in set(want) | set(mine):
                    yield (f"seed on output {o}{_label(idx)}, input {e[0]}{_label(e[1])}",
                           mine.get(e), want.get(e))

    def fwd_pairs():
        tape, values = s.tape(steps), s.values(steps)
        one = s.alg.one
        tangents = {}
        for n in tape.graph.input_names:
            arr = np.empty(tape.graph.shapes[n], dtype=object)
            for idx in np.ndindex(*arr.shape):
                arr[idx] = LinearForm.unit((n, idx), one)
            tangents[n] = arr
        tan = tape.graph.jvp(s.inputs_of(tape), tangents, s.alg, values=values)
        for o in tape.outputs:
            for idx in np.ndindex(*tape.graph.shapes[o]):
                form = tan[o][idx]
                mine = form.terms if isinstance(form, LinearForm) else {}
                if not isinstance(form, LinearForm) and not form.is_syntactic_zero():
                    yield (f"the tangent of {o}{_label(idx)} is not linear in the tangent", form, None)
                want = want_of(tape, values, o, idx)
                for e in set(want) | set(mine):
                    yield (f"output {o}{_label(idx)}, tangent on {e[0]}{_label(e[1])}", mine.get(e), want.get(e))

    method = ("seeds (tangents) as linear forms in independent symbols, every coefficient compared with "
              "the partial derivative of the output entry by the engine's chain rule from the graph's own "
              "evaluation, " + _ZERO_TEST)
    run.decide(f"higher.closure.{mode}.rev",
               f"the tape is closed under reverse mode at {words} ({detail_words}): its backprop with a "
               f"seed s on its outputs equals (D E)ᵀ s, E : inputs ↦ outputs, for every seed s and every "
               f"input with {domain}", method, rev_pairs)
    run.decide(f"higher.closure.{mode}.fwd",
               f"the tape is closed under forward mode at {words} ({detail_words}): its jvp along a "
               f"tangent t on all its inputs equals D E · t, E : inputs ↦ outputs, for every tangent t and "
               f"every input with {domain}", method, fwd_pairs)


def _closed_form(run):
    s = run.setting
    problem, layer = s.problem, s.layer
    names = s.names
    u = problem.directions[0]
    w_name = names[1]
    out_names = ("gx", "g" + w_name, "ggrad_out")
    cache = {}

    def both():
        if not cache:
            bw = problem.backward()
            parts = [(bw["dx"], u[0]), (bw["dweight"], u[1])]
            if problem.b_name:
                parts.append((bw["dbias"], u[2]))
            terms = [s.space.multiply(a, b) for d, t in parts for a, b in zip(np.ravel(d.view(np.ndarray)),
                                                                            np.ravel(t.view(np.ndarray)))]
            phi = _pairwise_sum(s.space, terms)
            grads = problem.inputs.gradient(phi, [names[0], w_name, "grad_out"])
            cache["ref"] = (grads[names[0]], grads[w_name], grads["grad_out"])
            cache["closed"] = closed_forms.double_backward(
                layer, problem.x, problem.weight, problem.grad_out, u[0], u[1],
                u[2] if problem.b_name else None, problem.eps, problem.xp)
        return cache["closed"], cache["ref"]

    def pairs(k):
        def compute():
            closed, ref = both()
            a, b = np.asarray(closed[k].view(np.ndarray)), np.asarray(ref[k])
            for idx in np.ndindex(*b.shape):
                yield (f"{out_names[k]}{_label(idx)}", a[idx], b[idx])
        return compute

    formula = {"gx": "gx = r(a − c⟨a⟩ − x̂⟨x̂a⟩) − r²[x̂(⟨ĝt⟩ − c⟨ĝ⟩⟨t⟩ − 3⟨ĝx̂⟩⟨x̂t⟩) + ⟨ĝx̂⟩(t − c⟨t⟩) + "
                      "⟨x̂t⟩(ĝ − c⟨ĝ⟩)] per statistics group (ĝ = g·w, t = ggx, a = g·ggweight, c = 1 "
                      "centered, 0 for rms_norm)",
               "g" + w_name: f"g{w_name} = Σ g·r(t − c⟨t⟩ − x̂⟨x̂t⟩) over the positions sharing each entry",
               "ggrad_out": "ggrad_out = w·r(t − c⟨t⟩ − x̂⟨x̂t⟩) + ggweight·x̂ + ggbias"}
    for k, name in enumerate(out_names):
        run.decide(f"higher.double_backward_closed_form.{name}",
                   f"the closed-form double backward written from the mathematics, {formula[name]}, equals "
                   f"the derivative of the backward (x, {w_name}, grad_out) ↦ Jᵀ·grad_out (the engine's own, "
                   f"from the layer's forward) contracted with symbolic (ggx, gg{w_name}"
                   f"{', gg' + names[2] if problem.b_name else ''}), entry by entry, at every input with "
                   f"{layer.domain_text()}",
                   "closed form on the exact namespace; reference = ∇ of ⟨Jᵀg, gg⟩ by the engine's chain "
                   "rule; " + _ZERO_TEST, pairs(k))

    def tape_pairs():
        closed, _ = both()
        tape = s.tape(("rev",))
        seed = {o: s.arrays[n] for o, n in zip(tape.outputs, s.vector_names["u1"])}
        cot = tape.graph.backprop(s.inputs_of(tape), seed, s.alg, values=s.values(("rev",)))
        got = (cot[names[0]], cot[w_name], cot["grad_out"])
        for k, name in enumerate(out_names):
            a, b = got[k], np.asarray(closed[k].view(np.ndarray))
            for idx in np.ndindex(*b.shape):
                yield (f"{name}{_label(idx)}", a[idx], b[idx])
        if problem.b_name:
            for idx in np.ndindex(*cot[names[2]].shape):
                yield (f"g{names[2]}{_label(idx)}", cot[names[2]][idx], None)

    run.decide("higher.double_backward_closed_form.tape",
               f"the closed-form double backward equals the tape's backprop of the backward graph seeded "
               f"with (ggx, gg{w_name}{', gg' + names[2] if problem.b_name else ''}): its cotangents of x, {w_name} "
               f"and grad_out are (gx, g{w_name}, ggrad_out)"
               f"{f' and that of {names[2]} is 0' if problem.b_name else ''}, at every input with "
               f"{layer.domain_text()}", "both sides " + _ZERO_TEST, tape_pairs)


# ------------------------------------------------------------------------------ node kinds

_FRAGMENT_WORDS = {"Reshape": "reshape", "Permute": "permute", "Gather": "gather", "ScatterAdd": "scatterAdd",
                   "RowMean": "rowMean", "BroadcastRow": "broadcastRow", "BroadcastCol": "broadcastCol",
                   "Scale": "scale", "Add": "add", "Sub": "sub", "Mul": "mul", "Zeros": "zeros",
                   "add_const": "addEps", "sqrt_clamp": "sqrtClamp", "inv": "inv"}


def _shape_text(shape) -> str:
    return "x".join(map(str, shape)) if shape else "scalar"


def _signatures(tapes):
    """Distinct node signatures of the tapes' graphs, in order: [(label, signature, node, graph)],
    and [(label, message)] for nodes whose derivative cannot be written with node kinds."""
    seen, out, unsupported, labels = set(), [], [], {}
    for tape in tapes:
        graph = tape.graph
        for node in graph.nodes:
            try:
                sig = node_signature(node, graph.shapes)
            except UnsupportedNode as exc:
                key = ("unsupported", node.name)
                if key not in seen:
                    seen.add(key)
                    unsupported.append((f"{node.kind}:{node.name}", str(exc)))
                continue
            if sig in seen:
                continue
            seen.add(sig)
            kind, in_shapes, shape, alias, _ = sig
            factor = f"({sig[4][0]})" if kind == "Scale" else ""
            base = (f"{_FRAGMENT_WORDS[kind]}{factor}[{','.join(_shape_text(s) for s in in_shapes)}->"
                    f"{_shape_text(shape)}{',same-slot' if len(set(alias)) < len(alias) else ''}]")
            labels[base] = labels.get(base, 0) + 1
            label = base if labels[base] == 1 else f"{base}#{labels[base]}"
            out.append((label, sig, node, graph))
    return out, unsupported


def _level_tapes(graph, j):
    """The tapes of every nesting of order j (j = 0: the graph itself)."""
    if j == 0:
        return [base_tape(graph)]
    return [tape_for_steps(graph, _steps_of(m), _vectors_for(graph, m)) for m in MODES_BY_ORDER[j]]


def _vectors_for(graph, mode):
    names = list(graph.input_names)
    _, vectors, _ = mode_plan(mode)
    return [("grad_out",) if v == "g" else tuple(f"{v}_{n}" for n in names) for v in vectors]


def _mini_space(graph, node, backend, eps):
    """A Space with the node's input slots, tangents and a cotangent as variables (the node's
    side condition as the sign of its condition slot)."""
    space = Space(backend, name="node kind")
    inputs = Inputs(space)
    slots = list(dict.fromkeys(node.inputs))
    cond = node.inputs[node.condition_input] if node.side_condition and node.condition_input is not None else None
    sign = {"sqrtClamp": "positive", "inv": "nonzero"}.get(node.kind)
    # variables named by position (slot names of transformed graphs are not valid variable names)
    for k, slot in enumerate(slots):
        inputs.plain(f"X{k}", graph.shapes[slot], sign=sign if slot == cond else None)
        inputs.plain(f"dX{k}", graph.shapes[slot])
    inputs.plain("cot", node.shape)
    params = {}
    if isinstance(eps, sympy.Symbol):
        inputs.scalar("eps")
        params[eps] = None
    space.freeze()
    if params:
        params = {eps: space.var("eps")}
    alg = EngineAlgebra(space, params)
    arrays = {f"X {slot}": inputs.array(f"X{k}") for k, slot in enumerate(slots)}
    arrays.update({f"dX {slot}": inputs.array(f"dX{k}") for k, slot in enumerate(slots)})
    arrays[f"cot {node.name}"] = inputs.array("cot")
    return space, alg, slots, arrays, inputs


def _kind_obligations(run, graph_eps, k, backend):
    """Order k differentiates the tapes of order k − 1, built from the fragments of the nodes of
    the tapes of order k − 2: the fragments' laws, and the local laws of the node kinds that are
    new at order k − 1 (those of the graph itself are the first-order stages)."""
    graph = run.graph
    below = set()
    for j in range(k - 2):
        below |= {sig for _, sig, _, _ in _signatures(_level_tapes(graph, j))[0]}
    sigs, unsupported = _signatures(_level_tapes(graph, k - 2))
    for label, message in unsupported:
        for suffix in ("jvp_as_nodes", "vjp_as_nodes"):
            run.add(f"higher.kind.{label}.{suffix}", f"the {suffix[:3].upper()} of node {label} written with "
                    "node kinds", "undecided", "not decided", time.perf_counter(), detail=message,
                    assumptions=[])
    for label, sig, node, g in sigs:
        if sig not in below:
            _fragment_laws(run, label, node, g, graph_eps, backend)
    if unsupported:
        return
    known = below | {sig for _, sig, _, _ in sigs}
    for label, sig, node, g in _signatures(_level_tapes(graph, k - 1))[0]:
        if sig not in known:
            _stage_laws(run, label, node, g)


def _fragment_laws(run, label, node, graph, graph_eps, backend):
    kind = _kind_of(node)
    cond = {"sqrt_clamp": "z > 0 for every entry (the side condition of sqrtClamp)",
            "inv": "z ≠ 0 for every entry (the side condition of inv)"}.get(kind)
    where = f"for every context with {cond}" if cond else "for every context"
    holder = {}

    def setup():
        if not holder:
            space, alg, slots, arrays, inputs = _mini_space(graph, node, backend, graph_eps)
            holder.update(space=space, alg=alg, slots=slots, arrays=arrays, inputs=inputs)
            args = [arrays[f"X {s}"] for s in node.inputs]
            holder["args"] = args
            holder["out"] = node.forward(alg, *args)
        return holder

    def fragment_graph(build):
        h = setup()
        shapes = {s: graph.shapes[s] for s in h["slots"]}
        inputs = dict(shapes)
        for s in h["slots"]:
            inputs[f"d·{s}"] = graph.shapes[s]
        inputs[f"δ·{node.name}"] = tuple(node.shape)
        host = Graph(inputs, [node], name="node")
        b = _Builder(host, _Namer(list(host.shapes)), "frag")
        b.shapes.update(host.shapes)
        result = build(b)
        frag = Graph(inputs, [node] + b.nodes, name="fragment")
        values = {s: h["arrays"][f"X {s}"] for s in h["slots"]}
        values.update({f"d·{s}": h["arrays"][f"dX {s}"] for s in h["slots"]})
        values[f"δ·{node.name}"] = h["arrays"][f"cot {node.name}"]
        return result, frag.evaluate({k: _plain(v) for k, v in values.items()}, h["alg"])

    def jvp_pairs():
        h = setup()
        slot, vals = fragment_graph(lambda b: jvp_fragment(b, node, [f"d·{s}" for s in node.inputs]))
        want = node.jvp(h["alg"], h["args"], [h["arrays"][f"dX {s}"] for s in node.inputs])
        for idx in np.ndindex(*node.shape):
            got = vals[slot][idx] if slot is not None else None
            yield (f"{node.name}{_label(idx)}", got, want[idx])

    def vjp_pairs():
        h = setup()
        pairs, vals = fragment_graph(lambda b: vjp_fragment(b, node, f"δ·{node.name}", [True] * len(node.inputs)))
        got: dict = {}
        for s, c in pairs:
            got[s] = got[s] + vals[c] if s in got else vals[c]
        want: dict = {}
        for s, c in node.vjp(h["alg"], h["args"], h["arrays"][f"cot {node.name}"]):
            want[s] = want[s] + c if s in want else c
        for s in h["slots"]:
            for idx in np.ndindex(*graph.shapes[s]):
                yield (f"{s}{_label(idx)}", got[s][idx] if s in got else None,
                       want[s][idx] if s in want else None)

    assumptions = [cond] if cond else []
    for suffix, mode, compute in (("jvp_as_nodes", "JVP", jvp_pairs), ("vjp_as_nodes", "VJP", vjp_pairs)):
        name = f"higher.kind.{label}.{suffix}"
        statement = (f"node kind {label}: its {mode} written with node kinds (as the "
                     f"{'JVP' if mode == 'JVP' else 'backward'} graph builds it) equals the node's own "
                     f"{mode.lower()}, {where}, tangent and cotangent")
        t0 = time.perf_counter()
        try:
            with time_budget(run.budget):
                h = setup()
                bad = [(l, a, b) for l, a, b in compute() if not _same(h["space"], a, b)]
                unmet = h["space"].unmet_conditions()
        except BudgetExceeded:
            run.add(name, statement, "undecided", "not decided", t0, detail="time budget exceeded",
                    assumptions=assumptions)
            continue
        except _GUARDED as exc:
            run.add(name, statement, "undecided", "not decided", t0,
                    detail=f"could not be evaluated exactly: {type(exc).__name__}: {exc}", assumptions=assumptions)
            continue
        if bad:
            # not a statement about the layer: the transformation itself is wrong here
            cex = _mini_counterexample(h, bad[:8], run.rng)
            if cex is not None:
                run.add(name, statement, "failed", "exact counterexample: the fragment and the node's rule "
                        "evaluated at a rational context (side condition met), confirmed by SymPy interval "
                        "arithmetic", t0, detail="the fragment does not match the node's declared derivative",
                        cex=cex, assumptions=assumptions)
            else:
                run.add(name, statement, "undecided", "not decided", t0,
                        detail=f"the exact normal form of {bad[0][0]} differs (the fragment does not match the "
                               "node's declared derivative), but no rational point showed it",
                        assumptions=assumptions)
        elif unmet:
            run.add(name, statement, "undecided", "not decided", t0,
                    detail="; ".join(h["space"].condition_text(a) for a in unmet), assumptions=assumptions)
        else:
            run.add(name, statement, "proved", "the fragment and the node's own rule evaluated on a context "
                    "of independent variables " + _ZERO_TEST, t0, assumptions=assumptions)


def _mini_counterexample(h, bad, rng, tries=6):
    """A rational context (signs as declared) where a (label, left, right) pair of the node-kind
    Space differs, re-confirmed by SymPy; None if none is found."""
    from ..exact import sign as _sign
    from ..exact.convert import Substitution, to_sympy
    from ..exact.coordinates import entry_name
    from ..exact.decide import differ_exactly
    space, inputs = h["space"], h["inputs"]
    for _ in range(tries):
        values, point = {}, {}
        for name, (_, shape, _) in inputs.arrays.items():
            arr = np.empty(shape, dtype=object)
            for idx in np.ndindex(*shape):
                q = Fraction(rng.randint(-9, 9), rng.randint(1, 4))
                declared = space.var_sign.get(entry_name(name, idx))
                if declared == "positive":
                    q = abs(q) + 1
                elif declared == "nonzero" and q == 0:
                    q = Fraction(1)
                arr[idx] = q
            values.update(inputs.point_values(name, arr))
            point[name] = np.vectorize(lambda f: sympy.Rational(f.numerator, f.denominator),
                                       otypes=[object])(arr).tolist()
        target = Space(space.backend.name, name="point")
        at = Substitution(space, values, target)
        for label, a, b in bad:
            va = at(a) if a is not None else target.zero()
            vb = at(b) if b is not None else target.zero()
            d = va - vb
            if normal.is_zero_value(target, d) or _sign.sign(target, d) not in ("pos", "neg"):
                continue
            sa, sb = to_sympy(va), to_sympy(vb)
            if differ_exactly(sa, sb) is not True:
                continue
            return {"at": label, "left": sa, "right": sb, "left_approx": float(sympy.N(sa, 17)),
                    "right_approx": float(sympy.N(sb, 17)), "context": point}
    return None


def _stage_laws(run, label, node, graph):
    slots = list(dict.fromkeys(node.inputs))
    mini = Graph({s: graph.shapes[s] for s in slots}, [node], name="node kind")
    for ob in stage_obligations(mini, node, run.budget, run.rng, lean_names={}):
        suffix = ob.name.rsplit(".", 1)[-1]
        ob.name = f"higher.kind.{label}.{suffix}"
        ob.statement = f"node kind {label} (used by the transformed graphs): " + ob.statement.split(": ", 1)[-1]
        ob.group, ob.stage, ob.lean_name = GROUP, label, None
        run.out.append(ob)


# ------------------------------------------------------------------------------ tasks

def task_names(task, graph) -> list:
    """The names of the obligations ``task`` produces (for placeholders when it cannot run)."""
    family = task[1]
    if family == "modes":
        return [f"higher.mode.{m}" for m in MODES_BY_ORDER[task[2]]]
    if family == "closure":
        mode = _mode_of(task[2])
        return [f"higher.tape.{mode}", f"higher.closure.{mode}.rev", f"higher.closure.{mode}.fwd"]
    if family == "symmetry":
        return ["higher.hessian_symmetric.fwd-over-rev", "higher.hessian_symmetric.rev-over-rev"]
    if family == "closed_form":
        w = graph.input_names[1]
        return [f"higher.double_backward_closed_form.{n}" for n in ("gx", "g" + w, "ggrad_out", "tape")]
    return [f"higher.kinds.order{task[2]}"]


def _directions(task) -> int:
    family = task[1]
    if family == "modes":
        return task[2]
    if family == "closure":
        return len(task[2])
    return 2 if family == "symmetry" else 1


def run_task(task, layer, graph, backend, budget, seed, rng) -> list:
    """The obligations of one higher-order task; engine errors become 'undecided', never a crash."""
    run = _Run(layer, budget, rng)
    run.graph = graph
    family = task[1]
    if family == "kinds":
        _kind_obligations(run, getattr(graph, "eps", layer.eps), task[2], backend)
        return run.out
    t0 = time.perf_counter()
    try:
        with time_budget(budget):
            run.setting = _Setting(layer, graph, backend, _directions(task))
    except BudgetExceeded:
        return [Obligation(n, n, "undecided", "not decided", group=GROUP, seconds=time.perf_counter() - t0,
                           detail="time budget exceeded while setting up") for n in task_names(task, graph)]
    except _GUARDED as exc:
        return [Obligation(n, n, "undecided", "not decided", group=GROUP, seconds=time.perf_counter() - t0,
                           detail=f"the graph could not be evaluated exactly: {type(exc).__name__}: {exc}")
                for n in task_names(task, graph)]
    if family == "modes":
        _modes(run, task[2])
    elif family == "closure":
        _closure(run, task[2])
    elif family == "symmetry":
        _symmetry(run)
    elif family == "closed_form":
        _closed_form(run)
    else:
        raise ValueError(f"unknown higher-order task {task!r}")
    return run.out
