"""check_backward(backward, forward=fwd, ...): a backward proved against the user's own forward
(symbolic_bn.checks.custom) -- functions that are not normalizations (softmax without a max shift,
log-sum-exp, a norm-scaled map with divisions), the stated domain and its witness, exact
counterexamples re-confirmed independently (SymPy differentiation, 50-digit evaluation), bad input.
"""
from __future__ import annotations

import json
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symbolic_bn.checks.check import check_backward
from symbolic_bn.checks.crosscheck import ImplementationError
from symbolic_bn.checks.custom import check_custom_backward, interval_differ

SETTINGS = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOFTMAX = dict(shape=(2,), weight_shape=(2, 3), bias_shape=(3,))


# ---------------------------------------------------------------------------------------------
# functions under test


def softmax_forward(x, w, b, eps):
    z = x @ w + b
    e = np.exp(z)            # no max shift: exp atoms, Σ exp > 0 shown by the sign oracle
    return e / np.sum(e)


def softmax_backward(x, w, b, g, eps):
    e = np.exp(x @ w + b)
    y = e / np.sum(e)
    dz = y * (g - np.sum(g * y))
    return w @ dz, np.outer(x, dz), dz


def softmax_backward_jacobian(x, w, b, g, eps, xp):
    """Written differently: the explicit Jacobian diag(y) − y yᵀ, through the namespace."""
    e = xp.exp(xp.matmul(x, w) + b)
    y = e / xp.sum(e)
    jac = -xp.outer(y, y)
    for i in range(y.shape[0]):
        jac[i, i] = jac[i, i] + y[i]
    dz = xp.matmul(jac, g)
    return xp.matmul(w, dz), xp.outer(x, dz), dz


def softmax_backward_no_cross_term(x, w, b, g, eps):
    e = np.exp(x @ w + b)
    y = e / np.sum(e)
    dz = y * g               # wrong: the − y·Σ g·y term is missing
    return w @ dz, np.outer(x, dz), dz


def softmax_backward_transposed_weight(x, w, b, g, eps):
    e = np.exp(x @ w + b)
    y = e / np.sum(e)
    dz = y * (g - np.sum(g * y))
    return w @ dz, np.outer(dz, x).T * 1, dz * 2   # dbias scaled: wrong


def lse_forward(x, w, b, eps):
    return np.log(np.sum(np.exp(x @ w + b)))


def lse_backward(x, w, b, g, eps):
    e = np.exp(x @ w + b)
    dz = g * e / np.sum(e)
    return w @ dz, np.outer(x, dz), dz


def lse_backward_wrong(x, w, b, g, eps):
    e = np.exp(x @ w + b)
    dz = g * e / np.sum(e)
    return w @ dz, np.outer(x, dz), g * np.ones_like(dz)   # d/db of lse is softmax, not 1


def scaled_forward(x, w, b, eps):
    """w ⊙ x/‖x‖_ε + b/(1 + x): a square root and divisions, so the domain is not everything."""
    n = np.sqrt(np.sum(x * x) + eps)
    return w * x / n + b / (1 + x)


def scaled_backward(x, w, b, g, eps):
    n = np.sqrt(np.sum(x * x) + eps)
    u = x / n
    gw = g * w
    dx = (gw - u * np.sum(gw * u)) / n - g * b / (1 + x) ** 2   # 1/(1+x)² is implied by 1+x ≠ 0
    return dx, g * u, g / (1 + x)


def scaled_backward_wrong_power(x, w, b, g, eps):
    n = np.sqrt(np.sum(x * x) + eps)
    u = x / n
    gw = g * w
    dx = (gw - u * np.sum(gw * u)) / n - g * b / (1 + x)
    return dx, g * u, g / (1 + x)


SCALED = dict(shape=(3,), weight_shape=(3,), bias_shape=(3,))


# ---------------------------------------------------------------------------------------------
# independent re-confirmation: SymPy differentiation of the same function, at the point, 50 digits


