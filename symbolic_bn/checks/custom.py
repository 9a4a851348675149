r"""A backward against the user's own forward: the exact analogue of ChainRulesTestUtils' ``test_rrule``.

    check_backward(backward, forward=fwd, shape=x_shape, weight_shape=w_shape, bias_shape=b_shape,
                   eps=None, budget=..., seed=0)

proves ``backward(x, weight, bias, grad_out, eps[, xp]) -> (dx, dweight[, dbias])`` equal to
``Jᵀ·grad_out`` of ``fwd(x, weight, bias, eps[, xp]) -> y`` -- for *any* function the exact namespace
(:mod:`symbolic_bn.xp.engine`) runs, not only normalization layers: polynomial arithmetic, matrix
products, reductions, ``sqrt``, division, ``exp`` and ``log`` (atoms of the engine, like ``sqrt``).
Arguments:

* ``shape``, ``weight_shape`` -- the shapes of ``x`` and ``weight`` (both required; ``()`` is a scalar);
* ``bias_shape`` -- the shape of ``bias``; ``None`` (the default) means *no bias*: both functions get
  ``bias=None`` and the backward returns ``(dx, dweight)``;
* ``eps`` -- ``None``: a real symbol ε (the identity is proved for every ε of the domain); a number:
  that exact value (floats are read as the simplest rational within half an ulp, as everywhere).
  ``grad_out`` has the shape of the forward's output, which is learned by running the forward once.

What the check does, on the exact engine (:mod:`symbolic_bn.exact`), reusing the machinery of
:mod:`symbolic_bn.checks.check` (calling, reading outputs, float readings, certificates):

1. every entry of ``x``, ``weight``, ``bias``, ``grad_out`` (and ε) is a variable of one Space;
2. ``fwd`` runs once on them; the atoms it creates -- square roots, divisions, logs -- carry side
   conditions (``z ≥ 0``, ``q ≠ 0``, ``a > 0``); the reference ``Jᵀg`` is the gradient of ``Σ g·y``
   by the engine's chain rule (which needs ``z > 0`` under a differentiated square root);
3. **the stated domain** D is the conjunction of those side conditions, except the ones the exact
   sign oracle shows to hold for every input (``Σ_k exp(z_k) ≠ 0``); D is printed in the
   certificate (``parameters['domain']`` and the obligations' assumptions) and stated as the
   hypothesis: positive and non-negative conditions become facts of the Space, non-zero conditions
   are kept as known-nonzero factors (a later ``1/q²`` or ``1/(q·r)`` is implied factor by factor);
4. **D is shown non-empty**: an exact rational point where every condition of D holds (each
   decided at the point by exact arithmetic, with outward-rounded intervals for constants such as
   ``exp(3/2)``) is found and shown (``parameters['witness']``, obligation ``domain.nonempty``).
   When no point is found the domain obligation, and with it every gradient obligation, is
   'undecided' -- a proof on a possibly empty domain would be vacuous;
5. the user's ``backward`` runs once on copies of the same symbolic inputs; each returned entry
   minus the reference is decided zero by exact normal forms; every side condition the backward
   met must hold on D (else 'undecided', the condition named);
6. the backward also runs exactly at the witness and is compared with the reference there; when
   the symbolic decision fails, random rational points of D are searched for a counterexample,
   which is re-confirmed independently: both numbers are exported to SymPy and their difference is
   evaluated in outward-rounded interval arithmetic (mpmath ``iv``, also for ``exp``/``log``).

Data-dependent branches are decided on the whole domain or refused with an
:class:`~symbolic_bn.checks.crosscheck.ImplementationError` naming the file and line (as in
:mod:`~symbolic_bn.checks.check`).  Bad input (missing shapes, non-callables, a forward that does not
return an array, gradients of the wrong shape -- the message gives the expected and the actual
shape) is refused with a one-line ``ValueError``/``ImplementationError`` naming the argument.

Source of the idea: ChainRulesTestUtils.jl's ``test_rrule(f, x...)`` checks a reverse rule against
finite differences of ``f``; here the comparison is exact and the rule is proved, not sampled.
"""
from __future__ import annotations

import numbers
import random
import time
from fractions import Fraction

import mpmath
import numpy as np
import sympy

