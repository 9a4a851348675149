"""Framework-native code proved exactly (symbolic_bn.checks.frameworks / framework_autodiff):
torch and jax functions traced in float64 and run on the exact engine; torch's own derivatives
of the normalization layers decided mode by mode and compared with the numeric crosscheck;
wrong rules failed with re-confirmed counterexamples; bad input refused in one line; hostile
code cannot turn a verdict into a pass."""
from __future__ import annotations

import sys
from fractions import Fraction

import numpy as np
import pytest

from symbolic_bn import layers as L
from symbolic_bn.checks.check import check_backward, check_forward
from symbolic_bn.checks.crosscheck import ImplementationError
from symbolic_bn.checks.framework_autodiff import check_autodiff, formula

EPS = 1e-5


def _torch():
    return pytest.importorskip("torch")


# ---------------------------------------------------------------------------------------------
# Arguments (no framework needed)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("framework", ["tensorflow", "Torch", 3, ""])
def test_unknown_framework_is_refused_naming_the_argument(framework):
    layer = L.instance_norm((1, 2, 2, 2), eps=EPS)
    for call in (lambda: check_forward(lambda *a: a[0], layer=layer, framework=framework),
                 lambda: check_backward(lambda *a: a[0], layer=layer, framework=framework),
                 lambda: check_autodiff(lambda *a: a[0], layer, framework=framework)):
        with pytest.raises(ValueError, match=r"framework must be one of 'torch', 'jax'") as info:
            call()
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_framework_not_installed_names_the_extra(monkeypatch, framework):
    monkeypatch.setitem(sys.modules, framework, None)  # `import torch` now raises ImportError
    layer = L.instance_norm((1, 2, 2, 2), eps=EPS)
    pattern = rf"framework='{framework}'.*not installed: pip install 'symbolic-bn\[{framework}\]'"
    for call in (lambda: check_forward(lambda *a: a[0], layer=layer, framework=framework),
                 lambda: check_backward(lambda *a: a[0], layer=layer, framework=framework),
                 lambda: check_autodiff(lambda *a: a[0], layer, framework=framework)):
        with pytest.raises(ValueError, match=pattern) as info:
            call()
        assert "\n" not in str(info.value)


def test_symbolic_or_unrepresentable_eps_is_refused_naming_eps():
    _torch()
    with pytest.raises(ValueError, match=r"eps: .*must be a number"):
        check_forward(lambda *a: a[0], layer=L.instance_norm((1, 2, 2, 2)), framework="torch")
    with pytest.raises(ValueError, match=r"layer.eps must be a number"):
        check_autodiff(lambda *a: a[0], L.instance_norm((1, 2, 2, 2)), framework="torch")
    odd = L.instance_norm((1, 2, 2, 2), eps=Fraction(123456789012345678901, 10 ** 25))
    with pytest.raises(ValueError, match=r"eps: the layer's ε = .* is not what the float"):
        check_forward(lambda *a: a[0], layer=odd, framework="torch")


def test_bad_order_modes_and_layer_are_refused():
    torch = _torch()
    F = torch.nn.functional
    layer = L.instance_norm((1, 2, 2, 2), eps=EPS)
    f = lambda x, w, b: F.instance_norm(x, weight=w, bias=b, eps=EPS)  # noqa: E731
    with pytest.raises(ValueError, match="order must be 1, 2 or 3"):
        check_autodiff(f, layer, order=4)
    with pytest.raises(ValueError, match="unknown mode 'sideways'"):
        check_autodiff(f, layer, modes=("sideways",))
    with pytest.raises(ValueError, match="of order 2 but order=1"):
        check_autodiff(f, layer, modes=("fwd-over-rev",))
    with pytest.raises(ValueError, match="layer must be a symbolic_bn.layers.Layer"):
        check_autodiff(f, "instance_norm")


def test_formula_names_the_nesting_innermost_first():
    assert formula(("rev", "fwd"), ("g", "u1")) == "D(D(y)ᵀg)[u1]"      # fwd-over-rev
    assert formula(("fwd", "rev"), ("u1", "g")) == "D(D(y)[u1])ᵀg"      # rev-over-fwd
    assert formula(("fwd", "fwd"), ("u1", "u2")) == "D(D(y)[u1])[u2]"


