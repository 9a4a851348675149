"""Errors of the PyTorch frontend (importable without torch).

Every message is one line and names what was refused: the aten operator and the trace node, or
the user's source line that could not be traced.
"""
from __future__ import annotations

__all__ = [
    "TorchFrontendError",
    "TorchNotInstalledError",
    "TorchTraceError",
    "UnsupportedTorchOp",
    "TorchRunError",
    "INSTALL_HINT",
]

INSTALL_HINT = ("pip install 'symbolic-bn[torch]' (the 'torch' extra; on this project's CPU "
                "machines: pip install torch==2.13.0)")


class TorchFrontendError(Exception):
    """Base class of the frontend's errors."""


class TorchNotInstalledError(TorchFrontendError, ImportError):
    """PyTorch is not importable."""


class TorchTraceError(TorchFrontendError, ValueError):
    """The function does not trace (data-dependent control flow, bad arguments, torch errors)."""


class UnsupportedTorchOp(TorchFrontendError, TypeError):
    """A traced aten operator (or one use of it) that the interpreter does not run.

    ``op`` is the overload's name (``"aten.cumsum.default"``), ``node`` the trace node's name,
    ``location`` the user's source line that called it (may be empty).
    """

    def __init__(self, message: str, op: str = "", node: str = "", location: str = ""):
        super().__init__(message)
        self.op = op
        self.node = node
        self.location = location


class TorchRunError(TorchFrontendError, ValueError):
    """Running a trace failed: wrong arguments, or the trace reads memory it never wrote."""
