"""JAX functions as programs the exact engine can run (optional: needs ``jax``).

:func:`trace` records what a JAX function computes with ``jax.make_jaxpr`` at the example
arguments' shapes and dtypes (float64 switched on for the duration of the trace only), and
:meth:`JaxTrace.run` interprets the recorded jaxpr on any NumPy-like array namespace ``xp`` --
``numpy`` for floats, :data:`symbolic_bn.xp.symbolic` for exact values -- through an explicit table
from jaxpr primitive to an implementation written with ``xp`` functions.  What is traced is what
JAX runs: ``jnp`` code, ``jax.vjp``/``jax.jvp``/``jax.grad`` nestings (JAX's own derivative rules,
written out as primitives), and ``jax.custom_jvp``/``jax.custom_vjp`` functions (their *user* rules
appear in derivative traces; in a forward trace their primal body is run).

Semantics of the interpretation
-------------------------------
* Real-number semantics: every floating-point primitive is the exact operation on the values ``xp``
  holds (``div`` is ``xp.divide``, ``rsqrt`` is ``1 / xp.sqrt``); casts between floating dtypes are
  the identity (listed in :attr:`JaxTrace.notes`), casts from float to integer or bool are refused.
* Float constants: a float literal of the jaxpr (``div x 8.0``, ``add v 1e-05``) is passed to ``xp``
  as the Python float it is; the namespace decides what number it stands for.  Each one is listed,
  with the equation that held it and the user's source line, in :attr:`JaxTrace.float_constants`
  (closure arrays captured by the function too).  NaN/inf literals (``jnp.var`` guards its divisor
  with ``where(n > 0, s / n, nan)``) never reach ``xp``: they are carried as a marker and are an
  error only if a result depends on them.
* Integer and boolean values that do not depend on the arguments (``iota``, the identity matrix of
  ``jax.hessian``, ``ddof`` in ``jnp.var``) are computed with NumPy; comparisons of argument-
  dependent floats are asked of ``xp`` (the exact namespace decides them or refuses), and
  ``select_n`` with a decided predicate takes the chosen branch.
* Exponents of ``pow`` must not depend on the arguments (checked by data flow when tracing).
* ``reduce_max``/``reduce_min`` are folds of ``xp.maximum``/``xp.minimum``; ``dot_general`` is
  ``xp.multiply`` then ``xp.sum`` over the contracting axes (one sum per output entry).

Primitives outside the table are refused when tracing, with their name, equation number and
source line (:class:`UnsupportedJaxPrimitive`).  Facts about jaxprs used here are from JAX 0.10.2's
sources (``jax/_src/core.py``: ``Jaxpr``/``ClosedJaxpr``/``Literal``/``DropVar``; ``jax/_src/lax``:
primitive parameters; ``jax/_src/config.py``: ``jax.enable_x64`` as a thread-local context manager).
"""
from __future__ import annotations

import math
import numbers
import os
import traceback
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..exact.floats import location_override

__all__ = [
    "JaxFrontendError",
    "JaxNotInstalled",
    "JaxTraceError",
    "UnsupportedJaxPrimitive",
    "NonFiniteConstantError",
    "FloatConstant",
    "JaxTrace",
    "trace",
    "SUPPORTED_PRIMITIVES",
]

INSTALL_HINT = "pip install jax (or the extra: pip install 'symbolic-bn[jax]')"


# ---- errors ------------------------------------------------------------------------------------
class JaxFrontendError(ValueError):
    """Base of the errors of this frontend (one line each)."""


class JaxNotInstalled(ImportError):
    """JAX is not importable."""


class JaxTraceError(JaxFrontendError):
    """The function does not trace (data-dependent Python control flow, an error in the code, ...)."""


class UnsupportedJaxPrimitive(JaxFrontendError):
    """A primitive (or a parameter of one) that has no exact implementation in the table."""


class NonFiniteConstantError(JaxFrontendError):
    """A result depends on a NaN/inf literal of the trace."""


def _import_jax():
    try:
        import jax
        import jax.extend.core  # noqa: F401 - Jaxpr/Literal/DropVar types
    except ImportError as exc:
        raise JaxNotInstalled(f"symbolic_bn.frontends.jax needs JAX: {INSTALL_HINT}") from exc
    return jax


def _x64(jax):
    """A context manager that enables float64 in this thread only and restores the setting."""
    state = getattr(jax, "enable_x64", None)
    if state is not None and hasattr(state, "value"):  # jax >= 0.4.3x: a config State
        return state(True)
    from jax.experimental import enable_x64  # older versions

    return enable_x64()


# ---- records -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class FloatConstant:
    """A float the trace holds: ``kind`` is 'literal' (an equation operand) or 'closure' (an array
    the function captured).  ``equation`` is 'eqn 12' or, inside a called sub-jaxpr, 'eqn 3.12'."""

    value: Any
    equation: str
    primitive: str
    source: str
    kind: str = "literal"

    def __str__(self):
        val = repr(self.value) if self.kind == "literal" else f"array{np.shape(self.value)}"
        return f"{val} in {self.equation} ({self.primitive}) at {self.source}"


def _eqn_label(path: Sequence[int]) -> str:
    return "eqn " + ".".join(str(i) for i in path)