# ---------------------------------------------------------------------------------------------
# torch: check_forward / check_backward with framework="torch"
# ---------------------------------------------------------------------------------------------
def _instance_norm_backward(x, w, b, g, eps):
    torch = _torch()
    x, w, b = (t.requires_grad_() for t in (x, w, b))
    y = torch.nn.functional.instance_norm(x, weight=w, bias=b, eps=eps)
    return torch.autograd.grad(y, (x, w, b), g)


def _hand_backward(drop_half_of_the_variance_term=False):
    def backward(x, w, b, g, eps):
        axes = (2, 3)
        n = x.shape[2] * x.shape[3]
        mu = x.mean(dim=axes, keepdim=True)
        r = (((x - mu) ** 2).mean(dim=axes, keepdim=True) + eps).rsqrt()
        xhat = (x - mu) * r
        sg = g.sum(dim=axes, keepdim=True)
        sgx = (g * xhat).sum(dim=axes, keepdim=True)
        k = 0.5 if drop_half_of_the_variance_term else 1.0
        dx = r / n * (n * g - sg - k * xhat * sgx) * w[None, :, None, None]
        return dx, sgx.sum(dim=(0, 2, 3)), sg.sum(dim=(0, 2, 3))
    return backward


def test_torch_forward_and_autograd_backward_are_proved_with_the_trace_floats_listed():
    torch = _torch()
    F = torch.nn.functional
    layer = L.instance_norm((1, 2, 3, 3), eps=EPS)
    cert = check_forward(lambda x, w, b, eps: F.instance_norm(x, weight=w, bias=b, eps=eps),
                         layer=layer, framework="torch")
    assert cert.ok, cert.summary()
    ob = cert["forward.y"]
    assert f"torch {torch.__version__}" in ob.statement
    assert any("1e-05 (at node %" in a and "read as 1/100000" in a for a in ob.assumptions), ob.assumptions
    assert "make_fx" in ob.method and cert.parameters["framework"] == "torch"
    cert = check_backward(_instance_norm_backward, layer=layer, framework="torch")
    assert cert.ok, cert.summary()
    assert [o.name for o in cert] == ["backward.dx", "backward.dweight", "backward.dbias"]


def test_batch_norm_backward_lists_the_one_over_n_of_the_decomposition():
    """torch's decomposed native_batch_norm_backward multiplies by 1/N as a float: N = 6 here."""
    torch = _torch()
    F = torch.nn.functional
    layer = L.batch_norm((1, 2, 2, 3), eps=EPS)

    def backward(x, w, b, g, eps):
        x, w, b = (t.requires_grad_() for t in (x, w, b))
        y = F.batch_norm(x, None, None, w, b, training=True, eps=eps)
        return torch.autograd.grad(y, (x, w, b), g)

    cert = check_backward(backward, layer=layer, framework="torch")
    assert cert.ok, cert.summary()
    assumptions = cert["backward.dx"].assumptions
    assert any(a.startswith("the float 0.16666666666666666 (at node %") and a.endswith("read as 1/6")
               for a in assumptions), assumptions


def test_wrong_torch_backward_fails_with_a_counterexample_reconfirmed_by_torch():
    torch = _torch()
    layer = L.instance_norm((1, 2, 2, 3), eps=EPS)
    good = check_backward(_hand_backward(), layer=layer, framework="torch")
    assert good.ok, good.summary()
    cert = check_backward(_hand_backward(drop_half_of_the_variance_term=True), layer=layer, framework="torch")
    ob = cert["backward.dx"]
    assert ob.status == "failed"
    assert cert["backward.dweight"].status == "proved" and cert["backward.dbias"].status == "proved"
    cex = ob.counterexample
    assert "re-confirmed" in ob.detail and "torch" in ob.detail
    # the counterexample is real: torch itself, at the rounded point, is far from the reference
    x = torch.tensor(np.array(cex["x"], dtype=object).astype(float))
    w = torch.tensor(np.array(cex["weight"], dtype=object).astype(float))
    b = torch.tensor(np.array(cex["bias"], dtype=object).astype(float))
    g = torch.tensor(np.array(cex["grad_out"], dtype=object).astype(float))
    idx = tuple(int(i) for i in cex["location"][3:-1].split(","))
    dx = _hand_backward(True)(x, w, b, g, EPS)[0][idx].item()
    assert dx == pytest.approx(cex["framework_float64"], rel=1e-12)
    assert abs(dx - cex["reference_approx"]) > 1e-6 * max(1.0, abs(cex["reference_approx"]))
    assert dx == pytest.approx(cex["implementation_approx"], rel=1e-9)


