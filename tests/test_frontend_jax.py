"""symbolic_bn.frontends.jax: jaxprs of jnp layers and of JAX's derivatives, run on NumPy and exactly.

The layers are written here from the mathematics of notes/layers-spec.md (population variance,
r = 1/sqrt(v + eps)), in several jnp styles on purpose (jnp.var, E[(x-mu)^2], Flax's
max(0, E[x^2] - E[x]^2), lax.rsqrt, 1/jnp.sqrt), so that the traces hold different primitives.
Numeric reference: JAX itself in float64.  Exact reference: the formula evaluated with SymPy
rationals, independently of both JAX and the interpreter.
"""
from __future__ import annotations

import sys
from fractions import Fraction
from itertools import product

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

from symbolic_bn.frontends import jax as jf  # noqa: E402
from symbolic_bn.xp import mpmath_namespace, symbolic, to_sympy_array  # noqa: E402

EPS = 1e-5
EPS_EXACT = sympy.Rational(1, 100000)  # what the symbolic namespace reads 1e-5 as
MP30 = mpmath_namespace(30)


# ---- layers in jnp ---------------------------------------------------------------------------
def _channel_view(v, ndim):
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def batch_norm(x, w, b):
    """x (N, C, *spatial); statistics per channel over N and spatial (training mode)."""
    axes = (0,) + tuple(range(2, x.ndim))
    mu = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.mean((x - mu) ** 2, axis=axes, keepdims=True)
    return (x - mu) * jax.lax.rsqrt(var + EPS) * _channel_view(w, x.ndim) + _channel_view(b, x.ndim)


def instance_norm(x, w, b):
    """x (N, C, *spatial); statistics per (n, c) over spatial; jnp.var (with its NaN guard)."""
    axes = tuple(range(2, x.ndim))
    mu = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.var(x, axis=axes, keepdims=True)
    return (x - mu) / jnp.sqrt(var + EPS) * _channel_view(w, x.ndim) + _channel_view(b, x.ndim)


def layer_norm(x, w, b):
    """Statistics over the trailing block of w.ndim axes; elementwise affine."""
    axes = tuple(range(x.ndim - w.ndim, x.ndim))
    mu = jnp.mean(x, axis=axes, keepdims=True)
    d = x - mu
    var = jnp.mean(jnp.square(d), axis=axes, keepdims=True)
    return d * jax.lax.rsqrt(var + EPS) * w + b


def flax_layer_norm(x, w, b):
    """Flax's statistics: var = max(0, E[x^2] - E[x]^2) over the last axis."""
    mu = jnp.mean(x, axis=-1, keepdims=True)
    mu2 = jnp.mean(x * x, axis=-1, keepdims=True)
    var = jnp.maximum(0.0, mu2 - mu * mu)
    return (x - mu) * jax.lax.rsqrt(var + EPS) * w + b


def group_norm_fn(groups):
    def group_norm(x, w, b):
        """x (N, C, *spatial); contiguous channel groups; statistics per (n, g)."""
        n, c = x.shape[:2]
        xg = x.reshape((n, groups, -1))
        mu = jnp.mean(xg, axis=2, keepdims=True)
        var = jnp.mean((xg - mu) ** 2, axis=2, keepdims=True)
        y = ((xg - mu) / jnp.sqrt(var + EPS)).reshape(x.shape)
        return y * _channel_view(w, x.ndim) + _channel_view(b, x.ndim)

    return group_norm


def rms_norm(x, w):
    """y = x / sqrt(mean(x^2 over the trailing w.ndim axes) + eps) * w; no centering, no bias."""
    axes = tuple(range(x.ndim - w.ndim, x.ndim))
    ms = jnp.mean(x ** 2, axis=axes, keepdims=True)
    return x * jax.lax.rsqrt(ms + EPS) * w


# name -> (function, input shape, parameter shape, has bias)
LAYERS = {
    "batch_norm": (batch_norm, (2, 3, 2, 2), (3,), True),
    "batch_norm_no_spatial": (batch_norm, (4, 3), (3,), True),
    "instance_norm": (instance_norm, (2, 2, 3), (2,), True),
    "layer_norm": (layer_norm, (2, 2, 3), (2, 3), True),
    "flax_layer_norm": (flax_layer_norm, (3, 4), (4,), True),
    "group_norm": (group_norm_fn(2), (2, 4, 3), (4,), True),
    "rms_norm": (rms_norm, (2, 2, 3), (3,), False),
}


