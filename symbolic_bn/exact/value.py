"""The engine's scalar: :class:`Value`, an exact real number or expression of a :class:`Space`.

A Value is one of

* a rational constant (``ring is None``; ``p`` a backend coefficient),
* a polynomial of one ring (``p`` a polynomial of ``ring``),
* a *sum over rings* (``ring is MULTI``; ``p`` a dict ring -> polynomial): what a reduction over
  several blocks gives (``dγ_j = Σ_rows g_ij x̂_ij`` in a LayerNorm), kept as per-ring parts so that
  no ring ever needs every block's variables.

``+ − ×`` and integer powers are ring operations; ``/``, negative and half-integer powers,
``sqrt``, ``exp`` and ``log`` create or reuse atoms through the Space (side conditions recorded
there); comparisons, ``bool()``, ``abs``, ``max``/``min`` are decided exactly on the Space's domain
or refused with :class:`~symbolic_bn.exact.errors.BranchError` (:mod:`symbolic_bn.exact.sign`).
Python floats that meet a Value are read as the simplest rational within half an ulp and logged
(:mod:`symbolic_bn.exact.floats`).  Nothing SymPy does is involved, so nothing cancels behind the
user's back: ``a*b/(a*c)`` is ``a·b·ι_a·ι_c`` with both side conditions recorded.
"""
from __future__ import annotations

import numbers
from fractions import Fraction

import numpy as np

from .errors import ExactArithmeticError
from .floats import note_float, read_float

__all__ = ["Value", "MULTI", "is_value"]


class _Multi:
    def __repr__(self):
        return "MULTI"


MULTI = _Multi()


import operator as _op

#: Set by the exact array namespace: wraps an object ndarray of Values as its array type.
ARRAY_WRAP = None

try:
    from flint.utils.flint_exceptions import IncompatibleContextError as _FlintContextError
    _CONTEXT_ERRORS = (_FlintContextError,)
except ImportError:  # pragma: no cover - without python-flint the fast path is never taken
    _CONTEXT_ERRORS = ()

_REFLECTED = {}


def _as_object_array(v):
    if isinstance(v, np.ndarray):
        return np.asarray(v, dtype=object)
    arr = np.empty((), dtype=object)
    arr[()] = v
    return arr


def _elementwise(fn, left, right):
    """``fn`` applied entry by entry when one operand is an ndarray (broadcasting as NumPy)."""
    out = np.frompyfunc(fn, 2, 1)(_as_object_array(left), _as_object_array(right))
    if not isinstance(out, np.ndarray):
        out = _as_object_array(out)
    return ARRAY_WRAP(out) if ARRAY_WRAP is not None else out


