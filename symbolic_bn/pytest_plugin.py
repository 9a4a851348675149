"""pytest plugin: the ``symbolic_bn_check`` fixture and the ``--symbolic-bn-report=PATH`` option.

Installed with the package (entry point ``symbolic_bn`` in the ``pytest11`` group), so a user's
suite needs no configuration::

    def test_my_backward(symbolic_bn_check):
        symbolic_bn_check.backward(my_backward, shape=(2, 3, 4))

    def test_my_forward(symbolic_bn_check):
        symbolic_bn_check.forward(my_forward)          # default shapes 1x2x3 and 2x3x4

``symbolic_bn_check.backward(fn, shape=None, *, shapes=None, **options)`` and ``.forward(...)``
are :func:`symbolic_bn.testing.assert_backward_correct` / ``assert_forward_correct``: they prove
``fn`` exactly (falling back to the numeric cross-check only for code the symbolic namespace
cannot run, see :mod:`symbolic_bn.testing`) and raise ``AssertionError`` naming each obligation
that is not proved once, a failed one with its exact counterexample.  ``shape`` is one (C, H, W)
tuple, ``shapes`` several; without either, :data:`symbolic_bn.testing.DEFAULT_SHAPES`.  Every other
keyword (``eps``, ``budget``, ``numeric``, ``points``, ``seed``, and options the checks gain later)
is passed through unchanged.  They return the certificates (and cross-check results) checked;
``symbolic_bn_check.results`` lists all of them for the current test.

``--symbolic-bn-report=PATH`` writes every certificate and cross-check result produced through the
fixture during the run (passed and failed tests alike) to PATH as one JSON object at the end of the
session::

    {"schema": "symbolic-bn/pytest-report", "version": 1, "symbolic_bn_version": "...",
     "ok": ..., "counts": {...}, "certificates": [{"test": NODEID, ...Certificate.to_dict()}],
     "crosschecks": [{"test": NODEID, ...CrosscheckResult.to_dict()}]}

``ok`` is true when at least one result was recorded and every one is ok.  The file is written
atomically (a temporary file in the same directory, then ``os.replace``): PATH holds either its
previous content or the complete new report, never a partial one.  PATH is checked before any
test runs: its directory must exist, PATH must not be a directory or a symbolic link, and an
existing file at PATH is replaced only if it is a previous symbolic-bn pytest report (a usage
error otherwise: the plugin never replaces a file it did not write).  Under pytest-xdist the
option is refused (the workers' results are not gathered).

Cost for suites that do not use it: this module imports only the standard library and pytest;
:mod:`symbolic_bn`'s checks are imported inside the fixture, on first use.  (Python imports the
package ``symbolic_bn`` itself to reach this module: ``symbolic_bn/__init__.py`` decides what that
costs.)
"""
from __future__ import annotations

import json
import os
import tempfile

import pytest

REPORT_SCHEMA = "symbolic-bn/pytest-report"
REPORT_VERSION = 1

_OPTION = "--symbolic-bn-report"


def pytest_addoption(parser):
    group = parser.getgroup("symbolic-bn", "symbolic-bn (exact checks of BatchNorm code)")
    group.addoption(_OPTION, dest="symbolic_bn_report", metavar="PATH", default=None,
                    help="write the certificates and cross-check results of the symbolic_bn_check "
                         "fixture in this run to PATH as one JSON file at the end of the session "
                         "(written atomically; replaces only a previous symbolic-bn report)")


class _Run:
    """What the session collects: (test node id, result) pairs, and where to write them."""

    def __init__(self, path):
        self.path = path
        self.entries = []
        self.message = None  # the terminal-summary line about the report


_RUN_KEY = pytest.StashKey[_Run]()


def _is_previous_report(path):
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and data.get("schema") == REPORT_SCHEMA


def _report_path_problem(path):
    """Why ``path`` cannot receive the report (None when it can)."""
    if os.path.islink(path):
        return f"{path} is a symbolic link"
    if os.path.isdir(path):
        return f"{path} is a directory"
    parent = os.path.dirname(path) or "."
    if not os.path.isdir(parent):
        return f"directory {parent} does not exist"
    if not os.access(parent, os.W_OK):
        return f"directory {parent} is not writable"
    if os.path.exists(path) and not _is_previous_report(path):
        return f"{path} exists and is not a symbolic-bn pytest report (refusing to replace it)"
    return None


def pytest_configure(config):
    path = config.getoption("symbolic_bn_report")
    if path is not None:
        if not path.strip():
            raise pytest.UsageError(f"{_OPTION}: PATH is empty")
        if config.getoption("numprocesses", default=None):  # pytest-xdist's -n
            raise pytest.UsageError(f"{_OPTION} does not support pytest-xdist (-n): run without -n")
        path = os.path.abspath(os.path.join(str(config.invocation_params.dir),
                                            os.path.expanduser(path)))
        problem = _report_path_problem(path)
        if problem:
            raise pytest.UsageError(f"{_OPTION}: {problem}")
    config.stash[_RUN_KEY] = _Run(path)


