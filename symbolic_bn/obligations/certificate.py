"""Obligations and certificates: what was claimed, under which assumptions, how it was decided.

An :class:`Obligation` is one mathematical statement with its verdict:

* ``'proved'``    -- decided by exact algebra (never by floats, sampling or ``simplify()``);
* ``'failed'``    -- refuted; ``counterexample`` holds exact inputs at which the two sides differ,
  re-evaluated independently of the decision that found them;
* ``'undecided'`` -- the time budget ran out or the exact procedure could neither prove nor refute.

A :class:`Certificate` is an ordered list of obligations about one subject (a graph at one shape,
the inference bounds, a user's implementation, ...).  ``cert.ok`` is true only when every
obligation is proved.  ``to_dict()`` is JSON-serializable and is the format reports are built from.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterator

STATUSES = ("proved", "failed", "undecided")


def _jsonable(value: Any) -> Any:
    """Convert exact numbers and arrays to JSON-friendly values (exact values become strings)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    tolist = getattr(value, "tolist", None)
    if callable(tolist):  # numpy arrays, including object arrays of SymPy numbers
        return _jsonable(tolist())
    return str(value)


@dataclass
class Obligation:
    """One statement and its verdict.

    ``statement`` is readable text in the reference's notation; ``lean_name`` names the TorchLean
    counterpart (or ``None`` when TorchLean has none); ``method`` says how the verdict was reached
    so that a reader can redo it.
    """

    name: str
    statement: str
    status: str
    method: str
    assumptions: list[str] = field(default_factory=list)
    lean_name: str | None = None
    seconds: float = 0.0
    counterexample: dict | None = None
    group: str = ""
    stage: str | None = None
    detail: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if self.status == "failed" and not self.counterexample:
            raise ValueError(f"obligation {self.name!r} is 'failed' but carries no counterexample")
        if self.status == "proved" and self.counterexample:
            raise ValueError(f"obligation {self.name!r} is 'proved' but carries a counterexample")

    @property
    def proved(self) -> bool:
        """True when the status is ``'proved'``."""
        return self.status == "proved"

    def to_dict(self) -> dict:
        """A JSON-serializable dict of every field; exact values in the counterexample become
        strings, ``seconds`` is rounded to microseconds."""
        return {
            "name": self.name,
            "group": self.group,
            "stage": self.stage,
            "statement": self.statement,
            "lean_name": self.lean_name,
            "assumptions": list(self.assumptions),
            "method": self.method,
            "status": self.status,
            "seconds": round(float(self.seconds), 6),
            "counterexample": _jsonable(self.counterexample),
            "detail": self.detail,
        }


@dataclass
class Certificate:
    """The obligations about one subject, in a meaningful order (e.g. the order of the Lean file)."""

    subject: str
    obligations: list[Obligation] = field(default_factory=list)
    parameters: dict = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, obligation: Obligation) -> Obligation:
        """Append ``obligation`` (order is kept) and return it."""
        self.obligations.append(obligation)
        return obligation

    def extend(self, obligations) -> None:
        """Append each obligation of the iterable ``obligations``, in order."""
        for ob in obligations:
            self.add(ob)

    def __iter__(self) -> Iterator[Obligation]:
        """The obligations, in order."""
        return iter(self.obligations)

    def __len__(self) -> int:
        """The number of obligations."""
        return len(self.obligations)

    def __getitem__(self, name: str) -> Obligation:
        """The obligation called ``name`` (e.g. ``cert["backward.dx"]``); ``KeyError`` if none is."""
        for ob in self.obligations:
            if ob.name == name:
                return ob
        raise KeyError(f"no obligation named {name!r} in certificate {self.subject!r}")

    @property
    def ok(self) -> bool:
        """True when there is at least one obligation and every one is proved."""
        return bool(self.obligations) and all(ob.proved for ob in self.obligations)

    def counts(self) -> dict[str, int]:
        """How many obligations have each status: ``{'proved': p, 'failed': f, 'undecided': u}``
        (every status present, zeros included)."""
        out = {s: 0 for s in STATUSES}
        for ob in self.obligations:
            out[ob.status] += 1
        return out

    def failed(self) -> list[Obligation]:
        """The obligations whose status is ``'failed'`` (each with its counterexample), in order."""
        return [ob for ob in self.obligations if ob.status == "failed"]

    def undecided(self) -> list[Obligation]:
        """The obligations whose status is ``'undecided'`` (``detail`` says why), in order."""
        return [ob for ob in self.obligations if ob.status == "undecided"]

    def summary(self) -> str:
        """One line: the subject, ``OK`` or ``NOT OK`` (:attr:`ok`), the counts and the total time,
        e.g. ``'backward f at 2x3x4: OK -- 3 proved, 0 failed, 0 undecided of 3 obligations in 1.20 s'``."""
        c = self.counts()
        verdict = "OK" if self.ok else "NOT OK"
        return (f"{self.subject}: {verdict} -- {c['proved']} proved, {c['failed']} failed, "
                f"{c['undecided']} undecided of {len(self)} obligations in {self.seconds:.2f} s")

    def to_dict(self) -> dict:
        """A JSON-serializable dict: subject, ok, counts, seconds, parameters and every obligation's
        :meth:`Obligation.to_dict`.  Reports are built from it."""
        return {
            "subject": self.subject,
            "ok": self.ok,
            "counts": self.counts(),
            "seconds": round(float(self.seconds), 6),
            "parameters": _jsonable(self.parameters),
            "obligations": [ob.to_dict() for ob in self.obligations],
        }

    def to_json(self, **kwargs) -> str:
        """:meth:`to_dict` as a JSON string; ``kwargs`` go to :func:`json.dumps` (e.g. ``indent=2``)."""
        return json.dumps(self.to_dict(), **kwargs)

    def __repr__(self) -> str:
        """``<Certificate SUMMARY>`` with the :meth:`summary` line."""
        return f"<Certificate {self.summary()}>"
