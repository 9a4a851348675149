r"""Calling the user's functions under test, and reading what they return.

Every call receives fresh copies of the point's arrays, so a function may write into its
arguments (a backward that stores dx in ``grad_out``, an in-place ``x -= mean``): that cannot
change the reference or any other call, is not an error, and is listed once per function and
argument in ``CrosscheckResult.notes``.  A user function that raises, returns the wrong number of
arrays, wrong shapes or non-real values raises :class:`ImplementationError` (a ``ValueError``)
naming the function, the family and the point: a malfunction is never reported as a pass.
``xp = numpy`` is passed only to a function that declares it
(:func:`symbolic_bn.checks.calling.takes_namespace`).

NaN or inf returned by the implementation on a valid input point (finite inputs, var + eps > 0)
is an *infinite error*: that output fails and ``CrosscheckResult.problems`` says "… returned NaN at
point …".  It is not an exception, because it is a numerical failure of the implementation, not
a malfunction of the call.
"""
from __future__ import annotations

import numpy as np

from ..exact.budget import BudgetExceeded, untrusted_code

__all__ = ["ImplementationError"]


class ImplementationError(ValueError):
    """The implementation under test malfunctioned (raised, wrong arity/shape, NaN/inf, ...)."""


def _fname(fn, role):
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"{role} function {name!r}"


def _as_output(value, label, what, want_shape):
    try:
        arr = np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - anything the conversion throws
        raise ImplementationError(f"{label}: {what} could not be converted to a NumPy array "
                                  f"({type(exc).__name__}: {exc})") from exc
    if arr.dtype.kind not in "fiu":
        raise ImplementationError(f"{label}: {what} has non-real dtype {arr.dtype}")
    if arr.shape != tuple(want_shape):
        raise ImplementationError(f"{label}: {what} has shape {arr.shape}, expected "
                                  f"{tuple(want_shape)}")
    # NaN/inf on a valid input point is a numerical failure of the implementation, not a
    # structural one: it is scored as an infinite error (see crosscheck), never raised.
    return arr.astype(np.float64), arr.dtype


def _note_nonfinite(problems, rep, arr, name, label, where):
    """Record NaN/inf components of one output at one point (they count as infinite errors)."""
    bad = ~np.isfinite(arr)
    count = int(np.count_nonzero(bad))
    if not count:
        return
    rep.nonfinite += count
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    kinds = " and ".join(k for k, m in (("NaN", np.isnan(arr)), ("inf", np.isinf(arr)))
                         if np.any(m & bad))
    more = f" ({count} non-finite value(s) in {name})" if count > 1 else ""
    problems.append(f"{label} returned {kinds} at {where}, {name}{list(first)}{more}, although "
                    "the inputs are finite and var + eps > 0: counted as an infinite error")


def _call(fn, role, args, names, where, notes, with_xp=True):
    """Call ``fn`` on fresh copies of the point's arrays (``args`` = arrays..., eps, xp; an array
    may be None: rms_norm's bias); ``with_xp=False`` leaves the namespace out.

    Writing into an argument (a backward that stores dx in grad_out, an in-place ``x -= mean``)
    is allowed: the function only ever sees copies, so the reference and later calls are
    untouched.  It is recorded once per (function, argument) in ``notes``."""
    label = f"{_fname(fn, role)} at {where}"
    arrays = [None if a is None else a.copy() for a in args[:-2]]  # eps and xp are the last two
    try:
        with untrusted_code():  # the user's `except Exception:` cannot swallow the budget
            out = fn(*arrays, *(args[-2:] if with_xp else args[-2:-1]))
    except (BudgetExceeded, KeyboardInterrupt):
        raise
    except BaseException as exc:  # noqa: BLE001 - report any failure of the user's code (sys.exit included)
        raise ImplementationError(f"{label} raised {type(exc).__name__}: {exc}") from exc
    for name, a, original in zip(names, arrays, args):
        if a is not None and not np.array_equal(a, original, equal_nan=True):
            key = f"{_fname(fn, role)} writes into its argument {name!r}"
            if not any(m.startswith(key) for m in notes):
                notes.append(f"{key} (first at {where}); allowed: it is given a copy")
    return out, label


def call_implementation(forward, backward, point, arg_names, grad_names, shapes, where, notes,
                        forward_xp, backward_xp):
    """Run ``forward`` and/or ``backward`` (either may be None) at ``point`` = (x, weight, bias,
    grad_out, eps).  ``shapes``: of y, then of each of ``grad_names``.  Returns ``(got, label)``:
    per output name the ``(float64 array, returned dtype)`` and the function's name."""
    x, w, b, g, eps = point
    got, got_label = {}, {}
    if forward is not None:
        out, label = _call(forward, "forward", (x, w, b, eps, np), arg_names, where, notes,
                           with_xp=forward_xp)
        got["y"] = _as_output(out, label, "the output", shapes[0])
        got_label["y"] = _fname(forward, "forward")
    if backward is not None:
        out, label = _call(backward, "backward", (x, w, b, g, eps, np), arg_names + ("grad_out",),
                           where, notes, with_xp=backward_xp)
        k = len(grad_names)
        what = "(" + ", ".join(grad_names) + ")"
        if isinstance(out, (str, bytes)) or not hasattr(out, "__len__") \
                or isinstance(out, np.ndarray):
            raise ImplementationError(f"{label} must return a tuple {what}; "
                                      f"got {type(out).__name__}")
        if len(out) != k:
            raise ImplementationError(f"{label} must return {k} arrays {what}; "
                                      f"got {len(out)}")
        for name, value, want in zip(grad_names, out, shapes[1:]):
            got[name] = _as_output(value, label, name, want)
            got_label[name] = _fname(backward, "backward")
    return got, got_label
