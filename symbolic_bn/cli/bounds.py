"""``symbolic-bn bounds``: inference BatchNorm IBP / derivative boxes and their certificate.

The parameters and boxes are read from JSON files: JSON numbers stay floats/ints, strings are
exact decimals or fractions parsed by :func:`symbolic_bn.exact.numbers.to_exact` (never
evaluated); duplicate keys, NaN/Infinity constants and lists nested more than
``MAX_JSON_DEPTH`` deep are usage errors.  The computation is :mod:`symbolic_bn.bounds`.
"""
from __future__ import annotations

import json
import math
from fractions import Fraction

from .parsing import UsageError, _one_line, _prove_budget, parse_budget, parse_int
from .progress import Progress

MAX_JSON_DEPTH = 32


def _json_number(v, where, depth=0):
    """JSON numbers stay floats/ints; strings are exact decimals or fractions parsed by
    :func:`symbolic_bn.exact.numbers.to_exact` (never evaluated), returned as Fractions.  An
    integer that float64 cannot hold exactly is returned as a Fraction too (kept exact rather
    than rounded or overflowing)."""
    if isinstance(v, bool) or v is None:
        raise UsageError(f"{where} must be a number, got {json.dumps(v)}")
    if isinstance(v, float):
        if not math.isfinite(v):
            raise UsageError(f"{where} must be finite (a JSON number too large for float64?)")
        return v
    if isinstance(v, int):
        try:
            exact_in_float = float(v) == v
        except OverflowError:
            exact_in_float = False
        return v if exact_in_float else Fraction(v)
    if isinstance(v, str):
        from ..exact.numbers import to_exact
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


def _plain(v, what="a value"):
    """Bounds to JSON: floats as floats (±inf as strings), exact values as strings."""
    import numpy as np
    if isinstance(v, np.ndarray):
        return [_plain(w, what) for w in v.tolist()] if v.dtype != object else [_plain(w, what) for w in v]
    if isinstance(v, (list, tuple)):
        return [_plain(w, what) for w in v]
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else ("inf" if f > 0 else "-inf")
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        v = int(v)
        if v.bit_length() < 4 * 3300:  # int -> str is limited to 4300 digits by default
            return v
    try:
        return str(v)
    except ValueError:  # more digits than Python converts to a string
        raise UsageError(f"bounds: the exact {what} has too many digits to print; use smaller exact "
                         f"values or --rounding outward (float64 bounds)") from None


#: (option, JSON key, function name in symbolic_bn.bounds, title of the text output)
_BOXES = (
    ("--box", "ibp", "ibp", "IBP box of BN(x) for x in [lo, hi] (--box)"),
    ("--dbox", "deriv", "deriv",
     "derivative box of d/dt BN(x(t)) = s * x'(t) for x'(t) in [lo, hi] (--dbox)"),
    ("--ddbox", "second_deriv", "second_deriv",
     "second-derivative box of d2/dt2 BN(x(t)) = s * x''(t) for x''(t) in [lo, hi] (--ddbox)"),
)


def _cmd_bounds(args):
    from ..report.text import certificate_text
    files = {"--box": args.box, "--dbox": args.dbox, "--ddbox": args.ddbox}
    given = [opt for opt, path in files.items() if path]
    if given and not args.params:
        raise UsageError(f"{given[0]} needs --params FILE.json (the layer's parameters)")
    if args.params and not given:
        raise UsageError("--params needs a box: --box FILE.json (and/or --dbox, --ddbox FILE.json)")
    if not args.prove and not args.params:
        raise UsageError("bounds needs --params FILE.json with --box FILE.json (and/or --dbox, --ddbox), "
                         "or --prove")
    axis = parse_int(args.channel_axis, "--channel-axis", -64, 64)
    budget = _prove_budget(parse_budget(args.budget, "--budget"))
    out, rc = {}, 0
    if args.params:
        from .. import bounds
        params = _read_json(args.params, "--params", ("running_mean", "running_var", "gamma", "beta", "eps"))
        boxes = {opt: _read_json(files[opt], opt, ("lo", "hi")) for opt in given}
        try:
            p = bounds.BatchNormParams(params["running_mean"], params["running_var"], params["gamma"],
                                       params["beta"], params["eps"])
            results = {}
            for opt, key, fname, _title in _BOXES:
                if opt in boxes:
                    try:
                        results[key] = getattr(bounds, fname)(p, boxes[opt]["lo"], boxes[opt]["hi"],
                                                              channel_axis=axis, rounding=args.rounding)
                    except ValueError as exc:
                        raise UsageError(f"{opt}: {_one_line(exc)}") from None
            s, o = bounds.scale(p), bounds.offset(p)
            # rendering exact numbers can fail too (e.g. more digits than int->str allows)
            out = {"channels": p.dim, "rounding": args.rounding, "channel_axis": axis,
                   "exact": bool(p.exact), "scale": _plain(s, "scale"), "offset": _plain(o, "offset")}
            for _opt, key, _fname, _title in _BOXES:
                if key in results:
                    lo, hi = results[key]
                    out[key] = {"lo": _plain(lo, f"{key} lo"), "hi": _plain(hi, f"{key} hi")}
        except (ValueError, TypeError, OverflowError, ZeroDivisionError) as exc:
            raise UsageError(f"bounds: {_one_line(exc)}") from None
        except (RecursionError, MemoryError):
            raise UsageError("bounds: the input is too large or nested too deeply") from None
    cert = None
    if args.prove:
        from .. import bounds
        with Progress(args.quiet) as prog:
            prog.set("proving the inference BatchNorm bound rules")
            try:
                cert = bounds.prove(budget=budget)
            except (ValueError, TypeError, OverflowError) as exc:
                raise UsageError(f"bounds --prove: {_one_line(exc)}") from None
        rc = 0 if cert.ok else 1
    lines = []
    if args.json:
        doc = {"ok": rc == 0, **out}
        if cert is not None:
            doc["certificate"] = cert.to_dict()
        lines.append(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        if out:
            lines.append(f"inference BatchNorm, {out['channels']} channel(s), channel axis {out['channel_axis']}, "
                         f"rounding {out['rounding']}{' (exact arithmetic)' if out['exact'] else ''}")
            lines.append(f"  scale  s = gamma / sqrt(max(var, 0) + eps): {out['scale']}")
            lines.append(f"  offset o = beta - s * mean:                 {out['offset']}")
            for _opt, key, _fname, title in _BOXES:
                if key in out:
                    lines.append(f"{title}:")
                    lines.append(f"  lo = {out[key]['lo']}")
                    lines.append(f"  hi = {out[key]['hi']}")
        if cert is not None:
            if out:
                lines.append("")
            lines.append(certificate_text(cert, verbose=not args.brief))
    return rc, lines