from .. import layers as L
from ..exact import normal, sign
from ..exact.budget import BudgetExceeded, check_budget, time_budget
from ..exact.convert import Substitution, to_sympy
from ..exact.coordinates import Inputs
from ..exact.errors import ExactArithmeticError, UndefinedValue
from ..exact.floats import float_log
from ..exact.space import Fact, Space
from ..exact.value import MULTI, Value
from ..obligations.certificate import Certificate, Obligation
from ..xp.engine import ExactNamespace, _pairwise_sum, to_values
from .calling import call, function_name, read_outputs
from .crosscheck import ImplementationError

__all__ = ["check_custom_backward", "WITNESS_ATTEMPTS", "SEARCH_POINTS"]

#: Rational points tried when looking for a point of the domain (the non-empty witness).
WITNESS_ATTEMPTS = 60
#: Points of the domain tried for a counterexample when the symbolic decision fails.
SEARCH_POINTS = 6

WHO = "check_backward"


# ------------------------------------------------------------------------------ arguments

def _shape(value, name, what):
    if value is None:
        raise ValueError(f"{WHO}: with forward=, {name} (the shape of {what}) is required")
    try:
        return L._dims(value, name, 0, 6)
    except ValueError as exc:
        raise ValueError(f"{WHO}: {exc}") from None


def _eps(eps):
    try:
        return L._eps(eps)
    except ValueError as exc:
        raise ValueError(f"{WHO}: {exc}") from None


def _validate(backward, forward, budget, seed):
    if not callable(backward):
        raise ValueError(f"{WHO}: the backward must be callable, got {type(backward).__name__}")
    if not callable(forward):
        raise ValueError(f"{WHO}: forward must be callable, got {type(forward).__name__}")
    budget = check_budget(budget, "budget")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"{WHO}: seed must be an integer, got {seed!r}")
    return budget


# ------------------------------------------------------------------------------ the setting

class _Setting:
    """One Space with x, weight, bias, [grad_out] and ε as variables."""

    def __init__(self, x_shape, w_shape, b_shape, eps, y_shape=None):
        self.shapes = {"x": x_shape, "weight": w_shape}
        if b_shape is not None:
            self.shapes["bias"] = b_shape
        if y_shape is not None:
            self.shapes["grad_out"] = y_shape
        space = self.space = Space(name="custom forward")
        inputs = self.inputs = Inputs(space)
        for name, shape in self.shapes.items():
            inputs.plain(name, shape)
        self.eps_symbol = eps if isinstance(eps, sympy.Symbol) else None
        if self.eps_symbol is not None:
            s = self.eps_symbol
            inputs.scalar("eps", None, sign="positive" if s.is_positive else "negative" if s.is_negative
                          else "nonneg" if s.is_nonnegative else "nonpos" if s.is_nonpositive else None)
            space.display_map["eps"] = s
            self.eps = space.var("eps")
        else:
            self.eps = space.fraction(eps)
        self.exact_eps = None if self.eps_symbol is not None else Fraction(eps)
        self.xp = ExactNamespace(space)
        self.arrays = {name: to_values(space, inputs.array(name)) for name in self.shapes}

    def arguments(self, with_cotangent):
        a = self.arrays
        args = [a["x"].copy(), a["weight"].copy(), a["bias"].copy() if "bias" in a else None]
        if with_cotangent:
            args.append(a["grad_out"].copy())
        return args + [self.eps]


def _output_shape(fn, out):
    """The shape of what the forward returned, or a one-line ImplementationError."""
    label = f"forward {function_name(fn)!r}"
    if type(out) is Value or (isinstance(out, (numbers.Number, Fraction)) and not isinstance(out, bool)):
        return ()
    if isinstance(out, np.ndarray):
        return out.shape
    if isinstance(out, (list, tuple)):
        try:
            return np.array(out, dtype=object).shape
        except ValueError:
            raise ImplementationError(f"{label} returned a ragged {type(out).__name__}, expected an array "
                                      "(its output y)") from None
    text = repr(out)
    text = text if len(text) <= 40 else text[:37] + "..."
    raise ImplementationError(f"{label} returned a {type(out).__name__} ({text}), expected an array "
                              "(its output y)")


def _run_forward(fn, setting):
    out = call(fn, "forward", setting.arguments(False), setting.xp)
    shape = _output_shape(fn, out)
    return read_outputs(setting.space, fn, "forward", out, ("y",), (shape,))["y"]


