"""Node kinds of TorchLean's tape graphs: forward, JVP, VJP and side condition.

Semantics follow ``NN/Proofs/Autograd/Tape/Nodes/*.lean`` (reference ``torchlean.md`` §3):

* a node reads earlier *slots* (inputs or intermediates) and writes one new slot;
* ``jvp(alg, args, tangents)`` is the forward-mode derivative (tangents aligned with ``inputs``);
* ``vjp(alg, args, delta)`` returns the cotangent of the **whole context** as a list of
  ``(slot, contribution)`` pairs -- Lean's sum of ``single`` blocks.  When two inputs are the same
  slot (``centered ⊙ centered``) both contributions land in that slot and are *added* by the graph,
  exactly as ``CtxVec`` addition does; nothing is special-cased;
* ``side_condition`` states where the node's derivative claim holds (``z > 0`` for sqrtClamp,
  ``z ≠ 0`` for inv, none otherwise); the adjointness law ``⟨jvp, δ⟩ = ⟨dX, vjp⟩`` must hold
  everywhere, with the totalized derivatives.

Two kinds are not TorchLean's and serve the layers beyond its two graphs
(:mod:`symbolic_bn.graphs.layer_graphs`): :class:`Permute` (an axis permutation) and
:class:`Gather` (``out[p] = v.flat[index[p]]``, VJP a scatter-add).  Both are linear with 0/1
matrices, written in the same conventions (full-context VJP, no side condition) and using nothing
of the algebra but ``alg.sum`` and NumPy indexing, so they run on every scalar algebra.

Arrays are NumPy object arrays whose entries belong to one scalar algebra
(the exact engine through :class:`symbolic_bn.obligations.setting.EngineAlgebra`, or SymPy
through :mod:`symbolic_bn.graphs.algebra`); cotangents and tangents are written on the left of products so that
linear forms can flow through.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

import numpy as np


def _obj(shape, fill):
    out = np.empty(shape, dtype=object)
    out.fill(fill)
    return out


def _vec(items):
    """A 1-D object array of the given scalars (never lets NumPy look inside them)."""
    items = list(items)
    out = np.empty(len(items), dtype=object)
    for i, v in enumerate(items):
        out[i] = v
    return out


def _map(fn, arr):
    out = np.empty(arr.shape, dtype=object)
    for idx in np.ndindex(arr.shape):
        out[idx] = fn(arr[idx])
    return out


@dataclass(eq=False)
class Node:
    """Base class: one stage of a graph."""

    name: str                       # the slot this node writes
    inputs: tuple                   # slots it reads, in order
    shape: tuple                    # output shape
    lean_name: str | None = None
    kind: str = "node"
    side_condition: str | None = None
    description: str = ""

    def forward(self, alg, *args):
        raise NotImplementedError

    def jvp(self, alg, args, tangents):
        raise NotImplementedError

    def vjp(self, alg, args, delta):
        raise NotImplementedError

    # The argument (input index) the side condition is about, if any.
    condition_input: int | None = None

    def __repr__(self):
        return f"<{self.kind} {self.name} <- {', '.join(self.inputs)} {self.shape}>"


@dataclass(eq=False)
class Reshape(Node):
    """``castVec``: identity on row-major flattened coordinates."""

    kind: str = "reshape"
    in_shape: tuple = ()

    def forward(self, alg, a):
        return a.reshape(self.shape)

    def jvp(self, alg, args, tangents):
        return tangents[0].reshape(self.shape)

    def vjp(self, alg, args, delta):
        return [(self.inputs[0], delta.reshape(args[0].shape))]


@dataclass(eq=False)
class RowMean(Node):
    """``rowMean``: (m×n) → (m), ``(1/n)·Σ_j``; Lean's ``1/0 = 0`` when n = 0."""

    kind: str = "rowMean"

    def _scale(self, alg, n):
        return alg.const(Fraction(1, n)) if n else alg.const(0)

    def forward(self, alg, a):
        m, n = a.shape
        s = self._scale(alg, n)
        return _vec(alg.sum(a[i, j] for j in range(n)) * s for i in range(m))

    def jvp(self, alg, args, tangents):
        return self.forward(alg, tangents[0])

    def vjp(self, alg, args, delta):
        m, n = args[0].shape
        s = self._scale(alg, n)
        out = np.empty((m, n), dtype=object)
        for i in range(m):
            for j in range(n):
                out[i, j] = delta[i] * s
        return [(self.inputs[0], out)]


