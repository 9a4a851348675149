"""Layer graphs (symbolic_bn.graphs.layer_graphs) and the node kinds they add (Permute, Gather).

* every layer at two or more shapes: graph.evaluate on exact rationals == layer.forward on the
  exact SymPy namespace, entry by entry; graph.backprop (seed on the output) and graph.jvp ==
  the exact Jacobian of layer.forward by sympy.diff, evaluated at the same rational point;
* the graphs run on the exact engine (polynomials over Q with σ/ι atoms): forward values agree
  with the exact ones at a rational point, and backprop of a full-context seed is J_Eᵀ s;
* TorchLean's layouts: batchnorm_channel_first is today's BatchNormGraph, a 2-D layer_norm with
  normalized_shape (n,) is layerNormGraph (stage names, kinds, Lean names, ctxSize);
* Permute / Gather: adjointness on random rationals (hypothesis) and JVP = exact derivative;
  mutants (wrong scatter index, no accumulation on repeated indices, forward axes or a plain
  transpose instead of the inverse permutation) are built and shown to violate the identities.

Equality of algebraic numbers is decided exactly: an expanded difference that is not 0 is
decided by its minimal polynomial over Q (never floats).
"""
import dataclasses
import random
from fractions import Fraction

import numpy as np
import pytest
import sympy
from hypothesis import given, settings, strategies as st

from symbolic_bn import layers
from symbolic_bn import xp as xps
from symbolic_bn.graphs.algebra import EXACT, ExactAlgebra
from symbolic_bn.graphs import nodes as N
from symbolic_bn.graphs.batchnorm import STAGES as BN_STAGES, BatchNormGraph
from symbolic_bn.graphs.layer_graphs import LAYER_NORM_STAGES, LayerGraph, layer_graph, output_slot

SYM = xps.symbolic
_T = sympy.Symbol("t")


# ---------------------------------------------------------------------------------------------
# helpers


def exactly_equal(a, b) -> bool:
    d = sympy.expand(sympy.sympify(a) - sympy.sympify(b))
    if d == 0:
        return True
    if d.is_Rational:
        return False
    return sympy.minimal_polynomial(d, _T) == _T


def rational_array(rng, shape, lo=-4, hi=4, den=5):
    arr = np.empty(shape, dtype=object)
    for idx in np.ndindex(*shape):
        arr[idx] = sympy.Rational(rng.randint(lo * den, hi * den), rng.randint(1, den))
    return arr


def layer_point(layer, rng):
    """A rational input point (dict by argument name); x spread enough that var > 0."""
    names = layer.argument_names
    point = {names[0]: rational_array(rng, layer.input_shape),
             names[1]: rational_array(rng, layer.weight_shape)}
    if layer.bias_shape is not None:
        point[names[2]] = rational_array(rng, layer.bias_shape)
    return point


def eps_value(layer):
    """(exact ε to compute with, algebra for the graph): a symbolic ε is given the value 1/7."""
    if layer.symbolic_eps:
        q = sympy.Rational(1, 7)
        return q, ExactAlgebra(parameters={layer.eps: q})
    return sympy.Rational(layer.eps.numerator, layer.eps.denominator), EXACT


def layer_forward(layer, point, eps):
    names = layer.argument_names
    x, w = SYM.asarray(point[names[0]]), SYM.asarray(point[names[1]])
    b = SYM.asarray(point[names[2]]) if layer.bias_shape is not None else None
    return np.asarray(layer.forward(x, w, b, eps, SYM), dtype=object)


def symbols_for(layer):
    names = layer.argument_names
    out = {names[0]: xps.symbols_array("x", layer.input_shape),
           names[1]: xps.symbols_array("w", layer.weight_shape)}
    if layer.bias_shape is not None:
        out[names[2]] = xps.symbols_array("b", layer.bias_shape)
    return out


def dot(a, b):
    return sympy.Add(*[a[i] * b[i] for i in np.ndindex(*a.shape)])


# ---------------------------------------------------------------------------------------------
# the layers: forward, backprop and JVP against layer.forward

