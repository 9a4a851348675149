"""Tests for symbolic_bn.obligations.allsizes: proofs for symbolic sizes, every normalization layer.

Every rewrite rule has its own test (the rule at symbolic N, instantiated at N = 1..6, must agree
exactly with the concrete expansion of the same sum), wrong rules are shown to be caught, wrong
closed forms / VJP rules are refuted with re-evaluated exact counterexamples, and the certificate
is checked for what it claims -- for batchnorm_channel_first (symbolic C, N = H·W) and for
batch_norm, instance_norm, group_norm, layer_norm and rms_norm (symbolic group size and number of
groups).  Exact decisions in the tests go through the exact engine directly (SympyImport and
normal.is_zero_value; the sign oracle for numbers), independently of the module's own helpers.
"""
from __future__ import annotations

import importlib.util
import itertools
import json
import pathlib
from dataclasses import replace

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sympy import Integer, Rational

from symbolic_bn.exact import normal, sign
from symbolic_bn.exact.convert import SympyImport
from symbolic_bn.exact.space import Space
from symbolic_bn.obligations import allsizes as A
from symbolic_bn.obligations.allsizes import (ConcreteBackend, Ix, STANDARD_CLOSED_FORM, SymbolicBackend,
                                  decide_nf, instantiate, normalize, recording)


def is_zero(expr) -> bool:
    """Exact zero test of an explicit SymPy expression on a fresh engine Space."""
    expr = sympy.sympify(expr)
    if expr == 0:
        return True
    space = Space(name="test")
    imp = SympyImport(space)
    imp.declare(expr)
    space.freeze()
    return normal.is_zero_value(space, imp(expr))


def differ(a, b):
    """True / False / None: the exact numbers a, b differ / are equal / undecided (engine sign)."""
    d = sympy.sympify(a) - sympy.sympify(b)
    if d.is_Rational:
        return d != 0
    space = Space(name="test point")
    imp = SympyImport(space)
    imp.declare(d)
    v = imp(d)
    if normal.is_zero_value(space, v):
        return False
    return True if sign.sign(space, v) in ("pos", "neg") else None

ROOT = pathlib.Path(__file__).resolve().parents[1]
SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# indices used by the tests (names are global: one range per name)
c, c2 = Ix("c", "C"), Ix("c2", "C")
p, q, k, i = Ix("p"), Ix("q"), Ix("k"), Ix("i")


@pytest.fixture(scope="module")
def cert():
    return A.prove_all_sizes()


def check_against_concrete(build, free, sizes=range(1, 7), channels=(1,)):
    """``build(be, idx)`` symbolically (normal form), then at every N in ``sizes`` and every
    assignment of the free indices: instantiated normal form == concrete expansion (exact engine).
    Returns (normal form, rule log, list of disagreements)."""
    be = SymbolicBackend()
    idx = {name: Ix(name, rng) for name, rng in free}
    with recording() as log:
        nf = normalize(build(be, idx))
    bad = []
    for C in channels:
        for n in sizes:
            cb = ConcreteBackend(n, C)
            ranges = [range(n) if rng == "N" else range(C) for _, rng in free]
            for values in itertools.product(*ranges):
                a = dict(zip([name for name, _ in free], values))
                conc = build(cb, a)
                inst = instantiate(nf, n, C, {idx[name]: v for name, v in a.items()})
                if not is_zero(inst - conc):
                    bad.append((n, C, a))
    return nf, log, bad


# ---------------------------------------------------------------------------------------------
# The certificate


EXPECTED = {
    "rule_sqrtClamp_derivative", "rule_inv_derivative", "rule_addEps_derivative",
    "lemma_centered_sum_zero", "deriv_mean_x", "deriv_centered_x", "deriv_var_x", "deriv_std_x",
    "deriv_normalized_x", "deriv_y_x", "deriv_y_gamma", "deriv_y_beta", "deriv_stats_params_zero",
    "vjp_reshape", "vjp_rowMean", "vjp_broadcastRow", "vjp_sub_a", "vjp_sub_b", "vjp_mul_a",
    "vjp_mul_b", "vjp_mul_same", "vjp_addEps", "vjp_sqrtClamp", "vjp_inv", "vjp_add_a",
    "vjp_add_b", "forward_graph_equals_spec", "backprop_dx_closed_form",
    "backprop_dgamma_closed_form", "backprop_dbeta_closed_form", "adjoint_dx_closed_form",
    "adjoint_dgamma_closed_form", "adjoint_dbeta_closed_form", "jvp_closed_form",
    "jvp_stagewise_closed_form", "dot_product_identity", "channel_block_reshape",
    "channel_block_rowMean", "channel_block_broadcastRow", "channel_block_sub_a",
    "channel_block_sub_b", "channel_block_mul_a", "channel_block_mul_b", "channel_block_mul_same",
    "channel_block_addEps", "channel_block_sqrtClamp", "channel_block_inv", "channel_block_add_a",
    "channel_block_add_b", "channel_block_graph_x", "channel_block_graph_gamma",
    "channel_block_graph_beta", "all_channels_adjoint_x", "all_channels_adjoint_gamma",
    "all_channels_adjoint_beta", "all_channels_dot_product",
    "jvp_reshape", "jvp_rowMean", "jvp_broadcastRow", "jvp_sub", "jvp_mul", "jvp_mul_same",
    "jvp_addEps", "jvp_sqrtClamp", "jvp_inv", "jvp_add",
}


def test_certificate_proves_everything(cert):
    assert cert.ok, [(ob.name, ob.status, ob.detail) for ob in cert if not ob.proved]
    assert "all sizes" in cert.subject
    assert {ob.name for ob in cert} == EXPECTED
    assert cert.counts() == {"proved": len(EXPECTED), "failed": 0, "undecided": 0}
    json.loads(cert.to_json())  # serializable


def test_statements_name_the_symbolic_sizes(cert):
    for ob in cert:
        if ob.group == "scalar rules":
            continue
        assert "N ≥ 1" in ob.statement or "N = H·W" in " ".join(ob.assumptions), ob.name
        assert any("N = H·W ≥ 1" in a for a in ob.assumptions), ob.name
        if ob.group in ("channel independence", "stage VJP = Jᵀδ", "stage JVP = J·t"):
            assert "C" in ob.statement and any(a.startswith("C ≥ 1") for a in ob.assumptions)


def test_domain_assumptions_are_stated_where_sqrt_and_inv_are_used(cert):
    domain = A._DOMAIN
    for name in ("deriv_std_x", "deriv_y_x", "backprop_dx_closed_form", "jvp_closed_form",
                 "dot_product_identity", "all_channels_dot_product", "channel_block_graph_x"):
        assert domain in cert[name].assumptions, name
    for name in ("lemma_centered_sum_zero", "deriv_mean_x", "deriv_var_x"):
        assert domain not in cert[name].assumptions, name  # no sqrt involved
    assert "z_c > 0 for every channel c" in cert["vjp_sqrtClamp"].assumptions
    assert "z_c ≠ 0 for every channel c" in cert["vjp_inv"].assumptions
    for ob in cert:
        assert len(ob.assumptions) == len(set(ob.assumptions)), ob.name


def test_methods_list_known_rules_and_concrete_confirmation(cert):
    used = set()
    for ob in cert:
        if ob.group == "scalar rules":
            assert "sympy.diff" in ob.method
            continue
        listed = ob.method.split("rewrite rules used: ")[1].split(";")[0].split(", ")
        assert set(listed) <= set(A.RULES), (ob.name, listed)
        used |= set(listed)
        assert "N=1,2,3,4,5,6" in ob.method, ob.name
        assert "simplify" not in ob.method
    # every index rule of the rule table is used by some proof (the decision relations σ² = u,
    # σ·σ⁻¹ = 1, b·ι = 1 turn out not to be needed for the BN claims, and sum-swap only for layers
    # whose weights are shared by several groups), and every rule has a test
    assert used == set(A.RULES) - {"iota-inverse", "sigma-square", "sigma-inverse", "sum-swap"}
    assert set(A.RULES) == TESTED_RULES


def test_channel_level_claims_are_confirmed_with_two_channels(cert):
    for ob in cert:
        if ob.group in ("channel independence", "stage VJP = Jᵀδ", "stage JVP = J·t"):
            assert "C=2, N=1,2,3" in ob.method, ob.name
    grid = A.confirmation_grid(next(cl for cl in A.claims() if cl.name == "vjp_mul_same"),
                               range(1, 7))
    assert {"C": 2, "N": 3} in grid and {"C": 1, "N": 6} in grid and {"C": 2, "N": 4} not in grid


