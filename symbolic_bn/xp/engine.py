"""The exact array namespace: NumPy-style arrays of the engine's Values.

Users' code runs on these arrays in two ways:

* written against a namespace argument ``xp`` (``xp.mean``, ``xp.sqrt``, ...): the check passes an
  :class:`ExactNamespace` bound to its Space;
* *unmodified NumPy code* (``np.sum``, ``np.mean``, ``np.var``, ``np.sqrt``, ``x.T``, ``reshape``,
  ``np.zeros_like``, ``keepdims``, ``np.broadcast_to``, ``np.newaxis`` indexing, ``@``/``np.dot``,
  ...): the inputs are :class:`ExactArray` s, an ``ndarray`` subclass of ``dtype=object`` that takes
  over NumPy's ufuncs (``__array_ufunc__``, NEP 13) and high-level functions
  (``__array_function__``, NEP 18).  Reductions are exact sums (pairwise, per ring); means divide
  by the exact count; ``var``/``std`` are the population formulas with ``ddof``.

What cannot work is refused with a message that names the line and the fix: a float buffer made
from a shape alone (``np.zeros(x.shape)``) receiving exact values -- use ``np.zeros_like(x)``;
``astype(float32)``; ``math.sqrt``; a ufunc without an exact counterpart (``np.floor``).
Comparisons, ``np.maximum``/``np.minimum``/``np.abs``/``np.clip``/``np.where`` conditions are
decided on the whole domain or refused as data-dependent branches (:mod:`symbolic_bn.exact.sign`).
Floats that meet exact arrays are read as the simplest rational within half an ulp and logged.
"""
from __future__ import annotations

import numbers
from fractions import Fraction

import numpy as np

from ..exact import value as _value_module
from ..exact.errors import UnsupportedAttribute, UnsupportedOperation
from ..exact.value import Value

__all__ = ["ExactArray", "ExactNamespace", "namespace_of", "to_values"]


# ----------------------------------------------------------------------------------- helpers

def _space_of(objs):
    for o in objs:
        if isinstance(o, ExactArray) and o._space is not None:
            return o._space
        if type(o) is Value:
            return o.space
        if isinstance(o, (list, tuple)):
            s = _space_of(o)
            if s is not None:
                return s
    return None


def _flat_values(space, arr) -> np.ndarray:
    """An object ndarray (not a subclass) whose entries are Values of ``space``."""
    a = np.asarray(arr.view(np.ndarray) if isinstance(arr, np.ndarray) else arr, dtype=object) \
        if not (isinstance(arr, np.ndarray) and arr.dtype.kind in "biuf") else arr
    if isinstance(a, np.ndarray) and a.dtype.kind in "biuf":
        out = np.empty(a.shape, dtype=object)
        for idx in np.ndindex(*a.shape):
            out[idx] = space.constant(a[idx].item() if a.dtype.kind != "f" else a.dtype.type(a[idx]))
        return out
    a = np.asarray(a, dtype=object)
    if a.dtype != object:
        a = a.astype(object)
    out = np.empty(a.shape, dtype=object)
    for idx in np.ndindex(*a.shape):
        v = a[idx]
        out[idx] = v if type(v) is Value else space.constant(v)
    return out


def to_values(space, obj) -> "ExactArray":
    """``obj`` (nested lists, arrays, scalars) as an ExactArray of Values of ``space``."""
    if isinstance(obj, ExactArray) and obj._space is space:
        return obj
    if type(obj) is Value:
        arr = np.empty((), dtype=object)
        arr[()] = obj
        return _wrap(space, arr)
    if isinstance(obj, np.ndarray):
        return _wrap(space, _flat_values(space, obj))
    arr = np.array(obj, dtype=object)
    return _wrap(space, _flat_values(space, arr))


def _wrap(space, arr) -> "ExactArray":
    out = np.asarray(arr, dtype=object).view(ExactArray)
    out._space = space
    return out


def _pairwise_sum(space, values):
    """Exact sum of many Values (:meth:`Space.sum <symbolic_bn.exact.space.Space.sum>`)."""
    return space.sum(values)


