"""TorchLean-style tape graphs of every normalization layer of :mod:`symbolic_bn.layers`.

``layer_graph(layer)`` returns a :class:`~symbolic_bn.graphs.graph.Graph` of node kinds
(:mod:`symbolic_bn.graphs.nodes`) whose evaluation is ``layer.forward``.  Its input slots are
``layer.argument_names`` (``x, gamma, beta`` for batchnorm_channel_first; ``x, weight, bias``
otherwise; ``x, weight`` for rms_norm).

Construction.  Every statistics group of the layer becomes one *row* of an m×n matrix ``xMat``
(reshape and permute stages at the start), the statistics are TorchLean's row stages
(``rowMean``, ``broadcastRow``, ``sqrtClamp``, ``inv``, ...), and reshape/permute stages at the end
bring the result back to the layer's layout:

==========================  ==================================  ==================================
layer                       rows × columns of ``xMat``           layout stages
==========================  ==================================  ==================================
batchnorm_channel_first     C × (H·W)                            TorchLean's ``batchNormGraph``
batch_norm (N, C, *S)       C × (N·prod S)                       permute (1, 0, 2, …), reshape
instance_norm (N, C, *S)    (N·C) × prod S                       reshape
group_norm (N, C, *S), G    (N·G) × (C/G · prod S)               reshape (groups are contiguous)
layer_norm (*L, *K)         prod L × prod K                      reshape (none for 2-D x, 1-D K:
                                                                 TorchLean's ``layerNormGraph``)
rms_norm (*L, *K)           prod L × prod K                      reshape (none for 2-D x, 1-D K)
==========================  ==================================  ==================================

The matrix is derived from the layout stages themselves, and the constructor checks that each
row is exactly one statistics group of ``layer.group_of`` and that the end stages invert the start
stages.  γ and β are broadcast by the entry ``layer.param_of`` assigns to each matrix position:
``broadcastRow`` when the parameter is a vector indexed by the row (batch_norm, and instance_norm
/ group_norm when the rows happen to be the channels, N = 1 and G = C), ``broadcastCol`` when it is
a vector indexed by the column (layer_norm / rms_norm with a 1-D ``normalized_shape``), and a
``gather`` (:class:`~symbolic_bn.graphs.nodes.Gather`) otherwise.

ε is TorchLean's ``var_eps`` node, ``elemwise (z ↦ z + ε) (f' = 1)`` with the layer's ε: a real
SymPy Symbol, or its exact value as a ``sympy.Rational`` (``layer.eps`` may be a ``Fraction``).

Sources: TorchLean ``NN/Proofs/Autograd/Tape/Ops/Norm/BatchNormChannelFirst.lean`` (reference
``torchlean.md`` §2) and ``NN/Proofs/Autograd/Tape/Ops/Norm/LayerNorm.lean`` (§4; node and prefix
graph names read from ``wadkisson/TorchLean`` at commit ``21198a14``, lines 106–344).
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import sympy

from . import nodes as N
from .batchnorm import BatchNormGraph
from .graph import Graph

__all__ = ["layer_graph", "LayerGraph", "output_slot", "LAYER_NORM_STAGES", "RMS_NORM_STAGES"]

#: TorchLean's ``layerNormGraph ε``: (slot, Lean node, Lean prefix graph ending with it).
LAYER_NORM_STAGES = (
    ("mean", "nodeMean", "g1"),
    ("mean_b", "nodeMeanB", "g2"),
    ("centered", "nodeCentered", "g3"),
    ("centered_sq", "nodeCenteredSq", "g4"),
    ("var", "nodeVar", "g5"),
    ("var_eps", "nodeVarEps", "layerNormPrefix6"),
    ("std", "nodeStd", "layerNormPrefix7"),
    ("inv_std", "nodeInvStd", "g8"),
    ("inv_std_b", "nodeInvStdB", "g9"),
    ("normalized", "nodeNorm", "g10"),
    ("gamma_b", "nodeGammaB", "g11"),
    ("scaled", "nodeScaled", "g12"),
    ("beta_b", "nodeBetaB", "g13"),
    ("y", "nodeY", "layerNormGraph"),
)

#: RMSNorm's stages (not in TorchLean): x⊙x → rowMean → +ε → sqrtClamp → inv → broadcast → ⊙x → ⊙γ.
RMS_NORM_STAGES = ("x_sq", "mean_sq", "mean_sq_eps", "rms", "inv_rms", "inv_rms_b", "normalized",
                   "gamma_b", "y")


def output_slot(graph: Graph) -> str:
    """The slot holding the layer's output (``yChw`` for batchnorm_channel_first, else ``y``)."""
    return graph.nodes[-1].name


