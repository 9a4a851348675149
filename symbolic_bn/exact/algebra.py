"""Scalar number systems the graph runs on.

The nodes are written once, against a tiny interface (``const``, ``sum``, ``sqrt_clamp``,
``sqrt_clamp_deriv``, ``inv``, ``inv_deriv``, ``parameter`` and ordinary ``+ - *``), and run on:

* :class:`ExactAlgebra` -- SymPy numbers and expressions with TorchLean's totalized conventions
  (``sqrtClamp z = sqrt(max(z, 0))`` with declared derivative ``1/(2 sqrt z)``, which Lean's
  ``Real.sqrt z = 0`` and ``1/0 = 0`` make 0 for ``z <= 0``; ``inv 0 = 0`` with derivative 0 at 0).
  This is what ``Graph.evaluate``/``backprop`` use for user-visible results and counterexamples.

* :class:`AtomAlgebra` -- the proof engine: polynomials over ℚ in *atoms* -- coordinates of the
  inputs, parameters, and one new atom per square root (``σ`` with ``σ² = z``, valid where
  ``z > 0``) and per inverse (``ι`` with ``q·ι = 1``, valid where ``q ≠ 0``).  An identity between
  two such polynomials that holds *formally* (as polynomials in independent atoms) holds at every
  point of the domain, because each atom evaluates to a real number there.  Each atom also knows
  its derivative (``dσ = dz·ι_σ/2``, ``dι = −ι²·dq``), so Jacobians are derived by the chain rule.

* :class:`LinearForm` -- a sparse linear combination ``Σ_k s_k·a_k`` of independent symbols
  ``s_k`` (a fully symbolic seed or tangent) with coefficients ``a_k`` in an :class:`AtomAlgebra`.
  Backprop is linear in the seed, so running it on linear forms computes every seed coefficient
  at once without putting thousands of seed symbols into the polynomial ring.

Polynomial backends: python-flint's ``fmpq_mpoly`` (C, fast) when installed, else SymPy's
``PolyRing`` (pure Python).  Both give canonical forms, so ``p == 0`` is an exact zero test.
"""
from __future__ import annotations

import functools
import operator
from fractions import Fraction

import sympy

try:  # optional fast backend
    import flint as _flint
except ImportError:  # pragma: no cover - exercised when python-flint is absent
    _flint = None


def available_backends() -> list[str]:
    return (["flint"] if _flint is not None else []) + ["sympy"]


def default_backend() -> str:
    return available_backends()[0]


# ---------------------------------------------------------------------------------------------
# Exact SymPy algebra with Lean's conventions


from ..graphs.algebra import EXACT, ExactAlgebra  # noqa: E402,F401 - moved



# ---------------------------------------------------------------------------------------------
# Polynomial backends


class _FlintBackend:
    name = "flint"

    def __init__(self, names):
        self.ctx = _flint.fmpq_mpoly_ctx.get(tuple(names), "lex")
        self.context = self.ctx
        self.gens = list(self.ctx.gens())
        self.zero = self.ctx.from_dict({})
        self.one = self.zero + 1

    def coeff(self, q: Fraction):
        return _flint.fmpq(q.numerator, q.denominator)

    @staticmethod
    def context_of(p):
        return p.context() if type(p) is _flint.fmpq_mpoly else None

    @staticmethod
    def as_fraction(q) -> Fraction:
        return Fraction(int(q.p), int(q.q))

    def degree(self, p, i) -> int:
        return p.degrees()[i] if not p.is_zero() else -1

    def present(self, p) -> list[int]:
        if p.is_zero():
            return []
        return [i for i, d in enumerate(p.degrees()) if d > 0]

    def derivative(self, p, i):
        return p.derivative(i)

    def terms(self, p):
        return [(tuple(m), Fraction(int(c.p), int(c.q))) for m, c in p.terms()]

    def from_terms(self, terms):
        return self.ctx.from_dict({tuple(m): self.coeff(c) for m, c in terms}) if terms else self.zero

    def nterms(self, p) -> int:
        return len(p)


class _SympyBackend:
    name = "sympy"

    def __init__(self, names):
        from sympy.polys.domains import QQ
        from sympy.polys.rings import PolyRing
        self.QQ = QQ
        self.ring = PolyRing(list(names), QQ, "lex")
        self.context = self.ring
        self.gens = list(self.ring.gens)
        self.zero = self.ring.zero
        self.one = self.ring.one

    def coeff(self, q: Fraction):
        return self.QQ(q.numerator, q.denominator)

    @staticmethod
    def context_of(p):
        return getattr(p, "ring", None)

    @staticmethod
    def as_fraction(q) -> Fraction:
        return Fraction(int(q.numerator), int(q.denominator))

    def degree(self, p, i) -> int:
        return p.degree(i) if p else -1

    def present(self, p) -> list[int]:
        if not p:
            return []
        seen = [0] * self.ring.ngens
        for m in p.keys():
            for i, e in enumerate(m):
                if e:
                    seen[i] = 1
        return [i for i, s in enumerate(seen) if s]

    def derivative(self, p, i):
        return p.diff(self.gens[i])

    def terms(self, p):
        return [(tuple(m), Fraction(int(c.numerator), int(c.denominator))) for m, c in p.terms()]

    def from_terms(self, terms):
        return self.ring({tuple(m): self.coeff(c) for m, c in terms}) if terms else self.zero

    def nterms(self, p) -> int:
        return len(p)


