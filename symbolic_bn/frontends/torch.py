"""PyTorch functions as graphs the exact engine can run (optional: needs ``torch``).

``trace(fn, *example_args)`` records the aten operations ``fn`` runs on tensors of the example
arguments' shapes and dtypes -- including what torch's autograd runs when ``fn`` calls
``torch.autograd.grad`` (also with ``create_graph=True``), ``torch.func.vjp/jvp/grad`` and their
nestings, ``torch.autograd.forward_ad`` dual numbers and custom ``torch.autograd.Function``
backwards -- and ``TorchTrace.run(xp, *arrays)`` interprets the recorded graph on an array
namespace ``xp`` (``numpy``, or :data:`symbolic_bn.xp.symbolic` for exact values).

How the graph is made
---------------------
``torch.fx.experimental.proxy_tensor.make_fx`` below the autograd key, ``tracing_mode="real"``:

* autograd runs exactly as in eager mode (it sits above the tracer), so the graph holds torch's
  own derivative formulas, in the order torch runs them;
* fused kernels are replaced by torch's reference decompositions into primitive aten ops
  (:func:`decomposition_table`: torch's core-aten table plus the normalization kernels of
  :data:`DECOMPOSED_OPS`).  What is interpreted is therefore torch's autograd with
  ``native_batch_norm_backward`` & co. expanded as ``torch._decomp`` writes them: torch's Python
  reference decompositions of the C++ kernels, not the kernels' own code (a verdict about a
  kernel should be re-confirmed by running torch eager in float64);
* "real" rather than "fake" mode because fake tensors cannot trace nested forward mode
  (``jvp(jvp(f))``) through a function with a second tensor input in torch 2.13.0 (an internal
  assert in ``aten._make_dual``, measured); in real mode the example values are computed with
  but never enter the graph: reading a value in Python (``bool(t)``, ``float(t)``, ``t.item()``,
  ``if t > 0:``) stops the trace (torch raises at ``aten._local_scalar_dense``), and
  ``t.tolist()``, ``t.numpy()`` and ``numpy.asarray(t)`` -- which real mode would silently bake
  into the graph as constants -- are refused by a guard while ``fn`` runs.  The error names the
  user's source line.  Autograd runs custom ``Function.backward`` code without that guard, so by
  default ``trace`` traces twice, with other example values, and refuses a function whose graph
  changes (``retrace=True``);
* real mode runs ``fn`` for real (twice with ``retrace``): side effects on what ``fn`` closes
  over happen during tracing -- an ``nn.BatchNorm2d`` in training mode updates its running
  statistics.  Tensors the trace captures (module parameters and buffers, ``torch.tensor(...)``
  literals) are snapshotted when the trace is made.

What the interpreter runs
-------------------------
The table of :mod:`symbolic_bn.frontends.torch_ops` (:func:`supported_ops`); any other live op
is refused at trace time with :class:`UnsupportedTorchOp` naming the op and the node.  Memory
semantics (in-place ops, views, ``as_strided``, ``empty``) are modelled, see
:mod:`symbolic_bn.frontends.torch_interpreter`.

Numbers.  Python floats written into the graph (``1e-05`` for eps; ``0.16666666666666666`` =
``1/N`` for a statistics group of 6 in ``native_batch_norm_backward``'s decomposition; ``3/N`` in
the batch-norm double backward) are passed to ``xp`` as Python floats, unchanged; every one is
listed in :attr:`TorchTrace.float_constants` with the node that held it.  Tensor constants are
converted with ``xp.asarray``.  Ints are exact.  Same-dtype float arithmetic is read as real
arithmetic; conversions between float dtypes are refused (rounding is not modelled).

Sources: torch 2.13.0's ``torch/fx/experimental/proxy_tensor.py`` (make_fx), ``torch/_decomp``
(tables), ``native_functions.yaml`` (schemas); read, not copied.
"""
from __future__ import annotations

import collections
import functools
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .torch_errors import (
    INSTALL_HINT,
    TorchFrontendError,
    TorchNotInstalledError,
    TorchRunError,
    TorchTraceError,
    UnsupportedTorchOp,
)

