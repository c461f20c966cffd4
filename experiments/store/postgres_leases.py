"""Leases on PostgreSQL: who owns an experiment's learning, across any number of hosts.

A lease is a session advisory lock taken on a connection of its own (never a
pooled one, never through a transaction pooler): the server releases it the
moment that connection ends, so when its holder dies (kill -9, a lost host) the
next learner's try succeeds within one pass. Each change of owner bumps the
lease's token in ``leases``; a publish checks the token in its own transaction,
so a learner that lost its lease (its connection dropped while it went on
learning) can never publish again.
"""
from __future__ import annotations

import threading

import psycopg

from experiments.store.holders import this_process
from experiments.store.interface import PublishRefused
from experiments.store.sqlite import dumps, loads

LOCK_SPACE = 3  # hashtextextended seed: lease locks never collide with the store's other advisory locks


class PostgresLeases:
    """Lease methods of ``PostgresStore`` (same interface as the SQLite engine's, in ``sqlite.py``)."""

    per_experiment_leases = True  # the learner leases each experiment, so learners on many hosts share the work

    def _lease_state(self):
        if not hasattr(self, "_lease_guard"):
            self._lease_guard = threading.Lock()
            self._lease_conn: psycopg.Connection | None = None
            self._owned: dict[str, int] = {}
        return self._lease_guard

    def _lease_connection(self) -> psycopg.Connection:
        if self._lease_conn is None or self._lease_conn.closed:
            self._owned.clear()  # a new session holds nothing
            self._lease_conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        return self._lease_conn

    def _lease_lost(self) -> None:
        if self._lease_conn is not None:
            self._lease_conn.close()
        self._lease_conn = None
        self._owned.clear()

    def acquire_lease(self, name: str, owner: str, now: float, ttl: float) -> int | None:
        """Take or keep a lease; return its token, or None while another session holds it.

        ``now`` and ``ttl`` are the SQLite engine's: here a lease lasts exactly as long as its connection.
        """
        with self._lease_state():
            try:
                conn = self._lease_connection()
                if name in self._owned:
                    conn.execute("SELECT 1")  # the session, and so the lock, is still there
                    return self._owned[name]
                if not conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, %s))",
                                    (name, LOCK_SPACE)).fetchone()[0]:
                    return None
                token = conn.execute(
                    "INSERT INTO leases (name, owner, token, process, at) VALUES (%s, %s, 1, %s,"
                    " extract(epoch FROM now())) ON CONFLICT (name) DO UPDATE SET token = leases.token + 1,"
                    " owner = EXCLUDED.owner, process = EXCLUDED.process, at = EXCLUDED.at RETURNING token",
                    (name, owner, dumps(this_process()))).fetchone()[0]
            except psycopg.OperationalError:
                self._lease_lost()
                return None
            self._owned[name] = token
            return token

    def release_lease(self, name: str, owner: str) -> None:
        """Hand a lease back at once (its token stays, so the next owner's is higher)."""
        with self._lease_state():
            if name not in self._owned or self._lease_conn is None:
                return
            try:
                self._lease_conn.execute("UPDATE leases SET owner = '' WHERE name = %s AND owner = %s", (name, owner))
                self._lease_conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, %s))", (name, LOCK_SPACE))
            except psycopg.OperationalError:
                self._lease_lost()
                return
            del self._owned[name]

    def release_leases(self, owner: str) -> None:
        """Hand back every lease this store holds."""
        for name in list(getattr(self, "_owned", {})):
            self.release_lease(name, owner)

    def live_lease(self, name: str, now: float) -> dict | None:
        """Return the holder (owner, token, process) while some session holds the lease, else None."""
        row = self.conn.execute(
            "SELECT owner, token, process FROM leases WHERE name = ? AND EXISTS (SELECT 1 FROM pg_locks p"
            " WHERE p.locktype = 'advisory' AND p.granted AND p.objsubid = 1"
            " AND p.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND ((p.classid::bigint << 32) | p.objid::bigint) = hashtextextended(?, ?))",
            (name, name, LOCK_SPACE)).fetchone()
        return {"owner": row[0], "token": row[1], "process": loads(row[2])} if row else None

    def _check_lease(self, conn, lease) -> None:
        """Inside a publish: refuse unless ``lease`` = (name, owner, token) is still the lease's newest grant."""
        name, owner, token = lease
        row = conn.execute("SELECT owner, token FROM leases WHERE name = ? FOR UPDATE", (name,)).fetchone()
        if row is None or row[0] != owner or row[1] != token:
            raise PublishRefused(f"the {name} lease now belongs to {(row and row[0]) or 'nobody'}", lease_lost=True)

    def close_leases(self) -> None:
        with self._lease_state():
            self._lease_lost()
