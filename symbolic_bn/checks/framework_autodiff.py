r"""A framework's own derivatives of a layer, proved exactly: ``check_autodiff``.

``check_autodiff(f, layer, framework="torch", order=1, modes="all", budget=..., seed=0)`` takes a
framework-native forward ``f(x, weight, bias) -> y`` (``bias`` is ``None`` for rms_norm; float64
arrays in the layer's layout; ``f`` implements the layer with the layer's ε, which must be a
number) and decides, for every mode up to ``order`` and every framework API that runs it, whether
what the framework computes for that nesting of derivatives is exactly the derivative of the layer.

Modes, APIs, and what is compared
---------------------------------
Mode names and APIs are those of :func:`symbolic_bn.checks.autodiff.crosscheck_autodiff`
(``"A-over-B"`` is A applied to B(f); ``fwd`` a JVP, ``rev`` a VJP; the vectors each step consumes
are given by :func:`~symbolic_bn.checks.autodiff.mode_plan`; ``modes="all"`` is every mode of
orders 1 … ``order``).  APIs: ``"torch.func"`` (``torch.func.jvp``/``vjp`` nestings, every mode),
``"torch.autograd"`` (``torch.autograd.grad`` with ``create_graph=True``, reverse steps only),
``"torch.autograd.forward_ad"`` (dual numbers, one forward level, with ``autograd.grad`` for the
reverse steps); ``"jax"`` (``jax.jvp``/``jax.vjp`` nestings, every mode).  The nestings are the ones
``crosscheck_autodiff`` runs numerically (the same code), so the two verdicts can be compared row
by row.

Each (API, mode) is one obligation, named ``"<api> <mode>"`` (e.g. ``"torch.func fwd-over-rev"``),
plus one ``"primal"`` obligation (``f`` is the layer at all).  The nesting, as a function of the
primals p = (x, weight[, bias]) and of the vectors its steps consume -- the cotangent g and the
directions u1, u2, … on p, *as extra traced inputs* -- is traced in float64 and run on the exact
engine with every one of them symbolic.  Its result (y-shaped after only forward steps, p-shaped
otherwise) is compared *entry by entry* with the exact reference: the same nesting applied to the
layer's closed-form forward (``layer.forward`` on the exact namespace) by the engine's own
calculus (:mod:`symbolic_bn.exact.calculus`, through the statistics-group coordinates of
:mod:`symbolic_bn.exact.coordinates`): a ``fwd`` step with direction u is ``h ↦ Dh[u] =
Σ_e ∂h/∂p_e · u_e`` (``EntryJacobian``), a ``rev`` step with cotangent c is ``h ↦ Dhᵀc = ∇_p ⟨c,
h⟩`` (``Inputs.gradient``).  Nothing of the framework's derivative rules enters the reference.
The statement (e.g. ``D(D(y)ᵀg)[u1]`` for ``fwd-over-rev``) names the framework and its version.
Comparing the whole result, rather than crosscheck's final scalar pairing, is equivalent (the
pairing vector is arbitrary) and locates a wrong entry.

Verdicts (the house rules)
--------------------------
* 'proved': every entry's difference is zero by exact normal forms, every side condition of an
  atom the trace created holds on the domain, and the trace run on NumPy reproduces the framework
  at :data:`~symbolic_bn.checks.frameworks.SPOT_POINTS` random float64 points.  A trace is
  straight-line code (comparisons in it are decided on the whole domain or refused), so, unlike
  user Python code, it needs no separate visit of degenerate points;
* 'failed': an exact rational point of the domain (generic first, then the degenerate kinds of
  :mod:`symbolic_bn.checks.points`) where the trace's exact value differs from the reference's,
  confirmed by SymPy (``differ_exactly``) and re-confirmed by running the framework itself in float64
  at that point (:func:`~symbolic_bn.checks.frameworks.confirm`);
* 'undecided' otherwise, with the reason: the framework raised for the mode (crosscheck's 'ERROR'
  rows: an ``autograd.Function`` without a ``jvp``, say), the trace holds an op the interpreter does
  not run (named), a branch could not be decided, a side condition is not shown, the time budget,
  or a counterexample that the framework did not re-confirm.

``f`` itself not tracing (data-dependent control flow, values read into Python, unsupported op in
the forward), returning the wrong shape, an unknown framework or one that is not installed, bad
``order``/``modes``/``layer``: one-line ``ValueError`` (:class:`ImplementationError` for ``f``).

Float constants of the traces (ε, ``1/N`` of torch's decompositions) are read as the simplest
rational within half an ulp and listed among each obligation's assumptions with the trace node.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from fractions import Fraction

import numpy as np

from .. import layers as L
from ..exact import normal, sign
from ..exact.budget import BudgetExceeded, check_budget, time_budget
from ..exact.convert import Substitution, to_sympy
from ..exact.decide import differ_exactly
from ..exact.errors import BranchError, UndefinedValue, UnsupportedOperation
from ..exact.floats import float_log
from ..exact.space import Space
from ..obligations.certificate import Certificate, Obligation
from ..xp.engine import ExactNamespace, _pairwise_sum, to_values
from . import autodiff as A
from .crosscheck import ImplementationError
from .frameworks import (SPOT_POINTS, _first_line, _name, call_framework, check_arity, confirm,
                         confirm_undefined, framework_adapter, spot_check, trace_function)
from .points import PointSearch
from .problem import Problem

__all__ = ["check_autodiff", "autodiff_text", "DEFAULT_BUDGET", "API_TEXT"]

#: Seconds for a whole check_autodiff (tracing included).
DEFAULT_BUDGET = 600.0
#: Generic points tried for a counterexample (then the degenerate kinds).
SEARCH_POINTS = 4

API_TEXT = {
    "torch.func": "torch.func.jvp / torch.func.vjp nesting",
    "torch.autograd": "torch.autograd.grad(create_graph=True) nesting",
    "torch.autograd.forward_ad": "torch.autograd.forward_ad dual numbers (one level) with autograd.grad",
    "jax": "jax.jvp / jax.vjp nesting",
}


# ---------------------------------------------------------------------------------------------
# The reference: nestings applied to the layer's forward by the engine's calculus
# ---------------------------------------------------------------------------------------------
class _Derivatives:
    """Exact nested derivatives of ``problem.y``, each prefix of steps computed once."""

    def __init__(self, problem: Problem):
        self.problem = problem
        self.names = [problem.x_name, problem.w_name] + ([problem.b_name] if problem.b_name else [])
        self.jacobian = problem.inputs.jacobian()
        self.cache: dict = {}

    def vector(self, key):
        p = self.problem
        return [p.grad_out] if key == "g" else list(p.directions[int(key[1:]) - 1])

    def of(self, steps, vectors) -> list:
        key = tuple(zip(steps, vectors))
        got = self.cache.get(key)
        if got is not None:
            return got
        space = self.problem.space
        if not steps:
            out = [self.problem.y.view(np.ndarray)]
        else:
            inner = self.of(steps[:-1], vectors[:-1])
            vec = [np.asarray(a, dtype=object) for a in self.vector(vectors[-1])]
            if steps[-1] == "fwd":
                out = []
                position = {n: i for i, n in enumerate(self.names)}
                for arr in inner:
                    res = np.empty(arr.shape, dtype=object)
                    for idx in np.ndindex(*arr.shape):
                        terms = [d * vec[position[name]][e] for (name, e), d in
                                 self.jacobian.of(arr[idx]).items() if name in position]
                        res[idx] = _pairwise_sum(space, terms) if terms else space.zero()
                    out.append(res)
            else:
                terms = [a[idx] * c[idx] for a, c in zip(inner, vec) for idx in np.ndindex(*a.shape)]
                grads = self.problem.inputs.gradient(_pairwise_sum(space, terms), self.names)
                out = [np.asarray(grads[n], dtype=object) for n in self.names]
        self.cache[key] = out
        return out


def formula(steps, vectors) -> str:
    """The nesting in the derivative's notation: ``D(D(y)ᵀg)[u1]`` for fwd-over-rev."""
    h = "y"
    for step, vec in zip(steps, vectors):
        h = f"D({h})[{vec}]" if step == "fwd" else f"D({h})ᵀ{vec}"
    return h


