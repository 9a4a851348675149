"""End to end: the tape's backprop is the adjoint of the derivative of the graph's evaluation.

TorchLean's ``backprop_eq_adjoint_fderiv_…_at``: for E : (inputs) ↦ (inputs, every intermediate
slot), at every point of the domain and for every seed s on *all* slots,

    backprop(x, s) = J_E(x)ᵀ s.

Both sides are linear in s, so the identity is decided seed coefficient by seed coefficient:
backprop runs on *linear forms* (one independent symbol per slot entry; a slot at a time, so
memory stays bounded by one slot's seeds), and ``J_E`` is derived by the engine's chain rule
from each slot's forward value (:class:`~symbolic_bn.exact.calculus.Jacobian`, never from the VJP
rules under test).  Every coefficient must agree exactly (engine normal forms), and every side
condition met (each sqrtClamp's radicand > 0, each inv's argument ≠ 0) must follow from the domain
stated on the graph's own statistics.

The block structure comes with it: no slot entry depends on the inputs x of two statistics
groups, and backprop sends no seed of one group's entries to another group's x.

Speed: a chunk is first tried with its seeds packed into one polynomial
(:mod:`~symbolic_bn.obligations.seed_forms`), which can only confirm that every coefficient agrees
syntactically; any other outcome is decided coefficient by coefficient as before.
"""
from __future__ import annotations

import time

import numpy as np
import sympy

from ..exact import normal, sign
from ..exact.budget import BudgetExceeded, time_budget
from ..exact.convert import Substitution, to_sympy
from ..exact.decide import differ_exactly
from ..exact.linear import LinearForm
from ..exact.space import Space
from ..exact.value import _CONTEXT_ERRORS, Value
from .certificate import Obligation
from .raw_forms import LeavesRing, RawForm
from . import seed_forms

__all__ = ["end_to_end_obligations"]


def _unit_seed(graph, slot, one, entries=None, zero=None):
    """Independent seed symbols on ``slot`` (only at ``entries`` when given; zero elsewhere)."""
    arr = np.empty(graph.shapes[slot], dtype=object)
    for idx in np.ndindex(*arr.shape):
        if entries is None or idx in entries:
            arr[idx] = LinearForm.unit((slot,) + tuple(int(i) for i in idx), one)
        else:
            arr[idx] = zero
    return {slot: arr}


def _chunks(setting, slot):
    """The entries of ``slot`` grouped by the statistics groups their values involve (seeds of
    one chunk at a time keep backprop's linear forms small; backprop is linear in the seed --
    every operation on linear forms is -- so the chunks together decide the whole identity)."""
    out: dict = {}
    values = setting.values[slot]
    for idx in np.ndindex(*values.shape):
        out.setdefault(frozenset(_x_blocks(setting.space, values[idx])), set()).add(idx)
    return list(out.values())


def _compare_slot(setting, slot, jac, memo=None):
    bad, cross, count = [], [], 0
    memo = {} if memo is None else memo
    for entries in _chunks(setting, slot):
        b, c, n = _compare_chunk(setting, slot, entries, jac, memo)
        bad += b
        cross += c
        count += n
    return bad, cross, count


def _chunk_ring(setting, slot, entries):
    """The one ring all the chunk's values live in, if there is one (flint backend only)."""
    rings = {id(setting.values[slot][idx].ring): setting.values[slot][idx].ring for idx in entries}
    if len(rings) != 1:
        return None
    ring, = rings.values()
    if ring is None or not getattr(ring, "fast", False) or ring.__class__.__name__ != "Ring":
        return None
    return ring


def _compare_chunk(setting, slot, entries, jac, memo):
    ring = _chunk_ring(setting, slot, entries)
    if ring is not None:
        settled = _compare_chunk_packed(setting, slot, entries, jac, ring, memo)
        if settled is not None:
            return settled
        try:
            return _compare_chunk_raw(setting, slot, entries, jac, ring)
        except LeavesRing:
            pass  # a coefficient needed another ring: the same computation with Values
    return _compare_chunk_values(setting, slot, entries, jac)


