"""Between the engine and SymPy: display, exact evaluation at points, and importing expressions.

* :func:`to_sympy` -- a Value as a SymPy expression (variables become real Symbols named as
  declared, σ → ``sqrt(z)``, ι → ``1/q``, exp/log likewise).  For display and for counterexamples,
  which are then re-evaluated by SymPy independently of the engine.
* :func:`substitute` -- a Value with its variables replaced by exact numbers (or other Values),
  computed *in the engine* (atoms re-created from their evaluated arguments), so degenerate points
  are evaluated by the same rules as the symbolic run.
* :func:`from_sympy` -- a SymPy expression (polynomial operations, integer and half-integer
  powers, ``sqrt``, ``exp``, ``log``) as a Value; anything else (``Piecewise``, ``Max``, an
  undefined function) becomes an *opaque* shared variable -- an identity that holds for an
  arbitrary value of it holds for its actual value.  This is how SymPy-built expressions (the
  prover's per-stage Jacobians from ``sympy.diff``) are decided by the engine.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import sympy

from .value import MULTI, Value

__all__ = ["to_sympy", "substitute", "Substitution", "short_text", "SympyImport"]

#: Values with more terms (their own and their atoms' arguments) than this are abbreviated.
SHORT_TERMS = 24


def _poly_to_sympy(space, ring, p, atom_cache):
    backend = space.backend
    p = ring.lift(p)
    gens: dict = {}

    def gen(i):
        g = gens.get(i)
        if g is None:
            if ring.is_variable_index(i):
                name = ring.names[i]
                shown = space.display_map.get(name)
                if callable(shown):
                    shown = space.display_map[name] = shown()
                g = shown if shown is not None else space.sympy_symbol(name)
            else:
                g = _atom_to_sympy(space, ring.atom_at[i], atom_cache)
            gens[i] = g
        return g

    terms = []
    for m, c in backend.terms(p):
        factors = [sympy.Rational(c.numerator, c.denominator)]
        factors += [gen(i) ** e for i, e in enumerate(m) if e]
        terms.append(sympy.Mul(*factors))
    return sympy.Add(*terms)


def _atom_to_sympy(space, atom, cache):
    got = cache.get(atom.id)
    if got is not None:
        return got
    home = atom.home
    arg = _poly_to_sympy(space, home, home.lift(atom.argument), cache)
    if atom.kind == "sqrt":
        out = sympy.sqrt(arg)
    elif atom.kind == "inv":
        out = 1 / arg
    elif atom.kind == "exp":
        out = sympy.exp(arg)
    else:
        out = sympy.log(arg)
    cache[atom.id] = out
    return out


def to_sympy(v: Value):
    """``v`` as a SymPy expression (module docstring)."""
    space = v.space
    if v.ring is None:
        f = v.constant_fraction()
        return sympy.Rational(f.numerator, f.denominator)
    cache: dict = {}
    if v.ring is MULTI:
        return sympy.Add(*[_poly_to_sympy(space, r, p, cache) for r, p in v.p.items()])
    return _poly_to_sympy(space, v.ring, v.p, cache)


def _size(v: Value) -> int:
    backend = v.space.backend
    if v.ring is None:
        return 1
    parts = v.p.items() if v.ring is MULTI else [(v.ring, v.p)]
    total = 0
    seen = set()
    for ring, p in parts:
        p = ring.lift(p)
        total += backend.nterms(p)
        for atom in ring.atoms_in(p):
            stack = [atom]
            while stack:
                a = stack.pop()
                if a.id in seen:
                    continue
                seen.add(a.id)
                arg = a.home.lift(a.argument)
                total += backend.nterms(arg)
                stack.extend(a.home.atoms_in(arg))
        if total > SHORT_TERMS:
            break
    return total


def short_text(v: Value, limit: int = 200) -> str:
    """``v`` in the inputs' names via SymPy when it is small, else its size and first terms."""
    if _size(v) <= SHORT_TERMS:
        return str(to_sympy(v))
    backend = v.space.backend
    parts = v.p.items() if v.ring is MULTI else [(v.ring, v.p)]
    pieces, count = [], 0
    for ring, p in parts:
        p = ring.lift(p)
        count += backend.nterms(p)
        for m, c in backend.terms(p)[:3]:
            factors = [str(c)] if c != 1 or not any(m) else []
            for i, e in enumerate(m):
                if e:
                    name = ring.names[i] if ring.is_variable_index(i) else ring.atom_at[i].name
                    factors.append(f"{name}^{e}" if e > 1 else name)
            pieces.append("*".join(factors))
    return f"({' + '.join(pieces)} + ...: a polynomial of {count} terms)"


