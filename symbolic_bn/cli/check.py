"""``symbolic-bn check``: a user's forward / backward (or, with ``--double-backward``, double
backward) proved exactly by :func:`symbolic_bn.checks.check.check_backward` & co.

Functions with an ``xp`` parameter get the exact namespace, functions without one run as
unmodified NumPy code on exact arrays (NumPy's override protocols), ``--framework torch|jax``
functions are traced and run exactly (:mod:`symbolic_bn.checks.frameworks`); ``--numeric``
replaces the exact check by the mpmath cross-check (:func:`symbolic_bn.crosscheck`).  An
operation the exact engine cannot do is reported by name as "NOT CHECKED" (verdict UNDECIDED,
exit 1) -- the tool never switches to the numeric cross-check on its own, so a PASS always means
what was asked for.

The parent validates the arguments (:func:`_check_plan`), a child process imports and runs the
checked code (:func:`_run_check`, through :mod:`symbolic_bn.cli.child`).
"""
from __future__ import annotations

import json
import math
import os
import sys

from .child import NO_VERDICT, _in_child
from .layer_options import build_layer, layer_label, layer_spec, reject_layer_only_options
from .parsing import (MAX_DPS, UsageError, _default_shape, _min_dps, _one_line, _shape_text, parse_budget,
                      parse_eps, parse_int, parse_shape)
from .targets import _guard, check_target_syntax, load_target, require_framework

#: Exceptions that mean "the exact engine cannot do this operation" (not "the code is wrong").
_REFUSAL_TYPES = (("symbolic_bn.exact.errors", "UnsupportedOperation"),
                  ("symbolic_bn.frontends.torch_errors", "UnsupportedTorchOp"),
                  ("symbolic_bn.frontends.jax", "UnsupportedJaxPrimitive"))


def _is_refusal(exc) -> bool:
    """Whether an ImplementationError comes from an operation the exact engine (or a framework
    interpreter) refuses: such a cause anywhere in its cause/context chain."""
    kinds = []
    for mod, name in _REFUSAL_TYPES:
        module = sys.modules.get(mod)
        if module is not None and isinstance(getattr(module, name, None), type):
            kinds.append(getattr(module, name))
    seen, e = set(), exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if kinds and isinstance(e, tuple(kinds)):
            return True
        e = e.__cause__ or e.__context__
    return False


_ROLE_ARITY = {"forward": 4, "backward": 5}  # data arguments before the optional xp


def _check_plan(args) -> dict:
    """Everything ``check`` needs, validated in the parent (nothing of the checked code imported):
    plain values, so that the plan also reaches a 'spawn' child."""
    framework = args.framework
    if framework and args.numeric:
        raise UsageError("--numeric cannot be combined with --framework: the mpmath cross-check calls "
                         "NumPy code, while a framework function is checked exactly (drop --numeric)")
    if args.double_backward and args.numeric:
        raise UsageError("--double-backward has no numeric cross-check: drop --numeric")
    if args.double_backward and framework:
        raise UsageError("--double-backward checks xp or NumPy code, not --framework functions")
    eps_text = args.eps
    if framework:
        eps_text = "1e-5" if eps_text is None else eps_text
        if parse_eps(eps_text) is None:
            raise UsageError(f"--eps: a --framework function takes eps as a float, so eps must be a number "
                             f"such as 1e-5 (the default with --framework), got {eps_text!r}")
    eps_exact = parse_eps(eps_text)  # ε ≤ 0 is the API's: refused only where the domain is empty
    dps = parse_int(args.dps, "--dps", _min_dps(), MAX_DPS)
    budget = parse_budget(args.budget, "--budget")
    try:
        eps_float = 1e-5 if eps_exact is None else float(eps_exact)
    except (ValueError, OverflowError, TypeError):
        eps_float = math.nan
    spec = None
    if args.layer is not None or framework:
        spec = layer_spec(args.layer or "batchnorm_channel_first", args.shape, args.groups,
                          args.normalized_shape, eps_text)
        shape = tuple(spec["shape"])
    else:
        reject_layer_only_options(args)
        shape = parse_shape(args.shape) if args.shape is not None else _default_shape()
    check_target_syntax(args.backward, "MODULE:FUNCTION")
    if args.forward:
        check_target_syntax(args.forward, "--forward")
    if framework:
        require_framework(framework)
    return {"backward": args.backward, "forward": args.forward,
            "targets": [t for t in (args.backward, args.forward) if t],
            "role": "double_backward" if args.double_backward else "backward",
            "layer": spec, "framework": framework, "shape": shape,
            "shape_text": layer_label(spec) if spec else _shape_text(shape),
            "eps": eps_text, "eps_float": eps_float, "dps": dps, "budget": budget, "dtype": args.dtype,
            "numeric": bool(args.numeric), "brief": bool(args.brief), "json": bool(args.json),
            "cwd": os.getcwd()}


def _exact_check(role, fn, plan, layer):
    """One exact check through the public API: check_forward / check_backward (with ``layer=`` and
    ``framework=`` when given) or check_double_backward."""
    budget = plan["budget"]
    if role == "double_backward":
        try:
            from ..checks.double_backward import check_double_backward
        except ImportError as exc:
            raise UsageError(f"--double-backward is unavailable in this installation "
                             f"(symbolic_bn.checks.double_backward: {_one_line(exc)})") from None
        if layer is None:
            return check_double_backward(fn, shape=plan["shape"], eps=parse_eps(plan["eps"]), budget=budget)
        return check_double_backward(fn, layer=layer, budget=budget)
    from ..checks import check
    api = check.check_forward if role == "forward" else check.check_backward
    if layer is None:
        return api(fn, plan["shape"], parse_eps(plan["eps"]), budget=budget)
    if plan["framework"]:
        return api(fn, layer=layer, budget=budget, framework=plan["framework"])
    return api(fn, layer=layer, budget=budget)


