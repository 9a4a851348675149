"""The ``symbolic-bn`` command line.

Subcommands:

* ``prove`` -- the exact certificate of a layer's backward: TorchLean's channel-first BatchNorm
  graph by default, any layer of :mod:`symbolic_bn.layers` with ``--layer`` (``--shape``,
  ``--groups``, ``--normalized-shape``), higher derivatives with ``--order 2|3``
  (:func:`symbolic_bn.prove`);
* ``check`` -- a user's forward / backward (or, with ``--double-backward``, double backward)
  proved exactly by :func:`symbolic_bn.checks.check.check_backward` & co.: functions with an
  ``xp`` parameter get the exact namespace, functions without one run as unmodified NumPy code on
  exact arrays (NumPy's override protocols), ``--framework torch|jax`` functions are traced and
  run exactly (:mod:`symbolic_bn.checks.frameworks`); ``--numeric`` replaces the exact check by
  the mpmath cross-check (:func:`symbolic_bn.crosscheck`).  An operation the exact engine cannot
  do is reported by name as "NOT CHECKED" (verdict UNDECIDED, exit 1) -- the tool never switches
  to the numeric cross-check on its own, so a PASS always means what was asked for;
* ``autodiff`` -- a framework's own higher-order derivatives of a forward (a built-in
  ``torch.nn.functional`` normalization or MODULE:FUNCTION), every nesting of fwd and rev up to
  ``--order``: numerically against 50-digit references (:func:`symbolic_bn.crosscheck_autodiff`)
  or, with ``--exact``, traced and proved (:func:`symbolic_bn.checks.framework_autodiff.check_autodiff`);
* ``bounds`` (inference BatchNorm IBP / derivative boxes and their certificate), ``report``
  (regenerates ``reports/``), ``explain TERM`` and ``glossary`` (the glossary,
  :mod:`symbolic_bn.glossary`).

Exit status: 0 when everything checked holds, 1 when an obligation failed, a check did not pass,
is undecided or could not be run exactly, 2 for bad usage or input.  User errors are one line on
stderr.  Nothing typed on the command line goes through ``eval`` or ``sympify``: shapes are
matched by a strict pattern, numbers parsed by :func:`symbolic_bn.exact.numbers.to_exact`
(integers by an ASCII-digit pattern), ``MODULE:FUNCTION`` is validated by an identifier pattern
and imported with :mod:`importlib`, and ``path/to/file.py:FUNCTION`` is loaded from that file
with ``importlib.util.spec_from_file_location``.  All output is assembled before anything is
printed, so an error never leaves a partial report on stdout.  ``--json`` prints one JSON object
with a boolean ``"ok"`` for every subcommand.

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
modules are imported, so a local file cannot replace them.  ``SystemExit`` raised by the checked
code at import is a usage error, while it is being checked a failed check.  The parent never
imports torch or jax (it only asks ``importlib.util.find_spec`` whether they are installed), so
a forked child starts clean.

Budgets (``--budget``): a positive number of seconds, or ``inf`` / ``none`` for no limit
(validated by :func:`symbolic_bn.exact.budget.check_budget`).
"""
from __future__ import annotations

import argparse
import functools
import importlib
import importlib.util
import json
import math
import multiprocessing
import os
import re
import sys
import tempfile
import textwrap
import threading
import time
from fractions import Fraction

# every pattern is applied with re.fullmatch (``$`` would accept a trailing newline)
SHAPE_RE = re.compile(r"([0-9]{1,4})x([0-9]{1,4})x([0-9]{1,4})", re.ASCII)
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
TARGET_RE = re.compile(rf"({_IDENT}(?:\.{_IDENT})*):({_IDENT})", re.ASCII)
# path/to/file.py:FUNCTION -- any characters but control characters in the path (which may itself
# contain ':' on Windows, hence the greedy match up to the last '.py:')
FILE_TARGET_RE = re.compile(rf"([^\x00-\x1f\x7f]+\.py):({_IDENT})", re.ASCII)
_INT_RE = re.compile(r"[+-]?[0-9]{1,9}", re.ASCII)
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]{1,9}(?:\.[0-9]{0,9})?|\.[0-9]{1,9})(?:[eE][+-]?[0-9]{1,3})?", re.ASCII)
_NO_LIMIT = ("inf", "none", "unlimited")
MAX_DPS = 10000
MAX_JSON_DEPTH = 32
#: How much of the checked code's own output is relayed to stderr.
MAX_RELAYED_CHARS = 20000
NO_VERDICT = "the checked code ended the process before a verdict"
README_GLOSSARY = "the README's \"Glossary\" section"


class UsageError(Exception):
    """Bad command-line input: reported as one line on stderr with exit status 2."""


def _one_line(text) -> str:
    return " ".join(str(text).split())


def _default_shape() -> tuple:
    """The one default shape of ``check`` and ``prove``: the API's (C, H, W pairwise different)."""
    from .checks.check import DEFAULT_SHAPE
    return tuple(DEFAULT_SHAPE)


def _shape_text(shape) -> str:
    return "x".join(str(d) for d in shape)


def parse_shape(text: str):
    """``'CxHxW'`` with positive integers, e.g. ``2x3x4``."""
    m = SHAPE_RE.fullmatch(text or "")
    if not m:
        raise UsageError(f"--shape must look like CxHxW with positive integers (e.g. 2x3x4), got {text!r}")
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
    from .exact.numbers import to_exact
    try:
        return to_exact(text, name="--eps")
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None


# ``AxBxC...``: 1 to 6 dimensions (a layer's input shape); ``3,4``: a normalized_shape
DIMS_RE = re.compile(r"[0-9]{1,4}(?:x[0-9]{1,4}){0,5}", re.ASCII)
NORMALIZED_RE = re.compile(r"[0-9]{1,4}(?:,[0-9]{1,4}){0,5}", re.ASCII)
MAX_GROUPS = 4096

#: The layers of symbolic_bn.layers (kept here so that --help needs no import of the layers).
LAYER_NAMES = ("batchnorm_channel_first", "batch_norm", "instance_norm", "layer_norm", "group_norm",
               "rms_norm")
#: What --shape means for each layer, with an example that the layer accepts.
LAYER_SHAPES = {
    "batchnorm_channel_first": "CxHxW, e.g. 2x3x4",
    "batch_norm": "NxC or NxCx<spatial>, e.g. 2x3x2x2",
    "instance_norm": "NxCx<spatial>, e.g. 1x3x4x4",
    "layer_norm": "any shape ending in --normalized-shape, e.g. 2x3x4 with --normalized-shape 3,4",
    "group_norm": "NxCx<spatial> with --groups dividing C, e.g. 2x4x3 with --groups 2",
    "rms_norm": "any shape ending in --normalized-shape, e.g. 2x3x4 with --normalized-shape 4",
}


