"""The ``symbolic-bn`` command line (console script ``symbolic_bn.cli:main``).

Subcommands:

* ``prove`` -- the exact certificate of a layer's backward: TorchLean's channel-first BatchNorm
  graph by default, any layer of :mod:`symbolic_bn.layers` with ``--layer`` (``--shape``,
  ``--groups``, ``--normalized-shape``), higher derivatives with ``--order 2|3``
  (:func:`symbolic_bn.prove`; :mod:`.prove`);
* ``check`` -- a user's forward / backward (or, with ``--double-backward``, double backward)
  proved exactly, or with ``--numeric`` cross-checked against mpmath (:mod:`.check`);
* ``autodiff`` -- a framework's own higher-order derivatives of a forward, numerically or, with
  ``--exact``, traced and proved (:mod:`.autodiff`);
* ``bounds`` (inference BatchNorm IBP / derivative boxes and their certificate; :mod:`.bounds`),
  ``report`` (regenerates ``reports/``; :mod:`.report`), ``explain TERM`` and ``glossary`` (the
  glossary, :mod:`symbolic_bn.glossary`; :mod:`.explain`).

Exit status: 0 when everything checked holds, 1 when an obligation failed, a check did not pass,
is undecided or could not be run exactly, 2 for bad usage or input.  User errors are one line on
stderr.  Nothing typed on the command line goes through ``eval`` or ``sympify`` (:mod:`.parsing`,
:mod:`.targets`).  All output is assembled before anything is printed, so an error never leaves
a partial report on stdout (:mod:`.entry`).  ``--json`` prints one JSON object with a boolean
``"ok"`` for every subcommand.  ``check`` and ``autodiff`` run the checked code in a child
process whose exit status, output and ``sys.exit`` cannot change the tool's (:mod:`.child`).

The other modules: :mod:`.parser` (the argparse parser and every --help text),
:mod:`.layer_options` (``--layer``/``--shape``/``--groups``/``--normalized-shape``),
:mod:`.progress` (progress lines on stderr).
"""
from .autodiff import BUILTIN_TARGETS
from .bounds import MAX_JSON_DEPTH
from .child import MAX_RELAYED_CHARS, NO_VERDICT
from .entry import main
from .layer_options import (DIMS_RE, LAYER_NAMES, LAYER_SHAPES, MAX_GROUPS, NORMALIZED_RE, build_layer, layer_label,
                            layer_spec, parse_dims, parse_normalized_shape, reject_layer_only_options)
from .parser import GLOSSARY_POINTER, README_GLOSSARY, build_parser
from .parsing import MAX_DPS, SHAPE_RE, UsageError, parse_budget, parse_eps, parse_int, parse_shape
from .progress import Progress
from .targets import (FILE_TARGET_RE, TARGET_RE, ExitedDuringCheck, check_target_syntax, load_target,
                      require_framework)

__all__ = ["BUILTIN_TARGETS", "DIMS_RE", "FILE_TARGET_RE", "GLOSSARY_POINTER", "LAYER_NAMES", "LAYER_SHAPES",
           "MAX_DPS", "MAX_GROUPS", "MAX_JSON_DEPTH", "MAX_RELAYED_CHARS", "NORMALIZED_RE", "NO_VERDICT",
           "README_GLOSSARY", "SHAPE_RE", "TARGET_RE", "ExitedDuringCheck", "Progress", "UsageError",
           "build_layer", "build_parser", "check_target_syntax", "layer_label", "layer_spec", "load_target",
           "main", "parse_budget", "parse_dims", "parse_eps", "parse_int", "parse_normalized_shape",
           "parse_shape", "reject_layer_only_options", "require_framework"]
