r"""Exact checks of a user's forward / backward against a normalization layer.

    forward(x, weight, bias, eps[, xp]) -> y
    backward(x, weight, bias, grad_out, eps[, xp]) -> (dx, dweight, dbias)     (rms_norm: (dx, dweight))

arrays in the layer's own layout (:mod:`symbolic_bn.layers`); without ``layer`` the layer is
TorchLean's ``batchnorm_channel_first`` at ``shape`` = (C, H, W), with the arguments named
``x, gamma, beta``.  The namespace ``xp`` is passed only to functions that declare it; others run
as unmodified NumPy code on exact arrays (:mod:`symbolic_bn.xp.engine`).

What a check does, on the exact engine (:mod:`symbolic_bn.exact`):

1. declares the inputs in a Space (:class:`~symbolic_bn.checks.problem.Problem`): x in centered
   coordinates per statistics group, weight, bias, a fully symbolic ``grad_out``, ε symbolic or
   exact; the domain ``var_g + ε > 0`` for every group;
2. builds the reference: the layer's closed-form forward, and ``Jᵀg`` as the gradient of ``Σ g·y``
   by the engine's chain rule -- never from the code under test;
3. runs the user's function once on symbolic copies of the inputs, recording every atom it
   creates (square roots, divisions, logs) with its side condition, and every float constant it
   uses with the rational it is read as (the simplest within half an ulp; listed among the
   assumptions);
4. decides each output entry ``user − reference = 0`` by exact normal forms;
5. shows every side condition the function met to hold on the domain -- or the obligation is
   'undecided', the condition named (``a·b/(a·c)`` with ``a`` possibly zero is never 'proved');
6. runs the function at exact points of the domain (:mod:`~symbolic_bn.checks.points`): when the
   proof failed, to find a counterexample; when it succeeded, still at the degenerate points (a
   constant group, a zero weight, an entry at its mean, ε = 0 where allowed), so that code whose
   behaviour there differs from the symbolic run is 'failed' with that point.

Branches on data (``if var == 0``, ``bool(gamma[c])``, ``eps or 1e-3`` with a symbolic ε) are decided
on the whole domain or refused with an :class:`ImplementationError` naming the file and line.
"""
from __future__ import annotations

import numbers
import time

import numpy as np

from .. import layers as L
from ..exact import normal
from ..exact.budget import BudgetExceeded, check_budget, time_budget
from ..exact.floats import float_log
from ..obligations.certificate import Certificate, Obligation
from .calling import call, function_name, read_outputs
from .crosscheck import ImplementationError
from .points import PointSearch
from .problem import Problem

__all__ = ["check_forward", "check_backward", "DEFAULT_BUDGET", "DEFAULT_SHAPE", "ImplementationError"]

#: Seconds allowed for a whole check (setup, the run, every decision, the points).
DEFAULT_BUDGET = 120.0

#: One default shape everywhere: two channels, and C, H, W pairwise different (so that n = C·W for
#: n = H·W, or H·H, cannot pass).
DEFAULT_SHAPE = (2, 3, 4)

#: Counterexample search: generic points tried when the proof does not go through.
SEARCH_POINTS = 6


def _layer_for(who, layer, shape, eps):
    if layer is not None:
        if not isinstance(layer, L.Layer):
            raise ValueError(f"{who}: layer must be a symbolic_bn.layers.Layer (e.g. layers.batch_norm((2, 3, 4)))"
                             f", got {type(layer).__name__}")
        if shape is not None and tuple(shape) != layer.input_shape:
            raise ValueError(f"{who}: shape {tuple(shape)} differs from the layer's input shape "
                             f"{layer.input_shape}; pass one of them")
        if eps is not None:
            raise ValueError(f"{who}: eps is the layer's (eps={layer.eps}); pass it to the layer constructor")
        return layer
    shape = DEFAULT_SHAPE if shape is None else shape
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__") or len(shape) != 3:
        raise ValueError(f"{who}: shape must be a (C, H, W) tuple of positive integers, got {shape!r}")
    try:
        return L.batchnorm_channel_first(*shape, eps=eps)
    except ValueError as exc:
        raise ValueError(f"{who}: {exc}") from None


