"""The child process of ``check`` and ``autodiff``: the checked code is imported and run there,
never in the parent.

**The exit status belongs to the tool.**  ``check`` and ``autodiff`` import and run the checked
code in a child process (``multiprocessing``, 'fork' on Linux, 'spawn' elsewhere; the environment
variable ``SYMBOLIC_BN_CHILD_START`` overrides the start method) whose stdout and stderr go to a
private temporary file.  The child sends its result -- the finished output lines and the status
-- over a pipe, and the status is derived from that result only: checked code that calls
``os._exit(0)`` (at import or while being checked), or whose ``atexit`` handler ends the
interpreter, cannot change it.  No result means exit 1 and "the checked code ended the process
before a verdict".  What the checked code printed is relayed to stderr, each line prefixed
``checked code | ``, so it never mixes with the report or the ``--json`` object on stdout.  In
the child the current directory (and, for ``file.py:FUNCTION``, the file's directory) is put
first on ``sys.path``, as ``python -m pytest`` and ``python file.py`` do -- after the tool's own
modules are imported, so a local file cannot replace them.

The parent hands the child a plan of plain values (validated by the subcommand, so that it also
reaches a 'spawn' child) and the subcommand's runner ``runner(plan, say) -> (status, lines)``.
"""
from __future__ import annotations

import importlib
import json
import multiprocessing
import os
import sys
import tempfile
import time

from .parsing import UsageError, _one_line
from .progress import Progress
from .targets import _describe, _is_file_target

#: How much of the checked code's own output is relayed to stderr.
MAX_RELAYED_CHARS = 20000
NO_VERDICT = "the checked code ended the process before a verdict"
#: A phase that runs under a time budget B is given WATCHDOG_FACTOR·B + WATCHDOG_GRACE seconds
#: before the child is killed: the in-process budget stops everything but checked code that
#: catches every exception at every level (two nested bare ``except:`` loops) or is stuck in a
#: C call, and the command must end all the same.
WATCHDOG_FACTOR = 2.0
WATCHDOG_GRACE = 10.0
NO_STOP = "the checked code did not stop when its time budget ran out"


def watchdog_seconds(budget):
    """How long a phase under ``budget`` seconds may run in the child (None: no limit)."""
    return None if budget is None else WATCHDOG_FACTOR * budget + WATCHDOG_GRACE


class _CheckedCodeExited(Exception):
    """SystemExit & co. escaped every guard in the child."""


class _InternalError(Exception):
    """A bug of the tool, reported by the child as one line."""


def _preimport_tool():
    """Import what the check uses before the checked code's directories go first on sys.path, so
    a local file named like one of them (numpy.py, random.py, ...) cannot replace the tool's."""
    for name in ("symbolic_bn.checks.check", "symbolic_bn.checks.crosscheck", "symbolic_bn.checks.calling",
                 "symbolic_bn.checks.double_backward", "symbolic_bn.checks.autodiff", "symbolic_bn.layers",
                 "symbolic_bn.xp", "symbolic_bn.exact.errors", "symbolic_bn.report.text",
                 "symbolic_bn.exact.numbers"):
        try:
            importlib.import_module(name)
        except ImportError:  # reported where it is needed (e.g. as a usage error)
            pass


def _child_main(conn, runner, plan, output_path):
    """Entry point of the child process: checked code's stdout/stderr to ``output_path``, the
    result to ``conn``, then ``os._exit`` (no atexit handler of the checked code runs)."""
    try:
        fd = os.open(output_path, os.O_WRONLY | os.O_APPEND)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.reconfigure(line_buffering=True)
            except (AttributeError, ValueError):
                pass
        _preimport_tool()
        extra = [plan["cwd"]]
        for spec in plan["targets"]:
            if spec and _is_file_target(spec):
                d = os.path.dirname(os.path.abspath(spec.rpartition(":")[0]))
                if d not in extra:
                    extra.insert(0, d)
        sys.path[:0] = [d for d in extra if d not in sys.path[:len(extra)]]

        def say(label, budget=None):
            # a phase under a budget arms the parent's watchdog; any other phase disarms it
            conn.send(("progress", label, watchdog_seconds(budget)))

        try:
            status, lines = runner(plan, say)
            message = ("result", status, lines)
        except UsageError as exc:
            message = ("usage", _one_line(exc))
        except (RecursionError, MemoryError) as exc:
            message = ("usage", f"{type(exc).__name__} (the input is too large or too deep)")
        except KeyboardInterrupt:
            message = ("interrupted",)
        except Exception as exc:  # a bug of the tool: one line (SYMBOLIC_BN_TRACEBACK=1 shows it)
            if os.environ.get("SYMBOLIC_BN_TRACEBACK"):
                import traceback
                traceback.print_exc()
            message = ("internal", _describe(exc))
        except BaseException as exc:  # SystemExit & co. where no guard could catch it
            message = ("exited", _describe(exc))
        conn.send(message)
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - the checked code may have closed it
                pass
        try:
            conn.close()
        finally:
            os._exit(0)


