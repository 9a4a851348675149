"""The report's data model: a report is a list of :class:`Section`; rendering (render.py) and
writing (output.py) know nothing about BatchNorm.

A *collector* is a function ``collector(ctx: Context) -> Section`` (or a list of sections) that
runs some computation and describes its result.  :func:`symbolic_bn.report.generate` calls the
collectors in order (``collect.DEFAULT_COLLECTORS`` unless ``collectors=`` is given), then
renders every section the same way:

* the first screen lists each section's ``statement`` under "What was proved" (``claim ==
  "proved"``: exact algebra) or "What was cross-checked" (``claim == "cross-checked"``: floating
  point at sampled inputs), with its status, followed by the table of all records;
* the section itself shows its title, statement, ``explanation`` paragraphs, ``figures`` (inline
  SVG, also written as ``fig-<key>.svg``), ``tables``, and for each record holding a certificate
  the obligation table (folded when everything is proved).

A :class:`Record` is one machine-readable result, written as ``<id>.json`` and ``<id>.md``: a
certificate (``Certificate.to_dict()``) or any other JSON-ready result (e.g. cross-check runs)
with its own pass/fail and counts.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Optional

CLAIMS = ("proved", "cross-checked")
_ID = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
RESERVED_IDS = ("index", "manifest")


@dataclass
class Table:
    """A table: ``head`` (column names) and ``rows`` (tuples of cells, shown with ``str``).
    ``caption`` explains the columns in plain words; ``status_column`` is the index of a column of
    PASS/FAIL/proved/... cells (coloured); ``folded`` tables start collapsed in HTML."""
    head: tuple
    rows: list
    title: str = ""
    caption: str = ""
    status_column: Optional[int] = None
    folded: bool = False


@dataclass
class Figure:
    """An SVG picture (``svg``: a complete ``<svg>`` document) written as ``fig-<key>.svg`` and
    inlined in ``index.html``; ``caption`` says what is plotted and explains its terms."""
    key: str
    title: str
    svg: str
    caption: str = ""

    @property
    def file_name(self) -> str:
        return f"fig-{self.key}.svg"


@dataclass
class Record:
    """One result written as ``<id>.json`` (``data`` plus the report's metadata) and ``<id>.md``.

    ``ok`` is its verdict, ``counts`` e.g. ``{"proved": 57, "failed": 0, "undecided": 0}`` or
    ``{"passed": 16, "failed": 0}``.  ``data["certificate"]``, when present, is a
    ``Certificate.to_dict()`` whose obligations are listed in the HTML and Markdown.
    ``tables`` and ``figure_keys`` are repeated in the record's Markdown file.

    ``audited`` names third-party code whose behaviour the record reports (e.g. ``"torch
    2.13.0+cpu"``): its failures are *findings* about that code, shown as such, and do not make
    the report fail (the report's exit status is about symbolic-bn's own results)."""
    id: str
    title: str
    ok: bool
    counts: dict
    seconds: float
    data: dict
    tables: list = field(default_factory=list)
    figure_keys: list = field(default_factory=list)
    audited: str = ""

    @property
    def counts_against_report(self) -> bool:
        return not self.ok and not self.audited

    @property
    def certificate(self):
        return self.data.get("certificate")

    @property
    def files(self) -> list:
        return [f"{self.id}.md", f"{self.id}.json"]


@dataclass
class Section:
    """One part of the report (see the module docstring).  ``statement`` is one plain-language
    paragraph saying what holds (it must be true of the records: say "not proved" when a record
    failed); ``explanation`` holds further paragraphs shown in the section only."""
    id: str
    title: str
    statement: str
    claim: str = "proved"
    records: list = field(default_factory=list)
    figures: list = field(default_factory=list)
    tables: list = field(default_factory=list)
    explanation: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.records)

    @property
    def own_results_ok(self) -> bool:
        """Every record about symbolic-bn's own results holds (audited records excluded)."""
        return not any(r.counts_against_report for r in self.records)

    def validate(self) -> None:
        """Raise ValueError when ids or claims would make files collide or be misfiled."""
        if self.claim not in CLAIMS:
            raise ValueError(f"section {self.id!r}: claim must be one of {CLAIMS}, not {self.claim!r}")
        for ident in [self.id] + [r.id for r in self.records] + [f.key for f in self.figures]:
            if not isinstance(ident, str) or not _ID.match(ident):
                raise ValueError(f"section {self.id!r}: id {ident!r} must be lower-case letters, "
                                 f"digits, '.' and '-'")
        if self.id.startswith(("fig-", "result-")):
            raise ValueError(f"section id {self.id!r} must not start with 'fig-' or 'result-' "
                             f"(the page's anchors for figures and results)")
        for r in self.records:
            if r.id in RESERVED_IDS:
                raise ValueError(f"section {self.id!r}: record id {r.id!r} is reserved (its files "
                                 f"would overwrite the report's own {r.id}.json)")


@dataclass
class Context:
    """What a collector may use: the BN shapes asked for, whether PyTorch is wanted, and
    ``say(message)`` for progress lines."""
    shapes: list
    torch: bool = True
    say: Callable = print


Collector = Callable[[Context], "Section | list[Section]"]
