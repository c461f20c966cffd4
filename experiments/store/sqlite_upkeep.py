"""Keeping one SQLite file in shape: retention, erasure, candidate-set clean-up, the WAL, backups.

Mixed into ``Store``; every statement here runs in short transactions so that the
workers' decision inserts wait a few milliseconds at most.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from urllib.parse import quote

import sqlite_utils

from experiments.errors import InvalidField
from experiments.store.migrations import migrate

PURGE_BATCH = 500  # decisions per delete transaction: ~5 ms of holding the write lock
# A serving process trusts its memory that a candidate set is stored for this long, then
# writes it again (marking it used); sets unused for twice as long may be deleted.
KNOWN_SET_SECONDS = 3600.0
WAL_LIMIT_BYTES = 32 * 1024 * 1024
FORGOTTEN = {"unit": None, "context": "{}", "slot_context": None, "excluded": "[]", "learning_mode": "logging_only"}


class SqliteUpkeep:
    """Retention, erasure, WAL checkpoints and online backups of the SQLite engine."""

    path: str
    wal_limit_bytes: int = WAL_LIMIT_BYTES

    # -- deleting decisions ----------------------------------------------------------------
    @staticmethod
    def _delete_decisions(conn: sqlite3.Connection, seqs: list[int], newest: int) -> int:
        """Delete decisions and their rewards; return the rewards deleted.

        The newest decision of the file is blanked instead (no unit, context or
        rewards, never learned): SQLite would hand its sequence number out again, and
        a learner's cursor must only move forward.
        """
        from experiments.store.sqlite import dumps

        ids = dumps(seqs)
        rewards = conn.execute("DELETE FROM rewards WHERE decision_seq IN (SELECT value FROM json_each(?))",
                               (ids,)).rowcount
        conn.execute("DELETE FROM decisions WHERE seq IN (SELECT value FROM json_each(?)) AND seq != ?",
                     (ids, newest))
        if newest in seqs:
            conn.execute(f"UPDATE decisions SET {', '.join(f'{c} = ?' for c in FORGOTTEN)} WHERE seq = ?",
                         (*FORGOTTEN.values(), newest))
        if seqs:  # an archive batch written from the rows before this must not commit (see log_deletions)
            conn.execute("INSERT INTO meta (name, value) VALUES ('log:deletions', '1') ON CONFLICT (name)"
                         " DO UPDATE SET value = CAST(value AS INTEGER) + 1")
        return rewards

    def log_deletions(self, conn=None) -> int:
        """Count the deletions of decisions so far: an archive batch commits only if none came meanwhile."""
        row = (conn or self.conn).execute("SELECT value FROM meta WHERE name = 'log:deletions'").fetchone()
        return int(row[0]) if row else 0

    def purge_log(self, experiment: str, before: float, learned_through: int, settled_before: float,
                  reason: str, now: float) -> dict:
        """Delete an experiment's decisions made before ``before``, with their rewards; return the counts.

        Only decisions a published model has learned (``seq <= learned_through``) and
        whose reward window closed before ``settled_before`` (no late reward is still
        expected) go; the newest decision of the file stays. ``kept`` counts those made
        before ``before`` that stay. Each purge that deleted something is recorded, so
        reports can say where their data starts.
        """
        counts, digests = {"decisions": 0, "rewards": 0}, set()
        while True:
            with self.transaction() as conn:
                newest = conn.execute("SELECT coalesce(max(seq), 0) FROM decisions").fetchone()[0]
                rows = conn.execute(
                    "SELECT seq, candidate_set FROM decisions WHERE experiment = ? AND created_at < ?"
                    " AND seq <= ? AND seq < ? AND window_closes_at < ? LIMIT ?",
                    (experiment, before, learned_through, newest, settled_before, PURGE_BATCH)).fetchall()
                counts["rewards"] += self._delete_decisions(conn, [r[0] for r in rows], newest)
            counts["decisions"] += len(rows)
            digests.update(r[1] for r in rows)
            if len(rows) < PURGE_BATCH:
                break
        counts["kept"] = self.conn.execute(
            "SELECT count(*) FROM decisions WHERE experiment = ? AND created_at < ?", (experiment, before)).fetchone()[0]
        if counts["decisions"]:
            with self.transaction() as conn:
                conn.execute("INSERT INTO log_purges (experiment, before, decisions, rewards, reason, at)"
                             " VALUES (?, ?, ?, ?, ?, ?)",
                             (experiment, before, counts["decisions"], counts["rewards"], reason, now))
        counts["candidate_sets"] = self.prune_candidate_sets(digests)
        return counts

    def forget_unit(self, unit: str) -> dict:
        """Delete every decision of one unit (all experiments) with its rewards; return what went.

        The search reads an index without the write lock; the transaction then adds
        what the unit did meanwhile, so the writers wait only for the deletes.
        """
        query = "SELECT seq, experiment FROM decisions WHERE unit = ?"
        scanned = self.conn.execute("SELECT coalesce(max(seq), 0) FROM decisions").fetchone()[0]
        # "+seq": scan the small (experiment, variant, unit) index, not the table by rowid.
        rows = self.conn.execute(query + " AND +seq <= ?", (unit, scanned)).fetchall()
        with self.transaction() as conn:
            rows += conn.execute(query + " AND seq > ?", (unit, scanned)).fetchall()
            newest = conn.execute("SELECT coalesce(max(seq), 0) FROM decisions").fetchone()[0]
            rewards = self._delete_decisions(conn, [r[0] for r in rows], newest)
        return {"decisions": len(rows), "rewards": rewards, "experiments": sorted({r[1] for r in rows})}

    def prune_candidate_sets(self, digests: set[str]) -> int:
        """Delete the candidate sets among ``digests`` that no decision references and no process remembers."""
        if not digests:
            return 0
        from experiments.store.sqlite import dumps

        scanned = self.conn.execute("SELECT coalesce(max(seq), 0) FROM decisions").fetchone()[0]
        referenced = {r[0] for r in self.conn.execute(
            "SELECT DISTINCT candidate_set FROM decisions WHERE seq <= ?", (scanned,))}
        unused = sorted(digests - referenced)
        deleted = 0
        for i in range(0, len(unused), PURGE_BATCH):
            with self.transaction() as conn:
                deleted += conn.execute(
                    "DELETE FROM candidate_sets WHERE hash IN (SELECT value FROM json_each(?))"
                    " AND coalesce(used_at, 0) < ? AND NOT EXISTS (SELECT 1 FROM decisions d"
                    "  WHERE d.seq > ? AND d.candidate_set = candidate_sets.hash)",
                    (dumps(unused[i:i + PURGE_BATCH]), time.time() - 2 * self.known_set_seconds,
                     scanned)).rowcount
        return deleted

    def log_start(self, experiment: str) -> dict:
        """Return when an experiment's kept log starts and what retention or purges removed before it."""
        first = self.conn.execute("SELECT min(created_at) FROM decisions WHERE experiment = ?",
                                  (experiment,)).fetchone()[0]
        purged = self.conn.execute(
            "SELECT max(before), coalesce(sum(decisions), 0), coalesce(sum(rewards), 0) FROM log_purges"
            " WHERE experiment = ?", (experiment,)).fetchone()
        return {"first_decision": first, "purged_before": purged[0], "purged_decisions": purged[1],
                "purged_rewards": purged[2]}

    # -- the write-ahead log ---------------------------------------------------------------
    def wal_bytes(self) -> int:
        """Return the size of the write-ahead log file (0 when there is none)."""
        try:
            return os.path.getsize(self.path + "-wal")
        except OSError:
            return 0

    def checkpoint(self, full: bool = False) -> dict:
        """Fold the WAL back into the database; past ``wal_limit_bytes``, make the next write start it over.

        The PASSIVE checkpoint copies pages without blocking anyone, but under
        steady writes the log is never found idle enough to start over, so it only
        grows. Past the limit a RESTART checkpoint runs under the write lock, right
        after a PASSIVE one, so it copies few pages and writers wait for about one
        fsync; it gives up after 50 ms rather than wait for a long reader. The next
        write then starts the log over and cuts the file to ``journal_size_limit``.
        ``full`` (nobody writes any more) empties the file with TRUNCATE.
        """
        conn = self.conn
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        before = self.wal_bytes()
        if before <= self.wal_limit_bytes and not (full and before):
            return {"wal_bytes": before, "restarted": False}
        with self.write_lock():
            started = time.perf_counter()
            conn.execute("PRAGMA busy_timeout=50")
            try:
                busy = conn.execute(f"PRAGMA wal_checkpoint({'TRUNCATE' if full else 'RESTART'})").fetchone()[0]
            finally:
                conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
            held = time.perf_counter() - started
        return {"wal_bytes": self.wal_bytes(), "restarted": not busy, "locked_seconds": held}

    # -- backups ---------------------------------------------------------------------------
    def backup(self, target: str, progress=None) -> dict:
        """Copy the whole database to ``target`` while others keep writing (SQLite's online backup API).

        The copy is one consistent snapshot: the source is read in one read
        transaction, which in WAL mode never blocks the writers. The copy is a plain
        database file in rollback-journal mode with no learner lease in it, usable
        as it is (``--db``) or through ``restore``.
        """
        source = sqlite3.connect(self.path, isolation_level=None)
        copy = sqlite3.connect(target, isolation_level=None)
        try:
            source.execute("BEGIN")
            source.execute("SELECT count(*) FROM sqlite_master").fetchone()  # pin the snapshot
            source.backup(copy, pages=1024, progress=progress)
            source.execute("COMMIT")
            copy.execute("PRAGMA journal_mode=DELETE")
            copy.execute("DELETE FROM meta WHERE name LIKE 'lease:%'")
            checked = copy.execute("PRAGMA quick_check").fetchone()[0]
            counts = {table: copy.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - fixed names
                      for table in ("experiments", "decisions", "rewards", "models")}
        finally:
            source.close()
            copy.close()
        return {"bytes": os.path.getsize(target), "check": checked, **counts}

    @classmethod
    def restore(cls, source: str, target: str, progress=None) -> dict:
        """Replace ``target``'s content with the backup ``source``, in one transaction.

        Refuses a source that is not a Silent Customizer database. The caller makes
        sure no service runs on ``target``.
        """
        try:
            backup = sqlite3.connect(f"file:{quote(os.path.abspath(source))}?mode=ro", uri=True,
                                     isolation_level=None)
            with contextlib.closing(backup):
                if backup.execute("PRAGMA quick_check").fetchone()[0] != "ok" or not backup.execute(
                        "SELECT 1 FROM sqlite_master WHERE name = '_migrations'").fetchone():
                    raise sqlite3.DatabaseError("not a Silent Customizer database")
                with contextlib.closing(sqlite3.connect(target, isolation_level=None)) as live:
                    backup.backup(live, pages=1024, progress=progress)
                    live.execute("PRAGMA journal_mode=WAL")
                    applied = migrate(sqlite_utils.Database(live))
        except sqlite3.DatabaseError as exc:
            raise InvalidField("backup", f"{source} cannot be restored: {exc}") from None
        return {"bytes": os.path.getsize(target), "migrations": applied}

