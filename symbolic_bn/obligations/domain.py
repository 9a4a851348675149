"""The domain of the theorems: what ``stat + ε > 0`` gives, where it holds, and what fails outside.

* ``domain.std_nonzero`` -- ``stat + ε > 0`` implies ``std = sqrt(max(stat + ε, 0)) ≠ 0`` and
  ``inv_std·std = 1`` (TorchLean assumes ``hStdNe0`` separately): the graph's own ε, std and
  inv_std nodes, run on the engine from a variable stat with stat + ε > 0, give a positive σ and
  exactly 1;
* ``domain.eps_positive_suffices`` (ε symbolic, not declared ≤ 0; or an exact ε > 0) -- ``ε > 0``
  implies ``stat + ε > 0`` for every input: the graph's statistic is shown ≥ 0 (it equals a sum of
  squares) and ε > 0;
* ``domain.nonempty`` (instead, when ε is an exact number ≤ 0 or declared non-positive) -- the
  domain is a proper part of the input space, not empty: an exact point in it;
* ``domain.outside_not_differentiable`` -- at ε = 0 with one statistics group constant (all zero
  for rms_norm), the map is not differentiable: an exact difference quotient K/h with K ≠ 0;
  backprop there still returns finite numbers (Lean's totalized derivatives).
"""
from __future__ import annotations

import time
from fractions import Fraction

import numpy as np
import sympy

from ..exact import normal, sign as _sign
from ..exact.budget import BudgetExceeded, time_budget
from ..exact.errors import ExactError
from ..exact.space import Space
from ..graphs import nodes as Nodes
from ..graphs.algebra import EXACT, ExactAlgebra
from .certificate import Obligation
from .setting import EngineAlgebra, ProofSetting

__all__ = ["domain_obligations"]


def _stat_nodes(graph):
    names = {n.name: n for n in graph.nodes}
    for std, inv, eps_node in (("std", "inv_std", "var_eps"), ("rms", "inv_rms", "mean_sq_eps")):
        if std in names and inv in names:
            return names[std], names[inv], names.get(eps_node)
    return None, None, None


def _std_nonzero(layer, graph):
    t0 = time.perf_counter()
    std_node, inv_node, eps_node = _stat_nodes(graph)
    word = "var" if layer.centered else "mean(x²)"
    status, method, detail = "undecided", "", "the graph has no std / inv_std nodes"
    if std_node is not None:
        # from the statistic itself, through the graph's own ε node: a modified ε node (say
        # var − 9/10) must not inherit the conclusion of the true one
        space = Space(name="domain")
        space.variable("stat", None)
        graph_eps = getattr(graph, "eps", layer.eps)
        if isinstance(graph_eps, sympy.Basic) and not graph_eps.is_Rational:
            space.variable("eps", None)
            eps_value = space.var("eps")
            params = {graph_eps: eps_value}
        else:
            q = Fraction(int(sympy.Rational(graph_eps).p), int(sympy.Rational(graph_eps).q))
            eps_value = space.fraction(q)
            params = {sympy.Rational(q.numerator, q.denominator): eps_value}
        stat = space.var("stat")
        space.assume_positive(stat + eps_value, f"the domain: {word} + ε > 0", name=f"({word} + ε)")
        alg = EngineAlgebra(space, params)
        vec = np.empty(1, dtype=object)
        vec[0] = stat
        try:
            z = eps_node.forward(alg, vec) if eps_node is not None else vec + eps_value
            std = std_node.forward(alg, z)
            inv = inv_node.forward(alg, std)
            positive = _sign.sign(space, std[0]) == "pos"
            one = normal.is_zero_value(space, inv[0] * std[0] - 1)
            unmet = space.unmet_conditions()
        except (ExactError, ValueError, TypeError, ZeroDivisionError):
            positive = one = False
            unmet = []
        if positive and one and not unmet:
            status, detail = "proved", None
        else:
            detail = "the graph's ε / std / inv_std nodes do not give a positive std with inv_std·std = 1 " \
                     f"on {word} + ε > 0"
        names = ", ".join(n.name for n in (eps_node, std_node, inv_node) if n is not None)
        method = (f"the graph's own nodes ({names}) run on the engine from a variable {word} with "
                  f"{word} + ε > 0: std is a positive σ and inv_std·std = 1 exactly")
    return Obligation("domain.std_nonzero",
                      f"{word} + ε > 0 implies std = sqrt(max({word} + ε, 0)) ≠ 0, and inv_std·std = 1 "
                      "(so hStdNe0 follows from hVarEpsPos)",
                      status, method, assumptions=[layer.domain_text()],
                      lean_name="hStdNe0 (a separate hypothesis in Lean)" if layer.name in (
                          "batchnorm_channel_first", "layer_norm") else None,
                      seconds=time.perf_counter() - t0, group="domain", detail=detail)


