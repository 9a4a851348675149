r"""Exact symbolic checks of a user's BatchNorm forward/backward (NumPy-style code against ``xp``).

    forward(x, gamma, beta, eps, xp) -> y                               x, y: C×H×W; gamma, beta: C
    backward(x, gamma, beta, grad_out, eps, xp) -> (dx, dgamma, dbeta)

:func:`check_forward` / :func:`check_backward` run the function ONCE on the exact symbolic namespace
(:data:`symbolic_bn.xp.symbolic`) with real symbols ``x_c_h_w``, ``gamma_c``, ``beta_c``,
``g_c_h_w`` (the cotangent, fully symbolic) and ``ε`` (a real symbol when ``eps=None``, else the
exact value), and compare every output entry with the reference:

* forward: ``y_{c,p} = (x_{c,p} − μ_c)/sqrt(var_c + ε)·γ_c + β_c`` with ``μ_c`` the mean and
  ``var_c = Σ_p (x_{c,p} − μ_c)²/N`` the graph's population variance (``N = H·W``).  This is the
  graph's ``yChw`` (:func:`symbolic_bn.batchnorm.batchnorm_channel_first`) on the domain
  ``var_c + ε > 0``, where its ``sqrt(max(z, 0))`` is ``sqrt(z)`` and its ``inv`` (``0⁻¹ = 0``) is
  ``1/z``; the expression is built directly rather than taken from the graph for that reason.
* backward: ``Jᵀ·g`` with the Jacobian of the reference forward computed by ``sympy.diff``
  (sparse: one block per channel, computed once per channel).

Each entry's difference goes to :func:`symbolic_bn.decide.decide_zero` (exact normal form; equal
radicands after ``expand`` share one σ, so a user's ``E[x²] − E[x]² + ε`` gets the same σ as the
graph's ``var + ε``).  A zero normal form is a proof only if every radicand decide_zero used is
``var_c + ε`` for some channel and every denominator it cleared is a nonzero constant times σ's
and powers of ``var_c + ε`` -- all nonzero under the stated assumption; otherwise the obligation is
'undecided' and ``detail`` names the extra assumption.  ``Max(var_c, 0)`` and ``Max(var_c + ε, 0)``
in the user's result (TorchLean's clamp) are replaced by their first argument first: ``var_c`` is a
sum of squares over ``N`` (≥ 0) and ``var_c + ε > 0`` is assumed.

Before deciding, and again when the normal form is not zero, the checker looks for an exact
counterexample: random rational inputs (``var_c + ε > 0``; with a symbolic ε a rational ε > 0 is
chosen), a generic rational ``grad_out`` (never constant), the user's function re-run on the
symbolic namespace at those exact numbers, the reference from the graph itself
(``evaluate``/``backprop`` with seed ``yChw = grad_out``), and :func:`differ_exactly` to confirm.

Bad functions raise :class:`symbolic_bn.crosscheck.ImplementationError` with a message naming the
function and the problem (it raised; wrong number of outputs; wrong shape; a float/NaN/inf left
exact arithmetic; an operation the symbolic namespace cannot do -- then ``exc.__cause__`` is the
:class:`symbolic_bn.xp.UnsupportedOperation`).
"""
from __future__ import annotations

import numbers
import random
import time

import numpy as np
import sympy
from sympy.polys.domains import QQ
from sympy.polys.rings import ring as _poly_ring

from . import xp as X
from .batchnorm import EPS_SYMBOL, batchnorm_channel_first, check_shape, convert_eps
from .certificate import Certificate, Obligation
from .crosscheck import ImplementationError
from .decide import METHOD_ZERO, BudgetExceeded, _Atomizer, _normal_form, differ_exactly, time_budget

__all__ = ["check_forward", "check_backward", "DEFAULT_BUDGET", "ImplementationError"]

#: Seconds allowed per obligation (deciding all entries of one output).
DEFAULT_BUDGET = 60.0

_BACKWARD_OUTPUTS = ("dx", "dgamma", "dbeta")

ASSUMPTION = "var_c + ε > 0 for every channel c (var_c = Σ_p (x_{c,p} − μ_c)²/N, N = H·W)"

