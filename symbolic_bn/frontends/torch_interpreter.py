"""Running a traced aten graph on an array namespace, with torch's memory semantics.

The graph comes from ``make_fx`` (:func:`symbolic_bn.frontends.torch.trace`); each node is
executed through the table of :mod:`symbolic_bn.frontends.torch_ops`.  Values are ``xp``
arrays in torch's logical layout (shape and axis order as torch; booleans are NumPy bool
arrays).

Memory.  Traces of autograd code mutate tensors in place (gradient accumulation ``add_``,
``div_`` by a count, ``copy_`` into a fresh buffer, ``unsqueeze_``), and a write through one
tensor is seen by every view of the same storage.  The interpreter therefore models storage:

* every tensor carries the storage it lives in and, for each element, its position in that
  storage (an integer array of the tensor's shape);
* a fresh tensor (``compute`` and ``factory`` results, placeholders, constants) gets a new
  storage and the positions given by the strides torch traced for it;
* a view applies to the positions exactly what it applies to the values (reshape, transpose,
  broadcast, slicing), and the result is checked against the strides torch traced (a
  disagreement is an interpreter bug and is raised, never ignored);
* an in-place write replaces the values of the written tensor and, element by element, of every
  other live tensor sharing a written position -- NumPy arrays are never mutated, values are
  rebuilt by gathering;
* ``as_strided`` is a view whose positions are computed from its arguments; it is run only when
  every position it reads is covered by its input (then it is a plain gather of the input),
  otherwise refused;
* ``empty`` and its relatives allocate storage marked unwritten; reading an unwritten position
  (any non-view use, or returning it) raises :class:`TorchRunError`.

Nodes whose result no other node needs and that write nothing are skipped: torch's traces of
forward-mode AD hold dead shape computations on the ``meta`` device and assertion helpers
(``is_same_size``, ``_has_same_storage_numel``) that never influence the result.
"""
from __future__ import annotations

import os
import re
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.fx

from ..exact.floats import location_override
from .torch_errors import TorchRunError, UnsupportedTorchOp
from .torch_ops import _FLOATING, _INTEGRAL, GETITEM, OPS, RefusedOp

__all__ = ["live_nodes", "validate", "run_graph", "node_location", "bind_args", "convert_input",
           "is_internal_file"]

_ALLOWED_DTYPES = _FLOATING + _INTEGRAL + (torch.bool,)


# ---------------------------------------------------------------------------------------------
# Graph helpers
# ---------------------------------------------------------------------------------------------
def _writes(node: torch.fx.Node) -> bool:
    target = node.target
    schema = getattr(target, "_schema", None)
    if schema is None:
        return False
    return any(a.alias_info is not None and a.alias_info.is_write for a in schema.arguments)


def live_nodes(gm: torch.fx.GraphModule) -> list[torch.fx.Node]:
    """The nodes the result depends on, in graph order (dead pure nodes dropped)."""
    nodes = list(gm.graph.nodes)
    live: set = set()
    for node in reversed(nodes):
        if node.op in ("output", "placeholder") or node in live or (
                node.op == "call_function" and _writes(node)):
            live.add(node)
            live.update(node.all_input_nodes)
    return [n for n in nodes if n in live]


_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>\S+)\n(?P<code>[^\n]*)')
_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_FRONTEND_PREFIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch")
_STDLIB_DIR = os.path.dirname(os.__file__) + os.sep


def is_internal_file(filename: str) -> bool:
    """Frames of torch, of this frontend or of the standard library (not the user's code)."""
    if filename.startswith((_TORCH_DIR, _FRONTEND_PREFIX, "<frozen")):
        return True
    return filename.startswith(_STDLIB_DIR) and "-packages" not in filename


def node_location(node: torch.fx.Node) -> str:
    """``file:line `code``` of the user's call that emitted ``node`` ('' when unknown)."""
    stack = node.meta.get("stack_trace") or ""
    best = ""
    for m in _FRAME.finditer(stack):
        if not is_internal_file(m["file"]):
            best = f"{m['file']}:{m['line']} `{m['code'].strip()}`"
    return best


