"""The ``symbolic-bn`` command line: every subcommand, its output and exit status, the error paths
(one line on stderr, exit 2), the glossary behind ``symbolic-bn explain``, and the isolation of
checked code (its exit calls and prints never change the verdict or the JSON on stdout).

The layer, framework and higher-order paths (``prove --layer/--order``, ``check --layer``,
``--framework``, ``--double-backward``, unmodified NumPy code, ``autodiff``) are at the end of the
file; their checked functions are in tests/cli_layer_impls.py.  Tests that need torch skip cleanly
without it.

Calls whose exit status or child process matters run the installed console script in a
subprocess (:func:`cli_run.run`); argument parsing and usage errors, which never reach checked
code, run in-process through ``symbolic_bn.cli.main`` (:func:`cli_run.run_here`) to keep the file
fast.  The outputs the glossary test reads are produced once per module (fixture ``outputs``).
"""
import concurrent.futures
import json
import re
import signal
import textwrap

import pytest

from cli_run import EXE, assert_usage_error, one_json_object, run, run_here, write_json
from cli_terms import PLAIN_TERMS, jargon

pytestmark = pytest.mark.skipif(EXE is None, reason="the symbolic-bn console script is not installed "
                                "(pip install -e . first)")

PARAMS = {"running_mean": [0.5, -1.0], "running_var": [4.0, 0.25], "gamma": [2.0, -1.0],
          "beta": [0.0, 1.0], "eps": 0.0}
BOX = {"lo": [[0.0, 1.0], [-1.0, 0.0]], "hi": [[1.0, 2.0], [1.0, 0.5]]}
DBOX = {"lo": [[-1.0, 0.0], [0.5, 1.0]], "hi": [[1.0, 0.0], [1.0, 2.0]]}
SCALE = [1.0, -2.0]  # gamma / sqrt(var + eps) of PARAMS

#: Names of the checked functions and files (tests/cli_impls.py, cli_layer_impls.py,
#: numpy_implementations.py), and words of the user's source lines that side conditions quote:
#: the user's words, not the tool's.
USER_NAMES = {"wrong_backward", "backward", "forward", "backward_unsupported", "cs231n_style_backward",
              "cs231n_wrong_forgets_dmu", "batch_norm_backward_per_sample", "double_backward_without_ggbeta",
              "float_buffer_backward", "torch_batch_norm_backward_wrong_dbias", "torch_cumsum_forward",
              "torch_instance_norm_bessel", "torch_instance_norm_without_jvp", "torch_instance_norm_primitive",
              "numpy_implementations.py", "cli_layer_impls.py", "cli_impls.py", "keepdims", "axis",
              "x.shape", "e.g"}  # the last two: "e.g. np.zeros(x.shape)", prose and NumPy code
#: Words of the layer / framework / autodiff output with a special meaning (not found by shape).
PLAIN_TERMS_NEW = ("layer", "order", "mode", "api", "primal", "fwd-over-rev", "rev-over-rev", "fwd",
                   "rev", "status", "verdict", "framework", "trace", "traced", "double backward",
                   "directions", "NOT CHECKED", "UNDECIDED", "higher-order", "gx", "ggrad_out",
                   "ggx", "torch", "jax")


def default_shape():
    from symbolic_bn.checks.check import DEFAULT_SHAPE
    return tuple(DEFAULT_SHAPE)


def shape_text(shape):
    return "x".join(map(str, shape))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    return {"params": write_json(d, "p.json", PARAMS), "box": write_json(d, "b.json", BOX),
            "dbox": write_json(d, "d.json", DBOX), "dir": d}


@pytest.fixture(scope="module")
def outputs(files):
    """Real CLI output of every subcommand, produced once (console script, subprocess)."""
    calls = {
        "prove": ("prove", "--shape", "1x2x2"),
        "prove_neg_eps": ("prove", "--shape", "1x2x2", "--eps", "-1", "--brief"),
        "check_exact": ("check", "cli_impls:wrong_backward", "--forward", "cli_impls:forward",
                        "--shape", "1x2x3"),
        "check_numeric": ("check", "cli_impls:wrong_backward", "--numeric", "--shape", "1x2x3"),
        "check_unsupported": ("check", "cli_impls:backward_unsupported", "--shape", "1x2x3"),
        "check_numpy": ("check", "numpy_implementations:cs231n_wrong_forgets_dmu", "--shape", "1x2x3"),
        "check_float_buffer": ("check", "numpy_implementations:float_buffer_backward", "--shape", "1x2x3"),
        "check_layer": ("check", "cli_layer_impls:batch_norm_backward_per_sample", "--layer", "batch_norm",
                        "--shape", "2x2x3"),
        "check_layer_numeric": ("check", "cli_layer_impls:batch_norm_backward_per_sample", "--numeric",
                                "--layer", "batch_norm", "--shape", "2x2x3"),
        "check_double_backward": ("check", "cli_layer_impls:double_backward_without_ggbeta",
                                  "--double-backward", "--shape", "1x2x3"),
        "prove_layer_order": ("prove", "--layer", "layer_norm", "--shape", "2x3", "--normalized-shape", "3",
                              "--order", "3"),
        "prove_layers": ("prove", "--layer", "rms_norm", "--shape", "2x3", "--normalized-shape", "3",
                         "--eps", "1e-5"),
        "prove_group_norm": ("prove", "--layer", "group_norm", "--shape", "1x4x2", "--groups", "2"),
        "prove_batch_norm": ("prove", "--layer", "batch_norm", "--shape", "2x2x2"),
        "bounds": ("bounds", "--params", files["params"], "--box", files["box"], "--dbox",
                   files["dbox"], "--ddbox", files["box"], "--prove"),
    }
    # two at a time (2 cores): each call is a new interpreter, mostly waiting on imports
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(run, *args) for name, args in calls.items()}
        runs = {name: f.result() for name, f in futures.items()}
    for name, p in runs.items():
        assert "Traceback" not in p.stderr, (name, p.stderr)
        assert p.returncode in (0, 1), (name, p.returncode, p.stderr)
    return runs


# ---------------------------------------------------------------- top level and help
def test_version_and_no_command():
    p = run("--version")
    assert p.returncode == 0 and p.stdout.strip().count(".") == 2
    p = run()
    assert p.returncode == 2 and "usage" in p.stderr


def test_unknown_subcommand_is_one_line():
    assert_usage_error(run_here("frobnicate"), "invalid choice")


def _subparsers(parser):
    import argparse
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices


def test_every_subcommand_and_option_has_help():
    import argparse
    from symbolic_bn.cli import build_parser
    parser = build_parser()
    subs = _subparsers(parser)
    assert set(subs) == {"prove", "check", "autodiff", "bounds", "report", "explain", "glossary"}
    for name, sp in [("symbolic-bn", parser), *subs.items()]:
        if name != "symbolic-bn":
            assert sp.description and len(sp.description.split()) >= 10, name
        for action in sp._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS, (name, action.option_strings or action.dest)
    top = run("--help")
    assert top.returncode == 0
    text = " ".join(top.stdout.split())
    assert "symbolic-bn explain TERM" in text and "Glossary" in text
    for name in subs:  # each subcommand listed with its one-line help
        assert re.search(rf"^\s+{name}\s+\S", top.stdout, re.M), name


def test_help_prints_the_api_default_shape():
    """One default shape (issue 11.9): the help texts print symbolic_bn.checks.check.DEFAULT_SHAPE
    (not a 2x2x2 of their own)."""
    shape = shape_text(default_shape())
    from symbolic_bn.cli import build_parser
    subs = _subparsers(build_parser())
    for sub in ("check", "prove"):
        helps = " ".join(a.help for a in subs[sub]._actions if "--shape" in a.option_strings)
        assert f"default {shape}" in helps, (sub, helps)
    backend = " ".join(a.help for a in subs["prove"]._actions if "--backend" in a.option_strings)
    assert "flint" in backend and "sympy" in backend  # issue 15: --backend had no help


# ---------------------------------------------------------------- explain / glossary
def test_glossary_is_consistent():
    from symbolic_bn import glossary
    terms = [e.term for e in glossary.entries()]
    assert len(terms) == len(set(terms))
    for e in glossary.entries():
        assert e.category in glossary.CATEGORIES, e.term
        assert len(e.text.split()) >= 5 and "  " not in e.text, e.term
        assert glossary.lookup(e.term) is e, e.term
        for a in e.aliases:
            assert glossary.lookup(a) is e, (e.term, a)
        for s in e.see:
            assert glossary.lookup(s) is not None, (e.term, s)
    md = glossary.markdown()
    assert md.startswith("## Glossary")
    for e in glossary.entries():
        assert f"**`{e.term}`**" in md, e.term


@pytest.mark.parametrize("term,entry", [
    ("slot", "slot"), ("SEED", "seed"), ("context", "context"), ("totalized", "totalized"),
    ("sqrtclamp", "sqrtClamp"), ("rowMean", "rowMean"), ("broadcastRow", "broadcastRow"),
    ("broadcastCol", "broadcastCol"), ("J_E", "J_E"), ("12CN + 7C slots", "12CN + 7C slots"),
    ("12CN+7C", "12CN + 7C slots"), ("ibp", "IBP"), ("err/bound", "err/bound"), ("κ", "kappa"),
    ("ulp", "ULP"), ("PROVED", "proved"), ("failed", "failed"), ("Undecided", "undecided"),
    ("side condition", "side condition"), ("domain", "domain"), ("counterex.", "counterexample"),
    ("adjoint", "adjoint"), ("jvp", "JVP"), ("VJP", "VJP"), ("eps", "ε"), ("ε", "ε"),
    ("stage.std.adjoint", "stage.*.adjoint"), ("stage.var_eps.derivative", "stage.*.derivative"),
    ("stage.yChw.transpose", "stage.*.transpose"),
    ("end_to_end.backprop_eq_adjoint_fderiv", "end_to_end.*"), ("link.forward_spec", "link.*"),
    ("domain.std_nonzero", "domain.*"), ("var_eps_i", "var_eps"), ("x_{c,p}", "x"),
    ("dx[0, 0, 0]", "dx"), ("Σ", "Σ"), ("σ", "decide_zero"), ("dX", "JVP"), ("X", "context"),
])
def test_glossary_lookup(term, entry):
    from symbolic_bn import glossary
    assert glossary.lookup(term) is not None and glossary.lookup(term).term == entry


