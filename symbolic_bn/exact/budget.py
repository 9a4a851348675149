"""Time budgets: a decision that runs out of time is 'undecided', never 'proved'.

* :func:`check_budget` validates a user-supplied budget once, for every entry point
  (``prove``, ``prove_all_sizes``, ``bounds.prove``, ``check_*``, ``crosscheck``): a positive
  finite number of seconds, or ``None`` / ``math.inf`` for "no limit".  Anything else (a bool,
  NaN, zero, a negative number, a string) is refused with a one-line ``ValueError`` naming the
  argument.
* :func:`time_budget` interrupts the enclosed pure-Python computation with
  :class:`BudgetExceeded` once its time has run out.

``time_budget`` uses the process's real-time interval timer (``setitimer(ITIMER_REAL)`` and
``SIGALRM``), so it bounds only work in the main thread of a POSIX process; elsewhere the block
runs unbounded.  Guarantees, whatever happens inside the block or when the alarm fires:

* on exit the ``SIGALRM`` handler and the timer are what they were on entry -- an enclosing
  budget is re-armed with the time it has left, a timer set by someone else is re-armed with
  its remaining time -- even when the alarm fires during set-up (a tiny budget) or tear-down;
  an alarm of this budget that arrives late (after the block's work is done) is ignored and
  never reaches the restored handler;
* a nested budget never extends the enclosing one (its deadline is the earlier of the two);
* an alarm does not interrupt torch's or JAX's own Python code: raised in the middle of their
  bookkeeping (a dispatch mode pushed and not yet popped), an exception leaves global state that
  breaks every later trace in the process ("'PythonKeyTracer' object has no attribute 'graph'").
  Such an alarm is postponed, a millisecond at a time, until other code (the user's, ours) runs
  -- for at most :data:`POSTPONE_LIMIT_SECONDS` past the deadline, after which it lands anyway;
  the exception then unwinds through the libraries as any error of traced code does.  So is an
  alarm inside a finalizer or a weakref callback, where Python would print and drop it;
* inside :func:`untrusted_code` an alarm that has fired keeps firing every few milliseconds until
  the user's code is left, and the user's frames are traced meanwhile: a line of an ``except``
  clause that runs while it handles the budget's exception raises it again, so a retry loop
  with a bare ``except:`` cannot swallow the budget (the re-raise leaves the clause's ``try``).
  Two such loops nested in each other can still outlast it (module limit, README).
* budgets longer than :data:`MAX_TIMER_SECONDS` (about 32 years, well inside what
  ``setitimer`` can represent -- about 9.2e9 s with CPython on 64-bit Linux) and ``math.inf``
  mean "no limit": the block runs without a timer of its own (an enclosing budget still
  applies).
"""
from __future__ import annotations

import contextlib
import math
import numbers
import os
import signal
import sys
import threading
import time


class BudgetExceeded(Exception):
    """Raised inside a :func:`time_budget` block when its time has run out."""


class _BudgetExceededInUntrustedCode(BaseException):
    """What the alarm raises while :func:`untrusted_code` runs (a user's function): not an
    Exception, so the user's ``except Exception:`` cannot swallow it (a retry loop would otherwise
    outlive every budget); :func:`untrusted_code` turns it back into BudgetExceeded."""


#: What the budget raises inside :func:`untrusted_code`: a wrapper of the user's function that
#: turns BaseExceptions into errors of its own must let this one pass unchanged (it is the
#: budget running out, an 'undecided', never a fault of the function).
BUDGET_INTERRUPT = _BudgetExceededInUntrustedCode

#: Budgets above this many seconds are treated as "no limit" (setitimer cannot take much more).
MAX_TIMER_SECONDS = 1e9
#: Shortest timer ever armed: a budget that is (nearly) used up still fires, and promptly.
_MIN_TIMER_SECONDS = 1e-6
#: How long an alarm that arrived inside a protected library is postponed (then tried again).
_POSTPONE_SECONDS = 1e-3
#: ... but never beyond this many seconds past the deadline: code that loops inside torch (or in
#: a finalizer) would otherwise never be stopped; the alarm then lands wherever it is.
POSTPONE_LIMIT_SECONDS = 2.0
#: How often an alarm that fired inside the user's code fires again until that code is left.
_REFIRE_SECONDS = 2e-3
#: Libraries whose own Python code an alarm must not interrupt (module docstring).
PROTECTED_LIBRARIES = ("torch", "functorch", "jax", "jaxlib")
_EXTRA_PROTECTED_DIRS: list = []  # for tests: directories treated like a protected library's
_REFIRING = [False]  # an alarm of untrusted_code() is re-armed every _REFIRE_SECONDS
_TRACING = []  # [the trace function to restore] while the user's frames are traced
_BOUNDARIES = []  # the frames whose `with untrusted_code()` is active, innermost last
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _protected_dirs() -> tuple:
    dirs = list(_EXTRA_PROTECTED_DIRS)
    for name in PROTECTED_LIBRARIES:
        path = getattr(sys.modules.get(name), "__file__", None)
        if path:
            dirs.append(os.path.dirname(os.path.abspath(path)) + os.sep)
    return tuple(dirs)


