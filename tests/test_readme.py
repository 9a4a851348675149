"""The README's examples run as written and print what the README shows.

What is run (README.md is parsed; nothing else is configured):

* every ```` ```python ```` block, as a script in a fresh interpreter (each block is
  self-contained: its own imports and data), in a temporary directory holding copies of the files
  in ``examples/`` (``params.json``, ``box.json``, ``my_bn.py``, ...).  It must exit with status 0.
  When the next block (only blank lines between) is an untagged ```` ``` ```` block, that block is
  the expected standard output.
* every untagged (or ```` ```console ````) block of ``$ COMMAND`` lines that has at least one
  ``symbolic-bn`` command: the commands run one after the other in bash, in one such temporary
  directory (so ``echo $?`` sees the previous command's status); the lines after a command, up to
  the next ``$`` line, are its expected output (standard output and standard error together).

Comparison: trailing spaces and leading/trailing blank lines are ignored; timings (a decimal number
followed by `` s``: ``0.19 s``, ``(0.030 s)``) are masked on both sides; everything else, floats
included, is compared as text.  A line that is exactly ``...`` matches any number of lines
(including none).  A block preceded by ``<!-- readme-test: skip REASON -->`` is reported as skipped
with REASON (visible in the test summary, so use it only for what cannot run here).

A failure shows the README line, the differing lines (README ``-``, actual ``+``, equal ones for
context) and the end of standard error.
"""
from __future__ import annotations

import difflib
import importlib.util
import inspect
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
EXAMPLES = ROOT / "examples"
TIMEOUT = 900  # seconds per block; only a guard against a hang (nothing asserts on time)

_FENCE = re.compile(r"^```\s*([\w+-]*)\s*$")
_SKIP = re.compile(r"^<!--\s*readme-test:\s*skip\b\s*(.*?)\s*-->\s*$")
_TIMING = re.compile(r"(?<![\w.])\d+\.\d+ s\b")
_MARK = "\x1eEND\x1e"


@dataclass
class Block:
    lang: str
    line: int          # 1-based line of the opening fence in README.md
    lines: list
    skip: str | None = None
    output: "Block | None" = None   # for python blocks: the untagged block right after


@dataclass
class Command:
    line: int
    text: str
    expected: list = field(default_factory=list)


def parse_blocks(text: str) -> list[Block]:
    """Fenced blocks in order, python blocks with the output block that follows them."""
    lines = text.splitlines()
    blocks, i, last_nonblank = [], 0, None
    follows = {}  # block index -> whether only blank lines separate it from the previous block
    gap_blank = True
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            if lines[i].strip():
                last_nonblank = lines[i]
                gap_blank = False
            i += 1
            continue
        start = i
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        skip = _SKIP.match(last_nonblank or "")
        blocks.append(Block(m.group(1).lower(), start + 1, lines[start + 1:j],
                            skip=(skip.group(1) or "no reason given") if skip else None))
        follows[len(blocks) - 1] = gap_blank and len(blocks) > 1
        i, last_nonblank, gap_blank = j + 1, None, True
    for k, block in enumerate(blocks[:-1]):
        nxt = blocks[k + 1]
        if block.lang == "python" and nxt.lang in ("", "text") and follows[k + 1]:
            block.output = nxt
    return blocks


def python_snippets(blocks):
    return [b for b in blocks if b.lang == "python"]


def console_sessions(blocks):
    """Untagged/console blocks made of ``$`` commands with at least one symbolic-bn command;
    a python block's output block is never one."""
    outputs = {id(b.output) for b in blocks if b.output is not None}
    sessions = []
    for b in blocks:
        if b.lang not in ("", "console", "shell-session") or id(b) in outputs:
            continue
        body = [ln for ln in b.lines if ln.strip()]
        if not body or not body[0].startswith("$ "):
            continue
        commands = []
        for k, ln in enumerate(b.lines):
            if ln.startswith("$ "):
                commands.append(Command(b.line + 1 + k, ln[2:]))
            elif commands:
                commands[-1].expected.append(ln)
        if any(re.search(r"(^|[\s;|&=])symbolic-bn\b", c.text) for c in commands):
            sessions.append((b, commands))
    return sessions


# ---------------------------------------------------------------------------------------------
# comparison


def normalize(lines) -> list[str]:
    out = [_TIMING.sub("<time> s", ln.rstrip()) for ln in lines]
    while out and not out[0]:
        out.pop(0)
    while out and not out[-1]:
        out.pop()
    return out


def matches(expected, actual) -> bool:
    """``expected`` (normalized) matches ``actual`` (normalized), '...' lines matching any lines."""
    segments, current = [], []
    for ln in expected:
        if ln == "...":
            segments.append(current)
            current = []
        else:
            current.append(ln)
    segments.append(current)
    if len(segments) == 1:
        return expected == actual
    first, *middle, last = segments
    if actual[:len(first)] != first:
        return False
    pos, end = len(first), len(actual) - len(last)
    if end < pos or (last and actual[end:] != last):
        return False
    for seg in middle:
        if not seg:
            continue
        for k in range(pos, end - len(seg) + 1):
            if actual[k:k + len(seg)] == seg:
                pos = k + len(seg)
                break
        else:
            return False
    return True


