"""``symbolic-bn autodiff``: a framework's own higher-order derivatives of a forward (a built-in
``torch.nn.functional`` normalization or MODULE:FUNCTION), every nesting of fwd and rev up to
``--order``: numerically against 50-digit references (:func:`symbolic_bn.crosscheck_autodiff`)
or, with ``--exact``, traced and proved (:func:`symbolic_bn.checks.framework_autodiff.check_autodiff`).

The parent validates the arguments (:func:`_autodiff_plan`), a child process imports and runs
the framework and the checked code (:func:`_run_autodiff`, through :mod:`symbolic_bn.cli.child`).
"""
from __future__ import annotations

import json
import os

from .child import _in_child
from .layer_options import LAYER_NAMES, LAYER_SHAPES, build_layer, layer_label, layer_spec
from .parsing import MAX_DPS, UsageError, _one_line, parse_budget, parse_eps, parse_int
from .targets import _guard, check_target_syntax, load_target, require_framework

#: TARGET names of the built-in torch functions (symbolic_bn.checks.autodiff.BUILTIN_TARGETS).
BUILTIN_TARGETS = tuple(f"torch.nn.functional.{n}" for n in
                        ("batch_norm", "instance_norm", "layer_norm", "group_norm", "rms_norm"))


def _builtin_target(text):
    """The full name of a built-in TARGET (``torch.nn.functional.X``, ``F.X`` or ``X``), else None."""
    if not isinstance(text, str):
        return None
    short = text.rsplit(".", 1)[-1] if text.startswith(("torch.nn.functional.", "F.")) else text
    full = f"torch.nn.functional.{short}"
    return full if full in BUILTIN_TARGETS and text in (full, f"F.{short}", short) else None


def _parse_modes(text, order):
    from ..checks import autodiff as A
    if text == "all":
        return "all"
    modes = tuple(m.strip() for m in text.split(","))
    try:
        return list(A._check_modes(modes, order))
    except ValueError as exc:
        raise UsageError(f"--modes: {_one_line(exc).removeprefix('modes: ')}") from None


def _autodiff_plan(args) -> dict:
    builtin = _builtin_target(args.target)
    framework = args.framework
    if builtin and framework != "torch":
        raise UsageError(f"TARGET {args.target} is a torch function; --framework {framework} needs "
                         f"MODULE:FUNCTION (a {framework} function f(x, weight, bias) -> y)")
    if not builtin:
        if ":" not in args.target:
            raise UsageError(f"TARGET must be one of {', '.join(BUILTIN_TARGETS)} or MODULE:FUNCTION "
                             f"(or path/to/file.py:FUNCTION), got {args.target!r}")
        check_target_syntax(args.target, "TARGET")
    name = args.layer or (builtin.rsplit(".", 1)[-1] if builtin else None)
    if name is None:
        raise UsageError("--layer is needed with MODULE:FUNCTION: the layer f implements "
                         f"({', '.join(LAYER_NAMES)})")
    if args.shape is None:
        raise UsageError(f"--shape is needed: the input shape of --layer {name} ({LAYER_SHAPES[name]})")
    if parse_eps(args.eps) is None:
        raise UsageError(f"--eps must be a number such as 1e-5 (f implements the layer with one eps), "
                         f"got {args.eps!r}")
    spec = layer_spec(name, args.shape, args.groups, args.normalized_shape, args.eps)
    default_order = "1" if args.exact else "3"
    order = parse_int(args.order if args.order is not None else default_order, "--order", 1, 3)
    modes = _parse_modes(args.modes, order)
    if args.exact and args.dtype != "float64":
        raise UsageError("--dtype: --exact traces in float64 only (drop --dtype, or drop --exact for the "
                         "numeric comparison in float32)")
    if not args.exact and args.budget is not None:
        raise UsageError("--budget is for --exact (the numeric comparison has no time budget)")
    points = parse_int(args.points, "--points", 1, 1000)
    seed = parse_int(args.seed, "--seed", 0, 2 ** 31 - 1)
    dps = parse_int(args.dps, "--dps", 50, MAX_DPS)
    budget = parse_budget(args.budget, "--budget") if args.budget is not None else 600.0
    require_framework(framework)
    return {"target": builtin or args.target, "builtin": bool(builtin),
            "targets": [] if builtin else [args.target], "layer": spec, "framework": framework,
            "order": order, "modes": modes, "exact": bool(args.exact), "dtype": args.dtype,
            "points": points, "seed": seed, "dps": dps, "budget": budget,
            "shape_text": layer_label(spec), "json": bool(args.json), "cwd": os.getcwd()}


