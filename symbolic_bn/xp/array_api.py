"""The NumPy-style functions of the exact namespaces, and what they refuse.

:class:`_ExactNamespace` is the shared implementation of the symbolic and mpmath namespaces:
creation (``asarray``, ``zeros``, ``arange``, ...), reductions (``sum``, ``mean``, ``var``, ...),
elementwise functions (through NumPy's ufuncs, so that :mod:`symbolic_bn.xp.routing` converts
every operand), shape functions and products.  :data:`SUPPORTED_FUNCTIONS` lists them.

What raises
-----------
:class:`UnsupportedOperation` (a ``TypeError``) names the operation and the reason:

* names the namespace does not provide (``xp.linalg``, ``xp.random``, ``xp.finfo``, ``xp.float32``,
  ``xp.isnan``, ...), via ``__getattr__`` -- the exception is also an ``AttributeError``, so
  ``hasattr(xp, 'linalg')`` is ``False``;
* dtype casts: ``a.astype(numpy.float32)``, ``xp.asarray(v, dtype=numpy.float64)``, ``dtype=`` of
  reductions; ``float(a)`` of a symbolic array;
* NumPy ufuncs without an exact counterpart (``numpy.floor(a)``, ``numpy.sign(a)``, ...);
* symbolic comparisons whose truth SymPy cannot decide (``x > 0`` for a real symbol ``x``) and
  ``xp.where`` with a condition that is not concrete (data-dependent branching);
* mixing symbolic and mpmath values.

``ValueError`` is raised for domain errors that NumPy would answer with NaN: ``sqrt`` of a negative
number, ``log`` of a non-positive number (for symbolic *numbers*; symbolic expressions are left
as the principal branch), and for NaN/inf inputs.  ``ZeroDivisionError`` for a division by an exact
zero.
"""
from __future__ import annotations

import numpy as np
import sympy

from ..exact.errors import UnsupportedAttribute, UnsupportedOperation
from .arrays import ExactArray, _namespace_of_array
from .routing import _NamespaceCore, _count, _normalize_axes

_COMMON_UNSUPPORTED = {
    "finfo": "machine-epsilon queries describe a binary floating-point format, which this "
    "namespace does not use",
    "iinfo": "integer-format queries do not apply",
    "random": "random numbers are not part of the namespace; draw inputs with numpy.random and "
    "convert them with xp.asarray",
    "linalg": "numerical linear algebra is not provided (use xp.matmul/xp.einsum, or SymPy "
    "matrices for exact algebra)",
    "fft": "FFTs are not provided",
    "nan": "NaN is not a number of this namespace (NaN/inf inputs are rejected)",
    "inf": "infinities are not numbers of this namespace (NaN/inf inputs are rejected)",
    "isnan": "there are no NaNs in this namespace (they are rejected on input)",
    "isinf": "there are no infinities in this namespace (they are rejected on input)",
    "isfinite": "every value of this namespace is finite (NaN/inf are rejected on input)",
    "float32": "float32 rounding is not emulated; use xp.float64, the namespace's real type",
    "float16": "float16 rounding is not emulated; use xp.float64, the namespace's real type",
    "longdouble": "long-double rounding is not emulated; use xp.float64, the namespace's real type",
    "errstate": "floating-point error states do not apply (errors raise exceptions)",
    "seterr": "floating-point error states do not apply (errors raise exceptions)",
    "floor": "rounding functions are not provided",
    "ceil": "rounding functions are not provided",
    "round": "rounding functions are not provided",
    "sign": "sign is not provided (it is a data-dependent branch)",
    "argmax": "arg-reductions are data-dependent branching",
    "argmin": "arg-reductions are data-dependent branching",
    "sort": "sorting is data-dependent branching",
}

SUPPORTED_FUNCTIONS = (
    # creation
    "asarray", "array", "zeros", "ones", "full", "empty", "zeros_like", "ones_like",
    "full_like", "empty_like", "arange", "eye",
    # reductions
    "sum", "prod", "mean", "var", "std", "max", "min", "amax", "amin",
    # elementwise
    "add", "subtract", "multiply", "divide", "true_divide", "negative", "positive", "power",
    "pow", "square", "sqrt", "reciprocal", "abs", "absolute", "exp", "log", "maximum",
    "minimum", "clip", "conj", "conjugate", "less", "less_equal", "greater", "greater_equal",
    "equal", "not_equal", "where",
    # shapes
    "reshape", "broadcast_to", "broadcast_arrays", "expand_dims", "squeeze", "stack",
    "concatenate", "transpose", "permute_dims", "moveaxis", "swapaxes", "ravel", "copy",
    "shape", "ndim", "size",
    # products
    "matmul", "dot", "tensordot", "outer", "einsum",
    # constants and dtypes
    "newaxis", "pi", "e", "float64",
)


