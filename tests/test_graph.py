"""Graph semantics: evaluate / jvp / backprop (TorchLean's backpropVec) on exact numbers and symbols."""
from fractions import Fraction

import numpy as np
import pytest
import sympy
from hypothesis import given, settings, strategies as st

from symbolic_bn import batchnorm_channel_first
from symbolic_bn.exact.decide import differ_exactly


def _rat_array(draw, shape, lo=-6, hi=6):
    vals = draw(st.lists(st.fractions(min_value=lo, max_value=hi, max_denominator=4),
                         min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    return np.array([sympy.Rational(v.numerator, v.denominator) for v in vals], dtype=object).reshape(shape)


@st.composite
def point_and_seed(draw, shape=(1, 2, 2)):
    g = batchnorm_channel_first(*shape, eps=Fraction(1, 10))
    x = _rat_array(draw, shape)
    gamma = _rat_array(draw, (shape[0],))
    beta = _rat_array(draw, (shape[0],))
    seed = {s: _rat_array(draw, g.shapes[s], -3, 3) for s in g.slots}
    tangent = {k: _rat_array(draw, g.shapes[k], -3, 3) for k in ("x", "gamma", "beta")}
    return g, {"x": x, "gamma": gamma, "beta": beta}, seed, tangent


def _inner(a, b):
    return sympy.Add(*[a[k][i] * b[k][i] for k in a for i in np.ndindex(a[k].shape)])


@settings(max_examples=15, deadline=None)
@given(point_and_seed())
def test_dot_product_identity_exact(data):
    """⟨jvp(x, dx), s⟩ = ⟨dx, backprop(x, s)⟩ over all slots, exactly (Graph.backprop_correct_inner)."""
    g, inputs, seed, tangent = data
    tan = g.jvp(inputs, tangent)
    bp = g.backprop(inputs, seed)
    lhs = _inner({k: tan[k] for k in g.slots}, seed)
    rhs = _inner(tangent, bp)
    assert differ_exactly(lhs, rhs) is False


@settings(max_examples=8, deadline=None)
@given(point_and_seed((1, 1, 2)))
def test_backprop_is_transpose_of_sympy_jacobian(data):
    """backprop(x, s) = J_E(x)ᵀ s with J_E from sympy.diff of the exact forward (independent)."""
    g, inputs, seed, _ = data
    xs = sympy.symbols("a0 a1", real=True)
    gs, bs = sympy.symbols("g b", real=True)
    sym_in = {"x": [[[xs[0], xs[1]]]], "gamma": [gs], "beta": [bs]}
    values = g.evaluate(sym_in)
    point = {xs[0]: inputs["x"][0, 0, 0], xs[1]: inputs["x"][0, 0, 1], gs: inputs["gamma"][0], bs: inputs["beta"][0]}
    v = g.evaluate(inputs)
    if not v["var_eps"][0] > 0:
        return
    bp = g.backprop(inputs, seed)
    for var, (slot, idx) in zip([xs[0], xs[1], gs, bs], [("x", (0, 0, 0)), ("x", (0, 0, 1)), ("gamma", (0,)), ("beta", (0,))]):
        total = 0
        for s in g.slots:
            for i in np.ndindex(g.shapes[s]):
                d = sympy.diff(values[s][i], var)
                total += seed[s][i] * d.xreplace(point)
        assert differ_exactly(bp[slot][idx], total) is False


def test_input_seeds_are_included_and_fan_out_adds():
    g = batchnorm_channel_first(1, 1, 2, eps=1)
    inputs = {"x": [[[1, 3]]], "gamma": [2], "beta": [5]}
    only_x = g.backprop(inputs, {"x": [[[7, 11]]]})
    assert list(only_x["x"].ravel()) == [7, 11] and list(only_x["gamma"]) == [0]
    # centered feeds centered_sq (twice) and normalized: a seed on centered_sq reaches x through both
    bp = g.backprop(inputs, {"centered_sq": [[1, 0]]})
    # d(c0²)/dx = 2 c0 (1 - 1/2), d/dx1 = 2 c0 (-1/2) with c0 = -1
    assert list(bp["x"].ravel()) == [-1, 1]


def test_torchlean_cuda_fixture_8_2():
    """torchlean.md §8.2: C = H = W = 2, ε = 1e-6, seed all ones on yChw."""
    g = batchnorm_channel_first(2, 2, 2, eps=1e-6)
    inputs = {"x": [[[1.0, 2.0], [3.0, 4.0]], [[-0.5, 0.5], [1.5, -1.0]]], "gamma": [1.0, 0.5], "beta": [0.0, 0.1]}
    v = g.evaluate(inputs)
    assert list(v["mean"]) == [sympy.Rational(5, 2), sympy.Rational(1, 8)]
    assert list(v["var"]) == [sympy.Rational(5, 4), sympy.Rational(59, 64)]
    assert [float(s) for s in v["std"]] == pytest.approx([1.118034436, 0.9601437392], abs=1e-9)
    expected_y = [-1.3416402498, -0.4472134166, 0.4472134166, 1.3416402498,
                  -0.2254721009, 0.2952832606, 0.8160386220, -0.4858497817]
    assert [float(t) for t in v["yChw"].ravel()] == pytest.approx(expected_y, abs=1e-9)
    bp = g.backprop(inputs, {"yChw": np.ones((2, 2, 2), dtype=int)})
    # exact arithmetic: Σ x̂ = 0 makes dx and dγ exactly zero (the all-ones trap), dβ = N
    assert all(t == 0 for t in bp["x"].ravel())
    assert list(bp["gamma"]) == [0, 0]
    assert list(bp["beta"]) == [4, 4]


def test_totalized_conventions_outside_domain():
    g = batchnorm_channel_first(1, 1, 2, eps=0)
    v = g.evaluate({"x": [[[3, 3]]], "gamma": [2], "beta": [1]})
    assert v["std"][0] == 0 and v["inv_std"][0] == 0          # sqrt(max(0,0)) = 0, 0⁻¹ = 0
    assert list(v["yChw"].ravel()) == [1, 1]
    bp = g.backprop({"x": [[[3, 3]]], "gamma": [2], "beta": [1]}, {"std": [5], "inv_std": [7]})
    assert list(bp["x"].ravel()) == [0, 0]                      # f' = 0 at z <= 0


def test_symbolic_evaluation_keeps_lean_functions():
    g = batchnorm_channel_first(1, 1, 2)
    a, b = sympy.symbols("a b", real=True)
    v = g.evaluate({"x": [[[a, b]]], "gamma": [1], "beta": [0]})
    assert v["mean"][0] == (a + b) / 2
    assert v["std"][0].has(sympy.Max)
    assert v["inv_std"][0].has(sympy.Piecewise)


def test_stages_api():
    g = batchnorm_channel_first(2, 3, 4)
    assert len(g.stages) == 16
    st0 = g.stages[0]
    assert (st0.name, st0.lean_name, st0.kind, st0.inputs, st0.shape) == ("xMat", "nodeXMat", "reshape", ("x",), (2, 12))
    sq = g.stages[4]
    assert sq.inputs == ("centered", "centered") and sq.kind == "mul"
    assert g.shapes["yChw"] == (2, 3, 4) and g.shapes["var"] == (2,)
    assert g.context_size() == 12 * 2 * 12 + 7 * 2


@pytest.mark.parametrize("args, match", [
    ((0, 2, 2), "C must be a positive integer"),
    ((2, -1, 2), "H must be a positive integer"),
    ((2, 2, 1.5), "W must be a positive integer"),
    ((2, "2", 2), "H must be a positive integer"),
    ((True, 2, 2), "C must be a positive integer"),
    ((64, 32, 32), "too large"),
])
def test_bad_shapes(args, match):
    with pytest.raises(ValueError, match=match):
        batchnorm_channel_first(*args)


@pytest.mark.parametrize("eps, match", [(float("nan"), "eps must be finite"), (float("inf"), "eps must be finite"),
                                        ("1e-6; rm -rf", "eps must be a decimal")])
def test_bad_eps(eps, match):
    with pytest.raises(ValueError, match=match):
        batchnorm_channel_first(1, 1, 2, eps=eps)


def test_eps_conversion_is_exact_decimal():
    assert batchnorm_channel_first(1, 1, 2, eps=1e-6).eps == sympy.Rational(1, 10 ** 6)
    assert batchnorm_channel_first(1, 1, 2, eps="3/4").eps == sympy.Rational(3, 4)
    assert batchnorm_channel_first(1, 1, 2, eps=Fraction(1, 3)).eps == sympy.Rational(1, 3)


def test_bad_input_and_seed_shapes():
    g = batchnorm_channel_first(2, 2, 2)
    good = {"x": np.zeros((2, 2, 2)), "gamma": [1, 1], "beta": [0, 0]}
    with pytest.raises(ValueError, match=r"inputs\['x'\]: expected shape \(2, 2, 2\), got \(2, 4\)"):
        g.evaluate({**good, "x": np.zeros((2, 4))})
    with pytest.raises(ValueError, match=r"inputs\['gamma'\]: expected shape \(2,\), got \(3,\)"):
        g.evaluate({**good, "gamma": [1, 2, 3]})
    with pytest.raises(ValueError, match="missing \\['beta'\\]"):
        g.evaluate({"x": good["x"], "gamma": good["gamma"]})
    with pytest.raises(ValueError, match=r"seed\['yChw'\]: expected shape \(2, 2, 2\), got \(8,\)"):
        g.backprop(good, {"yChw": np.zeros(8)})
    with pytest.raises(ValueError, match="unknown slots \\['y'\\]"):
        g.backprop(good, {"y": np.zeros((2, 2, 2))})
    with pytest.raises(ValueError, match=r"inputs\[.gamma.\]\[0\] must be finite"):
        g.evaluate({**good, "gamma": [float("nan"), 1]})
    with pytest.raises(ValueError, match="not a rectangular array"):
        g.evaluate({**good, "x": [[[1, 2], [3]], [[1, 2], [3, 4]]]})


# ---------------------------------------------------------------------------------------------
# Issue 11.7: what an ε may be; nodes with wrong shapes or VJPs that reach later slots

@pytest.mark.parametrize("eps, why", [
    (sympy.sqrt(2), "irrational"), (sympy.I, "not real"), (sympy.pi, "irrational"),
    (sympy.Symbol("e"), "not known to be real"), (2 * sympy.Symbol("e", real=True), "an expression"),
])
def test_eps_must_be_rational_or_a_real_symbol(eps, why):
    with pytest.raises(ValueError, match="^eps must be a rational number or a real SymPy Symbol") as info:
        batchnorm_channel_first(1, 1, 2, eps=eps)
    assert why in str(info.value)


@pytest.mark.parametrize("eps", [sympy.Symbol("e", real=True), sympy.Symbol("e", positive=True),
                                 sympy.Symbol("e", negative=True), sympy.Rational(1, 3)])
def test_rational_and_real_symbol_eps_are_kept(eps):
    assert batchnorm_channel_first(1, 1, 2, eps=eps).eps == eps


def test_non_real_entries_are_refused_naming_the_entry():
    g = batchnorm_channel_first(1, 1, 2)
    with pytest.raises(ValueError, match=r"inputs\['x'\]: entry \(0, 0, 1\) is not a real number \(I\)"):
        g.evaluate({"x": np.array([[[1, sympy.I]]], dtype=object), "gamma": [1], "beta": [0]})


def _node(graph, name):
    return next(n for n in graph.nodes if n.name == name)


def test_a_replacement_with_an_inconsistent_declared_shape_is_refused_naming_node_and_shapes():
    from symbolic_bn.graphs import nodes as N

    g = batchnorm_channel_first(1, 1, 2, eps=Fraction(1, 10))
    old = _node(g, "normalized")
    with pytest.raises(ValueError, match=r"node 'normalized' \(mul\) declares shape \(1,\) from inputs "
                                         r"'centered' \(1, 2\), 'inv_std_b' \(1, 2\)"):
        g.replace("normalized", N.Mul(name="normalized", inputs=old.inputs, shape=(1,)))
    with pytest.raises(ValueError, match=r"node 'mean' \(rowMean\) declares shape \(2,\)"):
        g.replace("mean", N.RowMean(name="mean", inputs=("xMat",), shape=(2,)))
    with pytest.raises(ValueError, match=r"node 'mean_b' \(broadcastRow\) declares shape \(2, 2\)"):
        g.replace("mean_b", N.BroadcastRow(name="mean_b", inputs=("mean",), shape=(2, 2)))
    with pytest.raises(ValueError, match=r"node 'xMat' \(reshape\).*cannot reshape \(1, 1, 2\) to \(1, 3\)"):
        g.replace("xMat", N.Reshape(name="xMat", inputs=("x",), shape=(1, 3)))
    with pytest.raises(ValueError, match=r"node 'centered' \(sub\).*reads 1 slot\(s\), a sub node reads 2"):
        g.replace("centered", N.Sub(name="centered", inputs=("xMat",), shape=(1, 2)))


def test_a_forward_of_the_wrong_shape_is_a_value_error_naming_the_node():
    from dataclasses import dataclass

    from symbolic_bn.graphs import nodes as N

    @dataclass(eq=False)
    class Truncating(N.Mul):
        def forward(self, alg, a, b):
            return (a * b)[:, :1]

    g = batchnorm_channel_first(1, 1, 2, eps=Fraction(1, 10))
    old = _node(g, "normalized")
    g2 = g.replace("normalized", Truncating(name="normalized", inputs=old.inputs, shape=old.shape))
    with pytest.raises(ValueError, match=r"node 'normalized' \(mul\) produced shape \(1, 1\), expected \(1, 2\)"):
        g2.evaluate({"x": [[[1, 2]]], "gamma": [3], "beta": [4]})


def test_a_vjp_that_reaches_a_later_slot_or_returns_a_wrong_shape_names_node_slot_and_shapes():
    from dataclasses import dataclass

    from symbolic_bn.graphs import nodes as N

    @dataclass(eq=False)
    class LaterSlot(N.Mul):
        def vjp(self, alg, args, delta):
            return [("yMat", delta * args[1]), (self.inputs[1], delta * args[0])]

    @dataclass(eq=False)
    class WrongShape(N.Mul):
        def vjp(self, alg, args, delta):
            return [(self.inputs[0], (delta * args[1])[:, :1]), (self.inputs[1], delta * args[0])]

    g = batchnorm_channel_first(1, 1, 2, eps=Fraction(1, 10))
    old = _node(g, "normalized")
    point = {"x": [[[1, 2]]], "gamma": [3], "beta": [4]}
    seed = {"yChw": [[[1, 1]]]}
    later = g.replace("normalized", LaterSlot(name="normalized", inputs=old.inputs, shape=old.shape))
    with pytest.raises(ValueError, match=r"node 'normalized' \(mul\) sends a cotangent to 'yMat' \(1, 2\), "
                                         r"which is a later slot.*inputs are \['centered', 'inv_std_b'\]"):
        later.backprop(point, seed)
    wrong = g.replace("normalized", WrongShape(name="normalized", inputs=old.inputs, shape=old.shape))
    with pytest.raises(ValueError, match=r"node 'normalized' \(mul\): VJP contribution to 'centered' has "
                                         r"shape \(1, 1\), expected \(1, 2\)"):
        wrong.backprop(point, seed)
    # the validated per-node entry point the prover can use
    values = g.evaluate(point)
    pairs = g.node_vjp(old, g_alg(), [values[i] for i in old.inputs], np.array([[1, 1]], dtype=object))
    assert [slot for slot, _ in pairs] == list(old.inputs)


def g_alg():
    from symbolic_bn.graphs.algebra import EXACT
    return EXACT
