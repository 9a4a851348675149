"""HTML and Markdown rendering of a report, as pure functions of its sections
(:mod:`symbolic_bn.report.sections`).  Nothing here knows which layer or check a section is
about: a new section renders without changes here.

``index.html`` is one self-contained page (inline CSS and SVG, no script, no external resource).
Its first screen says what was proved and what was cross-checked (each section's statement),
then the counts; the sections follow, then the terms used.
"""
from __future__ import annotations

import html

from .svg import MARKER

OB_COLUMNS = ("stage", "Lean name", "statement", "assumptions", "method", "status", "time (s)")
OB_CAPTION = ("stage: the part of the computation an obligation is about (a graph node such as "
              "mean or inv_std, or a group of checks); Lean name: the matching theorem of "
              "TorchLean, the Lean formalization this project follows; assumptions: what the "
              "statement assumes (none: it holds for every input); method: how it was decided; "
              "status: proved, proved under assumptions (where the assumptions hold), failed (with "
              "an exact counterexample, re-evaluated) or undecided (neither within the time budget).")
GLOSSARY = (
    ("backward, backprop", "the reverse pass: from the gradient g of the loss with respect to the "
     "output y, compute the gradients with respect to the inputs, stage by stage back along the "
     "tape (what autograd does in loss.backward())."),
    ("tape, slots", "the intermediate values the forward records (xMat, mean, …, yChw); backprop "
     "visits them in reverse order."),
    ("J, Jacobian", "the matrix of partial derivatives ∂y_i/∂input_j of the forward."),
    ("adjoint, transpose, Jᵀ·g", "the vector-Jacobian product: (Jᵀ·g)_j = Σ_i g_i ∂y_i/∂input_j. "
     "A backward is correct exactly when it equals Jᵀ·g for every g."),
    ("JVP", "Jacobian-vector product J·t, the forward-mode derivative in direction t."),
    ("ε", "the constant added to the variance inside the square root (PyTorch's eps); the "
     "certificates keep it as a symbol."),
    ("var + ε > 0", "the domain: where this holds in every channel, the forward is differentiable."),
    ("err/bound", "a cross-check's error divided by the rounding-error allowance of its dtype; "
     "≤ 1 passes."),
    ("ULP", "unit in the last place: the spacing of floating-point numbers near a value."),
    ("IBP", "interval bound propagation: bounds on the output from bounds on the input."),
    ("proved / undecided", "proved: by exact algebra (no floating point, no sampling); undecided: "
     "neither proved nor refuted within the time budget, never counted as proved."),
)


def _status(ob) -> str:
    if ob["status"] == "proved":
        return "proved under assumptions" if ob.get("assumptions") else "proved"
    return ob["status"]


def _ob_row(ob):
    return (ob.get("stage") or ob.get("group") or "", ob.get("lean_name") or "—", ob["statement"],
            "; ".join(ob.get("assumptions") or []) or "none", ob["method"], _status(ob),
            f"{float(ob.get('seconds') or 0):.3f}")


def counts_text(counts: dict) -> str:
    return ", ".join(f"{v} {k}" for k, v in counts.items())


def versions_line(meta) -> str:
    return ", ".join(f"{k} {v}" for k, v in meta["tool_versions"].items() if v is not None)


def _is_certificate(record) -> bool:
    return record.certificate is not None


# -------------------------------------------------------------------------------------- Markdown

def _md_cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(head, rows) -> list:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    return out


