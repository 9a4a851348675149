"""Deliberately wrong node rules are caught: their obligation is 'failed' with an exact
counterexample, which this file re-evaluates independently (directional derivatives in one
variable h, exact arithmetic) to confirm that it really violates the identity."""
import dataclasses
import json

import numpy as np
import pytest
import sympy

from symbolic_bn import batchnorm_channel_first, prove
from symbolic_bn.graphs import nodes as N
from symbolic_bn.graphs.algebra import EXACT
from symbolic_bn.exact.decide import differ_exactly
from symbolic_bn.graphs.graph import Graph
from symbolic_bn.obligations.prove import prove_node


def _arrays(graph, node, point, prefix=""):
    k = graph.nodes.index(node)
    slots = graph.input_names + [n.name for n in graph.nodes[:k]]
    out = {}
    for s in slots:
        arr = np.empty(graph.shapes[s], dtype=object)
        for idx in np.ndindex(arr.shape):
            arr[idx] = point.get(f"{prefix}{s}[{','.join(map(str, idx))}]", sympy.Integer(0))
        out[s] = arr
    return out


def _delta(graph, node, point):
    arr = np.empty(graph.shapes[node.name], dtype=object)
    for idx in np.ndindex(arr.shape):
        arr[idx] = point.get(f"δ{node.name}[{','.join(map(str, idx))}]", sympy.Integer(0))
    return arr


def _contrib(node, args, delta):
    out = {}
    for slot, c in node.vjp(EXACT, args, delta):
        out[slot] = out[slot] + c if slot in out else c
    return out


def confirm(graph, node, ob):
    """Re-evaluate the counterexample of obligation ``ob`` and check it violates the identity."""
    cex = ob.counterexample
    point = cex["point"]
    X = _arrays(graph, node, point)
    args = [X[i] for i in node.inputs]
    kind = ob.name.rsplit(".", 1)[1]
    if kind == "adjoint":
        dX = _arrays(graph, node, point, "d")
        delta = _delta(graph, node, point)
        jv = node.jvp(EXACT, args, [dX[i] for i in node.inputs])
        lhs = sympy.Add(*[jv[i] * delta[i] for i in np.ndindex(jv.shape)])
        rhs = sympy.Add(*[dX[s][i] * c[i] for s, c in _contrib(node, args, delta).items() for i in np.ndindex(c.shape)])
    else:
        h = sympy.Symbol("h")
        label = cex["at"]
        slot, idx = label.split("[")
        idx = tuple(int(t) for t in idx.rstrip("]").split(","))
        if kind == "derivative":
            dX = _arrays(graph, node, point, "d")
            lhs = node.jvp(EXACT, args, [dX[i] for i in node.inputs])[idx]
            moved = [X[i] + h * dX[i] for i in node.inputs]
            rhs = sympy.diff(node.forward(EXACT, *moved)[idx], h).subs(h, 0)
        else:  # transpose: vjp_j vs d/dh <f(X + h e_j), δ>
            delta = _delta(graph, node, point)
            c = _contrib(node, args, delta)
            lhs = c[slot][idx] if slot in c else sympy.Integer(0)
            moved = []
            for i in node.inputs:
                a = X[i].copy()
                if i == slot:
                    a[idx] = a[idx] + h
                moved.append(a)
            f = node.forward(EXACT, *moved)
            rhs = sympy.diff(sympy.Add(*[f[i] * delta[i] for i in np.ndindex(f.shape)]), h).subs(h, 0)
    assert differ_exactly(lhs, rhs) is True, (ob.name, lhs, rhs)
    assert differ_exactly(lhs, cex["lhs"]) is False and differ_exactly(rhs, cex["rhs"]) is False


class ReshapeScrambled(N.Reshape):
    def vjp(self, alg, args, delta):
        return [(self.inputs[0], delta.reshape(-1)[::-1].reshape(args[0].shape))]


class RowMeanMissingInvN(N.RowMean):
    def vjp(self, alg, args, delta):
        m, n = args[0].shape
        out = np.empty((m, n), dtype=object)
        for i in range(m):
            for j in range(n):
                out[i, j] = delta[i]
        return [(self.inputs[0], out)]


