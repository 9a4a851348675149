"""The ``symbolic-bn`` entry point :func:`main`: parse, dispatch to the subcommand, print.

Exit status: 0 when everything checked holds, 1 when an obligation failed, a check did not pass,
is undecided or could not be run exactly, 2 for bad usage or input, 130 when interrupted.  User
errors are one line on stderr (a bug of the tool too: ``SYMBOLIC_BN_TRACEBACK=1`` shows its
traceback).  All output is assembled before anything is printed, so an error never leaves a
partial report on stdout.
"""
from __future__ import annotations

import os
import sys

from .autodiff import _cmd_autodiff
from .bounds import _cmd_bounds
from .check import _cmd_check
from .child import _CheckedCodeExited, _InternalError
from .explain import _cmd_explain, _cmd_glossary
from .parser import build_parser
from .parsing import UsageError, _one_line
from .prove import _cmd_prove
from .report import _cmd_report
from .targets import _describe


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.version:
            from .. import __version__
            print(__version__)
            return 0
        handler = {"prove": _cmd_prove, "check": _cmd_check, "autodiff": _cmd_autodiff, "bounds": _cmd_bounds,
                   "report": _cmd_report, "explain": _cmd_explain, "glossary": _cmd_glossary}.get(args.command)
        if handler is None:
            parser.print_help(sys.stderr)
            return 2
        try:
            rc, lines = handler(args)
            text = "".join(f"{line}\n" for line in lines)  # all of it, before printing any
        except (SystemExit, _CheckedCodeExited) as exc:  # the checked code exited where no guard could catch it
            what = str(exc) if isinstance(exc, _CheckedCodeExited) else _describe(exc)
            print(f"symbolic-bn: error: the code being checked exited: {what}; check FAILED",
                  file=sys.stderr)
            return 1
        except (RecursionError, MemoryError) as exc:
            print(f"symbolic-bn: error: {type(exc).__name__} (the input is too large or too deep)",
                  file=sys.stderr)
            return 2
        except UsageError:
            raise
        except _InternalError as exc:
            print(f"symbolic-bn: internal error: {exc}", file=sys.stderr)
            return 1
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