@dataclass(eq=False)
class BroadcastRow(Node):
    """``broadcastRow``: (m) → (m×n), ``out[i, j] = v[i]``; VJP is the row sum."""

    kind: str = "broadcastRow"

    def forward(self, alg, v):
        m, n = self.shape
        out = np.empty((m, n), dtype=object)
        for i in range(m):
            for j in range(n):
                out[i, j] = v[i]
        return out

    def jvp(self, alg, args, tangents):
        return self.forward(alg, tangents[0])

    def vjp(self, alg, args, delta):
        m, n = self.shape
        return [(self.inputs[0], _vec(alg.sum(delta[i, j] for j in range(n)) for i in range(m)))]


@dataclass(eq=False)
class BroadcastCol(Node):
    """``broadcastCol``: (n) → (m×n), ``out[i, j] = v[j]``; VJP is the column sum."""

    kind: str = "broadcastCol"

    def forward(self, alg, v):
        m, n = self.shape
        out = np.empty((m, n), dtype=object)
        for i in range(m):
            for j in range(n):
                out[i, j] = v[j]
        return out

    def jvp(self, alg, args, tangents):
        return self.forward(alg, tangents[0])

    def vjp(self, alg, args, delta):
        m, n = self.shape
        return [(self.inputs[0], _vec(alg.sum(delta[i, j] for i in range(m)) for j in range(n)))]


@dataclass(eq=False)
class Add(Node):
    kind: str = "add"

    def forward(self, alg, a, b):
        return a + b

    def jvp(self, alg, args, tangents):
        return tangents[0] + tangents[1]

    def vjp(self, alg, args, delta):
        return [(self.inputs[0], delta), (self.inputs[1], delta)]


@dataclass(eq=False)
class Sub(Node):
    kind: str = "sub"

    def forward(self, alg, a, b):
        return a - b

    def jvp(self, alg, args, tangents):
        return tangents[0] - tangents[1]

    def vjp(self, alg, args, delta):
        return [(self.inputs[0], delta), (self.inputs[1], -delta)]


@dataclass(eq=False)
class Mul(Node):
    """Hadamard product; JVP ``a ⊙ db + b ⊙ da``; VJP ``single(a, δ⊙b) + single(b, δ⊙a)``."""

    kind: str = "mul"

    def forward(self, alg, a, b):
        return a * b

    def jvp(self, alg, args, tangents):
        a, b = args
        da, db = tangents
        return db * a + da * b

    def vjp(self, alg, args, delta):
        a, b = args
        return [(self.inputs[0], delta * b), (self.inputs[1], delta * a)]


@dataclass(eq=False)
class Elemwise(Node):
    """``elemwise f f'``: forward ``f(z)``, JVP ``dz·f'(z)``, VJP ``δ·f'(z)``; adjoint for any f'."""

    kind: str = "elemwise"
    f: Callable = None          # f(alg, z)
    fprime: Callable = None     # f'(alg, z)
    f_text: str = ""

    def forward(self, alg, z):
        return _map(lambda t: self.f(alg, t), z)

    def derivative(self, alg, z):
        return _map(lambda t: self.fprime(alg, t), z)

    def jvp(self, alg, args, tangents):
        return tangents[0] * self.derivative(alg, args[0])

    def vjp(self, alg, args, delta):
        return [(self.inputs[0], delta * self.derivative(alg, args[0]))]


def add_const(name, inp, shape, eps, lean_name=None):
    """``elemwise (fun z => z + ε) (fun _ => 1)``."""
    return Elemwise(name=name, inputs=(inp,), shape=shape, lean_name=lean_name, kind="elemwise",
                    f=lambda alg, z: z + alg.parameter(eps), fprime=lambda alg, z: alg.one,
                    f_text="z ↦ z + ε, f' = 1")


