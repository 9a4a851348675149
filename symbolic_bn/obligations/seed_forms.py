"""Linear forms in seed symbols packed into one polynomial: a fast path for the identities that
backprop (or a JVP) on linear forms decides coefficient by coefficient.

A chunk's seeds ``s_0 … s_{m−1}`` all live in one ring (a statistics group's, flint backend).  A
:class:`SeedForm` stores ``Σ_j s_j · c_j`` as the single polynomial ``Σ_j t^j · c_j`` of that ring,
where ``t`` is a generator no value of the ring contains: the ring's last free atom slot (atom
slots are placeholder generators; a slot no atom has been given occurs in no polynomial).  The
map ``(c_j)_j ↦ Σ_j t^j c_j`` is linear and injective on coefficients free of ``t``, and a
SeedForm allows exactly the operations of :class:`~symbolic_bn.obligations.raw_forms.RawForm`
(sums of forms, products with scalars; a product of two forms or a form plus a nonzero scalar is
a TypeError), so every form the graph's rules build is ``Σ_j t^j c_j`` with ``c_j`` the very
coefficient a RawForm would hold -- but each operation is one polynomial operation in C instead
of one per seed.  Two forms have the same coefficients exactly when their polynomials are equal.

The fast path only ever *confirms*: a chunk is settled here when every packed polynomial equals
its counterpart syntactically (hence every coefficient does) and the slot ``t`` is still unused
by any atom at the end; anything else -- a difference, a ring that grew, a value outside the
ring, an operation a RawForm would refuse -- returns None and the caller decides the chunk the
ordinary way, coefficient by coefficient, with its own verdicts and counterexamples.
"""
from __future__ import annotations

from ..exact.errors import ExactError
from ..exact.value import _CONTEXT_ERRORS, Value
from .raw_forms import LeavesRing, RawForm

__all__ = ["SeedForm", "free_generator", "FAST_PATH_ERRORS"]

#: What makes the fast path give up (the ordinary path then runs and reports whatever it finds).
FAST_PATH_ERRORS = (LeavesRing, TypeError, ValueError, ArithmeticError, KeyError, AttributeError,
                    ExactError) + tuple(_CONTEXT_ERRORS)


class Unused(Exception):
    """The packing generator is not free (the ring grew, or an atom took the slot)."""


def free_generator(ring):
    """(context, index) of the ring's highest atom slot when no atom occupies it, else None."""
    if not getattr(ring, "fast", False) or ring.__class__.__name__ != "Ring":
        return None
    if len(ring.atoms) >= ring.nslots:
        return None
    return ring.ctx, ring.index[f"@{ring.nslots - 1}"]


def still_free(ring, packing) -> bool:
    ctx, index = packing
    return ring.ctx is ctx and len(ring.atoms) < ring.nslots and ring.index[f"@{ring.nslots - 1}"] == index


class SeedForm(RawForm):
    """``Σ_j s_j · c_j`` as the polynomial ``Σ_j t^j c_j`` of ``ring`` (module docstring)."""

    __slots__ = ("p",)

    def __init__(self, ring, p):
        self.ring = ring
        self.terms = None  # not a dict of coefficients: code expecting one fails loudly
        self.p = p

    @classmethod
    def seed(cls, ring, t, j):
        return cls(ring, t ** j)

    def __add__(self, other):
        if type(other) is SeedForm:
            if other.ring is not self.ring:
                raise LeavesRing
            return SeedForm(self.ring, self.p + other.p)
        if isinstance(other, RawForm):
            raise LeavesRing  # an ordinary raw form among packed ones: not this path
        if self._is_zero_scalar(other):
            return self
        raise TypeError("a linear form can only be added to a linear form or to zero")

    __radd__ = __add__

    def __neg__(self):
        return SeedForm(self.ring, -self.p)

    def __sub__(self, other):
        # RawForm's ``self + (-other)`` would negate a whole packed polynomial first
        if type(other) is SeedForm:
            if other.ring is not self.ring:
                raise LeavesRing
            return SeedForm(self.ring, self.p - other.p)
        if isinstance(other, RawForm):
            raise LeavesRing
        if self._is_zero_scalar(other):
            return self
        raise TypeError("a linear form can only be added to a linear form or to zero")

    def __mul__(self, scalar):
        if isinstance(scalar, RawForm):
            raise TypeError("product of two linear forms is not linear")
        q = self._scalar(scalar)
        if q is None:
            return SeedForm(self.ring, self.ring.zero)
        return SeedForm(self.ring, self.p * q)  # a stale context raises: the caller gives up

    __rmul__ = __mul__

    def __repr__(self):
        return f"SeedForm({len(self.p)} terms)"


def value_poly(v, ring, ctx):
    """The polynomial of Value ``v`` in ``ring``'s context ``ctx`` (raises Unused otherwise)."""
    if type(v) is not Value or v.ring is not ring:
        raise Unused
    p = v.p
    if p.context() is not ctx:
        raise Unused
    return p


def packed_gradient(jac, ring, F, skip) -> dict:
    """``{(input name, index): ∂F/∂entry}`` for a polynomial ``F`` of ``ring`` that may contain
    the packing generator ``skip`` (a constant for differentiation: seeds do not depend on x).

    The same chain rule as :meth:`~symbolic_bn.exact.coordinates.EntryJacobian._poly` (and its
    cached atom gradients), applied once to the packed polynomial: by linearity of the derivative
    its coefficient of ``t^j`` is the entry gradient of the j-th value."""
    from fractions import Fraction
    backend = ring.backend
    inputs = jac.inputs
    owner = inputs._owner
    acc: dict = {}
    common: dict = {}

    def add(table, key, q):
        old = table.get(key)
        table[key] = q if old is None else old + q

    for i in backend.present(F):
        if i == skip:
            continue
        d = F.derivative(i)
        if ring.is_variable_index(i):
            who = owner.get(ring.names[i])
            if who is None:
                continue  # not an input entry (ε, an opaque value)
            kind, name, key = who
            if kind == "plain":
                add(acc, (name, key), d)
                continue
            members = inputs._centered[name].members[key]
            n = len(members)
            if ring.names[i].startswith("mean "):
                add(common, (name, key), d * backend.coeff(Fraction(1, n)))
            else:
                add(acc, (name, inputs._dev_index[ring.names[i]]), d)
                add(common, (name, key), d * backend.coeff(Fraction(-1, n)))
        else:
            for entry, q in jac._atom(ring, ring.atom_at[i]).items():
                add(acc, entry, d * q)
    for (name, block), q in common.items():
        for idx in inputs._centered[name].members[block]:
            add(acc, (name, idx), q)
    return {e: q for e, q in acc.items() if not q.is_zero()}
