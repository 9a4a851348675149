"""The array types of the SymPy and mpmath namespaces: NumPy object arrays bound to a namespace.

Arrays
------
The two exact namespaces return :class:`ExactArray` instances (:class:`SymbolicArray`,
:class:`MpfArray`): NumPy ``dtype=object`` arrays (``isinstance(a, numpy.ndarray)`` holds) that
remember their namespace.  Through ``__array_ufunc__`` they route *every* NumPy ufunc -- the
arithmetic operators, ``a.sum()``, ``a.mean()``, ``a.var()``, ``a.std()``, ``a.max()``,
``numpy.sqrt(a)``, ... -- to the namespace, so that

* Python/NumPy floats, ints, ``Fraction``\\ s and ``Decimal``\\ s meeting an array are converted by
  the namespace's rules (:mod:`symbolic_bn.xp.conversions`; NumPy's own object loop would hand
  ``0.5`` to SymPy, which makes a ``Float``);
* sums are formed as one ``sympy.Add(*terms)`` per output entry (linear, not NumPy's quadratic
  chain of binary ``+``), and in the mpmath namespace exactly and then rounded once;
* ``a.mean(axis=...)`` divides by the exact integer count (``Rational(1, n)`` coefficients);
* operations that cannot be done in the number system raise :class:`UnsupportedOperation`.

Reductions over all axes return 0-d arrays (as in the array API standard), not bare scalars, so
that a following ``* 0.5`` still goes through the namespace.  ``a[i, j, k]`` returns the bare entry
(a SymPy expression / an mpf); use ``.item()`` or ``[()]`` to take the entry out of a 0-d array.

The routing itself (operand conversion, ufunc dispatch, reductions) is
:mod:`symbolic_bn.xp.routing`; :class:`RealDType` is the namespaces' ``xp.float64``.
"""
from __future__ import annotations

import numpy as np
import sympy

from ..exact.errors import UnsupportedOperation
from .mpf_entries import _NamespaceMpf


def _namespace_spec(ns):
    if ns is None:
        return None
    from .mpf_namespace import MpmathNamespace  # late: the namespaces are built on these arrays

    if isinstance(ns, MpmathNamespace):
        return ("mpmath", ns.dps)
    return ("symbolic",)


def _namespace_from_spec(spec):
    if spec is None:
        return None
    from .mpf_namespace import mpmath_namespace  # late: the namespaces are built on these arrays
    from .sympy_namespace import symbolic

    if spec[0] == "mpmath":
        return mpmath_namespace(spec[1])
    return symbolic


class ExactArray(np.ndarray):
    """A NumPy object array bound to an exact namespace (see the module docstring)."""

    _xp = None

    def __array_finalize__(self, obj):
        if obj is not None:
            xp = getattr(obj, "_xp", None)
            if xp is not None:
                self._xp = xp

    @property
    def xp(self):
        """The namespace this array belongs to."""
        return _namespace_of_array(self)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = kwargs.get("out", None)
        xp = _common_namespace(list(inputs) + (list(out) if isinstance(out, tuple) else []))
        return xp._apply_ufunc(ufunc, method, inputs, kwargs)

    def __setitem__(self, key, value):
        # Values stored into the array go through the namespace's conversion (a raw 0.5 stored
        # here would later meet SymPy as a Float).
        xp = self.xp
        np.ndarray.__setitem__(self.view(np.ndarray), key, xp._operand(value))

    def fill(self, value):
        self.view(np.ndarray).fill(self.xp._operand_scalar(value))

    def astype(self, dtype, order="K", casting="unsafe", subok=True, copy=True):
        xp = self.xp
        if not xp._is_own_dtype(dtype):
            raise UnsupportedOperation(
                f"astype({_dtype_name(dtype)}): casting an array of the {xp.name} namespace to a "
                f"machine dtype would {xp._cast_loss}; the only dtype is the namespace's own "
                f"(xp.float64 / object)"
            )
        res = np.ndarray.astype(self, object, order=order, copy=copy)
        return xp._wrap(res)

    def __reduce__(self):
        fn, args, state = super().__reduce__()
        return fn, args, (state, _namespace_spec(self._xp))

    def __setstate__(self, state):
        base_state, spec = state
        super().__setstate__(base_state)
        xp = _namespace_from_spec(spec)
        if xp is not None:
            self._xp = xp


class SymbolicArray(ExactArray):
    """Object array of SymPy expressions (the symbolic namespace)."""

    def __float__(self):
        raise UnsupportedOperation(
            "float(): converting a symbolic array to a Python float would discard exactness; "
            "substitute values and use sympy's N()/evalf explicitly"
        )

    def __bool__(self):
        if self.size != 1:
            return np.ndarray.__bool__(self)  # NumPy's ValueError for ambiguous truth values
        v = self.view(np.ndarray).item()
        if isinstance(v, (bool, np.bool_, sympy.Number)) or v is sympy.true or v is sympy.false:
            return bool(v)
        raise UnsupportedOperation(
            f"bool(): the truth value of the symbolic expression {v} is data-dependent "
            "branching, which cannot be checked symbolically"
        )

    def __int__(self):
        raise UnsupportedOperation("int(): a symbolic array has no machine integer value")

    def __complex__(self):
        raise UnsupportedOperation("complex(): a symbolic array has no machine complex value")


class MpfArray(ExactArray):
    """Object array of fixed-precision ``mpmath.mpf`` entries (the mpmath namespace)."""


def _namespace_of_array(a):
    xp = a._xp
    if xp is not None:
        return xp
    from .mpf_namespace import mpmath_namespace  # late: the namespaces are built on these arrays
    from .sympy_namespace import symbolic

    if isinstance(a, MpfArray):
        for v in a.flat:
            if isinstance(v, _NamespaceMpf):
                return mpmath_namespace(v.dps)
        raise UnsupportedOperation("an MpfArray without a namespace; build it with to_mpf_array")
    return symbolic


def _common_namespace(objs):
    found = []
    for o in objs:
        if isinstance(o, ExactArray):
            found.append(_namespace_of_array(o))
    kinds = {type(ns) for ns in found}
    if len(kinds) > 1:
        raise UnsupportedOperation(
            "mixing arrays of the symbolic and mpmath namespaces: convert one of them explicitly "
            "(to_mpf_array / to_sympy_array)"
        )
    # one kind, maybe several instances (mpmath at several dps): the kind says which one applies
    return found[0]._join(found)


def _dtype_name(dtype) -> str:
    if isinstance(dtype, RealDType):
        return repr(dtype)
    try:
        return str(np.dtype(dtype))
    except Exception:  # noqa: BLE001 - only used for messages
        return repr(dtype)


class RealDType:
    """``xp.float64`` of an exact namespace: "the namespace's real number type".

    Accepted wherever a ``dtype=`` is (it *is* ``dtype=object`` to NumPy); calling it converts a
    scalar, like ``numpy.float64(v)``.  No float64 rounding is emulated.
    """

    dtype = np.dtype(object)

    def __init__(self, xp):
        self._xp = xp

    def __call__(self, value=0):
        return self._xp._scalar(value)

    def __eq__(self, other):
        if isinstance(other, RealDType):
            return other._xp == self._xp
        return other is object or (isinstance(other, np.dtype) and other == np.dtype(object))

    def __hash__(self):
        return hash(("RealDType", _namespace_spec(self._xp)))

    def __repr__(self):
        return f"{self._xp!r}.float64"
