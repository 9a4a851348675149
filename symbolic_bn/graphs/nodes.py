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

Arrays are NumPy object arrays whose entries belong to one scalar algebra
(:mod:`symbolic_bn.exact.algebra`); cotangents and tangents are written on the left of products so that
linear forms can flow through.
"""
from __future__ import annotations

from dataclasses import dataclass, field
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


NODE_KINDS = ("reshape", "rowMean", "broadcastRow", "broadcastCol", "add", "sub", "mul",
              "elemwise", "sqrtClamp", "inv")
