"""Proofs for every size: each normalization layer's identities with symbolic group size and number of groups.

A check at one shape (say 2×3×3) is evidence for that shape only.  This package proves, for a
*symbolic* size of the statistics groups and a *symbolic* number of groups, the per-group
identities (derivatives, VJP/JVP of every node kind, backprop = closed form, the closed-form JVP,
the dot-product identity) and the independence of the groups, so that one certificate covers
every shape of a layer.  ``prove_all_sizes(layer)`` takes a :class:`symbolic_bn.layers.Layer` (only
its kind and its ε are used: the sizes are symbolic) or a layer name; ``prove_all_sizes()`` is
TorchLean's ``batchnorm_channel_first`` (symbolic C, N = H·W), as before.

Modules (each imports only those above it; ``terms`` imports ``decision`` lazily):

=================  ===========================================================================
terms              index ranges, rewrite rules and their log; indices, atoms, normal forms, sums
derivatives        exact differentiation (deriv-atom, deriv-sum, deriv-poly, sqrt-/inv-chain)
decision           exact zero decision on the engine: decide_nf, engine_zero, engine_differ
backends           SymbolicBackend (normal forms), ConcreteBackend (explicit symbols), instantiate
size_models        each layer's groups, positions, weight index, row-form stages (SIZE_MODELS)
layer_model        LayerBackend (a backend in a layer's indices) and Model (forward quantities)
node_rules         FORWARD/VJP/JVP_RULES per node kind; forward, backprop, jvp through the graph
closed_forms       ClosedForm and the closed forms checked by default
claim              Claim: a parametric statement lhs == rhs; inexact sides refused
confirmation       confirmation at concrete sizes (confirmation_grid), exact counterexamples
side_conditions    are the σ/ι conditions a decision used implied by the stated hypotheses?
covers             which radicands a layer's (or a node's) stated domain makes positive
verdict            run_claim: one claim's verdict as an Obligation
scalar_rules       the scalar derivative facts behind sqrt-chain and inv-chain
node_claims        per node kind: VJP = Jᵀδ, JVP = J·t, channel blocks
derivative_claims  index-level derivative lemmas of the forward quantities
graph_claims       whole graph: end to end per group, and across groups
assembly           claims() in certificate order and prove_all_sizes(); what the certificate covers
=================  ===========================================================================

Public API (re-exported here): :func:`prove_all_sizes`, :func:`size_model`, :data:`SIZE_MODELS`,
:class:`SizeModel`, :class:`LayerBackend`, :class:`ClosedForm`, :data:`STANDARD_CLOSED_FORM`,
:func:`standard_closed_form`, :data:`VJP_RULES`, :data:`JVP_RULES`, :data:`STAGES`, :data:`RULES`,
:data:`RANGES`, the backends :class:`SymbolicBackend` / :class:`ConcreteBackend`, :class:`Model`,
:class:`Ix`, :func:`decide_nf`, :func:`engine_zero`, :func:`instantiate`.  The private names the
tests use are re-exported too; a rewrite rule is replaced (monkeypatched) in the module that
defines it (``terms._size``, ``derivatives._sqrt_chain``, ...), not here.
"""
from . import closed_forms, confirmation, covers, size_models, terms
from .assembly import claims, prove_all_sizes
from .backends import ConcreteBackend, SymbolicBackend, concrete_symbol, instantiate
from .claim import Claim
from .closed_forms import STANDARD_CLOSED_FORM, ClosedForm, standard_closed_form
from .confirmation import confirmation_grid
from .decision import decide_nf, engine_differ, engine_zero
from .derivatives import diff
from .layer_model import LayerBackend, Model
from .node_rules import FORWARD_RULES, JVP_RULES, VJP_RULES, backprop, forward, jvp
from .size_models import SIZE_MODELS, STAGES, SizeModel, size_model
from .terms import (C_SYM, EPS, N_SYM, RANGES, RULES, Ix, ZeroBase, at, delta, normalize,
                    recording, subs_ix, sum_over)
from .verdict import run_claim

__all__ = [
    "Ix", "SymbolicBackend", "ConcreteBackend", "LayerBackend", "Model", "ClosedForm",
    "STANDARD_CLOSED_FORM", "standard_closed_form", "SizeModel", "SIZE_MODELS", "size_model",
    "STAGES", "VJP_RULES", "JVP_RULES", "FORWARD_RULES", "RULES", "RANGES", "N_SYM", "C_SYM", "EPS",
    "decide_nf", "engine_zero", "engine_differ", "instantiate", "normalize", "sum_over",
    "prove_all_sizes", "backprop", "jvp", "forward", "claims", "run_claim", "Claim", "recording",
    "diff", "subs_ix", "at", "delta", "confirmation_grid", "concrete_symbol", "ZeroBase",
]

# names outside __all__ that the tests read, bound here as in the former single module (for reading:
# to replace one, patch the module that defines it)
GROUP_CLOSED_FORM = closed_forms.GROUP_CLOSED_FORM
_ATOMS, _RANGE_ORDER, _fresh, _inv_atom, _kind = (
    terms._ATOMS, terms._RANGE_ORDER, terms._fresh, terms._inv_atom, terms._kind)
_DOMAIN, _SIZE_ASSUMPTION = size_models._DOMAIN, size_models._SIZE_ASSUMPTION
_cf_dx, _cf_dgamma, _cf_jvp = closed_forms._cf_dx, closed_forms._cf_dgamma, closed_forms._cf_jvp
_concrete_backend, _env = confirmation._concrete_backend, confirmation._env
_generic_cover = covers._generic_cover
