"""The report's section on higher-order derivatives.

* exact: ``prove(layer, order=3)`` for every layer (and order 2 at a second shape): closure of the
  tape under differentiation, every fwd/rev nesting against the engine's own k-th derivative,
  Hessian symmetry, the closed-form double backward;
* measured: ``crosscheck_autodiff`` of PyTorch's ``torch.nn.functional`` layers and of the same
  layers composed of primitive ops (the control group), every mode and API up to order 3, against
  a 50-digit reference -- stated as measured for the installed torch;
* exact, traced: ``check_autodiff`` of the same torch functions up to order 2 (the framework's
  own derivative code run on the exact engine), when torch is installed.
"""
from __future__ import annotations

import time
from fractions import Fraction

from . import figures
from .collect import GROUP_ORDER, HIGHER_GROUP, PROVE_SEED, _group_status, _join, certificate_record, shape_name
from .sections import Context, Record, Section, Table

#: (constructor, shape, extra arguments, order) for the exact certificates
EXACT_CASES = (
    ("batchnorm_channel_first", (1, 2, 2), {}, 3), ("batchnorm_channel_first", (2, 2, 3), {}, 2),
    ("batch_norm", (2, 2, 2), {}, 3), ("batch_norm", (2, 2, 3), {}, 2),
    ("instance_norm", (1, 2, 3), {}, 3), ("instance_norm", (2, 2, 3), {}, 2),
    ("layer_norm", (2, 3), {"normalized_shape": (3,)}, 3), ("layer_norm", (2, 2, 2), {"normalized_shape": (2, 2)}, 2),
    ("group_norm", (1, 4, 1), {"groups": 2}, 3), ("group_norm", (1, 4, 2), {"groups": 2}, 2),
    ("rms_norm", (2, 3), {"normalized_shape": (3,)}, 3), ("rms_norm", (2, 2, 2), {"normalized_shape": (2, 2)}, 2),
)

#: the torch functions measured: (layer constructor, shape, extra arguments)
TORCH_CASES = (
    ("batch_norm", (2, 2, 3), {}),
    ("instance_norm", (1, 2, 2, 2), {}),
    ("layer_norm", (2, 2, 3), {"normalized_shape": (2, 3)}),
    ("group_norm", (1, 4, 3), {"groups": 2}),
    ("rms_norm", (2, 4), {"normalized_shape": (4,)}),
)
TORCH_EPS = Fraction(1, 10 ** 5)
NUMERIC = {"order": 3, "points": 2, "seed": 0, "dtype": "float64"}
EXACT_TRACE_ORDER = 2


def _make(kind, shape, kwargs, eps=None):
    from .. import layers
    if kind == "batchnorm_channel_first":
        return layers.batchnorm_channel_first(*shape, eps=eps)
    return getattr(layers, kind)(shape, eps=eps, **kwargs)


def _label(kind, shape, kwargs) -> str:
    extra = "".join(f", {k}={v}" for k, v in kwargs.items())
    return f"{kind} {shape_name(shape)}{extra}"


def _exact_part(ctx):
    from .. import prove
    records, rows, grid_rows, grid = [], [], [], []
    groups = list(GROUP_ORDER) + [HIGHER_GROUP]
    for kind, shape, kwargs, order in EXACT_CASES:
        ctx.say(f"report: order-{order} certificate of {_label(kind, shape, kwargs)}")
        t0 = time.perf_counter()
        cert = prove(_make(kind, shape, kwargs), order=order, seed=PROVE_SEED).to_dict()
        seconds = time.perf_counter() - t0
        rid = f"higher-{kind.replace('_', '-')}-{shape_name(shape)}-order{order}"
        rec = certificate_record(rid, f"{_label(kind, shape, kwargs)}, order {order}", cert,
                                 kind="higher", layer=kind, shape=list(shape), order=order,
                                 eps=["symbolic ε"], seeds={"counterexample_search": PROVE_SEED},
                                 seconds=seconds)
        records.append(rec)
        grid_rows.append(f"{_label(kind, shape, kwargs)}, order {order}")
        grid.append([_group_status(cert, g) for g in groups])
        higher = [o for o in cert["obligations"] if o["group"] == HIGHER_GROUP]
        rows.append((_label(kind, shape, kwargs), order, len(higher),
                     sum(o["status"] == "proved" for o in higher), f"{seconds:.2f}",
                     "PASS" if rec.ok else "FAIL"))
    fig = figures.pass_fail_grid(
        "higher-order-groups", "Higher-order certificates by obligation group", grid_rows, groups, grid,
        caption="One row per certificate (layer, shape, order, ε symbolic). higher-order: the tape's "
                "backward and JVP, built as graphs of the same node kinds, are again differentiated "
                "correctly (closure); every nesting of forward (fwd) and reverse (rev) mode up to the "
                "order equals the k-th derivative of the forward computed independently; the Hessian "
                "is symmetric; the closed-form double backward is the derivative of the backward. "
                "The other columns are the order-1 groups.")
    table = Table(("certificate", "order", "higher-order obligations", "proved", "seconds", "result"), rows,
                  title="Higher-order certificates", status_column=5)
    return records, fig, table


