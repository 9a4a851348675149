"""Calling a user's function on exact arrays, and reading what it returns.

* The namespace is passed only to functions that declare it: a parameter named ``xp``, or one
  positional parameter more than the data arguments.  Other functions get bare arrays and run
  through NumPy's override protocols (unmodified NumPy code).
* Everything the function raises is an :class:`~symbolic_bn.checks.crosscheck.ImplementationError`
  naming the function; data-dependent branches, undefined values (1/0, sqrt of a negative number)
  and unsupported operations keep their own message (with the file and line) and stay reachable
  as ``exc.__cause__``.
* Outputs must be arrays (or nested lists) of the expected shapes; their entries become Values
  (ints and Fractions exactly; floats by the half-ulp reading, logged).
"""
from __future__ import annotations

import inspect
import types
import numbers
from fractions import Fraction

import numpy as np

from ..exact.budget import BudgetExceeded, untrusted_code
from ..exact.errors import BranchError, UndefinedValue, UnsupportedOperation
from ..exact.value import Value
from .crosscheck import ImplementationError

__all__ = ["function_name", "takes_namespace", "call", "read_outputs", "undefined_error"]


def function_name(fn) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def takes_namespace(fn, n_data: int) -> bool:
    """Whether ``fn`` wants the namespace: a parameter ``xp``, or n_data + 1 positional ones whose
    last has no default or a module as default (``np=numpy``).  A last parameter with another
    default (``bug=False``) is the user's own option, never the namespace."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    params = list(sig.parameters.values())
    if any(p.name == "xp" for p in params):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return False
    if len(positional) != n_data + 1:
        return False
    default = positional[-1].default
    return default is inspect.Parameter.empty or isinstance(default, types.ModuleType)


def undefined_error(message):
    err = ImplementationError(message)
    err.undefined = True
    return err


def call(fn, role: str, args: list, xp):
    """``fn(*args[, xp])`` with every failure turned into an ImplementationError (module doc)."""
    label = f"{role} {function_name(fn)!r}"
    try:
        with untrusted_code():  # the user's `except Exception:` cannot swallow the budget
            if takes_namespace(fn, len(args)):
                params = inspect.signature(fn).parameters
                if "xp" in params and params["xp"].kind == inspect.Parameter.KEYWORD_ONLY:
                    return fn(*args, xp=xp)
                return fn(*args, xp)
            return fn(*args)
    except BudgetExceeded:
        raise
    except KeyboardInterrupt:  # the person at the keyboard, not a verdict
        raise
    except (SystemExit, GeneratorExit) as exc:
        # sys.exit(0) inside the checked code must not end the check (or the test run) with status 0
        raise ImplementationError(f"{label} raised {type(exc).__name__}({exc}) -- it tried to end the "
                                  "process (or the check) instead of returning") from exc
    except BranchError as exc:
        raise ImplementationError(f"{label}: {exc}") from exc
    except UndefinedValue as exc:
        err = undefined_error(f"{label} has no real value here: {exc}")
        raise err from exc
    except UnsupportedOperation as exc:
        raise ImplementationError(f"{label} used an operation the exact engine cannot do: {exc}") from exc
    except ZeroDivisionError as exc:
        err = undefined_error(f"{label} divided by zero: {exc}")
        raise err from exc
    except RecursionError as exc:
        raise ImplementationError(f"{label} raised RecursionError") from exc
    except BaseException as exc:  # noqa: BLE001 - wrapped with the function's name (a BaseException
        # of the user's own cannot get past the check either)
        raise ImplementationError(f"{label} raised {type(exc).__name__}: {exc}") from exc


def _entry(space, v, label, where):
    if type(v) is Value:
        if v.space is not space:
            raise ImplementationError(f"{label}: {where} is a value of another check (state kept between "
                                      "calls?)")
        return v
    if isinstance(v, (bool, np.bool_)):
        raise ImplementationError(f"{label}: {where} is a bool, not a number")
    if isinstance(v, (numbers.Integral, Fraction)):
        return space.constant(v)
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            raise undefined_error(f"{label}: {where} is {v} (not finite)")
        return space.constant(v)
    raise ImplementationError(f"{label}: {where} is a {type(v).__name__} ({v!r:.60}), not a number")


def read_outputs(space, fn, role, out, names, shapes) -> dict:
    """The function's outputs as ``{name: object array of Values}``, checked against ``shapes``."""
    label = f"{role} {function_name(fn)!r}"
    if len(names) == 1:
        out = (out,)
    elif isinstance(out, (np.ndarray, str, bytes)) or not isinstance(out, (tuple, list)):
        raise ImplementationError(f"{label} returned a {type(out).__name__}, expected a tuple of "
                                  f"{len(names)} arrays ({', '.join(names)})")
    if len(out) != len(names):
        raise ImplementationError(f"{label} returned {len(out)} arrays, expected {len(names)} "
                                  f"({', '.join(names)})")
    result = {}
    for name, shape, value in zip(names, shapes, out):
        if type(value) is Value or isinstance(value, (numbers.Number, Fraction)):
            arr = np.empty((), dtype=object)
            arr[()] = value
        elif isinstance(value, np.ndarray):
            arr = value.view(np.ndarray)
            if arr.dtype.kind in "fc" and arr.size:
                raise ImplementationError(
                    f"{label}: {name} is a {arr.dtype} array: the function left exact arithmetic "
                    "(a float buffer or a float function); build arrays from the inputs "
                    "(np.zeros_like(x)) and use NumPy / xp functions")
        elif isinstance(value, (list, tuple)):
            try:
                arr = np.array(value, dtype=object)
            except ValueError as exc:
                raise ImplementationError(f"{label}: {name} is not a rectangular array ({exc})") from None
        elif value is None:
            raise ImplementationError(f"{label}: {name} is None, expected an array of shape {tuple(shape)}")
        else:
            raise ImplementationError(f"{label}: {name} is a {type(value).__name__}, expected an array")
        if arr.shape != tuple(shape):
            raise ImplementationError(f"{label}: {name} has shape {arr.shape}, expected {tuple(shape)}")
        conv = np.empty(arr.shape, dtype=object)
        for idx in np.ndindex(*arr.shape):
            where = f"{name}[{', '.join(map(str, idx))}]" if idx else name
            conv[idx] = _entry(space, arr[idx] if arr.dtype == object else arr[idx].item(), label, where)
        result[name] = conv
    return result
