"""Injectable clocks: real time for serving, virtual time for simulations and tests."""
from __future__ import annotations

import threading
import time


class SystemClock:
    """Wall-clock seconds since the epoch."""

    def now(self) -> float:
        return time.time()


class DatabaseClock:
    """The database server's clock, for many hosts that must agree on when a reward window closes.

    Asking the server on every call would cost a round trip per request, so the
    offset between the server's clock and this host's is measured every
    ``refresh_seconds`` (from the middle of the round trip) and added to local time.
    """

    def __init__(self, store, refresh_seconds: float = 10.0):
        self.store, self.refresh_seconds = store, refresh_seconds
        self._offset, self._measured_at = 0.0, float("-inf")
        self._lock = threading.Lock()

    def now(self) -> float:
        local = time.time()
        if time.monotonic() - self._measured_at >= self.refresh_seconds:
            with self._lock:
                if time.monotonic() - self._measured_at >= self.refresh_seconds:
                    self._measure()
            local = time.time()
        return local + self._offset

    def _measure(self) -> None:
        before = time.time()
        server = self.store.db_now()
        after = time.time()
        self._offset = server - (before + after) / 2
        self._measured_at = time.monotonic()


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
