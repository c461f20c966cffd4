"""The SQLite statements of the Parquet archive and of reports over archive + live store.

Engine-neutral methods (mixed into ``Store``): the archive writer reads closed
decisions with their on-time rewards and commits its position and file list;
reports read, in one snapshot, the archive's position and files and the live
rows past that position. Nothing here knows about Parquet or DuckDB.

A *position* is where the learner's cursor is: a sequence number here, a packed
(xid, seq) on PostgreSQL, where commit order is not seq order. The few methods
that compare positions (``_position_after``, ``_position_upto`` and the ones
that store or read a position) are what the PostgreSQL engine overrides.
"""
from __future__ import annotations

import contextlib

DECISION_COLUMNS = ("seq", "event_id", "unit", "variant", "model_version", "spec_version", "created_at",
                    "window_closes_at", "context", "candidate_set", "excluded", "slate", "defer_activation",
                    "activated_at", "learning_mode", "model_slate", "slot_context")
REWARD_COLUMNS = "decision_seq, type, item, slot, value, received_at, duplicates"


class ArchiveConflict(Exception):
    """Another writer moved the archive position first; this writer's files are not committed."""


class SqliteArchive:
    """Archive and report queries of the SQLite engine (a mixin of ``Store``)."""

    # -- the archive writer ----------------------------------------------------------------------
    @staticmethod
    def _position_after(alias: str, position: int) -> tuple[str, list]:
        """SQL (and its parameters) for decisions ``alias`` past a position: not archived by it."""
        return f"{alias}seq > ?", [position]

    @staticmethod
    def _position_upto(alias: str, position: int) -> tuple[str, list]:
        """SQL (and its parameters) for decisions ``alias`` at or before a position: archived by it."""
        return f"{alias}seq <= ?", [position]

    def position_of(self, seq: int) -> int:
        """The position of a logged decision: where a cursor that has just passed it stands."""
        return seq

    def archive_position(self, experiment: str) -> int:
        """Return the position up to which the experiment's decisions are archived (0: none)."""
        return self._archive_position_in(self.conn, experiment)

    def decisions_to_archive(self, experiment: str, after: int, upto: int, closed_by: float,
                             limit: int) -> list[dict]:
        """Return whole decision rows between two positions, (after, upto], in log order, up to the first
        still open; each with its own ``position``."""
        rows = self.query(
            f"SELECT {', '.join(DECISION_COLUMNS)}, seq AS position FROM decisions NOT INDEXED"
            " WHERE seq > ? AND seq <= ? AND experiment = ? ORDER BY seq LIMIT ?",
            (after, upto, experiment, limit))
        for i, row in enumerate(rows):
            if row["window_closes_at"] > closed_by:
                return rows[:i]
        return rows

    def waiting_to_archive(self, experiment: str, after_seq: int, upto_seq: int, limit: int) -> int:
        """Count the experiment's decisions in (after_seq, upto_seq], stopping at ``limit``."""
        return self.conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM decisions NOT INDEXED WHERE seq > ? AND seq <= ? AND experiment = ?"
            " LIMIT ?)", (after_seq, upto_seq, experiment, limit)).fetchone()[0]

    def on_time_rewards(self, experiment: str, low_seq: int, high_seq: int) -> list[dict]:
        """Return every on-time reward of the experiment's decisions in [low_seq, high_seq], in arrival order."""
        return self.query(
            f"SELECT {REWARD_COLUMNS} FROM rewards WHERE experiment = ? AND late = 0"
            " AND decision_seq BETWEEN ? AND ? ORDER BY received_at, id", (experiment, low_seq, high_seq))

    def candidate_texts(self, digests) -> dict[str, str]:
        """Return the stored JSON text of each candidate list, by hash."""
        digests = list(set(digests))
        out = {}
        for start in range(0, len(digests), 500):
            part = digests[start:start + 500]
            out.update(self.conn.execute(
                f"SELECT hash, candidates FROM candidate_sets WHERE hash IN ({', '.join('?' * len(part))})",
                part).fetchall())
        return out

    def commit_archive(self, archive: dict) -> bool:
        """Commit an archive batch on its own, for decisions the newest published model has learned already.

        Returns False when another writer moved the position first or no model covers the range.
        """
        with self.transaction() as conn:
            cursor = self._published_cursor(conn, archive["experiment"])
            if cursor is None or cursor < archive["upto_seq"]:
                return False
            try:
                self._commit_archive(conn, archive)
            except ArchiveConflict:
                return False
        return True

    def _commit_archive(self, conn, archive: dict) -> None:
        """Move the position from ``after_seq`` to ``upto_seq`` and list the files, or raise ArchiveConflict.

        ``on_time`` is how many on-time rewards the writer read for the range: a
        reward that committed since then would be missing from the files.
        """
        key, after, upto = archive["experiment"], archive["after_seq"], archive["upto_seq"]
        if self._archive_position_in(conn, key) != after:
            raise ArchiveConflict(f"archive of {key} moved past {after}")
        if archive.get("deletions", 0) != self.log_deletions(conn):
            raise ArchiveConflict(f"decisions were deleted (retention, erasure) while the archive of {key} was written")
        if self._on_time_between(conn, key, after, upto) != archive["on_time"]:
            raise ArchiveConflict(f"rewards of {key} changed while its archive was written")
        self._set_archive_position(conn, key, upto, archive["created_at"])
        conn.executemany(
            "INSERT INTO archive_files (experiment, dataset, day, path, pending, first_seq, last_seq, rows, bytes,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(key, f["dataset"], f["day"], f["path"], f["pending"], f["first_seq"], f["last_seq"], f["rows"],
              f["bytes"], archive["created_at"]) for f in archive["files"]])

    def _forget_archive(self, conn, experiment: str, upto_seq: int) -> None:
        """Unlist an experiment's archive whose decisions were deleted; the position moves past them, so a
        batch being written for them cannot commit (the caller deletes the files)."""
        conn.execute("DELETE FROM archive_files WHERE experiment = ?", (experiment,))
        position = max(self._archive_position_in(conn, experiment), upto_seq)
        conn.execute("INSERT OR REPLACE INTO archive_positions (experiment, seq, updated_at) VALUES (?, ?,"
                     " (SELECT updated_at FROM archive_positions WHERE experiment = ?))",
                     (experiment, position, experiment))

    @staticmethod
    def _archive_position_in(conn, experiment: str) -> int:
        row = conn.execute("SELECT seq FROM archive_positions WHERE experiment = ?", (experiment,)).fetchone()
        return row[0] if row else 0

    @staticmethod
    def _set_archive_position(conn, experiment: str, position: int, at: float) -> None:
        conn.execute("INSERT OR REPLACE INTO archive_positions (experiment, seq, updated_at) VALUES (?, ?, ?)",
                     (experiment, position, at))

    @staticmethod
    def _published_cursor(conn, experiment: str) -> int | None:
        """The newest published model's cursor: the archive never passes what a model has learned."""
        row = conn.execute("SELECT cursor_seq FROM models WHERE experiment = ? ORDER BY version DESC LIMIT 1",
                           (experiment,)).fetchone()
        return row[0] if row else None

    @staticmethod
    def _on_time_between(conn, experiment: str, after: int, upto: int) -> int:
        """Count the on-time rewards of the decisions between two positions, (after, upto]."""
        return conn.execute("SELECT count(*) FROM rewards WHERE experiment = ? AND late = 0"
                            " AND decision_seq > ? AND decision_seq <= ?", (experiment, after, upto)).fetchone()[0]

    def archive_files(self, experiment: str | None = None, dataset: str = "decisions",
                      before_day: str | None = None) -> list[dict]:
        """Return the committed files of an experiment (all experiments when None), oldest range first."""
        sql, params = "SELECT * FROM archive_files WHERE dataset = ?", [dataset]
        if experiment is not None:
            sql, params = sql + " AND experiment = ?", params + [experiment]
        if before_day is not None:
            sql, params = sql + " AND day < ?", params + [before_day]
        return self.query(sql + " ORDER BY experiment, first_seq", params)

    def newest_archive_files(self, experiment: str) -> list[dict]:
        """Return the files of the experiment's newest archive commit (the only ones a crash can leave pending)."""
        return self.query("SELECT * FROM archive_files WHERE experiment = ? AND created_at ="
                          " (SELECT max(created_at) FROM archive_files WHERE experiment = ?)", (experiment, experiment))

    def update_archive_file(self, file_id: int, rows: int, size: int) -> None:
        """Record a file rewritten without some rows (erasure, purge)."""
        with self.transaction() as conn:
            conn.execute("UPDATE archive_files SET rows = ?, bytes = ? WHERE id = ?", (rows, size, file_id))

    def forget_archive_files(self, ids: list[int]) -> None:
        """Drop files from the archive's list (retention); the caller deletes them afterwards."""
        with self.transaction() as conn:
            for start in range(0, len(ids), 500):
                part = ids[start:start + 500]
                conn.execute(f"DELETE FROM archive_files WHERE id IN ({', '.join('?' * len(part))})", part)

    # -- reports over archive + live ---------------------------------------------------------------
    @contextlib.contextmanager
    def snapshot(self):
        """Read in one consistent snapshot: the archive position, its files and the live rows past it."""
        conn = self.conn
        if conn.in_transaction:
            yield
            return
        conn.execute("BEGIN")
        try:
            yield
        finally:
            conn.execute("COMMIT")

    def live_decisions(self, experiment: str, start: float, end: float, position: int) -> list[tuple]:
        """Return (seq, created_at, unit, variant, model_version, slots, first id) of unarchived decisions."""
        after, params = self._position_after("", position)
        return self.conn.execute(
            "SELECT seq, created_at, unit, variant, coalesce(model_version, 0), json_array_length(slate),"
            " coalesce(json_extract(slate, '$[0].id'), '') FROM decisions"
            f" WHERE experiment = ? AND created_at >= ? AND created_at < ? AND {after} ORDER BY seq",
            (experiment, start, end, *params)).fetchall()

    def live_rewards(self, experiment: str, start: float, end: float, position: int) -> list[tuple]:
        """Return (seq, slot, value, type, late, duplicates) of rewards the archive does not hold, in arrival order.

        That is every reward of an unarchived decision, and the late rewards of
        archived decisions (the archive keeps on-time rewards only).
        """
        select = ("SELECT r.decision_seq, r.slot, r.value, r.type, r.late, r.duplicates, r.received_at, r.id"
                  " FROM rewards r JOIN decisions d ON d.seq = r.decision_seq WHERE r.experiment = ?"
                  " AND d.created_at >= ? AND d.created_at < ?")
        (after, after_params), (upto, upto_params) = (self._position_after("d.", position),
                                                      self._position_upto("d.", position))
        rows = self.conn.execute(
            f"{select} AND {after} UNION ALL {select} AND r.late = 1 AND {upto} ORDER BY 7, 8",
            (experiment, start, end, *after_params, experiment, start, end, *upto_params)).fetchall()
        return [row[:6] for row in rows]

    def live_sample(self, experiment: str, start: float, end: float, position: int, multiplier: int,
                    modulus: int, threshold: int) -> list[dict]:
        """Return unarchived decisions whose (seq * multiplier) % modulus < threshold, in log order."""
        after, params = self._position_after("", position)
        return self.query(
            "SELECT seq, variant, context, candidate_set, slate FROM decisions"
            f" WHERE experiment = ? AND created_at >= ? AND created_at < ? AND {after} AND (seq * ?) % ? < ?"
            " ORDER BY seq", (experiment, start, end, *params, multiplier, modulus, threshold))

    def count_decisions_after(self, experiment: str, start: float, end: float, position: int) -> int:
        """Count the window's decisions past ``position`` (the ones not archived)."""
        after, params = self._position_after("", position)
        return self.conn.execute(
            f"SELECT count(*) FROM decisions WHERE experiment = ? AND created_at >= ? AND created_at < ? AND {after}",
            (experiment, start, end, *params)).fetchone()[0]

    def export_chunk(self, experiment: str, start: float, end: float, position: int, after_seq: int,
                     limit: int) -> list[dict]:
        """Return up to ``limit`` whole decision rows of the window past ``position`` (not archived) and
        after ``after_seq`` (the previous chunk), in seq order."""
        after, params = self._position_after("", position)
        return self.query(
            f"SELECT * FROM decisions WHERE experiment = ? AND created_at >= ? AND created_at < ? AND {after}"
            " AND seq > ? ORDER BY seq LIMIT ?", (experiment, start, end, *params, after_seq, limit))

    def export_rewards(self, experiment: str, low_seq: int, high_seq: int) -> list[dict]:
        """Return every reward of the experiment's decisions in [low_seq, high_seq] with its late flag, oldest first."""
        return self.query(
            f"SELECT {REWARD_COLUMNS}, late FROM rewards WHERE experiment = ? AND decision_seq BETWEEN ? AND ?"
            " ORDER BY received_at, id", (experiment, low_seq, high_seq))

    def late_rewards_of_archived(self, experiment: str, start: float, end: float, position: int) -> list[dict]:
        """Return the late rewards of archived decisions (up to ``position``) made in [start, end), oldest first."""
        upto, params = self._position_upto("d.", position)
        return self.query(
            f"SELECT {', '.join('r.' + c.strip() for c in REWARD_COLUMNS.split(','))} FROM rewards r"
            f" JOIN decisions d ON d.seq = r.decision_seq WHERE r.experiment = ? AND r.late = 1"
            f" AND {upto} AND d.created_at >= ? AND d.created_at < ? ORDER BY r.received_at, r.id",
            (experiment, *params, start, end))

    def published_models(self, experiment: str, start: float, end: float) -> list[dict]:
        """Return the model snapshots published in [start, end), oldest first."""
        return self.query(
            "SELECT version, learned, created_at, spec_version FROM models WHERE experiment = ? AND created_at >= ?"
            " AND created_at < ? ORDER BY version", (experiment, start, end))

    def newest_model_version(self, experiment: str) -> int | None:
        return self.conn.execute("SELECT max(version) FROM models WHERE experiment = ?", (experiment,)).fetchone()[0]
