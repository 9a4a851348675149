"""Graphs on the exact engine: the node interface on Values, and the setting of a layer's proofs.

:class:`EngineAlgebra` is the scalar interface the graph's nodes are written against (``const``,
``sum``, ``parameter``, ``sqrt_clamp`` and its declared derivative, ``inv`` and its derivative,
ordinary ``+ − ×``) on the engine's :class:`~symbolic_bn.exact.value.Value` s.  Lean's totalized
conventions become atoms with side conditions: ``sqrt(max(z, 0))`` is σ = sqrt(z) with z ≥ 0 (and
z > 0 once its declared derivative 1/(2 sqrt z) is used), ``z⁻¹`` is ι with z ≠ 0.  Every such
condition must then be shown on the domain, so a node that takes a square root of something
else -- whatever it *declares* -- cannot slip through.

:class:`ProofSetting` evaluates a layer's graph once in a Space (inputs declared as by
:class:`~symbolic_bn.checks.problem.Problem`) and states the domain *on the graph's own
statistics*: ``stat_r + ε > 0`` for every row r of its variance slot (TorchLean's hypothesis
``hVarEpsPos`` is about the graph's own ``var_eps``; here about its ``var`` plus the layer's ε, so
a graph whose ``var_eps`` node computes something else is held to the stated domain).  The true
group variances, built as sums of squares from the inputs, are recorded as non-negative facts.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import sympy

from ..checks.problem import Problem
from ..exact.linear import LinearForm
from .raw_forms import RawForm
from ..xp.engine import _pairwise_sum

__all__ = ["EngineAlgebra", "ProofSetting", "domain_slot"]


class EngineAlgebra:
    """The graph nodes' scalar interface on the engine (module docstring)."""

    name = "engine"

    def __init__(self, space, parameters: dict):
        self.space = space
        self.zero = space.zero()
        self.one = space.fraction(1)
        self.parameters = dict(parameters)  # SymPy symbol or number -> Value

    def const(self, q):
        return self.space.fraction(Fraction(q))

    def parameter(self, value):
        got = self.parameters.get(value)
        if got is not None:
            return got
        if isinstance(value, sympy.Rational):
            return self.space.fraction(Fraction(int(value.p), int(value.q)))
        if isinstance(value, (int, Fraction)):
            return self.space.fraction(value)
        raise ValueError(f"parameter {value!r} has no value in this algebra")

    def sum(self, items):
        values, forms = [], []
        for v in items:
            (forms if isinstance(v, (LinearForm, RawForm)) else values).append(v)
        total = _pairwise_sum(self.space, [self.space.constant(v) for v in values])
        if not forms:
            return total
        while len(forms) > 1:  # pairwise, so that merging term dicts stays linear overall
            nxt = [forms[i] + forms[i + 1] for i in range(0, len(forms) - 1, 2)]
            if len(forms) % 2:
                nxt.append(forms[-1])
            forms = nxt
        return forms[0] + total if not total.is_syntactic_zero() else forms[0]

    def sqrt_clamp(self, z):
        return self.space.sqrt(z)

    def sqrt_clamp_deriv(self, z):
        return self.space.multiply(self.space.inverse(self.space.sqrt(z)), self.space.fraction(Fraction(1, 2)))

    def inv(self, q):
        return self.space.inverse(q)

    def inv_deriv(self, q):
        r = self.space.inverse(q)
        return self.space.negate(self.space.multiply(r, r))


def _plain(arr):
    out = np.empty(arr.shape, dtype=object)
    for idx in np.ndindex(*arr.shape):
        out[idx] = arr[idx]
    return out


def domain_slot(graph) -> str:
    """The graph's per-group statistic that the domain is stated on ('var', or 'mean_sq')."""
    names = set(graph.slots)
    for slot in ("var", "mean_sq"):
        if slot in names:
            return slot
    raise ValueError(f"graph {graph.name!r} has no 'var' or 'mean_sq' slot to state the domain on")


