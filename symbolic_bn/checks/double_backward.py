r"""Exact check of a user's double backward against the derivative of the layer's backward.

    double_backward(x, weight, bias, grad_out, ggx, ggweight, ggbias, eps[, xp]) -> (gx, gweight, ggrad_out)

is PyTorch's shape of a double backward (the backward of ``backward``): the backward map
``(x, weight, grad_out) ↦ (dx, dweight, dbias) = Jᵀ·grad_out`` differentiated and contracted with a
cotangent ``(ggx, ggweight, ggbias)`` on its outputs, i.e. the gradient of

    Φ = ⟨dx, ggx⟩ + ⟨dweight, ggweight⟩ + ⟨dbias, ggbias⟩

with respect to ``(x, weight, grad_out)``.  Arrays are in the layer's layout
(:mod:`symbolic_bn.layers`); for rms_norm ``bias`` and ``ggbias`` are ``None`` (it has no bias); for
the default layer (TorchLean's ``batchnorm_channel_first``) the weight and bias are ``gamma`` and
``beta`` and the outputs are named ``gx, ggamma, ggrad_out``.  The namespace ``xp`` is passed only
to functions that declare it; others run as unmodified NumPy code on exact arrays.

``check_double_backward(fn, layer=L, eps=None, budget=..., seed=0)`` is the flow of
:func:`symbolic_bn.checks.check.check_backward` (:mod:`symbolic_bn.checks.check`) with two more
sets of symbolic inputs: the function runs once on the exact engine with x in statistics-group
coordinates, weight, bias, ``grad_out`` and ``(ggx, ggweight, ggbias)`` all independent variables,
ε symbolic or exact, and each output entry is decided equal to the reference by exact normal
forms; every side condition the function met must hold on the domain ``var + ε > 0``; the
function is also run at the degenerate points (a constant group, a zero weight, an entry at its
mean, ε = 0 where allowed), and a wrong function gets an exact rational counterexample
re-confirmed by SymPy.

The reference is the engine's own: ``Jᵀ·grad_out`` is the gradient of ``Σ grad_out·y`` of the
layer's closed-form forward by the engine's chain rule, and the double backward is the gradient
of Φ built from it -- never a closed form, never the function under test.

Certificate: obligations ``double_backward.gx``, ``double_backward.g<weight>`` and
``double_backward.ggrad_out``.
"""
from __future__ import annotations

import numpy as np

from ..xp.engine import _pairwise_sum, to_values
from .check import DEFAULT_BUDGET, _check
from .points import PointSearch, _rational
from .problem import Problem

__all__ = ["check_double_backward", "DoubleBackwardProblem"]


