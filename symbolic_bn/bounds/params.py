"""Frozen inference BatchNorm parameters (:class:`BatchNormParams`, TorchLean ``BatchNormParams``),
validated, with their denoted exact, float64 and rational values and ``from_torch``.

**Totalization.**  Exactly as TorchLean, a negative running variance is clamped: the denominator is
``sqrt(max(σ², 0) + ε)`` (so ``σ² = −4, ε = 1`` gives the denominator 1).  The parameters are
accepted only when ``max(σ², 0) + ε > 0`` in every channel (TorchLean would divide by zero, or take
the square root of a negative number, otherwise).

Bad input (mismatched lengths, no channel, a non-number, NaN or inf, ``max(σ², 0) + ε ≤ 0``)
raises ``ValueError`` saying which argument and what is wrong.  Number modes (float or exact
container): :mod:`symbolic_bn.bounds.inputs`.
"""
from __future__ import annotations

import numpy as np
import sympy

from .inputs import _check_scalar, _exact_of, _exact_sign, _fraction_of, _is_exact_scalar


class BatchNormParams:
    """Frozen inference BatchNorm parameters of C channels (TorchLean ``BatchNormParams``).

    ``running_mean``, ``running_var``, ``gamma``, ``beta``: 1-D sequences of C finite reals;
    ``eps``: a finite real.  Validated: equal lengths (C ≥ 1), finite real values, and
    ``max(running_var[c], 0) + eps > 0`` for every channel (decided exactly on the denoted values;
    a negative running variance is allowed and totalized to 0, as in TorchLean).

    ``exact`` is True when any value is a Fraction or SymPy number (see the module docstring).
    """

    FIELDS = ("running_mean", "running_var", "gamma", "beta")

    def __init__(self, running_mean, running_var, gamma, beta, eps):
        vectors = {}
        for name, value in zip(self.FIELDS, (running_mean, running_var, gamma, beta)):
            try:
                ndim = np.ndim(value)
            except (ValueError, TypeError):
                ndim = None
            if isinstance(value, (str, bytes)) or ndim != 1:
                raise ValueError(f"{name} must be a 1-D sequence of per-channel values, got "
                                 f"{'a string' if isinstance(value, (str, bytes)) else repr(value)}")
            seq = list(value.tolist() if isinstance(value, np.ndarray) and value.dtype.kind != "O"
                       else value)
            vectors[name] = tuple(_check_scalar(v, f"{name}[{i}]") for i, v in enumerate(seq))
        lengths = {name: len(v) for name, v in vectors.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError("mismatched lengths: " + ", ".join(f"{k} has {n}" for k, n in lengths.items())
                             + "; all four must have one entry per channel")
        if lengths["gamma"] == 0:
            raise ValueError("the parameters must have at least one channel (got length 0)")
        if np.ndim(eps) != 0 or isinstance(eps, (str, bytes, list, tuple)):
            raise ValueError(f"eps must be a single real number, got {eps!r}")
        if isinstance(eps, np.ndarray):
            eps = eps.item()
        eps = _check_scalar(eps, "eps")
        self._v = vectors
        self._eps = eps
        self._exact = any(_is_exact_scalar(v) for vals in vectors.values() for v in vals) or \
            _is_exact_scalar(eps)
        # max(var, 0) + eps > 0, decided exactly on the denoted values
        e = self._exact_values()
        for c in range(self.dim):
            var = e["running_var"][c]
            clamped = var if _exact_sign(var, f"running_var[{c}]") > 0 else sympy.Integer(0)
            denom = clamped + e["eps"]
            if _exact_sign(denom, f"max(running_var[{c}], 0) + eps") <= 0:
                raise ValueError(
                    f"max(running_var[{c}], 0) + eps = {denom} must be > 0 (running_var[{c}] = "
                    f"{self._v['running_var'][c]}, eps = {self._eps}); the BatchNorm denominator "
                    f"sqrt(max(var, 0) + eps) would be zero or undefined")

    # -- read-only views ---------------------------------------------------------------------
    running_mean = property(lambda self: self._v["running_mean"])
    running_var = property(lambda self: self._v["running_var"])
    gamma = property(lambda self: self._v["gamma"])
    beta = property(lambda self: self._v["beta"])
    eps = property(lambda self: self._eps)
    dim = property(lambda self: len(self._v["gamma"]))
    exact = property(lambda self: self._exact)

    def __repr__(self) -> str:
        return (f"BatchNormParams(running_mean={list(self.running_mean)}, running_var="
                f"{list(self.running_var)}, gamma={list(self.gamma)}, beta={list(self.beta)}, "
                f"eps={self.eps})")

    @classmethod
    def from_torch(cls, module) -> "BatchNormParams":
        """Parameters of an eval-mode ``torch.nn.BatchNorm{1,2,3}d`` (as float64 values; float32
        parameters convert exactly)."""
        if getattr(module, "running_mean", None) is None or getattr(module, "running_var", None) is None:
            raise ValueError("module has no running statistics (track_running_stats=False?)")

        def vec(t):
            return t.detach().cpu().double().numpy()
        C = module.running_mean.shape[0]
        gamma = vec(module.weight) if getattr(module, "weight", None) is not None else np.ones(C)
        beta = vec(module.bias) if getattr(module, "bias", None) is not None else np.zeros(C)
        return cls(vec(module.running_mean), vec(module.running_var), gamma, beta, float(module.eps))

    # -- denoted values ----------------------------------------------------------------------
    def _exact_values(self) -> dict:
        out = {k: [_exact_of(v, self._exact, f"{k}[{i}]") for i, v in enumerate(vals)]
               for k, vals in self._v.items()}
        out["eps"] = _exact_of(self._eps, self._exact, "eps")
        return out

    def _float_values(self) -> dict:
        assert not self._exact
        try:
            out = {k: np.array([float(v) for v in vals], dtype=np.float64) for k, vals in self._v.items()}
            out["eps"] = float(self._eps)
        except OverflowError:
            raise ValueError("a parameter is an int too large for float64") from None
        return out

    def _fraction_values(self) -> dict:
        out = {k: [_fraction_of(v, self._exact, f"{k}[{i}]") for i, v in enumerate(vals)]
               for k, vals in self._v.items()}
        out["eps"] = _fraction_of(self._eps, self._exact, "eps")
        return out