def _run_autodiff(plan, say) -> tuple:
    """crosscheck_autodiff or check_autodiff (in the child): ``(status, output lines)``."""
    from ..checks.crosscheck import ImplementationError
    layer = build_layer(plan["layer"])
    if plan["builtin"]:
        from ..checks.autodiff import builtin_function
        try:
            f = builtin_function(plan["target"], layer)
        except ValueError as exc:
            raise UsageError(f"TARGET {plan['target']}: {_one_line(exc)}") from None
    else:
        f = _guard(load_target(plan["target"], "TARGET"))
    what = f"order {plan['order']} of {plan['target']} at {plan['shape_text']}"
    if plan["exact"]:
        try:
            from ..checks.framework_autodiff import autodiff_text, check_autodiff
        except ImportError as exc:
            raise UsageError(f"--exact is unavailable in this installation "
                             f"(symbolic_bn.checks.framework_autodiff: {_one_line(exc)})") from None
        say(f"tracing and proving {what}", plan["budget"])
        try:
            cert = check_autodiff(f, layer, framework=plan["framework"], order=plan["order"],
                                  modes=plan["modes"], budget=plan["budget"], seed=plan["seed"])
        except ImplementationError as exc:  # f itself does not trace or run exactly: not checked
            msg = _one_line(exc)
            if plan["json"]:
                return 1, [json.dumps({"ok": False, "verdict": "UNDECIDED", "error": msg, "certificates": []},
                                      indent=2, ensure_ascii=False)]
            return 1, [f"NOT CHECKED {plan['target']}: {msg} (no derivative of it was checked)",
                       "AUTODIFF: UNDECIDED"]
        except ValueError as exc:
            raise UsageError(_one_line(exc)) from None
        ok = cert.ok
        verdict = "PASS" if ok else ("FAIL" if any(ob.status == "failed" for ob in cert) else "UNDECIDED")
        if plan["json"]:
            return (0 if ok else 1), [json.dumps({"ok": ok, "verdict": verdict, "certificates": [cert.to_dict()]},
                                                 indent=2, ensure_ascii=False)]
        return (0 if ok else 1), [autodiff_text(cert), f"AUTODIFF: {verdict}"]
    from ..checks.autodiff import crosscheck_autodiff
    say(f"comparing {what} with the 50-digit reference")
    try:
        res = crosscheck_autodiff(f, layer, framework=plan["framework"], order=plan["order"],
                                  modes=plan["modes"], dtype=plan["dtype"], points=plan["points"],
                                  seed=plan["seed"], dps=plan["dps"])
    except ValueError as exc:  # f raising or returning the wrong shape/dtype is bad input (the API's)
        raise UsageError(_one_line(exc)) from None
    ok = res.ok
    verdict = "PASS" if ok else "FAIL"
    if plan["json"]:
        return (0 if ok else 1), [json.dumps({"ok": ok, "verdict": verdict, "crosscheck_autodiff": res.to_dict()},
                                             indent=2, ensure_ascii=False)]
    return (0 if ok else 1), [str(res), f"AUTODIFF: {verdict}"]


def _cmd_autodiff(args):
    return _in_child(_autodiff_plan(args), _run_autodiff, args, "AUTODIFF", {"certificates": []})