def _sympy_vjp(kind, cex, shapes):
    x_shape, w_shape, b_shape = shapes
    X = sympy.Matrix(np.array(sympy.symbols(f"x0:{int(np.prod(x_shape))}")).reshape(-1))
    W = sympy.Matrix(np.array(sympy.symbols(f"w0:{int(np.prod(w_shape))}")).reshape(w_shape if len(w_shape) == 2
                                                                                    else (-1, 1)))
    B = sympy.Matrix(sympy.symbols(f"b0:{int(np.prod(b_shape))}"))
    eps = sympy.Symbol("eps")
    if kind == "softmax":
        z = (X.T * W).T + B
        e = z.applyfunc(sympy.exp)
        y = e / sum(e)
    elif kind == "lse":
        z = (X.T * W).T + B
        y = sympy.Matrix([sympy.log(sum(z.applyfunc(sympy.exp)))])
    else:
        n = sympy.sqrt(sum(v * v for v in X) + eps)
        y = sympy.Matrix([W[i] * X[i] / n + B[i] / (1 + X[i]) for i in range(len(X))])
    G = sympy.Matrix(sympy.symbols(f"g0:{len(y)}"))
    loss = sum(G[i] * y[i] for i in range(len(y)))
    vals = {}
    for syms, arr in ((X, cex["x"]), (W, cex["weight"]), (B, cex["bias"]), (G, cex["grad_out"])):
        flat = list(np.ravel(np.array(arr, dtype=object)))
        vals.update({s: sympy.Rational(str(v)) for s, v in zip(list(syms), flat)})
    vals[eps] = sympy.Rational(str(cex["eps"]))
    loc = cex["location"]
    name, idx = loc.split("[")[0], tuple(int(i) for i in loc.split("[")[1].rstrip("]").split(","))
    if name == "dx":
        var = list(X)[idx[0]]
    elif name == "dweight":
        var = W[idx] if len(idx) == 2 else list(W)[idx[0]]
    else:
        var = list(B)[idx[0]]
    return sympy.diff(loss, var).xreplace(vals)


def assert_reconfirmed(ob, kind, shapes):
    cex = ob.counterexample
    assert ob.status == "failed" and cex and not cex.get("undefined")
    true = _sympy_vjp(kind, cex, shapes)
    with mpmath.workdps(60):
        t, r, u = (mpmath.mpf(sympy.N(v, 60)) for v in (true, cex["reference"], cex["implementation"]))
        assert abs(t - r) < mpmath.mpf(10) ** -45, "the reference at the counterexample is Jᵀg"
        assert abs(t - u) > mpmath.mpf(10) ** -12, "the implementation really differs there"
    assert interval_differ(sympy.sympify(cex["implementation"]), sympy.sympify(cex["reference"])) is True


# ---------------------------------------------------------------------------------------------
# softmax (not a normalization layer)


@pytest.mark.parametrize("backward", [softmax_backward, softmax_backward_jacobian])
def test_softmax_correct_backward_is_proved(backward):
    cert = check_backward(backward, forward=softmax_forward, **SOFTMAX)
    assert cert.ok, [(ob.name, ob.status, ob.detail) for ob in cert]
    assert [ob.name for ob in cert] == ["domain.nonempty", "backward.dx", "backward.dweight", "backward.dbias"]
    # Σ exp(z) ≠ 0 holds for every input: the domain is everything, and says so
    assert cert.parameters["domain"] == []
    assert any("≠ 0" in t and "exp(" in t for t in cert.parameters["conditions_holding_everywhere"])
    assert "every input" in cert["backward.dx"].assumptions[0]
    assert cert.parameters["y_shape"] == (3,)
    json.loads(cert.to_json())


