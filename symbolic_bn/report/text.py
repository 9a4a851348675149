"""Plain-text rendering of certificates (terminal output of the CLI and the proof scripts)."""
from __future__ import annotations

import textwrap

from ..obligations.certificate import Certificate

MARK = {"proved": "PROVED", "failed": "FAILED", "undecided": "UNDECIDED"}


def _wrap(label: str, text: str, width: int = 100) -> str:
    return textwrap.fill(text, width=width, initial_indent=f"    {label:<12}",
                         subsequent_indent=" " * 16)


def certificate_text(cert: Certificate, *, verbose: bool = True, width: int = 100) -> str:
    """Each obligation with its status, statement, assumptions and method, then the summary."""
    lines = [f"== {cert.subject} =="]
    group = None
    for ob in cert:
        if ob.group != group:
            group = ob.group
            lines.append(f"-- {group or 'obligations'} --")
        head = f"[{MARK[ob.status]:>9}] {ob.name}  ({ob.seconds:.3f} s)"
        if ob.lean_name:
            head += f"  Lean: {ob.lean_name}"
        lines.append(head)
        if verbose:
            lines.append(_wrap("statement", ob.statement, width))
            lines.append(_wrap("assumes", "; ".join(ob.assumptions) if ob.assumptions else "nothing", width))
            lines.append(_wrap("method", ob.method, width))
        if ob.detail:
            lines.append(_wrap("detail", ob.detail, width))
        if ob.counterexample:
            lines.append(_wrap("counterex.", _short(ob.counterexample), width))
    lines.append(cert.summary())
    return "\n".join(lines)


def _short(cex: dict, limit: int = 600) -> str:
    text = ", ".join(f"{k}={v}" for k, v in cex.items())
    return text if len(text) <= limit else text[:limit] + " …"
