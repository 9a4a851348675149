"""Whether the domain conditions a decision used are implied by a claim's stated hypotheses.

Building ``σ = sqrt(u)`` needs ``u > 0`` and building ``ι(b) = 1/b`` needs ``b ≠ 0``
(:mod:`.terms`).  A claim is 'proved' only when every recorded condition, and every ``σ``/``ι``
left in its normal forms, is implied by its *stated* hypotheses (a nonzero constant, a size,
``σ``, a quantity its ``cover`` (:mod:`.covers`) maps to a stated assumption such as
``var_c + ε > 0``, or a product of these); otherwise it is 'undecided' with the condition named.
"""
from __future__ import annotations

import sympy
from sympy import Add, Mul

from .terms import _ATOMS, _exp_of, _factors, _kind, N_SYM, normalize, SIZE_SYMBOLS


def _sigma_reduced(e):
    """``e`` with every ``σ^k`` (k ≥ 2) replaced by ``u^(k//2)·σ^(k%2)`` (relation σ² = u)."""
    for _ in range(8):
        rep = {}
        for t in Add.make_args(e):
            for b, k in t.as_powers_dict().items():
                if _kind(b) == "sqrt" and k.is_Integer and k >= 2:
                    rep[b ** k] = _ATOMS[b].data[0] ** (k // 2) * b ** (k % 2)
        if not rep:
            return e
        e = normalize(Add(*[t.xreplace(rep) for t in Add.make_args(e)]))
    return e  # pragma: no cover


def _condition_status(claim, kind, e, _depth=0):
    """Is the domain condition ``e > 0`` (kind 'positive') or ``e ≠ 0`` (kind 'nonzero') implied
    by the claim's stated hypotheses?  Returns ``(implied, texts)`` with the assumption texts it
    rests on (``texts`` names the condition itself when it is not implied).

    Implied: a constant of the right sign; the sizes (N, C, ... ≥ 1); ``σ = sqrt(u)`` (> 0 when
    ``u > 0`` is implied); ``ι(b) = 1/b`` (≠ 0 when ``b ≠ 0`` is implied); a product of implied
    factors (with a positive coefficient for 'positive'); a quantity the claim's ``cover``
    recognizes with a text among the claim's stated assumptions (for 'nonzero', a recognized
    positive quantity also counts).  Anything else is not implied."""
    e = normalize(e)
    raw = f"{sympy.sstr(e)} {'> 0' if kind == 'positive' else '≠ 0'}"
    if _depth > 8:  # pragma: no cover - atoms nest only a few levels deep
        return False, [raw]
    if e.is_Rational:
        ok = e > 0 if kind == "positive" else e != 0
        return ok, ([] if ok else [raw])
    stated = set(claim.assumptions)
    cover_texts = []
    reduced = _sigma_reduced(e)
    coeff, prim = reduced.as_content_primitive()  # coeff > 0 (a rational)
    if claim.cover is not None:
        # also prim·N^k (N > 0): e.g. N·(var + ε) is recognized as a positive multiple of var + ε
        # (the layer covers also accept any positive size monomial factor)
        scaled = [normalize(prim * N_SYM ** k) for k in (-1, 1, -2, 2)] if prim.is_Add else []
        forms = [e, reduced, prim] + scaled + ([-prim] if kind == "nonzero" else [])
        for form in dict.fromkeys(forms):
            for k in ((kind, "positive") if kind == "nonzero" else (kind,)):
                text = claim.cover(k, form)
                if text is not None:
                    if text in stated:
                        return True, [text]
                    if text not in cover_texts:
                        cover_texts.append(text)
    if prim.is_Add:
        # a common monomial factor m (e.g. a power of N): prim = m·rest, checked separately
        terms = Add.make_args(prim)
        m = Mul(*[sym ** min(_exp_of(t, sym) for t in terms) for sym in prim.free_symbols])
        if m != 1:
            rest = normalize(prim / m)
            if rest != prim:
                ok_m, t_m = _condition_status(claim, kind, m, _depth + 1)
                ok_r, t_r = _condition_status(claim, kind, rest, _depth + 1)
                if ok_m and ok_r:
                    return True, t_m + [t for t in t_r if t not in t_m]
    # a monomial is checked factor by factor
    if not prim.is_Add and coeff != 0 and (kind == "nonzero" or coeff > 0):
        pc, pows = _factors(prim)
        ok = kind == "nonzero" or pc > 0
        texts: list = []
        for b, ex in pows:
            if b in SIZE_SYMBOLS:
                continue
            if _kind(b) == "sqrt":
                sub_ok, sub = _condition_status(claim, "positive", _ATOMS[b].data[0], _depth + 1)
            elif _kind(b) == "inv":
                sub_kind = "positive" if kind == "positive" and ex % 2 else "nonzero"
                sub_ok, sub = _condition_status(claim, sub_kind, _ATOMS[b].data[0], _depth + 1)
            elif kind == "positive" and ex.is_Integer and ex % 2 == 0:
                sub_ok, sub = _condition_status(claim, "nonzero", b, _depth + 1)
            elif prim != b or ex != 1:
                sub_ok, sub = _condition_status(claim, kind, b, _depth + 1)
            else:
                sub_ok, sub = False, []
            ok = ok and sub_ok
            texts += [t for t in sub if t not in texts]
        if ok:
            return True, texts
    return False, (cover_texts or [raw])


def _atom_conditions(exprs):
    """Every ``σ``/``ι`` atom occurring in ``exprs`` (also inside named sums, radicands and
    bases), as domain conditions ``[(kind, expr)]`` (atom audit, independent of the log)."""
    seen, out, todo = set(), [], list(exprs)
    while todo:
        e = sympy.sympify(todo.pop())
        for s in e.free_symbols:
            a = _ATOMS.get(s)
            if a is None or s in seen:
                continue
            seen.add(s)
            if a.kind == "sqrt":
                out.append(("positive", a.data[0]))
            elif a.kind == "inv":
                out.append(("nonzero", a.data[0]))
            if a.kind in ("sum", "sqrt", "inv"):
                todo.append(a.data[-1] if a.kind == "sum" else a.data[0])
    return out


def _check_conditions(claim, conditions):
    """``(assumption texts, conditions not implied by the stated hypotheses)``."""
    texts, missing = [], []
    for kind, e in conditions:
        ok, sub = _condition_status(claim, kind, e)
        texts += [t for t in sub if t not in texts]
        if not ok:
            label = f"{sympy.sstr(normalize(e))[:300]} {'> 0' if kind == 'positive' else '≠ 0'}"
            if label not in missing:
                missing.append(label)
    return texts, missing