# ------------------------------------------------------------------------------ the domain

class _Domain:
    """The side conditions the forward (and its derivative) meet, stated as the hypothesis."""

    def __init__(self, space, atoms):
        self.space = space
        self.conditions = []      # (atom, text): the conditions of D (each may fail somewhere)
        self.everywhere = []      # texts of conditions shown to hold for every input
        self.implied = []         # texts of non-zero conditions implied by the other conditions of D
        candidates, seen = [], set()
        for atom in atoms:
            if atom.condition is None:
                continue
            key = (atom.kind, atom.condition, str(atom.home.lift(atom.argument)))
            if key in seen:
                continue
            seen.add(key)
            (candidates.append(atom) if not space.condition_holds(atom)
             else self.everywhere.append(space.condition_text(atom)))
        # a condition whose argument has the opposite sign for every input makes D empty
        self.refuted = []
        for atom in candidates:
            sg = sign.sign(space, self.argument(atom))
            if (atom.condition == "positive" and sg in ("neg", "nonpos", "zero")) or \
                    (atom.condition == "nonneg" and sg == "neg") or (atom.condition == "nonzero" and sg == "zero"):
                self.refuted.append(space.condition_text(atom))
        # positive / non-negative conditions become facts (the hypothesis) ...
        for atom in candidates:
            text = space.condition_text(atom)
            arg = self.argument(atom)
            if atom.condition == "positive":
                space.assume_positive(arg, f"the domain: {text}")
                self.conditions.append((atom, text))
            elif atom.condition == "nonneg":
                space.facts.append(Fact(space.collapse(arg), "nonneg", f"the domain: {text}"))
                self.conditions.append((atom, text))
        _reset_sign_caches(space)
        # ... and a non-zero condition they imply (1/sqrt(z) with z > 0 stated) is not repeated
        self.nonzero_factors = []
        for atom in candidates:
            if atom.condition == "positive":
                self.nonzero_factors += _factors(space, self.argument(atom))
            if atom.condition != "nonzero":
                continue
            text = space.condition_text(atom)
            if space.condition_holds(atom):
                self.implied.append(text)
                continue
            self.conditions.append((atom, text))
            self.nonzero_factors += _factors(space, self.argument(atom))
        self.stated = {atom.id: atom.condition for atom, _ in self.conditions}

    def argument(self, atom):
        return Value(self.space, atom.home, atom.home.lift(atom.argument))

    @property
    def texts(self):
        return [t for _, t in self.conditions]

    def statement(self):
        if not self.conditions:
            return "the domain D: every input (no side condition of the forward can fail)"
        return "the domain D (the forward's side conditions): " + "; ".join(self.texts)

    # -- conditions the backward met
    def unmet(self, atoms):
        """Texts of the conditions of ``atoms`` that D does not imply -- and of D's own square roots
        whose condition the backward strengthened (1/sqrt(z) needs z > 0 where D says z ≥ 0)."""
        out = []
        strengthened = [a for a in self.space.atoms if a.id in self.stated and a.condition != self.stated[a.id]]
        for atom in list(atoms) + strengthened:
            if self.space.condition_holds(atom):
                continue
            if atom.condition == "nonzero" and self._nonzero_by_factors(atom):
                continue
            out.append(self.space.condition_text(atom))
        return out

    def _nonzero_by_factors(self, atom):
        space = self.space
        for f in _factors(space, self.argument(atom)):
            s = sign.sign(space, f)
            if s in ("pos", "neg"):
                continue
            if not any(_associated(space, f, k) for k in self.nonzero_factors):
                return False
        return True

    # -- points
    def holds_at(self, values):
        """Whether every condition of D holds at the exact point ``values`` (variable -> Fraction)."""
        point = Space(self.space.backend.name, name="domain point")
        at = Substitution(self.space, values, point)
        for atom, _ in self.conditions:
            try:
                v = at(self.argument(atom))
            except (UndefinedValue, ZeroDivisionError, ExactArithmeticError):
                return False
            s = sign.sign(point, v)
            need = {"positive": ("pos",), "nonneg": ("pos", "zero", "nonneg"),
                    "nonzero": ("pos", "neg")}[atom.condition]
            if s not in need:
                return False
        return True


def _reset_sign_caches(space):
    """Atom signs are cached; facts stated after an atom's sign was asked must be seen."""
    for atom in space.atoms:
        atom.positive_cache = None