def _assert_explained(terms):
    from symbolic_bn import glossary
    terms = set(terms) - USER_NAMES
    missing = sorted(t for t in terms if glossary.lookup(t) is None)
    assert not missing, f"terms printed by the CLI without a glossary entry: {missing}"
    for t in sorted(terms):
        p = run_here("explain", "--", *t.split())
        assert p.returncode == 0, (t, p.stderr)
        assert p.stdout.startswith(glossary.lookup(t).term), (t, p.stdout[:80])


def test_every_term_in_the_real_output_has_an_entry(outputs):
    """Terms collected from the real output of prove (every layer, --order 3), check (exact,
    numeric, unsupported op, unmodified NumPy, --layer, --double-backward) and bounds (boxes and
    --prove): each must have a glossary entry, and `explain` must print it -- a new term of that
    shape without an entry fails here."""
    terms = set(PLAIN_TERMS) | set(PLAIN_TERMS_NEW)
    for name, p in outputs.items():
        found = jargon(p.stdout)
        assert found, name
        terms |= found
    # the brief's list, which must be among the collected terms (so the collection works)
    for t in ("sqrtClamp", "rowMean", "broadcastRow", "J_E", "IBP", "PROVED", "FAILED",
              "stage.std.derivative", "end_to_end.block_diagonal", "link.forward_spec",
              "domain.std_nonzero", "FD", "ε", "max_ulp", "higher.mode.fwd-over-rev-over-rev",
              "double_backward.ggrad_out", "NumPy", "x_channel_first", "inv_rms"):
        assert t in terms, t
    _assert_explained(terms)


def test_explain_subprocess_listing_and_unknown_term():
    from symbolic_bn import glossary
    p = run("explain", "KAPPA")
    assert p.returncode == 0 and p.stdout.startswith("kappa") and "condition number" in p.stdout
    p = run("explain", "side", "condition")
    assert p.returncode == 0 and p.stdout.startswith("side condition")
    p = run("explain")
    assert p.returncode == 0
    for e in glossary.entries():
        assert f"  {e.term} -- " in p.stdout, e.term
    p = run("explain", "sqrtclam")
    assert_usage_error(p, "no glossary entry for 'sqrtclam'", "closest: sqrtClamp")
    p = run_here("explain", "--json", "err/bound")
    doc = one_json_object(p)
    assert doc["term"] == "err/bound" and "bound" in doc["text"]
    doc = one_json_object(run_here("explain", "--json"))
    assert len(doc["terms"]) == len(glossary.entries())
    assert_usage_error(run_here("explain", "zzzzqqq"), "no glossary entry")


def test_glossary_subcommand_prints_every_entry_in_full():
    """`symbolic-bn glossary`: every entry with its whole explanation (not only the first
    sentence, as `explain` lists them), grouped by category; --markdown is the README's section."""
    from symbolic_bn import glossary
    p = run("glossary")
    assert p.returncode == 0 and p.stderr == ""
    flat = " ".join(p.stdout.split())
    for e in glossary.entries():
        assert " ".join(glossary.render(e).split()) in flat, e.term
    for word in ("slot", "seed", "context", "totalized", "sqrtClamp", "rowMean", "J_E", "IBP",
                 "err/bound", "kappa"):
        assert re.search(rf"^{re.escape(glossary.lookup(word).term)}\b", p.stdout, re.M), word
    positions = [p.stdout.index(f"{c[0].upper()}{c[1:]}\n") for c in glossary.CATEGORIES]
    assert positions == sorted(positions)
    md = run_here("glossary", "--markdown")
    assert md.returncode == 0 and md.stdout == glossary.markdown()
    doc = one_json_object(run_here("glossary", "--json"))
    assert [t["term"] for t in doc["terms"]] == [e.term for e in glossary.entries()]
    assert all(t["text"] == e.text for t, e in zip(doc["terms"], glossary.entries()))
    assert_usage_error(run_here("glossary", "--json", "--markdown"), "--json", "--markdown")
    assert_usage_error(run_here("glossary", "kappa"), "unrecognized arguments")


# ---------------------------------------------------------------- text rendering
def test_text_rendering_is_readable(outputs):
    text = outputs["prove"].stdout
    for line in text.splitlines():
        body = line.strip()
        if body.startswith(("statement", "assumes")):
            assert "  " not in body.split(None, 1)[1], line  # issue 15: "var_eps_i  > 0"
    assert "var_eps_i > 0 for every i (side condition of sqrtClamp)" in text
    flat = " ".join(text.split())
    # "where z > 0" says what z is
    assert "where z > 0, z being the input of sqrtClamp: the slot var_eps = var_c + ε" in flat
    assert "where z ≠ 0, z being the input of inv: the slot std" in flat
    assert not re.search(r"where z [>≠] 0(?!, z being)", flat)
    # the subject names ε in words, not "ε = ε"
    assert "ε = ε" not in text
    assert "BatchNormChannelFirst 1x2x2, ε symbolic (any real ε with var_c + ε > 0): OK" in text
    neg = outputs["prove_neg_eps"].stdout
    assert "ε = -1 (not positive: covers only inputs with var_c > 1 in every channel): OK" in neg
    check = outputs["check_exact"].stdout
    assert "== backward wrong_backward at 1x2x3, ε symbolic (any real ε with var_c + ε > 0) ==" in check
    # the other layers have one statistic per group, not per channel c: "var", rms_norm's mean(x²)
    layer = outputs["check_layer"].stdout
    assert "at batch_norm 2x2x3, ε symbolic (any real ε with var + ε > 0) ==" in layer
    assert "var_c" not in layer.split("==")[1]
    assert "GroupNorm 1x4x2, G=2, ε symbolic (any real ε with var + ε > 0): OK" in outputs["prove_group_norm"].stdout


def test_text_module_renders_numbers_and_other_subjects():
    from symbolic_bn.obligations.certificate import Certificate, Obligation
    from symbolic_bn.report.text import certificate_text, render_subject
    ob = Obligation("a.b", "s  with   spaces", "proved", "m", assumptions=["q_i  > 0 for every i (side condition of inv)"])
    c = Certificate("thing at 1x2x2", [ob], parameters={"eps": "1/10"})
    assert render_subject(c) == "thing at 1x2x2, ε = 1/10"
    txt = certificate_text(c)
    assert "s with spaces" in txt and "q_i > 0" in txt and txt.endswith("in 0.00 s")
    assert render_subject(Certificate("no eps here")) == "no eps here"
    assert render_subject(Certificate("X, ε = 0", parameters={"eps": "0"})).startswith("X, ε = 0 (not positive")


# ---------------------------------------------------------------- prove
def test_prove_text_and_exit_zero():
    p = run("prove", "--shape", "1x2x2", "--brief")
    assert p.returncode == 0, p.stderr
    assert "BatchNormChannelFirst 1x2x2" in p.stdout
    assert "0 failed" in p.stdout and "FAILED" not in p.stdout.replace("0 failed", "")
    assert p.stderr == ""  # no progress when stderr is not a terminal


def test_prove_json_is_one_object():
    p = run_here("prove", "--shape", "1x2x2", "--shape", "1x1x2", "--eps", "1e-5", "--json")
    assert p.returncode == 0, p.stderr
    doc = one_json_object(p)
    assert set(doc) == {"ok", "certificates"} and doc["ok"] is True
    assert len(doc["certificates"]) == 2
    c = doc["certificates"][0]
    assert c["ok"] is True and c["parameters"]["shape"] == [1, 2, 2] and c["parameters"]["eps"] == "1/100000"
    assert all(ob["status"] == "proved" for ob in c["obligations"])


def test_prove_default_shape_is_the_api_default():
    doc = one_json_object(run_here("prove", "--json", "--brief"))
    (c,) = doc["certificates"]
    assert tuple(c["parameters"]["shape"]) == default_shape()


@pytest.mark.parametrize("shape", ["2x0x2", "abc", "2x2", "2x2x2;rm", "", "-1x2x2", "2x2x2 ", "1x2x2\n",
                                   "１x2x2"])
def test_prove_malformed_shape(shape):
    assert_usage_error(run_here("prove", "--shape", shape), "--shape")


@pytest.mark.parametrize("eps", ["abc", "__import__('os')", "1e-5;rm"])
def test_prove_malformed_eps(eps):
    assert_usage_error(run_here("prove", "--shape", "1x2x2", "--eps", eps))


def test_prove_empty_domain_is_bad_input():
    assert_usage_error(run_here("prove", "--shape", "1x1x1", "--eps", "0"), "domain")


# ---------------------------------------------------------------- budgets (issue 11.6)
@pytest.mark.parametrize("budget", ["0", "-1", "nan", "abc", "-inf", "1e", " 5", "5 ", "0x10", "1_0"])
@pytest.mark.parametrize("sub", [["prove", "--shape", "1x2x2"], ["check", "cli_impls:backward"],
                                 ["bounds", "--prove"]])
def test_bad_budget_is_a_usage_error(sub, budget):
    assert_usage_error(run_here(*sub, f"--budget={budget}"), "--budget", "positive number")