class BroadcastRowMeanInsteadOfSum(N.BroadcastRow):
    def vjp(self, alg, args, delta):
        (contrib,), = [c for _, c in super().vjp(alg, args, delta)],
        return [(self.inputs[0], contrib * alg.const(sympy.Rational(1, self.shape[1]).p / self.shape[1]))]


class BroadcastColRowSum(N.BroadcastCol):
    def vjp(self, alg, args, delta):
        m, n = self.shape
        return [(self.inputs[0], np.array([alg.sum(delta[i, j] for j in range(n)) for i in range(m)], dtype=object))]


class AddDropsSecond(N.Add):
    def vjp(self, alg, args, delta):
        return [(self.inputs[0], delta), (self.inputs[1], delta * alg.const(0))]


class SubWrongSign(N.Sub):
    def vjp(self, alg, args, delta):
        return [(self.inputs[0], delta), (self.inputs[1], delta)]


class MulSwapped(N.Mul):
    def vjp(self, alg, args, delta):
        a, b = args
        return [(self.inputs[0], delta * a), (self.inputs[1], delta * b)]


class MulCountedOnce(N.Mul):
    """Writes the contributions into a dict: for the same slot the second overwrites the first."""
    def vjp(self, alg, args, delta):
        a, b = args
        return list({self.inputs[0]: delta * b, self.inputs[1]: delta * a}.items())


class JvpWrongSign(N.Sub):
    def jvp(self, alg, args, tangents):
        return tangents[1] - tangents[0]


def _elemwise_variant(node, **kw):
    return dataclasses.replace(node, **kw)


BN = batchnorm_channel_first(1, 2, 2)
NODE = {n.name: n for n in BN.nodes}

MUTANTS = {
    "reshape: VJP scrambles coordinates": ("xMat", ReshapeScrambled("xMat", ("x",), (1, 4), "nodeXMat", in_shape=(1, 2, 2)), "transpose"),
    "rowMean: VJP missing 1/N": ("mean", RowMeanMissingInvN("mean", ("xMat",), (1,), "nodeMean"), "transpose"),
    "broadcastRow: VJP averages instead of summing": ("inv_std_b", BroadcastRowMeanInsteadOfSum("inv_std_b", ("inv_std",), (1, 4), "nodeInvStdB"), "transpose"),
    "add: VJP drops the second operand": ("yMat", AddDropsSecond("yMat", ("scaled", "beta_b"), (1, 4), "nodeYMat"), "transpose"),
    "sub: VJP wrong sign": ("centered", SubWrongSign("centered", ("xMat", "mean_b"), (1, 4), "nodeCentered"), "transpose"),
    "sub: JVP wrong sign": ("centered", JvpWrongSign("centered", ("xMat", "mean_b"), (1, 4), "nodeCentered"), "derivative"),
    "mul: VJP operands swapped": ("normalized", MulSwapped("normalized", ("centered", "inv_std_b"), (1, 4), "nodeNorm"), "transpose"),
    "mul: same-slot product counted once": ("centered_sq", MulCountedOnce("centered_sq", ("centered", "centered"), (1, 4), "nodeCenteredSq"), "transpose"),
    "elemwise z+ε: f' = 0": ("var_eps", _elemwise_variant(NODE["var_eps"], fprime=lambda alg, z: alg.zero), "derivative"),
    "sqrtClamp: derivative without ½": ("std", _elemwise_variant(NODE["std"], fprime=lambda alg, z: alg.sqrt_clamp_deriv(z) * 2), "derivative"),
    "sqrtClamp: VJP without ½ only": ("std", None, "adjoint"),
    "inv: derivative +1/z²": ("inv_std", _elemwise_variant(NODE["inv_std"], fprime=lambda alg, z: -alg.inv_deriv(z)), "derivative"),
}


class SqrtVjpOnlyWrong(N.Elemwise):
    def vjp(self, alg, args, delta):
        return [(self.inputs[0], delta * N._map(lambda t: alg.sqrt_clamp_deriv(t) * 2, args[0]))]


MUTANTS["sqrtClamp: VJP without ½ only"] = ("std", dataclasses.replace(NODE["std"]).__class__ and SqrtVjpOnlyWrong(
    name="std", inputs=("var_eps",), shape=(1,), lean_name="nodeStd", kind="sqrtClamp", f=NODE["std"].f,
    fprime=NODE["std"].fprime, side_condition="z > 0", condition_input=0), "adjoint")


