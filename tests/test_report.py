"""``symbolic-bn report``: files and schema, the SVG pictures (well-formed, carrying the plotted
numbers, labels inside the viewBox, a heat-map legend with readable cell text), the first screen
(the theorem in words), the section API, and file ownership (a manifest of SHA-256 hashes: the
tool replaces only files it wrote and that are unchanged; atomic writing).

One real report (``symbolic-bn report --shape 1x2x2`` through the console script) is generated
once per module; every other generation is in-process with small collectors.
"""
import hashlib
import html
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from importlib.util import find_spec
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from symbolic_bn import report as rep
from symbolic_bn.report import collect, figures, output, svg
from symbolic_bn.report.sections import Record, Section

EXE = shutil.which("symbolic-bn")
SHAPE = "1x2x2"  # the quick report; the committed reports/ use the default shapes
HAVE_TORCH = find_spec("torch") is not None
# pictures: BN (4) + layers (2) + higher order (1) + torch's measured modes (1) + cross-check (1)
N_SVGS = 9 if HAVE_TORCH else 8
NS = "{http://www.w3.org/2000/svg}"
needs_exe = pytest.mark.skipif(EXE is None, reason="the symbolic-bn console script is not installed "
                               "(pip install -e . first)")


def run(*args, cwd=None):
    return subprocess.run([EXE, *args], capture_output=True, text=True, cwd=cwd, timeout=900)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    if EXE is None:
        pytest.skip("the symbolic-bn console script is not installed")
    out = tmp_path_factory.mktemp("rep") / "reports"
    p = run("report", "--out", str(out), "--shape", SHAPE, "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stderr == ""  # no progress when stderr is not a terminal
    summary = json.loads(p.stdout)
    assert summary["ok"] is True
    return out, summary


def _strip_timings(doc):
    if isinstance(doc, dict):
        return {k: _strip_timings(v) for k, v in doc.items()
                if k not in ("seconds", "budget_per_obligation")}
    if isinstance(doc, list):
        return [_strip_timings(v) for v in doc]
    return doc


def _tree(root):
    return {str(q.relative_to(root)): (q.read_bytes() if q.is_file() else None)
            for q in sorted(Path(root).rglob("*"))}


def _siblings(parent):
    return [n for n in os.listdir(parent) if ".tmp-" in n or ".old-" in n]


# ------------------------------------------------------------------------------- files, schema

def test_files_and_schema(report_dir):
    out, summary = report_dir
    names = sorted(os.listdir(out))
    for subject in (f"bn-{SHAPE}", "allsizes", "bounds", "crosscheck"):
        assert f"{subject}.md" in names and f"{subject}.json" in names
    for fixed in ("index.html", "index.json", "manifest.json", "fig-crosscheck-err-bound.svg",
                  "fig-jacobian-blocks.svg", "fig-jacobian-output.svg", "fig-proof-times.svg",
                  "fig-bn-obligation-groups.svg"):
        assert fixed in names
    assert sorted(summary["files"]) == names
    assert not _siblings(out.parent)
    bn = json.loads((out / f"bn-{SHAPE}.json").read_text())
    assert bn["schema_version"] == collect.SCHEMA_VERSION and bn["shape"] == [1, 2, 2] and bn["ok"] is True
    assert bn["generator"] == "symbolic-bn report" and bn["section"] == "batchnorm"
    for tool in ("python", "sympy", "mpmath", "numpy", "python-flint"):
        assert tool in bn["tool_versions"]
    assert "matplotlib" not in bn["tool_versions"]
    assert bn["seeds"] == {"counterexample_search": 0}
    obs = bn["certificate"]["obligations"]
    assert obs and all(ob["status"] == "proved" for ob in obs)
    assert bn["counts"] == {"proved": len(obs), "failed": 0, "undecided": 0}
    assert any(ob["lean_name"] for ob in obs)
    cc = json.loads((out / "crosscheck.json").read_text())
    assert cc["seeds"] == {"crosscheck": 0} and cc["eps"] == [1e-05]
    dtypes = {(r["implementation"], r["dtype"]) for r in cc["runs"]}
    assert ("symbolic_bn.numeric", "float32") in dtypes and ("symbolic_bn.numeric", "float64") in dtypes
    for r in cc["runs"]:
        assert set(r["result"]["outputs"]) == {"y", "dx", "dgamma", "dbeta"}
    index = json.loads((out / "index.json").read_text())
    expected = ["batchnorm", "layers", "higher-order"] + (["autodiff-torch"] if HAVE_TORCH else []) \
        + ["bounds", "crosscheck"]
    assert [s["id"] for s in index["sections"]] == expected
    # torch's wrong higher derivatives are findings about torch, listed as such, not failures
    assert index["ok"] is True
    assert all(f["audited"].startswith("torch ") for f in index["findings"])
    assert sorted(index["files"]) == names


def test_manifest_lists_every_file_with_its_hash(report_dir):
    out, _ = report_dir
    man = json.loads((out / "manifest.json").read_text())
    assert man["generator"] == "symbolic-bn report"
    assert set(man["files"]) == set(os.listdir(out)) - {"manifest.json"}
    for name, digest in man["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest, name


def test_markdown_has_every_obligation(report_dir):
    out, _ = report_dir
    bn = json.loads((out / f"bn-{SHAPE}.json").read_text())
    md = (out / f"bn-{SHAPE}.md").read_text()
    assert "| stage | Lean name | statement | assumptions | method | status | time (s) |" in md
    rows = [l for l in md.splitlines() if l.startswith("| ") and not l.startswith("| stage")
            and not l.startswith("| slot")]
    assert len(rows) == len(bn["certificate"]["obligations"]) + 19  # + the Jacobian table's slots
    for ob in bn["certificate"]["obligations"]:
        if ob["lean_name"]:
            assert ob["lean_name"] in md
    assert "![" in md and "(fig-jacobian-blocks.svg)" in md
    ccmd = (out / "crosscheck.md").read_text()
    assert "float32" in ccmd and "float64" in ccmd and "max ULP" in ccmd and "err/bound" in ccmd
    assert "(fig-crosscheck-err-bound.svg)" in ccmd


def test_jacobian_structure_is_block_diagonal(report_dir):
    out, _ = report_dir
    md = (out / f"bn-{SHAPE}.md").read_text()
    # 2x2x2: yChw depends on all 4 x entries of its channel for each of its 4 entries (16), on
    # gamma/beta of its channel (4 each), on nothing of the other channel -- block diagonal
    assert "| yChw | 2×2×2 | 16 | 4 | 4 | 16 | 4 | 4 |" in md
    assert "| mean | 2 | 4 | 0 | 0 | 4 | 0 | 0 |" in md


# ------------------------------------------------------------------------------------ pictures

def _svg_files(out):
    return sorted(Path(out).glob("fig-*.svg"))


def _parse(path_or_text):
    text = Path(path_or_text).read_text() if isinstance(path_or_text, Path) else path_or_text
    return ET.fromstring(text)


def _all_text_boxes(root):
    """(text, box) of every <text>, computed from its attributes with the charts' own metric."""
    boxes = []
    for t in root.iter(NS + "text"):
        rot = 0.0
        m = re.match(r"rotate\(([-\d.]+) ([-\d.]+) ([-\d.]+)\)", t.get("transform", ""))
        if m:
            rot = float(m.group(1))
            assert (float(m.group(2)), float(m.group(3))) == (float(t.get("x")), float(t.get("y")))
        boxes.append((t.text, svg.text_box(t.text, float(t.get("x")), float(t.get("y")),
                                           float(t.get("font-size")), t.get("text-anchor", "start"),
                                           rot, t.get("font-weight") == "bold")))
    return boxes


def _inside_viewbox(root):
    x0, y0, w, h = map(float, root.get("viewBox").split())
    bad = [(s, b) for s, b in _all_text_boxes(root)
           if b[0] < x0 or b[1] < y0 or b[2] > x0 + w or b[3] > y0 + h]
    return bad


def test_svg_files_are_well_formed_and_inlined(report_dir):
    out, _ = report_dir
    page = (out / "index.html").read_text()
    files = _svg_files(out)
    assert len(files) == N_SVGS
    for f in files:
        root = _parse(f)
        assert root.tag == NS + "svg" and root.get("viewBox")
        assert root.find(NS + "title").text
        assert f.read_text().strip() in page  # the same picture inline in index.html
    inline = re.findall(r"<svg .*?</svg>", page, flags=re.S)
    assert len(inline) == len(files)
    for s in inline:
        _parse(s)
    assert "matplotlib" not in page and "<img" not in page and "<script" not in page


def test_no_text_outside_the_viewbox(report_dir):
    out, _ = report_dir
    for f in _svg_files(out):
        root = _parse(f)
        assert list(root.iter(NS + "text")), f.name
        assert _inside_viewbox(root) == [], f.name


def _ticks(root, cls):
    return sorted((float(l.get("data-value")), float(l.get("y1" if cls == "ytick" else "x1")))
                  for l in root.iter(NS + "line") if l.get("class") == cls)


def _log_pixel(ticks, v):
    """Pixel of value v on a log axis, interpolated from two drawn ticks."""
    (a, pa), (b, pb) = ticks[0], ticks[-1]
    return pa + (math.log10(v) - math.log10(a)) / (math.log10(b) - math.log10(a)) * (pb - pa)


def test_err_bound_bars_match_the_crosscheck_numbers(report_dir):
    out, _ = report_dir
    cc = json.loads((out / "crosscheck.json").read_text())
    root = _parse(out / "fig-crosscheck-err-bound.svg")
    ticks = _ticks(root, "ytick")
    assert len(ticks) >= 3
    baseline = ticks[0][1]
    bars = {(b.get("data-series"), b.get("data-category")): b for b in root.iter(NS + "rect")
            if b.get("class") == "bar"}
    assert len(bars) == 4 * len(cc["runs"])
    for r in cc["runs"]:
        for name, o in r["result"]["outputs"].items():
            bar = bars[(f"{r['implementation']} {r['dtype']}", figures.OUTPUT_LABELS[name])]
            assert float(bar.get("data-value")) == o["max_ratio"]  # err/bound, not ULPs
            top, height = float(bar.get("y")), float(bar.get("height"))
            assert abs(top + height - baseline) < 0.02
            assert abs(top - _log_pixel(ticks, o["max_ratio"])) < 0.05
    ref = [l for l in root.iter(NS + "line") if l.get("class") == "reference"]
    assert len(ref) == 1 and float(ref[0].get("data-value")) == 1.0
    assert abs(float(ref[0].get("y1")) - _log_pixel(ticks, 1.0)) < 0.05
    assert "pass/fail threshold" in "".join(t.text for t in root.iter(NS + "text"))


def test_jacobian_heat_map_has_values_legend_and_readable_text(report_dir):
    out, _ = report_dir
    jac = json.loads((out / "bn-2x2x2.json").read_text())["jacobian_structure"] \
        if (out / "bn-2x2x2.json").exists() else collect.jacobian_structure()
    root = _parse(out / "fig-jacobian-blocks.svg")
    cells = [c for c in root.iter(NS + "rect") if c.get("class") == "cell"]
    assert len(cells) == len(jac["slots"]) * len(jac["blocks"])
    by_pos = {(c.get("data-row"), c.get("data-col")): c for c in cells}
    for row in jac["slots"]:
        for b, count in zip(jac["blocks"], row["nonzeros_per_block"]):
            col = b.replace("gamma", "γ").replace("beta", "β")
            assert by_pos[(row["slot"], col)].get("data-value") == str(count)
    # the legend: a colour bar with a gradient, ticks at least at the smallest and largest count
    legend = [g for g in root.iter(NS + "g") if g.get("class") == "legend"]
    assert len(legend) == 1
    bar = [r for r in legend[0].iter(NS + "rect") if r.get("class") == "colour-bar"]
    assert bar and bar[0].get("fill").startswith("url(#")
    assert root.find(f".//{NS}linearGradient[@id='{bar[0].get('fill')[5:-1]}']") is not None
    tick_values = {int(l.get("data-value")) for l in legend[0].iter(NS + "line")}
    positives = [v for r in jac["slots"] for v in r["nonzeros_per_block"] if v]
    assert min(positives) in tick_values and max(positives) in tick_values
    # every number written in a cell contrasts with its cell (WCAG AA, 4.5:1): never white on yellow
    cell_fill = {}
    for c in cells:
        x, y = float(c.get("x")), float(c.get("y"))
        cell_fill[(x, y, float(c.get("width")), float(c.get("height")))] = c.get("fill")
    texts = [t for t in root.iter(NS + "text") if t.get("class") == "cell-text"]
    assert len(texts) == len(positives)
    for t in texts:
        tx, ty = float(t.get("x")), float(t.get("y"))
        fill = next(f for (x, y, w, h), f in cell_fill.items() if x <= tx <= x + w and y <= ty <= y + h)
        ink = t.get("fill", svg.INK)
        hi, lo = sorted((svg.luminance(fill), svg.luminance(ink)), reverse=True)
        assert (hi + 0.05) / (lo + 0.05) >= 4.5, (t.text, fill, ink)


def test_proof_time_points_and_labels(report_dir):
    out, _ = report_dir
    bn = json.loads((out / f"bn-{SHAPE}.json").read_text())
    root = _parse(out / "fig-proof-times.svg")
    pts = [c for c in root.iter(NS + "circle") if c.get("class") == "point"]
    assert len(pts) == 1
    assert float(pts[0].get("data-x")) == bn["certificate"]["parameters"]["input_size"]
    labels = [t.text for t in root.iter(NS + "text") if t.get("class") == "point-label"]
    assert labels == [SHAPE]


def test_text_colour_picks_the_readable_ink():
    assert svg.text_colour_on("#ffff00") == "#000000"  # dark on yellow
    assert svg.text_colour_on("#08306b") == "#ffffff"  # white on dark blue


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 0xFFFFFF))
def test_cell_text_contrast_property(rgb):
    colour = f"#{rgb:06x}"
    ink = svg.text_colour_on(colour)
    hi, lo = sorted((svg.luminance(colour), svg.luminance(ink)), reverse=True)
    assert (hi + 0.05) / (lo + 0.05) >= 4.5, (colour, ink)