def _eps_positive(layer, graph, backend):
    t0 = time.perf_counter()
    word = "var" if layer.centered else "mean(x²)"
    setting = ProofSetting(layer, graph, backend=backend, positive_domain=False, eps_sign="positive")
    from .links import _row_groups
    stats = np.ravel(setting.values[setting.stat_slot])
    space, problem = setting.space, setting.problem
    # the graph's statistic is exactly the sum of squares built from the inputs (≥ 0 by
    # construction), and ε is a positive variable (or a positive number): their sum is > 0
    ok = all(normal.is_zero_value(space, stats[r] - problem.statistics[group][0])
             for r, group in enumerate(_row_groups(setting)))
    eps_ok = layer.symbolic_eps or layer.eps > 0
    ok = ok and eps_ok
    symbolic = layer.symbolic_eps
    statement = (f"ε > 0 implies {word}_g + ε > 0 for every input, since the graph's {word}_g is ≥ 0"
                 if symbolic else
                 f"ε = {layer.eps} > 0, so {word}_g + ε > 0 for every input: the domain is the whole input space")
    return Obligation("domain.eps_positive_suffices", statement, "proved" if ok else "undecided",
                      f"exact: the graph's {word}_g equals (1/n)·Σ {'(x − μ)²' if layer.centered else 'x²'} built "
                      "from the inputs (a sum of squares, ≥ 0; polynomial identity on the engine), and ε > 0",
                      assumptions=["ε > 0"] if symbolic else [f"ε = {layer.eps}"],
                      seconds=time.perf_counter() - t0, group="domain",
                      detail=None if ok else f"the graph's {word} is not the sum of squares")


def _nonempty(layer, graph, rng, backend):
    """An exact point of the domain for an ε that is not positive."""
    from ..checks.points import PointSearch
    from .setting import ProofSetting as _PS
    t0 = time.perf_counter()
    setting = _PS(layer, graph, backend=backend)
    search = PointSearch(setting.problem, None, "forward", ("y",), (layer.input_shape,), None,
                         seed=rng.randint(0, 10 ** 6))
    pt = search.draw("generic")
    eps = pt["eps"]
    ok = True
    worst = None
    for group, members in layer.members.items():
        vals = [Fraction(pt["x"][idx]) for idx in members]
        n = len(vals)
        if layer.centered:
            mu = sum(vals, Fraction(0)) / n
            stat = sum(((v - mu) ** 2 for v in vals), Fraction(0)) / n
        else:
            stat = sum((v * v for v in vals), Fraction(0)) / n
        ok = ok and stat + eps > 0
        worst = stat if worst is None else min(worst, stat)
    word = "var" if layer.centered else "mean(x²)"
    eps_text = f"ε = {layer.eps}" if not layer.symbolic_eps else "ε ≤ 0 (declared)"
    to_list = np.vectorize(lambda f: sympy.Rational(Fraction(f).numerator, Fraction(f).denominator), otypes=[object])
    return Obligation("domain.nonempty",
                      f"{eps_text} is not positive: the domain {layer.domain_text()} is a proper part of the input "
                      f"space (inputs with {word}_g > −ε in every group), and it is not empty",
                      "proved" if ok else "undecided",
                      f"an exact witness: x = {to_list(pt['x']).tolist()} with ε = {eps} has the smallest "
                      f"{word}_g = {worst} > −ε (exact rational arithmetic)",
                      assumptions=[eps_text], seconds=time.perf_counter() - t0, group="domain",
                      detail=None if ok else "the witness search failed")