def substitute(v: Value, values: dict, target_space=None):
    """``v`` with each variable named in ``values`` replaced (module docstring).

    ``values`` maps variable names to numbers or Values of ``target_space`` (default: v's own
    space).  Every variable that occurs must be given.  Atoms are rebuilt with the target's
    ``sqrt``/``inverse``/``exp``/``log``, so e.g. a radicand that becomes negative raises
    :class:`~symbolic_bn.exact.errors.UndefinedValue`.  For many values at one point, use one
    :class:`Substitution` (it evaluates each atom once).
    """
    return Substitution(v.space, values, target_space)(v)


class Substitution:
    """Evaluates Values of ``space`` at ``values`` (variable name -> number or Value of
    ``target``), atoms once each; polynomials are evaluated by the backend's composition."""

    def __init__(self, space, values: dict, target=None):
        self.space = space
        self.target = target or space
        self.values = values
        self._atoms: dict = {}
        self._images: dict = {}
        self._composers: dict = {}

    def __call__(self, v: Value) -> Value:
        target = self.target
        if v.space is not self.space:
            raise ValueError("substitute: the value belongs to another space")
        if v.ring is None:
            return target.fraction(v.constant_fraction())
        parts = v.p.items() if v.ring is MULTI else [(v.ring, v.p)]
        total = target.zero()
        for ring, p in parts:
            total = target.add(total, self._poly(ring, p))
        return total

    def _generator(self, ring, i) -> Value:
        key = (id(ring), i)
        got = self._images.get(key)
        if got is not None:
            return got
        target = self.target
        if ring.is_variable_index(i):
            name = ring.names[i]
            if name not in self.values:
                raise KeyError(f"no value given for the variable {name}")
            got = target.constant(self.values[name])
        else:
            atom = ring.atom_at[i]
            got = self._atoms.get(atom.id)
            if got is None:
                home = atom.home
                arg = self._poly(home, home.lift(atom.argument))
                got = {"sqrt": target.sqrt, "inv": target.inverse, "exp": target.exp,
                       "log": target.log}[atom.kind](arg)
                self._atoms[atom.id] = got
        self._images[key] = got
        return got

    #: Largest number of evaluations the interpolation path may use for one polynomial.
    MAX_GRID = 256

    def _interpolate(self, ring, p, present, images):
        """p at the point by exact evaluation: variables take their rational values, and p is
        interpolated as a polynomial in its atoms from evaluations at a grid of integers (each a
        fast numeric evaluation by the backend); the atoms' values are then put in."""
        backend = self.space.backend
        target = self.target
        degs = backend.degrees(p)
        atom_idx = [i for i in present if not ring.is_variable_index(i)]
        base = []
        for i in range(len(ring.names)):
            img = images.get(i)
            if img is not None and ring.is_variable_index(i):
                if img.ring is not None:
                    return None  # a non-constant value for a variable: compose instead
                base.append(img.p)
            else:
                base.append(backend.coeff(0))
        sizes = [int(degs[i]) + 1 for i in atom_idx]
        total = 1
        for n in sizes:
            total *= n
        if total > self.MAX_GRID:
            return None
        # evaluations on the grid t_i = 0, 1, ..., d_i
        grid = {}
        for point in np.ndindex(*sizes) if sizes else [()]:
            vals = list(base)
            for i, t in zip(atom_idx, point):
                vals[i] = backend.coeff(t)
            grid[point] = backend.fraction(p(*vals))
        coeffs = _tensor_interpolate(grid, sizes)
        out = target.zero()
        for exps, c in coeffs.items():
            if not c:
                continue
            term = target.fraction(c)
            for i, e in zip(atom_idx, exps):
                if e:
                    term = target.multiply(term, target._int_power(images[i], e))
            out = target.add(out, term)
        return out

    def _poly(self, ring, p) -> Value:
        target = self.target
        backend = self.space.backend
        p = ring.lift(p)
        if backend.is_zero(p):
            return target.zero()
        if backend.is_constant(p):
            return target.fraction(backend.constant(p))
        present = backend.present(p)
        images = {i: self._generator(ring, i) for i in present}
        label = frozenset()
        for val in images.values():
            label |= target._label(val)
        dest = target.ring(label)
        if backend.name == "flint":
            got = self._interpolate(ring, p, present, images)
            if got is not None:
                return got
        total = target.zero()
        for m, c in backend.terms(p):
            term = target.fraction(c)
            for i, e in enumerate(m):
                if e:
                    g = images[i]
                    term = target.multiply(term, target._int_power(g, e) if e > 1 else g)
            total = target.add(total, term)
        return total