@pytest.mark.parametrize("backward, wrong", [
    (softmax_backward_no_cross_term, ("dx", "dweight", "dbias")),
    (softmax_backward_transposed_weight, ("dbias",)),
])
def test_softmax_mismatched_backward_fails_with_reconfirmed_counterexample(backward, wrong):
    cert = check_backward(backward, forward=softmax_forward, **SOFTMAX)
    assert cert["domain.nonempty"].proved
    for name in ("dx", "dweight", "dbias"):
        ob = cert[f"backward.{name}"]
        if name in wrong:
            assert_reconfirmed(ob, "softmax", ((2,), (2, 3), (3,)))
            assert ob.counterexample["location"].startswith(name + "[")
        else:
            assert ob.proved, (name, ob.detail)


# ---------------------------------------------------------------------------------------------
# log-sum-exp


def test_log_sum_exp_proved_and_mismatch_failed():
    ok = check_backward(lse_backward, forward=lse_forward, **SOFTMAX)
    assert ok.ok, [(ob.name, ob.detail) for ob in ok]
    assert ok.parameters["y_shape"] == ()
    # log of Σ exp > 0 and its derivative's 1/Σ exp hold everywhere
    assert any(t.startswith("exp(") and "> 0" in t for t in ok.parameters["conditions_holding_everywhere"])
    bad = check_backward(lse_backward_wrong, forward=lse_forward, **SOFTMAX)
    assert bad["backward.dx"].proved and bad["backward.dweight"].proved
    assert_reconfirmed(bad["backward.dbias"], "lse", ((2,), (2, 3), (3,)))


# ---------------------------------------------------------------------------------------------
# a square root and divisions: the side conditions are the stated domain


def test_side_conditions_become_the_stated_domain_with_an_exact_witness():
    cert = check_backward(scaled_backward, forward=scaled_forward, **SCALED)
    assert cert.ok, [(ob.name, ob.status, ob.detail) for ob in cert]
    domain = cert.parameters["domain"]
    assert any(t.startswith("x[0]**2 + x[1]**2 + x[2]**2 + ε > 0 (square root of it") for t in domain)
    for i in range(3):
        assert any(t.startswith(f"x[{i}] + 1 ≠ 0 (division by it") for t in domain)
    assert len(domain) == 4  # 1/sqrt(...) ≠ 0 is implied by the radicand > 0 and not repeated
    for name in ("dx", "dweight", "dbias"):
        assert all(t in cert[f"backward.{name}"].assumptions[0] for t in domain), name
    assert all(t in cert["domain.nonempty"].statement for t in domain)
    # the witness really is in the domain (checked here with Fractions, independently)
    w = cert.parameters["witness"]
    x = [Fraction(str(v)) for v in w["x"]]
    eps = Fraction(str(w["eps"]))
    assert sum(v * v for v in x) + eps > 0 and all(v + 1 != 0 for v in x)
    # the backward's own 1/(1 + x)² needs (1 + x)² ≠ 0, implied factor by factor
    assert any("x[0]**2 + 2*x[0] + 1 ≠ 0" in t for t in cert.parameters["side_conditions"])


def test_wrong_power_in_a_division_fails_with_reconfirmed_counterexample():
    cert = check_backward(scaled_backward_wrong_power, forward=scaled_forward, **SCALED)
    assert cert["backward.dweight"].proved and cert["backward.dbias"].proved
    ob = cert["backward.dx"]
    assert_reconfirmed(ob, "scaled", ((3,), (3,), (3,)))
    pt = ob.counterexample
    x = [Fraction(str(v)) for v in pt["x"]]
    assert all(v + 1 != 0 for v in x)  # the counterexample lies in the stated domain


def test_a_condition_the_domain_does_not_imply_is_undecided_and_named():
    def fwd(x, w, b, eps):
        return w * x + b

    def bwd(x, w, b, g, eps):  # right value, but divides by x, which may be 0
        return g * w * x / x, g * x, g

    cert = check_backward(bwd, forward=fwd, shape=(2,), weight_shape=(2,), bias_shape=(2,))
    ob = cert["backward.dx"]
    assert ob.status == "undecided" and "does not imply" in ob.detail and "x[0] ≠ 0" in ob.detail
    assert cert["backward.dweight"].proved and not cert.ok


