"""prove(layer, order=2 / 3): higher-order obligations, and the tapes they are about.

Evidence asked by issue 13: order-2 and order-3 certificates proved for batchnorm_channel_first
and every layer at two shapes each; obligations that can fail do fail (mutant graphs, sabotaged
node rules, a sabotaged transformation, a wrong closed form), with counterexamples re-confirmed;
bad input is refused naming the argument.
"""
from __future__ import annotations

import random
import re
from fractions import Fraction

import numpy as np
import pytest
import sympy
from hypothesis import given, settings, strategies as st

from symbolic_bn import layers as L
from symbolic_bn.checks.autodiff import MODES_BY_ORDER, mode_plan
from symbolic_bn.exact.decide import differ_exactly
from symbolic_bn.graphs import backward_graph as BG
from symbolic_bn.graphs import closed_forms
from symbolic_bn.graphs import nodes as N
from symbolic_bn.graphs.algebra import ExactAlgebra
from symbolic_bn.graphs.layer_graphs import layer_graph
from symbolic_bn.obligations.prove import prove

LAYERS = [
    L.batchnorm_channel_first(1, 2, 2), L.batchnorm_channel_first(2, 1, 3),
    L.batch_norm((2, 2)), L.batch_norm((2, 1, 2)),
    L.instance_norm((1, 2, 2)), L.instance_norm((2, 1, 3)),
    L.layer_norm((2, 3), (3,)), L.layer_norm((1, 2, 2), (2, 2)),
    L.group_norm((1, 4, 1), 2), L.group_norm((2, 2, 2), 1),
    L.rms_norm((2, 2), (2,)), L.rms_norm((1, 2, 2), (2, 2)),
]


def _id(layer):
    return f"{layer.name}-{layer.shape_text().replace(' ', '')}"


# ------------------------------------------------------------------------------ proved

@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("layer", LAYERS, ids=_id)
def test_certificates_of_every_layer_are_proved(layer, order):
    cert = prove(layer, order=order, jobs=1)
    assert cert.ok, [(ob.name, ob.status, ob.detail) for ob in cert if not ob.proved]
    higher = [ob for ob in cert if ob.group == "higher-order"]
    names = {ob.name for ob in higher}
    for k in range(1, order + 1):
        for mode in MODES_BY_ORDER[k]:
            assert f"higher.mode.{mode}" in names
    for k in range(1, order):
        for mode in MODES_BY_ORDER[k]:
            assert {f"higher.tape.{mode}", f"higher.closure.{mode}.rev", f"higher.closure.{mode}.fwd"} <= names
    assert "higher.hessian_symmetric.fwd-over-rev" in names
    assert {f"higher.double_backward_closed_form.{n}"
            for n in ("gx", "g" + layer.argument_names[1], "ggrad_out", "tape")} <= names
    assert any(".jvp_as_nodes" in n for n in names) and any(".vjp_as_nodes" in n for n in names)
    assert cert.parameters["order"] == order


def test_exact_eps_certificates_are_proved():
    for layer in (L.batchnorm_channel_first(1, 2, 2, eps=Fraction(1, 10 ** 5)),
                  L.rms_norm((2, 2), (2,), eps=Fraction(1, 10 ** 5))):
        cert = prove(layer, order=3, jobs=1)
        assert cert.ok, [(ob.name, ob.detail) for ob in cert if not ob.proved]


def test_the_batchnorm_graph_subject_is_accepted():
    from symbolic_bn.graphs.batchnorm import batchnorm_channel_first
    cert = prove(batchnorm_channel_first(1, 2, 2), order=2, jobs=1)
    assert cert.ok and cert.parameters["order"] == 2


def test_order_k_includes_every_obligation_of_lower_orders():
    layer = L.batchnorm_channel_first(1, 2, 2)
    names = {k: [ob.name for ob in prove(layer, order=k, jobs=1)] for k in (1, 2, 3)}
    assert set(names[1]) < set(names[2]) < set(names[3])
    assert all(not n.startswith("higher.") for n in names[1])
    assert len(names[3]) == len(set(names[3]))


