r"""What a cross-check returns: :class:`CrosscheckResult`, with an :class:`OutputReport` per checked
output and a :class:`FamilyReport` per point family.

``CrosscheckResult.to_dict()`` is the JSON form (non-finite floats as strings) and ``summary()``
(also ``str()``) the printed table: per output the largest absolute, relative and ULP error and
``err/bound`` with where it occurred, per family its worst ``err/bound``, the eps probe, the
degenerate points, the reference's self-check figures, whether an N − 1 variance would have been
caught (the WARNING of "What the bound can and cannot catch" in :mod:`.crosscheck_bound`), notes,
NaN/inf problems and the RESULT line (PASS, FAIL or INCOMPLETE when the time budget ran out).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .crosscheck_bound import BESSEL_MARGIN, BOUND_FORMULA
from .crosscheck_inputs import SPARSE_NONZEROS

__all__ = ["CrosscheckResult", "OutputReport", "FamilyReport"]


def _jsonable(v):
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, dict):
        return {str(k): _jsonable(w) for k, w in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(w) for w in v]
    if isinstance(v, np.generic):
        return _jsonable(v.item())
    return v


@dataclass
class OutputReport:
    """Figures for one output (``y``, ``dx``, ``dgamma`` or ``dbeta``) over all points.

    ``max_abs``/``max_rel``/``max_ulp`` are maxima over every component of every point (relative
    error is ``inf`` where the reference is exactly 0 and the error is not).  ``max_ratio`` is the
    largest ``error / bound``; ``bound`` and ``worst`` describe the component where it occurred;
    ``ok`` is ``max_ratio <= 1``.  ``nonfinite`` counts NaN/inf components returned by the
    implementation (each is an infinite error, so ``ok`` is false if there is any).
    """

    name: str
    max_abs: float = 0.0
    max_rel: float = 0.0
    max_ulp: float = 0.0
    max_ratio: float = 0.0
    bound: float = 0.0
    ok: bool = True
    worst: dict = field(default_factory=dict)
    components: int = 0
    returned_dtypes: list = field(default_factory=list)
    nonfinite: int = 0

    def to_dict(self):
        return _jsonable({k: getattr(self, k) for k in (
            "name", "max_abs", "max_rel", "max_ulp", "max_ratio", "bound", "ok", "worst",
            "components", "returned_dtypes", "nonfinite")})


@dataclass
class FamilyReport:
    """Per-family maxima, each a dict keyed by output name."""

    name: str
    points: int = 0
    ok: bool = True
    max_ratio: dict = field(default_factory=dict)
    max_abs: dict = field(default_factory=dict)
    max_rel: dict = field(default_factory=dict)
    max_ulp: dict = field(default_factory=dict)

    def to_dict(self):
        return _jsonable({"name": self.name, "points": self.points, "ok": self.ok,
                          "max_ratio": dict(self.max_ratio), "max_abs": dict(self.max_abs),
                          "max_rel": dict(self.max_rel), "max_ulp": dict(self.max_ulp)})


@dataclass
class CrosscheckResult:
    """Outcome of :func:`crosscheck`.  ``ok`` is true iff every point was checked (``complete``)
    and every checked output is within bound.

    ``problems`` lists, one message per (point, output), where the implementation returned NaN or
    inf on a valid input point (scored as an infinite error).  ``notes`` lists arguments the
    functions wrote into (allowed).  ``bessel_ratios`` / ``bessel_ratio`` / ``bessel_caught``
    say whether an N − 1 variance would have been caught (:mod:`.crosscheck_bound`).  ``complete`` is
    false when the time ``budget`` ran out after ``points_checked`` points."""

    ok: bool
    outputs: dict
    families: dict
    reference_check: list
    dtype: str
    dps: int
    eps: float
    eps_used: float
    shape: tuple
    seed: int
    points: int
    user_points: int
    unit_roundoff: float
    bound_factor: float
    checked: tuple
    bessel_ratios: dict = field(default_factory=dict)
    forward_name: Optional[str] = None
    backward_name: Optional[str] = None
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    budget: Optional[float] = None
    complete: bool = True
    points_checked: int = 0
    eps_probe: Optional["FamilyReport"] = None
    eps_probe_value: Optional[float] = None
    eps_probe_family: Optional[str] = None
    degenerate_points: int = 0  # the constant-channel / gamma-zero points (channel-first crosscheck)
    degenerate: Optional["FamilyReport"] = None  # their figures (not in ``families``, like eps_probe)
    layer: Optional[str] = None
    group_size: Optional[int] = None

    @property
    def statistics_size(self) -> int:
        """Entries per statistics group (H·W without a layer)."""
        return self.group_size if self.group_size is not None else self.shape[1] * self.shape[2]

    @property
    def bessel_ratio(self) -> float:
        """The smallest of :attr:`bessel_ratios`: how far the least sensitive checked output
        would be off, in bounds, with an N − 1 variance."""
        return min(self.bessel_ratios.values(), default=math.inf)

    @property
    def bessel_caught(self) -> bool:
        """Whether this run would catch an N − 1 (Bessel-corrected) variance: true iff an exact
        N − 1 variance deviates by more than :data:`BESSEL_MARGIN` bounds somewhere (see
        "What the bound can and cannot catch" in :mod:`.crosscheck_bound`)."""
        return self.bessel_ratio > BESSEL_MARGIN

    def to_dict(self) -> dict:
        return _jsonable({
            "ok": self.ok,
            "checked": list(self.checked),
            "forward": self.forward_name,
            "backward": self.backward_name,
            "dtype": self.dtype,
            "dps": self.dps,
            "eps": self.eps,
            "eps_used": self.eps_used,
            "shape": list(self.shape),
            "layer": self.layer,
            "group_size": self.statistics_size,
            "seed": self.seed,
            "points": self.points,
            "user_points": self.user_points,
            "unit_roundoff": self.unit_roundoff,
            "bound": {
                "formula": BOUND_FORMULA,
                "c": self.bound_factor,
                "u": self.unit_roundoff,
                "growth": "sqrt(N); sqrt(k), k <= 8 nonzero entries per channel, for family sparse",
            },
            "bessel": {"ratio": self.bessel_ratio, "caught": self.bessel_caught,
                       "margin": BESSEL_MARGIN, "per_output": dict(self.bessel_ratios)},
            "problems": list(self.problems),
            "notes": list(self.notes),
            "budget": self.budget,
            "complete": self.complete,
            "eps_probe": (None if self.eps_probe is None else
                          {"eps": self.eps_probe_value, "family": self.eps_probe_family,
                           **self.eps_probe.to_dict()}),
            "degenerate": None if self.degenerate is None else self.degenerate.to_dict(),
            "points_checked": self.points_checked,
            "outputs": {k: v.to_dict() for k, v in self.outputs.items()},
            "families": {k: v.to_dict() for k, v in self.families.items()},
            "reference_check": list(self.reference_check),
        })

    def summary(self) -> str:
        lines = []
        what = "+".join(self.checked)
        lines.append(f"crosscheck [{what}]  " + (f"layer={self.layer}  " if self.layer else "")
                     + f"dtype={self.dtype}  dps={self.dps}  eps={self.eps!r} "
                     f"(as {self.dtype}: {self.eps_used!r})  shape={self.shape}  "
                     f"points={self.points}+{self.user_points} user+1 eps probe"
                     + (f"+{self.degenerate_points} degenerate" if self.degenerate_points else "")
                     + f"  seed={self.seed}")
        lines.append(f"bound: {BOUND_FORMULA}, c = {self.bound_factor}, "
                     f"u = {self.unit_roundoff:.3g} (family sparse: sqrt(k), k <= "
                     f"{SPARSE_NONZEROS} nonzero entries, for sqrt(N))")
        head = (f"{'output':<8}{'max_abs':>12}{'max_rel':>12}{'max_ulp':>12}{'err/bound':>12}"
                f"  {'worst at':<40}{'result':>7}")
        lines.append(head)
        lines.append("-" * len(head))
        for name, o in self.outputs.items():
            w = o.worst
            where = (f"{w.get('family')}#{w.get('point')} idx {tuple(w.get('index', ()))}"
                     if w else "-")
            lines.append(f"{name:<8}{o.max_abs:>12.3e}{o.max_rel:>12.3e}{o.max_ulp:>12.4g}"
                         f"{o.max_ratio:>12.3e}  {where:<40}{'PASS' if o.ok else 'FAIL':>7}")
        fams = ", ".join(f"{f.name}: {f.points} pt(s) {'ok' if f.ok else 'FAIL'} "
                         f"(worst err/bound {max(f.max_ratio.values(), default=0.0):.2e})"
                         for f in self.families.values())
        lines.append(f"families: {fams}")
        if self.eps_probe is not None and self.eps_probe.points:
            f = self.eps_probe
            lines.append(f"eps probe (1 {self.eps_probe_family} point at eps = {self.eps_probe_value!r}, to "
                         f"catch an ignored eps argument): {'ok' if f.ok else 'FAIL'} (worst "
                         f"err/bound {max(f.max_ratio.values(), default=0.0):.2e})")
        if self.degenerate is not None and self.degenerate.points:
            f = self.degenerate
            lines.append(f"degenerate points ({f.points}: a constant channel, gamma = 0, to catch branches "
                         f"on data): {'ok' if f.ok else 'FAIL'} (worst "
                         f"err/bound {max(f.max_ratio.values(), default=0.0):.2e})")
        for rc in self.reference_check:
            lines.append(f"reference self-check ({rc['family']}#{rc['point']}): "
                         f"|FD - <t,J^T g>| = {rc['fd_vs_vjp']:.1e}, "
                         f"|<Jt,g> - <t,J^T g>| = {rc['jvp_vs_vjp']:.1e} "
                         f"(threshold {rc['threshold']:.1e})"
                         + (f", per-group vs closed forms {rc['groups_vs_closed_forms']:.1e}"
                            if "groups_vs_closed_forms" in rc else ""))
        per = ", ".join(f"{k} {v:.3g}" for k, v in self.bessel_ratios.items())
        if self.bessel_caught:
            lines.append(f"N-1 (Bessel) variance: would be caught (an exact N-1 variance is off "
                         f"by > {BESSEL_MARGIN} x the bound in every output: {per})")
        else:
            weak = ", ".join(k for k, v in self.bessel_ratios.items() if not v > BESSEL_MARGIN)
            lines.append(f"WARNING: an N-1 (Bessel-corrected) variance could PASS this run: in "
                         f"{weak} it is off by only {self.bessel_ratio:.3g} x the bound (needs > "
                         f"{BESSEL_MARGIN}; {per}) at N = {self.statistics_size} in {self.dtype}"
                         + ("" if "sparse" in self.families else "; the 'sparse' family, which "
                            "catches it up to a much larger N, was not run")
                         + " -- use float64 or a smaller " + ("statistics group" if self.layer else "H*W")
                         + " to rule it out")
        for msg in self.notes:
            lines.append(f"note: {msg}")
        for msg in self.problems[:10]:
            lines.append(f"FAIL: {msg}")
        if len(self.problems) > 10:
            lines.append(f"... and {len(self.problems) - 10} more point(s) with NaN/inf")
        if not self.complete:
            lines.append(f"RESULT: INCOMPLETE: the time budget of {self.budget:g} s ran out after "
                         f"{self.points_checked} of {self.points + self.user_points + 1 + self.degenerate_points} points "
                         "(with the eps probe and the degenerate points) "
                         f"(not a PASS)")
            return "\n".join(lines)
        lines.append(f"RESULT: {'PASS' if self.ok else 'FAIL'}"
                     + ("" if self.bessel_caught or not self.ok
                        else " (with the N-1 variance WARNING above)"))
        return "\n".join(lines)

    __str__ = summary
