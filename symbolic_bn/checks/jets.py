r"""Exact-order directional derivatives at high precision: multi-dual (hyper-dual) numbers.

A :class:`Jet` of order ``k`` is a truncated multivariate Taylor polynomial in ``k``
infinitesimals ``t1 … tk`` with ``ti² = 0``::

    a = Σ_{S ⊆ {1..k}} a_S · t^S,        t^S = Π_{i ∈ S} t_i

(2^k coefficients, indexed by bitmask: bit ``i−1`` set means ``t_i`` is in ``S``).  Such numbers
are the "hyper-dual numbers" of Fike & Alonso (AIAA 2011-886) for k = 2, and in general the
truncated polynomial algebra ``R[t1..tk]/(t1², …, tk²)`` used for exact higher-order forward-mode
differentiation.  If every input of a function ``f`` is seeded as ``x + Σ_i t_i u_i`` and ``f`` is
evaluated in this algebra, then for every ``S``::

    coefficient of t^S in f(x + Σ t_i u_i)  =  D^{|S|} f(x)[u_i : i ∈ S]

(expand ``f`` in a Taylor series: the ``t_i² = 0`` truncation keeps exactly the terms multilinear
in the ``t_i`` of ``S``, and their coefficient is the mixed directional derivative).  In
particular ``D^k f(x)[u1, …, uk]`` is the coefficient of ``t1···tk``: one evaluation gives every
mixed derivative along the seeded directions, with no step size and no truncation error.  The
only error is the rounding of the coefficients, which are ``mpmath`` numbers at ``dps`` decimal
digits (default 50).

Arithmetic (``prec`` = the binary precision of ``dps``; no global mpmath state is read or
written):

* ``+ − ×``: coefficientwise / by the subset convolution ``(ab)_S = Σ_{T ⊆ S} a_T b_{S∖T}``; the
  products and the sum are exact and rounded once per coefficient.
* A smooth univariate ``φ`` (``sqrt``, ``exp``, ``log``, real powers, ``1/a``) by the multilinear
  Faà di Bruno formula ``φ(a)_S = Σ_{π partition of S} φ^{(|π|)}(a_∅) Π_{B ∈ π} a_B`` (exact sum
  of exact products, rounded once).  ``a / b = a · (1/b)``; integer powers by repeated
  multiplication.
* Domain: ``sqrt`` and real powers need ``a_∅ > 0`` (``a_∅ = 0`` is allowed only for a jet with no
  derivative part, whose result is exact), ``log`` needs ``a_∅ > 0``, ``1/a`` needs ``a_∅ ≠ 0``;
  violations raise ``ValueError`` / ``ZeroDivisionError``.  Order comparisons raise ``TypeError``
  (they are data-dependent branches whose derivatives a jet cannot carry).

Scalars meeting a jet: ints exactly; floats (and NumPy float16/32/64) as their *exact binary
value* (like ``mpmath.mpf(float)``), ``Fraction`` / ``sympy.Rational`` / ``Decimal`` correctly
rounded to ``prec``; mpmath and ``sympy.Float`` values by their binary value.  NaN and infinities
raise ``ValueError``; symbolic SymPy expressions and strings raise ``TypeError``.

API
---
``Jet`` (the number), ``jet_namespace(k, dps)`` (an array namespace over NumPy object arrays of
jets: ``asarray``, ``zeros``/``ones``/``full``, ``sum``, ``mean``, ``var``, ``std``, ``sqrt``,
``exp``, ``log``, ``power``, ``square``, ``reciprocal``, arithmetic functions, ``reshape``,
``broadcast_to``, ``expand_dims``, ``squeeze``, ``transpose``, ``moveaxis``, ``stack``,
``concatenate``, ``matmul``, ...), ``seed(primals, directions, dps)``, ``taylor(fn, primals,
directions, dps)`` (evaluates ``fn(*jet_primals, xp)``) and ``directional_derivative(...)`` (the
coefficient of ``t1···tk``).  Results are :class:`symbolic_bn.xp.MpfArray` arrays at ``dps``.
"""
from __future__ import annotations

import math
import numbers
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from typing import Any, Callable, Optional, Sequence

import numpy as np
from mpmath.libmp import (
    dps_to_prec,
    fnan,
    finf,
    fninf,
    fone,
    from_float,
    from_int,
    from_rational,
    fzero,
    mpf_add,
    mpf_cmp,
    mpf_div,
    mpf_exp,
    mpf_log,
    mpf_mul,
    mpf_neg,
    mpf_pos,
    mpf_pow,
    mpf_sqrt,
    to_float,
)

