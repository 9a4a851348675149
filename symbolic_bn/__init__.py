"""symbolic-bn: exact SymPy/mpmath proof companion for TorchLean's channel-first BatchNorm.

Main entry points::

    from symbolic_bn import batchnorm_channel_first, prove
    cert = prove(batchnorm_channel_first(2, 2, 2))          # ε symbolic
    cert.ok, cert.obligations, cert.to_dict()
"""
from .batchnorm import BatchNormGraph, batchnorm_channel_first
from .certificate import Certificate, Obligation
from .graph import Graph
from .prove import prove

__version__ = "0.1.0"

__all__ = ["BatchNormGraph", "Certificate", "Graph", "Obligation", "batchnorm_channel_first",
           "prove", "__version__"]


def __getattr__(name):  # lazily exported modules built alongside the core
    import importlib
    lazy = {
        "check_forward": ("check", "check_forward"),
        "check_backward": ("check", "check_backward"),
        "crosscheck": ("crosscheck", "crosscheck"),
        "prove_all_sizes": ("allsizes", "prove_all_sizes"),
    }
    if name in lazy:
        module, attr = lazy[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    if name in ("numeric", "bounds", "testing", "xp"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'symbolic_bn' has no attribute {name!r}")