def test_wrong_eps_inside_a_torch_forward_fails():
    torch = _torch()
    F = torch.nn.functional
    layer = L.layer_norm((2, 3), (3,), eps=EPS)
    cert = check_forward(lambda x, w, b, eps: F.layer_norm(x, (3,), w, b, 1e-3), layer=layer, framework="torch")
    assert cert["forward.y"].status == "failed"
    assert "re-confirmed" in cert["forward.y"].detail


def test_rms_norm_backward_returns_two_gradients_and_bias_is_none():
    torch = _torch()
    F = torch.nn.functional
    layer = L.rms_norm((2, 3), (3,), eps=EPS)
    seen = []

    def backward(x, w, b, g, eps):
        seen.append(b)
        x, w = x.requires_grad_(), w.requires_grad_()
        return torch.autograd.grad(F.rms_norm(x, (3,), w, eps), (x, w), g)

    cert = check_backward(backward, layer=layer, framework="torch")
    assert cert.ok, cert.summary()
    assert [o.name for o in cert] == ["backward.dx", "backward.dweight"]
    assert seen and all(b is None for b in seen)


def test_function_that_does_not_trace_names_the_line():
    torch = _torch()
    F = torch.nn.functional
    layer = L.instance_norm((1, 2, 2, 2), eps=EPS)

    def branchy(x, w, b, eps):
        if x.sum() > 0:  # data-dependent Python control flow
            return F.instance_norm(x, weight=w, bias=b, eps=eps)
        return x

    with pytest.raises(ImplementationError, match=r"data-dependent control flow at .*test_frameworks.py:\d+ "
                                                  r"`if x.sum\(\) > 0:") as info:
        check_forward(branchy, layer=layer, framework="torch")
    assert "\n" not in str(info.value)
    with pytest.raises(ImplementationError, match=r"does not trace"):
        check_autodiff(lambda x, w, b: branchy(x, w, b, EPS), layer)


def test_unsupported_op_is_refused_by_name():
    torch = _torch()
    layer = L.instance_norm((1, 2, 2, 2), eps=EPS)
    with pytest.raises(ImplementationError, match=r"aten\.cumsum") as info:
        check_forward(lambda x, w, b, eps: torch.cumsum(x, 3) * w[None, :, None, None], layer=layer,
                      framework="torch")
    assert "\n" not in str(info.value)
    with pytest.raises(ImplementationError, match=r"aten\.cumsum"):
        check_autodiff(lambda x, w, b: torch.cumsum(x, 3), layer)


def test_tiny_budget_is_never_a_pass():
    torch = _torch()
    F = torch.nn.functional
    layer = L.instance_norm((1, 2, 2, 2), eps=EPS)
    cert = check_backward(_instance_norm_backward, layer=layer, framework="torch", budget=1e-4)
    assert not cert.ok and all(o.status == "undecided" for o in cert)
    cert = check_autodiff(lambda x, w, b: F.instance_norm(x, weight=w, bias=b, eps=EPS), layer, budget=1e-4)
    assert not cert.ok and all(o.status == "undecided" for o in cert)


# ---------------------------------------------------------------------------------------------
# torch's own derivatives of the five layers, every mode up to order 2, vs crosscheck_autodiff
# ---------------------------------------------------------------------------------------------
LAYERS = {
    "batch_norm": lambda: L.batch_norm((2, 2, 3), eps=EPS),
    "instance_norm": lambda: L.instance_norm((1, 2, 2, 3), eps=EPS),
    "layer_norm": lambda: L.layer_norm((2, 3), (3,), eps=EPS),
    "group_norm": lambda: L.group_norm((1, 4, 2), 2, eps=EPS),
    "rms_norm": lambda: L.rms_norm((2, 3), (3,), eps=EPS),
}
_VERDICT = {"PASS": "proved", "FAIL": "failed", "ERROR": "undecided"}