labels = st.text(alphabet="abcxyzγβ∂[]_0123456789WM ", min_size=1, max_size=18)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 7), st.data())
def test_heat_map_layout_property(nr, nc, data):
    rows = data.draw(st.lists(labels, min_size=nr, max_size=nr))
    cols = data.draw(st.lists(labels, min_size=nc, max_size=nc))
    vals = data.draw(st.lists(st.lists(st.integers(0, 5000), min_size=nc, max_size=nc),
                              min_size=nr, max_size=nr))
    root = _parse(svg.heat_map(vals, rows, cols, title=data.draw(labels), legend_title="count"))
    assert _inside_viewbox(root) == []
    cells = [c for c in root.iter(NS + "rect") if c.get("class") == "cell"]
    assert [c.get("data-value") for c in cells] == [str(v) for r in vals for v in r]
    assert [g for g in root.iter(NS + "g") if g.get("class") == "legend"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(1e-6, 1e3), min_size=1, max_size=5), st.integers(1, 4), st.booleans())
def test_bar_chart_heights_property(values, nseries, log):
    cats = [f"c{i}" for i in range(len(values))]
    series = [(f"s{j}", [v * (j + 1) for v in values]) for j in range(nseries)]
    root = _parse(svg.bar_chart(cats, series, title="t", y_label="v", log=log, reference=1.0))
    assert _inside_viewbox(root) == []
    ticks = _ticks(root, "ytick")
    (a, pa), (b, pb) = ticks[0], ticks[-1]
    for bar in (r for r in root.iter(NS + "rect") if r.get("class") == "bar"):
        v = float(bar.get("data-value"))
        want = _log_pixel(ticks, v) if log else pa + (v - a) / (b - a) * (pb - pa)
        assert abs(float(bar.get("y")) - want) < 0.05
        assert abs(float(bar.get("y")) + float(bar.get("height")) - pa) < 0.02


