"""The inference BatchNorm formulas and bound rules, written once for NumPy floats, SymPy numbers
and symbols.

At inference BatchNorm is the per-channel affine map (TorchLean ``computeScale`` /
``computeOffset``, ``NN/MLTheory/CROWN/Operators/Batchnorm.lean``)::

    y = γ (x − μ) / sqrt(max(σ², 0) + ε) + β = scale · x + offset
    scale  = γ / sqrt(max(σ², 0) + ε)
    offset = β − γ · μ / sqrt(max(σ², 0) + ε)      (the graph engine writes β − μ · scale)

The ``max(σ², 0)`` is TorchLean's totalization of a negative running variance (see
:mod:`symbolic_bn.bounds.params`).

**Rules** (one channel; ``s`` = scale, ``o`` = offset; TorchLean's strict ``s > 0`` test, so
``s = 0`` takes the else branch, where both branches agree anyway)::

    ibp:          lo' = s>0 ? s·lo + o : s·hi + o     hi' = s>0 ? s·hi + o : s·lo + o
    affine:       A'  = diag(s) A                     c'  = s ⊙ c + o
    deriv:        lo' = s>0 ? s·dlo : s·dhi           hi' = s>0 ? s·dhi : s·dlo
    second_deriv: the deriv rule, because d²/dt² BN(x(t)) = s · x''(t)

The rules are the module-level functions :func:`ibp_rule`, :func:`affine_rule`,
:func:`deriv_rule`, :func:`second_deriv_rule`, :func:`compute_scale` and :func:`compute_offset`;
the public functions ``ibp``, ``affine``, ``deriv``, ``second_deriv``, ``scale``, ``offset``
(:mod:`symbolic_bn.bounds.propagate`) call exactly these, and ``prove``
(:mod:`symbolic_bn.bounds.certify`) proves them (or any replacement passed in ``rules=``)
symbolically, so the proofs are about the code that runs.  :data:`DEFAULT_RULES` names them by
the keys ``prove(rules=...)`` takes.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import sympy


class _Ops:
    """The two non-field operations the formulas use (``sqrt`` and ``maximum``)."""

    def __init__(self, name: str, sqrt: Callable, maximum: Callable):
        self.name, self.sqrt, self.maximum = name, sqrt, maximum

    def __repr__(self) -> str:
        return f"<ops {self.name}>"


NUMPY_OPS = _Ops("numpy", np.sqrt, np.maximum)
SYMPY_OPS = _Ops("sympy", sympy.sqrt, lambda a, b: sympy.Max(a, b))


def compute_scale(gamma, var, eps, ops=SYMPY_OPS):
    """TorchLean ``computeScale``: ``γ / sqrt(max(σ², 0) + ε)``."""
    return gamma / ops.sqrt(ops.maximum(var, 0) + eps)


def compute_offset(gamma, beta, mean, var, eps, ops=SYMPY_OPS):
    """TorchLean ``computeOffset``: ``β − γ · μ / sqrt(max(σ², 0) + ε)``."""
    return beta - gamma * mean / ops.sqrt(ops.maximum(var, 0) + eps)


def bn_forward(x, mean, var, gamma, beta, eps, ops=SYMPY_OPS):
    """The inference forward pass as TorchLean's IR evaluates it
    (``batchNorm2dNchwEvalScalar``): ``((x − μ) / sqrt(max(σ², 0) + ε)) · γ + β``."""
    return ((x - mean) / ops.sqrt(ops.maximum(var, 0) + eps)) * gamma + beta


def _select(cond, a, b):
    """``cond ? a : b`` for a Python/NumPy bool or elementwise for a boolean array."""
    if isinstance(cond, np.ndarray):
        return np.where(cond, a, b)
    return a if bool(cond) else b


def ibp_rule(s, o, lo, hi, sign):
    """TorchLean ``ibpBatchnorm``.  ``sign`` is the exact sign of ``s`` (−1, 0 or 1, or an array of
    them); the branch test is TorchLean's strict ``s > 0``."""
    pos = sign > 0
    return _select(pos, s * lo + o, s * hi + o), _select(pos, s * hi + o, s * lo + o)


def affine_rule(s, o, A, c):
    """TorchLean ``affBatchnorm``: ``A' = diag(s) A``, ``c' = s ⊙ c + o`` (``s``, ``o``, ``c`` of
    length C, ``A`` of shape C×n, all NumPy arrays)."""
    return s[:, None] * A, s * c + o


def deriv_rule(s, o, dlo, dhi, sign):
    """TorchLean ``derivBatchnorm``: ``s·[dlo, dhi]`` with the endpoints swapped unless ``s > 0``.
    (``o`` is unused: the derivative of an affine map has no offset.)"""
    pos = sign > 0
    return _select(pos, s * dlo, s * dhi), _select(pos, s * dhi, s * dlo)


def second_deriv_rule(s, o, lo, hi, sign):
    """TorchLean ``secondDerivBatchnorm``: the derivative rule, since d²/dt² BN(x(t)) = s·x''(t)."""
    return deriv_rule(s, o, lo, hi, sign)


DEFAULT_RULES = {
    "scale": compute_scale,
    "offset": compute_offset,
    "ibp": ibp_rule,
    "affine": affine_rule,
    "deriv": deriv_rule,
    "second_deriv": second_deriv_rule,
}
