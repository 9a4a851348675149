"""The layer options of ``prove``, ``check`` and ``autodiff``: ``--layer NAME --shape ...
[--groups G] [--normalized-shape N1,N2]`` (and ``--eps``), validated into plain values and made
into a :class:`symbolic_bn.layers.Layer`.

Each problem is a usage error naming its option; the plain values (a "spec") also reach a
'spawn' child process.
"""
from __future__ import annotations

import re

from .parsing import UsageError, _default_shape, _one_line, _shape_text, parse_eps, parse_int

# ``AxBxC...``: 1 to 6 dimensions (a layer's input shape); ``3,4``: a normalized_shape
DIMS_RE = re.compile(r"[0-9]{1,4}(?:x[0-9]{1,4}){0,5}", re.ASCII)
NORMALIZED_RE = re.compile(r"[0-9]{1,4}(?:,[0-9]{1,4}){0,5}", re.ASCII)
MAX_GROUPS = 4096

#: The layers of symbolic_bn.layers (kept here so that --help needs no import of the layers).
LAYER_NAMES = ("batchnorm_channel_first", "batch_norm", "instance_norm", "layer_norm", "group_norm",
               "rms_norm")
#: What --shape means for each layer, with an example that the layer accepts.
LAYER_SHAPES = {
    "batchnorm_channel_first": "CxHxW, e.g. 2x3x4",
    "batch_norm": "NxC or NxCx<spatial>, e.g. 2x3x2x2",
    "instance_norm": "NxCx<spatial>, e.g. 1x3x4x4",
    "layer_norm": "any shape ending in --normalized-shape, e.g. 2x3x4 with --normalized-shape 3,4",
    "group_norm": "NxCx<spatial> with --groups dividing C, e.g. 2x4x3 with --groups 2",
    "rms_norm": "any shape ending in --normalized-shape, e.g. 2x3x4 with --normalized-shape 4",
}


def parse_dims(text, option: str = "--shape"):
    """A layer's input shape ``AxBx...`` (1 to 6 positive integers joined by ``x``)."""
    if not isinstance(text, str) or not DIMS_RE.fullmatch(text):
        raise UsageError(f"{option} must be positive integers joined by x (e.g. 2x3x2x2), got {text!r}")
    dims = tuple(int(d) for d in text.split("x"))
    if min(dims) <= 0:
        raise UsageError(f"{option} dimensions must be positive, got {text!r}")
    return dims


def parse_normalized_shape(text):
    """``--normalized-shape``: comma-separated positive sizes (``3,4``)."""
    if not isinstance(text, str) or not NORMALIZED_RE.fullmatch(text):
        raise UsageError(f"--normalized-shape must be positive integers separated by commas (e.g. 3,4), "
                         f"got {text!r}")
    dims = tuple(int(d) for d in text.split(","))
    if min(dims) <= 0:
        raise UsageError(f"--normalized-shape sizes must be positive, got {text!r}")
    return dims


def reject_layer_only_options(args) -> None:
    """Without ``--layer``: ``--groups`` and ``--normalized-shape`` are a usage error."""
    for opt, value in (("--groups", args.groups), ("--normalized-shape", args.normalized_shape)):
        if value is not None:
            raise UsageError(f"{opt} needs --layer ({'group_norm' if opt == '--groups' else 'layer_norm or rms_norm'})")


def layer_spec(name, shape_text, groups_text, normalized_text, eps_text) -> dict:
    """Validate ``--layer NAME --shape ... [--groups G] [--normalized-shape ...]`` (and ``--eps``)
    and return plain values (they reach a 'spawn' child); :func:`build_layer` makes the Layer.
    Each problem is a usage error naming its option."""
    if name not in LAYER_NAMES:
        raise UsageError(f"--layer must be one of {', '.join(LAYER_NAMES)}, got {name!r}")
    if groups_text is not None and name != "group_norm":
        raise UsageError(f"--groups is only for --layer group_norm (got --layer {name})")
    if normalized_text is not None and name not in ("layer_norm", "rms_norm"):
        raise UsageError(f"--normalized-shape is only for --layer layer_norm or rms_norm (got --layer {name})")
    if shape_text is None:
        if name != "batchnorm_channel_first":
            raise UsageError(f"--layer {name} needs --shape ({LAYER_SHAPES[name]})")
        shape = _default_shape()
    else:
        shape = parse_dims(shape_text)
    groups = normalized = None
    if name == "group_norm":
        if groups_text is None:
            raise UsageError("--layer group_norm needs --groups G (the number of groups, dividing C)")
        groups = parse_int(groups_text, "--groups", 1, MAX_GROUPS)
    if name in ("layer_norm", "rms_norm"):
        if normalized_text is None:
            raise UsageError(f"--layer {name} needs --normalized-shape (the trailing sizes the statistics "
                             f"reduce over, e.g. {shape[-1]})")
        normalized = parse_normalized_shape(normalized_text)
    parse_eps(eps_text)  # a usage error naming --eps
    spec = {"name": name, "shape": shape, "groups": groups, "normalized_shape": normalized, "eps": eps_text}
    build_layer(spec)  # every constructor check, before anything runs
    return spec


def build_layer(spec):
    """The :class:`symbolic_bn.layers.Layer` of a :func:`layer_spec`; a constructor's ValueError
    becomes a usage error naming the option it is about."""
    from .. import layers
    name, shape = spec["name"], tuple(spec["shape"])
    eps = parse_eps(spec["eps"])
    try:
        if name == "batchnorm_channel_first":
            if len(shape) != 3:
                raise ValueError(f"shape: batchnorm_channel_first takes CxHxW (3 dimensions), got "
                                 f"{_shape_text(shape)}")
            return layers.batchnorm_channel_first(*shape, eps=eps)
        if name == "group_norm":
            return layers.group_norm(shape, spec["groups"], eps=eps)
        if name in ("layer_norm", "rms_norm"):
            return getattr(layers, name)(shape, tuple(spec["normalized_shape"]), eps=eps)
        return getattr(layers, name)(shape, eps=eps)
    except ValueError as exc:
        msg = _one_line(exc)
        option = "--shape"
        for prefix, opt in (("groups", "--groups"), ("normalized_shape", "--normalized-shape"),
                            ("eps", "--eps")):
            if msg.startswith(prefix):
                option = opt
        if msg.startswith("shape: "):
            msg = msg[len("shape: "):]
        raise UsageError(f"{option}: {msg} (--layer {name} --shape {_shape_text(shape)})") from None


def layer_label(spec) -> str:
    """``group_norm 2x4x3, G=2`` -- for progress lines."""
    text = f"{spec['name']} {_shape_text(spec['shape'])}"
    if spec.get("groups"):
        text += f", G={spec['groups']}"
    if spec.get("normalized_shape"):
        text += f", normalized_shape={','.join(map(str, spec['normalized_shape']))}"
    return text
