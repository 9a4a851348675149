"""Exact SymPy numbers with TorchLean's totalized conventions: the graphs' default number system.

``sqrtClamp z = sqrt(max(z, 0))`` with declared derivative ``1/(2 sqrt z)`` -- which Lean's
``Real.sqrt z = 0`` and ``1/0 = 0`` make 0 for ``z <= 0`` -- and ``inv 0 = 0`` with derivative 0 at
0 (reference ``torchlean.md`` §3).  This is what ``Graph.evaluate``/``backprop`` use for
user-visible results and counterexamples; the prover runs the same nodes on the exact engine
(:class:`symbolic_bn.obligations.setting.EngineAlgebra`).
"""
from __future__ import annotations

from fractions import Fraction

import sympy

__all__ = ["ExactAlgebra", "EXACT"]


class ExactAlgebra:
    """SymPy expressions; numbers stay exact (Rationals, square roots of rationals)."""

    name = "sympy-exact"
    zero = sympy.Integer(0)
    one = sympy.Integer(1)

    def const(self, q) -> sympy.Expr:
        q = Fraction(q)
        return sympy.Rational(q.numerator, q.denominator)

    def __init__(self, parameters=None):
        # values substituted for symbolic parameters (e.g. {ε: 1/10}) when evaluating at a point
        self.parameters = dict(parameters or {})

    def parameter(self, value):
        return self.parameters.get(value, value)

    def sum(self, items):
        items = list(items)
        return sympy.Add(*items) if items else self.zero

    def sqrt_clamp(self, z):
        return sympy.sqrt(sympy.Max(z, 0))

    def sqrt_clamp_deriv(self, z):
        # Lean: 1 / (2 * Real.sqrt z), with Real.sqrt z = 0 and 1/0 = 0 for z <= 0.
        return sympy.Piecewise((1 / (2 * sympy.sqrt(z)), z > 0), (0, True))

    def inv(self, z):
        return sympy.Piecewise((1 / z, sympy.Ne(z, 0)), (0, True))

    def inv_deriv(self, z):
        return sympy.Piecewise((-1 / z ** 2, sympy.Ne(z, 0)), (0, True))


EXACT = ExactAlgebra()
