"""The backward and the JVP of a tape graph, as tape graphs of node kinds: the tape is closed
under differentiation.

A :class:`Tape` is a :class:`~symbolic_bn.graphs.graph.Graph` with a list of *output* slots and the
input slots it is differentiated with respect to (``wrt``: the layer's x, weight, bias; the other
inputs are fixed vectors: a cotangent, tangents).  Two transformations build new tapes whose every
node is again a node kind, so they can be applied again (second, third order):

* :func:`jvp_tape` -- inputs ``(inputs, t)``, with a tangent input per ``wrt`` slot; outputs: the
  tangents of the outputs.  Each node's tangent is its JVP written with node kinds;
* :func:`backward_tape` -- inputs ``(inputs, δ)``, with a seed input per output; outputs: the
  cotangents of the ``wrt`` inputs.  The nodes are visited last to first, as
  :meth:`~symbolic_bn.graphs.graph.Graph.backprop` does; each node's VJP is written with node
  kinds, and a slot read by several nodes gets the :class:`~symbolic_bn.graphs.nodes.Add` of their
  contributions.

Each node kind's JVP and VJP as node kinds (``t`` a tangent slot, ``δ`` a cotangent slot):

================  ==================================  ==========================================
kind              JVP                                 VJP
================  ==================================  ==========================================
reshape           reshape t                           reshape δ back
permute           permute t                           permute δ by the inverse axes
gather            gather t                            scatterAdd δ (same index)
scatterAdd        scatterAdd t                        gather δ (same index)
rowMean (m×n→m)   rowMean t                           scale 1/n (broadcastRow δ)
broadcastRow      broadcastRow t                      scatterAdd δ (index[i, j] = i: row sums)
broadcastCol      broadcastCol t                      scatterAdd δ (index[i, j] = j: column sums)
add / sub         t_a ± t_b                           δ, ±δ
mul a ⊙ b         t_a ⊙ b + a ⊙ t_b                   δ ⊙ b, δ ⊙ a
scale c           scale c t                           scale c δ
z ↦ z + ε         t                                   δ
sqrtClamp         t ⊙ D, D = scale ½ (inv out)        δ ⊙ D
inv               t ⊙ D, D = scale −1 (out ⊙ out)     δ ⊙ D
zeros             0                                   nothing
================  ==================================  ==========================================

(``out`` is the node's own output slot: D is 1/(2·sqrt z) and −1/z², the declared derivatives.)
Three kinds are added here, all linear with no side condition: :class:`Scale` (a rational
multiple), :class:`ScatterAdd` (the transpose of :class:`~symbolic_bn.graphs.nodes.Gather`) and
:class:`Zeros` (a structurally zero output).  Slots whose value does not depend on ``wrt`` get no
tangent or cotangent (structural zeros), and nodes no output needs are removed.

A node kind not in the table -- in particular a node of a subclass, or an elementwise node whose
function is not one of ``add_const``, ``sqrt_clamp``, ``inv`` -- raises :class:`UnsupportedNode`:
its derivative cannot be written with node kinds from what it declares.

The transformations are proved right by :mod:`symbolic_bn.obligations.higher`, not assumed:
each fragment against the node's own ``jvp``/``vjp``, and every transformed tape against the
derivative of its own evaluation.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from . import nodes as N
from .graph import Graph
from .nodes import Node, _map, _obj, _vec

__all__ = ["Scale", "ScatterAdd", "Zeros", "Tape", "UnsupportedNode", "base_tape", "jvp_tape",
           "backward_tape", "tape_for_steps", "node_signature", "jvp_fragment", "vjp_fragment",
           "elemwise_variant", "NEW_KINDS"]


class UnsupportedNode(ValueError):
    """A node whose JVP or VJP cannot be written with node kinds (module docstring)."""


# ------------------------------------------------------------------------------ new node kinds

@dataclass(eq=False)
class Scale(Node):
    """``c·a`` for a rational c: JVP ``c·t``, VJP ``c·δ``; linear, no side condition."""

    kind: str = "scale"
    factor: Fraction = Fraction(1)

    def __post_init__(self):
        self.factor = Fraction(self.factor)

    def forward(self, alg, a):
        c = alg.const(self.factor)
        return _map(lambda v: v * c, a)

    def jvp(self, alg, args, tangents):
        c = alg.const(self.factor)
        return _map(lambda v: v * c, tangents[0])

    def vjp(self, alg, args, delta):
        c = alg.const(self.factor)
        return [(self.inputs[0], _map(lambda v: v * c, delta))]


@dataclass(eq=False)
class ScatterAdd(Node):
    """``out.flat[k] = Σ_{p : index[p] = k} a.flat[p]`` (0 for a k no entry maps to): the
    transpose of :class:`~symbolic_bn.graphs.nodes.Gather` with the same ``index``, which has the
    *input's* shape.  JVP: the same scatter of the tangent; VJP: the gather ``δ.flat[index]``."""

    kind: str = "scatterAdd"
    index: object = None
    in_shape: tuple = ()

    def __post_init__(self):
        shape = tuple(self.shape)
        index = np.asarray(self.index)
        if index.dtype.kind not in "iu":
            raise ValueError(f"node {self.name!r} (scatterAdd): index must be an integer array")
        size = int(np.prod(shape, dtype=int)) if shape else 1
        if index.size and (index.min() < 0 or index.max() >= size):
            raise ValueError(f"node {self.name!r} (scatterAdd): index entries must be flat positions "
                             f"0 … {size - 1} of the output shape {shape}")
        self.shape, self.index = shape, index.astype(np.int64)
        self.in_shape = tuple(index.shape)
        readers = [[] for _ in range(size)]
        for p, k in enumerate(self.index.reshape(-1).tolist()):
            readers[k].append(p)
        self.readers = tuple(tuple(r) for r in readers)

    def _scatter(self, alg, a):
        if getattr(a, "shape", None) != self.in_shape:
            raise ValueError(f"node {self.name!r} (scatterAdd): input has shape "
                             f"{getattr(a, 'shape', None)}, expected {self.in_shape}")
        flat = a.reshape(-1)
        return _vec(alg.sum(flat[p] for p in ps) for ps in self.readers).reshape(self.shape)

    def forward(self, alg, a):
        return self._scatter(alg, a)

    def jvp(self, alg, args, tangents):
        return self._scatter(alg, tangents[0])

    def vjp(self, alg, args, delta):
        return [(self.inputs[0], delta.reshape(-1)[self.index])]


