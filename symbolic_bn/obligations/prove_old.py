"""The proof obligations of a graph, decided exactly, collected in a Certificate.

Order follows ``BatchNormChannelFirst.lean``: the 16 stages (each node's local laws), then the
end-to-end theorem ``backprop_eq_adjoint_fderiv_batchNorm_channel_first_at``, then what the Lean
repository does not prove (the link to the closed-form spec backward/JVP/forward), then the domain.

Per stage, on a fully symbolic context (every entry of every earlier slot an independent real
symbol, tangent ``dX`` and cotangent ``δ`` likewise):

* ``adjoint``     -- ``⟨jvp(X, dX), δ⟩ = ⟨dX, vjp(X, δ)⟩`` for all X (Lean's ``Node.correct``),
  unconditionally: the totalized derivative ``f'(z)`` is kept as an opaque value, so the identity
  holds whatever that value is -- in particular for Lean's ``0`` at ``z ≤ 0``;
* ``derivative``  -- ``jvp(X, dX) = J(X)·dX`` where ``J`` is SymPy's Jacobian of the node's forward
  with respect to the whole context (sparse: ``∂f/∂s = 0`` for every symbol ``s`` not in ``f``),
  under the node's side condition (``z > 0`` for sqrtClamp, ``z ≠ 0`` for inv);
* ``transpose``   -- ``J(X)ᵀ δ = vjp(X, δ)`` (the design card's form), under the same condition.

End to end, in the atom algebra (:mod:`symbolic_bn.exact.algebra`): ``backprop(x, s) = J_E(x)ᵀ s`` for a
fully symbolic seed ``s`` on all ``12CN + 7C`` slots, where ``J_E`` is derived by the chain rule
from each slot's forward value (never from the VJP rules), under ``var_c + ε > 0``.
Identities are decided per seed coefficient; the inputs are written in *centered coordinates*
``x_{c,p} = m_c + u_{c,p}`` (``u_{c,N-1} = −Σ_{p<N-1} u_{c,p}``), an invertible linear change of
variables, so a polynomial identity in the coordinates is one in ``x``.
"""
from __future__ import annotations

import functools
import multiprocessing
import operator
import os
import random
import time
from fractions import Fraction

import numpy as np
import sympy

from ..exact.algebra import (EXACT, AtomAlgebra, ChannelAtoms, ExactAlgebra, LinearForm,
                      available_backends, default_backend, is_zero)
from ..graphs.batchnorm import BatchNormGraph
from .certificate import Certificate, Obligation
from ..graphs import nodes as Nodes
from ..graphs.nodes import _vec
from ..exact.decide import BudgetExceeded, decide_zero, differ_exactly, time_budget

DEFAULT_BUDGET = 120.0

# TorchLean names of the per-stage derivative certificates (reference §2.4).
STAGE_CERTIFICATE = {
    "xMat": "reshapeFderiv.at", "mean": "rowMeanFderiv.at", "mean_b": "broadcastRowFderiv.at",
    "centered": "subFderiv.at", "centered_sq": "mulFderiv.at", "var": "rowMeanFderiv.at",
    "var_eps": "elemwiseFderiv (z + ε) .at", "std": "sqrtClampFderivAt (hVarEpsPos)",
    "inv_std": "invFderivAt (hStdNe0)", "inv_std_b": "broadcastRowFderiv.at",
    "normalized": "mulFderiv.at", "gamma_b": "broadcastRowFderiv.at", "scaled": "mulFderiv.at",
    "beta_b": "broadcastRowFderiv.at", "yMat": "addFderiv.at", "yChw": "reshapeFderiv.at",
}

DOMAIN = "var_c + ε > 0 for every channel c"
STD_NONZERO = "std_c ≠ 0 for every channel c (implied by the first; see domain.std_nonzero)"


def _fmt(x):
    return str(x)


def _sym_array(prefix, shape, **assumptions):
    out = np.empty(shape, dtype=object)
    for idx in np.ndindex(shape):
        out[idx] = sympy.Symbol(f"{prefix}[{','.join(map(str, idx))}]", real=True, **assumptions)
    return out


def _dot(a, b):
    return sympy.Add(*[a[i] * b[i] for i in np.ndindex(a.shape)])


class _Timer:
    def __init__(self):
        self.start = time.perf_counter()

    @property
    def seconds(self):
        return time.perf_counter() - self.start


def _obligation(name, statement, status, method, *, assumptions=(), lean_name=None, seconds=0.0,
                counterexample=None, group="", stage=None, detail=None):
    return Obligation(name=name, statement=statement, status=status, method=method,
                      assumptions=list(assumptions), lean_name=lean_name, seconds=seconds,
                      counterexample=counterexample, group=group, stage=stage, detail=detail)


# ---------------------------------------------------------------------------------------------
# Per-stage obligations


class _LazyContext(dict):
    """Symbols for the slots before a node, created on first use (most slots are never read)."""

    def __init__(self, graph, slots, cond_slot, cond_kind):
        super().__init__()
        self.graph, self.allowed, self.cond_slot, self.cond_kind = graph, set(slots), cond_slot, cond_kind

    def __missing__(self, s):
        if s not in self.allowed:
            raise KeyError(s)
        extra = {}
        if s == self.cond_slot:
            extra = {"positive": True} if self.cond_kind == "sqrtClamp" else {"nonzero": True}
        arr = _sym_array(s, self.graph.shapes[s], **extra)
        self[s] = arr
        return arr


class _LazyTangents(dict):
    def __init__(self, graph, slots):
        super().__init__()
        self.graph, self.allowed = graph, set(slots)

    def __missing__(self, s):
        if s not in self.allowed:
            raise KeyError(s)
        arr = _sym_array("d" + s, self.graph.shapes[s])
        self[s] = arr
        return arr


def _stage_context(graph, node, condition):
    """Symbols for every slot before ``node``; the side-condition input gets its assumption."""
    k = graph.nodes.index(node)
    slots = graph.input_names + [n.name for n in graph.nodes[:k]]
    cond_slot = node.inputs[node.condition_input] if (condition and node.condition_input is not None) else None
    return _LazyContext(graph, slots, cond_slot, node.kind), slots


def _rational_point(symbols, rng, positive=()):
    """Random small rationals for the given symbols (positive ones for those in ``positive``)."""
    point = {}
    for s in symbols:
        num = rng.randint(-9, 9)
        den = rng.randint(1, 4)
        if s in positive or s.is_positive:
            num = abs(num) + 1
        elif s.is_nonzero and num == 0:
            num = 1
        point[s] = sympy.Rational(num, den)
    return point


def _counterexample_for(pairs, symbols, rng, tries=20):
    """Find an exact rational point where some (label, lhs, rhs) pair differs; confirm exactly."""
    for _ in range(tries):
        point = _rational_point(symbols, rng)
        for label, lhs, rhs in pairs:
            lv = lhs.xreplace(point) if isinstance(lhs, sympy.Basic) else lhs
            rv = rhs.xreplace(point) if isinstance(rhs, sympy.Basic) else rhs
            try:
                if differ_exactly(lv, rv):
                    return {"at": label,
                            "point": {str(k): v for k, v in point.items()
                                      if k in (getattr(lhs, "free_symbols", set())
                                               | getattr(rhs, "free_symbols", set()))},
                            "lhs": lv, "rhs": rv,
                            "lhs_approx": float(sympy.N(lv, 17)), "rhs_approx": float(sympy.N(rv, 17))}
            except (TypeError, ZeroDivisionError):
                continue
    return None


