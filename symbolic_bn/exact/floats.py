"""Float constants in checked code: each one is read as the simplest rational within half an ulp.

A Python float (or NumPy float32/float64 scalar) that meets an exact value is not a real number
the user wrote down: ``1./6`` is the double nearest to 1/6.  The exact engine reads it as the
*simplest* rational (smallest denominator, then smallest numerator) among the reals that round to
that float -- the interval of half an ulp on each side, endpoints included when the float's
significand is even (round-half-to-even would round them to it).  For short decimals this is the
decimal itself (``1e-5`` → 1/100000, ``0.1`` → 1/10); ``1./6`` → 1/6, ``1./7`` → 1/7.  The statement
proved is then exact about the function *with those readings*, and every reading is listed among
the certificate's assumptions, with the place in the user's code where it was met.

Readings are recorded in a :class:`FloatLog` while a check runs (``with float_log() as log:``); the
log is a :mod:`contextvars` variable, so nothing leaks between runs or threads.
"""
from __future__ import annotations

import contextlib
import contextvars
import linecache
import math
import os
import sys
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

__all__ = ["read_float", "simplest_rational_between", "FloatReading", "FloatLog", "float_log",
           "note_float", "user_location", "location_override"]


def simplest_rational_between(lo: Fraction, hi: Fraction, *, closed: bool = True) -> Fraction:
    """The rational with the smallest denominator in [lo, hi] (in (lo, hi) when ``closed`` is
    False); it is unique (Stern–Brocot), and has the smallest |numerator| too.  Needs lo < hi."""
    lo, hi = Fraction(lo), Fraction(hi)
    if not lo < hi:
        raise ValueError("simplest_rational_between needs lo < hi")
    if (lo < 0 < hi) or (closed and (lo == 0 or hi == 0)):
        return Fraction(0)
    if hi <= 0:
        return -_simplest(-hi, -lo, closed, closed)
    return _simplest(lo, hi, closed, closed)


def _simplest(lo, hi, lo_closed, hi_closed):
    """Simplest rational in the interval from lo >= 0 to hi (None: +infinity)."""
    k = math.ceil(lo)
    if k == lo and not lo_closed:
        k += 1
    if hi is None or k < hi or (k == hi and hi_closed):
        return Fraction(k)
    n = math.floor(lo)  # no integer inside: lo in [n, n + 1), hi <= n + 1
    # x = n + 1/y with y between 1/(hi - n) and 1/(lo - n); the endpoints swap roles
    y_lo = 1 / (hi - n)
    y_hi = None if lo == n else 1 / (lo - n)
    return n + 1 / _simplest(y_lo, y_hi, hi_closed, lo_closed)


@dataclass(frozen=True)
class FloatReading:
    """One float constant met by the engine: its value, the rational it was read as, and where."""

    value: float
    fmt: str            # 'float64' or 'float32'
    rational: Fraction
    location: str       # 'file.py:12' of the user's code, or a description (e.g. a trace node)
    source: str = ""    # the line of code, when known

    def describe(self) -> str:
        where = f" ({self.source.strip()} at {self.location})" if self.source else f" (at {self.location})"
        return f"{self.value!r}{where} read as {self.rational}"


def _rounding_interval(f: float, fmt: str):
    """The reals that round to ``f`` in format ``fmt`` (round to nearest, ties to even)."""
    if fmt == "float32":
        x = np.float32(f)
        below = Fraction(float(np.nextafter(x, np.float32(-np.inf))))
        above = Fraction(float(np.nextafter(x, np.float32(np.inf))))
        bits = int(x.view(np.uint32))
    else:
        below = Fraction(math.nextafter(f, -math.inf))
        above = Fraction(math.nextafter(f, math.inf))
        bits = int(np.float64(f).view(np.uint64))
    exact = Fraction(f)
    return (exact + below) / 2, (exact + above) / 2, bits % 2 == 0