def parse_dims(text, option: str = "--shape"):
    """A layer's input shape ``AxBx...`` (1 to 6 positive integers joined by ``x``)."""
    if not isinstance(text, str) or not DIMS_RE.fullmatch(text):
        raise UsageError(f"{option} must be positive integers joined by x (e.g. 2x3x2x2), got {text!r}")
    dims = tuple(int(d) for d in text.split("x"))
    if min(dims) <= 0:
        raise UsageError(f"{option} dimensions must be positive, got {text!r}")
    return dims


def parse_normalized_shape(text):
    """``--normalized-shape``: comma-separated positive sizes (``3,4``)."""
    if not isinstance(text, str) or not NORMALIZED_RE.fullmatch(text):
        raise UsageError(f"--normalized-shape must be positive integers separated by commas (e.g. 3,4), "
                         f"got {text!r}")
    dims = tuple(int(d) for d in text.split(","))
    if min(dims) <= 0:
        raise UsageError(f"--normalized-shape sizes must be positive, got {text!r}")
    return dims


def layer_spec(name, shape_text, groups_text, normalized_text, eps_text) -> dict:
    """Validate ``--layer NAME --shape ... [--groups G] [--normalized-shape ...]`` (and ``--eps``)
    and return plain values (they reach a 'spawn' child); :func:`build_layer` makes the Layer.
    Each problem is a usage error naming its option."""
    if name not in LAYER_NAMES:
        raise UsageError(f"--layer must be one of {', '.join(LAYER_NAMES)}, got {name!r}")
    if groups_text is not None and name != "group_norm":
        raise UsageError(f"--groups is only for --layer group_norm (got --layer {name})")
    if normalized_text is not None and name not in ("layer_norm", "rms_norm"):
        raise UsageError(f"--normalized-shape is only for --layer layer_norm or rms_norm (got --layer {name})")
    if shape_text is None:
        if name != "batchnorm_channel_first":
            raise UsageError(f"--layer {name} needs --shape ({LAYER_SHAPES[name]})")
        shape = _default_shape()
    else:
        shape = parse_dims(shape_text)
    groups = normalized = None
    if name == "group_norm":
        if groups_text is None:
            raise UsageError("--layer group_norm needs --groups G (the number of groups, dividing C)")
        groups = parse_int(groups_text, "--groups", 1, MAX_GROUPS)
    if name in ("layer_norm", "rms_norm"):
        if normalized_text is None:
            raise UsageError(f"--layer {name} needs --normalized-shape (the trailing sizes the statistics "
                             f"reduce over, e.g. {shape[-1]})")
        normalized = parse_normalized_shape(normalized_text)
    parse_eps(eps_text)  # a usage error naming --eps
    spec = {"name": name, "shape": shape, "groups": groups, "normalized_shape": normalized, "eps": eps_text}
    build_layer(spec)  # every constructor check, before anything runs
    return spec


def build_layer(spec):
    """The :class:`symbolic_bn.layers.Layer` of a :func:`layer_spec`; a constructor's ValueError
    becomes a usage error naming the option it is about."""
    from . import layers
    name, shape = spec["name"], tuple(spec["shape"])
    eps = parse_eps(spec["eps"])
    try:
        if name == "batchnorm_channel_first":
            if len(shape) != 3:
                raise ValueError(f"shape: batchnorm_channel_first takes CxHxW (3 dimensions), got "
                                 f"{_shape_text(shape)}")
            return layers.batchnorm_channel_first(*shape, eps=eps)
        if name == "group_norm":
            return layers.group_norm(shape, spec["groups"], eps=eps)
        if name in ("layer_norm", "rms_norm"):
            return getattr(layers, name)(shape, tuple(spec["normalized_shape"]), eps=eps)
        return getattr(layers, name)(shape, eps=eps)
    except ValueError as exc:
        msg = _one_line(exc)
        option = "--shape"
        for prefix, opt in (("groups", "--groups"), ("normalized_shape", "--normalized-shape"),
                            ("eps", "--eps")):
            if msg.startswith(prefix):
                option = opt
        if msg.startswith("shape: "):
            msg = msg[len("shape: "):]
        raise UsageError(f"{option}: {msg} (--layer {name} --shape {_shape_text(shape)})") from None


def layer_label(spec) -> str:
    """``group_norm 2x4x3, G=2`` -- for progress lines."""
    text = f"{spec['name']} {_shape_text(spec['shape'])}"
    if spec.get("groups"):
        text += f", G={spec['groups']}"
    if spec.get("normalized_shape"):
        text += f", normalized_shape={','.join(map(str, spec['normalized_shape']))}"
    return text


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


def parse_budget(text, option: str = "--budget"):
    """A positive number of seconds in ASCII, or ``inf``/``none``/``unlimited`` (no limit:
    returns ``None``).  NaN, zero, negative numbers and anything else are a usage error."""
    if isinstance(text, str) and text.strip().lower() in _NO_LIMIT and text == text.strip():
        return None
    if not isinstance(text, str) or not _FLOAT_RE.fullmatch(text):
        raise UsageError(f"{option} must be a positive number of seconds, or inf/none for no limit, "
                         f"got {text!r}")
    from .exact.budget import check_budget
    try:
        return check_budget(float(text), option)  # None for a number that overflows to inf
    except ValueError:
        raise UsageError(f"{option} must be a positive number of seconds, or inf/none for no limit, "
                         f"got {text!r}") from None


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


def _min_dps() -> int:
    from .checks.crosscheck import MIN_DPS
    return int(MIN_DPS)


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
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (with a boolean \"ok\") on stdout instead of text")
    p.add_argument("--quiet", action="store_true",
                   help="no progress line on stderr (shown only when stderr is a terminal)")


