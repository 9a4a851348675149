"""Covers: which radicands / bases a claim's stated domain makes positive.

A claim's ``cover`` maps a domain condition (kind 'positive' or 'nonzero', an expression) to the
text of the assumption that implies it, or None (:mod:`.side_conditions`).  A layer's cover
recognizes its domain condition, the radicand stat_c + ε of any group c up to a positive rational
and size factor (e.g. ``var_c + ε > 0``); the node-kind claims use a generic cover of the input
family ``z`` (``z_c > 0`` / ``z_c ≠ 0``).
"""
from __future__ import annotations

from sympy import Add, Integer

from .backends import SymbolicBackend
from .layer_model import LayerBackend, Model
from .terms import _ATOMS, _exp_of, _free, _kind, normalize, SIZE_SYMBOLS


def _clear_sizes(e):
    """``e`` times the smallest monomial in the sizes that removes their negative powers."""
    e = normalize(e)
    terms = Add.make_args(e)
    m = Integer(1)
    for s in SIZE_SYMBOLS & e.free_symbols:
        low = min(_exp_of(t, s) for t in terms)
        if low < 0:
            m *= s ** (-low)
    return normalize(e * m)


def _positive_multiple(a, b) -> bool:
    """``a = q·m·b`` for a rational q > 0 and a monomial m in the (positive) sizes."""
    pa = _clear_sizes(a).as_content_primitive()[1]
    pb = _clear_sizes(b).as_content_primitive()[1]
    if normalize(pa - pb) == 0:
        return True
    # a common size monomial factor left in one of them
    ta, tb = Add.make_args(pa), Add.make_args(pb)
    if len(ta) != len(tb):
        return False
    for s in SIZE_SYMBOLS & (pa.free_symbols | pb.free_symbols):
        ka, kb = min(_exp_of(t, s) for t in ta), min(_exp_of(t, s) for t in tb)
        pa, pb = normalize(pa / s ** ka), normalize(pb / s ** kb)
    return normalize(pa - pb) == 0


def _layer_cover(spec):
    """Recognize the layer's domain condition: the radicand stat_c + ε of any group c (up to a
    positive rational and size factor)."""
    def cover(kind, expr):
        if kind != "positive":
            return None
        by_rng: dict = {}
        for i in _free(expr):
            by_rng.setdefault(i.rng, []).append(i)
        if set(by_rng) != set(spec.group) or any(len(v) != 1 for v in by_rng.values()):
            return None
        c = tuple(by_rng[r][0] for r in spec.group)
        M = Model(LayerBackend(SymbolicBackend(), spec))
        if _positive_multiple(expr, M.var_eps(c[0] if len(c) == 1 else c)):
            return spec.domain
        return None
    cover.__name__ = f"cover_{spec.layer}"
    return cover


_COVERS: dict = {}


def _cover_of(spec):
    got = _COVERS.get(spec)
    if got is None:
        got = _COVERS[spec] = _layer_cover(spec)
    return got


def _generic_cover(kind, expr):
    if expr.is_Symbol and _kind(expr) == "at" and _ATOMS[expr].data[0] == "z":
        return ("z_c > 0 for every channel c" if kind == "positive"
                else "z_c ≠ 0 for every channel c")
    if kind == "nonzero" and _kind(expr) == "sqrt":
        return "z_c > 0 for every channel c"
    return None
