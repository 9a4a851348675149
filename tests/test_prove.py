"""Issue 2: every obligation of the BatchNormChannelFirst graph is proved exactly."""
import json

import pytest
import sympy

from symbolic_bn import batchnorm_channel_first, prove
from symbolic_bn.exact.backends import available_backends

SHAPES = [(1, 1, 2), (1, 2, 2), (2, 2, 2), (2, 3, 3)]
EPS = [None, 1e-6, 1e-5]

EXPECTED_GROUPS = {"stage": 48, "end-to-end": 2, "link": 4, "domain": 3}


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("eps", EPS, ids=["eps_symbolic", "eps_1e-6", "eps_1e-5"])
def test_every_obligation_proved(shape, eps):
    cert = prove(batchnorm_channel_first(*shape, eps=eps))
    not_proved = [(ob.name, ob.status, ob.detail) for ob in cert if ob.status != "proved"]
    assert not not_proved
    assert cert.ok
    groups = {}
    for ob in cert:
        groups[ob.group] = groups.get(ob.group, 0) + 1
    assert groups == EXPECTED_GROUPS
    # 16 stages x (adjoint, derivative, transpose), in the Lean file's order
    stage_names = [ob.stage for ob in cert if ob.group == "stage"][::3]
    assert stage_names == ["xMat", "mean", "mean_b", "centered", "centered_sq", "var", "var_eps", "std",
                           "inv_std", "inv_std_b", "normalized", "gamma_b", "scaled", "beta_b", "yMat", "yChw"]


def test_end_to_end_statement_and_assumptions():
    cert = prove(batchnorm_channel_first(2, 2, 2))
    ob = cert["end_to_end.backprop_eq_adjoint_fderiv"]
    assert ob.lean_name == "backprop_eq_adjoint_fderiv_batchNorm_channel_first_at"
    assert "12CN + 7C" in ob.statement and "110" in ob.statement  # 12*2*4 + 7*2
    assert "a slot and a group at a time" in ob.method
    assert any("var_c + ε > 0" in a for a in ob.assumptions)
    assert any("std_c ≠ 0" in a for a in ob.assumptions)
    assert cert.parameters["context_size"] == 110 and cert.parameters["input_size"] == 12
    # side conditions are stated exactly where Lean needs them
    assert cert["stage.std.derivative"].assumptions and cert["stage.inv_std.derivative"].assumptions
    assert not cert["stage.mean.derivative"].assumptions
    assert cert["stage.std.derivative"].lean_name.startswith("sqrtClampFderivAt")


def test_certificate_is_json_serializable():
    cert = prove(batchnorm_channel_first(1, 2, 2, eps=1e-6))
    d = json.loads(json.dumps(cert.to_dict()))
    assert d["ok"] is True and d["counts"]["proved"] == len(cert)
    for ob in d["obligations"]:
        assert set(ob) >= {"name", "statement", "lean_name", "assumptions", "method", "status",
                           "seconds", "counterexample"}
    assert d["parameters"]["eps"] == "1/1000000"


@pytest.mark.skipif(len(available_backends()) < 2, reason="needs python-flint for the comparison")
@pytest.mark.parametrize("shape", [(1, 2, 2), (2, 2, 2), (1, 3, 3)])
def test_backends_agree(shape):
    a = prove(batchnorm_channel_first(*shape), backend="flint")
    b = prove(batchnorm_channel_first(*shape), backend="sympy")
    assert [(o.name, o.status) for o in a] == [(o.name, o.status) for o in b]
    assert a.parameters["jacobian_entries"] == b.parameters["jacobian_entries"]


