"""Polynomial arithmetic over ℚ for the engine: python-flint when installed, else SymPy's rings.

Both backends give *canonical* sparse polynomials (so ``p - q`` is zero exactly when ``p == q``
as polynomials) with native ``+ - *`` and integer powers.  The engine uses the operators directly
in its hot paths and everything else through the small interface below, so the rest of the
package never needs to know which backend runs:

``context(names)``, ``gens``, ``zero``/``one``, ``coeff`` (a Fraction as a coefficient), ``fraction``
(back), ``is_zero``, ``is_constant``, ``constant`` (the value of a constant polynomial),
``terms``/``from_terms``, ``nterms``, ``degree``, ``present`` (indices of generators that occur),
``derivative``, ``project`` (to another context, by generator name), ``compose`` (substitute
polynomials of another context for the generators), ``perfect_sqrt`` (or None), ``leading``.
"""
from __future__ import annotations

from fractions import Fraction

try:  # optional fast backend
    import flint as _flint
except ImportError:  # pragma: no cover - exercised when python-flint is absent
    _flint = None

__all__ = ["available_backends", "default_backend", "get_backend", "FlintBackend", "SympyBackend"]


def available_backends() -> list[str]:
    return (["flint"] if _flint is not None else []) + ["sympy"]


def default_backend() -> str:
    return available_backends()[0]


class FlintBackend:
    """python-flint's ``fmpq_mpoly`` (C)."""

    name = "flint"

    def __init__(self):
        self.poly_type = _flint.fmpq_mpoly
        self.coeff_type = _flint.fmpq

    def context(self, names):
        return _flint.fmpq_mpoly_ctx.get(tuple(names), "lex")

    def gens(self, ctx):
        return list(ctx.gens())

    def zero(self, ctx):
        return ctx.from_dict({})

    def one(self, ctx):
        return ctx.from_dict({}) + 1

    def coeff(self, q) -> object:
        q = Fraction(q)
        return _flint.fmpq(q.numerator, q.denominator)

    @staticmethod
    def fraction(c) -> Fraction:
        return Fraction(int(c.p), int(c.q))

    @staticmethod
    def is_zero(p) -> bool:
        return p.is_zero()

    @staticmethod
    def is_constant(p) -> bool:
        n = len(p)
        return n == 0 or (n == 1 and not any(p.monomial(0)))

    def constant(self, p) -> Fraction:
        """The value of a constant polynomial."""
        return self.fraction(p.coefficient(0)) if len(p) else Fraction(0)

    @staticmethod
    def context_of(p):
        return p.context()

    def terms(self, p):
        return [(tuple(map(int, m)), self.fraction(c)) for m, c in zip(p.monoms(), p.coeffs())]

    def from_terms(self, ctx, terms):
        return ctx.from_dict({tuple(m): self.coeff(c) for m, c in terms})

    @staticmethod
    def nterms(p) -> int:
        return len(p)

    @staticmethod
    def degree(p, i) -> int:
        return p.degrees()[i] if not p.is_zero() else -1

    @staticmethod
    def degrees(p):
        return p.degrees()

    @staticmethod
    def present(p) -> list[int]:
        if p.is_zero():
            return []
        return [i for i, d in enumerate(p.degrees()) if d > 0]

    @staticmethod
    def derivative(p, i):
        return p.derivative(i)

    #: At most this many terms: re-indexed term by term in Python.  python-flint 0.9's
    #: ``project_to_context`` with a mapping costs ~25 ms at a hundred generators however small
    #: the polynomial (layer_norm 8x32 spent half its proof there on one-term values); above
    #: this size it is the faster way.
    SMALL_PROJECTION = 128

    _index_maps: dict = {}

    @classmethod
    def project(cls, p, ctx, mapping=None):
        if mapping is None or len(p) > cls.SMALL_PROJECTION or p.context() is ctx:
            return p.project_to_context(ctx, mapping=mapping)  # (the same context: p itself)
        return cls._reindex(p, ctx, cls._index_map(p.context(), ctx, mapping))

    @classmethod
    def _index_map(cls, source, ctx, mapping) -> list:
        """For each generator of ``source``: its index in ``ctx``.  As in ``project_to_context``,
        an image is a generator's name or its index (the engine maps slots no atom has been given
        to index 0: they occur in no polynomial)."""
        key = (id(source), id(ctx), id(mapping))
        got = cls._index_maps.get(key)
        if got is not None and got[0] is source and got[1] is ctx and got[2] is mapping:
            return got[3]
        where = {name: k for k, name in enumerate(ctx.names())}
        index = []
        for name in source.names():
            image = mapping[name]
            if isinstance(image, str):
                index.append(where[image])
            elif isinstance(image, int) and 0 <= image < len(where):
                index.append(image)
            else:
                raise ValueError(f"cannot map generator {name} to {image!r}")
        if len(cls._index_maps) > 512:  # restrict_to builds a new mapping each call
            cls._index_maps.clear()
        cls._index_maps[key] = (source, ctx, mapping, index)  # the references keep the ids unique
        return index

    @staticmethod
    def _reindex(p, ctx, index):
        n = ctx.nvars()
        out = {}
        for exps, c in p.to_dict().items():
            e = [0] * n
            for i, d in enumerate(exps):
                if d:
                    e[index[i]] += d
            key = tuple(e)
            out[key] = out[key] + c if key in out else c
        return ctx.from_dict(out)

    @staticmethod
    def compose(p, images, ctx):
        return p.compose(*images, ctx=ctx)

    @staticmethod
    def rem(p, d):
        """Remainder of the division of p by d (no term divisible by d's leading term)."""
        return p % d

    def coefficient(self, p, monom) -> Fraction:
        """The coefficient of the monomial ``monom`` (exponent tuple; None: the constant term)."""
        if monom is None:
            monom = (0,) * p.context().nvars()
        return self.fraction(p[tuple(monom)])

    @staticmethod
    def perfect_sqrt(p):
        try:
            return p.sqrt()
        except Exception:  # flint's DomainError: not a perfect square
            return None

    def leading(self, p):
        """(exponents, coefficient) of the leading term in the ring's order (p ≠ 0)."""
        return tuple(map(int, p.monomial(0))), self.fraction(p.coefficient(0))