def test_pass_fail_grid_shows_each_status_as_text():
    fig = figures.pass_fail_grid("orders", "Autodiff orders", ["BatchNorm", "LayerNorm"],
                                 ["VJP", "JVP", "VJP of VJP"],
                                 [["PASS", "proved", "FAIL"], ["undecided", None, "failed"]])
    assert fig.file_name == "fig-orders.svg"
    root = _parse(fig.svg)
    assert _inside_viewbox(root) == []
    cells = {(c.get("data-row"), c.get("data-col")): c.get("data-status")
             for c in root.iter(NS + "rect") if c.get("class") == "cell"}
    assert cells == {("BatchNorm", "VJP"): "PASS", ("BatchNorm", "JVP"): "PASS",
                     ("BatchNorm", "VJP of VJP"): "FAIL", ("LayerNorm", "VJP"): "UNDECIDED",
                     ("LayerNorm", "JVP"): "SKIPPED", ("LayerNorm", "VJP of VJP"): "FAIL"}
    words = [t.text for t in root.iter(NS + "text") if t.get("class") == "cell-text"]
    assert words == ["PASS", "PASS", "FAIL", "UNDECIDED", "—", "FAIL"]
    with pytest.raises(ValueError, match="one row per row label"):
        figures.pass_fail_grid("g", "t", ["a"], ["b"], [["PASS"], ["PASS"]])
    with pytest.raises(ValueError, match="maybe"):
        figures.pass_fail_grid("g", "t", ["a"], ["b"], [["maybe"]])


