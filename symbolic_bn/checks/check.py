r"""Exact symbolic checks of a user's BatchNorm forward/backward (NumPy-style code against ``xp``).

    forward(x, gamma, beta, eps, xp) -> y                               x, y: C×H×W; gamma, beta: C
    backward(x, gamma, beta, grad_out, eps, xp) -> (dx, dgamma, dbeta)

:func:`check_forward` / :func:`check_backward` run the function ONCE on the exact symbolic namespace
(:data:`symbolic_bn.xp.symbolic`) with real symbols ``x_c_h_w``, ``gamma_c``, ``beta_c``,
``g_c_h_w`` (the cotangent, fully symbolic) and ``ε`` (a real symbol when ``eps=None``, else the
exact value), and compare every output entry with the reference:

* forward: ``y_{c,p} = (x_{c,p} − μ_c)/sqrt(var_c + ε)·γ_c + β_c`` with ``μ_c`` the mean and
  ``var_c = Σ_p (x_{c,p} − μ_c)²/N`` the graph's population variance (``N = H·W``).  This is the
  graph's ``yChw`` (:func:`symbolic_bn.graphs.batchnorm.batchnorm_channel_first`) on the domain
  ``var_c + ε > 0``, where its ``sqrt(max(z, 0))`` is ``sqrt(z)`` and its ``inv`` (``0⁻¹ = 0``) is
  ``1/z``; the expression is built directly rather than taken from the graph for that reason.
* backward: ``Jᵀ·g`` with the Jacobian of the reference forward computed by ``sympy.diff``
  (sparse: one block per channel, computed once per channel).

The user's function gets fresh copies of the symbol arrays (it may write into them: ``g -= ...;
return g`` is fine); the reference and Jᵀg are built before it runs.

Each entry's difference goes through :func:`symbolic_bn.exact.decide.decide_zero`'s procedure (exact
normal form over ℚ).  Radicands and denominators are compared as polynomials in the input symbols
(converted without ``sympy.expand``) up to a positive rational factor: a user's
``E[x²] − E[x]² + ε`` and ``S + N·ε`` (``S = N·var``) both get the σ of the graph's ``var + ε``
(``sqrt(k·u) = sqrt(k)·σ`` for rational ``k > 0``), and ``(var + ε)⁻¹`` is ``σ⁻²``.  A zero normal
form is a proof only if every radicand used is a positive constant or a positive multiple of
``var_c + ε`` for some channel and every denominator cleared is a nonzero constant times σ's and
powers of ``var_c + ε`` -- all nonzero under the stated assumption; otherwise the obligation is
'undecided' and ``detail`` names the extra assumption.  ``Max(var_c, 0)`` and ``Max(var_c + ε, 0)``
in the user's result (TorchLean's clamp) are replaced by their first argument first: ``var_c`` is a
sum of squares over ``N`` (≥ 0) and ``var_c + ε > 0`` is assumed.

Side conditions hidden by SymPy.  SymPy simplifies while the user's function runs (``a·b/(a·c)``
becomes ``b/c``, ``sqrt(u)·sqrt(u)`` becomes ``u``), so the finished expression may not show a
division by something that can be zero.  The run is therefore wrapped in
:func:`symbolic_bn.xp.record_domain`: every non-constant divisor and negative-power base must be
nonzero, every sqrt / fractional-power radicand nonnegative and every log argument or
negative-fractional-power base positive *on the domain*, by the same exact tests (a nonzero constant
times powers of ``var_c + ε``; a positive multiple of products of ``var_c + ε``; ``var_c`` itself
is ≥ 0 as a sum of squares).  Anything else makes every obligation 'undecided' with ``detail``
naming the condition -- unless an exact point shows the function undefined (below).  Only
operations that go through the namespace are seen: arithmetic on *bare* SymPy entries
(``x[0, 0, 0] / d``) bypasses the record, and only the degenerate points below can catch a
cancelled division there.

Counterexamples: exact rational points inside the domain (``var_c + ε > 0``; with a symbolic ε a
rational ε > 0 is chosen; an exact ε ≤ 0 spreads each channel until its variance exceeds −ε), a
generic rational ``grad_out`` (never constant), the user's function re-run on the symbolic
namespace at those exact numbers, the reference from the graph itself (``evaluate``/``backprop``
with seed ``yChw = grad_out``), and :func:`differ_exactly` to confirm.  Point 0 is generic and
always tried first; when the proof does not go through, points 1-3 are degenerate (channel 0
constant, i.e. ``var_0 = 0``, when ε > 0; ``γ_0 = 0``; every channel's first entry equal to its
mean) and 4-8 generic again.  If the function raises ``ZeroDivisionError``, takes the sqrt/log of a
negative number, or returns a non-finite or non-real entry at such a point, the obligation is
'failed': the counterexample carries the point and ``counterexample['undefined']`` says that the
function is undefined where ``var_c + ε > 0``.  An output that still contains symbols at a numeric
point (the function built its own symbols) is an :class:`ImplementationError`; values that
:func:`differ_exactly` cannot evaluate (``pi``, ``E``, ``exp``, ...) leave the obligation
'undecided' with ``detail`` saying so.

Empty domains are refused up front: for ``H·W = 1`` the variance is identically 0, so an exact
``eps <= 0`` raises ``ValueError`` naming eps and the shape (for ``H·W >= 2`` the domain is never
empty).  ``budget`` bounds everything: building the reference, running the function and the setup
count against the first obligation's budget, each further obligation has its own; when it runs out
the obligation is 'undecided' (``time_budget`` interrupts pure-Python work, main thread only).

Bad functions raise :class:`symbolic_bn.checks.crosscheck.ImplementationError` with a message naming the
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

from .. import xp as X
from ..graphs.batchnorm import EPS_SYMBOL, batchnorm_channel_first, check_shape, convert_eps
from ..obligations.certificate import Certificate, Obligation
from .crosscheck import ImplementationError
from ..exact.decide import (METHOD_ZERO, BudgetExceeded, _Atomizer, _iadd, _normal_form, differ_exactly,
                     time_budget)

__all__ = ["check_forward", "check_backward", "DEFAULT_BUDGET", "DEFAULT_SHAPE", "ImplementationError"]

#: Seconds allowed per obligation (deciding all entries of one output; the first obligation's
#: budget also covers building the reference and running the user's function).
DEFAULT_BUDGET = 60.0

#: Default shape: two channels (so per-channel mix-ups show) and H != W (so H·H for H·W shows).
DEFAULT_SHAPE = (2, 2, 3)

_BACKWARD_OUTPUTS = ("dx", "dgamma", "dbeta")

ASSUMPTION = "var_c + ε > 0 for every channel c (var_c = Σ_p (x_{c,p} − μ_c)²/N, N = H·W)"

REFERENCE_TEXT = ("reference y = (x − μ)/sqrt(var + ε)·γ + β with var the graph's population "
                  "variance: the graph's yChw on var_c + ε > 0, where sqrt(max(z, 0)) = sqrt(z) "
                  "and inv z = 1/z")


# ---------------------------------------------------------------------------------------------
# Argument validation and calling the user's function


def _fname(fn):
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _short(expr, limit=160):
    text = str(expr)
    return text if len(text) <= limit else text[:limit - 3] + "..."


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
    if H * W == 1 and not isinstance(eps_value, sympy.Symbol) and not eps_value > 0:
        # N = 1: var_c = 0 identically, so var_c + ε > 0 iff ε > 0.  (For N >= 2 the domain is
        # never empty: var_c takes every value >= 0.)
        raise ValueError(f"{who}: eps={eps!r} with shape {C}x{H}x{W}: the domain var_c + ε > 0 is "
                         f"empty (H·W = 1 makes var_c = 0 identically, so it needs eps > 0)")
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, numbers.Real) or not budget > 0 \
                or budget != budget or budget == float("inf"):
            raise ValueError(f"{who}: budget must be a positive number of seconds or None, got {budget!r}")
    return (C, H, W), eps_value


def _call(fn, role, args):
    label = f"{role} {_fname(fn)!r}"
    try:
        return fn(*args)
    except BudgetExceeded:
        raise
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


def _undefined(message):
    """ImplementationError marked as 'the function has no real value here' (at a point inside the
    domain that is a finding, see _Points)."""
    err = ImplementationError(message)
    err.undefined = True
    return err


def _entry(v, label, name, idx):
    where = f"{name}[{', '.join(map(str, idx))}]" if idx else name
    if isinstance(v, sympy.Basic):
        if not isinstance(v, sympy.Expr):
            raise ImplementationError(f"{label}: {where} is {type(v).__name__} {v}, not a number or expression")
        bad = _bad_atoms(v)
        if bad & {"nan", "inf"}:
            raise _undefined(f"{label}: {where} is not finite ({_short(v)})")
        if "float" in bad:
            raise ImplementationError(
                f"{label}: {where} contains an inexact Float ({_short(v)}): the function left exact "
                "arithmetic (e.g. math.sqrt, float(...), or a float multiplied into a bare entry)")
        if "imaginary" in bad:
            raise _undefined(f"{label}: {where} is not real ({_short(v)})")
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


def _sym_key(s):
    return (s.name, s.dummy_index if isinstance(s, sympy.Dummy) else 0)


def _to_ring(R, index, expr, memo):
    """expr as an element of the polynomial ring R (generators ``index``), by a walk over the
    expression DAG memoized on subexpressions -- nothing is ``expand``-ed in SymPy.  None if expr
    is not a polynomial in those generators over ℚ."""
    got = memo.get(expr, memo)
    if got is not memo:
        return got
    r = None
    if expr.is_Symbol:
        i = index.get(expr)
        r = None if i is None else R.gens[i]
    elif expr.is_Rational:
        r = R.ground_new(QQ(int(expr.p), int(expr.q)))
    elif expr.is_Add or expr.is_Mul:
        parts = []
        for a in expr.args:
            pa = _to_ring(R, index, a, memo)
            if pa is None:
                break
            parts.append(pa)
        else:
            if expr.is_Add:
                r = R.zero
                for pa in parts:  # in place: a fresh element, never shared
                    _iadd(r, pa)
            else:
                r = R.one
                for pa in parts:
                    r = r * pa
    elif expr.is_Pow and expr.exp.is_Integer and expr.exp >= 0:
        b = _to_ring(R, index, expr.base, memo)
        r = None if b is None else b ** int(expr.exp)
    memo[expr] = r
    return r


def _positive_multiple(P, U):
    """True if P = k·U for a rational k > 0 (P, U in the same ring, U nonzero)."""
    if not P or len(P) != len(U):
        return False
    k = P.LC / U.LC
    return k > 0 and P == U.mul_ground(k)


class _Reference:
    """Symbols, the reference forward per channel and (lazily) Jᵀg per channel, and the checks of
    side conditions against the domain var_c + ε > 0."""

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
        self.index = {g: i for i, g in enumerate(gens)}
        self._memo = {}
        # var_c = Σx²/N − (Σx)²/N² (the same polynomial as Σ(x − μ)²/N), built in the ring: converting
        # the SymPy expression would expand N squares of N-term sums.
        n = QQ(self.N)
        eps_p = self.ring.gens[-1] if isinstance(eps, sympy.Symbol) else self.ring.ground_new(QQ(int(eps.p), int(eps.q)))
        self.var_polys, self.radicand_polys = [], []
        for c in range(C):
            xs = [self.ring.gens[self.index[v]] for v in self.x[c].flat]
            s1 = self.ring.zero
            s2 = self.ring.zero
            for v in xs:
                s1 += v
                s2 += v * v
            var = s2.quo_ground(n) - (s1 * s1).quo_ground(n * n)
            self.var_polys.append(var)
            self.radicand_polys.append(var + eps_p)
        self._bw = None
        self._ok = {}
        #: the input symbols (generators of the atomizer's ring; other symbols fall back to expand)
        self.symbols = set(self.x.flat) | set(self.gamma.flat) | set(self.beta.flat) | set(self.g.flat)
        if isinstance(eps, sympy.Symbol):
            self.symbols.add(eps)

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
                    dvar = var_poly.diff(self.ring.gens[self.index[xp_]]).as_expr()
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
            return _to_ring(self.ring, self.index, expr, self._memo)
        except BudgetExceeded:
            raise
        except Exception:  # noqa: BLE001 - not a polynomial in these generators
            return None

    def is_radicand(self, expr):
        """A positive rational, or a positive rational multiple of some var_c + ε."""
        if expr.is_Rational:
            return expr > 0
        p = self.poly(expr)
        return p is not None and any(_positive_multiple(p, U) for U in self.radicand_polys)

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
                if e is not None and any(_positive_multiple(e, U)
                                         for U in self.var_polys + self.radicand_polys):
                    rep[m] = args[0]
        return (expr.xreplace(rep), True) if rep else (expr, False)

    # -- side conditions met while the user's function ran (xp.DomainLog) ---------------------
    # Sound sufficient tests on the domain var_c + ε > 0: a positive multiple of a product of
    # radicands var_c + ε is > 0; var_c = Σ(x − μ)²/N is >= 0 for every real input.

    def _strip(self, P, polys):
        """P divided by members of polys while they divide it exactly."""
        for U in polys:
            while not P.is_ground:
                quo, rem = P.div(U)
                if rem:
                    break
                P = quo
        return P

    def _cached(self, kind, expr, test):
        key = (kind, expr)
        got = self._ok.get(key)
        if got is None:
            got = self._ok[key] = bool(test(expr))
        return got

    def nonzero_ok(self, q):
        return self._cached("nonzero", q, self._nonzero)

    def positive_ok(self, u):
        return self._cached("positive", u, self._positive)

    def nonnegative_ok(self, u):
        return self._cached("nonnegative", u, self._nonnegative)

    def _nonzero(self, q):
        if q.is_Rational:
            return q != 0
        if q.is_Mul:
            return all(self.nonzero_ok(a) for a in q.args)
        if q.is_Pow and q.exp.is_Rational:
            return self.nonzero_ok(q.base) if q.exp.is_Integer else self.positive_ok(q.base)
        P = self.poly(q)
        if P is None:
            return False
        P = self._strip(P, self.radicand_polys)
        return P.is_ground and bool(P)

    def _positive(self, u):
        if u.is_Rational:
            return u > 0
        if u.is_Mul:
            return all(self.positive_ok(a) for a in u.args)
        if u.is_Pow and u.exp.is_Rational:
            if u.exp.is_Integer and u.exp % 2 == 0:
                return self.nonzero_ok(u.base)
            return self.positive_ok(u.base)
        P = self.poly(u)
        if P is None:
            return False
        P = self._strip(P, self.radicand_polys)
        return P.is_ground and P.LC > 0

    def _nonnegative(self, u):
        if u.is_Rational:
            return u >= 0
        if self.positive_ok(u):
            return True
        if u.is_Mul:
            return all(self.nonnegative_ok(a) for a in u.args)
        if u.is_Pow and u.exp.is_Rational:
            if u.exp < 0:  # also a division: the base must be nonzero
                return self.positive_ok(u.base) or (u.exp.is_Integer and u.exp % 2 == 0
                                                    and self.nonzero_ok(u.base))
            if u.exp.is_Integer and u.exp % 2 == 0:
                return True
            return self.nonnegative_ok(u.base)
        P = self.poly(u)
        if P is None:
            return False
        P = self._strip(P, self.radicand_polys + self.var_polys)
        return P.is_ground and P.LC >= 0

    def domain_problems(self, log):
        """Conditions of the user's run (an xp.DomainLog) not implied by var_c + ε > 0, as text."""
        out = []
        for table, test, need in ((log.nonzero, self.nonzero_ok, "!= 0"),
                                  (log.nonnegative, self.nonnegative_ok, ">= 0"),
                                  (log.positive, self.positive_ok, "> 0")):
            for expr, what in table.items():
                if not test(self.unclamp(expr)[0]):
                    out.append(f"{_short(expr)} {need} ({what})")
        return out


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
    gens = sorted(gens, key=_sym_key)
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