def read_float(value, fmt: str | None = None) -> Fraction:
    """The simplest rational that rounds to ``value`` (a finite float / NumPy float scalar).

    ``fmt`` is 'float64' or 'float32'; by default a ``numpy.float32`` is read in float32 and
    anything else in float64.  Integers-valued floats are read as themselves.
    """
    if fmt is None:
        fmt = "float32" if isinstance(value, np.float32) else "float64"
    f = float(value)
    if not math.isfinite(f):
        raise ValueError(f"{f} is not a finite number: it has no exact reading")
    exact = Fraction(f)
    if exact.denominator == 1:
        # integers are read as themselves below 2**53 (2**24 in float32); above, where a float
        # stands for a whole interval of integers, as the decimal it prints as (1e23 -> 10**23)
        limit = 2 ** 24 if fmt == "float32" else 2 ** 53
        if abs(exact) <= limit:
            return exact
        return Fraction(str(np.float32(f)) if fmt == "float32" else repr(f))
    lo, hi, even = _rounding_interval(f, fmt)
    return simplest_rational_between(lo, hi, closed=even)


# ---------------------------------------------------------------------------------------------
# The log of readings, with the place in the user's code

class FloatLog:
    """The float constants met while a check ran, in order, one entry per distinct (value, place)."""

    def __init__(self):
        self.readings: list[FloatReading] = []
        self._seen: set = set()

    def add(self, reading: FloatReading) -> None:
        key = (reading.value, reading.fmt, reading.location)
        if key not in self._seen:
            self._seen.add(key)
            self.readings.append(reading)

    def __len__(self):
        return len(self.readings)

    def __iter__(self):
        return iter(self.readings)

    def assumptions(self) -> list[str]:
        """The readings that are assumptions: floats whose value is not exactly the rational
        they were read as (1.0 or 0.5 are exact and need no mention)."""
        return [f"the float {r.describe()}" for r in self.readings if Fraction(r.value) != r.rational]


_LOG: contextvars.ContextVar = contextvars.ContextVar("symbolic_bn_float_log", default=None)
_OVERRIDE: contextvars.ContextVar = contextvars.ContextVar("symbolic_bn_float_location", default=None)

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SKIP_DIRS = (_PACKAGE_DIR, os.path.dirname(np.__file__))


@contextlib.contextmanager
def float_log():
    """Record the float readings made inside the block; yields the :class:`FloatLog`."""
    log = FloatLog()
    token = _LOG.set(log)
    try:
        yield log
    finally:
        _LOG.reset(token)


@contextlib.contextmanager
def location_override(description: str):
    """Attribute readings made inside the block to ``description`` (e.g. a node of a trace)."""
    token = _OVERRIDE.set(description)
    try:
        yield
    finally:
        _OVERRIDE.reset(token)


def current_location():
    """(location, source) to attribute an atom or a reading to: the innermost
    :func:`location_override` (a graph node, a trace node) or else the user's frame."""
    override = _OVERRIDE.get()
    if override is not None:
        return override, ""
    return user_location()


def user_location(depth_limit: int = 60):
    """(``'file:line'``, source line) of the innermost frame outside this package and NumPy."""
    frame = sys._getframe(1)
    for _ in range(depth_limit):
        if frame is None:
            break
        filename = os.path.abspath(frame.f_code.co_filename)
        if not filename.startswith(_SKIP_DIRS) and not filename.startswith("<frozen"):
            line = linecache.getline(frame.f_code.co_filename, frame.f_lineno)
            return f"{os.path.basename(filename)}:{frame.f_lineno}", line.strip()
        frame = frame.f_back
    return "unknown location", ""


def note_float(value, rational: Fraction, fmt: str) -> None:
    """Record a reading in the active log (if any)."""
    log = _LOG.get()
    if log is None:
        return
    override = _OVERRIDE.get()
    if override is not None:
        location, source = override, ""
    else:
        location, source = user_location()
    log.add(FloatReading(float(value), fmt, rational, location, source))
