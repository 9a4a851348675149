"""Pictures of the report as PNG bytes (matplotlib, optional: the ``report`` extra).

Every function returns ``None`` when matplotlib is absent; the report then carries a note and
the text tables only.  PNGs are written without metadata so that identical data give identical
bytes.
"""
from __future__ import annotations

import io


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _plt():
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    plt.rcParams.update({"svg.hashsalt": "symbolic-bn", "font.size": 9})
    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None}, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def jacobian_blocks(jac: dict):
    """Left: nonzero partial derivatives per (slot, input block); right: the output's pattern."""
    if not available():
        return None
    import numpy as np
    plt = _plt()
    M = np.array([r["nonzeros_per_block"] for r in jac["slots"]], dtype=float)
    ny, nx = len(jac["output_rows"]), len(jac["inputs"])
    S = np.zeros((ny, nx))
    for i, cols in enumerate(jac["output_nonzero_columns"]):
        S[i, cols] = 1
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 5.5), gridspec_kw={"width_ratios": [1, 1.4]})
    a.imshow(np.where(M > 0, np.log2(M + 1), np.nan), cmap="viridis", aspect="auto")
    a.set_xticks(range(len(jac["blocks"])), jac["blocks"], rotation=60)
    a.set_yticks(range(len(jac["slots"])), [r["slot"] for r in jac["slots"]])
    for (i, j), v in np.ndenumerate(M):
        if v:
            a.text(j, i, str(int(v)), ha="center", va="center", fontsize=7, color="white")
    a.set_title(f"nonzero ∂slot/∂input per block ({'x'.join(map(str, jac['shape']))})")
    b.imshow(S, cmap="Greys", aspect="auto", interpolation="nearest")
    b.set_xticks(range(nx), jac["inputs"], rotation=90, fontsize=6)
    b.set_yticks(range(ny), jac["output_rows"], fontsize=6)
    b.set_title(f"sparsity of ∂{jac['output_slot']}/∂(x, γ, β)")
    fig.tight_layout()
    return _png(fig)


def ulp_errors(cc: dict):
    """Largest error in ULPs per output, per implementation and dtype (log scale)."""
    if not available():
        return None
    import numpy as np
    plt = _plt()
    runs = cc["runs"]
    outputs = list(runs[0]["result"]["outputs"]) if runs else []
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(len(runs), 1)
    for k, r in enumerate(runs):
        vals = [max(float(r["result"]["outputs"][o]["max_ulp"]), 0.5) for o in outputs]
        ax.bar(np.arange(len(outputs)) + k * width, vals, width,
               label=f"{r['implementation']} {r['dtype']}")
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(outputs)) + 0.4 - width / 2, outputs)
    ax.set_ylabel("max |error| in ULPs of the reference")
    ax.set_title(f"error vs mpmath ({cc['dps']} digits), shape {'x'.join(map(str, cc['shape']))}, "
                 f"{cc['points']} points, all families")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def proof_times(bn_subjects: list):
    """Proof time against the number of inputs C·(N+2)."""
    if not available():
        return None
    plt = _plt()
    xs, ys, labels = [], [], []
    for s in bn_subjects:
        p = s["certificate"]["parameters"]
        xs.append(p["input_size"])
        ys.append(s["certificate"]["seconds"])
        labels.append("x".join(map(str, s["shape"])))
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(xs, ys, "o-")
    for x, y, t in zip(xs, ys, labels):
        ax.annotate(t, (x, y), textcoords="offset points", xytext=(4, 4))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("inputs C·(H·W + 2)")
    ax.set_ylabel("proof time (s)")
    ax.set_title("BN graph certificate: proof time against shape")
    fig.tight_layout()
    return _png(fig)