def _layer_options(p, shape_help, repeat=False):
    p.add_argument("--layer", choices=LAYER_NAMES, default=None, metavar="NAME",
                   help="the normalization layer: " + ", ".join(LAYER_NAMES) + " (the layers of "
                        "symbolic_bn.layers, named like torch.nn.functional's; default "
                        "batchnorm_channel_first, TorchLean's channel-first BatchNorm)")
    p.add_argument("--shape", action="append" if repeat else "store",
                   default=None, metavar="SHAPE", help=shape_help)
    p.add_argument("--groups", default=None, metavar="G",
                   help="with --layer group_norm: the number of groups G (dividing the channels C)")
    p.add_argument("--normalized-shape", dest="normalized_shape", default=None, metavar="N1,N2",
                   help="with --layer layer_norm or rms_norm: the trailing sizes the statistics reduce "
                        "over, comma-separated (e.g. 3,4 for an input 2x3x4)")


GLOSSARY_POINTER = textwrap.fill(
    f"Every term in the output (slot, seed, sqrtClamp, IBP, err/bound, fwd-over-rev, ...) is "
    f"explained by `symbolic-bn explain TERM`; `symbolic-bn glossary` prints them all, and "
    f"{README_GLOSSARY} has the same text.", width=92)

_PROVE_DESCRIPTION = """\
Prove, with exact algebra, that a normalization layer's backward is right.  Default: TorchLean's
channel-first BatchNorm graph (x of shape CxHxW); --layer batch_norm, instance_norm,
layer_norm, group_norm or rms_norm (with --shape in the layer's own layout, --groups,
--normalized-shape) proves that layer's graph.  For each stage the jvp/vjp rules are the true
derivative and its transpose, and end to end backprop(x, s) = J_E(x)^T s for every seed s on
every slot, for all inputs with var + eps > 0 in every statistics group, at the given shape(s);
the graph is also linked to the closed-form backward and the domain facts are stated.  --order 2
or 3 adds the higher derivatives: every nesting of fwd and rev (fwd-over-rev, ...) against the
k-th derivative of the forward, Hessian symmetry, the tape closed under differentiation, and the
closed-form double backward.  Each obligation is PROVED, FAILED (with an exact counterexample)
or UNDECIDED (budget exhausted)."""

_CHECK_DESCRIPTION = """\
Prove YOUR backward (and optionally forward) exactly equal to the derivative of the layer.
backward(x, gamma, beta, grad_out, eps[, xp]) -> (dx, dgamma, dbeta) is run once on exact
symbolic arrays and proved equal to J^T grad_out for all inputs at the shape, or refuted with an
exact counterexample.  A function with an xp parameter gets the exact namespace as xp; one
without it runs unmodified: its np.sum, np.mean, np.sqrt, reshape, @, ... work on the exact
arrays through NumPy's override protocols.  An operation the exact engine cannot do (np.tanh, a
float buffer from np.zeros(shape), ...) is reported by name as NOT CHECKED (exit 1): the tool
never falls back on its own; --numeric runs the mpmath cross-check instead.  --layer checks
another layer in its own layout (backward(x, weight, bias, grad_out, eps[, xp])),
--framework torch|jax a framework-native function (tensors in and out; traced and run
exactly), --double-backward a double backward fn(x, weight, bias, grad_out, ggx, ggweight,
ggbias, eps[, xp]) -> (gx, gweight, ggrad_out).  The checked code runs in a child process:
whatever it does (sys.exit, os._exit, atexit), the exit status is the tool's verdict, and what
it prints goes to stderr.  The current directory is on the import path."""

_AUTODIFF_DESCRIPTION = """\
Check a framework's own derivatives of a layer's forward f(x, weight, bias) -> y, to order 1,
2 or 3: every nesting of forward (fwd) and reverse (rev) mode -- "fwd-over-rev" is a jvp of a
vjp, JAX's Hessian-vector product -- in every API that runs it (torch.func, torch.autograd,
torch.autograd.forward_ad; jax).  TARGET is a built-in (torch.nn.functional.batch_norm,
instance_norm, layer_norm, group_norm, rms_norm, called with the layer's eps, groups,
normalized_shape) or MODULE:FUNCTION.  By default each mode's value at random points is compared
with a 50-digit reference of the layer under a dtype-aware bound (PASS/FAIL, ERROR when the
framework raises); --exact traces each mode and proves it exactly (PROVED/FAILED with an exact
counterexample re-confirmed by the framework/UNDECIDED).  Exit 1 when any row is not PASS or
PROVED."""

_BOUNDS_DESCRIPTION = """\
Bounds of an inference-mode (model.eval()) BatchNorm layer, BN(x) = s*x + o per channel with
s = gamma/sqrt(max(running_var, 0) + eps), o = beta - s*running_mean: the IBP box of BN(x) for x
in a box (--box), and, when given, the box of d/dt BN(x(t)) for x'(t) in a box (--dbox) and of
d2/dt2 BN(x(t)) for x''(t) in a box (--ddbox).  --prove prints the exact certificate of the
rules used."""

_REPORT_DESCRIPTION = """\
Regenerate the correctness reports: one self-contained index.html, one Markdown and one JSON
file per subject (BN graph certificates, inference bounds, mpmath cross-checks, all-sizes
certificate).  Only a previous report's own files are ever replaced."""

_EXPLAIN_DESCRIPTION = """\
Explain a term the other subcommands print (case-insensitive; an index such as var_c or
dx[0, 0, 0] and obligation names such as stage.std.derivative are understood).  Without a
term, list every term with a one-line explanation."""

_GLOSSARY_DESCRIPTION = """\
Print every term the other subcommands print (slot, seed, context, totalized, sqrtClamp,
rowMean, J_E, IBP, err/bound, kappa, fwd-over-rev, ...) with its explanation in words a PyTorch
user knows, grouped by topic.  `symbolic-bn explain TERM` prints one entry."""

#: Mode names, for --help (symbolic_bn.checks.autodiff.MODES, which imports mpmath).
_MODE_EXAMPLES = "fwd, rev, fwd-over-rev, rev-over-rev, fwd-over-fwd-over-rev, ..."