def _outside(layer, graph, budget, rng):
    t0 = time.perf_counter()
    name = "domain.outside_not_differentiable"
    first_group, members = next(iter(layer.members.items()))
    n = len(members)
    word = "var" if layer.centered else "mean(x²)"
    if layer.centered and n < 2:
        return Obligation(name, f"groups of one element: {word} ≡ 0, so at ε = 0 the hypothesis fails "
                          "everywhere while the map stays constant in x (no non-differentiability witness "
                          "exists at this shape)", "proved",
                          f"exact evaluation: {word} = 0 identically (one element per group)",
                          assumptions=["ε = 0"], seconds=time.perf_counter() - t0, group="domain")
    status, method, detail = "undecided", "time budget exceeded", None
    try:
        with time_budget(budget):
            _, _, eps_node = _stat_nodes(graph)
            out_slot = graph.nodes[-1].name
            if layer.symbolic_eps:
                g0, alg0 = graph, ExactAlgebra({graph.eps if hasattr(graph, "eps") else layer.eps: sympy.Integer(0)})
            else:
                g0 = graph.replace(eps_node.name, Nodes.add_const(eps_node.name, eps_node.inputs[0],
                                                                  eps_node.shape, sympy.Integer(0),
                                                                  eps_node.lean_name))
                alg0 = EXACT
            names = layer.argument_names
            x = np.empty(layer.input_shape, dtype=object)
            for idx in np.ndindex(*layer.input_shape):
                x[idx] = sympy.Rational(rng.randint(-5, 5), 2) if layer.group_of(idx) != first_group else None
            for idx in members:
                x[idx] = sympy.Integer(1) if layer.centered else sympy.Integer(0)
            w = np.full(layer.weight_shape, sympy.Integer(1), dtype=object)
            w[layer.param_of(members[0])] = sympy.Integer(2)
            inputs = {names[0]: x, names[1]: w}
            if layer.bias_shape is not None:
                inputs[names[2]] = np.full(layer.bias_shape, sympy.Rational(1, 3), dtype=object)
            h = sympy.Symbol("h", positive=True)
            xt = x.copy()
            a, b = members[0], members[1] if n > 1 else members[0]
            xt[a] = xt[a] + h
            if layer.centered:
                xt[b] = xt[b] - h
            y0 = g0.evaluate(inputs, alg0)[out_slot]
            yh = g0.evaluate({**inputs, names[0]: xt}, alg0)[out_slot]
            scaled = sympy.expand((yh[a] - y0[a]) * 1)  # (y(x + h t) − y(x)), times 1/h below
            const = scaled.free_symbols == set() and scaled != 0
            seed = np.empty(layer.input_shape, dtype=object)
            for idx in np.ndindex(*layer.input_shape):
                seed[idx] = sympy.Rational(rng.randint(-5, 5), 3)
            bp = g0.backprop(inputs, {out_slot: seed}, alg0)
            finite = all(v.is_number and v.is_finite is True for arr in bp.values() for v in np.ravel(arr))
            status = "proved" if (const and finite) else "undecided"
            direction = f"e_{list(a)} − e_{list(b)}" if layer.centered else f"e_{list(a)}"
            method = (f"exact witness at ε = 0 with one statistics group {'constant' if layer.centered else 'zero'} "
                      f"and direction t = {direction}: the difference quotient (y(x + h t) − y(x))/h of "
                      f"y{list(a)} equals ({scaled})/h for every h > 0 (exact), so it grows without bound and "
                      "no derivative exists; backprop there with a rational seed returns exact finite numbers")
            detail = None if status == "proved" else "the witness did not come out as expected"
    except BudgetExceeded:
        detail = "time budget exceeded"
    return Obligation(name, f"outside the domain ({word}_g + ε = 0: ε = 0 and one group "
                      f"{'constant' if layer.centered else 'zero'}) the map is not differentiable, while backprop "
                      "still returns finite numbers", status, method, assumptions=["ε = 0"],
                      seconds=time.perf_counter() - t0, group="domain", detail=detail)


def domain_obligations(layer, graph, budget, rng, *, backend=None) -> list:
    out = [_std_nonzero(layer, graph)]
    eps = layer.eps
    nonpositive = (not layer.symbolic_eps and eps <= 0) or (layer.symbolic_eps and (eps.is_nonpositive or eps.is_negative))
    try:
        with time_budget(budget):
            out.append(_nonempty(layer, graph, rng, backend) if nonpositive else _eps_positive(layer, graph, backend))
    except BudgetExceeded:
        out.append(Obligation("domain.eps_positive_suffices", "ε > 0 implies the domain", "undecided",
                              "time budget exceeded", group="domain", detail="time budget exceeded"))
    out.append(_outside(layer, graph, budget, rng))
    return out
