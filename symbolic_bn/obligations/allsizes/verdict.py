"""The verdict of one claim: symbolic decision, side conditions, concrete confirmation.

:func:`run_claim` builds both sides of a :class:`~.claim.Claim` on the symbolic backend for the
layer's symbolic sizes, with the rewrite rules logged, and decides lhs − rhs exactly
(:func:`~.decision.decide_nf`); checks that every σ/ι it used is defined under the claim's stated
hypotheses (:mod:`.side_conditions`); and confirms the claim at concrete sizes, or refutes it by
an exact counterexample (:mod:`.confirmation`).  'proved' needs all three; a claim that runs out
of its time budget or divides by an expression zero on the whole domain is 'undecided'.  The
result is an :class:`~symbolic_bn.obligations.certificate.Obligation` whose ``method`` names the
rules used and the sizes confirmed.
"""
from __future__ import annotations

import time
from dataclasses import replace

import sympy

from ..certificate import Obligation
from ...exact.budget import BudgetExceeded, check_budget, time_budget
from .backends import SymbolicBackend
from .claim import _as_tuple, _refuse_inexact, Claim
from .confirmation import _confirm, _grid_text, confirmation_grid
from .decision import decide_nf
from .layer_model import LayerBackend
from .side_conditions import _atom_conditions, _check_conditions
from .size_models import _BN
from .terms import _ATOMS, _Log, _LOG, normalize


def _sums_over(exprs, ranges) -> bool:
    """Whether a named sum over one of ``ranges`` occurs in ``exprs`` (also nested in atoms)."""
    seen, todo = set(), [sympy.sympify(e) for e in exprs]
    while todo:
        for s in todo.pop().free_symbols:
            a = _ATOMS.get(s)
            if a is None or s in seen:
                continue
            seen.add(s)
            if a.kind == "sum":
                if a.data[0].rng in ranges:
                    return True
                todo.append(a.data[1])
            elif a.kind in ("sqrt", "inv"):
                todo.append(a.data[0])
    return False