class ProofSetting:
    """A layer's graph evaluated in a Space, with the domain on the graph's own statistics."""

    def __init__(self, layer, graph, *, backend=None, cotangent=False, tangents=False, positive_domain=True,
                 eps_sign=None, directions=0):
        self.layer, self.graph = layer, graph
        self.problem = problem = Problem(layer, backend=backend, with_cotangent=cotangent,
                                         with_tangents=tangents, positive_domain=False, eps_sign=eps_sign,
                                         directions=directions)
        self.space = problem.space
        graph_eps = getattr(graph, "eps", layer.eps)
        eps_key = graph_eps if isinstance(graph_eps, sympy.Basic) else sympy.Rational(
            Fraction(graph_eps).numerator, Fraction(graph_eps).denominator)
        self.alg = EngineAlgebra(self.space, {eps_key: problem.eps})
        names = layer.argument_names
        # plain object arrays: the graph's cotangents may hold linear forms, not only Values
        self.inputs = {names[0]: _plain(problem.x), names[1]: _plain(problem.weight)}
        if problem.b_name:
            self.inputs[names[2]] = _plain(problem.bias)
        self.values = graph.evaluate(self.inputs, self.alg)
        self.stat_slot = domain_slot(graph)
        word = "var" if self.stat_slot == "var" else "mean(x²)"
        stats = self.values[self.stat_slot]
        labels = getattr(graph, "row_groups", None) or [str(r) for r in range(len(stats))]
        for r, stat in enumerate(np.ravel(stats) if positive_domain else []):
            self.space.assume_positive(stat + problem.eps,
                                       f"the domain: the graph's {self.stat_slot} + ε > 0 in row {r}",
                                       name=f"({word}[{labels[r]}] + ε)")

    @property
    def output(self) -> str:
        return self.graph.nodes[-1].name


def point_counterexample(setting, pairs, rng, tries=4, variables=None):
    """An exact rational point of the domain at which some (label, a, b) pair of Values of the
    setting's Space differs: ``{label, left, right, ..., the point}``, re-confirmed with SymPy; or
    None.  ``variables`` gives extra variables' values (e.g. a symbolic cotangent) per point."""
    from ..checks.points import PointSearch
    from ..exact import normal as _normal, sign as _sign
    from ..exact.convert import Substitution, to_sympy
    from ..exact.decide import differ_exactly
    from ..exact.space import Space
    problem = setting.problem
    search = PointSearch(problem, None, "backward", ("y",), (setting.layer.input_shape,), None,
                         seed=rng.randint(0, 10 ** 6))
    to_list = (lambda arr: np.vectorize(lambda f: sympy.Rational(f.numerator, f.denominator),
                                        otypes=[object])(arr).tolist())
    for _ in range(tries):
        pt = search.draw("generic")
        values = problem.variable_values({problem.x_name: pt["x"], problem.w_name: pt["weight"],
                                          **({problem.b_name: pt["bias"]} if problem.b_name else {}),
                                          **({"grad_out": pt["grad_out"]} if problem.grad_out is not None else {}),
                                          "eps": pt["eps"]})
        extra = {}
        vectors = list(problem.tangent_names or ()) + [n for d in problem.direction_names for n in d]
        if vectors:
            for name in vectors:
                kind, shape, _ = problem.inputs.arrays[name]
                arr = np.empty(shape, dtype=object)
                for idx in np.ndindex(*shape):
                    arr[idx] = Fraction(rng.randint(-5, 5), rng.randint(1, 3))
                values.update(problem.inputs.point_values(name, arr))
                extra[name] = arr
        target = Space(setting.space.backend.name, name="point")
        at = Substitution(setting.space, values, target)
        for label, a, b in pairs[:32]:
            va = at(a) if a is not None else target.zero()
            vb = at(b) if b is not None else target.zero()
            d = va - vb
            if _normal.is_zero_value(target, d) or _sign.sign(target, d) not in ("pos", "neg"):
                continue
            sa, sb = to_sympy(va), to_sympy(vb)
            if differ_exactly(sa, sb) is not True:
                continue
            cex = {"at": label, "left": sa, "right": sb,
                   "left_approx": float(sympy.N(sa, 17)), "right_approx": float(sympy.N(sb, 17)),
                   problem.x_name: to_list(pt["x"]), problem.w_name: to_list(pt["weight"]),
                   "eps": sympy.Rational(pt["eps"].numerator, pt["eps"].denominator)}
            if problem.b_name:
                cex[problem.b_name] = to_list(pt["bias"])
            if problem.grad_out is not None:
                cex["grad_out"] = to_list(pt["grad_out"])
            for name, arr in extra.items():
                cex[name] = to_list(arr)
            return cex
    return None