def _start_method() -> str:
    wanted = os.environ.get("SYMBOLIC_BN_CHILD_START")
    methods = multiprocessing.get_all_start_methods()
    if wanted:
        if wanted not in methods:
            raise UsageError(f"SYMBOLIC_BN_CHILD_START must be one of {', '.join(methods)}, got {wanted!r}")
        return wanted
    return "fork" if sys.platform.startswith("linux") and "fork" in methods else "spawn"


def _relay(output_path) -> list:
    """What the checked code printed, as stderr lines prefixed ``checked code | ``."""
    try:
        with open(output_path, "rb") as fh:
            data = fh.read(MAX_RELAYED_CHARS + 1)
            rest = os.fstat(fh.fileno()).st_size - len(data)
    except OSError:
        return []
    if not data:
        return []
    text = data[:MAX_RELAYED_CHARS].decode("utf-8", errors="replace")
    lines = [f"checked code | {line}" for line in text.splitlines()]
    if len(data) > MAX_RELAYED_CHARS or rest > 0:
        lines.append(f"checked code | … ({max(rest, 0) + len(data) - MAX_RELAYED_CHARS} more bytes not shown)")
    return lines


def _run_in_child(plan, runner, quiet: bool):
    """Run the check in a child process; returns its final message (``None`` if there was none)
    and the relayed output lines."""
    ctx = multiprocessing.get_context(_start_method())
    fd, output_path = tempfile.mkstemp(prefix="symbolic-bn-check-", suffix=".log")
    os.close(fd)
    proc = None
    try:
        receiver, sender = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child_main, args=(sender, runner, plan, output_path), name="symbolic-bn check",
                           daemon=True)
        sys.stdout.flush()
        sys.stderr.flush()
        proc.start()
        sender.close()  # the child holds the only writing end: EOF once it has gone
        result = None
        deadline = stopped_after = None
        started = time.monotonic()
        with Progress(quiet) as prog:
            prog.set(f"checking at {plan['shape_text']}")
            while result is None:
                if receiver.poll(0.1):
                    try:
                        msg = receiver.recv()
                    except (EOFError, OSError):
                        break
                    except Exception:  # noqa: BLE001 - garbage on the pipe is no verdict
                        break
                    if isinstance(msg, tuple) and msg and msg[0] == "progress":
                        prog.set(str(msg[1]))
                        limit = msg[2] if len(msg) > 2 else None
                        deadline = None if not isinstance(limit, float) else time.monotonic() + limit
                        continue
                    result = msg
                elif not proc.is_alive() and not receiver.poll(0):
                    break
                elif deadline is not None and time.monotonic() > deadline:
                    stopped_after = time.monotonic() - started
                    proc.kill()
                    break
        proc.join(30)
        exitcode = proc.exitcode
        if proc.is_alive():  # e.g. stuck in the checked code's thread after sending its result
            proc.kill()
            proc.join(5)
        receiver.close()
        return result, exitcode, _relay(output_path), stopped_after
    except BaseException:
        if proc is not None and proc.is_alive():
            proc.kill()
            proc.join(5)
        raise
    finally:
        try:
            os.unlink(output_path)  # our own temporary file
        except OSError:
            pass


def _valid_result(msg) -> bool:
    if not isinstance(msg, tuple) or not msg:
        return False
    if msg[0] == "result":
        return (len(msg) == 3 and msg[1] in (0, 1) and isinstance(msg[2], list)
                and all(isinstance(x, str) for x in msg[2]))
    return msg[0] in ("usage", "internal", "exited", "interrupted") and \
        all(isinstance(x, str) for x in msg[1:])


def _in_child(plan, runner, args, word, no_verdict_doc):
    """``runner(plan, say)`` in a child process: its ``(status, lines)``, the checked code's output
    relayed to stderr; no valid result is ``word: FAIL`` (exit 1), the child's usage error, exit or
    internal error is raised here."""
    msg, exitcode, relayed, stopped_after = _run_in_child(plan, runner, args.quiet)
    for line in relayed:
        print(line, file=sys.stderr)
    if stopped_after is not None:  # undecided, not failed: nothing was shown wrong
        print(f"symbolic-bn: error: {NO_STOP} (it catches every exception; stopped after "
              f"{stopped_after:.0f} s); {word.lower()} UNDECIDED", file=sys.stderr)
        if args.json:
            return 1, [json.dumps({"ok": False, "verdict": "UNDECIDED", "error": NO_STOP, **no_verdict_doc},
                                  indent=2)]
        return 1, [f"{word}: UNDECIDED"]
    if not _valid_result(msg):
        how = (f"it exited with status {exitcode}" if exitcode is not None and exitcode >= 0
               else f"it was killed by signal {-exitcode}" if exitcode is not None else "no result")
        print(f"symbolic-bn: error: {NO_VERDICT} ({how}); {word.lower()} FAILED", file=sys.stderr)
        if args.json:
            return 1, [json.dumps({"ok": False, "verdict": "FAIL", "error": NO_VERDICT, **no_verdict_doc},
                                  indent=2)]
        return 1, [f"{word}: FAIL"]
    kind = msg[0]
    if kind == "result":
        return msg[1], msg[2]
    if kind == "usage":
        raise UsageError(msg[1])
    if kind == "interrupted":
        raise KeyboardInterrupt
    if kind == "exited":
        raise _CheckedCodeExited(msg[1])
    raise _InternalError(msg[1])