class _RingAtomizer(_Atomizer):
    """decide.py's atomizer with radicands and denominators compared as polynomials over ℚ in the
    input symbols (converted by a memoized DAG walk, never ``sympy.expand``) and normalized up to
    a constant factor: ``sqrt(k·p) = sqrt(k)·σ_p`` for a rational k > 0 (``sqrt(k)`` itself exact:
    a rational or a σ with σ² = k) and ``1/(k·p) = ι_p/k``.  So ``sqrt(S + N·ε)`` with
    ``S = N·var`` shares the σ of ``var + ε``.  Radicands or denominators that contain other
    atoms (σ, ι, opaque) fall back to decide.py's ``expand`` keys."""

    def __init__(self, base_symbols, radicands=()):
        super().__init__()
        gens = sorted(base_symbols, key=_sym_key)
        self._R = _poly_ring(gens, QQ)[0] if gens else None
        self._index = {g: i for i, g in enumerate(gens)}
        self._pmemo = {}
        # the domain's radicands var_c + ε: 1/(k·u) for such a u becomes ι_σ²/k (σ = sqrt(u)), so
        # that u⁻¹ (SymPy writes invstd·invstd as (var + ε)⁻¹) does not need its own ι -- whose
        # elimination would multiply every entry by u once more
        # radicand p (normalized to |leading coefficient| 1) -> the domain's radicand u = c·p that
        # is used as σ's radicand instead, so that sqrt(var_c + ε) is one σ, not sqrt(c)·σ
        self._canon = {}
        for u in radicands:
            P = self._poly(u)
            if P is not None and not P.is_ground:
                self._canon[self._key(P.quo_ground(abs(P.LC)))] = P

    def _poly(self, e):
        if self._R is None:
            return None
        return _to_ring(self._R, self._index, e, self._pmemo)

    @staticmethod
    def _key(p):
        return ("ring", frozenset(p.items()))

    @staticmethod
    def _rational(k):
        return sympy.Rational(int(k.numerator), int(k.denominator))

    def _sigma(self, p):
        key = self._key(p)
        sym = self.radicals.get(key)
        if sym is None:
            sym = self._fresh("sigma", positive=True)
            self.radicals[key] = sym
            self.radicand_of[sym] = p.as_expr()
            self.order.append(sym)
        return sym

    def _scaled(self, P):
        """(k, p) with P = k·p, k > 0 rational, p the domain's radicand if P is a positive multiple
        of one, else P normalized to |leading coefficient| 1."""
        k = abs(P.LC)
        p = P.quo_ground(k)
        U = self._canon.get(self._key(p))
        if U is not None:
            return P.LC / U.LC, U
        return k, p

    def radical(self, radicand):
        P = self._poly(radicand)
        if P is None or P.is_ground:
            return super().radical(radicand)
        k, p = self._scaled(P)
        sym = self._sigma(p)
        if k == 1:
            return sym
        return self(sympy.sqrt(self._rational(k))) * sym

    def inverse(self, denominator):
        c, rest = denominator.as_coeff_Mul()
        if c.is_Rational and c != 0 and c != 1 and not rest.is_Number:
            return self.inverse(rest) / c
        P = self._poly(denominator)
        if P is None or P.is_ground:
            return super().inverse(denominator)
        if self._key(P.quo_ground(abs(P.LC))) in self._canon:  # P = ±k·u, u = var_c + ε = σ²
            k, p = self._scaled(P) if P.LC > 0 else self._scaled(-P)
            sign = 1 if P.LC > 0 else -1
            return self.inverse(self._sigma(p)) ** 2 / (sign * self._rational(k))
        lc = P.LC
        p = P.quo_ground(lc)
        key = ("ring", frozenset(p.items()))
        sym = self.inverses.get(key)
        if sym is None:
            sym = self._fresh("iota")
            self.inverses[key] = sym
            self.inverse_of[sym] = p.as_expr()
            self.order.append(sym)
        return sym / sympy.Rational(int(lc.numerator), int(lc.denominator))