__all__ = [
    "trace",
    "TorchTrace",
    "decomposition_table",
    "supported_ops",
    "DECOMPOSED_OPS",
    "TESTED_TORCH_VERSION",
    "TorchFrontendError",
    "TorchNotInstalledError",
    "TorchTraceError",
    "UnsupportedTorchOp",
    "TorchRunError",
]

TESTED_TORCH_VERSION = "2.13.0"

#: aten kernels decomposed on top of torch's core-aten table (each with all its overloads).
DECOMPOSED_OPS = (
    "native_batch_norm", "native_batch_norm_backward", "_native_batch_norm_legit",
    "_native_batch_norm_legit_functional", "_native_batch_norm_legit_no_training",
    "batch_norm_backward", "_batch_norm_with_update", "_batch_norm_with_update_functional",
    "_batch_norm_no_update", "native_layer_norm", "native_layer_norm_backward",
    "native_group_norm", "native_group_norm_backward", "_fused_rms_norm", "_fused_rms_norm_backward",
)

_TRACING_MODES = ("real", "fake")
_MAX_MESSAGE = 300


def _import_torch():
    try:
        import torch
    except ImportError:
        raise TorchNotInstalledError(
            f"symbolic_bn.frontends.torch needs PyTorch, which is not installed: {INSTALL_HINT}"
        ) from None
    return torch


def decomposition_table() -> dict:
    """torch's core-aten decompositions plus those of :data:`DECOMPOSED_OPS` (a fresh dict).

    Neither lowers ``var_mean`` / ``var``: their only decomposition (``torch._refs``) goes down to
    ``prims.var``, below aten; the interpreter runs them directly.
    """
    return dict(_decomposition_table())


@functools.lru_cache(maxsize=None)
def _decomposition_table() -> dict:
    torch = _import_torch()
    from torch._decomp import core_aten_decompositions, get_decompositions

    table = dict(core_aten_decompositions().items())
    table.update(get_decompositions([getattr(torch.ops.aten, name) for name in DECOMPOSED_OPS]))
    return table


def supported_ops() -> list[str]:
    """Every aten overload the interpreter runs."""
    _import_torch()
    from .torch_ops import supported_ops as names

    return names()


@dataclass
class TorchTrace:
    """A traced torch function: its aten graph and what the graph holds.

    ``run(xp, *arrays)`` interprets it; ``float_constants`` lists ``(node, op, value)`` for every
    Python float argument of a node the result depends on; ``tensor_constants`` lists
    ``(name, numpy array)`` for tensors captured by the trace, as they were when traced (``run``
    uses these snapshots, not the live tensors).
    """

    graph_module: Any
    function_name: str
    input_shapes: tuple
    input_dtypes: tuple
    decompose: bool
    tracing_mode: str
    torch_version: str
    float_constants: list = field(default_factory=list)
    tensor_constants: list = field(default_factory=list)
    _nodes: list = field(default_factory=list, repr=False)
    _constants: dict = field(default_factory=dict, repr=False)

    @property
    def nodes(self) -> list:
        """The live nodes (those the outputs depend on, and every in-place write), in order."""
        return list(self._nodes)

    @property
    def op_counts(self) -> collections.Counter:
        """How often each aten op occurs among the live nodes."""
        return collections.Counter(str(n.target) for n in self._nodes
                                   if n.op == "call_function" and str(n.target).startswith("aten."))

    @property
    def num_nodes(self) -> int:
        """Number of live aten op nodes (what ``run`` executes)."""
        return sum(self.op_counts.values())

    @property
    def num_graph_nodes(self) -> int:
        """Number of op nodes make_fx recorded (dead shape computations included)."""
        return sum(1 for n in self.graph_module.graph.nodes if n.op == "call_function")

    @property
    def code(self) -> str:
        """The graph as Python source (torch.fx's rendering)."""
        return self.graph_module.code

    def run(self, xp, *args):
        """Interpret the trace on the namespace ``xp`` with one array per traced argument.

        Arrays may be ``xp`` arrays, NumPy arrays, nested lists or torch tensors; each must have
        the traced shape.  Returns what ``fn`` returned (same tuples/lists; arrays for tensors).
        """
        from .torch_interpreter import convert_input, run_graph

        placeholders = [n for n in self._nodes if n.op == "placeholder"]
        if len(args) != len(placeholders):
            raise TorchRunError(f"run: the trace of {self.function_name} takes {len(placeholders)} "
                                f"arrays (one per traced argument), got {len(args)}")
        inputs = []
        for i, (value, node) in enumerate(zip(args, placeholders)):
            meta = node.meta["val"]
            try:
                array = convert_input(value, meta, xp)
            except TorchFrontendError:
                raise
            except Exception as exc:  # noqa: BLE001 - one line naming the argument
                raise TorchRunError(f"run: argument {i} cannot be converted by {xp!r}: "
                                    f"{type(exc).__name__}: {exc}") from None
            if tuple(np.shape(array)) != tuple(meta.shape):
                raise TorchRunError(f"run: argument {i} has shape {tuple(np.shape(array))}; the "
                                    f"trace was made for shape {tuple(meta.shape)}")
            inputs.append(array)
        return run_graph(self.graph_module, self._nodes, xp, inputs, self._constants)

    def __str__(self):
        return (f"TorchTrace of {self.function_name} at shapes {list(self.input_shapes)}: "
                f"{self.num_nodes} aten nodes ({self.num_graph_nodes} recorded), "
                f"{len(self.float_constants)} float constants, torch {self.torch_version}")


