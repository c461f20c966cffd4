"""The archive: closed, learned decisions joined with their on-time rewards, in Parquet files.

Layout under the archive folder (hive partitioning, so DuckDB, pandas/pyarrow and
Spark read it as it is; the columns are described in ``docs/reports.md``)::

    decisions/experiment=<key>/day=<YYYY-MM-DD>/part-<first seq>-<last seq>.parquet

Exactly once: the learner asks for a batch when it publishes a model. The batch
is written to hidden pending files (``.pending-<token>-part-...``), then the
archive position and the file list commit in the transaction that publishes the
model and its cursor, and only then are the files renamed to their final names.
A crash before the commit leaves hidden pending files that nothing lists (they
are deleted an hour later); a crash after it leaves listed files under their
pending names, which the next writer, or a reader, renames. A takeover starts
from the committed position, and two writers racing for one range commit once
(the position is a compare-and-set). Rewards that arrive after a decision was
archived are late by then; they stay in the live store and reports count them
from there.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from experiments.labels import slot_rewards
from experiments.reporting import units
from experiments.store import loads

log = logging.getLogger(__name__)

DATASET = "decisions"
SUMMARIES = "summaries"  # per decisions file: its counts and sums by hour, so reports need not read every row
SAMPLES = "samples"  # per decisions file: the 1/64 of its rows an off-policy sample can draw from, by hash
COMPANIONS = (SUMMARIES, SAMPLES)
SAMPLE_MULTIPLIER = 2654435761  # Knuth: seq * M mod 2^32 spreads seqs evenly (exact while seq < 3.4e9)
SAMPLE_MODULUS = 2**32
SAMPLE_KEPT = SAMPLE_MODULUS // 64
HOUR = 3600
PENDING_PREFIX = ".pending-"
STALE_PENDING_SECONDS = 3600.0  # older unlisted pending files are a dead writer's leftovers
READ_CHUNK = 10_000
ROW_GROUP_ROWS = 128 * 1024
DAY = 86400.0
EXPIRE_EVERY_SECONDS = 3600.0

SLATE_TYPE = pa.list_(pa.struct([("slot", pa.int32()), ("id", pa.string()), ("index", pa.int32()),
                                 ("probability", pa.float64())]))
REWARD_TYPE = pa.list_(pa.struct([("type", pa.string()), ("item", pa.string()), ("slot", pa.int32()),
                                  ("value", pa.float64()), ("received_at", pa.float64()),
                                  ("duplicates", pa.int32())]))
SCHEMA = pa.schema([
    ("seq", pa.int64()), ("event_id", pa.string()), ("unit", pa.string()), ("unit_key", pa.int64()),
    ("variant", pa.string()), ("model_version", pa.int64()), ("spec_version", pa.int64()),
    ("created_at", pa.float64()), ("window_closes_at", pa.float64()),
    ("context", pa.string()), ("candidate_set", pa.string()), ("candidates", pa.string()), ("excluded", pa.string()),
    ("slate", SLATE_TYPE), ("slots", pa.int32()), ("first_item", pa.string()),
    ("learning_mode", pa.string()), ("defer_activation", pa.bool_()), ("activated_at", pa.float64()),
    ("model_slate", pa.string()), ("slot_context", pa.string()),
    ("rewards", REWARD_TYPE), ("slot_rewards", pa.list_(pa.float64())), ("reward", pa.float64()),
    ("rewarded", pa.bool_()), ("reward_aggregation", pa.string()), ("reward_default", pa.float64()),
])


def unit_key(unit: str) -> int:
    """A unit's 64-bit key (signed): reports count distinct units on it, which is far cheaper than on text.

    >>> unit_key("user-42") == unit_key("user-42"), unit_key("user-42") == unit_key("user-43")
    (True, False)
    """
    return int.from_bytes(hashlib.blake2b(unit.encode(), digest_size=8).digest(), "big", signed=True)


def day_of(seconds: float) -> str:
    """The UTC day of a time, the archive's partition.

    >>> day_of(1_767_225_600.0)
    '2026-01-01'
    """
    return datetime.fromtimestamp(seconds, timezone.utc).date().isoformat()


def default_folder(database: str) -> str | None:
    """The archive folder beside a database file (``shop.db`` -> ``shop-archive``); None for other databases."""
    if not database or database == ":memory:" or "://" in database:
        return None
    return os.path.splitext(os.path.abspath(database))[0] + "-archive"


def open_archive(store, database: str, folder: str = "", **options) -> "Archive | None":
    """The archive of a database: in ``folder``, or beside the database file when empty; None when "off",
    and for a PostgreSQL URL without a folder (there is no file to put it beside)."""
    if folder == "off":
        return None
    folder = folder or default_folder(database)
    return Archive(store, folder, **options) if folder else None


def part_name(first_seq: int, last_seq: int) -> str:
    return f"part-{first_seq:012d}-{last_seq:012d}.parquet"


# -- summaries -------------------------------------------------------------------------------------
SUMMARY_SQL = """
SELECT 'cell' AS kind, CAST(floor(created_at / 3600) AS BIGINT) AS hour, variant, first_item AS item,
       NULL::BIGINT AS model_version, count(*) AS decisions, sum(rewarded::INTEGER) AS rewarded,
       sum(slots) AS slots, sum(CASE WHEN rewarded THEN reward - reward_default * slots ELSE 0 END) AS extra,
       avg(reward) AS mean, coalesce(var_samp(reward) * (count(*) - 1), 0.0) AS m2, NULL::BIGINT AS rewards,
       NULL::BIGINT AS duplicates, NULL::BIGINT AS unattributed, min(seq) AS min_seq,
       min(created_at) AS first_at, max(created_at) AS last_at,
       any_value(reward_aggregation) AS reward_aggregation, any_value(reward_default) AS reward_default