def _decide_batch(pairs, budget, radicands=(), base=None):
    """decide_zero's procedure (see decide.py) for a batch of differences sharing subexpressions:
    one atomizer (:class:`_RingAtomizer`, so equal radicands -- up to a positive constant factor --
    share one σ across all entries), one polynomial ring, and a conversion to the ring memoized on
    subexpressions (SymPy's own ring conversion re-expands shared subtrees such as Σ g·x̂ for every
    entry).  Every σ/ι created goes into the ring.  Returns (decisions per pair, atomizer) or
    ('timeout', None)."""
    try:
        with time_budget(budget):
            if base is None:
                base = set()
                for _, d in pairs:
                    base |= d.free_symbols
            at = _RingAtomizer(base, radicands)
            atomized = [(loc, at(diff)) for loc, diff in pairs]
            gens = set(at.order)
            for _, e in atomized:
                gens |= e.free_symbols
            for e in list(at.radicand_of.values()) + list(at.inverse_of.values()):
                gens |= e.free_symbols
            gens = sorted(gens, key=_sym_key)
            R, *_ = _poly_ring(gens, QQ)
            index = {g: i for i, g in enumerate(gens)}
            memo = {}

            def conv(e):
                r = _to_ring(R, index, e, memo)
                if r is None:  # not expected after atomization; let SymPy convert it
                    r = memo[e] = R(e)
                return r

            out = []
            for loc, e in atomized:
                out.append((loc, _normal_form(conv(e), R, index, at, conv)))
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
    result, at = _decide_batch(diffs, remaining, [U.as_expr() for U in ref.radicand_polys], ref.symbols)
    if result == "timeout":
        return "timeout", f"time budget of {budget:g} s exceeded"
    for loc, P in result:
        if P:
            return "remainder", f"nonzero exact normal form at {loc}"
    extra = []
    for u in at.radicand_of.values():
        if not ref.is_radicand(u):
            extra.append(f"{_short(u)} > 0 (a radicand)")
    for q in at.inverse_of.values():
        if not _denominator_ok(q, [p.as_expr() for p in ref.radicand_polys]):
            extra.append(f"{_short(q)} != 0 (a denominator)")
    if at.opaque:
        extra.append("opaque subexpressions treated as arbitrary values: "
                     + ", ".join(_short(o, 60) for o in list(at.opaque)[:3]))
    if extra:
        return "extra", "the algebra also needs: " + _join(extra)
    return "proved", None