FORWARD_CASES = [
    ("bncf 2x2x2", lambda: layers.batchnorm_channel_first(2, 2, 2)),
    ("bncf 3x1x2 eps=1/10", lambda: layers.batchnorm_channel_first(3, 1, 2, eps=Fraction(1, 10))),
    ("batch_norm 3x2", lambda: layers.batch_norm((3, 2), eps=1e-5)),
    ("batch_norm 2x3x2", lambda: layers.batch_norm((2, 3, 2))),
    ("batch_norm 2x2x2x2 eps=1/10", lambda: layers.batch_norm((2, 2, 2, 2), eps=Fraction(1, 10))),
    ("instance_norm 2x3x2", lambda: layers.instance_norm((2, 3, 2))),
    ("instance_norm 1x2x3", lambda: layers.instance_norm((1, 2, 3), eps=1e-5)),
    ("instance_norm 2x2x2x2", lambda: layers.instance_norm((2, 2, 2, 2), eps=Fraction(1, 3))),
    ("layer_norm 3x4 (4,)", lambda: layers.layer_norm((3, 4), (4,))),
    ("layer_norm 2x3x4 (4,)", lambda: layers.layer_norm((2, 3, 4), (4,), eps=1e-5)),
    ("layer_norm 2x3x4 (3,4)", lambda: layers.layer_norm((2, 3, 4), (3, 4))),
    ("layer_norm 5 (5,)", lambda: layers.layer_norm((5,), (5,), eps=Fraction(1, 2))),
    ("group_norm 2x4x3 G=2", lambda: layers.group_norm((2, 4, 3), 2)),
    ("group_norm 2x6x2 G=3", lambda: layers.group_norm((2, 6, 2), 3, eps=1e-5)),
    ("group_norm 2x4x1x2 G=2", lambda: layers.group_norm((2, 4, 1, 2), 2, eps=Fraction(1, 10))),
    ("rms_norm 3x4 (4,)", lambda: layers.rms_norm((3, 4), (4,))),
    ("rms_norm 2x2x3 (3,)", lambda: layers.rms_norm((2, 2, 3), (3,), eps=1e-5)),
    ("rms_norm 2x2x3 (2,3)", lambda: layers.rms_norm((2, 2, 3), (2, 3), eps=Fraction(1, 10))),
]


@pytest.mark.parametrize("label,make", FORWARD_CASES, ids=[c[0] for c in FORWARD_CASES])
def test_graph_evaluates_to_the_layer_forward(label, make):
    layer = make()
    graph = layer_graph(layer)
    assert graph.input_names == list(layer.argument_names)
    eps, alg = eps_value(layer)
    rng = random.Random(label)
    for _ in range(2):
        point = layer_point(layer, rng)
        got = graph.evaluate(point, alg)[output_slot(graph)]
        want = layer_forward(layer, point, eps)
        assert got.shape == want.shape == layer.input_shape
        for idx in np.ndindex(*got.shape):
            assert exactly_equal(got[idx], want[idx]), (label, idx, got[idx], want[idx])


DERIVATIVE_CASES = [
    ("bncf 2x1x2", lambda: layers.batchnorm_channel_first(2, 1, 2, eps=Fraction(1, 10))),
    ("batch_norm 2x2", lambda: layers.batch_norm((2, 2), eps=Fraction(1, 10))),
    ("batch_norm 2x2x2", lambda: layers.batch_norm((2, 2, 2))),
    ("instance_norm 2x2x2", lambda: layers.instance_norm((2, 2, 2), eps=Fraction(1, 10))),
    ("instance_norm 1x2x3", lambda: layers.instance_norm((1, 2, 3))),
    ("layer_norm 2x3 (3,)", lambda: layers.layer_norm((2, 3), (3,), eps=Fraction(1, 10))),
    ("layer_norm 2x1x3 (3,)", lambda: layers.layer_norm((2, 1, 3), (3,))),
    ("layer_norm 2x2x2 (2,2)", lambda: layers.layer_norm((2, 2, 2), (2, 2), eps=Fraction(1, 10))),
    ("group_norm 2x4x1 G=2", lambda: layers.group_norm((2, 4, 1), 2, eps=Fraction(1, 10))),
    ("group_norm 1x6x1 G=3", lambda: layers.group_norm((1, 6, 1), 3)),
    ("rms_norm 2x3 (3,)", lambda: layers.rms_norm((2, 3), (3,), eps=Fraction(1, 10))),
    ("rms_norm 2x1x2 (2,)", lambda: layers.rms_norm((2, 1, 2), (2,))),
    ("rms_norm 2x2x2 (2,2)", lambda: layers.rms_norm((2, 2, 2), (2, 2), eps=Fraction(1, 10))),
]