def build_parser() -> argparse.ArgumentParser:
    shape = _shape_text(_default_shape())
    from .checks.check import DEFAULT_BUDGET as CHECK_BUDGET
    from .obligations.prove import DEFAULT_BUDGET as PROVE_BUDGET
    fmt = argparse.RawDescriptionHelpFormatter
    p = _Parser(prog="symbolic-bn", formatter_class=fmt,
                description=textwrap.fill(
                    "Exact proofs and cross-checks of the backward rules of normalization layers "
                    "(BatchNorm, InstanceNorm, LayerNorm, GroupNorm, RMSNorm) -- yours, and PyTorch's "
                    "and JAX's own derivatives up to third order -- and sound bounds for inference "
                    "BatchNorm.", width=92),
                epilog=GLOSSARY_POINTER + "\n\nExit status: 0 = everything checked holds, 1 = failed, "
                                          "undecided or not checked, 2 = bad usage or input.")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND",
                           title="commands (symbolic-bn COMMAND --help for details)")

    def add(name, help_, description):
        return sub.add_parser(name, help=help_, description=description, formatter_class=fmt,
                              epilog=GLOSSARY_POINTER)

    pr = add("prove", "prove a layer's backward (and higher derivatives) exactly: the certificate",
             _PROVE_DESCRIPTION)
    _layer_options(pr, f"the input shape (repeatable): CxHxW for the default layer (default {shape}); with "
                       f"--layer, the layer's own layout such as 2x3x2x2 (NxCxHxW), required", repeat=True)
    pr.add_argument("--eps", action="append", metavar="EPS",
                    help="'symbolic' (default: any real eps with var + eps > 0) or an exact number "
                         "such as 1e-5 or 1/100000 (repeatable)")
    pr.add_argument("--order", default="1", metavar="K",
                    help="1 (default): the backward; 2 or 3: also every second / third derivative "
                         "(every nesting of fwd and rev, Hessian symmetry, double backward)")
    pr.add_argument("--backend", choices=["flint", "sympy"], default=None,
                    help="exact polynomial arithmetic: flint (python-flint, fast; the 'fast' extra) or "
                         "sympy (pure Python); same verdicts (default: the fastest installed)")
    pr.add_argument("--budget", default=f"{PROVE_BUDGET:g}", metavar="SECONDS",
                    help=f"seconds per obligation group before it is UNDECIDED; inf or none: no limit "
                         f"(default {PROVE_BUDGET:g})")
    pr.add_argument("--brief", action="store_true",
                    help="one line per obligation (no statement / assumes / method)")
    _common(pr)

    ck = add("check", "prove your own backward (forward, double backward) exactly", _CHECK_DESCRIPTION)
    ck.add_argument("backward", metavar="MODULE:FUNCTION",
                    help="the backward to check, backward(x, gamma, beta, grad_out, eps[, xp]) -> "
                         "(dx, dgamma, dbeta) (with --layer: backward(x, weight, bias, grad_out, eps[, xp]) "
                         "-> (dx, dweight, dbias), rms_norm: (dx, dweight)), as module:function (imported "
                         "from the current directory or the installed packages) or path/to/file.py:function")
    ck.add_argument("--forward", metavar="MODULE:FUNCTION",
                    help="also check forward(x, gamma, beta, eps[, xp]) -> y (with --layer: forward(x, "
                         "weight, bias, eps[, xp])), same two spellings")
    ck.add_argument("--double-backward", dest="double_backward", action="store_true",
                    help="MODULE:FUNCTION is a double backward fn(x, weight, bias, grad_out, ggx, ggweight, "
                         "ggbias, eps[, xp]) -> (gx, gweight, ggrad_out) (PyTorch's shape), proved against "
                         "the derivative of J^T grad_out")
    _layer_options(ck, f"shape of x: CxHxW for the default layer (default {shape}); with --layer, the "
                       f"layer's own layout such as 2x3x2x2 (NxCxHxW), required (bugs that depend on "
                       f"larger sizes need larger shapes)")
    ck.add_argument("--framework", choices=["torch", "jax"], default=None,
                    help="the functions are framework-native (torch tensors or jax arrays in and out, "
                         "float64, eps a float): traced (make_fx / make_jaxpr) and the trace proved "
                         "exactly; needs the 'torch' or 'jax' extra; eps defaults to 1e-5")
    ck.add_argument("--eps", default=None, metavar="EPS",
                    help="exact check: 'symbolic' (default; 1e-5 with --framework) or an exact positive "
                         "number; cross-check: a number (default 1e-5)")
    ck.add_argument("--budget", default=f"{CHECK_BUDGET:g}", metavar="SECONDS",
                    help=f"seconds for each exact check before it is UNDECIDED; inf or none: "
                         f"no limit (default {CHECK_BUDGET:g})")
    ck.add_argument("--dtype", choices=["float32", "float64"], default="float64",
                    help="dtype of the numeric cross-check (default float64)")
    ck.add_argument("--dps", default="50",
                    help=f"mpmath digits of the cross-check reference, {_min_dps()}–{MAX_DPS} (default 50)")
    ck.add_argument("--numeric", action="store_true",
                    help="instead of the exact check: cross-check at float points against mpmath only")
    ck.add_argument("--brief", action="store_true",
                    help="one line per obligation (no statement / assumes / method)")
    _common(ck)

    ad = add("autodiff", "check torch's / jax's own derivatives of a layer, up to third order",
             _AUTODIFF_DESCRIPTION)
    ad.add_argument("target", metavar="TARGET",
                    help="torch.nn.functional.batch_norm, ...instance_norm, ...layer_norm, ...group_norm, "
                         "...rms_norm, or MODULE:FUNCTION / path/to/file.py:FUNCTION: f(x, weight, bias) -> y "
                         "with framework tensors, implementing --layer with --eps")
    _layer_options(ad, "the input shape in the layer's layout, e.g. 1x3x4x4 (required)")
    ad.add_argument("--eps", default="1e-5", metavar="EPS",
                    help="the layer's eps, a number (default 1e-5; f must use the same value)")
    ad.add_argument("--order", default=None, metavar="K",
                    help="check every mode of order 1 up to K (1, 2 or 3; default 3, with --exact 1)")
    ad.add_argument("--modes", default="all", metavar="M1,M2",
                    help=f"'all' (default) or comma-separated mode names up to --order ({_MODE_EXAMPLES})")
    ad.add_argument("--framework", choices=["torch", "jax"], default="torch",
                    help="the framework that differentiates f (default torch; jax needs MODULE:FUNCTION)")
    ad.add_argument("--exact", action="store_true",
                    help="trace every mode and prove it exactly (check_autodiff) instead of the numeric "
                         "comparison (crosscheck_autodiff)")
    ad.add_argument("--dtype", choices=["float32", "float64"], default="float64",
                    help="dtype of the numeric comparison (default float64; --exact traces in float64)")
    ad.add_argument("--points", default="5", metavar="N",
                    help="random points of the numeric comparison, 1–1000 (default 5)")
    ad.add_argument("--seed", default="0", metavar="S",
                    help="seed of the random points and directions (default 0)")
    ad.add_argument("--dps", default="50", metavar="D",
                    help=f"digits of the numeric reference, 50–{MAX_DPS} (default 50)")
    ad.add_argument("--budget", default=None, metavar="SECONDS",
                    help="with --exact: seconds for the whole check before the rest is UNDECIDED; inf or "
                         "none: no limit (default 600)")
    _common(ad)

    bd = add("bounds", "interval (IBP) and derivative boxes of an inference BatchNorm layer",
             _BOUNDS_DESCRIPTION)
    bd.add_argument("--params", metavar="FILE.json",
                    help="JSON object with running_mean, running_var, gamma, beta (lists, one entry per "
                         "channel) and eps; strings such as \"1/4\" are exact, and so are integers too "
                         "large for float64")
    bd.add_argument("--box", metavar="FILE.json",
                    help="JSON object with lo and hi (nested lists of one shape): the box of inputs x; "
                         "prints the IBP box of BN(x)")
    bd.add_argument("--dbox", metavar="FILE.json",
                    help="JSON object with lo and hi: a box of tangents x'(t); prints the derivative "
                         "box of d/dt BN(x(t))")
    bd.add_argument("--ddbox", metavar="FILE.json",
                    help="JSON object with lo and hi: a box of x''(t); prints the second-derivative "
                         "box of d2/dt2 BN(x(t))")
    bd.add_argument("--channel-axis", default="0", metavar="K",
                    help="axis of the boxes that holds the channels (default 0; -1 for channel-last)")
    bd.add_argument("--rounding", choices=["nearest", "outward"], default="nearest",
                    help="float64 round-to-nearest (default), or outward rounding: a float64 box "
                         "guaranteed to contain the exact one")
    bd.add_argument("--prove", action="store_true", help="print the exact certificate of the bound rules")
    bd.add_argument("--budget", default="60", metavar="SECONDS",
                    help="with --prove: seconds per obligation; inf or none: no limit (default 60)")
    bd.add_argument("--brief", action="store_true", help="one line per obligation (with --prove)")
    _common(bd)

    rp = add("report", "regenerate the correctness reports (HTML, Markdown, JSON)", _REPORT_DESCRIPTION)
    rp.add_argument("--out", default="reports", metavar="DIR",
                    help="output directory (default reports/)")
    rp.add_argument("--shape", action="append", metavar="CxHxW",
                    help="CxHxW of the BN-graph subject (repeatable; default 1x2x2 2x2x2 2x3x3 4x8x8)")
    rp.add_argument("--no-torch", action="store_true", help="leave PyTorch out of the cross-check")
    _common(rp)

    ex = add("explain", "explain a term of the output (the glossary)", _EXPLAIN_DESCRIPTION)
    ex.add_argument("term", nargs="*", metavar="TERM",
                    help="the term, e.g. sqrtClamp, 'side condition', err/bound (omit it to list all)")
    ex.add_argument("--json", action="store_true",
                    help="print one JSON object (with a boolean \"ok\") on stdout instead of text")
    gl = add("glossary", "print the whole glossary: every term of the output, explained",
             _GLOSSARY_DESCRIPTION)
    gl.add_argument("--markdown", action="store_true",
                    help="print it as Markdown (the README's Glossary section) instead of text")
    gl.add_argument("--json", action="store_true",
                    help="print one JSON object (with a boolean \"ok\") on stdout instead of text")
    return p


