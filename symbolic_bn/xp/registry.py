"""Resolving a namespace by name, object or array: :func:`get_namespace`; ``numpy_namespace``.

The three namespaces are ``numpy`` (floats, nothing to build), ``symbolic``
(:mod:`symbolic_bn.xp.sympy_namespace`) and ``mpmath_namespace(dps)``
(:mod:`symbolic_bn.xp.mpf_namespace`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .arrays import ExactArray, _namespace_of_array
from .mpf_entries import _check_dps
from .mpf_namespace import MpmathNamespace, mpmath_namespace
from .sympy_namespace import SymbolicNamespace, symbolic

numpy_namespace = np

_NAMES = {
    "numpy": "numpy", "np": "numpy", "float": "numpy", "float64": "numpy",
    "symbolic": "symbolic", "sympy": "symbolic", "exact": "symbolic",
    "mpmath": "mpmath", "mp": "mpmath",
}


def get_namespace(name_or_obj: Any, dps: int | None = None):
    """Resolve a namespace.

    ``name_or_obj`` is a name (``'numpy'``/``'np'``, ``'symbolic'``/``'sympy'``/``'exact'``,
    ``'mpmath'``/``'mp'``), a namespace (``numpy``, ``symbolic``, an :class:`MpmathNamespace`),
    or an array (an :class:`ExactArray` gives its namespace; a non-object NumPy array gives
    ``numpy``).  ``dps`` applies to mpmath only (default 50).
    """
    if isinstance(name_or_obj, str):
        kind = _NAMES.get(name_or_obj.lower())
        if kind is None:
            raise ValueError(f"unknown namespace {name_or_obj!r}; known: {sorted(_NAMES)}")
        if kind == "mpmath":
            return mpmath_namespace(50 if dps is None else dps)
        if dps is not None:
            raise ValueError(f"dps applies to the mpmath namespace only, not {kind!r}")
        return np if kind == "numpy" else symbolic
    obj = name_or_obj
    if isinstance(obj, ExactArray):
        obj = _namespace_of_array(obj)
    elif isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise TypeError(
                "get_namespace: a plain object array is ambiguous; build arrays with "
                "to_sympy_array/symbols_array or to_mpf_array"
            )
        obj = np
    if obj is np:
        if dps is not None:
            raise ValueError("dps applies to the mpmath namespace only, not numpy")
        return np
    if isinstance(obj, SymbolicNamespace):
        if dps is not None:
            raise ValueError("dps applies to the mpmath namespace only, not the symbolic one")
        return obj
    if isinstance(obj, MpmathNamespace):
        if dps is not None and _check_dps(dps) != obj.dps:
            raise ValueError(f"{obj!r} does not have dps={dps}")
        return obj
    raise TypeError(f"get_namespace: cannot resolve {type(name_or_obj).__name__} {name_or_obj!r}")