def exact_jacobian(layer, eps, point):
    """d y_p / d s for every output entry p and input symbol s, by sympy.diff of layer.forward on
    symbolic inputs, then evaluated at the rational point."""
    syms = symbols_for(layer)
    names = list(syms)
    x = SYM.asarray(syms[names[0]])
    w = SYM.asarray(syms[names[1]])
    b = SYM.asarray(syms[names[2]]) if len(names) > 2 else None
    y = np.asarray(layer.forward(x, w, b, eps, SYM), dtype=object)
    subs = {syms[k][i]: point[k][i] for k in names for i in np.ndindex(*syms[k].shape)}
    jac = {}
    for p in np.ndindex(*y.shape):
        for k in names:
            for i in np.ndindex(*syms[k].shape):
                jac[p, k, i] = sympy.diff(y[p], syms[k][i]).xreplace(subs)
    return jac, y.shape, {k: syms[k].shape for k in names}


def check_derivatives(graph, layer, point, alg, eps, rng):
    """backprop(seed on the output) == Jᵀg and jvp == J·t, exactly; returns the first mismatch."""
    jac, yshape, in_shapes = exact_jacobian(layer, eps, point)
    g = rational_array(rng, yshape)
    cot = graph.backprop(point, {output_slot(graph): g}, alg)
    for k, shape in in_shapes.items():
        for i in np.ndindex(*shape):
            want = sympy.Add(*[g[p] * jac[p, k, i] for p in np.ndindex(*yshape)])
            if not exactly_equal(cot[k][i], want):
                return ("backprop", k, i, cot[k][i], want)
    tangents = {k: rational_array(rng, shape) for k, shape in in_shapes.items()}
    tan = graph.jvp(point, tangents, alg)[output_slot(graph)]
    for p in np.ndindex(*yshape):
        want = sympy.Add(*[jac[p, k, i] * tangents[k][i] for k, shape in in_shapes.items()
                           for i in np.ndindex(*shape)])
        if not exactly_equal(tan[p], want):
            return ("jvp", p, tan[p], want)
    return None


@pytest.mark.parametrize("label,make", DERIVATIVE_CASES, ids=[c[0] for c in DERIVATIVE_CASES])
def test_backprop_and_jvp_are_the_exact_derivative_of_the_layer_forward(label, make):
    layer = make()
    graph = layer_graph(layer)
    eps, alg = eps_value(layer)
    rng = random.Random(label)
    point = layer_point(layer, rng)
    assert check_derivatives(graph, layer, point, alg, eps, rng) is None


# ---------------------------------------------------------------------------------------------
# stage lists, TorchLean's two graphs


def test_batchnorm_channel_first_is_todays_graph():
    layer = layers.batchnorm_channel_first(2, 3, 2, eps=Fraction(1, 10))
    graph = layer_graph(layer)
    assert type(graph) is BatchNormGraph
    assert [n.name for n in graph.nodes] == [s for s, _, _ in BN_STAGES]
    assert graph.input_names == ["x", "gamma", "beta"]
    assert graph.eps == sympy.Rational(1, 10)
    sym = layer_graph(layers.batchnorm_channel_first(2, 2, 2))
    assert sym.eps == layers.EPS_SYMBOL


def test_layer_norm_2d_is_torchlean_layer_norm_graph():
    m, n = 3, 4
    graph = layer_graph(layers.layer_norm((m, n), (n,)))
    assert graph.lean_graph == "layerNormGraph"
    assert [(nd.name, nd.lean_name) for nd in graph.nodes] == [(s, ln) for s, ln, _ in LAYER_NORM_STAGES]
    assert [nd.kind for nd in graph.nodes] == [
        "rowMean", "broadcastRow", "sub", "mul", "rowMean", "elemwise", "sqrtClamp", "inv",
        "broadcastRow", "mul", "broadcastCol", "mul", "broadcastCol", "add"]
    # TorchLean: mean reads X itself (no reshape), centered_sq squares one slot
    assert graph.nodes[0].inputs == ("x",)
    assert graph.nodes[3].inputs == ("centered", "centered")
    assert graph.context_size() == 10 * m * n + 5 * m + 2 * n  # ctxSize(ΓLN ++ ssLayerNorm)