# --------------------------------------------------------------------------------------------
# prove
# --------------------------------------------------------------------------------------------

def _prove_budget(seconds):
    """``prove`` and ``bounds.prove`` take ``math.inf`` for no limit, ``check_*`` take ``None``."""
    return math.inf if seconds is None else seconds


def _cmd_prove(args) -> int:
    from . import batchnorm_channel_first, prove
    from .report.text import certificate_text
    order = parse_int(args.order, "--order", 1, 3)
    eps_texts = args.eps or ["symbolic"]
    budget = _prove_budget(parse_budget(args.budget, "--budget"))
    if args.layer is None:
        for opt, value in (("--groups", args.groups), ("--normalized-shape", args.normalized_shape)):
            if value is not None:
                raise UsageError(f"{opt} needs --layer ({'group_norm' if opt == '--groups' else 'layer_norm or rms_norm'})")
        shapes = [parse_shape(s) for s in (args.shape or [_shape_text(_default_shape())])]
        for e in eps_texts:
            parse_eps(e)
        subjects = [(f"proving {_shape_text(s)}", lambda s=s, e=e: batchnorm_channel_first(*s, eps=parse_eps(e)))
                    for s in shapes for e in eps_texts]
    else:
        specs = [layer_spec(args.layer, s, args.groups, args.normalized_shape, e)
                 for s in (args.shape or [None]) for e in eps_texts]
        subjects = [(f"proving {layer_label(sp)}", lambda sp=sp: build_layer(sp)) for sp in specs]
    certs = []
    with Progress(args.quiet) as prog:
        for label, make in subjects:
            prog.set(label + (f", order {order}" if order > 1 else ""))
            try:
                certs.append(prove(make(), budget=budget, backend=args.backend, order=order))
            except (ValueError, TypeError, OverflowError) as exc:  # bad shape/eps, empty domain, ...
                raise UsageError(_one_line(exc)) from None
    ok = all(c.ok for c in certs)
    out = []
    if args.json:
        out.append(json.dumps({"ok": ok, "certificates": [c.to_dict() for c in certs]},
                              indent=2, ensure_ascii=False))
    else:
        for c in certs:
            out.append(certificate_text(c, verbose=not args.brief))
            out.append("")
    return (0 if ok else 1), out
# --------------------------------------------------------------------------------------------
# check: the parent validates the arguments, a child process imports and runs the checked code
# --------------------------------------------------------------------------------------------

#: Exceptions that mean "the exact engine cannot do this operation" (not "the code is wrong").
_REFUSAL_TYPES = (("symbolic_bn.exact.errors", "UnsupportedOperation"),
                  ("symbolic_bn.frontends.torch_errors", "UnsupportedTorchOp"),
                  ("symbolic_bn.frontends.jax", "UnsupportedJaxPrimitive"))


def _is_refusal(exc) -> bool:
    """Whether an ImplementationError comes from an operation the exact engine (or a framework
    interpreter) refuses: such a cause anywhere in its cause/context chain."""
    kinds = []
    for mod, name in _REFUSAL_TYPES:
        module = sys.modules.get(mod)
        if module is not None and isinstance(getattr(module, name, None), type):
            kinds.append(getattr(module, name))
    seen, e = set(), exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if kinds and isinstance(e, tuple(kinds)):
            return True
        e = e.__cause__ or e.__context__
    return False


