"""The pytest plugin (symbolic_bn/pytest_plugin.py): a user's own test file, run by pytester.

The inner runs load the plugin the way a user's suite does: through the package's ``pytest11``
entry point (the package is installed), or with ``-p symbolic_bn.pytest_plugin`` where noted.
"""
import importlib
import json
import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from symbolic_bn import pytest_plugin

pytest_plugins = ["pytester"]


def _import_the_whole_package():
    """pytester's in-process runs forget the modules first imported during an inner run, while
    the package objects keep pointing at them: the next inner run would then mix two copies of a
    module (two ``Value`` classes).  Importing every module here, before any inner run, keeps one
    copy.  The framework frontends are left out: they import torch/jax, and each inner run that
    needs one gets a consistent copy on top of the modules loaded here."""
    import symbolic_bn
    for info in pkgutil.walk_packages(symbolic_bn.__path__, "symbolic_bn."):
        if info.name.endswith(".__main__"):  # runs the command line when imported
            continue
        if not info.name.startswith(("symbolic_bn.frontends.torch", "symbolic_bn.frontends.jax")):
            importlib.import_module(info.name)


_import_the_whole_package()

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# A user's test file: one wrong backward (forgets the x̂·Σ(g·x̂) term of dx), one right one, at a
# small shape so that the inner run stays short.
USER_TESTS = """
from my_bn import backward, wrong_backward

def test_right(symbolic_bn_check):
    symbolic_bn_check.backward(backward, shape=(1, 2, 3))

def test_wrong(symbolic_bn_check):
    symbolic_bn_check.backward(wrong_backward, shape=(1, 2, 3))
"""


@pytest.fixture
def user_suite(pytester):
    shutil.copy(EXAMPLES / "my_bn.py", pytester.path / "my_bn.py")
    pytester.makepyfile(test_user=USER_TESTS)
    return pytester


def _run(pytester, *args):
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def _failure_sections(out: str) -> str:
    """The tracebacks part of pytest's output.  The short summary after it repeats each message in
    full when pytest runs on CI (environment variable CI or BUILD_NUMBER) and truncates it
    otherwise, so counts are taken before it."""
    head, sep, _ = out.partition("short test summary info")
    assert sep, out
    return head


def test_wrong_backward_shows_its_counterexample_once_and_the_right_one_passes(user_suite):
    result = _run(user_suite, "-rA")
    result.assert_outcomes(passed=1, failed=1)
    out = _failure_sections(result.stdout.str())
    # the failed obligation once, with location, both values and the inputs
    assert out.count("FAILED backward.dx") == 1, out
    assert out.count("counterexample at dx[0, 0, 0]") == 1, out
    assert out.count("implementation = ") == 1 and out.count("reference      = ") == 1, out
    assert out.count("inputs: x = [[[") == 1 and "grad_out = " in out and "eps = " in out, out
    # proved obligations only counted, nothing undecided, no engine symbol names
    assert "2 proved (backward.dgamma, backward.dbeta), 1 failed, 0 undecided" in out
    assert "PROVED" not in out and "UNDECIDED" not in out and "x_0_0_0" not in out
    # pytest's report: the failing test at the user's line, the other one passed
    result.stdout.fnmatch_lines(["*def test_wrong(symbolic_bn_check):*",
                                 ">*symbolic_bn_check.backward(wrong_backward, shape=(1, 2, 3))",
                                 "E*AssertionError: symbolic_bn_check.backward: backward wrong_backward "
                                 "at 1x2x3 is not proved correct"])
    result.stdout.fnmatch_lines(["PASSED test_user.py::test_right"])
    # the plugin's own frames are hidden from the traceback
    assert "pytest_plugin.py" not in out and "testing.py" not in out


def test_the_shipped_example_file(pytester):
    """examples/test_my_bn.py, as the README tells a user to run it: two passes, one failure."""
    for name in ("my_bn.py", "test_my_bn.py"):
        shutil.copy(EXAMPLES / name, pytester.path / name)
    result = _run(pytester)
    result.assert_outcomes(passed=2, failed=1)
    out = _failure_sections(result.stdout.str())
    assert out.count("FAILED backward.dx") == 1 and out.count("counterexample at dx[") == 1, out


