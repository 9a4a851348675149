"""Confirmation of a claim at concrete sizes, and exact counterexamples.

Every parametric obligation is re-checked at concrete sizes (:func:`confirmation_grid`: every
group range of size 1 with the positions' sizes from ``sizes`` -- for two position ranges
(1, n) and (2, n) -- and, for obligations that involve several groups, each group range of size 2
with at most 3 positions) by a *concrete* backend that runs the same statement with explicit
symbols ``x_c_0 .. x_c_{N-1}``, Python-expanded sums and ``sympy.diff``: for every assignment of
the free indices, the exact engine must prove that the symbolic normal forms of both sides,
instantiated at those sizes (named sums expanded), equal the concrete expansions of both sides.
With the symbolic proof this gives concrete lhs = concrete rhs and it guards against a wrong
rewrite rule.  A row where a side divides by zero cannot be compared: a claim with such rows (in
particular one with 0 comparisons) is 'undecided', never 'proved'.  When the symbolic decision
does not prove a claim, concrete lhs = rhs is decided directly and a wrong statement is refuted by
an exact counterexample at concrete sizes and a rational point: both sides are evaluated there by
SymPy's own arithmetic, their difference shown nonzero by the engine's exact sign (outward-rounded
intervals for square roots), and the whole evaluation is redone on a fresh backend before it is
reported.
"""
from __future__ import annotations

import itertools

import sympy
from sympy import Rational

from .backends import _CONCRETE, ConcreteBackend, instantiate
from .claim import _as_tuple, _refuse_inexact
from .decision import engine_differ, engine_zero
from .layer_model import LayerBackend
from .size_models import _BN
from .terms import EPS


_POSITIVE_FAMILIES = {"z"}


def _point_value(sym, attempt: int):
    if sym == EPS:
        return Rational(1, 10) if attempt % 2 == 0 else Rational(2, 7)
    family, idx = _CONCRETE[sym]
    k = attempt * 131 + sum(ord(ch) for ch in family) * 7
    for m, v in enumerate(idx):
        k += (m + 3) * (v + 1) * 13 + v * v * 5
    num = (k % 17) - 8
    den = (k // 17) % 5 + 1
    if num == 0:
        num = 3
    if family in _POSITIVE_FAMILIES:
        num = abs(num)
    return Rational(num, den)


def _point(exprs, attempt):
    syms = set()
    for e in exprs:
        syms |= sympy.sympify(e).free_symbols
    return {s: _point_value(s, attempt) for s in sorted(syms, key=str)}


def _evaluate(expr, point):
    val = sympy.sympify(expr).xreplace(point)
    if val.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo) or val.free_symbols:
        return None
    return val


def _concrete_backend(spec, sizes):
    full = {r: 1 for r in spec.group + spec.position + spec.param_ranges}
    full.update(sizes)
    return LayerBackend(ConcreteBackend(full.get("N", 1), full.get("C", 1), sizes=full), spec)


def _concrete_sides(claim, sizes, assignment, be=None):
    be = be or _concrete_backend(claim.spec or _BN, sizes)
    L, R = _as_tuple(claim.lhs(be, assignment)), _as_tuple(claim.rhs(be, assignment))
    _refuse_inexact(claim, list(L) + list(R))
    return L, R


def _assignments(claim, be):
    names = [name for name, _ in claim.free]
    ranges = [be.assignments(kind) for _, kind in claim.free]
    for values in itertools.product(*ranges):
        yield dict(zip(names, values))


def _env(idx, assignment):
    """``{Ix: int}`` for the free indices ``idx`` (Ix or tuples) at the concrete ``assignment``."""
    env = {}
    for name, v in assignment.items():
        ix = idx[name]
        if isinstance(ix, tuple):
            env.update(zip(ix, v))
        else:
            env[ix] = v
    return env


def _sizes_of(spec, sizes):
    n = 1
    for r in spec.position:
        n *= sizes[r]
    c = 1
    for r in spec.group:
        c *= sizes[r]
    return n, c


def _search_counterexample(claim, sizes, assignment, component, attempts=3):
    """Exact rational point where the concrete sides differ (re-evaluated from scratch)."""
    spec = claim.spec or _BN
    try:
        L, R = _concrete_sides(claim, sizes, assignment)
    except ZeroDivisionError:
        return None
    lhs, rhs = L[component], R[component]
    for attempt in range(attempts):
        point = _point([lhs, rhs], attempt)
        lv, rv = _evaluate(lhs, point), _evaluate(rhs, point)
        if lv is None or rv is None:
            continue
        if engine_differ(lv, rv) is True:
            # re-evaluate independently: rebuild both sides on a fresh backend
            L2, R2 = _concrete_sides(claim, sizes, assignment)
            lv2, rv2 = _evaluate(L2[component], point), _evaluate(R2[component], point)
            if lv2 is None or rv2 is None or engine_differ(lv2, rv2) is not True:
                continue
            n, c = _sizes_of(spec, sizes)
            cex = {"sizes": dict(sizes), "N": n, "C": c}
            if spec.layer == "batchnorm_channel_first":
                cex.update({"H": n, "W": 1})
            cex.update({"indices": dict(assignment), "component": component,
                        "point": {str(s): str(v) for s, v in point.items()},
                        "lhs": str(lv2), "rhs": str(rv2)})
            return cex
    return None


