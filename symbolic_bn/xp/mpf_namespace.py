"""The mpmath namespace ``mpmath_namespace(dps)``: NumPy object arrays of mpf values at ``dps`` digits.

Entries are the fixed-precision :func:`~symbolic_bn.xp.mpf_entries.mpf_type` ``(dps)`` values
(:mod:`symbolic_bn.xp.mpf_entries`: arithmetic always at the namespace precision, no global
mpmath state read or written); floats are read as their exact binary values
(:mod:`symbolic_bn.xp.conversions`).  Sums and products are formed exactly and rounded once;
``sqrt``/``exp``/``log`` are correctly rounded by ``mpmath.libmp``.  :func:`to_mpf_array` /
:func:`to_mpf` convert explicitly.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from mpmath.libmp import (
    dps_to_prec,
    from_int,
    fzero,
    mpf_add,
    mpf_cmp,
    mpf_e,
    mpf_mul,
    mpf_pi,
    mpf_pos,
)

from .array_api import _ExactNamespace
from .arrays import MpfArray, _namespace_of_array
from .conversions import _check_float_mode, _mpf_tuple
from .mpf_entries import _check_dps, _mp_exp, _mp_log, _mp_sqrt, _rewrap, mpf_type


class MpmathNamespace(_ExactNamespace):
    """mpmath namespace at ``dps`` decimal digits (see the module docstring).

    Entries are :func:`mpf_type` ``(dps)`` instances; floats are their exact binary values;
    sums are exact and rounded once; ``sqrt``/``exp``/``log`` are correctly rounded by
    ``mpmath.libmp`` at the namespace precision.  The global ``mpmath.mp`` is never touched.
    """

    name = "mpmath"
    is_exact = False
    _array_type = MpfArray
    _cast_loss = "round away the extra precision"

    def __init__(self, dps: int = 50):
        self.dps = _check_dps(dps)
        self.prec = dps_to_prec(self.dps)
        self.mpf = mpf_type(self.dps)

    @property
    def _promise(self):
        return f"at {self.dps} significant digits"

    def __repr__(self):
        return f"MpmathNamespace(dps={self.dps})"

    def __reduce__(self):
        return (mpmath_namespace, (self.dps,))

    def __eq__(self, other):
        return isinstance(other, MpmathNamespace) and other.dps == self.dps

    def __hash__(self):
        return hash(("MpmathNamespace", self.dps))

    @staticmethod
    def _join(namespaces):
        # the highest precision among the operands' namespaces
        return max(namespaces, key=lambda ns: ns.dps)

    @property
    def pi(self):
        return _rewrap(self.mpf, mpf_pi(self.prec, "n"))

    @property
    def e(self):
        return _rewrap(self.mpf, mpf_e(self.prec, "n"))

    def _scalar(self, v, floats="exact"):
        return _rewrap(self.mpf, _mpf_tuple(v, self.prec, floats))

    def _operand_scalar(self, v):
        t = _mpf_tuple(v, self.prec, operand=True)
        if t is NotImplemented:
            raise TypeError(f"{type(v).__name__} {v!r} is not a number of {self!r}")
        return _rewrap(self.mpf, t)

    @staticmethod
    def _divide_by_count(total, n):
        # the exact sum was rounded once; dividing by the integer rounds once more
        return total / n

    @staticmethod
    def _is_zero(v):
        return (hasattr(v, "_mpf_") and v._mpf_ == fzero) or (isinstance(v, int) and v == 0)

    @staticmethod
    def _is_negative_number(v):
        return v < 0

    @staticmethod
    def _is_positive_number(v):
        return v > 0

    def _own(self, v):
        return v if type(v) is self.mpf else _rewrap(self.mpf, v._mpf_)

    # elementwise
    def _fn_sqrt(self, v):
        return _mp_sqrt(self._own(v))

    def _fn_exp(self, v):
        return _mp_exp(self._own(v))

    def _fn_log(self, v):
        return _mp_log(self._own(v))

    @staticmethod
    def _fn_abs(v):
        return abs(v)

    @staticmethod
    def _fn_square(v):
        return v * v

    @staticmethod
    def _fn_reciprocal(v):
        return 1 / v

    @staticmethod
    def _fn_conjugate(v):
        return v

    def _fn_max2(self, a, b):
        return self._own(a if mpf_cmp(a._mpf_, b._mpf_) >= 0 else b)

    def _fn_min2(self, a, b):
        return self._own(a if mpf_cmp(a._mpf_, b._mpf_) <= 0 else b)

    def _fn_clip(self, v, lo, hi):
        return self._fn_min2(self._fn_max2(v, lo), hi)

    def _compare(self, name, a, b):
        cmp = {
            "less": lambda c: c < 0,
            "less_equal": lambda c: c <= 0,
            "greater": lambda c: c > 0,
            "greater_equal": lambda c: c >= 0,
            "equal": lambda c: c == 0,
            "not_equal": lambda c: c != 0,
        }[name]
        res = np.frompyfunc(lambda x, y: cmp(mpf_cmp(x._mpf_, y._mpf_)), 2, 1)(a, b)
        if isinstance(res, np.ndarray):
            return res.astype(bool)
        return np.bool_(res)

    # reductions: exact, then one rounding
    def _sum_terms(self, terms):
        acc = fzero
        for t in terms:
            acc = mpf_add(acc, t._mpf_, 0)
        return _rewrap(self.mpf, mpf_pos(acc, self.prec, "n"))

    def _prod_terms(self, terms):
        acc = from_int(1)
        for t in terms:
            acc = mpf_mul(acc, t._mpf_, 0)
        return _rewrap(self.mpf, mpf_pos(acc, self.prec, "n"))

    def _max_terms(self, terms):
        best = terms[0]
        for t in terms[1:]:
            if mpf_cmp(t._mpf_, best._mpf_) > 0:
                best = t
        return self._own(best)

    def _min_terms(self, terms):
        best = terms[0]
        for t in terms[1:]:
            if mpf_cmp(t._mpf_, best._mpf_) < 0:
                best = t
        return self._own(best)


@lru_cache(maxsize=None)
def _mpmath_namespace_cached(dps: int) -> MpmathNamespace:
    return MpmathNamespace(dps)


def mpmath_namespace(dps: int = 50) -> MpmathNamespace:
    """The (cached) mpmath namespace at ``dps`` significant decimal digits."""
    return _mpmath_namespace_cached(_check_dps(dps))


def to_mpf(value, dps: int = 50, floats: str = "exact"):
    """One value as an :func:`mpf_type` ``(dps)`` entry (conventions as :func:`to_mpf_array`)."""
    _check_float_mode(floats)
    cls = mpf_type(dps)
    return _rewrap(cls, _mpf_tuple(value, cls.prec, floats))


def to_mpf_array(obj, dps: int = 50, floats: str = "exact") -> MpfArray:
    """Convert numbers to an :class:`MpfArray` at ``dps`` digits.

    float16/32/64 values (and ints, and other dyadic rationals) are stored EXACTLY, whatever
    ``dps`` is (``floats='exact'``, default) -- or read as their shortest decimal and rounded
    (``floats='decimal'``).  ``Fraction``/``Rational``/``Decimal``/strings are correctly
    rounded to ``dps``.  NaN/inf raise ``ValueError``; symbolic expressions raise
    :class:`UnsupportedOperation`.
    """
    _check_float_mode(floats)
    ns = mpmath_namespace(dps)
    if isinstance(obj, MpfArray) and _namespace_of_array(obj) == ns:
        return obj
    return ns._wrap(ns._to_base_array(obj, lambda v: ns._scalar(v, floats)))