# ---------------------------------------------------------------------------------------------
# The nestings, as framework functions of (primals, vectors)
# ---------------------------------------------------------------------------------------------
def _runner(adapter, api, has_bias):
    if adapter.name == "torch":
        backend = A._TorchBackend(adapter.module, "float64", has_bias)
        if api is None:
            return lambda f, steps, vecs, p: backend.call(f, p)
        return {"torch.func": backend._run_func, "torch.autograd": backend._run_autograd,
                "torch.autograd.forward_ad": backend._run_forward_ad}[api]
    jax = adapter.module

    def run(f, steps, vecs, primals):
        def h(*q):
            return f(q[0], q[1], q[2] if has_bias else None)
        for step, vec in zip(steps, vecs):
            if step == "fwd":
                h = (lambda inner, v: (lambda *q: jax.jvp(inner, q, v)[1]))(h, tuple(vec))
            else:
                h = (lambda inner, c: (lambda *q: jax.vjp(inner, *q)[1](c)))(h, vec)
        return h(*primals)

    return run


def _nested(adapter, f, api, steps, vectors, n_primal, has_bias, label):
    """``nested(*primals, *vector arrays) -> tuple of arrays``: the mode as one framework function."""
    run = _runner(adapter, api, has_bias)

    def nested(*arrays):
        primals = tuple(arrays[:n_primal])
        k, vecs = n_primal, []
        for v in vectors:
            if v == "g":
                vecs.append(arrays[k])
                k += 1
            else:
                vecs.append(tuple(arrays[k:k + n_primal]))
                k += n_primal
        out = run(f, steps, vecs, primals)
        return tuple(out) if isinstance(out, (tuple, list)) else (out,)

    nested.__qualname__ = nested.__name__ = label
    return nested