def _factors(space, v):
    """Irreducible factors of a non-constant polynomial value (as Values of its ring)."""
    if v.ring is None:
        return []
    v = space.collapse(v) if v.ring is MULTI else v
    ring = v.ring
    p = ring.lift(v.poly())
    try:
        if hasattr(p, "factor"):
            _, fs = p.factor()
        else:
            _, fs = p.factor_list()
    except Exception:  # noqa: BLE001 - factoring is an aid: without it only fewer conditions are implied
        return [v]
    return [Value(space, ring, f) for f, _ in fs if not space.backend.is_constant(f)]


def _associated(space, a, b):
    """a = c·b for a nonzero rational c (both polynomials of one ring)."""
    if a.ring is None or b.ring is None:
        return False
    ring = a.ring if a.ring.label >= b.ring.label else b.ring
    pa, pb = space.embed(a, ring), space.embed(b, ring)
    backend = space.backend
    if backend.nterms(pa) != backend.nterms(pb):
        return False
    (_, ca), (_, cb) = backend.leading(pa), backend.leading(pb)
    return backend.is_zero(pa * backend.coeff(cb) - pb * backend.coeff(ca))


# ------------------------------------------------------------------------------ exact points

class _Points:
    """Rational points (x, weight, bias, grad_out, ε) and the functions evaluated there."""

    def __init__(self, setting, domain, backward, reference, out_names, out_shapes, seed):
        self.setting, self.domain = setting, domain
        self.backward, self.reference = backward, reference
        self.out_names, self.out_shapes = out_names, out_shapes
        self.rng = random.Random(seed)
        self._search = None
        self._cache: dict = {}

    def _rat(self, spread, mode):
        if mode == 1:   # positive entries (domains such as log(x), sqrt(x), 1/x)
            return Fraction(self.rng.randint(1, spread), self.rng.randint(1, 4))
        return Fraction(self.rng.randint(-spread, spread), self.rng.randint(1, 4))

    def draw(self, attempt):
        """A point (arrays of Fractions): small rationals, every other attempt with positive x, weight
        and bias entries; wider ranges later; ε = 1/10 first (the sign ε is declared with)."""
        mode = attempt % 2
        spread = 3 if attempt < 10 else 9
        pt = {}
        for name, shape in self.setting.shapes.items():
            arr = np.empty(shape, dtype=object)
            for idx in np.ndindex(*shape):
                arr[idx] = self._rat(spread, 0 if name == "grad_out" else mode)
            pt[name] = arr
        if self.setting.eps_symbol is not None:
            s = self.setting.eps_symbol
            e = Fraction(1, 10) if attempt < 2 else Fraction(self.rng.randint(1, 9), self.rng.randint(1, 9))
            pt["eps"] = -e if (s.is_negative or (s.is_nonpositive and attempt % 2)) else e
        else:
            pt["eps"] = self.setting.exact_eps
        return pt

    def values(self, pt):
        out = {}
        for name in self.setting.shapes:
            out.update(self.setting.inputs.point_values(name, pt[name]))
        if self.setting.eps_symbol is not None:
            out["eps"] = pt["eps"]
        return out

    def in_domain(self, pt):
        return self.domain.holds_at(self.values(pt))

    def find(self, attempts, skip=None):
        """The first drawn point inside D (or None)."""
        for attempt in range(attempts):
            pt = self.draw(attempt)
            if skip is not None and _same_point(pt, skip):
                continue
            if self.in_domain(pt):
                return pt
        return None

    def evaluate(self, pt):
        """(the backward's outputs at pt, or the reason it is undefined there; the reference there)."""
        space = Space(self.setting.space.backend.name, name="point")
        args = [to_values(space, pt["x"]), to_values(space, pt["weight"]),
                to_values(space, pt["bias"]) if "bias" in pt else None, to_values(space, pt["grad_out"]),
                space.fraction(pt["eps"])]
        try:
            out = call(self.backward, "backward", args, ExactNamespace(space))
            got = read_outputs(space, self.backward, "backward", out, self.out_names, self.out_shapes)
        except ImplementationError as exc:
            if not getattr(exc, "undefined", False):
                raise
            got = str(exc)
        at = Substitution(self.setting.space, self.values(pt), space)
        want = {}
        for name, arr in self.reference.items():
            w = np.empty(arr.shape, dtype=object)
            for idx in np.ndindex(*arr.shape):
                w[idx] = at(arr.view(np.ndarray)[idx])
            want[name] = w
        return got, want

    def search_points(self):
        """Up to SEARCH_POINTS further points of D (drawn once, reused for every output)."""
        if self._search is None:
            self._search = []
            for _ in range(SEARCH_POINTS):
                pt = self.find(WITNESS_ATTEMPTS)
                if pt is None:
                    break
                self._search.append(pt)
        return self._search

    def counterexample(self, pt, kind, notes, name=None):
        """The first entry (of output ``name``, or of any output) that differs from the reference at
        ``pt`` -- re-confirmed -- as a counterexample dict, or the backward being undefined there;
        None when it agrees there."""
        key = id(pt)
        if key not in self._cache:
            self._cache[key] = (pt, self.evaluate(pt))
        got, want = self._cache[key][1]
        if isinstance(got, str):
            first = self.out_names[0]
            idx = (0,) * len(self.out_shapes[0])
            ref = to_sympy(want[first][idx])
            return self._cex(pt, kind, first, idx, f"undefined: {got}", ref, undefined=got)
        for out in self.out_names if name is None else (name,):
            for idx in np.ndindex(*got[out].shape):
                u, r = got[out][idx], want[out][idx]
                d = u - r
                if normal.is_zero_value(d.space, d):
                    continue
                label = f"{out}[{', '.join(map(str, idx))}]" if idx else out
                if sign.sign(d.space, d) not in ("pos", "neg"):
                    notes.append(f"{label} at a {kind} point could not be compared exactly")
                    continue
                us, rs = to_sympy(u), to_sympy(r)
                confirmed = interval_differ(us, rs)
                if confirmed is not True:
                    notes.append(f"{label}: the engine found a difference that the interval re-evaluation "
                                 f"of the SymPy values did not confirm ({confirmed})")
                    continue
                return self._cex(pt, kind, out, idx, us, rs)
        return None

    def _cex(self, pt, kind, name, idx, us, rs, undefined=None):
        cex = {"location": f"{name}[{', '.join(map(str, idx))}]" if idx else name, "point": kind,
               "implementation": us, "reference": rs,
               "implementation_approx": float("nan") if undefined else _approx(us),
               "reference_approx": _approx(rs)}
        if undefined is not None:
            cex["undefined"] = (f"the backward is undefined at an input inside the domain "
                                f"({self.domain.statement()}): {undefined}")
        cex.update(point_dict(pt))
        return cex