def _source(eqn, fallback: str = "<unknown source>") -> str:
    """The user's line of an equation ('file:line:col (function)'); equations inside JAX's own
    helpers (``jnp.var``'s sub-jaxpr) have none and get the calling equation's line."""
    try:
        from jax.extend.source_info_util import summarize

        text = summarize(eqn.source_info)
    except Exception:  # pragma: no cover - source info is best effort
        text = ""
    return text or fallback


class _NonFinite:
    """A NaN/inf constant (or anything computed from one): never handed to ``xp``."""

    __slots__ = ("shape", "origin", "value")

    def __init__(self, shape, origin: str, value: float | None = None):
        self.shape = tuple(shape)
        self.origin = origin
        self.value = value  # the float itself for a scalar literal, None once computed with


def _infinity_identity(name, invals):
    """max(v, -inf) = v and min(v, +inf) = v (``jax.nn.softmax``'s ``initial=-inf``): the other
    operand, if that is what the equation is, else None."""
    if name not in ("max", "min") or len(invals) != 2:
        return None
    identity = -math.inf if name == "max" else math.inf
    a, b = invals
    for marker, other in ((a, b), (b, a)):
        if (isinstance(marker, _NonFinite) and marker.value == identity and marker.shape == ()
                and not isinstance(other, _NonFinite)):
            return other
    return None


# ---- value helpers -----------------------------------------------------------------------------
def _is_concrete(v) -> bool:
    """Plain NumPy data or a Python scalar (not an object array of an exact namespace)."""
    if isinstance(v, (bool, int, float, np.generic)):
        return True
    return type(v) is np.ndarray and v.dtype != object


def _concrete_bools(v):
    """``v`` as a NumPy bool array if every entry is a decided boolean (Python/NumPy bools,
    ``sympy.true``/``sympy.false``), else None.  Anything else -- an undecided condition, an
    unknown object -- is not guessed at (``bool()`` of an arbitrary object is True)."""
    from sympy.logic.boolalg import BooleanFalse, BooleanTrue

    if isinstance(v, (bool, np.bool_)):
        return np.asarray(v, dtype=bool)
    if not isinstance(v, np.ndarray):
        return None
    arr = v.view(np.ndarray)
    if arr.dtype == bool:
        return arr
    if arr.dtype != object:
        return None
    out = []
    for e in arr.flat:
        if not isinstance(e, (bool, np.bool_, BooleanTrue, BooleanFalse)):
            return None
        out.append(bool(e))
    return np.array(out, dtype=bool).reshape(arr.shape)


def _kind(aval) -> str:
    dt = np.dtype(aval.dtype)
    if dt == np.bool_:
        return "b"
    return dt.kind  # 'f', 'i', 'u', 'c'


def _ints(seq) -> tuple[int, ...]:
    return tuple(int(i) for i in seq)


# ---- primitive implementations -----------------------------------------------------------------
# Each rule is ``rule(ctx, eqn, invals) -> value`` (or a list for multiple-result primitives).
# ``ctx.xp`` is the user's namespace; ``ctx.ns_int``/``ctx.ns_struct`` choose NumPy for work on
# concrete data that NumPy does exactly (integer arithmetic, rearranging entries), else xp.


class _Ctx:
    def __init__(self, xp):
        self.xp = xp
        self.path: tuple[int, ...] = ()  # where the interpreter is (for messages and sub-calls)
        self.index = 0
        self.source = "<unknown source>"

    def ns_int(self, eqn, invals):
        """NumPy for integer/bool results of concrete operands (exact), else xp."""
        if _kind(eqn.outvars[0].aval) in "biu" and all(_is_concrete(v) for v in invals):
            return np
        return self.xp

    def ns_struct(self, invals):
        """NumPy for rearranging concrete data (exact whatever the dtype), else xp."""
        return np if all(_is_concrete(v) for v in invals) else self.xp


def _binary(xp_name: str, np_fn: Callable):
    def rule(ctx, eqn, invals):
        a, b = invals
        ns = ctx.ns_int(eqn, invals)
        if ns is np:
            return np.asarray(np_fn(a, b))
        if not (hasattr(a, "shape") or hasattr(b, "shape")):
            a = ctx.xp.asarray(a)  # two Python scalars: let the namespace own the result
        return getattr(ctx.xp, xp_name)(a, b)

    return rule


def _int_div(a, b):
    # lax.div on integers rounds toward zero (C semantics), unlike NumPy's floor division.
    a, b = np.asarray(a), np.asarray(b)
    q = np.floor_divide(a, b)
    return q + ((np.remainder(a, b) != 0) & ((a < 0) != (b < 0)))


def _rule_div(ctx, eqn, invals):
    if _kind(eqn.outvars[0].aval) in "iu":
        if not all(_is_concrete(v) for v in invals):
            raise UnsupportedJaxPrimitive("div of argument-dependent integers is not supported")
        return np.asarray(_int_div(*invals))
    return _binary("divide", np.divide)(ctx, eqn, invals)


def _unary(fn: Callable):
    def rule(ctx, eqn, invals):
        (a,) = invals
        return fn(ctx.xp, a)

    return rule