@dataclass(eq=False)
class Zeros(Node):
    """A structurally zero array of ``shape`` (reads nothing): the cotangent of an input that no
    output depends on."""

    kind: str = "zeros"

    def forward(self, alg):
        return _obj(self.shape, alg.zero)

    def jvp(self, alg, args, tangents):
        return _obj(self.shape, alg.zero)

    def vjp(self, alg, args, delta):
        return []


NEW_KINDS = ("scale", "scatterAdd", "zeros")

# The elementwise kinds this module knows, recognized by the code of their functions (a node
# built by another function -- whatever it is called -- is not one of them).
_REFERENCE_ELEMWISE = {
    "add_const": N.add_const("_", "_z", (1,), 0),
    "sqrt_clamp": N.sqrt_clamp("_", "_z", (1,)),
    "inv": N.inv("_", "_z", (1,)),
}


def elemwise_variant(node) -> str | None:
    """'add_const', 'sqrt_clamp' or 'inv' for an Elemwise node built by that constructor of
    :mod:`~symbolic_bn.graphs.nodes`; None otherwise."""
    if type(node) is not N.Elemwise:
        return None
    for name, ref in _REFERENCE_ELEMWISE.items():
        if (getattr(node.f, "__code__", None) is ref.f.__code__
                and getattr(node.fprime, "__code__", None) is ref.fprime.__code__
                and node.kind == ref.kind and node.condition_input == ref.condition_input
                and node.side_condition == ref.side_condition):
            return name
    return None


_LINEAR_SAME = (N.Reshape, N.Permute, N.Gather, ScatterAdd, N.RowMean, N.BroadcastRow,
                N.BroadcastCol, Scale)


def _kind_of(node) -> str:
    t = type(node)
    if t in _LINEAR_SAME or t in (N.Add, N.Sub, N.Mul, Zeros):
        return t.__name__
    variant = elemwise_variant(node)
    if variant is not None:
        return variant
    raise UnsupportedNode(f"node {node.name!r} ({node.kind}, {type(node).__name__}): its derivative "
                          "cannot be written with node kinds (not a built-in node kind, or an "
                          "elementwise function other than z + ε, sqrtClamp, inv)")


