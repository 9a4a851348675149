"""Exact differentiation in the index-level term language (:mod:`.terms`).

:func:`diff` differentiates a normal form with respect to an input atom ``family[idx]`` by the
rules of :data:`~.terms.RULES`: ``deriv-atom`` (∂x[c,p]/∂x[c',q] = δ_cc'·δ_pq; another input
family gives 0), ``deriv-sum`` (a finite sum term by term), ``deriv-poly`` (sum and product rule,
exact differentiation of a polynomial in the atoms), ``sqrt-chain`` (∂σ = ∂u/(2σ) for
σ = sqrt(u), u > 0) and ``inv-chain`` (∂ι = −ι²·∂b for ι = 1/b, b ≠ 0); the conditions u > 0
and b ≠ 0 are recorded.  The scalar facts behind the two chain rules (TorchLean's declared
derivatives of sqrtClamp and inv) are proved in :mod:`.scalar_rules`.
"""
from __future__ import annotations

import sympy
from sympy import Integer, Mul, Rational

from .terms import _Atom, _ATOMS, _cond, _fresh, _rule, delta, Ix, normalize, subs_ix, sum_over


def _deriv_atom(idx2: tuple, idx: tuple):
    """Rule deriv-atom: ``∂f[idx2]/∂f[idx] = Π_m δ(idx2_m, idx_m)``."""
    return Mul(*[delta(u, v) for u, v in zip(idx2, idx)])


def _sqrt_chain(sigma, du):
    """Rule sqrt-chain: ``∂σ = ∂u/(2σ)`` for ``σ = sqrt(u)``, ``u > 0``."""
    return Rational(1, 2) * sigma ** -1 * du


def _inv_chain(iota, db):
    """Rule inv-chain: ``∂ι = −ι²·∂b`` for ``ι = 1/b``, ``b ≠ 0``."""
    return -(iota ** 2) * db


def diff(expr, family: str, *idx: Ix):
    """Exact derivative of ``expr`` with respect to the input atom ``family[idx]``."""
    expr = normalize(expr)
    total = Integer(0)
    used_poly = False
    for s in expr.free_symbols:
        a = _ATOMS.get(s)
        if a is None:
            continue  # N, C, eps and constants
        d = _datom(s, a, family, idx)
        if d != 0:
            used_poly = True
            total += sympy.diff(expr, s) * d
    if used_poly:
        _rule("deriv-poly")
    return normalize(total)


def _datom(s, a: _Atom, family, idx):
    if a.kind == "at":
        fam2, idx2 = a.data
        if fam2 != family or len(idx2) != len(idx):
            return 0
        _rule("deriv-atom")
        return _deriv_atom(idx2, idx)
    if a.kind == "delta":
        return 0
    if a.kind == "sum":
        b, body = a.data
        j = _fresh(b.rng)
        inner = diff(subs_ix(body, {b: j}), family, *idx)
        if inner == 0:
            return 0
        _rule("deriv-sum")
        return sum_over(j, inner)
    if a.kind == "sqrt":
        du = diff(a.data[0], family, *idx)
        if du == 0:
            return 0
        _rule("sqrt-chain")
        _cond("positive", a.data[0])
        return _sqrt_chain(s, du)
    if a.kind == "inv":
        db = diff(a.data[0], family, *idx)
        if db == 0:
            return 0
        _rule("inv-chain")
        _cond("nonzero", a.data[0])
        return _inv_chain(s, db)
    raise AssertionError(a.kind)  # pragma: no cover