# --------------------------------------------------------------------------------- first screen

def _first_screen(page):
    """The page up to the first section (everything a reader sees before any details)."""
    return page[:page.index("<section ")]


def test_first_screen_states_the_theorem(report_dir):
    out, _ = report_dir
    page = (out / "index.html").read_text()
    first = _first_screen(page)
    text = html.unescape(re.sub(r"<[^>]+>", "", first))
    assert "What was proved" in text and "What was cross-checked" in text
    assert ("The backward pass (backprop through the recorded tape: the reverse-mode rule autograd "
            "runs in loss.backward()) equals the adjoint (transpose) of the derivative of the forward: "
            "backward(x, γ, β; g) = J(x, γ, β)ᵀ·g for every incoming gradient g") in text
    assert "for every input x, γ, β and every ε with var + ε > 0 in every channel" in text
    assert "at the shapes 1×2×2 (C×H×W" in text
    assert "for all sizes C ≥ 1, H·W ≥ 1 by the all-sizes certificate" in text
    assert "mpmath at 50 significant digits" in text and "float32 and float64" in text
    assert "err/bound ≤ 1" in text
    bn = json.loads((out / f"bn-{SHAPE}.json").read_text())
    assert f"{bn['counts']['proved']} proved, 0 failed, 0 undecided" in text
    # above every obligation table
    assert page.index("backprop") < page.index("<details") and page.index("adjoint") < page.index("<details")


