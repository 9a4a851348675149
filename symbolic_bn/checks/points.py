"""Exact points of the domain: counterexamples, and the degenerate points every check visits.

A point is a rational input (x, weight, bias, grad_out, ε) with ``var_g + ε > 0`` in every
statistics group.  :class:`PointSearch` runs the user's function there on the engine (a Space
without variables: square roots of rationals are atoms, comparisons are decided by interval
arithmetic), evaluates the symbolic reference at the same point (:func:`~symbolic_bn.exact.convert.
substitute`), compares exactly, and re-confirms a difference independently with SymPy numbers
and outward-rounded intervals (:func:`symbolic_bn.exact.decide.differ_exactly`).

Kinds of points, in the order they are tried (``KINDS``):

* ``generic`` -- random small rationals; grad_out never constant within a group (an all-ones
  cotangent hides wrong rules: Σ BN(x) has a zero input gradient);
* ``constant group`` -- the first statistics group constant (var = 0; for rms_norm: all zero),
  only where ε > 0 is allowed;
* ``weight zero`` -- the weight entry of the first group's first position is 0;
* ``entry at mean`` -- each group's first entry equals its group's mean (0 for rms_norm);
* ``eps zero`` -- for a symbolic ε whose stated range contains 0: ε = 0 with generic x.

Functions undefined at a point inside the domain (a division by an exact 0, the square root of a
negative number) are wrong there: the counterexample says so (``cex['undefined']``).
"""
from __future__ import annotations

import random
from fractions import Fraction

import numpy as np
import sympy

from ..exact import normal, sign
from ..exact.convert import Substitution, to_sympy
from ..exact.decide import differ_exactly
from ..exact.space import Space
from ..xp.engine import ExactNamespace, to_values
from .calling import call, read_outputs
from .crosscheck import ImplementationError

__all__ = ["PointSearch", "KINDS"]

KINDS = ("generic", "constant group", "weight zero", "entry at mean", "eps zero")


def _rational(f: Fraction):
    return sympy.Rational(f.numerator, f.denominator)