# ---------------------------------------------------------------------------------------------
# The check
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class _Spec:
    mode: str
    order: int
    api: str | None
    steps: tuple
    vectors: tuple

    @property
    def name(self) -> str:
        return "primal" if self.api is None else f"{self.api} {self.mode}"


def _specs(adapter, mode_list):
    out = [_Spec("primal", 0, None, (), ())]
    for m in mode_list:
        steps, vecs, _ = A.mode_plan(m)
        for api in A.APIS[adapter.name]:
            if A._api_runs(api, steps):
                out.append(_Spec(m, len(steps), api, steps, vecs))
    return out


class _Check:
    def __init__(self, f, layer, adapter, order, mode_list, budget, seed):
        self.f, self.layer, self.adapter = f, layer, adapter
        self.order, self.seed = order, seed
        self.t0 = time.perf_counter()
        self.deadline = None if budget is None else self.t0 + budget
        self.budget = budget
        self.fname = _name(f)
        self.has_bias = layer.bias_shape is not None
        self.n_primal = 3 if self.has_bias else 2
        self.problem = Problem(layer, with_cotangent=True, directions=order)
        self.reference = _Derivatives(self.problem)
        self.specs = _specs(adapter, mode_list)
        shapes = {"input_shape": layer.input_shape, "weight_shape": layer.weight_shape,
                  "bias_shape": layer.bias_shape}
        self.shapes = shapes
        self.points = PointSearch(self.problem, None, "backward", (), (), None, seed)
        self.point_cache: dict = {}
        self.trace_atoms: list = []   # (spec name, atoms the trace created)

    # -- helpers
    def remaining(self):
        return None if self.deadline is None else max(self.deadline - time.perf_counter(), 1e-3)

    def expired(self):
        return self.deadline is not None and time.perf_counter() >= self.deadline

    def float_arrays(self, spec, i):
        pt = A._make_point(self.shapes, A.MAX_ORDER, "float64", self.seed, i)
        arrays = list(pt.primals)
        for v in spec.vectors:
            arrays += [pt.cotangent] if v == "g" else list(pt.vector(v))
        return arrays

    def exact_arrays(self, spec):
        p = self.problem
        arrays = [p.x, p.weight] + ([p.bias] if self.has_bias else [])
        for v in spec.vectors:
            arrays += self.reference.vector(v)
        return [a.copy() for a in arrays]

    def out_names(self, spec):
        if "rev" in spec.steps:
            return ["result." + n for n in self.reference.names]
        return ["result"] if spec.api is not None else ["y"]

    def statement(self, spec):
        a = self.adapter
        layer = self.layer
        shape = layer.shape_text()
        if spec.api is None:
            return (f"{a.name} {a.version}: {self.fname}(x, weight, bias), traced in float64, equals "
                    f"the {layer.name} output y entrywise, for every input with {layer.domain_text()}, "
                    f"at shape {shape}")
        vecs = [v for v in spec.vectors]
        dirs = sorted({v for v in vecs if v != "g"})
        over = []
        if "g" in vecs:
            over.append("every cotangent g of y")
        if dirs:
            over.append(f"every direction {', '.join(dirs)} on p = (x, weight{', bias' if self.has_bias else ''})")
        return (f"{a.name} {a.version}, {API_TEXT[spec.api]}: the {spec.mode} derivative of "
                f"{self.fname}, traced in float64, equals {formula(spec.steps, spec.vectors)} entry by "
                f"entry, where y is the {layer.name} forward (the layer's closed form) and D the "
                f"derivative in p, for every input with {layer.domain_text()} and "
                f"{' and '.join(over)} (symbolic), at shape {shape}")

    def assumptions(self, floats):
        layer = self.layer
        out = [layer.domain_text(), f"ε = {layer.eps} (exact)"]
        return out + floats.assumptions()

    def obligation(self, spec, status, method, start, floats=None, **kw):
        return Obligation(spec.name, self.statement(spec), status, method,
                          assumptions=self.assumptions(floats) if floats is not None else
                          [self.layer.domain_text(), f"ε = {self.layer.eps} (exact)"],
                          seconds=time.perf_counter() - start,
                          group="primal" if spec.api is None else f"order {spec.order}", **kw)

    # -- one (api, mode)
    def decide(self, spec) -> Obligation:
        start = time.perf_counter()
        who = "check_autodiff"
        label = f"{self.fname} [{spec.name}]"
        if self.expired():
            return self.obligation(spec, "undecided", "not run", start,
                                   detail=f"time budget of {self.budget:g} s exceeded before this mode was traced")
        nested = _nested(self.adapter, self.f, spec.api, spec.steps, spec.vectors, self.n_primal,
                         self.has_bias, label)
        try:
            traced = trace_function(self.adapter, nested, self.float_arrays(spec, 0), who, label, self.deadline)
        except BudgetExceeded:
            return self.obligation(spec, "undecided", "tracing", start,
                                   detail=f"time budget of {self.budget:g} s exceeded while tracing")
        except ImplementationError as exc:
            if spec.api is None:
                raise  # f itself does not trace: bad input
            return self.obligation(spec, "undecided", f"tracing the {spec.mode} nesting", start,
                                   detail=f"{self.adapter.name} could not run or trace this mode: "
                                          f"{str(exc).removeprefix(who + ': ')}")
        method = (f"the nesting {self.adapter.method(traced)}, with the cotangent and directions as "
                  "traced inputs; run once on the exact engine at symbolic inputs; the reference by "
                  "the engine's calculus (fwd: Σ ∂h/∂p·u by EntryJacobian, rev: ∇⟨c, h⟩ by "
                  "Inputs.gradient) from the layer's closed-form forward; each entry's difference "
                  "decided zero by exact normal forms; every side condition of the trace's atoms "
                  "shown on the domain; the trace run in float64 on NumPy reproduces "
                  f"{self.adapter.name} at {SPOT_POINTS} random points")
        space = self.problem.space
        floats = None
        try:
            with time_budget(self.remaining()):
                want = self.reference.of(spec.steps, spec.vectors)
        except BudgetExceeded:
            return self.obligation(spec, "undecided", method, start,
                                   detail=f"time budget of {self.budget:g} s exceeded while computing the reference")
        n_atoms = len(space.atoms)
        try:
            with time_budget(self.remaining()):
                try:
                    with float_log() as floats:
                        out = traced.run(self.problem.xp, *self.exact_arrays(spec))
                        got = self.read(spec, out, want, label)
                finally:  # atoms made by a partial run may be reused by later traces
                    self.trace_atoms.append((spec.name, space.atoms[n_atoms:]))
                if isinstance(got, str):
                    if spec.api is None:
                        raise ImplementationError(f"{who}: {got}")
                    return self.obligation(spec, "undecided", method, start, floats, detail=got)
                bad = None
                for k, (g_arr, w_arr) in enumerate(zip(got, want)):
                    for idx in np.ndindex(*w_arr.shape):
                        if not normal.is_zero_value(space, g_arr[idx] - w_arr[idx]):
                            bad = (k, idx)
                            break
                    if bad:
                        break
                unmet = [space.condition_text(a) for a in space.unmet_conditions(space.atoms[n_atoms:])]
        except BudgetExceeded:
            return self.obligation(spec, "undecided", method, start, floats,
                                   detail=f"time budget of {self.budget:g} s exceeded")
        except ImplementationError:
            raise
        except (BranchError, UndefinedValue, UnsupportedOperation, ZeroDivisionError) as exc:
            try:
                with time_budget(self.remaining()):
                    cex = self.search(spec, traced, nested, want)
            except BudgetExceeded:
                cex = "time budget exceeded while searching for a counterexample"
            if isinstance(cex, tuple):
                return self.obligation(spec, "failed", _CEX_METHOD, start, floats, counterexample=cex[0],
                                       detail=cex[1])
            return self.obligation(spec, "undecided", method, start, floats,
                                   detail=f"the trace could not be run symbolically: {type(exc).__name__}: "
                                          f"{_first_line(exc)}" + (f"; {cex}" if cex else ""))
        except Exception as exc:  # noqa: BLE001 - e.g. a trace reading memory it never wrote
            return self.obligation(spec, "undecided", method, start, floats,
                                   detail=f"the trace could not be run on the exact engine: "
                                          f"{type(exc).__name__}: {_first_line(exc)}")
        if bad is None:
            if unmet:
                return self.obligation(spec, "undecided", method, start, floats,
                                       detail="every entry's difference is zero, but only where these side "
                                              "conditions of the trace hold, which the domain does not "
                                              "imply: " + "; ".join(unmet))
            mismatch = spot_check(self.adapter, nested, traced, lambda i: self.float_arrays(spec, 1 + i),
                                  who, label)
            if mismatch:
                return self.obligation(spec, "undecided", method, start, floats, detail=mismatch)
            return self.obligation(spec, "proved", method, start, floats)
        try:
            with time_budget(self.remaining()):
                cex = self.search(spec, traced, nested, want)
        except BudgetExceeded:
            cex = "time budget exceeded while searching for a counterexample"
        if isinstance(cex, tuple):
            return self.obligation(spec, "failed", _CEX_METHOD, start, floats, counterexample=cex[0],
                                   detail=cex[1])
        where = self.out_names(spec)[bad[0]] + f"[{', '.join(map(str, bad[1]))}]"
        return self.obligation(spec, "undecided", method, start, floats,
                               detail=f"the exact normal form of {where} − reference is not zero, but no "
                                      "rational point of the domain tried shows a re-confirmed difference"
                                      + (f" ({cex})" if cex else ""))

    def read(self, spec, out, want, label):
        """The trace's outputs as object arrays of Values, or the reason they cannot be compared."""
        leaves = list(out) if isinstance(out, (tuple, list)) else [out]
        if len(leaves) != len(want):
            return f"{label} returned {len(leaves)} arrays, expected {len(want)}"
        got = []
        for k, (leaf, w) in enumerate(zip(leaves, want)):
            if leaf is None:
                return f"{label}: result {k} is None"
            arr = np.asarray(leaf, dtype=object) if not isinstance(leaf, np.ndarray) else leaf.view(np.ndarray)
            if arr.shape != w.shape:
                return f"{label} returned shape {arr.shape} for result {k}, expected {w.shape}"
            got.append(np.asarray(to_values(self.problem.space, arr), dtype=object))
        return got

    # -- counterexamples
    def _point(self, kind, number):
        key = (kind, number)
        if key in self.point_cache:
            return self.point_cache[key]
        ps = self.points
        pt = ps.draw(kind)
        layer = self.layer
        dirs = []
        for _ in range(self.order):
            d = [np.empty(layer.input_shape, dtype=object), np.empty(layer.weight_shape, dtype=object)]
            if self.has_bias:
                d.append(np.empty(layer.bias_shape, dtype=object))
            for a in d:
                for idx in np.ndindex(*a.shape):
                    a[idx] = ps._rat()
            dirs.append(d)
        pt["directions"] = dirs
        p = self.problem
        values = p.variable_values({p.x_name: pt["x"], p.w_name: pt["weight"],
                                    **({p.b_name: pt["bias"]} if p.b_name else {}),
                                    "grad_out": pt["grad_out"], "eps": pt["eps"]})
        for dnames, d in zip(p.direction_names, dirs):
            for n, a in zip(dnames, d):
                values.update(p.inputs.point_values(n, a))
        pt["values"] = values
        self.point_cache[key] = pt
        return pt

    def _point_arrays(self, spec, pt):
        arrays = [pt["x"], pt["weight"]] + ([pt["bias"]] if self.has_bias else [])
        for v in spec.vectors:
            arrays += [pt["grad_out"]] if v == "g" else list(pt["directions"][int(v[1:]) - 1])
        return arrays

    def search(self, spec, traced, nested, want):
        """(counterexample dict, re-confirmation text); None (no difference found); or a string
        saying why a difference found was not re-confirmed."""
        kinds = self.points.kinds()
        keys = [("generic", i) for i in range(SEARCH_POINTS)] + [(k, 0) for k in kinds if k != "generic"]
        note = None
        for kind, number in keys:
            pt = self._point(kind, number)
            arrays = self._point_arrays(spec, pt)
            found = self._difference(spec, traced, want, pt, arrays)
            if found is None:
                continue
            if isinstance(found, str):
                return found
            cex = self._reconfirm(spec, nested, pt, arrays, *found)
            if isinstance(cex, tuple):
                return cex
            note = cex  # the framework disagrees with its own trace there: try the next point
        return note

    def _difference(self, spec, traced, want, pt, arrays):
        """(k, idx, trace value, reference value, undefined) of the first entry where the trace's
        exact value at the point differs from the reference's (SymPy-confirmed), or None."""
        pspace = Space(self.problem.space.backend.name, name="point")
        at = Substitution(self.problem.space, pt["values"], pspace)
        try:
            out = traced.run(ExactNamespace(pspace), *[to_values(pspace, a) for a in arrays])
        except (UndefinedValue, ZeroDivisionError) as exc:
            return 0, (0,) * want[0].ndim, None, to_sympy(at(want[0].flat[0])), \
                f"{type(exc).__name__}: {_first_line(exc)}"
        except Exception:  # noqa: BLE001 - an undecidable branch (or worse) here: try another point
            return None
        got = self.read(spec, out, want, spec.name)
        if isinstance(got, str):
            return got
        for k, w_arr in enumerate(want):
            for idx in np.ndindex(*w_arr.shape):
                u, r = got[k][idx], at(w_arr[idx])
                d = u - r
                if normal.is_zero_value(pspace, d) or sign.sign(pspace, d) not in ("pos", "neg"):
                    continue
                us, rs = to_sympy(u), to_sympy(r)
                if differ_exactly(us, rs) is True:
                    return k, idx, us, rs, None
        return None

    def _reconfirm(self, spec, nested, pt, arrays, k, idx, us, rs, undefined):
        import sympy

        floats = [np.vectorize(lambda v: float(Fraction(v)), otypes=[np.float64])(a) for a in arrays]
        try:
            outs = call_framework(self.adapter, nested, floats, "check_autodiff", spec.name)
            value = float(np.asarray(outs[k], dtype=np.float64)[idx])
            raised = ""
        except ImplementationError:
            raise
        except Exception as exc:  # noqa: BLE001
            value, raised = float("nan"), f" ({self.adapter.name} raised {type(exc).__name__}: {_first_line(exc)})"
        ok, text = confirm_undefined(value) if undefined else confirm(value, us, rs)
        location = self.out_names(spec)[k] + (f"[{', '.join(map(str, idx))}]" if idx else "")
        if not ok:
            return f"at {location} ({pt['kind']} point): {text}{raised}"
        rational = np.vectorize(lambda v: sympy.Rational(Fraction(v).numerator, Fraction(v).denominator),
                                otypes=[object])
        p = self.problem
        cex = {"location": location, "point": pt["kind"],
               "implementation": us if us is not None else f"undefined: {undefined}",
               "reference": rs,
               "implementation_approx": float(sympy.N(us, 17)) if us is not None else float("nan"),
               "reference_approx": float(sympy.N(rs, 17)),
               "framework_float64": value,
               p.x_name: rational(pt["x"]).tolist(), p.w_name: rational(pt["weight"]).tolist()}
        if self.has_bias:
            cex[p.b_name] = rational(pt["bias"]).tolist()
        for v in spec.vectors:
            if v == "g":
                cex["g"] = rational(pt["grad_out"]).tolist()
            else:
                d = pt["directions"][int(v[1:]) - 1]
                cex[v] = {n: rational(a).tolist() for n, a in zip(self.reference.names, d)}
        cex["eps"] = sympy.Rational(Fraction(pt["eps"]).numerator, Fraction(pt["eps"]).denominator)
        if undefined:
            cex["undefined"] = f"the trace has no real value at this point inside the domain: {undefined}"
        return cex, f"{self.adapter.name} {self.adapter.version} at {location}: {text}{raised}"

    # -- all of it
    def run(self) -> Certificate:
        a, layer = self.adapter, self.layer
        cert = Certificate(
            f"autodiff {self.fname} [{a.name} {a.version}] at {layer.name} {layer.shape_text()}, order {self.order}",
            parameters={"framework": a.name, "framework_version": a.version, "layer": layer.name,
                        "shape": layer.input_shape, "eps": str(layer.eps), "order": self.order,
                        "modes": sorted({s.mode for s in self.specs if s.api}, key=A.MODES.index),
                        "apis": list(A.APIS[a.name]), "seed": self.seed, "budget": self.budget})
        for spec in self.specs:
            cert.add(self.decide(spec))
            if spec.api is None and cert.obligations[-1].status == "failed":
                pass  # f is not the layer: its derivatives are still decided (and will fail)
        self._shared_conditions(cert)
        cert.seconds = time.perf_counter() - self.t0
        return cert

    def _shared_conditions(self, cert):
        """Atoms are shared within the Space: a later trace may reuse an atom an earlier one
        created.  Any trace atom whose side condition is not shown makes every later 'proved'
        'undecided' (sound; never happens for the layers' traces with ε > 0)."""
        space = self.problem.space
        unmet_from = None
        for i, (name, atoms) in enumerate(self.trace_atoms):
            if unmet_from is None and atoms and space.unmet_conditions(atoms):
                unmet_from = name
        if unmet_from is None:
            return
        seen = False
        for j, ob in enumerate(cert.obligations):
            seen = seen or ob.name == unmet_from
            if seen and ob.status == "proved":
                cert.obligations[j] = dataclasses.replace(
                    ob, status="undecided", detail=f"the trace of {unmet_from} created an atom whose side "
                    "condition is not shown on the domain, and this trace may share it")