REFERENCE_TEXT = ("reference y = (x − μ)/sqrt(var + ε)·γ + β with var the graph's population "
                  "variance: the graph's yChw on var_c + ε > 0, where sqrt(max(z, 0)) = sqrt(z) "
                  "and inv z = 1/z")


# ---------------------------------------------------------------------------------------------
# Argument validation and calling the user's function


def _fname(fn):
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _validate_args(who, role, fn, shape, eps, budget):
    if not callable(fn):
        raise ValueError(f"{who}: {role} must be callable, got {type(fn).__name__}")
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__") or len(shape) != 3:
        raise ValueError(f"{who}: shape must be a (C, H, W) tuple of positive integers, got {shape!r}")
    try:
        C, H, W = check_shape(*shape)
    except ValueError as exc:
        raise ValueError(f"{who}: shape: {exc}") from None
    if isinstance(eps, sympy.Symbol):
        raise ValueError(f"{who}: eps must be None (symbolic ε) or a number, got the symbol {eps}")
    try:
        eps_value = convert_eps(eps)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{who}: eps: {exc}") from None
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, numbers.Real) or not budget > 0 \
                or budget != budget or budget == float("inf"):
            raise ValueError(f"{who}: budget must be a positive number of seconds or None, got {budget!r}")
    return (C, H, W), eps_value