def test_terms_are_explained_where_they_appear(report_dir):
    out, _ = report_dir
    page = (out / "index.html").read_text()
    fig = page[page.index('<figure id="fig-crosscheck-err-bound"'):]
    fig = fig[:fig.index("</figure>")]
    assert "err/bound: for every output component, err = |computed − reference|" in fig
    assert "ULP" in fig
    assert "Terms</h2>" in page and "<dt>ULP</dt>" in page and "<dt>adjoint, transpose, Jᵀ·g</dt>" in page


# ------------------------------------------------------------------------------- section API

def tiny_section(ctx):
    """A collector as the lead would add one: one record, one PASS/FAIL grid."""
    grid = figures.pass_fail_grid("tiny-grid", "Layers x modes", ["LayerNorm"], ["VJP", "JVP"],
                                  [["PASS", "FAIL"]])
    rec = Record("tiny", "Tiny check", False, {"passed": 1, "failed": 1}, 0.0,
                 {"kind": "tiny", "shape": [1]})
    return Section("tiny", "A tiny section", "The tiny statement (NOT all passed).",
                   claim="cross-checked", records=[rec], figures=[grid])


def cheap_bn_collectors(monkeypatch):
    """The real BN section at 1x2x2 without the (slow) all-sizes certificate, and the bounds."""
    monkeypatch.setattr(collect, "allsizes_record", lambda: (None, "all-sizes left out in this test"))
    return [collect.batchnorm_section, collect.bounds_section]


def test_a_new_section_renders_without_touching_the_renderer(tmp_path):
    out = tmp_path / "r"
    summary = rep.generate(out, shapes=[(1, 2, 2)], collectors=[tiny_section])
    assert summary["ok"] is False and summary["lines"] == ["Tiny check: FAIL (1 passed, 1 failed)"]
    page = (out / "index.html").read_text()
    first = _first_screen(page)
    assert "The tiny statement (NOT all passed)." in first and "What was cross-checked" in first
    assert "What was proved" not in first  # no section claims a proof
    assert "fig-tiny-grid.svg" in os.listdir(out) and 'id="fig-tiny-grid"' in page
    assert json.loads((out / "tiny.json").read_text())["ok"] is False
    assert "NOT OK" in (out / "tiny.md").read_text()