def test_huge_budget_is_not_an_internal_error():
    """`prove --budget 1e10` printed "internal error: OverflowError"; 1e10, 1e999 and inf/none
    (no limit) now give the certificate."""
    p = run("prove", "--shape", "1x2x2", "--budget", "1e10", "--brief")
    assert p.returncode == 0 and "internal error" not in p.stderr, p.stderr
    assert "57 proved" in p.stdout
    for b in ("inf", "none", "1e999", "INF"):
        p = run_here("prove", "--shape", "1x1x2", "--eps", "1/10", "--budget", b, "--json")
        assert one_json_object(p)["ok"] is True, (b, p.stderr)
    p = run_here("bounds", "--prove", "--budget", "inf", "--brief")
    assert p.returncode == 0 and "26 proved" in p.stdout, p.stderr


# ---------------------------------------------------------------- check
def test_check_correct_backward_and_forward_pass():
    p = run("check", "cli_impls:backward", "--forward", "cli_impls:forward", "--shape", "1x2x2")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "CHECK: PASS" in p.stdout and "COUNTEREXAMPLE" not in p.stdout


def test_check_wrong_backward_exits_1_with_counterexample(outputs):
    p = outputs["check_exact"]
    assert p.returncode == 1, p.stdout + p.stderr
    assert "CHECK: FAIL" in p.stdout
    assert "COUNTEREXAMPLE" in p.stdout
    assert "dx" in p.stdout.split("COUNTEREXAMPLE", 1)[1]
    assert "Traceback" not in p.stderr


def test_check_wrong_backward_numeric(outputs):
    p = outputs["check_numeric"]
    assert p.returncode == 1 and "CHECK: FAIL" in p.stdout and "COUNTEREXAMPLE dx" in p.stdout
    p = run("check", "cli_impls:wrong_backward", "--numeric", "--dtype", "float32", "--json")
    assert p.returncode == 1
    doc = one_json_object(p)
    assert doc["ok"] is False and doc["certificates"] == []
    cc = doc["crosscheck"]
    assert cc["dtype"] == "float32" and cc["outputs"]["dx"]["ok"] is False
    assert cc["outputs"]["dbeta"]["ok"] is True  # only dx is wrong
    assert cc["outputs"]["dx"]["worst"]["index"]


def test_check_takes_a_nonpositive_eps_where_the_domain_is_not_empty():
    """As the API and `prove --eps` do: before, `check --eps 0` was refused although var_c > 0 is
    a domain; the summary says which inputs a nonpositive ε covers, and an empty domain is a usage
    error naming it."""
    p = run("check", "cli_impls:backward", "--shape", "1x2x2", "--eps=-1/100")
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert "not positive: covers only inputs with var_c > 1/100 in every channel): OK" in p.stdout
    wrong = run("check", "cli_impls:wrong_backward", "--shape", "1x2x2", "--eps", "0", "--brief")
    assert wrong.returncode == 1 and "CHECK: FAIL" in wrong.stdout, (wrong.stdout, wrong.stderr)
    assert "eps=0, grad_out=" in wrong.stdout  # the counterexample's inputs
    empty = run("check", "cli_impls:backward", "--shape", "1x1x1", "--eps", "0")
    assert_usage_error(empty, "eps = 0", "domain", "is empty")


def test_check_wrong_forward_exits_1():
    p = run("check", "cli_impls:backward", "--forward", "cli_impls:wrong_forward", "--numeric")
    assert p.returncode == 1
    assert "COUNTEREXAMPLE y" in p.stdout


