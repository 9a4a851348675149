"""The ``symbolic-bn`` command line.

Subcommands: ``prove`` (the BatchNormChannelFirst certificate), ``check`` (a user's forward /
backward implementation: exact symbolic check when it takes ``xp``, mpmath cross-check otherwise),
``bounds`` (inference BatchNorm IBP / derivative boxes and their certificate) and ``report``
(regenerates ``reports/``).

Exit status: 0 when everything checked holds, 1 when an obligation failed or a check did not
pass (or is undecided), 2 for bad usage or input.  User errors are one line on stderr.
Nothing typed on the command line goes through ``eval`` or ``sympify``: shapes are matched by a
strict pattern, numbers parsed by :func:`symbolic_bn.exact.decide.to_exact` (integers by an ASCII-digit
pattern), and ``MODULE:FUNCTION`` is validated by an identifier pattern and imported with
:mod:`importlib`.  All output is assembled before anything is printed, so an error never leaves a
partial report on stdout.  The checked code cannot end the run: ``SystemExit`` (or any other
``BaseException`` but ``KeyboardInterrupt``) at import is a usage error, and while being checked a
failed check.
"""
from __future__ import annotations

import argparse
import functools
import importlib
import inspect
import json
import math
import os
import re
import sys
import threading
import time
from contextlib import contextmanager
from fractions import Fraction

# every pattern is applied with re.fullmatch (``$`` would accept a trailing newline)
SHAPE_RE = re.compile(r"([0-9]{1,4})x([0-9]{1,4})x([0-9]{1,4})", re.ASCII)
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
TARGET_RE = re.compile(rf"({_IDENT}(?:\.{_IDENT})*):({_IDENT})", re.ASCII)
_INT_RE = re.compile(r"[+-]?[0-9]{1,9}", re.ASCII)
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]{1,9}(?:\.[0-9]{0,9})?|\.[0-9]{1,9})(?:[eE][+-]?[0-9]{1,3})?", re.ASCII)
MAX_DPS = 10000
MAX_JSON_DEPTH = 32


class UsageError(Exception):
    """Bad command-line input: reported as one line on stderr with exit status 2."""


def _one_line(text) -> str:
    return " ".join(str(text).split())


def parse_shape(text: str):
    """``'CxHxW'`` with positive integers, e.g. ``2x3x3``."""
    m = SHAPE_RE.fullmatch(text or "")
    if not m:
        raise UsageError(f"--shape must look like CxHxW with positive integers (e.g. 2x3x3), got {text!r}")
    dims = tuple(int(g) for g in m.groups())
    if min(dims) <= 0:
        raise UsageError(f"--shape dimensions must be positive, got {text!r}")
    from .graphs.batchnorm import check_shape
    try:
        check_shape(*dims)
    except ValueError as exc:
        raise UsageError(f"--shape: {exc}") from None
    return dims


def parse_eps(text: str | None):
    """``None``/``'symbolic'`` → symbolic ε; otherwise an exact decimal or fraction."""
    if text is None or text.strip().lower() in ("symbolic", "sym", "ε", "eps"):
        return None
    from .exact.decide import to_exact
    try:
        return to_exact(text, name="--eps")
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None


def load_target(text: str, option: str = "MODULE:FUNCTION"):
    """Import ``MODULE:FUNCTION`` (validated by a strict identifier pattern) and return the callable."""
    m = TARGET_RE.fullmatch(text or "")
    if not m:
        raise UsageError(f"{option} must look like package.module:function (identifiers only), got {text!r}")
    modname, attr = m.groups()
    try:
        module = importlib.import_module(modname)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # ImportError, SyntaxError, SystemExit, errors raised at import
        raise UsageError(f"{option}: cannot import module {modname!r}: "
                         f"{_describe(exc)}") from None
    try:
        fn = getattr(module, attr)
    except AttributeError:
        raise UsageError(f"{option}: module {modname!r} has no attribute {attr!r}") from None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # a module __getattr__ that raises or exits
        raise UsageError(f"{option}: cannot get {attr!r} from {modname!r}: {_describe(exc)}") from None
    if not callable(fn):
        raise UsageError(f"{option}: {text} is not callable (it is a {type(fn).__name__})")
    return fn


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r}) (SystemExit)"
    try:
        msg = _one_line(exc)
    except Exception:  # noqa: BLE001 - an exception whose str() fails
        msg = "<unprintable>"
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


