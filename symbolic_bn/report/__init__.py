"""``symbolic-bn report``: the correctness reports (one self-contained ``index.html``, one Markdown
and one JSON file per subject).

Subjects: the BN graph certificate at each shape (default 1x2x2, 2x2x2, 2x3x3, 4x8x8), the
inference bounds certificate, the mpmath cross-check of our numeric runtime (and PyTorch when
installed) in float32 and float64, and the all-sizes certificate when ``symbolic_bn.obligations.allsizes`` is
available.  Everything is deterministic apart from timings.  The directory is written atomically:
files go to a temporary sibling directory which then replaces ``out``; a failure or an interrupt
leaves the previous report intact.

``out`` must be absent, an empty directory, or a previous report (its ``index.json`` carries
``schema_version`` and ``"generator": "symbolic-bn report"``, and it holds only the files that
index lists).  Anything else is refused with :class:`ReportPathError` before any computation, and
again just before the swap: nothing but a previous report's own files is ever deleted.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from pathlib import Path

from . import collect
from . import figures
from .render import html_page, markdown_subject

__all__ = ["generate", "check_out", "ReportPathError"]

GENERATOR = "symbolic-bn report"
_FIXED_FILES = ("index.html", "index.json")


class ReportPathError(ValueError):
    """``out`` cannot receive a report (not a directory, not writable, or a directory holding
    something other than a previous report)."""


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
    check_out(out)  # before the (long) computation
    meta = {"schema_version": collect.SCHEMA_VERSION, "tool_versions": collect.versions(),
            "generator": GENERATOR}
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


def _previous_report_files(out: Path):
    """The file names of the previous report in directory ``out`` (``None`` when ``out`` does
    not hold one).  Recognized by its ``index.json`` marker; the names are the fixed files plus
    the files its subjects list."""
    try:
        with open(out / "index.json", "r", encoding="utf-8") as fh:
            index = json.load(fh)
    except (OSError, ValueError, RecursionError):
        return None
    if not (isinstance(index, dict) and index.get("generator") == GENERATOR
            and "schema_version" in index and isinstance(index.get("subjects"), list)):
        return None
    names = set(_FIXED_FILES)
    for s in index["subjects"]:
        files = s.get("files") if isinstance(s, dict) else None
        if not isinstance(files, list):
            return None
        for f in files:
            if not isinstance(f, str) or not f or os.sep in f or "/" in f or f in (".", ".."):
                return None
            names.add(f)
    return names


def check_out(out) -> set:
    """Raise :class:`ReportPathError` unless ``out`` can receive a report; returns the names of
    the previous report's files that the new report will replace (empty when there is none)."""
    out = Path(out)
    if not str(out) or "\x00" in str(out):
        raise ReportPathError("--out must be a directory path")
    if out.is_symlink():
        raise ReportPathError(f"{str(out)!r} is a symbolic link; pass the directory itself")
    if out.exists():
        if not out.is_dir():
            raise ReportPathError(f"{str(out)!r} exists and is not a directory")
        try:
            entries = set(os.listdir(out))
        except OSError as exc:
            raise ReportPathError(f"cannot list {str(out)!r}: {exc.strerror or exc}") from None
        if entries:
            known = _previous_report_files(out)
            if known is None:
                raise ReportPathError(f"{str(out)!r} is a non-empty directory that is not a previous "
                                      f"symbolic-bn report (no symbolic-bn index.json); refusing to "
                                      f"replace it — choose an empty or new directory")
            extra = sorted(entries - known)
            if extra:
                raise ReportPathError(f"{str(out)!r} holds {extra[0]!r}, which is not part of the "
                                      f"previous symbolic-bn report; refusing to replace the directory")
            for name in entries:
                if not (out / name).is_file() or (out / name).is_symlink():
                    raise ReportPathError(f"{str(out)!r}: {name!r} is not a regular file; refusing to "
                                          f"replace the directory")
        else:
            known = set()
    else:
        known = set()
    parent = Path(os.path.abspath(out)).parent
    probe = parent
    while not probe.exists():  # the nearest existing ancestor must be a writable directory
        probe = probe.parent
    if not probe.is_dir():
        raise ReportPathError(f"cannot create {str(out)!r}: {str(probe)!r} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ReportPathError(f"cannot create {str(out)!r}: {str(probe)!r} is not writable")
    return known


def _write_atomically(out: Path, files: dict) -> None:
    out = Path(os.path.abspath(out))
    known = check_out(out)  # again: the directory may have changed during the computation
    parent = out.parent
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
        # delete only the previous report's own files; anything that appeared meanwhile stays
        for name in known:
            try:
                os.unlink(old / name)
            except FileNotFoundError:
                pass
            except OSError:
                break
        try:
            os.rmdir(old)
        except OSError:
            pass  # not empty: left in place (a hidden sibling) rather than deleting unknown files