# ---------------------------------------------------------------------------------------------
# One test per rewrite rule (symbolic result, rule fired, agreement with the concrete expansion)

TESTED_RULES = {
    "sum-linear", "sum-const", "delta-contract", "delta-refl", "delta-subst", "bound-rename",
    "N-inverse", "deriv-atom", "deriv-sum", "deriv-poly", "sqrt-chain", "inv-chain",
    "sigma-square", "sigma-inverse", "iota-inverse", "sum-swap",
}


@SETTINGS
@given(a=st.fractions(min_value=-5, max_value=5, max_denominator=4),
       b=st.fractions(min_value=-5, max_value=5, max_denominator=4))
def test_rule_sum_linear(a, b):
    a, b = Rational(a.numerator, a.denominator), Rational(b.numerator, b.denominator)

    def build(be, ix):
        return be.sum("N", lambda j: a * be.at("x", ix["c"], j)
                      + b * be.at("g", ix["c"], j) * be.at("x", ix["c"], j))
    nf, log, bad = check_against_concrete(build, (("c", "C"),), sizes=range(1, 5))
    assert not bad
    sx = A.sum_over(k, A.at("x", c, k))
    sgx = A.sum_over(k, A.at("g", c, k) * A.at("x", c, k))
    assert nf == sympy.expand(a * sx + b * sgx)
    if a != 0 or b != 0:
        assert "sum-linear" in log.rules


def test_rule_sum_const():
    nf, log, bad = check_against_concrete(
        lambda be, ix: be.sum("N", lambda j: be.at("gamma", ix["c"]) * 3), (("c", "C"),))
    assert not bad and "sum-const" in log.rules
    assert nf == 3 * A.N_SYM * A.at("gamma", c)
    nf_c, log_c, bad_c = check_against_concrete(
        lambda be, ix: be.sum("C", lambda j: be.at("x", ix["c"], ix["q"])),
        (("c", "C"), ("q", "N")), sizes=(1, 2), channels=(1, 2, 3))
    assert not bad_c and nf_c == A.C_SYM * A.at("x", c, q)


def test_rule_delta_contract():
    nf, log, bad = check_against_concrete(
        lambda be, ix: be.sum("N", lambda j: be.delta(j, ix["k"]) * be.at("x", ix["c"], j) ** 2),
        (("c", "C"), ("k", "N")))
    assert not bad and "delta-contract" in log.rules
    assert nf == A.at("x", c, k) ** 2
    # over a channel index
    nf2, log2, bad2 = check_against_concrete(
        lambda be, ix: be.sum("C", lambda j: be.delta(j, ix["c2"]) * be.at("gamma", j)),
        (("c2", "C"),), sizes=(1, 2), channels=(1, 2, 3))
    assert not bad2 and nf2 == A.at("gamma", c2)


def test_rule_delta_refl():
    with recording() as log:
        assert A.delta(k, k) == 1
    assert "delta-refl" in log.rules
    nf, _, bad = check_against_concrete(
        lambda be, ix: be.delta(ix["k"], ix["k"]) * be.at("x", ix["c"], ix["k"]),
        (("c", "C"), ("k", "N")))
    assert not bad and nf == A.at("x", c, k)


def test_rule_delta_subst():
    # δ_ik·x_k → δ_ik·x_i (i < k by name), δ² → δ
    nf, log, bad = check_against_concrete(
        lambda be, ix: be.delta(ix["i"], ix["k"]) ** 2 * be.at("x", ix["c"], ix["k"])
        - be.delta(ix["i"], ix["k"]) * be.at("x", ix["c"], ix["i"]),
        (("c", "C"), ("i", "N"), ("k", "N")))
    assert not bad and "delta-subst" in log.rules
    assert nf == 0  # both monomials have the same canonical form
    assert normalize(A.delta(i, k) * A.at("g", c, k)) == A.delta(i, k) * A.at("g", c, i)


def test_rule_bound_rename():
    j1, j2 = Ix("j_one"), Ix("j_two")
    with recording() as log:
        s1 = A.sum_over(j1, A.at("x", c, j1))
        s2 = A.sum_over(j2, A.at("x", c, j2))
    assert s1 == s2 and "bound-rename" in log.rules
    # nested sums get distinct canonical depths, free channel stays free
    nested = A.sum_over(Ix("cc", "C"), A.at("gamma", Ix("cc", "C"))
                        * A.sum_over(j1, A.at("x", Ix("cc", "C"), j1)))
    assert "_C1" in str(nested) and "_N0" in str(nested)
    for n, C in ((1, 1), (2, 3), (3, 2)):
        cb = ConcreteBackend(n, C)
        conc = cb.sum("C", lambda a: cb.at("gamma", a) * cb.sum("N", lambda b: cb.at("x", a, b)))
        assert is_zero(instantiate(nested, n, C, {}) - conc)


def test_rule_N_inverse():
    with recording() as log:
        be = SymbolicBackend()
        assert normalize(be.N * be.Ninv) == 1
    assert "N-inverse" in log.rules
    nf, log2, bad = check_against_concrete(
        lambda be, ix: be.sum("N", lambda j: be.at("x", ix["c"], j)
                              - be.Ninv * be.sum("N", lambda m: be.at("x", ix["c"], m))),
        (("c", "C"),))
    assert not bad and nf == 0 and {"N-inverse", "sum-const"} <= log2.rules


def test_rule_deriv_atom():
    nf, log, bad = check_against_concrete(
        lambda be, ix: be.diff(be.at("x", ix["c"], ix["p"]), "x", ix["c2"], ix["q"]),
        (("c", "C"), ("c2", "C"), ("p", "N"), ("q", "N")), sizes=(1, 2, 3), channels=(1, 2))
    assert not bad and "deriv-atom" in log.rules
    assert nf == A.delta(c, c2) * A.delta(p, q)
    assert A.diff(A.at("x", c, p), "g", c, p) == 0


def test_rule_deriv_sum():
    nf, log, bad = check_against_concrete(
        lambda be, ix: be.diff(be.sum("N", lambda j: be.at("x", ix["c"], j) ** 2), "x",
                               ix["c"], ix["q"]), (("c", "C"), ("q", "N")))
    assert not bad and "deriv-sum" in log.rules
    assert nf == 2 * A.at("x", c, q)


def test_rule_deriv_poly():
    nf, log, bad = check_against_concrete(
        lambda be, ix: be.diff(be.at("x", ix["c"], ix["p"]) ** 2 * be.at("g", ix["c"], ix["p"]),
                               "x", ix["c"], ix["q"]), (("c", "C"), ("p", "N"), ("q", "N")))
    assert not bad and "deriv-poly" in log.rules
    assert nf == 2 * A.delta(p, q) * A.at("x", c, p) * A.at("g", c, p)


def test_rule_sqrt_chain():
    def build(be, ix):
        u = be.sum("N", lambda j: be.at("x", ix["c"], j) ** 2) + be.eps
        return be.diff(be.sqrt(u), "x", ix["c"], ix["q"])
    nf, log, bad = check_against_concrete(build, (("c", "C"), ("q", "N")))
    assert not bad and "sqrt-chain" in log.rules
    sigma = A.SymbolicBackend().sqrt(A.sum_over(k, A.at("x", c, k) ** 2) + A.EPS)
    assert nf == A.at("x", c, q) * sigma ** -1
    assert any(e == normalize(A.sum_over(k, A.at("x", c, k) ** 2) + A.EPS) for e in log.positive)


def test_rule_inv_chain():
    def build(be, ix):
        b = be.sum("N", lambda j: be.at("x", ix["c"], j)) + be.at("gamma", ix["c"])
        return be.diff(be.inv(b), "x", ix["c"], ix["q"])
    nf, log, bad = check_against_concrete(build, (("c", "C"), ("q", "N")), sizes=range(1, 5))
    assert not bad and "inv-chain" in log.rules and log.nonzero
    iota = A._inv_atom(A.sum_over(k, A.at("x", c, k)) + A.at("gamma", c))
    assert nf == -iota ** 2


def _sigma_u():
    u = normalize(A.sum_over(k, A.at("x", c, k) ** 2) * A.N_SYM ** -1 + A.EPS)
    return SymbolicBackend().sqrt(u), u


def test_rule_sigma_square_and_inverse():
    sigma, u = _sigma_u()
    zero, _, used = decide_nf(sigma ** 2 - u)
    assert zero and "sigma-square" in used and "N-inverse" in used
    zero, _, used = decide_nf(sigma ** -2 * u - 1)
    assert zero and {"sigma-inverse", "sigma-square"} <= used
    # not a zero: σ ≠ u in general, σ³ ≠ u (remainders, never 'zero')
    assert not decide_nf(sigma - u)[0]
    assert not decide_nf(sigma ** 3 - u)[0]


