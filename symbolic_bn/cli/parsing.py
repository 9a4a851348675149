"""Parsing what is typed on the ``symbolic-bn`` command line: shapes, eps, integers, budgets.

Bad input is a :class:`UsageError`: one line on stderr naming the option, exit status 2.
Nothing typed on the command line goes through ``eval`` or ``sympify``: shapes are matched by a
strict pattern, numbers parsed by :func:`symbolic_bn.exact.numbers.to_exact` (integers by an
ASCII-digit pattern).

Budgets (``--budget``): a positive number of seconds, or ``inf`` / ``none`` for no limit
(validated by :func:`symbolic_bn.exact.budget.check_budget`).
"""
from __future__ import annotations

import math
import re

# every pattern is applied with re.fullmatch (``$`` would accept a trailing newline)
SHAPE_RE = re.compile(r"([0-9]{1,4})x([0-9]{1,4})x([0-9]{1,4})", re.ASCII)
_INT_RE = re.compile(r"[+-]?[0-9]{1,9}", re.ASCII)
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]{1,9}(?:\.[0-9]{0,9})?|\.[0-9]{1,9})(?:[eE][+-]?[0-9]{1,3})?", re.ASCII)
_NO_LIMIT = ("inf", "none", "unlimited")
MAX_DPS = 10000


class UsageError(Exception):
    """Bad command-line input: reported as one line on stderr with exit status 2."""


def _one_line(text) -> str:
    return " ".join(str(text).split())


def _default_shape() -> tuple:
    """The one default shape of ``check`` and ``prove``: the API's (C, H, W pairwise different)."""
    from ..checks.check import DEFAULT_SHAPE
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
    from ..graphs.batchnorm import check_shape
    try:
        check_shape(*dims)
    except ValueError as exc:
        raise UsageError(f"--shape: {exc}") from None
    return dims


def parse_eps(text: str | None):
    """``None``/``'symbolic'`` → symbolic ε; otherwise an exact decimal or fraction."""
    if text is None or text.strip().lower() in ("symbolic", "sym", "ε", "eps"):
        return None
    from ..exact.numbers import to_exact
    try:
        return to_exact(text, name="--eps")
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None


def parse_budget(text, option: str = "--budget"):
    """A positive number of seconds in ASCII, or ``inf``/``none``/``unlimited`` (no limit:
    returns ``None``).  NaN, zero, negative numbers and anything else are a usage error."""
    if isinstance(text, str) and text.strip().lower() in _NO_LIMIT and text == text.strip():
        return None
    if not isinstance(text, str) or not _FLOAT_RE.fullmatch(text):
        raise UsageError(f"{option} must be a positive number of seconds, or inf/none for no limit, "
                         f"got {text!r}")
    from ..exact.budget import check_budget
    try:
        return check_budget(float(text), option)  # None for a number that overflows to inf
    except ValueError:
        raise UsageError(f"{option} must be a positive number of seconds, or inf/none for no limit, "
                         f"got {text!r}") from None


def _prove_budget(seconds):
    """``prove`` and ``bounds.prove`` take ``math.inf`` for no limit, ``check_*`` take ``None``."""
    return math.inf if seconds is None else seconds


def parse_int(text, option: str, lo: int, hi: int) -> int:
    """A decimal integer in ASCII digits (``int()`` would take any Unicode digits) in [lo, hi]."""
    if not isinstance(text, str) or not _INT_RE.fullmatch(text):
        raise UsageError(f"{option} must be an integer written in ASCII digits, got {text!r}")
    v = int(text)
    if not lo <= v <= hi:
        raise UsageError(f"{option} must be an integer between {lo} and {hi}, got {v}")
    return v


def _min_dps() -> int:
    from ..checks.crosscheck import MIN_DPS
    return int(MIN_DPS)
