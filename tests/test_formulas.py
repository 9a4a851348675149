"""Closed-form layer forwards: the mathematics, every namespace, torch parity, bad input."""
from fractions import Fraction

import numpy as np
import pytest
import sympy
from hypothesis import given, settings, strategies as st

from symbolic_bn.graphs import formulas as fm
from symbolic_bn.xp import mpmath_namespace, symbolic, to_sympy_array

EPS = Fraction(1, 10**5)

# (name, x shape, hyperparameters, weight shape)
CASES = [
    ("batchnorm_channel_first", (3, 2, 4), {}, (3,)),
    ("batch_norm", (2, 3, 2, 2), {}, (3,)),
    ("batch_norm", (5, 3), {}, (3,)),
    ("instance_norm", (2, 3, 5), {}, (3,)),
    ("instance_norm", (1, 2, 2, 3), {}, (2,)),
    ("layer_norm", (2, 3, 4), {"normalized_shape": (3, 4)}, (3, 4)),
    ("layer_norm", (4, 6), {"normalized_shape": (6,)}, (6,)),
    ("group_norm", (2, 6, 3), {"groups": 3}, (6,)),
    ("group_norm", (2, 4, 2, 2), {"groups": 2}, (4,)),
    ("rms_norm", (2, 3, 4), {"normalized_shape": (4,)}, (4,)),
    ("rms_norm", (2, 3, 4), {"normalized_shape": (3, 4)}, (3, 4)),
]


def _data(shape, wshape, rms, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape) * 2 + 0.5
    w = rng.uniform(0.5, 2, size=wshape) * rng.choice([-1, 1], size=wshape)
    b = None if rms else rng.normal(size=wshape)
    return x, w, b


def _groups_view(name, x, hyper):
    """Independent statement of the statistics groups: an array (groups, members) per layer."""
    nd = x.ndim
    if name == "batchnorm_channel_first":
        return x.reshape(x.shape[0], -1)
    if name == "batch_norm":
        return np.moveaxis(x, 1, 0).reshape(x.shape[1], -1)
    if name == "instance_norm":
        return x.reshape(x.shape[0] * x.shape[1], -1)
    if name == "group_norm":
        return x.reshape(x.shape[0] * hyper["groups"], -1)
    k = len(hyper["normalized_shape"])
    return x.reshape(int(np.prod(x.shape[: nd - k])), -1)


def _unscale(name, y, w, b):
    """Remove the affine part (weight, bias) so that the normalized values remain."""
    shape = [1] * y.ndim
    if name in ("layer_norm", "rms_norm"):
        return (y - (0 if b is None else b)) / w
    axis = 0 if name == "batchnorm_channel_first" else 1
    shape[axis] = -1
    return (y - b.reshape(shape)) / w.reshape(shape)


@pytest.mark.parametrize("name,shape,hyper,wshape", CASES)
def test_normalized_groups_have_the_defining_moments(name, shape, hyper, wshape):
    """Per statistics group: mean 0 and mean square v/(v+eps) (centered), or mean square
    m/(m+eps) with m = mean(x²) (rms_norm) -- the definition, checked group by group."""
    rms = name == "rms_norm"
    x, w, b = _data(shape, wshape, rms)
    y = fm.forward_for(name, **hyper)(x, w, b, EPS, np)
    assert y.shape == x.shape
    z = _groups_view(name, _unscale(name, y, w, b), hyper)
    xg = _groups_view(name, x, hyper)
    eps = float(EPS)
    if rms:
        ms = (xg**2).mean(axis=1)
        np.testing.assert_allclose((z**2).mean(axis=1), ms / (ms + eps), rtol=1e-12)
        # no centering: the sign pattern of x is kept
        assert np.array_equal(np.sign(z), np.sign(xg))
    else:
        v = xg.var(axis=1)
        np.testing.assert_allclose(z.mean(axis=1), 0, atol=1e-12)
        np.testing.assert_allclose((z**2).mean(axis=1), v / (v + eps), rtol=1e-12)
        # an affine image of x within each group, increasing
        slope = (z[:, 1] - z[:, 0]) / (xg[:, 1] - xg[:, 0])
        np.testing.assert_allclose(z, (xg - xg.mean(axis=1, keepdims=True)) * slope[:, None],
                                   atol=1e-10)
        assert (slope > 0).all()


@pytest.mark.parametrize("name,shape,hyper,wshape", CASES)
def test_mpmath_and_symbolic_namespaces_agree_with_numpy(name, shape, hyper, wshape):
    rms = name == "rms_norm"
    x, w, b = _data(shape, wshape, rms, seed=1)
    fwd = fm.forward_for(name, **hyper)
    ref = fwd(x, w, b, EPS, np)
    mp = mpmath_namespace(40)
    y_mp = fwd(mp.asarray(x), mp.asarray(w), None if rms else mp.asarray(b), EPS, mp)
    np.testing.assert_allclose(np.array(y_mp, dtype=float), ref, rtol=1e-13, atol=1e-13)
    # exact: small rationals (the float data would make huge rationals)
    xr = np.round(x * 4) / 4
    wr, br = np.round(w * 4) / 4, None if rms else np.round(b * 4) / 4
    y_sym = fwd(to_sympy_array(xr), to_sympy_array(wr), None if rms else to_sympy_array(br),
                EPS, symbolic)
    exact = [sympy.N(v, 30) for v in np.asarray(y_sym).flat]
    np.testing.assert_allclose(np.array(exact, dtype=float).reshape(x.shape),
                               fwd(xr, wr, br, EPS, np), rtol=1e-12, atol=1e-12)