def _position_grid(spec, sizes):
    pos = spec.position
    if len(pos) == 1:
        return [{pos[0]: n} for n in sizes]
    top = max(sizes)
    return ([{pos[0]: 1, pos[1]: n} for n in sizes]
            + [{pos[0]: 2, pos[1]: n} for n in sizes if 2 * n <= top])


def confirmation_grid(claim, sizes, max_n_two_channels: int = 3):
    """The concrete sizes (``{range: size}``) at which a claim is confirmed: every group range 1
    with the positions' sizes from ``sizes`` (for two position ranges: (1, n) and (2, n) with
    2n ≤ max(sizes)); for claims that involve several groups also each group range of size 2 (the
    others 1) with at most ``max_n_two_channels`` positions (so that groups can mix, i.e. the
    cross-group blocks are actually exercised)."""
    spec = claim.spec or _BN
    sizes = list(sizes)
    ones = {r: 1 for r in spec.group}
    positions = _position_grid(spec, sizes)
    grid = [dict(ones, **p) for p in positions]
    if claim.channel_level:
        for r in spec.group:
            for p in positions:
                n = 1
                for v in p.values():
                    n *= v
                if n <= max_n_two_channels:
                    grid.append(dict(ones, **{r: 2}, **p))
    return grid


def _grid_text(spec, grid) -> str:
    by: dict = {}
    for g in grid:
        by.setdefault(", ".join(f"{r}={g[r]}" for r in spec.group), []).append(g)
    parts = []
    for key, gs in by.items():
        if len(spec.position) == 1:
            r = spec.position[0]
            parts.append(f"{key}, {r}={','.join(str(g[r]) for g in gs)}")
        else:
            vals = ",".join("(" + ",".join(str(g[r]) for r in spec.position) + ")" for g in gs)
            parts.append(f"{key}, ({','.join(spec.position)})={vals}")
    return "; ".join(parts)


def _confirm(claim, Lnf, Rnf, idx, grid, symbolic_zero):
    """Concrete confirmation at the sizes of ``grid``.

    For every assignment of the free indices: the symbolic normal forms of lhs and rhs,
    instantiated at those sizes (named sums expanded), must equal the concrete expansions of lhs
    and rhs (this checks the rewrite rules; with the symbolic proof it gives concrete lhs =
    concrete rhs) -- decided by the exact engine (:func:`engine_zero`).  When the symbolic decision
    did not prove the claim, concrete lhs = rhs is decided directly and refuted by an exact
    counterexample where possible.

    Rows where a side divides by zero cannot be compared; they are counted in ``skipped``
    (``{size text: number}``), and a claim with skipped rows is never 'proved'.

    Returns ``(n_checks, counterexample | None, problem | None, skipped)``.
    """
    spec = claim.spec or _BN
    checks = 0
    skipped: dict = {}

    def label(sizes):
        return ", ".join(f"{r}={sizes[r]}" for r in spec.group + spec.position)

    def skip(sizes):
        skipped[label(sizes)] = skipped.get(label(sizes), 0) + 1

    for sizes in grid:
        shared = _concrete_backend(spec, sizes)
        full = shared.inner.sizes
        rows = []
        for assignment in _assignments(claim, shared):
            try:
                L, R = _concrete_sides(claim, sizes, assignment, shared)
            except ZeroDivisionError:
                skip(sizes)
                continue
            env = _env(idx, assignment)
            for k, (cl, cr) in enumerate(zip(L, R)):
                rows.append((assignment, env, k, cl, cr))
        checks += len(rows)
        if symbolic_zero:
            diffs = []
            try:
                for _, env, k, cl, cr in rows:
                    diffs.append(instantiate(Lnf[k], full["N"], full["C"], env, full) - cl)
                    diffs.append(instantiate(Rnf[k], full["N"], full["C"], env, full) - cr)
            except ZeroDivisionError:
                diffs = None
            if diffs is not None and all(engine_zero(diffs)):
                continue
        # diagnose row by row
        equal = engine_zero([cl - cr for _, _, _, cl, cr in rows])
        for (assignment, env, k, cl, cr), same in zip(rows, equal):
            if not same:
                cex = _search_counterexample(claim, sizes, assignment, k)
                if cex is not None:
                    return checks, cex, None, skipped
                return checks, None, (f"{label(sizes)}, {assignment}, component {k}: concrete sides "
                                      f"not proved equal, no counterexample found"), skipped
            if symbolic_zero:
                for side, nf, conc in (("lhs", Lnf[k], cl), ("rhs", Rnf[k], cr)):
                    try:
                        inst = instantiate(nf, full["N"], full["C"], env, full)
                    except ZeroDivisionError:
                        skip(sizes)
                        continue
                    if not engine_zero([inst - conc])[0]:
                        return checks, None, (
                            f"{label(sizes)}, {assignment}, component {k}: the symbolic normal form of "
                            f"the {side} disagrees with its concrete expansion (a rewrite rule is "
                            f"wrong)"), skipped
    return checks, None, None, skipped
