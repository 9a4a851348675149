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

    from symbolic_bn import check_backward, check_forward  # a user's code, exactly (xp or plain NumPy)
    from symbolic_bn import check_double_backward         # a user's double backward, exactly
    from symbolic_bn import crosscheck                    # a user's numeric code against mpmath
    from symbolic_bn import prove_all_sizes               # symbolic N = H·W and C
    from symbolic_bn import layers                        # BatchNorm (N×C×…), InstanceNorm, LayerNorm,
    cert = prove(layers.group_norm((2, 4, 3), groups=2))   # GroupNorm, RMSNorm
    from symbolic_bn import crosscheck_autodiff           # a framework's higher-order autodiff, numerically
    from symbolic_bn import check_autodiff                # ... and exactly, traced (torch, jax)
    from symbolic_bn import bounds                        # inference-time bounds and their proofs
    from symbolic_bn.testing import assert_backward_correct, assert_forward_correct

Public modules:

* :mod:`symbolic_bn.exact` -- the exact engine: values in polynomial rings over ℚ with atoms
  (σ = √·, ι = 1/·, exp, log) and their side conditions, zero tests, signs, calculus, budgets;
* :mod:`symbolic_bn.layers` -- the normalization layers (:class:`~symbolic_bn.layers.Layer`:
  shapes, statistics axes, ε, closed-form forward);
* :mod:`symbolic_bn.graphs` -- TorchLean-style tape graphs (nodes, evaluate, jvp, backprop) and the
  16-stage BatchNorm graph (:func:`batchnorm_channel_first`, :class:`BatchNormGraph`, :class:`Graph`);
* :mod:`symbolic_bn.obligations` -- the obligations of a graph (:func:`prove`), for every size
  (:func:`prove_all_sizes`), and :class:`Certificate` / :class:`Obligation`;
* :mod:`symbolic_bn.checks` -- users' implementations: exact (:func:`check_backward`,
  :func:`check_forward`), numeric (:func:`crosscheck`), and :mod:`symbolic_bn.checks.numeric`, the
  float32/float64 runtime symbolic-bn ships (also as ``symbolic_bn.numeric``);
* :mod:`symbolic_bn.xp` -- array namespaces users' code is written against: the exact engine's
  (:mod:`symbolic_bn.xp.engine`, what checks run), NumPy, SymPy (display only) and mpmath;
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
import importlib

__version__ = "0.1.0"

# Public names, loaded on first use (``import symbolic_bn`` stays cheap: the CLI's ``--help``, the
# pytest plugin and ``symbolic_bn.glossary`` do not pay for SymPy/flint/the prover).  Each maps
# to (module, attribute); attribute None means the module itself.  Function names that are also
# module names (``prove``, ``crosscheck``) are bound here, at the top level only, so
# ``symbolic_bn.checks.crosscheck`` stays the module.
_PUBLIC = {
    "BatchNormGraph": ("symbolic_bn.graphs.batchnorm", "BatchNormGraph"),
    "batchnorm_channel_first": ("symbolic_bn.graphs.batchnorm", "batchnorm_channel_first"),
    "Certificate": ("symbolic_bn.obligations.certificate", "Certificate"),
    "Obligation": ("symbolic_bn.obligations.certificate", "Obligation"),
    "Graph": ("symbolic_bn.graphs.graph", "Graph"),
    "prove": ("symbolic_bn.obligations.prove", "prove"),
    "prove_all_sizes": ("symbolic_bn.obligations.allsizes", "prove_all_sizes"),
    "check_backward": ("symbolic_bn.checks.check", "check_backward"),
    "check_forward": ("symbolic_bn.checks.check", "check_forward"),
    "check_double_backward": ("symbolic_bn.checks.double_backward", "check_double_backward"),
    "crosscheck": ("symbolic_bn.checks.crosscheck", "crosscheck"),
    "crosscheck_autodiff": ("symbolic_bn.checks.autodiff", "crosscheck_autodiff"),
    "check_autodiff": ("symbolic_bn.checks.framework_autodiff", "check_autodiff"),
    "layers": ("symbolic_bn.layers", None),
    "bounds": ("symbolic_bn.bounds", None),
    "numeric": ("symbolic_bn.checks.numeric", None),
    "testing": ("symbolic_bn.testing", None),
    "xp": ("symbolic_bn.xp", None),
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name):
    try:
        module, attribute = _PUBLIC[name]
    except KeyError:
        raise AttributeError(f"module 'symbolic_bn' has no attribute {name!r}") from None
    value = importlib.import_module(module)
    if attribute is not None:
        value = getattr(value, attribute)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
