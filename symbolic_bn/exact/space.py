"""A :class:`Space`: the variables of one exact computation, its rings, atoms and domain.

Everything exact in symbolic-bn -- a layer's reference, a user's function run on the exact
namespace, a graph's stages in the prover, a traced PyTorch/JAX program -- computes with
:class:`~symbolic_bn.exact.value.Value` s of one Space:

* **variables** are declared first (``space.variable('x[0, 1, 2]', block=0)``): each belongs to a
  *block* (a statistics group: its variables only meet other blocks' through reductions such as
  ``dγ = Σ_rows ...``) or is *shared* (``block=None``: γ, β, ε, ...).  A variable may carry a sign
  (``sign='positive'`` for a symbolic ε declared positive);
* **rings** (:mod:`symbolic_bn.exact.ring`) are created on demand, one per set of blocks that a
  value actually involves;
* **atoms** are created by ``sqrt``, ``inverse``, ``exp`` and ``log`` -- or reused: the same radicand
  up to a positive rational factor gives the same σ (``sqrt(k·z) = sqrt(k)·σ_z``), ``1/(k·z)`` for a
  radicand z of some σ is ``ι_σ²/k``, a monomial is inverted factor by factor.  Each atom's side
  condition is kept (``space.side_conditions()``) and must be shown to hold on the domain;
* the **domain** is a list of facts: polynomials known to be positive (``var_g + ε > 0``, the
  hypothesis of the theorems) or non-negative (a variance built as a sum of squares by
  :meth:`assume_sum_of_squares`, so the fact is true by construction).

Comparisons are decided by :mod:`symbolic_bn.exact.sign` against these facts; identities by the
normal forms of :mod:`symbolic_bn.exact.normal`.
"""
from __future__ import annotations

import math
from fractions import Fraction

import sympy

from . import normal, sign as _sign
from .backends import get_backend
from .errors import BranchError, ExactArithmeticError, UndefinedValue, UnsupportedOperation
from .floats import current_location
from .ring import Atom, Ring
from .value import MULTI, Value, python_scalar_to_fraction

__all__ = ["Space", "Fact", "MAX_POWER"]

#: Largest |integer exponent| a power may have (a bigger one would blow the polynomials up).
MAX_POWER = 64
#: Integers up to this size are factored to write sqrt(c) as s·sqrt(square-free part).
_FACTOR_LIMIT = 10 ** 12


class Fact:
    """A polynomial known to be positive or non-negative on the domain, and why."""

    __slots__ = ("value", "kind", "reason", "label", "name")

    def __init__(self, value, kind, reason, name=None):
        self.value = value
        self.kind = kind          # 'positive' or 'nonneg'
        self.reason = reason
        self.name = name          # how to show it in messages (e.g. 'var[0]'), if it has a name
        self.label = value.ring.label if value.ring not in (None, MULTI) else frozenset()


