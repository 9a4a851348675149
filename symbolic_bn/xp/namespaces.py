"""Array namespaces: one NumPy-style function, three number systems.

User code is written once against an array namespace ``xp``::

    def forward(x, gamma, beta, eps, xp):            # x: C x H x W, gamma/beta: C
        mu = xp.mean(x, axis=(1, 2), keepdims=True)
        var = xp.mean((x - mu) ** 2, axis=(1, 2), keepdims=True)
        return (x - mu) / xp.sqrt(var + eps) * gamma[:, None, None] + beta[:, None, None]

and runs unchanged with

1. ``xp = numpy`` (``numpy_namespace``): floats, nothing to build;
2. ``xp = symbolic`` (:class:`SymbolicNamespace`): exact, NumPy object arrays of SymPy expressions;
3. ``xp = mpmath_namespace(dps)`` (:class:`MpmathNamespace`): NumPy object arrays of ``mpmath.mpf``
   values computed at ``dps`` significant decimal digits.

The model is mpmath's contexts (``mp``, ``fp``, ``iv`` share one API over different number systems).
The SymPy namespace is for display: no verdict of symbolic-bn is decided on it (the exact engine,
:mod:`symbolic_bn.xp.engine`, is).

This module gathers the public names (``symbolic_bn.xp`` re-exports them); each part is its own
module, whose docstring has the details:

* :mod:`symbolic_bn.xp.conversions` -- number conversion rules: floats (read them before
  cross-checking), strings, Fractions, mpf values; ``FLOAT_MODES``;
* :mod:`symbolic_bn.xp.mpf_entries` -- the fixed-precision ``mpmath.mpf`` entries (``mpf_type``):
  precision local to the namespace, no global mpmath state;
* :mod:`symbolic_bn.xp.arrays` -- ``ExactArray``/``SymbolicArray``/``MpfArray`` (object arrays
  routing every NumPy ufunc to their namespace) and ``RealDType`` (``xp.float64``);
* :mod:`symbolic_bn.xp.routing` -- operand conversion, ufunc dispatch, reductions;
* :mod:`symbolic_bn.xp.array_api` -- the NumPy-style functions (``SUPPORTED_FUNCTIONS``) and what
  raises;
* :mod:`symbolic_bn.xp.sympy_namespace` -- ``SymbolicNamespace``/``symbolic``, ``symbols_array``,
  ``to_sympy(_array)``, ``bind``, ``xreplace_array``;
* :mod:`symbolic_bn.xp.mpf_namespace` -- ``MpmathNamespace``/``mpmath_namespace``,
  ``to_mpf(_array)``;
* :mod:`symbolic_bn.xp.registry` -- ``get_namespace``, ``numpy_namespace``.

Known limits (documented, not checked)
--------------------------------------
* Bare SymPy entries are plain SymPy: ``x[0, 0, 0] * 0.5`` makes a ``Float``.  Keep floats out of
  scalar arithmetic, or go through arrays (``x[0:1, 0:1, 0:1] * 0.5`` is exact).
* Python evaluates ``1.0 / n`` as a float before any namespace sees it; write ``s / n``.
* ``numpy.asarray(a, dtype=float)`` casts in C without asking the array; use ``xp`` functions.
* ``maximum``/``minimum``/``abs``/``clip`` of symbolic values give ``sympy.Max``/``Min``/``Abs``,
  which stay opaque to the algebraic proofs unless they can be removed (e.g. by substituting values
  or by assumptions that decide them).
"""
from __future__ import annotations

# one error class for every namespace (the exact engine's): the message names the operation
from ..exact.errors import UnsupportedAttribute, UnsupportedOperation
from .array_api import SUPPORTED_FUNCTIONS
from .arrays import ExactArray, MpfArray, RealDType, SymbolicArray
from .conversions import FLOAT_MODES
from . import mpf_entries as _mpf_entries
from .mpf_entries import mpf_type
from .mpf_namespace import MpmathNamespace, mpmath_namespace, to_mpf, to_mpf_array
from .registry import get_namespace, numpy_namespace
from .sympy_namespace import (
    SymbolicNamespace,
    bind,
    symbolic,
    symbols_array,
    to_sympy,
    to_sympy_array,
    xreplace_array,
)

__all__ = [
    "UnsupportedOperation",
    "UnsupportedAttribute",
    "ExactArray",
    "SymbolicArray",
    "MpfArray",
    "RealDType",
    "SymbolicNamespace",
    "MpmathNamespace",
    "symbolic",
    "numpy_namespace",
    "mpmath_namespace",
    "get_namespace",
    "symbols_array",
    "to_sympy_array",
    "to_mpf_array",
    "to_sympy",
    "to_mpf",
    "mpf_type",
    "bind",
    "xreplace_array",
    "FLOAT_MODES",
    "SUPPORTED_FUNCTIONS",
]

# Pickles of mpf entries made before this module was split name their rebuild function here.
_rebuild_mpf = _mpf_entries._rebuild_mpf
