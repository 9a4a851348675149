"""Assertions for users' own test suites.

    from symbolic_bn.testing import assert_backward_correct
    def test_my_backward():
        assert_backward_correct(my_backward)            # proves it exactly at (1,2,2) and (2,2,3)

``assert_backward_correct`` / ``assert_forward_correct`` run the exact symbolic check
(:func:`symbolic_bn.checks.check.check_backward` / ``check_forward``) at each shape.  If the function
cannot run on the symbolic namespace (it raised :class:`symbolic_bn.xp.UnsupportedOperation`,
e.g. a torch-only call) -- or ``numeric=True`` -- they fall back to
:func:`symbolic_bn.checks.crosscheck.crosscheck` in float64 and float32.  ``numeric=False`` forbids the
fallback.  On failure they raise ``AssertionError`` with the failing obligation and its exact
counterexample (inputs, grad_out, location, both values), or the crosscheck report.  An
obligation that is 'undecided' is also a failure (never a silent pass); the message says so.

The default shapes include one with two channels and H != W (2x2x3), so that per-channel mix-ups
and H·H-for-H·W bugs cannot pass on square planes.
"""
from __future__ import annotations

from .checks.check import DEFAULT_BUDGET, check_backward, check_forward
from .checks.crosscheck import ImplementationError, crosscheck
from .report.text import certificate_text
from .xp import UnsupportedOperation

__all__ = ["assert_backward_correct", "assert_forward_correct"]

DEFAULT_SHAPES = ((1, 2, 2), (2, 2, 3))


def _numeric_eps(eps):
    if eps is None:
        return 1e-5
    try:
        return float(eps)
    except (TypeError, ValueError):
        raise ValueError(f"eps must be None or a number, got {eps!r}") from None


def _failure_message(cert):
    lines = [cert.summary()]
    for ob in cert:
        if ob.status == "proved":
            continue
        lines.append(f"[{ob.status.upper()}] {ob.name}: {ob.statement}")
        if ob.detail:
            lines.append(f"  detail: {ob.detail}")
        cex = ob.counterexample
        if cex:
            lines.append(f"  counterexample at {cex['location']}:")
            if cex.get("undefined"):
                lines.append(f"    {cex['undefined']}")
            lines.append(f"    implementation = {cex['implementation']}  (≈ {cex['implementation_approx']:.17g})")
            lines.append(f"    reference      = {cex['reference']}  (≈ {cex['reference_approx']:.17g})")
            for key in ("x", "gamma", "beta", "grad_out", "eps"):
                if key in cex:
                    lines.append(f"    {key} = {cex[key]}")
        elif ob.status == "undecided":
            lines.append("  (not decided within the budget / by exact algebra; pass numeric=True "
                         "for a high-precision numeric cross-check instead)")
    lines.append("")
    lines.append(certificate_text(cert, verbose=False))
    return "\n".join(lines)


def _check_shapes(shapes, who):
    if isinstance(shapes, tuple) and len(shapes) == 3 and all(isinstance(s, int) for s in shapes):
        shapes = [shapes]
    try:
        shapes = [tuple(s) for s in shapes]
    except TypeError:
        raise ValueError(f"{who}: shapes must be a list of (C, H, W) tuples, got {shapes!r}") from None
    if not shapes:
        raise ValueError(f"{who}: shapes is empty: nothing to check")
    return shapes


def _assert(role, fn, shapes, eps, numeric, budget, points):
    who = f"assert_{role}_correct"
    if numeric not in (None, True, False):
        raise ValueError(f"{who}: numeric must be None, True or False, got {numeric!r}")
    checker = check_backward if role == "backward" else check_forward
    for shape in _check_shapes(shapes, who):
        if numeric is not True:
            try:
                cert = checker(fn, shape, eps=eps, budget=budget)
            except ImplementationError as exc:
                if numeric is None and isinstance(exc.__cause__, UnsupportedOperation):
                    pass  # fall back to the numeric cross-check below
                else:
                    raise AssertionError(f"{who}: {exc}") from exc
            else:
                if not cert.ok:
                    raise AssertionError(f"{who}: {role} is not proved correct at shape {shape}:\n"
                                         + _failure_message(cert))
                continue
        kwargs = {role: fn}
        for dtype in ("float64", "float32"):
            try:
                res = crosscheck(shape=shape, eps=_numeric_eps(eps), dtype=dtype, points=points, **kwargs)
            except ImplementationError as exc:
                raise AssertionError(f"{who}: {exc}") from exc
            if not res.ok:
                raise AssertionError(f"{who}: numeric cross-check of {role} failed at shape {shape} "
                                     f"({dtype}):\n{res}")


def assert_backward_correct(backward, shapes=DEFAULT_SHAPES, eps=None, numeric=None,
                            budget=DEFAULT_BUDGET, points=8):
    """Assert ``backward(x, gamma, beta, grad_out, eps, xp) -> (dx, dgamma, dbeta)`` is Jᵀ·grad_out
    of the channel-first BatchNorm (see the module docstring)."""
    _assert("backward", backward, shapes, eps, numeric, budget, points)


def assert_forward_correct(forward, shapes=DEFAULT_SHAPES, eps=None, numeric=None,
                           budget=DEFAULT_BUDGET, points=8):
    """Assert ``forward(x, gamma, beta, eps, xp) -> y`` is the channel-first BatchNorm."""
    _assert("forward", forward, shapes, eps, numeric, budget, points)
