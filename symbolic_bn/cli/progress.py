"""Progress lines on stderr for ``symbolic-bn`` runs longer than a second (only on a terminal)."""
from __future__ import annotations

import sys
import threading
import time


class Progress:
    """Progress lines on stderr for runs longer than a second; silent when stderr is not a
    terminal or when ``quiet``."""

    def __init__(self, quiet: bool = False, stream=None):
        self.stream = stream or sys.stderr
        try:
            tty = self.stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        self.enabled = tty and not quiet
        self.label = ""
        self._t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = None
        self._lock = threading.Lock()
        self._shown = False

    def set(self, label: str) -> None:
        self.label = label

    def _run(self):
        if self._stop.wait(1.0):
            return
        while not self._stop.is_set():
            with self._lock:
                self.stream.write(f"\r\033[Ksymbolic-bn: {self.label} … {time.monotonic() - self._t0:.0f} s")
                self.stream.flush()
                self._shown = True
            self._stop.wait(0.5)

    def __enter__(self):
        if self.enabled:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            with self._lock:
                if self._shown:
                    self.stream.write("\r\033[K")
                    self.stream.flush()
        return False
