"""The jargon in ``symbolic-bn`` text output, for the glossary coverage test of tests/test_cli.py.

:func:`jargon` reads the CLI's plain-text output and returns the terms a reader may need
explained, recognised by their *shape* (so a new term of that shape without a glossary entry
fails the test):

* the status word and the name of every obligation line (``[   PROVED] stage.std.derivative``),
  every group header (``-- end-to-end --``) and field label (``statement``, ``counterex.``);
* ``slot (kind):`` at the start of a stage statement (``std (sqrtClamp):``);
* in running text (statements, assumptions, methods, details, notes, subjects, summaries):
  dotted names (``Spec.batchNorm2dBackward``), camelCase and MixedCase identifiers
  (``sqrtClamp``, ``SymPy``), snake_case identifiers (``var_eps_i``, ``J_E``), words in
  capitals (``IBP``, ``FD``), Greek letters and ℝ/ℚ/Σ;
* ``key=`` of ``key=value`` pairs, ``label:`` at the start of a line, and the column headers of
  the cross-check table.

Not taken: the framework's own message of an ``ERROR`` row of ``symbolic-bn autodiff``, the ``Lean:`` column (TorchLean's own names, explained by the glossary entry
``Lean``), counterexample values, and the numbers of ``lo = [...]`` lines.  Plain lower-case
words (``scale``, ``rounding``) are not recognised by shape; those the CLI prints are listed in
:data:`PLAIN_TERMS` and checked too.
"""
import re

# ``symbolic-bn autodiff``: "ERROR <mode> [<api>]: <the framework's own message>" (not ours: only
# the status, mode and API are taken) and, under the --exact table, "failed|undecided <api> <mode>:
# at <location> ..." (the location is an array entry, e.g. result.x[0, 1, 2])
ERROR_ROW = re.compile(r"^ERROR (\S+) \[(\S+)\]: ")
EXACT_ROW_NOTE = re.compile(r"^(failed|undecided) ((?:\S+ )?[^\s:]+): (?:at (\S+?)\[[^\]]*\] )?(.*)$")
STATUS_LINE = re.compile(r"^\[\s*(PROVED|FAILED|UNDECIDED)\]\s+(\S+)\s+\([0-9.]+ s\)(.*)$")
GROUP_LINE = re.compile(r"^-- (.+?) --$")
FIELD_LINE = re.compile(r"^    (statement|assumes|method|detail|counterex\.)\s+(.*)$")
CONTINUATION = re.compile(r"^ {16}(\S.*)$")
SLOT_KIND = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*) \(([A-Za-z]+)\):")

DOTTED = re.compile(r"(?<![\w.])[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_*][A-Za-z0-9_*]*)+(?![\w(])")
CAMEL = re.compile(r"(?<![\w.])[a-z]+[A-Z][A-Za-z0-9]*(?![\w.])")
MIXED = re.compile(r"(?<![\w.])[A-Z][a-z]+[A-Z][A-Za-z0-9]*(?![\w.])")
SNAKE = re.compile(r"(?<![\w.{])[A-Za-z][A-Za-z0-9]*(?:_(?:\{[^{}\s]*\}|[A-Za-z0-9]+(?:,[a-z])?))+")
CAPS = re.compile(r"(?<![\w.])[A-Z][A-Z]+(?![\w.])")
SYMBOLS = re.compile(r"[αβγδεζηθικλμνξπρστυφχψωΣℝℚ]")
KEY = re.compile(r"(?<![\w.])([a-z][a-z_]*)=")
LABEL = re.compile(r"^([A-Za-z][A-Za-z -]*?):\s")

#: Plain words with a special meaning that the CLI prints (in the bounds and cross-check output).
PLAIN_TERMS = ("scale", "offset", "IBP box", "derivative box", "second-derivative box", "rounding",
               "channel axis", "exact arithmetic", "inference BatchNorm", "kappa", "err/bound",
               "families", "reference self-check", "bound", "seed", "dps", "dtype", "points",
               "worst at", "side condition", "domain", "context", "slots", "totalized",
               "12CN + 7C slots", "adjoint", "Jacobian", "backprop", "counterexample")


def _running_text_terms(text):
    found = set()
    rest = text
    for m in DOTTED.finditer(text):
        found.add(m.group(0))
    rest = DOTTED.sub(" ", rest)
    for rx in (CAMEL, MIXED, SNAKE, CAPS, SYMBOLS):
        found.update(m.group(0) for m in rx.finditer(rest))
    found.update(m.group(1) for m in KEY.finditer(rest))
    return found


def jargon(output: str) -> set:
    """The terms of ``output`` (see the module docstring)."""
    terms = set()
    field = None  # label of the field being continued
    for line in output.splitlines():
        if not line.strip():
            field = None
            continue
        m = STATUS_LINE.match(line)
        if m:
            terms.update((m.group(1), m.group(2)))
            field = None
            continue  # the Lean column (m.group(3)) is TorchLean's own naming
        m = GROUP_LINE.match(line)
        if m:
            terms.add(re.sub(r"\s+[0-9]+x[0-9]+x[0-9]+$", "", m.group(1)))
            continue
        m = FIELD_LINE.match(line)
        if m:
            field, body = m.group(1), m.group(2)
            terms.add(field)
            if field == "statement":
                sk = SLOT_KIND.match(body)
                if sk:
                    terms.update(sk.groups())
            if field != "counterex.":
                terms |= _running_text_terms(body)
            continue
        m = CONTINUATION.match(line)
        if m and field:
            if field != "counterex.":
                terms |= _running_text_terms(m.group(1))
            continue
        field = None
        stripped = line.strip()
        m = ERROR_ROW.match(stripped)
        if m:
            terms.update(("ERROR", m.group(1), m.group(2)))
            continue
        m = EXACT_ROW_NOTE.match(stripped)
        if m:
            terms.update((m.group(1), *m.group(2).split()))
            if m.group(3):
                terms.add(m.group(3))
            terms |= _running_text_terms(m.group(4))
            continue
        if re.match(r"^(lo|hi) = ", stripped):
            continue
        if stripped.startswith("COUNTEREXAMPLE"):
            terms.add("COUNTEREXAMPLE")
            name = stripped.split(":", 1)[0].split()[1:]
            terms.update(name)
            continue
        if stripped.startswith("output ") and "err/bound" in stripped:  # cross-check table header
            terms.update(w for w in re.split(r"\s{2,}", stripped) if w)
            continue
        m = LABEL.match(stripped)
        if m:
            terms.add(m.group(1))
        if stripped.startswith("== ") and stripped.endswith(" =="):
            stripped = stripped[3:-3]
        terms |= _running_text_terms(stripped)
    return {t.strip() for t in terms if t.strip()}