def _inputs(name, seed=0):
    fn, xs, ps, has_bias = LAYERS[name]
    rng = np.random.default_rng(seed)
    x = rng.normal(size=xs)
    w = 1.0 + 0.5 * rng.normal(size=ps)
    args = (x, w, rng.normal(size=ps)) if has_bias else (x, w)
    return fn, args


# ---- derivative modes, written with JAX's transforms -------------------------------------------
def _cotangent_like(tree, seed):
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda a: rng.normal(size=np.shape(a)), tree)


def modes(fn, args):
    """name -> (function of flat arrays, its arguments): forward, order 1 and order 2 nestings."""
    n = len(args)
    g = _cotangent_like(jax.eval_shape(fn, *args), 11)
    t1 = _cotangent_like(args, 12)
    t2 = _cotangent_like(args, 13)

    def vjp(*p):
        return jax.vjp(fn, *p)[1](g)

    def jvp(*pt):
        return jax.jvp(fn, pt[:n], pt[n:])[1]

    g2 = _cotangent_like(tuple(args), 14)  # cotangent of vjp's output (one per argument)

    def jvp_of_vjp(*pt):
        return jax.jvp(vjp, pt[:n], pt[n:])[1]

    def vjp_of_vjp(*p):
        return jax.vjp(vjp, *p)[1](g2)

    def jvp_of_jvp(*pt):
        return jax.jvp(lambda *q: jax.jvp(fn, q, tuple(t1))[1], pt[:n], pt[n:])[1]

    def vjp_of_jvp(*p):
        return jax.vjp(lambda *q: jax.jvp(fn, q, tuple(t1))[1], *p)[1](g)

    return {
        "forward": (fn, tuple(args)),
        "vjp": (vjp, tuple(args)),
        "jvp": (jvp, tuple(args) + tuple(t1)),
        "jvp_of_vjp": (jvp_of_vjp, tuple(args) + tuple(t2)),
        "vjp_of_vjp": (vjp_of_vjp, tuple(args)),
        "jvp_of_jvp": (jvp_of_jvp, tuple(args) + tuple(t2)),
        "vjp_of_jvp": (vjp_of_jvp, tuple(args)),
    }


MODE_NAMES = ["forward", "vjp", "jvp", "jvp_of_vjp", "vjp_of_vjp", "jvp_of_jvp", "vjp_of_jvp"]


def _jax_float64(fn, args):
    """JAX's own float64 result (jit-compiled once: op-by-op dispatch is much slower)."""
    with jax.enable_x64(True):
        return jax.tree_util.tree_map(np.asarray, jax.jit(fn)(*args))


def _assert_close(got, want, rtol=1e-12):
    got_l, got_t = jax.tree_util.tree_flatten(got)
    want_l, want_t = jax.tree_util.tree_flatten(want)
    assert got_t == want_t
    for a, b in zip(got_l, want_l):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        assert a.shape == b.shape
        scale = max(1.0, float(np.max(np.abs(b))) if b.size else 1.0)
        assert float(np.max(np.abs(a - b), initial=0.0)) <= rtol * scale


@pytest.mark.parametrize("mode", MODE_NAMES)
@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_jaxpr_on_numpy_matches_jax_float64(layer, mode):
    fn, args = _inputs(layer)
    f, margs = modes(fn, args)[mode]
    tr = jf.trace(f, *margs)
    assert tr.equation_count > 0 and set(tr.primitive_counts) <= jf.SUPPORTED_PRIMITIVES
    assert all(d == "float64" for d in tr.in_dtypes)
    want = _jax_float64(f, margs)
    got = tr.run(np, *margs)
    _assert_close(got, want)
    # The same jaxpr on an object-array namespace (mpmath at 30 digits, floats read exactly)
    # takes the interpreter's namespace code paths rather than NumPy's.
    got_mp = tr.run(MP30, *margs)
    _assert_close(got_mp, want)
    assert all(type(leaf).__name__ == "MpfArray" for leaf in jax.tree_util.tree_leaves(got_mp))