class SympyBackend:
    """SymPy's sparse ``PolyRing`` over ``QQ`` (pure Python; slower, same results)."""

    name = "sympy"

    def __init__(self):
        from sympy.polys.domains import QQ
        from sympy.polys.rings import PolyElement, PolyRing
        self.QQ = QQ
        self._ring_type = PolyRing
        self.poly_type = PolyElement
        self.coeff_type = type(QQ(1, 2))
        self._rings = {}

    def context(self, names):
        names = tuple(names)
        ring = self._rings.get(names)
        if ring is None:
            ring = self._ring_type(list(names), self.QQ, "lex")
            self._rings[names] = ring
        return ring

    def gens(self, ctx):
        return list(ctx.gens)

    def zero(self, ctx):
        return ctx.zero

    def one(self, ctx):
        return ctx.one

    def coeff(self, q):
        q = Fraction(q)
        return self.QQ(q.numerator, q.denominator)

    @staticmethod
    def fraction(c) -> Fraction:
        return Fraction(int(c.numerator), int(c.denominator))

    @staticmethod
    def is_zero(p) -> bool:
        return not p

    @staticmethod
    def is_constant(p) -> bool:
        return p.is_ground

    def constant(self, p) -> Fraction:
        return self.fraction(p.LC) if p else Fraction(0)

    @staticmethod
    def context_of(p):
        return p.ring

    def terms(self, p):
        return [(tuple(m), self.fraction(c)) for m, c in p.terms()]

    def from_terms(self, ctx, terms):
        return ctx({tuple(m): self.coeff(c) for m, c in terms}) if terms else ctx.zero

    @staticmethod
    def nterms(p) -> int:
        return len(p)

    @staticmethod
    def degree(p, i) -> int:
        return p.degree(i) if p else -1

    @staticmethod
    def degrees(p):
        n = p.ring.ngens
        out = [0] * n
        for m in p.keys():
            for i, e in enumerate(m):
                if e > out[i]:
                    out[i] = e
        return out

    def present(self, p) -> list[int]:
        if not p:
            return []
        return [i for i, d in enumerate(self.degrees(p)) if d > 0]

    @staticmethod
    def derivative(p, i):
        return p.diff(p.ring.gens[i])

    def project(self, p, ctx, mapping=None):
        src = [str(s) for s in p.ring.symbols]
        dst = {str(s): j for j, s in enumerate(ctx.symbols)}
        target = []
        for name in src:
            name = (mapping or {}).get(name, name)
            target.append(dst.get(name))
        out = {}
        n = ctx.ngens
        for m, c in p.terms():
            if any(e and target[i] is None for i, e in enumerate(m)):
                continue  # a generator missing from the target maps to 0
            e = [0] * n
            for i, k in enumerate(m):
                if k:
                    e[target[i]] += k
            key = tuple(e)
            out[key] = out.get(key, 0) + c
        return ctx({k: v for k, v in out.items() if v}) if out else ctx.zero

    @staticmethod
    def compose(p, images, ctx):
        total = ctx.zero
        for m, c in p.terms():
            term = ctx.one * c
            for i, e in enumerate(m):
                if e:
                    term = term * images[i] ** e
            total += term
        return total

    @staticmethod
    def rem(p, d):
        return p.rem(d)

    def coefficient(self, p, monom) -> Fraction:
        if monom is None:
            monom = (0,) * p.ring.ngens
        c = p.get(tuple(monom))
        return self.fraction(c) if c else Fraction(0)

    @staticmethod
    def perfect_sqrt(p):
        return None  # not attempted in the pure-Python backend (incomplete, never unsound)

    def leading(self, p):
        m, c = p.terms()[0]
        return tuple(m), self.fraction(c)


_BACKENDS: dict = {}


def get_backend(name: str | None = None):
    """The backend object called ``name`` ('flint' or 'sympy'; default: the fastest installed)."""
    name = name or default_backend()
    if name not in ("flint", "sympy"):
        raise ValueError(f"backend must be one of {available_backends()}, got {name!r}")
    if name == "flint" and _flint is None:
        raise ValueError("backend 'flint' needs python-flint (pip install python-flint)")
    if name not in _BACKENDS:
        _BACKENDS[name] = FlintBackend() if name == "flint" else SympyBackend()
    return _BACKENDS[name]