def node_signature(node, shapes) -> tuple:
    """What a node's local laws depend on: its kind, parameters, the shapes it reads and writes,
    and which of its inputs are the same slot (``centered ⊙ centered``)."""
    kind = _kind_of(node)
    first = {}
    alias = tuple(first.setdefault(s, k) for k, s in enumerate(node.inputs))
    extra = ()
    if isinstance(node, (N.Gather, ScatterAdd)):
        extra = (node.index.tobytes(), node.index.shape)
    elif isinstance(node, N.Permute):
        extra = (node.axes,)
    elif isinstance(node, Scale):
        extra = (node.factor,)
    elif kind == "add_const":
        extra = (str(node.f.__closure__[0].cell_contents) if node.f.__closure__ else "",)
    return (kind, tuple(shapes[s] for s in node.inputs), tuple(node.shape), alias, extra)


# ------------------------------------------------------------------------------ tapes

@dataclass
class Tape:
    """A graph with its outputs, the inputs it is differentiated with respect to, and how it was
    built (``steps`` innermost first, each with the vector input names it consumed)."""

    graph: Graph
    outputs: tuple
    wrt: tuple
    steps: tuple = ()
    vectors: tuple = ()

    @property
    def mode(self) -> str:
        """The nesting this tape computes, named as in :mod:`symbolic_bn.checks.autodiff`
        (``'fwd-over-rev'`` for the JVP of the backward); ``'forward'`` for the graph itself."""
        return "-over-".join(reversed(self.steps)) if self.steps else "forward"

    @property
    def y_valued(self) -> bool:
        return "rev" not in self.steps


def base_tape(graph) -> Tape:
    """The graph itself: output its last slot, differentiated with respect to all its inputs."""
    return Tape(graph, (graph.nodes[-1].name,), tuple(graph.input_names))


class _Namer:
    def __init__(self, taken):
        self.taken = set(taken)

    def __call__(self, base):
        name, k = base, 1
        while name in self.taken:
            k += 1
            name = f"{base}#{k}"
        self.taken.add(name)
        return name


class _Builder:
    """Nodes being appended to a graph, and the derivative helper slots (D of sqrtClamp / inv
    nodes), made once per transformation."""

    def __init__(self, graph, namer, tag):
        self.shapes = dict(graph.shapes)
        self.nodes: list = []
        self.namer, self.tag = namer, tag
        self.helpers: dict = {}

    def add(self, cls, base, inputs, shape, **kw):
        name = self.namer(base)
        node = cls(name=name, inputs=tuple(inputs), shape=tuple(shape), **kw)
        self.nodes.append(node)
        self.shapes[name] = tuple(node.shape)
        return name

    def derivative(self, node, variant):
        """The slot holding D = f'(z) of an elementwise node, as node kinds of its output."""
        got = self.helpers.get(node.name)
        if got is not None:
            return got
        out, shape = node.name, node.shape
        if variant == "sqrt_clamp":  # 1/(2 sqrt z) = ½ · inv(out)
            i = self.add(N.Elemwise, f"inv({out})", (out,), shape, kind="inv",
                         f=_REFERENCE_ELEMWISE["inv"].f, fprime=_REFERENCE_ELEMWISE["inv"].fprime,
                         f_text=_REFERENCE_ELEMWISE["inv"].f_text, side_condition="z ≠ 0",
                         condition_input=0)
            d = self.add(Scale, f"D({out})", (i,), shape, factor=Fraction(1, 2))
        else:  # inv: −1/z² = −(out ⊙ out)
            sq = self.add(N.Mul, f"{out}²", (out, out), shape)
            d = self.add(Scale, f"D({out})", (sq,), shape, factor=Fraction(-1))
        self.helpers[node.name] = d
        return d


def _index_array(shape, fn):
    index = np.empty(shape, dtype=np.int64)
    for idx in np.ndindex(*shape):
        index[idx] = fn(idx)
    return index


