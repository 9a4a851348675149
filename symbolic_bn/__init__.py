"""symbolic-bn: a proof companion for normalization layers (channel-first BatchNorm first).

It proves with exact computer algebra (SymPy, python-flint polynomials when installed) that
TorchLean's tape backprop of the channel-first BatchNorm graph equals the adjoint of the derivative
of its forward, checks users' forward/backward code exactly or against a 50-digit mpmath
reference, and computes sound inference-time bounds.  'proved' means decided by exact algebra;
what cannot be decided is 'undecided'; 'failed' carries an exact counterexample.

Main functions (importable from ``symbolic_bn``)::

    from symbolic_bn import batchnorm_channel_first, prove
    cert = prove(batchnorm_channel_first(2, 3, 4))       # eps=None: a real symbol ε
    cert.ok, cert.summary(), cert.failed(), cert.to_dict()

    from symbolic_bn import check_backward, check_forward  # a user's code, exactly (xp namespace)
    from symbolic_bn import crosscheck                    # a user's numeric code against mpmath
    from symbolic_bn import prove_all_sizes               # symbolic N = H·W and C
    from symbolic_bn import bounds                        # inference-time bounds and their proofs
    from symbolic_bn.testing import assert_backward_correct, assert_forward_correct

Public modules:

* :mod:`symbolic_bn.exact` -- the exact engine: numbers, polynomial rings with σ/ι atoms, zero
  tests, time budgets;
* :mod:`symbolic_bn.graphs` -- TorchLean-style tape graphs (nodes, evaluate, jvp, backprop) and the
  16-stage BatchNorm graph (:func:`batchnorm_channel_first`, :class:`BatchNormGraph`, :class:`Graph`);
* :mod:`symbolic_bn.obligations` -- the obligations of a graph (:func:`prove`), for every size
  (:func:`prove_all_sizes`), and :class:`Certificate` / :class:`Obligation`;
* :mod:`symbolic_bn.checks` -- users' implementations: exact (:func:`check_backward`,
  :func:`check_forward`), numeric (:func:`crosscheck`), and :mod:`symbolic_bn.checks.numeric`, the
  float32/float64 runtime symbolic-bn ships (also as ``symbolic_bn.numeric``);
* :mod:`symbolic_bn.xp` -- array namespaces users' code is written against (NumPy, exact SymPy,
  mpmath);
* :mod:`symbolic_bn.bounds` -- inference-time BatchNorm: scale/offset, IBP, derivative boxes,
  float-sound outward rounding, and their certificate;
* :mod:`symbolic_bn.frontends` -- frameworks' functions (PyTorch, ...) as checkable functions
  (optional dependencies);
* :mod:`symbolic_bn.report` -- the HTML/Markdown/JSON report (``symbolic-bn report``) and the
  plain-text rendering of certificates (:mod:`symbolic_bn.report.text`);
* :mod:`symbolic_bn.testing` -- ``assert_backward_correct`` / ``assert_forward_correct`` for users'
  test suites;
* :mod:`symbolic_bn.pytest_plugin` -- the pytest plugin (installed with the package): the
  ``symbolic_bn_check`` fixture and ``--symbolic-bn-report=PATH``;
* :mod:`symbolic_bn.cli` -- the ``symbolic-bn`` command (``prove``, ``check``, ``bounds``,
  ``report``);
* :mod:`symbolic_bn.glossary` -- every term the command line prints, explained once
  (``symbolic-bn explain TERM``).
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