def test_section_ids_are_checked(tmp_path):
    def clash(ctx):
        return [tiny_section(ctx), tiny_section(ctx)]

    with pytest.raises(ValueError, match="two sections have the id 'tiny'"):
        rep.generate(tmp_path / "a", collectors=[clash])

    def reserved(ctx):
        s = tiny_section(ctx)
        s.records[0].id = "index"
        return s

    with pytest.raises(ValueError, match="reserved"):
        rep.generate(tmp_path / "b", collectors=[reserved])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_deterministic_apart_from_timings(tmp_path, monkeypatch):
    cols = cheap_bn_collectors(monkeypatch)
    a, b = tmp_path / "a", tmp_path / "b"
    rep.generate(a, shapes=[(1, 2, 2)], collectors=cols)
    rep.generate(b, shapes=[(1, 2, 2)], collectors=cols)
    assert sorted(os.listdir(a)) == sorted(os.listdir(b))
    for name in os.listdir(a):
        if name.endswith(".json") and name != "manifest.json":
            assert _strip_timings(json.loads((a / name).read_text())) == \
                _strip_timings(json.loads((b / name).read_text())), name
        elif name.endswith(".svg") and name != "fig-proof-times.svg":
            assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_statement_says_not_proved_when_a_certificate_fails(monkeypatch):
    real = collect.bn_record

    def failing(shape):
        r = real(shape)
        r.ok = False
        r.counts = {"proved": 56, "failed": 1, "undecided": 0}
        return r

    monkeypatch.setattr(collect, "bn_record", failing)
    monkeypatch.setattr(collect, "allsizes_record", lambda: (None, "all-sizes certificate skipped"))
    from symbolic_bn.report.sections import Context
    s = collect.batchnorm_section(Context(shapes=[(1, 2, 2)], say=lambda m: None))
    assert not s.ok
    assert "NOT proved at 1×2×2 (56 proved, 1 failed, 0 undecided)" in s.statement
    assert "Proved for every input" not in s.statement
    assert "nothing is claimed beyond the listed shapes" in s.statement


# ------------------------------------------------------------------- files the tool did not write

def _forged_manifest(out, names):
    files = {n: hashlib.sha256((out / n).read_bytes()).hexdigest() for n in names}
    (out / "manifest.json").write_text(json.dumps(
        {"generator": "symbolic-bn report", "manifest_version": 1, "files": files}))


def _must_refuse(out, needle):
    """generate() refuses ``out`` naming ``needle``, computes nothing, and changes nothing."""
    before = _tree(out)
    called = []

    def collector(ctx):
        called.append(1)
        return tiny_section(ctx)

    with pytest.raises(rep.ReportPathError, match=re.escape(needle)):
        rep.generate(out, collectors=[collector])
    assert called == []  # refused before any computation
    assert _tree(out) == before
    assert not _siblings(out.parent)


def test_forged_manifest_listing_a_foreign_file_deletes_nothing(tmp_path):
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "thesis.tex").write_text("\\documentclass{article} my thesis")
    _forged_manifest(out, ["thesis.tex"])  # even with the file's true hash
    _must_refuse(out, "'thesis.tex', a file name symbolic-bn report never writes")


def test_forged_manifest_listing_a_plausible_name_deletes_nothing(tmp_path):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "notes.md").write_text("# my notes\n")
    (out / "index.json").write_text(json.dumps({"generator": "someone else", "subjects": []}))
    _forged_manifest(out, ["notes.md", "index.json"])
    _must_refuse(out, "does not carry the symbolic-bn report marker")


def test_old_style_index_without_manifest_deletes_nothing(tmp_path):
    """The attack of issue 11.8: an index.json claiming to be a report, listing thesis.tex."""
    out = tmp_path / "old"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    (out / "index.json").write_text(json.dumps(
        {"schema_version": 1, "generator": "symbolic-bn report",
         "subjects": [{"id": "x", "files": ["thesis.tex"]}]}))
    _must_refuse(out, "holds no manifest.json")


def test_modified_report_file_is_refused(report_dir, tmp_path):
    out = tmp_path / "r"
    shutil.copytree(report_dir[0], out)
    with open(out / "index.html", "a") as fh:
        fh.write("<!-- my edit -->\n")
    _must_refuse(out, "'index.html' was modified after symbolic-bn report wrote it")


def test_unlisted_file_in_a_report_is_refused(report_dir, tmp_path):
    out = tmp_path / "r"
    shutil.copytree(report_dir[0], out)
    (out / "my-notes.txt").write_text("mine")
    _must_refuse(out, "'my-notes.txt', which symbolic-bn report did not write")


def test_broken_manifest_is_refused(report_dir, tmp_path):
    out = tmp_path / "r"
    shutil.copytree(report_dir[0], out)
    man = json.loads((out / "manifest.json").read_text())
    man["files"]["index.html"] = "0" * 63
    (out / "manifest.json").write_text(json.dumps(man))
    _must_refuse(out, "no valid SHA-256 for 'index.html'")
    (out / "manifest.json").write_text("[]")
    _must_refuse(out, "not a symbolic-bn report manifest")


