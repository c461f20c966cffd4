"""The Parquet archive's statements on PostgreSQL: its position is a packed (xid, seq), like the learner's cursor.

A sequence number is not commit order here, so the archive follows the learner:
it writes, in (xid, seq) order, exactly the decisions up to the learner's
committed cursor (all of them older than every transaction open when the learner
read them, so none can appear behind it later), and stores its position as that
pair, in the transaction that publishes the model. Reports and exports take the
decisions past the position, in the same order, from the live tables.
"""
from __future__ import annotations

from experiments.store.postgres_cursor import pack, unpack
from experiments.store.sqlite_archive import DECISION_COLUMNS

ARCHIVE_LOCK = 2  # hashtextextended(key, 2) is publish_model's lock: one writer of a key's models and archive
COUNT_DELETION = ("INSERT INTO meta (name, value) VALUES ('log:deletions', '1') ON CONFLICT (name)"
                  " DO UPDATE SET value = (CAST(meta.value AS INTEGER) + 1)::text")  # see SqliteUpkeep.log_deletions


class PostgresArchive:
    """Position handling of the archive on PostgreSQL (a mixin of ``PostgresStore``, before ``Store``)."""

    @staticmethod
    def _position_after(alias: str, position: int) -> tuple[str, list]:
        xid, seq = unpack(position)
        return f"({alias}xid, {alias}seq) > (?::text::xid8, ?)", [str(xid), seq]

    @staticmethod
    def _position_upto(alias: str, position: int) -> tuple[str, list]:
        xid, seq = unpack(position)
        return f"({alias}xid, {alias}seq) <= (?::text::xid8, ?)", [str(xid), seq]

    def position_of(self, seq: int) -> int:
        row = self.conn.execute("SELECT xid FROM decisions WHERE seq = ?", (seq,)).fetchone()
        return pack(row[0], seq) if row else 0

    @staticmethod
    def _archive_position_in(conn, experiment: str) -> int:
        row = conn.execute("SELECT xid, seq FROM archive_positions WHERE experiment = ?", (experiment,)).fetchone()
        return pack(row[0], row[1]) if row else 0

    @staticmethod
    def _set_archive_position(conn, experiment: str, position: int, at: float) -> None:
        xid, seq = unpack(position)
        conn.execute("INSERT INTO archive_positions (experiment, xid, seq, updated_at) VALUES (?, ?, ?, ?)"
                     " ON CONFLICT (experiment) DO UPDATE SET xid = EXCLUDED.xid, seq = EXCLUDED.seq,"
                     " updated_at = EXCLUDED.updated_at", (experiment, xid, seq, at))

    @staticmethod
    def _published_cursor(conn, experiment: str) -> int | None:
        row = conn.execute("SELECT cursor_xid, cursor_seq FROM models WHERE experiment = ?"
                           " ORDER BY version DESC LIMIT 1", (experiment,)).fetchone()
        return pack(row[0], row[1]) if row else None

    def _on_time_between(self, conn, experiment: str, after: int, upto: int) -> int:
        (low, low_params), (high, high_params) = self._position_after("d.", after), self._position_upto("d.", upto)
        return conn.execute(
            "SELECT count(*) FROM rewards r JOIN decisions d ON d.seq = r.decision_seq WHERE r.experiment = ?"
            f" AND r.late = 0 AND {low} AND {high}", (experiment, *low_params, *high_params)).fetchone()[0]

    def _commit_archive(self, conn, archive: dict) -> None:
        """As on SQLite, after taking the lock that serialises the key's publishers: two writers racing
        for one range both read the old position, and only the first to lock may move it."""
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(?, ?))", (archive["experiment"], ARCHIVE_LOCK))
        super()._commit_archive(conn, archive)

    def decisions_to_archive(self, experiment: str, after: int, upto: int, closed_by: float,
                             limit: int) -> list[dict]:
        """Whole decision rows between two positions in commit order, up to the first still open."""
        (low, low_params), (high, high_params) = self._position_after("", after), self._position_upto("", upto)
        rows = self.query(
            f"SELECT {', '.join(DECISION_COLUMNS)}, xid FROM decisions WHERE experiment = ? AND {low} AND {high}"
            " ORDER BY xid, seq LIMIT ?", (experiment, *low_params, *high_params, limit))
        for i, row in enumerate(rows):
            row["position"] = pack(row.pop("xid"), row["seq"])
            if row["window_closes_at"] > closed_by:
                return rows[:i]
        return rows

    def waiting_to_archive(self, experiment: str, after: int, upto: int, limit: int) -> int:
        (low, low_params), (high, high_params) = self._position_after("", after), self._position_upto("", upto)
        return self.conn.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM decisions WHERE experiment = ? AND {low} AND {high} LIMIT ?) t",
            (experiment, *low_params, *high_params, limit)).fetchone()[0]
