"""The closed forms the certificate checks backprop and the JVP against.

:data:`STANDARD_CLOSED_FORM` is Spec.batchNorm2dBackward / Spec.batchNorm2dJvp (torchlean.md
§5.4) for batchnorm_channel_first; every other layer is checked against the same per-group form
with γ⊙g (:data:`GROUP_CLOSED_FORM`; without centering, :data:`RMS_CLOSED_FORM`).

A closed form or rule is a Python function: what is proved is the expression it builds for the
*symbolic* sizes (and confirmed at the concrete sizes), so a function that branches on the value
of a size (``if M.N == 7: ...``; SymPy's structural ``==`` is False for the symbol) is only covered
where the branch it takes for the symbol is the one it takes at that size -- a branch taken only at
some size outside the confirmation sizes is not seen.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from .size_models import SizeModel


@dataclass(frozen=True)
class ClosedForm:
    """A closed form to check.  Each field is a function of a :class:`Model` ``M`` and indices:
    ``dx(M, c, q)``, ``dgamma(M, j)``, ``dbeta(M, j)`` (j a weight index; for the cotangent
    ``M.g``) and ``jvp(M, c, p)`` (for the tangents ``M.t``, ``M.tgamma``, ``M.tbeta``).
    ``dbeta`` is not used for a layer without β (rms_norm)."""

    name: str
    dx: Callable
    dgamma: Callable
    dbeta: Callable
    jvp: Callable


def _cf_dx(M, c, q):
    return (M.gamma(c) * M.r(c) * M.Ninv
            * (M.N * M.g(c, q) - M.sum(lambda j: M.g(c, j))
               - M.xhat(c, q) * M.sum(lambda j: M.g(c, j) * M.xhat(c, j))))


def _cf_dgamma(M, c):
    return M.sum(lambda j: M.g(c, j) * M.xhat(c, j))


def _cf_dbeta(M, c):
    return M.sum(lambda j: M.g(c, j))


def _cf_jvp(M, c, p):
    return (M.gamma(c) * M.r(c)
            * (M.t(c, p) - M.Ninv * M.sum(lambda j: M.t(c, j))
               - M.xhat(c, p) * M.Ninv * M.sum(lambda j: M.t(c, j) * M.xhat(c, j)))
            + M.xhat(c, p) * M.tgamma(c) + M.tbeta(c))


#: Spec.batchNorm2dBackward / Spec.batchNorm2dJvp (torchlean.md §5.4)
STANDARD_CLOSED_FORM = ClosedForm(
    name="Spec.batchNorm2dBackward / batchNorm2dJvp (§5.4)",
    dx=_cf_dx, dgamma=_cf_dgamma, dbeta=_cf_dbeta, jvp=_cf_jvp)


def _gg(M, c, p):
    return M.gamma_at(c, p) * M.g(c, p)


def _gen_dx(M, c, q):
    if M.spec.centered:
        return (M.r(c) * M.Ninv * (M.N * _gg(M, c, q) - M.sum(lambda j: _gg(M, c, j))
                                   - M.xhat(c, q) * M.sum(lambda j: _gg(M, c, j) * M.xhat(c, j))))
    return M.r(c) * (_gg(M, c, q) - M.Ninv * M.xhat(c, q) * M.sum(lambda j: _gg(M, c, j) * M.xhat(c, j)))


def _gen_dgamma(M, j):
    return M.param_sum(j, lambda c, p: M.g(c, p) * M.xhat(c, p))


def _gen_dbeta(M, j):
    return M.param_sum(j, lambda c, p: M.g(c, p))


def _gen_jvp(M, c, p):
    t = M.t
    core = t(c, p) - M.xhat(c, p) * M.Ninv * M.sum(lambda j: t(c, j) * M.xhat(c, j))
    if M.spec.centered:
        core = core - M.Ninv * M.sum(lambda j: t(c, j))
    out = M.gamma_at(c, p) * M.r(c) * core + M.xhat(c, p) * M.tgamma(M.param(c, p))
    return out + M.tbeta(M.param(c, p)) if M.spec.bias else out


#: The per-group closed form of every layer: dx = (r/N)(N·γg − Σ_p γg − x̂·Σ_p γg·x̂) with γg = γ_π⊙g
#: (rms_norm: r(γg − x̂·Σ_p γg·x̂/N)), dγ_j = Σ_{π(c,p)=j} g·x̂, dβ_j = Σ_{π(c,p)=j} g, and the JVP
#: γ_π·r·(t − mean(t) − x̂·mean(t⊙x̂)) + x̂·tγ_π + tβ_π (rms_norm: without mean(t) and tβ).
GROUP_CLOSED_FORM = ClosedForm(
    name="per-group closed form (dx = (r/N)(N·γg − Σγg − x̂·Σγg·x̂), dγ = Σ g·x̂, dβ = Σ g over the "
         "positions sharing the weight)", dx=_gen_dx, dgamma=_gen_dgamma, dbeta=_gen_dbeta, jvp=_gen_jvp)


#: the same functions, named with rms_norm's formulas (they branch on ``M.spec.centered``)
RMS_CLOSED_FORM = replace(
    GROUP_CLOSED_FORM, name="per-group closed form without centering (dx = r(γg − x̂·Σγg·x̂/N), dγ = Σ g·x̂ "
                            "over the positions sharing the weight)")


def standard_closed_form(spec: SizeModel) -> ClosedForm:
    """The closed form a layer's certificate checks by default."""
    if spec.layer == "batchnorm_channel_first":
        return STANDARD_CLOSED_FORM
    return GROUP_CLOSED_FORM if spec.centered else RMS_CLOSED_FORM
