"""The table from aten operator to an implementation written against an array namespace ``xp``.

Used by :mod:`symbolic_bn.frontends.torch_interpreter` to run a graph that
:func:`symbolic_bn.frontends.torch.trace` recorded.  Every entry is keyed by the printed name
of the aten overload (``"aten.add.Tensor"``) and says

* its *kind* -- how the interpreter treats the result's memory:

  ``compute``   a fresh tensor computed from the (read) inputs;
  ``factory``   a fresh tensor made from a shape and a fill value (``empty*`` ones are
                marked unwritten: reading them before a write is refused);
  ``view``      a tensor sharing its input's storage; the same function is applied to the input's
                values (with ``xp``) and to the storage position of every element (with NumPy),
                so later in-place writes reach every alias;
  ``write``     an in-place write of a value into ``self`` (``copy_``, ``fill_``, ``zero_``, and
                every ``foo_`` whose functional ``foo`` is a ``compute`` entry);
  ``view_``     an in-place change of ``self``'s shape (``unsqueeze_``, ``t_``, ...);
  ``query``     a Python value computed from shapes (``is_same_size``);

* which schema arguments it understands (``accepts``): an argument outside that set whose value
  is not the schema default is refused, so that nothing a kernel would honour is silently
  dropped;
* an optional static check run on the traced node (device, dtype conversions, rounding modes).

Semantics follow the aten schemas in ``native_functions.yaml`` and torch's documentation
(``torch.sum``, ``torch.Tensor.expand``, ``torch.as_strided``, ...); the implementations are
this project's own.  What ``xp`` must provide is the NumPy-like API of
:mod:`symbolic_bn.xp.namespaces` (add, subtract, multiply, divide, negative, power, sqrt, exp,
log, sum/mean/max/min with axis and keepdims, reshape, transpose, broadcast_to, where, zeros,
ones, full, matmul, concatenate, stack, maximum, minimum, abs, comparisons, asarray) plus
ordinary slicing.  Booleans are plain NumPy bool arrays in every namespace (the exact
namespaces decide comparisons to concrete booleans or raise).

Numbers: Python ints are exact everywhere; Python floats in a trace are passed to ``xp``
unchanged (the namespace decides how to read them; :attr:`TorchTrace.float_constants` lists
them).  Rounding between floating dtypes (float16 -> float32, float64 -> float32) is not
modelled and is refused; same-dtype arithmetic is interpreted as exact real arithmetic.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

__all__ = ["OpRule", "OPS", "supported_ops", "conversion_problem", "RefusedOp"]


class RefusedOp(Exception):
    """Raised by a static check: the op is in the table but this use of it is not supported."""


@dataclass(frozen=True)
class OpRule:
    kind: str                      # compute | factory | view | write | view_ | query | as_strided
    fn: Callable
    accepts: frozenset
    check: Callable | None = None  # check(node, args) -> None, raises RefusedOp
    reads_self: bool = True        # write kind: does the new value depend on self's old value?
    functional: str | None = None  # write / view_ kinds derived from another entry


OPS: dict[str, OpRule] = {}

_FLOATING = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_INTEGRAL = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def supported_ops() -> list[str]:
    """Names of every aten overload the interpreter runs (sorted)."""
    return sorted(OPS)


def _register(names, kind, accepts, check=None, **extra):
    names = (names,) if isinstance(names, str) else tuple(names)

    def deco(fn):
        for name in names:
            OPS[name] = OpRule(kind, fn, frozenset(accepts.split()), check, **extra)
        return fn

    return deco


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------
def _meta(node_or_value):
    """The traced value (a tensor with shape/dtype/strides) of an FX node, or None."""
    return getattr(node_or_value, "meta", {}).get("val")


def _dtype_of(arg):
    val = _meta(arg)
    return getattr(val, "dtype", None)


def _device_ok(device) -> bool:
    return device is None or torch.device(device).type == "cpu"


def conversion_problem(src, dst) -> str | None:
    """Why converting a tensor of dtype ``src`` to ``dst`` cannot be interpreted exactly, or None."""
    if src is None or dst is None or src == dst:
        return None
    if src == torch.bool:
        return None  # 0/1
    if src in _INTEGRAL and (dst in _FLOATING or dst in _INTEGRAL):
        if dst in _INTEGRAL and torch.iinfo(dst).bits < torch.iinfo(src).bits:
            return f"narrows {src} to {dst} (wrap-around is not modelled)"
        return None
    if src in _FLOATING and dst in _FLOATING:
        return (f"converts {src} to {dst}: rounding between floating types is not modelled "
                "(trace with one floating dtype, e.g. float64 inputs)")
    return f"converts {src} to {dst}"


def _check_devices(node, a):
    for key in ("device",):
        if key in a and not _device_ok(a[key]):
            raise RefusedOp(f"runs on device {a[key]} (only cpu tensors are interpreted)")
    if a.get("layout") not in (None, torch.strided):
        raise RefusedOp(f"layout {a['layout']} (only strided tensors are interpreted)")
    if a.get("pin_memory"):
        raise RefusedOp("pin_memory=True")


def _check_out_dtype_from(arg_name):
    def check(node, a):
        _check_devices(node, a)
        src = _dtype_of(a.get(arg_name))
        dst = getattr(_meta(node), "dtype", None)
        problem = conversion_problem(src, dst)
        if problem:
            raise RefusedOp(problem)

    return check


def _norm_dim(d: int, ndim: int) -> int:
    n = max(ndim, 1)
    if not -n <= d < n:
        raise IndexError(f"dimension {d} out of range for a {ndim}-d tensor")
    return d % n


def _axes(dim, ndim: int):
    """Reduction axes of a torch ``dim`` argument (None / [] mean every axis)."""
    if dim is None:
        return None
    dims = [dim] if isinstance(dim, int) else list(dim)
    if not dims or ndim == 0:
        return None
    return tuple(sorted({_norm_dim(d, ndim) for d in dims}))


def _shape(v) -> tuple:
    return tuple(np.shape(v))


def _as_bool(v) -> np.ndarray:
    return np.asarray(v, dtype=bool)


# conversions of values between dtypes (the static check has refused the inexact ones)
def convert(xp, value, src, dst):
    if src == dst or src is None or dst is None:
        return value
    shape = _shape(value)
    if dst == torch.bool:
        if src == torch.bool:
            return value
        return _as_bool(xp.not_equal(value, 0))
    if src == torch.bool and dst in _INTEGRAL:
        return xp.asarray(np.asarray(value, dtype=np.int64))
    if src == torch.bool:
        return xp.where(_as_bool(value), xp.ones(shape), xp.zeros(shape))
    if src in _INTEGRAL and dst in _FLOATING:
        return xp.add(xp.zeros(shape), value)
    return value


# ---------------------------------------------------------------------------------------------
# Elementwise arithmetic (compute)
# ---------------------------------------------------------------------------------------------
def _scaled(xp, v, alpha):
    return v if alpha == 1 and not isinstance(alpha, bool) else xp.multiply(v, alpha)


@_register(["aten.add.Tensor", "aten.add.Scalar"], "compute", "self other alpha")
def _add(c, a):
    return c.xp.add(a["self"], _scaled(c.xp, a["other"], a["alpha"]))


@_register(["aten.sub.Tensor", "aten.sub.Scalar"], "compute", "self other alpha")
def _sub(c, a):
    return c.xp.subtract(a["self"], _scaled(c.xp, a["other"], a["alpha"]))


@_register(["aten.rsub.Tensor", "aten.rsub.Scalar"], "compute", "self other alpha")
def _rsub(c, a):
    return c.xp.subtract(a["other"], _scaled(c.xp, a["self"], a["alpha"]))


@_register(["aten.mul.Tensor", "aten.mul.Scalar"], "compute", "self other")
def _mul(c, a):
    return c.xp.multiply(a["self"], a["other"])


def _check_true_division(node, a):
    if a.get("rounding_mode") is not None:
        raise RefusedOp(f"rounding_mode={a['rounding_mode']!r} (only true division is interpreted)")


@_register(["aten.div.Tensor", "aten.div.Scalar", "aten.div.Tensor_mode", "aten.div.Scalar_mode"],
           "compute", "self other rounding_mode", check=_check_true_division)
def _div(c, a):
    return c.xp.divide(a["self"], a["other"])


@_register("aten.neg.default", "compute", "self")
def _neg(c, a):
    return c.xp.negative(a["self"])


@_register("aten.reciprocal.default", "compute", "self")
def _reciprocal(c, a):
    return c.xp.divide(1, a["self"])


@_register("aten.rsqrt.default", "compute", "self")
def _rsqrt(c, a):
    return c.xp.divide(1, c.xp.sqrt(a["self"]))


@_register("aten.sqrt.default", "compute", "self")
def _sqrt(c, a):
    return c.xp.sqrt(a["self"])


@_register("aten.exp.default", "compute", "self")
def _exp(c, a):
    return c.xp.exp(a["self"])


@_register("aten.log.default", "compute", "self")
def _log(c, a):
    return c.xp.log(a["self"])


@_register("aten.square.default", "compute", "self")
def _square(c, a):
    return c.xp.multiply(a["self"], a["self"])


@_register("aten.abs.default", "compute", "self")
def _abs(c, a):
    return c.xp.abs(a["self"])


@_register("aten.pow.Tensor_Scalar", "compute", "self exponent")
def _pow_tensor_scalar(c, a):
    return c.xp.power(a["self"], a["exponent"])


@_register("aten.pow.Tensor_Tensor", "compute", "self exponent")
def _pow_tensor_tensor(c, a):
    return c.xp.power(a["self"], a["exponent"])


@_register("aten.pow.Scalar", "compute", "self exponent")
def _pow_scalar(c, a):
    return c.xp.power(c.xp.add(c.xp.zeros(c.out_shape), a["self"]), a["exponent"])


@_register("aten.maximum.default", "compute", "self other")
def _maximum(c, a):
    return c.xp.maximum(a["self"], a["other"])


@_register("aten.minimum.default", "compute", "self other")
def _minimum(c, a):
    return c.xp.minimum(a["self"], a["other"])


@_register(["aten.clamp_min.default", "aten.clamp_min.Tensor"], "compute", "self min")
def _clamp_min(c, a):
    return c.xp.maximum(a["self"], a["min"])


@_register(["aten.clamp_max.default", "aten.clamp_max.Tensor"], "compute", "self max")
def _clamp_max(c, a):
    return c.xp.minimum(a["self"], a["max"])


@_register(["aten.clamp.default", "aten.clamp.Tensor"], "compute", "self min max")
def _clamp(c, a):
    v = a["self"]
    if a["min"] is not None:
        v = c.xp.maximum(v, a["min"])
    if a["max"] is not None:
        v = c.xp.minimum(v, a["max"])
    return v


def _check_bool_condition(node, a):
    if _dtype_of(a["condition"]) not in (None, torch.bool):
        raise RefusedOp(f"condition of dtype {_dtype_of(a['condition'])} (torch.bool expected)")


@_register(["aten.where.self", "aten.where.ScalarSelf", "aten.where.ScalarOther", "aten.where.Scalar"],
           "compute", "condition self other", check=_check_bool_condition)
def _where(c, a):
    return c.xp.where(_as_bool(a["condition"]), a["self"], a["other"])


_COMPARISONS = {"eq": "equal", "ne": "not_equal", "lt": "less", "le": "less_equal",
                "gt": "greater", "ge": "greater_equal"}


def _comparison(xp_name):
    def compare(c, a):
        return _as_bool(getattr(c.xp, xp_name)(a["self"], a["other"]))

    return compare


for _torch_name, _xp_name in _COMPARISONS.items():
    _register([f"aten.{_torch_name}.Tensor", f"aten.{_torch_name}.Scalar"], "compute",
              "self other")(_comparison(_xp_name))


def _truth(c, v, dtype):
    return _as_bool(v) if dtype == torch.bool else _as_bool(c.xp.not_equal(v, 0))


@_register("aten.logical_not.default", "compute", "self")
def _logical_not(c, a):
    return np.logical_not(_truth(c, a["self"], c.arg_dtype("self")))


for _name, _np_fn in (("logical_and", np.logical_and), ("logical_or", np.logical_or),
                      ("logical_xor", np.logical_xor)):
    def _logical(c, a, _np_fn=_np_fn):
        return _np_fn(_truth(c, a["self"], c.arg_dtype("self")),
                      _truth(c, a["other"], c.arg_dtype("other")))

    _register(f"aten.{_name}.default", "compute", "self other")(_logical)


def _check_bool_operands(node, a):
    for key in ("self", "other"):
        if key in a and _meta(a[key]) is not None and _dtype_of(a[key]) != torch.bool:
            raise RefusedOp(f"on a {_dtype_of(a[key])} tensor (bitwise ops are interpreted on "
                            "torch.bool only)")


@_register("aten.bitwise_not.default", "compute", "self", check=_check_bool_operands)
def _bitwise_not(c, a):
    return np.logical_not(_as_bool(a["self"]))


for _name, _np_fn in (("bitwise_and", np.logical_and), ("bitwise_or", np.logical_or),
                      ("bitwise_xor", np.logical_xor)):
    def _bitwise(c, a, _np_fn=_np_fn):
        return _np_fn(_as_bool(a["self"]), _as_bool(a["other"]))

    _register([f"aten.{_name}.Tensor", f"aten.{_name}.Scalar"], "compute", "self other",
              check=_check_bool_operands)(_bitwise)


# ---------------------------------------------------------------------------------------------
# Reductions (compute)
# ---------------------------------------------------------------------------------------------
def _numeric(c, v, name="self"):
    """Bool tensors count as 0/1 in sums."""
    if c.arg_dtype(name) == torch.bool:
        return convert(c.xp, v, torch.bool, torch.int64)
    return v


@_register(["aten.sum.dim_IntList", "aten.sum.default"], "compute", "self dim keepdim dtype",
           check=_check_out_dtype_from("self"))
def _sum(c, a):
    v = _numeric(c, a["self"])
    return c.xp.sum(v, axis=_axes(a.get("dim"), len(_shape(v))), keepdims=bool(a.get("keepdim")))


@_register(["aten.mean.dim", "aten.mean.default"], "compute", "self dim keepdim dtype",
           check=_check_out_dtype_from("self"))
def _mean(c, a):
    v = a["self"]
    return c.xp.mean(v, axis=_axes(a.get("dim"), len(_shape(v))), keepdims=bool(a.get("keepdim")))


def _check_correction(node, a):
    corr = a.get("correction")
    if corr is not None and not float(corr).is_integer():
        raise RefusedOp(f"correction={corr!r} (an integer correction is expected)")


def _variance_and_mean(c, a):
    """Population variance with Bessel-style ``correction`` (torch's default 1), and the mean."""
    v = a["self"]
    shape = _shape(v)
    axes = _axes(a.get("dim"), len(shape))
    count = int(np.prod([shape[i] for i in (axes if axes is not None else range(len(shape)))],
                        dtype=np.int64))
    corr = 1 if a.get("correction") is None else int(a["correction"])
    if count - corr <= 0:
        raise ValueError(f"variance of {count} entries with correction {corr}: division by "
                         f"{count - corr} (torch returns nan/inf)")
    xp = c.xp
    mean_kept = xp.mean(v, axis=axes, keepdims=True)
    centred = xp.subtract(v, mean_kept)
    squares = xp.sum(xp.multiply(centred, centred), axis=axes, keepdims=bool(a.get("keepdim")))
    var = xp.divide(squares, count - corr)
    mean = mean_kept if a.get("keepdim") else xp.mean(v, axis=axes, keepdims=False)
    return var, mean


@_register("aten.var.correction", "compute", "self dim correction keepdim", check=_check_correction)
def _var(c, a):
    return _variance_and_mean(c, a)[0]


@_register("aten.std.correction", "compute", "self dim correction keepdim", check=_check_correction)
def _std(c, a):
    return c.xp.sqrt(_variance_and_mean(c, a)[0])


@_register("aten.var_mean.correction", "compute", "self dim correction keepdim",
           check=_check_correction)
def _var_mean(c, a):
    return _variance_and_mean(c, a)


@_register("aten.max.default", "compute", "self")
def _max_all(c, a):
    return c.xp.max(a["self"])


@_register("aten.min.default", "compute", "self")
def _min_all(c, a):
    return c.xp.min(a["self"])


@_register("aten.amax.default", "compute", "self dim keepdim")
def _amax(c, a):
    v = a["self"]
    return c.xp.max(v, axis=_axes(a.get("dim"), len(_shape(v))), keepdims=bool(a.get("keepdim")))


@_register("aten.amin.default", "compute", "self dim keepdim")
def _amin(c, a):
    v = a["self"]
    return c.xp.min(v, axis=_axes(a.get("dim"), len(_shape(v))), keepdims=bool(a.get("keepdim")))


# ---------------------------------------------------------------------------------------------
# Products, joins, repeats (compute)
# ---------------------------------------------------------------------------------------------
@_register(["aten.mm.default", "aten.bmm.default", "aten.matmul.default", "aten.dot.default",
            "aten.mv.default"], "compute", "self mat2 other vec tensor")
def _matmul(c, a):
    other = next(a[k] for k in ("mat2", "other", "vec", "tensor") if a.get(k) is not None)
    return c.xp.matmul(a["self"], other)


@_register("aten.addmm.default", "compute", "self mat1 mat2 beta alpha")
def _addmm(c, a):
    xp = c.xp
    product = _scaled(xp, xp.matmul(a["mat1"], a["mat2"]), a["alpha"])
    if a["beta"] == 0:  # torch ignores self entirely (even nan) when beta is 0
        return xp.add(xp.zeros(c.out_shape), product)
    return xp.add(_scaled(xp, a["self"], a["beta"]), product)


@_register("aten.cat.default", "compute", "tensors dim")
def _cat(c, a):
    values = list(a["tensors"])
    # torch skips legacy empty 1-d tensors of shape (0,) when the others have more dimensions
    kept = [v for v in values if _shape(v) != (0,)] or values[:1]
    return c.xp.concatenate(kept, axis=_norm_dim(a["dim"], len(_shape(kept[0]))))


@_register("aten.stack.default", "compute", "tensors dim")
def _stack(c, a):
    values = list(a["tensors"])
    return c.xp.stack(values, axis=_norm_dim(a["dim"], len(_shape(values[0])) + 1))


@_register("aten.repeat.default", "compute", "self repeats")
def _repeat(c, a):
    """torch.Tensor.repeat tiles whole copies: out[r*s + j] = x[j] along every axis."""
    xp = c.xp
    reps = [int(r) for r in a["repeats"]]
    v = a["self"]
    shape = (1,) * (len(reps) - len(_shape(v))) + _shape(v)
    v = xp.reshape(v, shape)
    interleaved = []
    for s in shape:
        interleaved += [1, s]
    target = []
    for r, s in zip(reps, shape):
        target += [r, s]
    tiled = xp.broadcast_to(xp.reshape(v, tuple(interleaved)), tuple(target))
    return xp.reshape(tiled, tuple(r * s for r, s in zip(reps, shape)))


# ---------------------------------------------------------------------------------------------
# Copies (compute)
# ---------------------------------------------------------------------------------------------
@_register("aten.clone.default", "compute", "self memory_format")
def _clone(c, a):
    return a["self"]


@_register("aten.lift_fresh_copy.default", "compute", "self")
def _lift_fresh_copy(c, a):
    return a["self"]


@_register("aten._to_copy.default", "compute",
           "self dtype layout device pin_memory non_blocking memory_format",
           check=_check_out_dtype_from("self"))
def _to_copy(c, a):
    return convert(c.xp, a["self"], c.arg_dtype("self"), c.out_dtype)


@_register("aten.copy.default", "compute", "self src non_blocking",
           check=_check_out_dtype_from("src"))
def _copy(c, a):
    src = convert(c.xp, a["src"], c.arg_dtype("src"), c.out_dtype)
    return c.xp.broadcast_to(src, c.out_shape) if _shape(src) != c.out_shape else src


@_register(["aten.fill.Scalar", "aten.fill.Tensor"], "compute", "self value")
def _fill(c, a):
    return _filled(c, a["value"])


# ---------------------------------------------------------------------------------------------
# Factories
# ---------------------------------------------------------------------------------------------
_FACTORY_ARGS = "dtype layout device pin_memory memory_format requires_grad"


def _filled(c, value):
    """A tensor of the traced output shape and dtype, every entry ``value``."""
    xp, shape, dtype = c.xp, c.out_shape, c.out_dtype
    if not isinstance(value, (int, float, bool)):  # fill_.Tensor / fill.Tensor: a 0-d tensor
        return convert(xp, xp.broadcast_to(value, shape), c.arg_dtype("value"), dtype)
    if dtype == torch.bool:
        return np.full(shape, bool(value))
    if dtype in _INTEGRAL:
        return xp.full(shape, int(value))
    if isinstance(value, float):
        return xp.full(shape, value)
    if value == 0:
        return xp.zeros(shape)
    if value == 1:
        return xp.ones(shape)
    return xp.add(xp.zeros(shape), int(value))


def _check_factory(node, a):
    _check_devices(node, a)
    dtype = getattr(_meta(node), "dtype", None)
    if dtype is not None and dtype not in _FLOATING + _INTEGRAL + (torch.bool,):
        raise RefusedOp(f"makes a tensor of dtype {dtype}")


def _factory(names, accepts, value_of, uninitialized=False):
    def make(c, a):
        return _filled(c, value_of(a))

    _register(names, "factory", accepts + " " + _FACTORY_ARGS, check=_check_factory,
              reads_self=False)(make)
    if uninitialized:
        for name in ([names] if isinstance(names, str) else names):
            OPS[name] = OpRule("factory_uninitialized", make, OPS[name].accepts, _check_factory)


_factory(["aten.zeros.default", "aten._efficientzerotensor.default"], "size", lambda a: 0)
_factory("aten.ones.default", "size", lambda a: 1)
_factory("aten.full.default", "size fill_value", lambda a: a["fill_value"])
_factory("aten.scalar_tensor.default", "s", lambda a: a["s"])
_factory("aten.new_zeros.default", "self size", lambda a: 0)
_factory("aten.new_ones.default", "self size", lambda a: 1)
_factory("aten.new_full.default", "self size fill_value", lambda a: a["fill_value"])
_factory("aten.zeros_like.default", "self", lambda a: 0)
_factory("aten.ones_like.default", "self", lambda a: 1)
_factory("aten.full_like.default", "self fill_value", lambda a: a["fill_value"])
_factory("aten._new_zeros_with_same_feature_meta.default", "self other self_num_batch_dims",
         lambda a: 0)
_factory(["aten.empty.memory_format", "aten.empty_strided.default"], "size stride", lambda a: 0,
         uninitialized=True)
_factory(["aten.new_empty.default", "aten.new_empty_strided.default"], "self size stride",
         lambda a: 0, uninitialized=True)
_factory("aten.empty_like.default", "self", lambda a: 0, uninitialized=True)


def _check_arange(node, a):
    _check_factory(node, a)
    for key in ("start", "end", "step"):
        if key in a and a[key] is not None and not isinstance(a[key], int):
            raise RefusedOp(f"{key}={a[key]!r} (only integer ranges are interpreted)")


@_register(["aten.arange.default", "aten.arange.start", "aten.arange.start_step"], "factory",
           "start end step " + _FACTORY_ARGS, check=_check_arange, reads_self=False)
def _arange(c, a):
    start = a.get("start") or 0
    step = a.get("step") or 1
    values = np.arange(start, a["end"], step)
    return c.xp.asarray(values) if c.out_dtype not in _FLOATING else c.xp.add(
        c.xp.zeros(values.shape), c.xp.asarray(values))


# ---------------------------------------------------------------------------------------------
# Views: f(m, arr, a) with m = xp (values) or numpy (storage positions)
# ---------------------------------------------------------------------------------------------
def _view_shape(size, numel):
    size = [int(s) for s in size]
    if size.count(-1) == 1:
        known = int(np.prod([s for s in size if s != -1], dtype=np.int64))
        size[size.index(-1)] = numel // known if known else 0
    return tuple(size)


@_register(["aten.view.default", "aten._unsafe_view.default", "aten.reshape.default",
            "aten._reshape_alias.default"], "view", "self size shape stride")
def _view(m, arr, a):
    size = a["shape"] if a.get("size") is None else a["size"]  # reshape calls it shape
    return m.reshape(arr, _view_shape(size, int(np.prod(_shape(arr), dtype=np.int64))))


@_register(["aten.alias.default", "aten.detach.default", "aten.lift_fresh.default"], "view", "self")
def _alias(m, arr, a):
    return arr


@_register("aten.expand.default", "view", "self size implicit")
def _expand(m, arr, a):
    size = [int(s) for s in a["size"]]
    old = _shape(arr)
    lead = len(size) - len(old)
    target = tuple(old[i - lead] if s == -1 else s for i, s in enumerate(size))
    return m.broadcast_to(arr, target)


@_register("aten.permute.default", "view", "self dims")
def _permute(m, arr, a):
    ndim = len(_shape(arr))
    return m.transpose(arr, tuple(_norm_dim(d, ndim) for d in a["dims"]))


def _swap(m, arr, d0, d1):
    ndim = len(_shape(arr))
    if ndim < 2:
        return arr
    perm = list(range(ndim))
    d0, d1 = _norm_dim(d0, ndim), _norm_dim(d1, ndim)
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return m.transpose(arr, tuple(perm))


@_register("aten.t.default", "view", "self")
def _t(m, arr, a):
    return _swap(m, arr, 0, 1)


@_register("aten.transpose.int", "view", "self dim0 dim1")
def _transpose(m, arr, a):
    return _swap(m, arr, a["dim0"], a["dim1"])


@_register(["aten.squeeze.default", "aten.squeeze.dim", "aten.squeeze.dims"], "view", "self dim")
def _squeeze(m, arr, a):
    shape = _shape(arr)
    dims = a.get("dim")
    if dims is None:
        chosen = set(range(len(shape)))
    else:
        dims = [dims] if isinstance(dims, int) else list(dims)
        chosen = {_norm_dim(d, len(shape)) for d in dims}
    # torch squeezes only the chosen dimensions of size 1 (others are left alone)
    return m.reshape(arr, tuple(s for i, s in enumerate(shape) if not (i in chosen and s == 1)))


@_register("aten.unsqueeze.default", "view", "self dim")
def _unsqueeze(m, arr, a):
    shape = list(_shape(arr))
    shape.insert(_norm_dim(a["dim"], len(shape) + 1), 1)
    return m.reshape(arr, tuple(shape))


def _index_prefix(dim):
    return (slice(None),) * dim


@_register("aten.slice.Tensor", "view", "self dim start end step")
def _slice(m, arr, a):
    step = 1 if a.get("step") is None else int(a["step"])
    if step < 1:
        raise ValueError(f"slice step {step} (torch requires a positive step)")
    dim = _norm_dim(a.get("dim") or 0, len(_shape(arr)))
    # Python's slice clamping for a positive step is torch's
    return arr[_index_prefix(dim) + (slice(a.get("start"), a.get("end"), step),)]


def _select(m, arr, dim, index):
    shape = _shape(arr)
    dim = _norm_dim(dim, len(shape))
    if not -shape[dim] <= index < shape[dim]:
        raise IndexError(f"index {index} out of range for dimension {dim} of size {shape[dim]}")
    index %= shape[dim]
    # slice then reshape: a bare integer index would return a bare entry, outside the namespace
    piece = arr[_index_prefix(dim) + (slice(index, index + 1),)]
    return m.reshape(piece, shape[:dim] + shape[dim + 1:])


@_register("aten.select.int", "view", "self dim index")
def _select_int(m, arr, a):
    return _select(m, arr, a["dim"], int(a["index"]))


@_register("aten.unbind.int", "view", "self dim")
def _unbind(m, arr, a):
    dim = _norm_dim(a.get("dim") or 0, len(_shape(arr)))
    return [_select(m, arr, dim, i) for i in range(_shape(arr)[dim])]


def _split_pieces(m, arr, dim, sizes):
    dim = _norm_dim(dim, len(_shape(arr)))
    out, start = [], 0
    for s in sizes:
        out.append(arr[_index_prefix(dim) + (slice(start, start + s),)])
        start += s
    return out


@_register("aten.split.Tensor", "view", "self split_size dim")
def _split(m, arr, a):
    dim = _norm_dim(a.get("dim") or 0, len(_shape(arr)))
    n, size = _shape(arr)[dim], int(a["split_size"])
    sizes = [min(size, n - s) for s in range(0, n, size)] if size > 0 else [n]
    return _split_pieces(m, arr, dim, sizes or [0])


@_register("aten.split_with_sizes.default", "view", "self split_sizes dim")
def _split_with_sizes(m, arr, a):
    return _split_pieces(m, arr, a.get("dim") or 0, [int(s) for s in a["split_sizes"]])


@_register("aten.diagonal.default", "view", "self offset dim1 dim2")
def _diagonal(m, arr, a):
    """torch.diagonal: the diagonal becomes the last axis (NumPy's convention too)."""
    shape = _shape(arr)
    ndim = len(shape)
    d1, d2 = _norm_dim(a.get("dim1", 0), ndim), _norm_dim(a.get("dim2", 1), ndim)
    offset = int(a.get("offset") or 0)
    rest = [i for i in range(ndim) if i not in (d1, d2)]
    moved = m.transpose(arr, tuple(rest + [d1, d2]))
    rows0, cols0 = max(-offset, 0), max(offset, 0)
    n = max(0, min(shape[d1] - rows0, shape[d2] - cols0))
    rows, cols = np.arange(n) + rows0, np.arange(n) + cols0
    return moved[(Ellipsis, rows, cols)]


# as_strided is interpreted by the interpreter from storage positions (see its docstring)
OPS["aten.as_strided.default"] = OpRule("as_strided", None,
                                        frozenset({"self", "size", "stride", "storage_offset"}))


# ---------------------------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------------------------
@_register("aten.is_same_size.default", "query", "self other")
def _is_same_size(a):
    return tuple(a["self"].shape) == tuple(a["other"].shape)


# ---------------------------------------------------------------------------------------------
# Derived entries: in-place writes, in-place view changes, functional *_copy views
# ---------------------------------------------------------------------------------------------
@_register("aten.copy_.default", "write", "self src non_blocking",
           check=_check_out_dtype_from("src"), reads_self=False)
def _copy_(c, a):
    return convert(c.xp, a["src"], c.arg_dtype("src"), c.out_dtype)


@_register(["aten.fill_.Scalar", "aten.fill_.Tensor"], "write", "self value", reads_self=False)
def _fill_(c, a):
    return _filled(c, a["value"])


@_register("aten.zero_.default", "write", "self", reads_self=False)
def _zero_(c, a):
    return _filled(c, 0)


_INPLACE = {  # in-place overload -> its functional overload
    "aten.add_.Tensor": "aten.add.Tensor", "aten.add_.Scalar": "aten.add.Scalar",
    "aten.sub_.Tensor": "aten.sub.Tensor", "aten.sub_.Scalar": "aten.sub.Scalar",
    "aten.mul_.Tensor": "aten.mul.Tensor", "aten.mul_.Scalar": "aten.mul.Scalar",
    "aten.div_.Tensor": "aten.div.Tensor", "aten.div_.Scalar": "aten.div.Scalar",
    "aten.div_.Tensor_mode": "aten.div.Tensor_mode", "aten.div_.Scalar_mode": "aten.div.Scalar_mode",
    "aten.pow_.Scalar": "aten.pow.Tensor_Scalar", "aten.pow_.Tensor": "aten.pow.Tensor_Tensor",
    "aten.neg_.default": "aten.neg.default", "aten.reciprocal_.default": "aten.reciprocal.default",
    "aten.rsqrt_.default": "aten.rsqrt.default", "aten.sqrt_.default": "aten.sqrt.default",
    "aten.exp_.default": "aten.exp.default", "aten.log_.default": "aten.log.default",
    "aten.abs_.default": "aten.abs.default", "aten.square_.default": "aten.square.default",
    "aten.clamp_min_.default": "aten.clamp_min.default",
    "aten.clamp_max_.default": "aten.clamp_max.default", "aten.clamp_.default": "aten.clamp.default",
}
for _inplace, _functional in _INPLACE.items():
    _rule = OPS[_functional]
    OPS[_inplace] = OpRule("write", _rule.fn, _rule.accepts, _rule.check, reads_self=True,
                           functional=_functional)

_INPLACE_VIEWS = {
    "aten.unsqueeze_.default": "aten.unsqueeze.default", "aten.squeeze_.default": "aten.squeeze.default",
    "aten.squeeze_.dim": "aten.squeeze.dim", "aten.squeeze_.dims": "aten.squeeze.dims",
    "aten.t_.default": "aten.t.default", "aten.transpose_.default": "aten.transpose.int",
    "aten.as_strided_.default": "aten.as_strided.default",
}
for _inplace, _functional in _INPLACE_VIEWS.items():
    _rule = OPS[_functional]
    OPS[_inplace] = OpRule("view_", _rule.fn, _rule.accepts, _rule.check, functional=_functional)

_VIEW_COPIES = {
    "aten.view_copy.default": "aten.view.default", "aten.alias_copy.default": "aten.alias.default",
    "aten.detach_copy.default": "aten.detach.default", "aten.expand_copy.default": "aten.expand.default",
    "aten.permute_copy.default": "aten.permute.default", "aten.t_copy.default": "aten.t.default",
    "aten.transpose_copy.int": "aten.transpose.int", "aten.squeeze_copy.default": "aten.squeeze.default",
    "aten.squeeze_copy.dim": "aten.squeeze.dim", "aten.squeeze_copy.dims": "aten.squeeze.dims",
    "aten.unsqueeze_copy.default": "aten.unsqueeze.default", "aten.slice_copy.Tensor": "aten.slice.Tensor",
    "aten.select_copy.int": "aten.select.int", "aten.unbind_copy.int": "aten.unbind.int",
    "aten.split_copy.Tensor": "aten.split.Tensor",
    "aten.split_with_sizes_copy.default": "aten.split_with_sizes.default",
    "aten.diagonal_copy.default": "aten.diagonal.default",
}
for _copy_name, _view_name in _VIEW_COPIES.items():
    _rule = OPS[_view_name]
    OPS[_copy_name] = OpRule("view_copy", _rule.fn, _rule.accepts, _rule.check, functional=_view_name)

GETITEM = operator.getitem