def _compare_chunk_raw(setting, slot, entries, jac, ring):
    """As :func:`_compare_chunk_values`, with the chunk's coefficients raw polynomials of
    ``ring`` (:mod:`~symbolic_bn.obligations.raw_forms`)."""
    graph, values, space = setting.graph, setting.values, setting.space
    seed = np.empty(graph.shapes[slot], dtype=object)
    zero = space.zero()
    for idx in np.ndindex(*seed.shape):
        seed[idx] = RawForm.unit((slot,) + tuple(int(i) for i in idx), ring) if idx in entries else zero
    cot = graph.backprop(setting.inputs, {slot: seed}, setting.alg, values=values)
    got: dict = {}
    for name in graph.input_names:
        arr = cot[name]
        for idx in np.ndindex(*arr.shape):
            form = arr[idx]
            if isinstance(form, RawForm):
                if form.terms and form.ring is not ring:
                    raise LeavesRing
                for key, c in form.terms.items():
                    got.setdefault(key, {})[(name, idx)] = c
            elif isinstance(form, LinearForm) or not (type(form).__name__ == "Value" and form.is_syntactic_zero()):
                raise LeavesRing
    del cot
    inputs = set(graph.input_names)
    x_name = setting.problem.x_name
    bad, cross, count = [], [], 0
    memo: dict = {}
    for idx in sorted(entries):
        key = (slot,) + tuple(int(i) for i in idx)
        v = values[slot][idx]
        got_key = got.pop(key, {})
        cached = memo.get(id(v))
        if cached is None or cached[0] is not v:
            if v.ring is not ring:
                raise LeavesRing
            raw = jac._poly(ring, ring.lift(v.p))
            want = {e: q for e, q in raw.items() if e[0] in inputs}
            cached = memo[id(v)] = (v, want, _x_blocks(space, v))
        _, want, blocks = cached
        count += len(want)
        for entry in set(got_key) | set(want):
            a, b = got_key.get(entry), want.get(entry)
            if a is not None and b is not None:
                try:
                    same = a == b  # the common case, decided in C
                except _CONTEXT_ERRORS:  # a ring that grew meanwhile
                    a, b = ring.lift(a), ring.lift(b)
                    same = a == b
                if not same:
                    same = normal.is_zero(ring, ring.lift(a) - ring.lift(b))
            else:
                q = ring.lift(a if a is not None else b)
                same = q.is_zero() or normal.is_zero(ring, q)
            if not same:
                wrap = (lambda q: None if q is None else Value(space, ring, q))
                bad.append(((key, entry), wrap(a), wrap(b)))
                continue
            if entry[0] == x_name and blocks and blocks != {setting.layer.group_of(entry[1])}:
                cross.append((key, entry))
    for key, rest in got.items():
        for entry, a in rest.items():
            if not a.is_zero() and not normal.is_zero(ring, ring.lift(a)):
                bad.append(((key, entry), Value(space, ring, a), None))
    return bad, cross, count


