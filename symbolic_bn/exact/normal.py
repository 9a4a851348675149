"""Normal forms and the exact zero test.

Two procedures on a polynomial ``p`` of a ring (atoms as in :mod:`symbolic_bn.exact.ring`):

* :func:`reduce` -- *value-preserving* simplification, valid wherever the side conditions hold:
  the remainder of ``p`` modulo each atom's relation -- ``σ² − z`` (every ``σ^k``, k ≥ 2, becomes
  ``z^(k//2)·σ^(k%2)``) and ``ι·g − 1`` for an inverse whose argument is a single generator g
  (``σ·ι_σ = 1``, ``γ·ι_γ = 1``) -- latest atom first, so each step only brings in earlier atoms.
  The ring's generator order makes the atom the leading part of its relation, so the remainder is
  the substitution and is computed by the polynomial backend.
* :func:`is_zero` -- the zero test.  After :func:`reduce`, each inverse atom ι (latest first) is
  *cleared*: ``p = Σ_e p_e ι^e`` is replaced by ``Σ_e p_e q^(K−e)`` (``K`` the degree in ι), i.e. by
  ``q^K·p``: a nonzero multiple of ``p`` where ``q ≠ 0``; for ι = 1/g with g a generator this is
  ``g^K·p`` reduced modulo ``ι·g − 1``.  Then σ powers are reduced again.  A zero result proves
  ``p = 0`` wherever the side conditions hold.  A nonzero result is *not* a disproof (two
  radicands may be dependent): callers then look for an exact counterexample.

Never ``simplify()`` or anything heuristic: every step is a polynomial identity or a multiplication
by a nonzero factor.  Sums over several rings are tested part by part (terms that involve only
shared generators are moved to the shared ring first, since only they can cancel across rings),
and, if that does not show zero, in the ring of all their blocks.
"""
from __future__ import annotations

from .value import MULTI

__all__ = ["reduce", "reduce_inverses", "is_zero", "is_zero_value", "clear_denominators"]


def _present_atoms(ring, p):
    """Atoms of ``ring`` occurring in ``p``, latest first."""
    if not ring.atoms:
        return []
    degs = ring.backend.degrees(p)
    return [a for a in reversed(ring.atoms) if degs[ring.slot_of[a.id]]]


def reduce(ring, p):
    """Value-preserving normal form (module docstring)."""
    backend = ring.backend
    p = ring.lift(p)
    if backend.is_zero(p) or not ring.atoms:
        return p
    present = _present_atoms(ring, p)
    if not present:
        return p
    # one pass latest-first is enough: a remainder modulo an atom's relation only brings in
    # generators that are earlier in the ring, which are reduced after it
    for atom in reversed(ring.atoms):
        if not present:
            break
        r = ring.relation(atom)
        if r is None:
            continue
        p = backend.rem(ring.lift(p), r)
        if backend.is_zero(p):
            return p
    return ring.lift(p)


def _split_by_exponent(ring, p, i):
    """{e: polynomial of the terms with exponent e of generator i, that exponent set to 0}."""
    backend = ring.backend
    groups: dict = {}
    for m, c in backend.terms(p):
        e = m[i]
        groups.setdefault(e, []).append((m[:i] + (0,) + m[i + 1:], c))
    return {e: backend.from_terms(ring.ctx, ts) for e, ts in groups.items()}


def clear_denominators(ring, p):
    """``q^K·p`` for every inverse atom (latest first), then :func:`reduce`: a polynomial without
    inverse atoms that vanishes exactly where ``p`` does (on the side conditions)."""
    backend = ring.backend
    p = reduce(ring, p)
    for atom in reversed(list(ring.atoms)):
        if atom.kind != "inv" or backend.is_zero(p):
            continue
        i = ring.slot_of[atom.id]
        degs = backend.degrees(p)
        K = int(degs[i]) if i < len(degs) else 0
        if K <= 0:
            continue
        q = ring.argument(atom)
        r = ring.relation(atom)
        if r is not None:  # ι = 1/g: multiply by g^K, then ι·g = 1 removes every ι
            p = backend.rem(ring.lift(p) * q ** K, ring.lift(r))
        else:
            parts = _split_by_exponent(ring, ring.lift(p), i)
            qpow = [ring.one]
            for _ in range(K):
                qpow.append(qpow[-1] * q)
            out = ring.zero
            for e, part in parts.items():
                out = out + part * qpow[K - e]
            p = out
        p = reduce(ring, p)
    return ring.lift(p)


def reduce_inverses(ring, p):
    """``p`` modulo the relations ``ι·g − 1`` of inverses of single generators only (σ² − z left
    alone): the Laurent normal form in those generators, value-preserving where g ≠ 0."""
    backend = ring.backend
    p = ring.lift(p)
    for atom in reversed(_present_atoms(ring, p)):
        if atom.kind != "inv":
            continue
        r = ring.relation(atom)
        if r is not None:
            p = backend.rem(ring.lift(p), r)
    return ring.lift(p)


def is_zero(ring, p) -> bool:
    """Exact zero test of a polynomial of ``ring`` on the side conditions (module docstring)."""
    backend = ring.backend
    p = ring.lift(p)
    if backend.is_zero(p):
        return True
    # cheap sufficient test first: zero with every σ treated as a free generator (only σ·ι = 1
    # applied) is zero; σ² = z is brought in only when needed -- substituting a dense radicand z
    # into high powers of σ is what makes the full test expensive
    if any(a.kind == "inv" for a in ring.atoms) and backend.is_zero(reduce_inverses(ring, p)):
        return True
    p = reduce(ring, p)
    if backend.is_zero(p):
        return True
    if not any(a.kind == "inv" for a in ring.atoms):
        return False
    return backend.is_zero(clear_denominators(ring, p))


def is_zero_value(space, v) -> bool:
    """Exact zero test of a Value (constants, one ring, or a sum over rings)."""
    if v.ring is None:
        return v.p == 0
    if v.ring is not MULTI:
        return is_zero(v.ring, v.poly())
    # sum over rings: terms with only shared generators may cancel across rings, others not
    backend = space.backend
    shared = space.ring(frozenset())
    shared_total = shared.zero
    ok = True
    for ring, p in v.p.items():
        p = reduce(ring, ring.lift(p))
        private, common = _split_shared(ring, p)
        if not backend.is_zero(private) and not is_zero(ring, private):
            ok = False
            break
        if not backend.is_zero(common):
            shared_total = shared_total + ring.restrict_to(shared, common)
    if ok and is_zero(shared, shared_total):
        return True
    collapsed = space.collapse(v)
    return is_zero(collapsed.ring, collapsed.poly())


def _split_shared(ring, p):
    """(terms using a block generator, terms using only shared generators) of p."""
    backend = ring.backend
    space = ring.space
    shared_index = set()
    for i, name in enumerate(ring.names):
        if ring.is_variable_index(i):
            if space.block_of_name[name] is None:
                shared_index.add(i)
        elif i in ring.atom_at and not ring.atom_at[i].home.label:
            shared_index.add(i)
    private, common = [], []
    for m, c in backend.terms(p):
        if all(e == 0 or k in shared_index for k, e in enumerate(m)):
            common.append((m, c))
        else:
            private.append((m, c))
    return backend.from_terms(ring.ctx, private), backend.from_terms(ring.ctx, common)