STAGE_LISTS = {
    "batch_norm": ["x_channel_first", "xMat", "mean", "mean_b", "centered", "centered_sq", "var",
                   "var_eps", "std", "inv_std", "inv_std_b", "normalized", "gamma_b", "scaled",
                   "beta_b", "yMat", "y_channel_first", "y"],
    "reshaped": ["xMat", "mean", "mean_b", "centered", "centered_sq", "var", "var_eps", "std",
                 "inv_std", "inv_std_b", "normalized", "gamma_b", "scaled", "beta_b", "yMat", "y"],
    "rms_2d": ["x_sq", "mean_sq", "mean_sq_eps", "rms", "inv_rms", "inv_rms_b", "normalized",
               "gamma_b", "y"],
    "rms": ["xMat", "x_sq", "mean_sq", "mean_sq_eps", "rms", "inv_rms", "inv_rms_b", "normalized",
            "gamma_b", "yMat", "y"],
}


@pytest.mark.parametrize("layer,stages,kinds", [
    (layers.batch_norm((2, 3, 2)), "batch_norm", {"gamma_b": "broadcastRow", "y": "permute"}),
    (layers.batch_norm((2, 3)), "batch_norm", {"x_channel_first": "permute"}),
    (layers.instance_norm((2, 3, 2)), "reshaped", {"gamma_b": "gather", "beta_b": "gather"}),
    (layers.instance_norm((1, 3, 2)), "reshaped", {"gamma_b": "broadcastRow"}),
    (layers.group_norm((2, 4, 3), 2), "reshaped", {"gamma_b": "gather", "y": "reshape"}),
    (layers.layer_norm((2, 3, 4), (4,)), "reshaped", {"gamma_b": "broadcastCol"}),
    (layers.layer_norm((2, 3, 4), (3, 4)), "reshaped", {"gamma_b": "gather"}),
    (layers.rms_norm((3, 4), (4,)), "rms_2d", {"gamma_b": "broadcastCol", "y": "mul"}),
    (layers.rms_norm((2, 3, 4), (3, 4)), "rms", {"gamma_b": "gather", "yMat": "mul"}),
], ids=lambda v: getattr(v, "shape_text", lambda: None)() or None)
def test_stage_names_and_kinds(layer, stages, kinds):
    graph = layer_graph(layer)
    assert isinstance(graph, LayerGraph) and graph.layer is layer
    assert [nd.name for nd in graph.nodes] == STAGE_LISTS[stages]
    by_name = {nd.name: nd for nd in graph.nodes}
    for name, kind in kinds.items():
        assert by_name[name].kind == kind
    assert all(nd.lean_name is None for nd in graph.nodes)  # not TorchLean's graphs
    assert graph.rows == layer.number_of_groups and graph.cols == layer.group_size
    assert output_slot(graph) == "y" and graph.shapes["y"] == layer.input_shape


def test_group_norm_gather_reads_the_channel_of_each_position():
    layer = layers.group_norm((2, 4, 3), 2)  # rows n·G + g, columns (c mod 2)·3 + s
    gamma_b = {nd.name: nd for nd in layer_graph(layer).nodes}["gamma_b"]
    for r in range(4):
        for j in range(6):
            assert gamma_b.index[r, j] == (r % 2) * 2 + j // 3


def test_eps_forms():
    x = {"x": [[1, 2], [3, 5]], "weight": [1, 1], "bias": [0, 0]}
    for eps in (Fraction(1, 10), 0.1, "1/10", sympy.Rational(1, 10)):
        graph = layer_graph(layers.layer_norm((2, 2), (2,), eps=eps))
        assert graph.eps == sympy.Rational(1, 10)
        assert graph.evaluate(x)["var_eps"][0] == sympy.Rational(1, 4) + sympy.Rational(1, 10)
    graph = layer_graph(layers.layer_norm((2, 2), (2,)))
    assert graph.evaluate(x)["var_eps"][0] == sympy.Rational(1, 4) + layers.EPS_SYMBOL


def test_layout_guard_rows_must_be_statistics_groups():
    """The constructor derives each row's entries from its own layout stages and checks them
    against layer.group_of: a layer whose groups are not the rows is refused, not mis-built."""
    layer = layers.batch_norm((2, 3, 2))
    layer._group_of = lambda idx: idx[0]  # per-sample statistics: not the channel rows
    with pytest.raises(RuntimeError, match="one statistics group per row"):
        layer_graph(layer)


def test_refuses_what_is_not_a_layer():
    with pytest.raises(TypeError, match="layer must be a symbolic_bn.layers.Layer"):
        layer_graph(BatchNormGraph(1, 1, 2))


# ---------------------------------------------------------------------------------------------
# the prover's atom algebra


