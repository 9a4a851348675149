"""Assertions for users' own test suites.

    from symbolic_bn.testing import assert_backward_correct
    def test_my_backward():
        assert_backward_correct(my_backward)      # proves it exactly at 1x2x3 and 2x3x4

``assert_backward_correct`` / ``assert_forward_correct`` run the exact symbolic check
(:func:`symbolic_bn.checks.check.check_backward` / ``check_forward``) at each shape in turn and stop
at the first shape that is not proved.  If the function cannot run on the symbolic namespace (it
raised :class:`symbolic_bn.xp.UnsupportedOperation`, e.g. a torch-only call) -- or
``numeric=True`` -- they fall back to :func:`symbolic_bn.checks.crosscheck.crosscheck` in float64
and float32; ``numeric=False`` forbids the fallback.  An obligation that is 'undecided' is a
failure too (never a silent pass).

Failure messages (:func:`failure_message`) name each obligation that is not proved exactly once:
the proved ones are folded into one line of counts; a failed one shows its exact counterexample
(the location, the implementation's and the reference's values, and the inputs x, gamma, beta,
grad_out, eps); undecided ones with the same reason are grouped and show the reason (a side
condition, a time budget) with the inputs named as the user knows them: ``x[c, h, w]``,
``gamma[c]``, ``beta[c]``, ``grad_out[c, h, w]`` (:func:`readable_names` maps the engine's symbol
names, old ``x_0_1_2`` style or new ``x[0, 1, 2]`` style, to these).

Default shapes: :data:`DEFAULT_SHAPES` = 1x2x3 and 2x3x4.  In 2x3x4, C, H and W are pairwise
different, so code that uses the wrong axis or dimension (``H·H`` or ``C·W`` for ``H·W``, a
per-channel mix-up) cannot pass by coincidence; 1x2x3 is a quick first check.  A bug that shows only
at larger sizes needs larger ``shapes``.

Keyword arguments beyond the ones named in the signatures (e.g. ``seed``) are passed to the exact
check unchanged, so options the check gains later work here without change; the numeric fallback
is refused (``ValueError``) when it cannot honour such an option.
"""
from __future__ import annotations

import inspect
import re

from .checks.check import DEFAULT_BUDGET, check_backward, check_forward
from .checks.crosscheck import ImplementationError, crosscheck
from .xp import UnsupportedOperation

__all__ = ["DEFAULT_SHAPES", "assert_backward_correct", "assert_double_backward_correct",
           "assert_forward_correct", "failure_message", "readable_names"]

#: Shapes (C, H, W) checked by default: a quick one, then one with C, H, W pairwise different.
DEFAULT_SHAPES = ((1, 2, 3), (2, 3, 4))

# The engine's names for the inputs -> the names of the user's arguments.  Old style: symbols
# x_0_1_2, g_0_1_2 (the cotangent), gamma_1, beta_1.  New style: x[0, 1, 2], g[0, 1, 2], ...
_OLD_STYLE = re.compile(r"\b(x|g|grad_out|gamma|beta)_(\d+(?:_\d+)*)\b")
_NEW_STYLE_COTANGENT = re.compile(r"\bg\[")
_USER_NAME = {"g": "grad_out"}

_INPUT_KEYS = ("x", "gamma", "beta", "grad_out", "eps")
_VALUE_LIMIT = 400  # characters of one value in a message; the certificate keeps the full value


def readable_names(text: str) -> str:
    """``text`` with the check's input symbols written as the user's arguments and indices.

    ``x_0_1_2`` and ``x[0, 1, 2]`` both become ``x[0, 1, 2]``, ``gamma_1`` becomes ``gamma[1]``, and the
    cotangent ``g_0_1_2`` / ``g[0, 1, 2]`` becomes ``grad_out[0, 1, 2]``.  Other text is unchanged."""
    def old(match):
        name = _USER_NAME.get(match.group(1), match.group(1))
        return f"{name}[{', '.join(match.group(2).split('_'))}]"
    return _NEW_STYLE_COTANGENT.sub("grad_out[", _OLD_STYLE.sub(old, str(text)))


