"""The report's section on every normalization layer (symbolic_bn.layers).

For each layer, certificates at two shapes with ε symbolic and with ε = 1e-5 (the shapes the
issue "Every normalization layer" asks for: N ≥ 2 for batch_norm, a 3-D input for layer_norm,
G ∉ {1, C} for group_norm), a PASS/FAIL grid by obligation group, the proof time against the
number of inputs for all layers in one picture, and the correspondence with
``torch.nn.functional``.
"""
from __future__ import annotations

import time
from fractions import Fraction

from . import figures
from .collect import GROUP_ORDER, PROVE_SEED, _group_status, _join, certificate_record, shape_name
from .sections import Context, Section, Table

EPS_NUMBER = Fraction(1, 10 ** 5)

#: (constructor name, keyword arguments beyond the shape, shapes): two certificate shapes first,
#: then larger ones only for the proof-time picture.
LAYER_CASES = (
    ("batch_norm", {}, ((2, 3, 2), (2, 2, 2, 2)), ((2, 4, 4, 4),)),
    ("instance_norm", {}, ((2, 2, 3), (1, 2, 2, 3)), ((2, 4, 4, 4),)),
    ("layer_norm", {"normalized_shape": "last"}, ((2, 3, 4), (2, 2, 3)), ((8, 4, 8),)),
    ("group_norm", {"groups": 2}, ((2, 4, 2), (1, 4, 2, 2)), ((2, 4, 4, 4),)),
    ("rms_norm", {"normalized_shape": "last"}, ((2, 3, 4), (3, 5)), ((8, 4, 8),)),
)

TORCH_NAMES = {
    "batchnorm_channel_first": ("F.instance_norm on (1, C, H, W), or nn.BatchNorm2d(training) on a "
                                "batch of one", "(C, H, W)", "per channel, over H·W"),
    "batch_norm": ("F.batch_norm(training=True); nn.BatchNorm1d/2d/3d in training mode", "(N, C, *spatial)",
                   "per channel, over N and the spatial axes"),
    "instance_norm": ("F.instance_norm; nn.InstanceNorm1d/2d/3d(affine=True)", "(N, C, *spatial)",
                      "per (n, c), over the spatial axes"),
    "layer_norm": ("F.layer_norm; nn.LayerNorm(normalized_shape)", "(*, *normalized_shape)",
                   "per leading index, over normalized_shape; γ, β elementwise"),
    "group_norm": ("F.group_norm; nn.GroupNorm(G, C)", "(N, C, *spatial)",
                   "per (n, group of C/G contiguous channels), over the group and the spatial axes"),
    "rms_norm": ("F.rms_norm; nn.RMSNorm(normalized_shape)", "(*, *normalized_shape)",
                 "mean(x²) per leading index; no centering, no β"),
}


def _make(kind, kwargs, shape, eps):
    from .. import layers
    kw = dict(kwargs)
    if kw.get("normalized_shape") == "last":
        kw["normalized_shape"] = (shape[-1],) if len(shape) == 2 else tuple(shape[-2:])
    return getattr(layers, kind)(shape, eps=eps, **kw)


def _label(layer) -> str:
    extra = ""
    if layer.name == "group_norm":
        extra = f", G={layer.groups}"
    elif layer.name in ("layer_norm", "rms_norm"):
        extra = f", normalized_shape={tuple(layer.normalized_shape)}"
    return f"{layer.name} {shape_name(layer.input_shape)}{extra}"


def _inputs(layer) -> int:
    n = 1
    for d in layer.input_shape:
        n *= d
    for shp in (layer.weight_shape, layer.bias_shape):
        if shp is not None:
            k = 1
            for d in shp:
                k *= d
            n += k
    return n