def test_rule_iota_inverse():
    b = normalize(A.sum_over(k, A.at("x", c, k)) + A.at("gamma", c))
    iota = A._inv_atom(b)
    zero, _, used = decide_nf(iota * b - 1)
    assert zero and used == {"iota-inverse"}
    assert not decide_nf(iota * b - 2)[0]


@SETTINGS
@given(ca=st.integers(-3, 3), cb=st.integers(-3, 3), cc=st.integers(-3, 3),
       e=st.integers(1, 3))
def test_decide_nf_is_sound(ca, cb, cc, e):
    """Whenever decide_nf says zero, every concrete instantiation is zero (N = 1..4)."""
    sigma, u = _sigma_u()
    expr = (ca * (sigma ** (e + 1) - u * sigma ** (e - 1)) + cb * sigma ** -e
            + cc * A.at("gamma", c) * (sigma * sigma ** -1 - 1))
    zero, _, _ = decide_nf(expr)
    assert zero == (cb == 0)
    for n in range(1, 5):
        val = instantiate(expr, n, 1, {c: 0})
        assert is_zero(val) == zero


# property: the whole normalizer against concrete expansion on random sums

_FACTORS = [
    lambda be, ix, j: be.at("x", ix["c"], j),
    lambda be, ix, j: be.at("g", ix["c"], j),
    lambda be, ix, j: be.at("x", ix["c"], j) ** 2,
    lambda be, ix, j: be.at("x", ix["c"], ix["k"]),
    lambda be, ix, j: be.at("gamma", ix["c"]),
    lambda be, ix, j: be.delta(j, ix["k"]),
    lambda be, ix, j: be.delta(j, ix["q"]),
    lambda be, ix, j: be.delta(ix["k"], ix["q"]),
    lambda be, ix, j: be.Ninv,
    lambda be, ix, j: be.N,
]


@SETTINGS
@given(monos=st.lists(st.tuples(st.integers(-3, 3),
                                st.lists(st.integers(0, len(_FACTORS) - 1), min_size=0,
                                         max_size=3)), min_size=1, max_size=4),
       differentiate=st.booleans())
def test_normalizer_agrees_with_concrete_expansion(monos, differentiate):
    def build(be, ix):
        def body(j):
            return sympy.Add(*[coef * sympy.Mul(*[_FACTORS[f](be, ix, j) for f in fs])
                               for coef, fs in monos])
        total = be.sum("N", body)
        if differentiate:
            total = be.diff(total, "x", ix["c"], ix["q"])
        return total
    _, _, bad = check_against_concrete(build, (("c", "C"), ("k", "N"), ("q", "N")),
                                       sizes=range(1, 4))
    assert not bad


def test_instantiate_expands_named_sums():
    s = A.sum_over(k, A.at("g", c, k) * A.at("x", c, k))
    got = instantiate(s, 3, 1, {c: 0})
    want = sum(A.concrete_symbol("g", (0, j)) * A.concrete_symbol("x", (0, j)) for j in range(3))
    assert sympy.expand(got - want) == 0
    with pytest.raises(KeyError):
        instantiate(A.at("x", c, p), 2, 1, {c: 0})  # p unassigned


# ---------------------------------------------------------------------------------------------
# Wrong rules are caught


#: rule: (the module that defines and uses it, its function, a wrong version)
WRONG_RULES = {
    "sum-const": (A.terms, "_size", lambda rng: (A.N_SYM if rng == "N" else A.C_SYM) - 1),
    "delta-contract": (A.terms, "_contract", lambda rest, j, other: 2 * A.subs_ix(rest, {j: other})),
    "sqrt-chain": (A.derivatives, "_sqrt_chain", lambda sigma, du: sigma ** -1 * du),
    "inv-chain": (A.derivatives, "_inv_chain", lambda iota, db: iota ** 2 * db),
    "deriv-atom": (A.derivatives, "_deriv_atom", lambda idx2, idx: A.delta(idx2[-1], idx[-1])),
}

_RULE_PROBES = {
    "sum-const": (lambda be, ix: be.sum("N", lambda j: be.at("gamma", ix["c"])), (("c", "C"),),
                  (1,)),
    "delta-contract": (lambda be, ix: be.sum("N", lambda j: be.delta(j, ix["q"])
                                             * be.at("x", ix["c"], j)),
                       (("c", "C"), ("q", "N")), (1,)),
    "sqrt-chain": (lambda be, ix: be.diff(be.sqrt(be.at("gamma", ix["c"]) ** 2 + be.eps),
                                          "gamma", ix["c"]), (("c", "C"),), (1,)),
    "inv-chain": (lambda be, ix: be.diff(be.inv(be.at("gamma", ix["c"]) + be.eps), "gamma",
                                         ix["c"]), (("c", "C"),), (1,)),
    "deriv-atom": (lambda be, ix: be.diff(be.at("x", ix["c"], ix["p"]), "x", ix["c2"], ix["p"]),
                   (("c", "C"), ("c2", "C"), ("p", "N")), (2,)),
}

_AFFECTED = {
    "sum-const": ["lemma_centered_sum_zero", "deriv_var_x", "backprop_dx_closed_form"],
    "delta-contract": ["deriv_mean_x", "vjp_reshape", "adjoint_dx_closed_form"],
    "sqrt-chain": ["deriv_std_x", "adjoint_dx_closed_form", "jvp_closed_form"],
    "inv-chain": ["vjp_inv", "deriv_std_x"],
    "deriv-atom": ["channel_block_rowMean", "channel_block_graph_x", "vjp_sub_a"],
}


@pytest.mark.parametrize("rule", sorted(WRONG_RULES))
def test_wrong_rule_is_caught(rule, monkeypatch):
    module, attr, wrong = WRONG_RULES[rule]
    build, free, channels = _RULE_PROBES[rule]
    # the probe agrees with the concrete expansion under the real rule ...
    assert not check_against_concrete(build, free, sizes=(1, 2, 3), channels=channels)[2]
    monkeypatch.setattr(module, attr, wrong)
    # ... and the rule's own test detects the wrong one
    assert check_against_concrete(build, free, sizes=(1, 2, 3), channels=channels)[2]
    # ... and the prover does not certify the obligations that use it
    cert = A.prove_all_sizes(only=_AFFECTED[rule], sizes=[1, 2, 3])
    assert not cert.ok
    for ob in cert:
        if ob.status == "failed":  # refuted: the exact counterexample is reported
            assert ob.counterexample["N"] in (1, 2, 3)


def test_wrong_rule_making_a_false_claim_symbolically_zero_is_refuted(monkeypatch):
    false_claim = A.Claim(
        "sum_of_constant_is_N_minus_1", "test", "Σ_j γ_c = (N − 1)·γ_c (false)", (("c", "C"),),
        lambda be, ix: be.sum("N", lambda j: be.at("gamma", ix["c"])),
        lambda be, ix: (be.N - 1) * be.at("gamma", ix["c"]))
    true_claim = A.Claim(
        "two_constant_sums", "test", "Σ_j γ_c = Σ_k γ_c", (("c", "C"),),
        lambda be, ix: be.sum("N", lambda j: be.at("gamma", ix["c"])),
        lambda be, ix: be.sum("N", lambda m: be.at("gamma", ix["c"])))
    ob = A.run_claim(false_claim, sizes=[1, 2])
    assert ob.status == "failed" and "not zero" in ob.detail
    monkeypatch.setattr(A.terms, "_size", lambda rng: A.N_SYM - 1)
    ob = A.run_claim(false_claim, sizes=[1, 2])
    assert ob.status == "failed" and "rewrite rule is wrong" in ob.detail
    assert ob.counterexample["lhs"] != ob.counterexample["rhs"]
    ob = A.run_claim(true_claim, sizes=[1, 2])
    assert ob.status == "undecided" and "disagrees with its concrete expansion" in ob.detail


# ---------------------------------------------------------------------------------------------
# Wrong closed forms and VJP rules are refuted with exact counterexamples