def test_report_option_writes_the_certificates_as_json(user_suite):
    result = _run(user_suite, "--symbolic-bn-report=bn.json")
    result.assert_outcomes(passed=1, failed=1)
    path = user_suite.path / "bn.json"
    result.stdout.fnmatch_lines([f"symbolic-bn: wrote 2 result(s) to {path}"])
    report = json.loads(path.read_text(encoding="utf-8"))
    assert report["schema"] == pytest_plugin.REPORT_SCHEMA and report["version"] == 1
    assert report["ok"] is False
    assert report["counts"] == {"certificates": 2, "crosschecks": 0, "ok": 1, "not_ok": 1}
    by_test = {c["test"]: c for c in report["certificates"]}
    assert set(by_test) == {"test_user.py::test_right", "test_user.py::test_wrong"}
    right, wrong = by_test["test_user.py::test_right"], by_test["test_user.py::test_wrong"]
    assert right["ok"] and [o["status"] for o in right["obligations"]] == ["proved"] * 3
    assert right["subject"] == "backward backward at 1x2x3"
    dx = next(o for o in wrong["obligations"] if o["name"] == "backward.dx")
    assert dx["status"] == "failed" and dx["counterexample"]["location"] == "dx[0, 0, 0]"
    assert sorted(os.listdir(user_suite.path)) == ["bn.json", "my_bn.py", "test_user.py"]  # no temp file


def test_report_of_an_all_green_run_is_ok_and_replaces_a_previous_report(user_suite):
    user_suite.makepyfile(test_user=USER_TESTS.split("def test_wrong")[0])
    path = user_suite.path / "bn.json"
    path.write_text(json.dumps({"schema": pytest_plugin.REPORT_SCHEMA, "old": True}))
    _run(user_suite, f"--symbolic-bn-report={path}").assert_outcomes(passed=1)
    report = json.loads(path.read_text(encoding="utf-8"))
    assert report["ok"] is True and "old" not in report and len(report["certificates"]) == 1


def test_report_without_any_check_is_not_ok(pytester):
    pytester.makepyfile(test_plain="def test_plain():\n    assert 1 + 1 == 2\n")
    _run(pytester, "--symbolic-bn-report=bn.json").assert_outcomes(passed=1)
    report = json.loads((pytester.path / "bn.json").read_text(encoding="utf-8"))
    assert report["ok"] is False and report["certificates"] == [] and report["crosschecks"] == []


@pytest.mark.parametrize("make, target, message", [
    (lambda p: (p / "notes.txt").write_text("mine"), "notes.txt",
     "notes.txt exists and is not a symbolic-bn pytest report (refusing to replace it)"),
    (lambda p: (p / "data.json").write_text('{"schema": "someone else"}'), "data.json",
     "data.json exists and is not a symbolic-bn pytest report"),
    (lambda p: (p / "adir").mkdir(), "adir", "adir is a directory"),
    (lambda p: None, "missing/bn.json", "directory * does not exist"),
    (lambda p: (p / "link.json").symlink_to(p / "elsewhere.json"), "link.json", "link.json is a symbolic link"),
    (lambda p: None, " ", "PATH is empty"),
])
def test_bad_report_path_is_a_usage_error_before_any_test_runs(user_suite, make, target, message):
    make(user_suite.path)
    before = {p.name: (p.read_text() if p.is_file() else None) for p in user_suite.path.iterdir()}
    result = _run(user_suite, f"--symbolic-bn-report={target}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--symbolic-bn-report: *{message}*"])
    assert "test_user.py" not in result.stdout.str()  # nothing was collected or run
    after = {p.name: (p.read_text() if p.is_file() else None) for p in user_suite.path.iterdir()}
    assert after == before


def test_report_directory_removed_during_the_run_fails_the_session_with_a_message(user_suite):
    (user_suite.path / "out").mkdir()
    user_suite.makepyfile(test_zz_remove="import shutil\n\ndef test_remove():\n    shutil.rmtree('out')\n")
    result = _run(user_suite, "--symbolic-bn-report=out/bn.json", "-k", "right or remove")
    result.assert_outcomes(passed=2)
    assert result.ret != pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["symbolic-bn: could not write the report to *bn.json: directory * does not exist"])