__all__ = [
    "MAX_ORDER",
    "Jet",
    "JetNamespace",
    "jet_namespace",
    "seed",
    "taylor",
    "TaylorResult",
    "directional_derivative",
    "subset_mask",
]

MAX_ORDER = 8  # 2^8 coefficients, 3^8 products per multiplication: beyond that use something else
_RND = "n"


# --------------------------------------------------------------------------------------------
# subset tables
# --------------------------------------------------------------------------------------------
def _submasks(mask: int):
    t = mask
    while True:
        yield t
        if t == 0:
            return
        t = (t - 1) & mask


@lru_cache(maxsize=None)
def _product_pairs(k: int) -> tuple:
    """For every mask S: the pairs (T, S∖T) over T ⊆ S (the subset convolution)."""
    return tuple(tuple((t, s ^ t) for t in _submasks(s)) for s in range(1 << k))


def _partitions_of(mask: int) -> list:
    if mask == 0:
        return [[]]
    low = mask & -mask
    rest = mask ^ low
    out = []
    for sub in _submasks(rest):
        block = low | sub
        for p in _partitions_of(rest ^ sub):
            out.append([block] + p)
    return out


@lru_cache(maxsize=None)
def _partitions(k: int) -> tuple:
    """For every nonempty mask S: its set partitions, each a tuple of block masks."""
    return tuple(tuple(tuple(p) for p in _partitions_of(s)) if s else () for s in range(1 << k))


def subset_mask(subset, k: int) -> int:
    """The bitmask of a subset of {1..k} given as an iterable of 1-based indices (or a mask)."""
    if isinstance(subset, (int, np.integer)) and not isinstance(subset, bool):
        mask = int(subset)
        if not 0 <= mask < (1 << k):
            raise ValueError(f"subset mask {mask} is out of range for k={k}")
        return mask
    mask = 0
    for i in subset:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 1 <= i <= k:
            raise ValueError(f"subset entries must be direction indices 1..{k}, got {i!r}")
        if mask & (1 << (int(i) - 1)):
            raise ValueError(f"subset repeats the direction {i} (t_{i}² = 0)")
        mask |= 1 << (int(i) - 1)
    return mask


# --------------------------------------------------------------------------------------------
# scalar conversion
# --------------------------------------------------------------------------------------------
def _is_zero(t) -> bool:
    return not t[1]


def _finite(t, what):
    if t in (fnan, finf, fninf):
        raise ValueError(f"non-finite value {what!r} cannot enter a jet")
    return t


def _scalar_tuple(v: Any, prec: int):
    """An mpf tuple for a number, or NotImplemented for a non-number."""
    if isinstance(v, (bool, np.bool_, int, np.integer)):
        return from_int(int(v))
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(float(v)):
            raise ValueError(f"non-finite value {v!r} cannot enter a jet")
        return from_float(float(v))  # exact: every float16/32/64 value is a double
    if isinstance(v, Fraction):
        return from_rational(v.numerator, v.denominator, prec, _RND)
    if hasattr(v, "_mpf_"):  # mpmath.mpf, sympy.Float, the project's fixed-precision mpf
        return _finite(v._mpf_, v)
    if hasattr(v, "_mpc_") or isinstance(v, (complex, np.complexfloating)):
        raise TypeError(f"complex value {v!r}: jets have real coefficients")
    if isinstance(v, Decimal):
        if not v.is_finite():
            raise ValueError(f"non-finite value {v!r} cannot enter a jet")
        f = Fraction(v)
        return from_rational(f.numerator, f.denominator, prec, _RND)
    if isinstance(v, numbers.Rational):  # sympy.Rational / Integer, gmpy2.mpq, ...
        return from_rational(int(v.numerator), int(v.denominator), prec, _RND)
    return NotImplemented