# ---------------------------------------------------------------------------------------------
# Tracing
# ---------------------------------------------------------------------------------------------
def _user_frame(tb) -> str:
    from .torch_interpreter import is_internal_file

    best = ""
    for frame in traceback.extract_tb(tb):
        if not is_internal_file(frame.filename):
            best = f"{frame.filename}:{frame.lineno} `{(frame.line or '').strip()}`"
    return best


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= _MAX_MESSAGE else line[:_MAX_MESSAGE] + " ..."


class _ValueLeak(Exception):
    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


_LEAKS = ("tolist", "numpy", "__array__", "item")


def _user_stack_entry(frame) -> str:
    """The innermost user frame at or above ``frame``, as a traceback entry ('' if none)."""
    import linecache

    from .torch_interpreter import is_internal_file

    while frame is not None and is_internal_file(frame.f_code.co_filename):
        frame = frame.f_back
    if frame is None:
        return ""
    code = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
    return f'File "{frame.f_code.co_filename}", line {frame.f_lineno}, in {frame.f_code.co_name}\n    {code}'


@functools.lru_cache(maxsize=None)
def _value_guard_class():
    import sys

    import torch.fx.traceback as fx_traceback
    from torch.overrides import TorchFunctionMode

    class ValueGuard(TorchFunctionMode):
        """While ``fn`` runs: note the user's source line of every torch call (it becomes the
        ``stack_trace`` of the nodes the call records), and refuse Python reads of tensor values
        that real-mode tracing would otherwise bake into the graph."""

        def __torch_function__(self, func, types, args=(), kwargs=None):
            name = getattr(func, "__name__", "")
            if name in _LEAKS:
                raise _ValueLeak(f"Tensor.{name}()" if name != "__array__" else "numpy.asarray(tensor)")
            entry = _user_stack_entry(sys._getframe(1))
            if entry and fx_traceback.has_preserved_node_meta():
                fx_traceback.current_meta["stack_trace"] = entry
            return func(*args, **(kwargs or {}))

    return ValueGuard


def _is_data_dependent(exc: BaseException) -> bool:
    text = str(exc)
    return ("_local_scalar_dense" in text or "data-dependent" in text
            or type(exc).__name__ in ("GuardOnDataDependentSymNode", "DataDependentOutputException"))


