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
* budgets longer than :data:`MAX_TIMER_SECONDS` (about 32 years, well inside what
  ``setitimer`` can represent -- about 9.2e9 s with CPython on 64-bit Linux) and ``math.inf``
  mean "no limit": the block runs without a timer of its own (an enclosing budget still
  applies).
"""
from __future__ import annotations

import contextlib
import math
import numbers
import signal
import threading
import time


class BudgetExceeded(Exception):
    """Raised inside a :func:`time_budget` block when its time has run out."""


class _BudgetExceededInUntrustedCode(BaseException):
    """What the alarm raises while :func:`untrusted_code` runs (a user's function): not an
    Exception, so the user's ``except Exception:`` cannot swallow it (a retry loop would otherwise
    outlive every budget); :func:`untrusted_code` turns it back into BudgetExceeded."""


#: Budgets above this many seconds are treated as "no limit" (setitimer cannot take much more).
MAX_TIMER_SECONDS = 1e9
#: Shortest timer ever armed: a budget that is (nearly) used up still fires, and promptly.
_MIN_TIMER_SECONDS = 1e-6


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


@contextlib.contextmanager
def untrusted_code():
    """Run a user's function under the enclosing budget so that it cannot outlive it.

    While the block runs the alarm raises an exception that ``except Exception`` does not catch;
    it leaves the block as :class:`BudgetExceeded`.  A function that swallowed it anyway (a bare
    ``except:``) and returned after the deadline also gives BudgetExceeded (the alarm has been
    spent, so nothing else would stop what follows).  A bare ``except:`` loop that never returns
    cannot be stopped in-process.
    """
    _UNTRUSTED_DEPTH[0] += 1
    try:
        yield
    except _BudgetExceededInUntrustedCode as exc:
        raise BudgetExceeded(str(exc)) from None
    finally:
        _UNTRUSTED_DEPTH[0] -= 1
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
        if state.active:
            kind = _BudgetExceededInUntrustedCode if _UNTRUSTED_DEPTH[0] else BudgetExceeded
            raise kind(f"time budget of {seconds:g} s exceeded")

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
