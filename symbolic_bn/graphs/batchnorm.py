"""TorchLean's ``BatchNormChannelFirst`` graph: 16 stages over inputs ``[x : C×H×W, gamma : C, beta : C]``.

Source: ``NN/Proofs/Autograd/Tape/Ops/Norm/BatchNormChannelFirst.lean`` (reference ``torchlean.md``
§2).  Per channel ``c``, flattening the spatial axes (``N = H·W``, row-major):

    xMat = reshape x                       (C×N)    nodeXMat
    mean = rowMean xMat                    (C)      nodeMean
    mean_b = broadcastRow mean             (C×N)    nodeMeanB
    centered = xMat − mean_b               (C×N)    nodeCentered
    centered_sq = centered ⊙ centered      (C×N)    nodeCenteredSq  (both operands the same slot)
    var = rowMean centered_sq              (C)      nodeVar         (population variance, no clamp)
    var_eps = var + ε                      (C)      nodeVarEps
    std = sqrt(max(var_eps, 0))            (C)      nodeStd         (sqrtClamp)
    inv_std = std⁻¹                        (C)      nodeInvStd      (0⁻¹ = 0)
    inv_std_b = broadcastRow inv_std       (C×N)    nodeInvStdB
    normalized = centered ⊙ inv_std_b      (C×N)    nodeNorm
    gamma_b = broadcastRow gamma           (C×N)    nodeGammaB
    scaled = normalized ⊙ gamma_b          (C×N)    nodeScaled
    beta_b = broadcastRow beta             (C×N)    nodeBetaB
    yMat = scaled + beta_b                 (C×N)    nodeYMat
    yChw = reshape yMat                    (C×H×W)  nodeYChw

It is a stateless per-example normalization over the spatial axes (closer to InstanceNorm than to
PyTorch's BatchNorm2d over N×H×W with running statistics).

``eps``: ``None`` gives a real symbol ``ε`` (no sign assumption: the theorem only assumes
``var_c + ε > 0``); a number gives that exact value -- a Python float through its shortest
round-trip decimal (``1e-6`` is exactly 10⁻⁶, TorchLean's ``Numbers.epsilon`` over ℝ), a string
parsed strictly as a decimal or fraction, or a ``Fraction``/SymPy Rational as is; a SymPy Symbol
must be real (``real=True`` or an assumption implying it).  The exact engine computes over ℚ with
ε as a generator, so irrational (``sympy.sqrt(2)``), non-real (``sympy.I``) and other symbolic
ε (``2*e``) are refused with a ``ValueError`` naming ``eps``
(:func:`symbolic_bn.exact.numbers.to_exact_eps`).
"""
from __future__ import annotations

import numbers

import sympy

from . import nodes as N
from ..exact.numbers import to_exact_eps
from .graph import Graph

EPS_SYMBOL = sympy.Symbol("ε", real=True)

#: Largest C·H·W accepted; beyond it the exact engine would not finish in reasonable time.
MAX_ELEMENTS = 4096
MAX_SPATIAL = 1024

STAGES = (
    # name, Lean node, Lean prefix graph
    ("xMat", "nodeXMat", "g1"),
    ("mean", "nodeMean", "g2"),
    ("mean_b", "nodeMeanB", "g3"),
    ("centered", "nodeCentered", "g4"),
    ("centered_sq", "nodeCenteredSq", "g5"),
    ("var", "nodeVar", "g6"),
    ("var_eps", "nodeVarEps", "batchNormPrefixVarEps"),
    ("std", "nodeStd", "batchNormPrefixStd"),
    ("inv_std", "nodeInvStd", "g8"),
    ("inv_std_b", "nodeInvStdB", "g9"),
    ("normalized", "nodeNorm", "g10"),
    ("gamma_b", "nodeGammaB", "g11"),
    ("scaled", "nodeScaled", "g12"),
    ("beta_b", "nodeBetaB", "g13"),
    ("yMat", "nodeYMat", "g14"),
    ("yChw", "nodeYChw", "batchNormGraph"),
)


def _dimension(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    value = int(value)
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return value


def check_shape(C, H, W):
    """Validate a C×H×W shape; refuse shapes too large to finish (see MAX_ELEMENTS)."""
    C, H, W = _dimension(C, "C"), _dimension(H, "H"), _dimension(W, "W")
    if C * H * W > MAX_ELEMENTS or H * W > MAX_SPATIAL:
        raise ValueError(f"shape {C}x{H}x{W} is too large: at most {MAX_ELEMENTS} elements "
                         f"and H*W <= {MAX_SPATIAL} (the exact engine would not finish in reasonable time)")
    return C, H, W


def convert_eps(eps):
    """``None`` → the real symbol ε; a rational number → its exact value; a real Symbol as is.
    Anything else is a ``ValueError`` naming ``eps`` (see the module docstring)."""
    if eps is None:
        return EPS_SYMBOL
    return to_exact_eps(eps, name="eps")


class BatchNormGraph(Graph):
    """The 16-stage graph with its shape and ε."""

    def __init__(self, C, H, W, eps=None):
        C, H, W = check_shape(C, H, W)
        self.C, self.H, self.W, self.N = C, H, W, H * W
        self.eps = convert_eps(eps)
        n = H * W
        mat, vec, chw = (C, n), (C,), (C, H, W)
        lean = {name: ln for name, ln, _ in STAGES}
        stages = [
            N.Reshape("xMat", ("x",), mat, lean["xMat"], in_shape=chw),
            N.RowMean("mean", ("xMat",), vec, lean["mean"]),
            N.BroadcastRow("mean_b", ("mean",), mat, lean["mean_b"]),
            N.Sub("centered", ("xMat", "mean_b"), mat, lean["centered"]),
            N.Mul("centered_sq", ("centered", "centered"), mat, lean["centered_sq"]),
            N.RowMean("var", ("centered_sq",), vec, lean["var"]),
            N.add_const("var_eps", "var", vec, self.eps, lean["var_eps"]),
            N.sqrt_clamp("std", "var_eps", vec, lean["std"]),
            N.inv("inv_std", "std", vec, lean["inv_std"]),
            N.BroadcastRow("inv_std_b", ("inv_std",), mat, lean["inv_std_b"]),
            N.Mul("normalized", ("centered", "inv_std_b"), mat, lean["normalized"]),
            N.BroadcastRow("gamma_b", ("gamma",), mat, lean["gamma_b"]),
            N.Mul("scaled", ("normalized", "gamma_b"), mat, lean["scaled"]),
            N.BroadcastRow("beta_b", ("beta",), mat, lean["beta_b"]),
            N.Add("yMat", ("scaled", "beta_b"), mat, lean["yMat"]),
            N.Reshape("yChw", ("yMat",), chw, lean["yChw"], in_shape=mat),
        ]
        super().__init__({"x": chw, "gamma": vec, "beta": vec}, stages,
                         name=f"BatchNormChannelFirst {C}x{H}x{W}")

    @property
    def shape(self):
        return (self.C, self.H, self.W)

    def __repr__(self):
        return f"<BatchNormGraph {self.C}x{self.H}x{self.W} eps={self.eps}>"


def batchnorm_channel_first(C, H, W, eps=None) -> BatchNormGraph:
    """TorchLean's ``batchNormGraph ε`` at shape C×H×W (see the module docstring)."""
    return BatchNormGraph(C, H, W, eps)