def _example(torch, i, value):
    if isinstance(value, torch.Tensor):
        t = value
    else:
        if not isinstance(value, np.ndarray):
            raise TorchTraceError(
                f"trace: example argument {i} is a {type(value).__name__}, not a tensor; pass "
                "tensors (or NumPy arrays) and close over other arguments (functools.partial)")
        t = torch.from_numpy(np.array(value))
    if t.is_complex() or t.is_quantized or t.dtype not in _real_dtypes(torch):
        raise TorchTraceError(f"trace: example argument {i} has dtype {t.dtype}; only real "
                              "floating, integer and bool tensors are interpreted")
    if t.layout != torch.strided:
        raise TorchTraceError(f"trace: example argument {i} has layout {t.layout}; only strided "
                              "(dense) tensors are interpreted")
    if t.device.type != "cpu":
        raise TorchTraceError(f"trace: example argument {i} is on {t.device}; pass cpu tensors")
    return t


def _copy_example(t, values=None):
    """A fresh leaf copy of ``t`` (optionally with other values), keeping requires_grad."""
    copy = (t if values is None else values).detach().clone()
    if t.requires_grad:
        copy.requires_grad_(True)
    return copy


def _other_values(torch, t, generator):
    """Different example values of the same shape/dtype: a positive affine map of the floats
    (signs of positive inputs and the order of entries are kept; zeros move)."""
    if not t.is_floating_point() or t.numel() == 0:
        return None
    scale = 1.25 + 0.5 * torch.rand(t.shape, generator=generator, dtype=torch.float64)
    shift = 0.25 + 0.25 * torch.rand(t.shape, generator=generator, dtype=torch.float64)
    size = float(t.detach().abs().max()) or 1.0
    return (t.detach().double() * scale + shift * size).to(t.dtype)


def _real_dtypes(torch):
    return (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8, torch.int8,
            torch.int16, torch.int32, torch.int64, torch.bool)


def _float_constants(nodes) -> list:
    found = []

    def walk(node, value):
        if isinstance(value, float):  # bool is not a float
            found.append((node.name, str(node.target), value))
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(node, v)

    for node in nodes:
        if node.op == "call_function":
            for v in list(node.args) + list(node.kwargs.values()):
                walk(node, v)
    return found


def _make_graph(torch, fn, examples, decompose, tracing_mode, name):
    import torch.fx.traceback as fx_traceback
    from torch.fx.experimental.proxy_tensor import make_fx

    guard = _value_guard_class()

    def traced(*args):
        with guard():
            return fn(*args)

    try:
        with fx_traceback.preserve_node_meta(), warnings.catch_warnings():
            # torch's forward-AD path calls the deprecated torch.jit.script internally
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.")
            return make_fx(traced, decomposition_table=_decomposition_table() if decompose else {},
                           tracing_mode=tracing_mode,
                           _allow_non_fake_inputs=tracing_mode == "fake")(*examples)
    except _ValueLeak as exc:
        raise TorchTraceError(
            f"{name} does not trace: {exc.what} at {_user_frame(exc.__traceback__) or 'an unknown line'} "
            "reads a tensor's values into Python, which a trace cannot follow (keep the "
            "computation in torch ops)") from None
    except TorchFrontendError:
        raise
    except Exception as exc:  # noqa: BLE001 - every torch failure becomes one line
        where = _user_frame(exc.__traceback__) or "an unknown line"
        if _is_data_dependent(exc):
            raise TorchTraceError(
                f"{name} does not trace: data-dependent control flow at {where}: Python reads a "
                "tensor's value (bool(), float(), int(), .item(), or a tensor comparison used as "
                "a condition), so a trace would record one branch only; use torch.where / "
                "torch.maximum instead") from None
        raise TorchTraceError(f"{name} does not trace: {type(exc).__name__}: {_first_line(exc)} "
                              f"(at {where})") from None