def _same_point(a, b):
    return all(np.array_equal(a[k], b[k]) if isinstance(a[k], np.ndarray) else a[k] == b[k] for k in a)


def _rational(f):
    f = Fraction(f)
    return sympy.Rational(f.numerator, f.denominator)


def point_dict(pt):
    """A point as lists of SymPy Rationals (JSON-friendly through the certificate)."""
    out = {}
    for name in ("x", "weight", "bias", "grad_out"):
        if name in pt and pt[name] is not None:
            out[name] = np.vectorize(_rational, otypes=[object])(pt[name]).tolist() if pt[name].shape \
                else _rational(pt[name][()])
    out["eps"] = _rational(pt["eps"])
    return out


def _approx(e):
    try:
        return float(sympy.N(e, 17))
    except (TypeError, ValueError):
        return float("nan")


# ------------------------------------------------------------------------------ re-confirmation

def _iv(e, ctx):
    """Outward-rounded interval value of an exact numeric SymPy expression (rationals, +, ·,
    rational powers, exp, log)."""
    if e.is_Integer:
        return ctx.mpf(int(e))
    if e.is_Rational:
        return ctx.mpf(int(e.p)) / ctx.mpf(int(e.q))
    if e is sympy.E:
        return ctx.exp(ctx.mpf(1))
    if e.is_Add:
        total = ctx.mpf(0)
        for a in e.args:
            total = total + _iv(a, ctx)
        return total
    if e.is_Mul:
        total = ctx.mpf(1)
        for a in e.args:
            total = total * _iv(a, ctx)
        return total
    if e.is_Pow:
        base, ex = e.args
        b = _iv(base, ctx)
        if ex.is_Integer:
            k = int(ex)
            return b ** k if k >= 0 else ctx.mpf(1) / (b ** (-k))
        if ex.is_Rational and ex.q == 2:
            if b.a < 0:
                raise ValueError("square root of an interval reaching below 0")
            r = ctx.sqrt(b)
            k = int(ex.p)
            return r ** k if k >= 0 else ctx.mpf(1) / (r ** (-k))
        if base is sympy.E:
            return ctx.exp(_iv(ex, ctx))
    if isinstance(e, sympy.exp):
        return ctx.exp(_iv(e.args[0], ctx))
    if isinstance(e, sympy.log):
        a = _iv(e.args[0], ctx)
        if a.a <= 0:
            raise ValueError("log of an interval reaching 0")
        return ctx.log(a)
    raise TypeError(f"cannot evaluate {type(e).__name__} rigorously")


