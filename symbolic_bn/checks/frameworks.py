r"""Framework-native functions (PyTorch, JAX) checked exactly: traced, then run on the exact engine.

Entry points (the ``framework=`` argument of :func:`symbolic_bn.checks.check.check_forward` /
``check_backward``, and :func:`symbolic_bn.checks.framework_autodiff.check_autodiff`)::

    check_forward(forward, layer=L, framework="torch")     # forward(x, weight, bias, eps) -> y
    check_backward(backward, layer=L, framework="torch")   # backward(x, weight, bias, grad_out, eps)
                                                           #   -> (dx, dweight, dbias)  (rms_norm: (dx, dweight))

Conventions
-----------
* Arguments are framework arrays -- ``torch.Tensor`` (``framework="torch"``) or ``jax.Array``
  (``framework="jax"``) -- of dtype float64, in the layer's own layout
  (:mod:`symbolic_bn.layers`); ``bias`` is ``None`` for rms_norm.  The results are arrays of the
  same kind (any float64 array the framework accepts; tuples/lists for a backward).
* ``eps`` is a Python ``float``: ``float(layer.eps)``.  The layer's ε must therefore be a number,
  and one whose float64 reading (:mod:`symbolic_bn.exact.floats`: the simplest rational within
  half an ulp) is ε itself -- ``1e-5`` / ``Fraction(1, 100000)`` / ``1/3`` are, an ε with twenty
  significant digits is not.  Otherwise ``ValueError`` naming ``eps``.  The trace holds that float
  (``add(var, 1e-05)``) and the engine reads it back as ε; the reading is listed among the
  assumptions with the trace node that held it, like every other float constant of the trace
  (``0.16666666666666666 (at node %mul_3 (aten.mul.Tensor) of the torch trace) read as 1/6``).

What is proved, and how
-----------------------
1. The function is traced once at the layer's shapes in float64 with example values drawn at
   random: PyTorch with ``make_fx`` (torch's autograd formulas included; fused kernels such as
   ``native_batch_norm_backward`` lowered to primitive aten ops by torch's own ``torch._decomp``
   reference decompositions: :mod:`symbolic_bn.frontends.torch`), JAX with ``make_jaxpr``
   (:mod:`symbolic_bn.frontends.jax`).  A function that does not trace (data-dependent Python
   control flow, values read into Python) or whose trace holds an op the interpreter does not run
   is refused with a one-line :class:`ImplementationError` naming the source line or the op --
   never a pass.
2. The trace, run on the exact namespace, is handed to the ordinary check
   (:mod:`symbolic_bn.checks.check`) as if it were the user's xp code: the statement, the
   reference, the zero tests, side conditions, degenerate points and counterexamples are exactly
   those of the xp checks.  The statement is about the traced computation at that shape.
3. The trace is compared with the framework itself: run in float64 on NumPy at
   :data:`SPOT_POINTS` random points, it must reproduce the framework's own (eager) float64
   results to ``1e-8`` of their size.  A trace that does not reproduce the function -- code that
   behaves differently while traced, values read into Python inside a custom
   ``autograd.Function.backward``, which no tracing guard sees -- turns every 'proved' into
   'undecided'.
4. A 'failed' obligation's exact counterexample is re-confirmed by running the framework itself
   in float64 at that point (the rational inputs rounded to float64): it stays 'failed' only when
   the framework's value is farther from the exact reference than ``CONFIRM_FACTOR`` times the
   framework's own rounding distance from the exact value of its trace there (and than 64 ulps);
   otherwise the obligation is 'undecided' and says why.  The framework's value is
   ``counterexample['framework_float64']``; the obligation's ``detail`` gives the comparison.

The time budget covers tracing too; a trace interrupted by it gives 'undecided' obligations.

Hostile code.  The user's code runs in this process.  Before it runs the layer is copied (the
reference is computed from the copy), and afterwards the checker's own decision functions are
verified unchanged (:func:`guard_checker`); a function that patches them is refused.  Code that
recognises the tracer and computes something else while traced is caught by step 3 only where
the spot points see the difference.
"""
from __future__ import annotations

import copy
import importlib
import math
import re
import time
from fractions import Fraction

