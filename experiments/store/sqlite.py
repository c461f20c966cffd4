"""The SQLite store: WAL mode, one connection per thread, schema through migrations.

The decision log is the source of truth. Writes that must be all-or-nothing go
through ``transaction()`` (``BEGIN IMMEDIATE``), so a failed request leaves the
file as it was.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import sqlite3
import threading
import time

import orjson
import sqlite_utils

from bandit.encoding import action_text
from experiments.errors import NotFound, Unavailable
from experiments.store import holders
from experiments.store.sqlite_access import SqliteAccess
from experiments.store.interface import DuplicateKey, PublishRefused
from experiments.store.migrations import migrate
from experiments.store.sqlite_archive import ArchiveConflict, SqliteArchive
from experiments.store.sqlite_upkeep import KNOWN_SET_SECONDS, WAL_LIMIT_BYTES, SqliteUpkeep


def dumps(value) -> str:
    """Serialise JSON compactly (orjson: fast, and it refuses NaN by writing null)."""
    return orjson.dumps(value).decode()


loads = orjson.loads


def set_digest(text: str) -> str:
    """Name a candidate list by a hash of its JSON text."""
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


# A set written again marks it used: the clean-up after retention never deletes a set some process remembers.
INSERT_SET = ("INSERT INTO candidate_sets (hash, candidates, size, used_at) VALUES (?, ?, ?, ?)"
              " ON CONFLICT (hash) DO UPDATE SET used_at = excluded.used_at")


@functools.lru_cache(maxsize=64)
def _insert_sql(verb: str, table: str, cols: tuple) -> str:
    return f"{verb} INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"


def insert(conn: sqlite3.Connection, table: str, row: dict, verb: str = "INSERT") -> None:
    """Insert a dict as one row; the statement text is built once per column list."""
    conn.execute(_insert_sql(verb, table, tuple(row)), list(row.values()))


class Store(SqliteArchive, SqliteUpkeep, SqliteAccess):
    """All SQL of the service; one ``sqlite3`` connection per thread on one file."""

    engine = "sqlite"
    per_experiment_leases = False  # one learner per file: it holds the "learner" lease for every experiment

    def __init__(self, path: str, busy_timeout_ms: int = 30_000, wal_autocheckpoint: int = 1000,
                 create: bool = True, wal_limit_bytes: int = WAL_LIMIT_BYTES,
                 known_set_seconds: float = KNOWN_SET_SECONDS):
        """``create=False`` opens an existing database only (reading commands never create one)."""
        self.path = str(path)
        self.busy_timeout_ms = busy_timeout_ms
        self.wal_autocheckpoint = wal_autocheckpoint
        self.wal_limit_bytes = wal_limit_bytes
        self.known_set_seconds = known_set_seconds
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._thread_lock = threading.Lock()  # flock is per open file, not per thread
        self._known_sets: dict[str, float] = {}  # digest -> until when this process trusts it is stored
        self._lock_fd: int | None = None
        self._sets_cache: dict[str, list] = {}
        self._actions_cache: dict[str, list[str]] = {}
        self._open(create)

    def _open(self, create: bool) -> None:
        """Open (or create) the file and bring its schema up to date; say plainly when it cannot be opened."""
        if not create and self.path != ":memory:" and not os.path.isfile(self.path):
            raise Unavailable(f"database {self.path} does not exist (check --db; reading never creates one)",
                              field="db")
        try:
            migrate(self.db)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise Unavailable(f"cannot open database {self.path}: {exc}", field="db") from None

    # -- connections ---------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        conn.execute(f"PRAGMA wal_autocheckpoint={int(self.wal_autocheckpoint)}")
        conn.execute(f"PRAGMA journal_size_limit={int(self.wal_limit_bytes)}")
        conn.execute("PRAGMA cache_size=-16000")  # 16 MB: index pages of recent decisions stay hot
        conn.execute("PRAGMA foreign_keys=ON")
        with self._all_lock:
            self._all.append(conn)
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    @property
    def db(self) -> sqlite_utils.Database:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = sqlite_utils.Database(self.conn)
        return db

    @contextlib.contextmanager
    def write_lock(self):
        """Serialise writers of all processes on an OS file lock next to the database.

        SQLite's own busy handler polls with sleeps of 1 ms and more, which shows
        up in the tail latency when several workers commit at once; ``flock``
        wakes the next writer the moment the lock is free.
        """
        if self.path == ":memory:":
            yield
            return
        if self._lock_fd is None:
            self._lock_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        with self._thread_lock:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def transaction(self):
        """Run a block in one ``BEGIN IMMEDIATE`` transaction; roll back on any error."""
        conn = self.conn
        with self.write_lock():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._all.clear()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        self._local = threading.local()

    def query(self, sql: str, params=()) -> list[dict]:
        cursor = self.conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def query_one(self, sql: str, params=()) -> dict | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    # -- experiments ---------------------------------------------------------
    def get_experiment(self, key: str) -> dict | None:
        row = self.query_one("SELECT * FROM experiments WHERE key = ?", (key,))
        if row:
            row["spec"] = loads(row["spec"])
        return row

    def existing_experiment(self, key: str) -> dict:
        """Return an experiment's row, or raise the 404 every surface answers for an unknown key."""
        row = self.get_experiment(key)
        if row is None:
            raise NotFound(f"experiment {key!r} does not exist", field="key")
        return row

    def list_experiments(self) -> list[dict]:
        rows = self.query("SELECT * FROM experiments ORDER BY created_at, key")
        for row in rows:
            row["spec"] = loads(row["spec"])
        return rows

    def experiment_versions(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT key, version FROM experiments").fetchall())

    def save_experiment(self, row: dict, change: dict, actor: str, expected_version: int | None) -> None:
        """Insert or update an experiment and append its history row, atomically.

        ``expected_version`` guards against two admins overwriting each other.
        """
        values = {**row, "spec": dumps(row["spec"])}
        with self.transaction() as conn:
            current = conn.execute("SELECT version FROM experiments WHERE key = ?", (row["key"],)).fetchone()
            if (current[0] if current else None) != expected_version:
                raise DuplicateKey("version changed concurrently")
            insert(conn, "experiments", values, verb="INSERT OR REPLACE")
            conn.execute(
                "INSERT INTO experiment_history (experiment, version, status, spec, change, actor, at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (row["key"], row["version"], row["status"], values["spec"], dumps(change), actor, row["updated_at"]),
            )

    def history(self, key: str) -> list[dict]:
        rows = self.query("SELECT * FROM experiment_history WHERE experiment = ? ORDER BY id", (key,))
        for row in rows:
            row["spec"], row["change"] = loads(row["spec"]), loads(row["change"])
        return rows

    # -- decisions and rewards -----------------------------------------------
    def candidate_set(self, candidates: list[dict], digest: str | None = None) -> str:
        """Store a candidate list once per distinct content; return its hash."""
        digest, new = self.new_candidate_set(candidates, digest)
        if new:
            with self.write_lock():
                self.conn.execute(INSERT_SET, new)
            self._remember_set(digest)
        return digest

    def new_candidate_set(self, candidates: list[dict], digest: str | None = None) -> tuple[str, tuple | None]:
        """Return (hash, row to insert, or None when this process has stored the list lately).

        A caller that already knows the list's ``set_digest`` passes it, and a known
        list then costs nothing.
        """
        now = time.monotonic()
        if digest is not None and self._known_sets.get(digest, 0.0) > now:
            return digest, None
        text = dumps(candidates)
        digest = digest or set_digest(text)
        known = self._known_sets.get(digest, 0.0) > now
        return digest, None if known else (digest, text, len(candidates), time.time())

    def _remember_set(self, digest: str) -> None:
        if len(self._known_sets) > 100_000:
            self._known_sets.clear()
        self._known_sets[digest] = time.monotonic() + self.known_set_seconds

    def candidates(self, digest: str) -> list[dict]:
        """Return the candidate list a decision was made from."""
        cached = self._sets_cache.get(digest)
        if cached is None:
            row = self.conn.execute("SELECT candidates FROM candidate_sets WHERE hash = ?", (digest,)).fetchone()
            cached = loads(row[0])
            if len(self._sets_cache) > 10_000:
                self._sets_cache.clear()
            self._sets_cache[digest] = cached
        return cached

    def actions(self, digest: str) -> list[str]:
        """Return the VW action lines of a logged candidate set, encoded once per set."""
        cached = self._actions_cache.get(digest)
        if cached is None:
            if len(self._actions_cache) > 10_000:
                self._actions_cache.clear()
            cached = self._actions_cache[digest] = [action_text(c) for c in self.candidates(digest)]
        return cached

    def insert_decision(self, row: dict, new_set: tuple | None = None) -> None:
        """Commit one decision, with its candidate set when that is new, in one transaction.

        ``new_set`` comes from ``new_candidate_set``; without one, the single-statement
        insert is its own transaction. ``DuplicateKey`` when the event id is logged already.
        """
        try:
            if new_set is None:
                with self.write_lock():
                    insert(self.conn, "decisions", row)
                return
            with self.transaction() as conn:
                conn.execute(INSERT_SET, new_set)
                insert(conn, "decisions", row)
        except sqlite3.IntegrityError:
            raise DuplicateKey(f"event {row['event_id']!r} is logged already") from None
        self._remember_set(new_set[0])

    def get_decision(self, event_id: str) -> dict | None:
        return self.query_one("SELECT * FROM decisions WHERE event_id = ?", (event_id,))

    def insert_reward(self, row: dict, max_per_event: int | None = None) -> tuple[dict | None, bool]:
        """Store a reward once per (event, key); a repeat only counts as a duplicate.

        Returns (None, False) and stores nothing when the event already has
        ``max_per_event`` distinct rewards.
        """
        with self.transaction() as conn:
            duplicate = self._add_reward(conn, row, max_per_event)
        return self._stored_reward(row, duplicate)

    @staticmethod
    def _add_reward(conn, row: dict, max_per_event: int | None) -> bool | None:
        """Insert or count a duplicate in ``conn``'s transaction; return whether it was one, None when over the limit."""
        existing = conn.execute(
            "SELECT id FROM rewards WHERE event_id = ? AND reward_key = ?", (row["event_id"], row["reward_key"])
        ).fetchone()
        if existing:
            conn.execute("UPDATE rewards SET duplicates = duplicates + 1 WHERE id = ?", (existing[0],))
            return True
        if max_per_event is not None and conn.execute(
                "SELECT count(*) FROM rewards WHERE event_id = ?", (row["event_id"],)).fetchone()[0] >= max_per_event:
            return None
        insert(conn, "rewards", row)
        return False

    def _stored_reward(self, row: dict, duplicate: bool | None) -> tuple[dict | None, bool]:
        if duplicate is None:
            return None, False
        stored = self.query_one("SELECT * FROM rewards WHERE event_id = ? AND reward_key = ?",
                                (row["event_id"], row["reward_key"]))
        return stored, duplicate

    def closed_decisions(self, experiment: str, after_seq: int, closed_by: float, limit: int) -> list[dict]:
        """Return decisions after ``after_seq`` in log order, stopping at the first still open.

        Stopping there keeps learning in log order: a later decision is never
        learned before an earlier one whose window is still open.
        """
        rows = self.query(
            # NOT INDEXED: walk the rowid from the cursor, which is already in log order,
            # instead of an experiment index plus a sort of its whole backlog.
            "SELECT seq, event_id, context, candidate_set, slate, window_closes_at, defer_activation, activated_at,"
            " learning_mode, model_slate, slot_context FROM decisions NOT INDEXED"
            " WHERE seq > ? AND experiment = ? ORDER BY seq LIMIT ?",
            (after_seq, experiment, limit),
        )
        for i, row in enumerate(rows):
            row["cursor"] = row["seq"]  # the learner's cursor: on SQLite, seq order is commit order
            if row["window_closes_at"] > closed_by:
                return rows[:i]
        return rows

    def learned_through_seq(self, experiment: str, cursor: int) -> int:
        """Return a seq such that every decision up to it is behind the learner cursor: the cursor itself here."""
        return cursor

    def backlog(self, experiment: str, cursor: int) -> int:
        """Count the experiment's decisions after a learner cursor."""
        return self.conn.execute("SELECT count(*) FROM decisions WHERE experiment = ? AND seq > ?",
                                 (experiment, cursor)).fetchone()[0]

    def db_now(self) -> float:
        """The database's clock: on one machine, the machine's."""
        return time.time()

    def rewards_for(self, seqs: list[int]) -> list[dict]:
        """Return the on-time rewards of these decisions, oldest first."""
        if not seqs:
            return []
        return self.query(
            "SELECT decision_seq, slot, value FROM rewards WHERE late = 0 AND decision_seq BETWEEN ? AND ?"
            " ORDER BY received_at, id",
            (min(seqs), max(seqs)),
        )

    def counts(self, key: str) -> dict:
        decisions = self.conn.execute("SELECT count(*) FROM decisions WHERE experiment = ?", (key,)).fetchone()[0]
        rewards = self.conn.execute("SELECT count(*) FROM rewards WHERE experiment = ?", (key,)).fetchone()[0]
        return {"decisions": decisions, "rewards": rewards}

    # -- coordination between processes ---------------------------------------
    def acquire_lease(self, name: str, owner: str, now: float, ttl: float) -> int | None:
        """Take or renew a named lease; return its fencing token, or None while another owner holds it.

        A holder whose lease has not run out still loses it at once when it ran on
        this machine and its process is gone (killed, crashed). Every change of
        owner increments the token, so a publish fenced by an older token fails.
        """
        with self.transaction() as conn:
            row = conn.execute("SELECT value FROM meta WHERE name = ?", (f"lease:{name}",)).fetchone()
            holder = loads(row[0]) if row else None
            token = holder.get("token", 0) if holder else 0
            if holder is None or holder["owner"] != owner:
                if self._alive(holder, now):
                    return None
                token += 1
            conn.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)",
                         (f"lease:{name}", dumps({"owner": owner, "expires": now + ttl, "token": token,
                                                  "process": holders.this_process()})))
        return token

    def release_lease(self, name: str, owner: str) -> None:
        """Hand a lease back (keeping its token count), so the next owner need not wait for it to expire."""
        with self.transaction() as conn:
            row = conn.execute("SELECT value FROM meta WHERE name = ?", (f"lease:{name}",)).fetchone()
            holder = loads(row[0]) if row else None
            if holder and holder["owner"] == owner:
                conn.execute("UPDATE meta SET value = ? WHERE name = ?",
                             (dumps({**holder, "owner": "", "expires": 0}), f"lease:{name}"))

    def release_leases(self, owner: str) -> None:
        """Hand back the one lease a SQLite learner holds."""
        self.release_lease("learner", owner)

    def live_lease(self, name: str, now: float) -> dict | None:
        """Return a lease's holder (owner, expires, token, process) while someone holds it, else None."""
        row = self.conn.execute("SELECT value FROM meta WHERE name = ?", (f"lease:{name}",)).fetchone()
        holder = loads(row[0]) if row else None
        return holder if self._alive(holder, now) else None

    @staticmethod
    def _alive(holder: dict | None, now: float) -> bool:
        """A holder counts until its lease runs out, or at once when its process on this machine is gone."""
        return bool(holder and holder["owner"] and holder["expires"] > now
                    and not holders.is_dead(holder.get("process")))

    def learner_state(self, now: float) -> list[dict]:
        """Per experiment: closed decisions after the newest snapshot's cursor, and that snapshot."""
        return self.query(
            "SELECT e.key AS experiment, m.version, m.created_at AS published_at,"
            " (SELECT count(*) FROM decisions d NOT INDEXED WHERE d.experiment = e.key AND d.seq > coalesce(m.cursor_seq, 0)"
            "   AND d.window_closes_at <= ?) AS unlearned,"
            " (SELECT min(d.window_closes_at) FROM decisions d WHERE d.experiment = e.key"
            "   AND d.seq > coalesce(m.cursor_seq, 0) AND d.window_closes_at <= ?) AS oldest_closed"
            " FROM experiments e LEFT JOIN models m ON m.experiment = e.key"
            "  AND m.version = (SELECT max(version) FROM models WHERE experiment = e.key)"
            " WHERE e.status != 'draft' ORDER BY e.key",
            (now, now),
        )

    # -- models --------------------------------------------------------------
    def latest_model(self, experiment: str, with_blob: bool = True) -> dict | None:
        cols = "*" if with_blob else ("id, experiment, version, args, features, spec_version, cursor_seq, learned,"
                                      " created_at, learner")
        return self.query_one(
            f"SELECT {cols} FROM models WHERE experiment = ? ORDER BY version DESC LIMIT 1", (experiment,)
        )

    def model_versions(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT experiment, max(version) FROM models GROUP BY experiment").fetchall())

    def publish_model(self, row: dict, keep: int = 20, lease: tuple[str, str, int] | None = None,
                      archive: dict | None = None) -> bool:
        """Publish a model snapshot as the experiment's next version; prune all but the newest ``keep``.

        Fenced: ``row["version"]`` must be exactly one past the newest version, and with
        ``lease`` = (name, owner, token) that lease must still be this owner's, with the
        same token. Otherwise nothing is written and ``PublishRefused`` says why.

        ``archive`` (from ``experiments.reporting.archive``) moves the archive
        position and lists its new files in the same transaction as the model and
        its cursor; returns whether it committed. When another writer moved the
        position first, the model is still published and the archive part is not.
        """
        key, version = row["experiment"], row["version"]
        with self.transaction() as conn:
            if lease is not None:
                self._check_lease(conn, lease)
            self._lock_versions(conn, key)
            newest = conn.execute("SELECT coalesce(max(version), 0) FROM models WHERE experiment = ?",
                                  (key,)).fetchone()[0]
            if newest != version - 1:
                raise PublishRefused(f"version {version} of {key} does not follow the newest, {newest}",
                                     lease_lost=False)
            insert(conn, "models", self._stored_model(row))
            conn.execute("DELETE FROM models WHERE experiment = ? AND version <= ?", (key, version - keep))
            if archive is None:
                return False
            try:
                with self._savepoint(conn):  # a batch that lost its race leaves the model published
                    self._commit_archive(conn, archive)
            except ArchiveConflict:
                return False
            return True

    # The engine's parts of a publish (PostgreSQL overrides them).
    @staticmethod
    def _check_lease(conn, lease: tuple[str, str, int]) -> None:
        """Refuse unless ``lease`` = (name, owner, token) is still its owner's, with the same token."""
        name, owner, token = lease
        held = conn.execute("SELECT value FROM meta WHERE name = ?", (f"lease:{name}",)).fetchone()
        holder = loads(held[0]) if held else {}
        if holder.get("owner") != owner or holder.get("token") != token:
            raise PublishRefused(f"the {name} lease now belongs to {holder.get('owner') or 'nobody'}",
                                 lease_lost=True)

    @staticmethod
    def _lock_versions(conn, key: str) -> None:
        """Serialise publishers of ``key`` (on SQLite the write transaction already does)."""

    @staticmethod
    def _stored_model(row: dict) -> dict:
        return row

    @staticmethod
    @contextlib.contextmanager
    def _savepoint(conn):
        conn.execute("SAVEPOINT archive")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK TO archive")
            raise
        finally:
            conn.execute("RELEASE archive")

    # -- activation, model resets, log deletion ------------------------------
    def activate_decision(self, event_id: str, now: float) -> bool:
        """Mark a decision as shown; False once its window closed (an earlier activation stays valid)."""
        with self.write_lock():
            cursor = self.conn.execute(
                "UPDATE decisions SET activated_at = coalesce(activated_at, ?)"
                " WHERE event_id = ? AND (window_closes_at >= ? OR activated_at IS NOT NULL)",
                (now, event_id, now),
            )
        return cursor.rowcount == 1

    def model_reset(self, experiment: str) -> tuple[int, int]:
        """Return (id, after_seq) of the experiment's newest model reset, or (0, 0)."""
        row = self.conn.execute(
            "SELECT id, after_seq FROM model_resets WHERE experiment = ? ORDER BY id DESC LIMIT 1", (experiment,)
        ).fetchone()
        return (row[0], row[1]) if row else (0, 0)

    def reset_model(self, row: dict) -> dict:
        """Record a reset and publish ``row`` (an empty model) as the next version, atomically.

        Decisions logged so far are never learned again: the reset's ``after_seq``
        is the newest sequence number, and the empty model's cursor starts there.
        """
        with self.transaction() as conn:
            after = conn.execute("SELECT coalesce(max(seq), 0) FROM decisions").fetchone()[0]
            version = conn.execute("SELECT coalesce(max(version), 0) FROM models WHERE experiment = ?",
                                   (row["experiment"],)).fetchone()[0] + 1
            conn.execute("INSERT INTO model_resets (experiment, after_seq, at) VALUES (?, ?, ?)",
                         (row["experiment"], after, row["created_at"]))
            model = {**row, "version": version, "cursor_seq": after, "learned": 0}
            insert(conn, "models", model)
        return model

    def delete_log(self, experiment: str) -> int:
        """Delete an experiment's decisions and rewards, and its archive's file list; return how many decisions went.

        The newest decision of the whole file stays, so SQLite never hands out its
        sequence number again: a learner's cursor must only ever move forward.
        """
        with self.transaction() as conn:
            newest = conn.execute("SELECT coalesce(max(seq), 0) FROM decisions").fetchone()[0]
            conn.execute("DELETE FROM rewards WHERE experiment = ? AND decision_seq < ?", (experiment, newest))
            conn.execute("DELETE FROM unattributed_rewards WHERE experiment = ?", (experiment,))
            self._forget_archive(conn, experiment, newest - 1)
            return conn.execute("DELETE FROM decisions WHERE experiment = ? AND seq < ?",
                                (experiment, newest)).rowcount

    def insert_unattributed(self, rows: list[dict]) -> None:
        """Keep rewards or activations for event ids the experiment never logged (they are never learned)."""
        with self.transaction() as conn:
            for row in rows:
                insert(conn, "unattributed_rewards", row)

    def unattributed_count(self, experiment: str, start: float, end: float) -> int:
        """Count the rewards for unknown events received in [start, end)."""
        return self.conn.execute(
            "SELECT count(*) FROM unattributed_rewards WHERE experiment = ? AND kind = 'reward'"
            " AND received_at >= ? AND received_at < ?", (experiment, start, end)).fetchone()[0]

    def first_seq_since(self, experiment: str, moment: float) -> int:
        """The sequence number of the experiment's first decision logged at or after ``moment``
        (one past its newest when there is none yet)."""
        first, newest = self.conn.execute(
            "SELECT (SELECT min(seq) FROM decisions WHERE experiment = ? AND created_at >= ?),"
            " (SELECT max(seq) FROM decisions WHERE experiment = ?)", (experiment, moment, experiment)).fetchone()
        return first if first is not None else (newest or 0) + 1

    def log_range(self, experiment: str) -> tuple[float | None, float | None]:
        """Return the times of an experiment's first and last logged decision."""
        return tuple(self.conn.execute(
            "SELECT min(created_at), max(created_at) FROM decisions WHERE experiment = ?", (experiment,)).fetchone())
