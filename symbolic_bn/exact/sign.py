"""Signs on the domain, decided soundly (and incompletely) by exact arithmetic.

:func:`sign` answers, for a Value ``v`` of a Space, one of

``'pos'`` (v > 0 at every point of the domain), ``'nonneg'`` (v ≥ 0), ``'zero'`` (v = 0),
``'nonpos'``, ``'neg'``, or ``None`` (the sign varies over the domain, or could not be shown).

The domain is the Space's facts (polynomials known to be positive or non-negative) together with
the side conditions of its atoms.  The tactics, each a proof when it succeeds:

1. exact rationals; polynomials without variables (square roots, exps, logs of constants) by
   outward-rounded interval arithmetic (mpmath ``iv``) at increasing precision;
2. *term signs*: every term ``c·Π gᵉ`` has a known sign when each generator with an odd exponent
   has one (σ ≥ 0, and σ > 0 when its radicand is positive; ι_q has the sign of q; exp > 0; a
   variable declared positive); all terms ≥ 0 gives ``v ≥ 0``, and ``v > 0`` if moreover one term is
   a positive constant times strictly positive generators;
3. *facts*: ``v − c·K`` for a fact K (c > 0 rational, matched on K's leading term), alone and
   greedily combined, must pass the term test; a positive fact makes the result strict.

Both ``v`` and ``−v`` are tried.  Nothing is sampled and no floating-point number decides anything.
:func:`decide` turns a sign into the truth value of a comparison (or None: not decided).
"""
from __future__ import annotations

from fractions import Fraction

import mpmath

from . import normal
from .value import MULTI, Value

__all__ = ["sign", "decide", "atom_sign"]

_FLIP = {"pos": "neg", "nonneg": "nonpos", "zero": "zero", "nonpos": "nonneg", "neg": "pos", None: None}


def decide(s, op: str):
    """Truth of ``d op 0`` for a difference d of sign ``s`` on the whole domain, or None."""
    table = {
        "==": {"zero": True, "pos": False, "neg": False},
        "!=": {"zero": False, "pos": True, "neg": True},
        "<": {"neg": True, "zero": False, "pos": False, "nonneg": False},
        "<=": {"neg": True, "zero": True, "nonpos": True, "pos": False},
        ">": {"pos": True, "zero": False, "neg": False, "nonpos": False},
        ">=": {"pos": True, "zero": True, "nonneg": True, "neg": False},
    }
    return table[op].get(s)


def _constant_sign(q: Fraction) -> str:
    return "pos" if q > 0 else ("neg" if q < 0 else "zero")


def sign(space, v: Value):
    """The sign of ``v`` on the domain (module docstring)."""
    if v.ring is None:
        return _constant_sign(v.constant_fraction())
    if v.ring is MULTI:
        if normal.is_zero_value(space, v):
            return "zero"
        v = space.collapse(v)
    ring = v.ring
    backend = space.backend
    p = normal.reduce(ring, v.poly())
    if backend.is_zero(p):
        return "zero"
    if backend.is_constant(p):
        return _constant_sign(backend.constant(p))
    if normal.is_zero(ring, p):
        return "zero"
    if _no_variables(ring, p):
        s = _interval_sign(space, ring, p)
        if s is not None:
            return s
    for candidate, flip in ((p, False), (-p, True)):
        s = _nonneg(space, ring, candidate)
        if s is not None:
            return _FLIP[s] if flip else s
    return None


def _no_variables(ring, p) -> bool:
    degs = ring.backend.degrees(p)
    if any(degs[i] for i in range(ring.var_offset, len(degs))):
        return False
    return all(ring.atom_at[i].home.label == frozenset() and _constant_atom(ring.atom_at[i])
               for i in range(ring.var_offset) if degs[i])


def _constant_atom(atom) -> bool:
    arg = atom.home.lift(atom.argument)
    return _no_variables(atom.home, arg) if not atom.home.backend.is_constant(arg) else True