class DoubleBackwardProblem(Problem):
    """A check's :class:`~symbolic_bn.checks.problem.Problem` with the cotangent (ggx, ggweight,
    ggbias) of the backward's outputs as one more set of symbolic inputs, and the double backward
    as the reference."""

    def __init__(self, layer, *, with_cotangent=True, **kw):
        super().__init__(layer, with_cotangent=True, with_tangents=True, **kw)
        self.gg_variables = tuple(self.tangent_names)                   # the Space's arrays
        self.gg_names = tuple("gg" + n for n in layer.argument_names)  # how the user knows them
        gg = list(self.tangents)
        if self.b_name is None:
            gg.append(None)  # rms_norm: ggbias is None, like bias
        self.gg = gg
        self.extra_arguments = gg
        self.reference_words = (", the derivative of Jᵀg (itself by the engine's chain rule) contracted "
                                "with (ggx, ggweight, ggbias), by the engine's chain rule")
        self._double = None

    def gradient_names(self):
        return ("gx", "g" + self.w_name, "ggrad_out")

    def gradient_shapes(self):
        layer = self.layer
        return (layer.input_shape, layer.weight_shape, layer.input_shape)

    def statement_for(self, name):
        layer = self.layer
        w, b = self.w_name, self.b_name
        bias = f", gg{b}" if b else ""
        wrt = {"gx": "x", "g" + w: w, "ggrad_out": "grad_out"}[name]
        return (f"double_backward's {name} = ∂Φ/∂{wrt} with Φ = ⟨dx, ggx⟩ + ⟨d{w}, gg{w}⟩"
                f"{f' + ⟨d{b}, gg{b}⟩' if b else ''} and (dx, d{w}"
                f"{', d' + self.b_name if self.b_name else ''}) = Jᵀ·grad_out of the {layer.name} output y, "
                f"for fully symbolic grad_out and (ggx, gg{w}{bias}), for every input with "
                f"{layer.domain_text()}, at shape {layer.shape_text()}")

    def double_backward(self) -> dict:
        """``{'gx', 'g<weight>', 'ggrad_out'}``: the gradient of Φ (module docstring)."""
        if self._double is None:
            space = self.space
            bw = self.backward()
            parts = [(bw["dx"], self.gg[0]), (bw["dweight"], self.gg[1])]
            if self.b_name:
                parts.append((bw["dbias"], self.gg[2]))
            terms = [space.multiply(a, b) for d, t in parts
                     for a, b in zip(np.ravel(d.view(np.ndarray)), np.ravel(t.view(np.ndarray)))]
            phi = _pairwise_sum(space, terms)
            grads = self.inputs.gradient(phi, [self.x_name, self.w_name, self.g_name])
            names = self.gradient_names()
            self._double = {names[0]: to_values(space, grads[self.x_name]),
                            names[1]: to_values(space, grads[self.w_name]),
                            names[2]: to_values(space, grads[self.g_name])}
        return self._double

    def reference_for(self, role: str) -> dict:
        if role == "double_backward":
            return self.double_backward()
        return super().reference_for(role)

    def variable_values(self, point: dict) -> dict:
        out = super().variable_values(point)
        for var in self.gg_variables:
            if var in point:
                out.update(self.inputs.point_values(var, point[var]))
        return out


class DoubleBackwardPoints(PointSearch):
    """:class:`~symbolic_bn.checks.points.PointSearch` with (ggx, ggweight, ggbias) drawn as
    random small rationals too (never constant within a statistics group)."""

    def draw(self, kind):
        pt = super().draw(kind)
        problem, layer = self.problem, self.layer
        extra = {}
        for var, shape in zip(problem.gg_variables, (layer.input_shape, layer.weight_shape, layer.bias_shape)):
            while True:
                arr = np.empty(shape, dtype=object)
                for idx in np.ndindex(*shape):
                    arr[idx] = self._rat()
                if shape != layer.input_shape or all(len(m) == 1 or len({arr[i] for i in m}) > 1
                                                     for m in layer.members.values()):
                    break
            extra[var] = arr
        pt["extra"] = extra
        return pt

    def _arrays(self, space, pt):
        xs = super()._arrays(space, pt)
        gg = [to_values(space, pt["extra"][v]) for v in self.problem.gg_variables]
        if self.problem.b_name is None:
            gg.append(None)
        return xs + gg

    def _cex(self, pt, name, idx, us, rs, undefined=None):
        cex = super()._cex(pt, name, idx, us, rs, undefined=undefined)
        for var, shown in zip(self.problem.gg_variables, self.problem.gg_names):
            cex[shown] = np.vectorize(_rational, otypes=[object])(pt["extra"][var]).tolist()
        return cex


def check_double_backward(fn, layer=None, eps=None, budget=DEFAULT_BUDGET, seed=0, *, shape=None):
    """Prove ``fn(x, weight, bias, grad_out, ggx, ggweight, ggbias, eps[, xp]) -> (gx, gweight,
    ggrad_out)`` equal to the derivative of the layer's ``Jᵀ·grad_out`` (module docstring),
    exactly.  ``layer``: a :class:`symbolic_bn.layers.Layer` (default: ``batchnorm_channel_first``
    at ``shape`` = (C, H, W), default 2×3×4, with ``eps``: None for a symbolic ε, or a number);
    ``budget``: seconds for the whole check; ``seed``: of the counterexample search."""
    return _check("double_backward", fn, layer, shape, eps, budget, seed,
                  problem_type=DoubleBackwardProblem, points_type=DoubleBackwardPoints)
