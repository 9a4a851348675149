"""SSA graphs of nodes: evaluate, JVP and TorchLean's ``Graph.backpropVec``.

A graph has named input slots and a snoc chain of nodes; each node may read any earlier slot.

* ``evaluate`` returns **every** slot: the inputs followed by each intermediate
  (``Graph.evalVec``, reference §1.3).
* ``jvp`` pushes an input tangent through all slots (``Graph.jvpVec``).
* ``backprop`` takes a seed for every slot (missing slots are zero), visits the nodes last to
  first, adds each node's VJP of the *current* cotangent of its slot into the earlier slots, and
  returns the input cotangents.  Input seeds are included (the identity part of
  ``x ↦ (x, intermediates)``), and a fan-out slot receives the sum of all downstream contributions.

All of it runs on any scalar algebra (the engine's :class:`~symbolic_bn.obligations.setting.EngineAlgebra`,
:mod:`symbolic_bn.graphs.algebra`); by default on exact SymPy
numbers and expressions, converted from user arrays without ``eval``/``sympify``.
"""
from __future__ import annotations

import copy
from typing import Iterable

import numpy as np
import sympy

from .algebra import EXACT, ExactAlgebra
from ..exact.floats import location_override
from ..exact.numbers import to_exact
from . import nodes as N
from .nodes import Node


def _object_array(value, shape, *, what: str):
    """Convert nested lists / arrays of numbers or SymPy expressions to an exact object array."""
    if isinstance(value, np.ndarray) and value.dtype != object:
        if not np.issubdtype(value.dtype, np.number):
            raise TypeError(f"{what}: expected numbers, got an array of dtype {value.dtype}")
        arr = value
    else:
        try:
            arr = np.array(value, dtype=object)
        except ValueError as exc:  # ragged nested lists
            raise ValueError(f"{what}: not a rectangular array ({exc})") from None
    if any(isinstance(v, (list, tuple, np.ndarray)) for v in arr.flat):
        raise ValueError(f"{what}: not a rectangular array of numbers (ragged nesting)")
    if arr.shape != tuple(shape):
        raise ValueError(f"{what}: expected shape {tuple(shape)}, got {arr.shape}")
    out = np.empty(arr.shape, dtype=object)
    for idx in np.ndindex(arr.shape):
        v = arr[idx]
        if isinstance(v, sympy.Basic):
            if v.has(sympy.nan, sympy.oo, -sympy.oo, sympy.zoo):
                raise ValueError(f"{what}: entry {idx} is not finite ({v})")
            if v.atoms(sympy.Float):
                raise ValueError(f"{what}: entry {idx} contains an inexact Float ({v}); "
                                 f"use Rational or a Python float")
            if v.is_number and v.is_real is False:
                raise ValueError(f"{what}: entry {idx} is not a real number ({v})")
            out[idx] = v
        else:
            try:
                out[idx] = to_exact(v, name=f"{what}{list(idx)}")
            except TypeError as exc:
                raise TypeError(f"{what}: entry {idx}: {exc}") from None
    return out


def _shape_problem(node: Node, in_shapes: list) -> str | None:
    """Why the declared output shape of a built-in node kind cannot be what it computes from
    inputs of ``in_shapes`` (None when consistent, or for node classes it does not know)."""
    out = tuple(node.shape)
    arity = {N.Reshape: 1, N.RowMean: 1, N.BroadcastRow: 1, N.BroadcastCol: 1, N.Elemwise: 1,
             N.Add: 2, N.Sub: 2, N.Mul: 2}
    for cls, k in arity.items():
        if isinstance(node, cls) and len(in_shapes) != k:
            return f"reads {len(in_shapes)} slot(s), a {node.kind} node reads {k}"
    if isinstance(node, N.Reshape):
        if int(np.prod(in_shapes[0], dtype=int)) != int(np.prod(out, dtype=int)):
            return f"cannot reshape {in_shapes[0]} to {out} (different sizes)"
        if node.in_shape and tuple(node.in_shape) != in_shapes[0]:
            return f"declares in_shape {tuple(node.in_shape)}, but its input has shape {in_shapes[0]}"
    elif isinstance(node, N.RowMean):
        if len(in_shapes[0]) != 2 or out != in_shapes[0][:1]:
            return f"a row mean of shape {in_shapes[0]} has shape {in_shapes[0][:1]}"
    elif isinstance(node, N.BroadcastRow):
        if len(in_shapes[0]) != 1 or len(out) != 2 or out[0] != in_shapes[0][0]:
            return f"broadcasting rows of {in_shapes[0]} gives (m, n) with m = {in_shapes[0][:1]}"
    elif isinstance(node, N.BroadcastCol):
        if len(in_shapes[0]) != 1 or len(out) != 2 or out[1] != in_shapes[0][0]:
            return f"broadcasting columns of {in_shapes[0]} gives (m, n) with n = {in_shapes[0][:1]}"
    elif isinstance(node, (N.Elemwise, N.Add, N.Sub, N.Mul)):
        if any(sh != out for sh in in_shapes):
            return "an elementwise node needs inputs of its own shape"
    return None