def _validate(who, fn, budget, seed):
    if not callable(fn):
        raise ValueError(f"{who}: the function must be callable, got {type(fn).__name__}")
    budget = check_budget(budget, "budget")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"{who}: seed must be an integer, got {seed!r}")
    return budget


def _statement(role, name, problem):
    custom = getattr(problem, "statement_for", None)  # a Problem subclass of another role
    if custom is not None:
        return custom(name)
    layer = problem.layer
    shape = layer.shape_text()
    if role == "forward":
        what = f"forward(...) = the {layer.name} output y entrywise"
    else:
        arg = name[1:]
        what = f"backward's {name} = (∂y/∂{arg})ᵀ·grad_out for a fully symbolic grad_out ({layer.name} output y)"
    return f"{what}, for every input with {layer.domain_text()}, at shape {shape}"


def _assumptions(problem, floats):
    layer = problem.layer
    out = [layer.domain_text()]
    if layer.symbolic_eps:
        out.append(f"ε real (symbolic){', ' + _sign_text(layer.eps) if _sign_text(layer.eps) else ''}: "
                   "every ε for which the domain holds")
    else:
        out.append(f"ε = {layer.eps} (exact)")
    out += floats.assumptions()
    return out


def _sign_text(sym):
    for attr, text in (("is_positive", "ε > 0"), ("is_negative", "ε < 0"), ("is_nonnegative", "ε ≥ 0"),
                       ("is_nonpositive", "ε ≤ 0")):
        if getattr(sym, attr):
            return text
    return ""


METHOD = ("the user's function run once on the exact engine (polynomials over ℚ in the inputs, "
          "with atoms σ = sqrt(z), ι = 1/q and their side conditions) at symbolic inputs; the "
          "reference is the layer's closed form{bw}; each entry's difference decided zero by exact "
          "normal forms (σ² = z, ι·q = 1, denominators cleared by nonzero factors); every side "
          "condition the function met shown to hold on the domain; the function also run exactly "
          "at the degenerate points ({kinds}) and compared with the reference there")