#: Identities decided together in one polynomial ring (a ring's cost grows with its generators,
#: so deciding a whole stage at once would be quadratic in its size).
PAIRS_PER_DECISION = 32


def _decide_pairs(pairs, budget):
    """Decide identities lhs = rhs, a chunk at a time: Σ_j t_j (lhs_j − rhs_j) = 0 with fresh t_j
    is zero iff every difference is (coefficients of independent symbols).  Proved iff every
    chunk is; a chunk with a nonzero remainder or out of time decides the verdict."""
    diffs = []
    for j, (label, lhs, rhs) in enumerate(pairs):
        diff = lhs - rhs
        if diff != 0:
            diffs.append((j, diff))
    if not diffs:
        return "proved", "identical after SymPy's automatic term collection (exact)", None
    method, last = None, None
    for start in range(0, len(diffs), PAIRS_PER_DECISION):
        chunk = diffs[start:start + PAIRS_PER_DECISION]
        dec = decide_zero(sympy.Add(*[sympy.Dummy(f"t{j}") * diff for j, diff in chunk]), budget=budget)
        method, last = dec.method, dec
        if dec.status == "timeout":
            return "undecided", dec.method, None
        if not dec.proved:
            return "remainder", dec.method, dec
        # clearing a denominator is only valid where it is nonzero: the context's assumptions
        # (a side-condition symbol is positive or nonzero; σ's are positive) must say so
        unknown = [q for q in dec.nonzero_denominators if q.is_nonzero is not True]
        if unknown:
            return "undecided", dec.method + f"; but needs {unknown[0]} ≠ 0, which is not assumed", dec
    return "proved", method, last


def _stage_obligations(graph, node, budget, rng):
    out = []
    lean = node.lean_name
    k = graph.nodes.index(node)
    cond = node.side_condition
    cond_text = ([f"{node.inputs[node.condition_input]}_i {cond[1:]} for every i (side condition of {node.kind})"]
                 if cond else [])

    # -- adjointness, unconditional
    timer = _Timer()
    ctx, slots = _stage_context(graph, node, condition=False)
    args = [ctx[i] for i in node.inputs]
    d = _LazyTangents(graph, slots)
    delta = _sym_array("δ" + node.name, graph.shapes[node.name])
    status, method, cex, detail = "undecided", "", None, None
    jv = None
    try:
        with time_budget(budget):
            jv = node.jvp(EXACT, args, [d[i] for i in node.inputs])
            lhs = _dot(jv, delta)
            contrib = {}
            for slot, c in node.vjp(EXACT, args, delta):
                contrib[slot] = contrib[slot] + c if slot in contrib else c
            rhs = sympy.Add(*[_dot(d[s], c) for s, c in contrib.items()])
            status, method, dec = _decide_pairs([("⟨jvp, δ⟩ vs ⟨dX, vjp⟩", lhs, rhs)], budget)
            if status == "remainder":
                syms = sorted(lhs.free_symbols | rhs.free_symbols, key=str)
                cex = _counterexample_for([("⟨jvp, δ⟩ vs ⟨dX, vjp⟩", lhs, rhs)], syms, rng)
                status = "failed" if cex else "undecided"
                detail = None if cex else "nonzero remainder but no counterexample found"
            elif status == "proved" and dec is not None and dec.opaque:
                method += "; totalized derivative values kept opaque (identity holds for any value)"
    except BudgetExceeded:
        status, method = "undecided", "time budget exceeded"
    except (TypeError, ValueError) as exc:
        status, method, detail = "undecided", "could not be evaluated", str(exc)
    out.append(_obligation(
        f"stage.{node.name}.adjoint",
        f"{node.name} ({node.kind}): ⟨jvp(X, dX), δ⟩ = ⟨dX, vjp(X, δ)⟩ for all X, dX, δ "
        f"(context: the {len(slots)} slots before stage {k + 1})",
        status, method, lean_name=f"{lean}.correct" if lean else None, seconds=timer.seconds,
        counterexample=cex, group="stage", stage=node.name, detail=detail,
        assumptions=["none (totalized derivatives)"] if node.side_condition else []))

    # -- derivative and transpose, under the side condition (without one, the unconditional
    # context and JVP above are the same objects: reuse them)
    timer = _Timer()
    reuse = jv if not cond else None
    if cond:
        ctx, slots = _stage_context(graph, node, condition=True)
        args = [ctx[i] for i in node.inputs]
        d = _LazyTangents(graph, slots)
    jac_status = tr_status = "undecided"
    jac_method = tr_method = ""
    jac_cex = tr_cex = None
    jac_detail = tr_detail = None
    t_jac = t_tr = 0.0
    try:
        with time_budget(budget):
            fwd = node.forward(EXACT, *args)
            jv = reuse if reuse is not None else node.jvp(EXACT, args, [d[i] for i in node.inputs])
            symbol_slot = {}
            for s in list(ctx):
                for idx in np.ndindex(graph.shapes[s]):
                    symbol_slot[ctx[s][idx]] = (s, idx)
            # sparse Jacobian: J[i] = {context symbol: ∂fwd_i/∂symbol}
            jac = {}
            for i in np.ndindex(fwd.shape):
                f = fwd[i]
                jac[i] = {s: sympy.diff(f, s) for s in f.free_symbols if s in symbol_slot}
            pairs = []
            for i in np.ndindex(fwd.shape):
                jd = sympy.Add(*[v * d[symbol_slot[s][0]][symbol_slot[s][1]] for s, v in jac[i].items()])
                pairs.append((f"{node.name}[{','.join(map(str, i))}]", jv[i], jd))
            jac_status, jac_method, dec = _decide_pairs(pairs, budget)
            jac_method = "SymPy Jacobian of forward (sparse, w.r.t. the whole context); " + jac_method
            if jac_status == "remainder":
                syms = sorted(set().union(*[p[1].free_symbols | p[2].free_symbols for p in pairs]), key=str)
                jac_cex = _counterexample_for(pairs, syms, rng)
                jac_status = "failed" if jac_cex else "undecided"
                jac_detail = None if jac_cex else "nonzero remainder but no counterexample found"
            t_jac = timer.seconds

            timer2 = _Timer()
            delta = _sym_array("δ" + node.name, graph.shapes[node.name])
            jt = {}
            for i, row in jac.items():
                for s, v in row.items():
                    jt[s] = jt.get(s, 0) + v * delta[i]
            contrib = {}
            for slot, c in node.vjp(EXACT, args, delta):
                contrib[slot] = contrib[slot] + c if slot in contrib else c
            pairs = []
            keys = set(jt)
            for slot, c in contrib.items():
                for idx in np.ndindex(c.shape):
                    keys.add(ctx[slot][idx])
                    symbol_slot[ctx[slot][idx]] = (slot, idx)
            for s in sorted(keys, key=str):
                slot, idx = symbol_slot[s]
                v = contrib[slot][idx] if slot in contrib else sympy.Integer(0)
                pairs.append((f"{slot}[{','.join(map(str, idx))}]", v, jt.get(s, sympy.Integer(0))))
            tr_status, tr_method, dec = _decide_pairs(pairs, budget)
            tr_method = "J(X)ᵀδ from the SymPy Jacobian, entry by entry over the context; " + tr_method
            if tr_status == "remainder":
                syms = sorted(set().union(*[p[1].free_symbols | p[2].free_symbols
                                            for p in pairs if isinstance(p[1], sympy.Basic)]), key=str)
                tr_cex = _counterexample_for(pairs, syms, rng)
                tr_status = "failed" if tr_cex else "undecided"
                tr_detail = None if tr_cex else "nonzero remainder but no counterexample found"
            t_tr = timer2.seconds
    except BudgetExceeded:
        jac_method = jac_method or "time budget exceeded"
        tr_method = tr_method or "time budget exceeded"
    except (TypeError, ValueError) as exc:
        jac_detail = tr_detail = str(exc)
    out.append(_obligation(
        f"stage.{node.name}.derivative",
        f"{node.name} ({node.kind}): jvp(X, ·) = D forward(X), the Jacobian with respect to the "
        f"whole context" + (f", where {cond}" if cond else ", for all X"),
        jac_status, jac_method, assumptions=cond_text, lean_name=STAGE_CERTIFICATE.get(node.name),
        seconds=t_jac, counterexample=jac_cex, group="stage", stage=node.name, detail=jac_detail))
    out.append(_obligation(
        f"stage.{node.name}.transpose",
        f"{node.name} ({node.kind}): J(X)ᵀ δ = vjp(X, δ)" + (f", where {cond}" if cond else ", for all X"),
        tr_status, tr_method, assumptions=cond_text, lean_name=None, seconds=t_tr,
        counterexample=tr_cex, group="stage", stage=node.name, detail=tr_detail))
    return out


