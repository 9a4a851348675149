"""Plain-text rendering of certificates (terminal output of the CLI and the proof scripts).

What is rendered differently from the certificate's raw strings, and why:

* every text field has its runs of whitespace collapsed to one space (the raw side-condition text
  ``var_eps_i  > 0`` reads as a typo);
* a stage statement ending in ``where z > 0`` / ``where z ≠ 0`` says what ``z`` is: the node's
  input slot, named in the obligation's side-condition assumption, and what the BatchNorm graph
  computes there (``var_eps = var_c + ε``, ``std = sqrt(var_c + ε)``);
* the subject names ε in words: a symbolic ε as ``ε symbolic (any real ε with var_c + ε > 0)``
  instead of ``ε = ε``, a non-positive ε with the inputs it leaves in the domain, and a check
  certificate (whose subject has no ε) gets the ε of its parameters appended.  The summary line
  repeats the rendered subject; its verdict and counts are the certificate's own.

The JSON form (``Certificate.to_dict``) is not touched: it keeps the raw strings.
"""
from __future__ import annotations

import re
import textwrap
from fractions import Fraction

from ..obligations.certificate import Certificate

MARK = {"proved": "PROVED", "failed": "FAILED", "undecided": "UNDECIDED"}

#: What the BatchNorm graph computes in the slots that carry a side condition.
SLOT_MEANING = {"var_eps": "var_c + ε", "std": "sqrt(max(var_c + ε, 0))"}

SYMBOLIC_EPS = "ε symbolic (any real ε with var_c + ε > 0)"

_SIDE_CONDITION = re.compile(r"(?P<slot>\S+?)_i\s*(?P<cond>[<>≤≥≠=].*?) for every i "
                             r"\(side condition of (?P<kind>\w+)\)")
_WHERE_Z = re.compile(r"where z (?P<cond>[<>≤≥≠=]\s*[^\s,]+)")


def _clean(text) -> str:
    return " ".join(str(text).split())


def _wrap(label: str, text: str, width: int = 100) -> str:
    return textwrap.fill(_clean(text), width=width, initial_indent=f"    {label:<12}",
                         subsequent_indent=" " * 16)


def _explain_z(statement: str, assumptions) -> str:
    """``… where z > 0`` → ``… where z > 0, z being the input of sqrtClamp: the slot var_eps =
    var_c + ε in the BatchNorm graph``, from the obligation's side-condition assumption."""
    m = _WHERE_Z.search(statement)
    if not m:
        return statement
    if "z being the input of" in statement:     # the stage already names z: add what the slot means
        for slot, meaning in SLOT_MEANING.items():
            named = f"the slot {slot}"
            if named in statement and f"{named} =" not in statement:
                return statement.replace(named, f"{named} = {meaning} in the BatchNorm graph", 1)
        return statement
    for a in assumptions or ():
        sc = _SIDE_CONDITION.search(_clean(a))
        if sc:
            slot, kind = sc.group("slot"), sc.group("kind")
            meaning = SLOT_MEANING.get(slot)
            what = f"the slot {slot}" + (f" = {meaning} in the BatchNorm graph" if meaning else "")
            return statement[:m.end()] + f", z being the input of {kind}: {what}" + statement[m.end():]
    return statement


def _eps_value(cert: Certificate):
    """('symbolic', None), ('number', Fraction) or (None, raw) from the certificate's parameters."""
    params = cert.parameters or {}
    if "eps" not in params:
        return None, None
    raw = params["eps"]
    text = _clean(raw)
    if text in ("ε", "symbolic ε", "symbolic", "eps"):
        return "symbolic", None
    try:
        return "number", Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None, text


def _eps_text(kind, value, layer=None) -> str:
    # channel-first BatchNorm names its statistic var_c; the other layers of symbolic_bn.layers
    # have one statistic per group (row, (n, c), (n, group), ...), rms_norm the mean of squares
    channel_first = layer in (None, "batchnorm_channel_first")
    word = "var_c" if channel_first else ("mean(x²)" if layer == "rms_norm" else "var")
    if kind == "symbolic":
        return SYMBOLIC_EPS if channel_first else f"ε symbolic (any real ε with {word} + ε > 0)"
    if value > 0:
        return f"ε = {value}"
    # ε ≤ 0: only inputs whose variance exceeds -ε are in the domain (issue 11.3)
    where = "in every channel" if channel_first else "in every group"
    return f"ε = {value} (not positive: covers only inputs with {word} > {-value} {where})"


def render_subject(cert: Certificate) -> str:
    """The certificate's subject with ε named in words (see the module docstring)."""
    subject = _clean(cert.subject)
    kind, value = _eps_value(cert)
    if kind is None:
        return subject
    eps = _eps_text(kind, value, (cert.parameters or {}).get("layer"))
    m = re.search(r",?\s*ε = (\S+)$", subject)
    if m:
        return subject[:m.start()] + ", " + eps
    if "ε" in subject:  # some other wording: leave it as it is
        return subject
    return f"{subject}, {eps}"


def summary_line(cert: Certificate) -> str:
    """``cert.summary()`` with the rendered subject."""
    c = cert.counts()
    verdict = "OK" if cert.ok else "NOT OK"
    return (f"{render_subject(cert)}: {verdict} -- {c['proved']} proved, {c['failed']} failed, "
            f"{c['undecided']} undecided of {len(cert)} obligations in {cert.seconds:.2f} s")


def certificate_text(cert: Certificate, *, verbose: bool = True, width: int = 100) -> str:
    """Each obligation with its status, statement, assumptions and method, then the summary."""
    lines = [f"== {render_subject(cert)} =="]
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
            lines.append(_wrap("statement", _explain_z(_clean(ob.statement), ob.assumptions), width))
            lines.append(_wrap("assumes", "; ".join(ob.assumptions) if ob.assumptions else "nothing", width))
            lines.append(_wrap("method", ob.method, width))
        if ob.detail:
            lines.append(_wrap("detail", ob.detail, width))
        if ob.counterexample:
            lines.append(_wrap("counterex.", _short(ob.counterexample), width))
    lines.append(summary_line(cert))
    return "\n".join(lines)


def _short(cex: dict, limit: int = 600) -> str:
    text = ", ".join(f"{k}={v}" for k, v in cex.items())
    return text if len(text) <= limit else text[:limit] + " …"
