"""symbolic_bn.frontends.torch: traces of torch code (forward, autograd, torch.func nestings)
interpreted on NumPy reproduce torch eager float64; on the exact namespace they give the exact
formula; what cannot be traced or interpreted is refused with one line naming the op or line."""
from __future__ import annotations

import sys
import zlib
from fractions import Fraction

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from torch.func import jvp, vjp  # noqa: E402

from symbolic_bn.frontends import torch as tfront  # noqa: E402
from symbolic_bn.frontends.torch import (  # noqa: E402
    TorchNotInstalledError,
    TorchRunError,
    TorchTraceError,
    UnsupportedTorchOp,
    trace,
)
from symbolic_bn.xp import symbolic, to_sympy_array  # noqa: E402

D = torch.float64
EPS = 1e-5


# ---------------------------------------------------------------------------------------------
# The layers (layers-spec.md) as torch calls
# ---------------------------------------------------------------------------------------------
LAYERS = {
    # name: (f(x, w, b), x shape, weight shape)
    "batch_norm": (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True, eps=EPS),
                   (2, 3, 2, 2), (3,)),
    "instance_norm": (lambda x, w, b: F.instance_norm(x, weight=w, bias=b, eps=EPS),
                      (2, 3, 2, 2), (3,)),
    "layer_norm_1d": (lambda x, w, b: F.layer_norm(x, (4,), w, b, EPS), (2, 3, 4), (4,)),
    "layer_norm_2d": (lambda x, w, b: F.layer_norm(x, (3, 4), w, b, EPS), (2, 3, 4), (3, 4)),
    "group_norm": (lambda x, w, b: F.group_norm(x, 2, w, b, eps=EPS), (2, 4, 2, 2), (4,)),
    "rms_norm": (lambda x, w, b: F.rms_norm(x, (4,), w, EPS), (2, 3, 4), (4,)),  # b unused
}


def _modes(f):
    """Every mode of the brief as a function (x, w, b, u, v) -> tensors; u, v directions."""

    def backward(x, w, b, u, v):
        x, w, b = (t.requires_grad_() for t in (x, w, b))
        return torch.autograd.grad(f(x, w, b), (x, w, b), u, allow_unused=True)

    def vjp_of_vjp(x, w, b, u, v):  # via torch.autograd.grad(create_graph=True)
        x, w, b = (t.requires_grad_() for t in (x, w, b))
        (dx,) = torch.autograd.grad(f(x, w, b), (x,), u, create_graph=True)
        return torch.autograd.grad(dx, (x, w, b), v, allow_unused=True)

    return {
        "forward": lambda x, w, b, u, v: f(x, w, b),
        "autograd.grad": backward,
        "vjp": lambda x, w, b, u, v: vjp(f, x, w, b)[1](u),
        "jvp": lambda x, w, b, u, v: jvp(f, (x, w, b), (u, w, b)),
        "jvp(vjp)": lambda x, w, b, u, v: jvp(lambda x: vjp(f, x, w, b)[1](u), (x,), (v,)),
        "vjp(vjp)": vjp_of_vjp,
        "jvp(jvp)": lambda x, w, b, u, v: jvp(lambda x: jvp(lambda x: f(x, w, b), (x,), (u,))[1],
                                              (x,), (v,)),
        "vjp(jvp)": lambda x, w, b, u, v: vjp(lambda x: jvp(f, (x, w, b), (u, w, b))[1], x)[1](v),
    }


MODES = list(_modes(None))


def _flat(out):
    if isinstance(out, (tuple, list)):
        return [y for o in out for y in _flat(o)]
    return [out]


def _inputs(xshape, wshape, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=D) for s in (xshape, wshape, wshape, xshape, xshape)]


def _assert_reproduces(tr, fn, args, rtol=1e-12):
    eager = _flat(fn(*[a.clone() for a in args]))
    got = _flat(tr.run(np, *[a.numpy() for a in args]))
    assert len(got) == len(eager)
    for g, e in zip(got, eager):
        if e is None:
            assert g is None
            continue
        e = e.detach().numpy()
        assert np.shape(g) == e.shape
        scale = max(1.0, float(np.max(np.abs(e))))
        assert float(np.max(np.abs(np.asarray(g, dtype=float) - e))) <= rtol * scale


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("layer", list(LAYERS))
def test_trace_of_every_layer_and_mode_reproduces_torch_float64(layer, mode):
    f, xshape, wshape = LAYERS[layer]
    fn = _modes(f)[mode]
    args = _inputs(xshape, wshape, seed=zlib.crc32(f"{layer} {mode}".encode()) % 1000)
    tr = trace(fn, *args, retrace=False)
    assert tr.num_nodes > 0
    # the fused kernels were lowered: no native_* op survives
    assert not [op for op in tr.op_counts if "native" in op or "norm" in op]
    _assert_reproduces(tr, fn, args)
    # at other values too (the graph is not specialised to the example)
    _assert_reproduces(tr, fn, _inputs(xshape, wshape, seed=7))