def _same_constant(torch, a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (a != a and b != b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_constant(torch, x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_constant(torch, a[k], b[k]) for k in a)
    if hasattr(a, "name") and hasattr(a, "op") and hasattr(b, "name"):  # fx nodes
        return a.name == b.name
    return type(a) is type(b) and a == b


def _graph_difference(torch, gm1, gm2) -> str | None:
    """Where two traces of one function differ ('' -> same), for the value-independence check."""
    from .torch_interpreter import node_location

    n1, n2 = list(gm1.graph.nodes), list(gm2.graph.nodes)
    for a, b in zip(n1, n2):
        if a.op != b.op or a.target != b.target or a.name != b.name:
            return f"node %{a.name} ({a.target}) is %{b.name} ({b.target}) in the other trace"
        if not (_same_constant(torch, a.args, b.args) and _same_constant(torch, a.kwargs, b.kwargs)):
            loc = node_location(a)
            return (f"node %{a.name} ({a.target}) has arguments {a.args} in one trace and {b.args} "
                    "in the other" + (f" (called at {loc})" if loc else ""))
        if a.op == "get_attr":
            ta, tb = getattr(gm1, a.target), getattr(gm2, b.target)
            if not (isinstance(ta, torch.Tensor) and isinstance(tb, torch.Tensor)):
                continue
            same_meta = (ta.shape == tb.shape and ta.dtype == tb.dtype and ta.device == tb.device)
            if not same_meta or (ta.device.type != "meta" and not torch.equal(ta, tb)):
                return f"constant {a.target} differs between the traces"
    if len(n1) != len(n2):
        return f"the traces have {len(n1)} and {len(n2)} nodes"
    return None


def trace(fn: Callable, *example_args, decompose: bool = True, tracing_mode: str = "real",
          retrace: bool = True) -> TorchTrace:
    """Record the aten graph of ``fn(*example_args)`` (tensors in; any pytree of tensors out).

    ``decompose`` lowers fused kernels with :func:`decomposition_table` (without it, a trace of a
    normalization layer holds ``native_batch_norm`` & co., which the interpreter refuses).
    ``tracing_mode`` is make_fx's: "real" (default; see the module docstring) or "fake".
    ``retrace`` (real mode): trace a second time with other floating example values and refuse
    the function if the graph changes -- the graph then depends on the values (a ``.tolist()``
    inside a custom ``autograd.Function.backward``, which no guard sees, bakes values in).

    Example arguments are copied (so arguments sharing memory are traced as separate tensors);
    ``requires_grad`` is kept.  Raises :class:`TorchTraceError` when ``fn`` does not trace and
    :class:`UnsupportedTorchOp` when the graph holds an op the interpreter does not run; both
    name the op and the node, or the source line.
    """
    torch = _import_torch()
    from .torch_interpreter import live_nodes, validate

    if not callable(fn):
        raise TorchTraceError(f"trace: fn must be callable, got {type(fn).__name__}")
    if tracing_mode not in _TRACING_MODES:
        raise TorchTraceError(f"trace: tracing_mode must be one of {_TRACING_MODES}, got {tracing_mode!r}")
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    originals = [_example(torch, i, v) for i, v in enumerate(example_args)]
    gm = _make_graph(torch, fn, [_copy_example(t) for t in originals], decompose, tracing_mode, name)
    if retrace and tracing_mode == "real":
        generator = torch.Generator().manual_seed(20250101)
        new_values = [_other_values(torch, t, generator) for t in originals]
        if any(v is not None for v in new_values):
            others = [_copy_example(t, v) for t, v in zip(originals, new_values)]
            gm_other = _make_graph(torch, fn, others, decompose, tracing_mode, name)
            difference = _graph_difference(torch, gm, gm_other)
            if difference:
                raise TorchTraceError(
                    f"{name} does not trace: its graph depends on the example values ({difference}); "
                    "somewhere torch cannot see, Python reads tensor values (e.g. .tolist() or "
                    ".numpy() in a custom autograd.Function backward)")

    nodes = live_nodes(gm)
    validate(gm, nodes)
    # constants are snapshots: a module buffer captured by the trace is a live reference that
    # later eager calls keep mutating (BatchNorm's running statistics)
    snapshots = {n.target: getattr(gm, n.target).detach().clone() for n in nodes if n.op == "get_attr"}
    return TorchTrace(
        graph_module=gm,
        function_name=name,
        input_shapes=tuple(tuple(t.shape) for t in originals),
        input_dtypes=tuple(str(t.dtype) for t in originals),
        decompose=decompose,
        tracing_mode=tracing_mode,
        torch_version=torch.__version__,
        float_constants=_float_constants(nodes),
        tensor_constants=[(k, v.numpy().copy()) for k, v in snapshots.items()],
        _nodes=nodes,
        _constants=snapshots,
    )