def _normalize_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (numbers.Integral, np.integer)) and not isinstance(axis, bool):
        axis = (int(axis),)
    try:
        axes = tuple(int(a) for a in axis)
    except TypeError:
        raise TypeError(f"axis must be None, an int or a tuple of ints, got {axis!r}") from None
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise np.exceptions.AxisError(a, ndim)
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axis!r}")
    return tuple(sorted(out))


# ----------------------------------------------------------------------------------- arrays

_UFUNC_NAMES = {
    "add": "add", "subtract": "subtract", "multiply": "multiply", "true_divide": "divide",
    "divide": "divide", "negative": "negative", "positive": "positive", "power": "power",
    "float_power": "power", "square": "square", "sqrt": "sqrt", "reciprocal": "reciprocal",
    "absolute": "abs", "fabs": "abs", "exp": "exp", "log": "log", "maximum": "maximum",
    "minimum": "minimum", "fmax": "maximum", "fmin": "minimum", "less": "less",
    "less_equal": "less_equal", "greater": "greater", "greater_equal": "greater_equal",
    "equal": "equal", "not_equal": "not_equal", "matmul": "matmul", "conjugate": "conjugate",
    "isnan": "isnan", "isinf": "isinf", "isfinite": "isfinite", "sign": "sign_refused",
}