def test_a_wrong_rule_would_be_caught_by_the_comparison():
    """The reproduction check can fail: a trace of the forward does not reproduce the vjp."""
    f, xshape, wshape = LAYERS["instance_norm"]
    args = _inputs(xshape, wshape, seed=3)
    modes = _modes(f)
    tr = trace(modes["jvp"], *args, retrace=False)
    with pytest.raises(AssertionError):
        _assert_reproduces(tr, lambda x, w, b, u, v: (f(x, w, b), 1.001 * jvp(f, (x, w, b), (u, w, b))[1]),
                           args)


def test_group_norm_trace_holds_as_strided_and_it_is_run_as_a_plain_view():
    f, xshape, wshape = LAYERS["group_norm"]
    args = _inputs(xshape, wshape, seed=1)
    tr = trace(lambda x, w, b, u, v: f(x, w, b), *args)
    assert tr.op_counts["aten.as_strided.default"] >= 1
    _assert_reproduces(tr, lambda x, w, b, u, v: f(x, w, b), args)


def test_decompose_false_leaves_the_fused_kernel_and_it_is_refused_by_name():
    f, xshape, wshape = LAYERS["batch_norm"]
    x, w, b, _, _ = _inputs(xshape, wshape, seed=0)
    pattern = r"aten\.native_batch_norm\.default \(node %native_batch_norm"
    with pytest.raises(UnsupportedTorchOp, match=pattern):
        trace(f, x, w, b, decompose=False)


def test_every_table_entry_is_a_torch_overload_and_takes_its_required_arguments():
    from symbolic_bn.frontends.torch_ops import OPS

    assert tfront.supported_ops() == sorted(OPS)
    for name, rule in OPS.items():
        _, packet, overload = name.split(".")
        op = getattr(getattr(torch.ops.aten, packet), overload)  # AttributeError: a typo
        required = [a.name for a in op._schema.arguments if not a.has_default_value()]
        assert set(required) <= rule.accepts, (name, required)


def test_torch_func_grad_jacrev_and_hessian_trace():
    from torch.func import grad, hessian, jacrev

    x, w, b, u, _ = _inputs((1, 2, 2, 2), (2,), seed=4)
    f = lambda x: F.instance_norm(x, weight=w, bias=b, eps=EPS)  # noqa: E731
    for fn in (lambda x, u: grad(lambda x: (f(x) * u).sum())(x),
               lambda x, u: jacrev(f)(x),
               lambda x, u: hessian(lambda x: (f(x) * u).sum())(x)):
        tr = trace(fn, x, u)
        np.testing.assert_allclose(tr.run(np, x.numpy(), u.numpy()), fn(x, u).numpy(),
                                   rtol=1e-12, atol=1e-12)


def test_module_with_buffers_traces_its_in_place_running_stat_updates():
    bn = torch.nn.BatchNorm2d(3).double()
    x, _, _, u, _ = _inputs((2, 3, 2, 2), (3,), seed=8)

    def fn(x, u):
        x = x.requires_grad_()
        y = bn(x)
        return y, torch.autograd.grad(y, x, u)[0], bn.running_mean * 1

    tr = trace(fn, x, u)
    assert tr.op_counts["aten.copy_.default"] >= 1  # running_mean / running_var updated in place
    start = bn.running_mean.clone()
    want = fn(x.clone(), u.clone())  # eager: mutates bn.running_mean again
    got = tr.run(np, x.numpy(), u.numpy())
    np.testing.assert_allclose(got[0], want[0].detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got[1], want[1].numpy(), rtol=1e-12, atol=1e-12)
    # the trace holds the buffer as it was when traced and updates it as torch does
    np.testing.assert_allclose(got[2], (0.9 * start + 0.1 * x.mean(dim=(0, 2, 3))).numpy(),
                               rtol=0, atol=1e-15)