def _describe(node: torch.fx.Node) -> str:
    loc = node_location(node)
    return f"node %{node.name} in the trace" + (f", called at {loc}" if loc else "")


def bind_args(node: torch.fx.Node) -> dict:
    """The node's arguments by schema name, defaults filled in."""
    schema = node.target._schema
    out = {}
    positional = list(node.args)
    for i, arg in enumerate(schema.arguments):
        if not arg.kwarg_only and i < len(positional):
            out[arg.name] = positional[i]
        elif arg.name in node.kwargs:
            out[arg.name] = node.kwargs[arg.name]
        elif arg.has_default_value():
            out[arg.name] = arg.default_value
        else:
            out[arg.name] = None
    return out


def _defaults(node: torch.fx.Node) -> dict:
    return {a.name: (a.default_value if a.has_default_value() else None)
            for a in node.target._schema.arguments}


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.fx.Node) or isinstance(b, torch.fx.Node):
        return a is b
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - incomparable values are different
        return False


def _meta_tensors(val):
    if isinstance(val, torch.Tensor):
        return [val]
    if isinstance(val, (list, tuple)):
        return [t for v in val for t in _meta_tensors(v)]
    return []


def validate(gm: torch.fx.GraphModule, nodes: list[torch.fx.Node]) -> None:
    """Refuse, up front, every live node the interpreter would not run exactly."""
    for node in nodes:
        if node.op in ("placeholder", "output"):
            continue
        if node.op == "get_attr":
            value = getattr(gm, node.target)
            if not isinstance(value, torch.Tensor) or value.device.type != "cpu" or \
                    value.dtype not in _ALLOWED_DTYPES or value.layout != torch.strided:
                raise UnsupportedTorchOp(
                    f"constant {node.target} ({_short(value)}) is not a cpu "
                    f"tensor of a real dtype ({_describe(node)})", op="get_attr", node=node.name)
            continue
        if node.op != "call_function":
            raise UnsupportedTorchOp(f"{node.op} {node.target} ({_describe(node)})",
                                     op=str(node.target), node=node.name)
        if node.target is GETITEM:
            continue
        name = str(node.target)
        rule = OPS.get(name) if isinstance(node.target, torch._ops.OpOverload) else None
        if rule is None:
            raise UnsupportedTorchOp(f"{name} ({_describe(node)})",
                                     op=name, node=node.name, location=node_location(node))
        args = bind_args(node)
        defaults = _defaults(node)
        for key, value in args.items():
            if key not in rule.accepts and not _same(value, defaults.get(key)):
                raise UnsupportedTorchOp(
                    f"{name} with {key}={value!r} ({_describe(node)})",
                    op=name, node=node.name, location=node_location(node))
        try:
            if rule.check is not None:
                rule.check(node, args)
            for t in _meta_tensors(node.meta.get("val")):
                if t.dtype not in _ALLOWED_DTYPES:
                    raise RefusedOp(f"makes a tensor of dtype {t.dtype}")
                if t.device.type != "cpu":
                    raise RefusedOp(f"makes a tensor on device {t.device}")
        except RefusedOp as exc:
            raise UnsupportedTorchOp(f"{name} {exc} ({_describe(node)})",
                                     op=name, node=node.name, location=node_location(node)) from None