def test_symbolic_eps_stays_a_symbol():
    e = sympy.Symbol("epsilon", positive=True)
    x = to_sympy_array([[[1, 2], [3, 6]]])
    y = fm.batchnorm_channel_first(x, to_sympy_array([1]), to_sympy_array([0]), e, symbolic)
    v = np.asarray(y)[0, 0, 0]
    assert v.free_symbols == {e}
    # mean 3, variance (4+1+0+9)/4 = 7/2
    assert sympy.simplify(v - (-2) / sympy.sqrt(sympy.Rational(7, 2) + e)) == 0


def test_channel_first_is_instance_norm_with_batch_one():
    x, w, b = _data((3, 2, 4), (3,), False, seed=2)
    np.testing.assert_array_equal(fm.batchnorm_channel_first(x, w, b, EPS, np),
                                  fm.instance_norm(x[None], w, b, EPS, np)[0])


def test_group_norm_extremes_are_instance_and_layer_norm():
    x, w, b = _data((2, 4, 3), (4,), False, seed=3)
    gn = fm.forward_for("group_norm", groups=4)(x, w, b, EPS, np)
    np.testing.assert_allclose(gn, fm.instance_norm(x, w, b, EPS, np), rtol=1e-14, atol=1e-14)
    one = fm.forward_for("group_norm", groups=1)(x, None, None, EPS, np)
    ln = fm.forward_for("layer_norm", normalized_shape=(4, 3))(x, None, None, EPS, np)
    np.testing.assert_allclose(one, ln, rtol=1e-14, atol=1e-14)


def test_groups_are_contiguous_channels():
    """Channels 0,1 form group 0: changing channel 2 leaves channels 0 and 1 unchanged."""
    x, _, _ = _data((1, 4, 3), (4,), True, seed=4)
    fwd = fm.forward_for("group_norm", groups=2)
    before = fwd(x, None, None, EPS, np)
    x2 = x.copy()
    x2[0, 2] += 5.0
    after = fwd(x2, None, None, EPS, np)
    np.testing.assert_array_equal(before[0, :2], after[0, :2])
    assert not np.allclose(before[0, 2:], after[0, 2:])


def test_batch_norm_pools_the_batch_and_instance_norm_does_not():
    x, _, _ = _data((2, 2, 3), (2,), True, seed=5)
    x2 = x.copy()
    x2[1] += 3.0  # shift sample 1 only
    bn = fm.batch_norm(x2, None, None, EPS, np)
    inorm = fm.instance_norm(x2, None, None, EPS, np)
    np.testing.assert_allclose(inorm, fm.instance_norm(x, None, None, EPS, np), atol=1e-12)
    assert not np.allclose(bn[0], fm.batch_norm(x, None, None, EPS, np)[0])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-100, 100, allow_nan=False), min_size=6, max_size=6),
       st.floats(0.1, 10), st.floats(-5, 5))
def test_affine_equivariance(values, scale, shift):
    """LayerNorm without affine is invariant under x -> scale·x + shift up to the eps term;
    with eps = 0 exactly invariant (values with spread, so the variance is positive)."""
    x = np.array(values).reshape(2, 3)
    if (x.std(axis=1) < 1e-3).any():
        return
    fwd = fm.forward_for("layer_norm", normalized_shape=(3,))
    np.testing.assert_allclose(fwd(scale * x + shift, None, None, 0, np),
                               fwd(x, None, None, 0, np), rtol=1e-9, atol=1e-9)


def test_rms_norm_is_scale_invariant_but_not_shift_invariant():
    x, w, _ = _data((2, 5), (5,), True, seed=6)
    fwd = fm.forward_for("rms_norm", normalized_shape=(5,))
    np.testing.assert_allclose(fwd(3 * x, w, None, 0, np), fwd(x, w, None, 0, np), rtol=1e-13)
    assert not np.allclose(fwd(x + 1, w, None, 0, np), fwd(x, w, None, 0, np))


def test_normalized_shape_defaults_to_weight_shape():
    x, w, b = _data((2, 3, 4), (3, 4), False, seed=7)
    np.testing.assert_array_equal(
        fm.FORWARDS["layer_norm"](x, w, b, EPS, np),
        fm.forward_for("layer_norm", normalized_shape=(3, 4))(x, w, b, EPS, np))


def test_forward_for_signature_and_lookup():
    assert set(fm.FORWARDS) == set(fm.LAYER_NAMES)
    f = fm.forward_for("group_norm", groups=2)
    x, w, b = _data((1, 4, 3), (4,), False)
    np.testing.assert_array_equal(f(x, w, b, EPS, np),
                                  fm.group_norm(x, w, b, EPS, np, groups=2))
    assert fm.forward_for("instance_norm") is fm.instance_norm


