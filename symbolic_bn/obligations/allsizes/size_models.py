"""Each normalization layer at symbolic sizes: its groups, positions, weight index and row-form stages.

Every layer is a per-group normalization: the input is indexed by (c, p) -- c a *statistics group*,
p a *position* in it -- and γ, β by π(c, p) (the weight entry applied there).  Index ranges are
symbols of :data:`~.terms.RANGES`; the group index and the position may each be a tuple of
indices:

=========================  ==================  ===================  ==========================  ============
layer                      group c             position p           γ/β index π(c, p)           γ broadcast
=========================  ==================  ===================  ==========================  ============
batchnorm_channel_first    channel c < C       p < N = H·W          c (per group)               broadcastRow
batch_norm (B, C, *S)      channel c < C       (n, s): n<B, s<S     c (per group)               broadcastRow
instance_norm (B, C, *S)   (n, c): n<B, c<C    s < S                c (shared by the B samples)  gather
group_norm (B, G·K, *S)    (n, g): n<B, g<G    (k, s): k<K, s<S     (g, k): channel g·K + k      gather
layer_norm (*L, *K)        row r < R           p < N = prod K       p (shared by the R rows)    broadcastCol
rms_norm (*L, *K)          row r < R           p < N = prod K       p (shared by the R rows)    broadcastCol
=========================  ==================  ===================  ==========================  ============

(S = prod of the spatial sizes, 1 when there are none; B the batch size -- the layer's own ``N``;
for group_norm C = G·K, so "G divides C" is built in; R = prod of the leading sizes.)  Each
layer's graph is taken in its *row form* (graphs/layer_graphs.py): rows = statistics groups,
TorchLean's row stages (rowMean, broadcastRow, sub, mul, +ε, sqrtClamp, inv, add; for rms_norm
x⊙x, rowMean, +ε, sqrtClamp, inv, broadcastRow, mul), then γ/β applied by the broadcast above.
The stages of batchnorm_channel_first are the 16 nodes of TorchLean's ``batchNormGraph ε``
(torchlean.md §2.3), those of layer_norm ``layerNormGraph`` (torchlean.md §4).

:class:`SizeModel` holds a layer's ranges, stages and the texts of its certificate;
:data:`SIZE_MODELS` has one per layer kind and :func:`size_model` picks it for a
:class:`symbolic_bn.layers.Layer` (its kind and ε; the shape is not used) or a layer name.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from sympy import Rational

from .terms import EPS


@dataclass(frozen=True)
class Stage:
    pos: int
    name: str
    kind: str
    inputs: tuple
    shape: str          # 'CN' (group × position; C×H×W flattened for BN) or 'C' (one per group)
    lean: str | None


def _stats_stages(src, pos, lean=None):
    """TorchLean's statistics stages mean … normalized on the group × position slot ``src``."""
    lean = lean or {}
    rows = [("mean", "rowMean", (src,), "C"), ("mean_b", "broadcastRow", ("mean",), "CN"),
            ("centered", "sub", (src, "mean_b"), "CN"), ("centered_sq", "mul", ("centered", "centered"), "CN"),
            ("var", "rowMean", ("centered_sq",), "C"), ("var_eps", "addEps", ("var",), "C"),
            ("std", "sqrtClamp", ("var_eps",), "C"), ("inv_std", "inv", ("std",), "C"),
            ("inv_std_b", "broadcastRow", ("inv_std",), "CN"), ("normalized", "mul", ("centered", "inv_std_b"), "CN")]
    return [Stage(pos + k, name, kind, ins, shape, lean.get(name)) for k, (name, kind, ins, shape) in enumerate(rows)]


def _affine_stages(pos, broadcast, mat_out, lean=None, bias=True):
    lean = lean or {}
    out = [Stage(pos, "gamma_b", broadcast, ("gamma",), "CN", lean.get("gamma_b")),
           Stage(pos + 1, "scaled" if bias else mat_out, "mul", ("normalized", "gamma_b"), "CN",
                 lean.get("scaled" if bias else mat_out))]
    if bias:
        out += [Stage(pos + 2, "beta_b", broadcast, ("beta",), "CN", lean.get("beta_b")),
                Stage(pos + 3, mat_out, "add", ("scaled", "beta_b"), "CN", lean.get(mat_out))]
    return out