def markdown_record(meta, section, record, figures_by_key) -> str:
    """``<record>.md``: the verdict, what the section states, the obligations of a certificate,
    the record's tables and links to its figures."""
    d = record.data
    lines = [f"<!-- {MARKER} -->", f"# {record.title}", "",
             f"**Result: {'OK' if record.ok else 'NOT OK'}** ({counts_text(record.counts)}) · "
             f"schema version {meta['schema_version']} · {versions_line(meta)}", "",
             f"Part of the report section “{section.title}”: {section.statement}", ""]
    for para in section.explanation:
        lines += [para, ""]
    facts = []
    if "shape" in d:
        facts.append(f"Shape: {d.get('shape')}")
    if d.get("eps"):
        facts.append("ε: " + ", ".join(map(str, d["eps"])))
    if "seeds" in d:
        facts.append(f"seeds: {d.get('seeds') or 'none'}")
    if facts:
        lines += ["; ".join(facts), ""]
    c = record.certificate
    if c is not None:
        lines += [f"Subject `{c['subject']}`: {counts_text(c['counts'])} in {c['seconds']:.2f} s", ""]
        lines += ["Parameters: " + ", ".join(f"{k} = {v}" for k, v in c["parameters"].items()), ""]
        lines += [OB_CAPTION, ""]
        sentinel = group = object()
        for ob in c["obligations"]:
            if ob["group"] != group:
                if group is not sentinel:
                    lines.append("")
                group = ob["group"]
                lines += [f"## {group or 'obligations'}", ""]
                lines += _md_table(OB_COLUMNS, [])[:2]
            lines.append("| " + " | ".join(_md_cell(x) for x in _ob_row(ob)) + " |")
        lines.append("")
        failed = [ob for ob in c["obligations"] if ob["counterexample"]]
        if failed:
            lines += ["## Counterexamples", ""]
            for ob in failed:
                lines.append(f"* `{ob['name']}`: "
                             + ", ".join(f"{k} = {v}" for k, v in ob["counterexample"].items()))
            lines.append("")
    for t in record.tables:
        lines += [f"## {t.title}" if t.title else "## table", ""]
        if t.caption:
            lines += [t.caption, ""]
        lines += _md_table(t.head, t.rows) + [""]
    for key in record.figure_keys:
        f = figures_by_key[key]
        lines += [f"![{f.title}]({f.file_name})", "", f.caption, ""]
    for n in d.get("notes") or []:
        lines += [f"> note: {n}", ""]
    return "\n".join(lines).rstrip() + "\n"