def run_claim(claim: Claim, *, budget: float | None = 60.0, sizes=range(1, 7)) -> Obligation:
    """Decide one claim for symbolic sizes, then confirm it at the concrete sizes."""
    budget = check_budget(budget)
    spec = claim.spec or _BN
    start = time.perf_counter()
    log = _Log()
    token = _LOG.set(log)
    status, cex, detail = "undecided", None, None
    method_tail = ""
    extra_conditions: list = []
    what = "index-level calculus for symbolic sizes"
    try:
        with time_budget(budget):
            be = LayerBackend(SymbolicBackend(), spec)
            idx = {name: be.index(name, kind) for name, kind in claim.free}
            try:
                Lnf = [normalize(v) for v in _as_tuple(claim.lhs(be, idx))]
                Rnf = [normalize(v) for v in _as_tuple(claim.rhs(be, idx))]
            except sympy.SympifyError as exc:
                raise ValueError(f"claim {claim.name}: a side is not a number or SymPy expression "
                                 f"({exc}); closed forms and rules must return SymPy expressions"
                                 ) from None
            _refuse_inexact(claim, Lnf + Rnf)
            if len(Lnf) != len(Rnf):
                raise ValueError(f"claim {claim.name}: lhs and rhs have different lengths")
            decided = [decide_nf(a - b) for a, b in zip(Lnf, Rnf)]
            symbolic_zero = all(z for z, _, _ in decided)
            relations = set().union(*[u for _, _, u in decided])
            rules_used = sorted(log.rules | relations)
            _LOG.reset(token)
            token = None
            # every σ/ι used (logged while building, or still present in the normal forms) must
            # be defined under the claim's stated hypotheses, else the decision is conditional
            extra_conditions = (
                [("positive", e) for e in log.positive] + [("nonzero", e) for e in log.nonzero]
                + _atom_conditions(Lnf + Rnf))
            _, missing = _check_conditions(claim, extra_conditions)
            # a side that sums over groups (a closed form reading other groups' statistics, say)
            # is confirmed with two groups as well, where that can make a difference
            confirm_as = claim if claim.channel_level or not _sums_over(Lnf + Rnf, spec.group) \
                else replace(claim, channel_level=True)
            grid = confirmation_grid(confirm_as, list(sizes))
            checks, cex, mismatch, skipped = _confirm(claim, Lnf, Rnf, idx, grid, symbolic_zero)
            method_tail = (f"; confirmed at ({_grid_text(spec, grid)}) by concrete expansion "
                           f"(explicit symbols, expanded sums, sympy.diff) with the exact engine's zero "
                           f"test: {checks} exact comparisons")
            if skipped:
                method_tail += (f" ({sum(skipped.values())} skipped: division by zero at "
                                + "; ".join(skipped) + ")")
            if cex is not None:
                status = "failed"
                detail = ("refuted at a concrete size: " + ("the symbolic normal forms were "
                          "equal, so a rewrite rule is wrong" if symbolic_zero else
                          "the symbolic normal form of lhs − rhs is not zero"))
            elif mismatch is not None:
                detail = mismatch
            elif symbolic_zero and missing:
                detail = ("the symbolic decision holds only under side conditions that the "
                          "stated hypotheses do not imply: " + "; ".join(missing)
                          + " (a denominator or radicand not shown nonzero/positive)")
            elif symbolic_zero and (checks == 0 or skipped):
                detail = (f"concrete confirmation incomplete: {checks} exact comparisons, "
                          f"{sum(skipped.values())} rows skipped because a side divides by zero "
                          f"at " + "; ".join(skipped)
                          + (" (nothing was compared)" if checks == 0 else "")
                          + "; the statement is undefined there")
            elif symbolic_zero:
                status = "proved"
            else:
                rem = [sympy.sstr(r) for z, r, _ in decided if not z]
                detail = ("nonzero normal form of lhs − rhs, and no counterexample at the "
                          "concrete sizes: " + "; ".join(r[:400] for r in rem))
            size_names = ", ".join(dict.fromkeys(spec.position + (spec.group if claim.channel_level else ())))
            what = ("index-level calculus for symbolic N" + (" and C" if claim.channel_level else "")
                    if spec.layer == "batchnorm_channel_first" else
                    f"index-level calculus for symbolic {size_names}")
            method = (what + "; rewrite rules used: " + ", ".join(rules_used)
                      + "; exact decision: normal form of lhs − rhs is the zero polynomial (the exact "
                        "engine's normal form when it is not syntactically zero)"
                      + method_tail)
            if detail is None:
                detail = "lhs normal form: " + "; ".join(sympy.sstr(v)[:300] for v in Lnf)
    except BudgetExceeded:
        status, cex = "undecided", None
        detail = f"time budget of {budget} s exceeded"
        method = f"{what} (budget exceeded)"
    except ZeroDivisionError as exc:
        status, cex = "undecided", None
        detail = (f"a side divides by an expression that is zero on the whole domain: {exc}; "
                  f"the statement is undefined, so it is neither proved nor refuted")
        method = f"{what} (division by zero while building)"
    finally:
        if token is not None:
            _LOG.reset(token)
    if not extra_conditions:
        extra_conditions = ([("positive", e) for e in log.positive]
                            + [("nonzero", e) for e in log.nonzero])
    assumptions = list(claim.assumptions) + [
        t for t in _check_conditions(claim, extra_conditions)[0] if t not in claim.assumptions]
    if status == "proved" and len(assumptions) != len(claim.assumptions):  # pragma: no cover
        status = "undecided"  # defensive: never 'proved' under an assumption not stated
        detail = "relies on assumptions beyond the stated ones: " + "; ".join(
            assumptions[len(claim.assumptions):])
    return Obligation(
        name=claim.name, statement=claim.statement, status=status, method=method,
        assumptions=assumptions, lean_name=claim.lean_name,
        seconds=time.perf_counter() - start, counterexample=cex if status == "failed" else None,
        group=claim.group, stage=claim.stage, detail=detail)