_CEX_METHOD = ("exact counterexample: the trace run on the exact engine at a rational point of the "
               "domain; the reference there by exact substitution; the difference confirmed by SymPy "
               "with outward-rounded interval arithmetic (differ_exactly) and re-confirmed by the "
               "framework itself in float64 at the point")


def check_autodiff(f, layer, framework: str = "torch", order: int = 1, modes="all", *,
                   budget=DEFAULT_BUDGET, seed: int = 0) -> Certificate:
    """Prove a framework's own derivatives of ``f(x, weight, bias)`` exactly against the layer's
    (module docstring).  Returns a :class:`~symbolic_bn.obligations.certificate.Certificate` with
    one obligation per (API, mode) up to ``order`` and a ``'primal'`` one."""
    who = "check_autodiff"
    if not callable(f):
        raise ValueError(f"{who}: f must be callable, got {type(f).__name__}")
    if not isinstance(layer, L.Layer):
        raise ValueError(f"{who}: layer must be a symbolic_bn.layers.Layer (e.g. "
                         f"layers.instance_norm((1, 3, 4, 4), eps=1e-5)), got {type(layer).__name__}")
    if layer.symbolic_eps:
        raise ValueError(f"{who}: layer.eps must be a number, since f implements the layer with one "
                         f"value of ε; got the symbol {layer.eps} (build the layer with eps=1e-5, say)")
    try:
        order = A._check_order(order)
        mode_list = A._check_modes(modes, order)
    except ValueError as exc:
        raise ValueError(f"{who}: {exc}") from None
    budget = check_budget(budget, "budget")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"{who}: seed must be an integer >= 0, got {seed!r}")
    adapter = framework_adapter(framework, who)
    check_arity(f, 3, who, "f(x, weight, bias)")
    layer = copy.deepcopy(layer)  # the reference is computed from a copy f cannot reach
    return _Check(f, layer, adapter, order, mode_list, budget, seed).run()


