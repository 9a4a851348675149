"""``symbolic-bn explain TERM`` and ``symbolic-bn glossary``: the terms the other subcommands
print, explained (:mod:`symbolic_bn.glossary`)."""
from __future__ import annotations

import json

from .parsing import UsageError


def _cmd_explain(args):
    from .. import glossary
    term = " ".join(args.term)
    if not term.strip():
        if args.json:
            return 0, [json.dumps({"ok": True, "terms": [
                {"term": e.term, "category": e.category, "summary": e.summary, "aliases": list(e.aliases)}
                for e in glossary.entries()]}, indent=2, ensure_ascii=False)]
        return 0, [glossary.listing()]
    entry = glossary.lookup(term)
    if entry is None:
        near = glossary.closest(term)
        hint = f"; closest: {', '.join(near)}" if near else ""
        raise UsageError(f"no glossary entry for {term!r}{hint} (symbolic-bn explain lists every term)")
    if args.json:
        return 0, [json.dumps({"ok": True, "query": term, "term": entry.term, "category": entry.category,
                               "aliases": list(entry.aliases), "text": entry.text, "see": list(entry.see)},
                              indent=2, ensure_ascii=False)]
    return 0, [glossary.render(entry)]


def _cmd_glossary(args):
    from .. import glossary
    if args.json and args.markdown:
        raise UsageError("--json and --markdown exclude each other: choose one output format")
    if args.json:
        return 0, [json.dumps({"ok": True, "categories": list(glossary.CATEGORIES), "terms": [
            {"term": e.term, "category": e.category, "aliases": list(e.aliases), "text": e.text,
             "see": list(e.see)} for e in glossary.entries()]}, indent=2, ensure_ascii=False)]
    return 0, [(glossary.markdown() if args.markdown else glossary.full_text()).rstrip("\n")]