def make_backend(names, backend: str | None = None):
    backend = backend or default_backend()
    if backend == "flint":
        if _flint is None:
            raise ValueError("backend 'flint' needs python-flint (pip install python-flint)")
        return _FlintBackend(names)
    if backend == "sympy":
        return _SympyBackend(names)
    raise ValueError(f"backend must be one of {available_backends()}, got {backend!r}")


_FLINT_POLY = _flint.fmpq_mpoly if _flint is not None else None
_FLINT_Q = _flint.fmpq if _flint is not None else None


def is_zero(p) -> bool:
    if type(p) is _FLINT_POLY:  # the hot path of the prover
        return p.is_zero()
    if type(p).__name__ == "Value":  # the engine's scalar: syntactic zero only
        return p.is_syntactic_zero()
    if type(p) is _FLINT_Q:  # (python-flint 0.9's fmpq(0).is_zero() answers False)
        return p == 0
    if isinstance(p, LinearForm):
        return not p.terms
    if isinstance(p, (int, Fraction)):
        return p == 0
    z = getattr(p, "is_zero", None)
    if callable(z):  # flint
        return bool(z())
    if isinstance(z, bool):  # sympy Expr
        return z
    return not p  # sympy PolyElement


# ---------------------------------------------------------------------------------------------
# Atom algebra: the proof engine


class Atom:
    """A non-coordinate generator with its defining relation and derivative rule."""

    def __init__(self, kind, index, argument, partner=None, condition=""):
        self.kind = kind            # 'sqrt' (σ² = argument) or 'inv' (argument·ι = 1)
        self.index = index          # generator index in the ring
        self.argument = argument    # polynomial in the ring
        self.partner = partner      # for a sqrt atom: the index of its inverse atom
        self.condition = condition  # side condition in words