class Value:
    """An exact scalar of a Space (module docstring).  Immutable as a number; ``p`` may be
    re-expressed in place when its ring grows (same value)."""

    __slots__ = ("space", "ring", "p", "_embedded")
    __array_ufunc__ = None  # NumPy scalars and float arrays defer to our reflected operators

    def __init__(self, space, ring, p):
        self.space = space
        self.ring = ring
        self.p = p
        self._embedded = None

    # -- access
    def poly(self):
        """The polynomial in the ring's current context (lifted after growth)."""
        r = self.ring
        p = r.lift(self.p)
        self.p = p
        return p

    @property
    def is_constant(self) -> bool:
        return self.ring is None

    def is_syntactic_zero(self) -> bool:
        """True when the value is written as 0 (no normal form is computed: a cheap test for
        dropping zero terms, never a proof that something nonzero-looking is 0)."""
        r = self.ring
        if r is None:
            return self.p == 0
        if r is MULTI:
            return all(ring.backend.is_zero(q) for ring, q in self.p.items())
        if r.fast:
            return self.p.is_zero()
        return r.backend.is_zero(self.p)

    def constant_fraction(self) -> Fraction:
        return self.space.backend.fraction(self.p)

    def __repr__(self):
        return f"Value({self.space.display(self, 120)})"

    def __str__(self):
        return self.space.display(self, 400)

    # -- coercion
    def _coerce(self, other):
        if type(other) is Value:
            if other.space is not self.space:
                raise ExactArithmeticError(
                    "values of two different exact computations were combined (a value from another check: "
                    "does the function keep state between calls?)")
            return other
        return self.space.constant(other, _what="operand")

    # -- arithmetic
    def __add__(self, other):
        if isinstance(other, np.ndarray):
            return _elementwise(_op.add, self, other)
        if type(other) is Value and other.ring is self.ring and self.ring is not None \
                and self.ring is not MULTI and other.space is self.space:
            r = self.ring
            if r.fast:  # flint refuses mixed contexts itself: lift only when it does
                try:
                    return Value(self.space, r, self.p + other.p)
                except _CONTEXT_ERRORS:
                    pass
            return Value(self.space, r, r.lift(self.p) + r.lift(other.p))
        try:
            other = self._coerce(other)
        except TypeError:
            return NotImplemented
        return self.space.add(self, other)

    def __radd__(self, other):
        if isinstance(other, np.ndarray):
            return _elementwise(_op.add, other, self)
        try:
            other = self._coerce(other)
        except TypeError:
            return NotImplemented
        return self.space.add(other, self)

    def __sub__(self, other):
        if isinstance(other, np.ndarray):
            return _elementwise(_op.sub, self, other)
        if type(other) is Value and other.ring is self.ring and self.ring is not None \
                and self.ring is not MULTI and other.space is self.space:
            r = self.ring
            if r.fast:  # flint refuses mixed contexts itself: lift only when it does
                try:
                    return Value(self.space, r, self.p - other.p)
                except _CONTEXT_ERRORS:
                    pass
            return Value(self.space, r, r.lift(self.p) - r.lift(other.p))
        try:
            other = self._coerce(other)
        except TypeError:
            return NotImplemented
        return self.space.add(self, self.space.negate(other))

    def __rsub__(self, other):
        if isinstance(other, np.ndarray):
            return _elementwise(_op.sub, other, self)
        try:
            other = self._coerce(other)
        except TypeError:
            return NotImplemented
        return self.space.add(other, self.space.negate(self))

    def __neg__(self):
        return self.space.negate(self)

    def __pos__(self):
        return self

    def __mul__(self, other):
        if isinstance(other, np.ndarray):
            return _elementwise(_op.mul, self, other)
        if type(other) is Value and other.ring is self.ring and self.ring is not None \
                and self.ring is not MULTI and other.space is self.space:
            r = self.ring
            if r.fast:  # flint refuses mixed contexts itself: lift only when it does
                try:
                    return Value(self.space, r, self.p * other.p)
                except _CONTEXT_ERRORS:
                    pass
            return Value(self.space, r, r.lift(self.p) * r.lift(other.p))
        try:
            other = self._coerce(other)
        except TypeError:
            return NotImplemented
        return self.space.multiply(self, other)

    def __rmul__(self, other):
        if isinstance(other, np.ndarray):
            return _elementwise(_op.mul, other, self)
        try:
            other = self._coerce(other)
        except TypeError:
            return NotImplemented
        return self.space.multiply(other, self)

    def __truediv__(self, other):
        if isinstance(other, np.ndarray):
            return _elementwise(_op.truediv, self, other)
        try:
            other = self._coerce(other)
        except TypeError:
            return NotImplemented
        return self.space.multiply(self, self.space.inverse(other))

    def __rtruediv__(self, other):
        if isinstance(other, np.ndarray):
            return _elementwise(_op.truediv, other, self)
        try:
            other = self._coerce(other)
        except TypeError:
            return NotImplemented
        return self.space.multiply(other, self.space.inverse(self))

    def __pow__(self, exponent, modulo=None):
        if modulo is not None:
            return NotImplemented
        if isinstance(exponent, np.ndarray):
            return _elementwise(_op.pow, self, exponent)
        return self.space.power(self, exponent)

    def __rpow__(self, base):
        if isinstance(base, np.ndarray):
            return _elementwise(_op.pow, base, self)
        return self.space.power(self.space.constant(base, _what="base"), self)

    # -- functions NumPy's object loops call by name
    def sqrt(self):
        return self.space.sqrt(self)

    def exp(self):
        return self.space.exp(self)

    def log(self):
        return self.space.log(self)

    def conjugate(self):
        return self  # real

    @property
    def real(self):
        return self

    @property
    def imag(self):
        return self.space.constant(0)

    def __abs__(self):
        return self.space.absolute(self)

    # -- comparisons and truth: decided exactly on the domain, or a BranchError
    def __eq__(self, other):
        if isinstance(other, np.ndarray):
            return _elementwise(_op.eq, self, other)
        try:
            other = self._coerce(other)
        except TypeError:
            return NotImplemented
        return self.space.compare(self, other, "==")

    def __ne__(self, other):
        if isinstance(other, np.ndarray):
            return _elementwise(_op.ne, self, other)
        try:
            other = self._coerce(other)
        except TypeError:
            return NotImplemented
        return self.space.compare(self, other, "!=")

    def __lt__(self, other):
        if isinstance(other, np.ndarray):
            return _elementwise(_op.lt, self, other)
        try:
            other = self._coerce(other)
        except TypeError:
            return NotImplemented
        return self.space.compare(self, other, "<")

    def __le__(self, other):
        if isinstance(other, np.ndarray):
            return _elementwise(_op.le, self, other)
        try:
            other = self._coerce(other)
        except TypeError:
            return NotImplemented
        return self.space.compare(self, other, "<=")

    def __gt__(self, other):
        if isinstance(other, np.ndarray):
            return _elementwise(_op.gt, self, other)
        try:
            other = self._coerce(other)
        except TypeError:
            return NotImplemented
        return self.space.compare(self, other, ">")

    def __ge__(self, other):
        if isinstance(other, np.ndarray):
            return _elementwise(_op.ge, self, other)
        try:
            other = self._coerce(other)
        except TypeError:
            return NotImplemented
        return self.space.compare(self, other, ">=")

    def __bool__(self):
        return self.space.compare(self, self.space.constant(0), "!=", truth=True)

    __hash__ = None

    # -- leaving exact arithmetic is an error that says where and what to do instead
    def __float__(self):
        raise self.space.float_conversion_error(self)

    def __int__(self):
        if self.ring is None:
            f = self.constant_fraction()
            if f.denominator == 1:
                return int(f)
        raise self.space.float_conversion_error(self, kind="int")

    def __index__(self):
        raise TypeError("an exact value cannot be used as an index")

    def __complex__(self):
        raise self.space.float_conversion_error(self, kind="complex")

    def __round__(self, ndigits=None):
        raise self.space.float_conversion_error(self, kind="round")

    def __reduce__(self):
        raise TypeError("exact values cannot be pickled (they belong to one Space)")


def is_value(obj) -> bool:
    return type(obj) is Value


def python_scalar_to_fraction(v, space_note=True):
    """Exact reading of a Python/NumPy scalar (ints exactly, floats by :func:`read_float`,
    logged), or TypeError for anything that is not a real scalar."""
    if isinstance(v, bool) or isinstance(v, np.bool_):
        return Fraction(int(v))
    if isinstance(v, numbers.Integral):
        return Fraction(int(v))
    if isinstance(v, Fraction):
        return v
    if isinstance(v, (float, np.floating)):
        fmt = "float32" if isinstance(v, np.float32) else "float64"
        if isinstance(v, np.float16):
            fmt = "float32"  # read through float32 (exact widening)
            v = np.float32(v)
        r = read_float(v, fmt)
        if space_note:
            note_float(v, r, fmt)
        return r
    raise TypeError(f"not a real scalar: {type(v).__name__}")