def test_an_empty_domain_is_never_a_proof():
    def fwd(x, w, b, eps):
        return w * np.sqrt(-(x * x) - 1)

    def bwd(x, w, b, g, eps):
        s = np.sqrt(-(x * x) - 1)
        return -g * w * x / s, g * s

    cert = check_backward(bwd, forward=fwd, shape=(2,), weight_shape=(2,))
    dom = cert["domain.nonempty"]
    assert dom.status == "undecided" and "empty" in dom.detail and "-x[0]**2 - 1" in dom.detail
    assert "witness" not in cert.parameters
    for name in ("dx", "dweight"):
        ob = cert[f"backward.{name}"]
        assert ob.status == "undecided" and "non-empty" in ob.detail
    assert not cert.ok


# ---------------------------------------------------------------------------------------------
# no bias, exact ε, floats, the namespace


def test_no_bias_means_bias_none_and_two_gradients():
    seen = []

    def fwd(x, w, b, eps):
        seen.append(b)
        return np.tanh(x) if False else w * np.log(x * x + eps)   # log atoms

    def bwd(x, w, b, g, eps):
        seen.append(b)
        return 2 * g * w * x / (x * x + eps), g * np.log(x * x + eps)

    cert = check_backward(bwd, forward=fwd, shape=(2,), weight_shape=(2,), bias_shape=None)
    assert cert.ok, [(ob.name, ob.detail) for ob in cert]
    assert [ob.name for ob in cert] == ["domain.nonempty", "backward.dx", "backward.dweight"]
    assert seen and all(b is None for b in seen)
    assert any("> 0 (log of it" in t for t in cert.parameters["domain"])

    def three(x, w, b, g, eps):
        return bwd(x, w, b, g, eps) + (g,)
    with pytest.raises(ImplementationError, match="returned 3 arrays, expected 2"):
        check_backward(three, forward=fwd, shape=(2,), weight_shape=(2,))


def test_exact_eps_and_float_constants_are_stated():
    def fwd(x, w, b, eps):
        return 0.1 * w * x / np.sqrt(x * x + eps)

    def bwd(x, w, b, g, eps):
        n = np.sqrt(x * x + eps)
        return 0.1 * g * w * eps / n ** 3, 0.1 * g * x / n

    cert = check_backward(bwd, forward=fwd, shape=(2,), weight_shape=(2,), eps=1e-5)
    assert cert.ok, [(ob.name, ob.detail) for ob in cert]
    ob = cert["backward.dx"]
    assert any("ε = 1/100000" in a for a in ob.assumptions)
    assert any("0.1" in a and "1/10" in a for a in ob.assumptions)
    # with ε = 1e-5 > 0 the radicand x² + ε > 0 holds everywhere: nothing left in the domain
    assert cert.parameters["domain"] == []


@SETTINGS
@given(k=st.fractions(min_value=-2, max_value=2, max_denominator=3))
def test_a_scaled_backward_is_proved_only_for_factor_one(k):
    def bwd(x, w, b, g, eps):
        dx, dw, db = lse_backward(x, w, b, g, eps)
        return dx, dw, db * k

    cert = check_custom_backward(bwd, lse_forward, (2,), (2, 3), (3,))
    ob = cert["backward.dbias"]
    if k == 1:
        assert cert.ok
    else:
        assert_reconfirmed(ob, "lse", ((2,), (2, 3), (3,)))
        assert cert["backward.dx"].proved


def test_data_dependent_branch_in_a_correct_backward_is_refused_with_its_line():
    def bwd(x, w, b, g, eps):
        if x[0] > 0:  # noqa: SIM108 - the branch under test
            pass
        return lse_backward(x, w, b, g, eps)

    with pytest.raises(ImplementationError, match="data-dependent branch"):
        check_backward(bwd, forward=lse_forward, **SOFTMAX)


