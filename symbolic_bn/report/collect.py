"""The report's collectors: each runs one part of the report's computation and describes the
result as a :class:`~symbolic_bn.report.sections.Section` (no rendering here).

``DEFAULT_COLLECTORS`` is the report as ``symbolic-bn report`` writes it:

* :func:`batchnorm_section` -- the BN graph certificate at each shape, the all-sizes certificate,
  the Jacobian structure, proof times;
* :func:`~symbolic_bn.report.collect_layers.layers_section` -- every layer of symbolic_bn.layers:
  certificates at two shapes, ε symbolic and 1e-5, proof times, the torch.nn.functional names;
* :func:`~symbolic_bn.report.collect_higher.higher_order_section` -- order-2/3 certificates of every
  layer, torch's derivative code traced and decided exactly, torch's modes measured to order 3;
* :func:`bounds_section` -- the inference-mode bound rules;
* :func:`crosscheck_section` -- our float runtime and PyTorch against the mpmath reference.

A new section is one more function ``def my_section(ctx: Context) -> Section`` appended to the
list passed to ``generate(collectors=...)`` (or to ``DEFAULT_COLLECTORS``).  Everything is
deterministic apart from timings.
"""
from __future__ import annotations

import importlib
import platform
import time

import numpy as np

from . import figures
from .sections import Context, Record, Section, Table

SCHEMA_VERSION = 2
DEFAULT_SHAPES = ((1, 2, 2), (2, 2, 2), (2, 3, 3), (4, 8, 8))
PROVE_SEED = 0
CROSSCHECK = {"shape": (2, 4, 4), "eps": 1e-5, "dps": 50, "points": 20, "seed": 0}
JACOBIAN_SHAPE = (2, 2, 2)
FAMILY_WORDS = {"normal": "normal", "large_mean": "large mean", "small_variance": "small variance",
                "mixed_scales": "mixed scales"}


def versions() -> dict:
    out = {"python": platform.python_version()}
    for mod, key in (("symbolic_bn", "symbolic_bn"), ("sympy", "sympy"), ("mpmath", "mpmath"),
                     ("numpy", "numpy"), ("flint", "python-flint"), ("torch", "torch")):
        try:
            m = importlib.import_module(mod)
            out[key] = getattr(m, "__version__", "unknown")
        except Exception:  # noqa: BLE001 - optional dependency absent or broken
            out[key] = None
    return out


def shape_name(shape) -> str:
    return "x".join(str(d) for d in shape)


def _shape_words(shape) -> str:
    return "×".join(str(d) for d in shape)


def _join(words) -> str:
    words = list(words)
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _counts_words(counts: dict) -> str:
    return ", ".join(f"{v} {k}" for k, v in counts.items())


def certificate_record(rid: str, title: str, cert: dict, **data) -> Record:
    """A record for a ``Certificate.to_dict()`` (its verdict, counts and time)."""
    return Record(rid, title, bool(cert["ok"]), dict(cert["counts"]), float(cert["seconds"]),
                  {"id": rid, "title": title, **data, "certificate": cert})


# ------------------------------------------------------------------------------- BN certificate

def bn_record(shape) -> Record:
    from .. import batchnorm_channel_first, prove
    t0 = time.perf_counter()
    cert = prove(batchnorm_channel_first(*shape), seed=PROVE_SEED).to_dict()
    seconds = time.perf_counter() - t0
    return certificate_record(f"bn-{shape_name(shape)}", f"BN graph {shape_name(shape)}", cert,
                              kind="bn", shape=list(shape), eps=["symbolic ε"],
                              seeds={"counterexample_search": PROVE_SEED}, seconds=seconds)


def allsizes_record():
    """The all-sizes certificate as a record, or ``(None, note)`` when it is unavailable."""
    try:
        from ..obligations.allsizes import prove_all_sizes
    except ImportError as exc:
        return None, f"all-sizes certificate skipped: symbolic_bn.obligations.allsizes is unavailable ({exc})"
    cert = prove_all_sizes().to_dict()
    return certificate_record("allsizes", "BN graph, all sizes", cert, kind="allsizes",
                              shape="symbolic C, N = H·W", eps=["symbolic ε"], seeds={},
                              seconds=cert["seconds"]), None