def interval_differ(a, b, max_prec: int = 4096):
    """True when the exact numbers ``a`` and ``b`` (SymPy) provably differ -- their difference's
    outward-rounded interval excludes 0 at some precision up to ``max_prec`` bits; None otherwise."""
    d = sympy.Add(a, -b)
    if d.is_Rational:
        return bool(d != 0)
    prec = 64
    while prec <= max_prec:
        old = mpmath.iv.prec
        try:
            mpmath.iv.prec = prec
            v = _iv(d, mpmath.iv)
            if v.a > 0 or v.b < 0:
                return True
        except (TypeError, ValueError, ZeroDivisionError):
            return None
        finally:
            mpmath.iv.prec = old
        prec *= 4
    return None


# ------------------------------------------------------------------------------ the check

METHOD = ("the user's forward and backward run once on the exact engine at symbolic inputs (polynomials "
          "over ℚ with atoms σ = sqrt(z), ι = 1/q, exp(a), log(a) and their side conditions); the reference "
          "Jᵀg is the gradient of Σ grad_out·y for the user's own forward by the engine's chain rule; each "
          "entry's difference decided zero by exact normal forms; the forward's side conditions stated as "
          "the domain, shown non-empty by an exact point; every side condition the backward met shown to "
          "hold on the domain; the backward also run exactly at that point and compared there")


