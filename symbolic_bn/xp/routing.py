"""How an exact namespace carries out NumPy's operations: operands, ufunc dispatch, reductions.

Every NumPy ufunc met by an :class:`~symbolic_bn.xp.arrays.ExactArray` arrives here
(``_apply_ufunc``): inputs are converted by the namespace's operand rules
(:mod:`symbolic_bn.xp.conversions`); arithmetic runs in NumPy's object loops, divisions by an
exact zero raise ``ZeroDivisionError``; ``sqrt``/``exp``/``log``/``maximum``/... call the
namespace's elementwise hooks (``_fn_*``); comparisons go to the namespace's ``_compare``;
``reduce`` (``a.sum()``, ``a.max()``, ...) combines each output entry's terms in one call of the
namespace's ``_sum_terms``/``_prod_terms``/``_max_terms``/``_min_terms`` -- one ``sympy.Add``,
or an exact mpmath sum rounded once.  Anything else raises
:class:`~symbolic_bn.exact.errors.UnsupportedOperation` naming the ufunc.

The NumPy-style functions users call (``xp.mean``, ``xp.reshape``, ...) are in
:mod:`symbolic_bn.xp.array_api`.
"""
from __future__ import annotations

import numpy as np
import sympy

from ..exact.errors import UnsupportedOperation
from .arrays import ExactArray, RealDType, _dtype_name, _namespace_of_array

_NATIVE_UFUNCS = frozenset(
    {"add", "subtract", "multiply", "divide", "negative", "positive", "power", "matmul"}
)
_COMPARISONS = {
    "less": ("<", sympy.Lt),
    "less_equal": ("<=", sympy.Le),
    "greater": (">", sympy.Gt),
    "greater_equal": (">=", sympy.Ge),
    "equal": ("==", sympy.Eq),
    "not_equal": ("!=", sympy.Ne),
}
_REDUCIBLE = ("add", "multiply", "maximum", "minimum")


_AxisError = getattr(getattr(np, "exceptions", np), "AxisError", None) or np.AxisError


def _normalize_axes(axis, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)):
        axis = (int(axis),)
    out = []
    for ax in axis:
        ax = int(ax)
        if not -ndim <= ax < ndim:
            raise _AxisError(ax, ndim)
        ax %= ndim if ndim else 1
        if ax in out:
            raise ValueError("repeated axis in reduction")
        out.append(ax)
    return tuple(out)


def _count(shape, axes) -> int:
    n = 1
    for ax in axes:
        n *= shape[ax]
    return n


def _nested_object_array(obj) -> np.ndarray:
    """Nested lists/tuples to an object array whose leaves keep their own types.

    (``numpy.asarray`` would coerce ``[2**70 + 1, 0.5]`` to float64, and turn the entries of a
    nested float32 array into Python floats; here every leaf is read by its own type.)
    """
    if isinstance(obj, (list, tuple)):
        parts = [_nested_object_array(o) for o in obj]
        if not parts:
            return np.empty((0,), dtype=object)
        shapes = {p.shape for p in parts}
        if len(shapes) > 1:
            raise ValueError(f"ragged nested sequence (entry shapes {sorted(shapes)})")
        return np.stack(parts)
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            return obj.view(np.ndarray)
        out = np.empty(obj.size, dtype=object)
        for i, v in enumerate(obj.flat):  # NumPy scalars keep their dtype (float32 stays float32)
            out[i] = v
        return out.reshape(obj.shape)
    return _scalar_array(obj)


def _scalar_array(v) -> np.ndarray:
    out = np.empty((), dtype=object)
    out[()] = v
    return out