# --------------------------------------------------------------------------------------------
# the number
# --------------------------------------------------------------------------------------------
class Jet:
    """A truncated Taylor polynomial in ``k`` nilpotent infinitesimals (module docstring).

    ``Jet(coefficients, prec)``: ``coefficients`` a sequence of 2^k values
    (mpf tuples, or numbers converted as documented), indexed by subset bitmask.  Most users
    build jets with :func:`seed` or ``jet_namespace(k, dps).asarray``.
    """

    __slots__ = ("c", "prec")

    def __init__(self, coefficients, prec: int):
        n = len(coefficients)
        if n < 1 or n & (n - 1):
            raise ValueError(f"a jet needs 2^k coefficients, got {n}")
        if n > 1 << MAX_ORDER:
            raise ValueError(f"jets of order above {MAX_ORDER} are not supported")
        c = []
        for v in coefficients:
            if isinstance(v, tuple) and len(v) == 4:
                c.append(v)
            else:
                t = _scalar_tuple(v, prec)
                if t is NotImplemented:
                    raise TypeError(f"{type(v).__name__} {v!r} is not a number")
                c.append(t)
        self.c = tuple(c)
        self.prec = int(prec)

    @classmethod
    def _raw(cls, c, prec):
        j = object.__new__(cls)
        j.c = c
        j.prec = prec
        return j

    # ---- structure --------------------------------------------------------------------------
    @property
    def k(self) -> int:
        return len(self.c).bit_length() - 1

    @property
    def dps(self) -> int:
        from mpmath.libmp import prec_to_dps
        return prec_to_dps(self.prec)

    def coefficient(self, subset=()):
        """The coefficient of ``t^S`` (``subset``: 1-based direction indices, or a bitmask) as an
        mpf at the jet's precision."""
        return _mpf_value(self.c[subset_mask(subset, self.k)], self.prec)

    @property
    def primal(self):
        return self.coefficient(0)

    def __repr__(self):
        from mpmath.libmp import to_str
        parts = []
        for s, t in enumerate(self.c):
            if s == 0 or not _is_zero(t):
                name = "".join(f"t{i + 1}" for i in range(self.k) if s >> i & 1)
                parts.append(to_str(t, 12) + (f"*{name}" if name else ""))
        return f"Jet({' + '.join(parts)})"

    # ---- coercion ---------------------------------------------------------------------------
    def _other(self, other):
        """``other`` as a jet of the same order, an mpf tuple, or NotImplemented."""
        if isinstance(other, Jet):
            if len(other.c) != len(self.c):
                raise ValueError(f"mixing jets of order {self.k} and {other.k}")
            return other
        if isinstance(other, np.ndarray):
            return NotImplemented  # let NumPy broadcast and come back element by element
        t = _scalar_tuple(other, self.prec)
        if t is NotImplemented:
            if hasattr(other, "free_symbols") or isinstance(other, str):
                raise TypeError(f"{type(other).__name__} {other!r} cannot enter a jet: only "
                                "numbers (ints, floats, Fractions, Rationals, mpf) can")
            return NotImplemented
        return t

    def _prec(self, other) -> int:
        return max(self.prec, other.prec) if isinstance(other, Jet) else self.prec

    # ---- arithmetic -------------------------------------------------------------------------
    def __neg__(self):
        return Jet._raw(tuple(mpf_neg(t) for t in self.c), self.prec)

    def __pos__(self):
        return self

    def _add(self, other, negate_other: bool):
        o = self._other(other)
        if o is NotImplemented:
            return o
        prec = self._prec(o)
        if isinstance(o, Jet):
            b = o.c
            if negate_other:
                b = tuple(mpf_neg(t) for t in b)
            c = tuple(mpf_add(x, y, prec, _RND) for x, y in zip(self.c, b))
        else:  # a scalar changes the value only
            c = (mpf_add(self.c[0], mpf_neg(o) if negate_other else o, prec, _RND),) + tuple(
                mpf_pos(x, prec, _RND) for x in self.c[1:])
        return Jet._raw(c, prec)

    def __add__(self, other):
        return self._add(other, False)

    __radd__ = __add__

    def __sub__(self, other):
        return self._add(other, True)

    def __rsub__(self, other):
        return (-self)._add(other, False)

    def __mul__(self, other):
        o = self._other(other)
        if o is NotImplemented:
            return o
        if not isinstance(o, Jet):
            return Jet._raw(tuple(mpf_mul(x, o, self.prec, _RND) for x in self.c), self.prec)
        return _multiply(self, o, self._prec(o))

    __rmul__ = __mul__

    def __truediv__(self, other):
        o = self._other(other)
        if o is NotImplemented:
            return o
        if not isinstance(o, Jet):
            if _is_zero(o):
                raise ZeroDivisionError("jet division by zero")
            return Jet._raw(tuple(mpf_div(x, o, self.prec, _RND) for x in self.c), self.prec)
        return _multiply(self, o.reciprocal(), self._prec(o))

    def __rtruediv__(self, other):
        o = self._other(other)
        if o is NotImplemented:
            return o
        return self.reciprocal() * other

    def __pow__(self, exponent):
        if isinstance(exponent, Jet):
            return (exponent * self.log()).exp()
        e = _scalar_tuple(exponent, self.prec)
        if e is NotImplemented:
            return NotImplemented
        n = _integer_value(e)
        if n is not None:
            return self._integer_power(n)
        return self._real_power(e)

    def __rpow__(self, base):
        b = self._other(base)
        if b is NotImplemented:
            return b
        base_jet = Jet._raw((b,) + (fzero,) * (len(self.c) - 1), self.prec)
        return (self * base_jet.log()).exp()

    def _integer_power(self, n: int):
        if n == 0:
            return Jet._raw((fone,) + (fzero,) * (len(self.c) - 1), self.prec)
        if n < 0:
            return self._integer_power(-n).reciprocal()
        result, base = None, self
        while n:
            if n & 1:
                result = base if result is None else _multiply(result, base, self.prec)
            n >>= 1
            if n:
                base = _multiply(base, base, self.prec)
        return result

    # ---- smooth functions -------------------------------------------------------------------
    def _nilpotent_is_zero(self) -> bool:
        return all(_is_zero(t) for t in self.c[1:])

    def sqrt(self):
        a0 = self.c[0]
        if mpf_cmp(a0, fzero) < 0:
            raise ValueError(f"sqrt of a jet with negative value {to_float(a0)!r}: not real")
        if _is_zero(a0):
            if self._nilpotent_is_zero():
                return self  # sqrt(0) = 0 exactly, nothing to differentiate
            raise ValueError("sqrt of a jet with value 0 and a nonzero derivative part: "
                             "sqrt is not differentiable at 0")
        return self._apply(_power_derivatives(a0, Fraction(1, 2), len(self.c).bit_length(),
                                              self.prec, mpf_sqrt(a0, self.prec + 20, _RND)))

    def exp(self):
        e = mpf_exp(self.c[0], self.prec + 20, _RND)
        return self._apply([e] * (len(self.c).bit_length() + 1))

    def log(self):
        a0 = self.c[0]
        if mpf_cmp(a0, fzero) <= 0:
            raise ValueError(f"log of a jet with non-positive value {to_float(a0)!r}")
        wp = self.prec + 20
        derivs = [mpf_log(a0, wp, _RND)]
        inv = mpf_div(fone, a0, wp, _RND)
        power = fone
        for j in range(1, len(self.c).bit_length() + 1):
            power = mpf_mul(power, inv, wp, _RND)  # a0^-j
            coef = from_int((-1) ** (j - 1) * math.factorial(j - 1))
            derivs.append(mpf_mul(coef, power, wp, _RND))
        return self._apply(derivs)

    def reciprocal(self):
        a0 = self.c[0]
        if _is_zero(a0):
            raise ZeroDivisionError("reciprocal of a jet with value 0")
        wp = self.prec + 20
        inv = mpf_div(fone, a0, wp, _RND)
        derivs, power = [], inv
        for j in range(len(self.c).bit_length() + 1):
            derivs.append(mpf_mul(from_int((-1) ** j * math.factorial(j)), power, wp, _RND))
            power = mpf_mul(power, inv, wp, _RND)  # a0^-(j+2)
        return self._apply(derivs)

    def _real_power(self, e):
        a0 = self.c[0]
        if mpf_cmp(a0, fzero) <= 0:
            if _is_zero(a0) and self._nilpotent_is_zero() and mpf_cmp(e, fzero) > 0:
                return self
            raise ValueError(f"a real power of a jet needs a positive value, got {to_float(a0)!r}")
        wp = self.prec + 20
        return self._apply(_power_derivatives(a0, e, len(self.c).bit_length(), self.prec,
                                              mpf_pow(a0, e, wp, _RND)))

    def _apply(self, derivs):
        """φ(self) from ``derivs[j] = φ^{(j)}(a_∅)`` for j = 0..k (Faà di Bruno)."""
        prec = self.prec
        a = self.c
        c = [mpf_pos(derivs[0], prec, _RND)]
        parts = _partitions(len(a).bit_length() - 1)
        for s in range(1, len(a)):
            acc = fzero
            for p in parts[s]:
                term = derivs[len(p)]
                for block in p:
                    if not term[1]:
                        break
                    term = mpf_mul(term, a[block]) if a[block][1] else fzero  # exact
                if term[1]:
                    acc = mpf_add(acc, term)  # exact
            c.append(mpf_pos(acc, prec, _RND))
        return Jet._raw(tuple(c), prec)

    def square(self):
        return _multiply(self, self, self.prec)

    def conjugate(self):
        return self

    # ---- what a jet cannot do -----------------------------------------------------------------
    def _no_order(self, other):
        raise TypeError("comparing jets is a data-dependent branch: a jet carries the "
                        "derivatives of one smooth branch only")

    __lt__ = __le__ = __gt__ = __ge__ = _no_order

    def __float__(self):
        raise TypeError("float() of a jet would drop its derivative part; use .primal")

    def __bool__(self):
        raise TypeError("the truth value of a jet is a data-dependent branch")