# ---------------------------------------------------------------------------------------------
# Single ops, against torch eager
# ---------------------------------------------------------------------------------------------
_A = torch.arange(1, 13, dtype=D).reshape(3, 4) / 5 - 1
_B = torch.arange(12, dtype=D).reshape(4, 3) / 7 + 0.5
_V = torch.tensor([0.5, -2.0, 3.0], dtype=D)
OP_CASES = {
    "repeat": (lambda a: a.repeat(2, 1, 3), _A),
    "cat with a legacy empty": (lambda a: torch.cat([torch.zeros(0, dtype=D), a.reshape(-1), a[0]]), _A),
    "cat dim -1, stack": (lambda a: (torch.cat([a, a * 2], dim=-1), torch.stack([a, -a], dim=1)), _A),
    "addmm": (lambda a, b: torch.addmm(_V[:, None].expand(3, 3), a, b, beta=0.5, alpha=2.0), _A, _B),
    "addmm beta=0": (lambda a, b: torch.addmm(torch.ones(3, 3, dtype=D), a, b, beta=0), _A, _B),
    "mm bmm dot mv linear": (lambda a, b: (a @ b, torch.bmm(a[None], b[None]), a[0] @ b[:, 0], a @ b[:, 0],
                                           F.linear(a, b.t(), _V)), _A, _B),
    "max min": (lambda a: (a.amax(1, keepdim=True), a.amin(), a.max(), a.min()), _A),
    "var std var_mean": (lambda a: (a.var(1), a.var(0, correction=0, keepdim=True), a.std(),
                                    torch.var_mean(a, 1)), _A),
    "clamp": (lambda a: (a.clamp(-0.5, 0.5), a.clamp(min=0.1), torch.clamp_max(a, 0.2), a.clamp(1, -1)), _A),
    "where comparisons logic": (lambda a: (torch.where(a > 0, a, -a * 2), a >= 0.2, a == a.t().t(),
                                           (a < 0) & (a > -0.5), ~(a != 0)), _A),
    "split unbind chunk": (lambda a: (a.split(3, 1), a.unbind(0), a.chunk(2, 0), a.split([1, 3], 1)), _A),
    "diagonal": (lambda a: (a.diagonal(), a.diagonal(1), a.diagonal(-1), torch.diag_embed(_V)), _A),
    "pow": (lambda a: (a ** 2, a.abs() ** 0.5, 2.0 ** a, a ** a.abs(), torch.pow(a, -1)), _A),
    "rsub reciprocal": (lambda a: (1 - a, 3.0 - 2 * a, a.reciprocal(), torch.arange(1, 4).reciprocal()), _A),
    "factories": (lambda a: (torch.full((2, 2), 0.25, dtype=D) + 0, a.new_full((2,), 3.0),
                             torch.zeros_like(a) + 1, torch.ones(2, dtype=torch.int64) * 3,
                             torch.arange(5) * a[0, 0], a.new_zeros(3), torch.eye(3, dtype=D)), _A),
    "squeezes": (lambda a: (a[None, :, None].squeeze(), a[None, :, None].squeeze(0),
                            a[None, :, None].squeeze((0, 2)), a.unsqueeze(-1).squeeze(1)), _A),
    "views": (lambda a: (a.t(), a.transpose(0, 1), a.permute(1, 0), a[::2, 1:3], a[:, -1], a[1],
                         a.reshape(2, 6), a.t().reshape(-1), a.expand(2, 3, 4), a.flatten()), _A),
    "exp log sqrt rsqrt": (lambda a: (a.exp(), (a.abs() + 1).log(), (a * a + 1).sqrt(),
                                      (a * a + 1).rsqrt(), a.square(), -a, a.abs()), _A),
    "sum mean": (lambda a: (a.sum(), a.sum(0), a.sum((0, 1), keepdim=True), a.mean(), a.mean(-1),
                            (a > 0).sum(), (a > 0).double().mean()), _A),
    "in-place variants": (lambda a: (a.clone().clamp_(0, 0.4), a.clone().pow_(2), a.clone().neg_().exp_(),
                                     a.clone().unsqueeze_(0).squeeze_(0).t_()), _A),
    "alpha": (lambda a: (torch.add(a, a, alpha=2.5), torch.sub(a, 1.0, alpha=3),
                         torch.rsub(a, 1.0, alpha=2)), _A),
    "integer tensors": (lambda a: (torch.arange(6).reshape(2, 3) * 2 + 1, torch.arange(6) / 4,
                                   torch.arange(6).sum()), _A),
}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # 0 ** -1 and (-x) ** 0.5, as in torch
@pytest.mark.parametrize("case", list(OP_CASES))
def test_single_ops_match_torch(case):
    fn, *args = OP_CASES[case]
    got = _flat(trace(fn, *args).run(np, *[a.numpy() for a in args]))
    want = _flat(fn(*args))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert np.shape(g) == tuple(w.shape)
        # torch rounds float32 results (int.reciprocal() is float32); the interpreter does not
        tol = 1e-13 if w.dtype != torch.float32 else 1e-6
        np.testing.assert_allclose(np.asarray(g, dtype=float), w.double().numpy(), rtol=tol,
                                   atol=tol, equal_nan=True)