@pytest.mark.parametrize("contents", [
    {"paper.tex": "\\documentclass{article}"},
    {"stale.txt": "old", "sub/notes.md": "keep me"},
    {"index.json": '{"title": "someone else\'s index"}', "data.csv": "1,2"},
    {"index.json": "not json at all"},
])
def test_refuses_a_directory_that_is_not_a_report(tmp_path, contents):
    out = tmp_path / "mine"
    for name, text in contents.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    _must_refuse(out, "holds no manifest.json")


def test_symlinks_and_subdirectories_are_refused(report_dir, tmp_path):
    target = tmp_path / "real"
    shutil.copytree(report_dir[0], target)
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    _must_refuse(link, "symbolic link")
    (target / "sub").mkdir()
    _must_refuse(target, "'sub', which symbolic-bn report did not write")


def test_bad_out_paths_are_refused_before_computing(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    _must_refuse(f, "exists and is not a directory")
    with pytest.raises(rep.ReportPathError, match="not a directory"):
        rep.generate(f / "sub" / "deeper", collectors=[])
    assert f.read_text() == "x" and sorted(os.listdir(tmp_path)) == ["afile"]


def test_replaces_a_previous_report_and_only_its_files(report_dir, tmp_path, monkeypatch):
    out = tmp_path / "r"
    shutil.copytree(report_dir[0], out)
    rep.generate(out, shapes=[(1, 2, 2)], collectors=[tiny_section])
    names = set(os.listdir(out))
    assert names == {"tiny.json", "tiny.md", "fig-tiny-grid.svg", "index.html", "index.json",
                     "manifest.json"}  # the previous report's files are gone, not merged
    assert not _siblings(tmp_path)
    rep.generate(out, collectors=[tiny_section])  # a report it just wrote is replaced again
    assert set(os.listdir(out)) == names


def test_empty_existing_directory_is_accepted(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    rep.generate(out, collectors=[tiny_section])
    assert (out / "index.json").exists() and not _siblings(tmp_path)


def test_failure_during_generation_leaves_the_previous_report(report_dir, tmp_path):
    out = tmp_path / "r"
    shutil.copytree(report_dir[0], out)
    before = _tree(out)

    def broken(ctx):
        raise RuntimeError("collector failed")

    with pytest.raises(RuntimeError, match="collector failed"):
        rep.generate(out, collectors=[tiny_section, broken])
    assert _tree(out) == before and not _siblings(tmp_path)


def test_failure_during_writing_leaves_the_previous_report(report_dir, tmp_path, monkeypatch):
    out = tmp_path / "r"
    shutil.copytree(report_dir[0], out)
    before = _tree(out)
    real_rename = os.rename
    calls = []

    def rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # the new report moving into place
            raise OSError(28, "No space left on device")
        return real_rename(src, dst)

    monkeypatch.setattr(output.os, "rename", rename)
    with pytest.raises(OSError, match="No space left"):
        rep.generate(out, collectors=[tiny_section])
    monkeypatch.undo()
    assert len(calls) == 3  # out -> old, tmp -> out (failed), old -> out (restored)
    assert _tree(out) == before and not _siblings(tmp_path)
    # a failure while writing the files: no partial directory either
    fresh = tmp_path / "fresh" / "deep"
    monkeypatch.setattr(output, "manifest_text", lambda files: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        rep.generate(fresh, collectors=[tiny_section])
    assert not (tmp_path / "fresh").exists() and not _siblings(tmp_path)


def test_file_changed_during_the_run_is_kept(report_dir, tmp_path):
    """Between the check and the swap a file changes: it is not deleted (the old directory is
    kept, and the summary says so)."""
    out = tmp_path / "r"
    shutil.copytree(report_dir[0], out)

    def meddle(ctx):
        (out / "bounds.md").write_text("edited while the report was computed")
        return tiny_section(ctx)

    with pytest.raises(rep.ReportPathError, match="'bounds.md' was modified"):
        rep.generate(out, collectors=[meddle])  # caught by the second check, before writing
    assert (out / "bounds.md").read_text() == "edited while the report was computed"
    verified, raw = output.check_out(report_dir[0])
    old = tmp_path / "old"
    shutil.copytree(report_dir[0], old)
    (old / "bounds.md").write_text("changed after the check")
    notes = output._remove_previous(old, verified, raw)
    assert notes and "'bounds.md' changed" in notes[0]
    assert os.listdir(old) == ["bounds.md"]


# -------------------------------------------------------------------------------------- the CLI

def _assert_usage_error(p, *needles):
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr and p.stdout == ""
    for n in needles:
        assert n in p.stderr, (n, p.stderr)


@needs_exe
def test_cli_refuses_a_forged_manifest(tmp_path):
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    _forged_manifest(out, ["thesis.tex"])
    before = _tree(out)
    _assert_usage_error(run("report", "--out", str(out), "--shape", SHAPE), "--out", "thesis.tex")
    assert _tree(out) == before and sorted(os.listdir(tmp_path)) == ["thesis"]


@needs_exe
def test_cli_refuses_cwd_that_is_not_a_report(tmp_path):
    (tmp_path / "work.py").write_text("print('precious')")
    _assert_usage_error(run("report", "--out", ".", "--shape", SHAPE, cwd=tmp_path), "work.py")
    assert os.listdir(tmp_path) == ["work.py"]


# ----------------------------------------------------------------------------------- Chromium

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Measures what the browser actually drew: every <text> inside its <svg>, no two texts of one
# picture overlapping.  Injected into a copy of the page (the report itself has no script).
LAYOUT_CHECK = """<script>window.addEventListener('load', function () {
  var problems = [], svgs = document.querySelectorAll('svg');
  svgs.forEach(function (s, k) {
    var r = s.getBoundingClientRect(), ts = Array.from(s.querySelectorAll('text'));
    var bs = ts.map(function (t) { return t.getBoundingClientRect(); });
    ts.forEach(function (t, i) {
      var b = bs[i];
      if (b.width <= 0) problems.push('not drawn ' + k + ': ' + t.textContent);
      if (b.left < r.left - 0.5 || b.right > r.right + 0.5 || b.top < r.top - 0.5 || b.bottom > r.bottom + 0.5)
        problems.push('outside ' + k + ': ' + t.textContent);
      for (var j = 0; j < i; j++) {
        var c = bs[j];
        if (Math.min(b.right, c.right) - Math.max(b.left, c.left) > 1 &&
            Math.min(b.bottom, c.bottom) - Math.max(b.top, c.top) > 1)
          problems.push('overlap ' + k + ': ' + t.textContent + ' / ' + ts[j].textContent);
      }
    });
  });
  document.querySelectorAll('details').forEach(function (d) { d.open = true; });
  var root = document.documentElement;  // with every table unfolded, nothing wider than the window
  if (root.scrollWidth > root.clientWidth + 1) problems.push('page wider than the window: ' + root.scrollWidth);
  var out = document.createElement('pre');
  out.id = 'layout-check';
  out.textContent = JSON.stringify({svgs: svgs.length, problems: problems});
  document.body.appendChild(out);
});</script>"""


def _chromium_layout(page_path):
    with tempfile.TemporaryDirectory() as prof:
        dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={prof}", "--virtual-time-budget=5000",
                              "--window-size=1280,2000", "--dump-dom", Path(page_path).resolve().as_uri()],
                             capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    m = re.search(r'<pre id="layout-check">(.*?)</pre>', dom.stdout, flags=re.S)
    assert m, "the layout check did not run"
    return json.loads(html.unescape(m.group(1)))


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_html_renders_in_headless_chromium(report_dir, tmp_path):
    out, _ = report_dir
    page = (out / "index.html").read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", LAYOUT_CHECK + "</body>"))
    got = _chromium_layout(probe)
    assert got == {"svgs": N_SVGS, "problems": []}
    # the check can fail: a label pushed out of its picture, and two labels on top of each other
    bad = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 50 20" width="50" height="20">'
           '<text x="40" y="15" font-size="12">outside</text><text x="2" y="15" font-size="12">ab</text>'
           '<text x="4" y="15" font-size="12">cd</text></svg>'
           '<details><table><tr><td>' + "x" * 400 + '</td></tr></table></details>')
    probe.write_text(f"<html><body>{bad}{LAYOUT_CHECK}</body></html>")
    problems = _chromium_layout(probe)["problems"]
    assert any(p.startswith("outside 0: outside") for p in problems)
    assert any(p.startswith("overlap 0: cd / ab") for p in problems)
    assert any(p.startswith("page wider than the window") for p in problems)
    shot = tmp_path / "index.png"
    with tempfile.TemporaryDirectory() as prof:
        s = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={prof}", f"--screenshot={shot}",
                            "--window-size=1280,2000", (out / "index.html").resolve().as_uri()],
                           capture_output=True, text=True, timeout=120)
    assert s.returncode == 0, s.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10000
