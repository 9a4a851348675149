"""Closed-form backward, JVP and double backward (symbolic_bn.graphs.closed_forms).

* exact, on the engine: backward == Problem(layer).backward() (the engine's Jᵀg of
  layer.forward), entry by entry, every difference exactly zero; jvp == the engine's
  directional derivative of layer.forward along exact rational directions, and along symbolic
  ones (= ∂Φ/∂grad_out below); double_backward == the gradient, by the engine's chain rule, of
  Φ = Σ dx·ggx + Σ dweight·ggweight + Σ dbias·ggbias with (dx, dweight, dbias) the engine's
  first derivative and ggx, ggweight, ggbias fresh exact variables -- for every layer at two or
  more shapes, ε symbolic and ε = 1e-5;
* mpmath at 50 digits: double_backward == central differences of the closed-form backward
  (step 1e-20; truncation ~1e-40, rounding ~1e-30; tolerance 1e-25 relative); the symbolic
  (SymPy) namespace agrees with mpmath to 1e-40;
* torch (float64, optional): backward vs torch.autograd.grad, jvp vs torch.func.jvp,
  double_backward vs autograd.grad(create_graph=True) of the matching torch.nn.functional call,
  to 1e-10 relative;
* float64 properties (hypothesis, every layer at random shapes): ⟨jvp(u), g⟩ = ⟨backward(g), u⟩,
  ggrad_out = jvp, and the Hessian symmetry of ⟨g, y⟩ that double_backward must satisfy;
* mutants (dropped mean term, dropped variance term, statistics held constant in the double
  backward, sign flips, a missing γ, an N − 1 variance) are built and shown to fail both the
  exact comparison and the torch comparison;
* bad input: one-line ValueErrors naming the argument.
"""
from __future__ import annotations

import random
import warnings
from fractions import Fraction

import numpy as np
import pytest
import sympy
from hypothesis import given, settings, strategies as st

from symbolic_bn import layers
from symbolic_bn import xp as xps
from symbolic_bn.checks.problem import Problem
from symbolic_bn.exact import normal
from symbolic_bn.exact.calculus import directional
from symbolic_bn.exact.coordinates import Inputs
from symbolic_bn.exact.space import Space
from symbolic_bn.graphs import closed_forms as cf
from symbolic_bn.xp.engine import ExactNamespace, _pairwise_sum, to_values

EPS = 1e-5


# ---------------------------------------------------------------------------------------------
# the layers under test: every layer at two or more shapes


def _layer_specs():
    return [
        ("batchnorm_channel_first", lambda eps: layers.batchnorm_channel_first(2, 2, 3, eps=eps)),
        ("batchnorm_channel_first", lambda eps: layers.batchnorm_channel_first(3, 2, 2, eps=eps)),
        ("batch_norm", lambda eps: layers.batch_norm((2, 3), eps=eps)),
        ("batch_norm", lambda eps: layers.batch_norm((2, 3, 2), eps=eps)),
        ("batch_norm", lambda eps: layers.batch_norm((3, 2, 2, 1), eps=eps)),
        ("instance_norm", lambda eps: layers.instance_norm((2, 2, 3), eps=eps)),
        ("instance_norm", lambda eps: layers.instance_norm((1, 2, 2, 2), eps=eps)),
        ("layer_norm", lambda eps: layers.layer_norm((2, 3, 4), (3, 4), eps=eps)),
        ("layer_norm", lambda eps: layers.layer_norm((2, 3, 4), (4,), eps=eps)),
        ("layer_norm", lambda eps: layers.layer_norm((3, 5), (5,), eps=eps)),
        ("group_norm", lambda eps: layers.group_norm((2, 4, 2), 2, eps=eps)),
        ("group_norm", lambda eps: layers.group_norm((1, 6, 2), 3, eps=eps)),
        ("group_norm", lambda eps: layers.group_norm((2, 4), 2, eps=eps)),
        ("rms_norm", lambda eps: layers.rms_norm((3, 4), (4,), eps=eps)),
        ("rms_norm", lambda eps: layers.rms_norm((2, 3, 4), (3, 4), eps=eps)),
    ]


SPECS = _layer_specs()
SPEC_IDS = [f"{name}-{make(EPS).shape_text()}" for name, make in SPECS]
EPS_CASES = [None, EPS]  # None: the real symbol ε


def _flat(a):
    if isinstance(a, np.ndarray):
        a = a.view(np.ndarray)
    return list(np.asarray(a, dtype=object).ravel())