def _exact_eps(eps):
    """The form ``alg.parameter`` expects: a SymPy Symbol as is, a number as a ``sympy.Rational``."""
    if isinstance(eps, sympy.Symbol):
        return eps
    if isinstance(eps, sympy.Rational):
        return eps
    if isinstance(eps, (Fraction, int)) and not isinstance(eps, bool):
        q = Fraction(eps)
        return sympy.Rational(q.numerator, q.denominator)
    raise ValueError(f"layer.eps must be a Fraction, a sympy.Rational or a SymPy Symbol, got {eps!r}")


class LayerGraph(Graph):
    """A layer's graph, with ``layer``, ``eps`` (as the var_eps node uses it), ``rows`` × ``cols``
    (the statistics matrix), ``output`` (the output slot) and ``lean_graph`` (TorchLean's graph it
    is, or None)."""

    def __init__(self, layer, inputs, nodes, *, rows, cols, lean_graph=None):
        super().__init__(inputs, nodes, name=f"{layer.name} {layer.shape_text()}")
        self.layer = layer
        self.eps = _exact_eps(layer.eps)
        self.rows, self.cols = rows, cols
        self.output = self.nodes[-1].name
        self.lean_graph = lean_graph

    def __repr__(self):
        return f"<LayerGraph {self.name}, {self.rows}x{self.cols} statistics matrix, eps={self.eps}>"


# ---------------------------------------------------------------------------------------------
# Layouts: the stages that bring statistics groups onto rows, and back


def _layout(layer):
    """(start stages x → xMat, matrix slot, (m, n), end stages yMat → y, matrix output slot)."""
    shape = layer.input_shape
    k = len(shape)
    if layer.name == "batch_norm":
        Nb, C, spatial = shape[0], shape[1], shape[2:]
        axes = (1, 0) + tuple(range(2, k))
        cf = (C, Nb) + spatial
        m, n = C, Nb * int(np.prod(spatial, dtype=int))
        start = [N.Permute("x_channel_first", ("x",), cf, axes=axes),
                 N.Reshape("xMat", ("x_channel_first",), (m, n), in_shape=cf)]
        end = [N.Reshape("y_channel_first", ("yMat",), cf, in_shape=(m, n)),
               N.Permute("y", ("y_channel_first",), shape, axes=axes)]
        return start, "xMat", (m, n), end, "yMat"
    if layer.name == "instance_norm":
        m, n = shape[0] * shape[1], int(np.prod(shape[2:], dtype=int))
    elif layer.name == "group_norm":
        m, n = shape[0] * layer.groups, int(np.prod(shape[1:], dtype=int)) // layer.groups
    elif layer.name in ("layer_norm", "rms_norm"):
        kn = len(layer.normalized_shape)
        if k == 2 and kn == 1:  # TorchLean's layout: X is already m×n, no reshape
            return [], "x", shape, [], "y"
        m, n = int(np.prod(shape[:k - kn], dtype=int)), int(np.prod(shape[k - kn:], dtype=int))
    else:
        raise ValueError(f"layer: no graph for a layer named {layer.name!r}")
    start = [N.Reshape("xMat", ("x",), (m, n), in_shape=shape)]
    end = [N.Reshape("y", ("yMat",), shape, in_shape=(m, n))]
    return start, "xMat", (m, n), end, "yMat"


def _positions(stages, values):
    """Run layout stages (reshape/permute: no arithmetic, no algebra) on an array of labels."""
    slots = {"x": values}
    for node in stages:
        slots[node.name] = node.forward(None, *[slots[i] for i in node.inputs])
    return slots


def _label_array(shape):
    arr = np.empty(shape, dtype=object)
    for idx in np.ndindex(*shape):
        arr[idx] = tuple(int(i) for i in idx)
    return arr


