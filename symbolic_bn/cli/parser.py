"""The argument parser of ``symbolic-bn``: every subcommand's options, descriptions and --help.

A parse error is a :class:`~symbolic_bn.cli.parsing.UsageError` (one line, exit 2), not
argparse's usage text.
"""
from __future__ import annotations

import argparse
import textwrap

from .layer_options import LAYER_NAMES
from .parsing import MAX_DPS, UsageError, _default_shape, _min_dps, _shape_text

README_GLOSSARY = "the README's \"Glossary\" section"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        raise UsageError(message)


def _common(p):
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (with a boolean \"ok\") on stdout instead of text")
    p.add_argument("--quiet", action="store_true",
                   help="no progress line on stderr (shown only when stderr is a terminal)")


def _layer_options(p, shape_help, repeat=False):
    p.add_argument("--layer", choices=LAYER_NAMES, default=None, metavar="NAME",
                   help="the normalization layer: " + ", ".join(LAYER_NAMES) + " (the layers of "
                        "symbolic_bn.layers, named like torch.nn.functional's; default "
                        "batchnorm_channel_first, TorchLean's channel-first BatchNorm)")
    p.add_argument("--shape", action="append" if repeat else "store",
                   default=None, metavar="SHAPE", help=shape_help)
    p.add_argument("--groups", default=None, metavar="G",
                   help="with --layer group_norm: the number of groups G (dividing the channels C)")
    p.add_argument("--normalized-shape", dest="normalized_shape", default=None, metavar="N1,N2",
                   help="with --layer layer_norm or rms_norm: the trailing sizes the statistics reduce "
                        "over, comma-separated (e.g. 3,4 for an input 2x3x4)")


GLOSSARY_POINTER = textwrap.fill(
    f"Every term in the output (slot, seed, sqrtClamp, IBP, err/bound, fwd-over-rev, ...) is "
    f"explained by `symbolic-bn explain TERM`; `symbolic-bn glossary` prints them all, and "
    f"{README_GLOSSARY} has the same text.", width=92)

_PROVE_DESCRIPTION = """\
Prove, with exact algebra, that a normalization layer's backward is right.  Default: TorchLean's
channel-first BatchNorm graph (x of shape CxHxW); --layer batch_norm, instance_norm,
layer_norm, group_norm or rms_norm (with --shape in the layer's own layout, --groups,
--normalized-shape) proves that layer's graph.  For each stage the jvp/vjp rules are the true
derivative and its transpose, and end to end backprop(x, s) = J_E(x)^T s for every seed s on
every slot, for all inputs with var + eps > 0 in every statistics group, at the given shape(s);
the graph is also linked to the closed-form backward and the domain facts are stated.  --order 2
or 3 adds the higher derivatives: every nesting of fwd and rev (fwd-over-rev, ...) against the
k-th derivative of the forward, Hessian symmetry, the tape closed under differentiation, and the
closed-form double backward.  Each obligation is PROVED, FAILED (with an exact counterexample)
or UNDECIDED (budget exhausted)."""

_CHECK_DESCRIPTION = """\
Prove YOUR backward (and optionally forward) exactly equal to the derivative of the layer.
backward(x, gamma, beta, grad_out, eps[, xp]) -> (dx, dgamma, dbeta) is run once on exact
symbolic arrays and proved equal to J^T grad_out for all inputs at the shape, or refuted with an
exact counterexample.  A function with an xp parameter gets the exact namespace as xp; one
without it runs unmodified: its np.sum, np.mean, np.sqrt, reshape, @, ... work on the exact
arrays through NumPy's override protocols.  An operation the exact engine cannot do (np.tanh, a
float buffer from np.zeros(shape), ...) is reported by name as NOT CHECKED (exit 1): the tool
never falls back on its own; --numeric runs the mpmath cross-check instead.  --layer checks
another layer in its own layout (backward(x, weight, bias, grad_out, eps[, xp])),
--framework torch|jax a framework-native function (tensors in and out; traced and run
exactly), --double-backward a double backward fn(x, weight, bias, grad_out, ggx, ggweight,
ggbias, eps[, xp]) -> (gx, gweight, ggrad_out).  The checked code runs in a child process:
whatever it does (sys.exit, os._exit, atexit), the exit status is the tool's verdict, and what
it prints goes to stderr.  The current directory is on the import path."""