def check_custom_backward(backward, forward, shape, weight_shape, bias_shape=None, eps=None,
                          budget=120.0, seed=0) -> Certificate:
    """Prove ``backward`` equal to ``Jᵀ·grad_out`` of ``forward`` exactly (module docstring).
    Obligations: ``domain.nonempty`` and ``backward.dx``, ``backward.dweight`` [, ``backward.dbias``]."""
    t0 = time.perf_counter()
    budget = _validate(backward, forward, budget, seed)
    x_shape = _shape(shape, "shape", "x")
    w_shape = _shape(weight_shape, "weight_shape", "weight")
    b_shape = None if bias_shape is None else _shape(bias_shape, "bias_shape", "bias")
    eps = _eps(eps)
    deadline = None if budget is None else t0 + budget

    def remaining():
        return None if deadline is None else max(deadline - time.perf_counter(), 1e-3)

    out_names = ("dx", "dweight") + (("dbias",) if b_shape is not None else ())
    where = (f"x {x_shape}, weight {w_shape}" + (f", bias {b_shape}" if b_shape is not None else ", no bias"))
    cert = Certificate(f"backward {function_name(backward)} against forward {function_name(forward)} at {where}",
                       parameters={"forward": function_name(forward), "shape": x_shape,
                                   "weight_shape": w_shape, "bias_shape": b_shape,
                                   "eps": "symbolic ε" if isinstance(eps, sympy.Symbol) else str(eps),
                                   "budget": budget, "seed": seed})
    try:
        with time_budget(remaining()), float_log() as floats:
            # the output's shape (grad_out's) is learned by a first run on a Space without grad_out
            probe = _Setting(x_shape, w_shape, b_shape, eps)
            y_shape = _run_forward(forward, probe).shape
            setting = _Setting(x_shape, w_shape, b_shape, eps, y_shape)
            space = setting.space
            y = _run_forward(forward, setting)
            g = setting.arrays["grad_out"]
            loss = _pairwise_sum(space, [space.multiply(a, b) for a, b in
                                         zip(np.ravel(g.view(np.ndarray)), np.ravel(y))])
            names = ["x", "weight"] + (["bias"] if b_shape is not None else [])
            grads = setting.inputs.gradient(loss, names)
            reference = {"d" + n: to_values(space, grads[n]) for n in names}
            domain = _Domain(space, list(space.atoms))
            n_atoms = len(space.atoms)
            out_shapes = tuple(setting.shapes[n] for n in names)
            branch_error = None
            try:
                out = call(backward, "backward", setting.arguments(True), setting.xp)
                got = read_outputs(space, backward, "backward", out, out_names, out_shapes)
            except ImplementationError as exc:
                cause = exc.__cause__
                if getattr(exc, "undefined", False) or (cause is not None and type(cause).__name__ == "BranchError"):
                    got, branch_error = None, exc
                else:
                    raise
            user_atoms = space.atoms[n_atoms:]
    except BudgetExceeded:
        return _all_undecided(cert, out_names, t0, budget, "time budget exceeded while running the forward, "
                              "its derivative and the backward")
    cert.parameters["y_shape"] = tuple(y_shape)
    cert.parameters["domain"] = domain.texts
    cert.parameters["conditions_holding_everywhere"] = domain.everywhere
    points = _Points(setting, domain, backward, reference, out_names, out_shapes, seed)
    assumptions = [domain.statement(),
                   "ε real (symbolic): every ε for which the domain holds" if setting.eps_symbol is not None
                   else f"ε = {setting.exact_eps} (exact)"] + floats.assumptions()
    notes: list = []
    start = time.perf_counter()
    try:
        with time_budget(remaining()):
            witness = None if domain.refuted else points.find(WITNESS_ATTEMPTS)
    except BudgetExceeded:
        witness = None
        notes.append("time budget exceeded while looking for a point of the domain")
    cert.add(_domain_obligation(domain, witness, start, assumptions[1:]))
    if witness is not None:
        cert.parameters["witness"] = point_dict(witness)
    statement = _statement_for(forward, where, domain)

    if got is None:  # the symbolic run could not go on: a counterexample beats the branch error
        try:
            with time_budget(remaining()):
                cex = _search(points, witness, notes)
        except BudgetExceeded:
            cex = None
        if cex is None:
            raise branch_error
        for name in out_names:
            mine = cex if (name == cex["location"].split("[")[0] or cex.get("undefined")) else None
            cert.add(_failed(name, statement, mine, assumptions, start) if mine else _undecided(
                name, statement(name), assumptions, start, f"not decided: {branch_error}"))
        return _finish(cert, t0, floats, space, user_atoms)

    mine = {a.id for a in user_atoms}
    for name in out_names:
        start = time.perf_counter()
        try:
            with time_budget(remaining()):
                # the conditions of the atoms this output's entries use (their own and nested ones)
                unmet = domain.unmet([a for a in _atoms_of(got[name]) if a.id in mine])
                ob = _decide(name, statement, got[name], reference[name], points, witness, unmet,
                             assumptions, notes, start)
        except BudgetExceeded:
            ob = _undecided(name, statement, assumptions, start,
                            f"time budget of {budget:g} s exceeded" if budget is not None else "time budget exceeded")
        cert.add(ob)
    return _finish(cert, t0, floats, space, user_atoms)


def _atoms_of(values):
    """Every atom the Values of an array use, with the atoms inside their arguments."""
    out, todo = {}, []
    for v in np.ravel(values):
        if v.ring is None:
            continue
        for ring, p in (v.p.items() if v.ring is MULTI else [(v.ring, v.p)]):
            todo += ring.atoms_in(p)
    while todo:
        a = todo.pop()
        if a.id in out:
            continue
        out[a.id] = a
        todo += a.home.atoms_in(a.argument)
        if a.base is not None:
            todo.append(a.base)
    return list(out.values())


def _finish(cert, t0, floats, space, user_atoms):
    cert.parameters["float_constants"] = [r.describe() for r in floats]
    cert.parameters["side_conditions"] = [space.condition_text(a) for a in user_atoms]
    cert.seconds = time.perf_counter() - t0
    return cert


def _statement_for(forward, where, domain):
    def text(name):
        arg = name[1:]
        return (f"backward's {name} = (∂y/∂{arg})ᵀ·grad_out for a fully symbolic grad_out, "
                f"y = {function_name(forward)}(x, weight, bias, eps), for every input of the domain D, at {where}")
    return text