def _check_layout(layer, start, matrix, end, mat_out):
    """The input index at each matrix position; checks rows = statistics groups, end ∘ start = id."""
    labels = _label_array(layer.input_shape)
    where = _positions(start, labels)[matrix]
    groups = [{layer.group_of(where[r, j]) for j in range(where.shape[1])} for r in range(where.shape[0])]
    if any(len(g) != 1 for g in groups) or len({next(iter(g)) for g in groups}) != len(groups) \
            or len(groups) != layer.number_of_groups:
        raise RuntimeError(f"internal: the layout of {layer!r} does not put one statistics group "
                           f"per row")
    back = {mat_out: where}
    for node in end:
        back[node.name] = node.forward(None, *[back[i] for i in node.inputs])
    out = back[end[-1].name] if end else where
    if out.shape != labels.shape or any(out[i] != labels[i] for i in np.ndindex(*labels.shape)):
        raise RuntimeError(f"internal: the end stages of {layer!r} do not invert its start stages")
    return where


def _param_broadcast(name, param, layer, where, lean_name=None):
    """γ or β broadcast to the m×n matrix: entry (r, j) is param[layer.param_of(where[r, j])]."""
    pshape = layer.weight_shape
    m, n = where.shape
    source = {(r, j): tuple(layer.param_of(where[r, j])) for r in range(m) for j in range(n)}
    if len(pshape) == 1:
        if pshape[0] == m and all(source[r, j] == (r,) for r, j in source):
            return N.BroadcastRow(name, (param,), (m, n), lean_name)
        if pshape[0] == n and all(source[r, j] == (j,) for r, j in source):
            return N.BroadcastCol(name, (param,), (m, n), lean_name)
    text = {"instance_norm": "row r = n·C + c reads channel c = r mod C",
            "group_norm": f"row r = n·G + g, column j reads channel g·(C/G) + j div (prod spatial), "
                          f"G = {layer.groups}",
            "layer_norm": "column j reads the normalized_shape entry of row-major position j",
            "rms_norm": "column j reads the normalized_shape entry of row-major position j"}
    return N.gather(name, param, pshape, (m, n), lambda idx: source[idx], lean_name=lean_name,
                    description=f"{param} broadcast to {m}×{n}: "
                                f"{text.get(layer.name, 'entry (r, j) reads layer.param_of')}")


# ---------------------------------------------------------------------------------------------
# The graphs


def _normalize_stages(src, mat, vec, eps, lean):
    """TorchLean's statistics stages mean … normalized on the m×n slot ``src``."""
    return [
        N.RowMean("mean", (src,), vec, lean.get("mean")),
        N.BroadcastRow("mean_b", ("mean",), mat, lean.get("mean_b")),
        N.Sub("centered", (src, "mean_b"), mat, lean.get("centered")),
        N.Mul("centered_sq", ("centered", "centered"), mat, lean.get("centered_sq")),
        N.RowMean("var", ("centered_sq",), vec, lean.get("var")),
        N.add_const("var_eps", "var", vec, eps, lean.get("var_eps")),
        N.sqrt_clamp("std", "var_eps", vec, lean.get("std")),
        N.inv("inv_std", "std", vec, lean.get("inv_std")),
        N.BroadcastRow("inv_std_b", ("inv_std",), mat, lean.get("inv_std_b")),
        N.Mul("normalized", ("centered", "inv_std_b"), mat, lean.get("normalized")),
    ]


def _rms_stages(src, mat, vec, eps):
    return [
        N.Mul("x_sq", (src, src), mat),
        N.RowMean("mean_sq", ("x_sq",), vec),
        N.add_const("mean_sq_eps", "mean_sq", vec, eps),
        N.sqrt_clamp("rms", "mean_sq_eps", vec),
        N.inv("inv_rms", "rms", vec),
        N.BroadcastRow("inv_rms_b", ("inv_rms",), mat),
        N.Mul("normalized", (src, "inv_rms_b"), mat),
    ]