#: The 16 nodes of ``batchNormGraph ε`` (torchlean.md §2.3), in order.
STAGES: tuple[Stage, ...] = (
    Stage(3, "xMat", "reshape", ("x",), "CN", "nodeXMat"),
    Stage(4, "mean", "rowMean", ("xMat",), "C", "nodeMean"),
    Stage(5, "mean_b", "broadcastRow", ("mean",), "CN", "nodeMeanB"),
    Stage(6, "centered", "sub", ("xMat", "mean_b"), "CN", "nodeCentered"),
    Stage(7, "centered_sq", "mul", ("centered", "centered"), "CN", "nodeCenteredSq"),
    Stage(8, "var", "rowMean", ("centered_sq",), "C", "nodeVar"),
    Stage(9, "var_eps", "addEps", ("var",), "C", "nodeVarEps"),
    Stage(10, "std", "sqrtClamp", ("var_eps",), "C", "nodeStd"),
    Stage(11, "inv_std", "inv", ("std",), "C", "nodeInvStd"),
    Stage(12, "inv_std_b", "broadcastRow", ("inv_std",), "CN", "nodeInvStdB"),
    Stage(13, "normalized", "mul", ("centered", "inv_std_b"), "CN", "nodeNorm"),
    Stage(14, "gamma_b", "broadcastRow", ("gamma",), "CN", "nodeGammaB"),
    Stage(15, "scaled", "mul", ("normalized", "gamma_b"), "CN", "nodeScaled"),
    Stage(16, "beta_b", "broadcastRow", ("beta",), "CN", "nodeBetaB"),
    Stage(17, "yMat", "add", ("scaled", "beta_b"), "CN", "nodeYMat"),
    Stage(18, "yChw", "reshape", ("yMat",), "CN", "nodeYChw"),
)


# TorchLean's layerNormGraph (torchlean.md §4): stages 3..16 on X directly, Lean node names
_LN_LEAN = {"mean": "nodeMean", "mean_b": "nodeMeanB", "centered": "nodeCentered",
            "centered_sq": "nodeCenteredSq", "var": "nodeVar", "var_eps": "nodeVarEps", "std": "nodeStd",
            "inv_std": "nodeInvStd", "inv_std_b": "nodeInvStdB", "normalized": "nodeNorm",
            "gamma_b": "nodeGammaB", "scaled": "nodeScaled", "beta_b": "nodeBetaB", "y": "nodeY"}
_LN_STAGES = tuple(_stats_stages("x", 3, _LN_LEAN) + _affine_stages(13, "broadcastCol", "y", _LN_LEAN))

# batch_norm: permute to channel-first and reshape (layout stages: index bijections, identities on
# (c, p) here), the row stages, and the layout back
_BATCH_STAGES = tuple(
    [Stage(3, "x_channel_first", "reshape", ("x",), "CN", None), Stage(4, "xMat", "reshape", ("x_channel_first",), "CN", None)]
    + _stats_stages("xMat", 5) + _affine_stages(15, "broadcastRow", "yMat")
    + [Stage(19, "y_channel_first", "reshape", ("yMat",), "CN", None), Stage(20, "y", "reshape", ("y_channel_first",), "CN", None)])


def _gathered_stages():
    return tuple([Stage(3, "xMat", "reshape", ("x",), "CN", None)] + _stats_stages("xMat", 4)
                 + _affine_stages(14, "gather", "yMat") + [Stage(18, "y", "reshape", ("yMat",), "CN", None)])


_RMS_STAGES = (
    Stage(2, "x_sq", "mul", ("x", "x"), "CN", None),
    Stage(3, "mean_sq", "rowMean", ("x_sq",), "C", None),
    Stage(4, "mean_sq_eps", "addEps", ("mean_sq",), "C", None),
    Stage(5, "rms", "sqrtClamp", ("mean_sq_eps",), "C", None),
    Stage(6, "inv_rms", "inv", ("rms",), "C", None),
    Stage(7, "inv_rms_b", "broadcastRow", ("inv_rms",), "CN", None),
    Stage(8, "normalized", "mul", ("x", "inv_rms_b"), "CN", None),
    Stage(9, "gamma_b", "broadcastCol", ("gamma",), "CN", None),
    Stage(10, "y", "mul", ("normalized", "gamma_b"), "CN", None),
)


