"""Performance benchmark (issue 6): naive SymPy baseline vs the complete certificate.

In one run, on one machine:

(a) the naive baseline -- ``Matrix.jacobian`` + ``simplify`` of the *output-only* VJP identity of
    a single channel (``Jᵀg − closed-form dx == 0`` with symbolic g) at 1×2×2 and 1×3×3;
(b) the complete certificate ``prove(batchnorm_channel_first(...))`` -- every obligation, including
    the end-to-end identity with the full-context seed -- at 1×2×2, 1×3×3, 1×4×4, 2×4×4, 4×4×4,
    4×8×8 and onward until a 60 s budget is spent;
(c) ``check_backward`` and ``crosscheck`` at 2×4×4.

Each measurement runs in a fresh subprocess (peak memory = its max RSS).  Prints a table, the
ratio naive/ours at equal shapes and the fitted growth exponents in C and in N = H·W, and writes
``benchmarks/results.json``.

Usage:  python benchmarks/run.py [--budget 60] [--jobs J] [--backend flint|sympy] [--quick]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

NAIVE = r'''
import sys, time, json, signal
import sympy as sp
C, H, W = map(int, sys.argv[1:4])
n = H * W
t0 = time.perf_counter()
x = sp.Matrix(sp.symbols(f"x0:{n}", real=True))
g = sp.Matrix(sp.symbols(f"g0:{n}", real=True))
gam, eps = sp.symbols("gamma eps", positive=True)
mean = sum(x) / n
var = sum((xi - mean) ** 2 for xi in x) / n
std = sp.sqrt(var + eps)
y = sp.Matrix([gam * (xi - mean) / std for xi in x])
J = y.jacobian(x)
lhs = J.T * g
xhat = [(xi - mean) / std for xi in x]
S1 = sum(gam * gi for gi in g)
S2 = sum(gam * gi * xh for gi, xh in zip(g, xhat))
rhs = sp.Matrix([(n * gam * g[p] - S1 - xhat[p] * S2) / (std * n) for p in range(n)])
ok = all(sp.simplify(lhs[p] - rhs[p]) == 0 for p in range(n))
print(json.dumps({"seconds": time.perf_counter() - t0, "ok": bool(ok)}))
'''

OURS = r'''
import sys, time, json, resource
from collections import defaultdict
from symbolic_bn import batchnorm_channel_first, prove
C, H, W = map(int, sys.argv[1:4]); jobs = int(sys.argv[4]); backend = sys.argv[5]
t0 = time.perf_counter()
cert = prove(batchnorm_channel_first(C, H, W), jobs=jobs, backend=backend)
wall = time.perf_counter() - t0
groups = defaultdict(float)
for ob in cert:
    groups[ob.group] += ob.seconds
peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(json.dumps({"seconds": wall, "ok": cert.ok, "counts": cert.counts(), "groups": groups,
                  "peak_mb": peak / 1024, "jacobian_entries": cert.parameters.get("jacobian_entries"),
                  "jobs": cert.parameters.get("jobs")}))
'''

CHECKS = r'''
import json, time
import numpy as np
out = {}
try:
    from symbolic_bn.checks.check import check_backward
    from symbolic_bn import numeric
    t0 = time.perf_counter()
    cert = check_backward(numeric.backward, shape=(2, 4, 4))
    out["check_backward_2x4x4"] = {"seconds": time.perf_counter() - t0, "ok": cert.ok}
except ImportError as exc:
    out["check_backward_2x4x4"] = {"skipped": str(exc)}
try:
    from symbolic_bn.checks.crosscheck import crosscheck
    from symbolic_bn import numeric
    t0 = time.perf_counter()
    res = crosscheck(numeric.forward, numeric.backward, shape=(2, 4, 4), dps=50, points=20)
    out["crosscheck_2x4x4"] = {"seconds": time.perf_counter() - t0, "ok": res.ok}
except ImportError as exc:
    out["crosscheck_2x4x4"] = {"skipped": str(exc)}
print(json.dumps(out))
'''


def _run(code, args, timeout):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(HERE.parent) + os.pathsep + env.get("PYTHONPATH", "")
    try:
        proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                              text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"timeout": timeout}
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fit(points):
    """Least-squares slope of log(seconds) against log(size)."""
    if len(points) < 2:
        return None
    xs = [math.log(a) for a, _ in points]
    ys = [math.log(b) for _, b in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return None if den == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=60.0, help="seconds for the growing-shape sweep")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--backend", default=None, help="flint or sympy (default: fastest installed)")
    ap.add_argument("--naive-timeout", type=float, default=600.0)
    ap.add_argument("--quick", action="store_true", help="skip the naive baseline at 1x3x3")
    ap.add_argument("--out", default=str(HERE / "results.json"))
    args = ap.parse_args(argv)
    from symbolic_bn.exact.backends import default_backend
    backend = args.backend or default_backend()

    results = {"schema": 1, "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                        "platform": platform.platform()},
               "backend": backend, "jobs": args.jobs, "naive": {}, "ours": {}, "checks": {}}
    import sympy, mpmath, numpy
    results["versions"] = {"sympy": sympy.__version__, "mpmath": mpmath.__version__, "numpy": numpy.__version__}
    try:
        import flint
        results["versions"]["python-flint"] = flint.__version__
    except ImportError:
        pass

    naive_shapes = [(1, 2, 2)] + ([] if args.quick else [(1, 3, 3)])
    for shape in naive_shapes:
        key = "x".join(map(str, shape))
        r = _run(NAIVE, shape, args.naive_timeout)
        results["naive"][key] = r
        print(f"naive  {key:>7}: {r}", flush=True)

    sweep = [(1, 2, 2), (1, 3, 3), (1, 4, 4), (2, 4, 4), (4, 4, 4), (4, 8, 8),
             (8, 8, 8), (4, 12, 12), (16, 8, 8), (4, 16, 16)]
    spent = 0.0
    for shape in sweep:
        if spent >= args.budget and shape not in [(1, 2, 2), (1, 3, 3), (1, 4, 4), (2, 4, 4), (4, 4, 4), (4, 8, 8)]:
            break
        key = "x".join(map(str, shape))
        r = _run(OURS, [*shape, args.jobs, backend], max(args.budget * 3, 180))
        results["ours"][key] = r
        if "seconds" in r:
            spent += r["seconds"]
        print(f"ours   {key:>7}: {r.get('seconds', r)!s:.8} s  ok={r.get('ok')}  groups="
              f"{ {k: round(v, 2) for k, v in r.get('groups', {}).items()} }  peak={r.get('peak_mb', 0):.0f} MB",
              flush=True)

    results["checks"] = _run(CHECKS, [], 600)
    print(f"checks : {results['checks']}", flush=True)

    ratios = {}
    for key, r in results["naive"].items():
        if "seconds" in r and "seconds" in results["ours"].get(key, {}):
            ratios[key] = r["seconds"] / results["ours"][key]["seconds"]
    results["ratio_naive_over_ours"] = ratios

    ours = {tuple(map(int, k.split("x"))): v["seconds"] for k, v in results["ours"].items() if "seconds" in v}
    growth_c = _fit([(c, t) for (c, h, w), t in ours.items() if h * w == 16])
    growth_c64 = _fit([(c, t) for (c, h, w), t in ours.items() if h * w == 64])
    growth_n = _fit([(h * w, t) for (c, h, w), t in ours.items() if c == 4])
    results["growth_exponent_C_at_N16"] = growth_c
    results["growth_exponent_C_at_N64"] = growth_c64
    results["growth_exponent_N_at_C4"] = growth_n
    t488 = ours.get((4, 8, 8))
    results["targets"] = {
        "ratio_at_1x3x3_ge_50": ratios.get("1x3x3", 0) >= 50 if "1x3x3" in ratios else None,
        "complete_4x8x8_within_60s": t488 is not None and t488 <= 60 and results["ours"]["4x8x8"]["ok"],
        "growth_C_about_linear": (growth_c is not None and growth_c <= 1.3
                                  and (growth_c64 is None or growth_c64 <= 1.3)),
        "growth_N_at_most_cubic": growth_n is not None and growth_n <= 3.2,
    }

    print()
    print(f"{'shape':>8} {'seconds':>9} {'stage':>7} {'e2e':>7} {'link':>7} {'domain':>7} {'peak MB':>8}  status")
    for key, r in results["ours"].items():
        if "seconds" not in r:
            print(f"{key:>8} {r}")
            continue
        gr = r["groups"]
        print(f"{key:>8} {r['seconds']:9.2f} {gr.get('stage', 0):7.2f} {gr.get('end-to-end', 0):7.2f} "
              f"{gr.get('link', 0):7.2f} {gr.get('domain', 0):7.2f} {r['peak_mb']:8.0f}  "
              f"{'all proved' if r['ok'] else r['counts']}")
    for key, ratio in ratios.items():
        print(f"naive/ours at {key}: {ratio:.0f}x "
              f"(naive {results['naive'][key]['seconds']:.2f} s for the output-only identity of one channel; "
              f"ours {results['ours'][key]['seconds']:.2f} s for the complete certificate)")
    print(f"growth exponent in C (N = 16): {growth_c}")
    print(f"growth exponent in C (N = 64): {growth_c64}")
    print(f"growth exponent in N (C = 4):  {growth_n}")
    print(f"targets: {results['targets']}")
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