ATOM_CASES = [
    lambda: layers.batch_norm((2, 2, 2), eps=Fraction(1, 10)),
    lambda: layers.instance_norm((2, 2, 2)),
    lambda: layers.group_norm((2, 4, 1), 2),
    lambda: layers.layer_norm((2, 2, 2), (2, 2), eps=Fraction(1, 10)),
    lambda: layers.layer_norm((2, 3), (3,)),
    lambda: layers.rms_norm((2, 1, 3), (3,)),
]


@pytest.mark.parametrize("make", ATOM_CASES, ids=["batch_norm", "instance_norm", "group_norm",
                                                  "layer_norm 2-D K", "layer_norm 2-D", "rms_norm"])
def test_runs_on_the_exact_engine(make):
    from symbolic_bn.exact.convert import Substitution, to_sympy
    from symbolic_bn.exact.linear import LinearForm
    from symbolic_bn.exact.normal import is_zero_value
    from symbolic_bn.obligations.setting import ProofSetting
    layer = make()
    graph = layer_graph(layer)
    setting = ProofSetting(layer, graph)
    space, values = setting.space, setting.values
    # (1) forward: at a rational point every slot, evaluated exactly on the engine, equals the
    # exact SymPy evaluation of the graph
    rng = random.Random(1)
    point = layer_point(layer, rng)
    eps, exact_alg = eps_value(layer)
    assignment = {}
    for name in layer.argument_names:
        numbers = np.vectorize(lambda q: Fraction(int(q.p), int(q.q)), otypes=[object])(point[name])
        assignment.update(setting.problem.inputs.point_values(name, numbers))
    if layer.symbolic_eps:
        assignment["eps"] = Fraction(1, 7)
    at = Substitution(space, assignment)
    exact = graph.evaluate(point, exact_alg)
    for s in graph.slots:
        for idx in np.ndindex(*graph.shapes[s]):
            assert exactly_equal(to_sympy(at(values[s][idx])), exact[s][idx]), (s, idx)
    # (2) backprop of a full-context unit seed is J_Eᵀ s: every seed coefficient equals the
    # engine's own partial derivative of that slot entry
    seed = {}
    for s in graph.slots:
        arr = np.empty(graph.shapes[s], dtype=object)
        for idx in np.ndindex(*arr.shape):
            arr[idx] = LinearForm.unit((s,) + idx, space.constant(1))
        seed[s] = arr
    cot = graph.backprop(setting.inputs, seed, setting.alg, values=values)
    jac = setting.problem.inputs.jacobian()
    jt = {}
    for s in graph.slots:
        for idx in np.ndindex(*graph.shapes[s]):
            for entry, dv in jac.of(values[s][idx]).items():
                jt.setdefault(entry, {})[(s,) + idx] = dv
    for name in graph.input_names:
        for idx in np.ndindex(*graph.input_shapes[name]):
            form = cot[name][idx]
            form = form.terms if isinstance(form, LinearForm) else {}
            want = jt.get((name, idx), {})
            for k in set(form) | set(want):
                d = form.get(k, space.zero()) - want.get(k, space.zero())
                assert is_zero_value(space, d), (name, idx, k)


# ---------------------------------------------------------------------------------------------
# node kinds: laws on random rational data, and their mutants

fractions = st.fractions(min_value=-5, max_value=5, max_denominator=6)


def frac_array(draw, shape):
    arr = np.empty(shape, dtype=object)
    for idx in np.ndindex(*shape):
        f = draw(fractions)
        arr[idx] = sympy.Rational(f.numerator, f.denominator)
    return arr


def adjoint_gap(node, x, dx, delta):
    """⟨jvp(X, dX), δ⟩ − ⟨dX, vjp(X, δ)⟩ for a one-input node (0 when adjoint)."""
    lhs = dot(node.jvp(EXACT, [x], [dx]), delta)
    rhs = sympy.Integer(0)
    for slot, c in node.vjp(EXACT, [x], delta):
        assert slot == node.inputs[0] and c.shape == x.shape
        rhs += dot(dx, c)
    return sympy.expand(lhs - rhs)


def derivative_gap(node, in_shape):
    """The first entry where jvp(X, dX) differs from Σ_s ∂forward/∂s · dX_s (None if none)."""
    x = xps.symbols_array("a", in_shape)
    dx = xps.symbols_array("da", in_shape)
    y = node.forward(EXACT, np.asarray(x, dtype=object))
    jv = node.jvp(EXACT, [np.asarray(x, dtype=object)], [np.asarray(dx, dtype=object)])
    for p in np.ndindex(*y.shape):
        want = sympy.Add(*[sympy.diff(y[p], x[i]) * dx[i] for i in np.ndindex(*in_shape)])
        if sympy.expand(jv[p] - want) != 0:
            return p
    return None


