"""Scalar derivative facts behind sqrt-chain and inv-chain (exact symbolic differentiation).

The rules ``sqrt-chain`` and ``inv-chain`` of :mod:`.derivatives` rest on TorchLean's declared
derivatives of sqrtClamp (``sqrtClampFderivAt``: 1/(2·sqrt z) for z > 0, where
max(z, 0) = z) and inv (``invFderivAt``: −(w²)⁻¹ for w ≠ 0); nodeVarEps's z + ε has derivative 1.
Each is one obligation: ``sympy.diff`` of the scalar function, the difference to the declared f'
decided zero by the exact engine (no ``simplify()``).
"""
from __future__ import annotations

import time

import sympy
from sympy import Symbol

from ..certificate import Obligation
from .decision import engine_zero


SCALAR_OBLIGATIONS = ("rule_sqrtClamp_derivative", "rule_inv_derivative", "rule_addEps_derivative")


def _scalar_obligations() -> list[Obligation]:
    out = []
    z = Symbol("z", positive=True)
    w = Symbol("w", nonzero=True)
    e = Symbol("eps")
    facts = [
        ("rule_sqrtClamp_derivative",
         "For every real z > 0: max(z, 0) = z, so sqrtClamp(z) = sqrt(max(z,0)) = sqrt(z) near z, "
         "and d/dz sqrtClamp(z) = 1/(2·sqrt z), TorchLean's declared f' (justifies sqrt-chain)",
         lambda: (sympy.Max(z, 0) - z, sympy.diff(sympy.sqrt(sympy.Max(z, 0)), z)
                  - 1 / (2 * sympy.sqrt(z))),
         ["z > 0"], "sqrtClampFderivAt / hasDerivAt_sqrt_clamp_of_pos"),
        ("rule_inv_derivative",
         "For every real w ≠ 0: d/dw w⁻¹ = −(w²)⁻¹, TorchLean's declared f' (justifies inv-chain)",
         lambda: (sympy.diff(1 / w, w) + 1 / w ** 2,), ["w ≠ 0"], "invFderivAt"),
        ("rule_addEps_derivative",
         "For every real z: d/dz (z + ε) = 1, TorchLean's declared f' of nodeVarEps",
         lambda: (sympy.diff(w + e, w) - 1,), [], "elemwiseFderiv (f := z+ε)"),
    ]
    methods = {
        "rule_sqrtClamp_derivative": "sympy.diff of sqrt(Max(z, 0)) for a positive symbol z (Max(z, 0) "
                                     "evaluates to z), both differences decided zero by the exact engine",
        "rule_inv_derivative": "sympy.diff of 1/w, the difference decided zero by the exact engine",
        "rule_addEps_derivative": "sympy.diff of w + ε, the difference decided zero by the exact engine",
    }
    for name, statement, build, assumptions, lean in facts:
        start = time.perf_counter()
        diffs = build()
        ok = all(engine_zero(diffs))
        out.append(Obligation(
            name=name, statement=statement, status="proved" if ok else "undecided",
            method=methods[name] + " (exact symbolic differentiation; no simplify())",
            assumptions=assumptions, lean_name=lean, seconds=time.perf_counter() - start,
            group="scalar rules", detail=None if ok else "not decided"))
    return out