def jacobian_structure(shape=JACOBIAN_SHAPE) -> dict:
    """Exact dependence pattern of every slot entry on every input entry, computed on the exact
    engine: a partial derivative counts when the engine decides it is not zero on the domain."""
    from .. import batchnorm_channel_first
    from ..exact.normal import is_zero_value
    from ..obligations.prove import _subject
    from ..obligations.setting import ProofSetting
    layer, graph = _subject(batchnorm_channel_first(*shape))
    setting = ProofSetting(layer, graph)
    space = setting.space
    jac = setting.problem.inputs.jacobian()
    names = layer.argument_names
    C = graph.C
    inputs = [(n, idx) for n in names for idx in np.ndindex(*np.shape(setting.inputs[n]))]
    col = {k: i for i, k in enumerate(inputs)}
    channel_of = {k: (k[1][0]) for k in inputs}
    labels = {"x": "x", "gamma": "gamma", "beta": "beta"}
    blocks = [f"{labels.get(n, n)}[{c}]" for c in range(C) for n in names]
    block_of = {k: blocks.index(f"{labels.get(k[0], k[0])}[{channel_of[k]}]") for k in inputs}
    slot_rows, entry_rows, entry_cols = [], [], []
    for s in graph.slots:
        arr = np.asarray(setting.values[s], dtype=object)
        counts = [0] * len(blocks)
        for idx in np.ndindex(arr.shape):
            grad = [e for e, d in jac.of(arr[idx]).items()
                    if e in col and not d.is_syntactic_zero() and not is_zero_value(space, d)]
            for e in grad:
                counts[block_of[e]] += 1
            if s == graph.slots[-1]:
                entry_rows.append(f"{s}{list(int(i) for i in idx)}")
                entry_cols.append(sorted(col[e] for e in grad))
        slot_rows.append({"slot": s, "shape": list(arr.shape), "nonzeros_per_block": counts})
    return {"shape": list(shape), "blocks": blocks, "slots": slot_rows,
            "output_slot": graph.slots[-1], "inputs": [f"{n}{list(int(i) for i in idx)}" for n, idx in inputs],
            "output_rows": entry_rows, "output_nonzero_columns": entry_cols}


def jacobian_table(jac: dict) -> Table:
    rows = [(r["slot"], "×".join(map(str, r["shape"])) or "scalar", *map(str, r["nonzeros_per_block"]))
            for r in jac["slots"]]
    return Table(("slot", "shape", *jac["blocks"]), rows,
                 title=f"Jacobian block structure ({shape_name(jac['shape'])})",
                 caption="Nonzero partial derivatives of each slot (a value the forward records "
                         "on its tape) with respect to each input block, exact (decided on the engine): "
                         "every slot of channel c depends only on x[c], γ[c], β[c].",
                 folded=True)


GROUP_ORDER = ("stage", "link", "domain", "end-to-end")
HIGHER_GROUP = "higher-order"


def _group_status(cert: dict, group: str) -> str:
    sts = [ob["status"] for ob in cert["obligations"] if ob["group"] == group]
    if not sts:
        return "SKIPPED"
    if "failed" in sts:
        return "FAIL"
    if "undecided" in sts:
        return "UNDECIDED"
    return "PASS"


