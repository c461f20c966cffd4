"""The PostgreSQL store: many serving hosts and learners over one database.

It keeps the SQLite engine's interface (``Store``), and its portable methods run
here unchanged through ``_Connection``, which speaks PostgreSQL's dialect
(``postgres_dialect``). What differs is written here:

- Commit order. A sequence number is not commit order: a later ``seq`` can commit
  first, and a reader of ``seq > cursor`` would skip the earlier row for good. Each
  decision carries its transaction id (``xid``), and the learner reads only rows
  older than every transaction still open that could write here (``HORIZON``),
  in (xid, seq) order. A learner cursor is that pair packed into one int (``pack``), so cursors
  compare as the log's commit order; models and resets store both halves.
- Decisions and rewards are partitioned by day (``postgres_partitions``).
- Publishing is a compare-and-set on the next model version, as on SQLite, and
  fenced by the learner lease; model bytes live in the database.
- Reward windows are timed by the database clock where the store stamps a time.
"""
from __future__ import annotations

import contextlib
import functools
import random
import threading

import psycopg
import psycopg.errors
from psycopg.types.numeric import FloatLoader, IntLoader
from psycopg_pool import ConnectionPool

from experiments.errors import Unavailable
from experiments.store.interface import DuplicateKey, describe as _safe
from experiments.store.postgres_archive import COUNT_DELETION, PostgresArchive
from experiments.store.postgres_cursor import pack, unpack
from experiments.store.postgres_dialect import translate
from experiments.store.postgres_leases import PostgresLeases
from experiments.store.postgres_partitions import PostgresPartitions
from experiments.store.postgres_schema import MIGRATIONS, SERIAL_ID, VERSION
from experiments.store.sqlite import INSERT_SET, Store, dumps, insert

# The oldest transaction that may still commit a decision: every row older than it is in, for good. That is
# the oldest transaction open in this statement's snapshot, leaving out those still running in another database
# (they cannot write here, and a server shared with other databases must not hold learning back); one that has
# ended since the snapshot was taken counts, since its rows are not in this snapshot.
HORIZON = ("snap AS (SELECT pg_current_snapshot() AS s), horizon AS (SELECT coalesce(min(x),"
           " (SELECT pg_snapshot_xmax(s) FROM snap)) AS xid FROM snap, pg_snapshot_xip(s) AS x"
           " WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.backend_xid = xid(x)"
           " AND a.datname IS DISTINCT FROM current_database()))")
MIGRATION_LOCK = 7_346_112_001  # the advisory lock that serialises processes migrating at once
XID8_OID = 5069


class _NumericLoader(FloatLoader):
    """numeric (sum of bigints, avg) as a Python int or float, like SQLite answers, never a Decimal."""

    def load(self, data):
        text = bytes(data)
        return int(text) if text.lstrip(b"-").isdigit() else float(text)


def _configure(conn: psycopg.Connection, fast_log: bool = True) -> None:
    conn.adapters.register_loader("numeric", _NumericLoader)
    conn.adapters.register_loader(XID8_OID, IntLoader)
    if fast_log:
        # Decisions and rewards, one commit each, do not wait for the WAL's fsync (4-5 ms on this machine's disk,
        # half the insert path): a crash of the database server can lose the last ~0.6 s of them (three times
        # wal_writer_delay), never corrupt anything. Every transaction() block (settings, models, keys, leases)
        # waits for it. A URL that sets synchronous_commit itself is left as it says.
        conn.execute("SET synchronous_commit = off")


class _Result:
    """A finished statement: its rows fetched at once, so the connection goes back to the pool."""

    def __init__(self, cursor, returns_id: bool):
        self.rows = cursor.fetchall() if cursor.description is not None else []
        self.description = [(c.name,) for c in cursor.description] if cursor.description is not None else None
        self.rowcount = cursor.rowcount
        self.lastrowid = self.rows[0][0] if returns_id and self.rows else None

    def fetchone(self):
        return self.rows[0] if self.rows else None

    def fetchall(self):
        return self.rows

    def __iter__(self):
        return iter(self.rows)


