"""Proofs of the box rules (IBP, derivative, second derivative), one sign case of γ at a time.

* Soundness (:func:`_prove_box_sound`): ``lo ≤ point ≤ hi ⇒ lo' ≤ T(point) ≤ hi'`` where T is
  the true value (BN(x), d/dt BN(x(t)) or d²/dt² BN(x(t))); with ``point = lo + a``,
  ``hi = point + b`` (a, b ≥ 0) each difference must be ``K0 + Ka·a + Kb·b`` with every K ≡ 0 or
  ±scale of known sign (:func:`_linear_certificate`).
* Exactness (:func:`_prove_box_exact`): the output is a valid box and each bound is attained at
  a corner of the input box, so every sound box contains it.

What is not proved is checked on an exact rational grid (:data:`_CASES`, :func:`_box_grid`) for
a re-evaluated counterexample ('failed'), else 'undecided'.  Symbols and the zero test:
:mod:`symbolic_bn.bounds.proof_symbols`.
"""
from __future__ import annotations

import sympy

from ..exact.budget import BudgetExceeded
from ..exact.decide import differ_exactly
from .inputs import _sign
from .proof_symbols import (_PASS_THROUGH, _R, _Channel, _Undecided, _concrete_channel, _forward,
                            _is_zero, _offset_of, _raised, _scale_of)

# -- counterexample grids (exact rationals; R rational for the first (σ², ε) pairs) -----------

_GAMMAS = {1: [_R(2), _R(1, 2)], -1: [_R(-2), _R(-1, 2)], 0: [_R(0)]}
_MEANS = [_R(1), _R(-2)]
_BETAS = [_R(3), _R(-3)]
_VAR_EPS = [(_R(4), _R(5)), (_R(-4), _R(9)), (_R(0), _R(1, 4)), (_R(1), _R(1))]
_BOXES = [(_R(-1), _R(2)), (_R(1), _R(3)), (_R(-3), _R(-1)), (_R(0), _R(0))]
_CASES = [(1, "pos", "γ > 0 (⇔ scale > 0)"), (-1, "neg", "γ < 0 (⇔ scale < 0)"),
          (0, "zero", "γ = 0 (⇔ scale = 0; TorchLean's strict `>` takes the else branch)")]


def _box_grid(case_sign):
    for (var, eps) in _VAR_EPS:
        for gamma in _GAMMAS[case_sign]:
            for mean in _MEANS:
                for beta in _BETAS:
                    for lo, hi in _BOXES:
                        yield dict(mean=mean, var=var, gamma=gamma, beta=beta, eps=eps, lo=lo, hi=hi)


def _targets():
    """Box properties: name -> (point name, target(ch, x) = the true value at the point)."""
    t = sympy.Symbol("t", real=True)
    X = sympy.Function("x")

    def first(ch, d):
        expr = sympy.diff(_forward(ch, X(t)), t)
        return expr.xreplace({sympy.Derivative(X(t), t): d})

    def second(ch, d):
        expr = sympy.diff(_forward(ch, X(t)), t, 2)
        return expr.xreplace({sympy.Derivative(X(t), (t, 2)): d})

    return {
        "ibp": ("x", _forward, "BN(x)"),
        "deriv": ("d", first, "d/dt BN(x(t)) at x'(t) = d"),
        "second_deriv": ("d", second, "d²/dt² BN(x(t)) at x''(t) = d"),
    }


def _eval_box_rule(rules, kind, case_point, target):
    """Evaluate rule and target at a concrete point; return (lo', hi', T) exact SymPy numbers."""
    ch = _concrete_channel(case_point["mean"], case_point["var"], case_point["gamma"],
                           case_point["beta"], case_point["eps"])
    s, o = _scale_of(rules, ch), _offset_of(rules, ch)
    sign = _sign(s)
    if sign is None:
        raise _Undecided("sign")
    blo, bhi = rules[kind](s, o, case_point["lo"], case_point["hi"], sign)
    T = target(ch, case_point["point"])
    return sympy.sympify(blo), sympy.sympify(bhi), T