def autodiff_text(cert: Certificate) -> str:
    """A check_autodiff certificate as a table (one row per obligation: order, mode, API, verdict)
    with, under it, each failed row's exact counterexample value, the reference and the
    framework's float64 value there, and each undecided row's reason."""
    lines = [cert.subject, f"{'order':<5} {'mode':<22} {'api':<26} verdict"]
    notes = []
    for ob in cert:
        if ob.name == "primal":
            order, mode, api = 0, "primal", cert.parameters.get("framework", "")
        else:
            api, mode = ob.name.split(" ", 1)
            order = mode.count("-over-") + 1
        lines.append(f"{order:<5} {mode:<22} {api:<26} {ob.status}")
        if ob.status == "failed":
            c = ob.counterexample
            notes.append(f"failed {ob.name}: at {c['location']} ({c['point']} point) the trace is "
                         f"{c['implementation_approx']:.17g}, the reference {c['reference_approx']:.17g}, "
                         f"{cert.parameters.get('framework', 'the framework')} float64 "
                         f"{c['framework_float64']!r}")
        elif ob.status == "undecided":
            notes.append(f"undecided {ob.name}: {ob.detail}")
    c = cert.counts()
    lines += notes
    lines.append(f"{'OK' if cert.ok else 'NOT OK'}: {c['proved']} proved, {c['failed']} failed, "
                 f"{c['undecided']} undecided of {len(cert)} in {cert.seconds:.1f} s")
    return "\n".join(lines)