def _integer_value(e) -> Optional[int]:
    """The integer an mpf tuple equals, or None."""
    sign, man, exp, _ = e
    if not man:
        return 0
    if exp >= 0:
        v = man << exp
    elif man & ((1 << -exp) - 1):
        return None
    else:
        v = man >> -exp
    return -v if sign else v


def _power_derivatives(a0, p, n: int, prec: int, a0_to_p):
    """φ^{(j)}(a0) for φ(a) = a^p, j = 0..n: a^p · p(p−1)…(p−j+1) / a0^j."""
    wp = prec + 20
    pt = from_rational(p.numerator, p.denominator, wp, _RND) if isinstance(p, Fraction) else p
    inv = mpf_div(fone, a0, wp, _RND)
    derivs, falling, power = [a0_to_p], fone, fone
    for j in range(1, n + 1):
        falling = mpf_mul(falling, mpf_add(pt, from_int(-(j - 1)), wp, _RND), wp, _RND)
        power = mpf_mul(power, inv, wp, _RND)
        derivs.append(mpf_mul(mpf_mul(a0_to_p, falling, wp, _RND), power, wp, _RND))
    return derivs


def _multiply(x: Jet, y: Jet, prec: int) -> Jet:
    a, b = x.c, y.c
    pairs = _product_pairs(len(a).bit_length() - 1)
    c = []
    for s in range(len(a)):
        acc = fzero
        for t, u in pairs[s]:
            at, bu = a[t], b[u]
            if at[1] and bu[1]:
                acc = mpf_add(acc, mpf_mul(at, bu))  # exact product, exact sum
        c.append(mpf_pos(acc, prec, _RND))
    return Jet._raw(tuple(c), prec)


