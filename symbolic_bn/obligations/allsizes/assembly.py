"""The all-sizes certificate of a layer: every claim in order, decided (:func:`prove_all_sizes`).

Where the calculus carries over, and where it does not
-----------------------------------------------------
* It carries over to every layer for: the index-level derivatives, the node-kind laws (VJP = Jᵀδ,
  JVP = J·t) of every kind the row form uses -- broadcastCol and gather included --, output-only
  backprop through the row-form stages = the per-group closed form (dx, dγ, dβ), Jᵀg computed from
  the index-level derivative = the closed form, the closed-form JVP (from ∂y and stagewise), the
  dot-product identity over the whole context, and group independence (the Jacobian from x is block
  diagonal over groups; from γ and β it is ∂y[c,p]/∂γ[j] = [π(c,p) = j]·x̂[c,p]).
* Elementwise γ (layer_norm, rms_norm, and group_norm's per-channel γ inside a group) needs no new
  argument: γ[π(c,p)] is an input family indexed by the position, and the closed form is the BN
  one with g replaced by γ⊙g; dγ[j] is a sum over the groups (R rows, or the B samples and S
  positions) that share the entry -- a symbolic sum over the group range, decided like the others.
* The per-group dot-product identity (one group's ⟨Jt, g⟩ = ⟨t, Jᵀg⟩) holds only where γ and β
  are per group (batchnorm_channel_first, batch_norm); for shared parameters only the whole-context
  identity is a statement, and only it is proved.
* Not modeled at symbolic sizes: the layout stages (permute/reshape between the layer's layout and
  the row form, and the concrete index arithmetic of a gather, e.g. row n·C + c reads channel c)
  -- they are bijections of index sets, taken as the identity on (c, p) here; their laws and the
  assembled graph are proved at concrete shapes by ``prove(layer)``.  Also not covered: a
  layer_norm/rms_norm normalized_shape of several axes is its flattening (a bijection, so exact,
  but the per-axis structure is not shown), full-context seeds on intermediate slots, the
  totalized behaviour where var + ε ≤ 0, and sizes 0.
* Summation order: Σ_{(n,s)} is the nested Σ_n Σ_s; nested sums over different ranges are brought
  to one order (B, C, G, R, K, S, N: rule sum-swap, finite sums), so both orders of a claim get
  the same normal form.
"""
from __future__ import annotations

import time

from ..certificate import Certificate
from ...exact.budget import check_budget
from .claim import Claim
from .closed_forms import ClosedForm, standard_closed_form
from .derivative_claims import _lemma_claims
from .graph_claims import _all_channel_claims, _graph_claims
from .node_claims import _channel_block_claims, _stage_claims, _stage_jvp_claims
from .node_rules import JVP_RULES, VJP_RULES
from .scalar_rules import _scalar_obligations, SCALAR_OBLIGATIONS
from .size_models import size_model, SizeModel
from .terms import EPS
from .verdict import run_claim


def claims(closed_form: ClosedForm | None = None, vjp_rules: dict | None = None,
           jvp_rules: dict | None = None, layer=None) -> list[Claim]:
    """Every parametric claim of ``layer`` (default batchnorm_channel_first), in certificate order."""
    spec = layer if isinstance(layer, SizeModel) else size_model(layer)
    cf = closed_form or standard_closed_form(spec)
    return (_lemma_claims(spec) + _stage_claims(spec, vjp_rules) + _stage_jvp_claims(spec, jvp_rules)
            + _graph_claims(spec, cf, vjp_rules, jvp_rules)
            + _channel_block_claims(spec) + _all_channel_claims(spec, cf, vjp_rules, jvp_rules))


def prove_all_sizes(layer=None, budget: float | None = 60.0, *, closed_form: ClosedForm | None = None,
                    vjp_rules: dict | None = None, jvp_rules: dict | None = None,
                    sizes=range(1, 7), only=None) -> Certificate:
    """Certificate "<layer>, all sizes": every obligation for symbolic group size and number of
    groups (module docstring), each confirmed at concrete sizes.

    ``layer``: a :class:`symbolic_bn.layers.Layer` (its kind and ε are used, not its shape), a
    layer name, or None -- TorchLean's batchnorm_channel_first (symbolic C and N = H·W).
    ``budget``: seconds per obligation (``None`` or ``math.inf``: unbounded; see
    :func:`symbolic_bn.exact.budget.check_budget`).  ``closed_form``: the closed form to
    check (default :func:`standard_closed_form` of the layer).  ``vjp_rules``: overrides of
    :data:`VJP_RULES` by node kind, ``jvp_rules`` of :data:`JVP_RULES` (so that tests can pass
    wrong rules).  ``sizes``: the concrete group sizes of the confirmation.  ``only``: names of
    the obligations to run.
    """
    spec = size_model(layer)
    budget = check_budget(budget)
    if closed_form is not None and not isinstance(closed_form, ClosedForm):
        raise ValueError(f"closed_form must be a ClosedForm, got {type(closed_form).__name__}")
    if vjp_rules is not None:
        if not isinstance(vjp_rules, dict) or not set(vjp_rules) <= set(VJP_RULES):
            raise ValueError(f"vjp_rules must be a dict with keys among {sorted(VJP_RULES)}")
    if jvp_rules is not None:
        if not isinstance(jvp_rules, dict) or not set(jvp_rules) <= set(JVP_RULES):
            raise ValueError(f"jvp_rules must be a dict with keys among {sorted(JVP_RULES)}")
    sizes = list(sizes)
    if not sizes or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes):
        raise ValueError(f"sizes must be a non-empty list of ints ≥ 1, got {sizes!r}")
    start = time.perf_counter()
    cf = closed_form or standard_closed_form(spec)
    params = ({"N": "symbolic, N = H·W ≥ 1", "C": "symbolic, C ≥ 1"}
              if spec.layer == "batchnorm_channel_first" else
              {"layer": spec.layer, "group": spec.group_assumption, "positions": spec.size_assumption})
    params.update({"legend": spec.legend, "eps": "symbolic ε" if spec.eps == EPS else str(spec.eps),
                   ("confirmed_at_N" if spec.layer == "batchnorm_channel_first" else "confirmed_at_group_sizes"): sizes,
                   "closed_form": cf.name, "budget_per_obligation_s": budget})
    cert = Certificate(subject=spec.title, parameters=params)
    all_claims = claims(cf, vjp_rules, jvp_rules, layer=spec)
    selected = None
    if only is not None:
        if isinstance(only, str):
            only = [only]
        selected = set(only)
        unknown = selected - set(SCALAR_OBLIGATIONS) - {cl.name for cl in all_claims}
        if unknown:
            raise ValueError(f"only names unknown obligations: {sorted(unknown)}")
    for ob in _scalar_obligations():
        if selected is None or ob.name in selected:
            cert.add(ob)
    for claim in all_claims:
        if selected is None or claim.name in selected:
            cert.add(run_claim(claim, budget=budget, sizes=sizes))
    cert.seconds = time.perf_counter() - start
    return cert