def _compare_chunk_packed(setting, slot, entries, jac, ring, memo):
    """The chunk settled with the seeds packed into one polynomial
    (:mod:`~symbolic_bn.obligations.seed_forms`): ``([], [], count)`` when every packed backprop
    coefficient equals the packed ``J_E`` column syntactically and no pair crosses groups; None
    when that is not so or cannot be done here (the caller then decides coefficient by coefficient)."""
    packing = seed_forms.free_generator(ring)
    if packing is None:
        return None
    ctx, ti = packing
    graph, values, space = setting.graph, setting.values, setting.space
    t = ring.gens[ti]
    order = sorted(entries)
    try:
        F = []
        for idx in order:
            F.append(seed_forms.value_poly(values[slot][idx], ring, ctx))
        seed = np.empty(graph.shapes[slot], dtype=object)
        seed.fill(space.zero())
        for j, idx in enumerate(order):
            seed[idx] = seed_forms.SeedForm.seed(ring, t, j)
        cot = graph.backprop(setting.inputs, {slot: seed}, setting.alg, values=values)
        packed = ring.zero
        for j, p in enumerate(F):
            packed = packed + t ** j * p
        inputs = set(graph.input_names)  # E's inputs; ε is a parameter, not an input
        want = {e: q for e, q in seed_forms.packed_gradient(jac, ring, packed, ti).items() if e[0] in inputs}
        if not seed_forms.still_free(ring, packing):
            return None
        reached = list(want)
        for name in graph.input_names:
            arr = cot[name]
            for idx in np.ndindex(*arr.shape):
                form = arr[idx]
                w = want.pop((name, idx), None)
                if type(form) is seed_forms.SeedForm:
                    if form.ring is not ring or not (form.p == w if w is not None else form.p.is_zero()):
                        return None
                elif not (type(form) is Value and form.is_syntactic_zero()) or w is not None:
                    return None
    except (seed_forms.Unused,) + seed_forms.FAST_PATH_ERRORS:
        return None
    # Every coefficient agrees.  A pair crossing groups has a nonzero coefficient, so its input
    # entry is among those J_E reaches at all (the packed polynomials' entries).
    blocks = _x_blocks(space, values[slot][order[0]])  # the chunk's values share their groups
    x_name = setting.problem.x_name
    if blocks and any(e[0] == x_name and blocks != {setting.layer.group_of(e[1])} for e in reached):
        return None  # the ordinary path names the pairs
    # the number of nonzero J_E entries: each value's own gradient (one per distinct value)
    count = 0
    for idx in order:
        v = values[slot][idx]
        got = memo.get(id(v))
        if got is None or got[0] is not v:
            got = memo[id(v)] = (v, sum(1 for e in jac._poly(ring, ring.lift(v.p)) if e[0] in inputs))
        count += got[1]
    return [], [], count


def _compare_chunk_values(setting, slot, entries, jac):
    """The (seed key, input entry, backprop coefficient, J_E entry) that differ, for the seeds on
    ``entries`` of ``slot``; the pairs whose coefficient is nonzero across two groups; the number
    of nonzero J_E entries.  Streams over the entries: only the backprop side is held."""
    graph, values, space = setting.graph, setting.values, setting.space
    cot = graph.backprop(setting.inputs, _unit_seed(graph, slot, setting.alg.one, entries, space.zero()),
                         setting.alg, values=values)
    got: dict = {}
    for name in graph.input_names:
        arr = cot[name]
        for idx in np.ndindex(*arr.shape):
            form = arr[idx]
            if isinstance(form, LinearForm):
                for key, c in form.terms.items():
                    got.setdefault(key, {})[(name, idx)] = c
    del cot
    inputs = set(graph.input_names)  # E's inputs; ε is a parameter, not an input
    x_name = setting.problem.x_name
    zero = space.zero()
    bad, cross, count = [], [], 0
    memo: dict = {}  # broadcast entries are one Value: one gradient
    for idx in sorted(entries):
        key = (slot,) + tuple(int(i) for i in idx)
        v = values[slot][idx]
        got_key = got.pop(key, {})
        cached = memo.get(id(v))
        if cached is None or cached[0] is not v:
            want = {e: d for e, d in jac.of(v).items() if e[0] in inputs and not d.is_syntactic_zero()}
            cached = memo[id(v)] = (v, want, _x_blocks(space, v))
        _, want, blocks = cached
        count += len(want)
        for entry in set(got_key) | set(want):
            a, b = got_key.get(entry), want.get(entry)
            if a is not None and b is not None and a.ring is b.ring and a.ring is not None \
                    and type(a.p) is type(b.p) and a.poly() == b.poly():
                same = True  # the same polynomial: the common case, decided in C
            else:
                d = (a if a is not None else zero) - (b if b is not None else zero)
                same = normal.is_zero_value(space, d)
            if not same:
                bad.append(((key, entry), a, b))
                continue
            if entry[0] == x_name and blocks and blocks != {setting.layer.group_of(entry[1])}:
                cross.append((key, entry))
    for key, rest in got.items():  # backprop coefficients for keys the slot does not have
        for entry, a in rest.items():
            if not a.is_syntactic_zero() and not normal.is_zero_value(space, a):
                bad.append(((key, entry), a, None))
    return bad, cross, count