def exactly_equal(space, a, b) -> bool:
    """Every entry of a − b is exactly zero on the layer's side conditions."""
    a, b = _flat(a), _flat(b)
    assert len(a) == len(b)
    return all(normal.is_zero_value(space, u - v) for u, v in zip(a, b))


def _gradient_names(layer):
    return ["dx", "dweight"] + (["dbias"] if layer.bias_shape is not None else [])


# ---------------------------------------------------------------------------------------------
# the second-order exact setting: x, weight, bias, grad_out and the cotangents as variables


class SecondOrderProblem:
    """A Space with x (centered coordinates per group), weight, bias, grad_out, ggx, ggweight,
    ggbias and ε as variables and the layer's domain as facts (as checks.problem.Problem does for
    first order); ``reference()`` is the engine's gradient of Φ = ⟨Jᵀg, (ggx, ggw, ggb)⟩."""

    def __init__(self, layer):
        self.layer = layer
        space = self.space = Space(name=f"second order {layer.name}")
        inputs = self.inputs = Inputs(space)
        if layer.centered:
            inputs.centered("x", layer.input_shape, layer.group_of)
        else:
            inputs.plain("x", layer.input_shape, layer.group_of)
        owners = layer.param_groups()
        block_of_param = (lambda idx: next(iter(owners[idx])) if len(owners[idx]) == 1 else None)
        self.has_bias = layer.bias_shape is not None
        params = ["weight", "ggweight"] + (["bias", "ggbias"] if self.has_bias else [])
        for name in params:
            inputs.plain(name, layer.weight_shape, block_of_param)
        for name in ("grad_out", "ggx"):
            inputs.plain(name, layer.input_shape, layer.group_of)
        if layer.symbolic_eps:
            inputs.scalar("eps")
        self.xp = ExactNamespace(space)
        self.arrays = {name: to_values(space, inputs.array(name)) for name in ["x", "grad_out", "ggx"] + params}
        self.eps = space.var("eps") if layer.symbolic_eps else space.fraction(layer.eps)
        x = self.arrays["x"]
        for group, members in layer.members.items():
            xs = [x[idx] for idx in members]
            n = len(xs)
            if layer.centered:
                mu = _pairwise_sum(space, xs) * Fraction(1, n)
                terms = [v - mu for v in xs]
            else:
                terms = xs
            stat = space.assume_sum_of_squares(terms, Fraction(1, n), f"statistic of group {group}")
            space.assume_positive(stat + self.eps, f"the domain for group {group}")

    def get(self, name):
        return self.arrays.get(name)

    def _dot(self, a, b):
        space = self.space
        return _pairwise_sum(space, [space.multiply(u, v) for u, v in zip(_flat(a), _flat(b))])

    def reference(self):
        """(gx, gweight, ggrad_out): the engine's ∂Φ/∂(x, weight, grad_out)."""
        layer, a = self.layer, self.arrays
        y = layer.forward(a["x"], a["weight"], a.get("bias"), self.eps, self.xp)
        names = ["x", "weight"] + (["bias"] if self.has_bias else [])
        first = self.inputs.gradient(self._dot(a["grad_out"], y), names)
        phi = self._dot(first["x"], a["ggx"]) + self._dot(first["weight"], a["ggweight"])
        if self.has_bias:
            phi = phi + self._dot(first["bias"], a["ggbias"])
        second = self.inputs.gradient(phi, ["x", "weight", "grad_out"])
        return second["x"], second["weight"], second["grad_out"]

    def run(self, fn):
        a = self.arrays
        return fn(self.layer, a["x"], a["weight"], a["grad_out"], a["ggx"], a["ggweight"],
                  a.get("ggbias"), self.eps, self.xp)


def exact_backward_agrees(layer, fn) -> bool:
    p = Problem(layer)
    ref = p.backward()
    got = fn(layer, p.x, p.weight, p.bias, p.grad_out, p.eps, p.xp)
    names = _gradient_names(layer)
    assert len(got) == len(names)
    return all(exactly_equal(p.space, g, ref[n]) for g, n in zip(got, names))


def exact_double_backward_agrees(layer, fn) -> bool:
    s = SecondOrderProblem(layer)
    ref = s.reference()
    got = s.run(fn)
    return all(exactly_equal(s.space, g, r) for g, r in zip(got, ref))


def _rational(rng, shape, lo=-3, hi=3, den=4):
    arr = np.empty(shape, dtype=object)
    for idx in np.ndindex(*shape):
        arr[idx] = Fraction(rng.randint(lo * den, hi * den), rng.randint(1, den))
    return arr


