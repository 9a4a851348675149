"""Markdown and HTML rendering of the report data (pure functions of the collected dicts)."""
from __future__ import annotations

import html

SEMANTICS = ("Semantics: training-mode BatchNorm, channel-first (C×H×W, one sample): per-channel "
             "population mean and variance over H·W, y = γ·(x − μ)/sqrt(var + ε) + β, ε inside "
             "the square root.  The bounds subject is inference mode (frozen running statistics, "
             "an affine map per channel).")

OB_COLUMNS = ("stage", "Lean name", "statement", "assumptions", "method", "status", "time (s)")


def _ob_row(ob):
    return (ob.get("stage") or ob.get("group") or "", ob.get("lean_name") or "—", ob["statement"],
            "; ".join(ob.get("assumptions") or []) or "none", ob["method"], _status(ob),
            f"{float(ob.get('seconds') or 0):.3f}")


def _status(ob):
    if ob["status"] == "proved":
        return "proved under assumptions" if ob.get("assumptions") else "proved"
    return ob["status"]


def _md_cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(head, rows) -> list:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    return out


def _versions_line(meta) -> str:
    return ", ".join(f"{k} {v}" for k, v in meta["tool_versions"].items() if v is not None)


def crosscheck_rows(cc):
    rows = []
    for r in cc["runs"]:
        res = r["result"]
        for name, o in res["outputs"].items():
            fam_ulp = "; ".join(f"{f}: {fd['max_ulp'].get(name, 0):.4g}"
                                for f, fd in res["families"].items())
            rows.append((r["implementation"], r["dtype"], name, f"{o['max_abs']:.3e}",
                         f"{float(o['max_rel']):.3e}", f"{o['max_ulp']:.4g}", f"{o['max_ratio']:.3e}",
                         fam_ulp, "PASS" if o["ok"] else "FAIL"))
    return rows


CC_HEAD = ("implementation", "dtype", "output", "max abs", "max rel", "max ULP", "err/bound",
           "max ULP per family", "result")


def jacobian_rows(jac):
    return [(r["slot"], "×".join(map(str, r["shape"])) or "scalar", *map(str, r["nonzeros_per_block"]))
            for r in jac["slots"]]


def markdown_subject(doc, jac=None) -> str:
    lines = [f"# {doc['title']}", "",
             f"**Result: {'OK' if doc['ok'] else 'NOT OK'}** · schema version {doc['schema_version']} · "
             f"{_versions_line(doc)}", "", SEMANTICS, ""]
    lines.append(f"Shape: {doc.get('shape')}; ε: {', '.join(map(str, doc.get('eps') or []))}; "
                 f"seeds: {doc.get('seeds') or 'none'}")
    lines.append("")
    if "certificate" in doc:
        c = doc["certificate"]
        lines += [f"Subject `{c['subject']}`: " + ", ".join(f"{v} {k}" for k, v in c["counts"].items())
                  + f" in {c['seconds']:.2f} s", ""]
        params = {k: v for k, v in c["parameters"].items()}
        lines += ["Parameters: " + ", ".join(f"{k} = {v}" for k, v in params.items()), ""]
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
                lines.append(f"* `{ob['name']}`: " + ", ".join(f"{k} = {v}" for k, v in ob["counterexample"].items()))
            lines.append("")
    if doc["kind"] == "crosscheck":
        lines += [f"mpmath reference at {doc['dps']} digits, {doc['points']} points per run, shape "
                  f"{doc['shape']}, ε = {doc['eps'][0]}.  Bound: "
                  f"{doc['runs'][0]['result']['bound']['formula'] if doc['runs'] else ''}.", ""]
        lines += _md_table(CC_HEAD, crosscheck_rows(doc)) + [""]
        for n in doc.get("notes") or []:
            lines += [f"> note: {n}", ""]
    if jac is not None:
        lines += [f"## Jacobian block structure ({'x'.join(map(str, jac['shape']))})", "",
                  "Nonzero partial derivatives of each slot with respect to each input block, exact "
                  "(atom algebra): every slot of channel c depends only on x[c], γ[c], β[c].", ""]
        lines += _md_table(("slot", "shape", *jac["blocks"]), jacobian_rows(jac)) + [""]
    return "\n".join(lines).rstrip() + "\n"


# ------------------------------------------------------------------------------------------ HTML

CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top;text-align:left}
th{background:#f0f0f0} .ok{color:#060;font-weight:bold} .bad{color:#b00;font-weight:bold}
.note{background:#fff6d6;padding:.4em .8em;border-left:4px solid #e0b000}
td.st{white-space:nowrap} details{margin:.3em 0} img{max-width:100%;border:1px solid #ddd}
"""


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _html_table(head, rows, status_col=None) -> str:
    out = ["<table><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for r in rows:
        cells = []
        for i, c in enumerate(r):
            cls = ""
            if i == status_col:
                cls = ' class="st ok"' if str(c).startswith(("proved", "PASS")) else ' class="st bad"'
            cells.append(f"<td{cls}>{_e(c)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _ok(flag) -> str:
    return '<span class="ok">OK</span>' if flag else '<span class="bad">NOT OK</span>'


def _picture(uris, key, alt, fallback_html) -> str:
    if key in uris:
        return f'<p><img alt="{_e(alt)}" src="{uris[key]}"></p>'
    return f'<p class="note">{_e(alt)}: picture unavailable (matplotlib absent); table instead.</p>' + fallback_html


def html_page(meta, subjects, jac, uris, notes) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>symbolic-bn correctness report</title>", f"<style>{CSS}</style></head><body>",
             "<h1>symbolic-bn correctness report</h1>",
             f"<p>Schema version {meta['schema_version']} · {_e(_versions_line(meta))}</p>",
             f"<p>{_e(SEMANTICS)}</p>"]
    for n in notes:
        parts.append(f'<p class="note">note: {_e(n)}</p>')
    # summary
    rows = []
    for s in subjects:
        if "certificate" in s:
            c = s["certificate"]
            rows.append((s["title"], "OK" if c["ok"] else "NOT OK", c["counts"].get("proved", 0),
                         c["counts"].get("failed", 0), c["counts"].get("undecided", 0), f"{c['seconds']:.2f}",
                         f"{s['id']}.md / {s['id']}.json"))
        else:
            rows.append((s["title"], "PASS" if s["ok"] else "FAIL", "—", "—", "—", f"{s['seconds']:.2f}",
                         f"{s['id']}.md / {s['id']}.json"))
    parts.append("<h2>Summary</h2>")
    parts.append(_html_table(("subject", "result", "proved", "failed", "undecided", "time (s)", "files"),
                             [(r[0], r[1].replace("NOT OK", "FAIL").replace("OK", "PASS"), *r[2:]) for r in rows],
                             status_col=1))
    # pictures
    bn = [s for s in subjects if s["kind"] == "bn"]
    parts.append(f"<h2>Jacobian block structure ({_e('x'.join(map(str, jac['shape'])))})</h2>")
    parts.append("<p>Exact dependence pattern from the atom algebra: each slot of channel c depends "
                 "only on the inputs of channel c (block diagonal over channels).</p>")
    parts.append(_picture(uris, "jacobian", "Jacobian block structure",
                          _html_table(("slot", "shape", *jac["blocks"]), jacobian_rows(jac))))
    cc = next((s for s in subjects if s["kind"] == "crosscheck"), None)
    if cc is not None:
        parts.append("<h2>Cross-check against the mpmath reference</h2>")
        parts.append(f"<p>mpmath at {cc['dps']} digits, {cc['points']} points per run, shape "
                     f"{_e(cc['shape'])}, ε = {cc['eps'][0]}, seed {cc['seeds'].get('crosscheck')}. "
                     f"Result: {_ok(cc['ok'])}</p>")
        parts.append(_picture(uris, "ulp", "error in ULPs per output", ""))
        parts.append(_html_table(CC_HEAD, crosscheck_rows(cc), status_col=8))
    parts.append("<h2>Proof time against shape</h2>")
    parts.append(_picture(uris, "times", "proof time against shape", _html_table(
        ("shape", "inputs", "seconds"),
        [("x".join(map(str, s["shape"])), s["certificate"]["parameters"]["input_size"],
          f"{s['certificate']['seconds']:.2f}") for s in bn])))
    # obligations
    parts.append("<h2>Obligations</h2>")
    for s in subjects:
        if "certificate" not in s:
            continue
        c = s["certificate"]
        parts.append(f"<h3 id=\"{_e(s['id'])}\">{_e(s['title'])}: {_ok(c['ok'])}</h3>")
        parts.append(f"<p><code>{_e(c['subject'])}</code> — "
                     + _e(", ".join(f"{v} {k}" for k, v in c["counts"].items())) + f" in {c['seconds']:.2f} s</p>")
        parts.append(f"<details{' open' if not c['ok'] else ''}><summary>{len(c['obligations'])} obligations"
                     "</summary>")
        parts.append(_html_table(OB_COLUMNS, [_ob_row(ob) for ob in c["obligations"]], status_col=5))
        cex = [ob for ob in c["obligations"] if ob["counterexample"]]
        for ob in cex:
            parts.append(f"<p class=\"bad\">counterexample {_e(ob['name'])}: "
                         + _e(", ".join(f"{k} = {v}" for k, v in ob["counterexample"].items())) + "</p>")
        parts.append("</details>")
    parts.append("<script>window.addEventListener('load', function () {"
                 "document.body.setAttribute('data-images-ok', String(Array.from(document.images)"
                 ".every(function (i) { return i.complete && i.naturalWidth > 0; })));"
                 "document.body.setAttribute('data-images', String(document.images.length));});</script>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
