"""Errors of the exact engine, each saying what the checked code did and where.

* :class:`BranchError` -- a comparison, ``bool()``, ``if``, ``max``/``min``, ``abs``, ``np.where`` ...
  whose answer is not the same on the whole domain (or could not be decided): the exact check
  cannot follow both sides, so it refuses rather than silently take one.
* :class:`UndefinedValue` -- the code divided by an exact zero, took the square root of a
  negative number or the log of a non-positive one: at a point inside the domain this makes the
  function wrong there (a check reports 'failed' with that point).
* :class:`UnsupportedOperation` -- an operation the engine cannot do exactly (a cube root, a cast
  to float32, ``math.sqrt`` on an exact value, a float buffer receiving exact values ...), named.
* :class:`ExactArithmeticError` -- misuse of the engine itself (values of two spaces mixed).
"""
from __future__ import annotations

__all__ = ["ExactError", "BranchError", "UndefinedValue", "UnsupportedOperation",
           "UnsupportedAttribute", "ExactArithmeticError"]


class ExactError(Exception):
    """Base class of the engine's errors."""


class BranchError(ExactError):
    """A data-dependent branch (see the module docstring).  ``location`` is 'file.py:line'."""

    def __init__(self, message, location="", source=""):
        super().__init__(message)
        self.location = location
        self.source = source


class UndefinedValue(ExactError, ZeroDivisionError, ValueError):
    """The checked code computed something with no real value (1/0, sqrt(−1), log(0))."""


class UnsupportedOperation(ExactError, TypeError):
    """An operation the exact engine cannot carry out, named in the message."""


class UnsupportedAttribute(UnsupportedOperation, AttributeError):
    """A namespace attribute the exact namespace does not provide (``hasattr`` answers False)."""


class ExactArithmeticError(ExactError, TypeError):
    """Values that cannot be combined (e.g. of two different spaces)."""