@dataclass(frozen=True)
class SizeModel:
    """A layer at symbolic sizes (module docstring): the ranges of its group index and position
    index, which components of (c, p) index γ and β (``param``: ``('g', i)`` the i-th group
    component, ``('p', i)`` the i-th position component), its row-form stages and its texts."""

    layer: str
    title: str
    group: tuple
    position: tuple
    param: tuple
    centered: bool
    bias: bool
    broadcast: str
    stages: tuple
    output: str
    size_assumption: str
    group_assumption: str
    domain: str
    legend: str
    words: dict = field(compare=False, hash=False)
    lean_graph: str | None = None
    lean_backprop: str | None = None
    eps: object = EPS

    @property
    def param_ranges(self) -> tuple:
        return tuple((self.group if side == "g" else self.position)[i] for side, i in self.param)

    @property
    def param_per_group(self) -> bool:
        """γ and β are one per group (so per-group statements about them are statements)."""
        return self.param == tuple(("g", i) for i in range(len(self.group)))

    def kinds(self) -> list:
        """Node kinds of the stages, in order (a mul of a slot with itself counted as mul_same)."""
        out = []
        for st in self.stages:
            k = "mul_same" if st.kind == "mul" and st.inputs[0] == st.inputs[1] else st.kind
            if k not in out:
                out.append(k)
        if "mul_same" in out and "mul" not in out:
            out.insert(out.index("mul_same"), "mul")
        return out

    def input_shapes(self) -> dict:
        out = {"x": "CN", "gamma": "J"}
        if self.bias:
            out["beta"] = "J"
        return out


_SIZE_ASSUMPTION = "N = H·W ≥ 1 (any H, W ≥ 1; the C×H×W block is flattened row-major, p = h·W + w)"
_CHANNEL_ASSUMPTION = "C ≥ 1 (any number of channels)"
_DOMAIN = "var_c + ε > 0 for every channel c (hVarEpsPos; it implies std_c ≠ 0, hStdNe0)"

_BN_WORDS = dict(sizes="N ≥ 1", groups="C ≥ 1", n="N", C="C", grp="channel", grps="channels",
                 gam="γ_c", gamq="γ_c", bet="β_c", tgam="tγ_c", tbet="tβ_c", gj="γ_c", bj="β_c", j="c",
                 jrange="c < C")


def _words(**kw):
    base = dict(gam="γ_π(c,p)", gamq="γ_π(c,q)", bet="β_π(c,p)", tgam="tγ_π(c,p)", tbet="tβ_π(c,p)",
                gj="γ_j", bj="β_j", j="j", jrange="every weight index j")
    base.update(kw)
    return base