def _value(v) -> str:
    text = readable_names(v)
    return text if len(text) <= _VALUE_LIMIT else text[:_VALUE_LIMIT] + " …"


def _with_approx(v, approx) -> str:
    """``v`` and, when it is not already plain decimal text, its float value."""
    text = _value(v)
    try:
        approx_text = f"{float(approx):.17g}"
    except (TypeError, ValueError):
        return text
    return text if approx_text == text else f"{text}  (≈ {approx_text})"


def _shape_text(shape) -> str:
    return "x".join(str(s) for s in shape)


def _counterexample_lines(ob, seen):
    """Lines for the counterexample of ``ob``; ``seen`` holds what earlier obligations printed
    (inputs, reasons), so that a point shared by several obligations is printed once."""
    cex = ob.counterexample
    lines = [f"    counterexample at {cex.get('location', '?')}:"]
    implementation = cex.get("implementation")
    if cex.get("undefined"):
        lines.append(f"      implementation = {_value(implementation)}")
    else:
        lines.append(f"      implementation = {_with_approx(implementation, cex.get('implementation_approx'))}")
    lines.append(f"      reference      = {_with_approx(cex.get('reference'), cex.get('reference_approx'))}")
    if cex.get("undefined") and cex["undefined"] != seen.get("undefined"):
        lines.append(f"      why: {readable_names(cex['undefined'])}")
        seen["undefined"] = cex["undefined"]
    inputs = [(k, cex[k]) for k in _INPUT_KEYS if k in cex]
    if inputs and inputs == seen.get("inputs"):
        lines.append("      inputs: the same as above")
    elif inputs:
        lines.append("      inputs: " + ", ".join(f"{k} = {_value(v)}" for k, v in inputs))
        seen["inputs"] = inputs
    return lines


def failure_message(cert, who: str = "check", note: str = "") -> str:
    """A message naming every obligation of ``cert`` that is not proved, each once.

    First line: ``who``, the subject and the verdict; second: the counts (proved obligations are
    only counted and named); ``note`` is appended to the first line.  Then each failed obligation with its statement and counterexample,
    and the undecided ones (grouped when they share a reason) with the reason."""
    counts = cert.counts()
    proved = [ob.name for ob in cert if ob.status == "proved"]
    lines = [f"{who}: {cert.subject} is not proved correct{note}",
             f"  {len(cert)} obligation(s): {counts['proved']} proved"
             + (f" ({', '.join(proved)})" if proved else "")
             + f", {counts['failed']} failed, {counts['undecided']} undecided"]
    seen: dict = {}
    for ob in cert.failed():
        lines.append(f"  FAILED {ob.name}: {readable_names(ob.statement)}")
        lines.extend(_counterexample_lines(ob, seen))
    groups: dict[str, list] = {}
    for ob in cert.undecided():
        groups.setdefault(ob.detail or "", []).append(ob)
    for detail, obs in groups.items():
        lines.append(f"  UNDECIDED {', '.join(ob.name for ob in obs)}: "
                     + readable_names(obs[0].statement if len(obs) == 1 else "not decided"))
        if detail:
            lines.append(f"    why: {readable_names(detail)}")
        for ob in obs:
            if ob.counterexample:  # undecided with a point attached: show it, it helps
                lines.extend(_counterexample_lines(ob, seen))
    if groups:
        lines.append("  (undecided is not a pass: exact algebra could not settle it within the budget "
                     "or the domain; larger budget=..., or numeric=True for a cross-check against mpmath)")
    return "\n".join(lines)


def _numeric_eps(eps, who):
    if eps is None:
        return 1e-5
    try:
        return float(eps)
    except (TypeError, ValueError):
        raise ValueError(f"{who}: eps must be None or a number, got {eps!r}") from None