def test_wrong_interpretation_would_be_caught():
    """The comparison above is not vacuous: a perturbed input changes the result beyond 1e-12."""
    fn, args = _inputs("group_norm")
    tr = jf.trace(fn, *args)
    x2 = args[0].copy()
    x2[0, 0, 0] += 1e-6
    with pytest.raises(AssertionError):
        _assert_close(tr.run(np, x2, *args[1:]), _jax_float64(fn, args))


def test_x64_is_enabled_for_the_trace_only():
    before = jax.config.jax_enable_x64
    tr = jf.trace(batch_norm, *_inputs("batch_norm")[1])
    assert jax.config.jax_enable_x64 == before
    assert "f64" in tr.jaxpr_text and "f32" not in tr.jaxpr_text


def test_grad_and_hessian_nestings():
    x = np.array([0.5, -1.25, 2.0, 0.75])

    def loss(w):
        y = rms_norm(x.reshape(1, 4) * w, np.ones(4))
        return jnp.sum(y * y * jnp.arange(1.0, 5.0))

    for f in (jax.grad(loss), jax.hessian(loss), jax.jacfwd(jax.grad(loss))):
        w = np.array([1.0, 0.5, 2.0, -1.0])
        tr = jf.trace(f, w)
        _assert_close(tr.run(np, w), _jax_float64(f, (w,)))
    assert "iota" in jf.trace(jax.hessian(loss), w).primitive_counts


def _batch_norm_vjp_closed_form(x, w, g):
    """NumPy: dx = w r / n (n g - sum g - xhat sum(g xhat)), dw = sum(g xhat), db = sum(g)."""
    axes = (0,) + tuple(range(2, x.ndim))
    n = x.size // x.shape[1]
    mu = x.mean(axis=axes, keepdims=True)
    r = 1.0 / np.sqrt(((x - mu) ** 2).mean(axis=axes, keepdims=True) + EPS)
    xhat = (x - mu) * r
    sg = g.sum(axis=axes, keepdims=True)
    sgx = (g * xhat).sum(axis=axes, keepdims=True)
    dx = _channel_view(w, x.ndim) * r / n * (n * g - sg - xhat * sgx)
    return dx, sgx.reshape(-1), sg.reshape(-1)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 3), c=st.integers(1, 3), spatial=st.lists(st.integers(1, 3), max_size=2),
       seed=st.integers(0, 2 ** 16))
def test_batch_norm_vjp_any_small_shape(n, c, spatial, seed):
    shape = (n, c) + tuple(spatial)
    if np.prod((n,) + tuple(spatial)) < 2:
        shape = (2,) + shape[1:]
    rng = np.random.default_rng(seed)
    x, w, b = rng.normal(size=shape), rng.normal(size=c), rng.normal(size=c)
    g = rng.normal(size=shape)

    def vjp(x, w, b):
        return jax.vjp(batch_norm, x, w, b)[1](g)

    tr = jf.trace(vjp, x, w, b)
    _assert_close(tr.run(np, x, w, b), _batch_norm_vjp_closed_form(x, w, g), rtol=1e-10)


# ---- other primitives -----------------------------------------------------------------------
def test_dot_general_reduce_max_concatenate_slice_pad():
    rng = np.random.default_rng(3)
    a, m = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 4, 5))

    def f(a, m):
        prod = jnp.einsum("bij,bjk->bik", a, m) + a[:, :, :1] @ m[:, :1, :]
        top = jnp.max(prod, axis=(0, 2)) + jnp.min(a, axis=1).sum()
        joined = jnp.concatenate([a[:, :1] * 2.0, a[:, 1:]], axis=1)
        return top, joined, jnp.abs(a) ** 1.5

    for fn, args in [(f, (a, m)), (lambda a, m: jax.vjp(f, a, m)[1](f(a, m)), (a, m))]:
        tr = jf.trace(fn, *args)
        _assert_close(tr.run(np, *args), _jax_float64(fn, args))
    prims = jf.trace(lambda a, m: jax.vjp(f, a, m)[1](f(a, m)), a, m).primitive_counts
    assert {"dot_general", "reduce_max", "concatenate", "slice", "pad"} <= set(prims)