@st.composite
def permute_cases(draw):
    rank = draw(st.integers(1, 4))
    in_shape = tuple(draw(st.lists(st.integers(1, 3), min_size=rank, max_size=rank)))
    axes = tuple(draw(st.permutations(range(rank))))
    node = N.Permute("p", ("a",), tuple(in_shape[a] for a in axes), axes=axes)
    out = node.shape
    return node, frac_array(draw, in_shape), frac_array(draw, in_shape), frac_array(draw, out)


@settings(max_examples=40, deadline=None)
@given(permute_cases())
def test_permute_is_adjoint(case):
    node, x, dx, delta = case
    assert node.in_shape == x.shape
    assert adjoint_gap(node, x, dx, delta) == 0
    # and it is numpy.transpose
    y = node.forward(EXACT, x)
    assert all(y[idx] == np.transpose(x, node.axes)[idx] for idx in np.ndindex(*y.shape))


@st.composite
def gather_cases(draw):
    in_shape = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))
    out_shape = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))
    size = int(np.prod(in_shape))
    flat = draw(st.lists(st.integers(0, size - 1), min_size=int(np.prod(out_shape)),
                         max_size=int(np.prod(out_shape))))
    index = np.array(flat, dtype=np.int64).reshape(out_shape)
    node = N.Gather("g", ("v",), out_shape, in_shape=in_shape, index=index)
    return node, frac_array(draw, in_shape), frac_array(draw, in_shape), frac_array(draw, out_shape)


@settings(max_examples=40, deadline=None)
@given(gather_cases())
def test_gather_is_adjoint(case):
    node, x, dx, delta = case
    assert adjoint_gap(node, x, dx, delta) == 0
    y = node.forward(EXACT, x)
    flat = x.reshape(-1)
    assert all(y[p] == flat[node.index[p]] for p in np.ndindex(*y.shape))


@pytest.mark.parametrize("node,in_shape", [
    (N.Permute("p", ("a",), (3, 1, 2), axes=(2, 0, 1)), (1, 2, 3)),
    (N.Permute("p", ("a",), (2, 2, 2), axes=(1, 2, 0)), (2, 2, 2)),
    (N.Gather("g", ("v",), (2, 3), in_shape=(2, 2), index=np.array([[0, 0, 3], [1, 3, 3]])), (2, 2)),
    (N.gather("g", "v", (3,), (2, 3), lambda idx: (idx[1],)), (3,)),
])
def test_jvp_is_the_exact_derivative_of_forward(node, in_shape):
    assert derivative_gap(node, in_shape) is None


def test_gather_helper_matches_broadcast_row_and_col():
    rng = random.Random(3)
    v = rational_array(rng, (3,))
    d = rational_array(rng, (3, 2))
    row = N.gather("r", "v", (3,), (3, 2), lambda idx: (idx[0],))
    col = N.gather("c", "v", (2,), (3, 2), lambda idx: (idx[1],))
    for mine, theirs, arg in ((row, N.BroadcastRow("r", ("v",), (3, 2)), v),
                              (col, N.BroadcastCol("c", ("v",), (3, 2)), v[:2].copy())):
        assert (mine.forward(EXACT, arg) == theirs.forward(EXACT, arg)).all()
        (_, a), = mine.vjp(EXACT, [arg], d)
        (_, b), = theirs.vjp(EXACT, [arg], d)
        assert (a == b).all()


# mutants: each is a plausible wrong VJP


@dataclasses.dataclass(eq=False)
class GatherWrongScatter(N.Gather):
    """Scatters δ_p to the next input entry instead of index[p]."""

    def vjp(self, alg, args, delta):
        size = len(self.readers)
        out = [[] for _ in range(size)]
        for p, k in enumerate(self.index.reshape(-1).tolist()):
            out[(k + 1) % size].append(delta.reshape(-1)[p])
        return [(self.inputs[0], N._vec(alg.sum(c) for c in out).reshape(self.in_shape))]


@dataclasses.dataclass(eq=False)
class GatherOverwrite(N.Gather):
    """Assigns instead of accumulating: a repeated index keeps only its last δ."""

    def vjp(self, alg, args, delta):
        out = np.empty(len(self.readers), dtype=object)
        out.fill(alg.zero)
        for p, k in enumerate(self.index.reshape(-1).tolist()):
            out[k] = delta.reshape(-1)[p]
        return [(self.inputs[0], out.reshape(self.in_shape))]