def _join(items, limit=6):
    return "; ".join(items[:limit]) + (f" (and {len(items) - limit} more)" if len(items) > limit else "")


# ---------------------------------------------------------------------------------------------
# Counterexamples


#: Kinds of rational points, in the order they are tried: point 0 is generic; 1-3 sit where code
#: that divides by something the domain does not keep away from zero breaks (a constant channel,
#: var_c = 0, when ε > 0; γ_0 = 0; an entry equal to its channel mean); the rest are generic.
_POINT_KINDS = ("generic", "constant_channel", "gamma_zero", "entry_at_mean")


def _is_domain_error(exc):
    """A ValueError of the symbolic namespace meaning 'no real value' (sqrt/log of a number)."""
    text = str(exc)
    return isinstance(exc, ValueError) and ("sqrt of the negative" in text or "log of the non-positive" in text)


class _Points:
    """Exact rational points (var_c + ε > 0) with the user's and the graph's values, cached."""

    def __init__(self, fn, role, shape, eps, seed):
        self.fn, self.role, self.shape, self.eps = fn, role, shape, eps
        self.rng = random.Random(seed)
        self.cache = []
        self.notes = {}  # obligation name -> why values could not be compared exactly

    def _rat(self, lo=-9, hi=9, nonzero=False):
        while True:
            num = self.rng.randint(lo, hi)
            if num or not nonzero:
                return sympy.Rational(num, self.rng.randint(1, 4))

    def _draw(self, kind):
        C, H, W = self.shape
        n = H * W
        eps = self.eps
        if isinstance(eps, sympy.Symbol):
            eps = sympy.Rational(self.rng.randint(1, 9), 10 ** self.rng.randint(1, 3))
        if kind == "constant_channel" and not eps > 0:
            kind = "generic"  # var_c = 0 is outside the domain
        if kind == "entry_at_mean" and n == 1:
            kind = "generic"
        for _ in range(200):
            x = np.array([self._rat() for _ in range(C * n)], dtype=object).reshape(self.shape)
            ok = True
            for c in range(C):
                if kind == "constant_channel" and c == 0:
                    x[c] = self._rat()
                    continue
                if kind == "entry_at_mean":
                    rest = list(x[c].flat)[1:]
                    x[c].flat[0] = sum(rest, sympy.Integer(0)) / len(rest)
                xs = list(x[c].flat)
                mu = sum(xs, sympy.Integer(0)) / n
                var = sum(((v - mu) ** 2 for v in xs), sympy.Integer(0)) / n
                if not var + eps > 0:
                    if var == 0:
                        ok = False
                        break
                    # spread the channel about its mean until var_c + ε > 0 (ε <= 0 given exactly)
                    k = int(sympy.ceiling(sympy.sqrt(-eps / var))) + 1
                    x[c] = np.array([mu + k * (v - mu) for v in xs], dtype=object).reshape(self.shape[1:])
            if ok:
                break
        else:  # pragma: no cover - the domain is nonempty (checked up front)
            raise ValueError(f"no rational point with var_c + ε > 0 found for eps={eps}")
        gamma = np.array([self._rat(nonzero=True) for _ in range(C)], dtype=object)
        if kind == "gamma_zero":
            gamma[0] = sympy.Integer(0)
        beta = np.array([self._rat() for _ in range(C)], dtype=object)
        while True:  # generic cotangent: never constant within a channel (the all-ones trap)
            g = np.array([self._rat() for _ in range(C * n)], dtype=object).reshape(self.shape)
            if n == 1 or all(len(set(g[c].flat)) > 1 for c in range(C)):
                break
        return x, gamma, beta, g, eps, kind

    def _run(self, x, gamma, beta, g, eps):
        """The user's outputs at exact numbers (fresh copies of the inputs), or the reason the
        function has no real value there (a string)."""
        args = [X.to_sympy_array(a) for a in (x, gamma, beta)]
        try:
            if self.role == "forward":
                got = _run_forward(self.fn, *args, eps, self.shape)
            else:
                got = _run_backward(self.fn, *args, X.to_sympy_array(g), eps, self.shape)
        except ImplementationError as exc:
            cause = exc.__cause__
            if getattr(exc, "undefined", False) or isinstance(cause, ZeroDivisionError) \
                    or _is_domain_error(cause):
                return str(exc)
            raise
        label = f"{self.role} {_fname(self.fn)!r}"
        for name, arr in got.items():
            for idx in np.ndindex(*arr.shape):
                free = arr[idx].free_symbols
                if free:
                    names = ", ".join(sorted(map(str, free))[:4])
                    raise ImplementationError(
                        f"{label}: at numeric inputs {name}[{', '.join(map(str, idx))}] still contains "
                        f"the symbol(s) {names}: the output depends on something other than the "
                        "function's arguments (e.g. symbols it built itself)")
        return got

    def point(self, k):
        while len(self.cache) <= k:
            kind = _POINT_KINDS[len(self.cache)] if len(self.cache) < len(_POINT_KINDS) else "generic"
            x, gamma, beta, g, eps, kind = self._draw(kind)
            got = self._run(x, gamma, beta, g, eps)
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
                               "got": got, "want": want, "kind": kind})
        return self.cache[k]

    def _cex(self, pt, name, idx, got, got_approx):
        want = pt["want"][name][idx]
        cex = {"location": f"{name}[{', '.join(map(str, idx))}]",
               "implementation": got, "reference": want,
               "implementation_approx": got_approx,
               "reference_approx": float(sympy.N(want, 17)),
               "x": pt["x"].tolist(), "gamma": pt["gamma"].tolist(),
               "beta": pt["beta"].tolist(), "eps": pt["eps"]}
        if self.role == "backward":
            cex["grad_out"] = pt["g"].tolist()
        return cex

    def counterexample(self, name, ks):
        for k in ks:
            pt = self.point(k)
            got = pt["got"]
            if isinstance(got, str):  # the function has no real value at this point of the domain
                idx = (0,) * pt["want"][name].ndim
                cex = self._cex(pt, name, idx, f"undefined: {got}", float("nan"))
                cex["undefined"] = (f"the {self.role} is undefined at an input where var_c + ε > 0 "
                                    f"for every channel: {got}")
                return cex
            got, want = got[name], pt["want"][name]
            for idx in np.ndindex(*got.shape):
                try:
                    differ = differ_exactly(got[idx], want[idx])
                except (TypeError, ZeroDivisionError) as exc:
                    self.notes.setdefault(name, (
                        f"{name}[{', '.join(map(str, idx))}] = {_short(got[idx], 80)} at rational inputs "
                        f"could not be compared exactly with the reference ({type(exc).__name__}: "
                        f"{_short(exc, 100)}; the rigorous interval evaluation covers rationals, +, ·, "
                        "integer and half-integer powers only -- not pi, E, exp, log, ...)"))
                    continue
                if differ:
                    return self._cex(pt, name, idx, got[idx], float(sympy.N(got[idx], 17)))
        return None