_ROLE_ARITY = {"forward": 4, "backward": 5}  # data arguments before the optional xp


def _check_plan(args) -> dict:
    """Everything ``check`` needs, validated in the parent (nothing of the checked code imported):
    plain values, so that the plan also reaches a 'spawn' child."""
    framework = args.framework
    if framework and args.numeric:
        raise UsageError("--numeric cannot be combined with --framework: the mpmath cross-check calls "
                         "NumPy code, while a framework function is checked exactly (drop --numeric)")
    if args.double_backward and args.numeric:
        raise UsageError("--double-backward has no numeric cross-check: drop --numeric")
    if args.double_backward and framework:
        raise UsageError("--double-backward checks xp or NumPy code, not --framework functions")
    eps_text = args.eps
    if framework:
        eps_text = "1e-5" if eps_text is None else eps_text
        if parse_eps(eps_text) is None:
            raise UsageError(f"--eps: a --framework function takes eps as a float, so eps must be a number "
                             f"such as 1e-5 (the default with --framework), got {eps_text!r}")
    eps_exact = parse_eps(eps_text)
    if eps_exact is not None and not eps_exact > 0:
        raise UsageError(f"--eps must be positive, got {args.eps!r}")
    dps = parse_int(args.dps, "--dps", _min_dps(), MAX_DPS)
    budget = parse_budget(args.budget, "--budget")
    try:
        eps_float = 1e-5 if eps_exact is None else float(eps_exact)
    except (ValueError, OverflowError, TypeError):
        eps_float = math.nan
    spec = None
    if args.layer is not None or framework:
        spec = layer_spec(args.layer or "batchnorm_channel_first", args.shape, args.groups,
                          args.normalized_shape, eps_text)
        shape = tuple(spec["shape"])
    else:
        for opt, value in (("--groups", args.groups), ("--normalized-shape", args.normalized_shape)):
            if value is not None:
                raise UsageError(f"{opt} needs --layer ({'group_norm' if opt == '--groups' else 'layer_norm or rms_norm'})")
        shape = parse_shape(args.shape) if args.shape is not None else _default_shape()
    check_target_syntax(args.backward, "MODULE:FUNCTION")
    if args.forward:
        check_target_syntax(args.forward, "--forward")
    if framework:
        require_framework(framework)
    return {"command": "check", "backward": args.backward, "forward": args.forward,
            "targets": [t for t in (args.backward, args.forward) if t],
            "role": "double_backward" if args.double_backward else "backward",
            "layer": spec, "framework": framework, "shape": shape,
            "shape_text": layer_label(spec) if spec else _shape_text(shape),
            "eps": eps_text, "eps_float": eps_float, "dps": dps, "budget": budget, "dtype": args.dtype,
            "numeric": bool(args.numeric), "brief": bool(args.brief), "json": bool(args.json),
            "cwd": os.getcwd()}


def _exact_check(role, fn, plan, layer):
    """One exact check through the public API: check_forward / check_backward (with ``layer=`` and
    ``framework=`` when given) or check_double_backward."""
    budget = plan["budget"]
    if role == "double_backward":
        try:
            from .checks.double_backward import check_double_backward
        except ImportError as exc:
            raise UsageError(f"--double-backward is unavailable in this installation "
                             f"(symbolic_bn.checks.double_backward: {_one_line(exc)})") from None
        if layer is None:
            return check_double_backward(fn, shape=plan["shape"], eps=parse_eps(plan["eps"]), budget=budget)
        return check_double_backward(fn, layer=layer, budget=budget)
    from .checks import check
    api = check.check_forward if role == "forward" else check.check_backward
    if layer is None:
        return api(fn, plan["shape"], parse_eps(plan["eps"]), budget=budget)
    if plan["framework"]:
        return api(fn, layer=layer, budget=budget, framework=plan["framework"])
    return api(fn, layer=layer, budget=budget)


def _numeric_check(need, plan, layer):
    """The mpmath cross-check of the functions in ``need`` ({'forward': fn, 'backward': fn})."""
    from .checks.crosscheck import crosscheck
    eps_float = plan["eps_float"]
    if not (eps_float > 0 and math.isfinite(eps_float)):
        raise UsageError(f"--eps {plan['eps']!r} is not a positive finite float64, which the mpmath "
                         f"cross-check needs")
    common = dict(dtype=plan["dtype"], dps=plan["dps"])
    if layer is None:  # crosscheck passes xp only to functions that take it
        return crosscheck(forward=need.get("forward"), backward=need.get("backward"), shape=plan["shape"],
                          eps=eps_float, **common)
    return crosscheck(forward=need.get("forward"), backward=need.get("backward"), layer=layer,
                      eps=eps_float if layer.symbolic_eps else None, **common)