def jvp_fragment(b: _Builder, node, tangents) -> str | None:
    """Append the nodes computing ``node``'s tangent from its inputs' tangent slots (None: zero);
    returns the tangent slot (an existing slot when the JVP is an identity), None for zero."""
    kind = _kind_of(node)
    if all(t is None for t in tangents):
        return None
    base = f"{b.tag}({node.name})"
    shape = node.shape
    if kind in ("Reshape", "RowMean", "BroadcastRow", "BroadcastCol"):
        kw = {"in_shape": node.in_shape} if kind == "Reshape" else {}
        return b.add(type(node), base, (tangents[0],), shape, **kw)
    if kind == "Permute":
        return b.add(N.Permute, base, (tangents[0],), shape, axes=node.axes)
    if kind == "Gather":
        return b.add(N.Gather, base, (tangents[0],), shape, in_shape=node.in_shape, index=node.index)
    if kind == "ScatterAdd":
        return b.add(ScatterAdd, base, (tangents[0],), shape, index=node.index)
    if kind == "Scale":
        return b.add(Scale, base, (tangents[0],), shape, factor=node.factor)
    if kind == "Zeros":
        return None
    if kind in ("Add", "Sub"):
        ta, tb = tangents
        if ta is not None and tb is not None:
            return b.add(type(node), base, (ta, tb), shape)
        if tb is None:
            return ta
        return tb if kind == "Add" else b.add(Scale, base, (tb,), shape, factor=Fraction(-1))
    if kind == "Mul":
        (a, c), (ta, tc) = node.inputs, tangents
        terms = []
        if ta is not None:
            terms.append(b.add(N.Mul, f"{base}.1", (ta, c), shape))
        if tc is not None:
            terms.append(b.add(N.Mul, f"{base}.2", (a, tc), shape))
        return terms[0] if len(terms) == 1 else b.add(N.Add, base, tuple(terms), shape)
    if kind == "add_const":
        return tangents[0]
    d = b.derivative(node, kind)
    return b.add(N.Mul, base, (tangents[0], d), shape)


def vjp_fragment(b: _Builder, node, delta, needed) -> list:
    """Append the nodes computing ``node``'s VJP of the cotangent slot ``delta``; returns
    ``(input slot, contribution slot)`` pairs for the inputs whose ``needed`` flag is set."""
    kind = _kind_of(node)
    base = f"{b.tag}({node.inputs[0] if node.inputs else node.name}←{node.name})"
    if kind == "Zeros" or not any(needed):
        return []
    a = node.inputs[0]
    a_shape = b.shapes[a]
    if kind == "Reshape":
        return [(a, b.add(N.Reshape, base, (delta,), a_shape, in_shape=node.shape))]
    if kind == "Permute":
        return [(a, b.add(N.Permute, base, (delta,), a_shape, axes=node.inverse_axes))]
    if kind == "Gather":
        return [(a, b.add(ScatterAdd, base, (delta,), a_shape, index=node.index))]
    if kind == "ScatterAdd":
        return [(a, b.add(N.Gather, base, (delta,), a_shape, in_shape=node.shape, index=node.index))]
    if kind == "RowMean":
        m, n = a_shape
        spread = b.add(N.BroadcastRow, base + ".b", (delta,), a_shape)
        return [(a, b.add(Scale, base, (spread,), a_shape, factor=Fraction(1, n) if n else Fraction(0)))]
    if kind in ("BroadcastRow", "BroadcastCol"):
        axis = 0 if kind == "BroadcastRow" else 1
        index = _index_array(node.shape, lambda idx: idx[axis])
        return [(a, b.add(ScatterAdd, base, (delta,), a_shape, index=index))]
    if kind == "Scale":
        return [(a, b.add(Scale, base, (delta,), a_shape, factor=node.factor))]
    if kind == "add_const":
        return [(a, delta)]
    if kind in ("sqrt_clamp", "inv"):
        d = b.derivative(node, kind)
        return [(a, b.add(N.Mul, base, (delta, d), a_shape))]
    out = []
    c = node.inputs[1]
    other = f"{b.tag}({c}←{node.name})"
    if kind == "Add":
        out = [(a, delta) if needed[0] else None, (c, delta) if needed[1] else None]
    elif kind == "Sub":
        out = [(a, delta) if needed[0] else None,
               (c, b.add(Scale, other, (delta,), b.shapes[c], factor=Fraction(-1))) if needed[1] else None]
    else:  # Mul: δ ⊙ (the other factor), to each factor
        out = [(a, b.add(N.Mul, base, (delta, c), a_shape)) if needed[0] else None,
               (c, b.add(N.Mul, other, (delta, a), b.shapes[c])) if needed[1] else None]
    return [pair for pair in out if pair is not None]


def _depends(graph, wrt) -> set:
    dep = set(wrt)
    for node in graph.nodes:
        if any(i in dep for i in node.inputs):
            dep.add(node.name)
    return dep


def _pruned(inputs, nodes, outputs, name):
    """The graph of the nodes some output needs (inputs are kept)."""
    needed = set(outputs)
    keep = []
    for node in reversed(nodes):
        if node.name in needed:
            keep.append(node)
            needed.update(node.inputs)
    return Graph(inputs, list(reversed(keep)), name=name)