_AUTODIFF_DESCRIPTION = """\
Check a framework's own derivatives of a layer's forward f(x, weight, bias) -> y, to order 1,
2 or 3: every nesting of forward (fwd) and reverse (rev) mode -- "fwd-over-rev" is a jvp of a
vjp, JAX's Hessian-vector product -- in every API that runs it (torch.func, torch.autograd,
torch.autograd.forward_ad; jax).  TARGET is a built-in (torch.nn.functional.batch_norm,
instance_norm, layer_norm, group_norm, rms_norm, called with the layer's eps, groups,
normalized_shape) or MODULE:FUNCTION.  By default each mode's value at random points is compared
with a 50-digit reference of the layer under a dtype-aware bound (PASS/FAIL, ERROR when the
framework raises); --exact traces each mode and proves it exactly (PROVED/FAILED with an exact
counterexample re-confirmed by the framework/UNDECIDED).  Exit 1 when any row is not PASS or
PROVED."""

_BOUNDS_DESCRIPTION = """\
Bounds of an inference-mode (model.eval()) BatchNorm layer, BN(x) = s*x + o per channel with
s = gamma/sqrt(max(running_var, 0) + eps), o = beta - s*running_mean: the IBP box of BN(x) for x
in a box (--box), and, when given, the box of d/dt BN(x(t)) for x'(t) in a box (--dbox) and of
d2/dt2 BN(x(t)) for x''(t) in a box (--ddbox).  --prove prints the exact certificate of the
rules used."""

_REPORT_DESCRIPTION = """\
Regenerate the correctness reports: one self-contained index.html, one Markdown and one JSON
file per subject (BN graph certificates, inference bounds, mpmath cross-checks, all-sizes
certificate).  Only a previous report's own files are ever replaced."""

_EXPLAIN_DESCRIPTION = """\
Explain a term the other subcommands print (case-insensitive; an index such as var_c or
dx[0, 0, 0] and obligation names such as stage.std.derivative are understood).  Without a
term, list every term with a one-line explanation."""

_GLOSSARY_DESCRIPTION = """\
Print every term the other subcommands print (slot, seed, context, totalized, sqrtClamp,
rowMean, J_E, IBP, err/bound, kappa, fwd-over-rev, ...) with its explanation in words a PyTorch
user knows, grouped by topic.  `symbolic-bn explain TERM` prints one entry."""

#: Mode names, for --help (symbolic_bn.checks.autodiff.MODES, which imports mpmath).
_MODE_EXAMPLES = "fwd, rev, fwd-over-rev, rev-over-rev, fwd-over-fwd-over-rev, ..."