def _check_shapes(shapes, who):
    if isinstance(shapes, tuple) and len(shapes) == 3 and all(isinstance(s, int) for s in shapes):
        shapes = [shapes]
    if isinstance(shapes, (str, bytes)):
        raise ValueError(f"{who}: shapes must be a list of (C, H, W) tuples, got {shapes!r}")
    try:
        shapes = [tuple(s) for s in shapes]
    except TypeError:
        raise ValueError(f"{who}: shapes must be a list of (C, H, W) tuples, got {shapes!r}") from None
    if not shapes:
        raise ValueError(f"{who}: shapes is empty: nothing to check")
    return shapes


def _accepted(fn, names):
    params = inspect.signature(fn).parameters
    return [n for n in names if n in params]


def _assert_correct(role, fn, *, shapes, eps, numeric, budget, points, options, who=None,
                    record=None):
    """The assertion behind assert_*_correct and the pytest fixture.

    Calls ``record(result)`` with every certificate and cross-check result as soon as it exists
    (so a caller keeps them even when the assertion then fails).  Returns the list of results."""
    __tracebackhide__ = True
    who = who or f"assert_{role}_correct"
    if "shape" in options:  # one shape, as the checks and the pytest fixture spell it
        one = options.pop("shape")
        if shapes is not DEFAULT_SHAPES:
            raise TypeError(f"{who}: give shape= or shapes=, not both")
        shapes = [one]
    if numeric not in (None, True, False):
        raise ValueError(f"{who}: numeric must be None, True or False, got {numeric!r}")
    checker = check_backward if role == "backward" else check_forward
    unknown = [k for k in options if k not in _accepted(checker, options)]
    if unknown:
        raise TypeError(f"{who}: unknown option(s) {', '.join(sorted(unknown))} "
                        f"(not accepted by {checker.__name__})")
    layer = options.get("layer")
    if layer is not None and shapes is DEFAULT_SHAPES:
        shapes = [tuple(layer.input_shape)]  # a Layer fixes its shape
    results = []

    def keep(result):
        results.append(result)
        if record is not None:
            record(result)

    proved_at = []
    for shape in _check_shapes(shapes, who):
        if numeric is not True:
            try:
                cert = checker(fn, shape, eps=eps, budget=budget, **options)
            except ImplementationError as exc:
                if numeric is None and isinstance(exc.__cause__, UnsupportedOperation):
                    pass  # fall back to the numeric cross-check below
                else:
                    raise AssertionError(f"{who}: {exc}") from None
            else:
                keep(cert)
                if not cert.ok:
                    note = f" (proved at {', '.join(proved_at)} before)" if proved_at else ""
                    raise AssertionError(failure_message(cert, who, note))
                proved_at.append(_shape_text(shape))
                continue
        numeric_options = _accepted(crosscheck, options)
        refused = sorted(set(options) - set(numeric_options))
        if refused:
            raise ValueError(f"{who}: the numeric cross-check cannot honour option(s) "
                             f"{', '.join(refused)}; pass numeric=False to require the exact check")
        # a layer with a numeric ε is cross-checked at that ε; otherwise at eps (default 1e-5)
        numeric_eps = None if layer is not None and not layer.symbolic_eps else _numeric_eps(eps, who)
        for dtype in ("float64", "float32"):
            try:
                res = crosscheck(shape=shape, eps=numeric_eps, dtype=dtype, points=points,
                                 **{role: fn}, **{k: options[k] for k in numeric_options})
            except ImplementationError as exc:
                raise AssertionError(f"{who}: {exc}") from None
            keep(res)
            if not res.ok:
                raise AssertionError(f"{who}: numeric cross-check of {role} failed at shape "
                                     f"{_shape_text(shape)} ({dtype}):\n{res}")
    return results