# ---------------------------------------------------------------------------------------------
# Exact runs on the symbolic namespace
# ---------------------------------------------------------------------------------------------
def _instance_norm_exact(x, w, b, eps):
    """(x - mean) / sqrt(var + eps) * w + b per (n, c) over H*W, with Fractions; r rational."""
    import sympy

    out = np.empty(x.shape, dtype=object)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            v = list(x[n, c].reshape(-1))
            mu = sum(v, Fraction(0)) / len(v)
            var = sum(((e - mu) ** 2 for e in v), Fraction(0)) / len(v)
            r = 1 / sympy.sqrt(sympy.Rational(var + eps))
            for idx in np.ndindex(*x.shape[2:]):
                out[(n, c) + idx] = (x[(n, c) + idx] - mu) * r * w[c] + b[c]
    return out


def test_instance_norm_forward_on_the_symbolic_namespace_is_the_exact_formula():
    # eps = 1: channel 0 has var 9/16 (var + eps = 25/16), channel 1 var 16/9 (25/9): r rational
    x = np.array([[[[0, 0], [Fraction(3, 2), Fraction(3, 2)]],
                   [[Fraction(8, 3), 0], [0, Fraction(8, 3)]]]], dtype=object)
    w = np.array([Fraction(2), Fraction(-1, 3)], dtype=object)
    b = np.array([Fraction(1, 7), Fraction(5)], dtype=object)
    tr = trace(lambda x, w, b: F.instance_norm(x, weight=w, bias=b, eps=1.0),
               *[torch.randn(s, dtype=D) for s in ((1, 2, 2, 2), (2,), (2,))])
    assert [c[2] for c in tr.float_constants] == [1.0]
    y = tr.run(symbolic, to_sympy_array(x), to_sympy_array(w), to_sympy_array(b))
    expected = _instance_norm_exact(x, w, b, Fraction(1))
    import sympy

    for idx in np.ndindex(*x.shape):
        assert isinstance(y[idx], sympy.Rational), y[idx]
        assert y[idx] == sympy.Rational(expected[idx]), (idx, y[idx], expected[idx])


def test_instance_norm_forward_with_eps_1e5_on_symbolic_reads_the_trace_float():
    """The trace holds eps as the Python float 1e-05; today's namespace reads it as 1/100000.
    Check y exactly through ((y - b) / ((x - mu) w))^2 == 1/(var + 1/100000) (no simplify)."""
    import sympy

    x = np.array([[[[1, 2], [3, 5]], [[Fraction(1, 2), -1], [0, 4]]]], dtype=object)
    w = np.array([2, Fraction(1, 3)], dtype=object)
    b = np.array([0, 1], dtype=object)
    tr = trace(lambda x, w, b: F.instance_norm(x, weight=w, bias=b, eps=1e-5),
               *[torch.randn(s, dtype=D) for s in ((1, 2, 2, 2), (2,), (2,))])
    assert tr.float_constants == [("add", "aten.add.Tensor", 1e-05)]
    y = tr.run(symbolic, to_sympy_array(x), to_sympy_array(w), to_sympy_array(b))
    for c in range(2):
        v = [sympy.Rational(e) for e in x[0, c].reshape(-1)]
        mu = sum(v) / 4
        var = sum((e - mu) ** 2 for e in v) / 4
        for i in range(2):
            for j in range(2):
                ratio = (y[0, c, i, j] - b[c]) / ((sympy.Rational(x[0, c, i, j]) - mu) * w[c])
                assert sympy.expand(ratio ** 2) == 1 / (var + sympy.Rational(1, 100000))
                assert ratio > 0