def _box_counterexample(rules, kind, case_sign, check):
    """First grid point where ``check(lo', hi', T, point)`` returns a violation description."""
    pname, target, tname = _targets()[kind]
    for pt in _box_grid(case_sign):
        for point in (pt["lo"], pt["hi"], (pt["lo"] + pt["hi"]) / 2):
            cp = dict(pt, point=point)
            try:
                blo, bhi, T = _eval_box_rule(rules, kind, cp, target)
                violation = check(blo, bhi, T, cp)
            except BudgetExceeded:
                raise
            except Exception:  # a point where a (wrong) rule is undefined or not real: skip it
                continue
            if violation:
                names = {"lo": "lo" if kind == "ibp" else "dlo", "hi": "hi" if kind == "ibp" else "dhi"}
                ce = {"gamma": cp["gamma"], "beta": cp["beta"], "mean": cp["mean"],
                      "var": cp["var"], "eps": cp["eps"], names["lo"]: cp["lo"],
                      names["hi"]: cp["hi"], pname: point,
                      f"{kind}_lo": blo, f"{kind}_hi": bhi, "value": T, "value_of": tname}
                ce.update(violation)
                return ce
    return None


def _linear_certificate(diff, case_sign, g, ch, lo, a, b, terms_names):
    """Prove ``diff ≥ 0`` for all lo ∈ ℝ, a, b ≥ 0 (x = lo + a, hi = lo + a + b).

    diff must be affine: diff ≡ K0 + K1·lo + Ka·a + Kb·b (decide_zero), with K1 ≡ 0 and each of K0,
    Ka, Kb ≡ 0, +s or −s where s = γ/R (decide_zero); the sign of s is the case's.  Returns a
    readable certificate string, or None if some step does not hold.
    """
    positive = {ch.R} | ({g} if g is not None else set())
    z = {lo: 0, a: 0, b: 0}
    K0 = diff.xreplace(z)
    K1, Ka, Kb = (sympy.diff(diff, v).xreplace(z) for v in (lo, a, b))
    if _is_zero(diff - (K0 + K1 * lo + Ka * a + Kb * b), positive) is not True:
        return None
    if _is_zero(K1, positive) is not True:
        return None
    s = ch.gamma / ch.R
    pieces = []
    for K, factor in ((K0, None), (Ka, terms_names[0]), (Kb, terms_names[1])):
        for cand, sgn, label in ((0, 0, "0"), (s, case_sign, "s"), (-s, -case_sign, "(−s)")):
            if _is_zero(K - cand, positive) is True:
                break
        else:
            return None
        if sgn < 0:
            return None
        if sgn > 0:
            pieces.append(f"{label}·{factor}" if factor else label)
    return " + ".join(pieces) if pieces else "0"


def _prove_box_sound(rules, kind, case_sign, case_label):
    """Soundness of a box rule in one sign case: lo ≤ point ≤ hi ⇒ lo' ≤ T(point) ≤ hi'."""
    pname, target, tname = _targets()[kind]
    g = sympy.Symbol("g", positive=True)
    gamma = case_sign * g
    ch = _Channel("", gamma=gamma)
    lo = sympy.Symbol("lo", real=True)
    a = sympy.Symbol("a", nonnegative=True)
    b = sympy.Symbol("b", nonnegative=True)
    x = lo + a
    hi = lo + a + b
    lo_n, hi_n = ("lo", "hi") if kind == "ibp" else ("dlo", "dhi")
    factors = (f"({pname} − {lo_n})", f"({hi_n} − {pname})")
    raised = None
    try:
        s, o = _scale_of(rules, ch).xreplace(ch.sub), _offset_of(rules, ch).xreplace(ch.sub)
        blo, bhi = rules[kind](s, o, lo, hi, case_sign)
        T = target(ch, x).xreplace(ch.sub)
        upper = _linear_certificate(sympy.sympify(bhi) - T, case_sign, g if case_sign else None,
                                    ch, lo, a, b, factors)
        lower = _linear_certificate(T - sympy.sympify(blo), case_sign, g if case_sign else None,
                                    ch, lo, a, b, factors)
    except _PASS_THROUGH:
        raise
    except Exception as exc:  # the rule under test (or its output) is not usable symbolically
        raised, upper, lower = _raised(exc), None, None
    if upper is not None and lower is not None:
        return "proved", (f"{kind}_hi − {tname} ≡ {upper};  {tname} − {kind}_lo ≡ {lower}  "
                          f"(s = γ/R with sign({case_sign:+d}), {factors[0]} ≥ 0, {factors[1]} ≥ 0)"), None

    def check(blo_, bhi_, T_, cp):
        if _exact_sign_or_none(T_ - blo_) == -1:
            return {"claim": f"{kind}_lo <= value", "violated_by": blo_ - T_}
        if _exact_sign_or_none(bhi_ - T_) == -1:
            return {"claim": f"value <= {kind}_hi", "violated_by": T_ - bhi_}
        return None
    ce = _box_counterexample(rules, kind, case_sign, check)
    why = raised or "exact case analysis did not go through"
    if ce is not None:
        return "failed", f"{why}; exact counterexample found", ce
    if raised:
        return "undecided", f"{raised}; no counterexample on the grid", None
    return "undecided", "no sign certificate and no counterexample on the grid", None


