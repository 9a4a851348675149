"""Time crosscheck at shape 2×4×4, dps 50, 20 points (float32 and float64).

Target (not a test): under 5 s per run on the project's 2-core machine.  Run with
``PYTHONPATH=. python3 benchmarks/bench_crosscheck.py``.
"""
from __future__ import annotations

import json
import time

from symbolic_bn import numeric
from symbolic_bn.checks.crosscheck import crosscheck

SHAPE = (2, 4, 4)
DPS = 50
POINTS = 20
REPEATS = 3


def run(repeats: int = REPEATS) -> dict:
    """Return, per dtype, the best and mean wall time of forward+backward, forward-only and
    backward-only checks of the NumPy runtime, and the worst err/bound seen."""
    figures = {"shape": list(SHAPE), "dps": DPS, "points": POINTS, "repeats": repeats}
    for dtype in ("float32", "float64"):
        for label, kwargs in (("forward+backward", dict(forward=numeric.forward, backward=numeric.backward)),
                              ("forward", dict(forward=numeric.forward)),
                              ("backward", dict(backward=numeric.backward))):
            times = []
            res = None
            for _ in range(repeats):
                t0 = time.perf_counter()
                res = crosscheck(**kwargs, shape=SHAPE, dps=DPS, points=POINTS, dtype=dtype, seed=0)
                times.append(time.perf_counter() - t0)
            figures[f"{dtype} {label}"] = {
                "best_s": min(times),
                "mean_s": sum(times) / len(times),
                "ok": res.ok,
                "worst_err_over_bound": max(o.max_ratio for o in res.outputs.values()),
            }
    return figures


if __name__ == "__main__":
    out = run()
    for key, val in out.items():
        if isinstance(val, dict):
            print(f"{key:<28} best {val['best_s']:.3f} s  mean {val['mean_s']:.3f} s  "
                  f"ok={val['ok']}  worst err/bound {val['worst_err_over_bound']:.2e}")
    print(json.dumps(out))
