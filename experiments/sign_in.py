"""Guards around password sign-in: attempt limits, a cap on concurrent hashing, server-side sessions.

A password check costs a few hundred milliseconds of scrypt on purpose, which makes
sign-in the cheapest way to keep a server busy. So failed attempts are counted per
client address and per user name in the database (every worker sees the same
counts) and refused with a retry time once over the limit, before any hashing; and
at most ``slots`` password checks run at once across all processes of a database
(non-blocking file locks), so a flood of sign-ins can never occupy every worker the
shop's slate requests need. Sessions live in the database: signing out ends one for
good, and one idle longer than the limit is over.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import tempfile
import threading
from dataclasses import dataclass

from experiments.errors import RetryLater
from experiments.store import is_url


class TooManyAttempts(RetryLater):
    """Over the limit of failed sign-ins; ``retry_after`` says when the oldest one stops counting."""

    code = "too_many_attempts"


class Busy(RetryLater):
    """Every password-checking slot is taken; try again in a moment."""

    status = 503
    code = "busy"


@dataclass(frozen=True)
class Limits:
    """Failed sign-ins allowed per user name and per client address within ``window_seconds``."""

    per_user: int = 5
    per_address: int = 20
    window_seconds: float = 900.0
    idle_seconds: float = 1800.0  # a session unused this long is over
    slots: int = 1  # password checks at once, across every process of the database


class AttemptLimiter:
    """Count failed sign-ins per scope (``user:NAME``, ``address:IP``) in the database."""

    def __init__(self, store, clock, limits: Limits):
        self.store, self.clock, self.limits = store, clock, limits

    def check(self, address: str, name: str) -> None:
        """Raise ``TooManyAttempts`` when either the address or the name is over its limit."""
        since = self.clock.now() - self.limits.window_seconds
        for scope, limit, what in ((f"address:{address}", self.limits.per_address, "from this address"),
                                   (f"user:{name.lower()}", self.limits.per_user, "for this user name")):
            count, oldest = self.store.conn.execute(
                "SELECT count(*), min(at) FROM sign_in_failures WHERE scope = ? AND at > ?", (scope, since)).fetchone()
            if count >= limit:
                retry = max(1, int(oldest + self.limits.window_seconds - self.clock.now()) + 1)
                raise TooManyAttempts(f"Too many failed sign-ins {what}; try again in {_minutes(retry)}.", retry)

    def failed(self, address: str, name: str) -> None:
        now = self.clock.now()
        with self.store.write_lock():
            self.store.conn.execute("DELETE FROM sign_in_failures WHERE at <= ?", (now - self.limits.window_seconds,))
            self.store.conn.executemany("INSERT INTO sign_in_failures (scope, at) VALUES (?, ?)",
                                        [(f"address:{address}", now), (f"user:{name.lower()}", now)])

    def succeeded(self, name: str) -> None:
        """A right password forgives the name's earlier mistakes (not the address's)."""
        with self.store.write_lock():
            self.store.conn.execute("DELETE FROM sign_in_failures WHERE scope = ?", (f"user:{name.lower()}",))


def _minutes(seconds: int) -> str:
    return f"{seconds} seconds" if seconds < 120 else f"{round(seconds / 60)} minutes"


class HashingSlots:
    """At most ``count`` password checks at once across processes: non-blocking locks on files by the database."""

    def __init__(self, database: str, count: int):
        self.count = count
        if is_url(database):  # slots guard this host's CPU: its processes share files in the temporary folder
            digest = hashlib.sha256(database.encode()).hexdigest()[:16]
            database = os.path.join(tempfile.gettempdir(), f"silent-sign-in-{os.geteuid()}-{digest}")
        self.paths = [] if database == ":memory:" else [f"{database}.sign-in-{i}.lock" for i in range(count)]
        self._local = threading.BoundedSemaphore(count)  # threads of one process share its open files

    @contextlib.contextmanager
    def hold(self):
        """Hold a free slot for the block, or raise ``Busy`` at once (never wait: waiting holds a worker)."""
        if not self._local.acquire(blocking=False):
            raise Busy("The server is busy checking other sign-ins; try again in a moment.")
        try:
            fd = self._lock_any()
            try:
                yield
            finally:
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)
        finally:
            self._local.release()

    def _lock_any(self) -> int | None:
        for path in self.paths:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                os.close(fd)
        if self.paths:
            raise Busy("The server is busy checking other sign-ins; try again in a moment.")
        return None


class Sessions:
    """Dashboard sessions kept in the database; the cookie carries a random token, the table its SHA-256."""

    TOUCH_SECONDS = 60.0  # last use is written at most this often, not on every page

    def __init__(self, store, clock, idle_seconds: float):
        self.store, self.clock, self.idle_seconds = store, clock, idle_seconds

    def start(self, user_id: int) -> str:
        token, now = secrets.token_urlsafe(32), self.clock.now()
        with self.store.write_lock():
            self.store.conn.execute("DELETE FROM sessions WHERE last_seen < ? OR ended_at IS NOT NULL",
                                    (now - self.idle_seconds,))
            self.store.conn.execute("INSERT INTO sessions (hash, user_id, created_at, last_seen) VALUES (?, ?, ?, ?)",
                                    (_digest(token), user_id, now, now))
        return token

    def user_id(self, token: str | None) -> int | None:
        """Return the session's user, or None when it ended, idled out or never existed."""
        if not token:
            return None
        row = self.store.query_one("SELECT user_id, last_seen, ended_at FROM sessions WHERE hash = ?",
                                   (_digest(token),))
        now = self.clock.now()
        if row is None or row["ended_at"] is not None or now - row["last_seen"] > self.idle_seconds:
            return None
        if now - row["last_seen"] >= self.TOUCH_SECONDS:
            with self.store.write_lock():
                self.store.conn.execute("UPDATE sessions SET last_seen = ? WHERE hash = ?", (now, _digest(token)))
        return row["user_id"]

    def end(self, token: str | None) -> None:
        if token:
            with self.store.write_lock():
                self.store.conn.execute("UPDATE sessions SET ended_at = ? WHERE hash = ?",
                                        (self.clock.now(), _digest(token)))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
