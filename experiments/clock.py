"""Injectable clocks: real time for serving, virtual time for simulations and tests."""
from __future__ import annotations

import threading
import time


class SystemClock:
    """Wall-clock seconds since the epoch."""

    def now(self) -> float:
        return time.time()


class VirtualClock:
    """A clock that only moves when told to, so simulated days take milliseconds."""

    def __init__(self, start: float = 1_767_225_600.0):  # 2026-01-01T00:00:00Z
        self.start = start
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._now += float(seconds)
            return self._now

    def set(self, when: float) -> None:
        with self._lock:
            self._now = max(self._now, float(when))