def _bn_statement(records, alls, alls_note) -> str:
    ok = [r for r in records if r.ok]
    bad = [r for r in records if not r.ok]
    what = ("The backward pass (backprop through the recorded tape: the reverse-mode rule "
            "autograd runs in loss.backward()) equals the adjoint (transpose) of the derivative "
            "of the forward: backward(x, γ, β; g) = J(x, γ, β)ᵀ·g for every incoming gradient g, "
            "where J is the Jacobian of (x, γ, β) ↦ y.")
    domain = ("for every input x, γ, β and every ε with var + ε > 0 in every channel (so for "
              "every input when ε > 0)")
    parts = []
    if ok:
        n = ok[0].counts.get("proved", 0)
        same = all(r.counts.get("proved", 0) == n for r in ok)
        each = f", {n} obligations each" if same else ""
        parts.append(f"Proved {domain}, at the shapes "
                     f"{_join(_shape_words(r.data['shape']) for r in ok)} (C×H×W{each})")
    if bad:
        parts.append(("NOT proved" if not ok else "not proved") + " at "
                     + _join(f"{_shape_words(r.data['shape'])} ({_counts_words(r.counts)})" for r in bad)
                     + ": see the failed or undecided obligations below")
    text = what + " " + "; ".join(parts)
    if alls is not None and alls.ok and ok:
        text += (f", and for all sizes C ≥ 1, H·W ≥ 1 by the all-sizes certificate "
                 f"({alls.counts.get('proved', 0)} obligations).")
    elif alls is not None and alls.ok:
        text += (f". The all-sizes certificate holds ({alls.counts.get('proved', 0)} "
                 f"obligations).")
    elif alls is not None:
        text += (f". The all-sizes certificate did not hold ({_counts_words(alls.counts)}): "
                 f"nothing is claimed beyond the listed shapes.")
    else:
        text += f". {alls_note}: nothing is claimed beyond the listed shapes."
    return text


LAYER_WORDS = ("The layer: training-mode BatchNorm on one C×H×W input. Per channel c, mean_c and "
               "the population variance var_c (divided by N = H·W, not N − 1) over the H·W "
               "positions, and y = γ_c·(x − mean_c)/√(var_c + ε) + β_c, ε inside the square root. "
               "In PyTorch: nn.BatchNorm2d in training mode on a batch of one, or F.instance_norm "
               "on a (1, C, H, W) tensor.")


def batchnorm_section(ctx: Context) -> Section:
    records = []
    for shape in dict.fromkeys(tuple(s) for s in ctx.shapes):  # each shape once, in order
        ctx.say(f"report: proving the BN graph at {shape_name(shape)}")
        records.append(bn_record(shape))
    ctx.say("report: all-sizes certificate")
    alls, note = allsizes_record()
    ctx.say("report: Jacobian structure")
    jac = jacobian_structure()
    jtable = jacobian_table(jac)
    blocks, pattern = figures.jacobian_blocks(jac), figures.jacobian_output_pattern(jac)
    for r in records:  # every BN record's Markdown shows the structure; the JSON at its shape
        if tuple(r.data["shape"]) == tuple(jac["shape"]):
            r.data["jacobian_structure"] = jac
        r.tables.append(jtable)
        r.figure_keys += [blocks.key, pattern.key]
    times = figures.proof_times([(r.data["shape"], r.certificate["parameters"]["input_size"],
                                  r.certificate["seconds"]) for r in records])
    grid_rows = [shape_name(r.data["shape"]) for r in records]
    grid = figures.pass_fail_grid(
        "bn-obligation-groups", "BN certificate by shape and obligation group", grid_rows,
        list(GROUP_ORDER), [[_group_status(r.certificate, g) for g in GROUP_ORDER] for r in records],
        caption="stage: each node's backward (VJP) is the adjoint of its derivative; link: the "
                "graph equals the closed-form BatchNorm (forward, backward, JVP); domain: what "
                "var + ε > 0 implies; end-to-end: backprop through the whole tape equals Jᵀ·g, "
                "and nothing crosses channels. PASS: every obligation of the group proved.")
    time_table = Table(("shape", "inputs C·(H·W+2)", "obligations", "seconds"),
                       [(shape_name(r.data["shape"]), r.certificate["parameters"]["input_size"],
                         sum(r.counts.values()), f"{r.certificate['seconds']:.2f}") for r in records],
                       title="Proof time against shape")
    if alls is not None:
        records.append(alls)
    explanation = [
        LAYER_WORDS,
        "How: the forward is the graph of 16 recorded stages (xMat, mean, …, yChw: the values on "
        "the tape, called slots). Each stage's backward rule is proved to be the adjoint of the "
        "stage's derivative (stage obligations); then backprop through the whole tape is "
        "compared with the transpose of the Jacobian of the map from the inputs to every slot "
        "(end-to-end). Every comparison is exact: rational arithmetic and polynomial normal "
        "forms over the atoms 1/√(var_c + ε), never floating point or sampling. 'proved under "
        "assumptions' means proved where the listed assumptions (var_c + ε > 0) hold.",
        "The all-sizes certificate repeats the argument with C and N = H·W as symbols "
        "(index-level calculus: sums over a symbolic number of terms), and confirms it by "
        "expansion at small sizes.",
    ]
    sec = Section("batchnorm", "TorchLean's channel-first BatchNorm (BatchNorm2d in training mode, one "
                  "sample): backward = adjoint of the derivative",
                  _bn_statement([r for r in records if r.data.get("kind") == "bn"], alls, note),
                  claim="proved",
                  records=records, figures=[grid, blocks, pattern, times],
                  tables=[jtable, time_table], explanation=explanation,
                  notes=[note] if note else [])
    return sec


