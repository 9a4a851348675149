"""Run every subject of the report and gather JSON-ready data (no rendering here)."""
from __future__ import annotations

import importlib
import platform
import time

import numpy as np

SCHEMA_VERSION = 1
DEFAULT_SHAPES = ((1, 2, 2), (2, 2, 2), (2, 3, 3), (4, 8, 8))
PROVE_SEED = 0
CROSSCHECK = {"shape": (2, 4, 4), "eps": 1e-5, "dps": 50, "points": 20, "seed": 0}
JACOBIAN_SHAPE = (2, 2, 2)


def versions() -> dict:
    out = {"python": platform.python_version()}
    for mod, key in (("symbolic_bn", "symbolic_bn"), ("sympy", "sympy"), ("mpmath", "mpmath"),
                     ("numpy", "numpy"), ("flint", "python-flint"), ("matplotlib", "matplotlib"),
                     ("torch", "torch")):
        try:
            m = importlib.import_module(mod)
            out[key] = getattr(m, "__version__", "unknown")
        except Exception:  # noqa: BLE001 - optional dependency absent or broken
            out[key] = None
    return out


def shape_name(shape) -> str:
    return "x".join(str(d) for d in shape)


def bn_subject(shape) -> dict:
    from .. import batchnorm_channel_first, prove
    t0 = time.perf_counter()
    cert = prove(batchnorm_channel_first(*shape), seed=PROVE_SEED)
    return {"kind": "bn", "id": f"bn-{shape_name(shape)}", "title": f"BN graph {shape_name(shape)}",
            "shape": list(shape), "eps": ["symbolic ε"], "seeds": {"counterexample_search": PROVE_SEED},
            "certificate": cert.to_dict(), "seconds": time.perf_counter() - t0}


def bounds_subject() -> dict:
    from .. import bounds
    cert = bounds.prove()
    return {"kind": "bounds", "id": "bounds", "title": "Inference BatchNorm bounds",
            "shape": None, "eps": ["symbolic ε"], "seeds": {}, "certificate": cert.to_dict(),
            "seconds": cert.seconds}


def allsizes_subject():
    try:
        from ..obligations.allsizes import prove_all_sizes
    except ImportError as exc:
        return None, f"all-sizes subject skipped: symbolic_bn.obligations.allsizes is unavailable ({exc})"
    cert = prove_all_sizes()
    return {"kind": "allsizes", "id": "allsizes", "title": "BN graph, all sizes",
            "shape": "symbolic C, N = H·W", "eps": ["symbolic ε"], "seeds": {},
            "certificate": cert.to_dict(), "seconds": cert.seconds}, None


def _torch_impls():
    import torch
    from ..frontends.torch_reference import instance_norm_backward, instance_norm_forward
    torch.manual_seed(0)
    return instance_norm_forward, instance_norm_backward


def crosscheck_subject(use_torch: bool = True):
    from ..checks import numeric
    from ..checks.crosscheck import crosscheck
    notes = []
    impls = {"symbolic_bn.numeric": (numeric.forward, numeric.backward)}
    if use_torch:
        try:
            impls["torch (instance_norm + autograd)"] = _torch_impls()
        except ImportError:
            notes.append("PyTorch is not installed: its rows are left out")
    else:
        notes.append("PyTorch left out (--no-torch)")
    rows = []
    t0 = time.perf_counter()
    cc = CROSSCHECK
    for impl, (fw, bw) in impls.items():
        for dtype in ("float32", "float64"):
            res = crosscheck(fw, bw, shape=cc["shape"], eps=cc["eps"], dtype=dtype, dps=cc["dps"],
                             points=cc["points"], seed=cc["seed"])
            rows.append({"implementation": impl, "dtype": dtype, "result": res.to_dict()})
    return {"kind": "crosscheck", "id": "crosscheck", "title": "Cross-check against mpmath",
            "shape": list(cc["shape"]), "eps": [cc["eps"]], "dps": cc["dps"], "points": cc["points"],
            "seeds": {"crosscheck": cc["seed"]}, "runs": rows, "notes": notes,
            "ok": all(r["result"]["ok"] for r in rows), "seconds": time.perf_counter() - t0}


def jacobian_structure(shape=JACOBIAN_SHAPE) -> dict:
    """Exact dependence pattern of every slot entry on every input entry, computed in the atom
    algebra (a derivative is nonzero iff the entry's polynomial contains the input's coordinate)."""
    from .. import batchnorm_channel_first
    from ..obligations.prove import _BNAtoms
    graph = batchnorm_channel_first(*shape)
    bn = _BNAtoms(graph)
    alg = bn.alg
    values = graph.evaluate(bn.inputs, alg)
    cache = {}
    inputs = list(bn.input_keys)
    col = {k: i for i, k in enumerate(inputs)}
    C = graph.C
    blocks = [f"{s}[{c}]" for c in range(C) for s in ("x", "gamma", "beta")]
    block_of = {k: blocks.index(f"{k[0]}[{k[1]}]") for k in inputs}
    slot_rows, entry_rows, entry_cols = [], [], []
    for s in graph.slots:
        arr = values[s]
        counts = [0] * len(blocks)
        for idx in np.ndindex(arr.shape):
            grad = alg.gradient(arr[idx], inputs, cache)
            for j in grad:
                counts[block_of[j]] += 1
            if s == graph.slots[-1]:
                entry_rows.append(f"{s}{list(int(i) for i in idx)}")
                entry_cols.append(sorted(col[j] for j in grad))
        slot_rows.append({"slot": s, "shape": list(arr.shape), "nonzeros_per_block": counts})
    return {"shape": list(shape), "blocks": blocks, "slots": slot_rows,
            "output_slot": graph.slots[-1], "inputs": [f"{k[0]}{list(k[1:])}" for k in inputs],
            "output_rows": entry_rows, "output_nonzero_columns": entry_cols}
