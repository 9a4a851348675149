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


def run(*args, cwd=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(TESTS) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


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


@pytest.mark.parametrize("shape", ["2x0x2", "abc", "2x2", "2x2x2;rm", "", "-1x2x2", "2x2x2 "])
def test_prove_malformed_shape(shape):
    assert_usage_error(run("prove", "--shape", shape), "--shape")


@pytest.mark.parametrize("eps", ["abc", "__import__('os')", "1e-5;rm"])
def test_prove_malformed_eps(eps):
    assert_usage_error(run("prove", "--shape", "1x2x2", "--eps", eps))


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
    """With symbolic_bn.check present, a wrong backward is refuted exactly: the counterexample
    names the entry and the rational inputs."""
    try:
        import symbolic_bn.check  # noqa: F401
    except ImportError:
        pytest.skip("symbolic_bn.check is not available")
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
