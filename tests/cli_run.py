"""Running ``symbolic-bn`` for tests/test_cli.py: as the installed console script in a subprocess
(where the exit status or the child process of ``check`` matters), or in-process through
``symbolic_bn.cli.main`` (argument parsing and usage errors, which never start a child) -- the
same code and the same stdout/stderr/exit status, without a new interpreter per call."""
import contextlib
import io
import json
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

EXE = shutil.which("symbolic-bn")
TESTS = Path(__file__).resolve().parent


def run(*args, cwd=None, path=(), timeout=600, env=None):
    """The console script in a subprocess, with tests/ (and ``path``) on PYTHONPATH."""
    full_env = dict(os.environ)
    full_env.pop("SYMBOLIC_BN_TRACEBACK", None)
    full_env.pop("SYMBOLIC_BN_CHILD_START", None)
    full_env["PYTHONPATH"] = os.pathsep.join([*map(str, path), str(TESTS)]) + \
        (os.pathsep + full_env["PYTHONPATH"] if full_env.get("PYTHONPATH") else "")
    full_env.update(env or {})
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=full_env, cwd=cwd,
                          timeout=timeout)


def run_here(*args):
    """``symbolic_bn.cli.main(args)`` in this process: returncode, stdout, stderr."""
    from symbolic_bn import cli
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(list(args))
    return SimpleNamespace(returncode=rc, stdout=out.getvalue(), stderr=err.getvalue(), args=args)


def assert_usage_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert err.count("\n") == 0, f"expected one line on stderr, got {proc.stderr!r}"
    assert err.startswith("symbolic-bn: error:"), err
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in err, (n, err)
    assert proc.stdout == ""


def one_json_object(proc) -> dict:
    """stdout is exactly one JSON object with a boolean "ok" that agrees with the exit status."""
    doc = json.loads(proc.stdout)  # raises on a second document or trailing noise
    assert isinstance(doc, dict), type(doc)
    assert isinstance(doc.get("ok"), bool), doc.keys()
    assert doc["ok"] == (proc.returncode == 0), (doc["ok"], proc.returncode)
    return doc


def write_json(tmp_path, name, doc):
    p = Path(tmp_path) / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(p)