@pytest.mark.parametrize("label", list(MUTANTS))
def test_wrong_rule_is_caught_with_a_real_counterexample(label):
    slot, node, obligation = MUTANTS[label]
    g = BN.replace(slot, node)
    obs = {ob.name: ob for ob in prove_node(g, slot)}
    ob = obs[f"stage.{slot}.{obligation}"]
    assert ob.status == "failed", (label, ob.status, ob.detail)
    assert ob.counterexample and "lhs" in ob.counterexample
    confirm(g, node, ob)
    # the whole certificate is not OK, and the end-to-end identity fails too when the VJP is wrong
    cert = prove(g)
    assert not cert.ok
    if obligation in ("transpose", "adjoint") and slot != "xMat" or label.startswith("sqrtClamp"):
        assert cert["end_to_end.backprop_eq_adjoint_fderiv"].status == "failed"


def test_correct_nodes_pass_the_same_checks():
    for name in NODE:
        assert all(ob.status == "proved" for ob in prove_node(BN, name))


def test_broadcast_col_node():
    """broadcastCol is not in the BN graph (LayerNorm uses it): check it in a small graph."""
    good = Graph({"v": (3,)}, [N.BroadcastCol("vb", ("v",), (2, 3), "broadcastCol")])
    assert all(ob.status == "proved" for ob in prove_node(good, "vb"))
    bad_node = BroadcastColRowSum("vb", ("v",), (2, 3), "broadcastCol")
    bad = Graph({"v": (3,)}, [bad_node])
    with pytest.raises(ValueError, match="VJP contribution"):
        bad.backprop({"v": [1, 2, 3]}, {"vb": np.ones((2, 3), dtype=int)})
    wrong = Graph({"v": (2,)}, [N.BroadcastCol("vb", ("v",), (2, 2))])
    wrong = wrong.replace("vb", BroadcastColRowSum("vb", ("v",), (2, 2)))
    ob = {o.name: o for o in prove_node(wrong, "vb")}["stage.vb.transpose"]
    assert ob.status == "failed"
    confirm(wrong, wrong.nodes[0], ob)