def test_stack_tile_rev_and_softmax_with_its_minus_inf():
    x = np.random.default_rng(6).normal(size=(2, 3))

    def f(x):
        s = jnp.stack([x, 2.0 * x], axis=1)
        return s, jnp.tile(x, (2, 1, 2)), x[::-1, 1:], jax.nn.softmax(x, axis=-1)

    def loss(x):
        s, t, r, p = f(x)
        return jnp.sum(s * s) + jnp.sum(t) + jnp.sum(r * r * r) + jnp.sum(p * x)

    tr = jf.trace(f, x)
    assert any(fc.value == -np.inf for fc in tr.float_constants)  # softmax's max(-inf, .)
    for fn in (f, jax.grad(loss)):
        tr = jf.trace(fn, x)
        want = _jax_float64(fn, (x,))
        _assert_close(tr.run(np, x), want)
        _assert_close(tr.run(MP30, x), want)
    assert {"stack", "unstack", "tile", "rev"} <= set(jf.trace(jax.grad(loss), x).primitive_counts)


def test_dot_general_with_permuted_batch_free_and_contracting_dims():
    rng = np.random.default_rng(5)
    lhs, rhs = rng.normal(size=(3, 2, 4, 5, 2)), rng.normal(size=(5, 2, 4, 6))
    # batch: lhs 1 / rhs 1; contracting: lhs (2, 3) with rhs (2, 0); free: lhs (0, 4), rhs (3,)
    dims = (((2, 3), (2, 0)), ((1,), (1,)))

    def f(lhs, rhs):
        return jax.lax.dot_general(lhs, rhs, dims)

    tr = jf.trace(f, lhs, rhs)
    want = np.einsum("abklc,lbkd->bacd", lhs, rhs)
    _assert_close(_jax_float64(f, (lhs, rhs)), want)
    _assert_close(tr.run(np, lhs, rhs), want)
    _assert_close(tr.run(MP30, lhs, rhs), want)


def test_integer_division_rounds_toward_zero():
    def f(x):
        k = jax.lax.div(jnp.arange(6) - 3, 2)  # -3..2 // 2 toward zero: -1 -1 0 0 0 1
        return x * k.astype(x.dtype)

    x = np.ones(6)
    tr = jf.trace(f, x)
    assert "div" in tr.primitive_counts and "iota" in tr.primitive_counts
    _assert_close(tr.run(np, x), np.array([-1.0, -1.0, 0.0, 0.0, 0.0, 1.0]))


def test_pytree_arguments_and_outputs():
    def f(params, x):
        return {"y": layer_norm(x, params["w"], params["b"]), "mean": (jnp.mean(x),)}

    params = {"w": np.ones(3), "b": np.zeros(3)}
    x = np.arange(6.0).reshape(2, 3)
    tr = jf.trace(f, params, x)
    out = tr.run(np, params, x)
    assert set(out) == {"y", "mean"} and isinstance(out["mean"], tuple)
    _assert_close(out, _jax_float64(f, (params, x)))


# ---- custom derivative rules are what is traced -------------------------------------------------
def _wrong_bwd_layer():
    @jax.custom_vjp
    def scaled_norm(x):
        return layer_norm(x, jnp.ones(x.shape[-1]), jnp.zeros(x.shape[-1]))

    def fwd(x):
        return scaled_norm(x), x

    def bwd(x, g):
        return (g * jax.lax.rsqrt(jnp.var(x, axis=-1, keepdims=True) + EPS),)  # drops two terms

    scaled_norm.defvjp(fwd, bwd)
    return scaled_norm


def test_custom_vjp_rule_is_traced_not_jax_autodiff():
    f = _wrong_bwd_layer()
    x = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
    g = np.array([[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]])
    tr_fwd = jf.trace(f, x)
    assert "custom_vjp_call" in tr_fwd.primitive_counts
    _assert_close(tr_fwd.run(np, x), _jax_float64(layer_norm, (x, np.ones(3), np.zeros(3))))

    def user_vjp(x):
        return jax.vjp(f, x)[1](g)[0]

    def true_vjp(x):
        return jax.vjp(lambda x: layer_norm(x, jnp.ones(3), jnp.zeros(3)), x)[1](g)[0]

    got = jf.trace(user_vjp, x).run(np, x)
    _assert_close(got, _jax_float64(user_vjp, (x,)))  # the user's (wrong) rule, reproduced
    assert np.max(np.abs(got - _jax_float64(true_vjp, (x,)))) > 1e-3  # ... which is not the gradient