@pytest.mark.parametrize("name", list(LAYERS))
def test_torch_autodiff_of_each_layer_is_decided_exactly_and_agrees_with_the_crosscheck(name):
    torch = _torch()
    from symbolic_bn.checks.autodiff import builtin_function, crosscheck_autodiff

    layer = LAYERS[name]()
    f = builtin_function(name, layer)
    cert = check_autodiff(f, layer, framework="torch", order=2)
    numeric = crosscheck_autodiff(f, layer, framework="torch", order=2, points=2)
    assert len(cert) == len(numeric.rows) == 12
    for row in numeric.rows:
        ob = cert["primal" if row.mode == "primal" else f"{row.api} {row.mode}"]
        assert ob.status == _VERDICT[row.status], (row.mode, row.api, ob.status, ob.detail, row.status)
        assert ob.status in ("proved", "failed")  # decided exactly
        if ob.status == "failed":
            assert "re-confirmed" in ob.detail and "framework_float64" in ob.counterexample
        if row.mode != "primal":
            assert f"torch {torch.__version__}" in ob.statement
    first_order = [o for o in cert if o.group in ("primal", "order 1")]
    assert len(first_order) == 5 and all(o.status == "proved" for o in first_order)
    if torch.__version__.startswith("2.13."):  # measured with torch 2.13.0 (issue 13's crosscheck)
        broken = {o.name for o in cert if o.status == "failed"}
        expected = ({"torch.func fwd-over-fwd", "torch.func rev-over-fwd",
                     "torch.autograd.forward_ad rev-over-fwd"}
                    if name in ("batch_norm", "instance_norm", "layer_norm") else set())
        assert broken == expected


def test_exact_counterexample_of_a_torch_bug_is_torchs_own_value():
    """fwd-over-fwd of F.layer_norm: the failed entry, recomputed with torch.func at the point,
    is what the certificate says torch computes -- and not the reference."""
    torch = _torch()
    from torch.func import jvp

    F = torch.nn.functional
    layer = L.layer_norm((2, 3), (3,), eps=EPS)
    f = lambda x, w, b: F.layer_norm(x, (3,), w, b, EPS)  # noqa: E731
    cert = check_autodiff(f, layer, order=2, modes=("fwd-over-fwd",))
    ob = cert["torch.func fwd-over-fwd"]
    if not torch.__version__.startswith("2.13."):
        pytest.skip(f"measured with torch 2.13.0 (installed: {torch.__version__})")
    assert ob.status == "failed", (ob.status, ob.detail)
    cex = ob.counterexample
    t = lambda v: torch.tensor(np.array(v, dtype=object).astype(float))  # noqa: E731
    p = (t(cex["x"]), t(cex["weight"]), t(cex["bias"]))
    u1 = tuple(t(cex["u1"][n]) for n in ("x", "weight", "bias"))
    u2 = tuple(t(cex["u2"][n]) for n in ("x", "weight", "bias"))
    inner = lambda *q: jvp(f, q, u1)[1]  # noqa: E731
    value = jvp(inner, p, u2)[1]
    idx = tuple(int(i) for i in cex["location"][len("result["):-1].split(","))
    assert value[idx].item() == pytest.approx(cex["framework_float64"], rel=1e-12)
    assert value[idx].item() == pytest.approx(cex["implementation_approx"], rel=1e-9)
    assert abs(value[idx].item() - cex["reference_approx"]) > 1e-3 * abs(cex["reference_approx"])


