"""A backend seen through a layer's index structure, and the layer's forward quantities on it.

:class:`LayerBackend` wraps a symbolic or concrete backend (:mod:`.backends`) for one
:class:`~.size_models.SizeModel`: the index kinds ``'C'`` (a group index), ``'N'`` (a position)
and ``'J'`` (a weight index) stand for the layer's ranges, a sum over ``'N'`` is the nested sum
over a group's positions, and ``param(c, p)`` is the weight index π(c, p).  :class:`Model` gives
the spec formulas of the forward quantities (mean, centered, var, std, r, x̂, y) on such a
backend; :func:`_model` keeps one Model per backend so that both sides of a claim share them.
"""
from __future__ import annotations

import itertools

from sympy import Mul, Rational

from .size_models import _BN, SizeModel
from .terms import _rule, Ix


def _memo(fn):
    cache: dict = {}

    def wrapped(*args):
        if args not in cache:
            cache[args] = fn(*args)
        return cache[args]
    return wrapped


#: index names shown bare (as before); every other (name, range) is written name_range
_BARE = {("c", "C"), ("c2", "C"), ("p", "N"), ("q", "N")}


class LayerBackend:
    """A backend (symbolic or concrete) seen through a layer's index structure: the kinds
    ``'C'`` (a group index), ``'N'`` (a position) and ``'J'`` (a weight index) stand for the
    layer's ranges -- one index, or a tuple of indices when the kind has several ranges.
    ``at``, ``delta`` and ``diff`` take such indices; ``sum('N', fn)`` is the nested sum over a
    group's positions, ``param(c, p)`` the weight index π(c, p), ``param_sum(j, fn)`` the sum of
    ``fn(c, p)`` over every (c, p) with π(c, p) = j."""

    def __init__(self, inner, spec: SizeModel | None = None):
        self.inner = inner
        self.spec = spec or _BN
        self.symbolic = inner.symbolic

    # sizes and scalars
    @property
    def eps(self):
        return self.spec.eps

    def kind_ranges(self, kind) -> tuple:
        spec = self.spec
        return {"C": spec.group, "N": spec.position, "J": spec.param_ranges}.get(kind, (kind,))

    def _size_product(self, kind):
        return Mul(*[self.inner.size(r) for r in self.kind_ranges(kind)])

    @property
    def N(self):
        return self._size_product("N")

    @property
    def C(self):
        return self._size_product("C")

    @property
    def Ninv(self):
        if self.symbolic:
            _rule("N-inverse")
            return Mul(*[self.inner.size(r) ** -1 for r in self.spec.position])
        return Rational(1, int(self.N))

    def size(self, rng):
        return self.inner.size(rng)

    # indices
    def index(self, name, kind):
        """The symbolic free index ``name`` of kind ``kind`` (an Ix, or a tuple of them)."""
        ranges = self.kind_ranges(kind)
        if len(ranges) == 1:
            r = ranges[0]
            return Ix(name if (name, r) in _BARE else f"{name}_{r}", r)
        return tuple(Ix(f"{name}_{r}", r) for r in ranges)

    def assignments(self, kind):
        """The concrete values of an index of ``kind`` (ints, or tuples of ints)."""
        ranges = self.kind_ranges(kind)
        values = list(itertools.product(*[range(self.inner.sizes[r]) for r in ranges]))
        return [v[0] for v in values] if len(ranges) == 1 else values

    @staticmethod
    def _flat(idx):
        out = []
        for i in idx:
            out.extend(i if isinstance(i, tuple) else (i,))
        return tuple(out)

    def sum(self, kind, fn):
        ranges = self.kind_ranges(kind)
        if len(ranges) == 1:
            return self.inner.sum(ranges[0], fn)
        return self._nested(ranges, (), fn)

    def _nested(self, ranges, prefix, fn):
        if not ranges:
            return fn(prefix)
        return self.inner.sum(ranges[0], lambda j: self._nested(ranges[1:], prefix + (j,), fn))

    def at(self, family, *idx):
        return self.inner.at(family, *self._flat(idx))

    def delta(self, i, k):
        if isinstance(i, tuple):
            return Mul(*[self.inner.delta(a, b) for a, b in zip(i, k)])
        return self.inner.delta(i, k)

    def diff(self, v, family, *idx):
        return self.inner.diff(v, family, *self._flat(idx))

    def sqrt(self, v):
        return self.inner.sqrt(v)

    def sqrt_clamp(self, v):
        return self.inner.sqrt_clamp(v)

    def inv(self, v):
        return self.inner.inv(v)

    # the weight index
    def param(self, c, p):
        cs = c if isinstance(c, tuple) else (c,)
        ps = p if isinstance(p, tuple) else (p,)
        comps = tuple((cs if side == "g" else ps)[i] for side, i in self.spec.param)
        return comps[0] if len(comps) == 1 else comps

    def param_sum(self, j, fn):
        spec = self.spec
        js = j if isinstance(j, tuple) else (j,)
        fixed = {key: v for key, v in zip(spec.param, js)}
        free = [(side, i, r) for side, ranges in (("g", spec.group), ("p", spec.position))
                for i, r in enumerate(ranges) if (side, i) not in fixed]

        def build(assign):
            cs = tuple(assign[("g", i)] for i in range(len(spec.group)))
            ps = tuple(assign[("p", i)] for i in range(len(spec.position)))
            return fn(cs[0] if len(cs) == 1 else cs, ps[0] if len(ps) == 1 else ps)

        def nest(k, assign):
            if k == len(free):
                return build(assign)
            side, i, r = free[k]
            return self.inner.sum(r, lambda v: nest(k + 1, {**assign, (side, i): v}))
        return nest(0, dict(fixed))


