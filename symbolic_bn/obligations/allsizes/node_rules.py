"""The node kinds of the row-form graphs: forward, VJP and JVP rules, and the graph run through them.

Values of a group × position slot are callables (c, p) -> value, of a per-group slot c -> value,
of a weight slot j -> value; each rule receives the (layer) backend.  :data:`FORWARD_RULES`,
:data:`VJP_RULES` and :data:`JVP_RULES` give, per node kind, the forward, the VJP (one cotangent
contribution per input) and the JVP; the derivatives of sqrtClamp and inv are TorchLean's
declared f' (torchlean.md).  :func:`forward` evaluates a layer's stages, :func:`backprop` is
``Graph.backpropVec`` (reverse order, each slot's cotangent its seed plus every later VJP
contribution) and :func:`jvp` is ``Graph.jvpVec`` (forward-mode tangents stage by stage).
"""
from __future__ import annotations

from typing import Callable

from sympy import Add, Integer

from .layer_model import _memo, Model


def _f_reshape(be, a):
    return a


def _f_rowmean(be, a):
    return lambda c: be.Ninv * be.sum("N", lambda j: a(c, j))


def _f_bcast(be, v):
    return lambda c, p: v(c)


def _f_bcast_col(be, v):
    return lambda c, p: v(p)


def _f_gather(be, v):
    return lambda c, p: v(be.param(c, p))


def _f_sub(be, a, b):
    return lambda c, p: a(c, p) - b(c, p)


def _f_add(be, a, b):
    return lambda c, p: a(c, p) + b(c, p)


def _f_mul(be, a, b):
    return lambda c, p: a(c, p) * b(c, p)


def _f_addeps(be, z):
    return lambda c: z(c) + be.eps


def _f_sqrtclamp(be, z):
    return lambda c: be.sqrt_clamp(z(c))


def _f_inv(be, z):
    return lambda c: be.inv(z(c))


#: forward of each node kind
FORWARD_RULES: dict[str, Callable] = {
    "reshape": _f_reshape, "rowMean": _f_rowmean, "broadcastRow": _f_bcast, "broadcastCol": _f_bcast_col,
    "gather": _f_gather, "sub": _f_sub, "add": _f_add, "mul": _f_mul, "addEps": _f_addeps,
    "sqrtClamp": _f_sqrtclamp, "inv": _f_inv,
}


def _sqrt_deriv(be, z):
    """TorchLean's declared f'(z) = 1/(2·sqrt z) of sqrtClamp (for z > 0)."""
    return be.inv(2 * be.sqrt(z))


def _inv_deriv(be, z):
    """TorchLean's declared f'(z) = −(z²)⁻¹ of inv (for z ≠ 0)."""
    return -be.inv(z ** 2)


#: VJP of each node kind: (be, inputs, δ) -> one cotangent contribution per input position
VJP_RULES: dict[str, Callable] = {
    "reshape": lambda be, ins, d: (d,),
    "rowMean": lambda be, ins, d: (lambda c, p: d(c) * be.Ninv,),
    "broadcastRow": lambda be, ins, d: (lambda c: be.sum("N", lambda j: d(c, j)),),
    "broadcastCol": lambda be, ins, d: (lambda p: be.sum("C", lambda c: d(c, p)),),
    "gather": lambda be, ins, d: (lambda j: be.param_sum(j, d),),
    "sub": lambda be, ins, d: (d, lambda c, p: -d(c, p)),
    "add": lambda be, ins, d: (d, d),
    "mul": lambda be, ins, d: (lambda c, p: d(c, p) * ins[1](c, p),
                               lambda c, p: d(c, p) * ins[0](c, p)),
    "addEps": lambda be, ins, d: (lambda c: d(c) * 1,),
    "sqrtClamp": lambda be, ins, d: (lambda c: d(c) * _sqrt_deriv(be, ins[0](c)),),
    "inv": lambda be, ins, d: (lambda c: d(c) * _inv_deriv(be, ins[0](c)),),
}

#: JVP of each node kind: (be, inputs, input tangents) -> output tangent
JVP_RULES: dict[str, Callable] = {
    "reshape": lambda be, ins, ds: ds[0],
    "rowMean": lambda be, ins, ds: (lambda c: be.Ninv * be.sum("N", lambda j: ds[0](c, j))),
    "broadcastRow": lambda be, ins, ds: (lambda c, p: ds[0](c)),
    "broadcastCol": lambda be, ins, ds: (lambda c, p: ds[0](p)),
    "gather": lambda be, ins, ds: (lambda c, p: ds[0](be.param(c, p))),
    "sub": lambda be, ins, ds: (lambda c, p: ds[0](c, p) - ds[1](c, p)),
    "add": lambda be, ins, ds: (lambda c, p: ds[0](c, p) + ds[1](c, p)),
    "mul": lambda be, ins, ds: (lambda c, p: ins[0](c, p) * ds[1](c, p)
                                + ins[1](c, p) * ds[0](c, p)),
    "addEps": lambda be, ins, ds: (lambda c: ds[0](c) * 1),
    "sqrtClamp": lambda be, ins, ds: (lambda c: ds[0](c) * _sqrt_deriv(be, ins[0](c))),
    "inv": lambda be, ins, ds: (lambda c: ds[0](c) * _inv_deriv(be, ins[0](c))),
}


def _zero(shape):
    return (lambda c, p: Integer(0)) if shape == "CN" else (lambda c: Integer(0))


def _combine(parts, shape):
    if not parts:
        return _zero(shape)
    if len(parts) == 1:
        return parts[0]
    if shape == "CN":
        return _memo(lambda c, p: Add(*[f(c, p) for f in parts]))
    return _memo(lambda c: Add(*[f(c) for f in parts]))


def forward(M: Model) -> dict:
    """Values of every slot of the layer's row-form graph as callables, stage by stage."""
    be = M.be
    vals = {"x": M.x, "gamma": M.gamma}
    if M.spec.bias:
        vals["beta"] = M.beta
    for st in M.spec.stages:
        vals[st.name] = _memo(FORWARD_RULES[st.kind](be, *[vals[i] for i in st.inputs]))
    return vals


def backprop(M: Model, seed: dict, vjp_rules: dict | None = None) -> dict:
    """``Graph.backpropVec``: reverse order, slot cotangent = its seed + all later VJP
    contributions; returns the cotangents of the inputs x, gamma[, beta]."""
    rules = dict(VJP_RULES, **(vjp_rules or {}))
    vals = forward(M)
    shapes = M.spec.input_shapes()
    cot: dict = {name: ([seed[name]] if name in seed else []) for name in vals}
    for st in reversed(M.spec.stages):
        d = _combine(cot[st.name], st.shape)
        contribs = rules[st.kind](M.be, tuple(vals[i] for i in st.inputs), d)
        for name, contrib in zip(st.inputs, contribs):
            cot[name].append(_memo(contrib))
    return {name: _combine(cot[name], shape) for name, shape in shapes.items()}


def jvp(M: Model, tangents: dict, jvp_rules: dict | None = None) -> dict:
    """``Graph.jvpVec``: forward-mode tangents of every slot, stage by stage."""
    rules = dict(JVP_RULES, **(jvp_rules or {}))
    vals = forward(M)
    tan = {name: tangents.get(name, _zero(shape)) for name, shape in M.spec.input_shapes().items()}
    for st in M.spec.stages:
        tan[st.name] = _memo(rules[st.kind](M.be, tuple(vals[i] for i in st.inputs),
                                            tuple(tan[i] for i in st.inputs)))
    return tan