class Space:
    """See the module docstring.  ``backend``: 'flint' or 'sympy' (default: fastest installed)."""

    def __init__(self, backend: str | None = None, name: str = "space"):
        self.backend = get_backend(backend)
        self.name = name
        self.block_of_name: dict[str, object] = {}
        self.block_vars: dict[object, list[str]] = {}
        self.shared_vars: list[str] = []
        self.var_sign: dict[str, str] = {}
        self.rings: dict[frozenset, Ring] = {}
        self.atoms: list[Atom] = []
        self.facts: list[Fact] = []
        self._frozen = False
        self._sympy_symbols: dict[str, sympy.Symbol] = {}
        self.display_map: dict[str, object] = {}  # variable -> how to show it (a SymPy expression,
        # or a callable returning one, in the inputs' names)
        self._inverse_cache: dict = {}
        self._sqrt_cache: dict = {}
        self._block_order: dict[object, int] = {}

    # ------------------------------------------------------------------ variables and constants
    def variable(self, name: str, block=None, sign: str | None = None) -> None:
        """Declare a variable (before any ring exists); :meth:`var` gives it as a Value."""
        if self._frozen:
            raise ExactArithmeticError("variables must be declared before any computation in a Space")
        if name in self.block_of_name:
            raise ValueError(f"variable {name!r} declared twice")
        if sign not in (None, "positive", "negative", "nonneg", "nonpos", "nonzero"):
            raise ValueError(f"sign must be None, 'positive', 'negative', 'nonneg', 'nonpos' or 'nonzero', "
                             f"got {sign!r}")
        self.block_of_name[name] = block
        if block is None:
            self.shared_vars.append(name)
        else:
            if block not in self.block_vars:
                self._block_order[block] = len(self._block_order)
                self.block_vars[block] = []
            self.block_vars[block].append(name)
        if sign:
            self.var_sign[name] = sign

    def freeze(self):
        self._frozen = True

    def ring(self, label: frozenset) -> Ring:
        r = self.rings.get(label)
        if r is None:
            self._frozen = True
            names = []
            for b in sorted(label, key=lambda b: self._block_order[b]):
                names += self.block_vars[b]
            names += self.shared_vars
            r = Ring(self, label, names)
            self.rings[label] = r
        return r

    def var(self, name: str) -> Value:
        """The declared variable ``name`` as a Value of the smallest ring holding it."""
        block = self.block_of_name[name]
        ring = self.ring(frozenset() if block is None else frozenset([block]))
        return Value(self, ring, ring.variable(name))

    def constant(self, v, *, _what: str = "value") -> Value:
        """An exact constant: ints, Fractions, floats (read as the simplest rational within half
        an ulp, and logged), NumPy scalars, SymPy Rationals, or a Value of this space."""
        if type(v) is Value:
            if v.space is not self:
                raise ExactArithmeticError(
                    "values of two different exact computations were combined (a value from another check: "
                    "does the function keep state between calls?)")
            return v
        if isinstance(v, sympy.Rational):
            return Value(self, None, self.backend.coeff(Fraction(int(v.p), int(v.q))))
        try:
            q = python_scalar_to_fraction(v)
        except ValueError as exc:
            raise UndefinedValue(f"{_what} {v!r}: {exc}") from None
        except TypeError:
            raise TypeError(f"cannot use a {type(v).__name__} as an exact {_what}") from None
        return Value(self, None, self.backend.coeff(q))

    def fraction(self, q) -> Value:
        return Value(self, None, self.backend.coeff(Fraction(q)))

    def zero(self) -> Value:
        return Value(self, None, self.backend.coeff(0))

    # ------------------------------------------------------------------ moving between rings
    def embed(self, v: Value, ring: Ring):
        """The polynomial of ``v`` in ``ring`` (``v``'s ring label must be a subset of ring's)."""
        if v.ring is None:
            return ring.one * v.p
        if v.ring is ring:
            return v.poly()
        if v.ring is MULTI:
            # embed_from may grow ``ring`` to a new context (a new atom), so the parts are summed
            # only once all are embedded, each lifted to the final context
            parts = [ring.embed_from(part_ring, p) for part_ring, p in v.p.items()]
            total = ring.zero
            for q in parts:
                total = total + ring.lift(q)
            return total
        cache = v._embedded
        if cache is not None:
            got = cache.get(id(ring))
            if got is not None:
                return ring.lift(got)
        else:
            cache = v._embedded = {}
        p = ring.embed_from(v.ring, v.p)
        cache[id(ring)] = p
        return p

    def _label(self, v: Value) -> frozenset:
        if v.ring is None:
            return frozenset()
        if v.ring is MULTI:
            out = frozenset()
            for r in v.p:
                out |= r.label
            return out
        return v.ring.label

    def collapse(self, v: Value) -> Value:
        """A sum over rings as one polynomial of the ring of all its blocks."""
        if v.ring is not MULTI:
            return v
        ring = self.ring(self._label(v))
        return Value(self, ring, self.embed(v, ring))

    def _parts(self, v: Value) -> dict:
        if v.ring is MULTI:
            return dict(v.p)
        if v.ring is None:
            r = self.ring(frozenset())
            return {r: r.one * v.p}
        return {v.ring: v.poly()}

    def _from_parts(self, parts: dict) -> Value:
        parts = {r: p for r, p in parts.items() if not self.backend.is_zero(p)}
        if not parts:
            return self.zero()
        if len(parts) == 1:
            (r, p), = parts.items()
            if self.backend.is_constant(p):
                return Value(self, None, self.backend.coeff(self.backend.constant(p)))
            return Value(self, r, p)
        return Value(self, MULTI, parts)

    # ------------------------------------------------------------------ ring operations
    def add(self, a: Value, b: Value) -> Value:
        ra, rb = a.ring, b.ring
        if ra is None and rb is None:
            return Value(self, None, a.p + b.p)
        if ra is MULTI or rb is MULTI:
            parts = self._parts(a)
            for r, p in self._parts(b).items():
                parts[r] = parts[r] + p if r in parts else p
            return self._from_parts(parts)
        if ra is None:
            return Value(self, rb, b.poly() + a.p)
        if rb is None:
            return Value(self, ra, a.poly() + b.p)
        if ra is rb:
            return Value(self, ra, a.poly() + b.poly())
        if ra.label <= rb.label:
            return Value(self, rb, self.embed(a, rb) + b.poly())
        if rb.label <= ra.label:
            return Value(self, ra, a.poly() + self.embed(b, ra))
        return Value(self, MULTI, {ra: a.poly(), rb: b.poly()})

    def sum(self, values) -> Value:
        """Exact sum of many Values: polynomials grouped by ring (a sum over rings contributes
        each of its parts) and each group summed pairwise -- linear in the number of terms, where
        a running ``add`` costs a copy of the growing sum per term."""
        groups: dict = {}
        rings: dict = {}
        consts = Fraction(0)
        for v in values:
            if v.ring is None:
                consts += v.constant_fraction()
                continue
            for r, p in (v.p.items() if v.ring is MULTI else [(v.ring, v.poly())]):
                groups.setdefault(id(r), []).append(p)
                rings[id(r)] = r
        total = self.fraction(consts)
        for key, polys in groups.items():
            while len(polys) > 1:
                nxt = [polys[i] + polys[i + 1] for i in range(0, len(polys) - 1, 2)]
                if len(polys) % 2:
                    nxt.append(polys[-1])
                polys = nxt
            total = self.add(total, self._from_parts({rings[key]: polys[0]}))
        return total

    def negate(self, a: Value) -> Value:
        if a.ring is None:
            return Value(self, None, -a.p)
        if a.ring is MULTI:
            return Value(self, MULTI, {r: -p for r, p in a.p.items()})
        return Value(self, a.ring, -a.poly())

    def multiply(self, a: Value, b: Value) -> Value:
        ra, rb = a.ring, b.ring
        if ra is None and rb is None:
            return Value(self, None, a.p * b.p)
        if ra is None or rb is None:
            c, v = (a, b) if ra is None else (b, a)
            if c.p == 0:
                return self.zero()
            if v.ring is MULTI:
                return Value(self, MULTI, {r: p * c.p for r, p in v.p.items()})
            return Value(self, v.ring, v.poly() * c.p)
        if ra is MULTI or rb is MULTI:
            parts: dict = {}
            for r1, p1 in self._parts(a).items():
                for r2, p2 in self._parts(b).items():
                    target = r1 if r2.label <= r1.label else (r2 if r1.label <= r2.label
                                                              else self.ring(r1.label | r2.label))
                    q = target.embed_from(r1, p1) * target.embed_from(r2, p2)
                    parts[target] = parts[target] + q if target in parts else q
            return self._from_parts(parts)
        if ra is rb:
            return Value(self, ra, a.poly() * b.poly())
        if ra.label <= rb.label:
            return Value(self, rb, self.embed(a, rb) * b.poly())
        if rb.label <= ra.label:
            return Value(self, ra, a.poly() * self.embed(b, ra))
        u = self.ring(ra.label | rb.label)
        return Value(self, u, self.embed(a, u) * self.embed(b, u))

    def power(self, base: Value, exponent) -> Value:
        e = self._exponent(exponent)
        if e.denominator == 1:
            k = int(e)
            if abs(k) > MAX_POWER:
                raise UnsupportedOperation(f"power with exponent {k}: at most {MAX_POWER} in size")
            if k == 0:
                return self.fraction(1)
            if k < 0:
                return self._int_power(self.inverse(base), -k)
            return self._int_power(base, k)
        if e.denominator == 2:
            root = self.sqrt(base)
            return self.power(root, e.numerator)
        if type(exponent) is Value or (base.ring is not None):
            raise UnsupportedOperation(
                f"power with exponent {e}: only integer and half-integer exponents are exact here")
        raise UnsupportedOperation(f"power of a constant with exponent {e}")

    def _exponent(self, exponent) -> Fraction:
        if type(exponent) is Value:
            if exponent.ring is not None:
                raise UnsupportedOperation("a power with a non-constant exponent (use exp and log)")
            return exponent.constant_fraction()
        try:
            return python_scalar_to_fraction(exponent)
        except (TypeError, ValueError):
            raise UnsupportedOperation(f"power with exponent {exponent!r}") from None

    def _int_power(self, base: Value, k: int) -> Value:
        if base.ring is None:
            return Value(self, None, base.p ** k)
        if base.ring is MULTI:
            base = self.collapse(base)
        return Value(self, base.ring, base.poly() ** k)

    # ------------------------------------------------------------------ atoms
    def _new_atom(self, kind, home: Ring, argument, condition) -> Atom:
        location, source = current_location()
        origin = f"{location} ({source})" if source else location
        atom = Atom(kind, len(self.atoms) + 1, home, argument, condition, origin)
        if self.backend.is_zero(argument):
            atom.lead, atom.monic = Fraction(0), argument
        else:
            atom.lead = self.backend.leading(argument)[1]
            atom.monic = argument * self.backend.coeff(1 / atom.lead)
        self.atoms.append(atom)
        home.add_atom(atom)
        return atom

    def _find_atom(self, kind, home: Ring, monic, lead=None):
        """An atom of ``kind`` homed in ``home`` whose argument is ``monic`` times its own leading
        coefficient (and that coefficient equals ``lead``, when given)."""
        n = self.backend.nterms(monic)
        for atom in home.atoms:
            if atom.kind != kind or atom.home is not home:
                continue
            if lead is not None and atom.lead != lead:
                continue
            m = home.lift(atom.monic)
            atom.monic = m
            if self.backend.nterms(m) == n and m == monic:
                return atom
        return None

    def _home(self, ring: Ring, p):
        """(home ring, p in it): the smallest ring holding the generators ``p`` uses."""
        label = ring.label_of(p)
        if label == ring.label:
            return ring, p
        home = self.ring(label)
        return home, ring.restrict_to(home, p)

    def _scalar_poly(self, v: Value):
        """(ring, reduced polynomial) of a non-constant value, or (None, Fraction) for a constant."""
        if v.ring is None:
            return None, v.constant_fraction()
        if v.ring is MULTI:
            v = self.collapse(v)
        ring = v.ring
        p = normal.reduce(ring, v.poly())
        if self.backend.is_constant(p):
            return None, self.backend.constant(p)
        return ring, p

    def _normalized(self, ring, p):
        """(home ring, monic form of p in it, leading coefficient of p)."""
        _, lc = self.backend.leading(p)
        monic = p * self.backend.coeff(1 / lc)
        home, monic_home = self._home(ring, monic)
        return home, monic_home, lc

    def sqrt(self, v: Value) -> Value:
        v = self.constant(v)
        if v.ring is not None:
            got = self._sqrt_cache.get(id(v))
            if got is not None and got[0] is v:
                return got[1]
            out = self._sqrt(v)
            self._sqrt_cache[id(v)] = (v, out)
            return out
        return self._sqrt(v)

    def _sqrt(self, v: Value) -> Value:
        ring, p = self._scalar_poly(v)
        if ring is None:
            return self._sqrt_constant(p)
        root = self.backend.perfect_sqrt(p)
        if root is not None:
            r = Value(self, ring, root)
            s = _sign.sign(self, r)
            if s in ("pos", "nonneg", "zero"):
                return r
            if s in ("neg", "nonpos"):
                return self.negate(r)
        home, monic, lc = self._normalized(ring, p)
        # the same radicand up to a positive rational factor reuses its σ: sqrt(r·z) = sqrt(r)·σ_z
        atom = self._find_atom("sqrt", home, monic)
        if atom is not None and lc / atom.lead > 0:
            sigma = Value(self, ring, ring.atom_gen(atom))
            return self.multiply(self._sqrt_constant(lc / atom.lead), sigma)
        # a new σ, its radicand scaled by a rational square so that the leading coefficient is a
        # square-free integer (then no constant square root appears in the common case)
        square, _ = _square_and_free(abs(lc))
        lead = lc / (square * square)
        atom = self._new_atom("sqrt", home, monic * self.backend.coeff(lead), "nonneg")
        return self.multiply(self.fraction(square), Value(self, ring, ring.atom_gen(atom)))

    def _sqrt_constant(self, c: Fraction) -> Value:
        if c < 0:
            raise UndefinedValue(f"sqrt of the negative number {c}")
        if c == 0:
            return self.zero()
        square, free = _square_and_free(c)
        if free == 1:
            return self.fraction(square)
        shared = self.ring(frozenset())
        atom = self._find_atom("sqrt", shared, shared.one, lead=Fraction(free))
        if atom is None:  # an existing sqrt(f) with c/f a rational square (f not factored, say)
            for other in shared.atoms:
                if other.kind == "sqrt" and other.home is shared and self.backend.is_constant(
                        shared.lift(other.argument)):
                    r = c / other.lead
                    rn, rd = math.isqrt(r.numerator), math.isqrt(r.denominator)
                    if rn * rn == r.numerator and rd * rd == r.denominator:
                        return Value(self, shared, shared.atom_gen(other) * self.backend.coeff(Fraction(rn, rd)))
        if atom is None:
            atom = self._new_atom("sqrt", shared, shared.one * self.backend.coeff(free), "nonneg")
        return Value(self, shared, shared.atom_gen(atom) * self.backend.coeff(square))

    def inverse(self, v: Value) -> Value:
        v = self.constant(v)
        if v.ring is not None:  # broadcasting divides by the same Value object many times
            got = self._inverse_cache.get(id(v))
            if got is not None and got[0] is v:
                return got[1]
            out = self._inverse(v)
            self._inverse_cache[id(v)] = (v, out)
            return out
        return self._inverse(v)

    def _inverse(self, v: Value) -> Value:
        ring, p = self._scalar_poly(v)
        if ring is None:
            if p == 0:
                raise UndefinedValue("division by the exact number 0")
            return self.fraction(1 / p)
        terms = self.backend.terms(p)
        if len(terms) == 1:  # a monomial: invert factor by factor
            (exps, c), = terms
            out = self.fraction(1 / c)
            for i, e in enumerate(exps):
                if e:
                    out = self.multiply(out, self._int_power(self._inverse_generator(ring, i), e))
            return out
        home, monic, lc = self._normalized(ring, p)
        # 1/(c·z) for the radicand z of some σ is ι_σ²/c (no new atom; z ≠ 0 follows from z > 0)
        sq = self._find_atom("sqrt", home, monic)
        if sq is not None:
            iota = ring.atom_gen(self._inverse_of_sqrt(sq))
            return Value(self, ring, iota * iota * self.backend.coeff(sq.lead / lc))
        atom = self._find_atom("inv", home, monic)
        if atom is None:
            atom = self._new_atom("inv", home, monic, "nonzero")
        return Value(self, ring, ring.atom_gen(atom) * self.backend.coeff(1 / lc))

    def _inverse_of_sqrt(self, sq: Atom) -> Atom:
        if sq.inverse is None:
            home = sq.home
            arg = home.gens[home.slot_of[sq.id]]
            inv = self._new_atom("inv", home, arg, "nonzero")
            inv.base = sq
            sq.inverse = inv
        if sq.condition == "nonneg":
            sq.condition = "positive"  # 1/sqrt(z) and d sqrt(z) exist only for z > 0
        return sq.inverse

    def _inverse_generator(self, ring: Ring, i: int) -> Value:
        """1/g for the generator g at index i of ring."""
        atom = ring.atom_at.get(i)
        if atom is not None:
            if atom.kind == "sqrt":
                if self.backend.is_constant(atom.home.lift(atom.argument)):
                    # 1/sqrt(c) = sqrt(c)/c for a constant c: no new atom
                    return Value(self, ring, ring.gens[i] * self.backend.coeff(1 / atom.lead))
                return Value(self, ring, ring.atom_gen(self._inverse_of_sqrt(atom)))
            if atom.kind == "inv":  # 1/ι_q = q, valid where q ≠ 0 (ι's own condition)
                if atom.base is not None:
                    return Value(self, ring, ring.atom_gen(atom.base))
                return Value(self, ring, ring.argument(atom))
        # a variable, an exp or a log atom: an inverse atom of that generator
        home, key = self._home(ring, ring.gens[i])
        inv = self._find_atom("inv", home, key)
        if inv is None:
            inv = self._new_atom("inv", home, key, "nonzero")
        return Value(self, ring, ring.atom_gen(inv))

    def exp(self, v: Value) -> Value:
        ring, p = self._scalar_poly(self.constant(v))
        if ring is None:
            if p == 0:
                return self.fraction(1)
            shared = self.ring(frozenset())
            return self._exp_atom(shared, shared.one * self.backend.coeff(p))
        c0 = self._constant_term(p)
        if c0:
            rest = p - self.backend.coeff(c0)
            return self.multiply(self.exp(Value(self, ring, rest)), self.exp(self.fraction(c0)))
        terms = self.backend.terms(p)
        if len(terms) == 1:
            (exps, c), = terms
            nz = [i for i, e in enumerate(exps) if e]
            if len(nz) == 1 and exps[nz[0]] == 1 and c.denominator == 1:
                atom = ring.atom_at.get(nz[0])
                if atom is not None and atom.kind == "log":  # exp(k·log a) = a^k
                    return self.power(Value(self, ring, ring.argument(atom)), int(c))
        return self._exp_atom(ring, p)

    def _exp_atom(self, ring, p):
        home, monic, lc = self._normalized(ring, p)
        atom = self._find_atom("exp", home, monic, lead=lc)
        if atom is None:
            atom = self._new_atom("exp", home, monic * self.backend.coeff(lc), None)
        return Value(self, ring, ring.atom_gen(atom))

    def _constant_term(self, p) -> Fraction:
        for exps, c in self.backend.terms(p):
            if not any(exps):
                return c
        return Fraction(0)

    def log(self, v: Value) -> Value:
        ring, p = self._scalar_poly(self.constant(v))
        if ring is None:
            if p <= 0:
                raise UndefinedValue(f"log of the non-positive number {p}")
            if p == 1:
                return self.zero()
            shared = self.ring(frozenset())
            atom = self._find_atom("log", shared, shared.one, lead=p)
            if atom is None:
                atom = self._new_atom("log", shared, shared.one * self.backend.coeff(p), "positive")
            return Value(self, shared, shared.atom_gen(atom))
        terms = self.backend.terms(p)
        if len(terms) == 1:
            (exps, c), = terms
            nz = [i for i, e in enumerate(exps) if e]
            if c == 1 and len(nz) == 1 and exps[nz[0]] == 1:
                atom = ring.atom_at.get(nz[0])
                if atom is not None and atom.kind == "exp":  # log(exp a) = a (a real)
                    return Value(self, ring, ring.argument(atom))
        home, monic, lc = self._normalized(ring, p)
        atom = self._find_atom("log", home, monic, lead=lc)
        if atom is None:
            atom = self._new_atom("log", home, monic * self.backend.coeff(lc), "positive")
        return Value(self, ring, ring.atom_gen(atom))

    # ------------------------------------------------------------------ domain
    def assume_positive(self, v: Value, reason: str, name: str | None = None) -> None:
        """State that ``v > 0`` on the domain (a hypothesis of the statement being proved)."""
        v = self.constant(v)
        if v.ring is None:
            if not v.constant_fraction() > 0:
                raise ValueError(f"the assumption {reason!r} is false: {v} is not positive")
            return
        self.facts.append(Fact(self.collapse(v), "positive", reason, name))

    def assume_sum_of_squares(self, terms, scale, reason: str, name: str | None = None) -> Value:
        """Build ``scale·Σ t²`` (scale ≥ 0) and record it as non-negative -- true by
        construction, so this adds no hypothesis.  Returns the sum."""
        scale = Fraction(scale)
        if scale < 0:
            raise ValueError("a sum of squares needs a non-negative scale")
        total = self.zero()
        for t in terms:
            t = self.constant(t)
            total = self.add(total, self.multiply(t, t))
        total = self.multiply(total, self.fraction(scale))
        if total.ring is not None:
            self.facts.append(Fact(self.collapse(total), "nonneg", reason, name))
        return total

    def unmet_conditions(self, atoms=None) -> list:
        """The atoms (all of this space's, or ``atoms``) whose side condition the sign oracle
        cannot show on the domain; :meth:`condition_text` says what each needs."""
        return [a for a in (self.atoms if atoms is None else atoms) if not self.condition_holds(a)]

    def condition_holds(self, atom: Atom) -> bool:
        """Whether the atom's side condition is shown to hold on the whole domain."""
        if atom.condition is None:
            return True
        arg = Value(self, atom.home, atom.home.lift(atom.argument))
        s = _sign.sign(self, arg)
        if atom.condition == "nonneg":
            return s in ("pos", "nonneg", "zero")
        if atom.condition == "positive":
            return s == "pos"
        if atom.condition == "nonzero":
            return s in ("pos", "neg") or self._nonzero_monomial(arg)
        return False

    def _nonzero_monomial(self, v: Value) -> bool:
        """A monomial whose every factor is a variable declared nonzero (or of strict sign) or a
        strictly signed atom: nonzero wherever the variables' declarations hold."""
        if v.ring is None or v.ring is MULTI:
            return False
        ring = v.ring
        terms = self.backend.terms(ring.lift(v.p))
        if len(terms) != 1:
            return False
        (m, c), = terms
        for i, e in enumerate(m):
            if not e:
                continue
            if ring.is_variable_index(i):
                if self.var_sign.get(ring.names[i]) not in ("positive", "negative", "nonzero"):
                    return False
            elif _sign.atom_sign(self, ring.atom_at[i]) not in ("pos", "neg"):
                return False
        return c != 0

    def condition_text(self, atom: Atom) -> str:
        arg = self.display(Value(self, atom.home, atom.home.lift(atom.argument)), 160)
        rel = {"nonneg": "≥ 0", "positive": "> 0", "nonzero": "≠ 0", None: ""}[atom.condition]
        what = {"sqrt": "square root of", "inv": "division by", "exp": "exp of", "log": "log of"}[atom.kind]
        return f"{arg} {rel} ({what} it, at {atom.origin})" if rel else f"{what} {arg}"

    # ------------------------------------------------------------------ comparisons
    def compare(self, a: Value, b: Value, op: str, truth: bool = False) -> bool:
        d = self.add(a, self.negate(b))
        s = _sign.sign(self, d)
        answer = _sign.decide(s, op)
        if answer is None:
            raise self._branch_error(a, b, op, truth)
        return answer

    def absolute(self, a: Value) -> Value:
        s = _sign.sign(self, a)
        if s in ("pos", "nonneg", "zero"):
            return a
        if s in ("neg", "nonpos"):
            return self.negate(a)
        location, source = current_location()
        raise BranchError(
            f"data-dependent branch at {location}" + (f" (`{source}`)" if source else "")
            + f": abs({self.display(a, 80)}) depends on the sign of its argument, which varies over "
            "the inputs; the exact check cannot follow both sides", location, source)

    def _branch_error(self, a, b, op, truth):
        location, source = current_location()
        if truth:
            what = f"bool({self.display(a, 80)})"
        else:
            what = f"{self.display(a, 60)} {op} {self.display(b, 60)}"
        where = f"{location}" + (f" (`{source}`)" if source else "")
        return BranchError(
            f"data-dependent branch at {where}: `{what}` depends on the inputs (or could not be "
            "decided on the whole domain); the exact check cannot follow both sides", location, source)

    def float_conversion_error(self, v: Value, kind: str = "float"):
        location, source = current_location()
        where = f"{location}" + (f" (`{source}`)" if source else "")
        text = source.replace(" ", "")
        if "]=" in text or "]+=" in text or "]-=" in text or "]*=" in text:
            hint = ("the code writes an exact value into a float array (one made from a shape alone, "
                    "e.g. np.zeros(x.shape)); make the buffer from an input instead: np.zeros_like(x) "
                    "(or np.zeros(shape, dtype=object))")
        elif "math." in source:
            hint = "the math module works on floats only; use np.sqrt / np.exp / np.log (or xp.sqrt)"
        else:
            hint = (f"{kind}() of an exact value leaves exact arithmetic; keep values as arrays and use "
                    "NumPy / xp functions")
        return UnsupportedOperation(f"{kind} conversion of an exact value at {where}: {hint}")

    # ------------------------------------------------------------------ display and export
    def sympy_symbol(self, name: str) -> sympy.Symbol:
        s = self._sympy_symbols.get(name)
        if s is None:
            s = sympy.Symbol(name, real=True)
            self._sympy_symbols[name] = s
        return s

    def display(self, v, limit: int = 200) -> str:
        """A short readable form of ``v`` in the inputs' names (never slow: large polynomials are
        abbreviated instead of printed by SymPy; a rational multiple of a named fact such as
        ``var[0]`` plus a few terms is shown that way)."""
        from .convert import short_text
        try:
            v = self.constant(v)
            text = self._in_fact_names(v) or short_text(v, limit)
        except Exception:  # display must never fail
            text = "<exact value>"
        return text if len(text) <= limit else text[:limit - 3] + "..."

    def _in_fact_names(self, v):
        """``c·name + rest`` when ``v`` is a rational multiple of a named fact plus a short rest."""
        from .convert import _size, short_text
        if v.ring is None or v.ring is MULTI or not self.facts:
            return None
        ring, backend = v.ring, self.backend
        p = normal.reduce(ring, v.poly())
        for fact in sorted(self.facts, key=lambda f: f.kind != "nonneg"):
            if fact.name is None or not fact.label <= ring.label:
                continue
            K = normal.reduce(ring, self.embed(fact.value, ring))
            monom, cK = backend.leading(K)
            cp = backend.coefficient(p, monom)
            if not cp:
                continue
            c = cp / cK
            rest = Value(self, ring, p - K * backend.coeff(c))
            if _size(rest) > 6:
                continue
            head = fact.name if c == 1 else f"{c}·{fact.name}"
            if backend.is_zero(rest.poly()):
                return head
            tail = short_text(rest, 80)
            return f"{head} + {tail}" if not tail.startswith("-") else f"{head} - {tail[1:]}"
        return None

    def __repr__(self):
        return (f"<Space {self.name}: {len(self.block_of_name)} variables, {len(self.rings)} rings, "
                f"{len(self.atoms)} atoms>")


def _square_and_free(c: Fraction):
    """(s, f): a rational s > 0 and an integer f > 0, square-free when small enough, with
    c = s²·f (so sqrt(c) = s·sqrt(f))."""
    c = Fraction(c)
    if c <= 0:
        raise ValueError("positive number expected")
    num, den = c.numerator * c.denominator, c.denominator  # c = (n·d)/d²
    sq, free = _split_square(num)
    return Fraction(sq, den), free


def _split_square(n: int):
    """(s, f) with n = s²·f and f square-free (for n up to _FACTOR_LIMIT; else s = 1)."""
    if n <= 0:
        raise ValueError("positive integer expected")
    r = math.isqrt(n)
    if r * r == n:
        return r, 1
    if n <= _FACTOR_LIMIT:
        s, f = 1, 1
        for p, e in sympy.factorint(n).items():
            s *= p ** (e // 2)
            f *= p ** (e % 2)
        return s, f
    # too large to factor quickly: take out the squares of small primes only
    s, f = 1, n
    for p in sympy.primerange(2, 1000):
        while f % (p * p) == 0:
            f //= p * p
            s *= p
    return s, f
