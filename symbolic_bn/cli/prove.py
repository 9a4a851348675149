"""``symbolic-bn prove``: the exact certificate of a layer's backward -- TorchLean's
channel-first BatchNorm graph by default, any layer of :mod:`symbolic_bn.layers` with
``--layer`` (``--shape``, ``--groups``, ``--normalized-shape``), higher derivatives with
``--order 2|3`` (:func:`symbolic_bn.prove`)."""
from __future__ import annotations

import json

from .layer_options import build_layer, layer_label, layer_spec, reject_layer_only_options
from .parsing import (UsageError, _default_shape, _one_line, _prove_budget, _shape_text, parse_budget, parse_eps,
                      parse_int, parse_shape)
from .progress import Progress


def _cmd_prove(args) -> tuple:
    from .. import batchnorm_channel_first, prove
    from ..report.text import certificate_text
    order = parse_int(args.order, "--order", 1, 3)
    eps_texts = args.eps or ["symbolic"]
    budget = _prove_budget(parse_budget(args.budget, "--budget"))
    if args.layer is None:
        reject_layer_only_options(args)
        shapes = [parse_shape(s) for s in (args.shape or [_shape_text(_default_shape())])]
        for e in eps_texts:
            parse_eps(e)
        subjects = [(f"proving {_shape_text(s)}", lambda s=s, e=e: batchnorm_channel_first(*s, eps=parse_eps(e)))
                    for s in shapes for e in eps_texts]
    else:
        specs = [layer_spec(args.layer, s, args.groups, args.normalized_shape, e)
                 for s in (args.shape or [None]) for e in eps_texts]
        subjects = [(f"proving {layer_label(sp)}", lambda sp=sp: build_layer(sp)) for sp in specs]
    certs = []
    with Progress(args.quiet) as prog:
        for label, make in subjects:
            prog.set(label + (f", order {order}" if order > 1 else ""))
            try:
                certs.append(prove(make(), budget=budget, backend=args.backend, order=order))
            except (ValueError, TypeError, OverflowError) as exc:  # bad shape/eps, empty domain, ...
                raise UsageError(_one_line(exc)) from None
    ok = all(c.ok for c in certs)
    out = []
    if args.json:
        out.append(json.dumps({"ok": ok, "certificates": [c.to_dict() for c in certs]},
                              indent=2, ensure_ascii=False))
    else:
        for c in certs:
            out.append(certificate_text(c, verbose=not args.brief))
            out.append("")
    return (0 if ok else 1), out