def test_wrong_backward_with_a_branch_still_gets_a_counterexample():
    def bwd(x, w, b, g, eps):
        if x[0] > 0:
            pass
        dx, dw, db = lse_backward(x, w, b, g, eps)
        return dx, dw, 2 * db

    cert = check_backward(bwd, forward=lse_forward, **SOFTMAX)
    assert cert["backward.dbias"].status == "failed" and not cert.ok


# ---------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("kwargs, match", [
    (dict(weight_shape=(2, 3), bias_shape=(3,)), "shape .*the shape of x.* is required"),
    (dict(shape=(2,), bias_shape=(3,)), "weight_shape .*is required"),
    (dict(shape=(2, 0), weight_shape=(2, 3)), "shape must be a tuple of positive integers"),
    (dict(shape=(2,), weight_shape="2x3"), "weight_shape must be a tuple"),
    (dict(shape=(2,), weight_shape=(2, 3), bias_shape=(-3,)), "bias_shape must be a tuple"),
    (dict(shape=(2,), weight_shape=(2, 3), bias_shape=(3,), budget=0), "budget"),
    (dict(shape=(2,), weight_shape=(2, 3), bias_shape=(3,), seed=1.5), "seed"),
    (dict(shape=(2,), weight_shape=(2, 3), bias_shape=(3,), eps="abc"), "eps"),
])
def test_missing_or_bad_arguments_are_refused_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        check_backward(softmax_backward, forward=softmax_forward, **kwargs)


def test_layer_and_forward_together_and_shapes_without_forward_are_refused():
    from symbolic_bn import layers
    with pytest.raises(ValueError, match="forward=.*cannot be combined with layer="):
        check_backward(softmax_backward, forward=softmax_forward, layer=layers.batch_norm((2, 3)), **SOFTMAX)
    with pytest.raises(ValueError, match="weight_shape is for a check against your own forward"):
        check_backward(softmax_backward, weight_shape=(2, 3))
    with pytest.raises(ValueError, match="forward must be callable"):
        check_backward(softmax_backward, forward="softmax", **SOFTMAX)


@pytest.mark.parametrize("bad, expected, actual", [
    (lambda x, w, b, g, e: (w @ g, np.outer(g, x), g), "(2, 3)", "(3, 2)"),
    (lambda x, w, b, g, e: (w @ g, np.outer(x, g), g[:2]), "(3,)", "(2,)"),
    (lambda x, w, b, g, e: (np.zeros((4,), dtype=object) + x[0], np.outer(x, g), g), "(2,)", "(4,)"),
])
def test_wrong_shaped_gradients_name_expected_and_actual_shape(bad, expected, actual):
    with pytest.raises(ImplementationError) as info:
        check_backward(bad, forward=softmax_forward, **SOFTMAX)
    msg = str(info.value)
    assert f"has shape {actual}, expected {expected}" in msg and "\n" not in msg


@pytest.mark.parametrize("out, match", [
    ("y", r"returned a str \('y'\), expected an array"),
    (None, "returned a NoneType"),
    ({"y": 1}, "returned a dict"),
    ([[1, 2], [3]], r"y\[0\] is a list \(\[1, 2\]\), not a number"),
])
def test_forward_returning_a_non_array_is_refused(out, match):
    def fwd(x, w, b, eps):
        return out
    with pytest.raises(ImplementationError, match=match):
        check_backward(softmax_backward, forward=fwd, **SOFTMAX)


def test_forward_that_raises_names_itself():
    def fwd(x, w, b, eps):
        raise KeyError("boom")
    with pytest.raises(ImplementationError, match="forward 'test_forward_that_raises_names_itself.<locals>.fwd' "
                                                  "raised KeyError"):
        check_backward(softmax_backward, forward=fwd, **SOFTMAX)