class AtomAlgebra:
    """Polynomials in coordinates, parameters and σ/ι atoms (see the module docstring).

    ``names``: generator names of the coordinates and parameters; ``spare``: how many atoms may be
    created by ``sqrt_clamp``/``inv``.  ``coordinate_derivative[j]`` gives, for input variable
    ``j``, the derivative of each coordinate generator as ``{gen_index: Fraction}``, plus an
    optional rank-one part ``(u_j, {gen_index: w_g})`` meaning ``D_j(g) += u_j·w_g``.
    """

    name = "atoms"

    def __init__(self, names, spare: int = 8, backend: str | None = None, parameters=None):
        names = list(names)
        self.coordinate_names = names
        self.spare_start = len(names)
        all_names = names + [f"atom{i}" for i in range(spare)]
        self.backend = make_backend(all_names, backend)
        self.gens = self.backend.gens
        self.zero = self.backend.zero
        self.one = self.backend.one
        self.atoms: list[Atom] = []
        self._next = self.spare_start
        self.parameters = dict(parameters or {})  # SymPy symbol -> generator
        self.coordinate_derivative: dict = {}
        self.rank_one = None  # (u: {input: Fraction}, w: {gen_index: Fraction})

    # -- interface used by the nodes
    def const(self, q):
        return self.backend.coeff(Fraction(q))

    def parameter(self, value):
        """A graph parameter (ε): a SymPy symbol maps to its generator, a number to a constant."""
        if value in self.parameters:
            return self.parameters[value]
        if isinstance(value, sympy.Rational):
            return self.one * self.backend.coeff(Fraction(int(value.p), int(value.q)))
        raise ValueError(f"parameter {value!r} has no generator in this algebra")

    def sum(self, items):
        items = list(items)
        if not items:
            return self.zero
        return functools.reduce(operator.add, items)

    def _lookup(self, kind, argument):
        for atom in self.atoms:
            if atom.kind == kind and (atom.argument - argument) == 0:
                return atom
        return None

    def _new_atom(self, kind, argument, condition):
        if self._next >= len(self.gens):
            raise RuntimeError("AtomAlgebra: out of spare atoms")
        atom = Atom(kind, self._next, argument, condition=condition)
        self._next += 1
        self.atoms.append(atom)
        return atom

    def atom_of_gen(self, index):
        for atom in self.atoms:
            if atom.index == index:
                return atom
        return None

    def sqrt_atom(self, z) -> Atom:
        atom = self._lookup("sqrt", z)
        if atom is None:
            atom = self._new_atom("sqrt", z, "radicand > 0")
            inverse = self._new_atom("inv", self.gens[atom.index], "sqrt > 0, so nonzero")
            atom.partner = inverse.index
        return atom

    def inv_atom(self, q) -> Atom:
        for atom in self.atoms:  # the inverse of a σ is its partner
            if atom.kind == "sqrt" and (self.gens[atom.index] - q) == 0:
                return self.atom_of_gen(atom.partner)
        atom = self._lookup("inv", q)
        if atom is None:
            atom = self._new_atom("inv", q, "argument != 0")
        return atom

    def sqrt_clamp(self, z):
        # On the domain z > 0: sqrt(max(z, 0)) = sqrt(z) = σ.
        return self.gens[self.sqrt_atom(z).index]

    def sqrt_clamp_deriv(self, z):
        # 1/(2 sqrt z) = ι_σ / 2 on z > 0.
        atom = self.sqrt_atom(z)
        return self.gens[atom.partner] * self.const(Fraction(1, 2))

    def inv(self, q):
        constant = q.is_constant() if callable(getattr(q, "is_constant", None)) else q.is_ground
        if constant:
            c = self.backend.terms(q)
            if not c:
                return self.zero  # Lean: 0⁻¹ = 0
            return self.one * self.backend.coeff(1 / c[0][1])
        return self.gens[self.inv_atom(q).index]

    def inv_deriv(self, q):
        r = self.inv(q)
        return -(r * r)

    # -- relations and derivatives
    def relations(self):
        """Polynomials that vanish on the domain: σ² − z and q·ι − 1."""
        out = []
        for atom in self.atoms:
            g = self.gens[atom.index]
            out.append(g * g - atom.argument if atom.kind == "sqrt" else atom.argument * g - 1)
        return out

    def _reverse_maps(self):
        """gen index -> [(input, coefficient)], and gen index -> rank-one parts using it."""
        rev = {}
        for j, lst in self.coordinate_derivative.items():
            for i, coef in lst:
                rev.setdefault(i, []).append((j, self.backend.coeff(Fraction(coef))))
        parts = []
        by_gen = {}
        for k, (u, w) in enumerate(self.rank_one or []):
            parts.append(({j: self.backend.coeff(Fraction(v)) for j, v in u.items()},
                          {i: self.backend.coeff(Fraction(v)) for i, v in w.items()}))
            for i in w:
                by_gen.setdefault(i, []).append(k)
        return rev, parts, by_gen

    def gradient(self, f, inputs=None, cache: dict | None = None) -> dict:
        """``{input: D_input f}`` for every input with a nonzero derivative, by the chain rule
        through coordinates (``coordinate_derivative``, ``rank_one``) and atoms."""
        cache = {} if cache is None else cache
        if "maps" not in cache:
            cache["maps"] = self._reverse_maps()
        rev, parts, by_gen = cache["maps"]
        present = self.backend.present(f)
        if not present:
            return {}
        partial = {i: self.backend.derivative(f, i) for i in present}
        out = {}

        def add(j, term):
            out[j] = term if j not in out else out[j] + term

        for i in present:
            for j, coef in rev.get(i, ()):
                add(j, partial[i] * coef)
        for k in sorted({k for i in present for k in by_gen.get(i, ())}):
            u, w = parts[k]
            base = None
            for i in present:
                if i in w:
                    term = partial[i] * w[i]
                    base = term if base is None else base + term
            if base is not None and not is_zero(base):
                for j, uj in u.items():
                    add(j, base * uj)
        for atom in self.atoms:
            if atom.index in partial:
                for j, dj in self.atom_gradient(atom, inputs, cache).items():
                    add(j, partial[atom.index] * dj)
        return {j: v for j, v in out.items() if not is_zero(v)}

    def atom_gradient(self, atom, inputs, cache):
        key = ("atom", atom.index)
        if key not in cache:
            g = self.gens[atom.index]
            if atom.kind == "sqrt":
                # d sqrt(z) = dz / (2 sqrt z) = dz * ι_σ / 2
                dz = self.gradient(atom.argument, inputs, cache)
                half_inv = self.gens[atom.partner] * self.const(Fraction(1, 2))
                cache[key] = {j: v * half_inv for j, v in dz.items()}
            else:
                # d(1/q) = -dq / q² = -ι² dq
                dq = self.gradient(atom.argument, inputs, cache)
                cache[key] = {j: -(v * g * g) for j, v in dq.items()}
        return cache[key]