def _short(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"{value.dtype} on {value.device}, shape {tuple(value.shape)}"
    return type(value).__name__


# ---------------------------------------------------------------------------------------------
# Tensors with storage
# ---------------------------------------------------------------------------------------------
class _Storage:
    __slots__ = ("size", "members", "unwritten", "origin", "__weakref__")

    def __init__(self, size: int, origin: str, unwritten: bool = False):
        self.size = size
        self.members = weakref.WeakSet()
        self.unwritten = np.ones(size, dtype=bool) if unwritten else None
        self.origin = origin


@dataclass(eq=False)
class _Tensor:
    value: Any
    shape: tuple
    dtype: Any
    storage: _Storage
    positions: np.ndarray = field(repr=False)

    def __post_init__(self):
        self.storage.members.add(self)


def _strided_positions(shape, strides, offset=0) -> np.ndarray:
    pos = np.asarray(offset, dtype=np.int64)
    ndim = len(shape)
    for k, (n, s) in enumerate(zip(shape, strides)):
        axis = np.arange(n, dtype=np.int64).reshape((1,) * k + (n,) + (1,) * (ndim - k - 1))
        pos = pos + axis * int(s)
    return np.broadcast_to(pos, tuple(shape)).copy() if ndim else pos


def _storage_size(positions: np.ndarray) -> int:
    return int(positions.max()) + 1 if positions.size else 0


def _meta_strides(meta: torch.Tensor):
    return tuple(meta.stride())


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------
class _Context:
    """What an op implementation sees: the namespace, the traced output, argument dtypes."""

    __slots__ = ("xp", "out_shape", "out_dtype", "_records")

    def __init__(self, xp, out_shape, out_dtype, records):
        self.xp = xp
        self.out_shape = out_shape
        self.out_dtype = out_dtype
        self._records = records

    def arg_dtype(self, name):
        r = self._records.get(name)
        return r.dtype if isinstance(r, _Tensor) else None


class _Run:
    def __init__(self, gm, nodes, xp, constants):
        self.gm = gm
        self.constants = constants
        self.nodes = nodes
        self.xp = xp
        self.env: dict = {}

    # -- reading and making tensors -----------------------------------------------------------
    def module_for(self, t: _Tensor):
        """Booleans stay NumPy bool arrays in every namespace (they are always concrete)."""
        return np if t.dtype == torch.bool else self.xp

    def read(self, t: _Tensor, node):
        un = t.storage.unwritten
        if un is not None and t.positions.size and un[t.positions].any():
            raise TorchRunError(
                f"{node.target} ({_describe(node)}) reads memory that %{t.storage.origin} "
                "allocated uninitialized (torch.empty and its relatives) and no op wrote: torch "
                "would read arbitrary values")
        return t.value

    def fresh(self, value, meta, origin, unwritten=False) -> _Tensor:
        shape = tuple(meta.shape)
        self._check_shape(value, shape, origin)
        pos = _strided_positions(shape, _meta_strides(meta))
        storage = _Storage(_storage_size(pos), origin, unwritten)
        return _Tensor(value, shape, meta.dtype, storage, pos)

    def _check_shape(self, value, shape, origin):
        got = tuple(np.shape(value))
        if got != tuple(shape):
            raise TorchRunError(f"interpreter bug: node %{origin} computed shape {got}, torch "
                                f"traced {tuple(shape)}")

    def view(self, base: _Tensor, value, positions, meta, node) -> _Tensor:
        shape = tuple(meta.shape)
        positions = np.asarray(positions, dtype=np.int64)
        self._check_shape(value, shape, node.name)
        self._check_positions(positions, meta, node)
        return _Tensor(value, shape, meta.dtype, base.storage, positions)

    @staticmethod
    def _consistent(positions, meta) -> bool:
        if positions.size == 0:
            return True
        expected = _strided_positions(tuple(meta.shape), _meta_strides(meta),
                                      int(positions.reshape(-1)[0]))
        return bool(np.array_equal(positions, expected))

    def _check_positions(self, positions, meta, node):
        if not self._consistent(positions, meta):
            raise TorchRunError(f"interpreter bug: the storage layout of view %{node.name} "
                                f"({node.target}) disagrees with the strides torch traced "
                                f"{_meta_strides(meta)}")

    def write(self, t: _Tensor, new_value, node):
        xp = self.module_for(t)
        if tuple(np.shape(new_value)) != t.shape:
            new_value = xp.broadcast_to(new_value, t.shape)
        flat = t.positions.reshape(-1)
        if np.unique(flat).size != flat.size:
            raise TorchRunError(f"node %{node.name} ({node.target}) writes in place into a tensor "
                                "whose elements share memory (an expanded tensor)")
        index_in_t = np.full(t.storage.size, -1, dtype=np.int64)
        index_in_t[flat] = np.arange(flat.size)
        for other in list(t.storage.members):
            if other is t:
                continue
            hit = index_in_t[other.positions.reshape(-1)]
            if not (hit >= 0).any():
                continue
            n = hit.size
            combined = xp.concatenate([xp.reshape(other.value, (-1,)), xp.reshape(new_value, (-1,))])
            take = np.where(hit >= 0, n + hit, np.arange(n))
            other.value = xp.reshape(combined[take], other.shape)
        t.value = new_value
        if t.storage.unwritten is not None:
            t.storage.unwritten[flat] = False

    # -- arguments ----------------------------------------------------------------------------
    def _resolve(self, raw):
        if isinstance(raw, torch.fx.Node):
            return self.env[raw]
        if isinstance(raw, (list, tuple)):
            return type(raw)(self._resolve(r) for r in raw)
        return raw

    def _values(self, records, node):
        def val(r):
            if isinstance(r, _Tensor):
                return self.read(r, node)
            if isinstance(r, (list, tuple)):
                return type(r)(val(x) for x in r)
            return r

        return {k: val(r) for k, r in records.items()}

    # -- nodes --------------------------------------------------------------------------------
    def run_node(self, node):
        if node.op == "get_attr":
            const = self.constants[node.target]
            array = const.detach().cpu().numpy()
            value = array if const.dtype == torch.bool else self.xp.asarray(array)
            return self.fresh(value, const, node.name)
        if node.target is GETITEM:
            container, index = node.args
            return self.env[container][index]
        name = str(node.target)
        rule = OPS[name]
        records = {k: self._resolve(v) for k, v in bind_args(node).items()}
        meta = node.meta.get("val")
        kind = rule.kind
        if kind == "compute":
            c = _Context(self._compute_module(records, meta), _out_shape(meta), _out_dtype(meta),
                         records)
            result = rule.fn(c, self._values(records, node))
            if isinstance(meta, (list, tuple)):
                return tuple(self.fresh(v, m, node.name) for v, m in zip(result, meta))
            return self.fresh(result, meta, node.name)
        if kind in ("factory", "factory_uninitialized"):
            c = _Context(self.xp, tuple(meta.shape), meta.dtype, records)
            # factories read no tensor (new_zeros(self, ...) only takes self's dtype and device)
            values = {k: (None if isinstance(v, _Tensor) else v) for k, v in records.items()}
            return self.fresh(rule.fn(c, values), meta, node.name,
                              unwritten=kind == "factory_uninitialized")
        if kind in ("view", "view_copy"):
            base = records["self"]
            value = rule.fn(self.module_for(base), base.value, records)
            positions = rule.fn(np, base.positions, records)
            if isinstance(meta, (list, tuple)):
                views = [self.view(base, v, p, m, node) for v, p, m in zip(value, positions, meta)]
                if kind == "view_copy":
                    return [self.fresh(self.read(v, node), m, node.name) for v, m in zip(views, meta)]
                return views
            if name in ("aten.reshape.default",) and not self._consistent(np.asarray(positions), meta):
                # reshape copied (no view was possible): a fresh tensor
                self.read(base, node)
                return self.fresh(value, meta, node.name)
            v = self.view(base, value, positions, meta, node)
            return self.fresh(self.read(v, node), meta, node.name) if kind == "view_copy" else v
        if kind == "as_strided":
            return self.as_strided(records, meta, node)
        if kind == "view_":
            t = records["self"]
            if rule.functional == "aten.as_strided.default":
                new = self.as_strided(records, meta, node)
            else:
                new = self.view(t, rule.fn(self.module_for(t), t.value, records),
                                rule.fn(np, t.positions, records), meta, node)
            t.value, t.shape, t.positions = new.value, new.shape, new.positions
            return t
        if kind == "write":
            t = records["self"]
            c = _Context(self.module_for(t), t.shape, t.dtype, records)
            values = self._values({k: v for k, v in records.items() if k != "self"}, node)
            values["self"] = self.read(t, node) if rule.reads_self else t.value
            self.write(t, rule.fn(c, values), node)
            return t
        if kind == "query":
            return rule.fn(records)
        raise TorchRunError(f"interpreter bug: unknown kind {kind!r} for {name}")

    def _compute_module(self, records, meta):
        """NumPy for ops from booleans to booleans (cat/where/clone of masks), else ``xp``."""
        tensors = [r for r in records.values() if isinstance(r, _Tensor)]
        tensors += [x for r in records.values() if isinstance(r, (list, tuple))
                    for x in r if isinstance(x, _Tensor)]
        outs = _meta_tensors(meta)
        if outs and all(o.dtype == torch.bool for o in outs) and tensors and \
                all(t.dtype == torch.bool for t in tensors):
            return np
        return self.xp

    def as_strided(self, records, meta, node) -> _Tensor:
        base = records["self"]
        size = tuple(int(s) for s in records["size"])
        stride = tuple(int(s) for s in records["stride"])
        offset = records.get("storage_offset")
        if offset is None:
            if base.positions.size == 0:
                raise UnsupportedTorchOp(f"{node.target} of an empty tensor "
                                         f"({_describe(node)})", op=str(node.target), node=node.name)
            offset = int(base.positions.reshape(-1)[0])
        positions = _strided_positions(size, stride, int(offset))
        index_in_base = np.full(max(base.storage.size, 1), -1, dtype=np.int64)
        flat = base.positions.reshape(-1)
        index_in_base[flat] = np.arange(flat.size)
        wanted = positions.reshape(-1)
        inside = (wanted >= 0) & (wanted < index_in_base.size)
        take = np.where(inside, index_in_base[np.clip(wanted, 0, index_in_base.size - 1)], -1)
        if (take < 0).any():
            raise UnsupportedTorchOp(
                f"{node.target} (size={list(size)}, stride={list(stride)}, "
                f"storage_offset={offset}) reads storage its input does not cover, so it is not a "
                f"plain view of its input ({_describe(node)})", op=str(node.target), node=node.name)
        xp = self.module_for(base)
        value = xp.reshape(xp.reshape(base.value, (-1,))[take], size)
        return self.view(base, value, positions, meta, node)


def _out_shape(meta):
    return tuple(meta.shape) if isinstance(meta, torch.Tensor) else None


def _out_dtype(meta):
    return meta.dtype if isinstance(meta, torch.Tensor) else None


def _map_output(structure, fn):
    if isinstance(structure, torch.fx.Node):
        return fn(structure)
    if isinstance(structure, (list, tuple)):
        return type(structure)(_map_output(s, fn) for s in structure)
    if isinstance(structure, dict):
        return {k: _map_output(v, fn) for k, v in structure.items()}
    return structure


def run_graph(gm, nodes, xp, args, constants):
    """Run the live ``nodes`` of ``gm`` on ``xp`` with the arrays ``args`` (one per placeholder)
    and the tensor ``constants`` (name -> torch tensor) of its get_attr nodes."""
    run = _Run(gm, nodes, xp, constants)
    last_use: dict = {}
    for i, node in enumerate(nodes):
        for inp in node.all_input_nodes:
            last_use[inp] = i
    placeholders = iter(args)
    result = None
    for i, node in enumerate(nodes):
        if node.op == "placeholder":
            value = next(placeholders)
            run.env[node] = run.fresh(value, node.meta["val"], node.name)
        elif node.op == "output":
            def out(n, node=node):
                r = run.env[n]
                if not isinstance(r, _Tensor):
                    return r
                value = run.read(r, node)
                # broadcast views are read-only in NumPy; hand out writable arrays
                if isinstance(value, np.ndarray) and not value.flags.writeable:
                    value = value.copy()
                return value
            result = _map_output(node.args[0], out)
        else:
            try:
                # float constants the node hands to xp are logged as the node's (exact/floats.py)
                with location_override(f"node %{node.name} ({node.target}) of the torch trace"):
                    run.env[node] = run.run_node(node)
            except (TorchRunError, UnsupportedTorchOp):
                raise
            except Exception as exc:
                loc = node_location(node)
                exc.add_note(f"while running {node.target} at node %{node.name} of the torch trace"
                             + (f" (called at {loc})" if loc else ""))
                raise
        for inp in node.all_input_nodes:
            if last_use.get(inp) == i and inp in run.env:
                del run.env[inp]
    return result


def convert_input(value, meta: torch.Tensor, xp):
    """An argument of ``run`` as an ``xp`` array (bool tensors as NumPy bool arrays)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if meta.dtype == torch.bool:
        return np.asarray(value, dtype=bool)
    return xp.asarray(value)

