"""Per-stage obligations of a graph: each node's local laws, decided on the exact engine.

For every node, on a fully symbolic context (every entry of every earlier slot an independent real
symbol, tangent ``dX`` and cotangent ``δ`` likewise; only the slots the node reads are built):

* ``adjoint``    -- ``⟨jvp(X, dX), δ⟩ = ⟨dX, vjp(X, δ)⟩`` for all X (Lean's ``Node.correct``),
  unconditionally: a totalized derivative value (``Piecewise``, ``Max``) is an *opaque* variable,
  so the identity holds whatever that value is -- in particular for Lean's 0 at ``z ≤ 0``;
* ``derivative`` -- ``jvp(X, dX) = J(X)·dX`` with ``J`` SymPy's Jacobian of the node's forward with
  respect to the whole context (``sympy.diff``: an independent differentiator), under the node's
  declared side condition (the condition slot's symbols positive for sqrtClamp, nonzero for inv);
* ``transpose``  -- ``J(X)ᵀ δ = vjp(X, δ)`` under the same condition.

Each identity is imported into a fresh :class:`~symbolic_bn.exact.space.Space` and decided by the
engine's zero test.  Every square root and inverse the node's formulas contain becomes an atom
with its side condition, and the condition must follow from the *declared* assumptions -- so a
node that takes a square root while declaring no side condition is never 'proved for all X'.
A nonzero difference is refuted by an exact rational point (re-evaluated in SymPy) when one is
found, else the obligation is 'undecided'.
"""
from __future__ import annotations

import time

import numpy as np
import sympy

from ..exact import normal
from ..exact.budget import BudgetExceeded, time_budget
from ..exact.convert import SympyImport
from ..exact.decide import differ_exactly
from ..exact.errors import ExactError
from ..exact.space import Space
from ..graphs.algebra import EXACT
from .certificate import Obligation

__all__ = ["stage_obligations", "decide_identities", "STAGE_CERTIFICATE"]

#: TorchLean names of the per-stage derivative certificates (reference §2.4).
STAGE_CERTIFICATE = {
    "xMat": "reshapeFderiv.at", "mean": "rowMeanFderiv.at", "mean_b": "broadcastRowFderiv.at",
    "centered": "subFderiv.at", "centered_sq": "mulFderiv.at", "var": "rowMeanFderiv.at",
    "var_eps": "elemwiseFderiv (z + ε) .at", "std": "sqrtClampFderivAt (hVarEpsPos)",
    "inv_std": "invFderivAt (hStdNe0)", "inv_std_b": "broadcastRowFderiv.at",
    "normalized": "mulFderiv.at", "gamma_b": "broadcastRowFderiv.at", "scaled": "mulFderiv.at",
    "beta_b": "broadcastRowFderiv.at", "yMat": "addFderiv.at", "yChw": "reshapeFderiv.at",
}


def _sym_array(prefix, shape, **assumptions):
    out = np.empty(shape, dtype=object)
    for idx in np.ndindex(*shape):
        out[idx] = sympy.Symbol(f"{prefix}[{','.join(map(str, idx))}]", real=True, **assumptions)
    return out


def _dot(a, b):
    return sympy.Add(*[a[i] * b[i] for i in np.ndindex(*a.shape)])


class _Slots(dict):
    """Symbols for the slots before a node, created on first use (most slots are never read)."""

    def __init__(self, graph, slots, prefix="", cond_slot=None, cond_kind=None):
        super().__init__()
        self.graph, self.allowed, self.prefix = graph, set(slots), prefix
        self.cond_slot, self.cond_kind = cond_slot, cond_kind

    def __missing__(self, s):
        if s not in self.allowed:
            raise KeyError(s)
        extra = {}
        if s == self.cond_slot:
            extra = {"positive": True} if self.cond_kind == "sqrtClamp" else {"nonzero": True}
        arr = _sym_array(self.prefix + s, self.graph.shapes[s], **extra)
        self[s] = arr
        return arr


class _Malformed(Exception):
    """A node reads or writes a slot it may not (not an earlier slot)."""


def decide_identities(pairs, budget=None):
    """Decide ``lhs = rhs`` for (label, lhs, rhs) SymPy pairs on the engine.

    Returns (status, detail): 'proved'; 'remainder' (some difference has a nonzero normal form:
    look for a counterexample); 'undecided' (zero only under side conditions the declared
    assumptions do not give -- named in detail)."""
    diffs = [(label, lhs - rhs) for label, lhs, rhs in pairs]
    diffs = [(label, d) for label, d in diffs if d != 0]
    if not diffs:
        return "proved", None
    space = Space(name="stage")
    imp = SympyImport(space)
    for _, d in diffs:
        imp.declare(d)
    space.freeze()
    for label, d in diffs:
        v = imp(d)
        if not normal.is_zero_value(space, v):
            return "remainder", f"{label}: the exact normal form of the difference is not zero"
    unmet = space.unmet_conditions()
    if unmet:
        return "undecided", ("zero only where these side conditions hold, which the stated assumptions "
                             "do not give: " + "; ".join(space.condition_text(a) for a in unmet))
    return "proved", None