def test_instance_norm_vjp_on_symbolic_is_the_exact_backward():
    """torch's own backward (decomposed native_batch_norm_backward, with its in-place ops) run
    exactly equals dx = r/N (N g - sum g - xhat sum(g xhat)) w, dw = sum(g xhat), db = sum g."""
    x = np.array([[[[0, 0], [Fraction(3, 2), Fraction(3, 2)]],
                   [[Fraction(8, 3), 0], [0, Fraction(8, 3)]]]], dtype=object)
    w = np.array([Fraction(2), Fraction(-1, 3)], dtype=object)
    b = np.array([Fraction(1, 7), Fraction(5)], dtype=object)
    g = np.array([[[[1, -2], [Fraction(1, 2), 3]], [[0, 1], [Fraction(-5, 4), 2]]]], dtype=object)
    f = lambda x, w, b: F.instance_norm(x, weight=w, bias=b, eps=1.0)  # noqa: E731
    tr = trace(lambda x, w, b, g: vjp(f, x, w, b)[1](g),
               *[torch.randn(s, dtype=D) for s in ((1, 2, 2, 2), (2,), (2,), (1, 2, 2, 2))])
    dx, dw, db = tr.run(symbolic, *(to_sympy_array(a) for a in (x, w, b, g)))
    r = {0: Fraction(4, 5), 1: Fraction(3, 5)}
    for c in range(2):
        v = list(x[0, c].reshape(-1))
        mu = sum(v, Fraction(0)) / 4
        xhat = {idx: (x[(0, c) + idx] - mu) * r[c] for idx in np.ndindex(2, 2)}
        gs = {idx: Fraction(g[(0, c) + idx]) for idx in np.ndindex(2, 2)}
        sum_g = sum(gs.values())
        sum_gx = sum(gs[i] * xhat[i] for i in gs)
        assert db[c] == sum_g
        assert dw[c] == sum_gx
        for idx in gs:
            assert dx[(0, c) + idx] == r[c] / 4 * (4 * gs[idx] - sum_g - xhat[idx] * sum_gx) * w[c]


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_runs_on_the_symbolic_namespace(mode):
    """Order 0-2 traces of instance_norm (eps = 1, data with rational r) run exactly: every
    entry is a Rational, and equals torch's float64 value to rounding."""
    import sympy

    x = np.array([[[[0, 0], [Fraction(3, 2), Fraction(3, 2)]],
                   [[Fraction(8, 3), 0], [0, Fraction(8, 3)]]]], dtype=object)
    w = np.array([Fraction(2), Fraction(-1, 3)], dtype=object)
    b = np.array([Fraction(1, 7), Fraction(5)], dtype=object)
    u = np.array([[[[1, -2], [Fraction(1, 2), 3]], [[0, 1], [Fraction(-5, 4), 2]]]], dtype=object)
    v = np.array([[[[2, 1], [0, -1]], [[1, 1], [Fraction(1, 3), 0]]]], dtype=object)
    fn = _modes(lambda x, w, b: F.instance_norm(x, weight=w, bias=b, eps=1.0))[mode]
    examples = [torch.tensor(a.astype(float), dtype=D) for a in (x, w, b, u, v)]
    tr = trace(fn, *examples, retrace=False)
    exact = _flat(tr.run(symbolic, *(to_sympy_array(a) for a in (x, w, b, u, v))))
    eager = _flat(fn(*[e.clone() for e in examples]))
    assert len(exact) == len(eager)
    for got, want in zip(exact, eager):
        if want is None:  # an input the derivative does not use (allow_unused=True)
            assert got is None
            continue
        for e, f in zip(np.asarray(got).reshape(-1), want.detach().numpy().reshape(-1)):
            assert isinstance(e, sympy.Rational), e
            assert abs(float(e) - f) <= 1e-12 * max(1.0, abs(f))


# ---------------------------------------------------------------------------------------------
# Custom autograd.Function, forward-mode dual numbers, constants, structure
# ---------------------------------------------------------------------------------------------
class _CubeWithWrongBackward(torch.autograd.Function):
    """y = x^3 with the hand-written (wrong) backward g * 2.5 * x."""

    @staticmethod
    def forward(x):
        return x * x * x

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 2.5 * x


def test_custom_autograd_function_traces_to_its_own_backward():
    x = torch.tensor([1.0, -2.0, 3.0], dtype=D)
    g = torch.tensor([0.5, 1.0, -1.0], dtype=D)

    def grad_of_cube(x, g):
        x = x.requires_grad_()
        return torch.autograd.grad(_CubeWithWrongBackward.apply(x), x, g)

    for fn in (grad_of_cube, lambda x, g: vjp(_CubeWithWrongBackward.apply, x)[1](g)):
        tr = trace(fn, x, g)
        assert any(c[2] == 2.5 for c in tr.float_constants), tr.float_constants
        (dx,) = tr.run(np, x.numpy(), g.numpy())
        np.testing.assert_array_equal(dx, (g * 2.5 * x).numpy())      # what torch computes
        assert not np.allclose(dx, (3 * x * x * g).numpy())              # not the true derivative