def _rule_neg(ctx, eqn, invals):
    (a,) = invals
    if ctx.ns_int(eqn, invals) is np:
        return np.negative(a)
    return ctx.xp.negative(a)


def _rule_integer_pow(ctx, eqn, invals):
    (a,) = invals
    y = int(eqn.params["y"])
    if ctx.ns_int(eqn, invals) is np:
        return np.asarray(np.power(a, y))
    return ctx.xp.power(a, y)


def _rule_pow(ctx, eqn, invals):
    a, y = invals  # the exponent's independence from the arguments is checked when tracing
    return ctx.xp.power(a, y)


def _rule_square(ctx, eqn, invals):
    (a,) = invals
    return ctx.xp.multiply(a, a)


def _rule_rsqrt(ctx, eqn, invals):
    (a,) = invals
    return ctx.xp.divide(1, ctx.xp.sqrt(a))


def _rule_reduce_sum(ctx, eqn, invals):
    (a,) = invals
    axes = _ints(eqn.params["axes"])
    if not axes:
        return a
    if ctx.ns_int(eqn, invals) is np:
        return np.sum(a, axis=axes)
    return ctx.xp.sum(a, axis=axes)


def _fold(ctx, eqn, invals, xp_name, np_fn):
    """Reduce ``axes`` by folding the binary ``xp_name`` over the reduced entries."""
    (a,) = invals
    axes = _ints(eqn.params["axes"])
    if not axes:
        return a
    if ctx.ns_int(eqn, invals) is np or (_is_concrete(a) and ctx.xp is np):
        return np_fn(a, axis=axes)
    xp = ctx.xp
    shape = tuple(eqn.invars[0].aval.shape)
    kept = [d for d in range(len(shape)) if d not in axes]
    n = math.prod(shape[d] for d in axes)
    rest = tuple(shape[d] for d in kept)
    flat = xp.reshape(xp.transpose(xp.asarray(a), tuple(axes) + tuple(kept)), (n,) + rest)
    op = getattr(xp, xp_name)
    acc = xp.reshape(flat[0:1], rest)
    for i in range(1, n):
        acc = op(acc, xp.reshape(flat[i:i + 1], rest))
    return acc


def _rule_reduce_max(ctx, eqn, invals):
    return _fold(ctx, eqn, invals, "maximum", np.max)


def _rule_reduce_min(ctx, eqn, invals):
    return _fold(ctx, eqn, invals, "minimum", np.min)


def _rule_broadcast_in_dim(ctx, eqn, invals):
    a = invals[0]
    shape = _ints(eqn.params["shape"])
    dims = _ints(eqn.params["broadcast_dimensions"])
    in_shape = tuple(eqn.invars[0].aval.shape)
    ns = ctx.ns_struct(invals)
    # Put the operand's axes at their output positions (size 1 elsewhere), then broadcast.
    inter = [1] * len(shape)
    for src, dst in enumerate(dims):
        inter[dst] = in_shape[src]
    arr = ns.asarray(a)
    return ns.broadcast_to(ns.reshape(arr, tuple(inter)), shape)


def _rule_reshape(ctx, eqn, invals):
    (a,) = invals
    ns = ctx.ns_struct(invals)
    return ns.reshape(ns.asarray(a), _ints(eqn.params["new_sizes"]))


def _rule_transpose(ctx, eqn, invals):
    (a,) = invals
    ns = ctx.ns_struct(invals)
    return ns.transpose(ns.asarray(a), _ints(eqn.params["permutation"]))


def _rule_squeeze(ctx, eqn, invals):
    (a,) = invals
    ns = ctx.ns_struct(invals)
    return ns.reshape(ns.asarray(a), tuple(eqn.outvars[0].aval.shape))


def _rule_concatenate(ctx, eqn, invals):
    ns = ctx.ns_struct(invals)
    return ns.concatenate([ns.asarray(v) for v in invals], axis=int(eqn.params["dimension"]))


def _slice_along(ns, a, axis: int, start: int, stop: int, ndim: int):
    index = (slice(None),) * axis + (slice(start, stop),) + (slice(None),) * (ndim - axis - 1)
    return ns.asarray(a)[index]


def _rule_split(ctx, eqn, invals):
    (a,) = invals
    ns = ctx.ns_struct(invals)
    axis = int(eqn.params["axis"])
    ndim = len(eqn.invars[0].aval.shape)
    out, start = [], 0
    for size in _ints(eqn.params["sizes"]):
        out.append(_slice_along(ns, a, axis, start, start + size, ndim))
        start += size
    return out


def _rule_slice(ctx, eqn, invals):
    (a,) = invals
    ns = ctx.ns_struct(invals)
    starts = _ints(eqn.params["start_indices"])
    stops = _ints(eqn.params["limit_indices"])
    strides = eqn.params.get("strides")
    strides = _ints(strides) if strides is not None else (1,) * len(starts)
    index = tuple(slice(s, e, k) for s, e, k in zip(starts, stops, strides))
    return ns.asarray(a)[index]