# ---------------------------------------------------------------------------------------------
# The atom algebra for a BatchNorm graph: centered coordinates per channel


class _BNAtoms:
    """The prover's algebra for a BatchNorm graph: generators m_c, u_{c,p} (p < N−1), γ_c, β_c
    [, ε] per channel -- one ring per channel (``per_channel=True``, cost linear in C) or one ring
    for all -- behind a :class:`~symbolic_bn.exact.algebra.ChannelAtoms` facade, and the input arrays."""

    def __init__(self, graph: BatchNormGraph, backend=None, per_channel: bool = True):
        C, H, W, n = graph.C, graph.H, graph.W, graph.N
        self.graph = graph
        self.per_channel = per_channel
        eps = graph.eps
        symbolic_eps = isinstance(eps, sympy.Symbol)
        groups = [[c] for c in range(C)] if per_channel else [list(range(C))]
        self.m, self.u, self.gamma_i, self.beta_i, self.eps_index = {}, {}, {}, {}, {}
        self.ring_of_channel = {}
        algs = []
        for group in groups:
            names = []
            for c in group:
                self.m[c] = len(names)
                names.append(f"m{c}")
                for p in range(n - 1):
                    self.u[(c, p)] = len(names)
                    names.append(f"u{c}_{p}")
                self.gamma_i[c] = len(names)
                names.append(f"gamma{c}")
                self.beta_i[c] = len(names)
                names.append(f"beta{c}")
            eps_index = None
            if symbolic_eps:
                eps_index = len(names)
                names.append(f"eps{group[0]}" if per_channel else "eps")
            alg = AtomAlgebra(names, spare=4 * len(group) + 8, backend=backend)
            if eps_index is not None:
                alg.parameters[eps] = alg.gens[eps_index]
            for c in group:
                self.ring_of_channel[c] = alg
                self.eps_index[c] = eps_index
            algs.append(alg)
        self.algs = algs
        self.alg = ChannelAtoms(algs)
        x = np.empty((C, H, W), dtype=object)
        for c in range(C):
            G = self.ring_of_channel[c].gens
            us = [G[self.u[(c, p)]] for p in range(n - 1)]
            for p in range(n):
                h, w = divmod(p, W)
                if p < n - 1:
                    x[c, h, w] = G[self.m[c]] + us[p]
                else:
                    x[c, h, w] = G[self.m[c]] - functools.reduce(operator.add, us) if us else G[self.m[c]]
        self.inputs = {"x": x,
                       "gamma": _vec([self.ring_of_channel[c].gens[self.gamma_i[c]] for c in range(C)]),
                       "beta": _vec([self.ring_of_channel[c].gens[self.beta_i[c]] for c in range(C)])}
        # derivatives of coordinates with respect to the inputs: x_{c,p} = m_c + u_{c,p}, so
        # D_{x_{c,q}} u_{c,p} = δ_pq − 1/N (sparse part plus a rank-one part) and D m_c = 1/N
        inputs = []
        for c in range(C):
            alg = self.ring_of_channel[c]
            u_part, w_part = {}, {self.m[c]: Fraction(1, n)}
            for p in range(n - 1):
                w_part[self.u[(c, p)]] = Fraction(-1, n)
            for p in range(n):
                h, w = divmod(p, W)
                key = ("x", c, h, w)
                inputs.append(key)
                alg.coordinate_derivative[key] = [(self.u[(c, p)], Fraction(1))] if p < n - 1 else []
                u_part[key] = Fraction(1)
            alg.rank_one = (alg.rank_one or []) + [(u_part, w_part)]
            inputs.append(("gamma", c))
            alg.coordinate_derivative[("gamma", c)] = [(self.gamma_i[c], Fraction(1))]
            inputs.append(("beta", c))
            alg.coordinate_derivative[("beta", c)] = [(self.beta_i[c], Fraction(1))]
        self.input_keys = inputs


def _with_channel_rings(fn, graph, backend):
    """Run ``fn(bn)`` with one ring per channel; a graph that combines values of different
    channels makes the rings clash, and is then redone exactly in a single ring."""
    try:
        return fn(_BNAtoms(graph, backend, per_channel=True))
    except BudgetExceeded:
        raise
    except Exception:  # rings of two channels met (e.g. flint's IncompatibleContextError)
        return fn(_BNAtoms(graph, backend, per_channel=False))


def _unit_seed(graph, alg, slots=None):
    seed = {}
    for s in (slots or graph.slots):
        arr = np.empty(graph.shapes[s], dtype=object)
        for idx in np.ndindex(arr.shape):
            arr[idx] = LinearForm.unit((s,) + tuple(int(i) for i in idx), alg.one)
        seed[s] = arr
    return seed