@dataclasses.dataclass(eq=False)
class PermuteForwardAxes(N.Permute):
    """Transposes δ with the forward axes instead of their inverse."""

    def vjp(self, alg, args, delta):
        return [(self.inputs[0], np.transpose(delta, self.axes).copy())]


@dataclasses.dataclass(eq=False)
class PermutePlainTranspose(N.Permute):
    """Reverses the axes of δ (δᵀ) instead of applying the inverse permutation."""

    def vjp(self, alg, args, delta):
        return [(self.inputs[0], delta.T.copy())]


def _mutant_gap(node, rng):
    x = rational_array(rng, node.in_shape)
    dx = rational_array(rng, node.in_shape)
    delta = rational_array(rng, node.shape)
    return adjoint_gap(node, x, dx, delta)


@pytest.mark.parametrize("right,wrong", [
    # broadcast of a 2-vector over 2×2 rows: every entry read twice
    (N.Gather("g", ("v",), (2, 2), in_shape=(2,), index=np.array([[0, 1], [0, 1]])),
     GatherWrongScatter("g", ("v",), (2, 2), in_shape=(2,), index=np.array([[0, 1], [0, 1]]))),
    (N.Gather("g", ("v",), (2, 2), in_shape=(2,), index=np.array([[0, 1], [0, 1]])),
     GatherOverwrite("g", ("v",), (2, 2), in_shape=(2,), index=np.array([[0, 1], [0, 1]]))),
    # a 3-cycle on a cube: the forward axes and the reversed axes are both not the inverse
    (N.Permute("p", ("a",), (2, 2, 2), axes=(1, 2, 0)),
     PermuteForwardAxes("p", ("a",), (2, 2, 2), axes=(1, 2, 0))),
    (N.Permute("p", ("a",), (2, 2, 2), axes=(1, 2, 0)),
     PermutePlainTranspose("p", ("a",), (2, 2, 2), axes=(1, 2, 0))),
], ids=["gather wrong scatter index", "gather no accumulation", "permute forward axes",
        "permute plain transpose"])
def test_mutants_violate_adjointness(right, wrong):
    rng = random.Random(7)
    gaps_right = [_mutant_gap(right, rng) for _ in range(3)]
    gaps_wrong = [_mutant_gap(wrong, rng) for _ in range(3)]
    assert all(g == 0 for g in gaps_right)
    assert any(g != 0 for g in gaps_wrong)
    # the mutants keep the forward and the JVP: only the VJP is wrong
    assert derivative_gap(wrong, wrong.in_shape) is None


def test_a_mutant_gather_inside_a_layer_graph_is_caught_end_to_end():
    """group_norm's γ broadcast reads each channel at several positions: with an overwriting
    scatter the graph's dγ is no longer Jᵀg of the layer's forward."""
    layer = layers.group_norm((2, 4, 1), 2, eps=Fraction(1, 10))
    graph = layer_graph(layer)
    good = {nd.name: nd for nd in graph.nodes}["gamma_b"]
    bad = GatherOverwrite(good.name, good.inputs, good.shape, in_shape=good.in_shape, index=good.index)
    mutant = graph.replace("gamma_b", bad)
    rng = random.Random(11)
    point = layer_point(layer, rng)
    eps, alg = eps_value(layer)
    assert check_derivatives(graph, layer, point, alg, eps, random.Random(5)) is None
    found = check_derivatives(mutant, layer, point, alg, eps, random.Random(5))
    assert found is not None and found[0] == "backprop" and found[1] == "weight"


@dataclasses.dataclass(eq=False)
class PermuteAsReshape(N.Permute):
    """Reshapes δ back to the input shape instead of permuting it (same shape, wrong entries)."""

    def vjp(self, alg, args, delta):
        return [(self.inputs[0], delta.reshape(self.in_shape))]


def test_a_mutant_permute_inside_batch_norm_is_caught_end_to_end():
    layer = layers.batch_norm((2, 3, 2), eps=Fraction(1, 10))  # x: (N, C, L) -> (C, N, L)
    graph = layer_graph(layer)
    good = {nd.name: nd for nd in graph.nodes}["x_channel_first"]
    bad = PermuteAsReshape(good.name, good.inputs, good.shape, axes=good.axes)
    assert _mutant_gap(bad, random.Random(1)) != 0
    mutant = graph.replace("x_channel_first", bad)
    point = layer_point(layer, random.Random(2))
    eps, alg = eps_value(layer)
    found = check_derivatives(mutant, layer, point, alg, eps, random.Random(5))
    assert found is not None and found[0] == "backprop" and found[1] == "x"