def as_layer_backend(be, spec: SizeModel | None = None) -> LayerBackend:
    if isinstance(be, LayerBackend):
        return be
    return LayerBackend(be, spec)


class Model:
    """Forward quantities of one layer on a backend (group index c, position p).

    Families: ``x`` (input), ``gamma``, ``beta`` (indexed by the weight index π(c, p)), ``g``
    (cotangent on the output), ``t`` (tangent on x), ``tgamma``, ``tbeta``.  A bare
    Symbolic/ConcreteBackend is read as batchnorm_channel_first (γ_c, β_c per channel)."""

    def __init__(self, be):
        self.be = as_layer_backend(be)
        self.spec = self.be.spec
        self.mean = _memo(self._mean)
        self.var = _memo(self._var)
        self.r = _memo(self._r)
        self.std = _memo(self._std)

    # sizes and scalars
    @property
    def N(self):
        return self.be.N

    @property
    def Ninv(self):
        return self.be.Ninv

    @property
    def eps(self):
        return self.be.eps

    def sum(self, fn):
        """Σ over the positions p of a group."""
        return self.be.sum("N", fn)

    def param_sum(self, j, fn):
        return self.be.param_sum(j, fn)

    # inputs
    def x(self, c, p):
        return self.be.at("x", c, p)

    def g(self, c, p):
        return self.be.at("g", c, p)

    def t(self, c, p):
        return self.be.at("t", c, p)

    def gamma(self, j):
        return self.be.at("gamma", j)

    def beta(self, j):
        return self.be.at("beta", j)

    def tgamma(self, j):
        return self.be.at("tgamma", j)

    def tbeta(self, j):
        return self.be.at("tbeta", j)

    def param(self, c, p):
        return self.be.param(c, p)

    def gamma_at(self, c, p):
        return self.gamma(self.param(c, p))

    def beta_at(self, c, p):
        return self.beta(self.param(c, p))

    # forward (spec formulas)
    def _mean(self, c):
        return self.Ninv * self.sum(lambda j: self.x(c, j))

    def centered(self, c, p):
        """x − mean (for rms_norm, which does not center: x)."""
        return self.x(c, p) - self.mean(c) if self.spec.centered else self.x(c, p)

    def _var(self, c):
        """The group statistic: the population variance (rms_norm: mean(x²))."""
        return self.Ninv * self.sum(lambda j: self.centered(c, j) ** 2)

    def var_eps(self, c):
        return self.var(c) + self.eps

    def _std(self, c):
        return self.be.sqrt_clamp(self.var_eps(c))

    def _r(self, c):
        return self.be.inv(self.std(c))

    def xhat(self, c, p):
        return self.centered(c, p) * self.r(c)

    def normalized(self, c, p):
        return self.xhat(c, p)

    def y(self, c, p):
        out = self.gamma_at(c, p) * self.xhat(c, p)
        return out + self.beta_at(c, p) if self.spec.bias else out


def _model(be):
    """The Model of a backend (one per backend, so that lhs and rhs share forward values)."""
    model = getattr(be, "_model", None)
    if model is None:
        model = be._model = Model(be)
    return model