def layers_section(ctx: Context) -> Section:
    from .. import prove
    records, grid_rows, grid, rows, series = [], [], [], [], []
    for kind, kwargs, shapes, extra in LAYER_CASES:
        points = []
        for shape in shapes + extra:
            for eps in ((None, EPS_NUMBER) if shape in shapes else (None,)):
                layer = _make(kind, kwargs, shape, eps)
                ctx.say(f"report: proving {_label(layer)}, ε {'symbolic' if eps is None else '1e-5'}")
                t0 = time.perf_counter()
                cert = prove(layer, seed=PROVE_SEED).to_dict()
                seconds = time.perf_counter() - t0
                if eps is None:
                    points.append((shape, _inputs(layer), seconds))
                if shape not in shapes:
                    continue
                eps_word = "symbolic ε" if eps is None else "ε = 1e-5"
                rid = f"layer-{kind.replace('_', '-')}-{shape_name(shape)}-{'eps' if eps is None else 'eps1e-5'}"
                rec = certificate_record(rid, f"{_label(layer)}, {eps_word}", cert, kind="layer",
                                         layer=kind, shape=list(shape), eps=[eps_word],
                                         seeds={"counterexample_search": PROVE_SEED}, seconds=seconds)
                records.append(rec)
                grid_rows.append(f"{_label(layer)}, {eps_word}")
                grid.append([_group_status(cert, g) for g in GROUP_ORDER])
                rows.append((_label(layer), eps_word, _inputs(layer), sum(rec.counts.values()),
                             rec.counts.get("proved", 0), f"{seconds:.2f}", "PASS" if rec.ok else "FAIL"))
        series.append((kind, [(float(n), max(s, 1e-4), shape_name(shp)) for shp, n, s in points]))
    grid_fig = figures.pass_fail_grid(
        "layers-obligation-groups", "Every layer: certificate by obligation group", grid_rows,
        list(GROUP_ORDER), grid,
        caption="One row per certificate (layer, shape, ε). stage: each node's backward is the adjoint "
                "of its derivative; link: the graph equals the layer's closed forms (forward, "
                "backward, JVP); domain: what var + ε > 0 (mean(x²) + ε > 0 for RMSNorm) implies; "
                "end-to-end: backprop through the whole tape equals Jᵀ·g and nothing crosses "
                "statistics groups. PASS: every obligation of the group proved.")
    times_fig = figures.layer_proof_times(series)
    table = Table(("certificate", "ε", "inputs", "obligations", "proved", "seconds", "result"), rows,
                  title="Certificates of every layer", status_column=6)
    torch_table = Table(("symbolic_bn.layers", "PyTorch", "layout of x", "statistics"),
                        [(k, *TORCH_NAMES[k]) for k in TORCH_NAMES],
                        title="Correspondence with torch.nn.functional",
                        caption="Population variance everywhere (divided by the group size, not "
                                "size − 1), ε inside the square root, as PyTorch normalizes. "
                                "Running statistics are outside the gradient. Eval-mode BatchNorm "
                                "(frozen running statistics) is an affine map per channel: see "
                                "the inference-bounds section.")
    ok = [r for r in records if r.ok]
    bad = [r for r in records if not r.ok]
    statement = ("For BatchNorm in training mode (N×C×…), InstanceNorm, LayerNorm, GroupNorm and "
                 "RMSNorm, the backward pass (backprop through the layer's recorded tape) equals "
                 "the adjoint of the derivative of the forward, for every input with var + ε > 0 "
                 "in every statistics group (mean(x²) + ε > 0 for RMSNorm), and the tape equals "
                 "the layer's closed-form forward, backward and JVP")
    if not bad:
        statement += (f": proved at {len(ok)} certificates "
                      f"({_join(sorted({r.data['layer'] for r in ok}))}, two shapes each, ε "
                      f"symbolic and ε = 1e-5).")
    else:
        statement += (f": NOT proved for {_join(r.title for r in bad)} (see the failed or "
                      f"undecided obligations); proved for the {len(ok)} others.")
    explanation = [
        "Each layer is a graph of TorchLean-style node kinds (reshape, axis permutation, row mean, "
        "broadcast, elementwise ops, sqrtClamp, inv, gather for group layouts); the obligations are "
        "those of the channel-first certificate: per stage, end to end with a full-context seed, "
        "the block structure (independent statistics groups), the links to the closed forms and "
        "the domain.",
    ]
    return Section("layers", "Every normalization layer: backward = adjoint of the derivative", statement,
                   claim="proved", records=records, figures=[grid_fig, times_fig],
                   tables=[table, torch_table], explanation=explanation)