def test_no_simplify_on_the_proof_path(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("simplify() called on the proof path")
    monkeypatch.setattr(sympy, "simplify", forbidden)
    import importlib
    monkeypatch.setattr(importlib.import_module("sympy.simplify.simplify"), "simplify", forbidden)
    monkeypatch.setattr(sympy.Basic, "simplify", forbidden)
    monkeypatch.setattr(sympy, "nsimplify", forbidden)
    cert = prove(batchnorm_channel_first(2, 2, 2))
    assert cert.ok


def test_tiny_budget_gives_undecided_never_proved():
    cert = prove(batchnorm_channel_first(2, 3, 3), budget=1e-4)
    assert not cert.ok
    assert cert.counts()["undecided"] > 0
    assert all(ob.status in ("proved", "undecided") for ob in cert)


def test_prove_rejects_bad_arguments():
    with pytest.raises(TypeError, match="batchnorm_channel_first"):
        prove("2x2x2")
    with pytest.raises(ValueError, match="budget"):
        prove(batchnorm_channel_first(1, 1, 2), budget=0)
    with pytest.raises(ValueError, match="domain var_c \\+ ε > 0.*is empty"):
        prove(batchnorm_channel_first(2, 1, 1, eps=0))
    assert prove(batchnorm_channel_first(1, 1, 2, eps=0), stages=False).ok  # N = 2: a nonempty domain
    with pytest.raises(ValueError, match="backend"):
        prove(batchnorm_channel_first(1, 1, 2), backend="mathematica")


def _without_timings(cert):
    d = cert.to_dict()
    d.pop("seconds")
    d["parameters"].pop("jobs", None)
    for ob in d["obligations"]:
        ob.pop("seconds")
    return d


def test_parallel_run_is_identical_to_serial():
    """jobs > 1 splits independent obligation groups over processes; verdicts, methods and even
    counterexamples (per-group random streams) are those of the serial run."""
    from symbolic_bn.graphs import nodes as N
    g = batchnorm_channel_first(4, 4, 4)

    class WrongSign(N.Sub):
        def vjp(self, alg, args, delta):
            return [(self.inputs[0], delta), (self.inputs[1], delta)]
    g = g.replace("centered", WrongSign("centered", ("xMat", "mean_b"), (4, 16), "nodeCentered"))
    serial = prove(g, jobs=1)
    parallel = prove(g, jobs=2)
    assert parallel.parameters["jobs"] == 2 and serial.parameters["jobs"] == 1
    assert _without_timings(serial) == _without_timings(parallel)
    assert serial["end_to_end.backprop_eq_adjoint_fderiv"].status == "failed"


def test_jobs_must_be_positive():
    with pytest.raises(ValueError, match="jobs"):
        prove(batchnorm_channel_first(1, 1, 2), jobs=0)


# ---------------------------------------------------------------------------------------------
# issue 11.2: side conditions come from what the graph computes, the domain is the stated one


def test_square_root_with_no_declared_condition_is_not_proved_for_all_x():
    """An elemwise node taking a square root but declaring no side condition: its derivative
    needs z > 0, which 'for all X' does not give -- never 'proved'."""
    import dataclasses
    g = batchnorm_channel_first(1, 2, 2, eps=sympy.Rational(1, 10))
    std = next(n for n in g.nodes if n.name == "std")
    sneaky = dataclasses.replace(std, kind="elemwise", side_condition=None, condition_input=None,
                                 f=lambda alg, z: alg.sqrt_clamp(z),
                                 fprime=lambda alg, z: alg.sqrt_clamp_deriv(z))
    cert = prove(g.replace("std", sneaky), jobs=1)
    assert cert["stage.std.derivative"].status != "proved"
    assert cert["stage.std.transpose"].status != "proved"


def test_graph_not_differentiable_inside_the_stated_domain_is_not_proved():
    """var_eps replaced by var - 9/10 under ε = 1/10: the stated domain var + 1/10 > 0 contains
    var = 9/10, where sqrt(var - 9/10) is not differentiable (and var < 9/10 where the clamp is
    flat): the end-to-end identity must not be 'proved' there."""
    import dataclasses
    g = batchnorm_channel_first(1, 2, 2, eps=sympy.Rational(1, 10))
    node = next(n for n in g.nodes if n.name == "var_eps")
    shifted = dataclasses.replace(node, f=lambda alg, z: z - alg.const(sympy.Rational(9, 10)),
                                  f_text="z ↦ z − 9/10")
    cert = prove(g.replace("var_eps", shifted), jobs=1)
    assert cert["end_to_end.backprop_eq_adjoint_fderiv"].status != "proved"
    # the modified graph's std can vanish inside the domain: hStdNe0 does not follow
    assert cert["domain.std_nonzero"].status != "proved"
    assert cert["end_to_end.block_diagonal"].status == "proved"  # still true: channels independent
    assert not cert.ok