class _Parameter:
    """ε in a per-channel algebra: resolved to the generator of the ring it is added to."""

    def __init__(self, facade, symbol):
        self.facade, self.symbol = facade, symbol

    def _resolve(self, z):
        alg = self.facade.alg_of(z)
        if alg is None:
            raise TypeError("a symbolic parameter can only be added to a polynomial of some channel")
        return alg.parameters[self.symbol]

    def __add__(self, z):
        return z + self._resolve(z)

    __radd__ = __add__


class ChannelAtoms:
    """Several :class:`AtomAlgebra` rings behind one algebra interface, one ring per channel.

    Each polynomial operation costs in proportion to its ring's generators, so one ring per
    channel keeps the prover's cost linear in C.  Operations are routed by the ring of their
    argument; combining elements of two rings raises (flint: ``IncompatibleContextError``), so a
    graph that mixes channels is detected and can be redone in a single ring.  Constants
    (``one``, ``zero``, ``const``) are ring-free coefficients.
    """

    name = "atoms"

    def __init__(self, algs):
        self.algs = list(algs)
        self.backend = self.algs[0].backend
        self.one = self.backend.coeff(Fraction(1))
        self.zero = self.backend.coeff(Fraction(0))
        self._by_context = {id(a.backend.context): a for a in self.algs}

    def alg_of(self, p):
        ctx = self.backend.context_of(p)
        return None if ctx is None else self._by_context[id(ctx)]

    def _route(self, p):
        alg = self.alg_of(p)
        if alg is None:
            raise TypeError("expected a polynomial of some channel")
        return alg

    @property
    def atoms(self):
        return [atom for alg in self.algs for atom in alg.atoms]

    def const(self, q):
        return self.backend.coeff(Fraction(q))

    def parameter(self, value):
        if value in self.algs[0].parameters:
            return _Parameter(self, value)
        if isinstance(value, sympy.Rational):
            return self.backend.coeff(Fraction(int(value.p), int(value.q)))
        raise ValueError(f"parameter {value!r} has no generator in this algebra")

    def sum(self, items):
        items = list(items)
        return functools.reduce(operator.add, items) if items else self.zero

    def sqrt_clamp(self, z):
        return self._route(z).sqrt_clamp(z)

    def sqrt_clamp_deriv(self, z):
        return self._route(z).sqrt_clamp_deriv(z)

    def inv(self, q):
        alg = self.alg_of(q)
        if alg is None:  # a ring-free constant: Lean's 0⁻¹ = 0
            f = self.backend.as_fraction(q)
            return self.zero if f == 0 else self.backend.coeff(1 / f)
        return alg.inv(q)

    def inv_deriv(self, q):
        r = self.inv(q)
        return -(r * r)

    def gradient(self, f, inputs=None, cache=None):
        alg = self.alg_of(f)
        if alg is None:
            return {}
        cache = {} if cache is None else cache
        return alg.gradient(f, inputs, cache.setdefault(id(alg), {}))


# ---------------------------------------------------------------------------------------------
# Linear forms in independent seed/tangent symbols


class LinearForm:
    """``Σ_k s_k · coeff_k``: a sparse dict from symbol index to a coefficient polynomial."""

    __slots__ = ("terms",)

    def __init__(self, terms=None):
        self.terms = terms if terms is not None else {}

    @classmethod
    def unit(cls, key, one):
        return cls({key: one})

    def _combine(self, other, sign):
        if isinstance(other, LinearForm):
            out = dict(self.terms)
            for k, v in other.terms.items():
                if k in out:
                    s = out[k] + v if sign > 0 else out[k] - v
                    if is_zero(s):
                        del out[k]
                    else:
                        out[k] = s
                else:
                    out[k] = v if sign > 0 else -v
            return LinearForm(out)
        if is_zero(other):
            return self
        raise TypeError("a linear form can only be added to a linear form or to zero")

    def __add__(self, other):
        return self._combine(other, 1)

    def __radd__(self, other):
        return self._combine(other, 1)

    def __sub__(self, other):
        return self._combine(other, -1)

    def __rsub__(self, other):
        return (-self)._combine(other, 1)

    def __neg__(self):
        return LinearForm({k: -v for k, v in self.terms.items()})

    def __mul__(self, scalar):
        if isinstance(scalar, LinearForm):
            raise TypeError("product of two linear forms is not linear")
        if is_zero(scalar):
            return LinearForm()
        # coefficients are nonzero and ℚ[atoms] has no zero divisors: no product can vanish
        return LinearForm({k: v * scalar for k, v in self.terms.items()})

    __rmul__ = __mul__

    def __eq__(self, other):
        if isinstance(other, LinearForm):
            return not (self - other).terms
        return is_zero(other) and not self.terms

    __hash__ = None

    def __repr__(self):
        return f"LinearForm({len(self.terms)} terms)"
