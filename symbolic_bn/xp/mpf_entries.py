"""Fixed-precision mpmath entries: the ``mpmath.mpf`` subclasses the mpmath namespace stores.

Precision of the mpmath namespace
---------------------------------
Entries are instances of a per-precision subclass of ``mpmath.mpf`` (:func:`mpf_type`) whose
arithmetic always rounds to the namespace precision, whatever ``mpmath.mp.dps`` is at the time;
``sqrt``/``exp``/``log`` and sums call ``mpmath.libmp`` with that explicit precision.  No global
mpmath state is read or written, so the namespace is unaffected by, and never changes, ``mp.dps``
(a stronger guarantee than wrapping calls in ``mpmath.workdps``).  This holds for bare entries too:
``gamma[c] / std[c]`` is rounded at ``dps``.

Mixed operations take the higher precision of the two entries; a result that is not real (an
``mpc`` from a negative base to a real power) raises ``ValueError``, as do ``sqrt`` of a negative
and ``log`` of a non-positive value (NumPy would give NaN).  Conversions of other operands follow
:mod:`symbolic_bn.xp.conversions`.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

import mpmath
import numpy as np
from mpmath.libmp import (
    dps_to_prec,
    from_pickable,
    fzero,
    mpf_cmp,
    mpf_exp,
    mpf_log,
    mpf_sqrt,
    to_pickable,
    to_str,
)

from .conversions import _mpf_tuple


def _rewrap(cls, t):
    v = object.__new__(cls)
    v._mpf_ = t
    return v


def _make_binop(base: Callable, reflected: bool, opname: str) -> Callable:
    def op(self, other):
        cls = type(self)
        if isinstance(other, _NamespaceMpf) and other.prec > cls.prec:
            cls = type(other)
        t = _mpf_tuple(other, cls.prec, operand=True)
        if t is NotImplemented:
            return NotImplemented
        o = _rewrap(cls, t)
        s = self if type(self) is cls else _rewrap(cls, self._mpf_)
        res = base(o, s) if reflected else base(s, o)
        if res is NotImplemented:
            return res
        if not isinstance(res, _NamespaceMpf):  # an mpc from a negative base to a real power
            raise ValueError(
                f"mpf {opname}: the result is not real ({res!r}); the mpmath namespace models "
                "real numbers only"
            )
        return res

    op.__name__ = opname
    return op


class _NamespaceMpf(mpmath.mpf):
    """An ``mpmath.mpf`` whose arithmetic is always rounded to the class's fixed precision.

    Concrete classes come from :func:`mpf_type`.  ``isinstance(v, mpmath.mpf)`` holds.
    """

    __slots__ = ()
    dps: int = 0
    prec: int = 0

    def __new__(cls, val=0):
        if not cls.prec:
            raise TypeError("use mpf_type(dps) to get a concrete mpf class")
        return _rewrap(cls, _mpf_tuple(val, cls.prec))

    def __repr__(self):
        return "mpf('%s')" % to_str(self._mpf_, self.dps)

    def __str__(self):
        return to_str(self._mpf_, self.dps)

    def __reduce__(self):
        return (_rebuild_mpf, (self.dps, to_pickable(self._mpf_)))

    # Methods NumPy's object loops call for numpy.sqrt/exp/log on plain object arrays.
    def sqrt(self):
        return _mp_sqrt(self)

    def exp(self):
        return _mp_exp(self)

    def log(self):
        return _mp_log(self)


_BINOPS = {
    "add": mpmath.mpf.__add__,
    "sub": mpmath.mpf.__sub__,
    "mul": mpmath.mpf.__mul__,
    "truediv": mpmath.mpf.__truediv__,
    "pow": mpmath.mpf.__pow__,
    "mod": mpmath.mpf.__mod__,
}
for _name, _base in _BINOPS.items():
    setattr(_NamespaceMpf, f"__{_name}__", _make_binop(_base, False, f"__{_name}__"))
    setattr(_NamespaceMpf, f"__r{_name}__", _make_binop(_base, True, f"__r{_name}__"))
del _name, _base


def _check_dps(dps: Any) -> int:
    if isinstance(dps, bool) or not isinstance(dps, (int, np.integer)) or int(dps) < 1:
        raise ValueError(f"dps must be a positive integer, got {dps!r}")
    return int(dps)


@lru_cache(maxsize=None)
def _mpf_type_cached(dps: int):
    prec = dps_to_prec(dps)
    cls = type(f"mpf_dps{dps}", (_NamespaceMpf,), {"__slots__": (), "dps": dps, "prec": prec})
    # The inherited mpmath operators read (result class, constructor, [prec, rounding]) here.
    cls._ctxdata = [cls, object.__new__, [prec, "n"]]
    cls.__module__ = __name__
    return cls


def mpf_type(dps: int) -> type:
    """The ``mpmath.mpf`` subclass whose arithmetic rounds to ``dps`` decimal digits.

    ``prec = mpmath.libmp.dps_to_prec(dps)`` bits, round-to-nearest -- the precision
    ``mpmath.workdps(dps)`` would use.  Mixed operations with a lower-precision entry, a plain
    ``mpmath.mpf``, an int, a float (exact binary value) or a Fraction (rounded) are rounded at
    this precision; with a higher-precision entry, at the higher one.
    """
    return _mpf_type_cached(_check_dps(dps))


def _rebuild_mpf(dps, state):
    return _rewrap(mpf_type(dps), from_pickable(state))


def _mp_sqrt(v):
    cls = type(v)
    if mpf_cmp(v._mpf_, fzero) < 0:
        raise ValueError(
            f"sqrt of the negative value {v}: not real (NumPy returns nan; TorchLean's "
            "sqrtSpec clamps at 0 -- write xp.sqrt(xp.maximum(z, 0)) for that)"
        )
    return _rewrap(cls, mpf_sqrt(v._mpf_, cls.prec, "n"))


def _mp_exp(v):
    cls = type(v)
    return _rewrap(cls, mpf_exp(v._mpf_, cls.prec, "n"))


def _mp_log(v):
    cls = type(v)
    if mpf_cmp(v._mpf_, fzero) <= 0:
        raise ValueError(f"log of the non-positive value {v}: not a real number")
    return _rewrap(cls, mpf_log(v._mpf_, cls.prec, "n"))