def _poly_to_exact(alg, p, values):
    """Evaluate a polynomial (or ring-free constant) exactly; ``values`` maps each ring (by id)
    to its generator values, or is one ring's list of values."""
    if isinstance(alg, ChannelAtoms):
        ring = alg.alg_of(p)
        if ring is None:
            f = alg.backend.as_fraction(p)
            return sympy.Rational(f.numerator, f.denominator)
        alg, values = ring, values[id(ring)]
    total = sympy.Integer(0)
    for monom, coeff in alg.backend.terms(p):
        term = sympy.Rational(coeff.numerator, coeff.denominator)
        for i, e in enumerate(monom):
            if e:
                term *= values[i] ** e
        total += term
    return total


def _atom_values(bn: _BNAtoms, x, gamma, beta, eps_value):
    """Exact values of every generator of every ring of ``bn`` at a rational input point,
    as ``{id(ring): {generator index: value}}``."""
    g = bn.graph
    out = {id(ring): {} for ring in bn.algs}
    for c in range(g.C):
        vals = out[id(bn.ring_of_channel[c])]
        flat = [x[c][h][w] for h in range(g.H) for w in range(g.W)]
        m = sympy.Add(*flat) / g.N
        vals[bn.m[c]] = m
        for p in range(g.N - 1):
            vals[bn.u[(c, p)]] = flat[p] - m
        vals[bn.gamma_i[c]] = gamma[c]
        vals[bn.beta_i[c]] = beta[c]
        if bn.eps_index[c] is not None:
            vals[bn.eps_index[c]] = eps_value
    for ring in bn.algs:
        vals = out[id(ring)]
        for atom in ring.atoms:  # in creation order: arguments only use earlier generators
            arg = _poly_to_exact(ring, atom.argument, vals)
            vals[atom.index] = sympy.sqrt(arg) if atom.kind == "sqrt" else 1 / arg
    return out


def _random_bn_point(graph, rng, eps_value):
    """Rational inputs with var_c + ε > 0 for every channel."""
    C, H, W = graph.C, graph.H, graph.W
    for _ in range(100):
        x = [[[sympy.Rational(rng.randint(-9, 9), rng.randint(1, 3)) for _ in range(W)]
              for _ in range(H)] for _ in range(C)]
        ok = True
        for c in range(C):
            flat = [x[c][h][w] for h in range(H) for w in range(W)]
            m = sympy.Add(*flat) / len(flat)
            var = sympy.Add(*[(v - m) ** 2 for v in flat]) / len(flat)
            ok = ok and (var + eps_value > 0)
        if ok:
            gamma = [sympy.Rational(rng.choice([-3, -2, -1, 1, 2, 3]), rng.randint(1, 2)) for _ in range(C)]
            beta = [sympy.Rational(rng.randint(-5, 5), rng.randint(1, 2)) for _ in range(C)]
            return x, gamma, beta
    raise RuntimeError("could not find a point inside the domain")


def _eps_value(graph):
    return sympy.Rational(1, 10) if isinstance(graph.eps, sympy.Symbol) else graph.eps


def _compare_forms(got: dict, want: dict):
    """Keys where two {key: poly} maps differ (missing keys are zero)."""
    bad = []
    for k in set(got) | set(want):
        a = got.get(k)
        b = want.get(k)
        if a is None:
            if b is not None and not is_zero(b):
                bad.append(k)
        elif b is None:
            if not is_zero(a):
                bad.append(k)
        elif not is_zero(a - b):
            bad.append(k)
    return bad