def _domain_obligation(domain, witness, start, assumptions):
    statement = "the domain D is not empty: " + (
        "; ".join(domain.texts) if domain.conditions else "every input (no side condition can fail)")
    if witness is not None:
        how = ("an exact rational point (parameters['witness']) at which every condition of D was decided "
               "true by exact arithmetic (outward-rounded intervals for constant atoms such as exp(3/2))")
        return Obligation("domain.nonempty", statement, "proved", how, assumptions=assumptions,
                          seconds=time.perf_counter() - start, group="domain")
    detail = (f"no rational point among {WITNESS_ATTEMPTS} tried satisfies every condition of D; "
              "the domain may be empty (a proof on it would be vacuous)")
    if domain.refuted:
        detail += ("; the sign oracle shows this condition false wherever the others hold (so D is empty): "
                   + "; ".join(domain.refuted))
    return Obligation("domain.nonempty", statement, "undecided", "search for an exact rational point of D",
                      assumptions=assumptions, seconds=time.perf_counter() - start, group="domain",
                      detail=detail)


def _search(points, witness, notes, name=None):
    """A counterexample for output ``name`` (any output when None) at the witness or at the search
    points of D, or None."""
    if witness is not None:
        cex = points.counterexample(witness, "domain witness", notes, name)
        if cex is not None:
            return cex
    for pt in points.search_points():
        cex = points.counterexample(pt, "generic", notes, name)
        if cex is not None:
            return cex
    return None


def _decide(name, statement, got, want, points, witness, unmet, assumptions, notes, start):
    space = points.setting.space
    bad = None
    for idx in np.ndindex(*got.shape):
        if not normal.is_zero_value(space, got[idx] - want.view(np.ndarray)[idx]):
            bad = idx
            break
    if bad is None:
        if witness is None:
            return _undecided(name, statement(name), assumptions, start,
                              "every entry's difference is zero, but the domain D was not shown to be "
                              "non-empty (no rational point of D was found)", method=METHOD)
        cex = points.counterexample(witness, "domain witness", notes, name)
        if cex is not None:
            return _failed(name, statement, cex, assumptions, start,
                           detail="the symbolic run proved the identity, but the backward computes something "
                                  "else at the domain witness (its behaviour there differs from the symbolic run)")
        if unmet:
            return _undecided(name, statement(name), assumptions, start,
                              "every entry's difference is zero, but only where these side conditions the "
                              "backward met hold, which the domain D does not imply: " + "; ".join(unmet),
                              method=METHOD)
        return Obligation(f"backward.{name}", statement(name), "proved", METHOD, assumptions=assumptions,
                          seconds=time.perf_counter() - start, group="backward")
    cex = _search(points, witness, notes, name)
    if cex is not None:
        return _failed(name, statement, cex, assumptions, start)
    where = f"{name}[{', '.join(map(str, bad))}]" if bad else name
    return _undecided(name, statement(name), assumptions, start,
                      f"the exact normal form of {where} − reference is not zero, but no rational point of the "
                      "domain shows a difference" + (f"; {'; '.join(dict.fromkeys(notes))}" if notes else ""),
                      method=METHOD)


def _failed(name, statement, cex, assumptions, start, detail=None):
    if cex.get("undefined"):
        method = ("exact counterexample: the backward, run exactly at a rational point inside the domain D, "
                  "has no real value there")
        detail = detail or cex["undefined"]
    else:
        method = ("exact counterexample: the backward run on the exact engine at a rational point of the domain "
                  "D (every condition decided there); the reference there by exact substitution; the difference "
                  "re-confirmed by outward-rounded interval arithmetic on the SymPy values")
    return Obligation(f"backward.{name}", statement(name), "failed", method, assumptions=assumptions,
                      seconds=time.perf_counter() - start, counterexample=cex, group="backward", detail=detail)


def _undecided(name, statement, assumptions, start, detail, method="exact normal forms"):
    return Obligation(f"backward.{name}", statement, "undecided", method, assumptions=assumptions,
                      seconds=time.perf_counter() - start, group="backward", detail=detail)


def _all_undecided(cert, names, t0, budget, why):
    for name in names:
        cert.add(Obligation(f"backward.{name}", f"backward {name}", "undecided", why,
                            seconds=time.perf_counter() - t0, group="backward",
                            detail=f"time budget of {budget:g} s exceeded" if budget is not None else why))
    cert.seconds = time.perf_counter() - t0
    return cert