SIZE_MODELS: dict[str, SizeModel] = {
    "batchnorm_channel_first": SizeModel(
        "batchnorm_channel_first", "BatchNormChannelFirst, all sizes (symbolic C, H, W; N = H·W)",
        ("C",), ("N",), (("g", 0),), True, True, "broadcastRow", STAGES, "yChw",
        _SIZE_ASSUMPTION, _CHANNEL_ASSUMPTION, _DOMAIN,
        "c: a channel (one statistics group), p, q < N = H·W: positions in it; γ_c, β_c per channel",
        _BN_WORDS, "batchNormGraph", "backprop_eq_adjoint_fderiv_batchNorm_channel_first_at"),
    "batch_norm": SizeModel(
        "batch_norm", "batch_norm (training mode), all sizes (symbolic batch B, channels C, spatial S)",
        ("C",), ("B", "S"), (("g", 0),), True, True, "broadcastRow", _BATCH_STAGES, "y",
        "N = B·S ≥ 1 entries per channel: B ≥ 1 samples (the input's batch size) times S ≥ 1 spatial "
        "positions (S = prod of the spatial sizes, 1 for an (N, C) input); p = (n, s)",
        "C ≥ 1 (any number of channels)",
        "var_c + ε > 0 for every channel c (statistics over the batch and spatial axes)",
        "c: a channel (one statistics group), p = (n, s): sample n < B, spatial position s < S; γ_c, β_c "
        "per channel; the layout (permute to channel-first, reshape) is the identity on (c, p) here",
        dict(_BN_WORDS, sizes="B, S ≥ 1", n="(B·S)")),
    "instance_norm": SizeModel(
        "instance_norm", "instance_norm, all sizes (symbolic batch B, channels C, spatial S)",
        ("B", "C"), ("S",), (("g", 1),), True, True, "gather", _gathered_stages(), "y",
        "N = S ≥ 1 entries per (sample, channel) group (S = prod of the spatial sizes)",
        "B ≥ 1 samples and C ≥ 1 channels: B·C groups c = (n, c')",
        "var_(n,c) + ε > 0 for every sample n and channel c",
        "c = (n, c'): a (sample, channel) statistics group, p, q < S: spatial positions; γ, β indexed by "
        "the channel π(c, p) = c' (shared by the B samples: a gather)",
        _words(sizes="S ≥ 1", groups="B, C ≥ 1", n="S", C="(B·C)", grp="group", grps="groups")),
    "group_norm": SizeModel(
        "group_norm", "group_norm, all sizes (symbolic batch B, groups G, channels per group K, spatial S)",
        ("B", "G"), ("K", "S"), (("g", 1), ("p", 0)), True, True, "gather", _gathered_stages(), "y",
        "N = K·S ≥ 1 entries per group: K ≥ 1 channels per group (C = G·K, so G divides C) times S ≥ 1 "
        "spatial positions; p = (k, s)",
        "B ≥ 1 samples and G ≥ 1 groups: B·G statistics groups c = (n, g)",
        "var_(n,g) + ε > 0 for every sample n and group g",
        "c = (n, g): a (sample, group) statistics group, p = (k, s): channel g·K + k of the group and "
        "spatial position s; γ, β indexed by the channel π(c, p) = (g, k) (a gather; per channel, "
        "shared by the B samples and the S positions)",
        _words(sizes="K, S ≥ 1", groups="B, G ≥ 1", n="(K·S)", C="(B·G)", grp="group", grps="groups")),
    "layer_norm": SizeModel(
        "layer_norm", "layer_norm, all sizes (symbolic rows R, normalized size N)",
        ("R",), ("N",), (("p", 0),), True, True, "broadcastCol", _LN_STAGES, "y",
        "N ≥ 1 entries per row (N = prod of normalized_shape, flattened row-major)",
        "R ≥ 1 rows (R = prod of the leading sizes)",
        "var_r + ε > 0 for every row r (each index of the leading axes)",
        "c: a row (one statistics group), p, q < N: positions in normalized_shape; γ, β elementwise, "
        "indexed by the position π(c, p) = p (shared by the R rows: TorchLean's broadcastCol)",
        _words(sizes="N ≥ 1", groups="R ≥ 1", n="N", C="R", grp="row", grps="rows"),
        "layerNormGraph", "backprop_eq_adjoint_fderiv_layerNorm_at"),
    "rms_norm": SizeModel(
        "rms_norm", "rms_norm, all sizes (symbolic rows R, normalized size N)",
        ("R",), ("N",), (("p", 0),), False, False, "broadcastCol", _RMS_STAGES, "y",
        "N ≥ 1 entries per row (N = prod of normalized_shape, flattened row-major)",
        "R ≥ 1 rows (R = prod of the leading sizes)",
        "mean(x²)_r + ε > 0 for every row r (each index of the leading axes)",
        "c: a row (one statistics group), p, q < N: positions in normalized_shape; y = x·r·γ with "
        "r = 1/sqrt(mean(x²) + ε), γ elementwise (broadcastCol), no β",
        _words(sizes="N ≥ 1", groups="R ≥ 1", n="N", C="R", grp="row", grps="rows")),
}


def size_model(layer=None) -> SizeModel:
    """The :class:`SizeModel` of ``layer``: a :class:`symbolic_bn.layers.Layer` (its kind and ε;
    the shape is not used), a layer name, or None (batchnorm_channel_first, symbolic ε)."""
    if layer is None:
        return SIZE_MODELS["batchnorm_channel_first"]
    if isinstance(layer, str):
        if layer not in SIZE_MODELS:
            raise ValueError(f"layer must be a symbolic_bn.layers.Layer or one of {', '.join(SIZE_MODELS)}, "
                             f"got {layer!r}")
        return SIZE_MODELS[layer]
    from ...layers import Layer
    if not isinstance(layer, Layer):
        raise ValueError(f"layer must be a symbolic_bn.layers.Layer or a layer name, got {type(layer).__name__}"
                         + (" (pass the budget as budget=...)" if isinstance(layer, (int, float)) else ""))
    model = SIZE_MODELS.get(layer.name)
    if model is None:  # pragma: no cover - every layer kind has a model
        raise ValueError(f"layer: no all-sizes model for {layer.name!r}")
    if not layer.symbolic_eps:
        eps = Rational(layer.eps.numerator, layer.eps.denominator)
        return replace(model, eps=eps, domain=model.domain.replace("ε", f"ε (ε = {eps})", 1))
    return model


_BN = SIZE_MODELS["batchnorm_channel_first"]