def _tensor_interpolate(values: dict, sizes: list) -> dict:
    """Coefficients {exponents: Fraction} of the polynomial with degree < sizes[k] in variable k
    taking ``values[point]`` at the integer grid ``point`` (exact, one dimension at a time)."""
    from fractions import Fraction as F
    data = {k: F(v) for k, v in values.items()}
    for dim, n in enumerate(sizes):
        inv = _vandermonde_inverse(n)
        out = {}
        for key in data:
            if key[dim] != 0:
                continue
            column = [data[key[:dim] + (t,) + key[dim + 1:]] for t in range(n)]
            for e in range(n):
                out[key[:dim] + (e,) + key[dim + 1:]] = sum((inv[e][t] * column[t] for t in range(n)), F(0))
        data = out
    return data


_VANDERMONDE: dict = {}


def _vandermonde_inverse(n):
    """Inverse of the n×n matrix V[t][e] = t^e (t, e = 0..n−1) over ℚ."""
    from fractions import Fraction as F
    got = _VANDERMONDE.get(n)
    if got is not None:
        return got
    m = [[F(t) ** e for e in range(n)] + [F(int(r == t)) for r in range(n)] for t in range(n)]
    for col in range(n):
        piv = next(r for r in range(col, n) if m[r][col] != 0)
        m[col], m[piv] = m[piv], m[col]
        pv = m[col][col]
        m[col] = [v / pv for v in m[col]]
        for r in range(n):
            if r != col and m[r][col] != 0:
                f = m[r][col]
                m[r] = [a - f * b for a, b in zip(m[r], m[col])]
    inv_rows = [row[n:] for row in m]  # rows of V^{-1}: coefficient e from values t
    _VANDERMONDE[n] = inv_rows
    return inv_rows


def _ascii_name(name: str) -> str:
    """A generator name the polynomial backends accept (non-ASCII letters spelled out)."""
    return "".join(c if c.isascii() else f"u{ord(c):04x}" for c in name)


class SympyImport:
    """Converts SymPy expressions into Values of one Space, with opaque shared variables for
    what is not algebraic (declared up front: call :meth:`declare` for every expression first)."""

    def __init__(self, space, symbol_names: dict | None = None):
        self.space = space
        self.names = dict(symbol_names or {})   # sympy Symbol -> declared variable name
        self.opaque: dict = {}                   # sympy expression -> opaque variable name
        self._memo: dict = {}

    def declare(self, expr, block_of=None) -> None:
        """Declare variables for the free symbols and opaque parts of ``expr`` (a symbol's sign
        assumptions -- positive, negative, nonzero -- become the variable's)."""
        for s in sorted(expr.free_symbols, key=str):
            if s not in self.names:
                name = _ascii_name(str(s))
                if name in self.space.block_of_name:
                    name = f"{name}#{len(self.names)}"
                self.names[s] = name
                sign = ("positive" if s.is_positive else "negative" if s.is_negative
                        else "nonneg" if s.is_nonnegative else "nonpos" if s.is_nonpositive
                        else "nonzero" if s.is_nonzero else None)
                self.space.variable(name, block_of(s) if block_of else None, sign=sign)
                self.space.display_map[name] = s
        for sub in sympy.preorder_traversal(expr):
            if self._is_opaque(sub) and sub not in self.opaque:
                name = f"opaque{len(self.opaque) + 1}"
                self.opaque[sub] = name
                self.space.variable(name, None)
                self.space.display_map[name] = sub

    @staticmethod
    def _is_opaque(e) -> bool:
        if e.is_Atom:
            return not (e.is_Symbol or e.is_Rational)
        if e.is_Add or e.is_Mul:
            return False
        if e.is_Pow:
            return not (e.exp.is_Integer or (e.exp.is_Rational and e.exp.q == 2))
        return not isinstance(e, (sympy.exp, sympy.log))

    def __call__(self, expr) -> Value:
        got = self._memo.get(expr)
        if got is not None:
            return got
        out = self._convert(expr)
        self._memo[expr] = out
        return out

    def _convert(self, e) -> Value:
        space = self.space
        if e in self.opaque:
            return space.var(self.opaque[e])
        if e.is_Symbol:
            return space.var(self.names[e])
        if e.is_Rational:
            return space.fraction(Fraction(int(e.p), int(e.q)))
        if e.is_Number:
            raise TypeError(f"inexact number {e!r} in an exact decision")
        if e.is_Add:
            return space.sum([self(a) for a in e.args])
        if e.is_Mul:
            total = space.fraction(1)
            for a in e.args:
                total = space.multiply(total, self(a))
            return total
        if e.is_Pow:
            return space.power(self(e.base), Fraction(int(e.exp.p), int(e.exp.q)))
        if isinstance(e, sympy.exp):
            return space.exp(self(e.args[0]))
        if isinstance(e, sympy.log):
            return space.log(self(e.args[0]))
        raise TypeError(f"cannot convert {type(e).__name__}")  # pragma: no cover - declared opaque