def _interval_sign(space, ring, p, max_prec: int = 4096):
    prec = 64
    while prec <= max_prec:
        ctx = mpmath.iv
        old = ctx.prec
        try:
            ctx.prec = prec
            val = _iv_poly(ring, p, ctx, {})
            if val.a > 0:
                return "pos"
            if val.b < 0:
                return "neg"
        except (ZeroDivisionError, ValueError):
            return None
        finally:
            ctx.prec = old
        prec *= 4
    return None


def _iv_poly(ring, p, ctx, cache):
    backend = ring.backend
    total = ctx.mpf(0)
    for m, c in backend.terms(p):
        term = ctx.mpf(c.numerator) / ctx.mpf(c.denominator)
        for i, e in enumerate(m):
            if e:
                term = term * _iv_atom(ring.atom_at[i], ctx, cache) ** e
        total = total + term
    return total


def _iv_atom(atom, ctx, cache):
    key = (atom.id, ctx.prec)
    if key in cache:
        return cache[key]
    home = atom.home
    arg = _iv_poly(home, home.lift(atom.argument), ctx, cache)
    if atom.kind == "sqrt":
        if arg.b < 0:
            raise ValueError("negative radicand")
        val = ctx.sqrt(ctx.mpf([max(arg.a, 0), arg.b]))
    elif atom.kind == "inv":
        if arg.a <= 0 <= arg.b:
            raise ZeroDivisionError
        val = 1 / arg
    elif atom.kind == "exp":
        val = ctx.exp(arg)
    else:
        if arg.a <= 0:
            raise ValueError("log of a non-positive interval")
        val = ctx.log(arg)
    cache[key] = val
    return val


def atom_sign(space, atom):
    """Sign of an atom's value: 'pos', 'nonneg', 'neg' or None."""
    if atom.positive_cache is not None:
        return atom.positive_cache
    home = atom.home
    if atom.kind == "exp":
        s = "pos"
    elif atom.kind == "sqrt":
        s = "pos" if sign(space, Value(space, home, home.lift(atom.argument))) == "pos" else "nonneg"
    elif atom.kind == "inv":
        if atom.base is not None:
            s = "pos" if atom_sign(space, atom.base) in ("pos", "nonneg") else None
        else:
            a = sign(space, Value(space, home, home.lift(atom.argument)))
            # ι exists only where q ≠ 0 (its side condition), so q ≥ 0 there means q > 0
            s = {"pos": "pos", "nonneg": "pos", "neg": "neg", "nonpos": "neg"}.get(a)
    else:
        s = None
    atom.positive_cache = s
    return s


def _generator_sign(space, ring, i):
    if ring.is_variable_index(i):
        return {"positive": "pos", "negative": "neg", "nonneg": "nonneg",
                "nonpos": "nonpos"}.get(space.var_sign.get(ring.names[i]))
    return atom_sign(space, ring.atom_at[i])


def _term_test(space, ring, p):
    """'pos' / 'nonneg' when every term of p is shown ≥ 0 (module docstring), else None."""
    backend = ring.backend
    if backend.is_zero(p):
        return "nonneg"
    strict = False
    cache = {}
    for m, c in backend.terms(p):
        s = 1 if c > 0 else -1
        all_strict = True
        for i, e in enumerate(m):
            if not e:
                continue
            g = cache.get(i)
            if g is None:
                g = cache[i] = _generator_sign(space, ring, i) or "?"
            if e % 2 == 0:
                if g not in ("pos", "neg"):
                    all_strict = False
                continue
            if g == "pos":
                continue
            if g == "neg":
                s = -s
                continue
            if g == "nonneg":
                all_strict = False
                continue
            if g == "nonpos":
                s = -s
                all_strict = False
                continue
            return None
        if s < 0:
            return None
        strict = strict or all_strict
    return "pos" if strict else "nonneg"


def _facts_for(space, ring):
    out = []
    for fact in space.facts:
        if fact.label <= ring.label:
            out.append((space.embed(fact.value, ring), fact.kind == "positive"))
    return out


def _coefficient(backend, p, monom):
    return backend.coefficient(p, monom)