def _true_dx_at(n, point, c_, q_):
    """Independent exact J_yᵀg at a point: explicit symbols, sympy.diff, then substitution."""
    xs = [sympy.Symbol(f"x_{c_}_{j}") for j in range(n)]
    gs = [sympy.Symbol(f"g_{c_}_{j}") for j in range(n)]
    gam, eps = sympy.Symbol(f"gamma_{c_}"), sympy.Symbol("eps")
    mean = sum(xs) / n
    r = 1 / sympy.sqrt(sum((xj - mean) ** 2 for xj in xs) / n + eps)
    ys = [gam * (xj - mean) * r for xj in xs]
    val = sum(gs[j] * sympy.diff(ys[j], xs[q_]) for j in range(n))
    pt = {sympy.Symbol(name): Rational(v) for name, v in point.items()}
    missing = (val.free_symbols - set(pt))
    pt.update({s: Integer(0) for s in missing})  # symbols absent from the counterexample cancel
    return val.xreplace(pt)


def _dx_n_minus_1(M, c_, q_):
    return (M.gamma(c_) * M.r(c_) * M.Ninv
            * ((M.N - 1) * M.g(c_, q_) - M.sum(lambda j: M.g(c_, j))
               - M.xhat(c_, q_) * M.sum(lambda j: M.g(c_, j) * M.xhat(c_, j))))


def _dx_over_n_minus_1(M, c_, q_):
    return (M.gamma(c_) * M.r(c_) * M.be.inv(M.N - 1)
            * (M.N * M.g(c_, q_) - M.sum(lambda j: M.g(c_, j))
               - M.xhat(c_, q_) * M.sum(lambda j: M.g(c_, j) * M.xhat(c_, j))))


def _dx_unbiased(M, c_, q_):
    be = M.be
    r = be.inv(be.sqrt(be.inv(M.N - 1) * M.sum(lambda j: M.centered(c_, j) ** 2) + M.eps))
    xh = lambda j: M.centered(c_, j) * r  # noqa: E731
    return (M.gamma(c_) * r * M.Ninv
            * (M.N * M.g(c_, q_) - M.sum(lambda j: M.g(c_, j))
               - xh(q_) * M.sum(lambda j: M.g(c_, j) * xh(j))))


@pytest.mark.parametrize("wrong, min_n", [(_dx_n_minus_1, 1), (_dx_over_n_minus_1, 2),
                                          (_dx_unbiased, 2)])
def test_wrong_dx_closed_form_fails_with_reevaluated_counterexample(wrong, min_n):
    cf = replace(STANDARD_CLOSED_FORM, name="wrong dx", dx=wrong)
    cert = A.prove_all_sizes(closed_form=cf, sizes=[1, 2, 3], only=[
        "backprop_dx_closed_form", "adjoint_dx_closed_form", "all_channels_adjoint_x",
        "backprop_dgamma_closed_form"])
    assert cert["backprop_dgamma_closed_form"].proved  # untouched by the wrong dx
    for name in ("backprop_dx_closed_form", "adjoint_dx_closed_form", "all_channels_adjoint_x"):
        ob = cert[name]
        assert ob.status == "failed", (name, ob.detail)
        cex = ob.counterexample
        assert cex["N"] >= min_n and cex["H"] * cex["W"] == cex["N"]
        ch = cex["indices"].get("c", cex["indices"].get("c2"))
        true = _true_dx_at(cex["N"], cex["point"], ch, cex["indices"]["q"])
        assert differ(true, sympy.sympify(cex["lhs"])) is False
        assert differ(true, sympy.sympify(cex["rhs"])) is True
    if wrong is not _dx_n_minus_1:
        assert "N - 1 ≠ 0" in cert["backprop_dx_closed_form"].assumptions


@SETTINGS
@given(factor=st.fractions(min_value=-2, max_value=2, max_denominator=3))
def test_scaled_dx_is_proved_only_for_factor_one(factor):
    f = Rational(factor.numerator, factor.denominator)
    cf = replace(STANDARD_CLOSED_FORM, name=f"{f}·dx",
                 dx=lambda M, c_, q_: f * STANDARD_CLOSED_FORM.dx(M, c_, q_))
    ob = A.prove_all_sizes(closed_form=cf, sizes=[1, 2], only=["backprop_dx_closed_form"])[
        "backprop_dx_closed_form"]
    if f == 1:
        assert ob.proved
    else:
        assert ob.status == "failed" and ob.counterexample["N"] in (1, 2)
        assert differ(sympy.sympify(ob.counterexample["lhs"]),
                              sympy.sympify(ob.counterexample["rhs"])) is True


def test_wrong_dgamma_dbeta_and_jvp_fail():
    cf = replace(
        STANDARD_CLOSED_FORM, name="wrong",
        dgamma=lambda M, c_: M.sum(lambda j: M.g(c_, j) * M.centered(c_, j)),   # r missing
        dbeta=lambda M, c_: M.sum(lambda j: M.g(c_, j)) * M.gamma(c_),          # γ extra
        jvp=lambda M, c_, p_: (M.gamma(c_) * M.r(c_) * (M.t(c_, p_) - M.xhat(c_, p_) * M.Ninv
                                                         * M.sum(lambda j: M.t(c_, j)
                                                                 * M.xhat(c_, j)))
                               + M.xhat(c_, p_) * M.tgamma(c_) + M.tbeta(c_)))  # mean(t) missing
    names = ["backprop_dgamma_closed_form", "adjoint_dgamma_closed_form",
             "backprop_dbeta_closed_form", "adjoint_dbeta_closed_form", "jvp_closed_form",
             "jvp_stagewise_closed_form", "backprop_dx_closed_form"]
    cert = A.prove_all_sizes(closed_form=cf, sizes=[1, 2, 3], only=names)
    assert cert["backprop_dx_closed_form"].proved
    for name in names[:-1]:
        ob = cert[name]
        assert ob.status == "failed", name
        assert differ(sympy.sympify(ob.counterexample["lhs"]),
                              sympy.sympify(ob.counterexample["rhs"])) is True


@pytest.mark.parametrize("kind, rule, refuted", [
    ("rowMean", lambda be, ins, d: (lambda c_, p_: d(c_),),                     # 1/N missing
     ["vjp_rowMean", "backprop_dx_closed_form", "dot_product_identity"]),
    ("mul", lambda be, ins, d: (lambda c_, p_: d(c_, p_) * ins[1](c_, p_),
                                lambda c_, p_: Integer(0)),                     # drops δ⊙a
     ["vjp_mul_b", "vjp_mul_same", "backprop_dx_closed_form"]),
    ("sqrtClamp", lambda be, ins, d: (lambda c_: d(c_) * be.inv(be.sqrt(ins[0](c_))),),  # no 1/2
     ["vjp_sqrtClamp", "backprop_dx_closed_form", "all_channels_dot_product"]),
])
def test_wrong_vjp_rule_fails(kind, rule, refuted):
    cert = A.prove_all_sizes(vjp_rules={kind: rule}, sizes=[1, 2, 3],
                             only=refuted + ["vjp_mul_a", "backprop_dbeta_closed_form"])
    for name in refuted:
        assert cert[name].status == "failed", name
        assert cert[name].counterexample
    assert cert["backprop_dbeta_closed_form"].proved  # dβ only goes through broadcastRow/add
    if kind != "mul":
        assert cert["vjp_mul_a"].proved


def test_wrong_jvp_rule_fails():
    wrong_mul = {"mul": lambda be, ins, ds: (lambda c_, p_: ins[0](c_, p_) * ds[1](c_, p_))}
    names = ["jvp_mul", "jvp_mul_same", "jvp_stagewise_closed_form", "dot_product_identity",
             "all_channels_dot_product", "jvp_sub", "backprop_dx_closed_form"]
    cert = A.prove_all_sizes(jvp_rules=wrong_mul, sizes=[1, 2, 3], only=names)
    for name in names[:5]:
        assert cert[name].status == "failed", name
        cex = cert[name].counterexample
        assert differ(sympy.sympify(cex["lhs"]), sympy.sympify(cex["rhs"])) is True
    assert cert["jvp_sub"].proved and cert["backprop_dx_closed_form"].proved


def test_cross_channel_mixing_is_refuted():
    """A 'rowMean over all channels' node is not channel independent: refuted at C = 2."""
    def mixing(be):
        return lambda c_: be.Ninv * be.sum("C", lambda d: be.sum("N", lambda j: be.at("a", d, j)))
    claim = A.Claim(
        "channel_block_mixing", "test", "mixing node is block diagonal (false)",
        (("c", "C"), ("c2", "C"), ("q", "N")),
        lambda be, ix: be.diff(mixing(be)(ix["c"]), "a", ix["c2"], ix["q"]),
        lambda be, ix: be.delta(ix["c"], ix["c2"]) * be.diff(mixing(be)(ix["c"]), "a", ix["c"],
                                                            ix["q"]),
        channel_level=True)
    ob = A.run_claim(claim, sizes=[1, 2])
    assert ob.status == "failed"
    cex = ob.counterexample
    assert cex["C"] == 2 and cex["indices"]["c"] != cex["indices"]["c2"]