def test_custom_jvp_forward_runs_primal_and_jvp_runs_the_rule():
    @jax.custom_jvp
    def cube(x):
        return x * x * x

    @cube.defjvp
    def cube_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return cube(x), 2.0 * x * x * t  # deliberately not 3 x^2

    x = np.array([1.0, -2.0, 0.5])
    tr = jf.trace(cube, x)
    assert "custom_jvp_call" in tr.primitive_counts
    _assert_close(tr.run(np, x), x ** 3)
    jv = jf.trace(lambda x, t: jax.jvp(cube, (x,), (t,)), x, np.ones(3))
    _assert_close(jv.run(np, x, np.ones(3)), (x ** 3, 2.0 * x * x))


# ---- exact runs ---------------------------------------------------------------------------------
def _rational_array(shape, seed):
    rng = np.random.default_rng(seed)
    vals = [Fraction(int(rng.integers(-9, 10)), int(rng.integers(1, 5))) for _ in range(int(np.prod(shape)))]
    return np.array(vals, dtype=object).reshape(shape)


def _exact_norm(x, w, b, groups_of, center=True):
    """The layer formula with SymPy rationals: groups_of(index) -> statistics key."""
    idx = list(product(*[range(s) for s in x.shape]))
    keys = {}
    for i in idx:
        keys.setdefault(groups_of(i), []).append(i)
    out = np.empty(x.shape, dtype=object)
    for members in keys.values():
        vals = [sympy.Rational(x[i]) for i in members]
        n = len(vals)
        mu = sum(vals) / n if center else 0
        var = sum((v - mu) ** 2 for v in vals) / n
        r = 1 / sympy.sqrt(var + EPS_EXACT)
        for i, v in zip(members, vals):
            out[i] = (v - mu) * r
    return out


