"""Token buckets per client address, shared by every process of a database, for public keys.

A public key ships in a storefront's JavaScript, so anyone can copy it; what bounds a
copier is how fast one address may call. Each address has a bucket of ``burst``
tokens refilled at ``per_second``; a call takes one or gets a 429 saying when the
next token is there. The buckets live in a fixed-size file beside the database,
mapped into each process and updated under an exclusive file lock, so every
gunicorn worker draws from the same bucket for a few microseconds per call (a table
would put a write, and the database's write lock, on every slate). On PostgreSQL,
where hosts share nothing but the database, ``StoreBuckets`` keeps them in an
unlogged table instead: one upsert of one row per call, no lock beyond that row.

The file is a small open-addressed hash table. A bucket that has refilled to
``burst`` is the same as no bucket, so its slot is free for another address; when
every probed slot holds a draining bucket, the fullest is taken over, which errs
towards letting a call through.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import math
import mmap
import os
import struct
import threading
from dataclasses import dataclass

from experiments.errors import RetryLater

SLOTS = 16_384  # addresses tracked at once (about 400 KB of file)
PROBES = 8  # slots looked at per address
RECORD = struct.Struct("<Qdd")  # address hash (0: free), tokens, last update (clock seconds)


class RateLimited(RetryLater):
    """Over the per-address rate; ``retry_after`` is the whole seconds until the next token."""


@dataclass(frozen=True)
class Rate:
    per_second: float = 10.0
    burst: float = 100.0

    def __post_init__(self):
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError("a rate needs per_second > 0 and burst >= 1")


def _digest(address: str, signed: bool = False) -> int:
    return int.from_bytes(hashlib.blake2b(address.encode(), digest_size=8).digest(), "little", signed=signed)


def _limited(rate: Rate, tokens: float) -> RateLimited:
    retry = max(1, math.ceil((1.0 - tokens) / rate.per_second))
    return RateLimited(f"too many calls from this address with a public key (at most {rate.per_second:g} a second, "
                       f"bursts of {rate.burst:g}); try again in {retry} s", retry)


class StoreBuckets:
    """The same buckets kept by the database (``take_token``): on PostgreSQL every host draws from one bucket."""

    def __init__(self, store, rate: Rate):
        self.store, self.rate = store, rate

    def take(self, address: str) -> None:
        """Take one token from the address's bucket, or raise ``RateLimited``."""
        allowed, tokens = self.store.take_token(_digest(address, signed=True), self.rate.per_second, self.rate.burst)
        if not allowed:
            raise _limited(self.rate, tokens)


class TokenBuckets:
    """Take tokens per address; ``path`` None keeps the buckets in this process only (in-memory databases)."""

    def __init__(self, path: str | None, rate: Rate, clock):
        self.path, self.rate, self.clock = path, rate, clock
        self._lock = threading.Lock()  # threads of one process share the file's lock
        self._pid, self._fd, self._map = None, None, None

    def take(self, address: str) -> None:
        """Take one token from the address's bucket, or raise ``RateLimited``."""
        digest = _digest(address) or 1
        now = self.clock.now()
        with self._lock, self._locked() as table:
            offset = self._slot(table, digest, now) * RECORD.size
            held, tokens, at = RECORD.unpack_from(table, offset)
            tokens = self._refilled(tokens, at, now) if held == digest else self.rate.burst
            allowed = tokens >= 1.0
            RECORD.pack_into(table, offset, digest, tokens - 1.0 if allowed else tokens, now)
        if not allowed:
            raise _limited(self.rate, tokens)

    def _refilled(self, tokens: float, at: float, now: float) -> float:
        return min(self.rate.burst, tokens + max(0.0, now - at) * self.rate.per_second)

    def _slot(self, table, digest: int, now: float) -> int:
        """The address's slot: its own, else a free or refilled one, else the fullest probed."""
        start, spare, fullest, most = digest % SLOTS, None, None, -1.0
        for i in range(PROBES):
            index = (start + i) % SLOTS
            held, tokens, at = RECORD.unpack_from(table, index * RECORD.size)
            if held == digest:
                return index
            level = self.rate.burst if held == 0 else self._refilled(tokens, at, now)
            if spare is None and level >= self.rate.burst:
                spare = index
            if level > most:
                fullest, most = index, level
        return spare if spare is not None else fullest

    @contextlib.contextmanager
    def _locked(self):
        if self.path is None:
            if self._map is None:
                self._map = bytearray(SLOTS * RECORD.size)
            yield self._map
            return
        self._open()
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield self._map
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _open(self) -> None:
        """Map the file once per process: a forked worker must not share its parent's lock (flock is per open file)."""
        if self._pid == os.getpid():
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        size = SLOTS * RECORD.size
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.fstat(fd).st_uid != os.geteuid():  # someone else's file in a shared folder: not to be trusted
                    raise PermissionError(f"{self.path} belongs to another user; set SILENT_PUBLIC_RATE_FILE")
                if os.fstat(fd).st_size != size:  # new, or not ours: start with every bucket free
                    os.ftruncate(fd, 0)
                    os.ftruncate(fd, size)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except BaseException:
            os.close(fd)
            raise
        self._pid, self._fd, self._map = os.getpid(), fd, mmap.mmap(fd, size)