class _Connection:
    """SQLite's ``execute`` on PostgreSQL: one pooled connection per statement, or the caller's transaction."""

    def __init__(self, pool: ConnectionPool | None = None, held: psycopg.Connection | None = None):
        self.pool, self.held = pool, held

    @property
    def in_transaction(self) -> bool:
        return self.held is not None

    def execute(self, sql: str, params=()):
        text, returns_id = translate(sql)
        if self.held is not None:
            return _Result(self.held.execute(text, params), returns_id)
        with self.pool.connection() as conn:
            return _Result(conn.execute(text, params), returns_id)

    def executemany(self, sql: str, rows):
        text, _ = translate(sql)
        with contextlib.ExitStack() as stack:
            conn = self.held or stack.enter_context(self.pool.connection())
            with conn.cursor() as cursor:
                cursor.executemany(text, list(rows))
                count = cursor.rowcount
        return type("Done", (), {"rowcount": count})()


class PostgresStore(PostgresArchive, PostgresLeases, PostgresPartitions, Store):
    """The store on PostgreSQL: a connection pool for statements, a transaction per ``transaction()`` block."""

    engine = "postgresql"
    unique_errors = (psycopg.errors.UniqueViolation,)

    def __init__(self, url: str, create: bool = True, pool_size: int = 8):
        self.path = self.url = url
        self.known_set_seconds = 3600.0
        self._local = threading.local()
        self._known_sets: dict[str, float] = {}
        self._sets_cache: dict[str, list] = {}
        self._actions_cache: dict[str, list[str]] = {}
        self._partitions_made: set[tuple[str, int]] = set()
        self._url_sets_commit = "synchronous_commit" in url
        try:
            self.pool = ConnectionPool(url, min_size=1, max_size=pool_size, kwargs={"autocommit": True},
                                       configure=functools.partial(_configure, fast_log=not self._url_sets_commit),
                                       open=True, timeout=30)
            self.pool.wait(timeout=10)
        except (psycopg.Error, Exception) as exc:  # noqa: BLE001 - a wrong URL raises several kinds
            raise Unavailable(f"cannot reach PostgreSQL at {_safe(url)}: {str(exc).strip()[:200]}",
                              field="db") from None
        try:
            self._migrate(create)
        except Exception:
            self.pool.close()
            raise
        self.ensure_partitions(self.db_now())

    # -- connections -----------------------------------------------------------------------
    @property
    def conn(self) -> _Connection:
        held = getattr(self._local, "held", None)
        return _Connection(held=held) if held is not None else _Connection(pool=self.pool)

    @property
    def db(self):
        raise Unavailable("this is a PostgreSQL store", field="db")

    @contextlib.contextmanager
    def write_lock(self):
        """PostgreSQL locks rows itself; writers never wait on a file lock."""
        yield

    @contextlib.contextmanager
    def transaction(self, durable: bool = True):
        """Run a block in one transaction on one connection; roll back on any error.

        ``durable``: its commit waits for the WAL on disk (the log's own inserts do not: see ``_configure``).
        """
        if getattr(self._local, "held", None) is not None:
            yield self.conn  # nested: part of the caller's transaction
            return
        with self.pool.connection() as raw, raw.transaction():
            if durable and not self._url_sets_commit:
                raw.execute("SET LOCAL synchronous_commit = on")
            self._local.held = raw
            try:
                yield _Connection(held=raw)
            finally:
                self._local.held = None

    @contextlib.contextmanager
    def snapshot(self):
        """Read in one consistent snapshot (REPEATABLE READ)."""
        if getattr(self._local, "held", None) is not None:
            yield
            return
        with self.pool.connection() as raw, raw.transaction():
            raw.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            self._local.held = raw
            try:
                yield
            finally:
                self._local.held = None

    def close(self) -> None:
        self.close_leases()
        self.pool.close()

    def take_token(self, address: int, per_second: float, burst: float) -> tuple[bool, float]:
        """Take a token from an address's bucket, shared by every host, on the database's clock.

        Returns whether the call may go on and the tokens the bucket holds after it.
        Buckets idle long enough to be full again are dropped now and then, so the table holds
        only the addresses calling lately.
        """
        level = "least(?, b.tokens + greatest(0.0, excluded.at - b.at) * ?)"
        allowed, tokens = self.conn.execute(
            "INSERT INTO rate_buckets AS b (address, tokens, allowed, at)"
            " VALUES (?, ? - 1, true, extract(epoch FROM clock_timestamp())::float8)"
            f" ON CONFLICT (address) DO UPDATE SET allowed = {level} >= 1,"
            f" tokens = {level} - CASE WHEN {level} >= 1 THEN 1 ELSE 0 END, at = excluded.at"
            " RETURNING allowed, tokens",
            (address, burst, burst, per_second, burst, per_second, burst, per_second)).fetchone()
        if random.random() < 1 / 1024:  # about one call in a thousand sweeps the full buckets away
            self.drop_full_buckets(burst / per_second)
        return allowed, tokens

    def drop_full_buckets(self, refill_seconds: float) -> int:
        """Delete the buckets idle long enough to be full again (the same as no bucket); return how many."""
        return self.conn.execute("DELETE FROM rate_buckets WHERE at < extract(epoch FROM clock_timestamp()) - ?",
                                 (refill_seconds,)).rowcount

    def db_now(self) -> float:
        """The database clock, in epoch seconds: one clock for every host."""
        return self.conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()[0]

    # -- schema ----------------------------------------------------------------------------
    def _migrate(self, create: bool) -> list[str]:
        """Apply the migrations this database lacks; refuse a schema newer than this code knows."""
        with self.pool.connection() as raw:
            found = raw.execute("SELECT to_regclass('_migrations') IS NOT NULL").fetchone()[0]
            if not found and not create:
                raise Unavailable(f"{_safe(self.url)} holds no Silent Customizer schema (check --db; reading"
                                  " never creates one)", field="db")
            raw.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
            try:
                raw.execute("CREATE TABLE IF NOT EXISTS _migrations (version bigint PRIMARY KEY, name text,"
                            " applied_at double precision)")
                current = raw.execute("SELECT coalesce(max(version), 0) FROM _migrations").fetchone()[0]
                if current > VERSION:
                    raise Unavailable(
                        f"the PostgreSQL schema at {_safe(self.url)} is version {current}, newer than this Silent"
                        f" Customizer knows (version {VERSION}); upgrade Silent Customizer to serve it",
                        field="db")
                applied = []
                for version, name, sql in MIGRATIONS:
                    if version <= current:
                        continue
                    with raw.transaction():
                        raw.execute(sql)
                        raw.execute("INSERT INTO _migrations VALUES (%s, %s, extract(epoch FROM now()))",
                                    (version, name))
                    applied.append(name)
                return applied
            finally:
                raw.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))

    def schema_version(self) -> int:
        return self.conn.execute("SELECT coalesce(max(version), 0) FROM _migrations").fetchone()[0]

    # -- experiments -----------------------------------------------------------------------
    def save_experiment(self, row: dict, change: dict, actor: str, expected_version: int | None) -> None:
        values = {**row, "spec": dumps(row["spec"])}
        with self.transaction() as conn:
            current = conn.execute("SELECT version FROM experiments WHERE key = ? FOR UPDATE",
                                   (row["key"],)).fetchone()
            if (current[0] if current else None) != expected_version:
                raise DuplicateKey("version changed concurrently")
            try:
                with self._local.held.transaction():  # a savepoint: a racing insert fails alone
                    insert(conn, "experiments", values, verb="INSERT OR REPLACE" if current else "INSERT")
            except psycopg.errors.UniqueViolation:
                raise DuplicateKey(f"experiment {row['key']!r} exists") from None
            conn.execute(
                "INSERT INTO experiment_history (experiment, version, status, spec, change, actor, at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (row["key"], row["version"], row["status"], values["spec"], dumps(change), actor, row["updated_at"]))

    # -- decisions and rewards ---------------------------------------------------------------
    def candidate_set(self, candidates: list[dict], digest: str | None = None) -> str:
        digest, new = self.new_candidate_set(candidates, digest)
        if new:
            self.conn.execute(INSERT_SET, new)
            self._remember_set(digest)
        return digest

    def insert_decision(self, row: dict, new_set: tuple | None = None) -> None:
        """Commit one decision (its event id, and its candidate set when new) in one statement."""
        cols = tuple(row)
        parts = ["e AS (INSERT INTO event_ids (event_id, created_at) VALUES (%s, %s))"]
        params: list = [row["event_id"], row["created_at"]]
        if new_set is not None:
            parts.append("s AS (INSERT INTO candidate_sets (hash, candidates, size, used_at) VALUES (%s, %s, %s, %s)"
                         " ON CONFLICT (hash) DO UPDATE SET used_at = EXCLUDED.used_at)")
            params += list(new_set)
        sql = (f"WITH {', '.join(parts)} INSERT INTO decisions ({', '.join(cols)})"
               f" VALUES ({', '.join(['%s'] * len(cols))})")
        params += list(row.values())
        self._write_dated(sql, params, "decisions", row["created_at"], DuplicateKey,
                          f"event {row['event_id']!r} is logged already")
        if new_set is not None:
            self._remember_set(new_set[0])

    def _write_dated(self, sql: str, params, table: str, at: float, duplicate=None, message: str = ""):
        """Run a write into a partitioned table, creating the day's partition when it is missing."""
        for attempt in range(2):
            try:
                with self.pool.connection() as conn:
                    return conn.execute(sql, params)
            except psycopg.errors.UniqueViolation:
                if duplicate is None:
                    raise
                raise duplicate(message) from None
            except psycopg.errors.CheckViolation as exc:  # "no partition of relation found for row"
                if attempt or "partition" not in str(exc):
                    raise
                self.ensure_partition(table, at)

    def get_decision(self, event_id: str) -> dict | None:
        return self.query_one(
            "SELECT * FROM decisions WHERE event_id = ?"
            " AND created_at = (SELECT created_at FROM event_ids WHERE event_id = ?)", (event_id, event_id))

    def insert_reward(self, row: dict, max_per_event: int | None = None) -> tuple[dict | None, bool]:
        """Store a reward once per (event, key); rewards of one event are serialised by an advisory lock."""
        self.ensure_partition("rewards", row["received_at"])
        with self.transaction(durable=False) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 1))", (row["event_id"],))
            duplicate = self._add_reward(conn, row, max_per_event)
        return self._stored_reward(row, duplicate)

    def closed_decisions(self, experiment: str, after: int, closed_by: float, limit: int) -> list[dict]:
        """Return decisions after the cursor in commit order, stopping at the first still open.

        Only rows older than every transaction still open are read, so a row that
        commits later can never land behind the cursor. Each row's ``cursor`` is its
        packed (xid, seq).
        """
        xid, seq = unpack(after)
        rows = self.query(
            f"WITH {HORIZON} SELECT seq, xid, event_id, context, candidate_set, slate, window_closes_at,"
            " defer_activation, activated_at, learning_mode, model_slate, slot_context FROM decisions"
            " WHERE experiment = ? AND (xid, seq) > (?::text::xid8, ?)"
            " AND xid < (SELECT xid FROM horizon) ORDER BY xid, seq LIMIT ?",
            (experiment, str(xid), seq, limit))
        for i, row in enumerate(rows):
            row["cursor"] = pack(row.pop("xid"), row["seq"])
            if row["window_closes_at"] > closed_by:
                return rows[:i]
        return rows

    def rewards_for(self, seqs: list[int]) -> list[dict]:
        if not seqs:
            return []
        return self.query("SELECT decision_seq, slot, value FROM rewards WHERE late = 0 AND decision_seq = ANY(?)"
                          " ORDER BY received_at, id", (list(seqs),))

    def learned_through_seq(self, experiment: str, cursor: int) -> int:
        """Return a seq such that every decision up to it is behind the learner cursor.

        Sequence numbers are not commit order here, so that is one below the smallest
        seq still ahead of the cursor (or the newest seq when nothing is ahead).
        """
        xid, seq = unpack(cursor)
        ahead, newest = self.conn.execute(
            "SELECT (SELECT min(seq) FROM decisions WHERE experiment = ? AND (xid, seq) > (?::text::xid8, ?)),"
            " (SELECT max(seq) FROM decisions WHERE experiment = ?)", (experiment, str(xid), seq, experiment)).fetchone()
        return ahead - 1 if ahead is not None else (newest or 0)

    def backlog(self, experiment: str, cursor: int) -> int:
        """Count the experiment's decisions after a learner cursor."""
        xid, seq = unpack(cursor)
        return self.conn.execute("SELECT count(*) FROM decisions WHERE experiment = ?"
                                 " AND (xid, seq) > (?::text::xid8, ?)", (experiment, str(xid), seq)).fetchone()[0]

    def learner_state(self, now: float) -> list[dict]:
        return self.query(
            "SELECT e.key AS experiment, m.version, m.created_at AS published_at,"
            " (SELECT count(*) FROM decisions d WHERE d.experiment = e.key"
            "   AND (d.xid, d.seq) > (coalesce(m.cursor_xid, 0)::text::xid8, coalesce(m.cursor_seq, 0))"
            "   AND d.window_closes_at <= ?) AS unlearned,"
            " (SELECT min(d.window_closes_at) FROM decisions d WHERE d.experiment = e.key"
            "   AND (d.xid, d.seq) > (coalesce(m.cursor_xid, 0)::text::xid8, coalesce(m.cursor_seq, 0))"
            "   AND d.window_closes_at <= ?) AS oldest_closed"
            " FROM experiments e LEFT JOIN models m ON m.experiment = e.key"
            "  AND m.version = (SELECT max(version) FROM models WHERE experiment = e.key)"
            " WHERE e.status != 'draft' ORDER BY e.key", (now, now))

    # -- models: the cursor is stored as its two halves ------------------------------------------
    def latest_model(self, experiment: str, with_blob: bool = True) -> dict | None:
        row = super().latest_model(experiment, with_blob=with_blob) if with_blob else self.query_one(
            "SELECT id, experiment, version, args, features, spec_version, cursor_seq, cursor_xid, learned,"
            " created_at, learner FROM models WHERE experiment = ? ORDER BY version DESC LIMIT 1", (experiment,))
        if row is not None:
            row["cursor_seq"] = pack(row.pop("cursor_xid"), row["cursor_seq"])
            if with_blob and isinstance(row.get("model"), memoryview):
                row["model"] = bytes(row["model"])
        return row

    # publish_model is SQLite's, with these parts of it (the lease check is PostgresLeases')
    @staticmethod
    def _lock_versions(conn, key: str) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 2))", (key,))

    @staticmethod
    def _stored_model(row: dict) -> dict:
        xid, seq = unpack(row["cursor_seq"])
        return {**row, "cursor_seq": seq, "cursor_xid": xid}

    def _savepoint(self, conn):
        return self._local.held.transaction()

    def model_reset(self, experiment: str) -> tuple[int, int]:
        row = self.conn.execute("SELECT id, after_xid, after_seq FROM model_resets WHERE experiment = ?"
                                " ORDER BY id DESC LIMIT 1", (experiment,)).fetchone()
        return (row[0], pack(row[1], row[2])) if row else (0, 0)

    def reset_model(self, row: dict) -> dict:
        """Record a reset and publish an empty model; decisions whose transaction began before it are never learned."""
        with self.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 2))", (row["experiment"],))
            after_xid = conn.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint").fetchone()[0]
            version = conn.execute("SELECT coalesce(max(version), 0) FROM models WHERE experiment = ?",
                                   (row["experiment"],)).fetchone()[0] + 1
            conn.execute("INSERT INTO model_resets (experiment, after_seq, after_xid, at) VALUES (?, 0, ?, ?)",
                         (row["experiment"], after_xid, row["created_at"]))
            insert(conn, "models", {**row, "version": version, "cursor_seq": 0, "cursor_xid": after_xid,
                                    "learned": 0})
        return {**row, "version": version, "cursor_seq": pack(after_xid, 0), "learned": 0}

    def delete_log(self, experiment: str) -> int:
        """Delete an experiment's decisions and rewards (a sequence never hands a number out twice)."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM rewards WHERE experiment = ?", (experiment,))
            conn.execute("DELETE FROM unattributed_rewards WHERE experiment = ?", (experiment,))
            conn.execute("DELETE FROM event_ids WHERE event_id IN (SELECT event_id FROM decisions"
                         " WHERE experiment = ?)", (experiment,))
            conn.execute("DELETE FROM archive_files WHERE experiment = ?", (experiment,))  # the caller deletes them
            conn.execute(COUNT_DELETION)  # an archive batch read before this must not commit
            return conn.execute("DELETE FROM decisions WHERE experiment = ?", (experiment,)).rowcount

    # -- copying a SQLite database in (experiments.store.copy) -------------------------------
    def copy_rows(self, table: str, rows: list[dict]) -> None:
        """Insert rows as they are, ids and sequence numbers included, in one transaction (decisions with their
        event ids, so the batch shares one transaction id and batches follow each other in log order)."""
        cols = list(rows[0])
        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})"
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
            cursor.executemany(sql, [[r[c] for c in cols] for r in rows])
            if table == "decisions":
                cursor.executemany("INSERT INTO event_ids (event_id, created_at) VALUES (%s, %s)",
                                   [(r["event_id"], r["created_at"]) for r in rows])

    def finish_copy(self) -> None:
        """Move every sequence past the copied ids, and turn SQLite cursors (a seq) into (xid, seq) ones."""
        with self.transaction() as conn:
            conn.execute("SELECT setval('decisions_seq', greatest((SELECT max(seq) FROM decisions), 1))")
            conn.execute("SELECT setval('rewards_id', greatest((SELECT max(id) FROM rewards), 1))")
            for table in sorted(SERIAL_ID - {"rewards"}):
                conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                             f" greatest((SELECT max(id) FROM {table}), 1))")
            conn.execute("UPDATE models m SET cursor_xid = coalesce((SELECT max(xid)::text::bigint FROM decisions d"
                         " WHERE d.seq <= m.cursor_seq), 0)")
            conn.execute("UPDATE model_resets r SET after_xid = coalesce((SELECT max(xid)::text::bigint"
                         " FROM decisions d WHERE d.seq <= r.after_seq), 0)")

    # -- what SQLite needs and PostgreSQL does itself ----------------------------------------
    def wal_bytes(self) -> int:
        return 0

    def checkpoint(self, full: bool = False) -> dict:
        """Upkeep between learner passes: PostgreSQL folds its own write-ahead log; here the days ahead
        get their partitions (a new day costs one CREATE per table, other passes nothing)."""
        self.ensure_partitions(self.db_now())
        return {"wal_bytes": 0, "restarted": False}

    def backup(self, target: str, progress=None) -> dict:
        raise Unavailable("back up a PostgreSQL database with pg_dump (or your server's backups)", field="db")