# ---------------------------------------------------------------------------------------------
# The graph machinery itself


def test_stage_table_matches_the_lean_graph():
    assert [s.pos for s in A.STAGES] == list(range(3, 19))
    assert [s.name for s in A.STAGES] == [
        "xMat", "mean", "mean_b", "centered", "centered_sq", "var", "var_eps", "std", "inv_std",
        "inv_std_b", "normalized", "gamma_b", "scaled", "beta_b", "yMat", "yChw"]
    assert A.STAGES[4].inputs == ("centered", "centered")  # same-slot mul
    assert {s.kind for s in A.STAGES} == set(A.VJP_RULES) - {"broadcastCol", "gather"}
    # every node kind has its rules and is used by some layer's row form
    used = {s.kind for m in A.SIZE_MODELS.values() for s in m.stages}
    assert used == set(A.VJP_RULES) == set(A.JVP_RULES) == set(A.FORWARD_RULES)


def test_symbolic_backprop_normal_forms_are_the_closed_forms():
    be = SymbolicBackend()
    M = A.Model(be)
    out = A.backprop(M, {"yChw": lambda c_, p_: M.g(c_, p_)})
    assert normalize(out["beta"](c)) == A.sum_over(k, A.at("g", c, k))
    zero, _, _ = decide_nf(out["x"](c, q) - STANDARD_CLOSED_FORM.dx(M, c, q))
    assert zero


# ---------------------------------------------------------------------------------------------
# Soundness of side conditions (review S2): 1/b needs b ≠ 0 implied by the stated hypotheses,
# and a claim with no concrete comparison is never 'proved'


def _dx_plus(base, k, shift):
    """The standard dx plus ``k·b·(1/b) + shift`` with ``b = base(M, c)``."""
    def dx(M, c_, q_):
        b = base(M, c_)
        return STANDARD_CLOSED_FORM.dx(M, c_, q_) + k * b * M.be.inv(b) + shift
    return replace(STANDARD_CLOSED_FORM, name=f"dx + {k}·b/b + {shift}", dx=dx)


_DX_CLAIMS = ["backprop_dx_closed_form", "adjoint_dx_closed_form"]


def test_inverse_of_a_base_zero_on_the_domain_is_not_proved():
    """The reviewer's reproducer: b = σ² − (var + ε) ≡ 0, so 5·b/b is undefined everywhere."""
    cf = _dx_plus(lambda M, c_: M.std(c_) ** 2 - M.var_eps(c_), 5, 0)
    cert = A.prove_all_sizes(closed_form=cf, only=["backprop_dx_closed_form"])
    ob = cert["backprop_dx_closed_form"]
    assert ob.status == "undecided" and not cert.ok
    assert "zero on the whole domain" in ob.detail
    assert ob.assumptions == [A._SIZE_ASSUMPTION, A._DOMAIN]  # nothing false slipped in
    assert not any("≠ 0" in a and "√" in a for a in ob.assumptions)
    # the same at the term level: ι of such a base is refused, decide_nf never multiplies by it
    sigma, u = _sigma_u()
    with pytest.raises(A.ZeroBase):
        SymbolicBackend().inv(sigma ** 2 - u)
    with pytest.raises(ZeroDivisionError):
        A._inv_atom(2 * (sigma ** 2 - u))


@pytest.mark.parametrize("base", [
    lambda M, c_: M.var_eps(c_),                                   # var + ε > 0 (stated)
    lambda M, c_: 3 * M.var_eps(c_),
    lambda M, c_: M.var_eps(c_) + M.std(c_) ** 2,                  # = 2(var + ε) via σ² = u
    lambda M, c_: M.N * M.var_eps(c_),
    lambda M, c_: Integer(7) + 0 * M.N,                            # nonzero constant
])
def test_inverse_of_a_stated_nonzero_base_is_still_decided(base):
    ok = A.prove_all_sizes(closed_form=_dx_plus(base, 5, -5), sizes=[1, 2, 3], only=_DX_CLAIMS)
    for name in _DX_CLAIMS:
        assert ok[name].proved, (name, ok[name].detail)
        assert ok[name].assumptions == [A._SIZE_ASSUMPTION, A._DOMAIN]
        assert "0 exact comparisons" not in ok[name].method
    bad = A.prove_all_sizes(closed_form=_dx_plus(base, 1, 0), sizes=[1, 2, 3], only=_DX_CLAIMS)
    for name in _DX_CLAIMS:  # dx + 1 is wrong: refuted by an exact counterexample
        ob = bad[name]
        assert ob.status == "failed", (name, ob.detail)
        assert differ(sympy.sympify(ob.counterexample["lhs"]),
                              sympy.sympify(ob.counterexample["rhs"])) is True


@pytest.mark.parametrize("base, named", [
    (lambda M, c_: M.var(c_), "Σ_N0(x[c,_N0]**2)/N - Σ_N0(x[c,_N0])**2/N**2 ≠ 0"),  # 0 at N = 1
    (lambda M, c_: M.gamma(c_), "gamma[c] ≠ 0"),
    (lambda M, c_: M.var_eps(c_) - 2 * M.eps, "≠ 0"),  # var − ε: sign unknown
])
def test_inverse_of_a_base_not_implied_nonzero_is_undecided(base, named):
    cert = A.prove_all_sizes(closed_form=_dx_plus(base, 5, -5), sizes=[1, 2, 3], only=_DX_CLAIMS)
    for name in _DX_CLAIMS:
        ob = cert[name]
        assert ob.status == "undecided", (name, ob.status)
        assert "do not imply" in ob.detail and named in ob.detail
        assert any(a.endswith("≠ 0") for a in ob.assumptions[2:])  # named, but not 'proved'


def test_side_conditions_must_be_stated_to_be_proved():
    """sqrt(z)² = z needs z > 0: 'proved' only when the claim states it."""
    def lhs(be, ix):
        return be.sqrt(be.at("z", ix["c"])) ** 2 * be.inv(be.at("z", ix["c"]))

    base = dict(name="sqrt_sq", group="test", statement="sqrt(z_c)²/z_c = 1", free=(("c", "C"),),
                lhs=lhs, rhs=lambda be, ix: Integer(1))
    unstated = A.run_claim(A.Claim(**base), sizes=[1, 2])
    assert unstated.status == "undecided"
    assert "z[c] > 0" in unstated.detail and "z[c] ≠ 0" in unstated.detail
    covered_not_stated = A.run_claim(A.Claim(**base, cover=A._generic_cover), sizes=[1, 2])
    assert covered_not_stated.status == "undecided"
    stated = A.run_claim(A.Claim(**base, cover=A._generic_cover, assumptions=(
        "z_c > 0 for every channel c",)), sizes=[1, 2])
    assert stated.proved and stated.assumptions == ["z_c > 0 for every channel c"]


def test_no_concrete_comparison_means_not_proved(monkeypatch):
    claim = A.Claim("n_over_n", "test", "N·(1/N) = 1", (("c", "C"),),
                    lambda be, ix: be.inv(be.N) * be.N * be.at("gamma", ix["c"]),
                    lambda be, ix: be.at("gamma", ix["c"]))
    assert A.run_claim(claim, sizes=[1, 2]).proved

    def never(self, v):
        raise ZeroDivisionError("test: every concrete row divides by zero")
    monkeypatch.setattr(A.ConcreteBackend, "inv", never)
    ob = A.run_claim(claim, sizes=[1, 2])
    assert ob.status == "undecided"
    assert "0 exact comparisons" in ob.method and "nothing was compared" in ob.detail

    monkeypatch.undo()
    orig = A.ConcreteBackend.inv

    def at_one(self, v):
        if self.n == 1:
            raise ZeroDivisionError("test: N = 1 divides by zero")
        return orig(self, v)
    monkeypatch.setattr(A.ConcreteBackend, "inv", at_one)
    ob = A.run_claim(claim, sizes=[1, 2])
    assert ob.status == "undecided" and "C=1, N=1" in ob.detail


def test_proved_obligations_rest_only_on_stated_assumptions(cert):
    for claim in A.claims():
        ob = cert[claim.name]
        assert ob.proved and ob.assumptions == list(claim.assumptions), claim.name
        assert " 0 exact comparisons" not in ob.method and "skipped" not in ob.method


