"""Backends: the same statements run symbolically (any N, C) or concretely (explicit symbols).

A statement is a Python function of a backend.  :class:`SymbolicBackend` builds normal forms of
the term language (:mod:`.terms`) for the symbolic sizes; :class:`ConcreteBackend` runs the same
statement at concrete sizes with explicit symbols ``x_c_0 .. x_c_{N-1}``, Python-expanded sums,
``sympy.diff`` and ``sympy.sqrt``.  :func:`instantiate` turns a symbolic normal form into the
concrete backend's terms at given sizes and indices (named sums expanded), so that both can be
compared (:mod:`.confirmation`).
"""
from __future__ import annotations

import sympy
from sympy import Add, Integer, Rational, Symbol

from .derivatives import diff
from .terms import (_ATOMS, _fresh, _inverse, _rule, _sqrt_atom, at, C_SYM, delta, EPS, N_SYM, RANGES,
                    sum_over)


class SymbolicBackend:
    """Index-level calculus for symbolic N (and C); values are normal forms."""

    symbolic = True
    N = N_SYM
    C = C_SYM
    eps = EPS

    @property
    def Ninv(self):
        _rule("N-inverse")
        return N_SYM ** -1

    def at(self, family, *idx):
        return at(family, *idx)

    def size(self, rng):
        return RANGES[rng]

    def delta(self, i, k):
        return delta(i, k)

    def sum(self, rng, fn):
        j = _fresh(rng)
        return sum_over(j, fn(j))

    def sqrt(self, v):
        return _sqrt_atom(v)

    def sqrt_clamp(self, v):
        """sqrtClamp(v) = sqrt(max(v, 0)); on the domain v > 0 this is sqrt(v)."""
        return _sqrt_atom(v)

    def inv(self, v):
        return _inverse(v)

    def diff(self, v, family, *idx):
        return diff(v, family, *idx)


_CONCRETE: dict[Symbol, tuple] = {}


def concrete_symbol(family: str, idx: tuple) -> Symbol:
    """The explicit symbol ``family_i_j`` of the concrete backend."""
    sym = Symbol("_".join([family] + [str(int(i)) for i in idx]))
    _CONCRETE[sym] = (family, tuple(int(i) for i in idx))
    return sym


class ConcreteBackend:
    """Explicit symbols x_c_0 .. x_c_{N-1}; sums expanded; ``sympy.diff``; ``sympy.sqrt``.

    ``n`` and ``channels`` are the sizes of the ranges 'N' and 'C'; ``sizes`` gives others
    (``{'B': 2, 'S': 3}``)."""

    symbolic = False
    eps = EPS

    def __init__(self, n: int = 1, channels: int = 1, *, sizes: dict | None = None):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an int ≥ 1, got {n!r}")
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be an int ≥ 1, got {channels!r}")
        self.sizes = {"N": n, "C": channels}
        for rng, k in (sizes or {}).items():
            if rng not in RANGES:
                raise ValueError(f"sizes: unknown range {rng!r} (ranges: {', '.join(RANGES)})")
            if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                raise ValueError(f"sizes: the size of {rng} must be an int ≥ 1, got {k!r}")
            self.sizes[rng] = k
        self.n = self.sizes["N"]
        self.channels = self.sizes["C"]
        self.N = Integer(self.n)
        self.C = Integer(self.channels)
        self.Ninv = Rational(1, self.n)
        self._diff_cache: dict = {}

    def size(self, rng):
        return Integer(self.sizes[rng])

    def at(self, family, *idx):
        return concrete_symbol(family, idx)

    def delta(self, i, k):
        return Integer(1 if i == k else 0)

    def sum(self, rng, fn):
        return Add(*[fn(j) for j in range(self.sizes[rng])])

    def sqrt(self, v):
        return sympy.sqrt(v)

    def sqrt_clamp(self, v):
        """sqrt(max(v, 0)) on the domain v > 0, where max(v, 0) = v."""
        return sympy.sqrt(v)

    def inv(self, v):
        if v == 0:
            raise ZeroDivisionError("division by 0 in the concrete expansion")
        return 1 / v

    def diff(self, v, family, *idx):
        key = (v, family, tuple(idx))
        got = self._diff_cache.get(key)
        if got is None:
            got = self._diff_cache[key] = sympy.diff(v, concrete_symbol(family, idx))
        return got



def instantiate(expr, n: int, channels: int, env: dict, sizes: dict | None = None):
    """The normal form ``expr`` at ``N = n``, ``C = channels`` (and the other ranges at ``sizes``)
    and the free indices ``env`` (``{Ix: int}``), as an explicit SymPy expression in the concrete
    backend's symbols."""
    cache: dict = {}
    size_of = {"N": n, "C": channels, **(sizes or {})}
    by_symbol = {RANGES[r]: Integer(k) for r, k in size_of.items()}

    def inst(e):
        e = sympy.sympify(e)
        rep = {}
        for s in e.free_symbols:
            if s in by_symbol:
                rep[s] = by_symbol[s]
            elif s in _ATOMS:
                rep[s] = atom_value(s)
        return e.xreplace(rep) if rep else e

    def atom_value(s):
        key = (s, tuple(sorted(((i.name, v) for i, v in env.items()))))
        if key in cache:
            return cache[key]
        a = _ATOMS[s]
        if a.kind == "at":
            family, idx = a.data
            val = concrete_symbol(family, tuple(env[i] for i in idx))
        elif a.kind == "delta":
            i, k = a.data
            val = Integer(1 if env[i] == env[k] else 0)
        elif a.kind == "sum":
            b, body = a.data
            size = size_of[b.rng]
            vals = []
            for v in range(size):
                env[b] = v
                vals.append(inst(body))
            del env[b]
            val = Add(*vals)
        elif a.kind == "sqrt":
            val = sympy.sqrt(inst(a.data[0]))
        else:
            base = inst(a.data[0])
            if base == 0:
                raise ZeroDivisionError(f"1/0 when instantiating {s} at N={n}")
            val = 1 / base
        cache[key] = val
        return val

    env = dict(env)
    return inst(expr)