#: Where an exception is printed as "Exception ignored in ..." and dropped (finalizers, weakref
#: callbacks run by the garbage collector): an alarm handled there would be lost for good.
_DROPPING_FILES = (os.sep + "weakref.py", os.sep + "_weakrefset.py")


def _in_protected_library(frame) -> bool:
    dirs = _protected_dirs()
    return bool(dirs) and frame.f_code.co_filename.startswith(dirs)


def _must_postpone(frame) -> bool:
    """True when the alarm interrupted a protected library, or code whose exceptions are dropped."""
    if frame is None:
        return False
    code = frame.f_code
    return (code.co_name == "__del__" or code.co_filename.endswith(_DROPPING_FILES)
            or _in_protected_library(frame))


def check_budget(value, name: str = "budget") -> float | None:
    """Validate a time budget in seconds: a positive finite number, or ``None``/``inf`` (no limit).

    Returns the budget as a float, or ``None`` for "no limit".  Raises ``ValueError`` naming
    ``name`` for a bool, a non-number, NaN, zero or a negative number.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a positive number of seconds, inf or None (no limit); "
                         f"got {value!r}")
    try:
        seconds = float(value)
    except (OverflowError, ValueError, TypeError):  # e.g. an enormous Fraction
        seconds = math.inf if value > 0 else -math.inf
    if math.isnan(seconds):
        raise ValueError(f"{name} must be a positive number of seconds, inf or None (no limit); "
                         f"got NaN")
    if not seconds > 0:
        raise ValueError(f"{name} must be a positive number of seconds, inf or None (no limit); "
                         f"got {value!r}")
    return None if math.isinf(seconds) else seconds


class _Budget:
    """One active :func:`time_budget` block (an entry of the budget stack)."""

    __slots__ = ("seconds", "deadline", "active")

    def __init__(self, seconds, deadline):
        self.seconds = seconds
        self.deadline = deadline
        self.active = True


_STACK: list = []  # active budgets of the main thread, innermost last
_UNTRUSTED_DEPTH = [0]  # > 0 while untrusted_code() runs


def _reraise_in_except_clauses(frame, event, arg):
    """Trace function of the user's frames once the budget is spent: a line that runs while the
    budget's exception is being handled (inside the ``except`` that caught it) raises it again.
    A new frame is traced when the user's code called it and it is the user's too."""
    if event == "call":
        back = frame.f_back
        if back is None or back.f_trace is not _reraise_in_except_clauses or _not_users(frame):
            return None
    elif event == "line" and isinstance(sys.exc_info()[1], _BudgetExceededInUntrustedCode):
        raise _BudgetExceededInUntrustedCode("time budget exceeded (the function caught it)")
    return _reraise_in_except_clauses


def _not_users(frame) -> bool:
    """Our own code and the protected libraries: they pass the exception on, never trace them."""
    return frame.f_code.co_filename.startswith(_PACKAGE_DIR) or _in_protected_library(frame)


def _trace_user_frames(frame):
    """Trace the user's frames on the stack from ``frame`` (the interrupted one) up to the
    statement that entered :func:`untrusted_code`, and the frames they call from now on."""
    if not _TRACING:
        _TRACING.append(sys.gettrace())
    sys.settrace(_reraise_in_except_clauses)
    boundary = _BOUNDARIES[-1] if _BOUNDARIES else None
    while frame is not None and frame is not boundary:
        if not _not_users(frame):
            frame.f_trace = _reraise_in_except_clauses
        frame = frame.f_back


def _stop_tracing():
    if _TRACING:
        previous = _TRACING[0]
        sys.settrace(previous)  # before the saved one is forgotten: an alarm may end this early
        _TRACING.clear()


@contextlib.contextmanager
def untrusted_code():
    """Run a user's function under the enclosing budget so that it cannot outlive it.

    While the block runs the alarm raises an exception that ``except Exception`` does not catch;
    it leaves the block as :class:`BudgetExceeded`.  A function that swallows it anyway (a bare
    ``except:``) is interrupted again every few milliseconds until its code is left, and one that
    returns after the deadline also gives BudgetExceeded.  Two such loops nested in each other
    can still outlast the budget (the outer ``except`` runs after the re-raise, untraced: a trace
    function that raises is switched off by CPython), and code stuck inside a C call is outside
    any in-process budget; the CLI's child-process watchdog stops both.
    """
    mark = len(_BOUNDARIES)
    _UNTRUSTED_DEPTH[0] += 1
    try:
        _BOUNDARIES.append(sys._getframe(2))  # above contextlib's __enter__: the with statement
        yield
    except _BudgetExceededInUntrustedCode as exc:
        raise BudgetExceeded(str(exc)) from None
    finally:
        _UNTRUSTED_DEPTH[0] -= 1  # no call before it: an alarm now raises BudgetExceeded
        del _BOUNDARIES[mark:]
        if not _UNTRUSTED_DEPTH[0]:
            try:
                if _REFIRING[0]:
                    _REFIRING[0] = False
                    signal.setitimer(signal.ITIMER_REAL, 0)  # the budget is spent: nothing to arm
                    _consume_pending_alarm()
            finally:  # a last alarm (BudgetExceeded, as intended) must not leave tracing on
                _stop_tracing()
    if _STACK and _STACK[-1].active and time.monotonic() >= _STACK[-1].deadline:
        raise BudgetExceeded(f"time budget of {_STACK[-1].seconds:g} s exceeded (inside the user's function)")


def _timer_supported() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def _consume_pending_alarm():
    """Take a SIGALRM that was generated but not yet delivered (it is ours: the timer is off)."""
    if hasattr(signal, "sigtimedwait"):
        signal.sigtimedwait({signal.SIGALRM}, 0)


@contextlib.contextmanager
def time_budget(seconds: float | None):
    """Interrupt the enclosed (pure-Python) computation after ``seconds`` with BudgetExceeded.

    ``seconds``: a positive number, or ``None`` / ``math.inf`` / anything above
    :data:`MAX_TIMER_SECONDS` for no limit of its own (an enclosing budget still applies).
    Zero or a negative number is a budget already used up: BudgetExceeded is raised on entry
    (never "no limit").  NaN, bools and non-numbers are refused (``ValueError``).  See the
    module docstring for what is restored on exit.
    """
    if isinstance(seconds, numbers.Real) and not isinstance(seconds, bool) and seconds <= 0:
        raise BudgetExceeded("time budget exhausted before the computation started")
    seconds = check_budget(seconds, "seconds")
    if seconds is not None and seconds > MAX_TIMER_SECONDS:
        seconds = None
    if seconds is None or not _timer_supported():
        yield
        return
    now = time.monotonic()
    deadline = now + seconds
    if _STACK and _STACK[-1].deadline < deadline:  # nested: never extend the enclosing budget
        deadline = _STACK[-1].deadline
    state = _Budget(seconds, deadline)

    def _handler(signum, frame):
        # A no-op once the block is being left: an alarm whose handling in Python was delayed
        # into the tear-down must neither interrupt it nor reach the handler restored after it.
        if not state.active:
            return
        if _must_postpone(frame) and time.monotonic() < state.deadline + POSTPONE_LIMIT_SECONDS:
            signal.setitimer(signal.ITIMER_REAL, _POSTPONE_SECONDS)
            return
        if _UNTRUSTED_DEPTH[0]:
            _REFIRING[0] = True
            signal.setitimer(signal.ITIMER_REAL, _REFIRE_SECONDS)
            _trace_user_frames(frame)
            raise _BudgetExceededInUntrustedCode(f"time budget of {seconds:g} s exceeded")
        raise BudgetExceeded(f"time budget of {seconds:g} s exceeded")

    previous_handler = None
    foreign_timer = (0.0, 0.0)
    installed = armed = False
    # Everything that changes process state happens inside the try, so that an alarm handled at
    # any point (even right after setitimer returns) still runs the tear-down.
    try:
        if not _STACK:  # a timer someone else armed is re-armed with its remaining time on exit
            foreign_timer = signal.getitimer(signal.ITIMER_REAL)
        previous_handler = signal.signal(signal.SIGALRM, _handler)
        installed = True
        _STACK.append(state)
        armed = True
        signal.setitimer(signal.ITIMER_REAL, max(deadline - time.monotonic(), _MIN_TIMER_SECONDS))
        yield
    finally:
        state.active = False  # first statement, no call before it: our handler is now a no-op
        if armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            _consume_pending_alarm()
            _REFIRING[0] = False  # what is armed from here on is an enclosing budget's timer
        if state in _STACK:
            _STACK.remove(state)
        if installed:
            # CPython runs the Python handlers of signals already received before it changes a
            # handler, so a late alarm of ours goes to _handler (inactive), not to the previous.
            signal.signal(signal.SIGALRM, previous_handler)
        if armed and _STACK:  # re-arm the enclosing budget with the time it has left
            signal.setitimer(signal.ITIMER_REAL,
                             max(_STACK[-1].deadline - time.monotonic(), _MIN_TIMER_SECONDS))
        elif armed and foreign_timer[0] > 0:
            left = foreign_timer[0] - (time.monotonic() - now)
            signal.setitimer(signal.ITIMER_REAL, max(left, _MIN_TIMER_SECONDS), foreign_timer[1])