def _check(role, fn, layer, shape, eps, budget, seed, *, problem_type=Problem, points_type=PointSearch):
    who = f"check_{role}"
    t0 = time.perf_counter()
    budget = _validate(who, fn, budget, seed)
    layer = _layer_for(who, layer, shape, eps)
    eps_argument = eps if isinstance(eps, float) else None
    where = layer.shape_text() if layer.name == "batchnorm_channel_first" else f"{layer.name} {layer.shape_text()}"
    cert = Certificate(f"{role} {function_name(fn)} at {where}",
                       parameters={"layer": layer.name, "shape": layer.input_shape,
                                   "eps": "symbolic ε" if layer.symbolic_eps else str(layer.eps),
                                   "eps_range": layer.eps_text(),
                                   "budget": budget, "seed": seed})
    out_names = ("y",) if role == "forward" else None
    deadline = None if budget is None else t0 + budget

    def remaining():
        return None if deadline is None else max(deadline - time.perf_counter(), 1e-3)

    try:
        with time_budget(remaining()):
            problem = problem_type(layer, with_cotangent=(role != "forward"))
            if out_names is None:
                out_names = problem.gradient_names()
            out_shapes = (layer.input_shape,) if role == "forward" else problem.gradient_shapes()
            reference = problem.reference_for(role)
            space = problem.space
            args = [problem.x.copy(), problem.weight.copy()]
            if problem.b_name:
                args.append(problem.bias.copy())
            elif layer.name == "rms_norm":
                args.append(None)
            if role != "forward":
                args.append(problem.grad_out.copy())
            args += [None if a is None else a.copy() for a in getattr(problem, "extra_arguments", ())]
            # ε reaches the function as an exact value of the engine (a float would be rounded by
            # Python arithmetic before the engine sees it: n * 1e-5 is not 12/100000)
            eps_value = problem.eps
            n_atoms = len(space.atoms)
            branch_error = None
            with float_log() as floats:
                try:
                    out = call(fn, role, args + [eps_value], problem.xp)
                    got = read_outputs(space, fn, role, out, out_names, out_shapes)
                except ImplementationError as exc:
                    if getattr(exc, "undefined", False):
                        got = None
                        branch_error = exc
                    elif exc.__cause__ is not None and type(exc.__cause__).__name__ == "BranchError":
                        got = None
                        branch_error = exc
                    else:
                        raise
            user_atoms = space.atoms[n_atoms:]
    except BudgetExceeded:
        return _all_undecided(cert, role, out_names or ("y",), layer, t0, budget,
                              "time budget exceeded while building the reference and running the function")

    points = points_type(problem, fn, role, out_names, out_shapes, eps_argument, seed)
    kinds = points.kinds()
    if got is None:
        # the symbolic run could not go on (a data-dependent branch, or undefined symbolically):
        # an exact point where the function is wrong is a better answer than the branch error
        try:
            with time_budget(remaining()):
                for name in out_names:
                    cex = points.counterexample(name, [(k, 0) for k in kinds] +
                                                [("generic", i) for i in range(1, SEARCH_POINTS)])
                    if cex is not None:
                        for n2 in out_names:
                            # undefined at a point: every output is (the function has no value there)
                            mine = cex if (n2 == name or cex.get("undefined")) else None
                            ob = _failed(role, n2, problem, floats, mine, points, t0)
                            cert.add(ob if ob is not None else _undecided(
                                role, n2, problem, floats, t0, f"not decided: {branch_error}"))
                        cert.seconds = time.perf_counter() - t0
                        return cert
        except BudgetExceeded:
            pass
        raise branch_error
    method = METHOD.format(bw=getattr(problem, "reference_words",
                                      ", Jᵀg by the engine's chain rule" if role == "backward" else ""),
                           kinds=", ".join(kinds))
    try:
        with time_budget(remaining()):
            unmet = space.unmet_conditions(user_atoms)
            conditions = [space.condition_text(a) for a in unmet]
    except BudgetExceeded:
        return _all_undecided(cert, role, out_names, layer, t0, budget, "time budget exceeded while "
                              "checking side conditions")
    for name in out_names:
        start = time.perf_counter()
        try:
            with time_budget(remaining()):
                ob = _decide_output(role, name, problem, got[name], reference[name], points, kinds,
                                    conditions, floats, method, start)
        except BudgetExceeded:
            ob = _undecided(role, name, problem, floats, start, f"time budget of {budget:g} s exceeded")
        cert.add(ob)
    cert.seconds = time.perf_counter() - t0
    cert.parameters["float_constants"] = [r.describe() for r in floats]
    cert.parameters["side_conditions"] = [space.condition_text(a) for a in user_atoms]
    return cert


def _decide_output(role, name, problem, got, want, points, kinds, conditions, floats, method, start):
    space = problem.space
    bad = None
    for idx in np.ndindex(*got.shape):
        d = got[idx] - want.view(np.ndarray)[idx]
        if not normal.is_zero_value(space, d):
            bad = idx
            break
    if bad is None:
        # proved symbolically: the degenerate points must agree too
        cex = points.counterexample(name, [(k, 0) for k in kinds])
        if cex is not None:
            return _failed(role, name, problem, floats, cex, points, start,
                           detail="the symbolic run proved the identity, but the function computes "
                                  f"something else at the {cex['point']} point (its behaviour there "
                                  "differs from the symbolic run)")
        if conditions:
            return _undecided(role, name, problem, floats, start,
                              "every entry's difference is zero, but only where these side conditions "
                              "the function met hold, which the domain does not imply: " + "; ".join(conditions),
                              method=method)
        return Obligation(f"{role}.{name}", _statement(role, name, problem), "proved", method,
                          assumptions=_assumptions(problem, floats), seconds=time.perf_counter() - start,
                          group=f"{role} {problem.layer.shape_text()}")
    keys = [("generic", 0)] + [(k, 0) for k in kinds if k != "generic"] + \
           [("generic", i) for i in range(1, SEARCH_POINTS)]
    cex = points.counterexample(name, keys)
    if cex is not None:
        return _failed(role, name, problem, floats, cex, points, start)
    where = f"{name}[{', '.join(map(str, bad))}]"
    return _undecided(role, name, problem, floats, start,
                      f"the exact normal form of {where} − reference is not zero, but no rational point "
                      "of the domain shows a difference (e.g. dependent square roots)"
                      + (f"; {'; '.join(points.notes)}" if points.notes else ""), method=method)