import numpy as np

from .. import layers as L
from ..exact.budget import BudgetExceeded, time_budget
from ..exact.floats import read_float
from .crosscheck import ImplementationError

__all__ = [
    "FRAMEWORKS",
    "INSTALL",
    "SPOT_POINTS",
    "CONFIRM_FACTOR",
    "framework_adapter",
    "framework_eps",
    "check_framework",
    "guard_checker",
    "check_arity",
    "ImplementationError",
]

FRAMEWORKS = ("torch", "jax")
#: The extra that installs each framework (pyproject.toml's optional-dependencies).
INSTALL = {"torch": "pip install 'symbolic-bn[torch]'", "jax": "pip install 'symbolic-bn[jax]'"}
_LONG_NAMES = {"torch": "PyTorch", "jax": "JAX"}

#: Random float64 points at which the trace (on NumPy) must reproduce the framework.
SPOT_POINTS = 2
#: Relative agreement the spot points require (of the largest |entry| of each output, or 1).
SPOT_RTOL = 1e-8
#: A counterexample is re-confirmed when |framework − reference| exceeds this many times the noise.
CONFIRM_FACTOR = 100.0
_ULPS = 64 * 2.0 ** -52


# ---------------------------------------------------------------------------------------------
# Frameworks
# ---------------------------------------------------------------------------------------------
def _flatten(out) -> list:
    """Tuples/lists/dicts of arrays as a flat list (None kept)."""
    if isinstance(out, (tuple, list)):
        return [leaf for o in out for leaf in _flatten(o)]
    if isinstance(out, dict):
        return [leaf for k in sorted(out) for leaf in _flatten(out[k])]
    return [out]


class _Torch:
    name = "torch"

    def __init__(self, module):
        self.module = module
        self.version = str(module.__version__)
        from ..frontends import torch as front
        from ..frontends.torch_errors import TorchFrontendError

        self.front = front
        self.errors = (TorchFrontendError,)

    def tensor(self, a):
        return self.module.tensor(np.asarray(a, dtype=np.float64), dtype=self.module.float64)

    def trace(self, fn, arrays):
        # retrace=False: the spot points of check_framework (the trace on NumPy against eager torch
        # at other values) catch a graph that baked in example values, at half the tracing time
        return self.front.trace(fn, *[self.tensor(a) for a in arrays], retrace=False)

    def call(self, fn, arrays):
        return fn(*[self.tensor(a) for a in arrays])

    @staticmethod
    def to_numpy(leaf):
        if leaf is None:
            return None
        if hasattr(leaf, "detach"):
            arr = leaf.detach().cpu().numpy()
            return arr.astype(np.float64) if arr.dtype.kind == "f" else arr
        return np.asarray(leaf)

    @staticmethod
    def size(tr) -> str:
        return f"{tr.num_nodes} aten ops"

    def method(self, tr) -> str:
        return (f"traced with torch.fx make_fx (torch {self.version}, float64, {self.size(tr)}; "
                "torch's autograd formulas as torch runs them, fused kernels lowered by "
                "torch._decomp's reference decompositions)")


class _Jax:
    name = "jax"

    def __init__(self, module):
        self.module = module
        self.version = str(module.__version__)
        import jax.numpy as jnp

        from ..frontends import jax as front

        self.jnp = jnp
        self.front = front
        self.errors = (front.JaxFrontendError, front.JaxNotInstalled)

    def trace(self, fn, arrays):
        return self.front.trace(fn, *[np.asarray(a, dtype=np.float64) for a in arrays])

    def call(self, fn, arrays):
        with self.front._x64(self.module):
            out = fn(*[self.jnp.asarray(np.asarray(a, dtype=np.float64)) for a in arrays])
            return self.module.tree_util.tree_map(np.asarray, out)

    @staticmethod
    def to_numpy(leaf):
        if leaf is None:
            return None
        return np.asarray(leaf, dtype=np.float64) if np.asarray(leaf).dtype.kind == "f" else np.asarray(leaf)

    @staticmethod
    def size(tr) -> str:
        return f"{tr.equation_count} jaxpr equations"

    def method(self, tr) -> str:
        return f"traced with jax.make_jaxpr (jax {self.version}, float64, {self.size(tr)})"


