"""``prove``: the certificate of the inference BatchNorm bound rules.

Runs every identity obligation (:mod:`symbolic_bn.bounds.identity_proofs`) and, after the identity
each relies on, the soundness and exactness obligations of the IBP, derivative and
second-derivative boxes in the three sign cases of γ (:mod:`symbolic_bn.bounds.box_proofs`), each
under its own time budget, and assembles them with their statements, assumptions, methods and
TorchLean names into a :class:`~symbolic_bn.obligations.certificate.Certificate`.
"""
from __future__ import annotations

import time

from ..exact.budget import BudgetExceeded, check_budget, time_budget
from ..obligations.certificate import Certificate, Obligation
from .box_proofs import _CASES, _prove_box_exact, _prove_box_sound
from .identity_proofs import _identity_obligations, _prove_identity
from .proof_symbols import _DENOM_ASSUMPTION, _R_METHOD, _REAL_ASSUMPTION, LEAN_FILE, _Undecided
from .rules import DEFAULT_RULES


_BOX_KINDS = {
    "ibp": ("ibp", "lo ≤ x ≤ hi", "ibp_lo ≤ BN(x) ≤ ibp_hi", f"{LEAN_FILE}: ibpBatchnorm"),
    "deriv": ("deriv", "dlo ≤ x'(t) ≤ dhi",
              "deriv_lo ≤ d/dt BN(x(t)) ≤ deriv_hi", f"{LEAN_FILE}: derivBatchnorm"),
    "second_deriv": ("second_deriv", "lo ≤ x''(t) ≤ hi",
                     "second_deriv_lo ≤ d²/dt² BN(x(t)) ≤ second_deriv_hi",
                     f"{LEAN_FILE}: secondDerivBatchnorm"),
}


def _run(budget, fn):
    """Run one decision under a time budget; a timeout or unverifiable step is 'undecided'."""
    start = time.perf_counter()
    try:
        with time_budget(budget):
            status, detail, ce = fn()
    except (BudgetExceeded, _Undecided) as exc:
        status, detail, ce = "undecided", str(exc) or "time budget exceeded", None
    except Exception as exc:  # last resort (e.g. a rule failing inside the counterexample check)
        status, detail, ce = "undecided", f"the obligation raised {type(exc).__name__}: {exc}", None
    return status, detail, ce, time.perf_counter() - start


def prove(budget: float | None = 60.0, rules: dict | None = None) -> Certificate:
    """Prove the inference BatchNorm bound rules; returns a Certificate.

    ``rules`` replaces any of :data:`DEFAULT_RULES` (keys ``scale``, ``offset``, ``ibp``,
    ``affine``, ``deriv``, ``second_deriv``; same signatures) -- for instance with a deliberately
    wrong rule, which is then reported 'failed' with an exact counterexample.  ``budget``: seconds
    per obligation (``None`` or ``math.inf``: unbounded; see :func:`symbolic_bn.exact.budget.check_budget`).
    """
    budget = check_budget(budget)
    if rules is None:
        rules = {}
    if not isinstance(rules, dict):
        raise ValueError(f"rules must be a dict, got {type(rules).__name__}")
    unknown = set(rules) - set(DEFAULT_RULES)
    if unknown:
        raise ValueError(f"unknown rule names {sorted(unknown)}; known: {sorted(DEFAULT_RULES)}")
    for k, f in rules.items():
        if not callable(f):
            raise ValueError(f"rules[{k!r}] must be callable")
    rules = {**DEFAULT_RULES, **rules}
    cert = Certificate("inference BatchNorm bounds", parameters={
        "rules": {k: getattr(f, "__qualname__", repr(f)) for k, f in rules.items()},
        "affine_sizes": "C=2, n=3", "jacobian_channels": 2, "budget_per_obligation": budget})
    t0 = time.perf_counter()
    base = [_REAL_ASSUMPTION, _DENOM_ASSUMPTION]

    box_after = {"scale_sign": "ibp", "deriv_chain_rule": "deriv",
                 "second_deriv_chain_rule": "second_deriv"}
    for name, group, statement, lean, extra_as, builder, nch, extra in _identity_obligations(rules):
        status, detail, ce, secs = _run(budget, lambda: _prove_identity(builder, nch, extra))
        cert.add(Obligation(name=name, group=group, statement=statement, lean_name=lean,
                            assumptions=base + extra_as, method=_R_METHOD, status=status,
                            seconds=secs, counterexample=ce, detail=detail))
        if name in box_after:  # the box obligations follow the identity they rely on
            _add_box_obligations(cert, rules, budget, base, box_after[name])
    cert.seconds = time.perf_counter() - t0
    return cert


def _add_box_obligations(cert, rules, budget, base, kind):
    group, hyp, concl, lean = _BOX_KINDS[kind]
    what = {"ibp": "the input box", "deriv": "the derivative box",
            "second_deriv": "the second-derivative box"}[kind]
    for case_sign, tag, case_text in _CASES:
        method = ("exact case analysis on sign(γ) = sign(scale) (obligation scale_sign); " + _R_METHOD
                  + "; point = lo + a, hi = point + b with a, b ≥ 0; each difference ≡ K0 + Ka·a + Kb·b"
                  " with every K ≡ 0 or ±scale of known sign (decide_zero), so it is a sum of"
                  " products of nonnegative factors; counterexamples from an exact rational grid")
        status, detail, ce, secs = _run(budget, lambda: _prove_box_sound(rules, kind, case_sign, case_text))
        cert.add(Obligation(
            name=f"{kind}_sound_{tag}", group=group,
            statement=f"case {case_text}: {hyp} ⇒ {concl}", lean_name=lean,
            assumptions=base + [case_text, hyp], method=method, status=status, seconds=secs,
            counterexample=ce, detail=detail))
    for case_sign, tag, case_text in _CASES:
        method = ("exact case analysis on sign(γ); " + _R_METHOD
                  + "; each output bound minus the true value at a corner of the box ≡ 0; upper −"
                  " lower with hi = lo + b, b ≥ 0, ≡ 0 or ±scale·b of known sign")
        status, detail, ce, secs = _run(budget, lambda: _prove_box_exact(rules, kind, case_sign, case_text))
        cert.add(Obligation(
            name=f"{kind}_exact_{tag}", group=group,
            statement=(f"case {case_text}: the output is a valid box (lower ≤ upper whenever "
                       f"{what} has lo ≤ hi) and each output bound is attained at a corner of "
                       f"{what} (bound − value at that corner ≡ 0), so every sound box contains it"),
            lean_name=lean, assumptions=base + [case_text], method=method, status=status,
            seconds=secs, counterexample=ce, detail=detail))