def _rational_point(symbols, rng):
    point = {}
    for s in symbols:
        num, den = rng.randint(-9, 9), rng.randint(1, 4)
        if s.is_positive:
            num = abs(num) + 1
        elif s.is_nonzero and num == 0:
            num = 1
        point[s] = sympy.Rational(num, den)
    return point


def _counterexample(pairs, rng, tries=20):
    """An exact rational point where some pair differs (confirmed by interval arithmetic)."""
    symbols = sorted(set().union(*[p[1].free_symbols | p[2].free_symbols for p in pairs
                                   if isinstance(p[1], sympy.Basic) and isinstance(p[2], sympy.Basic)]),
                     key=str)
    for _ in range(tries):
        point = _rational_point(symbols, rng)
        for label, lhs, rhs in pairs:
            lv = lhs.xreplace(point) if isinstance(lhs, sympy.Basic) else lhs
            rv = rhs.xreplace(point) if isinstance(rhs, sympy.Basic) else rhs
            try:
                if differ_exactly(lv, rv):
                    used = (getattr(lhs, "free_symbols", set()) | getattr(rhs, "free_symbols", set()))
                    return {"at": label, "point": {str(k): v for k, v in point.items() if k in used},
                            "lhs": lv, "rhs": rv,
                            "lhs_approx": float(sympy.N(lv, 17)), "rhs_approx": float(sympy.N(rv, 17))}
            except (TypeError, ZeroDivisionError, ValueError):
                continue
    return None


def _verdict(pairs, budget, rng):
    status, detail = decide_identities(pairs, budget)
    if status != "remainder":
        return status, detail, None
    cex = _counterexample(pairs, rng)
    if cex is not None:
        return "failed", None, cex
    return "undecided", (detail or "") + "; no rational counterexample was found", None


def _sparse_gradient(expr, symbols) -> dict:
    """``{s: ∂expr/∂s}`` for the free symbols ``s`` of ``expr`` in ``symbols``, by ``sympy.diff``.

    A sum is differentiated term by term, each term only by the symbols it contains (linearity of
    the derivative): a mean of n entries costs n term derivatives instead of n² (``sympy.diff`` of
    the whole sum walks every term for every symbol)."""
    terms = expr.args if expr.is_Add else (expr,)
    out: dict = {}
    for term in terms:
        for s in term.free_symbols:
            if s in symbols:
                d = sympy.diff(term, s)
                out[s] = out[s] + d if s in out else d
    return out


def _contributions(node, vjp_out, allowed):
    contrib = {}
    for slot, c in vjp_out:
        if slot not in allowed:
            raise _Malformed(f"its VJP writes slot {slot!r}, which is not an earlier slot")
        contrib[slot] = contrib[slot] + c if slot in contrib else c
    return contrib


METHOD = ("the identity imported into the exact engine (polynomials over ℚ; sqrt/inverse as atoms "
          "with side conditions; Piecewise/Max values of the totalized derivatives as opaque "
          "variables) and decided by its exact zero test")