def render_diff(expected, actual, context=3) -> str:
    """A diff of the README's lines (``-``) against the actual ones (``+``); a '...' line that
    stands for actual lines is shown as such instead of as a difference."""
    out = []
    ops = difflib.SequenceMatcher(None, expected, actual, autojunk=False).get_opcodes()
    for tag, i1, i2, j1, j2 in ops:
        if tag == "equal":
            same = expected[i1:i2]
            if len(same) > 2 * context + 1:
                same = same[:context] + [f"⋮ ({len(same) - 2 * context} equal lines)"] + same[-context:]
            out.extend("  " + ln for ln in same)
        elif expected[i1:i2] == ["..."]:
            out.append(f"  ... (stands for {j2 - j1} line(s))")
        else:
            out.extend("- " + ln for ln in expected[i1:i2])
            out.extend("+ " + ln for ln in actual[j1:j2])
    return "\n".join(out)


def mismatch_message(where, expected, actual, stderr=""):
    text = (f"{where}: the output differs from the README (- README, + actual; timings masked; a "
            f"line '...' matches any lines).  Update the README or the code.\n"
            + render_diff(expected, actual))
    if stderr.strip():
        text += "\n--- standard error ---\n" + "\n".join(stderr.rstrip().splitlines()[-30:])
    return text


# ---------------------------------------------------------------------------------------------
# running


def _workdir(tmp_path):
    for item in EXAMPLES.iterdir():
        if item.is_file():
            shutil.copy(item, tmp_path / item.name)
    return tmp_path


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


#: optional frameworks a block may need: it is skipped (with the reason) when they are absent
_NEEDS = {"torch": re.compile(r"\bimport torch\b|\btorch\.nn\b|--framework torch|\btorch_functions\b|"
                             r"\btorch_ln\b|symbolic-bn autodiff"),
          "jax": re.compile(r"\bimport jax\b|--framework jax")}


def _missing_framework(block):
    text = "\n".join(block.lines)
    for name, pattern in _NEEDS.items():
        if pattern.search(text) and importlib.util.find_spec(name) is None:
            return f"needs {name} (pip install '.[{name}]')"
    return None


BLOCKS = parse_blocks(README.read_text(encoding="utf-8"))
SNIPPETS = python_snippets(BLOCKS)
SESSIONS = console_sessions(BLOCKS)


@pytest.mark.parametrize("block", SNIPPETS, ids=[f"python-README-L{b.line}" for b in SNIPPETS])
def test_python_snippet(block, tmp_path):
    if block.skip:
        pytest.skip(f"README.md:{block.line}: {block.skip}")
    if _missing_framework(block):
        pytest.skip(f"README.md:{block.line}: {_missing_framework(block)}")
    work = _workdir(tmp_path)
    script = work / f"readme_snippet_L{block.line}.py"
    script.write_text("\n".join(block.lines) + "\n", encoding="utf-8")
    try:
        p = subprocess.run([sys.executable, script.name], cwd=work, env=_env(), capture_output=True,
                           text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"README.md:{block.line}: the snippet did not finish within {TIMEOUT} s")
    where = f"README.md:{block.line} (python)"
    assert p.returncode == 0, (f"{where} exited with status {p.returncode}:\n"
                               + "\n".join(p.stderr.rstrip().splitlines()[-30:]))
    if block.output is not None:
        expected, actual = normalize(block.output.lines), normalize(p.stdout.splitlines())
        assert matches(expected, actual), mismatch_message(where, expected, actual, p.stderr)


