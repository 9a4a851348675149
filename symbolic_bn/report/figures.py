"""The report's pictures as :class:`~symbolic_bn.report.sections.Figure` objects (SVG written by
:mod:`symbolic_bn.report.svg`; no plotting library), built from the collected JSON-ready data.

* :func:`crosscheck_err_bound` -- the cross-check's deciding quantity, err/bound per output and
  run, with the pass/fail threshold 1 (ULPs are in the table, not plotted: they do not decide).
* :func:`jacobian_blocks`, :func:`jacobian_output_pattern` -- the exact dependence structure.
* :func:`proof_times` -- proof time against the number of inputs.
* :func:`pass_fail_grid` -- any rows x columns PASS/FAIL table (e.g. layers x autodiff modes).
"""
from __future__ import annotations

from . import svg
from .sections import Figure

OUTPUT_LABELS = {"y": "y (forward)", "dx": "dx", "dgamma": "dγ", "dbeta": "dβ"}


def _shape(shape) -> str:
    return "x".join(str(d) for d in shape)


def crosscheck_err_bound(cc: dict, key: str = "crosscheck-err-bound") -> Figure:
    """Bars of max err/bound (over all points and components) per output, one bar per
    (implementation, dtype) run; dashed line at 1, the pass/fail threshold."""
    runs = cc["runs"]
    outputs = list(runs[0]["result"]["outputs"]) if runs else []
    series = [(f"{r['implementation']} {r['dtype']}",
               [r["result"]["outputs"][o]["max_ratio"] for o in outputs]) for r in runs]
    title = f"Cross-check: largest err/bound per output (shape {_shape(cc['shape'])}, {cc['points']} inputs)"
    body = svg.bar_chart([OUTPUT_LABELS.get(o, o) for o in outputs], series, title=title,
                         y_label="max err/bound (log scale)", name=key, log=True, reference=1.0,
                         reference_label="1 = pass/fail threshold",
                         value_label=lambda v: f"err/bound = {v:.3g}")
    caption = ("err/bound: for every output component, err = |computed − reference| (the reference "
               f"is mpmath at {cc['dps']} significant digits on the same rounded inputs) divided "
               "by bound, the rounding-error allowance a correct float implementation of that dtype "
               "stays under (formula in the table below). A bar below the dashed line at 1 passes; "
               "above it fails. Each bar is the largest ratio over all inputs and components. "
               "Errors in ULPs (units in the last place) are in the table; they do not decide "
               "pass/fail, because a correct float32 result can be many ULPs off where the "
               "problem is ill-conditioned (e.g. a large mean).")
    return Figure(key, title, body, caption)


def jacobian_blocks(jac: dict, key: str = "jacobian-blocks") -> Figure:
    """Heat map: nonzero partial derivatives of each recorded value (slot) per input block."""
    rows = [r["slot"] for r in jac["slots"]]
    values = [r["nonzeros_per_block"] for r in jac["slots"]]
    cols = [b.replace("gamma", "γ").replace("beta", "β") for b in jac["blocks"]]
    title = f"Jacobian block structure ({_shape(jac['shape'])}): nonzero ∂slot/∂input per block"
    body = svg.heat_map(values, rows, cols, title=title, legend_title="nonzero partials",
                        name=key, log=True)
    caption = ("Rows: the values the forward records on its tape (slots), in order, from the "
               "inputs x, γ, β to the output yChw. Columns: the inputs of each channel c "
               "(x[c] is the H×W block of channel c). A cell counts the (slot entry, input entry) "
               "pairs whose partial derivative is not identically zero, computed exactly; white "
               "means none. Nothing crosses channels: the Jacobian is block diagonal.")
    return Figure(key, title, body, caption)


def jacobian_output_pattern(jac: dict, key: str = "jacobian-output") -> Figure:
    """Zero/nonzero pattern of the output's Jacobian, entry by entry."""
    ny, nx = len(jac["output_rows"]), len(jac["inputs"])
    values = [[0] * nx for _ in range(ny)]
    for i, cols in enumerate(jac["output_nonzero_columns"]):
        for j in cols:
            values[i][j] = 1
    cols = [c.replace("gamma", "γ").replace("beta", "β").replace(" ", "") for c in jac["inputs"]]
    rows = [r.replace(" ", "") for r in jac["output_rows"]]
    title = f"Which inputs each output entry depends on ({_shape(jac['shape'])})"
    body = svg.heat_map(values, rows, cols, title=title, legend_title="∂y/∂input", name=key,
                        log=False, show_values=False,
                        categories={0: ("zero", "#ffffff"), 1: ("nonzero", "#08519c")})
    caption = (f"One row per output entry {jac['output_slot']}[c, h, w], one column per input "
               "entry; a filled cell is a partial derivative that is not identically zero. Each "
               "output entry depends on every x entry, γ and β of its own channel only.")
    return Figure(key, title, body, caption)


def proof_times(points, key: str = "proof-times") -> Figure:
    """``points``: ``(shape, input_size, seconds)`` per BN certificate, plotted on log axes."""
    pts = [(float(n), max(float(s), 1e-4), _shape(shape)) for shape, n, s in points]
    title = "BN certificate: proof time against shape"
    body = svg.line_chart([("proof time", pts)], title=title,
                          x_label="inputs C·(H·W + 2) (log scale)",
                          y_label="seconds (log scale)", name=key, log_x=True, log_y=True)
    caption = ("Wall-clock time of the exact proof at each shape C×H×W (this machine, one run; "
               "a timing, not a claim), against the number of scalar inputs C·(H·W + 2).")
    return Figure(key, title, body, caption)


def layer_proof_times(series, key: str = "layer-proof-times") -> Figure:
    """``series``: ``(layer name, [(inputs, seconds, shape label), ...])``, one line per layer."""
    title = "Every layer: proof time against the number of inputs"
    body = svg.line_chart(series, title=title, x_label="scalar inputs: x, weight, bias (log scale)",
                          y_label="seconds (log scale)", name=key, log_x=True, log_y=True)
    caption = ("Wall-clock time of each layer's complete certificate (ε symbolic) at growing shapes "
               "(this machine, one run; a timing, not a claim), against the number of scalar inputs. A shape "
               "label is left out where it would cover another; hovering a point shows it.")
    return Figure(key, title, body, caption)


def pass_fail_grid(key: str, title: str, row_labels, col_labels, statuses, caption: str = "") -> Figure:
    """A PASS/FAIL grid figure: ``statuses[i][j]`` for row ``row_labels[i]`` and column
    ``col_labels[j]``, each one of PASS, FAIL, UNDECIDED, SKIPPED (or None), or proved / failed /
    undecided.  For example layers x autodiff modes."""
    body = svg.status_grid(list(row_labels), list(col_labels), [list(r) for r in statuses],
                           title=title, name=key)
    return Figure(key, title, body, caption or
                  "PASS: every obligation in the cell proved (or every check passed); FAIL: at "
                  "least one failed, with a counterexample in its table; UNDECIDED: neither "
                  "proved nor refuted within the time budget; —: not run.")
