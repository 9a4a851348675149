"""The exact setting of a check: a Space with the layer's inputs, its domain and its reference.

For a layer (:mod:`symbolic_bn.layers`) a :class:`Problem` declares, in a fresh
:class:`~symbolic_bn.exact.space.Space`:

* ``x`` in centered coordinates per statistics group (plain for rms_norm), one block per group;
* the weight and bias entries -- in the block of their group when only one group uses them
  (a channel's γ in BatchNorm), shared otherwise (LayerNorm's per-feature γ);
* the cotangent ``grad_out`` (one variable per output entry, in its group's block);
* ε: a shared variable when symbolic (positive when the SymPy symbol says so), else a constant;
* the domain, as facts: each group's variance, built as a sum of squares (so ≥ 0 by
  construction), and ``var_g + ε > 0`` (``mean(x²)_g + ε > 0`` for rms_norm) -- the hypothesis.

The reference forward is the layer's closed form on the exact namespace; ``Jᵀg`` is the
gradient of ``Σ g·y`` by the engine's chain rule (:mod:`symbolic_bn.exact.calculus`), never from
a rule under test.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import sympy

from ..exact.coordinates import Inputs, entry_name
from ..exact.errors import UndefinedValue
from ..exact.space import Space
from ..xp.engine import ExactNamespace, _pairwise_sum, to_values

__all__ = ["Problem"]


class Problem:
    """Space, inputs, domain and reference of one layer (module docstring)."""

    def __init__(self, layer, *, backend=None, with_cotangent=True, with_tangents=False,
                 positive_domain=True, eps_sign=None, directions=0):
        self.layer = layer
        space = self.space = Space(backend, name=layer.name)
        inputs = self.inputs = Inputs(space)
        names = layer.argument_names
        self.x_name, self.w_name = names[0], names[1]
        self.b_name = names[2] if len(names) > 2 else None
        group_of = layer.group_of
        if layer.centered:
            inputs.centered(self.x_name, layer.input_shape, group_of)
        else:
            inputs.plain(self.x_name, layer.input_shape, group_of)
        owners = layer.param_groups()
        block_of_param = (lambda idx: next(iter(owners[idx])) if len(owners[idx]) == 1 else None)
        inputs.plain(self.w_name, layer.weight_shape, block_of_param)
        if self.b_name is not None:
            inputs.plain(self.b_name, layer.bias_shape, block_of_param)
        self.g_name = "grad_out"
        if with_cotangent:
            inputs.plain(self.g_name, layer.input_shape, group_of)
        self.tangent_names = None
        if with_tangents:  # a tangent (dx, dweight, dbias) as variables, for JVP statements
            self.tangent_names = ("t_" + self.x_name, "t_" + self.w_name) + (("t_" + self.b_name,) if self.b_name else ())
            inputs.plain(self.tangent_names[0], layer.input_shape, group_of)
            inputs.plain(self.tangent_names[1], layer.weight_shape, block_of_param)
            if self.b_name:
                inputs.plain(self.tangent_names[2], layer.bias_shape, block_of_param)
        # directions u1, u2, ... on (x, weight, bias), for higher-order statements (check_autodiff)
        self.direction_names = [tuple(f"u{i}_{n}" for n in names) for i in range(1, directions + 1)]
        for dnames in self.direction_names:
            inputs.plain(dnames[0], layer.input_shape, group_of)
            inputs.plain(dnames[1], layer.weight_shape, block_of_param)
            if self.b_name:
                inputs.plain(dnames[2], layer.bias_shape, block_of_param)
        self.eps_symbol = layer.eps if layer.symbolic_eps else None
        if self.eps_symbol is not None:
            sign = eps_sign or ("positive" if self.eps_symbol.is_positive else "negative"
                                if self.eps_symbol.is_negative else "nonneg" if self.eps_symbol.is_nonnegative
                                else "nonpos" if self.eps_symbol.is_nonpositive else None)
            inputs.scalar("eps", None, sign=sign)
            space.display_map["eps"] = self.eps_symbol
        self.xp = ExactNamespace(space)
        self.weight = to_values(space, inputs.array(self.w_name))
        self.bias = to_values(space, inputs.array(self.b_name)) if self.b_name else None
        self.grad_out = to_values(space, inputs.array(self.g_name)) if with_cotangent else None
        self.x = to_values(space, inputs.array(self.x_name))
        self.tangents = ([to_values(space, inputs.array(n)) for n in self.tangent_names]
                         if self.tangent_names else None)
        self.directions = [[to_values(space, inputs.array(n)) for n in dnames]
                           for dnames in self.direction_names]
        self.eps = space.var("eps") if self.eps_symbol is not None else space.fraction(layer.eps)
        self._domain(positive_domain)
        self._y = None
        self._backward = None
        self._gradient_terms = None

    # -- the domain
    def _domain(self, positive=True):
        space, layer = self.space, self.layer
        self.statistics = {}
        for group, members in layer.members.items():
            xs = [self.x[idx] for idx in members]
            n = len(xs)
            if layer.centered:
                mu = _pairwise_sum(space, xs) * Fraction(1, n)
                terms = [v - mu for v in xs]
            else:
                terms = xs
            word = "var" if layer.centered else "mean(x²)"
            label = ", ".join(map(str, group)) if isinstance(group, tuple) else str(group)
            stat = space.assume_sum_of_squares(
                terms, Fraction(1, n), f"{word} of {layer.group_word} {group} is a sum of squares",
                name=f"{word}[{label}]")
            z = stat + self.eps
            if positive:
                space.assume_positive(z, f"the domain: {word} + ε > 0 for {layer.group_word} {group}",
                                      name=f"({word}[{label}] + ε)")
            self.statistics[group] = (stat, z)

    def domain_statement(self) -> str:
        return self.layer.domain_text()

    # -- the reference
    @property
    def y(self):
        if self._y is None:
            self._y = self.layer.forward(self.x, self.weight, self.bias, self.eps, self.xp)
        return self._y

    def backward(self) -> dict:
        """``{'dx': ..., 'dweight': ..., ['dbias': ...]}``: Jᵀg of the reference forward."""
        if self._backward is None:
            space = self.space
            y = self.y
            L = _pairwise_sum(space, [space.multiply(a, b) for a, b in
                                      zip(np.ravel(self.grad_out.view(np.ndarray)), np.ravel(y.view(np.ndarray)))])
            names = [self.x_name, self.w_name] + ([self.b_name] if self.b_name else [])
            self._gradient_terms = self.inputs.gradient_terms(L, names)
            grads = self._gradient_terms.sums()
            out = {"dx": to_values(space, grads[self.x_name]),
                   "dweight": to_values(space, grads[self.w_name])}
            if self.b_name:
                out["dbias"] = to_values(space, grads[self.b_name])
            self._backward = out
        return self._backward

    def reference_for(self, role: str) -> dict:
        """The reference outputs of a forward ('y') or backward check, by output name."""
        if role == "forward":
            return {"y": self.y}
        bw = self.backward()
        names = self.gradient_names()
        return dict(zip(names, [bw["dx"], bw["dweight"]] + ([bw["dbias"]] if self.b_name else [])))

    def reference_at(self, role: str, substitution):
        """The reference outputs at a point (``substitution``: a Substitution of this space), as
        ``reference_for(role)`` substituted entrywise -- for the backward through the factored
        gradient (the point put into each adjoint weight once), the same exact numbers."""
        if role == "forward" or type(self).reference_for is not Problem.reference_for \
                or type(self).backward is not Problem.backward:
            return {name: _substituted(arr, substitution) for name, arr in self.reference_for(role).items()}
        self.backward()
        try:
            grads = self._gradient_terms.at(substitution)
        except UndefinedValue:  # a weight undefined at the point: entry by entry, as it was
            return {name: _substituted(arr, substitution) for name, arr in self.reference_for(role).items()}
        names = [self.x_name, self.w_name] + ([self.b_name] if self.b_name else [])
        return dict(zip(self.gradient_names(), [grads[n] for n in names]))

    def gradient_names(self):
        return tuple("d" + n for n in self.layer.argument_names)

    def gradient_shapes(self):
        layer = self.layer
        return (layer.input_shape, layer.weight_shape) + ((layer.bias_shape,) if self.b_name else ())

    # -- exact points
    def variable_values(self, point: dict) -> dict:
        """``{variable name: Fraction}`` for an exact point ``{'x': array, 'weight': ..., ...,
        'eps': number}`` (keys are the layer's argument names and 'grad_out', 'eps')."""
        out = {}
        out.update(self.inputs.point_values(self.x_name, point[self.x_name]))
        out.update(self.inputs.point_values(self.w_name, point[self.w_name]))
        if self.b_name:
            out.update(self.inputs.point_values(self.b_name, point[self.b_name]))
        if self.grad_out is not None and self.g_name in point:
            out.update(self.inputs.point_values(self.g_name, point[self.g_name]))
        if self.eps_symbol is not None:
            out["eps"] = Fraction(point["eps"])
        return out

    def entry_label(self, name, idx) -> str:
        return entry_name(name, idx)

    @property
    def eps_display(self):
        return self.eps_symbol if self.eps_symbol is not None else sympy.Rational(
            self.layer.eps.numerator, self.layer.eps.denominator)


def _substituted(arr, substitution):
    out = np.empty(arr.shape, dtype=object)
    for idx in np.ndindex(*arr.shape):
        out[idx] = substitution(arr.view(np.ndarray)[idx])
    return out