def framework_adapter(framework, who: str):
    """The adapter of ``framework`` ('torch' or 'jax'); one-line ValueErrors naming ``framework``
    for an unknown name or a framework that is not installed (with the extra to install)."""
    if not isinstance(framework, str) or framework not in FRAMEWORKS:
        raise ValueError(f"{who}: framework must be one of {', '.join(map(repr, FRAMEWORKS))} (or None "
                         f"for xp/NumPy code), got {framework!r}")
    try:
        module = importlib.import_module(framework)
        if framework == "jax":
            importlib.import_module("jax.extend.core")
    except ImportError:
        raise ValueError(f"{who}: framework={framework!r} needs {_LONG_NAMES[framework]}, which is "
                         f"not installed: {INSTALL[framework]}") from None
    return (_Torch if framework == "torch" else _Jax)(module)


def framework_eps(layer, who: str) -> float:
    """``float(layer.eps)``, refused (naming ``eps``) when ε is symbolic or does not round-trip."""
    if layer.symbolic_eps:
        raise ValueError(f"{who}: eps: a framework function takes ε as a Python float, so the "
                         f"layer's ε must be a number, got the symbol {layer.eps} (build the layer "
                         "with eps=1e-5, say)")
    value = float(layer.eps)
    if not math.isfinite(value) or read_float(value) != layer.eps:
        raise ValueError(f"{who}: eps: the layer's ε = {layer.eps} is not what the float {value!r} "
                         f"stands for (read as {read_float(value) if math.isfinite(value) else value}); "
                         "use an ε that is a float or a short decimal")
    return value


# ---------------------------------------------------------------------------------------------
# Guarding the checker against the code it checks
# ---------------------------------------------------------------------------------------------
def _guarded():
    import sys

    from ..exact import calculus, coordinates, decide, normal, sign
    from ..exact.convert import Substitution
    from ..obligations import certificate
    from ..xp import engine
    from . import check, points, problem

    here = sys.modules[__name__]
    autodiff = sys.modules.get(__package__ + ".framework_autodiff")
    out = [(normal, "is_zero_value"), (sign, "sign"), (calculus, "gradient"), (decide, "differ_exactly"),
           (coordinates.Inputs, "gradient"), (coordinates.EntryJacobian, "of"),
           (L.Layer, "forward"), (problem.Problem, "backward"), (problem.Problem, "reference_for"),
           (check, "_check"), (check, "_decide_output"), (points, "differ_exactly"),
           (points.PointSearch, "counterexample"), (Substitution, "__call__"), (engine, "ExactNamespace"),
           (certificate.Obligation, "__init__"), (certificate.Certificate, "ok"),
           (here, "confirm"), (here, "spot_check"), (here, "check_framework")]
    if autodiff is not None:
        out += [(autodiff, name) for name in ("differ_exactly", "normal", "formula", "confirm",
                                              "confirm_undefined", "spot_check", "call_framework")]
        out += [(autodiff._Check, name) for name in ("decide", "search", "_difference", "_reconfirm",
                                                     "obligation", "run")]
        out += [(autodiff._Derivatives, "of")]
    return out


class guard_checker:
    """``with guard_checker(who):`` refuses user code that replaced the checker's own functions
    (the exact zero test, the reference, the calculus) while it ran."""

    def __init__(self, who: str):
        self.who = who

    def __enter__(self):
        self.saved = [(owner, name, vars(owner).get(name)) for owner, name in _guarded()]
        return self

    def __exit__(self, *exc):
        for owner, name, value in self.saved:
            if vars(owner).get(name) is not value:
                setattr(owner, name, value)  # restore, then refuse
                raise ImplementationError(
                    f"{self.who}: the function replaced {getattr(owner, '__name__', owner)}.{name} "
                    "of symbolic-bn while it ran; the check is refused")
        return False