# --------------------------------------------------------------------------------------- bounds

def bounds_section(ctx: Context) -> Section:
    from .. import bounds
    ctx.say("report: proving the bound rules")
    cert = bounds.prove().to_dict()
    rec = certificate_record("bounds", "Inference BatchNorm bounds", cert, kind="bounds", shape=None,
                             eps=["symbolic ε"], seeds={}, seconds=cert["seconds"])
    head = ("With frozen running statistics (model.eval()), BatchNorm is y = scale·x + offset per "
            "channel, scale = γ/√(max(running_var, 0) + ε). The box rules of symbolic-bn bounds — "
            "output bounds from input bounds (interval bound propagation, IBP), composition with "
            "an affine layer, and first- and second-derivative boxes —")
    if rec.ok:
        statement = (f"{head} are proved sound and tight: for all parameters with "
                     f"max(running_var, 0) + ε > 0 and every input in the box, the output lies in "
                     f"the computed box, and each bound is attained ({rec.counts['proved']} "
                     f"obligations proved).")
    else:
        statement = f"{head} are NOT all proved ({_counts_words(rec.counts)}): see below."
    return Section("bounds", "Inference-mode BatchNorm bounds", statement, claim="proved",
                   records=[rec])


# ----------------------------------------------------------------------------------- cross-check

def _torch_impls():
    import torch
    from ..frontends.torch_reference import instance_norm_backward, instance_norm_forward
    torch.manual_seed(0)
    return instance_norm_forward, instance_norm_backward


CC_HEAD = ("implementation", "dtype", "output", "max abs err", "max rel err", "max ULP",
           "max err/bound", "max ULP per input family", "result")


def crosscheck_rows(cc):
    rows = []
    for r in cc["runs"]:
        res = r["result"]
        for name, o in res["outputs"].items():
            fam_ulp = "; ".join(f"{FAMILY_WORDS.get(f, f)}: {fd['max_ulp'].get(name, 0):.4g}"
                                for f, fd in res["families"].items())
            rows.append((r["implementation"], r["dtype"], name, f"{o['max_abs']:.3e}",
                         f"{float(o['max_rel']):.3e}", f"{o['max_ulp']:.4g}", f"{o['max_ratio']:.3e}",
                         fam_ulp, "PASS" if o["ok"] else "FAIL"))
    return rows


