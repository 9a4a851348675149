"""``symbolic-bn report``: the correctness reports (one self-contained ``index.html``, one Markdown
and one JSON file per subject).

Subjects: the BN graph certificate at each shape (default 1x2x2, 2x2x2, 2x3x3, 4x8x8), the
inference bounds certificate, the mpmath cross-check of our numeric runtime (and PyTorch when
installed) in float32 and float64, and the all-sizes certificate when ``symbolic_bn.allsizes`` is
available.  Everything is deterministic apart from timings.  The directory is written atomically:
files go to a temporary sibling directory which then replaces ``out``; a failure or an interrupt
leaves the previous report intact.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from pathlib import Path

from . import collect, figures
from .render import html_page, markdown_subject

__all__ = ["generate"]


def _dump(doc) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def _subject_ok(s) -> bool:
    if "certificate" in s:
        return bool(s["certificate"]["ok"])
    return bool(s.get("ok", False))


def generate(out="reports", *, shapes=None, torch: bool = True, progress=None) -> dict:
    """Run every subject and write the report directory ``out``; returns a summary dict with
    ``ok``, ``out``, ``files`` and ``lines`` (one line per subject)."""
    say = progress or (lambda _msg: None)
    shapes = [tuple(s) for s in (shapes or collect.DEFAULT_SHAPES)]
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(20, "not a directory", str(out))
    meta = {"schema_version": collect.SCHEMA_VERSION, "tool_versions": collect.versions(),
            "generator": "symbolic-bn report"}
    notes = []
    subjects = []
    for shape in shapes:
        say(f"report: proving the BN graph at {collect.shape_name(shape)}")
        subjects.append(collect.bn_subject(shape))
    say("report: proving the bound rules")
    subjects.append(collect.bounds_subject())
    say("report: cross-checking against mpmath")
    subjects.append(collect.crosscheck_subject(use_torch=torch))
    notes.extend(subjects[-1]["notes"])
    say("report: all-sizes certificate")
    alls, note = collect.allsizes_subject()
    if alls is not None:
        subjects.append(alls)
    else:
        notes.append(note)
    say("report: Jacobian structure and pictures")
    jac = collect.jacobian_structure()
    bn = [s for s in subjects if s["kind"] == "bn"]
    cc = next(s for s in subjects if s["kind"] == "crosscheck")
    pictures = {}
    if figures.available():
        pictures = {"jacobian": figures.jacobian_blocks(jac), "ulp": figures.ulp_errors(cc),
                    "times": figures.proof_times(bn)}
    else:
        notes.append("matplotlib is not installed (pip install 'symbolic-bn[report]'): pictures "
                     "are replaced by their tables")

    files = {}
    for s in subjects:
        doc = {**meta, "subject": s["id"], "title": s["title"], "ok": _subject_ok(s), **s}
        if s["kind"] == "bn" and tuple(s["shape"]) == tuple(jac["shape"]):
            doc["jacobian_structure"] = jac
        files[f"{s['id']}.json"] = _dump(doc)
        files[f"{s['id']}.md"] = markdown_subject(doc, jac=jac if s["kind"] == "bn" else None)
    pngs = {k: v for k, v in pictures.items() if v is not None}
    data_uris = {k: "data:image/png;base64," + base64.b64encode(v).decode("ascii") for k, v in pngs.items()}
    files["index.html"] = html_page(meta, subjects, jac, data_uris, notes)
    ok = all(_subject_ok(s) for s in subjects)
    index = {**meta, "ok": ok, "notes": notes,
             "subjects": [{"id": s["id"], "title": s["title"], "ok": _subject_ok(s),
                           "files": [f"{s['id']}.md", f"{s['id']}.json"]} for s in subjects]}
    files["index.json"] = _dump(index)
    _write_atomically(out, files)
    lines = []
    for s in subjects:
        if "certificate" in s:
            c = s["certificate"]["counts"]
            lines.append(f"{s['title']}: {'OK' if _subject_ok(s) else 'NOT OK'} "
                         f"({', '.join(f'{v} {k}' for k, v in c.items())})")
        else:
            lines.append(f"{s['title']}: {'PASS' if s['ok'] else 'FAIL'} ({len(s['runs'])} runs)")
    lines.extend(f"note: {n}" for n in notes)
    return {"ok": ok, "out": str(out), "files": sorted(files), "lines": lines, "notes": notes}


def _write_atomically(out: Path, files: dict) -> None:
    parent = out.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    old = None
    try:
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        os.chmod(tmp, 0o755)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=parent))
            os.rmdir(old)
            os.rename(out, old)
        os.rename(tmp, out)
    except BaseException:
        if old is not None and old.exists() and not out.exists():
            os.rename(old, out)  # put the previous report back
            old = None
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
