"""``symbolic-bn report``: regenerates the correctness reports (``reports/``) through
:func:`symbolic_bn.report.generate`; only a previous report's own files are ever replaced."""
from __future__ import annotations

import json

from .parsing import UsageError, _one_line, parse_shape
from .progress import Progress


def _cmd_report(args):
    shapes = [parse_shape(s) for s in args.shape] if args.shape else None
    out = args.out
    if not out or "\x00" in out:
        raise UsageError("--out must be a directory path")
    try:
        from ..report import ReportPathError, check_out, generate
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