# ---------------------------------------------------------------------------------------------
# Tracing, spot points, re-confirmation (shared with framework_autodiff)
# ---------------------------------------------------------------------------------------------
def trace_function(adapter, fn, arrays, who, name, deadline):
    """Trace ``fn`` at ``arrays`` (float64 examples); BudgetExceeded when the time ran out, one-line
    ImplementationError when ``fn`` does not trace or holds an op the interpreter does not run."""
    remaining = None if deadline is None else max(deadline - time.perf_counter(), 1e-3)
    try:
        with guard_checker(who), time_budget(remaining):
            return adapter.trace(fn, arrays)
    except BudgetExceeded:
        raise
    except adapter.errors as exc:
        if deadline is not None and time.perf_counter() >= deadline:
            raise BudgetExceeded() from None  # the alarm fired inside the tracer, which wrapped it
        raise ImplementationError(f"{who}: {exc}") from None
    except SystemExit as exc:
        raise ImplementationError(f"{who}: {name} raised SystemExit({exc.code!r}) while traced") from None
    except ImplementationError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure of the user's code is one line
        raise ImplementationError(f"{who}: {name} could not be traced: {type(exc).__name__}: "
                                  f"{_first_line(exc)}") from None


def call_framework(adapter, fn, arrays, who, name):
    """The framework's own float64 result of ``fn(*arrays)`` as a flat list of NumPy arrays."""
    try:
        with guard_checker(who):
            out = adapter.call(fn, arrays)
    except SystemExit as exc:
        raise ImplementationError(f"{who}: {name} raised SystemExit({exc.code!r})") from None
    return [adapter.to_numpy(leaf) for leaf in _flatten(out)]


def _first_line(exc) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."


def spot_check(adapter, fn, traced, make_arrays, who, name) -> str | None:
    """None when the trace on NumPy reproduces the framework at :data:`SPOT_POINTS` random points;
    otherwise the reason (one line)."""
    for i in range(SPOT_POINTS):
        arrays = make_arrays(i)
        try:
            eager = call_framework(adapter, fn, arrays, who, name)
        except ImplementationError:
            raise
        except Exception as exc:  # noqa: BLE001
            return (f"{adapter.name} raised {type(exc).__name__}: {_first_line(exc)} when running {name} "
                    f"at a random float64 point, where its trace runs")
        try:
            mine = [None if leaf is None else np.asarray(leaf, dtype=np.float64)
                    for leaf in _flatten(traced.run(np, *arrays))]
        except Exception as exc:  # noqa: BLE001
            return f"the trace does not run on NumPy at a random point: {type(exc).__name__}: {_first_line(exc)}"
        if len(mine) != len(eager):
            return f"the trace returns {len(mine)} arrays, {adapter.name} {len(eager)}"
        for k, (a, b) in enumerate(zip(mine, eager)):
            if a is None or b is None:
                if a is not b:
                    return f"output {k} is None in one of the trace and {adapter.name} only"
                continue
            if a.shape != b.shape:
                return f"output {k} has shape {a.shape} in the trace and {b.shape} in {adapter.name}"
            if not np.all(np.isfinite(b)):
                if not np.array_equal(np.isfinite(a), np.isfinite(b)):
                    return f"output {k}: {adapter.name} gives non-finite values where the trace does not"
                continue
            scale = max(1.0, float(np.max(np.abs(b))) if b.size else 1.0)
            diff = float(np.max(np.abs(a - b))) if b.size else 0.0
            if not diff <= SPOT_RTOL * scale:
                return (f"at a random float64 point the trace (run on NumPy) differs from {adapter.name} "
                        f"itself by {diff:.3g} in output {k} (size {scale:.3g}): the trace does not "
                        "reproduce the function (does it behave differently while traced?)")
    return None


def confirm(framework_value, implementation, reference) -> tuple[bool, str]:
    """Whether the framework's float64 value confirms an exact counterexample, and the sentence
    saying so.  ``implementation`` / ``reference`` are the exact values (SymPy numbers) of the
    trace and of the reference at the point."""
    import sympy

    ref = float(sympy.N(reference, 30))
    imp = float(sympy.N(implementation, 30))
    fw = float(framework_value)
    if not math.isfinite(fw):
        return False, (f"the framework's float64 value there is {fw}, the exact value of its trace "
                       f"{imp:.17g}: not confirmed")
    noise = max(abs(fw - imp), _ULPS * max(abs(ref), abs(imp), abs(fw), 2.0 ** -1022))
    far = abs(fw - ref)
    text = (f"the framework in float64 at the point gives {fw!r}; the exact reference is "
            f"{ref:.17g} and the exact value of its trace {imp:.17g}: |framework − reference| = "
            f"{far:.3g}, {far / noise:.3g} times its rounding noise {noise:.3g}")
    ok = far > CONFIRM_FACTOR * noise
    return ok, text + (" (re-confirmed)" if ok else f" (not above {CONFIRM_FACTOR:g}×: not confirmed)")


