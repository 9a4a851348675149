"""Linear forms with raw polynomial coefficients of one ring: the end-to-end proof's hot path.

The end-to-end identity runs backprop on linear forms in independent seed symbols, one chunk of
seeds at a time; every seed of a chunk belongs to one statistics group, so every coefficient of
every cotangent lives in that group's ring.  :class:`RawForm` keeps those coefficients as raw
polynomials of the ring (no :class:`~symbolic_bn.exact.value.Value` objects), which makes the
millions of coefficient operations plain backend arithmetic.  Scalars from a smaller ring are
embedded; anything that would leave the ring raises :class:`LeavesRing`, and the chunk is then
done again with ordinary :class:`~symbolic_bn.exact.linear.LinearForm` s of Values (same result,
slower).  Only linear operations exist: a product of two forms, or a form plus a nonzero scalar,
is a TypeError -- so a VJP that is not linear in its cotangent cannot pass.
"""
from __future__ import annotations

from ..exact.value import MULTI, Value

__all__ = ["RawForm", "LeavesRing"]


class LeavesRing(Exception):
    """A coefficient would need a ring other than the form's."""


class RawForm:
    """``Σ_k s_k · coeff_k`` with coefficients raw polynomials of ``ring``."""

    __slots__ = ("ring", "terms")

    def __init__(self, ring, terms):
        self.ring = ring
        self.terms = terms

    @classmethod
    def unit(cls, key, ring):
        return cls(ring, {key: ring.one})

    # -- scalars
    def _scalar(self, v):
        """``v`` (a Value or a number) as a raw polynomial of this form's ring, or None for 0."""
        ring = self.ring
        if type(v) is not Value:
            if isinstance(v, RawForm):
                raise TypeError("product of two linear forms is not linear")
            if isinstance(v, (int,)) and v == 0:
                return None
            v = ring.space.constant(v)
        if v.ring is None:
            return None if v.p == 0 else ring.one * v.p
        if v.ring is ring:
            p = v.p
            if ring.backend.context_of(p) is not ring.ctx:
                p = ring.lift(p)
            return p
        if v.ring is not MULTI and v.ring.label <= ring.label:
            return ring.space.embed(v, ring)
        raise LeavesRing

    def _is_zero_scalar(self, v):
        if type(v) is Value:
            return v.is_syntactic_zero()
        return isinstance(v, (int, float)) and v == 0

    # -- linear operations
    def __add__(self, other):
        if isinstance(other, RawForm):
            if other.ring is not self.ring:
                if not other.terms:
                    return self
                if not self.terms:
                    return other
                raise LeavesRing
            out = dict(self.terms)
            for k, q in other.terms.items():
                p = out.get(k)
                if p is None:
                    out[k] = q
                else:
                    s = p + q
                    if s.is_zero():
                        del out[k]
                    else:
                        out[k] = s
            return RawForm(self.ring, out)
        if self._is_zero_scalar(other):
            return self
        raise TypeError("a linear form can only be added to a linear form or to zero")

    __radd__ = __add__

    def __neg__(self):
        return RawForm(self.ring, {k: -q for k, q in self.terms.items()})

    def __sub__(self, other):
        if isinstance(other, RawForm):
            return self + (-other)
        if self._is_zero_scalar(other):
            return self
        raise TypeError("a linear form can only be added to a linear form or to zero")

    def __rsub__(self, other):
        return (-self).__add__(other)

    def __mul__(self, scalar):
        if isinstance(scalar, RawForm):
            raise TypeError("product of two linear forms is not linear")
        p = self._scalar(scalar)
        if p is None:
            return RawForm(self.ring, {})
        if p.is_constant():
            c = p.coefficient(0) if len(p) else None
            if c is None:
                return RawForm(self.ring, {})
            return RawForm(self.ring, {k: q * c for k, q in self.terms.items()})
        # ℚ[generators] has no zero divisors: no product of nonzero polynomials vanishes
        return RawForm(self.ring, {k: q * p for k, q in self.terms.items()})

    __rmul__ = __mul__

    def __truediv__(self, scalar):
        if isinstance(scalar, RawForm):
            raise TypeError("a linear form divided by a linear form is not linear")
        space = self.ring.space
        return self * space.inverse(space.constant(scalar))

    def __repr__(self):
        return f"RawForm({len(self.terms)} terms)"
