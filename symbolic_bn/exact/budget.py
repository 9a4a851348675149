"""Time budgets: a decision that runs out of time is 'undecided', never 'proved'."""
from __future__ import annotations

import contextlib
import signal
import threading
import time


class BudgetExceeded(Exception):
    """Raised inside a :func:`time_budget` block when its time has run out."""


@contextlib.contextmanager
def time_budget(seconds: float | None):
    """Interrupt the enclosed (pure-Python) computation after ``seconds`` with BudgetExceeded.

    Uses a real-time interval timer, so it only works in the main thread of a process; elsewhere
    the block runs unbounded (the caller's process-level timeout then applies).
    """
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return
    now = time.monotonic()
    deadline = now + seconds
    outer = _DEADLINES[-1] if _DEADLINES else None
    if outer is not None and outer < deadline:  # nested: never extend the enclosing budget
        deadline = outer

    def _handler(signum, frame):
        raise BudgetExceeded(f"time budget of {seconds:g} s exceeded")

    previous = signal.signal(signal.SIGALRM, _handler)
    _DEADLINES.append(deadline)
    signal.setitimer(signal.ITIMER_REAL, max(deadline - now, 1e-6))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _DEADLINES.pop()
        signal.signal(signal.SIGALRM, previous)
        if _DEADLINES:  # re-arm the enclosing budget with the time it has left
            signal.setitimer(signal.ITIMER_REAL, max(_DEADLINES[-1] - time.monotonic(), 1e-6))


_DEADLINES: list = []