def exact_jvp_agrees(layer, fn, seed=0) -> bool:
    """fn's JVP along exact rational directions == the engine's directional derivative of
    layer.forward (tangents mapped to the Problem's variables, centered coordinates included)."""
    p = Problem(layer, with_cotangent=False)
    rng = random.Random(seed)
    tx = _rational(rng, layer.input_shape)
    tw = _rational(rng, layer.weight_shape)
    tb = _rational(rng, layer.weight_shape) if p.b_name else None
    tangent = dict(p.inputs.point_values(p.x_name, tx))
    tangent.update(p.inputs.point_values(p.w_name, tw))
    if tb is not None:
        tangent.update(p.inputs.point_values(p.b_name, tb))
    want = [directional(p.space, v, tangent) for v in _flat(p.y)]
    xp = p.xp
    got = fn(layer, p.x, p.weight, p.bias, xp.asarray(tx), xp.asarray(tw),
             None if tb is None else xp.asarray(tb), p.eps, xp)
    assert tuple(got.shape) == layer.input_shape
    return all(normal.is_zero_value(p.space, g - w) for g, w in zip(_flat(got), want))


# ---------------------------------------------------------------------------------------------
# exact agreement, every layer


@pytest.mark.parametrize("eps", EPS_CASES, ids=["eps-symbolic", "eps-1e-5"])
@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_backward_is_the_engines_exact_gradient(spec, eps):
    layer = spec[1](eps)
    assert exact_backward_agrees(layer, cf.backward)


@pytest.mark.parametrize("eps", EPS_CASES, ids=["eps-symbolic", "eps-1e-5"])
@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_jvp_is_the_engines_directional_derivative(spec, eps):
    layer = spec[1](eps)
    assert exact_jvp_agrees(layer, cf.jvp)


@pytest.mark.parametrize("eps", EPS_CASES, ids=["eps-symbolic", "eps-1e-5"])
@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_double_backward_is_the_engines_second_derivative(spec, eps):
    layer = spec[1](eps)
    s = SecondOrderProblem(layer)
    ref = s.reference()
    got = s.run(cf.double_backward)
    for name, g, r in zip(("gx", "gweight", "ggrad_out"), got, ref):
        assert tuple(g.shape) == tuple(r.shape), name
        assert exactly_equal(s.space, g, r), name
    # ggrad_out is the JVP of the forward along the cotangent: jvp with symbolic directions
    a = s.arrays
    dy = cf.jvp(layer, a["x"], a["weight"], a.get("bias"), a["ggx"], a["ggweight"], a.get("ggbias"),
                s.eps, s.xp)
    assert exactly_equal(s.space, dy, ref[2])


def test_exact_comparison_can_fail():
    """The zero test is not vacuous: twice the right answer, or one entry off, is not zero."""
    layer = layers.layer_norm((2, 3), (3,))
    p = Problem(layer)
    dx, dw, db = cf.backward(layer, p.x, p.weight, p.bias, p.grad_out, p.eps, p.xp)
    assert exactly_equal(p.space, dx, p.backward()["dx"])
    assert not exactly_equal(p.space, dx * 2, p.backward()["dx"])
    assert not exactly_equal(p.space, db, p.backward()["dweight"])


# ---------------------------------------------------------------------------------------------
# mpmath (50 digits): finite differences of the backward; the SymPy namespace


MP = xps.mpmath_namespace(50)


def _mp(a):
    return None if a is None else xps.to_mpf_array(a, 50)


def _mp_dot(a, b):
    """Σ a·b at the namespace's 50 digits (a 0-d array's entry)."""
    return MP.sum(MP.asarray(a) * MP.asarray(b)).item()


@pytest.mark.parametrize("spec", SPECS[::2], ids=SPEC_IDS[::2])
def test_double_backward_matches_mpmath_central_differences(spec):
    """d/dh Φ(x + h·ux, w + h·uw, g + h·ug) at h = 0 by a central difference with h = 1e-20 at
    50 digits: truncation O(h²) ~ 1e-40, rounding ~ 1e-50/h = 1e-30; tolerance 1e-25 relative."""
    layer = spec[1](EPS)
    rng = random.Random(1)
    sh, ws = layer.input_shape, layer.weight_shape
    x, w, g = _rational(rng, sh), _rational(rng, ws), _rational(rng, sh)
    ux, uw, ug = _rational(rng, sh), _rational(rng, ws), _rational(rng, sh)
    t, W = _rational(rng, sh), _rational(rng, ws)
    B = _rational(rng, ws) if layer.bias_shape is not None else None
    eps = layer.eps
    h = Fraction(1, 10 ** 20)

    def phi(s):
        out = cf.backward(layer, _mp(x + s * ux), _mp(w + s * uw), None, _mp(g + s * ug), eps, MP)
        total = _mp_dot(out[0], _mp(t)) + _mp_dot(out[1], _mp(W))
        if B is not None:
            total = total + _mp_dot(out[2], _mp(B))
        return total

    fd = (phi(h) - phi(-h)) / (2 * MP.asarray(h).item())
    gx, gw, ggo = cf.double_backward(layer, _mp(x), _mp(w), _mp(g), _mp(t), _mp(W), _mp(B), eps, MP)
    terms = [_mp_dot(gx, _mp(ux)), _mp_dot(gw, _mp(uw)), _mp_dot(ggo, _mp(ug))]
    closed = terms[0] + terms[1] + terms[2]
    assert abs(closed - fd) <= 1e-25 * max(1, abs(closed))
    # and the test can fail: the largest of the three terms left out is far beyond the tolerance
    assert abs(closed - max(terms, key=abs) - fd) > 1e-3 * max(1, abs(closed))