class _BatchNormChannel(torch.autograd.Function):
    """Training-mode BN over (N, C, H, W) per channel with a hand-written backward."""

    @staticmethod
    def forward(x, w, b):
        mu = x.mean(dim=(0, 2, 3), keepdim=True)
        var = ((x - mu) ** 2).mean(dim=(0, 2, 3), keepdim=True)
        r = (var + EPS).rsqrt()
        return (x - mu) * r * w[:, None, None] + b[:, None, None]

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, g):
        x, w, b = ctx.saved_tensors
        n = x.shape[0] * x.shape[2] * x.shape[3]
        mu = x.mean(dim=(0, 2, 3), keepdim=True)
        r = (((x - mu) ** 2).mean(dim=(0, 2, 3), keepdim=True) + EPS).rsqrt()
        xhat = (x - mu) * r
        sg = g.sum(dim=(0, 2, 3), keepdim=True)
        sgx = (g * xhat).sum(dim=(0, 2, 3), keepdim=True)
        dx = r / n * (n * g - sg - xhat * sgx) * w[:, None, None]
        return dx, sgx.reshape(-1), sg.reshape(-1)


def test_custom_batch_norm_backward_trace_agrees_with_torchs_autograd():
    f, xshape, wshape = LAYERS["batch_norm"]
    x, w, b, u, _ = _inputs(xshape, wshape, seed=11)

    def custom(x, w, b, u):
        x, w, b = (t.requires_grad_() for t in (x, w, b))
        return torch.autograd.grad(_BatchNormChannel.apply(x, w, b), (x, w, b), u)

    tr = trace(custom, x, w, b, u)
    ours = tr.run(np, x.numpy(), w.numpy(), b.numpy(), u.numpy())
    reference = _modes(f)["autograd.grad"](x.clone(), w.clone(), b.clone(), u.clone(), None)
    for o, r in zip(ours, reference):
        np.testing.assert_allclose(o, r.numpy(), rtol=1e-12, atol=1e-12)


def test_forward_mode_dual_numbers_trace():
    import torch.autograd.forward_ad as fwAD

    def tangent(x, t):
        with fwAD.dual_level():
            y = fwAD.make_dual(x, t)
            return fwAD.unpack_dual((y * y).exp() / (1 + y * y)).tangent

    x = torch.tensor([0.0, 0.5, -1.5], dtype=D)
    t = torch.tensor([1.0, -2.0, 0.25], dtype=D)
    tr = trace(tangent, x, t)
    np.testing.assert_allclose(tr.run(np, x.numpy(), t.numpy()), tangent(x, t).numpy(), rtol=1e-13)


def test_float_constants_name_the_node_that_holds_them():
    """batch_norm's decomposed backward multiplies by 1/N as a Python float: N = 6 here."""
    f, _, _ = LAYERS["batch_norm"]
    x, w, b, u = (torch.randn(s, dtype=D) for s in ((1, 3, 2, 3), (3,), (3,), (1, 3, 2, 3)))
    tr = trace(lambda x, w, b, u: vjp(f, x, w, b)[1](u), x, w, b, u)
    sixths = [c for c in tr.float_constants if c[2] == 1.0 / 6]
    assert sixths and all(op == "aten.mul.Tensor" for _, op, _ in sixths)
    assert repr(sixths[0][2]) == "0.16666666666666666"
    assert ("add", "aten.add.Tensor", 1e-05) in tr.float_constants
    names = {n.name for n in tr.nodes}
    assert all(node in names for node, _, _ in tr.float_constants)


def test_tensor_constants_are_converted_with_xp_asarray():
    def fn(x):
        return x * torch.tensor([0.5, 2.0, -1.0], dtype=D)

    x = torch.tensor([1.0, 2.0, 3.0], dtype=D)
    tr = trace(fn, x)
    assert len(tr.tensor_constants) == 1
    np.testing.assert_array_equal(tr.tensor_constants[0][1], [0.5, 2.0, -1.0])
    np.testing.assert_array_equal(tr.run(np, x.numpy()), fn(x).numpy())
    import sympy

    y = tr.run(symbolic, to_sympy_array(np.array([1, 2, 3], dtype=object)))
    assert list(y) == [sympy.Rational(1, 2), 4, -3]


def test_output_structure_is_kept():
    def fn(x, w):
        x, w = x.requires_grad_(), w.requires_grad_()
        dx, dw = torch.autograd.grad((x * 2).sum(), (x, w), allow_unused=True)
        return {"grads": [dx, dw], "pair": (x + 1, x.shape[0] * x)}

    x, w = torch.randn(3, dtype=D), torch.randn(2, dtype=D)
    out = trace(fn, x, w).run(np, x.numpy(), w.numpy())
    assert set(out) == {"grads", "pair"}
    assert isinstance(out["grads"], list) and out["grads"][1] is None
    np.testing.assert_array_equal(out["grads"][0], [2.0, 2.0, 2.0])
    assert isinstance(out["pair"], tuple)
    np.testing.assert_array_equal(out["pair"][1], 3 * x.numpy())