def _run_check(plan, say) -> tuple:
    """The check itself (in the child): returns ``(status, output lines)``; ``say(label)`` reports
    progress."""
    from .checks.calling import takes_namespace
    from .checks.crosscheck import ImplementationError
    from .report.text import certificate_text
    layer = build_layer(plan["layer"]) if plan["layer"] else None
    backward = _guard(load_target(plan["backward"], "MODULE:FUNCTION"))
    forward = _guard(load_target(plan["forward"], "--forward")) if plan["forward"] else None

    notes, certs, numeric, failures, refused = [], [], {}, [], []
    need_numeric = {}
    for role, fn in (("forward", forward), (plan["role"], backward)):
        if fn is None:
            continue
        if plan["numeric"]:
            need_numeric[role] = fn
            continue
        if not plan["framework"] and role in _ROLE_ARITY and not takes_namespace(fn, _ROLE_ARITY[role]):
            notes.append(f"{role}: {getattr(fn, '__name__', 'function')} takes no xp argument: run as "
                         f"unmodified NumPy code on exact arrays")
        say(f"exact {role.replace('_', ' ')} check at {plan['shape_text']}")
        try:
            cert = _exact_check(role, fn, plan, layer)
        except ImplementationError as exc:
            (refused if _is_refusal(exc) else failures).append(f"{role}: {_one_line(exc)}")
            continue
        except (ValueError, TypeError) as exc:
            raise UsageError(f"{role}: {_one_line(exc)}") from None
        certs.append(cert)
    if need_numeric:
        say(f"mpmath cross-check ({plan['dtype']}, dps {plan['dps']})")
        try:
            numeric = {"result": _numeric_check(need_numeric, plan, layer)}
        except ImplementationError as exc:
            # the implementation raised or returned the wrong shape: a failed check
            numeric = {"error": _one_line(exc)}
        except ValueError as exc:
            raise UsageError(_one_line(exc)) from None
    res = numeric.get("result")
    ok = not failures and not refused and all(c.ok for c in certs) and (not numeric or (res is not None and res.ok))
    failed = bool(failures) or any(ob.status == "failed" for c in certs for ob in c) or "error" in numeric \
        or (res is not None and any(not o.ok for o in res.outputs.values()))
    verdict = "PASS" if ok else ("FAIL" if failed else "UNDECIDED")
    hint = ("; --numeric cross-checks it against mpmath instead" if plan["role"] != "double_backward"
            and not plan["framework"] else "")
    out = []
    if plan["json"]:
        doc = {"ok": ok, "verdict": verdict, "notes": notes, "failures": failures, "refused": refused,
               "certificates": [c.to_dict() for c in certs],
               "crosscheck": (res.to_dict() if res is not None else
                              ({"ok": False, "error": numeric["error"]} if numeric else None))}
        out.append(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        for n in notes:
            out.append(f"note: {n}")
        for c in certs:
            out.append(certificate_text(c, verbose=not plan["brief"]))
            failed_obs = [ob for ob in c if ob.status == "failed"]
            for ob in failed_obs:
                out.append(f"COUNTEREXAMPLE {ob.name}: "
                           + ", ".join(f"{k}={v}" for k, v in (ob.counterexample or {}).items()))
            out.append("")
        if res is not None:
            out.append(res.summary())
            for name, o in res.outputs.items():
                if not o.ok:
                    out.append(f"COUNTEREXAMPLE {name}: " + json.dumps(o.to_dict()["worst"], ensure_ascii=False))
        elif numeric:
            out.append(f"crosscheck FAILED: {numeric['error']}")
        for f in failures:
            out.append(f"FAILED {f}")
        for r in refused:
            out.append(f"NOT CHECKED {r} (nothing was proved about it{hint})")
        out.append(f"CHECK: {verdict}")
    return (0 if ok else 1), out


# --------------------------------------------------------------------------------------------
# autodiff: a framework's own derivatives, numerically (crosscheck_autodiff) or exactly
# --------------------------------------------------------------------------------------------

#: TARGET names of the built-in torch functions (symbolic_bn.checks.autodiff.BUILTIN_TARGETS).
BUILTIN_TARGETS = tuple(f"torch.nn.functional.{n}" for n in
                        ("batch_norm", "instance_norm", "layer_norm", "group_norm", "rms_norm"))


def _builtin_target(text):
    """The full name of a built-in TARGET (``torch.nn.functional.X``, ``F.X`` or ``X``), else None."""
    if not isinstance(text, str):
        return None
    short = text.rsplit(".", 1)[-1] if text.startswith(("torch.nn.functional.", "F.")) else text
    full = f"torch.nn.functional.{short}"
    return full if full in BUILTIN_TARGETS and text in (full, f"F.{short}", short) else None


def _parse_modes(text, order):
    from .checks import autodiff as A
    if text == "all":
        return "all"
    modes = tuple(m.strip() for m in text.split(","))
    try:
        return list(A._check_modes(modes, order))
    except ValueError as exc:
        raise UsageError(f"--modes: {_one_line(exc).removeprefix('modes: ')}") from None


def _autodiff_plan(args) -> dict:
    builtin = _builtin_target(args.target)
    framework = args.framework
    if builtin and framework != "torch":
        raise UsageError(f"TARGET {args.target} is a torch function; --framework {framework} needs "
                         f"MODULE:FUNCTION (a {framework} function f(x, weight, bias) -> y)")
    if not builtin:
        if ":" not in args.target:
            raise UsageError(f"TARGET must be one of {', '.join(BUILTIN_TARGETS)} or MODULE:FUNCTION "
                             f"(or path/to/file.py:FUNCTION), got {args.target!r}")
        check_target_syntax(args.target, "TARGET")
    name = args.layer or (builtin.rsplit(".", 1)[-1] if builtin else None)
    if name is None:
        raise UsageError("--layer is needed with MODULE:FUNCTION: the layer f implements "
                         f"({', '.join(LAYER_NAMES)})")
    if args.shape is None:
        raise UsageError(f"--shape is needed: the input shape of --layer {name} ({LAYER_SHAPES[name]})")
    if parse_eps(args.eps) is None:
        raise UsageError(f"--eps must be a number such as 1e-5 (f implements the layer with one eps), "
                         f"got {args.eps!r}")
    spec = layer_spec(name, args.shape, args.groups, args.normalized_shape, args.eps)
    default_order = "1" if args.exact else "3"
    order = parse_int(args.order if args.order is not None else default_order, "--order", 1, 3)
    modes = _parse_modes(args.modes, order)
    if args.exact and args.dtype != "float64":
        raise UsageError("--dtype: --exact traces in float64 only (drop --dtype, or drop --exact for the "
                         "numeric comparison in float32)")
    if not args.exact and args.budget is not None:
        raise UsageError("--budget is for --exact (the numeric comparison has no time budget)")
    points = parse_int(args.points, "--points", 1, 1000)
    seed = parse_int(args.seed, "--seed", 0, 2 ** 31 - 1)
    dps = parse_int(args.dps, "--dps", 50, MAX_DPS)
    budget = parse_budget(args.budget, "--budget") if args.budget is not None else 600.0
    require_framework(framework)
    return {"command": "autodiff", "target": builtin or args.target, "builtin": bool(builtin),
            "targets": [] if builtin else [args.target], "layer": spec, "framework": framework,
            "order": order, "modes": modes, "exact": bool(args.exact), "dtype": args.dtype,
            "points": points, "seed": seed, "dps": dps, "budget": budget,
            "shape_text": layer_label(spec), "json": bool(args.json), "cwd": os.getcwd()}


def _run_autodiff(plan, say) -> tuple:
    """crosscheck_autodiff or check_autodiff (in the child): ``(status, output lines)``."""
    from .checks.crosscheck import ImplementationError
    layer = build_layer(plan["layer"])
    if plan["builtin"]:
        from .checks.autodiff import builtin_function
        try:
            f = builtin_function(plan["target"], layer)
        except ValueError as exc:
            raise UsageError(f"TARGET {plan['target']}: {_one_line(exc)}") from None
    else:
        f = _guard(load_target(plan["target"], "TARGET"))
    what = f"order {plan['order']} of {plan['target']} at {plan['shape_text']}"
    if plan["exact"]:
        try:
            from .checks.framework_autodiff import autodiff_text, check_autodiff
        except ImportError as exc:
            raise UsageError(f"--exact is unavailable in this installation "
                             f"(symbolic_bn.checks.framework_autodiff: {_one_line(exc)})") from None
        say(f"tracing and proving {what}")
        try:
            cert = check_autodiff(f, layer, framework=plan["framework"], order=plan["order"],
                                  modes=plan["modes"], budget=plan["budget"], seed=plan["seed"])
        except ImplementationError as exc:  # f itself does not trace or run exactly: not checked
            msg = _one_line(exc)
            if plan["json"]:
                return 1, [json.dumps({"ok": False, "verdict": "UNDECIDED", "error": msg, "certificates": []},
                                      indent=2, ensure_ascii=False)]
            return 1, [f"NOT CHECKED {plan['target']}: {msg} (no derivative of it was checked)",
                       "AUTODIFF: UNDECIDED"]
        except ValueError as exc:
            raise UsageError(_one_line(exc)) from None
        ok = cert.ok
        verdict = "PASS" if ok else ("FAIL" if any(ob.status == "failed" for ob in cert) else "UNDECIDED")
        if plan["json"]:
            return (0 if ok else 1), [json.dumps({"ok": ok, "verdict": verdict, "certificates": [cert.to_dict()]},
                                                 indent=2, ensure_ascii=False)]
        return (0 if ok else 1), [autodiff_text(cert), f"AUTODIFF: {verdict}"]
    from .checks.autodiff import crosscheck_autodiff
    say(f"comparing {what} with the 50-digit reference")
    try:
        res = crosscheck_autodiff(f, layer, framework=plan["framework"], order=plan["order"],
                                  modes=plan["modes"], dtype=plan["dtype"], points=plan["points"],
                                  seed=plan["seed"], dps=plan["dps"])
    except ValueError as exc:  # f raising or returning the wrong shape/dtype is bad input (the API's)
        raise UsageError(_one_line(exc)) from None
    ok = res.ok
    verdict = "PASS" if ok else "FAIL"
    if plan["json"]:
        return (0 if ok else 1), [json.dumps({"ok": ok, "verdict": verdict, "crosscheck_autodiff": res.to_dict()},
                                             indent=2, ensure_ascii=False)]
    return (0 if ok else 1), [str(res), f"AUTODIFF: {verdict}"]


_CHILD_COMMANDS = {"check": _run_check, "autodiff": _run_autodiff}


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


def _child_main(conn, plan, output_path):
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

        def say(label):
            conn.send(("progress", label))

        try:
            status, lines = _CHILD_COMMANDS[plan["command"]](plan, say)
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


def _run_in_child(plan, quiet: bool):
    """Run the check in a child process; returns its final message (``None`` if there was none)
    and the relayed output lines."""
    ctx = multiprocessing.get_context(_start_method())
    fd, output_path = tempfile.mkstemp(prefix="symbolic-bn-check-", suffix=".log")
    os.close(fd)
    proc = None
    try:
        receiver, sender = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child_main, args=(sender, plan, output_path), name="symbolic-bn check",
                           daemon=True)
        sys.stdout.flush()
        sys.stderr.flush()
        proc.start()
        sender.close()  # the child holds the only writing end: EOF once it has gone
        result = None
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
                        continue
                    result = msg
                elif not proc.is_alive() and not receiver.poll(0):
                    break
        proc.join(30)
        exitcode = proc.exitcode
        if proc.is_alive():  # e.g. stuck in the checked code's thread after sending its result
            proc.kill()
            proc.join(5)
        receiver.close()
        return result, exitcode, _relay(output_path)
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