@pytest.mark.parametrize("spec", SPECS[1::3], ids=SPEC_IDS[1::3])
def test_sympy_namespace_agrees_with_mpmath(spec):
    """The same code on exact SymPy values (ε rational and ε a symbol, substituted) equals the
    50-digit mpmath values to 1e-40."""
    layer = spec[1](EPS)
    rng = random.Random(2)
    sh, ws = layer.input_shape, layer.weight_shape
    pt = [_rational(rng, s) for s in (sh, ws, sh, sh, ws)]
    B = _rational(rng, ws) if layer.bias_shape is not None else None
    eps = Fraction(1, 8)
    sym = [xps.to_sympy_array(a) for a in pt]
    symB = None if B is None else xps.to_sympy_array(B)
    mp = [_mp(a) for a in pt]
    e_sym = layers.EPS_SYMBOL
    for xp, arrs, bb, e in ((xps.symbolic, sym, symB, sympy.Rational(1, 8)), (MP, mp, _mp(B), eps),
                            (xps.symbolic, sym, symB, e_sym)):
        x, w, g, t, W = arrs
        outs = list(cf.backward(layer, x, w, None, g, e, xp)) + [cf.jvp(layer, x, w, None, t, W, bb, e, xp)] \
            + list(cf.double_backward(layer, x, w, g, t, W, bb, e, xp))
        if xp is MP:
            mp_outs = outs
        elif e is e_sym:
            sym_eps_outs = outs
        else:
            sym_outs = outs
    for a, b, c in zip(sym_outs, mp_outs, sym_eps_outs):
        for u, v, s in zip(_flat(a), _flat(b), _flat(c)):
            assert abs(sympy.N(u, 60) - sympy.Float(str(v), 60)) < 1e-40
            assert abs(sympy.N(s.subs(e_sym, sympy.Rational(1, 8)), 60) - sympy.Float(str(v), 60)) < 1e-40


# ---------------------------------------------------------------------------------------------
# float64: numpy, torch


def _float_point(layer, seed=0):
    rng = np.random.default_rng(seed)
    sh, ws = layer.input_shape, layer.weight_shape
    hb = layer.bias_shape is not None
    return dict(x=rng.standard_normal(sh), w=rng.standard_normal(ws),
                b=rng.standard_normal(ws) if hb else None, g=rng.standard_normal(sh),
                t=rng.standard_normal(sh), W=rng.standard_normal(ws),
                B=rng.standard_normal(ws) if hb else None)


def _torch_forward(layer, F):
    eps = float(layer.eps)
    name = layer.name
    if name == "batchnorm_channel_first":
        return lambda x, w, b: F.instance_norm(x[None], weight=w, bias=b, eps=eps)[0]
    if name == "batch_norm":
        return lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True, eps=eps)
    if name == "instance_norm":
        return lambda x, w, b: F.instance_norm(x, weight=w, bias=b, eps=eps)
    if name == "layer_norm":
        return lambda x, w, b: F.layer_norm(x, layer.normalized_shape, w, b, eps)
    if name == "group_norm":
        return lambda x, w, b: F.group_norm(x, layer.groups, w, b, eps)
    return lambda x, w, b: F.rms_norm(x, layer.normalized_shape, w, eps)