def stage_obligations(graph, node, budget, rng, lean_names=STAGE_CERTIFICATE) -> list:
    """The three obligations (adjoint, derivative, transpose) of ``node`` in ``graph``."""
    k = graph.nodes.index(node)
    slots = graph.input_names + [n.name for n in graph.nodes[:k]]
    cond = node.side_condition
    cond_slot = node.inputs[node.condition_input] if (cond and node.condition_input is not None) else None
    where_z = (f", z being the input of {node.kind}: the slot {cond_slot}" if cond_slot else "")
    cond_text = [f"{cond_slot}_i {cond[2:]} for every i (side condition of {node.kind})"] if cond_slot else []
    lean = node.lean_name
    out = []

    def obligation(suffix, statement, status, method, timer, **kw):
        out.append(Obligation(f"stage.{node.name}.{suffix}", statement, status, method,
                              seconds=time.perf_counter() - timer, group="stage", stage=node.name, **kw))

    # -- adjointness, unconditional
    timer = time.perf_counter()
    status, detail, cex = "undecided", None, None
    try:
        with time_budget(budget):
            ctx = _Slots(graph, slots)
            dctx = _Slots(graph, slots, prefix="d")
            args = [ctx[i] for i in node.inputs]
            delta = _sym_array("δ" + node.name, graph.shapes[node.name])
            jv = node.jvp(EXACT, args, [dctx[i] for i in node.inputs])
            contrib = _contributions(node, node.vjp(EXACT, args, delta), set(slots))
            lhs = _dot(jv, delta)
            rhs = sympy.Add(*[_dot(dctx[s], c) for s, c in contrib.items()])
            status, detail, cex = _verdict([("⟨jvp, δ⟩ vs ⟨dX, vjp⟩", lhs, rhs)], budget, rng)
    except BudgetExceeded:
        detail = "time budget exceeded"
    except (KeyError, _Malformed) as exc:
        detail = f"node {node.name!r} is malformed: {exc}"
    except (TypeError, ValueError, ExactError) as exc:
        detail = f"could not be evaluated: {exc}"
    obligation("adjoint",
               f"{node.name} ({node.kind}): ⟨jvp(X, dX), δ⟩ = ⟨dX, vjp(X, δ)⟩ for all X, dX, δ "
               f"(context: the {len(slots)} slots before stage {k + 1})",
               status, METHOD + ("; totalized derivative values kept opaque" if cond else ""), timer,
               assumptions=["none (totalized derivatives)"] if cond else [],
               lean_name=f"{lean}.correct" if lean else None, counterexample=cex, detail=detail)

    # -- derivative and transpose, under the declared side condition
    timer = time.perf_counter()
    jac = dict(status="undecided", detail=None, cex=None, seconds=0.0)
    tr = dict(status="undecided", detail=None, cex=None, seconds=0.0)
    try:
        with time_budget(budget):
            ctx = _Slots(graph, slots, cond_slot=cond_slot, cond_kind=node.kind)
            dctx = _Slots(graph, slots, prefix="d")
            args = [ctx[i] for i in node.inputs]
            fwd = node.forward(EXACT, *args)
            jv = node.jvp(EXACT, args, [dctx[i] for i in node.inputs])
            symbol_slot = {}
            for s in list(ctx):
                for idx in np.ndindex(*graph.shapes[s]):
                    symbol_slot[ctx[s][idx]] = (s, idx)
            # the sparse Jacobian: J[i] = {context symbol: ∂fwd_i/∂symbol}
            J = {i: _sparse_gradient(fwd[i], symbol_slot) for i in np.ndindex(*fwd.shape)}
            pairs = [(f"{node.name}[{','.join(map(str, i))}]", jv[i],
                      sympy.Add(*[v * dctx[symbol_slot[s][0]][symbol_slot[s][1]] for s, v in J[i].items()]))
                     for i in np.ndindex(*fwd.shape)]
            jac["status"], jac["detail"], jac["cex"] = _verdict(pairs, budget, rng)
            jac["seconds"] = time.perf_counter() - timer
            timer2 = time.perf_counter()
            delta = _sym_array("δ" + node.name, graph.shapes[node.name])
            jt = {}
            for i, row in J.items():
                for s, v in row.items():
                    jt[s] = jt.get(s, 0) + v * delta[i]
            contrib = _contributions(node, node.vjp(EXACT, args, delta), set(slots))
            keys = set(jt)
            for slot, c in contrib.items():
                for idx in np.ndindex(*c.shape):
                    keys.add(ctx[slot][idx])
                    symbol_slot[ctx[slot][idx]] = (slot, idx)
            pairs = []
            for s in sorted(keys, key=str):
                slot, idx = symbol_slot[s]
                v = contrib[slot][idx] if slot in contrib else sympy.Integer(0)
                pairs.append((f"{slot}[{','.join(map(str, idx))}]", v, jt.get(s, sympy.Integer(0))))
            tr["status"], tr["detail"], tr["cex"] = _verdict(pairs, budget, rng)
            tr["seconds"] = time.perf_counter() - timer2
    except BudgetExceeded:
        jac["detail"] = jac["detail"] or "time budget exceeded"
        tr["detail"] = tr["detail"] or "time budget exceeded"
    except (KeyError, _Malformed) as exc:
        jac["detail"] = tr["detail"] = f"node {node.name!r} is malformed: {exc}"
    except (TypeError, ValueError, ExactError) as exc:
        jac["detail"] = tr["detail"] = f"could not be evaluated: {exc}"
    cond_words = f", where {cond}{where_z}" if cond else ", for all X"
    out.append(Obligation(
        f"stage.{node.name}.derivative",
        f"{node.name} ({node.kind}): jvp(X, ·) = D forward(X), the Jacobian with respect to the whole "
        f"context{cond_words}", jac["status"],
        "SymPy Jacobian of the forward (sympy.diff, sparse, w.r.t. the whole context); " + METHOD,
        assumptions=cond_text, lean_name=lean_names.get(node.name), seconds=jac["seconds"],
        counterexample=jac["cex"], group="stage", stage=node.name, detail=jac["detail"]))
    out.append(Obligation(
        f"stage.{node.name}.transpose",
        f"{node.name} ({node.kind}): J(X)ᵀ δ = vjp(X, δ){cond_words}", tr["status"],
        "J(X)ᵀδ from the SymPy Jacobian, entry by entry over the context; " + METHOD,
        assumptions=cond_text, seconds=tr["seconds"], counterexample=tr["cex"], group="stage",
        stage=node.name, detail=tr["detail"]))
    return out