# ---------------------------------------------------------------------------------------------
# Custom torch.autograd.Function backwards
# ---------------------------------------------------------------------------------------------
def _custom_layer_norm(wrong: bool):
    torch = _torch()

    class LayerNorm3(torch.autograd.Function):
        @staticmethod
        def forward(x, w, b):
            mu = x.mean(dim=-1, keepdim=True)
            r = (((x - mu) ** 2).mean(dim=-1, keepdim=True) + EPS).rsqrt()
            return (x - mu) * r * w + b

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(*inputs)

        @staticmethod
        def backward(ctx, g):
            x, w, _ = ctx.saved_tensors
            n = x.shape[-1]
            mu = x.mean(dim=-1, keepdim=True)
            r = (((x - mu) ** 2).mean(dim=-1, keepdim=True) + EPS).rsqrt()
            xhat = (x - mu) * r
            gx = g * w
            # the wrong rule forgets the mean of gx (a dropped mean term)
            mean_gx = 0.0 if wrong else gx.mean(dim=-1, keepdim=True)
            dx = r * (gx - mean_gx - xhat * (gx * xhat).sum(dim=-1, keepdim=True) / n)
            return dx, (g * xhat).sum(dim=0), g.sum(dim=0)

    return lambda x, w, b: LayerNorm3.apply(x, w, b)


def test_custom_autograd_function_backward_right_is_proved_and_wrong_is_failed():
    _torch()
    layer = L.layer_norm((2, 3), (3,), eps=EPS)
    good = check_autodiff(_custom_layer_norm(False), layer, modes=("rev",))
    assert good.ok, [(o.name, o.status, o.detail) for o in good]
    assert [o.name for o in good] == ["primal", "torch.func rev", "torch.autograd rev"]
    bad = check_autodiff(_custom_layer_norm(True), layer, modes=("rev",))
    assert bad["primal"].status == "proved"
    for name in ("torch.func rev", "torch.autograd rev"):
        ob = bad[name]
        assert ob.status == "failed", (ob.status, ob.detail)
        assert ob.counterexample["location"].startswith("result.x[")
        assert "re-confirmed" in ob.detail


def test_custom_function_without_jvp_is_undecided_like_crosschecks_error_row():
    _torch()
    from symbolic_bn.checks.autodiff import crosscheck_autodiff

    layer = L.layer_norm((2, 3), (3,), eps=EPS)
    f = _custom_layer_norm(False)
    cert = check_autodiff(f, layer, modes=("fwd",))
    numeric = crosscheck_autodiff(f, layer, order=1, modes=("fwd",), points=1)
    for row in numeric.rows:
        ob = cert["primal" if row.mode == "primal" else f"{row.api} {row.mode}"]
        assert ob.status == _VERDICT[row.status]
    assert cert["torch.func fwd"].status == "undecided"
    assert "jvp" in cert["torch.func fwd"].detail


# ---------------------------------------------------------------------------------------------
# Hostile code: nothing it does turns a verdict into a pass
# ---------------------------------------------------------------------------------------------
def test_system_exit_is_an_error_not_an_exit():
    _torch()
    layer = L.instance_norm((1, 2, 2, 2), eps=EPS)

    def quitter(x, w, b, eps):
        raise SystemExit(0)

    with pytest.raises(ImplementationError, match=r"SystemExit\(0\)"):
        check_forward(quitter, layer=layer, framework="torch")
    with pytest.raises(ImplementationError, match=r"SystemExit\(0\)"):
        check_autodiff(lambda x, w, b: quitter(x, w, b, EPS), layer)


def test_constant_outputs_fail():
    torch = _torch()
    layer = L.instance_norm((1, 2, 2, 2), eps=EPS)
    cert = check_forward(lambda x, w, b, eps: torch.zeros_like(x), layer=layer, framework="torch")
    assert cert["forward.y"].status == "failed"
    cert = check_backward(lambda x, w, b, g, eps: (torch.zeros_like(x), torch.zeros_like(w), torch.zeros_like(b)),
                          layer=layer, framework="torch")
    assert cert["backward.dx"].status == "failed"
    cert = check_autodiff(lambda x, w, b: torch.ones_like(x) * 0.5, layer, modes=("rev",))
    assert all(o.status == "failed" for o in cert), [(o.name, o.status, o.detail) for o in cert]


def test_code_that_computes_otherwise_when_not_traced_is_not_proved():
    torch = _torch()
    F = torch.nn.functional
    layer = L.instance_norm((1, 2, 2, 2), eps=EPS)

    def two_faced(x, w, b, eps):
        y = F.instance_norm(x, weight=w, bias=b, eps=eps)
        traced = torch._C._is_torch_function_mode_enabled()  # the tracer's guard is a function mode
        return y if traced else y * 1.5

    cert = check_forward(two_faced, layer=layer, framework="torch")
    ob = cert["forward.y"]
    assert ob.status == "undecided" and "does not reproduce" in ob.detail