def sqrt_clamp(name, inp, shape, lean_name=None):
    """``sqrtClamp``: ``sqrt(max(z, 0))`` with declared derivative ``1/(2 sqrt z)`` (0 for z ≤ 0)."""
    return Elemwise(name=name, inputs=(inp,), shape=shape, lean_name=lean_name, kind="sqrtClamp",
                    f=lambda alg, z: alg.sqrt_clamp(z), fprime=lambda alg, z: alg.sqrt_clamp_deriv(z),
                    f_text="z ↦ sqrt(max(z, 0)), f' = 1/(2 sqrt z) (0 for z ≤ 0)",
                    side_condition="z > 0", condition_input=0)


def inv(name, inp, shape, lean_name=None):
    """``inv``: ``z⁻¹`` with ``0⁻¹ = 0``; derivative ``−1/z²`` (0 at 0)."""
    return Elemwise(name=name, inputs=(inp,), shape=shape, lean_name=lean_name, kind="inv",
                    f=lambda alg, z: alg.inv(z), fprime=lambda alg, z: alg.inv_deriv(z),
                    f_text="z ↦ z⁻¹ (0⁻¹ = 0), f' = −1/z² (0 at 0)",
                    side_condition="z ≠ 0", condition_input=0)


# ---------------------------------------------------------------------------------------------
# Layout kinds for the layers beyond TorchLean's two graphs (symbolic_bn.graphs.layer_graphs).
# Both are linear maps given by 0/1 matrices, so their derivative is global (no side condition)
# and adjointness is the statement that the VJP applies the transposed matrix.


def _flat_size(shape) -> int:
    return int(np.prod(shape, dtype=int)) if len(shape) else 1


@dataclass(eq=False)
class Permute(Node):
    """Axis permutation (``numpy.transpose`` semantics): output axis ``t`` is input axis
    ``axes[t]``, i.e. ``out[i_0, …, i_{k−1}] = a[j]`` with ``j[axes[t]] = i_t``.

    * forward: ``transpose(a, axes)``; JVP: the same permutation of the tangent (the map is linear);
    * VJP: ``single(a, transpose(δ, axes⁻¹))`` -- the *inverse* permutation, because the
      transpose of a permutation matrix is its inverse;
    * no side condition; the derivative is the map itself, everywhere.

    ``in_shape`` is derived from ``shape`` and ``axes`` (``in_shape[axes[t]] = shape[t]``)."""

    kind: str = "permute"
    axes: tuple = ()
    in_shape: tuple = ()

    def __post_init__(self):
        axes = tuple(int(a) for a in self.axes)
        shape = tuple(self.shape)
        if sorted(axes) != list(range(len(shape))):
            raise ValueError(f"node {self.name!r} (permute): axes {axes} are not a permutation of "
                             f"the {len(shape)} axes of its shape {shape}")
        in_shape = [0] * len(shape)
        for t, a in enumerate(axes):
            in_shape[a] = shape[t]
        if self.in_shape and tuple(self.in_shape) != tuple(in_shape):
            raise ValueError(f"node {self.name!r} (permute): axes {axes} map an input of shape "
                             f"{tuple(self.in_shape)} to {tuple(self.in_shape[a] for a in axes)}, "
                             f"not to its declared shape {shape}")
        self.axes, self.shape, self.in_shape = axes, shape, tuple(in_shape)
        self.inverse_axes = tuple(int(t) for t in np.argsort(axes))

    def _checked(self, a):
        if getattr(a, "shape", None) != self.in_shape:
            raise ValueError(f"node {self.name!r} (permute): input has shape "
                             f"{getattr(a, 'shape', None)}, expected {self.in_shape}")
        return a

    def forward(self, alg, a):
        return np.transpose(self._checked(a), self.axes).copy()

    def jvp(self, alg, args, tangents):
        return np.transpose(self._checked(tangents[0]), self.axes).copy()

    def vjp(self, alg, args, delta):
        return [(self.inputs[0], np.transpose(delta, self.inverse_axes).copy())]


