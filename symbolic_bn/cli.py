"""The ``symbolic-bn`` command line.

Exit status: 0 when everything checked holds, 1 when an obligation failed or a check did not
pass (or is undecided), 2 for bad usage or input.  User errors are one line on stderr.
Nothing typed on the command line goes through ``eval`` or ``sympify``: shapes are matched by a
strict pattern and numbers parsed by ``fractions.Fraction``.
"""
from __future__ import annotations

import argparse
import json
import re
import sys

SHAPE_RE = re.compile(r"^([0-9]{1,4})x([0-9]{1,4})x([0-9]{1,4})$")


class UsageError(Exception):
    """Bad command-line input: reported as one line on stderr with exit status 2."""


def parse_shape(text: str):
    """``'CxHxW'`` with positive integers, e.g. ``2x3x3``."""
    m = SHAPE_RE.match(text or "")
    if not m:
        raise UsageError(f"--shape must look like CxHxW with positive integers (e.g. 2x3x3), got {text!r}")
    dims = tuple(int(g) for g in m.groups())
    if min(dims) <= 0:
        raise UsageError(f"--shape dimensions must be positive, got {text!r}")
    from .batchnorm import check_shape
    try:
        check_shape(*dims)
    except ValueError as exc:
        raise UsageError(f"--shape: {exc}") from None
    return dims


def parse_eps(text: str | None):
    """``None``/``'symbolic'`` → symbolic ε; otherwise an exact decimal or fraction."""
    if text is None or text.strip().lower() in ("symbolic", "sym", "ε", "eps"):
        return None
    from .decide import to_exact
    try:
        return to_exact(text, name="--eps")
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="symbolic-bn", description="Exact proofs and cross-checks for channel-first BatchNorm.")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    pr = sub.add_parser("prove", help="the BatchNormChannelFirst certificate")
    pr.add_argument("--shape", action="append", help="CxHxW (repeatable; default 2x2x2)")
    pr.add_argument("--eps", action="append", help="'symbolic' (default) or an exact number like 1e-6 (repeatable)")
    pr.add_argument("--backend", choices=["flint", "sympy"], default=None)
    pr.add_argument("--budget", type=float, default=120.0, help="seconds per obligation group")
    pr.add_argument("--json", action="store_true", help="machine-readable output")
    pr.add_argument("--brief", action="store_true", help="one line per obligation")
    return p


def _cmd_prove(args) -> int:
    from . import batchnorm_channel_first, prove
    from .render import certificate_text
    shapes = [parse_shape(s) for s in (args.shape or ["2x2x2"])]
    epss = [parse_eps(e) for e in (args.eps or ["symbolic"])]
    if args.budget <= 0:
        raise UsageError("--budget must be positive")
    certs = []
    for shape in shapes:
        for eps in epss:
            certs.append(prove(batchnorm_channel_first(*shape, eps=eps), budget=args.budget,
                               backend=args.backend))
    if args.json:
        print(json.dumps([c.to_dict() for c in certs], indent=2, ensure_ascii=False))
    else:
        for c in certs:
            print(certificate_text(c, verbose=not args.brief))
            print()
    return 0 if all(c.ok for c in certs) else 1


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.version:
            from . import __version__
            print(__version__)
            return 0
        if args.command == "prove":
            return _cmd_prove(args)
        parser.print_help()
        return 2
    except UsageError as exc:
        print(f"symbolic-bn: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("symbolic-bn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
