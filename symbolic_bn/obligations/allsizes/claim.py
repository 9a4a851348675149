"""A parametric claim of the all-sizes certificate: a statement ``lhs == rhs`` over free indices.

A :class:`Claim` is decided by :func:`~.verdict.run_claim`.  Inexact numbers are refused, never
decided: a closed form or rule whose sides contain a SymPy ``Float`` (a Python float multiplied
in becomes one) raises ``ValueError`` naming the claim, even when the statement would hold for the
Float read as an exact binary number (``1.0 * x = x``); a side that is not a number or SymPy
expression (a string) raises ``ValueError`` too (it is never parsed).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import sympy

from .size_models import SizeModel


@dataclass
class Claim:
    """A parametric statement ``lhs == rhs`` (componentwise when they return tuples).

    ``lhs``/``rhs`` are functions ``(be, idx) -> value | tuple`` where ``idx`` maps the free index
    names to indices of the backend (``Ix`` -- or tuples of them -- symbolically, ints or tuples
    concretely).  ``free`` lists ``(name, kind)``: kinds 'C' (a group index), 'N' (a position),
    'J' (a weight index) are the layer's (``spec``; default batchnorm_channel_first), any other
    kind is a range of :data:`RANGES`.  ``be`` is a :class:`LayerBackend` of ``spec``.
    """

    name: str
    group: str
    statement: str
    free: tuple
    lhs: Callable
    rhs: Callable
    lean_name: str | None = None
    stage: str | None = None
    channel_level: bool = False       # involves several groups: confirm also with 2 groups
    assumptions: tuple = ()
    cover: Callable | None = None     # (kind, expr) -> assumption text or None
    spec: SizeModel | None = None


def _as_tuple(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,)


def _refuse_inexact(claim: Claim, values):
    """A Float (a SymPy Float, or a Python float a closed form or rule multiplied in) has no
    exact meaning we may assume: the claim is refused, never decided (not even '1.0 * x = x')."""
    floats = sorted({str(f) for v in values for f in sympy.sympify(v).atoms(sympy.Float)})
    if floats:
        raise ValueError(f"claim {claim.name}: the closed form or rule it uses contains the inexact "
                         f"number(s) {', '.join(floats[:3])} (a SymPy Float or a Python float); "
                         f"exact decisions need exact numbers: use ints or sympy.Rational")