def _numeric_check(need, plan, layer):
    """The mpmath cross-check of the functions in ``need`` ({'forward': fn, 'backward': fn})."""
    from ..checks.crosscheck import crosscheck
    eps_float = plan["eps_float"]
    if not (eps_float > 0 and math.isfinite(eps_float)):
        raise UsageError(f"--eps {plan['eps']!r} is not a positive finite float64, which the mpmath "
                         f"cross-check needs")
    common = dict(dtype=plan["dtype"], dps=plan["dps"], budget=plan["budget"])
    if layer is None:  # crosscheck passes xp only to functions that take it
        return crosscheck(forward=need.get("forward"), backward=need.get("backward"), shape=plan["shape"],
                          eps=eps_float, **common)
    return crosscheck(forward=need.get("forward"), backward=need.get("backward"), layer=layer,
                      eps=eps_float if layer.symbolic_eps else None, **common)


def _run_check(plan, say) -> tuple:
    """The check itself (in the child): returns ``(status, output lines)``; ``say(label)`` reports
    progress."""
    from ..checks.calling import takes_namespace
    from ..checks.crosscheck import ImplementationError
    from ..report.text import certificate_text
    layer = build_layer(plan["layer"]) if plan["layer"] else None
    backward = _guard(load_target(plan["backward"], "MODULE:FUNCTION"))
    forward = _guard(load_target(plan["forward"], "--forward")) if plan["forward"] else None

    notes, certs, numeric, failures, refused = [], [], {}, [], []
    need_numeric = {}
    for role, fn in (("forward", forward), (plan["role"], backward)):
        if fn is None:
            continue
        if plan["numeric"]:
            need_numeric[role] = fn
            continue
        if not plan["framework"] and role in _ROLE_ARITY and not takes_namespace(fn, _ROLE_ARITY[role]):
            notes.append(f"{role}: {getattr(fn, '__name__', 'function')} takes no xp argument: run as "
                         f"unmodified NumPy code on exact arrays")
        say(f"exact {role.replace('_', ' ')} check at {plan['shape_text']}", plan["budget"])
        try:
            cert = _exact_check(role, fn, plan, layer)
        except ImplementationError as exc:
            (refused if _is_refusal(exc) else failures).append(f"{role}: {_one_line(exc)}")
            continue
        except (ValueError, TypeError) as exc:
            raise UsageError(f"{role}: {_one_line(exc)}") from None
        certs.append(cert)
    if need_numeric:
        say(f"mpmath cross-check ({plan['dtype']}, dps {plan['dps']})", plan["budget"])
        try:
            numeric = {"result": _numeric_check(need_numeric, plan, layer)}
        except ImplementationError as exc:
            # the implementation raised or returned the wrong shape: a failed check
            numeric = {"error": _one_line(exc)}
        except ValueError as exc:
            raise UsageError(_one_line(exc)) from None
    res = numeric.get("result")
    ok = not failures and not refused and all(c.ok for c in certs) and (not numeric or (res is not None and res.ok))
    failed = bool(failures) or any(ob.status == "failed" for c in certs for ob in c) or "error" in numeric \
        or (res is not None and any(not o.ok for o in res.outputs.values()))
    verdict = "PASS" if ok else ("FAIL" if failed else "UNDECIDED")
    hint = ("; --numeric cross-checks it against mpmath instead" if plan["role"] != "double_backward"
            and not plan["framework"] else "")
    out = []
    if plan["json"]:
        doc = {"ok": ok, "verdict": verdict, "notes": notes, "failures": failures, "refused": refused,
               "certificates": [c.to_dict() for c in certs],
               "crosscheck": (res.to_dict() if res is not None else
                              ({"ok": False, "error": numeric["error"]} if numeric else None))}
        out.append(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        for n in notes:
            out.append(f"note: {n}")
        for c in certs:
            out.append(certificate_text(c, verbose=not plan["brief"]))
            failed_obs = [ob for ob in c if ob.status == "failed"]
            for ob in failed_obs:
                out.append(f"COUNTEREXAMPLE {ob.name}: "
                           + ", ".join(f"{k}={v}" for k, v in (ob.counterexample or {}).items()))
            out.append("")
        if res is not None:
            out.append(res.summary())
            for name, o in res.outputs.items():
                if not o.ok:
                    out.append(f"COUNTEREXAMPLE {name}: " + json.dumps(o.to_dict()["worst"], ensure_ascii=False))
        elif numeric:
            out.append(f"crosscheck FAILED: {numeric['error']}")
        for f in failures:
            out.append(f"FAILED {f}")
        for r in refused:
            out.append(f"NOT CHECKED {r} (nothing was proved about it{hint})")
        out.append(f"CHECK: {verdict}")
    return (0 if ok else 1), out


def _cmd_check(args):
    return _in_child(_check_plan(args), _run_check, args, "CHECK",
                     {"notes": [], "failures": [NO_VERDICT], "refused": [], "certificates": [], "crosscheck": None})
