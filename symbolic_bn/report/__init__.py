"""``symbolic-bn report``: the correctness report -- one self-contained ``index.html`` (inline SVG
pictures, no script), one Markdown and one JSON file per result, every picture also as
``fig-<key>.svg``, ``index.json`` (the structure) and ``manifest.json`` (SHA-256 of every file).

The report is a list of sections (:mod:`symbolic_bn.report.sections`) made by collectors
(:mod:`symbolic_bn.report.collect`): by default the BN graph certificate at each shape (default
1x2x2, 2x2x2, 2x3x3, 4x8x8) with the all-sizes certificate, the inference bounds certificate,
and the mpmath cross-check of our numeric runtime (and PyTorch when installed) in float32 and
float64.  Pictures are SVG written by :mod:`symbolic_bn.report.svg` (no plotting library, so
every install has them).  Everything is deterministic apart from timings.

``out`` must be absent, an empty directory, or a previous report whose every file is listed in
its ``manifest.json`` with its current SHA-256 (:mod:`symbolic_bn.report.output`); anything else is
refused with :class:`ReportPathError` before any computation.  Writing is atomic, and the tool
never deletes a file it did not write.
"""
from __future__ import annotations

import json

from . import collect
from .output import GENERATOR, MANIFEST, ReportPathError, write_report
from .output import check_out as _check_out
from .render import counts_text, html_page, markdown_record
from .sections import Context, Figure, Record, Section, Table

__all__ = ["generate", "check_out", "ReportPathError", "Section", "Record", "Table", "Figure",
           "Context"]


def check_out(out) -> set:
    """Raise :class:`ReportPathError` unless ``out`` can receive a report; returns the names of
    the previous report's files that the new report will replace (empty when there is none)."""
    verified, _ = _check_out(out)
    return set(verified)


def _dump(doc) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def _run_collectors(collectors, ctx) -> list:
    sections = []
    for collector in collectors:
        got = collector(ctx)
        for s in (got if isinstance(got, (list, tuple)) else [got]):
            if not isinstance(s, Section):
                raise TypeError(f"collector {getattr(collector, '__name__', collector)!r} returned "
                                f"{type(s).__name__}, not a Section")
            s.validate()
            sections.append(s)
    seen = {}
    for s in sections:
        for kind, ident in [("section", s.id)] + [("record", r.id) for r in s.records] + \
                [("figure", f.key) for f in s.figures]:
            if (kind, ident) in seen:
                raise ValueError(f"two {kind}s have the id {ident!r} "
                                 f"(sections {seen[(kind, ident)]!r} and {s.id!r})")
            seen[(kind, ident)] = s.id
    return sections


def render_files(meta, sections, notes) -> dict:
    """Every file of the report directory except the manifest, as name -> text."""
    files = {}
    figures_by_key = {f.key: f for s in sections for f in s.figures}
    for s in sections:
        for f in s.figures:
            files[f.file_name] = f.svg
        for r in s.records:
            doc = {**meta, "subject": r.id, "title": r.title, "section": s.id, "ok": r.ok,
                   "counts": r.counts, **{k: v for k, v in r.data.items() if k not in ("id", "title", "ok")}}
            files[f"{r.id}.json"] = _dump(doc)
            files[f"{r.id}.md"] = markdown_record(meta, s, r, figures_by_key)
    files["index.html"] = html_page(meta, sections, notes)
    index = {**meta, "ok": all(s.own_results_ok for s in sections), "notes": notes,
             "findings": [{"id": r.id, "title": r.title, "audited": r.audited, "counts": r.counts}
                          for s in sections for r in s.records if r.audited and not r.ok],
             "sections": [{"id": s.id, "title": s.title, "claim": s.claim, "ok": s.ok,
                           "statement": s.statement,
                           "records": [{"id": r.id, "title": r.title, "ok": r.ok, "counts": r.counts,
                                        "files": r.files} for r in s.records],
                           "figures": [f.file_name for f in s.figures]} for s in sections],
             "files": sorted([*files, "index.json", MANIFEST])}
    files["index.json"] = _dump(index)
    return files


def generate(out="reports", *, shapes=None, torch: bool = True, progress=None,
             collectors=None) -> dict:
    """Run the collectors and write the report directory ``out``; returns a summary dict with
    ``ok``, ``out``, ``files``, ``lines`` (one line per result) and ``notes``.

    ``collectors`` defaults to :data:`symbolic_bn.report.collect.DEFAULT_COLLECTORS`; each is
    called with a :class:`~symbolic_bn.report.sections.Context` and returns a Section (or a list).
    ``out`` is checked before anything is computed."""
    say = progress or (lambda _msg: None)
    shapes = [tuple(s) for s in (shapes or collect.DEFAULT_SHAPES)]
    _check_out(out)  # before the (long) computation
    ctx = Context(shapes=shapes, torch=torch, say=say)
    sections = _run_collectors(collect.DEFAULT_COLLECTORS if collectors is None else collectors, ctx)
    meta = {"schema_version": collect.SCHEMA_VERSION, "tool_versions": collect.versions(),
            "generator": GENERATOR}
    notes = [n for s in sections for n in s.notes]
    files = render_files(meta, sections, notes)
    say("report: writing")
    notes = notes + write_report(out, files)
    ok = all(s.own_results_ok for s in sections)
    lines = [f"{r.title}: {('OK' if r.ok else 'NOT OK') if r.certificate is not None else ('PASS' if r.ok else 'FAIL')} "
             f"({counts_text(r.counts)})"
             + (f" -- a finding about {r.audited}, not a failure of symbolic-bn" if r.audited and not r.ok else "")
             for s in sections for r in s.records]
    lines.extend(f"note: {n}" for n in notes)
    return {"ok": ok, "out": str(out), "files": sorted([*files, MANIFEST]), "lines": lines,
            "notes": notes}