def test_code_that_changes_after_its_first_call_is_not_proved():
    torch = _torch()
    F = torch.nn.functional
    layer = L.instance_norm((1, 2, 2, 2), eps=EPS)
    calls = []

    def drifting(x, w, b):
        calls.append(1)
        y = F.instance_norm(x, weight=w, bias=b, eps=EPS)
        return y if len(calls) == 1 else y + 1e-3

    cert = check_autodiff(drifting, layer, modes=("rev",))
    assert cert["primal"].status == "undecided" and "does not reproduce" in cert["primal"].detail


def test_patching_the_checker_is_refused_and_undone():
    torch = _torch()
    from symbolic_bn.exact import normal

    original = normal.is_zero_value
    layer = L.instance_norm((1, 2, 2, 2), eps=EPS)

    def saboteur(x, w, b, eps):
        normal.is_zero_value = lambda space, v: True
        return torch.zeros_like(x)

    with pytest.raises(ImplementationError, match=r"replaced .*is_zero_value"):
        check_forward(saboteur, layer=layer, framework="torch")
    assert normal.is_zero_value is original


def test_mutating_the_layer_while_traced_does_not_move_the_reference():
    torch = _torch()
    F = torch.nn.functional
    layer = L.instance_norm((1, 2, 2, 2), eps=EPS)

    def liar(x, w, b, eps):
        layer.eps = Fraction(1, 1000)  # try to make the reference match the ε it uses
        return F.instance_norm(x, weight=w, bias=b, eps=1e-3)

    cert = check_forward(liar, layer=layer, framework="torch")
    assert cert["forward.y"].status == "failed"
    assert "ε = 1/100000" in cert["forward.y"].assumptions[1]


def test_writing_into_the_inputs_is_traced_as_torch_runs_it():
    torch = _torch()
    F = torch.nn.functional
    layer = L.instance_norm((1, 2, 2, 2), eps=EPS)

    def in_place(x, w, b, eps):  # correct, but computes in the argument's memory
        x.copy_(F.instance_norm(x, weight=w, bias=b, eps=eps))
        return x

    assert check_forward(in_place, layer=layer, framework="torch").ok

    def doubled(x, w, b, eps):  # wrong: scales its input in place first (eps > 0 makes it visible)
        x.mul_(0.5)
        return F.instance_norm(x, weight=w, bias=b, eps=eps)

    assert check_forward(doubled, layer=layer, framework="torch")["forward.y"].status == "failed"


# ---------------------------------------------------------------------------------------------
# jax
# ---------------------------------------------------------------------------------------------
def _jnp_layer_norm(bessel=False):
    jnp = pytest.importorskip("jax.numpy")

    def forward(x, w, b, eps=EPS):
        n = x.shape[-1]
        mu = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.sum((x - mu) ** 2, axis=-1, keepdims=True) / (n - 1 if bessel else n)
        return (x - mu) / jnp.sqrt(var + eps) * w + b

    return forward


def test_jnp_forward_and_jax_vjp_backward_are_proved():
    jax = pytest.importorskip("jax")
    layer = L.layer_norm((2, 3), (3,), eps=EPS)
    forward = _jnp_layer_norm()
    cert = check_forward(forward, layer=layer, framework="jax")
    assert cert.ok, cert.summary()
    assert f"jax {jax.__version__}" in cert["forward.y"].statement

    def backward(x, w, b, g, eps):
        return jax.vjp(lambda x, w, b: forward(x, w, b, eps), x, w, b)[1](g)

    cert = check_backward(backward, layer=layer, framework="jax")
    assert cert.ok, cert.summary()
    assert any("read as 1/100000" in a for a in cert["backward.dx"].assumptions)