def _rule_stack(ctx, eqn, invals):
    ns = ctx.ns_struct(invals)
    axis = int(eqn.params["axis"])
    shape = list(eqn.invars[0].aval.shape)
    one = tuple(shape[:axis] + [1] + shape[axis:])
    return ns.concatenate([ns.reshape(ns.asarray(v), one) for v in invals], axis=axis)


def _rule_unstack(ctx, eqn, invals):
    (a,) = invals
    ns = ctx.ns_struct(invals)
    axis = int(eqn.params["axis"])
    ndim = len(eqn.invars[0].aval.shape)
    out_shape = tuple(eqn.outvars[0].aval.shape)
    return [ns.reshape(_slice_along(ns, a, axis, i, i + 1, ndim), out_shape)
            for i in range(eqn.invars[0].aval.shape[axis])]


def _rule_tile(ctx, eqn, invals):
    (a,) = invals
    ns = ctx.ns_struct(invals)
    arr = ns.asarray(a)
    for axis, k in enumerate(_ints(eqn.params["reps"])):
        if k != 1:
            arr = ns.concatenate([arr] * k, axis=axis)
    return arr


def _rule_rev(ctx, eqn, invals):
    (a,) = invals
    ns = ctx.ns_struct(invals)
    dims = set(_ints(eqn.params["dimensions"]))
    ndim = len(eqn.invars[0].aval.shape)
    index = tuple(slice(None, None, -1) if d in dims else slice(None) for d in range(ndim))
    return ns.asarray(a)[index]


def _rule_pad(ctx, eqn, invals):
    a, fill = invals
    config = [tuple(int(c) for c in cfg) for cfg in eqn.params["padding_config"]]
    ns = ctx.ns_struct(invals)
    arr = ns.asarray(a)
    shape = list(eqn.invars[0].aval.shape)
    # Edge padding only (interior = 0 and lo, hi >= 0 are checked when tracing): one
    # concatenation per padded axis, with blocks of the padding value.
    for axis, (lo, hi, _interior) in enumerate(config):
        parts = []
        if lo:
            parts.append(ns.full(tuple(shape[:axis] + [lo] + shape[axis + 1:]), fill))
        parts.append(arr)
        if hi:
            parts.append(ns.full(tuple(shape[:axis] + [hi] + shape[axis + 1:]), fill))
        if len(parts) > 1:
            arr = ns.concatenate(parts, axis=axis)
        shape[axis] += lo + hi
    return arr


def _rule_iota(ctx, eqn, invals):
    shape = _ints(eqn.params["shape"])
    dim = int(eqn.params["dimension"])
    line = np.arange(shape[dim], dtype=np.dtype(eqn.params["dtype"]))
    view = [1] * len(shape)
    view[dim] = shape[dim]
    return np.broadcast_to(line.reshape(view), shape).copy()


def _rule_convert_element_type(ctx, eqn, invals):
    (a,) = invals
    src, dst = _kind(eqn.invars[0].aval), _kind(eqn.outvars[0].aval)
    new_dtype = np.dtype(eqn.params["new_dtype"])
    if src == "f" and dst == "f":
        return a  # real-number semantics: a float cast is the identity (listed in notes)
    # Integer/bool -> anything (float->int/bool is refused when tracing).
    if _is_concrete(a):
        arr = np.asarray(a)
        if dst == "f" and arr.size and np.max(np.abs(arr.astype(object))) > 2 ** 53:
            raise UnsupportedJaxPrimitive("convert_element_type: integer too large for an exact float")
        return arr.astype(new_dtype)
    bools = _concrete_bools(a)
    if bools is not None:
        return bools.astype(new_dtype)
    if dst == "f" and src == "b":
        return ctx.xp.where(a, 1, 0)
    raise UnsupportedJaxPrimitive(
        f"convert_element_type {np.dtype(eqn.invars[0].aval.dtype)} -> {new_dtype} of "
        "argument-dependent values is not supported")


def _rule_select_n(ctx, eqn, invals):
    pred, *cases = invals
    if isinstance(pred, _NonFinite):
        return pred
    boolean = _kind(eqn.invars[0].aval) == "b"
    if boolean:
        decided = _concrete_bools(pred)
    else:
        decided = np.asarray(pred) if _is_concrete(pred) else None
    if decided is not None:
        chosen = np.unique(decided.astype(np.int64))
        if chosen.size == 1:
            return cases[int(chosen[0])]  # one branch everywhere: the others are never computed
    elif not boolean:
        raise UnsupportedJaxPrimitive("select_n with an argument-dependent integer predicate")
    for c in cases:
        if isinstance(c, _NonFinite):
            raise NonFiniteConstantError(
                f"select_n: a branch is the non-finite constant from {c.origin} and the "
                "predicate does not rule it out everywhere")
    xp = ctx.xp
    if decided is None:
        return xp.where(pred, cases[1], cases[0])  # the namespace decides or refuses
    out = cases[0]
    for i in range(1, len(cases)):
        out = xp.where(decided == i, cases[i], out)
    return out


