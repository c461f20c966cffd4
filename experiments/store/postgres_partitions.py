"""Day partitions of decisions and rewards on PostgreSQL: made ahead, dropped whole by retention.

A partition holds one UTC day of ``created_at`` (decisions) or ``received_at``
(rewards). ``ensure_partitions`` makes yesterday to a few days ahead, so the
insert path never waits for DDL; an insert that still finds no partition (a
clock far off) makes its day and retries. Retention (``purge_log``) drops a
decisions partition whole when every row in it may go, deletes row by row
otherwise, and drops a rewards partition once no kept decision is older than it.
"""
from __future__ import annotations

import time

import psycopg.errors

from experiments.store.postgres_archive import COUNT_DELETION
from experiments.store.postgres_cursor import unpack

DAY = 86400
AHEAD_DAYS = 3
PURGE_BATCH = 500
TABLES = ("decisions", "rewards")


def _name(table: str, day: int) -> str:
    return f"{table}_d{time.strftime('%Y%m%d', time.gmtime(day * DAY))}"


class PostgresPartitions:
    """Partition upkeep and retention of ``PostgresStore`` (which gives ``conn``, ``pool``, ``transaction``)."""

    def ensure_partitions(self, now: float) -> None:
        """Make the partitions from yesterday to ``AHEAD_DAYS`` ahead (the learner calls this every pass)."""
        today = int(now // DAY)
        for table in TABLES:
            for day in range(today - 1, today + AHEAD_DAYS + 1):
                self._make_partition(table, day)

    def ensure_partition(self, table: str, at: float) -> None:
        self._make_partition(table, int(at // DAY))

    def _make_partition(self, table: str, day: int) -> None:
        if (table, day) in self._partitions_made:
            return
        try:
            self.conn.execute(f"CREATE TABLE IF NOT EXISTS {_name(table, day)} PARTITION OF {table}"
                              f" FOR VALUES FROM ({day * DAY}) TO ({(day + 1) * DAY})")
        except (psycopg.errors.DuplicateTable, psycopg.errors.UniqueViolation):
            pass  # another process made it a moment ago
        self._partitions_made.add((table, day))

    def partitions(self, table: str) -> list[tuple[str, float, float]]:
        """Return (name, start, end) of a table's partitions, oldest first."""
        rows = self.conn.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = ?::regclass", (table,)).fetchall()
        out = []
        for name, bound in rows:  # FOR VALUES FROM ('86400') TO ('172800')
            low, high = (float(v.strip(" ()'")) for v in bound.split("FROM", 1)[1].split("TO"))
            out.append((name, low, high))
        return sorted(out, key=lambda p: p[1])

    def _drop_partition(self, conn, table: str, name: str) -> None:
        conn.execute(f"ALTER TABLE {table} DETACH PARTITION {name}")
        conn.execute(f"DROP TABLE {name}")
        self._partitions_made.clear()

    # -- retention ---------------------------------------------------------------------------
    def purge_log(self, experiment: str, before: float, learned_through: int, settled_before: float,
                  reason: str, now: float) -> dict:
        """Delete an experiment's learned, settled decisions made before ``before``, as on SQLite.

        Whole day partitions go at once when all their rows qualify; the rest goes
        in batches. ``learned_through`` is the newest model's packed cursor.
        """
        xid, seq = unpack(learned_through)
        cond = ("created_at < ? AND (xid, seq) <= (?::text::xid8, ?) AND window_closes_at < ?")
        params = (before, str(xid), seq, settled_before)
        counts, digests = {"decisions": 0, "rewards": 0}, set()
        for name, low, high in self.partitions("decisions"):
            if low >= before:
                break
            whole = not self.conn.execute(
                f"SELECT EXISTS (SELECT 1 FROM {name} WHERE experiment != ? OR NOT ({cond}))",
                (experiment, *params)).fetchone()[0]
            if whole:
                with self.transaction() as conn:
                    counts["decisions"] += conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
                    digests |= {r[0] for r in conn.execute(f"SELECT DISTINCT candidate_set FROM {name}")}
                    counts["rewards"] += conn.execute(
                        f"DELETE FROM rewards WHERE decision_seq IN (SELECT seq FROM {name})").rowcount
                    conn.execute("DELETE FROM event_ids WHERE created_at >= ? AND created_at < ?", (low, high))
                    conn.execute(COUNT_DELETION)  # an archive batch read before this must not commit
                    self._drop_partition(conn, "decisions", name)
                continue
            while True:
                with self.transaction() as conn:
                    rows = conn.execute(f"SELECT seq, candidate_set, event_id FROM {name} WHERE experiment = ?"
                                        f" AND {cond} LIMIT ?", (experiment, *params, PURGE_BATCH)).fetchall()
                    self._delete_rows(conn, rows, counts)
                digests |= {r[1] for r in rows}
                if len(rows) < PURGE_BATCH:
                    break
        self._drop_old_rewards()
        counts["kept"] = self.conn.execute(
            "SELECT count(*) FROM decisions WHERE experiment = ? AND created_at < ?", (experiment, before)).fetchone()[0]
        if counts["decisions"]:
            self.conn.execute("INSERT INTO log_purges (experiment, before, decisions, rewards, reason, at)"
                              " VALUES (?, ?, ?, ?, ?, ?)",
                              (experiment, before, counts["decisions"], counts["rewards"], reason, now))
        counts["candidate_sets"] = self.prune_candidate_sets(digests)
        return counts

    @staticmethod
    def _delete_rows(conn, rows, counts: dict) -> None:
        seqs = [r[0] for r in rows]
        if not seqs:
            return
        conn.execute(COUNT_DELETION)  # an archive batch read before this must not commit
        counts["rewards"] += conn.execute("DELETE FROM rewards WHERE decision_seq = ANY(?)", (seqs,)).rowcount
        conn.execute("DELETE FROM event_ids WHERE event_id = ANY(?)", ([r[2] for r in rows],))
        counts["decisions"] += conn.execute("DELETE FROM decisions WHERE seq = ANY(?)", (seqs,)).rowcount

    def _drop_old_rewards(self) -> None:
        """Drop rewards partitions that end before the oldest kept decision was made (nothing can refer to them)."""
        oldest = self.conn.execute("SELECT min(created_at) FROM decisions").fetchone()[0]
        for name, _, high in self.partitions("rewards"):
            if oldest is None or high > oldest or high > time.time() - 2 * DAY:
                break
            with self.transaction() as conn:
                self._drop_partition(conn, "rewards", name)

    def forget_unit(self, unit: str) -> dict:
        """Delete every decision of one unit (all experiments) with its rewards; return what went."""
        counts = {"decisions": 0, "rewards": 0}
        with self.transaction() as conn:
            rows = conn.execute("SELECT seq, experiment, event_id FROM decisions WHERE unit = ?", (unit,)).fetchall()
            self._delete_rows(conn, [(r[0], None, r[2]) for r in rows], counts)
        return {"decisions": counts["decisions"], "rewards": counts["rewards"],
                "experiments": sorted({r[1] for r in rows})}

    def prune_candidate_sets(self, digests: set[str]) -> int:
        """Delete the candidate sets among ``digests`` that no decision references and no process remembers."""
        if not digests:
            return 0
        return self.conn.execute(
            "DELETE FROM candidate_sets c WHERE hash = ANY(?) AND coalesce(used_at, 0) < ?"
            " AND NOT EXISTS (SELECT 1 FROM decisions d WHERE d.candidate_set = c.hash)",
            (sorted(digests), time.time() - 2 * self.known_set_seconds)).rowcount