# ---------------------------------------------------------------------------------------------
# Obligations


_STATEMENTS = {
    "y": "forward(x, γ, β, ε) = (x − μ_c)/sqrt(var_c + ε)·γ_c + β_c entrywise (the graph's yChw)",
    "dx": "backward's dx = (∂y/∂x)ᵀ·g for a fully symbolic cotangent g (y the graph's yChw)",
    "dgamma": "backward's dgamma = (∂y/∂γ)ᵀ·g for a fully symbolic cotangent g",
    "dbeta": "backward's dbeta = (∂y/∂β)ᵀ·g for a fully symbolic cotangent g",
}

_SEARCH = range(1, 9)


def _obligation(role, name, shape, eps, got, want, ref, points, budget, domain, start=None):
    """One obligation; ``domain`` lists the side conditions of the symbolic run not implied by
    the domain (ref.domain_problems).  Runs within ``budget`` seconds from ``start``."""
    start = time.perf_counter() if start is None else start
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
    method_undefined = ("exact counterexample: the user's function re-run on the symbolic namespace "
                        "at rational inputs inside the domain has no real value there (it divided "
                        "by zero, took the sqrt/log of a negative number, or returned a non-finite "
                        "or non-real entry)")
    domain_text = ("the user's function met side conditions the domain does not imply (recorded by "
                   "the symbolic namespace while it ran, before SymPy's automatic cancellations): "
                   + _join(domain)) if domain else None

    def done(status, method, cex=None, detail=None):
        return Obligation(ob_name, statement, status, method, assumptions=assumptions,
                          seconds=time.perf_counter() - start, counterexample=cex,
                          group=f"{role} {C}x{H}x{W}", detail=detail)

    def failed(cex, detail=None):
        if cex.get("undefined"):
            return done("failed", method_undefined, cex, detail=cex["undefined"])
        return done("failed", method_cex, cex, detail=detail)

    def with_notes(detail):
        note = points.notes.get(name)
        return "; ".join(d for d in (detail, note) if d) or None

    timeout = f"time budget of {budget:g} s exceeded"
    remaining = None if budget is None else max(budget - (time.perf_counter() - start), 1e-3)
    try:
        with time_budget(remaining):
            cex = points.counterexample(name, [0])
            if cex:
                return failed(cex)
            pairs = []
            unclamped = False
            for idx in np.ndindex(*got.shape):
                g_expr, changed = ref.unclamp(got[idx])
                unclamped |= changed
                pairs.append((f"{name}[{', '.join(map(str, idx))}]", g_expr, want[idx]))
            status, detail = _decide_entries(pairs, ref, budget, start)
            note = " Max(var_c, 0) / Max(var_c + ε, 0) replaced by their argument (var_c ≥ 0 as a sum of " \
                   "squares; var_c + ε > 0 assumed)." if unclamped else ""
            if status == "proved" and not domain:
                return done("proved", how + "; every entry's difference decided zero by decide_zero ("
                            + METHOD_ZERO + "); radicands checked to be positive multiples of var_c + ε, "
                            "denominators nonzero constants times σ's and powers of var_c + ε; every "
                            "divisor, radicand and power base the function met while it ran checked "
                            "the same way." + note)
            if status == "timeout":
                return done("undecided", how + "; time budget exceeded." + note,
                            detail="; ".join(d for d in (detail, domain_text) if d))
            # not proved: look for an exact counterexample (degenerate points first)
            cex = points.counterexample(name, _SEARCH)
            if cex:
                return failed(cex, detail=detail if status == "remainder" else None)
            if status == "proved":
                return done("undecided", how + "; every entry's difference decided zero by decide_zero, "
                            "but only under side conditions the function met while it ran." + note,
                            detail=with_notes(domain_text))
            if status == "extra":
                return done("undecided", how + "; decide_zero's normal form is zero only under extra "
                            "assumptions." + note,
                            detail=with_notes("; ".join(d for d in (detail, domain_text) if d)))
            return done("undecided", how + "; the exact normal form is not zero but no rational "
                        "counterexample was found (e.g. a perfect-square radicand)." + note,
                        detail=with_notes("; ".join(d for d in (detail, domain_text) if d)))
    except BudgetExceeded:
        return done("undecided", how + "; time budget exceeded.",
                    detail="; ".join(d for d in (timeout, domain_text) if d))