def _fact_multiple(space, ring, p, facts):
    """'pos'/'nonneg' when p is c·K + d for a fact K, a rational c > 0 and a constant d ≥ 0
    (compared as polynomials: the cheap common case, e.g. a radicand var + ε)."""
    backend = ring.backend
    c0 = _constant_term(backend, p)
    core = p - backend.coeff(c0) if c0 else p
    if backend.is_zero(core):
        return None
    _, lc = backend.leading(core)
    monic = core * backend.coeff(1 / lc)
    best = None
    for K, positive in facts:
        k0 = _constant_term(backend, K)
        kcore = K - backend.coeff(k0) if k0 else K
        if backend.is_zero(kcore) or backend.nterms(kcore) != backend.nterms(core):
            continue
        _, klc = backend.leading(kcore)
        if kcore * backend.coeff(1 / klc) != monic:
            continue
        c = lc / klc                 # p = c·(K − k0) + c0 = c·K + (c0 − c·k0)
        if c <= 0:
            continue
        d = c0 - c * k0
        if d > 0 or (d == 0 and positive):
            return "pos"
        if d == 0:
            best = "nonneg"  # a positive fact may still match: keep looking
    return best


def _constant_term(backend, p):
    return backend.coefficient(p, None)


def _match_monomials(ring, K):
    """The monomials a fact may be matched on: its leading one and those with only shared
    generators (ε, constants), each with K's coefficient."""
    backend = ring.backend
    space = ring.space
    out = [backend.leading(K)]
    shared = set()
    for i, name in enumerate(ring.names):
        if ring.is_variable_index(i):
            if space.block_of_name[name] is None:
                shared.add(i)
        elif i in ring.atom_at and not ring.atom_at[i].home.label:
            shared.add(i)
    for m, c in backend.terms(K):
        if any(m) and all(e == 0 or k in shared for k, e in enumerate(m)) and m != out[0][0]:
            out.append((m, c))
    return out


def _combination(space, ring, p, facts, depth):
    """'pos'/'nonneg' when p = Σ c_k·K_k + r with rationals c_k > 0, facts K_k and r passing the
    term test (a depth-first search over which fact to subtract, matched on one monomial)."""
    backend = ring.backend
    prepared = [(K, pos, _match_monomials(ring, K)) for K, pos in facts]

    def search(r, used, used_pos, left):
        s = _term_test(space, ring, r)
        if s == "pos" or (s == "nonneg" and used_pos and used):
            return "pos"
        if s == "nonneg":
            return "nonneg"
        if left == 0:
            return None
        for k, (K, pos, monoms) in enumerate(prepared):
            if k in used:
                continue
            for monom, cK in monoms:
                cr = _coefficient(backend, r, monom)
                if not cr or cr / cK <= 0:
                    continue
                got = search(r - K * backend.coeff(cr / cK), used | {k}, used_pos or pos, left - 1)
                if got is not None:
                    return got
        return None

    return search(p, frozenset(), False, min(3, len(prepared)))


def _square_plus_constant(ring, p):
    """'pos'/'nonneg' when p − c is a positive multiple of a perfect square for its constant term
    c ≥ 0 (so p ≥ c)."""
    backend = ring.backend
    c0 = _constant_term(backend, p)
    if c0 < 0:
        return None
    q = p - backend.coeff(c0) if c0 else p
    if backend.is_zero(q):
        return None
    _, lc = backend.leading(q)
    if lc <= 0:
        return None
    if backend.perfect_sqrt(q * backend.coeff(1 / lc)) is None:
        return None
    return "pos" if c0 > 0 else "nonneg"


def _nonneg(space, ring, p):
    square = _square_plus_constant(ring, p)
    if square == "pos":
        return square
    facts = _facts_for(space, ring)
    if facts:
        s = _fact_multiple(space, ring, p, facts)
        if s is not None:
            return s
    s = _term_test(space, ring, p)
    if s == "pos":
        return s
    if facts:
        c = _combination(space, ring, p, [(normal.reduce(ring, K), pos) for K, pos in facts], 3)
        if c is not None:
            return c
    return s or square