def _x_blocks(space, v):
    """The statistics groups whose x a value involves."""
    if v.ring is None:
        return set()
    if v.ring.__class__.__name__ == "_Multi" or v.ring is getattr(v, "MULTI", None):
        return set()
    try:
        return set(v.ring.label_of(v.poly()))
    except AttributeError:  # a sum over rings
        out = set()
        for ring, p in v.p.items():
            out |= set(ring.label_of(p))
        return out


def _counterexample(setting, bad, rng, tries=4):
    """An exact rational point of the domain where a differing coefficient is not zero."""
    from ..checks.points import PointSearch
    problem = setting.problem
    search = PointSearch(problem, None, "forward", ("y",), (setting.layer.input_shape,), None,
                         seed=rng.randint(0, 10 ** 6))
    for t in range(tries):
        pt = search.draw("generic")
        values = problem.variable_values({problem.x_name: pt["x"], problem.w_name: pt["weight"],
                                          **({problem.b_name: pt["bias"]} if problem.b_name else {}),
                                          "eps": pt["eps"]})
        target = Space(setting.space.backend.name, name="point")
        at = Substitution(setting.space, values, target)
        for (key, entry), a, b in bad[:16]:
            va = at(a) if a is not None else target.zero()
            vb = at(b) if b is not None else target.zero()
            d = va - vb
            if normal.is_zero_value(target, d) or sign.sign(target, d) not in ("pos", "neg"):
                continue
            sa, sb = to_sympy(va), to_sympy(vb)
            if differ_exactly(sa, sb) is not True:
                continue
            to_list = (lambda arr: np.vectorize(lambda f: sympy.Rational(f.numerator, f.denominator),
                                                otypes=[object])(arr).tolist())
            cex = {"seed_entry": f"{key[0]}[{', '.join(map(str, key[1:]))}]",
                   "input_entry": f"{entry[0]}[{', '.join(map(str, entry[1]))}]",
                   "backprop": sa, "adjoint_of_derivative": sb,
                   "backprop_approx": float(sympy.N(sa, 17)), "adjoint_approx": float(sympy.N(sb, 17)),
                   problem.x_name: to_list(pt["x"]), problem.w_name: to_list(pt["weight"]),
                   "eps": sympy.Rational(pt["eps"].numerator, pt["eps"].denominator)}
            if problem.b_name:
                cex[problem.b_name] = to_list(pt["bias"])
            return cex
    return None


def end_to_end_part(setting, slots, budget, rng) -> dict:
    """Decide the identity for the seeds on ``slots``: a picklable summary (so that parts can run
    in separate processes and be merged by :func:`end_to_end_obligations`)."""
    space = setting.space
    part = {"status": "undecided", "detail": None, "counterexample": None, "entries": 0,
            "cross": None, "seconds": 0.0, "unmet": []}
    t0 = time.perf_counter()
    try:
        with time_budget(budget):
            jac = setting.problem.inputs.jacobian()
            bad, cross = [], []
            memo: dict = {}  # value id -> (value, its number of nonzero entry derivatives)
            for slot in slots:
                b, c, n = _compare_slot(setting, slot, jac, memo)
                bad += b
                cross += c
                part["entries"] += n
            part["unmet"] = [space.condition_text(a) for a in space.unmet_conditions()]
            if bad:
                part["counterexample"] = _counterexample(setting, bad, rng)
                (key, entry), _, _ = bad[0]
                part["detail"] = (f"{len(bad)} coefficient(s) differ, first: ∂/∂{entry[0]}{list(entry[1])} of "
                                  f"the seed on {key[0]}{list(key[1:])}")
                part["status"] = "failed" if part["counterexample"] else "undecided"
            else:
                part["status"] = "proved"
            if cross:
                (key, entry) = cross[0]
                part["cross"] = f"{len(cross)} cross-group entries, first: seed {key}, input {entry}"
    except BudgetExceeded:
        part["detail"] = f"time budget of {budget:g} s exceeded" if budget else "time budget exceeded"
    part["seconds"] = time.perf_counter() - t0
    return part