def _rule_dot_general(ctx, eqn, invals):
    lhs, rhs = invals
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    lc, rc, lb, rb = _ints(lc), _ints(rc), _ints(lb), _ints(rb)
    ls, rs = tuple(eqn.invars[0].aval.shape), tuple(eqn.invars[1].aval.shape)
    lf = [d for d in range(len(ls)) if d not in lc + lb]
    rf = [d for d in range(len(rs)) if d not in rc + rb]
    xp = ctx.xp
    batch = tuple(ls[d] for d in lb)
    m = tuple(ls[d] for d in lf)
    n = tuple(rs[d] for d in rf)
    k = tuple(ls[d] for d in lc)
    # lhs -> (batch, M, 1, K), rhs -> (batch, 1, N, K); multiply and sum K: the output order
    # (batch, lhs free, rhs free) is lax.dot_general's.
    left = xp.reshape(xp.transpose(xp.asarray(lhs), lb + tuple(lf) + lc),
                      batch + (math.prod(m), 1, math.prod(k)))
    right = xp.reshape(xp.transpose(xp.asarray(rhs), rb + tuple(rf) + rc),
                       batch + (1, math.prod(n), math.prod(k)))
    prod = xp.multiply(left, right)
    out = xp.sum(prod, axis=len(batch) + 2)
    return xp.reshape(out, batch + m + n)


def _rule_identity(ctx, eqn, invals):
    return invals[0] if not eqn.primitive.multiple_results else list(invals)


def _cmp(xp_name, np_fn):
    def rule(ctx, eqn, invals):
        if all(_is_concrete(v) for v in invals):
            return np.asarray(np_fn(*invals))
        a, b = invals
        return getattr(ctx.xp, xp_name)(a, b)

    return rule


def _logical(np_fn):
    def rule(ctx, eqn, invals):
        vals = [v if _is_concrete(v) else _concrete_bools(v) for v in invals]
        if any(v is None for v in vals):
            raise UnsupportedJaxPrimitive(
                f"{eqn.primitive.name} of undecided argument-dependent booleans is not supported")
        return np.asarray(np_fn(*vals))

    return rule


def _rule_call(ctx, eqn, invals):
    jaxpr, consts = _sub_jaxpr(eqn)
    path = ctx.path + (ctx.index,)
    return _eval_jaxpr(ctx, jaxpr, consts, invals, path)


CALL_PRIMITIVES = frozenset({
    "jit", "pjit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call",
    "custom_vjp_call_jaxpr", "remat2", "checkpoint",
})

_RULES: dict[str, Callable] = {
    "add": _binary("add", np.add),
    "add_any": _binary("add", np.add),
    "sub": _binary("subtract", np.subtract),
    "mul": _binary("multiply", np.multiply),
    "div": _rule_div,
    "max": _binary("maximum", np.maximum),
    "min": _binary("minimum", np.minimum),
    "neg": _rule_neg,
    "integer_pow": _rule_integer_pow,
    "pow": _rule_pow,
    "square": _rule_square,
    "sqrt": _unary(lambda xp, a: xp.sqrt(a)),
    "rsqrt": _rule_rsqrt,
    "exp": _unary(lambda xp, a: xp.exp(a)),
    "log": _unary(lambda xp, a: xp.log(a)),
    "abs": _unary(lambda xp, a: xp.abs(a)),
    "reduce_sum": _rule_reduce_sum,
    "reduce_max": _rule_reduce_max,
    "reduce_min": _rule_reduce_min,
    "broadcast_in_dim": _rule_broadcast_in_dim,
    "reshape": _rule_reshape,
    "transpose": _rule_transpose,
    "squeeze": _rule_squeeze,
    "concatenate": _rule_concatenate,
    "split": _rule_split,
    "slice": _rule_slice,
    "pad": _rule_pad,
    "stack": _rule_stack,
    "unstack": _rule_unstack,
    "tile": _rule_tile,
    "rev": _rule_rev,
    "iota": _rule_iota,
    "convert_element_type": _rule_convert_element_type,
    "select_n": _rule_select_n,
    "dot_general": _rule_dot_general,
    "eq": _cmp("equal", np.equal),
    "ne": _cmp("not_equal", np.not_equal),
    "lt": _cmp("less", np.less),
    "le": _cmp("less_equal", np.less_equal),
    "gt": _cmp("greater", np.greater),
    "ge": _cmp("greater_equal", np.greater_equal),
    "and": _logical(np.logical_and),
    "or": _logical(np.logical_or),
    "not": _logical(np.logical_not),
    "stop_gradient": _rule_identity,
    "copy": _rule_identity,
    "optimization_barrier": _rule_identity,
    **{name: _rule_call for name in CALL_PRIMITIVES},
}

#: Names of the jaxpr primitives :meth:`JaxTrace.run` implements.
SUPPORTED_PRIMITIVES = frozenset(_RULES)


def _sub_jaxpr(eqn):
    """The (jaxpr, consts) a call primitive runs (ClosedJaxpr or open Jaxpr parameter)."""
    for key in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        sub = eqn.params.get(key)
        if sub is None:
            continue
        if hasattr(sub, "consts") and hasattr(sub, "jaxpr"):
            return sub.jaxpr, list(sub.consts)
        return sub, []
    raise UnsupportedJaxPrimitive(f"{eqn.primitive.name}: no sub-jaxpr found in its parameters")


