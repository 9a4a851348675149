"""Inference BatchNorm bounds: IBP, affine, derivative and second-derivative propagation.

At inference BatchNorm is the per-channel affine map (TorchLean ``computeScale`` /
``computeOffset``, ``NN/MLTheory/CROWN/Operators/Batchnorm.lean``)::

    y = γ (x − μ) / sqrt(max(σ², 0) + ε) + β = scale · x + offset
    scale  = γ / sqrt(max(σ², 0) + ε)
    offset = β − γ · μ / sqrt(max(σ², 0) + ε)      (the graph engine writes β − μ · scale)

This module is the map of the implementation; it re-exports every name it defined before it was
split into one module per concept (the public ones, ``__all__``, are what ``symbolic_bn.bounds``
exports; the private ones are listed in ``_MOVED``).  To monkeypatch a name, patch the module that
defines it: a name rebound here does not reach the code.

* :mod:`~symbolic_bn.bounds.rules` -- the formulas and bound rules (``compute_scale``,
  ``compute_offset``, ``bn_forward``, ``ibp_rule``, ``affine_rule``, ``deriv_rule``,
  ``second_deriv_rule``, ``DEFAULT_RULES``, ``NUMPY_OPS``, ``SYMPY_OPS``);
* :mod:`~symbolic_bn.bounds.inputs` -- validation of user numbers and arrays, the number modes
  (float and exact containers), exact signs;
* :mod:`~symbolic_bn.bounds.params` -- ``BatchNormParams`` (totalization, ``from_torch``);
* :mod:`~symbolic_bn.bounds.propagate` -- ``scale``, ``offset``, ``ibp``, ``deriv``,
  ``second_deriv``, ``affine`` (round-to-nearest float64 or exact; ``ROUNDINGS``);
* :mod:`~symbolic_bn.bounds.outward` -- ``rounding='outward'``: outward-rounded arithmetic and the
  float-sound box;
* :mod:`~symbolic_bn.bounds.proof_symbols` -- the proofs' symbols (R = sqrt(max(σ², 0) + ε) > 0),
  zero test and assumptions (``LEAN_FILE``);
* :mod:`~symbolic_bn.bounds.box_proofs` -- soundness and exactness of the IBP, derivative and
  second-derivative box rules per sign case of γ;
* :mod:`~symbolic_bn.bounds.identity_proofs` -- the identity obligations (scale/offset form,
  affine composition, Jacobian, Hessian, chain rules);
* :mod:`~symbolic_bn.bounds.certify` -- ``prove``: the certificate of all of them.
"""
from __future__ import annotations

from . import box_proofs, certify, identity_proofs, inputs, outward, proof_symbols, propagate, rules
from .certify import prove
from .params import BatchNormParams
from .propagate import affine, deriv, ibp, offset, scale, second_deriv
from .rules import (DEFAULT_RULES, NUMPY_OPS, SYMPY_OPS, affine_rule, bn_forward, compute_offset,
                    compute_scale, deriv_rule, ibp_rule, second_deriv_rule)

__all__ = [
    "BatchNormParams", "scale", "offset", "ibp", "affine", "deriv", "second_deriv", "prove",
    "compute_scale", "compute_offset", "bn_forward", "ibp_rule", "affine_rule", "deriv_rule",
    "second_deriv_rule", "DEFAULT_RULES", "NUMPY_OPS", "SYMPY_OPS",
]

# The other names this module defined before the split, by the module that now defines them.
_MOVED = {
    rules: ("_Ops", "_select"),
    inputs: ("_is_exact_scalar", "_check_scalar", "_exact_of", "_fraction_of", "_sign",
             "_exact_sign", "_as_array", "_exact_array"),
    propagate: ("ROUNDINGS", "_check_params", "_check_rounding", "_scale_offset", "_check_box",
                "_box_op"),
    outward: ("_DBL_MAX", "_round_down", "_round_up", "_sqrt_enclosure", "_channel_enclosures",
              "_mul_bounds", "_add_down", "_add_up", "_outward_box"),
    proof_symbols: ("_DENOM_ASSUMPTION", "_REAL_ASSUMPTION", "_R_METHOD", "LEAN_FILE", "_Channel",
                    "_concrete_channel", "_scale_of", "_offset_of", "_forward",
                    "_positive_monomial", "_Undecided", "_PASS_THROUGH", "_raised", "_is_zero",
                    "_R"),
    box_proofs: ("_GAMMAS", "_MEANS", "_BETAS", "_VAR_EPS", "_BOXES", "_CASES", "_box_grid",
                 "_targets", "_eval_box_rule", "_box_counterexample", "_linear_certificate",
                 "_prove_box_sound", "_exact_sign_or_none", "_prove_box_exact"),
    identity_proofs: ("_ID_GRID", "_VEC_VALUES", "_prove_identity", "_identity_obligations"),
    certify: ("_BOX_KINDS", "_run", "_add_box_obligations"),
}
for _module, _names in _MOVED.items():
    globals().update({_name: getattr(_module, _name) for _name in _names})
del _module, _names