def test_atomic_write_leaves_the_previous_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "bn.json"
    path.write_text("previous")

    def broken_fsync(fd):
        raise OSError("disk full")
    monkeypatch.setattr(pytest_plugin.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        pytest_plugin._write_atomically(str(path), "{}" * 100000)
    assert path.read_text() == "previous" and os.listdir(tmp_path) == ["bn.json"]


def test_suites_that_do_not_use_the_fixture_are_unaffected(pytester):
    pytester.makepyfile(test_plain="def test_plain():\n    assert 1 + 1 == 2\n")
    result = _run(pytester)
    result.assert_outcomes(passed=1)
    assert "symbolic-bn:" not in result.stdout.str() and result.ret == pytest.ExitCode.OK


def test_plugin_is_loaded_by_the_entry_point_and_by_name_without_conflict(user_suite):
    """The entry point has the module's name, so -p and pytest_plugins do not register it twice."""
    _run(user_suite, "-p", "symbolic_bn.pytest_plugin", "-k", "right").assert_outcomes(passed=1)
    result = _run(user_suite, "-p", "no:symbolic_bn.pytest_plugin", "-k", "right")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'symbolic_bn_check' not found*"])


def test_plugin_module_imports_nothing_heavy():
    """Loading the plugin module itself (apart from its package) imports neither SymPy nor NumPy."""
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('probe_plugin', {str(Path(pytest_plugin.__file__))!r})\n"
            "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
            "heavy = sorted(m for m in ('sympy', 'numpy', 'mpmath', 'symbolic_bn') if m in sys.modules)\n"
            "print(heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------
# The fixture object itself (no inner pytest run)


def _fixture():
    kept = []
    return pytest_plugin.SymbolicBNCheck("t::id", lambda nodeid, result: kept.append((nodeid, result))), kept


def test_fixture_passes_keyword_arguments_through_and_records_results():
    check, kept = _fixture()
    from my_bn_for_tests import backward
    results = check.backward(backward, shape=(1, 2, 3), eps="1/1000", budget=30, seed=3)
    assert [r.ok for r in results] == [True]
    assert str(results[0].parameters["eps"]) == "1/1000"
    assert kept == [("t::id", results[0])] and check.results == results


def test_numeric_fallback_results_go_to_the_crosschecks_of_the_report():
    """Code the symbolic namespace cannot run is cross-checked; the report keeps those results."""
    from symbolic_bn.xp import UnsupportedOperation
    from my_bn_for_tests import backward

    def numpy_only_backward(x, gamma, beta, grad_out, eps, xp):
        if not hasattr(xp, "float32"):  # stands for a torch-only kernel
            raise UnsupportedOperation("numpy only")
        return backward(x, gamma, beta, grad_out, eps, xp)
    check, kept = _fixture()
    results = check.backward(numpy_only_backward, shape=(1, 2, 2), points=4)
    assert [r.dtype for r in results] == ["float64", "float32"] and all(r.ok for r in results)
    report = json.loads(json.dumps(pytest_plugin._report(kept)))
    assert report["ok"] is True and report["certificates"] == []
    assert [c["dtype"] for c in report["crosschecks"]] == ["float64", "float32"]
    assert all(c["test"] == "t::id" for c in report["crosschecks"])


@pytest.mark.parametrize("kwargs, exc, message", [
    ({"shape": "2x3x4"}, ValueError, r"symbolic_bn_check.backward: shape must be one \(C, H, W\) tuple"),
    ({"shape": (1, 2, 3), "shapes": [(1, 2, 3)]}, TypeError, "give shape or shapes, not both"),
    ({"shape": (1, 2, 3), "frobnicate": "layernorm"}, TypeError, "unknown option.*frobnicate"),
    ({"shape": (1, 2, 3), "numeric": "yes"}, ValueError, "numeric must be None, True or False"),
])
def test_fixture_refuses_bad_arguments_naming_them(kwargs, exc, message):
    check, kept = _fixture()
    from my_bn_for_tests import backward
    with pytest.raises(exc, match=message):
        check.backward(backward, **kwargs)
    assert kept == []


@pytest.fixture(autouse=True)
def _my_bn_importable(monkeypatch):
    """examples/my_bn.py importable as my_bn_for_tests (a name no other test module uses)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("my_bn_for_tests", EXAMPLES / "my_bn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "my_bn_for_tests", module)