class _ExactNamespace(_NamespaceCore):
    """Shared implementation of the symbolic and mpmath namespaces."""

    newaxis = None

    # ---- attribute protocol ----------------------------------------------------------------
    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        reason = self._unsupported_reasons().get(name)
        if reason is None:
            reason = (
                f"not provided by the {self.name} namespace (it implements only operations it "
                f"can carry out {self._promise}; see symbolic_bn.xp.SUPPORTED_FUNCTIONS)"
            )
        raise UnsupportedAttribute(f"xp.{name}: {reason} [{self!r}]")

    def _unsupported_reasons(self) -> dict:
        return _COMMON_UNSUPPORTED

    def __dir__(self):
        return sorted(set(SUPPORTED_FUNCTIONS) | set(object.__dir__(self)))

    # ---- public API: creation ------------------------------------------------------------------
    def asarray(self, obj, dtype=None, copy=None):
        """Convert ``obj`` to an array of this namespace (numbers converted as documented)."""
        self._check_dtype(dtype, "asarray")
        if isinstance(obj, ExactArray) and _namespace_of_array(obj) == self:
            if copy:
                return self._wrap(obj.view(np.ndarray).copy())
            return obj
        if copy is False:
            raise ValueError("asarray(copy=False): conversion to this namespace needs a copy")
        return self._wrap(self._to_base_array(obj, self._scalar))

    def array(self, obj, dtype=None, copy=True):
        return self.asarray(obj, dtype=dtype, copy=True if copy is None else copy)

    def _filled(self, shape, value):
        v = self._scalar(value)
        out = np.empty(shape, dtype=object)
        out.fill(v)
        return self._wrap(out)

    def zeros(self, shape, dtype=None):
        self._check_dtype(dtype, "zeros")
        return self._filled(shape, 0)

    def ones(self, shape, dtype=None):
        self._check_dtype(dtype, "ones")
        return self._filled(shape, 1)

    def full(self, shape, fill_value, dtype=None):
        self._check_dtype(dtype, "full")
        return self._filled(shape, fill_value)

    def empty(self, shape, dtype=None):
        """Like ``zeros`` (object arrays have no uninitialised state worth exposing)."""
        self._check_dtype(dtype, "empty")
        return self._filled(shape, 0)

    def zeros_like(self, a, dtype=None, shape=None):
        self._check_dtype(dtype, "zeros_like")
        return self._filled(np.shape(a) if shape is None else shape, 0)

    def ones_like(self, a, dtype=None, shape=None):
        self._check_dtype(dtype, "ones_like")
        return self._filled(np.shape(a) if shape is None else shape, 1)

    def full_like(self, a, fill_value, dtype=None, shape=None):
        self._check_dtype(dtype, "full_like")
        return self._filled(np.shape(a) if shape is None else shape, fill_value)

    def empty_like(self, a, dtype=None, shape=None):
        self._check_dtype(dtype, "empty_like")
        return self._filled(np.shape(a) if shape is None else shape, 0)

    def arange(self, start, stop=None, step=1, dtype=None):
        """Integer ranges only (exact); non-integer arguments raise."""
        self._check_dtype(dtype, "arange")
        args = (start, step) if stop is None else (start, stop, step)
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in args):
            raise UnsupportedOperation(
                "xp.arange: only integer arguments are supported (a float step accumulates "
                "rounding; build the values with xp.asarray)"
            )
        r = range(int(start)) if stop is None else range(int(start), int(stop), int(step))
        return self.asarray(list(r)) if len(r) else self.zeros((0,))

    def eye(self, n, m=None, k=0, dtype=None):
        self._check_dtype(dtype, "eye")
        out = self.zeros((n, n if m is None else m))
        base = out.view(np.ndarray)
        one = self._scalar(1)
        for i in range(n):
            j = i + k
            if 0 <= j < base.shape[1]:
                base[i, j] = one
        return out

    # ---- public API: reductions ------------------------------------------------------------
    def _reduce(self, a, axis, keepdims, combine, name):
        arr = self._base(self.asarray(a))
        return self._wrap(self._reduce_base(arr, axis, keepdims, combine, name))

    def sum(self, a, axis=None, dtype=None, keepdims=False):
        """Sum over ``axis``; one ``sympy.Add(*terms)`` (symbolic) or an exact sum rounded once."""
        self._check_dtype(dtype, "sum")
        return self._reduce(a, axis, keepdims, self._sum_terms, "add")

    def prod(self, a, axis=None, dtype=None, keepdims=False):
        self._check_dtype(dtype, "prod")
        return self._reduce(a, axis, keepdims, self._prod_terms, "multiply")

    def max(self, a, axis=None, keepdims=False):
        return self._reduce(a, axis, keepdims, self._max_terms, "maximum")

    def min(self, a, axis=None, keepdims=False):
        return self._reduce(a, axis, keepdims, self._min_terms, "minimum")

    amax = max
    amin = min

    def mean(self, a, axis=None, dtype=None, keepdims=False):
        """Mean over ``axis``: the sum divided by the exact integer count."""
        self._check_dtype(dtype, "mean")
        arr = self.asarray(a)
        n = _count(arr.shape, _normalize_axes(axis, arr.ndim))
        if n == 0:
            raise ValueError("xp.mean of an empty selection")
        return self._divide_by_count(self.sum(arr, axis=axis, keepdims=keepdims), n)

    def var(self, a, axis=None, dtype=None, ddof=0, keepdims=False, *, correction=None):
        """Two-pass variance ``sum((a - mean)**2) / (n - ddof)``; population variance by default."""
        self._check_dtype(dtype, "var")
        if correction is not None:
            ddof = correction
        arr = self.asarray(a)
        n = _count(arr.shape, _normalize_axes(axis, arr.ndim))
        ddof_v = self._scalar(ddof)
        denominator = self._scalar(n) - ddof_v
        if not self._is_positive_number(denominator):
            raise ValueError(f"xp.var: n - ddof = {n} - {ddof} must be positive")
        centered = arr - self.mean(arr, axis=axis, keepdims=True)
        return self.sum(centered * centered, axis=axis, keepdims=keepdims) / denominator

    def std(self, a, axis=None, dtype=None, ddof=0, keepdims=False, *, correction=None):
        return self.sqrt(self.var(a, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims,
                                  correction=correction))

    # ---- public API: elementwise (through the ufunc hook) ----------------------------------
    def _ufunc(self, ufunc, *args):
        # Every argument becomes an array of this namespace, so the ufunc hook runs.
        return ufunc(*(self.asarray(a) for a in args))

    def add(self, a, b):
        return self._ufunc(np.add, a, b)

    def subtract(self, a, b):
        return self._ufunc(np.subtract, a, b)

    def multiply(self, a, b):
        return self._ufunc(np.multiply, a, b)

    def divide(self, a, b):
        return self._ufunc(np.true_divide, a, b)

    true_divide = divide

    def negative(self, a):
        return self._ufunc(np.negative, a)

    def positive(self, a):
        return self._ufunc(np.positive, a)

    def power(self, a, b):
        return self._ufunc(np.power, a, b)

    pow = power

    def square(self, a):
        return self._ufunc(np.square, a)

    def sqrt(self, a):
        return self._ufunc(np.sqrt, a)

    def reciprocal(self, a):
        return self._ufunc(np.reciprocal, a)

    def abs(self, a):
        return self._ufunc(np.absolute, a)

    absolute = abs

    def exp(self, a):
        return self._ufunc(np.exp, a)

    def log(self, a):
        return self._ufunc(np.log, a)

    def maximum(self, a, b):
        return self._ufunc(np.maximum, a, b)

    def minimum(self, a, b):
        return self._ufunc(np.minimum, a, b)

    def clip(self, a, a_min=None, a_max=None):
        out = self.asarray(a)
        if a_min is not None:
            out = self.maximum(out, a_min)
        if a_max is not None:
            out = self.minimum(out, a_max)
        return out

    def conjugate(self, a):
        return self._ufunc(np.conjugate, a)

    conj = conjugate

    def less(self, a, b):
        return self._ufunc(np.less, a, b)

    def less_equal(self, a, b):
        return self._ufunc(np.less_equal, a, b)

    def greater(self, a, b):
        return self._ufunc(np.greater, a, b)

    def greater_equal(self, a, b):
        return self._ufunc(np.greater_equal, a, b)

    def equal(self, a, b):
        return self._ufunc(np.equal, a, b)

    def not_equal(self, a, b):
        return self._ufunc(np.not_equal, a, b)

    def where(self, condition, x1, x2):
        """Select with a *concrete* boolean condition (bool arrays, decided comparisons)."""
        cond = self._concrete_condition(condition)
        a = self._base(self.asarray(x1))
        b = self._base(self.asarray(x2))
        return self._wrap(np.where(cond, a, b))

    def _concrete_condition(self, condition) -> np.ndarray:
        arr = np.asarray(condition.view(np.ndarray) if isinstance(condition, ExactArray) else condition)
        if arr.dtype == bool:
            return arr
        if arr.dtype == object:
            vals = []
            for v in arr.flat:
                if isinstance(v, (bool, np.bool_)) or v is sympy.true or v is sympy.false:
                    vals.append(bool(v))
                else:
                    raise self._where_error(v)
            return np.array(vals, dtype=bool).reshape(arr.shape)
        raise UnsupportedOperation(f"xp.where: the condition must be boolean, got dtype {arr.dtype}")

    def _where_error(self, v):
        return UnsupportedOperation(f"xp.where: the condition entry {v!r} is not a boolean")

    # ---- public API: shapes --------------------------------------------------------------------
    def reshape(self, a, shape, order="C", *, copy=None):
        return self._wrap(np.reshape(self._base(self.asarray(a)), shape, order=order))

    def broadcast_to(self, a, shape):
        return self._wrap(np.broadcast_to(self._base(self.asarray(a)), shape))

    def broadcast_arrays(self, *arrays):
        res = np.broadcast_arrays(*(self._base(self.asarray(a)) for a in arrays))
        return [self._wrap(r) for r in res]

    def expand_dims(self, a, axis):
        return self._wrap(np.expand_dims(self._base(self.asarray(a)), axis))

    def squeeze(self, a, axis=None):
        return self._wrap(np.squeeze(self._base(self.asarray(a)), axis=axis))

    def stack(self, arrays, axis=0):
        return self._wrap(np.stack([self._base(self.asarray(a)) for a in arrays], axis=axis))

    def concatenate(self, arrays, axis=0):
        return self._wrap(np.concatenate([self._base(self.asarray(a)) for a in arrays], axis=axis))

    concat = concatenate

    def transpose(self, a, axes=None):
        return self._wrap(np.transpose(self._base(self.asarray(a)), axes))

    def permute_dims(self, a, axes):
        return self.transpose(a, axes)

    def moveaxis(self, a, source, destination):
        return self._wrap(np.moveaxis(self._base(self.asarray(a)), source, destination))

    def swapaxes(self, a, axis1, axis2):
        return self._wrap(np.swapaxes(self._base(self.asarray(a)), axis1, axis2))

    def ravel(self, a, order="C"):
        return self._wrap(np.ravel(self._base(self.asarray(a)), order=order))

    def copy(self, a):
        return self.asarray(a, copy=True)

    @staticmethod
    def shape(a):
        return np.shape(a)

    @staticmethod
    def ndim(a):
        return np.ndim(a)

    @staticmethod
    def size(a):
        return np.size(a)

    # ---- public API: products ------------------------------------------------------------------
    def matmul(self, a, b):
        return self._wrap(np.matmul(self._base(self.asarray(a)), self._base(self.asarray(b))))

    def dot(self, a, b):
        return self._wrap(np.dot(self._base(self.asarray(a)), self._base(self.asarray(b))))

    def tensordot(self, a, b, axes=2):
        return self._wrap(np.tensordot(self._base(self.asarray(a)), self._base(self.asarray(b)), axes))

    def outer(self, a, b):
        return self._wrap(np.outer(self._base(self.asarray(a)), self._base(self.asarray(b))))

    def einsum(self, subscripts, *operands, optimize=False):
        ops = [self._base(self.asarray(a)) for a in operands]
        return self._wrap(np.einsum(subscripts, *ops, optimize=optimize))