def _torch_cases():
    from ..checks.autodiff import builtin_function
    from ..frontends.torch_primitive import primitive_function
    for kind, shape, kwargs in TORCH_CASES:
        layer = _make(kind, shape, kwargs, eps=TORCH_EPS)
        yield f"F.{kind}", kind, layer, builtin_function(f"torch.nn.functional.{kind}", layer)
        yield f"primitive ops ({kind})", kind, layer, primitive_function(layer)


def _mode_cell(rows, mode):
    sts = [r.status for r in rows if r.mode == mode]
    if not sts:
        return None
    if "FAIL" in sts:
        return "FAIL"
    if "ERROR" in sts:
        return "UNDECIDED"  # the framework raised: neither pass nor a wrong value
    return "PASS"


def _numeric_part(ctx):
    import torch
    from ..checks.autodiff import _nestings, crosscheck_autodiff
    modes = ["primal"] + [m for k in range(1, NUMERIC["order"] + 1) for m in _nestings(k)]
    results, grid_rows, grid, worst_rows = [], [], [], []
    for label, kind, layer, f in _torch_cases():
        ctx.say(f"report: crosscheck_autodiff of {label} to order {NUMERIC['order']}")
        res = crosscheck_autodiff(f, layer, framework="torch", order=NUMERIC["order"], points=NUMERIC["points"],
                                  seed=NUMERIC["seed"], dtype=NUMERIC["dtype"])
        results.append({"function": label, "layer": kind, "shape": list(layer.input_shape), "result": res.to_dict()})
        grid_rows.append(f"{label} {shape_name(layer.input_shape)}")
        grid.append([_mode_cell(res.rows, m) for m in modes])
        for r in res.failures():
            if r.status == "FAIL" and r.worst is not None:
                worst_rows.append((label, r.mode, r.api, f"{r.worst.framework_value:.10g}",
                                   r.worst.reference_value[:18], f"{r.err_over_bound:.3g}", "FAIL"))
            else:
                worst_rows.append((label, r.mode, r.api, "raised", r.message[:60], "", r.status))
    fig = figures.pass_fail_grid(
        "autodiff-torch-modes", f"PyTorch {torch.__version__}: autodiff modes up to order 3 (measured)",
        grid_rows, modes, grid,
        caption="Each cell: the framework's directional derivative of that mode (\"A-over-B\" is A applied "
                "to B(f): fwd-over-rev is a JVP of a VJP, the Hessian-vector product), at random "
                "points and directions, against a 50-digit reference, for every torch API that runs "
                "it (torch.func, torch.autograd.grad with create_graph, forward-mode dual numbers). "
                "PASS: within the float64 error bound for every API; FAIL: some API is off by more "
                "than the bound; UNDECIDED here: the framework raised (e.g. not implemented). "
                "'primitive ops' rows are the same layers written with mean/sub/mul/sqrt/div only: "
                "the control group.")
    worst = Table(("function", "mode", "api", "framework value", "reference value", "err/bound", "status"),
                  worst_rows, title="Failing rows at their worst point", status_column=6,
                  caption="The worst point's value computed by torch and the exact reference (50 "
                          "digits) of one component; err/bound: the error over the dtype-aware "
                          "bound (1 = at the bound).")
    return results, fig, worst


def _exact_trace_part(ctx):
    import torch
    from ..checks.framework_autodiff import check_autodiff
    records, rows = [], []
    for label, kind, layer, f in _torch_cases():
        if not label.startswith("F."):
            continue
        ctx.say(f"report: check_autodiff (exact, traced) of {label} to order {EXACT_TRACE_ORDER}")
        t0 = time.perf_counter()
        cert = check_autodiff(f, layer, framework="torch", order=EXACT_TRACE_ORDER).to_dict()
        seconds = time.perf_counter() - t0
        rid = f"traced-torch-{kind.replace('_', '-')}-{shape_name(layer.input_shape)}"
        rec = certificate_record(rid, f"torch {label} traced, order {EXACT_TRACE_ORDER}", cert,
                                 kind="traced", layer=kind, shape=list(layer.input_shape),
                                 eps=["1e-5"], seeds={}, seconds=seconds)
        rec.audited = f"torch {torch.__version__}"   # torch's derivative code is the subject
        records.append(rec)
        failed = [o["name"] for o in cert["obligations"] if o["status"] == "failed"]
        rows.append((label, shape_name(layer.input_shape), rec.counts.get("proved", 0),
                     rec.counts.get("failed", 0), rec.counts.get("undecided", 0),
                     ", ".join(failed) or "—"))
    table = Table(("function", "shape", "proved", "failed", "undecided", "failed modes"), rows,
                  title=f"torch's own derivative code, traced and decided exactly (order ≤ {EXACT_TRACE_ORDER})",
                  caption="'failed' carries an exact counterexample, re-confirmed by running torch in "
                          "float64 at that point.")
    return records, table