def _run_session(commands, work):
    script = []
    for c in commands:
        script.append(f"{{ {c.text}\n}} 2>&1")
        script.append(f"__readme_status=$?; printf '\\n{_MARK}\\n'; (exit $__readme_status)")
    p = subprocess.run(["bash", "-c", "\n".join(script)], cwd=work, env=_env(), capture_output=True,
                       text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    chunks = p.stdout.split(f"\n{_MARK}\n")
    return chunks[:len(commands)] + [""] * (len(commands) - len(chunks[:len(commands)])), p


@pytest.mark.parametrize("session", SESSIONS, ids=[f"console-README-L{b.line}" for b, _ in SESSIONS])
def test_console_session(session, tmp_path):
    block, commands = session
    if block.skip:
        pytest.skip(f"README.md:{block.line}: {block.skip}")
    if _missing_framework(block):
        pytest.skip(f"README.md:{block.line}: {_missing_framework(block)}")
    try:
        outputs, p = _run_session(commands, _workdir(tmp_path))
    except subprocess.TimeoutExpired:
        pytest.fail(f"README.md:{block.line}: the commands did not finish within {TIMEOUT} s")
    problems = []
    for c, out in zip(commands, outputs):
        expected, actual = normalize(c.expected), normalize(out.splitlines())
        if not matches(expected, actual):
            problems.append(mismatch_message(f"README.md:{c.line} `$ {c.text}`", expected, actual))
    assert not problems, "\n\n".join(problems)


def test_the_readme_has_examples_to_check():
    """Guards the parser: if it stopped finding blocks, every test above would pass vacuously."""
    assert len(SNIPPETS) >= 5 and sum(1 for s in SNIPPETS if s.output is not None) >= 4
    assert sum(len(cmds) for _, cmds in SESSIONS) >= 4


# ---------------------------------------------------------------------------------------------
# the harness itself


def test_parser_pairs_python_blocks_with_their_output_and_finds_commands():
    text = "\n".join([
        "```python", "print(1)", "```", "```", "1", "```",
        "text", "```python", "x = 1", "```", "between", "```", "not output", "```",
        "<!-- readme-test: skip needs a GPU -->", "```", "$ symbolic-bn prove", "out", "$ echo $?", "0", "```",
        "```sh", "$ symbolic-bn prove", "```",
    ])
    blocks = parse_blocks(text)
    snippets = python_snippets(blocks)
    assert [s.output.lines if s.output else None for s in snippets] == [["1"], None]
    sessions = console_sessions(blocks)
    assert len(sessions) == 1 and sessions[0][0].skip == "needs a GPU"
    assert [(c.text, c.expected) for c in sessions[0][1]] == [("symbolic-bn prove", ["out"]),
                                                             ("echo $?", ["0"])]


@pytest.mark.parametrize("expected, actual, ok", [
    (["a", "b"], ["a", "b"], True),
    (["a", "b"], ["a", "c"], False),
    (["a"], ["a", "b"], False),
    (["...", "b"], ["a", "x", "b"], True),
    (["...", "b"], ["b", "c"], False),
    (["a", "..."], ["a"], True),
    (["a", "...", "c", "...", "e"], ["a", "b", "c", "d", "e"], True),
    (["a", "...", "c", "...", "e"], ["a", "b", "d", "e"], False),
    (["a", "...", "a"], ["a"], False),
    (["1.5"], ["1.50"], False),  # floats compared as text
])
def test_matches(expected, actual, ok):
    assert matches(expected, actual) is ok


def test_diff_shows_only_the_lines_that_differ():
    expected = ["...", "x", "last"]
    actual = [f"line {i}" for i in range(20)] + ["x", "other"]
    text = render_diff(expected, actual)
    assert text.splitlines() == ["  ... (stands for 20 line(s))", "  x", "- last", "+ other"]
    long_equal = render_diff(["a"] * 10 + ["b"], ["a"] * 10 + ["c"]).splitlines()
    assert long_equal[3] == "  ⋮ (4 equal lines)" and long_equal[-2:] == ["- b", "+ c"]


def test_timings_are_masked_and_nothing_else():
    assert normalize(["[ PROVED] a  (0.030 s)", "in 12.5 s", "budget of 60 s", "x = 0.5", "1.5 sx"]) == \
        ["[ PROVED] a  (<time> s)", "in <time> s", "budget of 60 s", "x = 0.5", "1.5 sx"]


def test_session_runner_keeps_exit_status_and_separates_outputs(tmp_path):
    cmds = [Command(1, "echo one; echo two >&2"), Command(2, "false"), Command(3, "echo $?"),
            Command(4, "printf 'no newline'")]
    outputs, _ = _run_session(cmds, tmp_path)
    assert [normalize(o.splitlines()) for o in outputs] == [["one", "two"], [], ["1"], ["no newline"]]


# ---------------------------------------------------------------------------------------------
# packaging facts the README relies on


def test_license_file_matches_the_declared_license():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "Copyright (c) 2026 the symbolic-bn developers" in text
    assert re.search(r'^license = "MIT"$', (ROOT / "pyproject.toml").read_text(encoding="utf-8"), re.M)


def test_package_docstring_lists_every_public_module():
    import pkgutil

    import symbolic_bn
    public = [m.name for m in pkgutil.iter_modules(symbolic_bn.__path__) if not m.name.startswith("_")]
    missing = [name for name in public if f"symbolic_bn.{name}`" not in symbolic_bn.__doc__]
    assert not missing, f"symbolic_bn's docstring does not mention: {missing}"


def test_public_methods_of_certificates_have_docstrings():
    from symbolic_bn.obligations.certificate import Certificate, Obligation
    missing = []
    for cls in (Certificate, Obligation):
        for name, member in vars(cls).items():
            if name.startswith("_") and name not in ("__iter__", "__len__", "__getitem__"):
                continue
            fn = member.fget if isinstance(member, property) else member
            if (inspect.isfunction(fn)) and not (fn.__doc__ or "").strip():
                missing.append(f"{cls.__name__}.{name}")
    assert not missing


def test_the_readme_glossary_is_the_tools_glossary():
    # issue 15: every term the CLI prints is explained once, in the README as by `explain`
    from symbolic_bn import glossary
    text = README.read_text(encoding="utf-8")
    assert "## Glossary" in text
    section = text[text.index("## Glossary"):]
    assert section.rstrip() == glossary.markdown().rstrip(), \
        "README's Glossary section differs from glossary.markdown(): regenerate it " \
        "(symbolic-bn glossary --markdown)"