def _level(tape) -> int:
    return len(tape.steps) + 1


def jvp_tape(tape: Tape, tangent_names) -> Tape:
    """The JVP of ``tape`` as a tape (module docstring); ``tangent_names[k]`` names the tangent
    input of ``tape.wrt[k]``."""
    graph = tape.graph
    tangent_names = tuple(tangent_names)
    if len(tangent_names) != len(tape.wrt):
        raise ValueError(f"tangent_names: expected {len(tape.wrt)} names (one per input of {tape.wrt})")
    inputs = dict(graph.input_shapes)
    for w, t in zip(tape.wrt, tangent_names):
        if t in graph.shapes:
            raise ValueError(f"tangent_names: {t!r} is already a slot of the graph")
        inputs[t] = graph.shapes[w]
    b = _Builder(graph, _Namer(list(graph.shapes) + list(tangent_names)), f"d{_level(tape)}")
    b.shapes.update(inputs)
    tan = dict(zip(tape.wrt, tangent_names))
    for node in graph.nodes:
        tan[node.name] = jvp_fragment(b, node, [tan.get(i) for i in node.inputs])
    outputs = []
    for o in tape.outputs:
        t = tan.get(o)
        if t is None:
            t = b.add(Zeros, f"{b.tag}({o})", (), graph.shapes[o])
        outputs.append(t)
    new = _pruned(inputs, list(graph.nodes) + b.nodes, outputs, f"jvp of {graph.name}")
    return Tape(new, tuple(outputs), tape.wrt, tape.steps + ("fwd",), tape.vectors + (tangent_names,))


def backward_tape(tape: Tape, seed_names) -> Tape:
    """The backward of ``tape`` as a tape (module docstring); ``seed_names[k]`` names the seed
    input on ``tape.outputs[k]``."""
    graph = tape.graph
    seed_names = tuple(seed_names)
    if len(seed_names) != len(tape.outputs):
        raise ValueError(f"seed_names: expected {len(tape.outputs)} names (one per output {tape.outputs})")
    inputs = dict(graph.input_shapes)
    for o, s in zip(tape.outputs, seed_names):
        if s in graph.shapes:
            raise ValueError(f"seed_names: {s!r} is already a slot of the graph")
        inputs[s] = graph.shapes[o]
    b = _Builder(graph, _Namer(list(graph.shapes) + list(seed_names)), f"b{_level(tape)}")
    b.shapes.update(inputs)
    dep = _depends(graph, tape.wrt)
    contributions: dict = {}
    for o, s in zip(tape.outputs, seed_names):
        if o in dep:
            contributions.setdefault(o, []).append(s)

    def total(slot):
        parts = contributions.pop(slot, [])
        if not parts:
            return None
        acc = parts[0]
        for k, p in enumerate(parts[1:], 2):
            acc = b.add(N.Add, f"{b.tag}({slot})+{k}", (acc, p), graph.shapes[slot])
        return acc

    for node in reversed(graph.nodes):
        delta = total(node.name)
        if delta is None:
            continue
        needed = [i in dep for i in node.inputs]
        for slot, contribution in vjp_fragment(b, node, delta, needed):
            if slot in dep:
                contributions.setdefault(slot, []).append(contribution)
    outputs = []
    for w in tape.wrt:
        t = total(w)
        if t is None:
            t = b.add(Zeros, f"{b.tag}({w})", (), graph.shapes[w])
        outputs.append(t)
    new = _pruned(inputs, list(graph.nodes) + b.nodes, outputs, f"backward of {graph.name}")
    return Tape(new, tuple(outputs), tape.wrt, tape.steps + ("rev",), tape.vectors + (seed_names,))


def tape_for_steps(graph, steps, vector_names) -> Tape:
    """The tape of ``steps`` (innermost first, 'fwd'/'rev') applied to ``graph``;
    ``vector_names[k]`` are the input names step k adds (one per wrt input for 'fwd', one per
    output of the tape so far for 'rev')."""
    tape = base_tape(graph)
    for step, names in zip(steps, vector_names):
        if step == "fwd":
            tape = jvp_tape(tape, names)
        elif step == "rev":
            tape = backward_tape(tape, names)
        else:
            raise ValueError(f"steps: unknown step {step!r} (expected 'fwd' or 'rev')")
    return tape