class ExitedDuringCheck(RuntimeError):
    """The checked function raised SystemExit (or another non-Exception BaseException)."""


def _guard(fn):
    """``fn`` with SystemExit and other non-``Exception`` BaseExceptions (but KeyboardInterrupt)
    turned into :class:`ExitedDuringCheck`, which the checkers report as a failed check.  The
    signature is kept (``functools.wraps``) so the ``xp`` detection still sees it."""
    @functools.wraps(fn)
    def guarded(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (Exception, KeyboardInterrupt):
            raise
        except BaseException as exc:
            raise ExitedDuringCheck(f"{_describe(exc)} while being checked") from None
    return guarded


def parse_int(text, option: str, lo: int, hi: int) -> int:
    """A decimal integer in ASCII digits (``int()`` would take any Unicode digits) in [lo, hi]."""
    if not isinstance(text, str) or not _INT_RE.fullmatch(text):
        raise UsageError(f"{option} must be an integer written in ASCII digits, got {text!r}")
    v = int(text)
    if not lo <= v <= hi:
        raise UsageError(f"{option} must be an integer between {lo} and {hi}, got {v}")
    return v


def parse_seconds(text, option: str) -> float:
    """A positive, finite number of seconds in ASCII (no nan/inf, no Unicode digits)."""
    if not isinstance(text, str) or not _FLOAT_RE.fullmatch(text):
        raise UsageError(f"{option} must be a positive number of seconds, got {text!r}")
    v = float(text)
    if not (v > 0 and math.isfinite(v)):
        raise UsageError(f"{option} must be a positive number of seconds, got {text!r}")
    return v


def _min_dps() -> int:
    from .checks.crosscheck import MIN_DPS
    return int(MIN_DPS)


def _takes_xp(fn, positional: int) -> bool:
    """True when ``fn`` accepts an ``xp`` namespace (a parameter named ``xp`` or one more
    positional parameter than the data arguments)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    params = list(sig.parameters.values())
    if any(p.name == "xp" for p in params):
        return True
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return True
    pos = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(pos) > positional


# --------------------------------------------------------------------------------------------
# progress on stderr
# --------------------------------------------------------------------------------------------

class Progress:
    """Progress lines on stderr for runs longer than a second; silent when stderr is not a
    terminal or when ``quiet``."""

    def __init__(self, quiet: bool = False, stream=None):
        self.stream = stream or sys.stderr
        try:
            tty = self.stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        self.enabled = tty and not quiet
        self.label = ""
        self._t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = None
        self._lock = threading.Lock()
        self._shown = False

    def set(self, label: str) -> None:
        self.label = label

    def _run(self):
        if self._stop.wait(1.0):
            return
        while not self._stop.is_set():
            with self._lock:
                self.stream.write(f"\r\033[Ksymbolic-bn: {self.label} … {time.monotonic() - self._t0:.0f} s")
                self.stream.flush()
                self._shown = True
            self._stop.wait(0.5)

    def __enter__(self):
        if self.enabled:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            with self._lock:
                if self._shown:
                    self.stream.write("\r\033[K")
                    self.stream.flush()
        return False


# --------------------------------------------------------------------------------------------
# parser
# --------------------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        raise UsageError(message)


def _common(p):
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="symbolic-bn", description="Exact proofs and cross-checks for channel-first BatchNorm.")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    pr = sub.add_parser("prove", help="the BatchNormChannelFirst certificate")
    pr.add_argument("--shape", action="append", help="CxHxW (repeatable; default 2x2x2)")
    pr.add_argument("--eps", action="append", help="'symbolic' (default) or an exact number like 1e-6 (repeatable)")
    pr.add_argument("--backend", choices=["flint", "sympy"], default=None)
    pr.add_argument("--budget", default="120", help="seconds per obligation group (default 120)")
    pr.add_argument("--brief", action="store_true", help="one line per obligation")
    _common(pr)

    ck = sub.add_parser("check", help="check a user's BatchNorm backward (and forward) implementation")
    ck.add_argument("backward", metavar="MODULE:FUNCTION",
                    help="backward(x, gamma, beta, grad_out, eps[, xp]) -> (dx, dgamma, dbeta)")
    ck.add_argument("--forward", metavar="MODULE:FUNCTION",
                    help="forward(x, gamma, beta, eps[, xp]) -> y, checked too")
    ck.add_argument("--shape", default="2x2x2", help="CxHxW (default 2x2x2)")
    ck.add_argument("--eps", default=None,
                    help="exact symbolic check: 'symbolic' (default) or a number; cross-check: a number "
                         "(default 1e-5)")
    ck.add_argument("--dtype", choices=["float32", "float64"], default="float64",
                    help="dtype of the numeric cross-check (default float64)")
    ck.add_argument("--dps", default="50",
                    help=f"mpmath digits of the cross-check reference, {_min_dps()}–{MAX_DPS} (default 50)")
    ck.add_argument("--numeric", action="store_true",
                    help="skip the exact symbolic check: cross-check against mpmath only")
    ck.add_argument("--brief", action="store_true", help="one line per obligation")
    _common(ck)

    bd = sub.add_parser("bounds", help="IBP and derivative boxes of an inference BatchNorm layer")
    bd.add_argument("--params", metavar="FILE.json",
                    help="JSON object with running_mean, running_var, gamma, beta (lists) and eps")
    bd.add_argument("--box", metavar="FILE.json", help="JSON object with lo and hi (nested lists of one shape)")
    bd.add_argument("--channel-axis", default="0", help="channel axis of the box (default 0)")
    bd.add_argument("--rounding", choices=["nearest", "outward"], default="nearest",
                    help="float64 round-to-nearest, or outward rounding (sound enclosure)")
    bd.add_argument("--prove", action="store_true", help="print the certificate of the bound rules")
    bd.add_argument("--brief", action="store_true", help="one line per obligation (with --prove)")
    _common(bd)

    rp = sub.add_parser("report", help="regenerate the correctness reports (HTML, Markdown, JSON)")
    rp.add_argument("--out", default="reports", help="output directory (default reports/)")
    rp.add_argument("--shape", action="append",
                    help="CxHxW of the BN-graph subject (repeatable; default 1x2x2 2x2x2 2x3x3 4x8x8)")
    rp.add_argument("--no-torch", action="store_true", help="leave PyTorch out of the cross-check")
    _common(rp)
    return p


# --------------------------------------------------------------------------------------------
# prove
# --------------------------------------------------------------------------------------------

def _cmd_prove(args) -> int:
    from . import batchnorm_channel_first, prove
    from .report.text import certificate_text
    shapes = [parse_shape(s) for s in (args.shape or ["2x2x2"])]
    epss = [parse_eps(e) for e in (args.eps or ["symbolic"])]
    budget = parse_seconds(args.budget, "--budget")
    certs = []
    with Progress(args.quiet) as prog:
        for shape in shapes:
            for eps in epss:
                prog.set(f"proving {'x'.join(map(str, shape))}")
                try:
                    graph = batchnorm_channel_first(*shape, eps=eps)
                    certs.append(prove(graph, budget=budget, backend=args.backend))
                except (ValueError, TypeError) as exc:  # bad shape/eps, empty domain, no backend
                    raise UsageError(_one_line(exc)) from None
    out = []
    if args.json:
        out.append(json.dumps([c.to_dict() for c in certs], indent=2, ensure_ascii=False))
    else:
        for c in certs:
            out.append(certificate_text(c, verbose=not args.brief))
            out.append("")
    return (0 if all(c.ok for c in certs) else 1), out


# --------------------------------------------------------------------------------------------
# check
# --------------------------------------------------------------------------------------------

def _drop_xp(fn):
    """Wrap a function without an ``xp`` parameter for :func:`crosscheck` (which passes NumPy)."""
    def wrapped(*args):
        return fn(*args[:-1])
    wrapped.__name__ = getattr(fn, "__name__", "function")
    wrapped.__qualname__ = getattr(fn, "__qualname__", wrapped.__name__)
    return wrapped


def _symbolic_check(kind, fn, shape, eps, notes):
    """Run ``symbolic_bn.checks.check.check_<kind>``; ``None`` (with a note) when it is unavailable or
    the function uses an operation the symbolic namespace does not support."""
    try:
        check = importlib.import_module("symbolic_bn.checks.check")
    except ImportError as exc:
        notes.append(f"exact {kind} check unavailable (symbolic_bn.checks.check: {_one_line(exc)}); "
                     f"using the mpmath cross-check")
        return None
    from .checks.crosscheck import ImplementationError
    from .xp import UnsupportedOperation
    try:
        return getattr(check, f"check_{kind}")(fn, shape, eps)
    except (UnsupportedOperation, ImplementationError) as exc:
        unsupported = isinstance(exc, UnsupportedOperation) or \
            isinstance(exc.__cause__, UnsupportedOperation)
        if not unsupported:
            raise  # the implementation raised or returned something malformed: a failed check
        notes.append(f"{kind}: the symbolic namespace does not support an operation "
                     f"({_one_line(exc.__cause__ or exc)}); using the mpmath cross-check")
        return None


def _cmd_check(args) -> int:
    from .report.text import certificate_text
    shape = parse_shape(args.shape)
    eps_exact = parse_eps(args.eps)
    if eps_exact is not None and not eps_exact > 0:
        raise UsageError(f"--eps must be positive, got {args.eps!r}")
    dps = parse_int(args.dps, "--dps", _min_dps(), MAX_DPS)
    try:
        eps_float = 1e-5 if eps_exact is None else float(eps_exact)
    except (ValueError, OverflowError, TypeError):
        eps_float = math.nan
    backward = _guard(load_target(args.backward, "MODULE:FUNCTION"))
    forward = _guard(load_target(args.forward, "--forward")) if args.forward else None

    notes, certs, numeric, failures = [], [], {}, []
    with Progress(args.quiet) as prog:
        need_numeric = {}
        for kind, fn, npos in (("forward", forward, 4), ("backward", backward, 5)):
            if fn is None:
                continue
            if args.numeric:
                need_numeric[kind] = fn if _takes_xp(fn, npos) else _drop_xp(fn)
                continue
            if not _takes_xp(fn, npos):
                notes.append(f"{kind}: {getattr(fn, '__name__', 'function')} takes no xp argument; "
                             f"using the mpmath cross-check")
                need_numeric[kind] = _drop_xp(fn)
                continue
            prog.set(f"exact {kind} check at {args.shape}")
            from .checks.crosscheck import ImplementationError
            try:
                cert = _symbolic_check(kind, fn, shape, eps_exact, notes)
            except ImplementationError as exc:
                failures.append(f"{kind}: {_one_line(exc)}")
                continue
            except (ValueError, TypeError) as exc:
                raise UsageError(f"{kind}: {_one_line(exc)}") from None
            if cert is None:
                need_numeric[kind] = fn
            else:
                certs.append(cert)
        if need_numeric:
            from .checks.crosscheck import crosscheck, ImplementationError
            if not (eps_float > 0 and math.isfinite(eps_float)):
                raise UsageError(f"--eps {args.eps!r} is not a positive finite float64, which the mpmath "
                                 f"cross-check needs")
            prog.set(f"mpmath cross-check ({args.dtype}, dps {dps})")
            try:
                res = crosscheck(forward=need_numeric.get("forward"), backward=need_numeric.get("backward"),
                                 shape=shape, eps=eps_float, dtype=args.dtype, dps=dps)
            except ImplementationError as exc:
                # the implementation raised or returned the wrong shape: a failed check
                numeric = {"error": _one_line(exc)}
                res = None
            except ValueError as exc:
                raise UsageError(_one_line(exc)) from None
            if res is not None:
                numeric = {"result": res}
    ok = not failures and all(c.ok for c in certs) and \
        (not numeric or ("result" in numeric and numeric["result"].ok))
    out = []
    if args.json:
        doc = {"ok": ok, "notes": notes, "failures": failures, "certificates": [c.to_dict() for c in certs],
               "crosscheck": (numeric["result"].to_dict() if "result" in numeric else
                              ({"ok": False, "error": numeric["error"]} if numeric else None))}
        out.append(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        for n in notes:
            out.append(f"note: {n}")
        for c in certs:
            out.append(certificate_text(c, verbose=not args.brief))
            failed = [ob for ob in c if ob.status == "failed"]
            for ob in failed:
                out.append(f"COUNTEREXAMPLE {ob.name}: "
                           + ", ".join(f"{k}={v}" for k, v in (ob.counterexample or {}).items()))
            out.append("")
        if "result" in numeric:
            res = numeric["result"]
            out.append(res.summary())
            for name, o in res.outputs.items():
                if not o.ok:
                    out.append(f"COUNTEREXAMPLE {name}: " + json.dumps(o.to_dict()["worst"], ensure_ascii=False))
        elif numeric:
            out.append(f"crosscheck FAILED: {numeric['error']}")
        for f in failures:
            out.append(f"FAILED {f}")
        out.append("CHECK: " + ("PASS" if ok else "FAIL"))
    return (0 if ok else 1), out


# --------------------------------------------------------------------------------------------
# bounds
# --------------------------------------------------------------------------------------------

def _json_number(v, where, depth=0):
    """JSON numbers stay floats/ints; strings are exact decimals or fractions parsed by
    :func:`symbolic_bn.exact.decide.to_exact` (never evaluated), returned as Fractions."""
    if isinstance(v, bool) or v is None:
        raise UsageError(f"{where} must be a number, got {json.dumps(v)}")
    if isinstance(v, float):
        if not math.isfinite(v):
            raise UsageError(f"{where} must be finite (a JSON number too large for float64?)")
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        from .exact.decide import to_exact
        try:
            e = to_exact(v, name=where)
            return Fraction(int(e.p), int(e.q))
        except (ValueError, TypeError, AttributeError) as exc:
            raise UsageError(_one_line(exc)) from None  # to_exact's message names `where`
    if isinstance(v, list):
        if depth >= MAX_JSON_DEPTH:
            raise UsageError(f"{where}: lists nested more than {MAX_JSON_DEPTH} deep")
        return [_json_number(w, f"{where}[{i}]", depth + 1) for i, w in enumerate(v)]
    raise UsageError(f"{where} must be a number or a list of numbers, got {type(v).__name__}")


def _no_duplicates(option, path):
    def hook(pairs):
        doc = {}
        for k, v in pairs:
            if k in doc:
                raise UsageError(f"{option}: {path!r} has the key {k!r} more than once")
            doc[k] = v
        return doc
    return hook


def _refuse_constant(c):
    raise ValueError(f"{c} is not allowed")


def _read_json(path, option, keys):
    try:
        with open(path, "r", encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise UsageError(f"{option}: cannot read {path!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{option}: {path!r} is not UTF-8 text") from None
    try:
        doc = json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_no_duplicates(option, path))
    except ValueError as exc:  # also int literals beyond Python's digit limit
        raise UsageError(f"{option}: {path!r} is not valid JSON: {_one_line(exc)}") from None
    except (RecursionError, MemoryError):
        raise UsageError(f"{option}: {path!r} is nested too deeply or too large to read") from None
    if not isinstance(doc, dict):
        raise UsageError(f"{option}: {path!r} must hold a JSON object with keys {', '.join(keys)}")
    missing = [k for k in keys if k not in doc]
    if missing:
        raise UsageError(f"{option}: {path!r} is missing key(s) {', '.join(missing)}")
    unknown = sorted(set(doc) - set(keys))
    if unknown:
        raise UsageError(f"{option}: {path!r} has unknown key(s) {', '.join(unknown)}")
    return {k: _json_number(doc[k], f"{option} {k}") for k in keys}


def _plain(v):
    """Bounds to JSON: floats as floats (±inf as strings), exact values as strings."""
    import numpy as np
    if isinstance(v, np.ndarray):
        return [_plain(w) for w in v.tolist()] if v.dtype != object else [_plain(w) for w in v]
    if isinstance(v, (list, tuple)):
        return [_plain(w) for w in v]
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else ("inf" if f > 0 else "-inf")
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return int(v)
    return str(v)


def _cmd_bounds(args) -> int:
    from .report.text import certificate_text
    if not args.prove and not (args.params and args.box):
        raise UsageError("bounds needs --params FILE.json and --box FILE.json (and/or --prove)")
    if bool(args.params) != bool(args.box):
        raise UsageError("--params and --box go together")
    axis = parse_int(args.channel_axis, "--channel-axis", -64, 64)
    out, rc = {}, 0
    if args.params:
        from . import bounds
        params = _read_json(args.params, "--params", ("running_mean", "running_var", "gamma", "beta", "eps"))
        box = _read_json(args.box, "--box", ("lo", "hi"))
        try:
            p = bounds.BatchNormParams(params["running_mean"], params["running_var"], params["gamma"],
                                       params["beta"], params["eps"])
            ibp = bounds.ibp(p, box["lo"], box["hi"], channel_axis=axis, rounding=args.rounding)
            d1 = bounds.deriv(p, box["lo"], box["hi"], channel_axis=axis, rounding=args.rounding)
            d2 = bounds.second_deriv(p, box["lo"], box["hi"], channel_axis=axis, rounding=args.rounding)
            s, o = bounds.scale(p), bounds.offset(p)
            # rendering exact numbers can fail too (e.g. more digits than int->str allows)
            out = {"channels": p.dim, "rounding": args.rounding, "channel_axis": axis,
                   "exact": bool(p.exact), "scale": _plain(s), "offset": _plain(o),
                   "ibp": {"lo": _plain(ibp[0]), "hi": _plain(ibp[1])},
                   "deriv": {"lo": _plain(d1[0]), "hi": _plain(d1[1])},
                   "second_deriv": {"lo": _plain(d2[0]), "hi": _plain(d2[1])}}
        except (ValueError, TypeError, OverflowError, ZeroDivisionError) as exc:
            raise UsageError(f"bounds: {_one_line(exc)}") from None
        except (RecursionError, MemoryError):
            raise UsageError("bounds: the input is too large or nested too deeply") from None
    cert = None
    if args.prove:
        from . import bounds
        with Progress(args.quiet) as prog:
            prog.set("proving the inference BatchNorm bound rules")
            cert = bounds.prove()
        rc = 0 if cert.ok else 1
    lines = []
    if args.json:
        doc = dict(out)
        if cert is not None:
            doc["certificate"] = cert.to_dict()
        lines.append(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        if out:
            lines.append(f"inference BatchNorm, {out['channels']} channel(s), channel axis {out['channel_axis']}, "
                         f"rounding {out['rounding']}{' (exact arithmetic)' if out['exact'] else ''}")
            lines.append(f"  scale  s = gamma / sqrt(max(var, 0) + eps): {out['scale']}")
            lines.append(f"  offset o = beta - s * mean:                 {out['offset']}")
            for key, title in (("ibp", "IBP box of BN(x) for x in [lo, hi]"),
                               ("deriv", "derivative box s * [dlo, dhi]"),
                               ("second_deriv", "second-derivative box s * [lo, hi]")):
                lines.append(f"{title}:")
                lines.append(f"  lo = {out[key]['lo']}")
                lines.append(f"  hi = {out[key]['hi']}")
        if cert is not None:
            if out:
                lines.append("")
            lines.append(certificate_text(cert, verbose=not args.brief))
    return rc, lines


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------

def _cmd_report(args) -> int:
    shapes = [parse_shape(s) for s in args.shape] if args.shape else None
    out = args.out
    if not out or "\x00" in out:
        raise UsageError("--out must be a directory path")
    try:
        from .report import ReportPathError, check_out, generate
    except ImportError as exc:
        raise UsageError(f"the report package is unavailable: {_one_line(exc)}") from None
    try:
        check_out(out)  # before the long computation (generate checks again before writing)
        with Progress(args.quiet) as prog:
            summary = generate(out, shapes=shapes, torch=not args.no_torch, progress=prog.set)
    except ReportPathError as exc:
        raise UsageError(f"--out: {_one_line(exc)}") from None
    except OSError as exc:
        raise UsageError(f"--out {out!r}: {exc.strerror or exc}") from None
    lines = []
    if args.json:
        lines.append(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        lines.extend(summary["lines"])
        lines.append(f"wrote {len(summary['files'])} files to {summary['out']}")
    return (0 if summary["ok"] else 1), lines


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.version:
            from . import __version__
            print(__version__)
            return 0
        handler = {"prove": _cmd_prove, "check": _cmd_check, "bounds": _cmd_bounds,
                   "report": _cmd_report}.get(args.command)
        if handler is None:
            parser.print_help(sys.stderr)
            return 2
        try:
            rc, lines = handler(args)
            text = "".join(f"{line}\n" for line in lines)  # all of it, before printing any
        except SystemExit as exc:  # the checked code exited where no guard could catch it
            print(f"symbolic-bn: error: the code being checked exited: {_describe(exc)}; check FAILED",
                  file=sys.stderr)
            return 1
        except (RecursionError, MemoryError) as exc:
            print(f"symbolic-bn: error: {type(exc).__name__} (the input is too large or too deep)",
                  file=sys.stderr)
            return 2
        except UsageError:
            raise
        except Exception as exc:  # a bug: one line, not a traceback (SYMBOLIC_BN_TRACEBACK=1 shows it)
            if os.environ.get("SYMBOLIC_BN_TRACEBACK"):
                raise
            print(f"symbolic-bn: internal error: {_describe(exc)}", file=sys.stderr)
            return 1
        sys.stdout.write(text)
        sys.stdout.flush()
        return rc
    except UsageError as exc:
        print(f"symbolic-bn: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("symbolic-bn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. piped into head
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
