"""Performance benchmarks: every target of the issues, measured in one run on one machine.

Each measurement runs in a fresh subprocess (``run.py --child NAME``) so that its peak memory is
its own: ``peak_mb`` is the largest resident set of the process or of any worker it forked
(``prove`` forks one worker per core; ``peak_total_mb`` adds the workers' peak to the parent's, an
upper bound of what was resident at once; ``peak_sampled_mb`` is the largest sum over the process
and its workers actually resident at one moment, sampled every 20 ms from /proc).  Targets are ratios between measurements of the same
run, never absolute seconds, except where an issue states seconds; ``results.json`` keeps every
figure and each target's verdict.

Usage:  python benchmarks/run.py [--only NAME ...] [--skip-naive] [--baseline-tree DIR] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

#: The pre-engine prover at 4×16×16 (commit 57da35f's benchmarks/results.json, this machine type):
#: the baseline issue "One exact engine" asks not to regress.
BASELINE_4x16x16 = {"seconds": 38.34, "peak_mb": 7300.0, "source": "benchmarks/results.json at 57da35f"}


# ------------------------------------------------------------------------------ measurements

def _cert(cert):
    return {"ok": bool(cert.ok), "counts": dict(cert.counts())}


def _prove(layer, **kw):
    from symbolic_bn import prove
    t0 = time.perf_counter()
    cert = prove(layer, **kw)
    return {"seconds": time.perf_counter() - t0, **_cert(cert)}


def _check_backward(fn, **kw):
    from symbolic_bn import check_backward
    t0 = time.perf_counter()
    cert = check_backward(fn, **kw)
    return {"seconds": time.perf_counter() - t0, **_cert(cert)}


def naive(shape):
    """Matrix.jacobian + simplify of the output-only VJP identity of one channel (the way one
    would do it in plain SymPy) -- the baseline the complete certificate is compared with."""
    import sympy as sp
    C, H, W = shape
    n = H * W
    t0 = time.perf_counter()
    x = sp.Matrix(sp.symbols(f"x0:{n}", real=True))
    g = sp.Matrix(sp.symbols(f"g0:{n}", real=True))
    gam, eps = sp.symbols("gamma eps", positive=True)
    mean = sum(x) / n
    var = sum((xi - mean) ** 2 for xi in x) / n
    std = sp.sqrt(var + eps)
    y = sp.Matrix([gam * (xi - mean) / std for xi in x])
    lhs = y.jacobian(x).T * g
    xhat = [(xi - mean) / std for xi in x]
    s1 = sum(gam * gi for gi in g)
    s2 = sum(gam * gi * xh for gi, xh in zip(g, xhat))
    rhs = [(n * gam * g[p] - s1 - xhat[p] * s2) / (std * n) for p in range(n)]
    ok = all(sp.simplify(lhs[p] - rhs[p]) == 0 for p in range(n))
    return {"seconds": time.perf_counter() - t0, "ok": bool(ok)}


def prove_cf(shape, **kw):
    from symbolic_bn import layers
    return _prove(layers.batchnorm_channel_first(*shape), **kw)


def check_staged(shape):
    import implementations as I
    return _check_backward(I.backward_staged, shape=shape)


def check_numpy(shape):
    import implementations as I
    return _check_backward(I.numpy_backward, shape=shape)


def prove_layer(kind, *args):
    from symbolic_bn import layers
    return _prove(getattr(layers, kind)(*args))


def check_batch_norm(shape):
    import implementations as I
    from symbolic_bn import layers
    return _check_backward(I.batch_norm_backward, layer=layers.batch_norm(shape))


def prove_order(shape, order):
    from symbolic_bn import layers
    return _prove(layers.batchnorm_channel_first(*shape), order=order)


def autodiff_numeric(shape):
    import torch  # noqa: F401 - skipped without torch
    from symbolic_bn import crosscheck_autodiff, layers
    from symbolic_bn.checks.autodiff import builtin_function
    layer = layers.instance_norm(shape, eps=1e-5)
    f = builtin_function("torch.nn.functional.instance_norm", layer)
    t0 = time.perf_counter()
    res = crosscheck_autodiff(f, layer, framework="torch", order=3)
    rows = {f"{r.api} {r.mode}": r.status for r in res.rows}
    return {"seconds": time.perf_counter() - t0, "ok": bool(res.ok), "rows": rows}


def _torch_layer(kind, shape):
    from symbolic_bn import layers
    if kind in ("layer_norm", "rms_norm"):
        return getattr(layers, kind)(shape, tuple(shape[2:]), eps=1e-5)
    if kind == "group_norm":
        return layers.group_norm(shape, 1, eps=1e-5)
    return getattr(layers, kind)(shape, eps=1e-5)


def autodiff_exact(shape, order, kinds=("instance_norm",)):
    """check_autodiff of torch.nn.functional.<kind> for each kind: order 1 every mode; order 2
    the order-2 modes only."""
    import torch  # noqa: F401 - skipped without torch
    from symbolic_bn.checks.autodiff import builtin_function
    from symbolic_bn.checks.framework_autodiff import check_autodiff
    t0 = time.perf_counter()
    out = {"ok": True, "counts": {}}
    for kind in kinds:
        layer = _torch_layer(kind, shape)
        f = builtin_function(f"torch.nn.functional.{kind}", layer)
        cert = check_autodiff(f, layer, framework="torch", order=order,
                              modes="all" if order == 1 else _order_modes(order))
        out["counts"][kind] = dict(cert.counts())
        # 'decided' is the target (torch's failures are findings, not errors)
        out["ok"] = out["ok"] and cert.counts().get("undecided", 0) == 0
    out["seconds"] = time.perf_counter() - t0
    return out


def _order_modes(order):
    from symbolic_bn.checks.autodiff import _nestings
    return list(_nestings(order))


def crosscheck_cf(shape):
    from symbolic_bn import crosscheck, numeric
    t0 = time.perf_counter()
    res = crosscheck(numeric.forward, numeric.backward, shape=shape, dps=50, points=20)
    return {"seconds": time.perf_counter() - t0, "ok": bool(res.ok)}


def prove_cf_pre_engine(shape):
    """The pre-engine prover (a checkout of commit 57da35f at $SYMBOLIC_BN_BASELINE_TREE), same run."""
    tree = os.environ.get("SYMBOLIC_BN_BASELINE_TREE")
    if not tree:
        raise ImportError("no --baseline-tree given")
    sys.path.insert(0, tree)
    for mod in [m for m in sys.modules if m == "symbolic_bn" or m.startswith("symbolic_bn.")]:
        del sys.modules[mod]
    import symbolic_bn
    if not symbolic_bn.__file__.startswith(tree):
        raise ImportError(f"the baseline tree {tree} does not hold symbolic_bn")
    from symbolic_bn import batchnorm_channel_first, prove
    t0 = time.perf_counter()
    cert = prove(batchnorm_channel_first(*shape))
    return {"seconds": time.perf_counter() - t0, **_cert(cert)}


#: name -> (function, arguments, what it measures)
MEASUREMENTS = {
    "prove cf 4x16x16 pre-engine": (prove_cf_pre_engine, [(4, 16, 16)],
                                    "the prover at 57da35f (--baseline-tree), for the same-run ratio"),
    "naive 1x2x2": (naive, [(1, 2, 2)], "plain-SymPy baseline, output-only identity of one channel"),
    "naive 1x3x3": (naive, [(1, 3, 3)], "plain-SymPy baseline"),
    "prove cf 1x2x2": (prove_cf, [(1, 2, 2)], "complete certificate"),
    "prove cf 1x3x3": (prove_cf, [(1, 3, 3)], "complete certificate"),
    "prove cf 2x4x4": (prove_cf, [(2, 4, 4)], "complete certificate"),
    "prove cf 2x8x8": (prove_cf, [(2, 8, 8)], "complete certificate, 128 elements"),
    "prove cf 4x8x8": (prove_cf, [(4, 8, 8)], "complete certificate, 256 elements"),
    "prove cf 4x16x16": (prove_cf, [(4, 16, 16)], "complete certificate, 1024 elements"),
    "check staged 1x8x8": (check_staged, [(1, 8, 8)], "check_backward, README's staged backward"),
    "check staged 4x8x8": (check_staged, [(4, 8, 8)], "check_backward, README's staged backward"),
    "check staged 8x16x16": (check_staged, [(8, 16, 16)], "check_backward, README's staged backward"),
    "check numpy 4x8x8": (check_numpy, [(4, 8, 8)], "check_backward, unmodified NumPy backward"),
    "prove batch_norm 2x4x4x4": (prove_layer, ["batch_norm", (2, 4, 4, 4)], "128 elements"),
    "prove layer_norm 8x32": (prove_layer, ["layer_norm", (8, 32), (32,)], "256 elements"),
    "prove batch_norm 4x4x4x4": (prove_layer, ["batch_norm", (4, 4, 4, 4)], "256 elements"),
    "check batch_norm 4x4x4x4": (check_batch_norm, [(4, 4, 4, 4)], "check_backward(layer=batch_norm)"),
    "prove cf 2x4x4 order 1": (prove_order, [(2, 4, 4), 1], "order-1 certificate"),
    "prove cf 2x4x4 order 2": (prove_order, [(2, 4, 4), 2], "order-2 certificate"),
    "crosscheck_autodiff instance_norm 1x3x4x4": (autodiff_numeric, [(1, 3, 4, 4)],
                                                  "torch, order 3, every mode and API"),
    "check_autodiff instance_norm 1x3x4x4": (autodiff_exact, [(1, 3, 4, 4), 1],
                                             "torch's first-order autograd traced and decided"),
    "check_autodiff order-2 modes 1x2x3x3": (autodiff_exact, [(1, 2, 3, 3), 2, ("batch_norm", "instance_norm",
                                             "layer_norm", "group_norm", "rms_norm")],
                                             "every order-2 mode of the five torch functions, decided"),
    "crosscheck cf 2x4x4": (crosscheck_cf, [(2, 4, 4)], "numeric crosscheck, 20 points, 50 digits"),
}


def _tree_rss_mb(root: int) -> float:
    """Resident memory of ``root`` and all its descendants now, in MB (Linux /proc)."""
    children, rss = {}, {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/statm") as f:
                resident = int(f.read().split()[1])
        except OSError:  # the process ended meanwhile
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = resident * page
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, ()))
    return total / 2 ** 20


class _TreeSampler:
    """The largest resident memory of this process plus its workers at one moment, sampled every
    20 ms in a thread: what was really resident at once (``peak_total_mb`` bounds it above)."""

    def __init__(self):
        import threading
        self.peak, self._stop = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        me = os.getpid()
        while not self._stop.is_set():
            self.peak = max(self.peak, _tree_rss_mb(me))
            self._stop.wait(0.02)

    def __enter__(self):
        if os.path.isdir("/proc/self"):
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def child(name):
    fn, args, _ = MEASUREMENTS[name]
    sampler = _TreeSampler().__enter__()
    try:
        out = fn(*[tuple(a) if isinstance(a, list) else a for a in args])
    except ImportError as exc:
        out = {"skipped": f"not available: {exc}"}
    except TypeError as exc:  # a feature not built yet (an unknown keyword)
        out = {"skipped": f"not available: {exc}"}
    sampler.__exit__(None, None, None)
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    jobs = os.cpu_count() or 1
    out.update(peak_mb=max(me, kids), peak_total_mb=me + (jobs * kids if kids else 0),
               peak_sampled_mb=sampler.peak or None)
    print(json.dumps(out))


def _run(name, timeout):
    t0 = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, __file__, "--child", name], capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"timeout": timeout}
    lines = p.stdout.strip().splitlines()
    if p.returncode != 0 or not lines:
        return {"error": (p.stderr.strip().splitlines() or ["no output"])[-1],
                "wall": time.perf_counter() - t0}
    return json.loads(lines[-1])


# ----------------------------------------------------------------------------------- targets

def _ratio(res, a, b):
    ra, rb = res.get(a, {}), res.get(b, {})
    if "seconds" in ra and "seconds" in rb and rb["seconds"] > 0:
        return ra["seconds"] / rb["seconds"]
    return None


def targets(res):
    """Each issue's performance target: (description, measured, verdict True/False/None)."""
    out = {}

    def t(key, text, measured, ok):
        out[key] = {"target": text, "measured": measured, "met": ok}

    def decided(name):
        r = res.get(name, {})
        return r.get("ok") is True if "seconds" in r else None

    r = _ratio(res, "check staged 4x8x8", "prove cf 4x8x8")
    t("check_4x8x8_within_2x_prove", "check_backward staged 4x8x8 ≤ 2× prove 4x8x8 (issue 10)",
      r, None if r is None else r <= 2)
    t("check_decided_1x8x8_4x8x8_8x16x16", "check_backward proves at 1x8x8, 4x8x8, 8x16x16 (issue 10)",
      [decided(f"check staged {s}") for s in ("1x8x8", "4x8x8", "8x16x16")],
      all(decided(f"check staged {s}") for s in ("1x8x8", "4x8x8", "8x16x16")))
    m = res.get("check staged 4x8x8", {}).get("peak_mb")
    t("check_4x8x8_peak_le_1GB", "check_backward 4x8x8 peak memory ≤ 1 GB (issue 10)", m,
      None if m is None else m <= 1024)
    p = res.get("prove cf 4x16x16", {})
    peak = p.get("peak_sampled_mb") or p.get("peak_total_mb")
    t("prove_4x16x16_peak_le_2GB", "prove 4x16x16 peak memory ≤ 2 GB (issue 10; parent + workers resident "
      "at once, sampled every 20 ms)", peak, None if "seconds" not in p else peak <= 2048)
    old = res.get("prove cf 4x16x16 pre-engine", {})
    if "seconds" in old:  # same run: a ratio, independent of the machine's load
        r = _ratio(res, "prove cf 4x16x16", "prove cf 4x16x16 pre-engine")
        t("prove_4x16x16_time_no_worse", "prove 4x16x16 time ≤ the pre-engine prover's (57da35f) in the "
          "same run (issue 10)", r, None if r is None else r <= 1)
    else:
        t("prove_4x16x16_time_no_worse", f"prove 4x16x16 time ≤ the pre-engine {BASELINE_4x16x16['seconds']} s "
          f"({BASELINE_4x16x16['source']}) (issue 10)", p.get("seconds"),
          None if "seconds" not in p else p["seconds"] <= BASELINE_4x16x16["seconds"])
    for layer_key, cf_key, label in (("prove batch_norm 2x4x4x4", "prove cf 2x8x8", "batch_norm"),
                                     ("prove layer_norm 8x32", "prove cf 4x8x8", "layer_norm")):
        r = _ratio(res, layer_key, cf_key)
        t(f"{label}_within_2x", f"{layer_key} ≤ 2× {cf_key}, same number of elements (issue 12)", r,
          None if r is None else r <= 2)
    r = _ratio(res, "check batch_norm 4x4x4x4", "prove batch_norm 4x4x4x4")
    t("check_batch_norm_within_2x", "check_backward batch_norm 4x4x4x4 ≤ 2× prove at that shape (issue 12)",
      r, None if r is None else r <= 2)
    r = _ratio(res, "prove cf 2x4x4 order 2", "prove cf 2x4x4 order 1")
    t("order2_within_10x", "prove order=2 at 2x4x4 ≤ 10× order 1 (issue 13)", r, None if r is None else r <= 10)
    a = res.get("crosscheck_autodiff instance_norm 1x3x4x4", {}).get("seconds")
    t("crosscheck_autodiff_order3_30s", "crosscheck_autodiff order 3, torch instance_norm 1x3x4x4 ≤ 30 s "
      "(issue 13)", a, None if a is None else a <= 30)
    a = res.get("check_autodiff instance_norm 1x3x4x4", {}).get("seconds")
    t("check_autodiff_first_order_30s", "trace + exact proof of torch's first-order autograd of "
      "instance_norm 1x3x4x4 ≤ 30 s (issue 14)", a, None if a is None else a <= 30)
    a = res.get("check_autodiff order-2 modes 1x2x3x3", {}).get("seconds")
    t("check_autodiff_order2_120s", "every order-2 mode at 1x2x3x3 ≤ 120 s in total (issue 14)", a,
      None if a is None else a <= 120)
    r = _ratio(res, "naive 1x3x3", "prove cf 1x3x3")
    t("naive_over_ours_1x3x3", "plain SymPy (one channel, output only) / complete certificate at 1x3x3",
      r, None)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="run only these measurements (names as printed)")
    ap.add_argument("--skip-naive", action="store_true", help="skip the plain-SymPy baseline")
    ap.add_argument("--timeout", type=float, default=1200.0, help="seconds per measurement")
    ap.add_argument("--out", default=str(HERE / "results.json"))
    ap.add_argument("--baseline-tree", help="a checkout of commit 57da35f (git worktree add DIR 57da35f): "
                    "its prover is timed at 4x16x16 in the same run")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.baseline_tree:
        os.environ["SYMBOLIC_BN_BASELINE_TREE"] = str(Path(args.baseline_tree).resolve())
    if args.child:
        child(args.child)
        return 0
    names = list(MEASUREMENTS)
    if args.only:
        unknown = [n for n in args.only if n not in MEASUREMENTS]
        if unknown:
            ap.error(f"--only: unknown measurement(s) {unknown}; known: {names}")
        names = args.only
    if args.skip_naive:
        names = [n for n in names if not n.startswith("naive")]
    results = {}
    for name in names:
        r = _run(name, args.timeout)
        results[name] = r
        shown = (f"{r['seconds']:8.2f} s  peak {r['peak_mb']:6.0f} MB  ok={r.get('ok')}" if "seconds" in r
                 else str(r))
        print(f"{name:<44} {shown}", flush=True)
    # versions last: a parent holding torch and jax would raise every child's ru_maxrss
    # (Linux keeps the high-water mark across fork + exec)
    import mpmath
    import numpy
    import sympy
    versions = {"sympy": sympy.__version__, "mpmath": mpmath.__version__, "numpy": numpy.__version__}
    for mod in ("flint", "torch", "jax"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            pass
    tg = targets(results)
    print()
    for key, v in tg.items():
        verdict = {True: "met", False: "NOT met", None: "n/a"}[v["met"]]
        measured = v["measured"]
        if isinstance(measured, float):
            measured = f"{measured:.2f}"
        print(f"[{verdict:>7}] {v['target']}: {measured}")
    doc = {"schema": 2, "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                    "platform": platform.platform()},
           "versions": versions, "measurements": results, "targets": tg,
           "baseline_4x16x16": BASELINE_4x16x16}
    Path(args.out).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