# ---------------------------------------------------------------------------------------------
# construction errors of the new kinds


def test_permute_refuses_bad_axes():
    with pytest.raises(ValueError, match=r"'p' \(permute\): axes \(0, 0\) are not a permutation"):
        N.Permute("p", ("a",), (2, 2), axes=(0, 0))
    with pytest.raises(ValueError, match=r"not to its declared shape"):
        N.Permute("p", ("a",), (2, 3), axes=(1, 0), in_shape=(2, 3))


def test_gather_refuses_bad_index():
    with pytest.raises(ValueError, match=r"'g' \(gather\): index has shape \(2,\), expected"):
        N.Gather("g", ("v",), (3,), in_shape=(2,), index=np.array([0, 1]))
    with pytest.raises(ValueError, match=r"flat positions 0 … 1 of the input shape \(2,\)"):
        N.Gather("g", ("v",), (2,), in_shape=(2,), index=np.array([0, 2]))
    with pytest.raises(ValueError, match="integer array"):
        N.Gather("g", ("v",), (2,), in_shape=(2,), index=np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"reads \(2,\), which is not an index"):
        N.gather("g", "v", (2,), (2,), lambda idx: (idx[0] + 1,))


def test_new_kinds_refuse_inputs_of_the_wrong_shape():
    p = N.Permute("p", ("a",), (3, 2), axes=(1, 0))
    with pytest.raises(ValueError, match=r"'p' \(permute\): input has shape \(3, 2\), expected \(2, 3\)"):
        p.forward(EXACT, np.empty((3, 2), dtype=object))
    g = N.Gather("g", ("v",), (2,), in_shape=(2,), index=np.array([1, 0]))
    with pytest.raises(ValueError, match=r"'g' \(gather\): input has shape \(3,\), expected \(2,\)"):
        g.forward(EXACT, np.empty(3, dtype=object))


# ---------------------------------------------------------------------------------------------
# the prover's per-stage obligations apply to the new kinds as to the others


@pytest.mark.parametrize("make,slots", [
    (lambda: layers.batch_norm((2, 3, 2)), ["x_channel_first", "xMat", "y_channel_first", "y"]),
    (lambda: layers.group_norm((2, 4, 1), 2), ["gamma_b", "beta_b"]),
    (lambda: layers.layer_norm((2, 2, 2), (2, 2)), ["gamma_b", "y"]),
], ids=["batch_norm permutes", "group_norm gathers", "layer_norm 2-D K gathers"])
def test_prove_node_proves_the_stage_laws_of_the_new_kinds(make, slots):
    from symbolic_bn.obligations.prove import prove_node
    graph = layer_graph(make())
    for slot in slots:
        assert {o.name.rsplit(".", 1)[1]: o.status for o in prove_node(graph, slot)} == {
            "adjoint": "proved", "derivative": "proved", "transpose": "proved"}, slot


def test_prove_node_fails_the_mutants_with_counterexamples():
    from symbolic_bn.obligations.prove import prove_node
    graph = layer_graph(layers.group_norm((2, 4, 1), 2))
    good = {nd.name: nd for nd in graph.nodes}["gamma_b"]
    bnorm = layer_graph(layers.batch_norm((2, 3, 2)))
    perm = {nd.name: nd for nd in bnorm.nodes}["x_channel_first"]
    for g, slot, bad in [
            (graph, "gamma_b", GatherOverwrite(good.name, good.inputs, good.shape, in_shape=good.in_shape,
                                               index=good.index)),
            (graph, "gamma_b", GatherWrongScatter(good.name, good.inputs, good.shape,
                                                  in_shape=good.in_shape, index=good.index)),
            (bnorm, "x_channel_first", PermuteAsReshape(perm.name, perm.inputs, perm.shape, axes=perm.axes))]:
        obs = {o.name.rsplit(".", 1)[1]: o for o in prove_node(g.replace(slot, bad), slot)}
        assert obs["derivative"].status == "proved"  # the forward and JVP are untouched
        for law in ("adjoint", "transpose"):
            assert obs[law].status == "failed" and obs[law].counterexample, (type(bad).__name__, law)