def test_end_to_end_counterexample_is_exact_and_real():
    """A wrong rowMean VJP: the end-to-end counterexample -- one seed entry, one input entry, both
    sides' exact values at a rational point -- is re-evaluated here with the graph's backprop and
    with sympy.diff of the CORRECT graph's symbolic forward."""
    g = BN.replace("mean", MUTANTS["rowMean: VJP missing 1/N"][1])
    cert = prove(g)
    json.loads(json.dumps(cert.to_dict()))  # exact counterexamples serialize (as strings)
    ob = cert["end_to_end.backprop_eq_adjoint_fderiv"]
    assert ob.status == "failed"
    cex = ob.counterexample
    inputs = {"x": cex["x"], "gamma": cex["gamma"], "beta": cex["beta"]}
    seed_slot, seed_idx = cex["seed_entry"].split("[")
    seed_idx = tuple(int(i) for i in seed_idx.rstrip("]").split(", ") if i)
    in_slot, in_idx = cex["input_entry"].split("[")
    in_idx = tuple(int(i) for i in in_idx.rstrip("]").split(", ") if i)
    seed = np.zeros(g.shapes[seed_slot], dtype=object)
    seed[seed_idx] = 1
    from symbolic_bn.graphs.algebra import ExactAlgebra
    got = g.backprop(inputs, {seed_slot: seed}, ExactAlgebra({g.eps: cex["eps"]}))
    assert differ_exactly(np.asarray(got[in_slot], dtype=object)[in_idx], cex["backprop"]) is False
    # ∂(seed slot entry)/∂(input entry) by sympy.diff of the correct graph
    xs = sympy.symbols("a0:4", real=True)
    gm, bt = sympy.symbols("g b", real=True)
    sym = {"x": [[[xs[0], xs[1]], [xs[2], xs[3]]]], "gamma": [gm], "beta": [bt]}
    vals = BN.evaluate(sym)
    point = {xs[i]: cex["x"][0][i // 2][i % 2] for i in range(4)}
    point.update({gm: cex["gamma"][0], bt: cex["beta"][0], BN.eps: cex["eps"]})
    var = {("x", (0, 0, 0)): xs[0], ("x", (0, 0, 1)): xs[1], ("x", (0, 1, 0)): xs[2], ("x", (0, 1, 1)): xs[3],
           ("gamma", (0,)): gm, ("beta", (0,)): bt}[(in_slot, in_idx)]
    total = sympy.diff(np.asarray(vals[seed_slot], dtype=object)[seed_idx], var).xreplace(point)
    assert differ_exactly(total, cex["adjoint_of_derivative"]) is False
    assert differ_exactly(total, cex["backprop"]) is True


class DropsInputSeeds(type(BN)):
    def backprop(self, inputs, seed, algebra=EXACT, values=None):
        seed = {k: v for k, v in seed.items() if k not in ("x", "gamma", "beta")}
        return super().backprop(inputs, seed, algebra, values)


def test_graph_level_bug_is_caught():
    """A backprop that ignores input seeds (the identity part of x ↦ (x, …)) fails end to end."""
    g = DropsInputSeeds(1, 2, 2)
    cert = prove(g)
    assert cert["end_to_end.backprop_eq_adjoint_fderiv"].status == "failed"
    assert all(ob.status == "proved" for ob in cert if ob.group == "stage")


def test_unstated_side_conditions_are_never_proved():
    """std = sqrtClamp(var) (no ε): the chain rule still matches formally, but only where var > 0,
    which var + ε > 0 does not imply -- so the end-to-end obligation must not be 'proved'."""
    node = N.sqrt_clamp("std", "var", (1,), "nodeStd")
    g = BN.replace("std", node)
    cert = prove(g)
    ob = cert["end_to_end.backprop_eq_adjoint_fderiv"]
    assert ob.status in ("undecided", "failed")
    # the condition the sqrt of var needs (var > 0) is named: var + ε > 0 does not give it
    assert ob.status == "failed" or "var[0] > 0" in ob.detail


def test_domain_obligations_look_at_the_graphs_own_nodes():
    zero_std = _elemwise_variant(NODE["std"], f=lambda alg, z: z - z)
    cert = prove(BN.replace("std", zero_std))
    assert cert["domain.std_nonzero"].status != "proved"

    class RowSum(N.RowMean):  # forward without 1/N: var is not the mean of squares
        def forward(self, alg, a):
            m, n = a.shape
            return N._vec(alg.sum(a[i, j] for j in range(n)) for i in range(m))
    cert = prove(BN.replace("var", RowSum("var", ("centered_sq",), (1,), "nodeVar")))
    assert cert["link.variance_nonnegative"].status != "proved"
    assert cert["domain.eps_positive_suffices"].status != "proved"


class BroadcastFromNextChannel(N.BroadcastRow):
    """out[i, j] = v[(i + 1) % m] with the matching (adjoint) VJP: locally correct, but it mixes
    channels, so the end-to-end Jacobian is no longer block diagonal."""
    def forward(self, alg, v):
        m, n = self.shape
        out = np.empty((m, n), dtype=object)
        for i in range(m):
            for j in range(n):
                out[i, j] = v[(i + 1) % m]
        return out

    def vjp(self, alg, args, delta):
        m, n = self.shape
        sums = [alg.sum(delta[i, j] for j in range(n)) for i in range(m)]
        return [(self.inputs[0], N._vec(sums[(i - 1) % m] for i in range(m)))]


@pytest.mark.parametrize("backend", ["flint", "sympy"])
def test_channel_mixing_graph_is_handled_exactly(backend):
    from symbolic_bn.exact.backends import available_backends
    if backend not in available_backends():
        pytest.skip(f"{backend} backend not installed")
    g = batchnorm_channel_first(2, 1, 2).replace(
        "mean_b", BroadcastFromNextChannel("mean_b", ("mean",), (2, 2), "nodeMeanB"))
    cert = prove(g, backend=backend)
    # values mixing two channels live in the ring of both: the chain rule still holds ...
    assert cert["end_to_end.backprop_eq_adjoint_fderiv"].status == "proved"
    # ... but the Jacobian is not block diagonal, and that is reported
    assert cert["end_to_end.block_diagonal"].status == "failed"
    assert all(ob.status == "proved" for ob in prove_node(g, "mean_b"))