def assert_backward_correct(backward, shapes=DEFAULT_SHAPES, eps=None, numeric=None,
                            budget=DEFAULT_BUDGET, points=8, **options):
    """Assert ``backward(x, gamma, beta, grad_out, eps, xp) -> (dx, dgamma, dbeta)`` is Jᵀ·grad_out
    of the channel-first BatchNorm at every shape in ``shapes`` (see the module docstring).
    With ``layer=L`` (a :class:`symbolic_bn.layers.Layer`): ``backward(x, weight, bias, grad_out,
    eps[, xp])`` is checked against that layer at its own shape (``shapes`` may be left out).

    Returns the certificates (and cross-check results) it checked.  Raises ``AssertionError`` with
    :func:`failure_message` when an obligation is failed or undecided; ``ValueError`` /
    ``TypeError`` for bad arguments."""
    __tracebackhide__ = True
    return _assert_correct("backward", backward, shapes=shapes, eps=eps, numeric=numeric,
                           budget=budget, points=points, options=options)


def assert_forward_correct(forward, shapes=DEFAULT_SHAPES, eps=None, numeric=None,
                           budget=DEFAULT_BUDGET, points=8, **options):
    """Assert ``forward(x, gamma, beta, eps, xp) -> y`` is the channel-first BatchNorm at every
    shape in ``shapes`` (with ``layer=L``: that layer, at its shape).  Returns and raises as
    :func:`assert_backward_correct`."""
    __tracebackhide__ = True
    return _assert_correct("forward", forward, shapes=shapes, eps=eps, numeric=numeric,
                           budget=budget, points=points, options=options)


def assert_double_backward_correct(double_backward, shapes=None, eps=None, budget=DEFAULT_BUDGET, *,
                                   layer=None, **options):
    """Assert ``double_backward(x, weight, bias, grad_out, ggx, ggweight, ggbias, eps[, xp]) ->
    (gx, gweight, ggrad_out)`` is the derivative of the layer's Jᵀ·grad_out, exactly
    (:func:`symbolic_bn.checks.double_backward.check_double_backward`): at ``layer`` (a
    :class:`symbolic_bn.layers.Layer`; its own ε), or else at each of ``shapes`` (default
    :data:`DEFAULT_SHAPES`) of the channel-first BatchNorm with ``eps``.  No numeric fallback.

    Returns the certificates.  Raises ``AssertionError`` with :func:`failure_message` (and the
    counterexample's ggx, ggweight, ggbias) when an obligation is failed or undecided or the function
    cannot run exactly; ``ValueError`` / ``TypeError`` for bad arguments."""
    __tracebackhide__ = True
    from .checks.double_backward import check_double_backward
    who = "assert_double_backward_correct"
    unknown = [k for k in options if k not in _accepted(check_double_backward, options)]
    if unknown:
        raise TypeError(f"{who}: unknown option(s) {', '.join(sorted(unknown))} "
                        f"(not accepted by check_double_backward)")
    if layer is not None:
        if shapes is not None:
            raise ValueError(f"{who}: pass layer or shapes, not both")
        runs = [dict(layer=layer, eps=eps)]
    else:
        runs = [dict(shape=shape, eps=eps) for shape in _check_shapes(
            DEFAULT_SHAPES if shapes is None else shapes, who)]
    results, proved_at = [], []
    for run in runs:
        try:
            cert = check_double_backward(double_backward, budget=budget, **run, **options)
        except ImplementationError as exc:
            raise AssertionError(f"{who}: {exc}") from None
        results.append(cert)
        if not cert.ok:
            note = f" (proved at {', '.join(proved_at)} before)" if proved_at else ""
            message = failure_message(cert, who, note)
            cex = next((ob.counterexample for ob in cert.failed()), None) or {}
            gg = [(k, v) for k, v in cex.items() if k.startswith("gg") and k != "ggrad_out"]
            if gg:
                message += "\n    and " + ", ".join(f"{k} = {_value(v)}" for k, v in gg)
            raise AssertionError(message)
        proved_at.append(cert.subject.split(" at ", 1)[-1])
    return results