def test_statements_are_plain_words():
    cert = prove(L.layer_norm((2, 3), (3,)), order=2, jobs=1)
    for ob in cert:
        if ob.group == "higher-order":
            assert "symbolic_bn" not in ob.statement
            assert not re.search(r"\b[a-z_]+\.[a-z_]+\.[a-z_]+\(", ob.statement), ob.statement


# ------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("order", [0, 4, "2", 2.0, True, None, -1])
def test_bad_order_is_refused_naming_it(order):
    with pytest.raises(ValueError, match=r"^order must be 1, 2 or 3"):
        prove(L.batchnorm_channel_first(1, 2, 2), order=order)


def test_unknown_steps_and_modes_are_refused():
    graph = layer_graph(L.batchnorm_channel_first(1, 2, 2))
    with pytest.raises(ValueError, match="steps"):
        BG.tape_for_steps(graph, ("sideways",), [("u1_x", "u1_gamma", "u1_beta")])
    with pytest.raises(ValueError, match="unknown mode"):
        mode_plan("fwd-over-sideways")
    with pytest.raises(ValueError, match="tangent_names"):
        BG.jvp_tape(BG.base_tape(graph), ("t",))
    with pytest.raises(ValueError, match="seed_names"):
        BG.backward_tape(BG.base_tape(graph), ("x",))


# ------------------------------------------------------------------------------ can fail

def _confirmed(ob):
    cex = ob.counterexample
    assert ob.status == "failed" and cex
    assert differ_exactly(cex["left"], cex["right"]) is True
    for key in ("x", "gamma", "beta", "grad_out", "u1_x", "eps"):
        assert key in cex


def test_mutant_graph_fails_every_mode_with_confirmed_counterexamples():
    layer = L.batchnorm_channel_first(1, 2, 2)
    graph = layer_graph(layer)
    wrong = graph.replace("normalized", N.Mul("normalized", ("xMat", "inv_std_b"), (1, 4)))
    cert = prove(wrong, order=2, jobs=1)
    for k in (1, 2):
        for mode in MODES_BY_ORDER[k]:
            _confirmed(cert[f"higher.mode.{mode}"])
    # the tape of a wrong graph is still a tape: closed under differentiation
    assert cert["higher.closure.rev.rev"].proved and cert["higher.closure.fwd.fwd"].proved


def test_a_wrong_node_jvp_is_caught(monkeypatch):
    def bad_jvp(self, alg, args, tangents):
        a, b = args
        da, db = tangents
        return da * b  # drops a ⊙ db
    monkeypatch.setattr(N.Mul, "jvp", bad_jvp)
    cert = prove(L.batchnorm_channel_first(1, 2, 2), order=2, jobs=1, stages=False, end_to_end=False,
                 links=False, domain=False)
    _confirmed(cert["higher.mode.fwd-over-fwd"])
    _confirmed(cert["higher.mode.fwd-over-rev"])
    assert cert["higher.closure.rev.fwd"].status == "failed"
    assert cert["higher.mode.rev-over-rev"].proved  # no jvp in it
    kinds = [ob for ob in cert if ob.name.startswith("higher.kind.mul") and ob.name.endswith("jvp_as_nodes")]
    assert kinds and all(ob.status == "failed" for ob in kinds)


def test_a_sabotaged_transformation_is_caught(monkeypatch):
    real = BG._Builder.derivative

    def wrong_derivative(self, node, variant):
        d = real(self, node, variant)
        if variant == "sqrt_clamp":  # 1/sqrt z instead of 1/(2 sqrt z)
            self.nodes[-1].factor = Fraction(1)
        return d
    monkeypatch.setattr(BG._Builder, "derivative", wrong_derivative)
    cert = prove(L.batchnorm_channel_first(1, 2, 2), order=2, jobs=1, stages=False, end_to_end=False,
                 links=False, domain=False)
    assert cert["higher.tape.rev"].status == "failed"
    assert cert["higher.tape.fwd"].status == "failed"
    for mode in MODES_BY_ORDER[2]:
        _confirmed(cert[f"higher.mode.{mode}"])
    assert cert["higher.closure.rev.rev"].proved  # a wrong backward graph is still a graph
    sqrt = [ob for ob in cert if ob.name.startswith("higher.kind.sqrtClamp")]
    assert sqrt and all(ob.status == "failed" for ob in sqrt)
    for ob in sqrt:
        assert differ_exactly(ob.counterexample["left"], ob.counterexample["right"]) is True
        assert all(v > 0 for row in [ob.counterexample["context"]["X0"]] for v in np.ravel(row))