def test_fake_tracing_mode_gives_the_same_forward():
    f, xshape, wshape = LAYERS["layer_norm_2d"]
    x, w, b, _, _ = _inputs(xshape, wshape, seed=5)
    tr = trace(f, x, w, b, tracing_mode="fake")
    np.testing.assert_allclose(tr.run(np, x.numpy(), w.numpy(), b.numpy()), f(x, w, b).numpy(),
                               rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Memory: views, in-place writes, empty, as_strided
# ---------------------------------------------------------------------------------------------
def _aliasing_program(x):
    y = x.clone()
    v = y.view(-1)
    v.mul_(2)                       # through a view: y changes too
    y[0] += 1                       # select + add_ + copy_ into a view
    y[:, 1:].sub_(v[:2].sum())      # slice view written in place
    z = torch.empty(2, 3, dtype=D)
    z.copy_(y.t().contiguous().t())
    z.t_()                          # in-place metadata change
    e = y.new_empty((3,))
    e.fill_(0.5)
    e[1] = 2
    return y, v, z, y.transpose(0, 1).unsqueeze(0).expand(2, 3, 2), e, x


def test_views_and_in_place_writes_follow_torch():
    x = torch.arange(6, dtype=D).reshape(2, 3)
    tr = trace(_aliasing_program, x)
    for got, want in zip(tr.run(np, x.numpy()), _aliasing_program(x.clone())):
        np.testing.assert_array_equal(got, want.numpy())


_VIEWS = ["t", "view", "slice", "select", "unsqueeze", "transpose", "flip_rows"]
_WRITES = ["add_", "mul_", "copy_", "zero_", "none"]


def _apply_view(t, kind):
    if kind == "t":
        return t.t() if t.dim() == 2 else t
    if kind == "view":
        return t.reshape(-1) if t.is_contiguous() else t
    if kind == "slice":
        return t[..., 1:] if t.shape[-1] > 1 else t
    if kind == "select":
        return t[0] if t.dim() > 1 else t
    if kind == "unsqueeze":
        return t.unsqueeze(0) if t.dim() < 3 else t
    if kind == "transpose":
        return t.transpose(0, -1)
    return t[::2] if t.dim() >= 1 else t


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_VIEWS), st.sampled_from(_WRITES),
                          st.sampled_from([-1.5, 0.5, 3.0]), st.integers(0, 3)),
                min_size=1, max_size=5))
def test_random_view_and_write_programs_match_eager(program):
    """Property: any chain of views with in-place writes through random aliases runs as torch."""

    def fn(x, u):
        base = x.clone()
        aliases = [base]
        for view, write, c, pick in program:
            target = aliases[pick % len(aliases)]
            new = _apply_view(target, view)
            aliases.append(new)
            if write == "add_":
                new.add_(c)
            elif write == "mul_":
                new.mul_(c)
            elif write == "copy_":
                new.copy_(u.reshape(-1)[: new.numel()].reshape(new.shape) * c)
            elif write == "zero_":
                new.zero_()
        return tuple(a * 1 for a in aliases)

    x = torch.arange(12, dtype=D).reshape(3, 4) / 7
    u = torch.linspace(-1, 1, 12, dtype=D)
    tr = trace(fn, x, u, retrace=False)
    for got, want in zip(tr.run(np, x.numpy(), u.numpy()), fn(x.clone(), u.clone())):
        np.testing.assert_array_equal(got, want.numpy())


def test_reading_unwritten_empty_memory_is_refused():
    def fn(x):
        buffer = torch.empty(3, dtype=D)
        return buffer * x

    tr = trace(fn, torch.ones(3, dtype=D))
    with pytest.raises(TorchRunError, match=r"reads memory that %empty allocated uninitialized"):
        tr.run(np, np.ones(3))


def test_as_strided_outside_its_input_is_refused():
    def fn(x):
        head = x[:2]
        return head.as_strided((2,), (1,), 2) * 1  # reads x[2:4] through a view of x[:2]

    with pytest.raises(UnsupportedTorchOp, match=r"as_strided.*not a plain view"):
        trace(fn, torch.arange(4, dtype=D)).run(np, np.arange(4.0))


def test_as_strided_inside_its_input_is_a_gather():
    def fn(x):
        return x.as_strided((2, 2), (1, 2), 1) * 1

    x = torch.arange(6, dtype=D)
    np.testing.assert_array_equal(trace(fn, x).run(np, x.numpy()), fn(x).numpy())