def _call(fn, role, args):
    label = f"{role} {_fname(fn)!r}"
    try:
        return fn(*args)
    except X.UnsupportedOperation as exc:
        raise ImplementationError(
            f"{label} used an operation the exact symbolic namespace cannot do: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - wrapped with the function's name
        raise ImplementationError(f"{label} raised {type(exc).__name__}: {exc}") from exc


def _find(expr, cls):
    """Subexpressions of type cls, visiting each distinct subexpression once."""
    seen, out, stack = set(), set(), [expr]
    while stack:
        e = stack.pop()
        if e in seen:
            continue
        seen.add(e)
        if isinstance(e, cls):
            out.add(e)
        stack.extend(e.args)
    return out


def _bad_atoms(expr, _seen=None):
    """Kinds of unwanted atoms in expr ('float', 'nan', 'inf', 'imaginary'), by one walk over the
    expression DAG that visits each distinct subexpression once (``expr.has`` re-walks shared
    subtrees such as Σ g·x̂ in every entry)."""
    seen = set() if _seen is None else _seen
    found = set()
    stack = [expr]
    while stack:
        e = stack.pop()
        if e in seen:
            continue
        seen.add(e)
        if e.is_Atom:
            if isinstance(e, sympy.Float):
                found.add("float")
            elif e is sympy.nan:
                found.add("nan")
            elif e in (sympy.oo, -sympy.oo, sympy.zoo):
                found.add("inf")
            elif e is sympy.I:
                found.add("imaginary")
        else:
            stack.extend(e.args)
    return found


def _entry(v, label, name, idx):
    where = f"{name}[{', '.join(map(str, idx))}]" if idx else name
    if isinstance(v, sympy.Basic):
        if not isinstance(v, sympy.Expr):
            raise ImplementationError(f"{label}: {where} is {type(v).__name__} {v}, not a number or expression")
        bad = _bad_atoms(v)
        if bad & {"nan", "inf"}:
            raise ImplementationError(f"{label}: {where} is not finite ({v})")
        if "float" in bad:
            raise ImplementationError(
                f"{label}: {where} contains an inexact Float ({v}): the function left exact "
                "arithmetic (e.g. math.sqrt, float(...), or a float multiplied into a bare entry)")
        if "imaginary" in bad:
            raise ImplementationError(f"{label}: {where} is not real ({v})")
        return v
    if isinstance(v, (bool, np.bool_)):
        raise ImplementationError(f"{label}: {where} is a bool, not a number")
    if isinstance(v, (int, np.integer)):
        return sympy.Integer(int(v))
    if isinstance(v, (float, np.floating)):
        kind = "NaN/inf" if not np.isfinite(v) else f"the float {v!r}"
        raise ImplementationError(
            f"{label}: {where} is {kind}: the function left exact arithmetic in the symbolic run")
    raise ImplementationError(f"{label}: {where} is a {type(v).__name__} ({v!r}), not a number")


def _as_exact(value, label, name, want_shape):
    """The user's output as an exact object array of the wanted shape, or ImplementationError."""
    if isinstance(value, np.ndarray):
        arr = value
        if arr.dtype.kind in "fc":
            raise ImplementationError(
                f"{label}: {name} is a {arr.dtype} array in the symbolic run: the function left "
                "exact arithmetic (use xp functions, not numpy ones)")
    elif isinstance(value, (list, tuple)) or isinstance(value, (sympy.Expr, numbers.Number)):
        try:
            arr = np.array(value, dtype=object)
        except ValueError as exc:
            raise ImplementationError(f"{label}: {name} is not a rectangular array ({exc})") from None
    else:
        raise ImplementationError(f"{label}: {name} is a {type(value).__name__}, expected an array")
    if arr.shape != tuple(want_shape):
        raise ImplementationError(f"{label}: {name} has shape {arr.shape}, expected {tuple(want_shape)}")
    out = np.empty(arr.shape, dtype=object)
    for idx in np.ndindex(*arr.shape):
        out[idx] = _entry(arr[idx], label, name, idx)
    return out


def _run_forward(fn, x, gamma, beta, eps, shape):
    out = _call(fn, "forward", (x, gamma, beta, eps, X.symbolic))
    label = f"forward {_fname(fn)!r}"
    return {"y": _as_exact(out, label, "y", shape)}


def _run_backward(fn, x, gamma, beta, g, eps, shape):
    out = _call(fn, "backward", (x, gamma, beta, g, eps, X.symbolic))
    label = f"backward {_fname(fn)!r}"
    if isinstance(out, (np.ndarray, str, bytes, sympy.Basic)) or not isinstance(out, (tuple, list)):
        raise ImplementationError(f"{label} returned a {type(out).__name__}, expected a tuple of 3 "
                                  "arrays (dx, dgamma, dbeta)")
    if len(out) != 3:
        raise ImplementationError(f"{label} returned {len(out)} arrays, expected 3 (dx, dgamma, dbeta)")
    C = shape[0]
    want = {"dx": shape, "dgamma": (C,), "dbeta": (C,)}
    return {k: _as_exact(v, label, k, want[k]) for k, v in zip(_BACKWARD_OUTPUTS, out)}


# ---------------------------------------------------------------------------------------------
# Reference


class _Reference:
    """Symbols, the reference forward per channel and (lazily) Jᵀg per channel."""

    def __init__(self, shape, eps):
        C, H, W = shape
        self.shape, self.C, self.N = shape, C, H * W
        self.eps = eps
        self.x = X.symbols_array("x", shape)
        self.gamma = X.symbols_array("gamma", (C,))
        self.beta = X.symbols_array("beta", (C,))
        self.g = X.symbols_array("g", shape)
        self.var = []
        self.y = np.empty(shape, dtype=object)
        for c in range(C):
            xs = list(self.x[c].flat)
            mu = sympy.Add(*xs) / self.N
            var = sympy.Add(*[(xi - mu) ** 2 for xi in xs]) / self.N
            self.var.append(var)
            inv = 1 / sympy.sqrt(var + eps)
            ys = [(xi - mu) * inv * self.gamma[c] + self.beta[c] for xi in xs]
            self.y[c] = np.array(ys, dtype=object).reshape(shape[1:])
        gens = list(self.x.flat) + ([eps] if isinstance(eps, sympy.Symbol) else [])
        self.ring, *_ = _poly_ring(gens, QQ)
        self.var_polys = [self.ring(v) for v in self.var]
        self.radicand_polys = [self.ring(v + eps) for v in self.var]
        self._bw = None

    def backward(self):
        """Jᵀ·g per channel with J = sympy.diff of the reference forward (block diagonal).

        y_q = (x_q − μ)·s·γ + β with s = (var + ε)^(−1/2); sympy.diff is taken with s as a
        placeholder symbol, the chain rule ∂s/∂x_p = −½ s³ ∂var/∂x_p is applied explicitly
        (∂var/∂x_p by exact differentiation in SymPy's polynomial ring over ℚ), then s is replaced
        by (var + ε)^(−1/2) -- the same Jacobian as differentiating the closed form."""
        if self._bw is None:
            C, shape = self.C, self.shape
            dx = np.empty(shape, dtype=object)
            dgamma = np.empty((C,), dtype=object)
            dbeta = np.empty((C,), dtype=object)
            s = sympy.Dummy("s", positive=True)
            for c in range(C):
                xs = list(self.x[c].flat)
                gs = list(self.g[c].flat)
                mu = sympy.Add(*xs) / self.N
                ys = [(xi - mu) * s * self.gamma[c] + self.beta[c] for xi in xs]
                rs = {s: 1 / sympy.sqrt(self.var[c] + self.eps)}
                dys = [sympy.diff(yq, s) for yq in ys]
                var_poly = self.var_polys[c]
                col = []
                for xp_ in xs:
                    # ∂var/∂x_p exactly in the polynomial ring (PolyElement.diff)
                    dvar = var_poly.diff(self.ring(xp_)).as_expr()
                    ds = -sympy.Rational(1, 2) * s ** 3 * dvar
                    col.append(sympy.Add(*[gq * (sympy.diff(yq, xp_) + dy * ds)
                                           for gq, yq, dy in zip(gs, ys, dys)]).xreplace(rs))
                dx[c] = np.array(col, dtype=object).reshape(shape[1:])
                dgamma[c] = sympy.Add(*[gq * sympy.diff(yq, self.gamma[c]) for gq, yq in zip(gs, ys)]).xreplace(rs)
                dbeta[c] = sympy.Add(*[gq * sympy.diff(yq, self.beta[c]) for gq, yq in zip(gs, ys)]).xreplace(rs)
            self._bw = {"dx": dx, "dgamma": dgamma, "dbeta": dbeta}
        return self._bw

    def poly(self, expr):
        """expr as an element of the ring of x (and ε), or None if it is not a polynomial there."""
        try:
            return self.ring(expr)
        except Exception:  # noqa: BLE001 - not a polynomial in these generators
            return None

    def is_radicand(self, expr):
        p = self.poly(expr)
        return p is not None and p in self.radicand_polys

    def unclamp(self, expr):
        """Replace Max(var_c, 0) and Max(var_c + ε, 0) by their first argument (see module doc)."""
        maxes = _find(expr, sympy.Max)
        if not maxes:
            return expr, False
        rep = {}
        for m in maxes:
            args = [a for a in m.args if a != 0]
            if len(args) == 1 and len(m.args) == 2:
                e = self.poly(args[0])
                if e is not None and (e in self.var_polys or e in self.radicand_polys):
                    rep[m] = args[0]
        return (expr.xreplace(rep), True) if rep else (expr, False)


# ---------------------------------------------------------------------------------------------
# Deciding


def _is_sigma(s):
    return isinstance(s, sympy.Dummy) and s.name.startswith("sigma") and s.is_positive


def _denominator_ok(q, radicands):
    """True if q is a nonzero constant times σ's and powers of allowed radicands (var_c + ε)."""
    q = sympy.expand(q)
    if q.is_Number:
        return q != 0
    gens = set(q.free_symbols)
    for u in radicands:
        gens |= u.free_symbols
    gens = sorted(gens, key=lambda s: (s.name, getattr(s, "dummy_index", 0) or 0))
    R, *_ = _poly_ring(gens, QQ)
    P = R(q)
    for i, s in enumerate(gens):
        if _is_sigma(s):
            k = min(m[i] for m in P.monoms())
            if k:
                P = P.exquo(R.gens[i] ** k)
    for u in radicands:
        U = R(u)
        while not P.is_ground:
            quo, rem = P.div(U)
            if rem:
                break
            P = quo
    return P.is_ground and bool(P)


def _decide_batch(pairs, budget):
    """decide_zero's procedure (its _Atomizer and _normal_form, see decide.py) for a batch of
    differences sharing subexpressions: one atomizer (so equal radicands share one σ across all
    entries), one polynomial ring, and a conversion to the ring memoized on subexpressions (SymPy's
    own ring conversion re-expands shared subtrees such as Σ g·x̂ for every entry).  Every σ/ι
    created goes into the ring (decide_zero omits one that cancels out of the expression and then
    raises KeyError -- reported to the core).  Returns (decisions per pair, atomizer) or 'timeout'."""
    try:
        with time_budget(budget):
            at = _Atomizer()
            atomized = [(loc, at(diff)) for loc, diff in pairs]
            gens = set(at.order)
            for _, e in atomized:
                gens |= e.free_symbols
            for e in list(at.radicand_of.values()) + list(at.inverse_of.values()):
                gens |= e.free_symbols
            gens = sorted(gens, key=lambda s: (s.name, s.dummy_index if isinstance(s, sympy.Dummy) else 0))
            R, *_ = _poly_ring(gens, QQ)
            index = {g: i for i, g in enumerate(gens)}
            memo = {}

            def conv(e):
                r = memo.get(e)
                if r is not None:
                    return r
                if e.is_Symbol:
                    r = R.gens[index[e]]
                elif e.is_Rational:
                    r = R(e)
                elif e.is_Add:
                    r = R.zero
                    for a in e.args:
                        r = r + conv(a)
                elif e.is_Mul:
                    r = R.one
                    for a in e.args:
                        r = r * conv(a)
                elif e.is_Pow and e.exp.is_Integer and e.exp >= 0:
                    r = conv(e.base) ** int(e.exp)
                else:  # not expected after atomization; let SymPy convert it
                    r = R(e)
                memo[e] = r
                return r

            out = []
            for loc, e in atomized:
                P = _normal_form(conv(e), R, index, at, conv)
                out.append((loc, P))
            return out, at
    except BudgetExceeded:
        return "timeout", None


def _decide_entries(pairs, ref, budget, start):
    """Decide user == reference for each (location, user, reference) pair.

    Returns (status, detail): 'proved' / 'extra' (proved only under extra assumptions, listed in
    detail) / 'remainder' (some normal form nonzero; detail names the entry) / 'timeout'."""
    diffs = [(loc, got - want) for loc, got, want in pairs]
    diffs = [(loc, d) for loc, d in diffs if d != 0]
    if not diffs:
        return "proved", None
    remaining = None
    if budget is not None:
        remaining = budget - (time.perf_counter() - start)
        if remaining <= 0:
            return "timeout", f"time budget of {budget:g} s exceeded"
    result, at = _decide_batch(diffs, remaining)
    if result == "timeout":
        return "timeout", f"time budget of {budget:g} s exceeded"
    for loc, P in result:
        if P:
            return "remainder", f"nonzero exact normal form at {loc}"
    extra = []
    for u in at.radicand_of.values():
        if not ref.is_radicand(u):
            extra.append(f"{u} > 0 (a radicand)")
    for q in at.inverse_of.values():
        if not _denominator_ok(q, [p.as_expr() for p in ref.radicand_polys]):
            extra.append(f"{q} != 0 (a denominator)")
    if at.opaque:
        extra.append("opaque subexpressions treated as arbitrary values: "
                     + ", ".join(map(str, list(at.opaque)[:3])))
    if extra:
        return "extra", "the algebra also needs: " + "; ".join(extra[:6]) + \
            (f" (and {len(extra) - 6} more)" if len(extra) > 6 else "")
    return "proved", None


# ---------------------------------------------------------------------------------------------
# Counterexamples


class _Points:
    """Exact rational points (var_c + ε > 0) with the user's and the graph's values, cached."""

    def __init__(self, fn, role, shape, eps, seed):
        self.fn, self.role, self.shape, self.eps = fn, role, shape, eps
        self.rng = random.Random(seed)
        self.cache = []

    def _rat(self, lo=-9, hi=9, nonzero=False):
        while True:
            num = self.rng.randint(lo, hi)
            if num or not nonzero:
                return sympy.Rational(num, self.rng.randint(1, 4))

    def _draw(self):
        C, H, W = self.shape
        n = H * W
        eps = self.eps
        if isinstance(eps, sympy.Symbol):
            eps = sympy.Rational(self.rng.randint(1, 9), 10 ** self.rng.randint(1, 3))
        for _ in range(200):
            x = np.array([self._rat() for _ in range(C * n)], dtype=object).reshape(self.shape)
            ok = True
            for c in range(C):
                xs = list(x[c].flat)
                mu = sum(xs, sympy.Integer(0)) / n
                if not sum(((v - mu) ** 2 for v in xs), sympy.Integer(0)) / n + eps > 0:
                    ok = False
            if ok:
                break
        else:
            raise ValueError(f"no rational point with var_c + ε > 0 found for eps={eps}")
        gamma = np.array([self._rat(nonzero=True) for _ in range(C)], dtype=object)
        beta = np.array([self._rat() for _ in range(C)], dtype=object)
        while True:  # generic cotangent: never constant within a channel (the all-ones trap)
            g = np.array([self._rat() for _ in range(C * n)], dtype=object).reshape(self.shape)
            if n == 1 or all(len(set(g[c].flat)) > 1 for c in range(C)):
                break
        return x, gamma, beta, g, eps

    def point(self, k):
        while len(self.cache) <= k:
            x, gamma, beta, g, eps = self._draw()
            args = [X.to_sympy_array(a) for a in (x, gamma, beta)]
            if self.role == "forward":
                got = _run_forward(self.fn, *args, eps, self.shape)
            else:
                got = _run_backward(self.fn, *args, X.to_sympy_array(g), eps, self.shape)
            graph = batchnorm_channel_first(*self.shape, eps)
            inputs = {"x": x, "gamma": gamma, "beta": beta}
            values = graph.evaluate(inputs)
            want = {"y": np.asarray(values["yChw"], dtype=object)}
            if self.role == "backward":
                cot = graph.backprop(inputs, {"yChw": g}, values=values)
                want = {"dx": np.asarray(cot["x"], dtype=object),
                        "dgamma": np.asarray(cot["gamma"], dtype=object),
                        "dbeta": np.asarray(cot["beta"], dtype=object)}
            self.cache.append({"x": x, "gamma": gamma, "beta": beta, "g": g, "eps": eps,
                               "got": got, "want": want})
        return self.cache[k]

    def counterexample(self, name, ks):
        for k in ks:
            try:
                pt = self.point(k)
            except ImplementationError as exc:
                # e.g. a division by a value that is zero at this point only: not a counterexample
                if isinstance(exc.__cause__, ZeroDivisionError):
                    continue
                raise
            got, want = pt["got"][name], pt["want"][name]
            for idx in np.ndindex(*got.shape):
                try:
                    differ = differ_exactly(got[idx], want[idx])
                except (TypeError, ZeroDivisionError):
                    differ = None
                if differ:
                    cex = {"location": f"{name}[{', '.join(map(str, idx))}]",
                           "implementation": got[idx], "reference": want[idx],
                           "implementation_approx": float(sympy.N(got[idx], 17)),
                           "reference_approx": float(sympy.N(want[idx], 17)),
                           "x": pt["x"].tolist(), "gamma": pt["gamma"].tolist(),
                           "beta": pt["beta"].tolist(), "eps": pt["eps"]}
                    if self.role == "backward":
                        cex["grad_out"] = pt["g"].tolist()
                    return cex
        return None


# ---------------------------------------------------------------------------------------------
# Obligations


_STATEMENTS = {
    "y": "forward(x, γ, β, ε) = (x − μ_c)/sqrt(var_c + ε)·γ_c + β_c entrywise (the graph's yChw)",
    "dx": "backward's dx = (∂y/∂x)ᵀ·g for a fully symbolic cotangent g (y the graph's yChw)",
    "dgamma": "backward's dgamma = (∂y/∂γ)ᵀ·g for a fully symbolic cotangent g",
    "dbeta": "backward's dbeta = (∂y/∂β)ᵀ·g for a fully symbolic cotangent g",
}


def _obligation(role, name, shape, eps, got, want, ref, points, budget):
    start = time.perf_counter()
    C, H, W = shape
    assumptions = [ASSUMPTION]
    if isinstance(eps, sympy.Symbol):
        assumptions.append("ε real (symbolic)")
    else:
        assumptions.append(f"ε = {eps} (exact)")
    statement = f"{_STATEMENTS[name]}, for all real inputs, at shape {C}x{H}x{W}"
    ob_name = f"{role}.{name}"
    how = ("the user's function run once on the exact symbolic namespace at symbols x, γ, β"
           + (", g" if role == "backward" else "") + ", ε; " + REFERENCE_TEXT
           + ("; Jᵀg with J = sympy.diff of the reference forward, per channel" if role == "backward" else ""))
    method_cex = ("exact counterexample: the user's function re-run on the symbolic namespace at "
                  "rational inputs" + (" and a generic rational grad_out" if role == "backward" else "")
                  + "; reference from the graph itself (evaluate" + ("/backprop with seed yChw = grad_out"
                                                                       if role == "backward" else "")
                  + "); difference confirmed by differ_exactly")

    def done(status, method, cex=None, detail=None):
        return Obligation(ob_name, statement, status, method, assumptions=assumptions,
                          seconds=time.perf_counter() - start, counterexample=cex,
                          group=f"{role} {C}x{H}x{W}", detail=detail)

    cex = points.counterexample(name, [0])
    if cex:
        return done("failed", method_cex, cex)
    pairs = []
    unclamped = False
    for idx in np.ndindex(*got.shape):
        g_expr, changed = ref.unclamp(got[idx])
        unclamped |= changed
        pairs.append((f"{name}[{', '.join(map(str, idx))}]", g_expr, want[idx]))
    status, detail = _decide_entries(pairs, ref, budget, start)
    note = " Max(var_c, 0) / Max(var_c + ε, 0) replaced by their argument (var_c ≥ 0 as a sum of " \
           "squares; var_c + ε > 0 assumed)." if unclamped else ""
    if status == "proved":
        return done("proved", how + "; every entry's difference decided zero by decide_zero ("
                    + METHOD_ZERO + "); radicands checked to be var_c + ε, denominators nonzero "
                    "constants times σ's and powers of var_c + ε." + note)
    if status == "extra":
        return done("undecided", how + "; decide_zero's normal form is zero only under extra "
                    "assumptions." + note, detail=detail)
    if status == "timeout":
        return done("undecided", how + "; time budget exceeded." + note, detail=detail)
    cex = points.counterexample(name, range(1, 9))
    if cex:
        return done("failed", method_cex, cex, detail=detail)
    return done("undecided", how + "; the exact normal form is not zero but no rational "
                "counterexample was found (e.g. a perfect-square radicand)." + note, detail=detail)


def _subject(role, fn, shape):
    return f"{role} {_fname(fn)} at {shape[0]}x{shape[1]}x{shape[2]}"


def check_forward(forward, shape=(2, 2, 2), eps=None, budget=DEFAULT_BUDGET, seed=0) -> Certificate:
    """Prove ``forward(x, gamma, beta, eps, xp)`` equal to the graph's yChw, exactly (module doc).

    Returns a :class:`Certificate` with one obligation ``'forward.y'``."""
    t0 = time.perf_counter()
    shape, eps_v = _validate_args("check_forward", "forward", forward, shape, eps, budget)
    ref = _Reference(shape, eps_v)
    got = _run_forward(forward, ref.x, ref.gamma, ref.beta, eps_v, shape)
    points = _Points(forward, "forward", shape, eps_v, seed)
    cert = Certificate(_subject("forward", forward, shape),
                       parameters={"shape": shape, "eps": "symbolic ε" if eps is None else eps_v,
                                   "budget": budget})
    cert.add(_obligation("forward", "y", shape, eps_v, got["y"], ref.y, ref, points, budget))
    cert.seconds = time.perf_counter() - t0
    return cert


def check_backward(backward, shape=(2, 2, 2), eps=None, budget=DEFAULT_BUDGET, seed=0) -> Certificate:
    """Prove ``backward(x, gamma, beta, grad_out, eps, xp) -> (dx, dgamma, dbeta)`` equal to
    Jᵀ·grad_out of the graph's forward, exactly (module doc).

    Returns a :class:`Certificate` with obligations ``'backward.dx'``, ``'backward.dgamma'``,
    ``'backward.dbeta'``."""
    t0 = time.perf_counter()
    shape, eps_v = _validate_args("check_backward", "backward", backward, shape, eps, budget)
    ref = _Reference(shape, eps_v)
    got = _run_backward(backward, ref.x, ref.gamma, ref.beta, ref.g, eps_v, shape)
    want = ref.backward()
    points = _Points(backward, "backward", shape, eps_v, seed)
    cert = Certificate(_subject("backward", backward, shape),
                       parameters={"shape": shape, "eps": "symbolic ε" if eps is None else eps_v,
                                   "budget": budget})
    for name in _BACKWARD_OUTPUTS:
        cert.add(_obligation("backward", name, shape, eps_v, got[name], want[name], ref, points, budget))
    cert.seconds = time.perf_counter() - t0
    return cert