@dataclass(eq=False)
class Gather(Node):
    """Index-map broadcast (a linear gather): ``out[p] = v.flat[index[p]]``.

    ``index`` is an integer array of the output shape; its entries are row-major flat positions
    in the input (of shape ``in_shape``).  An input entry may be read any number of times
    (broadcast) or never.  ``broadcastRow`` (``index[i, j] = i``), ``broadcastCol``
    (``index[i, j] = j``), reshapes and permutations are special cases; the layers use it for
    parameters broadcast in patterns those two cannot express (GroupNorm's per-channel γ over
    (N·G) × (C/G·spatial) rows, a LayerNorm γ of a 2-D ``normalized_shape``).

    * forward: the gather; JVP: the same gather of the tangent (the map is linear);
    * VJP: ``single(v, scatter-add δ)``: ``[vjp δ]_k = Σ_{p : index[p] = k} δ_p`` (0 for an entry
      never read) -- the transposed 0/1 selection matrix; repeated indices *accumulate*;
    * no side condition; the derivative is the map itself, everywhere.

    ``description`` says in words which entry each output reads (for reports)."""

    kind: str = "gather"
    in_shape: tuple = ()
    index: object = None

    def __post_init__(self):
        shape, in_shape = tuple(self.shape), tuple(self.in_shape)
        try:
            index = np.asarray(self.index)
        except Exception:  # noqa: BLE001 - anything that is not an array of integers
            index = None
        if index is None or index.dtype.kind not in "iu":
            raise ValueError(f"node {self.name!r} (gather): index must be an integer array of the "
                             f"output shape {shape}")
        if index.shape != shape:
            raise ValueError(f"node {self.name!r} (gather): index has shape {index.shape}, "
                             f"expected the output shape {shape}")
        size = _flat_size(in_shape)
        if index.size and (index.min() < 0 or index.max() >= size):
            raise ValueError(f"node {self.name!r} (gather): index entries must be flat positions "
                             f"0 … {size - 1} of the input shape {in_shape}, got "
                             f"{int(index.min())} … {int(index.max())}")
        self.shape, self.in_shape = shape, in_shape
        self.index = index.astype(np.int64)
        readers = [[] for _ in range(size)]   # flat input position -> flat output positions
        for p, k in enumerate(self.index.reshape(-1).tolist()):
            readers[k].append(p)
        self.readers = tuple(tuple(r) for r in readers)

    def _gather(self, v):
        if getattr(v, "shape", None) != self.in_shape:
            raise ValueError(f"node {self.name!r} (gather): input has shape "
                             f"{getattr(v, 'shape', None)}, expected {self.in_shape}")
        return v.reshape(-1)[self.index]

    def forward(self, alg, v):
        return self._gather(v)

    def jvp(self, alg, args, tangents):
        return self._gather(tangents[0])

    def vjp(self, alg, args, delta):
        flat = delta.reshape(-1)
        out = _vec(alg.sum(flat[p] for p in ps) for ps in self.readers)
        return [(self.inputs[0], out.reshape(self.in_shape))]


def gather(name, inp, in_shape, shape, source, *, lean_name=None, description=""):
    """A :class:`Gather` whose output entry at index ``idx`` reads the input entry at index
    ``source(idx)`` (a tuple of ``len(in_shape)`` integers)."""
    in_shape, shape = tuple(in_shape), tuple(shape)
    index = np.empty(shape, dtype=np.int64)
    for idx in np.ndindex(*shape):
        src = tuple(source(idx))
        if len(src) != len(in_shape) or any(not 0 <= s < d for s, d in zip(src, in_shape)):
            raise ValueError(f"node {name!r} (gather): output entry {idx} reads {src}, which is not "
                             f"an index of the input shape {in_shape}")
        index[idx] = int(np.ravel_multi_index(src, in_shape)) if in_shape else 0
    return Gather(name=name, inputs=(inp,), shape=shape, lean_name=lean_name, in_shape=in_shape,
                  index=index, description=description)


NODE_KINDS = ("reshape", "rowMean", "broadcastRow", "broadcastCol", "add", "sub", "mul",
              "elemwise", "sqrtClamp", "inv", "permute", "gather")