def zeros(shape, zero):
    out = np.empty(shape, dtype=object)
    out.fill(zero)
    return out


class Graph:
    """Inputs plus a snoc chain of nodes."""

    def __init__(self, inputs: dict, nodes: Iterable[Node], name: str = "graph"):
        self.name = name
        self.input_shapes = {k: tuple(v) for k, v in inputs.items()}
        self.nodes: list[Node] = list(nodes)
        seen = dict(self.input_shapes)
        for node in self.nodes:
            if not isinstance(node, Node):
                raise TypeError(f"graph nodes must be Node objects, got {type(node).__name__}")
            for i in node.inputs:
                if i not in seen:
                    raise ValueError(f"node {node.name!r} reads {i!r}, which is not an earlier slot")
            if node.name in seen:
                raise ValueError(f"slot {node.name!r} is written twice")
            problem = _shape_problem(node, [seen[i] for i in node.inputs])
            if problem:
                ins = ", ".join(f"{i!r} {seen[i]}" for i in node.inputs)
                raise ValueError(f"node {node.name!r} ({node.kind}) declares shape {tuple(node.shape)} "
                                 f"from inputs {ins}: {problem}")
            seen[node.name] = tuple(node.shape)
        self.shapes = seen

    # -- structure
    @property
    def stages(self) -> list[Node]:
        return self.nodes

    @property
    def slots(self) -> list[str]:
        return list(self.shapes)

    @property
    def input_names(self) -> list[str]:
        return list(self.input_shapes)

    def context_size(self, upto: int | None = None) -> int:
        """ctxSize of the inputs plus the first ``upto`` intermediates (all when None)."""
        names = self.input_names + [n.name for n in self.nodes[:upto]]
        return sum(int(np.prod(self.shapes[s], dtype=int)) for s in names)

    def replace(self, name: str, node: Node) -> "Graph":
        """A copy with the node writing ``name`` replaced (e.g. by a deliberately wrong one)."""
        if name not in [n.name for n in self.nodes]:
            raise KeyError(f"no node writes slot {name!r}")
        new = copy.copy(self)
        Graph.__init__(new, self.input_shapes,
                       [node if n.name == name else n for n in self.nodes], self.name)
        return new

    # -- conversions
    def _inputs(self, inputs, algebra):
        if not isinstance(inputs, dict):
            raise TypeError(f"inputs must be a dict with keys {self.input_names}")
        missing = [k for k in self.input_names if k not in inputs]
        extra = [k for k in inputs if k not in self.input_shapes]
        if missing or extra:
            raise ValueError(f"inputs: expected keys {self.input_names}; "
                             f"missing {missing}, unexpected {extra}")
        if isinstance(algebra, ExactAlgebra):
            return {k: _object_array(inputs[k], self.input_shapes[k], what=f"inputs[{k!r}]")
                    for k in self.input_names}
        out = {}
        for k in self.input_names:
            arr = inputs[k]
            if not isinstance(arr, np.ndarray) or arr.shape != self.input_shapes[k]:
                raise ValueError(f"inputs[{k!r}]: expected an array of shape {self.input_shapes[k]}")
            out[k] = arr
        return out

    def _check(self, node, value):
        if not isinstance(value, np.ndarray) or value.shape != tuple(node.shape):
            got = getattr(value, "shape", type(value).__name__)
            raise ValueError(f"node {node.name!r} ({node.kind}) produced shape {got}, "
                             f"expected {tuple(node.shape)}")
        return value

    # -- semantics
    def evaluate(self, inputs, algebra=EXACT) -> dict:
        """Every slot's value: inputs, then each intermediate in order."""
        values = dict(self._inputs(inputs, algebra))
        for node in self.nodes:
            with location_override(f"graph node {node.name} ({node.kind})"):
                values[node.name] = self._check(node, node.forward(algebra, *[values[i] for i in node.inputs]))
        return values

    def jvp(self, inputs, tangents, algebra=EXACT, values=None) -> dict:
        """Tangents of every slot for an input tangent (missing input tangents are zero)."""
        values = values if values is not None else self.evaluate(inputs, algebra)
        tan = {}
        for k in self.input_names:
            if k in tangents:
                tan[k] = (_object_array(tangents[k], self.input_shapes[k], what=f"tangents[{k!r}]")
                          if isinstance(algebra, ExactAlgebra) else tangents[k])
            else:
                tan[k] = zeros(self.input_shapes[k], algebra.zero)
        unknown = [k for k in tangents if k not in self.input_shapes]
        if unknown:
            raise ValueError(f"tangents: unknown input slots {unknown}; inputs are {self.input_names}")
        for node in self.nodes:
            tan[node.name] = self._check(node, node.jvp(algebra, [values[i] for i in node.inputs],
                                                        [tan[i] for i in node.inputs]))
        return tan

    def backprop(self, inputs, seed, algebra=EXACT, values=None) -> dict:
        """TorchLean's ``Graph.backpropVec``: input cotangents for a seed on any slots."""
        values = values if values is not None else self.evaluate(inputs, algebra)
        if not isinstance(seed, dict):
            raise TypeError("seed must be a dict from slot names to arrays")
        unknown = [k for k in seed if k not in self.shapes]
        if unknown:
            raise ValueError(f"seed: unknown slots {unknown}; slots are {self.slots}")
        cot = {}
        for k, shape in self.shapes.items():
            if k in seed:
                cot[k] = (_object_array(seed[k], shape, what=f"seed[{k!r}]")
                          if isinstance(algebra, ExactAlgebra) else seed[k])
            else:
                cot[k] = zeros(shape, algebra.zero)
        for node in reversed(self.nodes):
            args = [values[i] for i in node.inputs]
            delta = cot[node.name]
            cot[node.name] = None  # no later (earlier-in-the-graph) node reads it: free it
            for slot, contribution in self.node_vjp(node, algebra, args, delta):
                if type(contribution) is not np.ndarray:  # keep NumPy's own object arithmetic
                    contribution = contribution.view(np.ndarray)
                total = cot[slot] + contribution
                cot[slot] = total.view(np.ndarray) if type(total) is not np.ndarray else total
        return {k: cot[k] for k in self.input_names}

    def node_vjp(self, node: Node, algebra, args, delta) -> list:
        """``node.vjp(algebra, args, delta)`` as a list of (slot, contribution), validated: every
        slot must be one the node can reach -- an input or an intermediate written *before* it
        -- and every contribution an array of that slot's shape.  Otherwise a one-line
        ``ValueError`` names the node, the slot and the shapes (callers that compute VJPs
        themselves, like the prover, should go through this)."""
        out = node.vjp(algebra, args, delta)
        try:
            pairs = list(out)
        except TypeError:
            raise ValueError(f"node {node.name!r} ({node.kind}): its VJP must return a list of "
                             f"(slot, contribution) pairs, got {type(out).__name__}") from None
        order = {k: i for i, k in enumerate(self.shapes)}
        checked = []
        for item in pairs:
            if not (isinstance(item, tuple) and len(item) == 2):
                raise ValueError(f"node {node.name!r} ({node.kind}): its VJP must return "
                                 f"(slot, contribution) pairs, got {item!r:.80}")
            slot, contribution = item
            if slot not in order:
                raise ValueError(f"node {node.name!r} ({node.kind}) sends a cotangent to {slot!r}, "
                                 f"which is not a slot of the graph (its inputs are "
                                 f"{list(node.inputs)})")
            if order[slot] >= order[node.name]:
                where = "itself" if slot == node.name else "a later slot"
                raise ValueError(f"node {node.name!r} ({node.kind}) sends a cotangent to {slot!r} "
                                 f"{self.shapes[slot]}, which is {where}: a VJP may only reach the "
                                 f"slots written before the node (its inputs are {list(node.inputs)})")
            got = getattr(contribution, "shape", None)
            if not isinstance(contribution, np.ndarray) or got != self.shapes[slot]:
                raise ValueError(f"node {node.name!r} ({node.kind}): VJP contribution to {slot!r} "
                                 f"has shape {got}, expected {self.shapes[slot]}")
            checked.append((slot, contribution))
        return checked