def _mpf_value(t, prec: int):
    """An mpf tuple as a fixed-precision mpf of the project's mpmath namespace."""
    from mpmath.libmp import prec_to_dps
    from ..xp import to_mpf
    import mpmath
    # make_mpf keeps the tuple as it is (mpmath.mpf(t) would round it to the global precision)
    return to_mpf(mpmath.mp.make_mpf(t), max(1, prec_to_dps(prec)))


# --------------------------------------------------------------------------------------------
# the array namespace
# --------------------------------------------------------------------------------------------
def _check_order(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= MAX_ORDER:
        raise ValueError(f"k (the number of directions) must be an integer in 0..{MAX_ORDER}, "
                         f"got {k!r}")
    return int(k)


def _check_dps(dps) -> int:
    if isinstance(dps, bool) or not isinstance(dps, (int, np.integer)) or dps < 1:
        raise ValueError(f"dps must be a positive integer, got {dps!r}")
    return int(dps)


class JetNamespace:
    """Array namespace over NumPy object arrays of :class:`Jet` (order ``k``, ``dps`` digits).

    Arrays are plain ``numpy.ndarray`` with ``dtype=object``; NumPy's object loops call the
    jet operators, so ``a + b``, ``a * 0.5``, ``numpy.sqrt(a)`` work too.  The namespace's
    ``sum``/``mean`` are exact per coefficient and rounded once (NumPy's would round per
    addition).  Names it does not provide raise ``AttributeError`` naming them.
    """

    newaxis = None

    def __init__(self, k: int = 1, dps: int = 50):
        self.k = _check_order(k)
        self.dps = _check_dps(dps)
        self.prec = dps_to_prec(self.dps)
        self._size = 1 << self.k

    def __repr__(self):
        return f"JetNamespace(k={self.k}, dps={self.dps})"

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(f"xp.{name} is not provided by {self!r} (jets support +, −, ×, ÷, "
                             "powers, sqrt, exp, log, sums, means and shape functions)")

    # ---- conversion -------------------------------------------------------------------------
    def constant(self, v) -> Jet:
        """A jet with value ``v`` and no derivative part."""
        if isinstance(v, Jet):
            if v.k != self.k:
                raise ValueError(f"a jet of order {v.k} cannot enter {self!r}")
            return v
        t = _scalar_tuple(v, self.prec)
        if t is NotImplemented:
            if isinstance(v, str):
                t = _scalar_tuple(Fraction(v), self.prec)
            else:
                raise TypeError(f"cannot convert {type(v).__name__} {v!r} to a jet")
        zeros = (fzero,) * (self._size - 1)
        return Jet._raw((t,) + zeros, self.prec)

    def _map(self, arr, fn) -> np.ndarray:
        arr = np.asarray(arr, dtype=object) if not isinstance(arr, np.ndarray) else arr
        out = np.empty(arr.shape, dtype=object)
        flat_in = arr.reshape(-1) if arr.ndim else arr.reshape(1)
        flat_out = out.reshape(-1) if out.ndim else out.reshape(1)
        for i, v in enumerate(flat_in):
            flat_out[i] = fn(v)
        return out

    def asarray(self, obj, dtype=None, copy=None) -> np.ndarray:
        """An object array of jets of this namespace (numbers become constant jets)."""
        if dtype is not None and dtype is not object:
            raise TypeError(f"xp.asarray(dtype={dtype!r}): jets have one number type")
        if isinstance(obj, np.ndarray) and obj.dtype == object and all(
                isinstance(v, Jet) and len(v.c) == self._size for v in obj.flat):
            return obj.copy() if copy else obj
        if isinstance(obj, np.ndarray) and obj.dtype.kind == "c":
            raise TypeError("complex arrays cannot become jets")
        if isinstance(obj, np.ndarray) and obj.dtype.kind not in "biufO":
            raise TypeError(f"cannot convert an array of dtype {obj.dtype} to jets")
        if isinstance(obj, Jet):
            arr = np.empty((), dtype=object)
            arr[()] = self.constant(obj)
            return arr
        if not isinstance(obj, np.ndarray):
            if isinstance(obj, (list, tuple)):
                obj = np.array(obj, dtype=object)
            else:
                arr = np.empty((), dtype=object)
                arr[()] = obj
                obj = arr
        return self._map(obj, self.constant)

    array = asarray

    def _filled(self, shape, value):
        out = np.empty(shape, dtype=object)
        out.fill(self.constant(value))
        return out

    def zeros(self, shape, dtype=None):
        return self._filled(shape, 0)

    def ones(self, shape, dtype=None):
        return self._filled(shape, 1)

    def full(self, shape, fill_value, dtype=None):
        return self._filled(shape, fill_value)

    def zeros_like(self, a, dtype=None):
        return self._filled(np.shape(a), 0)

    def ones_like(self, a, dtype=None):
        return self._filled(np.shape(a), 1)

    def full_like(self, a, fill_value, dtype=None):
        return self._filled(np.shape(a), fill_value)

    # ---- reductions -------------------------------------------------------------------------
    def _sum_list(self, terms) -> Jet:
        size = self._size
        acc = [fzero] * size
        for v in terms:
            for s, t in enumerate(self.constant(v).c):
                if t[1]:
                    acc[s] = mpf_add(acc[s], t)  # exact
        return Jet._raw(tuple(mpf_pos(t, self.prec, _RND) for t in acc), self.prec)

    def _reduce(self, a, axis, keepdims, combine):
        a = self.asarray(a)
        nd = a.ndim
        if axis is None:
            axes = tuple(range(nd))
        else:
            axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
            axes = tuple(int(ax) % nd if nd else 0 for ax in axes)
            if len(set(axes)) != len(axes):
                raise ValueError("repeated axis in reduction")
        keep = [i for i in range(nd) if i not in axes]
        moved = np.transpose(a, keep + list(axes))
        kept_shape = moved.shape[: len(keep)]
        count = int(np.prod([a.shape[i] for i in axes], dtype=np.int64))
        rows = moved.reshape(int(np.prod(kept_shape, dtype=np.int64)), count)
        out = np.empty(rows.shape[0], dtype=object)
        for i in range(rows.shape[0]):
            out[i] = combine(list(rows[i]), count)
        out = out.reshape(kept_shape)
        if keepdims:
            out = out.reshape(tuple(1 if i in axes else a.shape[i] for i in range(nd)))
        return out

    def sum(self, a, axis=None, dtype=None, keepdims=False):
        """Sum over ``axis``: exact per coefficient, rounded once."""
        return self._reduce(a, axis, keepdims, lambda terms, n: self._sum_list(terms))

    def mean(self, a, axis=None, dtype=None, keepdims=False):
        """Mean over ``axis``: the exact sum divided by the integer count, rounded."""
        def combine(terms, n):
            if n == 0:
                raise ValueError("xp.mean of an empty selection")
            return self._sum_list(terms) / n
        return self._reduce(a, axis, keepdims, combine)

    def var(self, a, axis=None, dtype=None, ddof=0, keepdims=False):
        """Two-pass variance ``sum((a − mean)²) / (n − ddof)`` (population variance by default)."""
        a = self.asarray(a)
        centered = a - self.mean(a, axis=axis, keepdims=True)
        total = self.sum(centered * centered, axis=axis, keepdims=keepdims)
        n = a.size // max(1, int(np.prod(np.shape(self.mean(a, axis=axis, keepdims=True)))))
        if n - ddof <= 0:
            raise ValueError(f"xp.var: n - ddof = {n} - {ddof} must be positive")
        return total / (n - ddof)

    def std(self, a, axis=None, dtype=None, ddof=0, keepdims=False):
        return self.sqrt(self.var(a, axis=axis, ddof=ddof, keepdims=keepdims))

    # ---- elementwise --------------------------------------------------------------------------
    def _unary(self, a, method):
        return self._map(self.asarray(a), lambda v: getattr(v, method)())

    def sqrt(self, a):
        return self._unary(a, "sqrt")

    def exp(self, a):
        return self._unary(a, "exp")

    def log(self, a):
        return self._unary(a, "log")

    def reciprocal(self, a):
        return self._unary(a, "reciprocal")

    def square(self, a):
        return self._unary(a, "square")

    def negative(self, a):
        return -self.asarray(a)

    def positive(self, a):
        return self.asarray(a)

    def add(self, a, b):
        return self.asarray(a) + self.asarray(b)

    def subtract(self, a, b):
        return self.asarray(a) - self.asarray(b)

    def multiply(self, a, b):
        return self.asarray(a) * self.asarray(b)

    def divide(self, a, b):
        return self.asarray(a) / self.asarray(b)

    true_divide = divide

    def power(self, a, b):
        a = self.asarray(a)
        if isinstance(b, np.ndarray):
            return np.frompyfunc(lambda x, y: x ** y, 2, 1)(a, b).astype(object)
        return self._map(a, lambda v: v ** b)

    pow = power

    def conjugate(self, a):
        return self.asarray(a)

    conj = conjugate

    # ---- shapes -----------------------------------------------------------------------------
    def reshape(self, a, shape):
        return np.reshape(self.asarray(a), shape)

    def broadcast_to(self, a, shape):
        return np.broadcast_to(self.asarray(a), shape)

    def expand_dims(self, a, axis):
        return np.expand_dims(self.asarray(a), axis)

    def squeeze(self, a, axis=None):
        return np.squeeze(self.asarray(a), axis=axis)

    def transpose(self, a, axes=None):
        return np.transpose(self.asarray(a), axes)

    def permute_dims(self, a, axes):
        return self.transpose(a, axes)

    def moveaxis(self, a, source, destination):
        return np.moveaxis(self.asarray(a), source, destination)

    def swapaxes(self, a, axis1, axis2):
        return np.swapaxes(self.asarray(a), axis1, axis2)

    def stack(self, arrays, axis=0):
        return np.stack([self.asarray(a) for a in arrays], axis=axis)

    def concatenate(self, arrays, axis=0):
        return np.concatenate([self.asarray(a) for a in arrays], axis=axis)

    concat = concatenate

    def ravel(self, a):
        return np.ravel(self.asarray(a))

    def copy(self, a):
        return self.asarray(a).copy()

    def matmul(self, a, b):
        return np.matmul(self.asarray(a), self.asarray(b))

    def dot(self, a, b):
        return np.dot(self.asarray(a), self.asarray(b))

    @staticmethod
    def shape(a):
        return np.shape(a)

    @staticmethod
    def ndim(a):
        return np.ndim(a)

    @staticmethod
    def size(a):
        return np.size(a)


@lru_cache(maxsize=None)
def _jet_namespace_cached(k: int, dps: int) -> JetNamespace:
    return JetNamespace(k, dps)


def jet_namespace(k: int = 1, dps: int = 50) -> JetNamespace:
    """The (cached) jet namespace with ``k`` directions at ``dps`` decimal digits."""
    return _jet_namespace_cached(_check_order(k), _check_dps(dps))


# --------------------------------------------------------------------------------------------
# seeding and evaluation
# --------------------------------------------------------------------------------------------
def _values_array(v, name):
    arr = v if isinstance(v, np.ndarray) else np.asarray(v, dtype=object if isinstance(
        v, (list, tuple)) else None)
    if arr.dtype.kind == "c":
        raise TypeError(f"{name} is complex: jets have real coefficients")
    return arr


def seed(primals: Sequence, directions: Sequence[Sequence], dps: int = 50) -> list:
    """Jet arrays ``p + Σ_i t_i u_i``: one per primal (``None`` stays ``None``).

    ``directions[i][j]`` is direction ``i + 1`` for primal ``j`` (same shape; ``None`` = zero).
    """
    k = _check_order(len(directions))
    xp = jet_namespace(k, dps)
    primals = list(primals)
    for i, d in enumerate(directions):
        if len(d) != len(primals):
            raise ValueError(f"directions[{i}] has {len(d)} entries for {len(primals)} primals")
    out = []
    size = 1 << k
    for j, p in enumerate(primals):
        if p is None:
            if any(d[j] is not None for d in directions):
                raise ValueError(f"primal {j} is None but a direction for it is not")
            out.append(None)
            continue
        base = _values_array(p, f"primals[{j}]")
        dirs = []
        for i, d in enumerate(directions):
            if d[j] is None:
                dirs.append(None)
                continue
            arr = _values_array(d[j], f"directions[{i}][{j}]")
            if arr.shape != base.shape:
                raise ValueError(f"directions[{i}][{j}] has shape {arr.shape}, primal {j} has "
                                 f"{base.shape}")
            dirs.append(arr)
        res = np.empty(base.shape, dtype=object)
        for idx in np.ndindex(*base.shape):
            c = [fzero] * size
            c[0] = xp.constant(base[idx]).c[0]
            for i, arr in enumerate(dirs):
                if arr is not None:
                    c[1 << i] = xp.constant(arr[idx]).c[0]
            res[idx] = Jet._raw(tuple(c), xp.prec)
        out.append(res)
    return out


class TaylorResult:
    """The jets a function returned on seeded inputs.

    ``coefficient(subset)``: the array of coefficients of ``t^S`` (an :class:`MpfArray` at
    ``dps``; ``subset=None`` means all k directions, i.e. ``D^k f[u1..uk]``; ``()`` the primal).
    """

    def __init__(self, jets: np.ndarray, k: int, dps: int):
        self.jets = jets
        self.k = k
        self.dps = dps

    @property
    def shape(self):
        return self.jets.shape

    def _mask(self, subset):
        return (1 << self.k) - 1 if subset is None else subset_mask(subset, self.k)

    def coefficient(self, subset=None):
        from ..xp import to_mpf_array
        import mpmath
        mask = self._mask(subset)
        vals = np.empty(self.jets.shape, dtype=object)
        for idx in np.ndindex(*self.jets.shape):
            vals[idx] = mpmath.mp.make_mpf(self.jets[idx].c[mask])  # unrounded
        return to_mpf_array(vals, self.dps)

    def coefficient_tuples(self, subset=None) -> np.ndarray:
        """The raw mpmath tuples of the coefficients (for exact arithmetic with mpmath.libmp)."""
        mask = self._mask(subset)
        out = np.empty(self.jets.shape, dtype=object)
        for idx in np.ndindex(*self.jets.shape):
            out[idx] = self.jets[idx].c[mask]
        return out

    @property
    def derivative(self):
        return self.coefficient(None)


def taylor(fn: Callable, primals: Sequence, directions: Sequence[Sequence], dps: int = 50,
           ) -> TaylorResult:
    """Evaluate ``fn(*jet_primals, xp)`` on ``p + Σ t_i u_i`` (see :func:`seed`).

    ``fn`` must return one array (or a jet); ``xp`` is the :func:`jet_namespace` of order
    ``len(directions)``.
    """
    k = _check_order(len(directions))
    xp = jet_namespace(k, dps)
    args = seed(primals, directions, dps)
    out = fn(*args, xp)
    out = xp.asarray(out)
    return TaylorResult(out, k, xp.dps)


def directional_derivative(fn: Callable, primals: Sequence, directions: Sequence[Sequence],
                           dps: int = 50):
    """``D^k fn(primals)[u1, …, uk]`` (k = ``len(directions)``) as an :class:`MpfArray`."""
    return taylor(fn, primals, directions, dps).derivative