def _normal_form_zero(alg, p):
    """Reduce p modulo the atom relations (clear ι by powers of its argument, σ² → radicand)."""
    if isinstance(alg, ChannelAtoms):
        ring = alg.alg_of(p)
        if ring is None:  # a ring-free constant
            return is_zero(p)
        alg = ring
    B = alg.backend
    for atom in reversed(alg.atoms):
        if atom.kind != "inv":
            continue
        i = atom.index
        K = B.degree(p, i)
        if K <= 0:
            continue
        parts = {}
        for m, c in B.terms(p):
            e = m[i]
            mm = list(m)
            mm[i] = 0
            parts.setdefault(e, []).append((tuple(mm), c))
        qpow = [alg.one]
        for _ in range(K):
            qpow.append(qpow[-1] * atom.argument)
        p = alg.sum(B.from_terms(t) * qpow[K - e] for e, t in parts.items())
    for atom in reversed(alg.atoms):
        if atom.kind != "sqrt":
            continue
        i = atom.index
        if B.degree(p, i) < 2:
            continue
        parts = {}
        for m, c in B.terms(p):
            e = m[i]
            mm = list(m)
            mm[i] = e % 2
            parts.setdefault(e // 2, []).append((tuple(mm), c))
        zpow = [alg.one]
        for k in range(max(parts)):
            zpow.append(zpow[-1] * atom.argument)
        p = alg.sum(B.from_terms(t) * zpow[k] for k, t in parts.items())
    return is_zero(p)


# ---------------------------------------------------------------------------------------------
# End to end and block structure


def _end_to_end(graph, backend, budget, rng):
    out = []
    timer = _Timer()
    status, method, cex, detail = "undecided", "", None, None
    block_status, block_detail = "undecided", None
    counts = {}
    try:
        with time_budget(budget):
            def run(bn):
                alg = bn.alg
                values = graph.evaluate(bn.inputs, alg)
                seed = _unit_seed(graph, alg)
                cot = graph.backprop(bn.inputs, seed, alg, values=values)
                # J_E by the chain rule from each slot's forward value
                cache = {}
                jt = {k: {} for k in bn.input_keys}
                for s in graph.slots:
                    arr = values[s]
                    for idx in np.ndindex(arr.shape):
                        key = (s,) + tuple(int(i) for i in idx)
                        for j, dv in alg.gradient(arr[idx], bn.input_keys, cache).items():
                            jt[j][key] = dv
                bad = []
                nentries = 0
                for j in bn.input_keys:
                    form = cot[j[0]][j[1:]]
                    nentries += len(jt[j])
                    for k in _compare_forms(form.terms, jt[j]):
                        diff = form.terms.get(k, alg.zero) - jt[j].get(k, alg.zero)
                        if not _normal_form_zero(alg, diff):
                            bad.append((j, k))
                return bn, values, cot, jt, bad, nentries

            bn, values, cot, jt, bad, nentries = _with_channel_rings(run, graph, backend)
            alg = bn.alg
            counts = {"jacobian_entries": nentries, "atoms": len(alg.atoms),
                      "backend": alg.backend.name}
            extra = _extra_conditions(bn, values)
            if not bad and extra:
                status, method = "undecided", "formal identity, but only under extra side conditions"
                detail = "; ".join(extra)
            elif not bad:
                status = "proved"
                rings = "one ring per channel" if bn.per_channel else "one ring for all channels"
                method = (f"formal identity per seed coefficient in the atom algebra ({alg.backend.name} "
                          f"polynomials over Q, {rings}, in centered coordinates m_c, u_c,p, γ, β, ε and atoms "
                          f"σ_c = sqrt(var_c + ε), ι_c = 1/σ_c; relations σ² = var + ε, σ·ι = 1 used "
                          f"only if needed); J_E by the chain rule from forward values "
                          f"({nentries} nonzero entries)")
            else:
                cex = _end_to_end_counterexample(graph, bn, jt, rng, bad)
                status = "failed" if cex else "undecided"
                method = "seed coefficients differ in normal form; exact counterexample search"
                detail = f"{len(bad)} coefficient(s) differ, first: d{bad[0][0]} / s_{bad[0][1]}"
            # block structure: no slot of channel c depends on inputs of another channel,
            # and backprop sends no seed of channel c into another channel's inputs
            cross = []
            for j in bn.input_keys:
                jc = j[1]
                for key in list(jt[j]) + list(cot[j[0]][j[1:]].terms):
                    kc = _channel_of(graph, key)
                    if kc is not None and kc != jc:
                        cross.append((j, key))
            block_status = "proved" if not cross else "failed"
            block_detail = None if not cross else f"{len(cross)} cross-channel entries, first {cross[0]}"
    except BudgetExceeded:
        method = "time budget exceeded"
    seconds = timer.seconds
    C, N = graph.C, graph.N
    out.append(_obligation(
        "end_to_end.backprop_eq_adjoint_fderiv",
        f"backprop(x, s) = J_E(x)ᵀ s for every seed s on all {12 * C * N + 7 * C} = 12CN + 7C slots, "
        f"where E : (x, γ, β) ↦ (x, γ, β, xMat, …, yChw) maps the {C * N + 2 * C} inputs to every slot",
        status, method, assumptions=[DOMAIN, STD_NONZERO],
        lean_name="backprop_eq_adjoint_fderiv_batchNorm_channel_first_at", seconds=seconds,
        counterexample=cex, group="end-to-end", detail=detail))
    if block_status == "failed":
        bcex = {"detail": block_detail}
    else:
        bcex = None
    out.append(_obligation(
        "end_to_end.block_diagonal",
        "J_E is block diagonal over channels: every slot entry of channel c has zero derivative with "
        "respect to the inputs of every channel c′ ≠ c, and backprop sends no seed of channel c to "
        "another channel's inputs",
        block_status, "exact: the polynomial of each entry contains no generator of another channel "
        "(a derivative with respect to an absent variable is exactly 0)",
        assumptions=[DOMAIN], lean_name=None, seconds=0.0, counterexample=bcex,
        group="end-to-end", detail=block_detail))
    return out, counts


def _extra_conditions(bn, values):
    """Side conditions the atom algebra relied on beyond the theorem's domain.

    Every σ must be the square root of some channel's ``var_eps`` (positive by assumption) and
    every ι the inverse of such a σ; anything else (a mutated graph taking other roots or
    inverses) would make a formal identity a proof only under unstated conditions."""
    domain = list(np.ravel(values["var_eps"])) if "var_eps" in values else []
    extra = []
    for ring in bn.algs:
        own = [v for v in domain if bn.alg.alg_of(v) is ring]
        sigmas = set()
        for atom in ring.atoms:
            if atom.kind == "sqrt":
                if any(is_zero(atom.argument - v) for v in own):
                    sigmas.add(atom.index)
                else:
                    extra.append(f"sqrt of a quantity other than var_c + ε (atom {atom.index}) needs it > 0")
        for atom in ring.atoms:
            if atom.kind == "inv":
                arg_gens = ring.backend.present(atom.argument)
                is_sigma = (len(arg_gens) == 1 and arg_gens[0] in sigmas
                            and is_zero(atom.argument - ring.gens[arg_gens[0]]))
                if not is_sigma:
                    extra.append(f"inverse of a quantity other than std_c (atom {atom.index}) needs it ≠ 0")
    return extra


def _channel_of(graph, key):
    slot = key[0]
    if slot in ("x", "gamma", "beta"):
        return key[1]
    return key[1] if len(key) > 1 else None


def _end_to_end_counterexample(graph, bn, jt, rng, bad, tries=5):
    """Exact point and seed where backprop (exact graph run) and J_E(x)ᵀ s differ."""
    eps_value = _eps_value(graph)
    for _ in range(tries):
        x, gamma, beta = _random_bn_point(graph, rng, eps_value)
        seed = {}
        for s in graph.slots:
            arr = np.empty(graph.shapes[s], dtype=object)
            for idx in np.ndindex(arr.shape):
                arr[idx] = sympy.Rational(rng.randint(-5, 5), rng.randint(1, 3))
            seed[s] = arr
        inputs = {"x": x, "gamma": gamma, "beta": beta}
        got = graph.backprop(inputs, seed, _exact_at(graph, eps_value))
        vals = _atom_values(bn, x, gamma, beta, eps_value)
        for (j, _k) in bad:
            lhs = got[j[0]][j[1:]]
            try:
                rhs = sympy.Add(*[seed[k[0]][k[1:]] * _poly_to_exact(bn.alg, p, vals) for k, p in jt[j].items()])
                differ = differ_exactly(lhs, rhs)
            except (TypeError, ValueError, ZeroDivisionError):
                continue  # not a real point of every atom (e.g. the root of a negative number)
            if differ:
                return {"inputs": {"x": x, "gamma": gamma, "beta": beta},
                        "eps": eps_value,
                        "seed": {s: a.tolist() for s, a in seed.items()},
                        "at": f"d{j[0]}[{','.join(map(str, j[1:]))}]",
                        "input": j,
                        "backprop": lhs, "J_E^T s": rhs,
                        "backprop_approx": float(sympy.N(lhs, 17)), "J_E^T s_approx": float(sympy.N(rhs, 17))}
    return None


def _exact_at(graph, eps_value):
    """Exact algebra that evaluates a symbolic ε at ``eps_value``."""
    return ExactAlgebra({graph.eps: eps_value}) if isinstance(graph.eps, sympy.Symbol) else EXACT


# ---------------------------------------------------------------------------------------------
# Links to the closed-form spec (not proved in the Lean repository)


def _spec_stats(alg, x, graph):
    C, n = graph.C, graph.N
    xm = x.reshape(C, n)
    mean = [alg.sum(xm[c, p] for p in range(n)) * alg.const(Fraction(1, n)) for c in range(C)]
    centered = np.empty((C, n), dtype=object)
    for c in range(C):
        for p in range(n):
            centered[c, p] = xm[c, p] - mean[c]
    var = [alg.sum(centered[c, p] * centered[c, p] for p in range(n)) * alg.const(Fraction(1, n))
           for c in range(C)]
    return xm, mean, centered, var


def spec_backward(alg, graph, x, gamma, g):
    """``Spec.batchNorm2dBackward`` (reference §5.4) with ``max(var, 0)`` replaced by ``var``
    (a no-op, proved by ``link.variance_nonnegative``)."""
    C, n = graph.C, graph.N
    xm, mean, centered, var = _spec_stats(alg, x, graph)
    gm = g.reshape(C, n)
    dx = np.empty((C, n), dtype=object)
    dgamma, dbeta = [], []
    eps = alg.parameter(graph.eps)
    for c in range(C):
        std = alg.sqrt_clamp(var[c] + eps)
        r = alg.inv(std)
        xhat = [centered[c, p] * r for p in range(n)]
        ghat = [gm[c, p] * gamma[c] for p in range(n)]
        S1 = alg.sum(ghat)
        S2 = alg.sum(ghat[p] * xhat[p] for p in range(n))
        for p in range(n):
            dx[c, p] = ((ghat[p] * alg.const(n) - S1 - S2 * xhat[p]) * r) * alg.const(Fraction(1, n))
        dgamma.append(alg.sum(gm[c, p] * xhat[p] for p in range(n)))
        dbeta.append(alg.sum(gm[c, p] for p in range(n)))
    return dx.reshape(x.shape), _vec(dgamma), _vec(dbeta)


def spec_jvp(alg, graph, x, gamma, dx, dgamma, dbeta):
    """``Spec.batchNorm2dJvp``: dy = γ r (dx − mean(dx) − x̂ mean(dx ⊙ x̂)) + x̂ dγ + dβ."""
    C, n = graph.C, graph.N
    xm, mean, centered, var = _spec_stats(alg, x, graph)
    dxm = dx.reshape(C, n)
    dy = np.empty((C, n), dtype=object)
    eps = alg.parameter(graph.eps)
    inv_n = alg.const(Fraction(1, n))
    for c in range(C):
        r = alg.inv(alg.sqrt_clamp(var[c] + eps))
        xhat = [centered[c, p] * r for p in range(n)]
        mdx = alg.sum(dxm[c, p] for p in range(n)) * inv_n
        mdxx = alg.sum(dxm[c, p] * xhat[p] for p in range(n)) * inv_n
        for p in range(n):
            dy[c, p] = (dxm[c, p] - mdx - mdxx * xhat[p]) * (gamma[c] * r) + dgamma[c] * xhat[p] + dbeta[c]
    return dy.reshape(x.shape)


def spec_forward(alg, graph, x, gamma, beta):
    """``Spec.batchNorm2d``: (x − μ)/sqrtSpec(max(var, 0) + ε)·γ + β, with max(var, 0) = var
    (proved no-op) and division as multiplication by the inverse (field division)."""
    C, n = graph.C, graph.N
    xm, mean, centered, var = _spec_stats(alg, x, graph)
    y = np.empty((C, n), dtype=object)
    eps = alg.parameter(graph.eps)
    for c in range(C):
        inv_std = alg.inv(alg.sqrt_clamp(var[c] + eps))
        for p in range(n):
            y[c, p] = centered[c, p] * inv_std * gamma[c] + beta[c]
    return y.reshape(x.shape)


def _link_verdict(bad, bn, values, method):
    if bad:
        return "remainder", method, f"first difference {bad[0]}"
    extra = _extra_conditions(bn, values)
    if extra:
        return "undecided", "formal identity, but only under extra side conditions", "; ".join(extra)
    return "proved", method, None


def _links(graph, backend, budget, rng):
    out = []
    # variance is a sum of squares -> spec clamp is a no-op
    timer = _Timer()
    status, method, detail = "undecided", "", None
    try:
        with time_budget(budget):
            ok = _sos_holds(graph, backend)
            status = "proved" if ok else "undecided"
            method = ("exact polynomial identity var_c = (1/N)·Σ_p ℓ_p², ℓ_p = x_p − (1/N)Σ_q x_q "
                      "(a sum of squares, hence ≥ 0), so max(var_c, 0) = var_c")
            detail = None if ok else "SOS identity did not reduce to zero"
    except BudgetExceeded:
        method = "time budget exceeded"
    out.append(_obligation(
        "link.variance_nonnegative",
        "var_c ≥ 0 for every x (var_c = (1/N)Σ_p (x_p − mean_c)²), so the spec's clamp max(var_c, 0) "
        "is a no-op",
        status, method, lean_name=None, seconds=timer.seconds, group="link", detail=detail))

    def run(name, statement, lean_name, fn):
        timer = _Timer()
        status, method, cex, detail = "undecided", "", None, None
        try:
            with time_budget(budget):
                status, method, detail = _with_channel_rings(fn, graph, backend)
        except BudgetExceeded:
            method = "time budget exceeded"
        if status == "remainder":
            cex = _link_counterexample(graph, name, rng)
            status = "failed" if cex else "undecided"
        out.append(_obligation(name, statement, status, method,
                               assumptions=[DOMAIN, "max(var_c, 0) = var_c (link.variance_nonnegative)"],
                               lean_name=lean_name, seconds=timer.seconds, counterexample=cex,
                               group="link", detail=detail))

    def backward_link(bn):
        alg = bn.alg
        values = graph.evaluate(bn.inputs, alg)
        seed = _unit_seed(graph, alg, ["yChw"])
        cot = graph.backprop(bn.inputs, seed, alg, values=values)
        dx, dg, db = spec_backward(alg, graph, bn.inputs["x"], bn.inputs["gamma"], seed["yChw"])
        bad = []
        for name, got, want in (("x", cot["x"], dx), ("gamma", cot["gamma"], dg), ("beta", cot["beta"], db)):
            for idx in np.ndindex(got.shape):
                a, b = got[idx], want[idx]
                for k in _compare_forms(a.terms, b.terms):
                    if not _normal_form_zero(alg, a.terms.get(k, alg.zero) - b.terms.get(k, alg.zero)):
                        bad.append((name, idx, k))
        method = ("per seed coefficient, formal identity in the atom algebra (relations σ² = var + ε, "
                  "σ·ι = 1 if needed); seed g symbolic on yChw only")
        return _link_verdict(bad, bn, values, method)

    def jvp_link(bn):
        alg = bn.alg
        values = graph.evaluate(bn.inputs, alg)
        tangents = _unit_seed(graph, alg, ["x", "gamma", "beta"])
        tan = graph.jvp(bn.inputs, tangents, alg, values=values)
        dy = spec_jvp(alg, graph, bn.inputs["x"], bn.inputs["gamma"], tangents["x"], tangents["gamma"],
                      tangents["beta"])
        bad = []
        for idx in np.ndindex(dy.shape):
            a, b = tan["yChw"][idx], dy[idx]
            for k in _compare_forms(a.terms, b.terms):
                if not _normal_form_zero(alg, a.terms.get(k, alg.zero) - b.terms.get(k, alg.zero)):
                    bad.append((idx, k))
        method = "per tangent coefficient, formal identity in the atom algebra; tangent (dx, dγ, dβ) symbolic"
        return _link_verdict(bad, bn, values, method)

    def forward_link(bn):
        alg = bn.alg
        values = graph.evaluate(bn.inputs, alg)
        y = spec_forward(alg, graph, bn.inputs["x"], bn.inputs["gamma"], bn.inputs["beta"])
        bad = [idx for idx in np.ndindex(y.shape)
               if not _normal_form_zero(alg, values["yChw"][idx] - y[idx])]
        return _link_verdict(bad, bn, values, "formal identity in the atom algebra")

    run("link.backward_closed_form",
        "with a seed g on yChw only, backprop = Spec.batchNorm2dBackward: dx = (γ_c r_c/N)(N g − Σ_p g − "
        "x̂ Σ_p g x̂), dγ_c = Σ_p g x̂, dβ_c = Σ_p g, where r_c = 1/sqrt(max(var_c,0) + ε), x̂ = (x − mean)·r",
        None, backward_link)
    run("link.jvp_closed_form",
        "the graph's JVP on yChw = Spec.batchNorm2dJvp: dy = γ r (dx − mean(dx) − x̂·mean(dx ⊙ x̂)) + x̂ dγ + dβ",
        None, jvp_link)
    run("link.forward_spec",
        "yChw = Spec.batchNorm2d: (x − mean)/sqrt(max(max(var, 0) + ε, 0))·γ + β",
        None, forward_link)
    return out


def _link_counterexample(graph, name, rng):
    """Exact rational point where the graph and the closed form differ (re-evaluated exactly)."""
    eps_value = _eps_value(graph)
    alg = _exact_at(graph, eps_value)
    for _ in range(5):
        x, gamma, beta = _random_bn_point(graph, rng, eps_value)
        xa = np.array(x, dtype=object)
        ga, ba = _vec(gamma), _vec(beta)
        gs = np.empty(xa.shape, dtype=object)
        for idx in np.ndindex(gs.shape):
            gs[idx] = sympy.Rational(rng.randint(-5, 5), rng.randint(1, 3))
        inputs = {"x": x, "gamma": gamma, "beta": beta}
        if name == "link.backward_closed_form":
            got = graph.backprop(inputs, {"yChw": gs}, alg)
            want = dict(zip(("x", "gamma", "beta"), spec_backward(alg, graph, xa, ga, gs)))
            extra = {"g": gs.tolist()}
        elif name == "link.jvp_closed_form":
            dxa = gs
            dg = _vec([sympy.Rational(rng.randint(-5, 5), 2) for _ in range(graph.C)])
            db = _vec([sympy.Rational(rng.randint(-5, 5), 2) for _ in range(graph.C)])
            got = {"yChw": graph.jvp(inputs, {"x": dxa, "gamma": dg, "beta": db}, alg)["yChw"]}
            want = {"yChw": spec_jvp(alg, graph, xa, ga, dxa, dg, db)}
            extra = {"dx": dxa.tolist(), "dgamma": dg.tolist(), "dbeta": db.tolist()}
        else:
            got = {"yChw": graph.evaluate(inputs, alg)["yChw"]}
            want = {"yChw": spec_forward(alg, graph, xa, ga, ba)}
            extra = {}
        for k in got:
            for idx in np.ndindex(got[k].shape):
                if differ_exactly(got[k][idx], want[k][idx]):
                    return {"inputs": {"x": x, "gamma": gamma, "beta": beta},
                            "eps": eps_value, **extra,
                            "at": f"{k}[{','.join(map(str, idx))}]",
                            "graph": got[k][idx], "closed_form": want[k][idx]}
    return None


# ---------------------------------------------------------------------------------------------
# Domain


def _sos_holds(graph, backend):
    """var_c (the graph's own) = (1/N)·Σ_p ℓ_p², ℓ_p = x_p − (1/N)Σ_q x_q, exactly, for every c."""
    C, n = graph.C, graph.N

    def run(bn):
        alg = bn.alg
        values = graph.evaluate(bn.inputs, alg)
        x = bn.inputs["x"].reshape(C, n)
        for c in range(C):
            mean_c = alg.sum(x[c, q] for q in range(n)) * alg.const(Fraction(1, n))
            sos = alg.sum((x[c, p] - mean_c) * (x[c, p] - mean_c) for p in range(n)) * alg.const(Fraction(1, n))
            if not is_zero(values["var"][c] - sos):
                return False
        return True
    return _with_channel_rings(run, graph, backend)


def _domain(graph, budget, rng, backend=None):
    out = []
    timer = _Timer()
    # The graph's own std and inv_std nodes, applied to a positive symbol z = var_c + ε.
    nodes = {n.name: n for n in graph.nodes}
    z = sympy.Symbol("z", positive=True)
    ok, how = False, "the graph has no std/inv_std nodes"
    if "std" in nodes and "inv_std" in nodes:
        std = nodes["std"].forward(EXACT, _vec([z]))[0]
        inv_std = nodes["inv_std"].forward(EXACT, _vec([std]))[0]
        ok = std.is_positive is True and decide_zero(inv_std * std - 1).proved
        how = (f"the graph's std node on a positive symbol z = var_c + ε gives {std}, positive by SymPy's "
               f"sign rules (max(z, 0) = z, sqrt(z) > 0, exact); its inv_std node gives {inv_std}, and "
               f"inv_std·std = 1 exactly")
    out.append(_obligation(
        "domain.std_nonzero",
        "var_c + ε > 0 implies std_c = sqrt(max(var_c + ε, 0)) ≠ 0 (so hStdNe0 follows from hVarEpsPos, "
        "and inv_std_c = 1/std_c)",
        "proved" if ok else "undecided", how,
        assumptions=[DOMAIN], lean_name="hStdNe0 (a separate hypothesis in Lean)", seconds=timer.seconds,
        group="domain", detail=None if ok else "could not be shown for this graph's nodes"))

    timer = _Timer()
    n = graph.N
    ells = sympy.symbols(f"l0:{n}", real=True)
    eps = sympy.Symbol("ε", positive=True)
    expr = sympy.Add(*[l ** 2 for l in ells]) / n + eps
    sos = _sos_holds(graph, backend)
    ok = sos and expr.is_positive is True
    out.append(_obligation(
        "domain.eps_positive_suffices",
        "ε > 0 implies var_c + ε > 0 for every x, since var_c = (1/N)Σ_p ℓ_p² ≥ 0",
        "proved" if ok else "undecided",
        "the graph's var_c equals (1/N)Σ_p ℓ_p² exactly (polynomial identity, as in "
        "link.variance_nonnegative); a sum of squares over N plus a positive symbol is positive "
        "(SymPy sign rules, exact)",
        assumptions=["ε > 0"], lean_name=None, seconds=timer.seconds, group="domain",
        detail=None if ok else "the graph's variance is not the sum-of-squares form"))

    timer = _Timer()
    out.append(_outside_domain(graph, budget, rng, timer))
    return out


def _outside_domain(graph, budget, rng, timer):
    C, H, W, n = graph.C, graph.H, graph.W, graph.N
    name = "domain.outside_not_differentiable"
    if n < 2:
        return _obligation(
            name, "N = 1: var_c ≡ 0, so at ε = 0 the hypothesis fails while the map stays constant in x "
            "(no non-differentiability witness exists at this shape); backprop returns finite numbers",
            "proved", "exact evaluation: var_c = 0 identically (one spatial element)",
            assumptions=["ε = 0"], seconds=timer.seconds, group="domain")
    try:
        with time_budget(budget):
            if isinstance(graph.eps, sympy.Symbol):
                g0, alg0 = graph, ExactAlgebra({graph.eps: sympy.Integer(0)})
            else:  # a fixed ε: the same graph with its var_eps node at ε = 0
                node = [nd for nd in graph.nodes if nd.name == "var_eps"][0]
                g0, alg0 = graph.replace("var_eps", Nodes.add_const(
                    "var_eps", node.inputs[0], node.shape, sympy.Integer(0), node.lean_name)), EXACT
            x = [[[sympy.Integer(1) if c == 0 else sympy.Rational(rng.randint(-5, 5), 2)
                   for _ in range(W)] for _ in range(H)] for c in range(C)]
            gamma = [sympy.Integer(2)] + [sympy.Integer(1)] * (C - 1)
            beta = [sympy.Rational(1, 3)] * C
            h = sympy.Symbol("h", positive=True)
            xt = [[[v for v in row] for row in ch] for ch in x]
            xt[0][0][0] = xt[0][0][0] + h
            xt[0][(1 // W)][1 % W] = xt[0][(1 // W)][1 % W] - h
            y0 = g0.evaluate({"x": x, "gamma": gamma, "beta": beta}, alg0)["yChw"]
            yh = g0.evaluate({"x": xt, "gamma": gamma, "beta": beta}, alg0)["yChw"]
            dq = (yh[0, 0, 0] - y0[0, 0, 0]) / h
            scaled = sympy.expand(dq * h)
            const = scaled.free_symbols == set() and scaled != 0
            seed = {s: np.array([[[sympy.Rational(rng.randint(-5, 5), 3) for _ in range(W)]
                                  for _ in range(H)] for _ in range(C)], dtype=object)
                    for s in ("yChw",)}
            bp = g0.backprop({"x": x, "gamma": gamma, "beta": beta}, seed, alg0)
            finite = all(v.is_number and v.is_finite is True for a in bp.values() for v in np.ravel(a))
            ok = const and finite
            cex = None
            status = "proved" if ok else "undecided"
            method = ("exact witness at ε = 0, channel 0 constant (x = 1), direction t = e_(0,0) − e_(0,1): "
                      f"the difference quotient (y(x + h t) − y(x))/h of y[0,0,0] equals {scaled}/h for every "
                      "h > 0 (exact), so it grows without bound and no derivative exists; backprop at x with a "
                      "random rational seed returns exact finite numbers (the std path contributes 0 by the "
                      "totalized derivatives)")
    except BudgetExceeded:
        status, method = "undecided", "time budget exceeded"
    return _obligation(
        name, "outside the domain (ε = 0 with a constant channel, var_c + ε = 0) E is not differentiable, "
        "while backprop still returns finite numbers",
        status, method, assumptions=["ε = 0", "channel 0 constant"], lean_name=None,
        seconds=timer.seconds, group="domain")


# ---------------------------------------------------------------------------------------------


def prove_node(graph, name: str, *, budget: float = DEFAULT_BUDGET, seed: int = 0) -> list:
    """The three local obligations (adjoint, derivative, transpose) of the node writing ``name``
    in any :class:`~symbolic_bn.graphs.graph.Graph`."""
    nodes = [n for n in graph.nodes if n.name == name]
    if not nodes:
        raise KeyError(f"no node writes slot {name!r}; slots are {graph.slots}")
    return _stage_obligations(graph, nodes[0], budget, random.Random(seed))


def _run_task(task, graph, backend, budget, seed):
    """One independent group of obligations; its own deterministic random stream."""
    rng = random.Random(f"{seed}:{task}")
    kind = task[0]
    if kind == "stage":
        node = [n for n in graph.nodes if n.name == task[1]][0]
        return _stage_obligations(graph, node, budget, rng), {}
    if kind == "end_to_end":
        return _end_to_end(graph, backend, budget, rng)
    if kind == "links":
        return _links(graph, backend, budget, rng), {}
    return _domain(graph, budget, rng, backend), {}


_POOL_STATE = None


def _pool_task(task):
    graph, backend, budget, seed = _POOL_STATE
    return _run_task(task, graph, backend, budget, seed)


def prove(graph: BatchNormGraph, *, budget: float = DEFAULT_BUDGET, backend: str | None = None,
          seed: int = 0, jobs: int | None = None, stages: bool = True, end_to_end: bool = True,
          links: bool = True, domain: bool = True) -> Certificate:
    """Every obligation of ``graph`` (a :class:`BatchNormGraph`), decided exactly.

    ``budget``: seconds per obligation group before it is reported 'undecided';
    ``backend``: polynomial backend of the atom algebra ('flint' or 'sympy'; default: fastest
    installed); ``seed``: seed of the counterexample search; ``jobs``: worker processes for the
    independent obligation groups (default: the number of cores; results are identical to a
    serial run because each group has its own deterministic random stream).
    """
    global _POOL_STATE
    if not isinstance(graph, BatchNormGraph):
        raise TypeError("prove() expects a graph from batchnorm_channel_first(C, H, W, eps)")
    if not (isinstance(budget, (int, float)) and budget > 0):
        raise ValueError(f"budget must be a positive number of seconds, got {budget!r}")
    if graph.N == 1 and not isinstance(graph.eps, sympy.Symbol) and graph.eps <= 0:
        raise ValueError(f"eps = {graph.eps} with H*W = 1: var_c is identically 0, so the domain "
                         f"var_c + ε > 0 is empty and every obligation would hold vacuously")
    if jobs is None:
        jobs = os.cpu_count() or 1
    if not (isinstance(jobs, int) and not isinstance(jobs, bool) and jobs >= 1):
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    backend = backend or default_backend()
    if backend not in available_backends():
        raise ValueError(f"backend must be one of {available_backends()}, got {backend!r}")
    timer = _Timer()
    cert = Certificate(
        subject=f"BatchNormChannelFirst {graph.C}x{graph.H}x{graph.W}, ε = {graph.eps}",
        parameters={"C": graph.C, "H": graph.H, "W": graph.W, "N": graph.N, "eps": str(graph.eps),
                    "backend": backend, "seed": seed, "budget": budget,
                    "context_size": graph.context_size(), "input_size": graph.context_size(0)})
    tasks = []
    if stages:
        tasks += [("stage", n.name) for n in graph.nodes]
    if end_to_end:
        tasks.append(("end_to_end",))
    if links:
        tasks.append(("links",))
    if domain:
        tasks.append(("domain",))
    # Small graphs are faster serially than the cost of starting processes.
    parallel = jobs > 1 and graph.C * graph.N >= 64 and "fork" in multiprocessing.get_all_start_methods()
    if parallel:
        _POOL_STATE = (graph, backend, budget, seed)
        try:
            ctx = multiprocessing.get_context("fork")
            # the heaviest groups first so that the workers finish together
            order = sorted(range(len(tasks)), key=lambda i: tasks[i][0] not in ("end_to_end", "links"))
            with ctx.Pool(min(jobs, len(tasks))) as pool:
                got = pool.map(_pool_task, [tasks[i] for i in order], chunksize=1)
            results = [None] * len(tasks)
            for i, r in zip(order, got):
                results[i] = r
        finally:
            _POOL_STATE = None
    else:
        results = [_run_task(t, graph, backend, budget, seed) for t in tasks]
    for obs, counts in results:
        cert.extend(obs)
        cert.parameters.update(counts)
    cert.parameters["jobs"] = jobs if parallel else 1
    cert.seconds = timer.seconds
    return cert