class _NamespaceCore:
    """Number-system plumbing shared by the symbolic and mpmath namespaces (see the module
    docstring); :class:`~symbolic_bn.xp.array_api._ExactNamespace` adds the public functions."""

    name = "exact"
    is_exact = False
    _array_type: type = ExactArray
    _cast_loss = "lose exactness"

    # ---- hooks the subclasses provide ----------------------------------------------------
    def _scalar(self, v, floats=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def _operand_scalar(self, v):  # pragma: no cover - abstract
        raise NotImplementedError

    def _fn_sqrt(self, v):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def _join(namespaces):
        """The namespace of an operation on arrays of ``namespaces`` (all of this one's kind)."""
        return namespaces[0]

    # ---- dtypes / constants ----------------------------------------------------------------
    @property
    def float64(self) -> RealDType:
        return RealDType(self)

    def _is_own_dtype(self, dtype) -> bool:
        if dtype is None or dtype is object:
            return True
        if isinstance(dtype, RealDType):
            return True
        try:
            return np.dtype(dtype) == np.dtype(object)
        except TypeError:
            return False

    def _check_dtype(self, dtype, op: str) -> None:
        if not self._is_own_dtype(dtype):
            raise UnsupportedOperation(
                f"xp.{op}(dtype={_dtype_name(dtype)}): the {self.name} namespace has one real "
                f"type (xp.float64, i.e. object); a machine dtype would {self._cast_loss}"
            )

    # ---- wrapping and conversion -----------------------------------------------------------
    def _wrap(self, res):
        """Wrap a NumPy result as an array of this namespace (bool arrays stay plain)."""
        if isinstance(res, np.ndarray):
            if res.dtype != object:
                return res
            out = res.view(self._array_type)
            out._xp = self
            return out
        return self._wrap(_scalar_array(res))

    def _base(self, a) -> np.ndarray:
        return a.view(np.ndarray) if isinstance(a, np.ndarray) else a

    def _convert_object_array(self, arr: np.ndarray, conv) -> np.ndarray:
        out = np.empty(arr.size, dtype=object)
        for i, v in enumerate(arr.flat):
            out[i] = conv(v)
        return out.reshape(arr.shape)

    def _to_base_array(self, obj, conv) -> np.ndarray:
        """Any array-like to a plain object ndarray of this namespace's numbers."""
        if isinstance(obj, ExactArray):
            xp = _namespace_of_array(obj)
            if xp == self:
                return obj.view(np.ndarray)
            if type(xp) is not type(self):
                raise UnsupportedOperation(
                    f"an array of {xp!r} cannot enter {self!r}: convert it explicitly "
                    "(to_mpf_array / to_sympy_array)"
                )
            return self._convert_object_array(obj.view(np.ndarray), conv)
        if isinstance(obj, np.ndarray):
            arr = obj
        elif isinstance(obj, (list, tuple)):
            arr = _nested_object_array(obj)
        else:
            arr = _scalar_array(obj)
        kind = arr.dtype.kind
        if kind == "c":
            raise UnsupportedOperation("complex arrays: the namespaces model real numbers only")
        if kind not in "biufUSO":
            raise TypeError(f"cannot convert an array of dtype {arr.dtype} to {self!r}")
        return self._convert_object_array(arr, conv)

    def _operand(self, x):
        """A ufunc input as a plain object ndarray (or scalar) of this namespace's numbers."""
        if isinstance(x, np.ndarray):
            return self._to_base_array(x, self._operand_scalar)
        if isinstance(x, (list, tuple)):
            return self._to_base_array(x, self._operand_scalar)
        return self._operand_scalar(x)

    # ---- ufunc dispatch ----------------------------------------------------------------------
    def _apply_ufunc(self, ufunc, method, inputs, kwargs):
        name = ufunc.__name__
        if name == "true_divide":  # NumPy 1.x name of divide
            name = "divide"
        kwargs = dict(kwargs)
        out = kwargs.pop("out", None)
        where = kwargs.pop("where", True)
        dtype = kwargs.pop("dtype", None)
        kwargs.pop("casting", None)
        kwargs.pop("subok", None)
        kwargs.pop("order", None)
        if where is not True:
            raise UnsupportedOperation(f"numpy.{name} with where=: masked operations are not supported")
        self._check_dtype(dtype, f"{name}")
        if method == "__call__":
            if kwargs:
                raise UnsupportedOperation(f"numpy.{name}: unsupported arguments {sorted(kwargs)}")
            res = self._call_ufunc(name, ufunc, [self._operand(x) for x in inputs])
        elif method == "reduce":
            res = self._reduce_ufunc(name, inputs, kwargs)
        elif method == "accumulate" and name in ("add", "multiply"):
            axis = kwargs.pop("axis", 0)
            if kwargs:
                raise UnsupportedOperation(f"numpy.{name}.accumulate: unsupported arguments {sorted(kwargs)}")
            res = ufunc.accumulate(self._operand(inputs[0]), axis=axis)
        elif method == "outer" and name in _NATIVE_UFUNCS - {"matmul"}:
            if kwargs:
                raise UnsupportedOperation(f"numpy.{name}.outer: unsupported arguments {sorted(kwargs)}")
            a, b = (self._operand(x) for x in inputs)
            self._check_divisors(name, a, b)
            res = ufunc.outer(a, b)
        else:
            raise UnsupportedOperation(
                f"numpy.{name}.{method}: not supported by the {self.name} namespace"
            )
        if res is NotImplemented:
            return res
        if isinstance(out, tuple) and all(o is None for o in out):
            out = None
        if out is not None and out is not Ellipsis:
            target = out[0]
            np.ndarray.__setitem__(target.view(np.ndarray), Ellipsis, self._base(res))
            return target
        return self._wrap(res)

    def _call_ufunc(self, name, ufunc, args):
        if name in _NATIVE_UFUNCS:
            if name in ("divide", "power"):
                self._check_divisors(name, *args)
            return ufunc(*args)
        if name in _COMPARISONS:
            return self._compare(name, *args)
        elementwise = {
            "sqrt": self._fn_sqrt,
            "exp": self._fn_exp,
            "log": self._fn_log,
            "absolute": self._fn_abs,
            "square": self._fn_square,
            "reciprocal": self._fn_reciprocal,
            "conjugate": self._fn_conjugate,
            "maximum": self._fn_max2,
            "minimum": self._fn_min2,
            "fmax": self._fn_max2,
            "fmin": self._fn_min2,
            "clip": self._fn_clip,
        }
        fn = elementwise.get(name)
        if fn is None:
            raise UnsupportedOperation(
                f"numpy.{name}: no {'exact' if self.is_exact else 'mpmath'} counterpart in the "
                f"{self.name} namespace"
            )
        if name == "reciprocal":
            self._check_divisors("divide", 1, args[0])
        return np.frompyfunc(fn, len(args), 1)(*args)

    def _reduce_ufunc(self, name, inputs, kwargs):
        if name not in _REDUCIBLE:
            raise UnsupportedOperation(f"numpy.{name}.reduce: not supported by the {self.name} namespace")
        axis = kwargs.pop("axis", 0)
        keepdims = kwargs.pop("keepdims", False)
        initial = kwargs.pop("initial", np._NoValue)
        if initial is not np._NoValue and initial is not None:
            raise UnsupportedOperation(f"numpy.{name}.reduce(initial=...): not supported")
        if kwargs:
            raise UnsupportedOperation(f"numpy.{name}.reduce: unsupported arguments {sorted(kwargs)}")
        arr = self._operand(inputs[0])
        if not isinstance(arr, np.ndarray):
            arr = _scalar_array(arr)
        combine = {
            "add": self._sum_terms,
            "multiply": self._prod_terms,
            "maximum": self._max_terms,
            "minimum": self._min_terms,
        }[name]
        return self._reduce_base(arr, axis, keepdims, combine, name)

    def _reduce_base(self, a: np.ndarray, axis, keepdims: bool, combine, name: str) -> np.ndarray:
        axes = _normalize_axes(axis, a.ndim)
        keep = [i for i in range(a.ndim) if i not in axes]
        moved = np.transpose(a, keep + list(axes))
        kept_shape = moved.shape[: len(keep)]
        k = _count(a.shape, axes)
        if k == 0 and name in ("maximum", "minimum"):
            raise ValueError(f"zero-size array to reduction operation {name} which has no identity")
        rows = moved.reshape(int(np.prod(kept_shape, dtype=np.int64)), k)
        res = np.empty(rows.shape[0], dtype=object)
        for i in range(rows.shape[0]):
            res[i] = combine(list(rows[i]))
        res = res.reshape(kept_shape)
        if keepdims:
            res = res.reshape(tuple(1 if i in axes else a.shape[i] for i in range(a.ndim)))
        return res

    def _check_divisors(self, name, a, b):
        """ZeroDivisionError for a division (or negative power) by an exact zero."""
        if name == "divide":
            vals = b.flat if isinstance(b, np.ndarray) else (b,)
            if any(self._is_zero(v) for v in vals):
                raise ZeroDivisionError(f"division by zero in the {self.name} namespace")
        elif name == "power":
            base = np.broadcast_to(a, np.broadcast_shapes(np.shape(a), np.shape(b)))
            expo = np.broadcast_to(b, base.shape)
            for x, e in zip(base.flat, expo.flat):
                if self._is_zero(x) and self._is_negative_number(e):
                    raise ZeroDivisionError(f"zero to a negative power in the {self.name} namespace")