def _lead_engine():
    try:
        from symbolic_bn.graphs.batchnorm import batchnorm_channel_first
    except Exception:  # pragma: no cover - the lead's engine is built in parallel
        return None
    return batchnorm_channel_first


@pytest.mark.parametrize("shape", [(2, 2, 3), (1, 3, 1)])
def test_agrees_with_the_concrete_shape_engine(shape):
    bn = _lead_engine()
    if bn is None:
        pytest.skip("symbolic_bn.graphs.batchnorm not available")
    C, H, W = shape
    n = H * W
    eps = Rational(1, 10)
    try:
        graph = bn(C, H, W, eps=eps)
    except Exception as exc:  # pragma: no cover
        pytest.skip(f"engine unavailable: {exc}")
    val = {}

    def v(name, *idx):
        s = A.concrete_symbol(name, idx)
        val[s] = Rational(((len(name) * 7 + sum(idx) * 5 + idx[-1] * idx[0] * 3) % 11) - 5,
                          1 + sum(idx) % 3)
        return val[s]
    x = np.empty((C, H, W), dtype=object)
    g = np.empty((C, H, W), dtype=object)
    for a in range(C):
        for h in range(H):
            for w in range(W):
                x[a, h, w] = v("x", a, h * W + w)
                g[a, h, w] = v("g", a, h * W + w)
    gam = np.array([v("gamma", a) for a in range(C)], dtype=object)
    bet = np.array([v("beta", a) for a in range(C)], dtype=object)
    inputs = {"x": x, "gamma": gam, "beta": bet}
    out = graph.backprop(inputs, {"yChw": g})
    y = graph.evaluate(inputs)["yChw"]
    val[A.EPS] = eps
    be = SymbolicBackend()
    M = A.Model(be)
    sym = A.backprop(M, {"yChw": lambda c_, p_: M.g(c_, p_)})
    for a in range(C):
        env = {c: a}
        for name, nf in (("gamma", sym["gamma"](c)), ("beta", sym["beta"](c))):
            mine = instantiate(nf, n, C, env).xreplace(val)
            assert differ(mine, sympy.sympify(out[name][a])) is False
        for h in range(H):
            for w in range(W):
                env2 = {c: a, q: h * W + w}
                mine = instantiate(normalize(sym["x"](c, q)), n, C, env2).xreplace(val)
                assert differ(mine, sympy.sympify(out["x"][a, h, w])) is False
                my_y = instantiate(normalize(M.y(c, q)), n, C, env2).xreplace(val)
                assert differ(my_y, sympy.sympify(y[a, h, w])) is False