def split_slots(graph, parts: int) -> list:
    """The graph's slots in ``parts`` groups of about equal work: a slot's work grows with its size
    and with the number of nodes its seeds are backpropagated through (its position)."""
    position = {s: k for k, s in enumerate(graph.slots)}
    work = {s: int(np.prod(graph.shapes[s], dtype=int)) * (position[s] + 1) for s in graph.slots}
    order = sorted(graph.slots, key=lambda s: -work[s])
    groups = [[] for _ in range(max(1, parts))]
    load = [0] * len(groups)
    for s in order:
        k = load.index(min(load))
        groups[k].append(s)
        load[k] += work[s]
    return [g for g in groups if g]


def end_to_end_obligations(layer, graph, parts, *, lean_name=None, stat_slot="var") -> list:
    """The two obligations from the parts' summaries."""
    statuses = [p["status"] for p in parts]
    unmet = sorted({u for p in parts for u in p["unmet"]})
    entries = sum(p["entries"] for p in parts)
    cex = next((p["counterexample"] for p in parts if p["counterexample"]), None)
    details = [p["detail"] for p in parts if p["detail"]]
    if "failed" in statuses:
        status, method = "failed", ("seed coefficients differ in normal form; exact counterexample at a "
                                    "rational point of the domain, confirmed by SymPy")
    elif all(s == "proved" for s in statuses) and not unmet:
        status = "proved"
        method = ("formal identity per seed coefficient on the exact engine (polynomials over ℚ in "
                  "centered coordinates per statistics group, atoms σ = sqrt(z), ι = 1/q); backprop on "
                  "linear forms, a slot and a group at a time; J_E by the engine's chain rule from "
                  f"forward values ({entries} nonzero entries)")
    elif all(s == "proved" for s in statuses):
        status, method = "undecided", "formal identity, but only under side conditions the domain does not give"
        details.append("; ".join(unmet))
    else:
        status, method = "undecided", "not decided"
    cross = [p["cross"] for p in parts if p["cross"]]
    decided = all(s in ("proved", "failed") for s in statuses) or cross
    n_inputs = graph.context_size(0)
    n_all = graph.context_size()
    formula = " = 12CN + 7C" if layer.name == "batchnorm_channel_first" else ""
    inputs = " = CN + 2C" if layer.name == "batchnorm_channel_first" else ""
    std_note = (["std_c ≠ 0 for every channel c (implied by the first; see domain.std_nonzero)"]
                if layer.name == "batchnorm_channel_first" else [])
    out = [Obligation(
        "end_to_end.backprop_eq_adjoint_fderiv",
        f"backprop(x, s) = J_E(x)ᵀ s for every seed s on all {n_all}{formula} slot entries, where E : "
        f"(inputs) ↦ (inputs, every intermediate) maps the {n_inputs}{inputs} input entries to every slot, "
        f"at every input with {layer.domain_text()}",
        status, method, assumptions=[f"{layer.domain_text()} (on the graph's own {stat_slot})"] + std_note,
        lean_name=lean_name, seconds=sum(p["seconds"] for p in parts), counterexample=cex,
        group="end-to-end", detail="; ".join(details) or None)]
    block_status = "failed" if cross else ("proved" if decided else "undecided")
    out.append(Obligation(
        "end_to_end.block_diagonal",
        f"J_E is block diagonal over the statistics groups ({layer.group_description()}): every slot "
        "entry depends on the inputs x of at most one group, and backprop sends no seed of one group's "
        "entries to another group's x",
        block_status, "exact: the polynomial of each entry contains no variable of another group (a "
        "derivative with respect to an absent variable is exactly 0)",
        assumptions=[layer.domain_text()], seconds=0.0,
        counterexample={"detail": cross[0]} if cross else None, group="end-to-end",
        detail=cross[0] if cross else (None if decided else "the end-to-end comparison did not finish")))
    return out