def _exact_sign_or_none(v):
    return _sign(sympy.sympify(v))


def _prove_box_exact(rules, kind, case_sign, case_label):
    """Exactness: the output is a valid box (lower ≤ upper whenever lo ≤ hi) and each output bound
    equals T at a corner of the input box.  Then every sound box contains the output box (it
    contains T at both corners, hence the interval between them); with soundness
    (``*_sound_*``) the output is exactly the image.  Without the validity part an inverted
    output (e.g. IBP without the swap for γ < 0: both bounds are corner values, in the wrong
    order) would count as exact."""
    pname, target, tname = _targets()[kind]
    g = sympy.Symbol("g", positive=True)
    ch = _Channel("", gamma=case_sign * g)
    lo = sympy.Symbol("lo", real=True)
    hi = sympy.Symbol("hi", real=True)
    a = sympy.Symbol("a", nonnegative=True)
    b = sympy.Symbol("b", nonnegative=True)
    positive = {ch.R, g}
    lo_n, hi_n = ("lo", "hi") if kind == "ibp" else ("dlo", "dhi")
    found, valid, raised = {}, None, None
    try:
        s, o = _scale_of(rules, ch).xreplace(ch.sub), _offset_of(rules, ch).xreplace(ch.sub)
        blo, bhi = rules[kind](s, o, lo, hi, case_sign)
        corners = {"lo": target(ch, lo).xreplace(ch.sub), "hi": target(ch, hi).xreplace(ch.sub)}
        for which, bound in (("lower", sympy.sympify(blo)), ("upper", sympy.sympify(bhi))):
            for cname, cval in corners.items():
                if _is_zero(bound - cval, positive) is True:
                    found[which] = cname
                    break
        # validity: hi = lo + b with b ≥ 0 ⇒ upper − lower ≥ 0 (same certificate form as soundness)
        vlo, vhi = rules[kind](s, o, lo, lo + b, case_sign)
        valid = _linear_certificate(sympy.sympify(vhi) - sympy.sympify(vlo), case_sign,
                                    g if case_sign else None, ch, lo, a, b,
                                    ("", f"({hi_n} − {lo_n})"))
    except _PASS_THROUGH:
        raise
    except Exception as exc:  # the rule under test (or its output) is not usable symbolically
        raised = _raised(exc)
    if len(found) == 2 and valid is not None:
        ren = {"lo": lo_n, "hi": hi_n}
        return "proved", (f"{kind}_lo ≡ T({ren[found['lower']]}), {kind}_hi ≡ T({ren[found['upper']]}) "
                          f"where T = {tname}; {kind}_hi − {kind}_lo ≡ {valid} ≥ 0"), None

    def check(blo_, bhi_, T_, cp):
        if _exact_sign_or_none(bhi_ - blo_) == -1:  # the grid boxes have lo ≤ hi
            return {"claim": f"valid box: {kind}_lo <= {kind}_hi", "violated_by": blo_ - bhi_}
        c = _concrete_channel(cp["mean"], cp["var"], cp["gamma"], cp["beta"], cp["eps"])
        t_lo, t_hi = target(c, cp["lo"]), target(c, cp["hi"])
        for which, bound in (("lower", blo_), ("upper", bhi_)):
            if differ_exactly(bound, t_lo) and differ_exactly(bound, t_hi):
                return {"claim": f"{kind}_{'lo' if which == 'lower' else 'hi'} equals the value "
                                 f"at a corner", "value_at_lo_corner": t_lo, "value_at_hi_corner": t_hi}
        return None
    ce = _box_counterexample(rules, kind, case_sign, check)
    if ce is not None:
        why = raised or ("the output box is inverted (lower > upper)" if ce["claim"].startswith("valid")
                         else "a bound is not T at either corner")
        return "failed", f"{why}; exact counterexample found", ce
    if raised:
        return "undecided", f"{raised}; no counterexample on the grid", None
    what = ("no corner identity" if len(found) < 2 else "no certificate that lower ≤ upper")
    return "undecided", f"{what} and no counterexample on the grid", None
