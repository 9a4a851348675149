"""The code a user hands to ``check`` and ``autodiff``: ``MODULE:FUNCTION`` and
``path/to/file.py:FUNCTION`` targets, validated without importing anything (in the parent) and
loaded (in the child), and the framework extras they may need.

``MODULE:FUNCTION`` is validated by an identifier pattern and imported with :mod:`importlib`;
``path/to/file.py:FUNCTION`` is loaded from that file with
``importlib.util.spec_from_file_location``.  ``SystemExit`` raised by the checked code at import
is a usage error, while it is being checked a failed check (:func:`_guard`).  Whether torch or
jax is installed is asked of ``importlib.util.find_spec`` only: the parent never imports them,
so a forked child starts clean.
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import re
import sys

from ..exact.budget import BUDGET_INTERRUPT
from .parsing import UsageError, _one_line

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
TARGET_RE = re.compile(rf"({_IDENT}(?:\.{_IDENT})*):({_IDENT})", re.ASCII)
# path/to/file.py:FUNCTION -- any characters but control characters in the path (which may itself
# contain ':' on Windows, hence the greedy match up to the last '.py:')
FILE_TARGET_RE = re.compile(rf"([^\x00-\x1f\x7f]+\.py):({_IDENT})", re.ASCII)

#: The extra that installs each framework (as symbolic_bn.checks.frameworks.INSTALL says).
_FRAMEWORK_EXTRA = {"torch": ("PyTorch", "pip install 'symbolic-bn[torch]'"),
                    "jax": ("JAX", "pip install 'symbolic-bn[jax]'")}


def require_framework(framework: str, option: str = "--framework") -> None:
    """A usage error naming the extra when ``framework`` is not installed (without importing it:
    the checked code's child process imports it)."""
    long_name, extra = _FRAMEWORK_EXTRA[framework]
    try:
        found = importlib.util.find_spec(framework) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise UsageError(f"{option} {framework}: {long_name} is not installed: {extra}")


def _is_file_target(text: str) -> bool:
    """``path/to/file.py:F`` (and ``file.py:F``) name a file; ``pkg.mod:F`` a module."""
    head = text.rpartition(":")[0]
    return head.endswith(".py") or "/" in head or (os.sep != "/" and os.sep in head)


def check_target_syntax(text: str, option: str = "MODULE:FUNCTION"):
    """Validate ``MODULE:FUNCTION`` or ``path/to/file.py:FUNCTION`` without importing anything.

    Returns ``('file', absolute_path, function)`` or ``('module', module, function)``."""
    if not isinstance(text, str) or not text:
        raise UsageError(f"{option} must look like package.module:function or path/to/file.py:function, "
                         f"got {text!r}")
    if _is_file_target(text):
        m = FILE_TARGET_RE.fullmatch(text)
        if not m:
            raise UsageError(f"{option} must look like path/to/file.py:function (a .py file, then ':' and "
                             f"an identifier), got {text!r}")
        path, attr = m.groups()
        if not os.path.isfile(path):
            what = "is not a file" if os.path.exists(path) else "does not exist"
            raise UsageError(f"{option}: {path!r} {what}")
        return "file", os.path.abspath(path), attr
    m = TARGET_RE.fullmatch(text)
    if not m:
        raise UsageError(f"{option} must look like package.module:function (identifiers only) or "
                         f"path/to/file.py:function, got {text!r}")
    return ("module", *m.groups())


def _module_name_for(path: str) -> str:
    """A ``sys.modules`` name for a file that replaces no module already imported."""
    stem = os.path.splitext(os.path.basename(path))[0]
    if re.fullmatch(_IDENT, stem, re.ASCII) and stem not in sys.modules:
        return stem
    base = "_symbolic_bn_checked_" + re.sub(r"[^A-Za-z0-9_]", "_", stem)
    name, k = base, 1
    while name in sys.modules:
        k += 1
        name = f"{base}_{k}"
    return name


def load_target(text: str, option: str = "MODULE:FUNCTION"):
    """Import ``MODULE:FUNCTION`` or load ``path/to/file.py:FUNCTION`` and return the callable."""
    kind, where, attr = check_target_syntax(text, option)
    try:
        if kind == "module":
            modname = where
            module = importlib.import_module(modname)
        else:
            modname = _module_name_for(where)
            spec = importlib.util.spec_from_file_location(modname, where)
            if spec is None or spec.loader is None:
                raise UsageError(f"{option}: cannot load {where!r} as a Python file")
            module = importlib.util.module_from_spec(spec)
            sys.modules[modname] = module  # as an import would (dataclasses, pickling need it)
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(modname, None)
                raise
    except (KeyboardInterrupt, UsageError):
        raise
    except BaseException as exc:  # ImportError, SyntaxError, SystemExit, errors raised at import
        shown = where if kind == "module" else os.path.basename(where)
        hint = ""
        if isinstance(exc, ModuleNotFoundError) and kind == "module" and exc.name == modname.split(".")[0]:
            hint = (f" (the current directory {os.getcwd()!r} is searched; for a file elsewhere "
                    f"pass path/to/{modname.replace('.', '/')}.py:{attr})")
        raise UsageError(f"{option}: cannot import {'module' if kind == 'module' else 'file'} "
                         f"{shown!r}: {_describe(exc)}{hint}") from None
    try:
        fn = getattr(module, attr)
    except AttributeError:
        raise UsageError(f"{option}: {'module ' + repr(where) if kind == 'module' else repr(where)} "
                         f"has no attribute {attr!r}") from None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # a module __getattr__ that raises or exits
        raise UsageError(f"{option}: cannot get {attr!r} from {where!r}: {_describe(exc)}") from None
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
        except (Exception, KeyboardInterrupt, BUDGET_INTERRUPT):  # the budget: 'undecided', not a fault
            raise
        except BaseException as exc:
            raise ExitedDuringCheck(f"{_describe(exc)} while being checked") from None
    return guarded