def _subject(role, fn, shape):
    return f"{role} {_fname(fn)} at {shape[0]}x{shape[1]}x{shape[2]}"


def _copy(arr):
    """A fresh symbolic array with the same entries (the user's function may write into it)."""
    return X.symbolic.asarray(arr, copy=True)


def _check(role, fn, shape, eps, budget, seed):
    t0 = time.perf_counter()
    who = f"check_{role}"
    shape, eps_v = _validate_args(who, role, fn, shape, eps, budget)
    names = ("y",) if role == "forward" else _BACKWARD_OUTPUTS
    cert = Certificate(_subject(role, fn, shape),
                       parameters={"shape": shape, "eps": "symbolic ε" if eps is None else eps_v,
                                   "budget": budget})
    try:
        # Setup -- the reference (and Jᵀg) first, then the user's run on copies of the symbols,
        # recording its side conditions -- counts against the first obligation's budget.
        with time_budget(budget):
            ref = _Reference(shape, eps_v)
            want = {"y": ref.y} if role == "forward" else ref.backward()
            with X.record_domain() as log:
                if role == "forward":
                    got = _run_forward(fn, _copy(ref.x), _copy(ref.gamma), _copy(ref.beta), eps_v, shape)
                else:
                    got = _run_backward(fn, _copy(ref.x), _copy(ref.gamma), _copy(ref.beta),
                                        _copy(ref.g), eps_v, shape)
            domain = ref.domain_problems(log)
    except BudgetExceeded:
        C, H, W = shape
        for name in names:
            cert.add(Obligation(
                f"{role}.{name}", f"{_STATEMENTS[name]}, for all real inputs, at shape {C}x{H}x{W}",
                "undecided", "time budget exceeded while building the reference and running the "
                "function on the symbolic namespace", assumptions=[ASSUMPTION],
                seconds=time.perf_counter() - t0, group=f"{role} {C}x{H}x{W}",
                detail=f"time budget of {budget:g} s exceeded before any entry was decided"))
        cert.seconds = time.perf_counter() - t0
        return cert
    points = _Points(fn, role, shape, eps_v, seed)
    for i, name in enumerate(names):
        cert.add(_obligation(role, name, shape, eps_v, got[name], want[name], ref, points, budget,
                             domain, start=t0 if i == 0 else None))
    cert.seconds = time.perf_counter() - t0
    return cert


def check_forward(forward, shape=DEFAULT_SHAPE, eps=None, budget=DEFAULT_BUDGET, seed=0) -> Certificate:
    """Prove ``forward(x, gamma, beta, eps, xp)`` equal to the graph's yChw, exactly (module doc).

    Returns a :class:`Certificate` with one obligation ``'forward.y'``.  ``budget`` (seconds, or
    None) bounds everything: building the reference, running ``forward`` and deciding."""
    return _check("forward", forward, shape, eps, budget, seed)


def check_backward(backward, shape=DEFAULT_SHAPE, eps=None, budget=DEFAULT_BUDGET, seed=0) -> Certificate:
    """Prove ``backward(x, gamma, beta, grad_out, eps, xp) -> (dx, dgamma, dbeta)`` equal to
    Jᵀ·grad_out of the graph's forward, exactly (module doc).

    Returns a :class:`Certificate` with obligations ``'backward.dx'``, ``'backward.dgamma'``,
    ``'backward.dbeta'``.  ``budget`` bounds the setup (reference, Jᵀg, running ``backward``)
    together with the first obligation, and each further obligation separately."""
    return _check("backward", backward, shape, eps, budget, seed)