EXACT_CASES = {
    # name -> (shape, param shape, statistics key of an index, weight/bias index of an index)
    "batch_norm": ((2, 2, 2), (2,), lambda i: i[1], lambda i: i[1]),
    "instance_norm": ((2, 2, 3), (2,), lambda i: i[:2], lambda i: i[1]),
    "layer_norm": ((2, 3), (3,), lambda i: i[0], lambda i: i[1]),
    "flax_layer_norm": ((2, 3), (3,), lambda i: i[0], lambda i: i[1]),
    "group_norm": ((1, 4, 2), (4,), lambda i: (i[0], i[1] // 2), lambda i: i[1]),
    "rms_norm": ((2, 3), (3,), lambda i: i[0], lambda i: i[1]),
}


@pytest.mark.parametrize("layer", sorted(EXACT_CASES))
def test_exact_forward_on_symbolic_namespace(layer):
    fn = LAYERS[layer][0]
    shape, pshape, key, chan = EXACT_CASES[layer]
    x, w, b = _rational_array(shape, 1), _rational_array(pshape, 2), _rational_array(pshape, 3)
    has_bias = layer != "rms_norm"
    args = (x, w, b) if has_bias else (x, w)
    sym_args = tuple(to_sympy_array(a) for a in args)
    tr = jf.trace(fn, *sym_args)  # object arrays stand for float64 arrays of their shape
    got = tr.run(symbolic, *sym_args)
    want = _exact_norm(x, w, b, key, center=has_bias)
    for i in np.ndindex(shape):
        c = chan(i)
        expect = want[i] * sympy.Rational(w[c]) + (sympy.Rational(b[c]) if has_bias else 0)
        assert sympy.expand(got[i] - expect) == 0, (i, got[i], expect)
    # the float constants are listed: eps, and the statistics' counts
    values = {fc.value for fc in tr.float_constants if fc.kind == "literal"}
    assert EPS in values
    n_stat = len([j for j in np.ndindex(shape) if key(j) == key((0,) * len(shape))])
    assert float(n_stat) in values
    eps_entry = next(fc for fc in tr.float_constants if fc.value == EPS)
    assert "test_frontend_jax.py" in eps_entry.source


def test_exact_batch_norm_vjp_is_the_closed_form():
    """JAX's own backward of batch_norm, run exactly, equals dx = w r / n (n g - sum g - xhat
    sum(g xhat)), dw = sum(g xhat), db = sum(g), at a rational point."""
    x, w, b = _rational_array((2, 2, 2), 4), _rational_array((2,), 5), _rational_array((2,), 6)
    g = _rational_array((2, 2, 2), 7)

    def vjp(x, w, b, g):
        return jax.vjp(batch_norm, x, w, b)[1](g)

    sym = tuple(to_sympy_array(a) for a in (x, w, b, g))
    dx, dw, db = jf.trace(vjp, *sym).run(symbolic, *sym)
    xhat = _exact_norm(x, w, b, lambda i: i[1])
    for c in range(2):
        members = [i for i in np.ndindex(2, 2, 2) if i[1] == c]
        n = len(members)
        gs = [sympy.Rational(g[i]) for i in members]
        sg = sum(gs)
        sgx = sum(gi * xhat[i] for gi, i in zip(gs, members))
        assert sympy.expand(db[c] - sg) == 0
        assert sympy.expand(dw[c] - sgx) == 0
        # r = xhat / (x - mu) is the same for the channel; take it from the formula
        vals = [sympy.Rational(x[i]) for i in members]
        mu = sum(vals) / n
        r = 1 / sympy.sqrt(sum((v - mu) ** 2 for v in vals) / n + EPS_EXACT)
        for gi, i in zip(gs, members):
            expect = sympy.Rational(w[c]) * r / n * (n * gi - sg - xhat[i] * sgx)
            assert sympy.expand(dx[i] - expect) == 0


def test_exact_reductions_max_min_and_dot_general():
    a = _rational_array((2, 3, 2), 8)
    m = _rational_array((2, 2, 3), 9)

    def f(a, m):
        return jnp.max(a, axis=(0, 2)), jnp.min(a, axis=1), jnp.einsum("bij,bjk->bik", a, m)

    sa, sm = to_sympy_array(a), to_sympy_array(m)
    top, low, prod = jf.trace(f, sa, sm).run(symbolic, sa, sm)
    for j in range(3):
        assert top[j] == max(a[i, j, k] for i in range(2) for k in range(2))
    for i, k in product(range(2), range(2)):
        assert low[i, k] == min(a[i, j, k] for j in range(3))
    for bi, i, k in product(range(2), range(3), range(3)):
        assert prod[bi, i, k] == sum(a[bi, i, j] * m[bi, j, k] for j in range(2))


def test_exact_run_with_symbols_gives_expressions():
    from symbolic_bn.xp import symbols_array

    x, w, b = symbols_array("x", (1, 2, 2)), symbols_array("w", (2,)), symbols_array("b", (2,))
    y = jf.trace(batch_norm, x, w, b).run(symbolic, x, w, b)
    assert y.shape == (1, 2, 2)
    assert y[0, 0, 0].free_symbols == {x[0, 0, 0], x[0, 0, 1], w[0], b[0]}


def test_symbolic_eps_argument_and_closure_constants():
    gamma = np.array([0.5, 0.25])  # captured by the function: a closure constant

    def norm(x, eps):
        mu = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean((x - mu) ** 2, axis=-1, keepdims=True)
        return (x - mu) / jnp.sqrt(var + eps) * gamma

    x = np.array([[1.0, 3.0], [2.0, -2.0]])
    tr = jf.trace(norm, x, 1e-5)
    closures = [fc for fc in tr.float_constants if fc.kind == "closure"]
    assert len(closures) == 1 and np.array_equal(closures[0].value, gamma)
    _assert_close(tr.run(np, x, 1e-5), _jax_float64(norm, (x, 1e-5)))
    eps = sympy.Symbol("eps", positive=True)
    y = tr.run(symbolic, to_sympy_array(x), eps)
    # row 0: mu = 2, var = 1, y = (x - mu) / sqrt(1 + eps) * gamma
    assert sympy.expand(y[0, 0] - (-1) / sympy.sqrt(1 + eps) / 2) == 0
    assert sympy.expand(y[0, 1] - 1 / sympy.sqrt(1 + eps) / 4) == 0
    assert y[1, 0].free_symbols == {eps}
    assert jf.trace(lambda x: (x, 0.5), x).float_constants[0].equation == "result 1"


def test_where_is_decided_or_refused_by_the_namespace():
    from symbolic_bn.xp import UnsupportedOperation, symbols_array

    def relu_scale(x):
        return jnp.where(x > 0, x, 0.5 * x)

    pos = to_sympy_array(np.array([Fraction(1, 3), Fraction(-2, 7)], dtype=object))
    tr = jf.trace(relu_scale, pos)
    got = tr.run(symbolic, pos)
    assert got[0] == sympy.Rational(1, 3) and got[1] == sympy.Rational(-1, 7)
    with pytest.raises(UnsupportedOperation) as info:
        tr.run(symbolic, symbols_array("x", (2,)))
    assert any("eqn" in note for note in getattr(info.value, "__notes__", []))


# ---- refusals and errors ----------------------------------------------------------------------
def test_python_control_flow_is_one_line_error_naming_the_line():
    def branchy(x):
        if jnp.sum(x) > 0:  # data-dependent Python branch
            return x
        return -x

    with pytest.raises(jf.JaxTraceError) as info:
        jf.trace(branchy, np.ones(3))
    msg = str(info.value)
    assert "\n" not in msg and "branchy" in msg
    assert "test_frontend_jax.py" in msg and "if jnp.sum(x) > 0" in msg


def test_numpy_conversion_of_tracer_is_refused():
    with pytest.raises(jf.JaxTraceError, match="TracerArrayConversionError"):
        jf.trace(lambda x: np.asarray(x) * 2, np.ones(2))


def test_unsupported_primitive_named_with_equation():
    def f(x):
        y = x * 2.0
        return jax.lax.reduce_precision(y, exponent_bits=5, mantissa_bits=10)

    with pytest.raises(jf.UnsupportedJaxPrimitive) as info:
        jf.trace(f, np.ones(3))
    msg = str(info.value)
    assert msg.startswith("reduce_precision (eqn 1)") and "\n" not in msg
    with pytest.raises(jf.UnsupportedJaxPrimitive, match=r"^sin \(eqn 0\)"):
        jf.trace(jnp.sin, np.ones(3))


def test_float_to_int_cast_and_argument_dependent_exponent_refused():
    with pytest.raises(jf.UnsupportedJaxPrimitive, match="float64 -> int32"):
        jf.trace(lambda x: x.astype(jnp.int32), np.ones(3))
    with pytest.raises(jf.UnsupportedJaxPrimitive, match="exponent depends on the arguments"):
        jf.trace(lambda x, p: x ** p, np.ones(3), np.ones(3))
    # a constant exponent is fine, also after differentiation (jvp computes y - 1)
    f = lambda x, t: jax.jvp(lambda x: x ** 1.5, (x,), (t,))  # noqa: E731
    x = np.array([0.5, 2.0])
    _assert_close(jf.trace(f, x, x).run(np, x, x), _jax_float64(f, (x, x)))


def test_nan_guard_of_jnp_var_and_nan_results():
    x = np.array([[1.0, 2.0, 4.0]])
    ok = jf.trace(lambda x: jnp.var(x, axis=1), x)
    assert any(np.isnan(fc.value) for fc in ok.float_constants if fc.kind == "literal")
    _assert_close(ok.run(np, x), np.var(x, axis=1))
    bad = jf.trace(lambda x: jnp.var(x, axis=0, ddof=1), x)  # n - ddof = 0: jnp.var gives nan
    with np.errstate(invalid="ignore", divide="ignore"), \
            pytest.raises(jf.NonFiniteConstantError, match="non-finite"):
        bad.run(np, x)
    with pytest.raises(ZeroDivisionError):  # exactly, the guarded division itself is refused
        bad.run(symbolic, x)


def test_run_checks_arguments():
    tr = jf.trace(layer_norm, np.ones((2, 3)), np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="leaf 0 has shape"):
        tr.run(np, np.ones((3, 3)), np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="structure"):
        tr.run(np, np.ones((2, 3)), np.ones(3))


def test_bad_example_arguments():
    with pytest.raises(TypeError, match="callable"):
        jf.trace("layer_norm", np.ones(3))
    with pytest.raises(TypeError, match="dtype int64"):
        jf.trace(lambda x: x, np.arange(3))
    with pytest.raises(TypeError, match="leaf 0 is a str"):
        jf.trace(lambda x: x, "1.0")


def test_missing_jax_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", None)
    with pytest.raises(jf.JaxNotInstalled, match="pip install jax") as info:
        jf.trace(lambda x: x, np.ones(2))
    assert isinstance(info.value, ImportError) and "symbolic-bn[jax]" in str(info.value)