def _failed(role, name, problem, floats, cex, points, start, detail=None):
    if cex is None:
        return None
    if cex.get("undefined"):
        method = ("exact counterexample: the function, run exactly at a rational point inside the domain, "
                  "has no real value there (it divided by zero or took the square root of a negative number)")
        detail = detail or cex["undefined"]
    else:
        method = ("exact counterexample: the function run on the exact engine at a rational point of the "
                  "domain; the reference there by exact substitution; the difference confirmed by SymPy "
                  "with outward-rounded interval arithmetic (differ_exactly)")
    return Obligation(f"{role}.{name}", _statement(role, name, problem), "failed", method,
                      assumptions=_assumptions(problem, floats), seconds=time.perf_counter() - start,
                      counterexample=cex, group=f"{role} {problem.layer.shape_text()}", detail=detail)


def _undecided(role, name, problem, floats, start, detail, method="exact normal forms"):
    return Obligation(f"{role}.{name}", _statement(role, name, problem), "undecided", method,
                      assumptions=_assumptions(problem, floats), seconds=time.perf_counter() - start,
                      group=f"{role} {problem.layer.shape_text()}", detail=detail)


def _all_undecided(cert, role, names, layer, t0, budget, why):
    for name in names:
        cert.add(Obligation(f"{role}.{name}", f"{role} {name} at shape {layer.shape_text()}", "undecided",
                            why, assumptions=[layer.domain_text()], seconds=time.perf_counter() - t0,
                            group=f"{role} {layer.shape_text()}",
                            detail=f"time budget of {budget:g} s exceeded before every entry was decided"
                            if budget is not None else why))
    cert.seconds = time.perf_counter() - t0
    return cert


def check_forward(forward, shape=None, eps=None, budget=DEFAULT_BUDGET, seed=0, *, layer=None,
                  framework=None) -> Certificate:
    """Prove ``forward(x, weight, bias, eps[, xp]) -> y`` equal to the layer's output, exactly
    (module docstring).  One obligation, ``'forward.y'``.  ``framework="torch"`` / ``"jax"``: a
    framework-native forward (tensors in, ε a float), traced and run exactly
    (:mod:`symbolic_bn.checks.frameworks`)."""
    if framework is not None:
        from .frameworks import check_framework
        return check_framework("forward", forward, layer, framework, shape=shape, eps=eps,
                               budget=budget, seed=seed)
    return _check("forward", forward, layer, shape, eps, budget, seed)


def check_backward(backward, shape=None, eps=None, budget=DEFAULT_BUDGET, seed=0, *, layer=None,
                   framework=None, forward=None, weight_shape=None, bias_shape=None) -> Certificate:
    """Prove ``backward(x, weight, bias, grad_out, eps[, xp]) -> (dx, dweight, dbias)`` equal to
    ``Jᵀ·grad_out`` of the layer's forward, exactly (module docstring).  Obligations
    ``'backward.d<arg>'`` for each argument (``dx, dgamma, dbeta`` for the default layer).
    ``framework="torch"`` / ``"jax"``: a framework-native backward, traced and run exactly
    (:mod:`symbolic_bn.checks.frameworks`).

    ``forward=fwd`` (with ``shape``, ``weight_shape`` and optionally ``bias_shape``): the reference is
    ``Jᵀ·grad_out`` of your own ``fwd(x, weight, bias, eps[, xp])``, for any function the exact
    namespace runs (:mod:`symbolic_bn.checks.custom`; ``bias_shape=None``: no bias -- ``bias=None``
    is passed and the backward returns ``(dx, dweight)``)."""
    if forward is not None:
        if layer is not None or framework is not None:
            raise ValueError("check_backward: forward= (your own forward is the reference) cannot be "
                             "combined with " + ("layer=" if layer is not None else "framework="))
        from .custom import check_custom_backward
        return check_custom_backward(backward, forward, shape, weight_shape, bias_shape, eps, budget, seed)
    for name, value in (("weight_shape", weight_shape), ("bias_shape", bias_shape)):
        if value is not None:
            raise ValueError(f"check_backward: {name} is for a check against your own forward "
                             "(forward=fwd); a layer's shapes come from the layer")
    if framework is not None:
        from .frameworks import check_framework
        return check_framework("backward", backward, layer, framework, shape=shape, eps=eps,
                               budget=budget, seed=seed)
    return _check("backward", backward, layer, shape, eps, budget, seed)