def confirm_undefined(framework_value) -> tuple[bool, str]:
    fw = float(framework_value)
    if math.isfinite(fw):
        return False, (f"the trace has no real value at the point, but the framework in float64 "
                       f"gives {fw!r} there: not confirmed")
    return True, f"the framework in float64 gives {fw} there (re-confirmed)"


# ---------------------------------------------------------------------------------------------
# check_forward / check_backward with framework=
# ---------------------------------------------------------------------------------------------
_LOCATION = re.compile(r"^(?P<name>[A-Za-z_]\w*)(\[(?P<idx>[\d, ]*)\])?$")


def parse_location(text):
    m = _LOCATION.match(text)
    if m is None:
        return None, ()
    idx = tuple(int(i) for i in m.group("idx").split(",")) if m.group("idx") else ()
    return m.group("name"), idx


def to_float_array(values) -> np.ndarray:
    arr = np.asarray(values, dtype=object)
    out = np.empty(arr.shape, dtype=np.float64)
    for idx in np.ndindex(*arr.shape):
        v = arr[idx]
        out[idx] = float(Fraction(int(v.p), int(v.q))) if hasattr(v, "p") else float(Fraction(v))
    return out


def _points_maker(layer, role, seed):
    from .autodiff import _make_point

    shapes = {"input_shape": layer.input_shape, "weight_shape": layer.weight_shape,
              "bias_shape": layer.bias_shape}

    def make(i):
        pt = _make_point(shapes, 1, "float64", seed, 7919 + i)
        arrays = list(pt.primals)
        if role == "backward":
            arrays.append(pt.cotangent)
        return arrays

    return make


def _data_wrapper(fn, eps, has_bias, role):
    """fn with framework arrays in and eps bound: (x, weight[, bias][, grad_out]) -> fn's output."""
    def traced(*arrays):
        x, w = arrays[0], arrays[1]
        b = arrays[2] if has_bias else None
        rest = arrays[3 if has_bias else 2:]
        return fn(x, w, b, *rest, eps)

    name = _name(fn)
    traced.__qualname__ = traced.__name__ = name
    return traced


def check_arity(fn, n: int, who: str, what: str) -> None:
    """Refuse (one line) a function that cannot be called with ``n`` positional arguments."""
    import inspect

    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # builtins and C functions: let the call decide
    try:
        sig.bind(*range(n))
    except TypeError:
        raise ValueError(f"{who}: {_name(fn)}{sig} cannot be called as {what}") from None


def _name(fn) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__