# ---------------------------------------------------------------------------------------------
# What is refused, in one line
# ---------------------------------------------------------------------------------------------
def _one_line(exc) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def _branchy(x):
    y = x * 2
    if y.sum() > 0:
        return y
    return -y


def test_data_dependent_control_flow_names_the_line():
    with pytest.raises(TorchTraceError) as exc:
        trace(_branchy, torch.ones(3, dtype=D))
    text = _one_line(exc)
    assert "data-dependent control flow" in text
    assert "test_frontend_torch.py" in text and "`if y.sum() > 0:`" in text


def test_python_reads_of_tensor_values_are_refused():
    pattern = r"Tensor\.tolist\(\) at .*test_frontend_torch\.py:\d+ `.*x\.tolist\(\)\[0\]"
    with pytest.raises(TorchTraceError, match=pattern):
        trace(lambda x: x * x.tolist()[0], torch.ones(3, dtype=D))
    with pytest.raises(TorchTraceError, match=r"numpy"):
        trace(lambda x: x * float(x.numpy()[0]), torch.ones(3, dtype=D))


class _LeakyBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * x.tolist()[0]  # autograd runs this without torch-function modes


def test_values_baked_in_by_a_custom_backward_are_caught_by_the_retrace():
    def fn(x, g):
        x = x.requires_grad_()
        return torch.autograd.grad(_LeakyBackward.apply(x), x, g)

    args = (torch.tensor([2.0, 1.0], dtype=D), torch.ones(2, dtype=D))
    with pytest.raises(TorchTraceError, match=r"depends on the example values"):
        trace(fn, *args)
    # without the retrace the value is silently a constant: that is why retrace is the default
    tr = trace(fn, *args, retrace=False)
    assert tr.float_constants == [("mul_1", "aten.mul.Tensor", 2.0)]


def test_unsupported_op_is_refused_with_its_name_node_and_line():
    with pytest.raises(UnsupportedTorchOp) as exc:
        trace(lambda x: torch.cumsum(x, 0) * 2, torch.ones(3, dtype=D))
    text = _one_line(exc)
    assert text.startswith("aten.cumsum.default (node %cumsum in the trace")
    assert "`trace(lambda x: torch.cumsum(x, 0) * 2" in text
    assert exc.value.op == "aten.cumsum.default" and exc.value.node == "cumsum"


@pytest.mark.parametrize("fn, pattern", [
    (lambda x: torch.div(x, 2, rounding_mode="floor"), r"rounding_mode='floor'"),
    (lambda x: x.half().float(), r"converts torch\.float64 to torch\.float16"),
    (lambda x: x[x > 0], r"aten\.index\.Tensor"),
    (lambda x: torch.sin(x), r"aten\.sin\.default"),
])
def test_refusals(fn, pattern):
    with pytest.raises(UnsupportedTorchOp, match=pattern) as exc:
        trace(fn, torch.ones(3, dtype=D))
    _one_line(exc)


def test_bad_example_arguments():
    with pytest.raises(TorchTraceError, match=r"example argument 1 is a float"):
        trace(lambda x, e: x * e, torch.ones(2, dtype=D), 0.5)
    with pytest.raises(TorchTraceError, match=r"dtype torch\.complex64"):
        trace(lambda x: x * 2, torch.ones(2, dtype=torch.complex64))
    with pytest.raises(TorchTraceError, match=r"tracing_mode"):
        trace(lambda x: x, torch.ones(2), tracing_mode="symbolic")
    with pytest.raises(TorchTraceError) as exc:  # a torch error inside fn: one line with the line
        trace(lambda x: x @ torch.ones(4, dtype=D), torch.ones(3, dtype=D))
    assert "RuntimeError" in _one_line(exc)


def test_bad_run_arguments():
    tr = trace(lambda x, w: x * w, torch.ones(3, dtype=D), torch.ones(3, dtype=D))
    with pytest.raises(TorchRunError, match=r"takes 2 arrays"):
        tr.run(np, np.ones(3))
    pattern = r"argument 1 has shape \(4,\); the trace was made for shape \(3,\)"
    with pytest.raises(TorchRunError, match=pattern):
        tr.run(np, np.ones(3), np.ones(4))


def test_torch_not_installed_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with pytest.raises(ImportError) as exc:
        tfront.trace(lambda x: x, np.ones(2))
    assert isinstance(exc.value, TorchNotInstalledError)
    text = _one_line(exc)
    assert "symbolic-bn[torch]" in text and "pip install torch==2.13.0" in text