class SymbolicBNCheck:
    """The ``symbolic_bn_check`` fixture's value (see the module docstring)."""

    def __init__(self, nodeid, record):
        self._nodeid = nodeid
        self._record = record
        self.results = []

    def __repr__(self):
        return f"<symbolic_bn_check: {len(self.results)} result(s) in this test>"

    def backward(self, backward, shape=None, *, shapes=None, **options):
        """Assert ``backward(x, gamma, beta, grad_out, eps, xp) -> (dx, dgamma, dbeta)`` is
        Jᵀ·grad_out of the channel-first BatchNorm (:func:`symbolic_bn.testing.assert_backward_correct`)."""
        __tracebackhide__ = True
        return self._assert("backward", backward, shape, shapes, options)

    def forward(self, forward, shape=None, *, shapes=None, **options):
        """Assert ``forward(x, gamma, beta, eps, xp) -> y`` is the channel-first BatchNorm
        (:func:`symbolic_bn.testing.assert_forward_correct`)."""
        __tracebackhide__ = True
        return self._assert("forward", forward, shape, shapes, options)

    def _keep(self, result):
        self.results.append(result)
        self._record(self._nodeid, result)

    def _assert(self, role, fn, shape, shapes, options):
        __tracebackhide__ = True
        from symbolic_bn import testing  # here, not at plugin load: suites that never use it pay nothing

        who = f"symbolic_bn_check.{role}"
        if shape is not None and shapes is not None:
            raise TypeError(f"{who}: give shape or shapes, not both")
        if shape is not None:
            if isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__") or len(shape) != 3:
                raise ValueError(f"{who}: shape must be one (C, H, W) tuple of positive integers, "
                                 f"got {shape!r} (several shapes: shapes=[...])")
            shapes = [tuple(shape)]
        elif shapes is None:
            shapes = testing.DEFAULT_SHAPES
        named = {"eps": None, "numeric": None, "budget": testing.DEFAULT_BUDGET, "points": 8}
        named = {k: options.pop(k, default) for k, default in named.items()}
        return testing._assert_correct(role, fn, shapes=shapes, options=options, who=who,
                                       record=self._keep, **named)


@pytest.fixture
def symbolic_bn_check(request):
    """Exact checks of BatchNorm forward/backward code: ``symbolic_bn_check.backward(fn, shape=...)``,
    ``symbolic_bn_check.forward(fn, ...)``; results go to ``--symbolic-bn-report`` when given."""
    run = request.config.stash[_RUN_KEY]
    return SymbolicBNCheck(request.node.nodeid, lambda nodeid, result: run.entries.append((nodeid, result)))


def _report(entries):
    import symbolic_bn  # only reached when the session recorded results: already imported

    certificates, crosschecks = [], []
    for nodeid, result in entries:
        entry = {"test": nodeid, **result.to_dict()}
        (certificates if hasattr(result, "obligations") else crosschecks).append(entry)
    results = [r for _, r in entries]
    return {
        "schema": REPORT_SCHEMA,
        "version": REPORT_VERSION,
        "symbolic_bn_version": getattr(symbolic_bn, "__version__", None),
        "ok": bool(results) and all(r.ok for r in results),
        "counts": {"certificates": len(certificates), "crosschecks": len(crosschecks),
                   "ok": sum(1 for r in results if r.ok), "not_ok": sum(1 for r in results if not r.ok)},
        "certificates": certificates,
        "crosschecks": crosschecks,
    }


def _write_atomically(path, text):
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".symbolic-bn-report-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)  # our own temporary file
        except OSError:
            pass
        raise


def pytest_sessionfinish(session, exitstatus):
    run = session.config.stash.get(_RUN_KEY, None)
    if run is None or run.path is None:
        return
    problem = _report_path_problem(run.path)  # the file system may have changed during the run
    try:
        if problem:
            raise OSError(problem)
        text = json.dumps(_report(run.entries), indent=1, ensure_ascii=False) + "\n"
        _write_atomically(run.path, text)
    except (OSError, TypeError, ValueError) as exc:
        run.message = f"symbolic-bn: could not write the report to {run.path}: {exc}"
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.USAGE_ERROR
        return
    n = len(run.entries)
    run.message = f"symbolic-bn: wrote {n} result(s) to {run.path}"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    run = config.stash.get(_RUN_KEY, None)
    if run is not None and run.message:
        terminalreporter.write_line(run.message)