def test_a_wrong_closed_form_double_backward_is_caught(monkeypatch):
    real = closed_forms.double_backward

    def wrong(layer, x, w, g, ggx, ggw, ggb, eps, xp):
        gx, gw, ggo = real(layer, x, w, g, ggx, ggw, ggb, eps, xp)
        return gx, gw * 2, ggo
    monkeypatch.setattr(closed_forms, "double_backward", wrong)
    cert = prove(L.layer_norm((2, 3), (3,)), order=2, jobs=1, stages=False, end_to_end=False,
                 links=False, domain=False)
    assert cert["higher.double_backward_closed_form.gx"].proved
    ob = cert["higher.double_backward_closed_form.gweight"]
    assert ob.status == "failed"
    assert differ_exactly(ob.counterexample["left"], ob.counterexample["right"]) is True
    assert cert["higher.double_backward_closed_form.tape"].status == "failed"


def test_hessian_symmetry_can_fail(monkeypatch):
    def bad_vjp(self, alg, args, delta):
        a, b = args
        return [(self.inputs[0], delta * b), (self.inputs[1], delta * a * alg.const(2))]
    monkeypatch.setattr(N.Mul, "vjp", bad_vjp)
    cert = prove(L.batchnorm_channel_first(1, 2, 2), order=2, jobs=1, stages=False, end_to_end=False,
                 links=False, domain=False)
    assert cert["higher.hessian_symmetric.rev-over-rev"].status == "failed"


def test_a_node_of_unknown_kind_is_undecided_never_proved():
    class MyMul(N.Mul):
        pass
    layer = L.batchnorm_channel_first(1, 2, 2)
    graph = layer_graph(layer)
    node = graph.nodes[[n.name for n in graph.nodes].index("scaled")]
    mutant = graph.replace("scaled", MyMul("scaled", node.inputs, node.shape))
    cert = prove(mutant, order=2, jobs=1)
    higher = [ob for ob in cert if ob.group == "higher-order"]
    assert not cert.ok
    unknown = [ob for ob in higher if "scaled" in ob.name]
    assert unknown and all(ob.status == "undecided" for ob in unknown)
    needs_tapes = [ob for ob in higher if ob.name.startswith(("higher.closure.", "higher.tape.",
                                                              "higher.hessian_symmetric."))]
    needs_tapes += [cert[f"higher.mode.{m}"] for m in MODES_BY_ORDER[2]]
    assert needs_tapes and all(ob.status == "undecided" and "scaled" in ob.detail for ob in needs_tapes)
    # order 1 on the tape uses the node's own rules, which are a Mul's: proved
    assert cert["higher.mode.fwd"].proved and cert["higher.mode.rev"].proved


def test_an_unknown_elementwise_function_is_unsupported():
    layer = L.batchnorm_channel_first(1, 2, 2)
    graph = layer_graph(layer)
    sq = N.Elemwise(name="std", inputs=("var_eps",), shape=(1,), kind="sqrtClamp",
                    f=lambda alg, z: alg.sqrt_clamp(z), fprime=lambda alg, z: alg.sqrt_clamp_deriv(z),
                    side_condition="z > 0", condition_input=0)
    with pytest.raises(BG.UnsupportedNode, match="std"):
        BG.backward_tape(BG.base_tape(graph.replace("std", sq)), ("grad_out",))


# ------------------------------------------------------------------------------ the tapes themselves

def _rationals(shape, draw):
    arr = np.empty(shape, dtype=object)
    for idx in np.ndindex(*shape):
        arr[idx] = sympy.Rational(draw(-9, 9), draw(1, 4))
    return arr


def _equal(a, b):
    return all(differ_exactly(a[i], b[i]) is False for i in np.ndindex(*b.shape))