class PointSearch:
    """Points, the user's outputs there and the reference there (module docstring)."""

    def __init__(self, problem, fn, role, out_names, out_shapes, eps_argument, seed=0):
        self.problem = problem
        self.layer = problem.layer
        self.fn, self.role = fn, role
        self.out_names, self.out_shapes = out_names, out_shapes
        self.eps_argument = eps_argument
        self.rng = random.Random(seed)
        self.cache: dict = {}
        self.notes: list[str] = []

    # -- drawing points
    def _rat(self, nonzero=False):
        while True:
            v = Fraction(self.rng.randint(-9, 9), self.rng.randint(1, 4))
            if v or not nonzero:
                return v

    def kinds(self):
        layer = self.layer
        out = ["generic"]
        if not layer.symbolic_eps and layer.eps > 0 or (layer.symbolic_eps and not _eps_negative(layer)):
            out.append("constant group")
        out.append("weight zero")
        out.append("entry at mean")
        if layer.symbolic_eps and _eps_allows_zero(layer) and (not layer.centered or layer.group_size > 1):
            out.append("eps zero")  # (with one-element groups var = 0, so ε = 0 is outside the domain)
        return out

    def _eps_value(self, kind):
        layer = self.layer
        if not layer.symbolic_eps:
            return layer.eps
        if kind == "eps zero":
            return Fraction(0)
        return Fraction(-1, 10) if _eps_negative(layer) else Fraction(1, 10)

    def draw(self, kind):
        layer = self.layer
        shape = layer.input_shape
        eps = self._eps_value(kind)
        for _ in range(200):
            x = np.empty(shape, dtype=object)
            for idx in np.ndindex(*shape):
                x[idx] = self._rat()
            ok = True
            for gi, (group, members) in enumerate(layer.members.items()):
                if kind == "constant group" and gi == 0:
                    c = Fraction(0) if not layer.centered else self._rat()
                    for idx in members:
                        x[idx] = c
                    continue
                if kind == "entry at mean" and len(members) > 1:
                    rest = [x[idx] for idx in members[1:]]
                    at_mean = sum(rest, Fraction(0)) / len(rest) if layer.centered else Fraction(0)
                    # in a two-element group the entry at the mean makes the group constant (var = 0):
                    # outside the domain when ε ≤ 0, so that group keeps its generic entries there
                    if not (layer.centered and len(members) == 2 and eps <= 0):
                        x[members[0]] = at_mean
                stat = _statistic(layer, [x[idx] for idx in members])
                if stat + eps <= 0:
                    if stat == 0:
                        ok = False
                        break
                    # spread the group about its centre until the statistic exceeds −ε
                    k = 2
                    while stat * k * k + eps <= 0:
                        k *= 2
                    vals = [x[idx] for idx in members]
                    mu = sum(vals, Fraction(0)) / len(vals) if layer.centered else Fraction(0)
                    for idx in members:
                        x[idx] = mu + k * (x[idx] - mu)
                elif kind == "eps zero" and stat == 0:
                    ok = False
                    break
            if ok:
                break
        else:  # pragma: no cover - the domain is not empty (checked by the Layer)
            raise ValueError(f"no rational point with {layer.domain_text()} found (eps = {eps})")
        w = np.empty(layer.weight_shape, dtype=object)
        for idx in np.ndindex(*layer.weight_shape):
            w[idx] = self._rat(nonzero=True)
        if kind == "weight zero":
            first = next(iter(layer.members.values()))[0]
            w[layer.param_of(first)] = Fraction(0)
        b = None
        if layer.bias_shape is not None:
            b = np.empty(layer.bias_shape, dtype=object)
            for idx in np.ndindex(*layer.bias_shape):
                b[idx] = self._rat()
        g = None
        if self.role != "forward":
            while True:  # generic: never constant within a group
                g = np.empty(shape, dtype=object)
                for idx in np.ndindex(*shape):
                    g[idx] = self._rat()
                if all(len(m) == 1 or len({g[i] for i in m}) > 1 for m in layer.members.values()):
                    break
        return {"x": x, "weight": w, "bias": b, "grad_out": g, "eps": eps, "kind": kind}

    # -- evaluating
    def point(self, key):
        """The point ``key`` = (kind, number) with the user's outputs and the reference there."""
        if key in self.cache:
            return self.cache[key]
        pt = self.draw(key[0])
        pt["got"], pt["want"] = self._evaluate(pt)
        self.cache[key] = pt
        return pt

    def _arrays(self, space, pt):
        xs = [to_values(space, pt["x"]), to_values(space, pt["weight"])]
        if self.layer.bias_shape is not None:
            xs.append(to_values(space, pt["bias"]))
        elif self.layer.name == "rms_norm":
            xs.append(None)
        if self.role != "forward":
            xs.append(to_values(space, pt["grad_out"]))
        return xs

    def _evaluate(self, pt):
        space = Space(self.problem.space.backend.name, name="point")
        args = self._arrays(space, pt)
        eps_arg = space.fraction(pt["eps"])
        try:
            out = call(self.fn, self.role, args + [eps_arg], ExactNamespace(space))
            got = read_outputs(space, self.fn, self.role, out, self.out_names, self.out_shapes)
        except ImplementationError as exc:
            if getattr(exc, "undefined", False):
                got = str(exc)
            else:
                raise
        values = self.problem.variable_values({
            self.problem.x_name: pt["x"], self.problem.w_name: pt["weight"],
            **({self.problem.b_name: pt["bias"]} if self.problem.b_name else {}),
            **({"grad_out": pt["grad_out"]} if pt["grad_out"] is not None else {}), "eps": pt["eps"],
            **pt.get("extra", {})})
        at_point = Substitution(self.problem.space, values, space)
        reference_at = getattr(self.problem, "reference_at", None)
        if reference_at is not None:  # e.g. through the factored gradient (Problem.reference_at)
            want = {name: np.asarray(arr, dtype=object) for name, arr in reference_at(self.role, at_point).items()}
        else:
            want = {}
            for name, arr in self.problem.reference_for(self.role).items():
                w = np.empty(arr.shape, dtype=object)
                for idx in np.ndindex(*arr.shape):
                    w[idx] = at_point(arr.view(np.ndarray)[idx])
                want[name] = w
        return got, want

    def counterexample(self, name, keys):
        """The first point among ``keys`` where output ``name`` differs from the reference (or the
        function is undefined), as a counterexample dict; None if there is none."""
        for key in keys:
            pt = self.point(key)
            got = pt["got"]
            if isinstance(got, str):
                return self._cex(pt, name, None, None, None, undefined=got)
            g_arr, w_arr = got[name], pt["want"][name]
            for idx in np.ndindex(*g_arr.shape):
                u, r = g_arr[idx], w_arr[idx]
                d = u - r
                if normal.is_zero_value(d.space, d):
                    continue
                s = sign.sign(d.space, d)
                if s not in ("pos", "neg"):
                    self.notes.append(f"{name}[{', '.join(map(str, idx))}] at a {pt['kind']} point could not "
                                      "be compared exactly")
                    continue
                us, rs = to_sympy(u), to_sympy(r)
                confirmed = differ_exactly(us, rs)
                if confirmed is not True:
                    self.notes.append(f"{name}[{', '.join(map(str, idx))}]: the engine found a difference "
                                      f"that SymPy's re-evaluation did not confirm ({confirmed})")
                    continue
                return self._cex(pt, name, idx, us, rs)
        return None

    def _cex(self, pt, name, idx, us, rs, undefined=None):
        layer, prob = self.layer, self.problem
        if idx is None:
            idx = (0,) * len(self.out_shapes[self.out_names.index(name)])
        cex = {"location": f"{name}[{', '.join(map(str, idx))}]" if idx else name,
               "point": pt["kind"]}
        if undefined is not None:
            cex["implementation"] = f"undefined: {undefined}"
            cex["reference"] = to_sympy(pt["want"][name][idx])
            cex["implementation_approx"] = float("nan")
            cex["reference_approx"] = float(sympy.N(cex["reference"], 17))
            cex["undefined"] = (f"the {self.role} is undefined at an input inside the domain "
                                f"({layer.domain_text()}): {undefined}")
        else:
            cex["implementation"], cex["reference"] = us, rs
            cex["implementation_approx"] = float(sympy.N(us, 17))
            cex["reference_approx"] = float(sympy.N(rs, 17))
        to_list = (lambda a: np.vectorize(_rational, otypes=[object])(a).tolist())
        cex[prob.x_name] = to_list(pt["x"])
        cex[prob.w_name] = to_list(pt["weight"])
        if prob.b_name:
            cex[prob.b_name] = to_list(pt["bias"])
        cex["eps"] = _rational(Fraction(pt["eps"]))
        if self.role != "forward":
            cex["grad_out"] = to_list(pt["grad_out"])
        return cex


def _statistic(layer, vals):
    n = len(vals)
    if layer.centered:
        mu = sum(vals, Fraction(0)) / n
        return sum(((v - mu) ** 2 for v in vals), Fraction(0)) / n
    return sum((v * v for v in vals), Fraction(0)) / n


def _eps_negative(layer) -> bool:
    s = layer.eps
    return bool(s.is_negative) or bool(s.is_nonpositive and not s.is_zero)


def _eps_allows_zero(layer) -> bool:
    s = layer.eps
    return not (s.is_positive or s.is_negative or s.is_nonzero)