def _torch_derivatives(layer, pt):
    """torch's (dx, dw[, db]), jvp and (gx, gw, ggrad_out), float64."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F
    f = _torch_forward(layer, F)
    T = lambda a: None if a is None else torch.tensor(a, dtype=torch.float64, requires_grad=True)
    x, w, b, g = T(pt["x"]), T(pt["w"]), T(pt["b"]), T(pt["g"])
    primals = (x, w) + ((b,) if b is not None else ())
    y = f(x, w, b)
    first = torch.autograd.grad(y, primals, g, create_graph=True)
    cot = [torch.tensor(pt[k], dtype=torch.float64) for k in ("t", "W", "B") if pt[k] is not None]
    second = torch.autograd.grad(first, (x, w, g), cot, allow_unused=True)
    second = [torch.zeros_like(v) if s is None else s for s, v in zip(second, (x, w, g))]
    tangents = tuple(cot)
    with warnings.catch_warnings():  # torch 2.13's torch.func.jvp calls the deprecated jit.script
        warnings.filterwarnings("ignore", message=".*torch.jit.script.* is deprecated", category=DeprecationWarning)
        _, dy = torch.func.jvp(lambda *a: f(a[0], a[1], a[2] if len(a) > 2 else None),
                               tuple(p.detach() for p in primals), tangents)
    as_np = lambda v: v.detach().numpy()
    return [as_np(v) for v in first], as_np(dy), [as_np(v) for v in second]


def _rel_error(got, want) -> float:
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    assert got.shape == want.shape
    return float(np.max(np.abs(got - want)) / max(1.0, float(np.max(np.abs(want)))))


def _ours(layer, pt, backward=cf.backward, jvp=cf.jvp, double_backward=cf.double_backward):
    bw = backward(layer, pt["x"], pt["w"], pt["b"], pt["g"], EPS, np)
    dy = jvp(layer, pt["x"], pt["w"], pt["b"], pt["t"], pt["W"], pt["B"], EPS, np)
    db = double_backward(layer, pt["x"], pt["w"], pt["g"], pt["t"], pt["W"], pt["B"], EPS, np)
    return list(bw), dy, list(db)


def torch_errors(layer, **fns):
    """Largest relative errors (backward, jvp, double backward) against torch, float64."""
    pt = _float_point(layer)
    t_bw, t_dy, t_db = _torch_derivatives(layer, pt)
    o_bw, o_dy, o_db = _ours(layer, pt, **fns)
    return (max(_rel_error(a, b) for a, b in zip(o_bw, t_bw)), _rel_error(o_dy, t_dy),
            max(_rel_error(a, b) for a, b in zip(o_db, t_db)))


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_torch_float64_agrees(spec):
    pytest.importorskip("torch")
    layer = spec[1](EPS)
    e_bw, e_jvp, e_db = torch_errors(layer)
    assert e_bw < 1e-10 and e_jvp < 1e-10 and e_db < 1e-10, (e_bw, e_jvp, e_db)


def test_numpy_forward_is_the_layers():
    """The float path normalizes as layer.forward does: a zero-tangent-in-x JVP along
    (0, weight, bias) reproduces y (y is linear in (weight, bias))."""
    for _, make in SPECS:
        layer = make(EPS)
        pt = _float_point(layer)
        y = layer.forward(pt["x"], pt["w"], pt["b"], EPS, np)
        dy = cf.jvp(layer, pt["x"], pt["w"], pt["b"], None, pt["w"], pt["b"], Fraction(1, 100000), np)
        assert _rel_error(dy, y) < 1e-14


# -- hypothesis: properties at random shapes of every layer

@st.composite
def random_layers(draw):
    kind = draw(st.sampled_from(layers.LAYER_NAMES))
    small = st.integers(1, 3)
    if kind == "batchnorm_channel_first":
        return layers.batchnorm_channel_first(draw(small), draw(small), draw(small), eps=1e-3)
    if kind in ("layer_norm", "rms_norm"):
        lead = draw(st.lists(small, max_size=2))
        norm = draw(st.lists(small, min_size=1, max_size=2))
        make = layers.layer_norm if kind == "layer_norm" else layers.rms_norm
        return make(tuple(lead + norm), tuple(norm), eps=1e-3)
    N = draw(small)
    spatial = draw(st.lists(small, min_size=1 if kind == "instance_norm" else 0, max_size=2))
    if kind == "group_norm":
        G, per = draw(small), draw(small)
        return layers.group_norm((N, G * per) + tuple(spatial), G, eps=1e-3)
    make = layers.batch_norm if kind == "batch_norm" else layers.instance_norm
    return make((N, draw(small)) + tuple(spatial), eps=1e-3)


def _dot(a, b):
    return float(np.sum(np.asarray(a) * np.asarray(b)))


@settings(max_examples=60, deadline=None)
@given(layer=random_layers(), seed=st.integers(0, 2 ** 16))
def test_float_adjoint_jvp_and_hessian_symmetry(layer, seed):
    rng = np.random.default_rng(seed)
    sh, ws = layer.input_shape, layer.weight_shape
    hb = layer.bias_shape is not None
    draw = lambda s: rng.standard_normal(s)
    x, w, g = draw(sh), draw(ws), draw(sh)
    u = (draw(sh), draw(ws), draw(ws) if hb else None)
    v = (draw(sh), draw(ws), draw(ws) if hb else None)
    eps = 1e-3
    bw = cf.backward(layer, x, w, None, g, eps, np)
    dy = cf.jvp(layer, x, w, None, *u, eps, np)
    # ⟨J u, g⟩ = ⟨u, Jᵀ g⟩
    lhs = _dot(dy, g)
    rhs = _dot(bw[0], u[0]) + _dot(bw[1], u[1]) + (_dot(bw[2], u[2]) if hb else 0.0)
    scale = 1 + np.sum(np.abs(dy * g))
    assert abs(lhs - rhs) <= 1e-9 * scale
    # ggrad_out of the double backward is the JVP
    gu = cf.double_backward(layer, x, w, g, *u, eps, np)
    assert np.allclose(gu[2], dy, rtol=1e-12, atol=1e-12 * (1 + np.max(np.abs(dy))))
    # (gx, gweight) = H·u with H the Hessian of ⟨g, y⟩ in (x, weight, bias) (∂/∂bias = 0):
    # symmetric, so ⟨H u, v⟩ = ⟨H v, u⟩
    gv = cf.double_backward(layer, x, w, g, *v, eps, np)
    huv = _dot(gu[0], v[0]) + _dot(gu[1], v[1])
    hvu = _dot(gv[0], u[0]) + _dot(gv[1], u[1])
    scale = 1 + np.sum(np.abs(gu[0] * v[0])) + np.sum(np.abs(gu[1] * v[1]))
    assert abs(huv - hvu) <= 1e-8 * scale


# ---------------------------------------------------------------------------------------------
# None cotangents, namespaces' agreement, bad input


def test_none_cotangents_are_zero():
    layer = layers.group_norm((2, 4, 2), 2)
    pt = _float_point(layer)
    zeros = {k: np.zeros_like(pt[k]) for k in ("t", "W", "B")}
    for drop in ("t", "W", "B"):
        args = {k: (None if k == drop else pt[k]) for k in ("t", "W", "B")}
        full = {k: (zeros[k] if k == drop else pt[k]) for k in ("t", "W", "B")}
        a = cf.double_backward(layer, pt["x"], pt["w"], pt["g"], args["t"], args["W"], args["B"], EPS, np)
        b = cf.double_backward(layer, pt["x"], pt["w"], pt["g"], full["t"], full["W"], full["B"], EPS, np)
        for u, v in zip(a, b):
            assert u.shape == v.shape and np.array_equal(u, v)
        a = cf.jvp(layer, pt["x"], pt["w"], None, args["t"], args["W"], args["B"], EPS, np)
        b = cf.jvp(layer, pt["x"], pt["w"], None, full["t"], full["W"], full["B"], EPS, np)
        assert np.array_equal(a, b)
    gx, gw, ggo = cf.double_backward(layer, pt["x"], pt["w"], pt["g"], None, None, None, EPS, np)
    assert not gx.any() and not gw.any() and not ggo.any() and gw.shape == (4,)


def test_bad_input_is_refused_in_one_line():
    layer = layers.batch_norm((2, 3, 2))
    pt = _float_point(layer)
    with pytest.raises(ValueError, match=r"^grad_out has shape \(2, 3\), the layer expects \(2, 3, 2\)$"):
        cf.backward(layer, pt["x"], pt["w"], pt["b"], pt["g"][..., 0], EPS, np)
    with pytest.raises(ValueError, match=r"^weight has shape \(2,\)"):
        cf.jvp(layer, pt["x"], pt["w"][:2], None, pt["t"], None, None, EPS, np)
    with pytest.raises(ValueError, match=r"^ggweight has shape"):
        cf.double_backward(layer, pt["x"], pt["w"], pt["g"], pt["t"], pt["W"][:1], None, EPS, np)
    with pytest.raises(ValueError, match=r"^eps: the NumPy namespace needs a number"):
        cf.backward(layer, pt["x"], pt["w"], pt["b"], pt["g"], layers.EPS_SYMBOL, np)
    rms = layers.rms_norm((2, 3), (3,))
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"^bias must be None for rms_norm"):
        cf.backward(rms, x, np.ones(3), np.ones(3), x, EPS, np)
    with pytest.raises(ValueError, match=r"^dbias must be None for rms_norm"):
        cf.jvp(rms, x, np.ones(3), None, x, None, np.ones(3), EPS, np)
    with pytest.raises(ValueError, match=r"^ggbias must be None for rms_norm"):
        cf.double_backward(rms, x, np.ones(3), x, x, None, np.ones(3), EPS, np)
    with pytest.raises(ValueError, match=r"^x is required$"):
        cf.backward(layer, None, pt["w"], pt["b"], pt["g"], EPS, np)


def test_layout_is_checked_against_the_layer():
    """A layer whose statistics groups are not the ones its name promises is refused, not
    silently differentiated with the wrong groups."""
    wrong = layers.Layer("batch_norm", (2, 3, 2), (3,), statistics_axes=(0, 2), eps=EPS,
                         param_of=lambda idx: (idx[1],), group_of=lambda idx: (idx[0], idx[1]))
    with pytest.raises(ValueError, match=r"^layer: .* statistics groups the closed forms do not know"):
        cf.backward(wrong, np.ones((2, 3, 2)), np.ones(3), np.ones(3), np.ones((2, 3, 2)), EPS, np)
    unknown = layers.Layer("weight_norm", (2, 3), (3,), statistics_axes=(1,), eps=EPS,
                           param_of=lambda idx: (idx[1],), group_of=lambda idx: idx[0])
    with pytest.raises(ValueError, match=r"^layer: no closed forms for"):
        cf.layout(unknown)
    lay = cf.layout(layers.group_norm((2, 6, 3), 3))
    assert lay.grouped_shape == (2, 3, 2, 3) and lay.statistics_axes == (2, 3)
    assert lay.param_broadcast == (1, 3, 2, 1) and lay.param_sum_axes == (0, 3)


# ---------------------------------------------------------------------------------------------
# mutants: wrong rules, built from the same pieces, caught by the exact and the torch comparison


def _pieces(layer, x, weight, grad_out, eps, xp, variance_divisor=None):
    lay = cf.layout(layer)
    eps = cf._eps_for(eps, xp)
    x, weight = xp.asarray(x), xp.asarray(weight)
    nz = cf._Normalized(lay, x, eps, xp)
    if variance_divisor is not None:  # an N − 1 variance
        xg = lay.to_grouped(x, xp)
        d = xg - lay.group_mean(xg, xp)
        n = int(np.prod([lay.grouped_shape[a] for a in lay.statistics_axes]))
        nz.r = 1 / xp.sqrt(xp.sum(d * d, axis=lay.statistics_axes, keepdims=True) / (n - 1) + eps)
        nz.xhat = d * nz.r
    g = lay.to_grouped(xp.asarray(grad_out), xp)
    return lay, nz, g, lay.broadcast_param(weight, xp)


def _backward_mutant(kind):
    def backward(layer, x, weight, bias, grad_out, eps, xp):
        lay, nz, g, w = _pieces(layer, x, weight, grad_out, eps, xp,
                                variance_divisor=True if kind == "bessel" else None)
        r, xhat, mean = nz.r, nz.xhat, nz.mean
        ghat = g if kind == "missing_gamma" else g * w
        if kind == "dropped_mean":
            dx = r * (ghat - xhat * mean(ghat * xhat))
        elif kind == "dropped_variance":
            dx = r * nz.centered(ghat)
        elif kind == "sign":
            dx = r * (nz.centered(ghat) + xhat * mean(ghat * xhat))
        else:
            dx = nz.project(ghat)
        out = (lay.to_input(dx, xp), lay.param_sum(g * xhat, xp))
        return out + ((lay.param_sum(g, xp),) if layer.bias_shape is not None else ())
    backward.__name__ = f"backward_{kind}"
    return backward


def _jvp_mutant(kind):
    def jvp(layer, x, weight, bias, dx, dweight, dbias, eps, xp):
        lay, nz, t, w = _pieces(layer, x, weight, dx, eps, xp)
        r, xhat = nz.r, nz.xhat
        pt = r * nz.centered(t) if kind == "dropped_variance" else nz.project(t)
        if kind == "missing_gamma":
            w = w * 0 + 1
        dy = w * pt + lay.broadcast_param(xp.asarray(dweight), xp) * xhat
        if dbias is not None:
            dy = dy + lay.broadcast_param(xp.asarray(dbias), xp) * (-1 if kind == "sign" else 1)
        return lay.to_input(dy, xp)
    return jvp


def _double_backward_mutant(kind):
    def double_backward(layer, x, weight, grad_out, ggx, ggweight, ggbias, eps, xp):
        lay, nz, g, w = _pieces(layer, x, weight, grad_out, eps, xp)
        r, xhat, mean, c = nz.r, nz.xhat, nz.mean, layer.centered
        t = lay.to_grouped(xp.asarray(ggx), xp)
        W = lay.broadcast_param(xp.asarray(ggweight), xp)
        ghat = g if kind == "missing_gamma" else g * w
        a = g * W
        pt = nz.project(t)
        m_gx, m_xt = mean(ghat * xhat), mean(xhat * t)
        if kind == "constant_statistics":  # μ and r saved without history (the PyTorch class)
            gx = r * a - r * r * (m_xt * ghat + m_gx * t)
        else:
            three = 1 if kind == "dropped_variance" else 3
            inner = mean(ghat * t) - (mean(ghat) * mean(t) if c else 0) - three * m_gx * m_xt
            term_a = r * (a - xhat * mean(xhat * a)) if kind == "dropped_mean" else nz.project(a)
            sign = 1 if kind == "sign" else -1
            gx = term_a + sign * r * r * (xhat * inner + m_gx * nz.centered(t) + m_xt * nz.centered(ghat))
        ggrad_out = w * pt + W * xhat
        if ggbias is not None:
            ggrad_out = ggrad_out + lay.broadcast_param(xp.asarray(ggbias), xp)
        return lay.to_input(gx, xp), lay.param_sum(g * pt, xp), lay.to_input(ggrad_out, xp)
    double_backward.__name__ = f"double_backward_{kind}"
    return double_backward


MUTANT_LAYERS = [
    lambda: layers.batch_norm((2, 3, 2), eps=EPS),
    lambda: layers.group_norm((2, 4, 2), 2, eps=EPS),
    lambda: layers.layer_norm((2, 3, 2), (3, 2), eps=EPS),
    lambda: layers.rms_norm((2, 3, 2), (2,), eps=EPS),
]
MUTANT_LAYER_IDS = ["batch_norm", "group_norm", "layer_norm", "rms_norm"]
_CENTERED_ONLY = {"dropped_mean", "bessel"}


def _applies(kind, layer):
    return layer.centered or kind not in _CENTERED_ONLY


def test_mutants_built_from_the_same_pieces_are_right_when_unmutated():
    """The mutants' scaffolding is sound: with no mutation they pass both comparisons, so a
    mutant that fails fails because of its mutation."""
    layer = layers.group_norm((2, 4, 2), 2, eps=EPS)
    assert exact_backward_agrees(layer, _backward_mutant("none"))
    assert exact_jvp_agrees(layer, _jvp_mutant("none"))
    assert exact_double_backward_agrees(layer, _double_backward_mutant("none"))
    if _has_torch():
        errs = torch_errors(layer, backward=_backward_mutant("none"), jvp=_jvp_mutant("none"),
                            double_backward=_double_backward_mutant("none"))
        assert max(errs) < 1e-10


def _has_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("make", MUTANT_LAYERS, ids=MUTANT_LAYER_IDS)
@pytest.mark.parametrize("kind", ["dropped_mean", "dropped_variance", "sign", "missing_gamma", "bessel"])
def test_backward_mutants_are_caught(kind, make):
    layer = make()
    if not _applies(kind, layer):
        pytest.skip(f"{layer.name} has no mean to drop")
    fn = _backward_mutant(kind)
    assert not exact_backward_agrees(layer, fn)
    if _has_torch():
        assert torch_errors(layer, backward=fn)[0] > 1e-6


@pytest.mark.parametrize("make", MUTANT_LAYERS, ids=MUTANT_LAYER_IDS)
@pytest.mark.parametrize("kind", ["dropped_variance", "sign", "missing_gamma"])
def test_jvp_mutants_are_caught(kind, make):
    layer = make()
    if kind == "sign" and layer.bias_shape is None:
        pytest.skip("rms_norm has no bias tangent to flip")
    fn = _jvp_mutant(kind)
    assert not exact_jvp_agrees(layer, fn)
    if _has_torch():
        assert torch_errors(layer, jvp=fn)[1] > 1e-6


@pytest.mark.parametrize("make", MUTANT_LAYERS, ids=MUTANT_LAYER_IDS)
@pytest.mark.parametrize("kind", ["dropped_mean", "dropped_variance", "constant_statistics", "sign",
                                  "missing_gamma"])
def test_double_backward_mutants_are_caught(kind, make):
    layer = make()
    if not _applies(kind, layer):
        pytest.skip(f"{layer.name} has no mean to drop")
    fn = _double_backward_mutant(kind)
    assert not exact_double_backward_agrees(layer, fn)
    if _has_torch():
        assert torch_errors(layer, double_backward=fn)[2] > 1e-6