def test_check_no_xp_is_exact_at_the_default_shape():
    """issue 10.4: a function without xp is checked exactly (unmodified NumPy code), not
    cross-checked; --numeric still gives the cross-check, at the same default shape."""
    p = run("check", "cli_impls:backward_no_xp", "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    doc = one_json_object(p)
    assert doc["ok"] is True and doc["crosscheck"] is None and doc["verdict"] == "PASS"
    (cert,) = doc["certificates"]
    assert [ob["status"] for ob in cert["obligations"]] == ["proved"] * 3
    assert tuple(cert["parameters"]["shape"]) == default_shape()  # one default shape (issue 11.9)
    assert any("unmodified NumPy code" in n for n in doc["notes"])
    p = run("check", "cli_impls:backward_no_xp", "--numeric", "--json")
    doc = one_json_object(p)
    assert doc["ok"] is True and doc["certificates"] == [] and doc["crosscheck"]["ok"] is True
    assert tuple(doc["crosscheck"]["shape"]) == default_shape()


@pytest.mark.parametrize("numeric", [False, True])
def test_check_raising_implementation_fails(numeric):
    p = run("check", "cli_impls:backward_raises", *(["--numeric"] if numeric else []))
    assert p.returncode == 1, p.stdout + p.stderr
    assert "Traceback" not in p.stderr and "CHECK: FAIL" in p.stdout
    assert "this implementation is broken" in p.stdout


def test_check_exact_path_counterexample_has_exact_inputs():
    """A wrong backward is refuted exactly: the counterexample names the entry and the rational
    inputs; --json is one object."""
    p = run("check", "cli_impls:wrong_backward", "--shape", "1x2x2", "--json")
    assert p.returncode == 1
    doc = one_json_object(p)
    assert doc["crosscheck"] is None
    (cert,) = doc["certificates"]
    st = {ob["name"]: ob["status"] for ob in cert["obligations"]}
    assert st == {"backward.dx": "failed", "backward.dgamma": "proved", "backward.dbeta": "proved"}
    cex = next(ob["counterexample"] for ob in cert["obligations"] if ob["status"] == "failed")
    assert "x" in cex and "grad_out" in cex


def test_check_unsupported_operation_is_not_checked_unless_numeric_is_asked(outputs):
    """An operation the exact engine cannot do is reported by name (NOT CHECKED, verdict UNDECIDED,
    exit 1): no silent switch to the cross-check, whose PASS would not be a proof.  --numeric asks
    for the cross-check, which passes (the function is correct)."""
    p = outputs["check_unsupported"]
    assert p.returncode == 1, p.stdout + p.stderr
    assert "NOT CHECKED backward:" in p.stdout and "xp.tanh" in p.stdout
    assert "--numeric cross-checks it" in p.stdout
    assert p.stdout.rstrip().endswith("CHECK: UNDECIDED") and "PASS" not in p.stdout
    p = run("check", "cli_impls:backward_unsupported", "--shape", "1x2x3", "--json")
    doc = one_json_object(p)
    assert doc["verdict"] == "UNDECIDED" and doc["failures"] == [] and doc["certificates"] == []
    assert len(doc["refused"]) == 1 and "xp.tanh" in doc["refused"][0]
    p = run("check", "cli_impls:backward_unsupported", "--shape", "1x2x3", "--numeric")
    assert p.returncode == 0 and "RESULT: PASS" in p.stdout and "CHECK: PASS" in p.stdout, p.stdout


@pytest.mark.parametrize("target,needle", [
    ("no_such_module_xyz:backward", "cannot import"),
    ("cli_impls:no_such_function", "no attribute"),
    ("cli_impls:NOT_CALLABLE", "not callable"),
])
def test_check_bad_target_found_in_the_child(target, needle):
    assert_usage_error(run("check", target), needle)


@pytest.mark.parametrize("target,needle", [
    ("os:system;ls", "MODULE:FUNCTION"),
    ("__import__('os').system", "MODULE:FUNCTION"),
    ("cli_impls", "MODULE:FUNCTION"),
    ("cli_impls:backward\n", "MODULE:FUNCTION"),
    ("cli_impls\n:backward", "MODULE:FUNCTION"),
    ("no/such/file.py:f", "does not exist"),
    ("pkg/mod:f", "path/to/file.py:function"),
    ("x.py:1f", "path/to/file.py:function"),
    ("x.py:", "path/to/file.py:function"),
    ("x\x00.py:f", "path/to/file.py:function"),
])
def test_check_bad_target_syntax(target, needle):
    assert_usage_error(run_here("check", target), needle)


def test_check_bad_forward_target_and_options(tmp_path):
    assert_usage_error(run("check", "cli_impls:backward", "--forward", "nope_mod:f"), "--forward")
    assert_usage_error(run_here("check", "cli_impls:backward", "--forward", "a.py:f"), "--forward",
                       "does not exist")
    assert_usage_error(run_here("check", str(tmp_path) + "/d.py:f"), "does not exist")
    (tmp_path / "d.py").mkdir()
    assert_usage_error(run_here("check", str(tmp_path / "d.py") + ":f"), "is not a file")
    assert_usage_error(run_here("check", "cli_impls:backward", "--shape", "2x2x2;rm"), "--shape")
    assert_usage_error(run_here("check", "cli_impls:backward", "--dtype", "float16"), "float16")
    assert_usage_error(run_here("check", "cli_impls:backward", "--dps", "3"), "--dps")
    assert_usage_error(run_here("check", "cli_impls:backward", "--eps", "1e-5 + 1"), "--eps")
    assert_usage_error(run_here("check", "cli_impls:backward", "--eps", "nan"), "--eps")


# ---------------------------------------------------------------- import conventions
MY_BN = textwrap.dedent('''\
    import sys
    import numpy
    from symbolic_bn import numeric
    print("import-time noise on stdout")
    print("import-time noise on stderr", file=sys.stderr)

    def f(x, gamma, beta, grad_out, eps, xp=numpy):
        print("check-time noise {\\"ok\\": true}")
        return numeric.backward(x, gamma, beta, grad_out, eps, xp=xp)
''')


def test_current_directory_is_on_the_import_path(tmp_path):
    """issue 15: `symbolic-bn check my_bn:f` in the folder holding my_bn.py failed with
    ModuleNotFoundError; what the checked code prints goes to stderr, marked, never to stdout."""
    (tmp_path / "my_bn.py").write_text(MY_BN)
    p = run("check", "my_bn:f", "--shape", "1x2x2", "--brief", cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "CHECK: PASS" in p.stdout and "noise" not in p.stdout
    assert "checked code | import-time noise on stdout" in p.stderr
    assert "checked code | import-time noise on stderr" in p.stderr
    assert "checked code | check-time noise" in p.stderr
    p = run("check", "my_bn:f", "--shape", "1x2x2", "--json", cwd=tmp_path)
    doc = one_json_object(p)  # the noise (even a JSON-looking line) does not corrupt stdout
    assert doc["ok"] is True and doc["certificates"][0]["ok"] is True


def test_missing_module_names_the_directory_searched(tmp_path):
    p = run("check", "not_here_bn:f", cwd=tmp_path)
    assert_usage_error(p, "cannot import module 'not_here_bn'", "current directory", "path/to/not_here_bn.py:f")


def test_file_path_targets(tmp_path):
    """`./my_bn.py:f` was refused; file targets load by path (with the file's own directory on
    sys.path, so it can import a sibling module), relative or absolute."""
    sub = tmp_path / "some dir" / "impl"
    sub.mkdir(parents=True)
    (sub / "helper_for_bn.py").write_text(MY_BN)
    (sub / "my-bn.py").write_text("from helper_for_bn import f as g\n")
    p = run("check", "./some dir/impl/my-bn.py:g", "--shape", "1x2x2", "--brief", cwd=tmp_path)
    assert p.returncode == 0 and "CHECK: PASS" in p.stdout, p.stdout + p.stderr
    other = tmp_path / "elsewhere"
    other.mkdir()
    p = run("check", str(sub / "helper_for_bn.py") + ":f", "--shape", "1x2x2", "--json", cwd=other)
    assert one_json_object(p)["ok"] is True, p.stderr
    (sub / "quiet.py").write_text("def f(*a):\n    pass\n")
    p = run("check", str(sub / "quiet.py") + ":nope", cwd=other)
    assert_usage_error(p, "has no attribute 'nope'")
    (sub / "broken.py").write_text("def f(:\n")
    p = run("check", str(sub / "broken.py") + ":f", cwd=other)
    assert_usage_error(p, "cannot import file 'broken.py'", "SyntaxError")


def test_local_file_named_like_a_tool_module_does_not_replace_it(tmp_path):
    """The current directory goes first on sys.path only after the tool's modules are imported."""
    (tmp_path / "mpmath.py").write_text("raise RuntimeError('the local mpmath.py was imported')\n")
    (tmp_path / "numbers.py").write_text("raise RuntimeError('the local numbers.py was imported')\n")
    p = run("check", "cli_impls:backward_no_xp", "--shape", "1x2x2", "--json", cwd=tmp_path)
    assert one_json_object(p)["ok"] is True, p.stderr


# ---------------------------------------------------------------- the exit status belongs to the tool
EXITS = {
    "exits_at_import": "import os\nos._exit(0)\ndef f(*a):\n    pass\n",
    "exits_during_check": "import os, numpy\ndef f(x, gamma, beta, grad_out, eps, xp=numpy):\n"
                          "    os._exit(0)\n",
    "atexit_exits": "import atexit, os, numpy\natexit.register(lambda: os._exit(0))\n"
                    "def f(x, gamma, beta, grad_out, eps, xp=numpy):\n    return x, gamma, beta\n",
    "atexit_exits_after_raising": "import atexit, os, numpy\natexit.register(lambda: os._exit(0))\n"
                                  "def f(x, gamma, beta, grad_out, eps):\n    raise SystemExit(0)\n",
    "kills_itself": "import os, signal, numpy\ndef f(x, gamma, beta, grad_out, eps, xp=numpy):\n"
                    "    os.kill(os.getpid(), signal.SIGKILL)\n",
}


@pytest.mark.parametrize("module", sorted(EXITS))
def test_checked_code_cannot_choose_the_exit_status(tmp_path, module):
    """issue 11.5: os._exit(0) at import or during the check, or an atexit handler ending the
    interpreter, made `symbolic-bn check` exit 0."""
    if module == "kills_itself" and not hasattr(signal, "SIGKILL"):
        pytest.skip("no SIGKILL here")
    (tmp_path / f"{module}.py").write_text(EXITS[module])
    p = run("check", f"{module}:f", "--shape", "1x2x2", "--brief", cwd=tmp_path)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "CHECK: FAIL" in p.stdout and "Traceback" not in p.stderr
    if module.startswith(("exits", "kills")):
        assert "the checked code ended the process before a verdict" in p.stderr
        assert ("killed by signal 9" if module == "kills_itself" else "exited with status 0") in p.stderr


NESTED_BARE_EXCEPT = ("import time\n"
                      "def f(x, gamma, beta, grad_out, eps, xp):\n"
                      "    while True:\n"
                      "        try:\n"
                      "            while True:\n"
                      "                try:\n"
                      "                    time.sleep(0.01)\n"
                      "                except:\n"
                      "                    pass\n"
                      "        except:\n"
                      "            pass\n")


@pytest.mark.parametrize("json_too", [False, True])
def test_checked_code_that_outlasts_its_budget_is_stopped_undecided(tmp_path, json_too):
    """Two nested bare-except loops swallow every in-process interrupt; before the watchdog the
    command never ended.  The child is killed WATCHDOG_FACTOR·budget + WATCHDOG_GRACE s after the
    phase began; the verdict is UNDECIDED (nothing was shown wrong), exit 1."""
    (tmp_path / "stubborn.py").write_text(NESTED_BARE_EXCEPT)
    p = run("check", "stubborn:f", "--shape", "1x2x2", "--budget", "0.2",
            *(["--json"] if json_too else ["--brief"]), cwd=tmp_path)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "the checked code did not stop when its time budget ran out" in p.stderr
    if json_too:
        doc = one_json_object(p)
        assert doc["ok"] is False and doc["verdict"] == "UNDECIDED"
    else:
        assert "CHECK: UNDECIDED" in p.stdout and "Traceback" not in p.stderr


SLOW_BUT_RIGHT = ("import time\nfrom cli_impls import backward as right\n"
                  "def f(x, gamma, beta, grad_out, eps, xp):\n"
                  "    end = time.monotonic() + 60\n"
                  "    while time.monotonic() < end:\n"
                  "        pass\n"
                  "    return right(x, gamma, beta, grad_out, eps, xp)\n")


@pytest.mark.parametrize("numeric", [False, True])
def test_a_budget_running_out_inside_checked_code_is_undecided_not_failed(tmp_path, numeric):
    """Before: the CLI's guard turned the budget's interrupt (a BaseException) into "exited
    during the check": CHECK: FAIL for a correct function that is merely slow, without a
    counterexample; and --numeric ran with no budget at all (an endless loop hung)."""
    (tmp_path / "slow.py").write_text(SLOW_BUT_RIGHT)
    p = run("check", "slow:f", "--shape", "1x2x2", "--budget", "0.5", "--brief",
            *(["--numeric"] if numeric else []), cwd=tmp_path, timeout=120)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "CHECK: UNDECIDED" in p.stdout and "FAILED" not in p.stdout, (p.stdout, p.stderr)


def test_no_verdict_with_json_is_one_object(tmp_path):
    (tmp_path / "exits_during_check.py").write_text(EXITS["exits_during_check"])
    p = run("check", "exits_during_check:f", "--shape", "1x2x2", "--json", cwd=tmp_path)
    assert p.returncode == 1
    doc = one_json_object(p)
    assert doc["ok"] is False and doc["error"] == "the checked code ended the process before a verdict"


def test_atexit_handler_cannot_fail_a_correct_check(tmp_path):
    (tmp_path / "atexit_bad_status.py").write_text(
        "import atexit, os, numpy\nfrom symbolic_bn import numeric\natexit.register(lambda: os._exit(3))\n"
        "def f(x, gamma, beta, grad_out, eps, xp=numpy):\n"
        "    return numeric.backward(x, gamma, beta, grad_out, eps, xp=xp)\n")
    p = run("check", "atexit_bad_status:f", "--shape", "1x2x2", "--brief", cwd=tmp_path)
    assert p.returncode == 0 and "CHECK: PASS" in p.stdout, p.stdout + p.stderr


def test_spawned_child_behaves_the_same(tmp_path):
    """The 'spawn' start method (the default off Linux) gives the same verdicts."""
    (tmp_path / "exits_during_check.py").write_text(EXITS["exits_during_check"])
    env = {"SYMBOLIC_BN_CHILD_START": "spawn"}
    p = run("check", "exits_during_check:f", "--shape", "1x2x2", cwd=tmp_path, env=env)
    assert p.returncode == 1 and "ended the process before a verdict" in p.stderr, p.stderr
    p = run("check", "cli_impls:wrong_backward", "--shape", "1x2x2", "--json", cwd=tmp_path, env=env)
    doc = one_json_object(p)
    assert [ob["status"] for ob in doc["certificates"][0]["obligations"]] == ["failed", "proved", "proved"]


@pytest.mark.parametrize("body,needle", [
    ("import sys\nsys.exit(0)\n", "sys.exit(0)"),
    ("raise SystemExit\n", "sys.exit(None)"),
    ("class E(BaseException):\n    pass\nraise E('boom')\n", "E: boom"),
])
def test_check_module_exiting_at_import_is_a_usage_error(tmp_path, body, needle):
    """C1: a module calling sys.exit(0) at import used to end the run with status 0 and no output."""
    (tmp_path / "exits_at_import.py").write_text(body + "def backward(*a):\n    pass\n")
    p = run("check", "exits_at_import:backward", path=[tmp_path])
    assert_usage_error(p, "cannot import module 'exits_at_import'", needle)
    p = run("check", "cli_impls:backward", "--forward", "exits_at_import:backward", path=[tmp_path])
    assert_usage_error(p, "--forward")


@pytest.mark.parametrize("target,extra,json_too", [
    ("cli_impls:backward_exits", [], True),                # exact symbolic check
    ("cli_impls:backward_exits", ["--numeric"], False),    # mpmath cross-check
    ("cli_impls:backward_exits_no_xp", [], False),         # unmodified NumPy code, exact
    ("cli_impls:backward_base_exception", [], False),
    ("cli_impls:backward_base_exception", ["--numeric"], True),
])
def test_check_function_that_exits_is_a_failed_check(target, extra, json_too):
    """C1: a backward that calls sys.exit(0) used to pass silently (exit 0, no output)."""
    p = run("check", target, "--shape", "1x2x2", *extra)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "CHECK: FAIL" in p.stdout and "Traceback" not in p.stderr
    assert ("sys.exit(0)" if "exits" in target else "_NotAnException") in p.stdout
    if json_too:
        p = run("check", target, "--shape", "1x2x2", "--json", *extra)
        assert p.returncode == 1 and one_json_object(p)["ok"] is False


def test_check_forward_that_exits_is_a_failed_check():
    p = run("check", "cli_impls:backward", "--forward", "cli_impls:backward_exits", "--numeric")
    assert p.returncode == 1 and "CHECK: FAIL" in p.stdout and "sys.exit(0)" in p.stdout


# ---------------------------------------------------------------- bounds
def test_bounds_text_prints_only_the_boxes_given(files, outputs):
    p = run_here("bounds", "--params", files["params"], "--box", files["box"])
    assert p.returncode == 0, p.stderr
    # s = gamma/sqrt(var+eps) = [1, -2]; o = beta - s*mean = [-0.5, -1]
    assert "[1.0, -2.0]" in p.stdout and "[-0.5, -1.0]" in p.stdout
    assert "lo = [[-0.5, 0.5], [-3.0, -2.0]]" in p.stdout
    assert "hi = [[0.5, 1.5], [1.0, -1.0]]" in p.stdout
    assert "derivative box" not in p.stdout  # issue 15: no box it was not given
    full = outputs["bounds"].stdout
    assert "derivative box of d/dt BN(x(t))" in full and "second-derivative box" in full
    assert "inference BatchNorm bounds: OK" in full


def _scaled_box(box):
    """s·[lo, hi] per channel (rows), swapped where s < 0."""
    lo, hi = [], []
    for c, s in enumerate(SCALE):
        a = [s * v for v in box["lo"][c]]
        b = [s * v for v in box["hi"][c]]
        lo.append([min(x, y) for x, y in zip(a, b)])
        hi.append([max(x, y) for x, y in zip(a, b)])
    return lo, hi


def test_bounds_derivative_boxes_come_from_their_own_files(files):
    p = run_here("bounds", "--params", files["params"], "--dbox", files["dbox"], "--ddbox", files["box"],
                 "--json")
    doc = one_json_object(p)
    assert "ibp" not in doc and {"deriv", "second_deriv"} <= set(doc)
    lo, hi = _scaled_box(DBOX)
    assert doc["deriv"] == {"lo": lo, "hi": hi}
    lo, hi = _scaled_box(BOX)
    assert doc["second_deriv"] == {"lo": lo, "hi": hi}
    doc = one_json_object(run_here("bounds", "--params", files["params"], "--ddbox", files["dbox"], "--json"))
    assert set(doc) & {"ibp", "deriv", "second_deriv"} == {"second_deriv"}
    lo, hi = _scaled_box(DBOX)
    assert doc["second_deriv"] == {"lo": lo, "hi": hi}
    p = run_here("bounds", "--params", files["params"], "--dbox", files["dbox"])
    assert "derivative box" in p.stdout and "IBP box" not in p.stdout and "second-derivative" not in p.stdout
    assert_usage_error(run_here("bounds", "--dbox", files["dbox"]), "--dbox needs --params")
    assert_usage_error(run_here("bounds", "--params", files["params"]), "--box")
    bad = write_json(files["dir"], "bad_d.json", {"lo": [[2.0, 0.0], [0.5, 1.0]], "hi": [[1.0, 0.0], [1.0, 2.0]]})
    assert_usage_error(run_here("bounds", "--params", files["params"], "--dbox", bad), "--dbox")
    assert_usage_error(run_here("bounds", "--params", files["params"], "--ddbox", files["params"]),
                       "--ddbox", "missing key")


def test_bounds_json_exact_and_outward(tmp_path):
    params = dict(PARAMS, running_var=["1/4", "1/4"], eps="0")
    pp, bp = write_json(tmp_path, "p.json", params), write_json(tmp_path, "b.json", BOX)
    p = run_here("bounds", "--params", pp, "--box", bp, "--json")
    doc = one_json_object(p)
    assert doc["exact"] is True and doc["scale"] == ["4", "-2"]
    q = write_json(tmp_path, "q.json", dict(PARAMS, running_var=[0.1, 0.1]))
    out = one_json_object(run_here("bounds", "--params", q, "--box", bp, "--json", "--rounding", "outward"))
    near = one_json_object(run_here("bounds", "--params", q, "--box", bp, "--json"))
    lo_o, hi_o = out["ibp"]["lo"], out["ibp"]["hi"]
    lo_n, hi_n = near["ibp"]["lo"], near["ibp"]["hi"]
    for i in range(2):
        for j in range(2):
            assert lo_o[i][j] <= lo_n[i][j] and hi_o[i][j] >= hi_n[i][j]


def test_bounds_400_digit_running_var(tmp_path):
    """issue 11.7: a 400-digit running_var with --rounding outward failed while printing in float
    mode.  An integer that float64 cannot hold is kept exact; the outward box encloses the exact
    one (here BN(x) = (x − 1/2)·2/sqrt(10^399) on channel 0)."""
    import mpmath
    big = "1" + "0" * 399
    pp = write_json(tmp_path, "p.json", '{"running_mean": [0.5, -1.0], "running_var": [%s, 0.25], '
                                        '"gamma": [2.0, -1.0], "beta": [0.0, 1.0], "eps": 0.0}' % big)
    bp = write_json(tmp_path, "b.json", BOX)
    with mpmath.workdps(60):
        s0 = 2 / mpmath.sqrt(mpmath.mpf(10) ** 399)
        want_lo = [s0 * (v - mpmath.mpf(1) / 2) for v in BOX["lo"][0]]
        want_hi = [s0 * (v - mpmath.mpf(1) / 2) for v in BOX["hi"][0]]
        for rounding in ("outward", "nearest"):
            p = run("bounds", "--params", pp, "--box", bp, "--rounding", rounding, "--json")
            assert p.returncode == 0 and p.stderr == "", (rounding, p.stderr)
            doc = one_json_object(p)
            assert doc["exact"] is True
            if rounding == "outward":
                lo, hi = doc["ibp"]["lo"][0], doc["ibp"]["hi"][0]
                for j in range(2):
                    assert isinstance(lo[j], float) and isinstance(hi[j], float)
                    assert lo[j] <= want_lo[j] and want_lo[j] - lo[j] <= 1e-14 * abs(want_lo[j])
                    assert hi[j] >= want_hi[j] and hi[j] - want_hi[j] <= 1e-14 * abs(want_hi[j])
            p = run_here("bounds", "--params", pp, "--box", bp, "--rounding", rounding)
            assert p.returncode == 0 and "Traceback" not in p.stderr
    # written as a string of more than 100 characters: refused in one line naming the argument
    pp = write_json(tmp_path, "s.json", dict(PARAMS, running_var=[big, 0.25]))
    assert_usage_error(run_here("bounds", "--params", pp, "--box", bp, "--rounding", "outward"),
                       "running_var[0]")


def test_bounds_channel_axis(tmp_path):
    box_t = {"lo": [[0.0, -1.0], [1.0, 0.0]], "hi": [[1.0, 1.0], [2.0, 0.5]]}  # BOX transposed
    pp, bp = write_json(tmp_path, "p.json", PARAMS), write_json(tmp_path, "b.json", box_t)
    for axis in ("1", "-1"):
        doc = one_json_object(run_here("bounds", "--params", pp, "--box", bp, "--channel-axis", axis, "--json"))
        assert doc["ibp"]["lo"] == [[-0.5, -3.0], [0.5, -2.0]]


def test_bounds_prove(outputs):
    assert outputs["bounds"].returncode == 0
    p = run_here("bounds", "--prove", "--brief")
    assert p.returncode == 0 and "inference BatchNorm bounds: OK" in p.stdout
    doc = one_json_object(run_here("bounds", "--prove", "--json"))
    assert doc["certificate"]["ok"] is True and len(doc["certificate"]["obligations"]) >= 20


def test_bounds_errors(tmp_path):
    pp, bp = write_json(tmp_path, "p.json", PARAMS), write_json(tmp_path, "b.json", BOX)
    r = run_here
    assert_usage_error(r("bounds", "--params", str(tmp_path / "missing.json"), "--box", bp), "cannot read")
    assert_usage_error(r("bounds", "--params", str(tmp_path), "--box", bp), "cannot read")
    assert_usage_error(r("bounds", "--params", write_json(tmp_path, "bad.json", "{not json"), "--box", bp),
                       "not valid JSON")
    assert_usage_error(r("bounds", "--params", write_json(tmp_path, "nan.json", '{"running_mean": [NaN]}'),
                         "--box", bp), "not valid JSON")
    assert_usage_error(r("bounds", "--params", write_json(tmp_path, "list.json", [1, 2]), "--box", bp),
                       "JSON object")
    assert_usage_error(r("bounds", "--params", write_json(tmp_path, "miss.json", {"gamma": [1.0]}),
                         "--box", bp), "missing key")
    assert_usage_error(r("bounds", "--params", write_json(tmp_path, "str.json", dict(PARAMS, eps="1e-5;rm")),
                         "--box", bp), "eps")
    assert_usage_error(r("bounds", "--params", pp, "--box",
                         write_json(tmp_path, "inv.json", {"lo": [[0.0, 3.0], [0.0, 0.0]],
                                                           "hi": [[1.0, 2.0], [1.0, 1.0]]})), "lo > hi")
    assert_usage_error(r("bounds", "--params", pp, "--box",
                         write_json(tmp_path, "shape.json", {"lo": [[0.0]], "hi": [[1.0]]})), "channel")
    assert_usage_error(r("bounds", "--params", write_json(tmp_path, "var.json", dict(PARAMS, running_var=[-1.0, 1.0])),
                         "--box", bp), "must be > 0")
    assert_usage_error(r("bounds", "--params", pp, "--box", bp, "--channel-axis", "5"), "channel_axis")
    assert_usage_error(r("bounds", "--params", pp), "--box")
    assert_usage_error(r("bounds"), "--params")
    assert_usage_error(r("bounds", "--params", pp, "--box", bp, "--rounding", "up"), "rounding")


# ---------------------------------------------------------------- regressions (adversarial review)
@pytest.mark.parametrize("eps", ["1e-99999999", "1e99999999", "1" * 200, "1e-1001", "1/" + "3" * 150])
def test_absurd_eps_is_a_quick_usage_error(eps):
    """C2: huge exponents in --eps used to hang (or overflow int->str while printing)."""
    assert_usage_error(run_here("prove", "--shape", "1x2x2", "--eps", eps), "--eps")
    assert_usage_error(run_here("check", "cli_impls:backward", "--shape", "1x2x2", "--eps", eps), "--eps")


def test_eps_too_small_for_the_crosscheck_is_a_usage_error():
    """An exact --eps that rounds to 0.0 in float64 cannot drive the numeric cross-check."""
    assert_usage_error(run("check", "cli_impls:backward_no_xp", "--eps", "1e-400", "--numeric"), "--eps",
                       "float64")


@pytest.mark.parametrize("value", ["1e-99999999", "1e99999999", "1" * 200, "1e5000"])
def test_absurd_json_strings_are_a_quick_usage_error(tmp_path, value):
    """C3/C4: such strings in the JSON files used to hang or print a traceback."""
    pp = write_json(tmp_path, "p.json", dict(PARAMS, gamma=[value, 1.0]))
    bp = write_json(tmp_path, "b.json", BOX)
    assert_usage_error(run_here("bounds", "--params", pp, "--box", bp), "gamma")
    assert_usage_error(run_here("bounds", "--params", pp, "--box", bp, "--json"), "gamma")
    bx = write_json(tmp_path, "bx.json", {"lo": [[0.0, 1.0], [-1.0, 0.0]], "hi": [[value, 2.0], [1.0, 0.5]]})
    assert_usage_error(run_here("bounds", "--params", write_json(tmp_path, "q.json", PARAMS), "--box", bx), "hi")


def test_huge_json_integers_are_a_usage_error(tmp_path):
    """C4: exact arithmetic on 4000-digit JSON integers (within json's own limit) must not end in a
    traceback (e.g. int->str conversion limits while printing): one line, exit 2."""
    big = "1" + "0" * 4000
    pp = write_json(tmp_path, "p.json", '{"running_mean": [%s, 1], "running_var": ["1/4", "1/4"], '
                                        '"gamma": [%s, 1], "beta": [0, 1], "eps": "0"}' % (big, big))
    bp = write_json(tmp_path, "b.json", BOX)
    assert_usage_error(run("bounds", "--params", pp, "--box", bp, timeout=60))
    huge = "1" + "0" * 5000  # beyond Python's int-parsing limit
    pp = write_json(tmp_path, "h.json", '{"running_mean": [%s, 1], "running_var": [1, 1], '
                                        '"gamma": [1, 1], "beta": [0, 1], "eps": 0}' % huge)
    assert_usage_error(run_here("bounds", "--params", pp, "--box", bp), "not valid JSON")


@pytest.mark.parametrize("depth", [100000, 1000])
def test_deeply_nested_json_is_a_usage_error(tmp_path, depth):
    """C5: JSON nested 100000 deep used to raise RecursionError (a traceback, exit 1)."""
    deep = write_json(tmp_path, "deep.json", '{"lo": %s, "hi": [[1.0]]}' % ("[" * depth + "]" * depth))
    assert_usage_error(run_here("bounds", "--params", write_json(tmp_path, "p.json", PARAMS), "--box", deep),
                       "--box")
    deep = write_json(tmp_path, "deep2.json", "[" * depth + "]" * depth)
    assert_usage_error(run_here("bounds", "--params", deep, "--box", write_json(tmp_path, "b.json", BOX)),
                       "--params")


def test_duplicate_json_keys_are_a_usage_error(tmp_path):
    """C9: a duplicate key used to be taken silently (the last one won)."""
    pp = write_json(tmp_path, "p.json", PARAMS)
    dup = write_json(tmp_path, "dup.json", '{"lo": [[0.0, 1.0], [-1.0, 0.0]], "hi": [[1.0, 2.0], [1.0, 0.5]], '
                                           '"lo": [[0.0, 0.0], [0.0, 0.0]]}')
    assert_usage_error(run_here("bounds", "--params", pp, "--box", dup), "'lo'", "more than once")
    nested = write_json(tmp_path, "p2.json", '{"x": {"a": 1, "a": 2}, ' + json.dumps(PARAMS)[1:])
    assert_usage_error(run_here("bounds", "--params", nested, "--box", write_json(tmp_path, "b.json", BOX)),
                       "'a'")


def test_dps_range_matches_the_crosscheck_and_help():
    """C7: --help said 15–10000 while the cross-check needs at least MIN_DPS."""
    from symbolic_bn.checks.crosscheck import MIN_DPS
    h = run("check", "--help")
    assert h.returncode == 0
    assert f"{MIN_DPS}–10000" in " ".join(h.stdout.split())
    assert f"default {shape_text(default_shape())}" in " ".join(h.stdout.split())
    assert_usage_error(run_here("check", "cli_impls:backward", "--dps", str(MIN_DPS - 1)), "--dps", str(MIN_DPS))
    assert_usage_error(run_here("check", "cli_impls:backward", "--dps", "10001"), "--dps")
    p = run("check", "cli_impls:backward_no_xp", "--shape", "1x2x2", "--dps", str(MIN_DPS), "--json",
            "--numeric")
    assert p.returncode == 0, p.stdout + p.stderr
    assert one_json_object(p)["crosscheck"]["dps"] == MIN_DPS


@pytest.mark.parametrize("args,option", [
    (["check", "cli_impls:backward", "--dps", "٥٠"], "--dps"),          # Arabic-Indic 50
    (["check", "cli_impls:backward", "--dps", "５０"], "--dps"),        # fullwidth 50
    (["check", "cli_impls:backward", "--dps", "5_0"], "--dps"),
    (["check", "cli_impls:backward", "--dps", " 50"], "--dps"),
    (["check", "cli_impls:backward", "--dps", "50\n"], "--dps"),
    (["bounds", "--prove", "--channel-axis", "２"], "--channel-axis"),
    (["bounds", "--prove", "--channel-axis", "1.0"], "--channel-axis"),
    (["prove", "--shape", "1x2x2", "--budget", "١٠"], "--budget"),
    (["prove", "--shape", "1x2x2", "--budget", "nan"], "--budget"),
    (["prove", "--shape", "1x2x2", "--budget", "0"], "--budget"),
])
def test_integers_and_seconds_are_ascii(args, option):
    """C7: argparse's int()/float() accepted Unicode digits, underscores, spaces and nan."""
    assert_usage_error(run_here(*args), option)


# ================================================================ layers, frameworks, higher orders
def _statuses(cert):
    return {ob["name"]: ob["status"] for ob in cert["obligations"]}


# ---------------------------------------------------------------- unmodified NumPy code, exactly (issue 10.4)
def test_check_proves_an_unmodified_numpy_backward_exactly():
    """A cs231n-style backward (no xp, np.* calls, the (N, D) layout reshaped inside, float
    constants 1./N) is proved at the default shape 2x3x4 from the CLI; 1./6 is read as 1/6 and
    listed among the assumptions."""
    p = run("check", "numpy_implementations:cs231n_style_backward", "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    doc = one_json_object(p)
    (cert,) = doc["certificates"]
    assert _statuses(cert) == {"backward.dx": "proved", "backward.dgamma": "proved", "backward.dbeta": "proved"}
    assert doc["crosscheck"] is None and doc["refused"] == []
    assumptions = " ".join(cert["obligations"][0]["assumptions"])
    assert "0.08333333333333333" in assumptions and "read as 1/12" in assumptions  # 1./N, N = 3*4


def test_check_refutes_a_wrong_numpy_backward_with_an_exact_counterexample(outputs):
    p = outputs["check_numpy"]
    assert p.returncode == 1, p.stdout + p.stderr
    assert "[   FAILED] backward.dx" in p.stdout and "COUNTEREXAMPLE backward.dx: location=dx[" in p.stdout
    assert "[   PROVED] backward.dgamma" in p.stdout and p.stdout.rstrip().endswith("CHECK: FAIL")


def test_float_buffer_is_not_checked_and_names_the_line_and_the_fix(outputs):
    p = outputs["check_float_buffer"]
    assert p.returncode == 1, p.stdout + p.stderr
    line = next(l for l in p.stdout.splitlines() if l.startswith("NOT CHECKED backward:"))
    assert "numpy_implementations.py:" in line and "np.zeros_like(x)" in line
    assert p.stdout.rstrip().endswith("CHECK: UNDECIDED")


# ---------------------------------------------------------------- check --layer (issue 12.3)
def test_check_layer_batch_norm_correct_backward_is_proved():
    p = run("check", "cli_layer_impls:batch_norm_backward", "--layer", "batch_norm", "--shape", "2x3x2x2",
            "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    doc = one_json_object(p)
    (cert,) = doc["certificates"]
    assert _statuses(cert) == {"backward.dx": "proved", "backward.dweight": "proved", "backward.dbias": "proved"}
    assert cert["parameters"]["layer"] == "batch_norm" and tuple(cert["parameters"]["shape"]) == (2, 3, 2, 2)


def test_check_layer_batch_norm_wrong_backward_fails(outputs):
    """Per-sample statistics where BatchNorm's per-channel ones belong: dx and dweight refuted with
    exact counterexamples in the layer's own layout (N, C, L)."""
    p = outputs["check_layer"]
    assert p.returncode == 1, p.stdout + p.stderr
    assert "== backward batch_norm_backward_per_sample at batch_norm 2x2x3" in p.stdout
    assert "[   FAILED] backward.dx" in p.stdout and "[   FAILED] backward.dweight" in p.stdout
    assert "COUNTEREXAMPLE backward.dx: location=dx[0, 0, 0]" in p.stdout
    assert p.stdout.rstrip().endswith("CHECK: FAIL")


def test_check_layer_numeric_crosscheck(outputs):
    p = outputs["check_layer_numeric"]
    assert p.returncode == 1 and "layer=batch_norm" in p.stdout and "COUNTEREXAMPLE dx" in p.stdout, p.stdout
    p = run("check", "cli_layer_impls:batch_norm_backward", "--numeric", "--layer", "batch_norm",
            "--shape", "2x2x3", "--json")
    doc = one_json_object(p)
    assert doc["ok"] is True and doc["crosscheck"]["layer"].startswith("batch_norm") and doc["certificates"] == []


def test_check_layer_group_norm_and_layer_norm_with_their_options():
    p = run("check", "cli_layer_impls:group_norm_backward_2_groups", "--layer", "group_norm", "--groups", "2",
            "--shape", "2x4x3", "--brief")
    assert p.returncode == 0 and "group_norm 2x4x3, G=2" in p.stdout and "CHECK: PASS" in p.stdout, p.stdout
    # the same function is wrong for G = 4: the layer fixes the reference
    p = run("check", "cli_layer_impls:group_norm_backward_2_groups", "--layer", "group_norm", "--groups", "4",
            "--shape", "2x4x3", "--brief")
    assert p.returncode == 1 and "[   FAILED] backward.dx" in p.stdout, p.stdout
    p = run("check", "cli_layer_impls:layer_norm_backward", "--layer", "layer_norm", "--shape", "2x3x4",
            "--normalized-shape", "4", "--eps", "1e-5", "--json")
    doc = one_json_object(p)
    assert doc["ok"] is True and doc["certificates"][0]["parameters"]["eps"] == "1/100000"


@pytest.mark.parametrize("sub", ["check", "prove"])
@pytest.mark.parametrize("extra,needles", [
    (["--layer", "nope", "--shape", "2x3"], ["--layer", "invalid choice"]),
    (["--layer", "batch_norm"], ["--layer batch_norm needs --shape"]),
    (["--layer", "batch_norm", "--shape", "2x3x"], ["--shape", "joined by x"]),
    (["--layer", "batch_norm", "--shape", "2x0x2"], ["--shape", "positive"]),
    (["--layer", "batch_norm", "--shape", "2x3;rm"], ["--shape"]),
    (["--layer", "batch_norm", "--shape", "64x64x64"], ["--shape", "too large"]),
    (["--layer", "instance_norm", "--shape", "2x3"], ["--shape", "spatial axis"]),
    (["--layer", "batchnorm_channel_first", "--shape", "2x3"], ["--shape", "CxHxW"]),
    (["--layer", "group_norm", "--shape", "2x3x2"], ["--groups"]),
    (["--layer", "group_norm", "--shape", "2x3x2", "--groups", "2"], ["--groups", "does not divide"]),
    (["--layer", "group_norm", "--shape", "2x3x2", "--groups", "0"], ["--groups"]),
    (["--layer", "group_norm", "--shape", "2x3x2", "--groups", "x"], ["--groups"]),
    (["--layer", "layer_norm", "--shape", "2x3x4"], ["--normalized-shape"]),
    (["--layer", "layer_norm", "--shape", "2x3x4", "--normalized-shape", "3"], ["--normalized-shape", "suffix"]),
    (["--layer", "layer_norm", "--shape", "2x3x4", "--normalized-shape", "3,x"], ["--normalized-shape"]),
    (["--layer", "layer_norm", "--shape", "2x3x4", "--normalized-shape", "3 4"], ["--normalized-shape"]),
    (["--layer", "batch_norm", "--shape", "2x3", "--groups", "3"], ["--groups is only for --layer group_norm"]),
    (["--layer", "batch_norm", "--shape", "2x3", "--normalized-shape", "3"], ["--normalized-shape is only"]),
    (["--groups", "2"], ["--groups needs --layer"]),
    (["--normalized-shape", "2"], ["--normalized-shape needs --layer"]),
])
def test_layer_options_bad_values_are_one_line_usage_errors(sub, extra, needles):
    args = [sub, "cli_impls:backward"] if sub == "check" else [sub]
    assert_usage_error(run_here(*args, *extra), *needles)


def test_check_option_combinations_that_make_no_sense_are_refused():
    r = run_here
    assert_usage_error(r("check", "m:f", "--framework", "torch", "--numeric"), "--numeric", "--framework")
    assert_usage_error(r("check", "m:f", "--framework", "torch", "--eps", "symbolic"), "--eps", "float")
    assert_usage_error(r("check", "m:f", "--double-backward", "--numeric"), "--double-backward", "--numeric")
    assert_usage_error(r("check", "m:f", "--double-backward", "--framework", "torch"), "--double-backward")
    assert_usage_error(r("check", "m:f", "--framework", "tensorflow"), "--framework", "invalid choice")


# ---------------------------------------------------------------- check --double-backward (issue 13.2)
def test_check_double_backward_correct_and_wrong(outputs):
    p = run("check", "cli_layer_impls:double_backward", "--double-backward", "--shape", "1x2x3", "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    (cert,) = one_json_object(p)["certificates"]
    assert _statuses(cert) == {"double_backward.gx": "proved", "double_backward.ggamma": "proved",
                               "double_backward.ggrad_out": "proved"}
    p = outputs["check_double_backward"]
    assert p.returncode == 1, p.stdout + p.stderr
    assert "[   FAILED] double_backward.ggrad_out" in p.stdout and "[   PROVED] double_backward.gx" in p.stdout
    assert "COUNTEREXAMPLE double_backward.ggrad_out:" in p.stdout and "ggbeta=" in p.stdout


# ---------------------------------------------------------------- prove --layer / --order (issues 12.2, 13.1)
def test_prove_layer_and_order(outputs):
    p = outputs["prove_layer_order"]
    assert p.returncode == 0, p.stdout + p.stderr
    assert "LayerNorm 2x3, normalized_shape=(3,), ε symbolic" in p.stdout
    assert "-- higher-order --" in p.stdout and "[   PROVED] higher.mode.rev-over-fwd-over-rev" in p.stdout
    for name in ("prove_layers", "prove_group_norm", "prove_batch_norm"):
        q = outputs[name]
        assert q.returncode == 0 and ": OK -- " in q.stdout and "FAILED" not in q.stdout, (name, q.stdout[-300:])
        assert "higher-order" not in q.stdout  # order 1 by default
    doc = one_json_object(run_here("prove", "--layer", "batch_norm", "--shape", "2x2", "--order", "2", "--json",
                                   "--brief"))
    (c,) = doc["certificates"]
    assert c["parameters"]["layer"] == "batch_norm" and c["parameters"]["order"] == 2
    names = {ob["name"] for ob in c["obligations"]}
    assert {"higher.mode.fwd-over-rev", "higher.hessian_symmetric.rev-over-rev"} <= names
    assert all(ob["status"] == "proved" for ob in c["obligations"])


def test_prove_order_on_the_default_graph_and_bad_orders():
    doc = one_json_object(run_here("prove", "--shape", "1x2x2", "--order", "2", "--json"))
    (c,) = doc["certificates"]
    assert c["parameters"]["order"] == 2 and c["parameters"]["layer"] == "batchnorm_channel_first"
    assert any(ob["name"].startswith("higher.mode.") for ob in c["obligations"]) and doc["ok"] is True
    for bad in ("0", "4", "x", "2.0", "٢"):
        assert_usage_error(run_here("prove", "--order", bad), "--order")


# ---------------------------------------------------------------- framework not installed (no torch needed)
def test_framework_not_installed_is_exit_2_naming_the_extra(monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("torch", "jax") else
                        real(name, *a))
    for fw in ("torch", "jax"):
        assert_usage_error(run_here("check", "cli_impls:backward", "--framework", fw), "--framework",
                           "not installed", f"pip install 'symbolic-bn[{fw}]'")
    assert_usage_error(run_here("autodiff", "torch.nn.functional.instance_norm", "--shape", "1x2x3"),
                       "torch", "not installed", "symbolic-bn[torch]")
    assert_usage_error(run_here("autodiff", "cli_layer_impls:f", "--layer", "layer_norm", "--shape", "2x3",
                                "--normalized-shape", "3", "--framework", "jax"), "symbolic-bn[jax]")


# ---------------------------------------------------------------- autodiff: usage (no torch needed)
@pytest.mark.parametrize("extra,needles", [
    (["torch.nn.functional.instance_norm"], ["--shape is needed"]),
    (["instance_normx", "--shape", "1x2x3"], ["TARGET must be one of"]),
    (["os:system;ls", "--layer", "instance_norm", "--shape", "1x2x3"], ["TARGET"]),
    (["cli_layer_impls:torch_raises", "--shape", "1x2x3"], ["--layer is needed"]),
    (["torch.nn.functional.instance_norm", "--shape", "1x2x3", "--order", "4"], ["--order"]),
    (["torch.nn.functional.instance_norm", "--shape", "1x2x3", "--modes", "sideways"], ["--modes", "sideways"]),
    (["torch.nn.functional.instance_norm", "--shape", "1x2x3", "--order", "1", "--modes", "fwd-over-rev"],
     ["--modes", "order 2"]),
    (["torch.nn.functional.instance_norm", "--shape", "1x2x3", "--eps", "symbolic"], ["--eps", "number"]),
    (["torch.nn.functional.instance_norm", "--shape", "1x2x3", "--eps", "1e-5;rm"], ["--eps"]),
    (["torch.nn.functional.instance_norm", "--shape", "1x2x3", "--framework", "jax"], ["--framework jax"]),
    (["torch.nn.functional.instance_norm", "--shape", "1x2x3", "--exact", "--dtype", "float32"], ["--dtype"]),
    (["torch.nn.functional.instance_norm", "--shape", "1x2x3", "--budget", "5"], ["--budget is for --exact"]),
    (["torch.nn.functional.instance_norm", "--shape", "1x2x3", "--exact", "--budget", "0"], ["--budget"]),
    (["torch.nn.functional.instance_norm", "--shape", "1x2x3", "--points", "0"], ["--points"]),
    (["torch.nn.functional.instance_norm", "--shape", "1x2x3", "--dps", "20"], ["--dps"]),
    (["torch.nn.functional.group_norm", "--shape", "1x4x3"], ["--groups"]),
    (["torch.nn.functional.group_norm", "--shape", "1x4x3", "--groups", "3"], ["--groups", "does not divide"]),
    (["torch.nn.functional.layer_norm", "--shape", "2x3", "--normalized-shape", "2"], ["--normalized-shape"]),
])
def test_autodiff_bad_usage_is_one_line_exit_2(extra, needles):
    assert_usage_error(run_here("autodiff", *extra), *needles)


# ---------------------------------------------------------------- torch (skipped without it)
@pytest.fixture(scope="module")
def torch_outputs():
    pytest.importorskip("torch")
    calls = {
        "autodiff_numeric": ("autodiff", "cli_layer_impls:torch_instance_norm_bessel", "--layer",
                             "instance_norm", "--shape", "1x2x3", "--order", "2", "--points", "1"),
        "autodiff_exact": ("autodiff", "cli_layer_impls:torch_instance_norm_bessel", "--layer",
                           "instance_norm", "--shape", "1x2x3", "--exact"),
        "autodiff_exact_primitive": ("autodiff", "cli_layer_impls:torch_instance_norm_primitive", "--layer",
                                     "instance_norm", "--shape", "1x2x3", "--exact", "--json"),
        "autodiff_error_rows": ("autodiff", "cli_layer_impls:torch_instance_norm_without_jvp", "--layer",
                                "instance_norm", "--shape", "1x2x3", "--order", "1", "--points", "1"),
        "autodiff_builtin": ("autodiff", "torch.nn.functional.batch_norm", "--shape", "2x2x2", "--order", "1",
                             "--points", "2", "--json"),
        "autodiff_primitive_order3": ("autodiff", "cli_layer_impls:torch_instance_norm_primitive", "--layer",
                                      "instance_norm", "--shape", "1x2x3", "--order", "3", "--modes",
                                      "fwd-over-rev-over-rev,rev-over-rev-over-rev", "--points", "1"),
        "check_framework": ("check", "cli_layer_impls:torch_batch_norm_backward_wrong_dbias", "--forward",
                            "cli_layer_impls:torch_cumsum_forward", "--framework", "torch", "--layer",
                            "batch_norm", "--shape", "2x2x3"),
        "check_framework_ok": ("check", "cli_layer_impls:torch_batch_norm_backward", "--framework", "torch",
                               "--layer", "batch_norm", "--shape", "2x2x3", "--json"),
    }
    # two at a time (2 cores), as in the fixture `outputs`
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(run, *args) for name, args in calls.items()}
        runs = {name: f.result() for name, f in futures.items()}
    for name, p in runs.items():
        assert "Traceback" not in p.stderr, (name, p.stderr)
        assert p.returncode in (0, 1), (name, p.returncode, p.stderr)
    return runs


def test_check_framework_torch_correct_backward_is_proved(torch_outputs):
    p = torch_outputs["check_framework_ok"]
    assert p.returncode == 0, p.stdout + p.stderr
    (cert,) = one_json_object(p)["certificates"]
    assert set(_statuses(cert).values()) == {"proved"} and cert["parameters"]["framework"] == "torch"
    assert cert["parameters"]["eps"] == "1/100000"  # --framework defaults eps to 1e-5


def test_check_framework_torch_wrong_backward_fails_and_unsupported_op_is_named(torch_outputs):
    p = torch_outputs["check_framework"]
    assert p.returncode == 1, p.stdout + p.stderr
    assert "[torch trace]" in p.stdout and "[   FAILED] backward.dbias" in p.stdout
    assert "[   PROVED] backward.dx" in p.stdout and "(re-confirmed)" in p.stdout
    line = next(l for l in p.stdout.splitlines() if l.startswith("NOT CHECKED forward:"))
    assert "aten.cumsum" in line and "cli_layer_impls.py:" in line and "--numeric" not in line
    assert p.stdout.rstrip().endswith("CHECK: FAIL")  # a failed obligation outranks the refusal


def test_autodiff_numeric_builtin_and_primitive_pass(torch_outputs):
    p = torch_outputs["autodiff_builtin"]
    assert p.returncode == 0, p.stdout + p.stderr
    doc = one_json_object(p)["crosscheck_autodiff"]
    assert doc["layer"] == "batch_norm" and "batch_norm" in doc["function"], (doc["layer"], doc["function"])
    assert {(r["mode"], r["api"]) for r in doc["rows"]} >= {("fwd", "torch.func"), ("rev", "torch.autograd")}
    assert all(r["status"] == "PASS" for r in doc["rows"])
    p = torch_outputs["autodiff_primitive_order3"]
    assert p.returncode == 0 and p.stdout.rstrip().endswith("AUTODIFF: PASS"), p.stdout + p.stderr
    assert "fwd-over-rev-over-rev" in p.stdout and "rev-over-rev-over-rev" in p.stdout


def test_autodiff_numeric_wrong_forward_fails(torch_outputs):
    p = torch_outputs["autodiff_numeric"]
    assert p.returncode == 1, p.stdout + p.stderr
    assert re.search(r"^0\s+primal\s+torch\s.*FAIL$", p.stdout, re.M), p.stdout
    assert re.search(r"^2\s+fwd-over-rev\s+torch.func\s.*FAIL$", p.stdout, re.M), p.stdout
    assert p.stdout.rstrip().endswith("AUTODIFF: FAIL")


def test_autodiff_error_rows_exit_1(torch_outputs):
    p = torch_outputs["autodiff_error_rows"]
    assert p.returncode == 1, p.stdout + p.stderr
    assert re.search(r"^1\s+fwd\s+torch.func\s.*ERROR$", p.stdout, re.M), p.stdout
    assert re.search(r"^1\s+rev\s+torch.autograd\s.*PASS$", p.stdout, re.M), p.stdout
    assert "ERROR fwd [torch.func]:" in p.stdout


def test_autodiff_exact(torch_outputs):
    p = torch_outputs["autodiff_exact"]
    assert p.returncode == 1, p.stdout + p.stderr
    assert re.search(r"^0\s+primal\s+torch\s+failed$", p.stdout, re.M), p.stdout
    assert p.stdout.rstrip().endswith("AUTODIFF: FAIL")
    p = torch_outputs["autodiff_exact_primitive"]
    assert p.returncode == 0, p.stdout + p.stderr
    (cert,) = one_json_object(p)["certificates"]
    assert _statuses(cert) == {"primal": "proved", "torch.func fwd": "proved", "torch.func rev": "proved",
                               "torch.autograd rev": "proved", "torch.autograd.forward_ad fwd": "proved"}


def test_autodiff_broken_target_is_bad_input_and_cannot_choose_the_status(tmp_path):
    pytest.importorskip("torch")
    (tmp_path / "exits_in_f.py").write_text("import os\ndef f(x, w, b):\n    os._exit(0)\n")
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        raises = pool.submit(run, "autodiff", "cli_layer_impls:torch_raises", "--layer", "instance_norm",
                             "--shape", "1x2x3", "--order", "1", "--points", "1")
        exits = pool.submit(run, "autodiff", "exits_in_f:f", "--layer", "instance_norm", "--shape", "1x2x3",
                            "--order", "1", "--points", "1", cwd=tmp_path)
    assert_usage_error(raises.result(), "f raised", "this forward is broken")
    p = exits.result()
    assert p.returncode == 1 and "ended the process before a verdict" in p.stderr, (p.returncode, p.stderr)
    assert p.stdout.strip() == "AUTODIFF: FAIL"


def test_every_term_of_the_framework_and_autodiff_output_has_an_entry(torch_outputs):
    terms = set(PLAIN_TERMS_NEW)
    for name, p in torch_outputs.items():
        if "--json" in p.args:  # JSON keys are for programs, not words of the text output
            continue
        found = jargon(p.stdout)
        assert found, name
        terms |= found
    for t in ("torch.func", "torch.autograd.forward_ad", "ERROR", "make_fx", "AUTODIFF"):
        assert t in terms, t
    _assert_explained(terms)


@pytest.mark.parametrize("shape", ["2x3x4", "4x8x8"])
def test_unmodified_numpy_cs231n_backward_is_proved_by_the_cli(shape):
    """issue 10, done when: an unmodified NumPy backward (the (N, D) layout reshaped inside) is
    proved at 2x3x4 and 4x8x8 from the CLI (the API and the pytest helper: test_check.py)."""
    p = run("check", "numpy_implementations:cs231n_style_backward", "--shape", shape, "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    doc = one_json_object(p)
    assert doc["ok"] is True and doc["verdict"] == "PASS" and doc["crosscheck"] is None
    (cert,) = doc["certificates"]
    assert tuple(cert["parameters"]["shape"]) == tuple(int(a) for a in shape.split("x"))
    assert [ob["status"] for ob in cert["obligations"]] == ["proved"] * 3
