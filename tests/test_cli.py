"""The installed ``symbolic-bn`` console script, run as a subprocess: every subcommand, its
output and exit status, and the error paths (one line on stderr, exit 2)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXE = shutil.which("symbolic-bn")
pytestmark = pytest.mark.skipif(EXE is None, reason="the symbolic-bn console script is not installed "
                                "(pip install -e . first)")
TESTS = Path(__file__).resolve().parent


def run(*args, cwd=None, path=(), timeout=600):
    env = dict(os.environ)
    env.pop("SYMBOLIC_BN_TRACEBACK", None)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, path), str(TESTS)]) + \
        (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def assert_usage_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert err.count("\n") == 0, f"expected one line on stderr, got {proc.stderr!r}"
    assert err.startswith("symbolic-bn: error:"), err
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in err, (n, err)
    assert proc.stdout == ""


def write_json(tmp_path, name, doc):
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(p)


PARAMS = {"running_mean": [0.5, -1.0], "running_var": [4.0, 0.25], "gamma": [2.0, -1.0],
          "beta": [0.0, 1.0], "eps": 0.0}
BOX = {"lo": [[0.0, 1.0], [-1.0, 0.0]], "hi": [[1.0, 2.0], [1.0, 0.5]]}


# ---------------------------------------------------------------- top level
def test_version_and_no_command():
    p = run("--version")
    assert p.returncode == 0 and p.stdout.strip().count(".") == 2
    p = run()
    assert p.returncode == 2 and "usage" in p.stderr


def test_unknown_subcommand_is_one_line():
    assert_usage_error(run("frobnicate"), "invalid choice")


# ---------------------------------------------------------------- prove
def test_prove_text_and_exit_zero():
    p = run("prove", "--shape", "1x2x2", "--brief")
    assert p.returncode == 0, p.stderr
    assert "BatchNormChannelFirst 1x2x2" in p.stdout
    assert "0 failed" in p.stdout and "FAILED" not in p.stdout.replace("0 failed", "")
    assert p.stderr == ""  # no progress when stderr is not a terminal


def test_prove_json():
    p = run("prove", "--shape", "1x2x2", "--eps", "1e-5", "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert len(doc) == 1 and doc[0]["ok"] is True
    assert doc[0]["parameters"]["C"] == 1 and doc[0]["parameters"]["eps"] == "1/100000"
    assert all(ob["status"] == "proved" for ob in doc[0]["obligations"])


@pytest.mark.parametrize("shape", ["2x0x2", "abc", "2x2", "2x2x2;rm", "", "-1x2x2", "2x2x2 ", "1x2x2\n",
                                   "１x2x2"])
def test_prove_malformed_shape(shape):
    assert_usage_error(run("prove", "--shape", shape), "--shape")


@pytest.mark.parametrize("eps", ["abc", "__import__('os')", "1e-5;rm"])
def test_prove_malformed_eps(eps):
    assert_usage_error(run("prove", "--shape", "1x2x2", "--eps", eps))


def test_prove_empty_domain_is_bad_input():
    assert_usage_error(run("prove", "--shape", "1x1x1", "--eps", "0"), "domain")


def test_prove_bad_budget():
    assert_usage_error(run("prove", "--shape", "1x2x2", "--budget", "-1"), "--budget")


# ---------------------------------------------------------------- check
def test_check_correct_backward_and_forward_pass():
    p = run("check", "cli_impls:backward", "--forward", "cli_impls:forward", "--shape", "1x2x2")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "CHECK: PASS" in p.stdout and "COUNTEREXAMPLE" not in p.stdout


def test_check_wrong_backward_exits_1_with_counterexample():
    p = run("check", "cli_impls:wrong_backward", "--shape", "1x2x2")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "CHECK: FAIL" in p.stdout
    assert "COUNTEREXAMPLE" in p.stdout
    assert "dx" in p.stdout.split("COUNTEREXAMPLE", 1)[1]
    assert "Traceback" not in p.stderr


def test_check_wrong_backward_numeric_json():
    p = run("check", "cli_impls:wrong_backward", "--numeric", "--dtype", "float32", "--json")
    assert p.returncode == 1
    doc = json.loads(p.stdout)
    assert doc["ok"] is False and doc["certificates"] == []
    cc = doc["crosscheck"]
    assert cc["dtype"] == "float32" and cc["outputs"]["dx"]["ok"] is False
    assert cc["outputs"]["dbeta"]["ok"] is True  # only dx is wrong
    assert cc["outputs"]["dx"]["worst"]["index"]


def test_check_wrong_forward_exits_1():
    p = run("check", "cli_impls:backward", "--forward", "cli_impls:wrong_forward", "--numeric")
    assert p.returncode == 1
    assert "COUNTEREXAMPLE y" in p.stdout


def test_check_no_xp_uses_crosscheck():
    p = run("check", "cli_impls:backward_no_xp", "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    doc = json.loads(p.stdout)
    assert doc["ok"] is True and doc["crosscheck"]["ok"] is True
    assert any("no xp" in n for n in doc["notes"])


@pytest.mark.parametrize("numeric", [False, True])
def test_check_raising_implementation_fails(numeric):
    p = run("check", "cli_impls:backward_raises", *(["--numeric"] if numeric else []))
    assert p.returncode == 1, p.stdout + p.stderr
    assert "Traceback" not in p.stderr and "CHECK: FAIL" in p.stdout
    assert "this implementation is broken" in p.stdout


def test_check_exact_path_counterexample_has_exact_inputs():
    """With symbolic_bn.checks.check present, a wrong backward is refuted exactly: the counterexample
    names the entry and the rational inputs."""
    try:
        import symbolic_bn.checks.check  # noqa: F401
    except ImportError:
        pytest.skip("symbolic_bn.checks.check is not available")
    p = run("check", "cli_impls:wrong_backward", "--shape", "1x2x2", "--json")
    assert p.returncode == 1
    doc = json.loads(p.stdout)
    assert doc["crosscheck"] is None
    (cert,) = doc["certificates"]
    st = {ob["name"]: ob["status"] for ob in cert["obligations"]}
    assert st == {"backward.dx": "failed", "backward.dgamma": "proved", "backward.dbeta": "proved"}
    cex = next(ob["counterexample"] for ob in cert["obligations"] if ob["status"] == "failed")
    assert "x" in cex and "grad_out" in cex


def test_check_unsupported_operation_falls_back_to_crosscheck():
    p = run("check", "cli_impls:backward_unsupported", "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    doc = json.loads(p.stdout)
    assert doc["certificates"] == [] and doc["crosscheck"]["ok"] is True
    assert any("mpmath cross-check" in n for n in doc["notes"])


@pytest.mark.parametrize("target,needle", [
    ("no_such_module_xyz:backward", "cannot import"),
    ("cli_impls:no_such_function", "no attribute"),
    ("cli_impls:NOT_CALLABLE", "not callable"),
    ("os:system;ls", "MODULE:FUNCTION"),
    ("__import__('os').system", "MODULE:FUNCTION"),
    ("cli_impls", "MODULE:FUNCTION"),
    ("cli_impls:backward\n", "MODULE:FUNCTION"),
    ("cli_impls\n:backward", "MODULE:FUNCTION"),
])
def test_check_bad_target(target, needle):
    assert_usage_error(run("check", target), needle)


def test_check_bad_forward_target_and_options():
    assert_usage_error(run("check", "cli_impls:backward", "--forward", "nope_mod:f"), "--forward")
    assert_usage_error(run("check", "cli_impls:backward", "--shape", "2x2x2;rm"), "--shape")
    assert_usage_error(run("check", "cli_impls:backward", "--dtype", "float16"), "float16")
    assert_usage_error(run("check", "cli_impls:backward", "--dps", "3"), "--dps")
    assert_usage_error(run("check", "cli_impls:backward", "--eps", "-1"), "--eps")


# ---------------------------------------------------------------- bounds
def test_bounds_text(tmp_path):
    p = run("bounds", "--params", write_json(tmp_path, "p.json", PARAMS),
            "--box", write_json(tmp_path, "b.json", BOX))
    assert p.returncode == 0, p.stderr
    # s = gamma/sqrt(var+eps) = [1, -2]; o = beta - s*mean = [-0.5, -1]
    assert "[1.0, -2.0]" in p.stdout and "[-0.5, -1.0]" in p.stdout
    assert "lo = [[-0.5, 0.5], [-3.0, -2.0]]" in p.stdout
    assert "hi = [[0.5, 1.5], [1.0, -1.0]]" in p.stdout


def test_bounds_json_exact_and_outward(tmp_path):
    params = dict(PARAMS, running_var=["1/4", "1/4"], eps="0")
    pp, bp = write_json(tmp_path, "p.json", params), write_json(tmp_path, "b.json", BOX)
    p = run("bounds", "--params", pp, "--box", bp, "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["exact"] is True and doc["scale"] == ["4", "-2"]
    p = run("bounds", "--params", write_json(tmp_path, "q.json", dict(PARAMS, running_var=[0.1, 0.1])),
            "--box", bp, "--json", "--rounding", "outward")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    p2 = run("bounds", "--params", str(tmp_path / "q.json"), "--box", bp, "--json")
    near = json.loads(p2.stdout)
    lo_o, hi_o = out["ibp"]["lo"], out["ibp"]["hi"]
    lo_n, hi_n = near["ibp"]["lo"], near["ibp"]["hi"]
    for i in range(2):
        for j in range(2):
            assert lo_o[i][j] <= lo_n[i][j] and hi_o[i][j] >= hi_n[i][j]


def test_bounds_channel_axis(tmp_path):
    box_t = {"lo": [[0.0, -1.0], [1.0, 0.0]], "hi": [[1.0, 1.0], [2.0, 0.5]]}  # BOX transposed
    p = run("bounds", "--params", write_json(tmp_path, "p.json", PARAMS),
            "--box", write_json(tmp_path, "b.json", box_t), "--channel-axis", "1", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["ibp"]["lo"] == [[-0.5, -3.0], [0.5, -2.0]]


def test_bounds_prove():
    p = run("bounds", "--prove", "--brief")
    assert p.returncode == 0, p.stderr
    assert "inference BatchNorm bounds: OK" in p.stdout
    p = run("bounds", "--prove", "--json")
    cert = json.loads(p.stdout)["certificate"]
    assert cert["ok"] is True and len(cert["obligations"]) >= 20


def test_bounds_errors(tmp_path):
    pp, bp = write_json(tmp_path, "p.json", PARAMS), write_json(tmp_path, "b.json", BOX)
    assert_usage_error(run("bounds", "--params", str(tmp_path / "missing.json"), "--box", bp), "cannot read")
    assert_usage_error(run("bounds", "--params", str(tmp_path), "--box", bp), "cannot read")
    assert_usage_error(run("bounds", "--params", write_json(tmp_path, "bad.json", "{not json"), "--box", bp),
                       "not valid JSON")
    assert_usage_error(run("bounds", "--params", write_json(tmp_path, "nan.json",
                                                            '{"running_mean": [NaN]}'), "--box", bp),
                       "not valid JSON")
    assert_usage_error(run("bounds", "--params", write_json(tmp_path, "list.json", [1, 2]), "--box", bp),
                       "JSON object")
    assert_usage_error(run("bounds", "--params", write_json(tmp_path, "miss.json", {"gamma": [1.0]}),
                           "--box", bp), "missing key")
    assert_usage_error(run("bounds", "--params", write_json(tmp_path, "str.json", dict(PARAMS, eps="1e-5;rm")),
                           "--box", bp), "eps")
    assert_usage_error(run("bounds", "--params", pp, "--box",
                           write_json(tmp_path, "inv.json", {"lo": [[0.0, 3.0], [0.0, 0.0]],
                                                             "hi": [[1.0, 2.0], [1.0, 1.0]]})),
                       "lo > hi")
    assert_usage_error(run("bounds", "--params", pp, "--box",
                           write_json(tmp_path, "shape.json", {"lo": [[0.0]], "hi": [[1.0]]})), "channel")
    assert_usage_error(run("bounds", "--params", write_json(tmp_path, "var.json",
                                                            dict(PARAMS, running_var=[-1.0, 1.0])),
                           "--box", bp), "must be > 0")
    assert_usage_error(run("bounds", "--params", pp, "--box", bp, "--channel-axis", "5"), "channel_axis")
    assert_usage_error(run("bounds", "--params", pp), "--box")
    assert_usage_error(run("bounds"), "--params")
    assert_usage_error(run("bounds", "--params", pp, "--box", bp, "--rounding", "up"), "rounding")


# ---------------------------------------------------------------- regressions (adversarial review)
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


@pytest.mark.parametrize("target,extra", [
    ("cli_impls:backward_exits", []),                   # exact symbolic check
    ("cli_impls:backward_exits", ["--numeric"]),        # mpmath cross-check
    ("cli_impls:backward_exits_no_xp", []),             # cross-check fallback
    ("cli_impls:backward_base_exception", []),
    ("cli_impls:backward_base_exception", ["--numeric"]),
])
def test_check_function_that_exits_is_a_failed_check(target, extra):
    """C1: a backward that calls sys.exit(0) used to pass silently (exit 0, no output)."""
    p = run("check", target, "--shape", "1x2x2", *extra)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "CHECK: FAIL" in p.stdout and "Traceback" not in p.stderr
    assert ("sys.exit(0)" if "exits" in target else "_NotAnException") in p.stdout
    p = run("check", target, "--shape", "1x2x2", "--json", *extra)
    assert p.returncode == 1 and json.loads(p.stdout)["ok"] is False


def test_check_forward_that_exits_is_a_failed_check():
    p = run("check", "cli_impls:backward", "--forward", "cli_impls:backward_exits", "--numeric")
    assert p.returncode == 1 and "CHECK: FAIL" in p.stdout and "sys.exit(0)" in p.stdout


@pytest.mark.parametrize("eps", ["1e-99999999", "1e99999999", "1" * 200, "1e-1001", "1/" + "3" * 150])
def test_absurd_eps_is_a_quick_usage_error(eps):
    """C2: huge exponents in --eps used to hang (or overflow int->str while printing)."""
    assert_usage_error(run("prove", "--shape", "1x2x2", "--eps", eps, timeout=60), "--eps")
    assert_usage_error(run("check", "cli_impls:backward", "--shape", "1x2x2", "--eps", eps, timeout=60),
                       "--eps")


def test_eps_too_small_for_the_crosscheck_is_a_usage_error():
    """An exact --eps that rounds to 0.0 in float64 cannot drive the numeric cross-check."""
    assert_usage_error(run("check", "cli_impls:backward_no_xp", "--eps", "1e-400"), "--eps", "float64")


@pytest.mark.parametrize("value", ["1e-99999999", "1e99999999", "1" * 200, "1e5000"])
def test_absurd_json_strings_are_a_quick_usage_error(tmp_path, value):
    """C3/C4: such strings in the JSON files used to hang or print a traceback."""
    pp = write_json(tmp_path, "p.json", dict(PARAMS, gamma=[value, 1.0]))
    bp = write_json(tmp_path, "b.json", BOX)
    assert_usage_error(run("bounds", "--params", pp, "--box", bp, timeout=60), "gamma")
    assert_usage_error(run("bounds", "--params", pp, "--box", bp, "--json", timeout=60), "gamma")
    bx = write_json(tmp_path, "bx.json", {"lo": [[0.0, 1.0], [-1.0, 0.0]], "hi": [[value, 2.0], [1.0, 0.5]]})
    assert_usage_error(run("bounds", "--params", write_json(tmp_path, "q.json", PARAMS), "--box", bx,
                           timeout=60), "hi")


def test_huge_json_integers_are_a_usage_error(tmp_path):
    """C4: exact arithmetic on 4000-digit JSON integers (within json's own limit) must not end in a
    traceback (e.g. int->str conversion limits while printing): one line, exit 2."""
    big = "1" + "0" * 4000
    pp = write_json(tmp_path, "p.json", '{"running_mean": [%s, 1], "running_var": ["1/4", "1/4"], '
                                        '"gamma": [%s, 1], "beta": [0, 1], "eps": "0"}' % (big, big))
    assert_usage_error(run("bounds", "--params", pp, "--box", write_json(tmp_path, "b.json", BOX), timeout=60))
    huge = "1" + "0" * 5000  # beyond Python's int-parsing limit
    pp = write_json(tmp_path, "h.json", '{"running_mean": [%s, 1], "running_var": [1, 1], '
                                        '"gamma": [1, 1], "beta": [0, 1], "eps": 0}' % huge)
    assert_usage_error(run("bounds", "--params", pp, "--box", write_json(tmp_path, "b.json", BOX), timeout=60),
                       "not valid JSON")


@pytest.mark.parametrize("depth", [100000, 1000])
def test_deeply_nested_json_is_a_usage_error(tmp_path, depth):
    """C5: JSON nested 100000 deep used to raise RecursionError (a traceback, exit 1)."""
    deep = write_json(tmp_path, "deep.json", '{"lo": %s, "hi": [[1.0]]}' % ("[" * depth + "]" * depth))
    assert_usage_error(run("bounds", "--params", write_json(tmp_path, "p.json", PARAMS), "--box", deep,
                           timeout=60), "--box")
    deep = write_json(tmp_path, "deep2.json", "[" * depth + "]" * depth)
    assert_usage_error(run("bounds", "--params", deep, "--box", write_json(tmp_path, "b.json", BOX),
                           timeout=60), "--params")


def test_duplicate_json_keys_are_a_usage_error(tmp_path):
    """C9: a duplicate key used to be taken silently (the last one won)."""
    pp = write_json(tmp_path, "p.json", PARAMS)
    dup = write_json(tmp_path, "dup.json", '{"lo": [[0.0, 1.0], [-1.0, 0.0]], "hi": [[1.0, 2.0], [1.0, 0.5]], '
                                           '"lo": [[0.0, 0.0], [0.0, 0.0]]}')
    assert_usage_error(run("bounds", "--params", pp, "--box", dup), "'lo'", "more than once")
    nested = write_json(tmp_path, "p2.json", '{"x": {"a": 1, "a": 2}, ' + json.dumps(PARAMS)[1:])
    assert_usage_error(run("bounds", "--params", nested, "--box", write_json(tmp_path, "b.json", BOX)), "'a'")


def test_dps_range_matches_the_crosscheck_and_help():
    """C7: --help said 15–10000 while the cross-check needs at least MIN_DPS."""
    from symbolic_bn.checks.crosscheck import MIN_DPS
    h = run("check", "--help")
    assert h.returncode == 0
    assert f"{MIN_DPS}–10000" in " ".join(h.stdout.split())
    assert_usage_error(run("check", "cli_impls:backward", "--dps", str(MIN_DPS - 1)), "--dps", str(MIN_DPS))
    assert_usage_error(run("check", "cli_impls:backward", "--dps", "10001"), "--dps")
    p = run("check", "cli_impls:backward_no_xp", "--shape", "1x2x2", "--dps", str(MIN_DPS), "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads(p.stdout)["crosscheck"]["dps"] == MIN_DPS


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
    (["prove", "--shape", "1x2x2", "--budget", "inf"], "--budget"),
    (["prove", "--shape", "1x2x2", "--budget", "0"], "--budget"),
])
def test_integers_and_seconds_are_ascii(args, option):
    """C7: argparse's int()/float() accepted Unicode digits, underscores, spaces and nan."""
    assert_usage_error(run(*args), option)


def test_channel_axis_negative_still_works(tmp_path):
    box_t = {"lo": [[0.0, -1.0], [1.0, 0.0]], "hi": [[1.0, 1.0], [2.0, 0.5]]}
    p = run("bounds", "--params", write_json(tmp_path, "p.json", PARAMS),
            "--box", write_json(tmp_path, "b.json", box_t), "--channel-axis", "-1", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["ibp"]["lo"] == [[-0.5, -3.0], [0.5, -2.0]]
