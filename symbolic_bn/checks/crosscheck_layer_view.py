r"""A layer of :mod:`symbolic_bn.layers` as the cross-check sees it: its statistics groups.

``crosscheck(..., layer=L)`` checks ``L`` in its own layout.  This module maps that layout to what
the C×H×W path has per channel: the members of every statistics group (C order), the weight
entry used at each member, the group's matrix for the point families (the width is the
innermost input axis when the group runs along it: batchnorm_channel_first gets its H × W,
batch_norm (N, C, H, W) an (N·H) × W matrix per channel), the longest sum a correct
implementation forms (the ``N`` of the bound's √N: the group size, or the number of positions
sharing a weight entry, whichever is larger; ``sparse``: the nonzero terms when every group has
one weight entry), and the users' ``inputs`` dicts in the layer's argument names.  The families
themselves: :mod:`.crosscheck_inputs`.
"""
from __future__ import annotations

import numpy as np

from .crosscheck_inputs import _gen_grad, family_values, prepare_inputs

__all__ = []


class _LayerView:
    """A layer (:mod:`symbolic_bn.layers`) seen as its statistics groups.

    ``groups[G, n]`` holds the flat input index of each member of each group (C order), and
    ``param[G, n]`` the flat weight index applied there.  For the point families each group is
    laid out as a ``matrix[1] × matrix[2]`` matrix, the width being the length of the innermost
    input axis when the group's members run along it (so ``batchnorm_channel_first`` gets its
    H × W, and ``batch_norm`` (N, C, H, W) an (N·H) × W matrix per channel)."""

    def __init__(self, layer):
        shape = tuple(layer.input_shape)
        self.layer = layer
        self.shape = shape
        self.weight_shape = tuple(layer.weight_shape)
        self.has_bias = layer.bias_shape is not None
        self.centered = bool(layer.centered)
        self.arg_names = tuple(layer.argument_names)
        self.grad_names = tuple("d" + a for a in self.arg_names)
        members = list(layer.members.values())
        self.groups = np.array([[np.ravel_multi_index(idx, shape) for idx in m] for m in members],
                               dtype=np.int64)
        flat_param = np.array([np.ravel_multi_index(tuple(layer.param_of(idx)), self.weight_shape)
                               for idx in np.ndindex(*shape)], dtype=np.int64)
        self.param = flat_param[self.groups]
        G, n = self.groups.shape
        self.n = n
        self.P = int(np.prod(self.weight_shape))
        width = shape[-1] if (len(shape) - 1) in tuple(layer.statistics_axes) else n
        if width > n or n % width:
            width = n
        self.matrix = (G, n // width, width)
        #: every group uses one weight entry (BatchNorm-like): Σ g·w over a group is w·Σ g
        self.uniform_weight = bool(np.all(self.param == self.param[:, :1]))
        self.param_count = np.bincount(self.param.ravel(), minlength=self.P)
        #: the longest sum a correct implementation forms (a group, or the positions of a weight)
        self.reduction_size = int(max(n, int(self.param_count.max())))
        self.word = "var" if self.centered else "mean(x²)"
        self.text = f"{layer.name} {layer.shape_text()}"
        # what the degenerate points zero (crosscheck_inputs.degenerate_points)
        self.first_group = self.groups[0]
        self.first_weight = self.param[0, 0]

    def to_layout(self, rows):
        flat = np.empty(int(np.prod(self.shape)))
        flat[self.groups] = np.asarray(rows, dtype=np.float64).reshape(self.groups.shape)
        return flat.reshape(self.shape)

    def rows(self, arr):
        return np.asarray(arr).reshape(-1)[self.groups]

    def generate(self, family, rng, i, eps, np_dtype):
        """(x, weight, bias or None, grad_out) of point ``i`` of ``family``, in dtype."""
        x, gamma, beta, g = family_values(family, rng, i, eps, self.matrix, self.P, self.centered)
        return (self.to_layout(x).astype(np_dtype),
                gamma.reshape(self.weight_shape).astype(np_dtype),
                beta.reshape(self.weight_shape).astype(np_dtype) if self.has_bias else None,
                self.to_layout(g).astype(np_dtype))

    def user_grad(self, rng, x):
        """A generic cotangent for a user point given without one."""
        return self.to_layout(_gen_grad(rng, self.matrix))

    def reduction_terms(self, family, x):
        """The N of growth(N) at this point (:mod:`.crosscheck_bound`): the longest rounded sum."""
        if family == "sparse" and self.uniform_weight:
            nonzero = self.rows(x) != 0
            per_group = int(nonzero.sum(axis=1).max())
            per_param = int(np.bincount(self.param[nonzero], minlength=self.P).max()) if nonzero.any() else 0
            return max(1, per_group, per_param)
        return self.reduction_size

    def prepare_inputs(self, inputs, dtype):
        keys = ("x", self.arg_names[1]) + ((self.arg_names[2],) if self.has_bias else ())
        return prepare_inputs(inputs, dtype, keys, self.shape, self.weight_shape)

    # -- per-group (row) forms, at the caller's workdps
    def mp_rows(self, arr_mp):
        flat = np.asarray(arr_mp, dtype=object).reshape(-1)
        return [[flat[j] for j in row] for row in self.groups]

    def param_rows(self, p_mp):
        flat = np.asarray(p_mp, dtype=object).reshape(-1)
        return [[flat[k] for k in row] for row in self.param]