def crosscheck_table(cc) -> Table:
    formula = cc["runs"][0]["result"]["bound"]["formula"] if cc["runs"] else ""
    return Table(CC_HEAD, crosscheck_rows(cc), title="Cross-check results", status_column=8,
                 caption=("err = |computed − reference| per component; max abs / max rel: its "
                          "largest absolute and relative value; ULP: err in units in the last "
                          "place of the reference in that dtype; err/bound: err divided by the "
                          "allowance " + formula + " (u: unit roundoff of the dtype, N = H·W, "
                          "E and R: condition scales of the elementwise operations and of the "
                          "sums, kappa: condition of x̂; see symbolic_bn.checks.crosscheck). "
                          "PASS when err/bound ≤ 1 for every component."))


def crosscheck_section(ctx: Context) -> Section:
    from ..checks import numeric
    from ..checks.crosscheck import crosscheck
    ctx.say("report: cross-checking against mpmath")
    notes = []
    impls = {"symbolic_bn.numeric": (numeric.forward, numeric.backward)}
    if ctx.torch:
        try:
            impls["torch (instance_norm + autograd)"] = _torch_impls()
        except ImportError:
            notes.append("PyTorch is not installed: its rows are left out")
    else:
        notes.append("PyTorch left out (--no-torch)")
    runs = []
    t0 = time.perf_counter()
    cc = CROSSCHECK
    for impl, (fw, bw) in impls.items():
        for dtype in ("float32", "float64"):
            res = crosscheck(fw, bw, shape=cc["shape"], eps=cc["eps"], dtype=dtype, dps=cc["dps"],
                             points=cc["points"], seed=cc["seed"])
            runs.append({"implementation": impl, "dtype": dtype, "result": res.to_dict()})
    seconds = time.perf_counter() - t0
    data = {"kind": "crosscheck", "id": "crosscheck", "title": "Cross-check against mpmath",
            "shape": list(cc["shape"]), "eps": [cc["eps"]], "dps": cc["dps"], "points": cc["points"],
            "seeds": {"crosscheck": cc["seed"]}, "runs": runs, "notes": notes,
            "ok": all(r["result"]["ok"] for r in runs), "seconds": seconds}
    results = [o["ok"] for r in runs for o in r["result"]["outputs"].values()]
    counts = {"passed": sum(results), "failed": len(results) - sum(results)}
    fig = figures.crosscheck_err_bound(data)
    table = crosscheck_table(data)
    rec = Record("crosscheck", data["title"], data["ok"], counts, seconds, data, tables=[table],
                 figure_keys=[fig.key])
    families = list(dict.fromkeys(f for r in runs for f in r["result"]["families"]))
    who = ["symbolic-bn's own float32/float64 runtime (symbolic_bn.checks.numeric)"]
    if any(r["implementation"].startswith("torch") for r in runs):
        who.append("PyTorch (F.instance_norm with autograd for the backward)")
    verdict = (f"{counts['passed']} of {len(results)} (implementation, dtype, output) results are "
               f"within their rounding-error bound (err/bound ≤ 1)" if results else "nothing was run")
    if counts["failed"]:
        verdict += f"; {counts['failed']} are NOT"
    statement = (f"{_join(who)} were run in float32 and float64 on {cc['points']} inputs of shape "
                 f"{_shape_words(cc['shape'])} with ε = {cc['eps']:g} "
                 f"({len(families)} input families: {_join(FAMILY_WORDS.get(f, f) for f in families)}) "
                 f"and compared with the same BatchNorm computed by mpmath at {cc['dps']} significant "
                 f"digits on the same rounded inputs — the forward y and the backward dx, dγ, dβ: "
                 f"{verdict}. This is a floating-point test at sampled inputs, not a proof.")
    return Section("crosscheck", f"Cross-check against a {cc['dps']}-digit reference", statement,
                   claim="cross-checked", records=[rec], figures=[fig], tables=[table],
                   notes=notes)


def _layers_section(ctx: Context) -> Section:
    from .collect_layers import layers_section  # its own module; it imports this one
    return layers_section(ctx)


def _higher_order_section(ctx: Context) -> list:
    from .collect_higher import higher_order_section
    return higher_order_section(ctx)


DEFAULT_COLLECTORS = (batchnorm_section, _layers_section, _higher_order_section, bounds_section,
                      crosscheck_section)