# ---- interpretation ----------------------------------------------------------------------------
def _literal_value(lit, origin: str):
    val = lit.val
    kind = _kind(lit.aval)
    if kind == "f":
        arr = np.asarray(val, dtype=np.dtype(lit.aval.dtype))
        if not np.all(np.isfinite(arr)):
            scalar = float(arr) if arr.ndim == 0 else None
            return _NonFinite(arr.shape, f"{origin} (literal {scalar if arr.ndim == 0 else 'array'})",
                              scalar)
        return float(arr) if arr.ndim == 0 else np.array(arr)
    if kind == "b":
        return np.asarray(val, dtype=bool)
    return np.asarray(val, dtype=np.dtype(lit.aval.dtype))


def _const_value(c):
    arr = np.array(c)  # a jax Array or a NumPy array captured by the function
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        return _NonFinite(arr.shape, "a captured constant")
    return arr


def _eval_jaxpr(ctx, jaxpr, consts, args, path):
    from jax.extend.core import DropVar, Literal

    env: dict = {}
    for var, c in zip(jaxpr.constvars, consts):
        env[var] = _const_value(c)
    for var, a in zip(jaxpr.invars, args):
        env[var] = a

    def read(v, index):
        if isinstance(v, Literal):
            return _literal_value(v, _eqn_label(path + (index,)))
        return env[v]

    saved = (ctx.path, ctx.index, ctx.source)
    outer_source = ctx.source
    for index, eqn in enumerate(jaxpr.eqns):
        ctx.path, ctx.index = path, index
        ctx.source = _source(eqn, outer_source)
        name = eqn.primitive.name
        invals = [read(v, index) for v in eqn.invars]
        other = _infinity_identity(name, invals)
        if other is not None and tuple(np.shape(other)) == tuple(eqn.outvars[0].aval.shape):
            out = other
        elif name in CALL_PRIMITIVES or name == "select_n" or not any(
                isinstance(v, _NonFinite) for v in invals):
            try:
                # float literals the rule hands to xp are logged as the equation's (exact/floats.py)
                with location_override(f"{_eqn_label(path + (index,))} ({name}) of the jaxpr, "
                                       f"traced at {ctx.source}"):
                    out = _RULES[name](ctx, eqn, invals)
            except Exception as exc:
                if getattr(exc, "_jaxpr_location", None):  # located by a sub-jaxpr already
                    raise
                where = f"{_eqn_label(path + (index,))} ({name}), traced at {ctx.source}"
                if isinstance(exc, JaxFrontendError):
                    located = type(exc)(f"{exc} [{where}]")
                    located._jaxpr_location = where
                    raise located from None
                exc._jaxpr_location = where
                if hasattr(exc, "add_note"):  # Python >= 3.11: the type stays the namespace's
                    exc.add_note(f"while running {where}")
                raise
        else:  # anything computed from NaN/inf is carried along, never computed
            origin = next(v.origin for v in invals if isinstance(v, _NonFinite))
            out = [_NonFinite(v.aval.shape, origin) for v in eqn.outvars]
            if not eqn.primitive.multiple_results:
                out = out[0]
        outs = out if eqn.primitive.multiple_results else [out]
        for var, val in zip(eqn.outvars, outs):
            if not isinstance(var, DropVar):
                env[var] = val
    ctx.path, ctx.index, ctx.source = saved
    return [read(v, len(jaxpr.eqns)) for v in jaxpr.outvars]