def test_jax_autodiff_of_a_jnp_layer_norm_is_proved_and_a_bessel_variance_fails():
    pytest.importorskip("jax")
    layer = L.layer_norm((2, 3), (3,), eps=EPS)
    cert = check_autodiff(lambda x, w, b: _jnp_layer_norm()(x, w, b), layer, framework="jax", order=2)
    assert cert.ok, [(o.name, o.status, o.detail) for o in cert]
    assert [o.name for o in cert] == ["primal", "jax fwd", "jax rev", "jax fwd-over-fwd", "jax fwd-over-rev",
                                      "jax rev-over-fwd", "jax rev-over-rev"]
    bad = check_autodiff(lambda x, w, b: _jnp_layer_norm(True)(x, w, b), layer, framework="jax", modes=("rev",))
    assert all(o.status == "failed" for o in bad), [(o.name, o.status, o.detail) for o in bad]
    assert "re-confirmed" in bad["jax rev"].detail


def test_jax_function_that_does_not_trace_names_the_line():
    jnp = pytest.importorskip("jax.numpy")
    layer = L.layer_norm((2, 3), (3,), eps=EPS)

    def branchy(x, w, b, eps):
        if x[0, 0] > 0:
            return x * w + b
        return x

    with pytest.raises(ImplementationError, match=r"does not trace: .*test_frameworks.py:\d+") as info:
        check_forward(branchy, layer=layer, framework="jax")
    assert "\n" not in str(info.value)
    assert jnp is not None


def test_values_read_into_python_inside_a_custom_backward_are_never_a_verdict():
    """A backward that reads x.numpy(): right in eager mode, but its trace holds the example's
    values as constants.  Not proved (the trace is not the layer's derivative), not failed (torch
    does not re-confirm the trace's difference): undecided, saying why."""
    torch = _torch()
    layer = L.layer_norm((2, 3), (3,), eps=EPS)
    correct = _custom_layer_norm(False)

    class Baked(torch.autograd.Function):
        @staticmethod
        def forward(x, w, b):
            return correct(x, w, b)

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(*inputs)

        @staticmethod
        def backward(ctx, g):
            x, w, b = ctx.saved_tensors
            frozen = [torch.tensor(t.detach().numpy()).requires_grad_() for t in (x, w, b)]
            with torch.enable_grad():
                y = correct(*frozen)
            return torch.autograd.grad(y, frozen, g)

    cert = check_autodiff(lambda x, w, b: Baked.apply(x, w, b), layer, modes=("rev",))
    assert cert["primal"].status == "proved"
    for name in ("torch.func rev", "torch.autograd rev"):
        assert cert[name].status == "undecided", (name, cert[name].status)
        assert "not confirmed" in cert[name].detail or "does not reproduce" in cert[name].detail


def test_autodiff_text_is_a_table_with_the_failed_values():
    torch = _torch()
    from symbolic_bn.checks.framework_autodiff import autodiff_text

    layer = L.layer_norm((2, 3), (3,), eps=EPS)
    f = lambda x, w, b: torch.nn.functional.layer_norm(x, (3,), w, b, EPS)  # noqa: E731
    cert = check_autodiff(f, layer, order=2, modes=("fwd", "fwd-over-fwd"))
    text = autodiff_text(cert)
    lines = text.splitlines()
    assert lines[0] == cert.subject
    assert any(line.split()[:4] == ["1", "fwd", "torch.func", "proved"] for line in lines)
    if torch.__version__.startswith("2.13."):
        assert any(line.split()[:4] == ["2", "fwd-over-fwd", "torch.func", "failed"] for line in lines)
        assert any(line.startswith("failed torch.func fwd-over-fwd: at result[") for line in lines)
    assert lines[-1].startswith("NOT OK" if not cert.ok else "OK")


def test_a_function_with_the_wrong_arguments_is_refused_before_tracing():
    torch = _torch()
    F = torch.nn.functional
    layer = L.instance_norm((1, 2, 2, 2), eps=EPS)
    with pytest.raises(ValueError, match=r"cannot be called as forward\(x, weight, bias, eps\)"):
        check_forward(lambda x, w, b: F.instance_norm(x, weight=w, bias=b), layer=layer, framework="torch")
    with pytest.raises(ValueError, match=r"cannot be called as backward\(x, weight, bias, grad_out, eps\)"):
        check_backward(lambda x, w, b, eps: x, layer=layer, framework="torch")
    with pytest.raises(ValueError, match=r"cannot be called as f\(x, weight, bias\)"):
        check_autodiff(lambda x, w: x, layer)