def layer_graph(layer) -> Graph:
    """The tape graph of ``layer`` (a :class:`symbolic_bn.layers.Layer`); evaluating it gives
    ``layer.forward``.  Stages, in order (``M`` = the statistics matrix of the module docstring,
    m rows = statistics groups, n columns; vectors have m entries):

    * ``batchnorm_channel_first`` (C, H, W): exactly :class:`~symbolic_bn.graphs.batchnorm.
      BatchNormGraph` -- xMat, mean, mean_b, centered, centered_sq, var, var_eps, std, inv_std,
      inv_std_b, normalized, gamma_b, scaled, beta_b, yMat, yChw (inputs x, gamma, beta).
    * ``batch_norm`` (N, C, *S): x_channel_first (permute to (C, N, *S)), xMat (reshape to
      C × N·prod S), mean, mean_b, centered, centered_sq, var, var_eps, std, inv_std, inv_std_b,
      normalized, gamma_b (broadcastRow), scaled, beta_b (broadcastRow), yMat, y_channel_first
      (reshape to (C, N, *S)), y (permute back to (N, C, *S)).
    * ``instance_norm`` (N, C, *S): xMat (reshape to N·C × prod S), the same ten statistics
      stages, gamma_b, scaled, beta_b, yMat, y (reshape back); gamma_b/beta_b are a gather
      (row n·C + c reads channel c), a broadcastRow when N = 1.
    * ``group_norm`` (N, C, *S), G groups: xMat (reshape to N·G × (C/G)·prod S), the ten
      statistics stages, gamma_b, scaled, beta_b (gathers: row n·G + g, column j reads channel
      g·C/G + j div prod S; a broadcastRow when N = 1 and G = C), yMat, y (reshape back).
    * ``layer_norm`` (*L, *K): for a 2-D input and K = (n,) TorchLean's ``layerNormGraph`` with its
      Lean node names (:data:`LAYER_NORM_STAGES`): mean, mean_b, centered, centered_sq, var,
      var_eps, std, inv_std, inv_std_b, normalized, gamma_b (broadcastCol), scaled, beta_b
      (broadcastCol), y.  Otherwise xMat (reshape to prod L × prod K), the same stages with
      yMat in place of y, then y (reshape back); gamma_b/beta_b are broadcastCol for a 1-D K,
      a gather (column j reads entry j of the flattened γ) for a K of two or more axes.
    * ``rms_norm`` (*L, *K): [xMat], x_sq = xMat ⊙ xMat, mean_sq (rowMean), mean_sq_eps (+ε), rms
      (sqrtClamp), inv_rms (inv), inv_rms_b (broadcastRow), normalized = xMat ⊙ inv_rms_b,
      gamma_b (broadcastCol, or a gather as for layer_norm), y = normalized ⊙ gamma_b -- or yMat
      and a final reshape y when the input is not 2-D with a 1-D K.  No β.

    Lean node names (``node.lean_name``) are set only where the graph is TorchLean's.
    """
    from ..layers import Layer  # a graph module must not need the layer module at import time

    if not isinstance(layer, Layer):
        raise TypeError(f"layer must be a symbolic_bn.layers.Layer, got {type(layer).__name__}")
    if layer.name == "batchnorm_channel_first":
        C, H, W = layer.input_shape
        return BatchNormGraph(C, H, W, _exact_eps(layer.eps))
    names = layer.argument_names
    x_name, w_name = names[0], names[1]
    if x_name != "x":
        raise ValueError(f"layer: expected the input to be named 'x', got {x_name!r}")
    eps = _exact_eps(layer.eps)
    start, matrix, (m, n), end, mat_out = _layout(layer)
    where = _check_layout(layer, start, matrix, end, mat_out)
    mat, vec = (m, n), (m,)
    torchlean = layer.name == "layer_norm" and not start
    lean = {slot: node for slot, node, _ in LAYER_NORM_STAGES} if torchlean else {}
    inputs = {x_name: layer.input_shape, w_name: layer.weight_shape}
    if layer.centered:
        core = _normalize_stages(matrix, mat, vec, eps, lean)
    else:
        core = _rms_stages(matrix, mat, vec, eps)
    core.append(_param_broadcast("gamma_b", w_name, layer, where, lean.get("gamma_b")))
    scaled = "scaled" if layer.bias_shape is not None else mat_out
    core.append(N.Mul(scaled, ("normalized", "gamma_b"), mat, lean.get("scaled")))
    if layer.bias_shape is not None:
        b_name = names[2]
        inputs[b_name] = layer.bias_shape
        core.append(_param_broadcast("beta_b", b_name, layer, where, lean.get("beta_b")))
        core.append(N.Add(mat_out, ("scaled", "beta_b"), mat, lean.get(mat_out)))
    graph = LayerGraph(layer, inputs, start + core + end, rows=m, cols=n,
                       lean_graph="layerNormGraph" if torchlean else None)
    # the statistics group of each row, as a label (for the domain's facts and messages)
    graph.row_groups = [_group_label(layer.group_of(where[r, 0])) for r in range(m)]
    return graph


def _group_label(group) -> str:
    return ", ".join(map(str, group)) if isinstance(group, tuple) else str(group)