def _in_child(plan, args, word, no_verdict_doc):
    msg, exitcode, relayed = _run_in_child(plan, args.quiet)
    for line in relayed:
        print(line, file=sys.stderr)
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


def _cmd_check(args):
    return _in_child(_check_plan(args), args, "CHECK",
                     {"notes": [], "failures": [NO_VERDICT], "refused": [], "certificates": [], "crosscheck": None})


def _cmd_autodiff(args):
    return _in_child(_autodiff_plan(args), args, "AUTODIFF", {"certificates": []})


class _CheckedCodeExited(Exception):
    """SystemExit & co. escaped every guard in the child."""


class _InternalError(Exception):
    """A bug of the tool, reported by the child as one line."""


# --------------------------------------------------------------------------------------------
# bounds
# --------------------------------------------------------------------------------------------

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
        from .exact.numbers import to_exact
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
    from .report.text import certificate_text
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
        from . import bounds
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
        from . import bounds
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


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------

def _cmd_report(args):
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


# --------------------------------------------------------------------------------------------
# explain
# --------------------------------------------------------------------------------------------

def _cmd_explain(args):
    from . import glossary
    term = " ".join(args.term)
    if not term.strip():
        if args.json:
            return 0, [json.dumps({"ok": True, "terms": [
                {"term": e.term, "category": e.category, "summary": e.summary, "aliases": list(e.aliases)}
                for e in glossary.entries()]}, indent=2, ensure_ascii=False)]
        return 0, [glossary.listing()]
    entry = glossary.lookup(term)
    if entry is None:
        near = glossary.closest(term)
        hint = f"; closest: {', '.join(near)}" if near else ""
        raise UsageError(f"no glossary entry for {term!r}{hint} (symbolic-bn explain lists every term)")
    if args.json:
        return 0, [json.dumps({"ok": True, "query": term, "term": entry.term, "category": entry.category,
                               "aliases": list(entry.aliases), "text": entry.text, "see": list(entry.see)},
                              indent=2, ensure_ascii=False)]
    return 0, [glossary.render(entry)]


def _cmd_glossary(args):
    from . import glossary
    if args.json and args.markdown:
        raise UsageError("--json and --markdown exclude each other: choose one output format")
    if args.json:
        return 0, [json.dumps({"ok": True, "categories": list(glossary.CATEGORIES), "terms": [
            {"term": e.term, "category": e.category, "aliases": list(e.aliases), "text": e.text,
             "see": list(e.see)} for e in glossary.entries()]}, indent=2, ensure_ascii=False)]
    return 0, [(glossary.markdown() if args.markdown else glossary.full_text()).rstrip("\n")]


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.version:
            from . import __version__
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