# ------------------------------------------------------------------------------------------ HTML

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;padding:1em 1.5em;
max-width:1280px;color:#1a1a1a;line-height:1.45}
h1{margin:.2em 0 .3em} h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.15em}
h3{margin:1.2em 0 .3em}
.verdict{font-size:1.1em;padding:.5em .8em;border-radius:4px}
.verdict.ok{background:#e6f4ea;border-left:6px solid #1e7e34}
.verdict.bad{background:#fde8e8;border-left:6px solid #b00020}
.claims{list-style:none;padding:0;margin:.4em 0}
.claims li{margin:.5em 0;padding:.55em .8em;background:#f7f9fc;border:1px solid #e1e6ee;border-radius:4px}
.badge{display:inline-block;font-size:.8em;font-weight:bold;padding:.05em .45em;border-radius:3px;
margin-right:.4em;letter-spacing:.03em}
.badge.ok{background:#1e7e34;color:#fff} .badge.bad{background:#b00020;color:#fff}
.badge.finding{background:#8a5a00;color:#fff;margin-left:.3em}
.verdict.finding{background:#fff4e0;border-left:6px solid #8a5a00} .st.finding{color:#8a5a00;font-weight:bold}
.lead{color:#444;margin:.2em 0}
.statement{border-left:4px solid #8aa4c8;padding:.1em 0 .1em .8em;max-width:75em}
table{border-collapse:collapse;margin:.4em 0 1.2em;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top;text-align:left}
td.long{overflow-wrap:anywhere;min-width:8em}
th{background:#f0f0f0} .ok{color:#0b5e1f;font-weight:bold} .bad{color:#b00020;font-weight:bold}
.und{color:#7a5a00;font-weight:bold}
.note{background:#fff6d6;padding:.4em .8em;border-left:4px solid #e0b000}
.caption{color:#333;font-size:.92em;max-width:75em}
td.st{white-space:nowrap} details{margin:.3em 0} summary{cursor:pointer}
figure{margin:1em 1.5em 1.5em 0;display:inline-table;vertical-align:top}
figure svg{max-width:100%;height:auto;border:1px solid #e3e3e3;display:block}
figcaption{display:table-caption;caption-side:bottom;font-size:.9em;color:#333;padding-top:.3em}
dl.terms dt{font-weight:bold;margin-top:.4em} dl.terms dd{margin-left:1.5em}
footer{margin-top:2em;color:#444;font-size:.92em}
"""


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _status_class(text) -> str:
    t = str(text).lower()
    if t.startswith(("proved", "pass", "ok")):
        return "st ok"
    if t.startswith("undecided"):
        return "st und"
    if t.startswith("finding"):
        return "st finding"
    return "st bad"


def _html_table(head, rows, status_col=None) -> str:
    out = ["<table><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for r in rows:
        cells = []
        for i, c in enumerate(r):
            if i == status_col:
                cls = f' class="{_status_class(c)}"'
            else:  # long texts (formulas) may break anywhere, so a table never overflows the page
                cls = ' class="long"' if len(str(c)) > 30 else ""
            cells.append(f"<td{cls}>{_e(c)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _badge(ok, claim) -> str:
    word = {"proved": ("PROVED", "NOT PROVED"), "cross-checked": ("PASS", "FAIL")}[claim]
    return f'<span class="badge {"ok" if ok else "bad"}">{word[0] if ok else word[1]}</span>'


def _section_badges(s) -> str:
    """PROVED/PASS (or not) for symbolic-bn's own records, FINDINGS for failing audited ones."""
    own = [r for r in s.records if not r.audited]
    return (_badge(s.own_results_ok, s.claim) if own or not s.records else "") + _finding_badge(s)


def _finding_badge(s) -> str:
    if any(r.audited and not r.ok for r in s.records):
        return '<span class="badge finding">FINDINGS</span>'
    return ""


def _ok(flag) -> str:
    return '<span class="ok">OK</span>' if flag else '<span class="bad">NOT OK</span>'


def _svg_inline(doc: str) -> str:
    return doc.split("?>", 1)[1] if doc.startswith("<?xml") else doc


def _totals(sections) -> str:
    """Counts summed over the certificates, and over the other results of each kind of claim."""
    cert, other = {}, {}
    n_cert = 0
    for s in sections:
        for r in s.records:
            if r.audited:  # third-party code's results are counted in the findings line
                continue
            if _is_certificate(r):
                n_cert += 1
                target = cert
            else:
                target = other.setdefault(s.claim, {})
            for k, v in r.counts.items():
                target[k] = target.get(k, 0) + v
    parts = []
    if n_cert:
        parts.append(f"{n_cert} certificate{'s' if n_cert != 1 else ''} with {sum(cert.values())} "
                     f"obligations: {counts_text(cert)}")
    for claim, counts in other.items():
        parts.append(f"{claim} results: {counts_text(counts)}")
    return "; ".join(parts)


def _first_screen(sections) -> list:
    ok = all(s.own_results_ok for s in sections)
    bad = [r.title for s in sections for r in s.records if r.counts_against_report]
    found = [r for s in sections for r in s.records if r.audited and not r.ok]
    verdict = ("Everything symbolic-bn states below holds. " if ok else
               "NOT everything holds: " + ", ".join(bad) + " did not pass. ") + _totals(sections) + "."
    parts = [f'<p class="verdict {"ok" if ok else "bad"}">{_e(verdict)}</p>']
    if found:
        parts.append('<p class="verdict finding">' + _e(
            "Findings about third-party code (its derivatives are wrong somewhere; these are "
            "results of the checks, not failures of symbolic-bn): "
            + "; ".join(f"{r.title} ({r.audited}): {counts_text(r.counts)}" for r in found) + ".")
            + "</p>")
    heads = {"proved": ("What was proved",
                        "By exact algebra: rational arithmetic and polynomial identities, never "
                        "floating point or sampling. What could not be decided is reported as "
                        "undecided, never as proved."),
             "cross-checked": ("What was cross-checked",
                               "In floating point, at sampled inputs, against a high-precision "
                               "reference: evidence about the numerics, not a proof.")}
    for claim, (head, lead) in heads.items():
        mine = [s for s in sections if s.claim == claim]
        if not mine:
            continue
        parts += [f"<h2>{_e(head)}</h2>", f'<p class="lead">{_e(lead)}</p>', '<ul class="claims">']
        for s in mine:
            parts.append(f"<li>{_section_badges(s)}<b>{_e(s.title)}.</b> {_e(s.statement)} "
                         f'<a href="#{_e(s.id)}">Details</a></li>')
        parts.append("</ul>")
    rows = []
    for s in sections:
        for r in s.records:
            rows.append((r.title, "PASS" if r.ok else ("FINDING" if r.audited else "FAIL"), counts_text(r.counts),
                         f"{r.seconds:.2f}", " / ".join(r.files)))
    parts.append("<h2>Counts</h2>")
    parts.append(_html_table(("result", "verdict", "counts", "time (s)", "files"), rows,
                             status_col=1))
    return parts


def _figure(f) -> str:
    cap = f"<b>{_e(f.title)}.</b> {_e(f.caption)} " if f.caption else f"<b>{_e(f.title)}.</b> "
    return (f'<figure id="{_e(f.file_name[:-4])}">{_svg_inline(f.svg)}'
            f'<figcaption>{cap}<a href="{_e(f.file_name)}">{_e(f.file_name)}</a></figcaption></figure>')


def _table_block(t) -> str:
    body = []
    if t.caption:
        body.append(f'<p class="caption">{_e(t.caption)}</p>')
    body.append(_html_table(t.head, t.rows, status_col=t.status_column))
    if t.folded:
        return (f"<details><summary><b>{_e(t.title or 'table')}</b> ({len(t.rows)} rows)</summary>"
                + "\n".join(body) + "</details>")
    return (f"<h3>{_e(t.title)}</h3>" if t.title else "") + "\n".join(body)


def _certificate_block(r) -> list:
    c = r.certificate
    parts = [f'<h3 id="result-{_e(r.id)}">{_e(r.title)}: {_ok(r.ok)}</h3>',
             f"<p><code>{_e(c['subject'])}</code> — {_e(counts_text(c['counts']))} in "
             f"{c['seconds']:.2f} s · files {_e(' / '.join(r.files))}</p>"]
    for ob in c["obligations"]:  # counterexamples first, outside the folded table
        if ob["counterexample"]:
            parts.append(f'<p class="bad">counterexample to {_e(ob["name"])}: '
                         + _e(", ".join(f"{k} = {v}" for k, v in ob["counterexample"].items())) + "</p>")
    parts += [f"<details{' open' if not r.ok else ''}><summary>{len(c['obligations'])} obligations"
              f"{' (all proved; click to show)' if r.ok else ''}</summary>",
              f'<p class="caption">{_e(OB_CAPTION)}</p>',
              _html_table(OB_COLUMNS, [_ob_row(ob) for ob in c["obligations"]], status_col=5),
              "</details>"]
    return parts


def _section(s) -> list:
    parts = [f'<section id="{_e(s.id)}">', f"<h2>{_e(s.title)} {_section_badges(s)}</h2>",
             f'<p class="statement">{_e(s.statement)}</p>']
    parts += [f'<p class="note">note: {_e(n)}</p>' for n in s.notes]
    parts += [_figure(f) for f in s.figures]
    parts += [f"<p>{_e(p)}</p>" for p in s.explanation]
    parts += [_table_block(t) for t in s.tables]
    for r in s.records:
        if _is_certificate(r):
            parts += _certificate_block(r)
    parts.append("</section>")
    return parts


def html_page(meta, sections, notes) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f'<meta name="generator" content="{_e(meta["generator"])}">',
             "<title>symbolic-bn correctness report</title>", f"<style>{CSS}</style></head><body>",
             f"<!-- {MARKER} -->", "<h1>symbolic-bn correctness report</h1>"]
    parts += _first_screen(sections)
    parts += [f'<p class="note">note: {_e(n)}</p>' for n in notes]
    for s in sections:
        parts += _section(s)
    parts.append("<footer><h2>Terms</h2><dl class=\"terms\">")
    parts += [f"<dt>{_e(t)}</dt><dd>{_e(d)}</dd>" for t, d in GLOSSARY]
    parts.append("</dl>")
    parts.append(f"<p>Schema version {meta['schema_version']} · {_e(versions_line(meta))}. "
                 "Every file of this directory is listed with its SHA-256 in manifest.json; "
                 "symbolic-bn report replaces only files that still match it.</p></footer>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