class ExactArray(np.ndarray):
    """``dtype=object`` array of Values of one Space (module docstring)."""

    _space = None

    def __array_finalize__(self, obj):
        if obj is not None:
            s = getattr(obj, "_space", None)
            if s is not None:
                self._space = s

    @property
    def xp(self) -> "ExactNamespace":
        return ExactNamespace(self._space)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        space = _space_of(list(inputs))
        return ExactNamespace(space)._apply_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        space = _space_of(list(args) + list(kwargs.values()))
        ns = ExactNamespace(space)
        impl = _FUNCTIONS.get(func.__name__)
        if impl is not None and getattr(func, "__module__", "").startswith("numpy"):
            return impl(ns, *args, **kwargs)
        if func.__name__ in _REFUSED_FUNCTIONS:
            raise UnsupportedOperation(f"np.{func.__name__} has no exact counterpart here")
        plain = [t for t in types if not issubclass(t, np.ndarray)]
        if plain:
            return NotImplemented
        result = func._implementation(*args, **kwargs)
        return _rewrap(space, result)

    def __setitem__(self, key, value):
        space = self._space
        if isinstance(value, np.ndarray) or isinstance(value, (list, tuple)):
            value = _flat_values(space, np.asarray(value, dtype=object)
                                 if not isinstance(value, np.ndarray) else value)
        elif type(value) is not Value:
            value = space.constant(value)
        np.ndarray.__setitem__(self.view(np.ndarray), key, value)

    def fill(self, value):
        self.view(np.ndarray).fill(self._space.constant(value))

    def astype(self, dtype, order="K", casting="unsafe", subok=True, copy=True):
        if np.dtype(dtype) != np.dtype(object):
            raise UnsupportedOperation(
                f"astype({np.dtype(dtype)}): casting exact values to a machine dtype would round "
                "them; the exact check keeps object arrays (remove the cast, or cast only outside "
                "the checked function)")
        return _wrap(self._space, np.ndarray.astype(self.view(np.ndarray), object, copy=copy))

    # reductions as methods (NumPy's own would route through add.reduce and a float count)
    def sum(self, axis=None, dtype=None, out=None, keepdims=False, **kw):
        return self.xp.sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, dtype=None, out=None, keepdims=False, **kw):
        return self.xp.mean(self, axis=axis, keepdims=keepdims)

    def var(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
        return self.xp.var(self, axis=axis, ddof=ddof, keepdims=keepdims)

    def std(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
        return self.xp.std(self, axis=axis, ddof=ddof, keepdims=keepdims)

    def max(self, axis=None, out=None, keepdims=False, **kw):
        return self.xp.max(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, out=None, keepdims=False, **kw):
        return self.xp.min(self, axis=axis, keepdims=keepdims)

    def prod(self, axis=None, dtype=None, out=None, keepdims=False, **kw):
        return self.xp.prod(self, axis=axis, keepdims=keepdims)

    def dot(self, other):
        return self.xp.dot(self, other)

    def __float__(self):
        if self.size == 1:
            return float(self.view(np.ndarray).reshape(-1)[0])
        raise TypeError("only length-1 arrays can be converted to Python scalars")

    def __bool__(self):
        if self.size == 1:
            return bool(self.view(np.ndarray).reshape(-1)[0])
        return np.ndarray.__bool__(self.view(np.ndarray))

    def __reduce__(self):
        raise TypeError("exact arrays cannot be pickled (their values belong to one Space)")


def _rewrap(space, result):
    if isinstance(result, np.ndarray) and result.dtype == object and not isinstance(result, ExactArray):
        return _wrap(space, result)
    if isinstance(result, (list, tuple)):
        return type(result)(_rewrap(space, r) for r in result)
    return result


_value_module.ARRAY_WRAP = None  # set below, once _wrap can find the space of the entries


def _wrap_values(arr):
    """An ExactArray when every entry is a Value (else the plain array: entries such as linear
    forms must keep NumPy's own object arithmetic)."""
    space = None
    for v in arr.flat:
        if type(v) is not Value:
            return arr
        space = v.space
    return _wrap(space, arr) if space is not None else arr


_value_module.ARRAY_WRAP = _wrap_values

_REFUSED_FUNCTIONS = {"floor", "ceil", "round", "around", "rint", "trunc", "sort", "argsort",
                      "argmax", "argmin", "median", "percentile", "quantile", "unique", "nonzero",
                      "histogram", "cumsum", "cumprod", "fft", "linalg"}


# ----------------------------------------------------------------------------------- namespace

class ExactNamespace:
    """The exact namespace of one Space: NumPy-style functions on arrays of Values."""

    name = "exact"
    newaxis = None
    float64 = object  # the namespace's real type is the exact value (dtype=object to NumPy)

    def __init__(self, space):
        self.space = space

    def __repr__(self):
        return f"<exact namespace of {self.space!r}>"

    def __eq__(self, other):
        return isinstance(other, ExactNamespace) and other.space is self.space

    def __hash__(self):
        return hash(id(self.space))

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise UnsupportedAttribute(f"xp.{name} is not available in the exact namespace")

    # -- conversion
    def asarray(self, obj, dtype=None, copy=None):
        self._check_dtype(dtype, "asarray")
        out = to_values(self.space, obj)
        return out.copy() if copy else out

    def array(self, obj, dtype=None, copy=True):
        return self.asarray(obj, dtype=dtype, copy=copy)

    def _check_dtype(self, dtype, op):
        if dtype is None or dtype is object or dtype is ExactNamespace.float64:
            return
        if np.dtype(dtype) != np.dtype(object):
            raise UnsupportedOperation(f"{op}(dtype={np.dtype(dtype)}): the exact namespace has no "
                                       "machine dtypes")

    def _operand(self, x):
        if isinstance(x, ExactArray) and x._space is self.space:
            return x.view(np.ndarray)
        if type(x) is Value:
            a = np.empty((), dtype=object)
            a[()] = x
            return a
        return _flat_values(self.space, x if isinstance(x, np.ndarray) else np.asarray(x, dtype=object)
                            if not isinstance(x, (int, float, Fraction, np.number)) else np.asarray(x))

    def _result(self, arr):
        return _wrap(self.space, arr)

    # -- creation
    def _filled(self, shape, value):
        out = np.empty(shape, dtype=object)
        out.fill(self.space.constant(value))
        return self._result(out)

    def zeros(self, shape, dtype=None, **kw):
        self._check_dtype(dtype, "zeros")
        return self._filled(shape, 0)

    def ones(self, shape, dtype=None, **kw):
        self._check_dtype(dtype, "ones")
        return self._filled(shape, 1)

    def full(self, shape, fill_value, dtype=None, **kw):
        self._check_dtype(dtype, "full")
        return self._filled(shape, fill_value)

    def empty(self, shape, dtype=None, **kw):
        return self.zeros(shape, dtype=dtype)

    def zeros_like(self, a, dtype=None, shape=None, **kw):
        return self.zeros(np.shape(a) if shape is None else shape, dtype=dtype)

    def ones_like(self, a, dtype=None, shape=None, **kw):
        return self.ones(np.shape(a) if shape is None else shape, dtype=dtype)

    def full_like(self, a, fill_value, dtype=None, shape=None, **kw):
        return self.full(np.shape(a) if shape is None else shape, fill_value, dtype=dtype)

    def empty_like(self, a, dtype=None, shape=None, **kw):
        return self.zeros_like(a, dtype=dtype, shape=shape)

    def eye(self, n, m=None, k=0, dtype=None, **kw):
        out = self.zeros((n, n if m is None else m))
        for i in range(n):
            if 0 <= i + k < out.shape[1]:
                out[i, i + k] = 1
        return out

    def arange(self, start, stop=None, step=1, dtype=None):
        if stop is None:
            start, stop = 0, start
        vals = []
        v = Fraction(start)
        while (step > 0 and v < stop) or (step < 0 and v > stop):
            vals.append(self.space.fraction(v))
            v += Fraction(step)
        arr = np.empty(len(vals), dtype=object)
        arr[:] = vals
        return self._result(arr)

    def copy(self, a):
        return self._result(np.array(self._operand(a), dtype=object, copy=True))

    # -- elementwise
    def _map1(self, fn, a):
        base = self._operand(a)
        out = np.empty(base.shape, dtype=object)
        for idx in np.ndindex(*base.shape):
            out[idx] = fn(base[idx])
        return self._result(out)

    def _map2(self, fn, a, b):
        A, B = np.broadcast_arrays(self._operand(a), self._operand(b))
        out = np.empty(A.shape, dtype=object)
        for idx in np.ndindex(*A.shape):
            out[idx] = fn(A[idx], B[idx])
        return self._result(out)

    def _compare(self, op, a, b):
        A, B = np.broadcast_arrays(self._operand(a), self._operand(b))
        out = np.empty(A.shape, dtype=bool)
        for idx in np.ndindex(*A.shape):
            out[idx] = self.space.compare(A[idx], B[idx], op)
        return out

    def add(self, a, b):
        return self._map2(self.space.add, a, b)

    def subtract(self, a, b):
        s = self.space
        return self._map2(lambda x, y: s.add(x, s.negate(y)), a, b)

    def multiply(self, a, b):
        return self._map2(self.space.multiply, a, b)

    def divide(self, a, b):
        s = self.space
        return self._map2(lambda x, y: s.multiply(x, s.inverse(y)), a, b)

    true_divide = divide

    def negative(self, a):
        return self._map1(self.space.negate, a)

    def positive(self, a):
        return self._map1(lambda x: x, a)

    def power(self, a, b):
        return self._map2(self.space.power, a, b)

    pow = power

    def square(self, a):
        return self._map1(lambda x: self.space.multiply(x, x), a)

    def sqrt(self, a):
        return self._map1(self.space.sqrt, a)

    def reciprocal(self, a):
        return self._map1(self.space.inverse, a)

    def exp(self, a):
        return self._map1(self.space.exp, a)

    def log(self, a):
        return self._map1(self.space.log, a)

    def abs(self, a):
        return self._map1(self.space.absolute, a)

    absolute = abs

    def conjugate(self, a):
        return self._map1(lambda x: x, a)

    conj = conjugate

    def _max2(self, x, y):
        return x if self.space.compare(x, y, ">=") else y

    def _min2(self, x, y):
        return x if self.space.compare(x, y, "<=") else y

    def maximum(self, a, b):
        return self._map2(self._max2, a, b)

    def minimum(self, a, b):
        return self._map2(self._min2, a, b)

    def clip(self, a, a_min=None, a_max=None, **kw):
        out = a
        if a_min is not None:
            out = self.maximum(out, a_min)
        if a_max is not None:
            out = self.minimum(out, a_max)
        return out

    def less(self, a, b):
        return self._compare("<", a, b)

    def less_equal(self, a, b):
        return self._compare("<=", a, b)

    def greater(self, a, b):
        return self._compare(">", a, b)

    def greater_equal(self, a, b):
        return self._compare(">=", a, b)

    def equal(self, a, b):
        return self._compare("==", a, b)

    def not_equal(self, a, b):
        return self._compare("!=", a, b)

    def isnan(self, a):
        return np.zeros(np.shape(a), dtype=bool)

    def isinf(self, a):
        return np.zeros(np.shape(a), dtype=bool)

    def isfinite(self, a):
        return np.ones(np.shape(a), dtype=bool)

    def where(self, condition, x1=None, x2=None):
        if x1 is None and x2 is None:
            raise UnsupportedOperation("np.where(condition) (indices of a data-dependent set) has no "
                                       "exact counterpart")
        cond = np.asarray(condition)
        if cond.dtype == object:
            flat = np.empty(cond.shape, dtype=bool)
            for idx in np.ndindex(*cond.shape):
                flat[idx] = bool(cond[idx])  # a Value's truth is decided or a BranchError
            cond = flat
        A, B = self._operand(x1), self._operand(x2)
        C, A, B = np.broadcast_arrays(cond, A, B)
        out = np.empty(C.shape, dtype=object)
        for idx in np.ndindex(*C.shape):
            out[idx] = A[idx] if C[idx] else B[idx]
        return self._result(out)

    # -- reductions
    def _reduce(self, a, axis, keepdims, combine):
        base = self._operand(a)
        axes = _normalize_axes(axis, base.ndim)
        kept = [d for d in range(base.ndim) if d not in axes]
        moved = np.transpose(base, kept + list(axes))
        outer = moved.shape[:len(kept)]
        inner = int(np.prod(moved.shape[len(kept):], dtype=int))
        moved = moved.reshape(outer + (inner,))
        out = np.empty(outer, dtype=object)
        for idx in np.ndindex(*outer):
            out[idx] = combine(list(moved[idx]))
        if keepdims:
            out = out.reshape(tuple(1 if d in axes else base.shape[d] for d in range(base.ndim)))
        return self._result(out), inner

    def sum(self, a, axis=None, dtype=None, keepdims=False, **kw):
        return self._reduce(a, axis, keepdims, lambda vs: _pairwise_sum(self.space, vs))[0]

    def prod(self, a, axis=None, dtype=None, keepdims=False, **kw):
        def product(vs):
            out = self.space.fraction(1)
            for v in vs:
                out = self.space.multiply(out, v)
            return out
        return self._reduce(a, axis, keepdims, product)[0]

    def mean(self, a, axis=None, dtype=None, keepdims=False, **kw):
        base = self._operand(a)
        n = _count(base.shape, _normalize_axes(axis, base.ndim))
        if n == 0:
            raise UnsupportedOperation("mean of an empty selection")
        return self.multiply(self.sum(base, axis=axis, keepdims=keepdims), Fraction(1, n))

    def var(self, a, axis=None, dtype=None, ddof=0, keepdims=False, *, correction=None, **kw):
        base = self._operand(a)
        if correction is not None:
            ddof = correction
        axes = _normalize_axes(axis, base.ndim)
        n = _count(base.shape, axes)
        ddof = Fraction(ddof)
        if n - ddof <= 0:
            raise UnsupportedOperation(f"var with ddof={ddof} of {n} elements divides by zero")
        mu = self.mean(base, axis=axis, keepdims=True)
        d = self.subtract(base, mu)
        return self.multiply(self.sum(self.multiply(d, d), axis=axis, keepdims=keepdims), 1 / (n - ddof))

    def std(self, a, axis=None, dtype=None, ddof=0, keepdims=False, *, correction=None, **kw):
        return self.sqrt(self.var(a, axis=axis, ddof=ddof, keepdims=keepdims, correction=correction))

    def max(self, a, axis=None, keepdims=False, **kw):
        def biggest(vs):
            out = vs[0]
            for v in vs[1:]:
                out = self._max2(out, v)
            return out
        return self._reduce(a, axis, keepdims, biggest)[0]

    def min(self, a, axis=None, keepdims=False, **kw):
        def smallest(vs):
            out = vs[0]
            for v in vs[1:]:
                out = self._min2(out, v)
            return out
        return self._reduce(a, axis, keepdims, smallest)[0]

    amax, amin = max, min

    # -- linear algebra
    def matmul(self, a, b):
        A, B = self._operand(a), self._operand(b)
        if A.ndim == 0 or B.ndim == 0:
            raise ValueError("matmul: scalar operands are not allowed")
        a1, b1 = A.ndim == 1, B.ndim == 1
        if a1:
            A = A[None, :]
        if b1:
            B = B[:, None]
        if A.shape[-1] != B.shape[-2]:
            raise ValueError(f"matmul: shapes {A.shape} and {B.shape} do not align")
        batch = np.broadcast_shapes(A.shape[:-2], B.shape[:-2])
        A = np.broadcast_to(A, batch + A.shape[-2:])
        B = np.broadcast_to(B, batch + B.shape[-2:])
        n, k, m = A.shape[-2], A.shape[-1], B.shape[-1]
        out = np.empty(batch + (n, m), dtype=object)
        mul = self.space.multiply
        for bidx in np.ndindex(*batch):
            for i in range(n):
                for j in range(m):
                    out[bidx + (i, j)] = _pairwise_sum(self.space, [mul(A[bidx + (i, t)], B[bidx + (t, j)])
                                                                    for t in range(k)])
        if a1:
            out = out[..., 0, :]
        if b1:
            out = out[..., 0]
        return self._result(out)

    def dot(self, a, b, out=None):
        A, B = self._operand(a), self._operand(b)
        if A.ndim == 0 or B.ndim == 0:
            return self.multiply(A, B)
        if B.ndim == 1:
            return self.matmul(A, B)
        if A.ndim <= 2 and B.ndim == 2:
            return self.matmul(A, B)
        return self.tensordot(A, B, axes=([A.ndim - 1], [B.ndim - 2]))

    def vdot(self, a, b):
        return self.sum(self.multiply(np.ravel(self._operand(a)), np.ravel(self._operand(b))))

    def inner(self, a, b):
        A, B = self._operand(a), self._operand(b)
        return self.tensordot(A, B, axes=([A.ndim - 1], [B.ndim - 1]))

    def outer(self, a, b, out=None):
        A, B = np.ravel(self._operand(a)), np.ravel(self._operand(b))
        return self.multiply(A[:, None], B[None, :])

    def tensordot(self, a, b, axes=2):
        A, B = self._operand(a), self._operand(b)
        if isinstance(axes, (int, np.integer)):
            ax_a = list(range(A.ndim - axes, A.ndim))
            ax_b = list(range(axes))
        else:
            ax_a, ax_b = [list(np.atleast_1d(x)) for x in axes]
        ax_a = [int(x) % A.ndim for x in ax_a]
        ax_b = [int(x) % B.ndim for x in ax_b]
        free_a = [d for d in range(A.ndim) if d not in ax_a]
        free_b = [d for d in range(B.ndim) if d not in ax_b]
        k = int(np.prod([A.shape[d] for d in ax_a], dtype=int))
        A2 = np.transpose(A, free_a + ax_a).reshape(-1, k)
        B2 = np.transpose(B, ax_b + free_b).reshape(k, -1)
        res = self.matmul(A2, B2).view(np.ndarray)
        return self._result(res.reshape([A.shape[d] for d in free_a] + [B.shape[d] for d in free_b]))

    def einsum(self, subscripts, *operands, **kw):
        if not isinstance(subscripts, str) or "->" not in subscripts or "." in subscripts:
            raise UnsupportedOperation("einsum: only explicit 'ij,jk->ik' subscripts are supported")
        ins, out_spec = subscripts.replace(" ", "").split("->")
        specs = ins.split(",")
        if len(specs) != len(operands):
            raise ValueError("einsum: number of operands does not match the subscripts")
        ops = [self._operand(o) for o in operands]
        sizes = {}
        for spec, op in zip(specs, ops):
            for ch, n in zip(spec, op.shape):
                sizes[ch] = n
        letters = sorted(sizes)
        summed = [c for c in letters if c not in out_spec]
        out = np.empty(tuple(sizes[c] for c in out_spec), dtype=object)
        for oidx in np.ndindex(*out.shape):
            assign = dict(zip(out_spec, oidx))
            terms = []
            for sidx in np.ndindex(*[sizes[c] for c in summed]):
                assign.update(zip(summed, sidx))
                t = None
                for spec, op in zip(specs, ops):
                    v = op[tuple(assign[c] for c in spec)]
                    t = v if t is None else self.space.multiply(t, v)
                terms.append(t)
            out[oidx] = _pairwise_sum(self.space, terms)
        return self._result(out)

    # -- shapes (NumPy's own on object arrays)
    def reshape(self, a, shape, order="C", **kw):
        return self._result(np.reshape(self._operand(a), shape, order=order))

    def transpose(self, a, axes=None):
        return self._result(np.transpose(self._operand(a), axes))

    permute_dims = transpose

    def broadcast_to(self, a, shape):
        return self._result(np.broadcast_to(self._operand(a), shape))

    def broadcast_arrays(self, *arrays):
        return [self._result(x) for x in np.broadcast_arrays(*[self._operand(a) for a in arrays])]

    def expand_dims(self, a, axis):
        return self._result(np.expand_dims(self._operand(a), axis))

    def squeeze(self, a, axis=None):
        return self._result(np.squeeze(self._operand(a), axis))

    def stack(self, arrays, axis=0):
        return self._result(np.stack([self._operand(a) for a in arrays], axis=axis))

    def concatenate(self, arrays, axis=0):
        return self._result(np.concatenate([self._operand(a) for a in arrays], axis=axis))

    concat = concatenate

    def moveaxis(self, a, source, destination):
        return self._result(np.moveaxis(self._operand(a), source, destination))

    def swapaxes(self, a, axis1, axis2):
        return self._result(np.swapaxes(self._operand(a), axis1, axis2))

    def ravel(self, a, order="C"):
        return self._result(np.ravel(self._operand(a), order=order))

    def tile(self, a, reps):
        return self._result(np.tile(self._operand(a), reps))

    def repeat(self, a, repeats, axis=None):
        return self._result(np.repeat(self._operand(a), repeats, axis=axis))

    def flip(self, a, axis=None):
        return self._result(np.flip(self._operand(a), axis=axis))

    @staticmethod
    def shape(a):
        return np.shape(a)

    @staticmethod
    def ndim(a):
        return np.ndim(a)

    @staticmethod
    def size(a):
        return int(np.size(a))

    # -- ufunc protocol
    def _apply_ufunc(self, ufunc, method, inputs, kwargs):
        name = _UFUNC_NAMES.get(ufunc.__name__)
        out = kwargs.pop("out", None)
        kwargs.pop("dtype", None) if kwargs.get("dtype") in (None, object) else None
        if name is None or name == "sign_refused":
            raise UnsupportedOperation(f"np.{ufunc.__name__} has no exact counterpart in the exact "
                                       f"check")
        if kwargs.get("where", True) is not True:
            raise UnsupportedOperation(f"np.{ufunc.__name__}(..., where=...) is not supported exactly")
        kwargs.pop("where", None)
        if method == "__call__":
            result = getattr(self, name)(*inputs)
        elif method == "reduce":
            if name == "add":
                result = self.sum(inputs[0], axis=kwargs.get("axis", 0), keepdims=kwargs.get("keepdims", False))
            elif name == "multiply":
                result = self.prod(inputs[0], axis=kwargs.get("axis", 0), keepdims=kwargs.get("keepdims", False))
            elif name in ("maximum", "minimum"):
                fn = self.max if name == "maximum" else self.min
                result = fn(inputs[0], axis=kwargs.get("axis", 0), keepdims=kwargs.get("keepdims", False))
            else:
                raise UnsupportedOperation(f"np.{ufunc.__name__}.reduce is not supported exactly")
        else:
            raise UnsupportedOperation(f"np.{ufunc.__name__}.{method} is not supported exactly")
        if out is not None:
            target = out[0] if isinstance(out, tuple) else out
            target[...] = result
            return target
        return result


def _count(shape, axes) -> int:
    n = 1
    for a in axes:
        n *= shape[a]
    return n


SUPPORTED = sorted(n for n in dir(ExactNamespace) if not n.startswith("_"))

#: NumPy functions taken over through __array_function__.
_FUNCTIONS = {name: (lambda meth: (lambda ns, *a, **k: getattr(ns, meth)(*a, **k)))(name) for name in (
    "sum", "mean", "var", "std", "prod", "max", "min", "amax", "amin", "dot", "vdot", "inner",
    "outer", "tensordot", "einsum", "matmul", "zeros_like", "ones_like", "full_like", "empty_like",
    "where", "clip", "isnan", "isinf", "isfinite", "copy")}


def namespace_of(space) -> ExactNamespace:
    return ExactNamespace(space)