# ---------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("kwargs, arg", [
    ({"budget": 0}, "budget"), ({"budget": "1"}, "budget"), ({"budget": True}, "budget"),
    ({"closed_form": "dx"}, "closed_form"), ({"vjp_rules": {"conv": None}}, "vjp_rules"),
    ({"vjp_rules": [1]}, "vjp_rules"), ({"jvp_rules": {"conv": None}}, "jvp_rules"),
    ({"sizes": [0, 1]}, "sizes"), ({"sizes": []}, "sizes"),
    ({"sizes": [1.5]}, "sizes"), ({"only": ["no_such_obligation"]}, "only"),
])
def test_prove_all_sizes_rejects_bad_input(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        A.prove_all_sizes(**kwargs)


def test_term_language_rejects_bad_input():
    with pytest.raises(ValueError, match="n"):
        ConcreteBackend(0)
    with pytest.raises(ValueError, match="channels"):
        ConcreteBackend(2, 0)
    with pytest.raises(ValueError, match="name"):
        Ix("")
    with pytest.raises(ValueError, match="rng"):
        Ix("zz", "Q")
    with pytest.raises(ValueError, match="name"):
        Ix("c", "N")  # 'c' is a channel index
    with pytest.raises(ValueError, match="delta"):
        A.delta(p, c)
    with pytest.raises(ValueError, match="family"):
        A.at("1x", p)
    with pytest.raises(ValueError, match="idx"):
        A.at("x", 3)
    with pytest.raises(ValueError, match="j"):
        A.sum_over("j", A.at("x", c, p))
    with pytest.raises(ZeroDivisionError):
        SymbolicBackend().inv(Integer(0))


# ---------------------------------------------------------------------------------------------
# The proof script


def _script():
    spec = importlib.util.spec_from_file_location(
        "batchnorm_all_sizes", ROOT / "proofs" / "batchnorm_all_sizes.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_script_prints_obligations_and_summary(capsys):
    rc = _script().main(["--only", "deriv_mean_x", "vjp_mul_same", "--sizes", "1,2"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "[PROVED   ] deriv_mean_x" in out and "vjp_mul_same" in out
    assert "assumptions: N = H·W ≥ 1" in out and "method:" in out
    assert out.strip().splitlines()[-1].startswith("BatchNormChannelFirst, all sizes")
    assert "OK -- 2 proved" in out


def test_script_json_and_exit_codes(capsys, monkeypatch):
    script = _script()
    assert script.main(["--only", "vjp_reshape", "--sizes", "1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] and data["obligations"][0]["name"] == "vjp_reshape"
    # a failing certificate gives exit status 1
    wrong = replace(STANDARD_CLOSED_FORM, name="wrong", dbeta=lambda M, c_: Integer(0))
    real = A.prove_all_sizes
    monkeypatch.setattr(script.allsizes, "prove_all_sizes",
                        lambda **kw: real(closed_form=wrong, **kw))
    assert script.main(["--only", "backprop_dbeta_closed_form", "--sizes", "1,2"]) == 1
    assert "[FAILED   ] backprop_dbeta_closed_form" in capsys.readouterr().out
    monkeypatch.setattr(script.allsizes, "prove_all_sizes", real)
    assert script.main(["--only", "nope"]) == 2
    with pytest.raises(SystemExit):
        script.main(["--sizes", "0"])
    with pytest.raises(SystemExit):
        script.main(["--budget", "-1"])


# ---------------------------------------------------------------------------------------------
# Issue 11.7: inexact numbers in closed forms are refused, never decided


def _closed_form_with_dbeta(fn):
    return A.ClosedForm(name=fn.__name__, dx=A._cf_dx, dgamma=A._cf_dgamma, dbeta=fn, jvp=A._cf_jvp)


def _dbeta_sympy_float_one(M, c):      # true if 1.0 is read as 1: still refused
    return sympy.Float(1.0) * M.sum(lambda j: M.g(c, j))


def _dbeta_python_float_wrong(M, c):   # was a TypeError escaping from the decision
    return 1.5 * M.sum(lambda j: M.g(c, j))


def _dbeta_float_inside_sum(M, c):
    return 2 * M.sum(lambda j: 0.5 * M.g(c, j))


def _dbeta_string(M, c):               # never parsed
    return "Σ g"


@pytest.mark.parametrize("fn, match", [
    (_dbeta_sympy_float_one, r"inexact number\(s\) 1\.0+ \(a SymPy Float or a Python float\)"),
    (_dbeta_python_float_wrong, r"inexact number\(s\) 1\.50+"),
    (_dbeta_float_inside_sum, r"inexact number"),
    (_dbeta_string, r"not a number or SymPy expression"),
])
def test_inexact_or_non_expression_closed_forms_are_refused_naming_the_claim(fn, match):
    with pytest.raises(ValueError, match=r"^claim backprop_dbeta_closed_form: .*" + match):
        A.prove_all_sizes(closed_form=_closed_form_with_dbeta(fn), only=["backprop_dbeta_closed_form"])


# ---------------------------------------------------------------------------------------------
# Every layer at symbolic sizes (issue 12.2): batch_norm, instance_norm, group_norm, layer_norm,
# rms_norm -- symbolic group size and number of groups

LAYERS = ("batch_norm", "instance_norm", "group_norm", "layer_norm", "rms_norm")
SHARED = ("instance_norm", "group_norm", "layer_norm", "rms_norm")   # a weight entry serves many groups


@pytest.fixture(scope="module")
def layer_certs():
    return {name: A.prove_all_sizes(name, sizes=[1, 2, 3]) for name in LAYERS}


def test_every_layer_is_proved_for_all_sizes(layer_certs):
    for name, cert in layer_certs.items():
        assert cert.ok, (name, [(ob.name, ob.status, ob.detail) for ob in cert if not ob.proved])
        assert "all sizes" in cert.subject and name in cert.subject
        names = {ob.name for ob in cert}
        spec = A.SIZE_MODELS[name]
        # the node-kind laws of exactly the kinds its row form uses
        for kind in spec.kinds():
            assert f"jvp_{kind}" in names, (name, kind)
            assert any(n.startswith(f"vjp_{kind}") for n in names), (name, kind)
        assert ("vjp_broadcastCol" in names) == (name in ("layer_norm", "rms_norm"))
        assert ("vjp_gather" in names) == (name in ("instance_norm", "group_norm"))
        assert not any(n.startswith(("channel_block_gather", "channel_block_broadcastCol")) for n in names)
        # a per-group dot product only where the weights are per group
        assert ("dot_product_identity" in names) == (name not in SHARED)
        assert "all_channels_dot_product" in names and "channel_block_graph_x" in names
        # no β for rms_norm, and its statistic is mean(x²)
        assert ("backprop_dbeta_closed_form" in names) == (name != "rms_norm")
        assert ("deriv_rms_x" in names) == (name == "rms_norm")
        assert ("lemma_centered_sum_zero" in names) == (name != "rms_norm")
        json.loads(cert.to_json())


def test_layer_obligations_state_their_sizes_and_domain(layer_certs):
    for name, cert in layer_certs.items():
        spec = A.SIZE_MODELS[name]
        for ob in cert:
            if ob.group == "scalar rules":
                continue
            assert spec.size_assumption in ob.assumptions, (name, ob.name)
            assert len(ob.assumptions) == len(set(ob.assumptions)), (name, ob.name)
        for ob_name in ("deriv_y_x", "backprop_dx_closed_form", "jvp_closed_form", "all_channels_dot_product"):
            assert spec.domain in cert[ob_name].assumptions, (name, ob_name)
        assert spec.domain not in cert["deriv_y_gamma"].assumptions[:1]
        for ob in cert:
            if ob.group in ("channel independence", "stage VJP = Jᵀδ", "stage JVP = J·t"):
                assert spec.group_assumption in ob.assumptions, (name, ob.name)
                assert "=2" in ob.method, (name, ob.name)   # confirmed with two groups
        assert cert.parameters["legend"] == spec.legend


def test_shared_weights_are_summed_over_groups_and_confirmed_with_two(layer_certs):
    for name in SHARED:
        cert = layer_certs[name]
        ob = cert["backprop_dgamma_closed_form"]
        assert "Σ_{(c,p): π(c,p)=j}" in ob.statement
        assert "=2" in ob.method
        # the whole-context dot product needs the exchange of Σ_groups and Σ_weights
        assert "sum-swap" in cert["all_channels_dot_product"].method


def test_no_argument_is_still_the_channel_first_certificate(cert):
    assert cert.subject.startswith("BatchNormChannelFirst, all sizes")
    assert A.size_model().layer == "batchnorm_channel_first"


def test_layer_objects_and_exact_eps():
    from symbolic_bn import layers
    only = ["deriv_y_x", "backprop_dx_closed_form", "backprop_dgamma_closed_form"]
    cert = A.prove_all_sizes(layers.layer_norm((2, 3), (3,), eps=1e-5), only=only, sizes=[1, 2])
    assert cert.ok, [(ob.name, ob.detail) for ob in cert]
    assert cert.parameters["eps"] == "1/100000"
    assert all(any("ε (ε = 1/100000)" in a for a in ob.assumptions) for ob in cert)
    sym = A.prove_all_sizes(layers.group_norm((2, 4, 3), 2), only=only, sizes=[1, 2])
    assert sym.ok and sym.subject.startswith("group_norm")


def _explicit_ln_dx(point, sizes, row, q):
    """The true Σ_p g_p ∂y_p/∂x_q of layer_norm at a concrete point, from SymPy directly."""
    n = sizes["N"]
    xs = [sympy.Symbol(f"x_{row}_{j}") for j in range(n)]
    gs = [sympy.Symbol(f"g_{row}_{j}") for j in range(n)]
    gam = [sympy.Symbol(f"gamma_{j}") for j in range(n)]
    bet = [sympy.Symbol(f"beta_{j}") for j in range(n)]
    eps = sympy.Symbol("eps")
    mean = sum(xs) / n
    r = 1 / sympy.sqrt(sum((v - mean) ** 2 for v in xs) / n + eps)
    ys = [gam[j] * (xs[j] - mean) * r + bet[j] for j in range(n)]
    val = sum(gs[j] * sympy.diff(ys[j], xs[q]) for j in range(n))
    pt = {sympy.Symbol(k): sympy.Rational(v) for k, v in point.items()}
    pt.update({s: Integer(0) for s in val.free_symbols - set(pt)})
    return val.xreplace(pt)


def _ln_dx_with_constant_gamma(M, c, q):
    """The classic LayerNorm bug: BN's formula with γ pulled out as if it were constant per row."""
    return (M.gamma_at(c, q) * M.r(c) * M.Ninv
            * (M.N * M.g(c, q) - M.sum(lambda j: M.g(c, j))
               - M.xhat(c, q) * M.sum(lambda j: M.g(c, j) * M.xhat(c, j))))


def _in_dx_with_batch_statistics(M, c, q):
    """instance_norm's dx with batch_norm's statistics (over every sample of the channel)."""
    be = M.be
    ch = c[1]
    nb = be.inner.size("B")

    def total(f):
        return be.inner.sum("B", lambda bb: be.sum("N", lambda j: f((bb, ch), j)))
    mean = total(lambda cc, j: M.x(cc, j)) * be.Ninv / nb
    var = total(lambda cc, j: (M.x(cc, j) - mean) ** 2) * be.Ninv / nb
    r = be.inv(be.sqrt(var + M.eps))

    def xh(j):
        return (M.x(c, j) - mean) * r

    def gg(j):
        return M.gamma_at(c, j) * M.g(c, j)
    return r * M.Ninv * (M.N * gg(q) - M.sum(gg) - xh(q) * M.sum(lambda j: gg(j) * xh(j)))


def _rms_dx_with_mean(M, c, q):
    gg = lambda cc, p: M.gamma_at(cc, p) * M.g(cc, p)  # noqa: E731
    return M.r(c) * M.Ninv * (M.N * gg(c, q) - M.sum(lambda j: gg(c, j))
                              - M.xhat(c, q) * M.sum(lambda j: gg(c, j) * M.xhat(c, j)))


def _bn_dx_n_minus_1(M, c, q):
    gg = lambda cc, p: M.gamma_at(cc, p) * M.g(cc, p)  # noqa: E731
    return M.r(c) * M.Ninv * ((M.N - 1) * gg(c, q) - M.sum(lambda j: gg(c, j))
                              - M.xhat(c, q) * M.sum(lambda j: gg(c, j) * M.xhat(c, j)))


G = A.GROUP_CLOSED_FORM
MUTANTS = [
    ("batch_norm", replace(G, name="N − 1", dx=_bn_dx_n_minus_1),
     ["backprop_dx_closed_form", "adjoint_dx_closed_form", "all_channels_adjoint_x"], ["backprop_dgamma_closed_form"]),
    ("batch_norm", replace(G, name="dγ without r", dgamma=lambda M, j: M.param_sum(
        j, lambda c, p: M.g(c, p) * M.centered(c, p))),
     ["backprop_dgamma_closed_form", "all_channels_adjoint_gamma"], ["backprop_dx_closed_form"]),
    ("instance_norm", replace(G, name="batch statistics", dx=_in_dx_with_batch_statistics),
     ["backprop_dx_closed_form", "all_channels_adjoint_x"], ["backprop_dbeta_closed_form"]),
    ("instance_norm", replace(G, name="dβ with an extra γ", dbeta=lambda M, j: M.param_sum(
        j, lambda c, p: M.g(c, p) * M.gamma_at(c, p))),
     ["backprop_dbeta_closed_form", "all_channels_adjoint_beta"], ["backprop_dx_closed_form"]),
    ("group_norm", replace(G, name="constant-γ formula", dx=_ln_dx_with_constant_gamma),
     ["backprop_dx_closed_form", "adjoint_dx_closed_form"], ["backprop_dgamma_closed_form"]),
    ("layer_norm", replace(G, name="constant-γ formula", dx=_ln_dx_with_constant_gamma),
     ["backprop_dx_closed_form", "adjoint_dx_closed_form", "all_channels_adjoint_x"], ["backprop_dbeta_closed_form"]),
    ("layer_norm", replace(G, name="dγ without r", dgamma=lambda M, j: M.param_sum(
        j, lambda c, p: M.g(c, p) * M.centered(c, p))),
     ["backprop_dgamma_closed_form", "all_channels_adjoint_gamma"], ["backprop_dx_closed_form"]),
    ("rms_norm", replace(G, name="a mean term", dx=_rms_dx_with_mean),
     ["backprop_dx_closed_form", "adjoint_dx_closed_form"], ["backprop_dgamma_closed_form"]),
    ("rms_norm", replace(G, name="dγ without r", dgamma=lambda M, j: M.param_sum(j, lambda c, p: M.g(c, p) * M.x(c, p))),
     ["backprop_dgamma_closed_form"], ["backprop_dx_closed_form"]),
]


@pytest.mark.parametrize("layer, cf, wrong, right", MUTANTS, ids=[f"{m[0]}-{m[1].name}" for m in MUTANTS])
def test_wrong_closed_forms_of_every_layer_are_not_proved(layer, cf, wrong, right):
    cert = A.prove_all_sizes(layer, closed_form=cf, sizes=[1, 2, 3], only=wrong + right)
    for name in right:
        assert cert[name].proved, (layer, name, cert[name].detail)
    failed = 0
    for name in wrong:
        ob = cert[name]
        assert not ob.proved, (layer, name)
        if ob.status == "failed":
            failed += 1
            cex = ob.counterexample
            assert differ(sympy.sympify(cex["lhs"]), sympy.sympify(cex["rhs"])) is True
            assert set(cex["sizes"]) >= set(A.SIZE_MODELS[layer].group + A.SIZE_MODELS[layer].position)
    assert failed >= 1, [(n, cert[n].status, cert[n].detail) for n in wrong]


def test_layer_norm_constant_gamma_bug_counterexample_is_the_true_gradient():
    cf = replace(G, name="constant-γ formula", dx=_ln_dx_with_constant_gamma)
    ob = A.prove_all_sizes("layer_norm", closed_form=cf, sizes=[1, 2, 3], only=["backprop_dx_closed_form"])[
        "backprop_dx_closed_form"]
    assert ob.status == "failed"
    cex = ob.counterexample
    assert cex["N"] >= 2  # with one entry per row γ is constant and the formula is right
    true = _explicit_ln_dx(cex["point"], cex["sizes"], cex["indices"]["c"], cex["indices"]["q"])
    assert differ(true, sympy.sympify(cex["lhs"])) is False    # backprop through the stages is Jᵀg
    assert differ(true, sympy.sympify(cex["rhs"])) is True     # the closed form is not


def test_instance_norm_batch_statistics_bug_needs_two_samples():
    cf = replace(G, name="batch statistics", dx=_in_dx_with_batch_statistics)
    ob = A.prove_all_sizes("instance_norm", closed_form=cf, sizes=[1, 2], only=["backprop_dx_closed_form"])[
        "backprop_dx_closed_form"]
    # the closed form sums over samples, so it is confirmed with B = 2 too, where it is wrong
    assert ob.status == "failed" and ob.counterexample["sizes"]["B"] == 2
    assert "B=2" in ob.method


def test_mixing_samples_is_refuted_for_instance_norm():
    spec = A.SIZE_MODELS["instance_norm"]

    def mixing(be):  # a rowMean over every sample of the channel: not per (sample, channel)
        return lambda c: be.Ninv * be.inner.sum("B", lambda b: be.sum("N", lambda j: be.at("a", (b, c[1]), j)))
    claim = A.Claim(
        "channel_block_mixing", "test", "mixing node is block diagonal (false)",
        (("c", "C"), ("c2", "C"), ("q", "N")),
        lambda be, ix: be.diff(mixing(be)(ix["c"]), "a", ix["c2"], ix["q"]),
        lambda be, ix: be.delta(ix["c"], ix["c2"]) * be.diff(mixing(be)(ix["c"]), "a", ix["c"], ix["q"]),
        channel_level=True, spec=spec)
    ob = A.run_claim(claim, sizes=[1, 2])
    assert ob.status == "failed"
    cex = ob.counterexample
    assert cex["sizes"]["B"] == 2 and cex["indices"]["c"] != cex["indices"]["c2"]


def test_rule_sum_swap():
    r, n = Ix("r_sw", "R"), Ix("n_sw", "N")

    def outer_rows(be, ix):   # Σ_c Σ_p a_p b_cp
        return be.sum("R", lambda cc: be.sum("N", lambda pp: be.at("a", pp) * be.at("b", cc, pp)))

    def outer_positions(be, ix):   # Σ_p a_p Σ_c b_cp
        return be.sum("N", lambda pp: be.at("a", pp) * be.sum("R", lambda cc: be.at("b", cc, pp)))
    with recording() as log:
        lhs = normalize(outer_rows(SymbolicBackend(), {}))
        rhs = normalize(outer_positions(SymbolicBackend(), {}))
    assert lhs == rhs and "sum-swap" in log.rules
    assert str(lhs).startswith("Σ_R1(")   # rows outside, positions inside (the canonical order)
    for rows in (1, 2, 3):
        for k in (1, 2, 3):
            cb = ConcreteBackend(k, sizes={"R": rows})
            assert is_zero(instantiate(lhs, k, 1, {}, {"R": rows}) - outer_positions(cb, {}))
    del r, n


def test_a_wrong_sum_swap_is_caught(monkeypatch):
    def dropped(j, dep):   # drops the outer factor a_j
        sums = [(b, e) for b, e in dep if A._kind(b) == "sum"]
        if len(sums) != 1 or sums[0][1] != 1:
            return None
        k, inner = A._ATOMS[sums[0][0]].data
        if k.rng == j.rng or A._RANGE_ORDER[k.rng] > A._RANGE_ORDER[j.rng]:
            return None
        k2 = A._fresh(k.rng)
        return A.sum_over(k2, A.sum_over(j, A.subs_ix(inner, {k: k2})))
    monkeypatch.setattr(A.terms, "_exchange", dropped)
    cert = A.prove_all_sizes("layer_norm", sizes=[1, 2], only=["all_channels_dot_product"])
    assert not cert.ok


def test_without_sum_swap_the_shared_weight_dot_product_is_not_proved(monkeypatch):
    monkeypatch.setattr(A.terms, "_exchange", lambda j, dep: None)
    ob = A.prove_all_sizes("layer_norm", sizes=[1, 2], only=["all_channels_dot_product"])[
        "all_channels_dot_product"]
    assert ob.status == "undecided" and "nonzero normal form" in ob.detail


@SETTINGS
@given(layer=st.sampled_from(LAYERS), k=st.integers(0, 3))
def test_layer_backend_sums_agree_with_concrete_expansion(layer, k):
    """Σ over a group's positions and param_sum, symbolically then instantiated, equal the
    concrete nested sums at every size of the grid."""
    spec = A.SIZE_MODELS[layer]
    be = A.LayerBackend(SymbolicBackend(), spec)
    c, j = be.index("c", "C"), be.index("j", "J")
    builders = [
        lambda b, c_, j_: b.sum("N", lambda p: b.at("x", c_, p) * b.at("g", c_, p)),
        lambda b, c_, j_: b.param_sum(j_, lambda cc, p: b.at("g", cc, p)),
        lambda b, c_, j_: b.sum("C", lambda cc: b.sum("N", lambda p: b.at("g", cc, p) * b.at("w", b.param(cc, p)))),
        lambda b, c_, j_: b.N * b.Ninv * b.sum("N", lambda p: b.delta(p, p)),
    ]
    build = builders[k]
    nf = normalize(build(be, c, j))
    claim = A.Claim("probe", "test", "", (("c", "C"), ("j", "J")), None, None, channel_level=True, spec=spec)
    for sizes in A.confirmation_grid(claim, [1, 2, 3]):
        cb = A._concrete_backend(spec, sizes)
        full = cb.inner.sizes
        for cv in cb.assignments("C"):
            for jv in cb.assignments("J"):
                env = A._env({"c": c, "j": j}, {"c": cv, "j": jv})
                inst = instantiate(nf, full["N"], full["C"], env, full)
                assert is_zero(inst - build(cb, cv, jv)), (layer, k, sizes, cv, jv)


def test_prove_all_sizes_rejects_bad_layers():
    with pytest.raises(ValueError, match="layer must be .* one of batchnorm_channel_first"):
        A.prove_all_sizes("conv2d")
    with pytest.raises(ValueError, match=r"layer must be .*pass the budget as budget="):
        A.prove_all_sizes(30)
    with pytest.raises(ValueError, match="only names unknown obligations"):
        A.prove_all_sizes("layer_norm", only=["dot_product_identity"])   # per-group only for per-group weights
    with pytest.raises(ValueError, match="only names unknown obligations"):
        A.prove_all_sizes("rms_norm", only=["backprop_dbeta_closed_form"])