# ---- static checks when tracing ----------------------------------------------------------------
class _Walk:
    """One pass over the jaxpr and its sub-jaxprs: refuse what cannot run, count equations, list
    float constants and notes, and follow which values depend on the arguments (for ``pow``)."""

    def __init__(self, jax_module):
        self.jax = jax_module
        self.counts: Counter = Counter()
        self.floats: list[FloatConstant] = []
        self.notes: list[str] = []

    def run(self, jaxpr, consts, dependent_in: Sequence[bool], path=(), parent_source="<unknown source>"):
        from jax.extend.core import Literal

        for i, (var, c) in enumerate(zip(jaxpr.constvars, consts)):
            if np.asarray(c).dtype.kind == "f":
                where = _eqn_label(path) if path else "the top-level jaxpr"
                self.floats.append(FloatConstant(np.array(c), where, f"constvar {i}",
                                                 "captured by the function", kind="closure"))
        dependent = {v for v, d in zip(jaxpr.invars, dependent_in) if d}
        for index, eqn in enumerate(jaxpr.eqns):
            here = path + (index,)
            name = eqn.primitive.name
            self.counts[name] += 1
            src = _source(eqn, parent_source)
            if name not in _RULES:
                raise UnsupportedJaxPrimitive(f"{name} ({_eqn_label(here)}) at {src}: no exact "
                                              "implementation of this primitive")
            for v in eqn.invars:
                if isinstance(v, Literal) and _kind(v.aval) == "f":
                    val = np.asarray(v.val)
                    value = float(val) if val.ndim == 0 else np.array(val)
                    self.floats.append(FloatConstant(value, _eqn_label(here), name, src))
            dep = [not isinstance(v, Literal) and v in dependent for v in eqn.invars]
            self._check(eqn, name, here, src, dep)
            if name in CALL_PRIMITIVES:
                sub, sub_consts = _sub_jaxpr(eqn)
                out_dep = self.run(sub, sub_consts, dep, here, src)
            else:
                out_dep = [any(dep)] * len(eqn.outvars)
            for var, d in zip(eqn.outvars, out_dep):
                if d:
                    dependent.add(var)
        for k, v in enumerate(jaxpr.outvars):
            if isinstance(v, Literal) and _kind(v.aval) == "f":
                val = np.asarray(v.val)
                self.floats.append(FloatConstant(float(val) if val.ndim == 0 else np.array(val),
                                                 f"result {k}" + (f" of {_eqn_label(path)}" if path else ""),
                                                 "output", parent_source))
        return [not isinstance(v, Literal) and v in dependent for v in jaxpr.outvars]

    def _check(self, eqn, name, here, src, dep):
        at = f"({_eqn_label(here)}) at {src}"
        if name == "pow" and dep[1]:
            raise UnsupportedJaxPrimitive(f"pow {at}: the exponent depends on the arguments "
                                          "(only constant exponents are supported)")
        if name == "convert_element_type":
            src_kind, dst_kind = _kind(eqn.invars[0].aval), _kind(eqn.outvars[0].aval)
            old, new = np.dtype(eqn.invars[0].aval.dtype), np.dtype(eqn.params["new_dtype"])
            if src_kind == "f" and dst_kind != "f":
                raise UnsupportedJaxPrimitive(f"convert_element_type {old} -> {new} {at}: a cast "
                                              "from float to integer/bool rounds; refused")
            if "c" in (src_kind, dst_kind):
                raise UnsupportedJaxPrimitive(f"convert_element_type {old} -> {new} {at}: complex "
                                              "values are not supported")
            if src_kind == "f" and old != new:
                self.notes.append(f"{_eqn_label(here)} at {src}: convert_element_type {old} -> "
                                  f"{new} taken as exact (real-number semantics)")
        for v in list(eqn.invars) + list(eqn.outvars):
            if _kind(v.aval) == "c":
                raise UnsupportedJaxPrimitive(f"{name} {at}: complex values are not supported")
        if name == "broadcast_in_dim" and len(eqn.invars) != 1:
            raise UnsupportedJaxPrimitive(f"broadcast_in_dim {at}: dynamic shapes are not supported")
        if name == "reshape" and (eqn.params.get("dimensions") is not None or len(eqn.invars) != 1):
            raise UnsupportedJaxPrimitive(f"reshape {at}: only dimensions=None is supported")
        if name == "pad":
            for lo, hi, interior in eqn.params["padding_config"]:
                if int(interior) != 0 or int(lo) < 0 or int(hi) < 0:
                    raise UnsupportedJaxPrimitive(f"pad {at}: only non-negative edge padding is "
                                                  "supported")
        if name in ("and", "or", "not") and _kind(eqn.outvars[0].aval) != "b":
            raise UnsupportedJaxPrimitive(f"{name} {at}: bitwise operations on integers are not "
                                          "supported")
        if name == "dot_general" and any(_kind(v.aval) != "f" for v in eqn.invars):
            raise UnsupportedJaxPrimitive(f"dot_general {at}: only floating operands are supported")


# ---- the trace ---------------------------------------------------------------------------------
class JaxTrace:
    """A traced JAX function: its closed jaxpr and how to run it on an array namespace.

    Attributes: ``closed_jaxpr`` (JAX's own object; ``str()`` prints it), ``in_shapes`` /
    ``in_dtypes`` (of the flattened arguments), ``float_constants`` (every float literal and
    captured float array, with its equation and source line), ``notes`` (float casts taken as
    exact), ``primitive_counts`` (a Counter over all equations, sub-jaxprs included),
    ``equation_count`` (their total), ``jax_version``, ``function_name``.
    """

    def __init__(self, closed_jaxpr, in_tree, out_tree, walk: _Walk, jax_module, function_name):
        self.closed_jaxpr = closed_jaxpr
        self._in_tree = in_tree
        self._out_tree = out_tree
        self._jax = jax_module
        self.in_shapes = tuple(tuple(v.aval.shape) for v in closed_jaxpr.jaxpr.invars)
        self.in_dtypes = tuple(str(np.dtype(v.aval.dtype)) for v in closed_jaxpr.jaxpr.invars)
        self.float_constants: tuple[FloatConstant, ...] = tuple(walk.floats)
        self.notes: tuple[str, ...] = tuple(walk.notes)
        self.primitive_counts: Counter = walk.counts
        self.equation_count: int = sum(walk.counts.values())
        self.jax_version: str = jax_module.__version__
        self.function_name = function_name

    def __repr__(self):
        return (f"JaxTrace({self.function_name}, {self.equation_count} equations, inputs "
                f"{list(self.in_shapes)}, jax {self.jax_version})")

    @property
    def jaxpr_text(self) -> str:
        return str(self.closed_jaxpr)

    def run(self, xp, *args):
        """Interpret the jaxpr on ``xp`` with arguments of the traced structure and shapes;
        returns the function's output pytree (leaves are whatever ``xp`` computes)."""
        tree_util = self._jax.tree_util
        leaves, tree = tree_util.tree_flatten(args)
        if tree != self._in_tree:
            raise ValueError(f"JaxTrace.run: the arguments have the structure {tree}, but "
                             f"{self.function_name} was traced with {self._in_tree}")
        values = []
        for i, (leaf, shape) in enumerate(zip(leaves, self.in_shapes)):
            leaf = xp.asarray(leaf)  # the namespace reads the values by its own rules
            if tuple(leaf.shape) != shape:
                raise ValueError(f"JaxTrace.run: argument leaf {i} has shape {tuple(leaf.shape)}, "
                                 f"but {self.function_name} was traced at shape {shape}")
            values.append(leaf)
        ctx = _Ctx(xp)
        outs = _eval_jaxpr(ctx, self.closed_jaxpr.jaxpr, self.closed_jaxpr.consts, values, ())
        for k, o in enumerate(outs):
            if isinstance(o, _NonFinite):
                raise NonFiniteConstantError(f"JaxTrace.run: result leaf {k} depends on the "
                                             f"non-finite constant from {o.origin}")
        # Results that do not depend on the arguments (a zero derivative) are NumPy data until
        # here; hand every result back as the namespace's own array.
        outs = [xp.asarray(o) for o in outs]
        return tree_util.tree_unflatten(self._out_tree, outs)