def build_parser() -> argparse.ArgumentParser:
    shape = _shape_text(_default_shape())
    from ..checks.check import DEFAULT_BUDGET as CHECK_BUDGET
    from ..obligations.prove import DEFAULT_BUDGET as PROVE_BUDGET
    fmt = argparse.RawDescriptionHelpFormatter
    p = _Parser(prog="symbolic-bn", formatter_class=fmt,
                description=textwrap.fill(
                    "Exact proofs and cross-checks of the backward rules of normalization layers "
                    "(BatchNorm, InstanceNorm, LayerNorm, GroupNorm, RMSNorm) -- yours, and PyTorch's "
                    "and JAX's own derivatives up to third order -- and sound bounds for inference "
                    "BatchNorm.", width=92),
                epilog=GLOSSARY_POINTER + "\n\nExit status: 0 = everything checked holds, 1 = failed, "
                                          "undecided or not checked, 2 = bad usage or input.")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND",
                           title="commands (symbolic-bn COMMAND --help for details)")

    def add(name, help_, description):
        return sub.add_parser(name, help=help_, description=description, formatter_class=fmt,
                              epilog=GLOSSARY_POINTER)

    pr = add("prove", "prove a layer's backward (and higher derivatives) exactly: the certificate",
             _PROVE_DESCRIPTION)
    _layer_options(pr, f"the input shape (repeatable): CxHxW for the default layer (default {shape}); with "
                       f"--layer, the layer's own layout such as 2x3x2x2 (NxCxHxW), required", repeat=True)
    pr.add_argument("--eps", action="append", metavar="EPS",
                    help="'symbolic' (default: any real eps with var + eps > 0) or an exact number "
                         "such as 1e-5 or 1/100000 (repeatable)")
    pr.add_argument("--order", default="1", metavar="K",
                    help="1 (default): the backward; 2 or 3: also every second / third derivative "
                         "(every nesting of fwd and rev, Hessian symmetry, double backward)")
    pr.add_argument("--backend", choices=["flint", "sympy"], default=None,
                    help="exact polynomial arithmetic: flint (python-flint, fast; the 'fast' extra) or "
                         "sympy (pure Python); same verdicts (default: the fastest installed)")
    pr.add_argument("--budget", default=f"{PROVE_BUDGET:g}", metavar="SECONDS",
                    help=f"seconds per obligation group before it is UNDECIDED; inf or none: no limit "
                         f"(default {PROVE_BUDGET:g})")
    pr.add_argument("--brief", action="store_true",
                    help="one line per obligation (no statement / assumes / method)")
    _common(pr)

    ck = add("check", "prove your own backward (forward, double backward) exactly", _CHECK_DESCRIPTION)
    ck.add_argument("backward", metavar="MODULE:FUNCTION",
                    help="the backward to check, backward(x, gamma, beta, grad_out, eps[, xp]) -> "
                         "(dx, dgamma, dbeta) (with --layer: backward(x, weight, bias, grad_out, eps[, xp]) "
                         "-> (dx, dweight, dbias), rms_norm: (dx, dweight)), as module:function (imported "
                         "from the current directory or the installed packages) or path/to/file.py:function")
    ck.add_argument("--forward", metavar="MODULE:FUNCTION",
                    help="also check forward(x, gamma, beta, eps[, xp]) -> y (with --layer: forward(x, "
                         "weight, bias, eps[, xp])), same two spellings")
    ck.add_argument("--double-backward", dest="double_backward", action="store_true",
                    help="MODULE:FUNCTION is a double backward fn(x, weight, bias, grad_out, ggx, ggweight, "
                         "ggbias, eps[, xp]) -> (gx, gweight, ggrad_out) (PyTorch's shape), proved against "
                         "the derivative of J^T grad_out")
    _layer_options(ck, f"shape of x: CxHxW for the default layer (default {shape}); with --layer, the "
                       f"layer's own layout such as 2x3x2x2 (NxCxHxW), required (bugs that depend on "
                       f"larger sizes need larger shapes)")
    ck.add_argument("--framework", choices=["torch", "jax"], default=None,
                    help="the functions are framework-native (torch tensors or jax arrays in and out, "
                         "float64, eps a float): traced (make_fx / make_jaxpr) and the trace proved "
                         "exactly; needs the 'torch' or 'jax' extra; eps defaults to 1e-5")
    ck.add_argument("--eps", default=None, metavar="EPS",
                    help="exact check: 'symbolic' (default; 1e-5 with --framework) or an exact number "
                         "(zero or negative where var + eps > 0 is still possible); cross-check: a "
                         "number (default 1e-5)")
    ck.add_argument("--budget", default=f"{CHECK_BUDGET:g}", metavar="SECONDS",
                    help=f"seconds for each exact check before it is UNDECIDED; inf or none: "
                         f"no limit (default {CHECK_BUDGET:g})")
    ck.add_argument("--dtype", choices=["float32", "float64"], default="float64",
                    help="dtype of the numeric cross-check (default float64)")
    ck.add_argument("--dps", default="50",
                    help=f"mpmath digits of the cross-check reference, {_min_dps()}–{MAX_DPS} (default 50)")
    ck.add_argument("--numeric", action="store_true",
                    help="instead of the exact check: cross-check at float points against mpmath only")
    ck.add_argument("--brief", action="store_true",
                    help="one line per obligation (no statement / assumes / method)")
    _common(ck)

    ad = add("autodiff", "check torch's / jax's own derivatives of a layer, up to third order",
             _AUTODIFF_DESCRIPTION)
    ad.add_argument("target", metavar="TARGET",
                    help="torch.nn.functional.batch_norm, ...instance_norm, ...layer_norm, ...group_norm, "
                         "...rms_norm, or MODULE:FUNCTION / path/to/file.py:FUNCTION: f(x, weight, bias) -> y "
                         "with framework tensors, implementing --layer with --eps")
    _layer_options(ad, "the input shape in the layer's layout, e.g. 1x3x4x4 (required)")
    ad.add_argument("--eps", default="1e-5", metavar="EPS",
                    help="the layer's eps, a number (default 1e-5; f must use the same value)")
    ad.add_argument("--order", default=None, metavar="K",
                    help="check every mode of order 1 up to K (1, 2 or 3; default 3, with --exact 1)")
    ad.add_argument("--modes", default="all", metavar="M1,M2",
                    help=f"'all' (default) or comma-separated mode names up to --order ({_MODE_EXAMPLES})")
    ad.add_argument("--framework", choices=["torch", "jax"], default="torch",
                    help="the framework that differentiates f (default torch; jax needs MODULE:FUNCTION)")
    ad.add_argument("--exact", action="store_true",
                    help="trace every mode and prove it exactly (check_autodiff) instead of the numeric "
                         "comparison (crosscheck_autodiff)")
    ad.add_argument("--dtype", choices=["float32", "float64"], default="float64",
                    help="dtype of the numeric comparison (default float64; --exact traces in float64)")
    ad.add_argument("--points", default="5", metavar="N",
                    help="random points of the numeric comparison, 1–1000 (default 5)")
    ad.add_argument("--seed", default="0", metavar="S",
                    help="seed of the random points and directions (default 0)")
    ad.add_argument("--dps", default="50", metavar="D",
                    help=f"digits of the numeric reference, 50–{MAX_DPS} (default 50)")
    ad.add_argument("--budget", default=None, metavar="SECONDS",
                    help="with --exact: seconds for the whole check before the rest is UNDECIDED; inf or "
                         "none: no limit (default 600)")
    _common(ad)

    bd = add("bounds", "interval (IBP) and derivative boxes of an inference BatchNorm layer",
             _BOUNDS_DESCRIPTION)
    bd.add_argument("--params", metavar="FILE.json",
                    help="JSON object with running_mean, running_var, gamma, beta (lists, one entry per "
                         "channel) and eps; strings such as \"1/4\" are exact, and so are integers too "
                         "large for float64")
    bd.add_argument("--box", metavar="FILE.json",
                    help="JSON object with lo and hi (nested lists of one shape): the box of inputs x; "
                         "prints the IBP box of BN(x)")
    bd.add_argument("--dbox", metavar="FILE.json",
                    help="JSON object with lo and hi: a box of tangents x'(t); prints the derivative "
                         "box of d/dt BN(x(t))")
    bd.add_argument("--ddbox", metavar="FILE.json",
                    help="JSON object with lo and hi: a box of x''(t); prints the second-derivative "
                         "box of d2/dt2 BN(x(t))")
    bd.add_argument("--channel-axis", default="0", metavar="K",
                    help="axis of the boxes that holds the channels (default 0; -1 for channel-last)")
    bd.add_argument("--rounding", choices=["nearest", "outward"], default="nearest",
                    help="float64 round-to-nearest (default), or outward rounding: a float64 box "
                         "guaranteed to contain the exact one")
    bd.add_argument("--prove", action="store_true", help="print the exact certificate of the bound rules")
    bd.add_argument("--budget", default="60", metavar="SECONDS",
                    help="with --prove: seconds per obligation; inf or none: no limit (default 60)")
    bd.add_argument("--brief", action="store_true", help="one line per obligation (with --prove)")
    _common(bd)

    rp = add("report", "regenerate the correctness reports (HTML, Markdown, JSON)", _REPORT_DESCRIPTION)
    rp.add_argument("--out", default="reports", metavar="DIR",
                    help="output directory (default reports/)")
    rp.add_argument("--shape", action="append", metavar="CxHxW",
                    help="CxHxW of the BN-graph subject (repeatable; default 1x2x2 2x2x2 2x3x3 4x8x8)")
    rp.add_argument("--no-torch", action="store_true", help="leave PyTorch out of the cross-check")
    _common(rp)

    ex = add("explain", "explain a term of the output (the glossary)", _EXPLAIN_DESCRIPTION)
    ex.add_argument("term", nargs="*", metavar="TERM",
                    help="the term, e.g. sqrtClamp, 'side condition', err/bound (omit it to list all)")
    ex.add_argument("--json", action="store_true",
                    help="print one JSON object (with a boolean \"ok\") on stdout instead of text")
    gl = add("glossary", "print the whole glossary: every term of the output, explained",
             _GLOSSARY_DESCRIPTION)
    gl.add_argument("--markdown", action="store_true",
                    help="print it as Markdown (the README's Glossary section) instead of text")
    gl.add_argument("--json", action="store_true",
                    help="print one JSON object (with a boolean \"ok\") on stdout instead of text")
    return p