def test_statistics_axes():
    assert fm.statistics_axes("batchnorm_channel_first", (3, 4, 4)) == (1, 2)
    assert fm.statistics_axes("batch_norm", (2, 3, 4, 4)) == (0, 2, 3)
    assert fm.statistics_axes("batch_norm", (8, 3)) == (0,)
    assert fm.statistics_axes("instance_norm", (2, 3, 5)) == (2,)
    assert fm.statistics_axes("group_norm", (2, 4, 3), groups=2) == (1, 2)
    assert fm.statistics_axes("layer_norm", (2, 3, 4), normalized_shape=(3, 4)) == (1, 2)
    assert fm.statistics_axes("rms_norm", (2, 3, 4), normalized_shape=(4,)) == (2,)


@pytest.mark.parametrize("call,match", [
    (lambda: fm.forward_for("group_norm", groups=3)(np.ones((1, 4, 2)), None, None, EPS, np),
     "groups=3 does not divide"),
    (lambda: fm.forward_for("group_norm"), "needs groups"),
    (lambda: fm.forward_for("group_norm", groups=0), "groups must be a positive integer"),
    (lambda: fm.forward_for("layer_norm", normalized_shape=(5,))(
        np.ones((2, 4)), None, None, EPS, np), "not a suffix"),
    (lambda: fm.forward_for("layer_norm", groups=2), "no hyperparameter 'groups'"),
    (lambda: fm.forward_for("nope"), "unknown layer name"),
    (lambda: fm.rms_norm(np.ones((2, 3)), np.ones(3), np.ones(3), EPS, np), "no bias"),
    (lambda: fm.instance_norm(np.ones((2, 3)), None, None, EPS, np), "spatial"),
    (lambda: fm.batchnorm_channel_first(np.ones((2, 3, 4, 5)), None, None, EPS, np), "(C, H, W)"),
    (lambda: fm.batch_norm(np.ones((2, 3, 4)), np.ones(4), None, EPS, np), "weight must have shape"),
    (lambda: fm.batch_norm(np.ones((2, 3, 4)), None, np.ones((3, 1)), EPS, np), "bias must have shape"),
    (lambda: fm.layer_norm(np.ones((2, 3)), None, None, EPS, np), "normalized_shape is required"),
    (lambda: fm.batch_norm(np.ones((2, 3)), None, None, sympy.Symbol("e"), np), "eps="),
])
def test_bad_input_is_a_one_line_value_error(call, match):
    with pytest.raises(ValueError, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def test_torch_parity():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(8)
    t = torch.tensor
    x = rng.normal(size=(2, 4, 3, 2))
    w, b = rng.normal(size=4), rng.normal(size=4)
    pairs = [
        (fm.batch_norm(x, w, b, EPS, np),
         F.batch_norm(t(x), None, None, t(w), t(b), training=True, eps=1e-5)),
        (fm.instance_norm(x, w, b, EPS, np), F.instance_norm(t(x), weight=t(w), bias=t(b), eps=1e-5)),
        (fm.forward_for("group_norm", groups=2)(x, w, b, EPS, np),
         F.group_norm(t(x), 2, t(w), t(b), eps=1e-5)),
        (fm.batchnorm_channel_first(x[0], w, b, EPS, np),
         F.instance_norm(t(x[:1]), weight=t(w), bias=t(b), eps=1e-5)[0]),
    ]
    wl, bl = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    pairs.append((fm.layer_norm(x, wl, bl, EPS, np), F.layer_norm(t(x), (3, 2), t(wl), t(bl), 1e-5)))
    pairs.append((fm.rms_norm(x, wl, None, EPS, np), F.rms_norm(t(x), (3, 2), t(wl), 1e-5)))
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-12, atol=1e-12)


def test_runs_on_the_exact_engine_namespace():
    """The new exact engine (symbolic_bn.xp.engine over an exact Space) runs the same code."""
    engine = pytest.importorskip("symbolic_bn.xp.engine")
    space_mod = pytest.importorskip("symbolic_bn.exact.space")
    space = space_mod.Space()
    xp = engine.namespace_of(space)
    x = np.array([[[[1.0, 2.0], [3.0, 5.0]], [[0.0, 1.0], [4.0, 4.0]]]])
    w, b = np.array([2.0, -1.0]), np.array([0.5, 1.0])
    for name, hyper in [("instance_norm", {}), ("group_norm", {"groups": 1})]:
        fwd = fm.forward_for(name, **hyper)
        y = fwd(engine.to_values(space, x), engine.to_values(space, w),
                engine.to_values(space, b), Fraction(1, 10), xp)
        ref = fwd(x, w, b, Fraction(1, 10), np)
        for idx in [(0, 0, 0, 0), (0, 1, 1, 0)]:  # the engine decides exact comparisons
            assert Fraction(ref[idx] - 1e-12) < y[idx] < Fraction(ref[idx] + 1e-12)
            assert not (Fraction(ref[idx] + 1e-9) < y[idx])
