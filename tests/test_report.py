"""``symbolic-bn report`` run through the installed console script: files, schema, determinism
apart from timings, atomic replacement, the self-contained HTML page (images decoded in Python
and, when Chromium is installed, loaded by headless Chromium)."""
import base64
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

EXE = shutil.which("symbolic-bn")
pytestmark = pytest.mark.skipif(EXE is None, reason="the symbolic-bn console script is not installed "
                                "(pip install -e . first)")
SHAPE = "1x2x2"  # the quick report; the committed reports/ use the default shapes


def run(*args, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=env, timeout=900)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "reports"
    p = run("report", "--out", str(out), "--shape", SHAPE, "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stderr == ""  # no progress when stderr is not a terminal
    summary = json.loads(p.stdout)
    assert summary["ok"] is True
    return out, summary


def _strip_timings(doc):
    if isinstance(doc, dict):
        return {k: _strip_timings(v) for k, v in doc.items() if k not in ("seconds", "budget_per_obligation")}
    if isinstance(doc, list):
        return [_strip_timings(v) for v in doc]
    return doc


def test_files_and_schema(report_dir):
    out, summary = report_dir
    names = sorted(os.listdir(out))
    for subject in (f"bn-{SHAPE}", "bounds", "crosscheck"):
        assert f"{subject}.md" in names and f"{subject}.json" in names
    assert "index.html" in names and "index.json" in names
    assert not [n for n in os.listdir(out.parent) if ".tmp-" in n or ".old-" in n]
    bn = json.loads((out / f"bn-{SHAPE}.json").read_text())
    assert bn["schema_version"] == 1 and bn["shape"] == [1, 2, 2] and bn["ok"] is True
    for tool in ("python", "sympy", "mpmath", "numpy", "python-flint"):
        assert tool in bn["tool_versions"]
    assert bn["seeds"] == {"counterexample_search": 0}
    obs = bn["certificate"]["obligations"]
    assert obs and all(ob["status"] == "proved" for ob in obs)
    assert any(ob["lean_name"] for ob in obs)
    cc = json.loads((out / "crosscheck.json").read_text())
    assert cc["seeds"] == {"crosscheck": 0} and cc["eps"] == [1e-05]
    dtypes = {(r["implementation"], r["dtype"]) for r in cc["runs"]}
    assert ("symbolic_bn.numeric", "float32") in dtypes and ("symbolic_bn.numeric", "float64") in dtypes
    for r in cc["runs"]:
        assert set(r["result"]["outputs"]) == {"y", "dx", "dgamma", "dbeta"}


def test_markdown_has_every_obligation(report_dir):
    out, _ = report_dir
    bn = json.loads((out / f"bn-{SHAPE}.json").read_text())
    md = (out / f"bn-{SHAPE}.md").read_text()
    assert "| stage | Lean name | statement | assumptions | method | status | time (s) |" in md
    rows = [l for l in md.splitlines() if l.startswith("| ") and not l.startswith("| stage")
            and not l.startswith("| slot")]
    jac_rows = len(bn["jacobian_structure"]["slots"]) if "jacobian_structure" in bn else 19
    assert len(rows) == len(bn["certificate"]["obligations"]) + jac_rows
    for ob in bn["certificate"]["obligations"]:
        if ob["lean_name"]:
            assert ob["lean_name"] in md
    ccmd = (out / "crosscheck.md").read_text()
    assert "float32" in ccmd and "float64" in ccmd and "max ULP" in ccmd


def test_jacobian_structure_is_block_diagonal(report_dir):
    out, _ = report_dir
    md = (out / f"bn-{SHAPE}.md").read_text()
    # 2x2x2: yChw depends on all 4 x entries of its channel for each of its 4 entries (16), on
    # gamma/beta of its channel (4 each), on nothing of the other channel — block diagonal
    assert "| yChw | 2×2×2 | 16 | 4 | 4 | 16 | 4 | 4 |" in md
    assert "| mean | 2 | 4 | 0 | 0 | 4 | 0 | 0 |" in md


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs, self.external = [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.srcs.append(a.get("src", ""))
        for key in ("src", "href"):
            v = a.get(key)
            if v and not v.startswith(("data:", "#")):
                self.external.append((tag, v))


def test_html_self_contained_images_decode(report_dir):
    out, _ = report_dir
    page = (out / "index.html").read_text()
    p = _Images()
    p.feed(page)
    assert p.external == []  # no network resources
    assert not re.search(r"url\((?!data:)", page)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert p.srcs == [] and "matplotlib" in page
        return
    assert len(p.srcs) == 3
    from PIL import Image
    for src in p.srcs:
        assert src.startswith("data:image/png;base64,")
        img = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True)))
        img.load()
        assert img.size[0] > 100 and img.size[1] > 100
    for needle in ("Summary", "Obligations", "Cross-check", "Lean name", "float32"):
        assert needle in page


def test_deterministic_apart_from_timings(report_dir, tmp_path):
    out, _ = report_dir
    again = tmp_path / "again"
    p = run("report", "--out", str(again), "--shape", SHAPE)
    assert p.returncode == 0, p.stderr
    for name in os.listdir(out):
        if name.endswith(".json"):
            a = _strip_timings(json.loads((out / name).read_text()))
            b = _strip_timings(json.loads((again / name).read_text()))
            assert a == b, name