@settings(max_examples=12, deadline=None)
@given(layer=st.sampled_from([L.batchnorm_channel_first(1, 2, 3, eps=Fraction(1, 10)),
                              L.batch_norm((2, 2), eps=Fraction(1, 10)),
                              L.layer_norm((2, 3), (3,), eps=Fraction(1, 10)),
                              L.group_norm((1, 4, 1), 2, eps=Fraction(1, 10)),
                              L.rms_norm((2, 2), (2,), eps=Fraction(1, 10))]),
       seed=st.integers(0, 10 ** 6))
def test_backward_and_jvp_tapes_compute_backprop_and_jvp_at_rational_points(layer, seed):
    """Independent of the engine: SymPy numbers with TorchLean's totalized conventions."""
    rng = random.Random(seed)
    graph = layer_graph(layer)
    names = layer.argument_names
    inputs = {n: _rationals(graph.input_shapes[n], rng.randint) for n in names}
    g = _rationals(layer.input_shape, rng.randint)
    u = {n: _rationals(graph.input_shapes[n], rng.randint) for n in names}
    alg = ExactAlgebra()
    back = BG.backward_tape(BG.base_tape(graph), ("grad_out",))
    got = back.graph.evaluate({**inputs, "grad_out": g}, alg)
    want = graph.backprop(inputs, {graph.nodes[-1].name: g}, alg)
    for o, n in zip(back.outputs, names):
        assert _equal(got[o], want[n])
    jvp = BG.jvp_tape(BG.base_tape(graph), tuple("u_" + n for n in names))
    got = jvp.graph.evaluate({**inputs, **{"u_" + n: u[n] for n in names}}, alg)
    assert _equal(got[jvp.outputs[0]], graph.jvp(inputs, u, alg)[graph.nodes[-1].name])
    assert all(isinstance(node, N.Node) for node in back.graph.nodes)


def test_tape_modes_follow_autodiff_naming():
    graph = layer_graph(L.batchnorm_channel_first(1, 2, 2))
    names = ("x", "gamma", "beta")
    hvp = BG.tape_for_steps(graph, ("rev", "fwd"), [("g",), tuple("u_" + n for n in names)])
    assert hvp.mode == "fwd-over-rev" and not hvp.y_valued
    assert len(hvp.outputs) == 3
    ff = BG.tape_for_steps(graph, ("fwd", "fwd"), [tuple("u_" + n for n in names), tuple("v_" + n for n in names)])
    assert ff.mode == "fwd-over-fwd" and ff.y_valued and len(ff.outputs) == 1


def test_new_node_kinds():
    alg = ExactAlgebra()
    idx = np.array([[0, 1], [1, 1]], dtype=np.int64)
    s = BG.ScatterAdd("s", ("a",), (3,), index=idx)
    a = np.array([[1, 2], [3, 4]], dtype=object)
    assert list(s.forward(alg, a)) == [1, 9, 0]
    (slot, back), = s.vjp(alg, [a], np.array([5, 6, 7], dtype=object))
    assert slot == "a" and back.tolist() == [[5, 6], [6, 6]]
    sc = BG.Scale("c", ("a",), (2, 2), factor=Fraction(-1, 2))
    assert sc.forward(alg, a).tolist() == [[sympy.Rational(-1, 2), -1], [sympy.Rational(-3, 2), -2]]
    z = BG.Zeros("z", (), (2,))
    assert z.forward(alg).tolist() == [0, 0] and z.vjp(alg, [], None) == []
    with pytest.raises(ValueError, match="scatterAdd"):
        BG.ScatterAdd("s", ("a",), (1,), index=idx)


def test_parallel_certificate_equals_the_serial_one():
    layer = L.rms_norm((32, 2), (2,))  # 64 elements: the fork pool runs
    flags = dict(order=2, stages=False, end_to_end=False, links=False, domain=False)
    parallel = prove(layer, jobs=2, **flags)
    serial = prove(layer, jobs=1, **flags)
    assert parallel.parameters["jobs"] == 2 and parallel.parameters["order"] == 2
    assert parallel.ok
    assert [(o.name, o.status) for o in parallel] == [(o.name, o.status) for o in serial]