def higher_order_section(ctx: Context) -> list:
    """Two sections: the exact higher-order certificates (with torch's traced derivative code
    decided exactly, when torch is installed), and the measured modes of torch's layers."""
    records, exact_fig, exact_table = _exact_part(ctx)
    tables, notes = [exact_table], []
    measured_section = None
    torch = None
    if ctx.torch:
        try:
            import torch
        except ImportError:
            notes.append("PyTorch is not installed: the framework rows are left out")
    else:
        notes.append("PyTorch left out (--no-torch)")
    traced_words = ""
    if torch is not None:
        traced, ttable = _exact_trace_part(ctx)
        records += traced
        tables.append(ttable)
        bad = [r for r in traced if r.counts.get("failed")]
        traced_words = (f" torch {torch.__version__}'s own derivative code for "
                        f"{_join(r.data['layer'] for r in traced)}, traced and run on the exact engine up "
                        f"to order {EXACT_TRACE_ORDER}: "
                        + (f"wrong in some modes for {_join(r.data['layer'] for r in bad)} (exact "
                           f"counterexamples, re-confirmed by torch in float64), right in all others."
                           if bad else "right in every mode."))
        t0 = time.perf_counter()
        results, fig, worst = _numeric_part(ctx)
        seconds = time.perf_counter() - t0
        n_rows = sum(len(r["result"]["rows"]) for r in results)
        n_pass = sum(row["status"] == "PASS" for r in results for row in r["result"]["rows"])
        data = {"kind": "autodiff", "id": "autodiff-torch", "torch": torch.__version__,
                "settings": dict(NUMERIC), "runs": results, "seconds": seconds, "ok": n_rows == n_pass}
        rec = Record("autodiff-torch", f"crosscheck_autodiff, torch {torch.__version__}", data["ok"],
                     {"passed": n_pass, "failed": n_rows - n_pass}, seconds, data, tables=[worst],
                     figure_keys=[fig.key])
        # torch's functions are the subject; the primitive-op control group tests our reference,
        # so a failure there is a failure of the report, not a finding about torch
        if all(r["result"]["ok"] for r in results if not r["function"].startswith("F.")):
            rec.audited = f"torch {torch.__version__}"
        bad = sorted({r["function"] for r in results if not r["result"]["ok"]})
        statement = (f"PyTorch {torch.__version__}'s higher-order autodiff of its normalization layers, "
                     f"measured in float64 at {NUMERIC['points']} random points per function, every "
                     f"fwd/rev nesting and every API up to order {NUMERIC['order']}, against a 50-digit "
                     f"reference: "
                     + (f"{_join(bad)} give wrong values in some modes (see the grid and the worst "
                        f"points)" if bad else "every function passes every mode")
                     + "; the same layers written with primitive ops pass every mode. This is a "
                       "floating-point test at sampled inputs, not a proof.")
        measured_section = Section("autodiff-torch", f"PyTorch {torch.__version__}: higher-order autodiff, "
                                   "measured", statement, claim="cross-checked", records=[rec],
                                   figures=[fig], tables=[worst])
    exact = [r for r in records if r.data.get("kind") == "higher"]
    ok = all(r.ok for r in exact)
    statement = ("Second and third derivatives, exactly: for every layer, the tape's backward and JVP "
                 "are themselves correctly differentiated, every nesting of forward and reverse mode "
                 "up to order 3 equals the exact k-th derivative of the forward, the Hessian is "
                 "symmetric, and the closed-form double backward (PyTorch's shape) is the derivative "
                 "of the backward — " + (f"proved at {len(exact)} certificates (order 3 at one shape of each layer, "
                                          f"order 2 at a second), ε symbolic." if ok else
                                         "NOT all proved: see the failed or undecided obligations.")
                 + traced_words)
    exact_section = Section("higher-order", "Higher-order derivatives: every order, every fwd/rev nesting",
                            statement, claim="proved", records=records, figures=[exact_fig], tables=tables,
                            notes=notes)
    return [exact_section] + ([measured_section] if measured_section is not None else [])