def _assert_usage_error(p, *needles):
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr and p.stdout == ""
    for n in needles:
        assert n in p.stderr, (n, p.stderr)


def _tree(root):
    return {str(q.relative_to(root)): (q.read_bytes() if q.is_file() else None) for q in sorted(root.rglob("*"))}


def test_replaces_previous_report_and_bad_out(report_dir, tmp_path):
    out = tmp_path / "r"
    shutil.copytree(report_dir[0], out)  # a previous report
    (out / "index.html").write_text("old page")
    p = run("report", "--out", str(out), "--shape", SHAPE, "--no-torch")
    assert p.returncode == 0, p.stderr
    assert (out / "index.html").read_text() != "old page"
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n or ".old-" in n]
    cc = json.loads((out / "crosscheck.json").read_text())
    assert all(r["implementation"] == "symbolic_bn.numeric" for r in cc["runs"])
    f = tmp_path / "file"
    f.write_text("x")
    p = run("report", "--out", str(f), "--shape", SHAPE)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
    assert f.read_text() == "x"
    p = run("report", "--out", str(out), "--shape", "2x2x2;rm")
    assert p.returncode == 2 and (out / "index.html").exists()


def test_empty_existing_directory_is_accepted(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    p = run("report", "--out", str(out), "--shape", SHAPE, "--no-torch")
    assert p.returncode == 0, p.stderr
    assert (out / "index.json").exists()


@pytest.mark.parametrize("contents", [
    {"paper.tex": "\\documentclass{article}"},                       # ~/paper
    {"stale.txt": "old", "sub/notes.md": "keep me"},
    {"index.json": '{"title": "someone else\'s index"}', "data.csv": "1,2"},
    {"index.json": "not json at all"},
])
def test_refuses_a_directory_that_is_not_a_report(tmp_path, contents):
    """R1: --out DIR used to delete whatever DIR contained (rename + rmtree), e.g. --out "$PWD"."""
    out = tmp_path / "mine"
    for name, text in contents.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    before = _tree(out)
    p = run("report", "--out", str(out), "--shape", SHAPE, "--no-torch")
    _assert_usage_error(p, "--out", "not a previous symbolic-bn report")
    assert _tree(out) == before
    assert sorted(os.listdir(tmp_path)) == ["mine"]  # no temporary siblings left behind


def test_refuses_cwd_that_is_not_a_report(tmp_path):
    (tmp_path / "work.py").write_text("print('precious')")
    p = subprocess.run([EXE, "report", "--out", ".", "--shape", SHAPE], capture_output=True, text=True,
                       cwd=tmp_path, timeout=900)
    _assert_usage_error(p, "not a previous symbolic-bn report")
    assert os.listdir(tmp_path) == ["work.py"]


def test_refuses_a_previous_report_with_extra_files(report_dir, tmp_path):
    """A report directory someone added files to is not replaced either (they would be lost)."""
    out = tmp_path / "r"
    shutil.copytree(report_dir[0], out)
    (out / "my-notes.txt").write_text("mine")
    before = _tree(out)
    p = run("report", "--out", str(out), "--shape", SHAPE, "--no-torch")
    _assert_usage_error(p, "my-notes.txt")
    assert _tree(out) == before


def test_refuses_a_symlinked_out(report_dir, tmp_path):
    target = tmp_path / "real"
    shutil.copytree(report_dir[0], target)
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    before = _tree(target)
    _assert_usage_error(run("report", "--out", str(link), "--shape", SHAPE), "symbolic link")
    assert _tree(target) == before and link.is_symlink()


def test_bad_out_path_is_refused_before_computing(tmp_path):
    """C8: --out afile/sub used to run the whole computation (~14 s) before failing."""
    f = tmp_path / "afile"
    f.write_text("x")
    p = run("report", "--out", str(f / "sub"), "--shape", SHAPE, "--no-torch")
    _assert_usage_error(p, "--out", "not a directory")
    assert f.read_text() == "x" and sorted(os.listdir(tmp_path)) == ["afile"]
    p = run("report", "--out", str(f / "sub" / "deeper"), "--shape", SHAPE, "--no-torch")
    _assert_usage_error(p, "not a directory")


CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_html_renders_in_headless_chromium(report_dir, tmp_path):
    out, _ = report_dir
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run"]
    url = (out / "index.html").resolve().as_uri()
    with tempfile.TemporaryDirectory() as prof:
        dom = subprocess.run([CHROMIUM, *flags, f"--user-data-dir={prof}", "--dump-dom", url],
                             capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    m = re.search(r'data-images-ok="(true|false)"', dom.stdout)
    assert m, "the load script did not run"
    assert m.group(1) == "true"
    n = int(re.search(r'data-images="(\d+)"', dom.stdout).group(1))
    try:
        import matplotlib  # noqa: F401
        assert n == 3
    except ImportError:
        assert n == 0
    shot = out.parent / "index.png"
    with tempfile.TemporaryDirectory() as prof:
        s = subprocess.run([CHROMIUM, *flags, f"--user-data-dir={prof}", f"--screenshot={shot}",
                            "--window-size=1400,2000", url], capture_output=True, text=True, timeout=120)
    assert s.returncode == 0, s.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10000
