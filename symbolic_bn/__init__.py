"""symbolic-bn: exact SymPy/mpmath proof companion for TorchLean's channel-first BatchNorm.

Main entry points::

    from symbolic_bn import batchnorm_channel_first, prove
    cert = prove(batchnorm_channel_first(2, 2, 2))          # ε symbolic
    cert.ok, cert.obligations, cert.to_dict()

    from symbolic_bn import check_backward, crosscheck       # users' implementations
    from symbolic_bn import prove_all_sizes                  # symbolic N and C
    from symbolic_bn import bounds                           # inference-time bounds
"""
# The functions below share their names with their modules (symbolic_bn.obligations.prove, .crosscheck):
# binding them here, after the submodule import, keeps ``symbolic_bn.checks.crosscheck(...)`` callable.
from . import bounds
from .checks import numeric
from . import testing
from . import xp
from .obligations.allsizes import prove_all_sizes
from .graphs.batchnorm import BatchNormGraph, batchnorm_channel_first
from .obligations.certificate import Certificate, Obligation
from .checks.check import check_backward, check_forward
from .checks.crosscheck import crosscheck
from .graphs.graph import Graph
from .obligations.prove import prove

__version__ = "0.1.0"

__all__ = ["BatchNormGraph", "Certificate", "Graph", "Obligation", "batchnorm_channel_first",
           "bounds", "check_backward", "check_forward", "crosscheck", "numeric", "prove",
           "prove_all_sizes", "testing", "xp", "__version__"]