FROM {source} GROUP BY hour, variant, first_item
UNION ALL
SELECT 'model', CAST(floor(created_at / 3600) AS BIGINT), NULL, NULL, model_version, count(*), NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, any_value(reward_aggregation), any_value(reward_default)
FROM {source} GROUP BY 2, model_version
UNION ALL
SELECT 'reward', hour, variant, r.type, NULL, count(DISTINCT seq), NULL, NULL, NULL, NULL, NULL, count(*),
       sum(r.duplicates), count(*) FILTER (r.slot IS NULL), NULL, NULL, NULL, any_value(reward_aggregation),
       any_value(reward_default)
FROM (SELECT seq, variant, CAST(floor(created_at / 3600) AS BIGINT) AS hour, unnest(rewards) AS r,
             reward_aggregation, reward_default FROM {source} WHERE rewarded) GROUP BY hour, variant, r.type
"""


SAMPLE_SQL = f"""
SELECT (seq * {SAMPLE_MULTIPLIER}) % {SAMPLE_MODULUS} AS sample_key, seq, variant, created_at, context,
       candidate_set, candidates, slate, slot_rewards, reward_aggregation, reward_default
FROM {{source}} WHERE (seq * {SAMPLE_MULTIPLIER}) % {SAMPLE_MODULUS} < {SAMPLE_KEPT} ORDER BY sample_key
"""
COMPANION_SQL = {SUMMARIES: SUMMARY_SQL, SAMPLES: SAMPLE_SQL}


def companion(dataset: str, decisions_path: str, path: str) -> None:
    """Write a decisions file's companion: its summary (per hour, variant and first item; per hour and model
    version; per hour, variant and reward type) or its sample rows."""
    quote = lambda text: "'" + text.replace("'", "''") + "'"  # noqa: E731  (our own paths)
    source = f"read_parquet({quote(decisions_path)}, hive_partitioning = false)"
    con = duckdb.connect(config={"threads": 1})
    try:
        con.execute(f"COPY ({COMPANION_SQL[dataset].format(source=source)}) TO {quote(path)}"
                    " (FORMAT parquet, COMPRESSION zstd)")
    finally:
        con.close()


# -- joined rows -----------------------------------------------------------------------------------
def joined_columns(rows: list[dict], rewards: dict[int, list[dict]], candidates: dict[str, str],
                   reward_spec: dict) -> dict[str, list]:
    """Turn decision rows, their on-time rewards (by seq) and candidate texts into archive columns."""
    columns = {name: [] for name in SCHEMA.names}
    for row in rows:
        slate = loads(row["slate"])
        mine = rewards.get(row["seq"], [])
        values = slot_rewards([(r["slot"], r["value"]) for r in mine], len(slate), reward_spec["aggregation"],
                              reward_spec["default"])
        record = {
            **{name: row[name] for name in ("seq", "event_id", "unit", "variant", "model_version", "spec_version",
                                            "created_at", "window_closes_at", "context", "candidate_set",
                                            "excluded", "learning_mode", "activated_at", "model_slate",
                                            "slot_context")},
            "unit_key": unit_key(row["unit"]), "candidates": candidates[row["candidate_set"]],
            "slate": [{k: s[k] for k in ("slot", "id", "index", "probability")} for s in slate],
            "slots": len(slate), "first_item": slate[0]["id"] if slate else "",
            "defer_activation": bool(row["defer_activation"]),
            "rewards": [{k: r[k] for k in ("type", "item", "slot", "value", "received_at", "duplicates")}
                        for r in mine],
            "slot_rewards": values, "reward": float(sum(values)), "rewarded": bool(mine),
            "reward_aggregation": reward_spec["aggregation"], "reward_default": float(reward_spec["default"]),
        }
        for name, value in record.items():
            columns[name].append(value)
    return columns


def joined_table(rows, rewards, candidates, reward_spec) -> pa.Table:
    columns = joined_columns(rows, rewards, candidates, reward_spec)
    return pa.table([pa.array(columns[f.name], type=f.type) for f in SCHEMA], schema=SCHEMA)


# -- the writer ------------------------------------------------------------------------------------
@dataclass
class Batch:
    """Pending files of one range, waiting for their commit."""

    experiment: str
    after_seq: int
    upto_seq: int
    on_time: int
    files: list[dict] = field(default_factory=list)
    created_at: float = 0.0
    deletions: int = 0  # the store's count of decision deletions when the batch was read

    def commit(self) -> dict:
        """What the store commits with the model (``Store.publish_model(..., archive=...)``)."""
        return {"experiment": self.experiment, "after_seq": self.after_seq, "upto_seq": self.upto_seq,
                "on_time": self.on_time, "files": self.files, "created_at": self.created_at,
                "deletions": self.deletions}


class Archive:
    """Write an experiment's closed, learned decisions to Parquet once, and find the files again."""

    def __init__(self, store, folder: str, batch_rows: int = 200_000, after_seconds: float = 600.0,
                 retention_days: float = 0.0, units_tail_rows: int = units.TAIL_ROWS):
        """``after_seconds``: archive once the oldest waiting decision's window closed this long ago
        (or ``batch_rows`` are waiting), so files stay few and large. ``retention_days``: delete
        archived days older than this (0 keeps them). ``units_tail_rows``: rebuild the units index
        (``experiments.reporting.units``) once this many archived decisions are not in it."""
        self.store = store
        self.folder = folder
        self.batch_rows = batch_rows
        self.after_seconds = after_seconds
        self.retention_days = retention_days
        self.units_tail_rows = units_tail_rows
        self._expired_at: dict[str, float] = {}

    def path(self, relative: str) -> str:
        return os.path.join(self.folder, relative)

    def due(self, key: str, cursor: int, closed_by: float) -> bool:
        """Whether a batch is worth writing now: enough decisions waiting, or the oldest waiting long enough."""
        position = self.store.archive_position(key)
        if cursor <= position:
            return False
        oldest = self.store.decisions_to_archive(key, position, cursor, closed_by, 1)
        if not oldest:
            return False
        if closed_by - oldest[0]["window_closes_at"] >= self.after_seconds:
            return True
        return self.store.waiting_to_archive(key, position, cursor, self.batch_rows) >= self.batch_rows

    def prepare(self, key: str, reward_spec: dict, cursor: int, closed_by: float, now: float,
                force: bool = False) -> Batch | None:
        """Write the next batch (decisions learned up to ``cursor`` and closed by ``closed_by``) as pending files."""
        self.recover(key)
        if not (force or self.due(key, cursor, closed_by)):
            return None
        position = self.store.archive_position(key)
        batch = Batch(key, position, position, 0, created_at=now, deletions=self.store.log_deletions())
        writers: dict[str, tuple] = {}
        token = uuid.uuid4().hex[:12]
        try:
            while True:
                limit = min(READ_CHUNK, self.batch_rows - sum(f["rows"] for f in batch.files))
                rows = self.store.decisions_to_archive(key, batch.upto_seq, cursor, closed_by, limit) if limit else []
                if not rows:
                    break
                self._write_chunk(batch, rows, reward_spec, writers, token)
                batch.upto_seq = rows[-1]["position"]  # the learner's kind of cursor: a packed (xid, seq) on PG
            for day, (writer, _) in writers.items():
                writer.close()
            self._summarize(batch, token)
        except BaseException:
            self._discard(batch, writers)
            raise
        if not batch.files:
            return None
        for entry in batch.files:
            _fsync(self.path(entry["pending"]))
            entry["bytes"] = os.path.getsize(self.path(entry["pending"]))
        return batch

    def _write_chunk(self, batch: Batch, rows: list[dict], reward_spec: dict, writers: dict, token: str) -> None:
        seqs = {row["seq"] for row in rows}  # in seq order only on SQLite: PostgreSQL archives in commit order
        rewards: dict[int, list[dict]] = {}
        for reward in self.store.on_time_rewards(batch.experiment, min(seqs), max(seqs)):
            if reward["decision_seq"] in seqs:
                rewards.setdefault(reward["decision_seq"], []).append(reward)
        batch.on_time += sum(len(v) for v in rewards.values())
        candidates = self.store.candidate_texts(row["candidate_set"] for row in rows)
        by_day: dict[str, list[dict]] = {}
        for row in rows:
            by_day.setdefault(day_of(row["created_at"]), []).append(row)
        for day, day_rows in by_day.items():
            table = joined_table(day_rows, rewards, candidates, reward_spec)
            if day not in writers:
                entry = {"dataset": DATASET, "day": day, "first_seq": day_rows[0]["seq"], "rows": 0, "bytes": 0}
                pending = f"{PENDING_PREFIX}{token}-{day_rows[0]['seq']}"
                entry["pending"] = self._relative(batch.experiment, day, pending)
                os.makedirs(os.path.dirname(self.path(entry["pending"])), exist_ok=True)
                writers[day] = (pq.ParquetWriter(self.path(entry["pending"]), SCHEMA, compression="zstd"), entry)
                batch.files.append(entry)
            writer, entry = writers[day]
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            entry["rows"] += len(day_rows)
            entry["last_seq"] = day_rows[-1]["seq"]
            entry["path"] = self._relative(batch.experiment, day, part_name(entry["first_seq"], entry["last_seq"]))

    def _summarize(self, batch: Batch, token: str) -> None:
        """Add a summary and a sample file beside each decisions file of the batch."""
        for entry in list(batch.files):
            for dataset in COMPANIONS:
                extra = {**entry, "dataset": dataset,
                         "pending": self._relative(batch.experiment, entry["day"], f"{PENDING_PREFIX}{token}-"
                                                   f"{entry['first_seq']}", dataset),
                         "path": self._relative(batch.experiment, entry["day"],
                                                part_name(entry["first_seq"], entry["last_seq"]), dataset)}
                os.makedirs(os.path.dirname(self.path(extra["pending"])), exist_ok=True)
                batch.files.append(extra)
                companion(dataset, self.path(entry["pending"]), self.path(extra["pending"]))

    @staticmethod
    def _relative(key: str, day: str, name: str, dataset: str = DATASET) -> str:
        return f"{dataset}/experiment={key}/day={day}/{name}"

    def _discard(self, batch: Batch, writers: dict) -> None:
        for writer, _ in writers.values():
            try:
                writer.close()
            except Exception:  # already failing; the pending file is removed below
                pass
        for entry in batch.files:
            _remove(self.path(entry["pending"]))

    def finish(self, batch: Batch, committed: bool) -> None:
        """Give committed files their final names; remove the files of a batch that lost the race."""
        for entry in batch.files:
            if committed:
                os.replace(self.path(entry["pending"]), self.path(entry["path"]))
            else:
                _remove(self.path(entry["pending"]))
        folders = {os.path.dirname(self.path(entry["path"])) for entry in batch.files}
        for folder in folders:
            self._remove_stale(folder)
        if committed:
            _fsync_dirs(folders)
            log.info("archived %s decisions of %s up to seq %s", sum(e["rows"] for e in batch.files),
                     batch.experiment, batch.upto_seq)
            self.index_units(batch.experiment)

    def index_units(self, key: str) -> None:
        """Extend the units index when enough new files wait; a failure costs reports speed, never answers."""
        try:
            units.refresh(self, self.store, key, self.units_tail_rows)
        except Exception:
            log.exception("indexing the units of %s failed; reports count them from the rows", key)

    def recover(self, key: str) -> None:
        """Rename the files of the newest commit that a crash left under their pending names."""
        for entry in self.store.newest_archive_files(key):
            self.resolve(entry)

    def resolve(self, entry: dict) -> str:
        """Return the file of a listed entry, renaming it first when a crash left it pending."""
        final = self.path(entry["path"])
        if not os.path.exists(final):
            pending = self.path(entry["pending"])
            if os.path.exists(pending):
                try:
                    os.replace(pending, final)
                except FileNotFoundError:  # another process renamed it a moment ago
                    pass
        return final

    @staticmethod
    def _remove_stale(folder: str) -> None:
        """Delete pending files older than an hour: no live writer is that slow, and nothing lists them."""
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return
        cutoff = time.time() - STALE_PENDING_SECONDS
        for name in names:
            path = os.path.join(folder, name)
            if name.startswith(PENDING_PREFIX) and os.path.getmtime(path) < cutoff:
                _remove(path)

    def expire(self, key: str, now: float, days: float | None = None) -> int:
        """Apply the archive's retention to one experiment (at most once an hour); return the files deleted.

        ``days`` is the experiment's own ``retention.days``; the shorter of it and the
        archive's retention wins. The files leave the list first, so no report reads
        a file that is about to go; then their day folders are deleted, leftovers of
        crashes included.
        """
        kept = [d for d in (self.retention_days, days) if d and d > 0]
        if not kept or now - self._expired_at.get(key, -math.inf) < EXPIRE_EVERY_SECONDS:
            return 0
        self._expired_at[key] = now
        cutoff = day_of(now - min(kept) * DAY)
        entries = self.store.archive_files(key, before_day=cutoff)
        companions = [e for dataset in COMPANIONS for e in self.store.archive_files(key, dataset, cutoff)]
        if entries or companions:
            self.store.forget_archive_files([e["id"] for e in entries + companions])
            units.remove(self, key)  # no longer valid; the next batch rebuilds it from the files kept
        for dataset in (DATASET, *COMPANIONS):
            folder = self.path(f"{dataset}/experiment={key}")
            for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
                if name.startswith("day=") and name[4:] < cutoff:
                    shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
        if entries:
            log.info("archive retention: deleted %s files of %s before %s", len(entries), key, cutoff)
        return len(entries)

    def remove(self, key: str) -> None:
        """Delete an experiment's archive folder, after its log was deleted (``Store.delete_log``)."""
        for dataset in (DATASET, *COMPANIONS, units.UNITS):
            shutil.rmtree(self.path(f"{dataset}/experiment={key}"), ignore_errors=True)

    def delete_rows(self, key: str | None, columns: list[str], doomed) -> dict:
        """Rewrite an experiment's files (every experiment's with None) without the rows ``doomed`` marks.

        ``doomed(table)`` gets ``columns`` of one decisions file and returns a boolean
        mask; only files with a marked row are read whole and rewritten, with their
        companions (summary, sample), each to a pending name and then renamed over the
        old one, which readers holding it keep. A file left empty leaves the list with
        its companions. Returns the rows and their (on-time) rewards deleted.
        """
        deleted = {"decisions": 0, "rewards": 0}
        companions = {e["path"]: e for dataset in COMPANIONS for e in self.store.archive_files(key, dataset=dataset)}
        for entry in self.store.archive_files(key):
            path = self.resolve(entry)
            try:
                mask = doomed(pq.read_table(path, columns=columns))
            except FileNotFoundError:  # expired by the learner a moment ago
                continue
            if not pc.any(mask).as_py():
                continue
            table = pq.read_table(path)
            deleted["decisions"] += pc.sum(mask).as_py()
            deleted["rewards"] += pc.sum(pc.list_value_length(table["rewards"].filter(mask))).as_py() or 0
            mine = {d: companions.get(d + entry["path"][len(DATASET):]) for d in COMPANIONS}
            units.remove(self, entry["experiment"])  # it may hold the deleted rows' units
            self._rewrite(entry, {d: e for d, e in mine.items() if e}, table.filter(pc.invert(mask)))
        return deleted

    def _rewrite(self, entry: dict, companions: dict[str, dict], kept: pa.Table) -> None:
        """Replace one decisions file (and its companions) by ``kept``; unlist them all when nothing is kept."""
        path = self.path(entry["path"])
        if kept.num_rows == 0:
            listed = [entry, *companions.values()]
            self.store.forget_archive_files([e["id"] for e in listed])
            for e in listed:
                _remove(self.path(e["path"]))
            return
        temporary = self._temporary(path)
        pq.write_table(kept, temporary, compression="zstd", row_group_size=ROW_GROUP_ROWS)
        _fsync(temporary)
        for dataset, extra in companions.items():
            extra_path = self.resolve(extra)
            extra_temporary = self._temporary(extra_path)
            companion(dataset, temporary, extra_temporary)
            _fsync(extra_temporary)
            os.replace(extra_temporary, extra_path)
            self.store.update_archive_file(extra["id"], kept.num_rows, os.path.getsize(extra_path))
        os.replace(temporary, path)
        self.store.update_archive_file(entry["id"], kept.num_rows, os.path.getsize(path))

    @staticmethod
    def _temporary(path: str) -> str:
        """A pending name beside ``path``: the stale-file sweep removes it if a crash leaves it behind."""
        return os.path.join(os.path.dirname(path), f"{PENDING_PREFIX}rewrite-{uuid.uuid4().hex[:12]}")

    def first_created(self, key: str) -> float | None:
        """When the experiment's oldest archived decision was made (its files are in log order)."""
        files = self.files(key)
        if not files:
            return None
        return pc.min(pq.read_table(files[0], columns=["created_at"])["created_at"]).as_py()

    def files(self, key: str) -> list[str]:
        """Return the paths of the experiment's committed files (each one resolved)."""
        return [self.resolve(entry) for entry in self.store.archive_files(key)]


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dirs(folders) -> None:
    for folder in folders:
        _fsync(folder)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