def check_framework(role, fn, layer, framework, *, shape=None, eps=None, budget, seed):
    """check_forward / check_backward of a framework-native function (module docstring)."""
    import dataclasses

    from . import check

    who = f"check_{role}"
    t0 = time.perf_counter()
    adapter = framework_adapter(framework, who)
    budget = check._validate(who, fn, budget, seed)
    layer = copy.deepcopy(check._layer_for(who, layer, shape, eps))
    eps_float = framework_eps(layer, who)
    deadline = None if budget is None else t0 + budget
    has_bias = layer.bias_shape is not None
    name = _name(fn)
    wrapped = _data_wrapper(fn, eps_float, has_bias, role)
    check_arity(fn, 4 if role == "forward" else 5, who,
                "forward(x, weight, bias, eps)" if role == "forward" else
                "backward(x, weight, bias, grad_out, eps) (eps is passed as a Python float)")
    make_arrays = _points_maker(layer, role, seed)
    examples = make_arrays(SPOT_POINTS + 1)
    out_names = ("y",) if role == "forward" else tuple("d" + n for n in layer.argument_names)

    try:
        traced = trace_function(adapter, wrapped, examples, who, name, deadline)
    except BudgetExceeded:
        cert = check.Certificate(f"{role} {name} [{framework} trace] at {layer.name} {layer.shape_text()}",
                                 parameters={"framework": framework, "framework_version": adapter.version})
        return check._all_undecided(cert, role, out_names, layer, t0, budget,
                                    "time budget exceeded while tracing the function")

    def exact(*args, xp):
        arrays = [a for a in args[:-1] if a is not None]  # drop a None bias and ε (held by the trace)
        return traced.run(xp, *arrays)

    exact.__qualname__ = exact.__name__ = f"{name} [{framework} {adapter.version} trace]"
    remaining = None if deadline is None else max(deadline - time.perf_counter(), 1e-3)
    cert = check._check(role, exact, layer, None, None, remaining, seed)

    mismatch = None
    try:
        with time_budget(None if deadline is None else max(deadline - time.perf_counter(), 1e-3)):
            mismatch = spot_check(adapter, wrapped, traced, make_arrays, who, name)
    except BudgetExceeded:
        mismatch = "time budget exceeded before the trace was compared with the framework"
    method_head = f"the function {adapter.method(traced)}; its trace, in place of the function: "
    method_tail = f"; the trace run in float64 on NumPy reproduces {framework} at {SPOT_POINTS} random points"
    prefix = f"the {framework} {adapter.version} trace of {name} (traced in float64): "
    new = []
    for ob in cert:
        ob = dataclasses.replace(ob, statement=prefix + ob.statement,
                                 method=method_head + ob.method.replace("the user's function", "the trace")
                                 .replace("the function", "the trace") + method_tail)
        if ob.status == "proved" and mismatch:
            ob = dataclasses.replace(ob, status="undecided", detail=mismatch)
        elif ob.status == "failed":
            ob = _reconfirm(ob, adapter, wrapped, layer, role, out_names, who, name)
        new.append(ob)
    cert.obligations = new
    cert.subject = f"{role} {name} [{framework} trace] at " + (
        layer.shape_text() if layer.name == "batchnorm_channel_first" else f"{layer.name} {layer.shape_text()}")
    cert.parameters.update({"framework": framework, "framework_version": adapter.version,
                            "trace": adapter.size(traced), "eps_float": repr(eps_float)})
    cert.seconds = time.perf_counter() - t0
    return cert


def _reconfirm(ob, adapter, wrapped, layer, role, out_names, who, name):
    """A failed obligation of check_framework, re-run by the framework at its counterexample."""
    import dataclasses

    cex = dict(ob.counterexample)
    arg_names = list(layer.argument_names)
    try:
        arrays = [to_float_array(cex[n]) for n in arg_names]
        if role == "backward":
            arrays.append(to_float_array(cex["grad_out"]))
        out_name, idx = parse_location(cex["location"])
        k = out_names.index(out_name)
    except (KeyError, ValueError, TypeError) as exc:
        return dataclasses.replace(ob, status="undecided", counterexample=None,
                                   detail=f"the counterexample could not be re-run by {adapter.name} ({exc})")
    try:
        outs = call_framework(adapter, wrapped, arrays, who, name)
        value = np.asarray(outs[k], dtype=np.float64)[idx]
    except ImplementationError:
        raise
    except Exception as exc:  # noqa: BLE001
        value = math.nan
        note = f" ({adapter.name} raised {type(exc).__name__}: {_first_line(exc)})"
    else:
        note = ""
    if cex.get("undefined"):
        ok, text = confirm_undefined(value)
    else:
        ok, text = confirm(value, cex["implementation"], cex["reference"])
    cex["framework_float64"] = float(value)
    if ok:
        return dataclasses.replace(ob, counterexample=cex, detail=(ob.detail + "; " if ob.detail else "")
                                   + f"{adapter.name} {adapter.version} at {cex['location']}: {text}{note}")
    return dataclasses.replace(ob, status="undecided", counterexample=None,
                               detail=(ob.detail + "; " if ob.detail else "") +
                               f"the exact run of the trace differs from the reference at {cex['location']}, "
                               f"but {adapter.name} did not re-confirm it: {text}{note}")