def _example_spec(jax, i, leaf):
    """The abstract value make_jaxpr traces at, for one example-argument leaf."""
    if isinstance(leaf, bool) or (isinstance(leaf, int) and not isinstance(leaf, bool)):
        raise TypeError(f"trace: example argument leaf {i} is the Python {type(leaf).__name__} "
                        f"{leaf!r}; pass floats (close over integer settings instead)")
    if isinstance(leaf, float):
        return leaf
    shape = getattr(leaf, "shape", None)
    dtype = getattr(leaf, "dtype", None)
    if shape is None:
        if isinstance(leaf, numbers.Real) or hasattr(leaf, "free_symbols"):
            return jax.ShapeDtypeStruct((), np.float64)  # an exact scalar (Fraction, SymPy value)
        raise TypeError(f"trace: example argument leaf {i} is a {type(leaf).__name__}, not an "
                        "array or a real number")
    if dtype is None or np.dtype(dtype) == object:
        return jax.ShapeDtypeStruct(tuple(shape), np.float64)  # e.g. a symbolic array
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"trace: example argument leaf {i} has dtype {dtype}; only floating "
                        "arguments are supported (close over integer settings instead)")
    return jax.ShapeDtypeStruct(tuple(shape), dtype)


def _user_frame(exc) -> str:
    """'file:line: code' of the innermost traceback frame outside JAX and this module."""
    import jax

    skip = (os.path.dirname(jax.__file__), os.path.abspath(__file__))
    try:
        import jaxlib

        skip += (os.path.dirname(jaxlib.__file__),)
    except ImportError:  # pragma: no cover
        pass
    best = None
    for frame in traceback.extract_tb(exc.__traceback__):
        fname = os.path.abspath(frame.filename)
        if not fname.startswith(skip):
            best = frame
    if best is None:
        return "<unknown line>"
    code = (best.line or "").strip()
    return f"{best.filename}:{best.lineno}" + (f": {code}" if code else "")


def _first_line(exc) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def trace(fn: Callable, *example_args) -> JaxTrace:
    """Trace ``fn`` with ``jax.make_jaxpr`` at the shapes and dtypes of ``example_args``.

    Example arguments are pytrees of arrays (NumPy, JAX, or object arrays such as symbolic ones,
    which stand for float64 arrays of their shape), Python floats or exact scalars (float64
    scalars).  float64 is enabled for the trace only (``jax.enable_x64`` as a context manager;
    the global setting is left as it was).  Raises :class:`JaxTraceError` if ``fn`` does not trace
    and :class:`UnsupportedJaxPrimitive` if the trace holds a primitive outside the table.
    """
    jax = _import_jax()
    if not callable(fn):
        raise TypeError(f"trace: fn must be callable, got {type(fn).__name__}")
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    leaves, in_tree = jax.tree_util.tree_flatten(example_args)
    if not leaves:
        raise TypeError("trace: give at least one example argument")
    specs = [_example_spec(jax, i, leaf) for i, leaf in enumerate(leaves)]
    spec_args = jax.tree_util.tree_unflatten(in_tree, specs)
    with _x64(jax):
        try:
            closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*spec_args)
        except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError,
                jax.errors.TracerIntegerConversionError, jax.errors.NonConcreteBooleanIndexError) as exc:
            raise JaxTraceError(
                f"{name} does not trace: {type(exc).__name__} (Python control flow or a NumPy "
                f"conversion on a traced value) at {_user_frame(exc)}; use jnp.where / lax.cond, "
                "or close over the value") from None
        except Exception as exc:
            raise JaxTraceError(f"{name} does not trace: {type(exc).__name__} at "
                                f"{_user_frame(exc)}: {_first_line(exc)}") from None
        out_tree = jax.tree_util.tree_structure(out_shape)
        walk = _Walk(jax)
        walk.run(closed.jaxpr, closed.consts, [True] * len(closed.jaxpr.invars))
    return JaxTrace(closed, in_tree, out_tree, walk, jax, name)
