"""One experiment's log over a time window, in DuckDB: the archive's Parquet files plus the live rows not archived yet.

Reports aggregate here rather than in Python, so a report over a hundred million
decisions reads a few Parquet columns and never holds a row per decision in
memory. The live store is read in one snapshot with the archive position, so a
decision is counted from exactly one of the two. Archived rows carry their reward
as the learner computed it; when the experiment's reward rules changed since (the
aggregation or the default), those rows are recomputed from their archived
rewards, like live rows, so the answer never depends on where a row is kept.
"""
from __future__ import annotations

import math
import os
import tempfile

import duckdb
import pyarrow as pa

from experiments.errors import Unavailable
from experiments.reporting import units
from experiments.reporting.archive import (COMPANIONS, HOUR, SAMPLE_KEPT, SAMPLE_MODULUS, SAMPLE_MULTIPLIER, SAMPLES,
                                          SCHEMA, SUMMARIES, day_of, unit_key)
from experiments.reporting.logdata import Window

MEMORY_LIMIT = "1GB"  # DuckDB spills to disk past this
AGGREGATE_SQL = {"sum": "sum(value)", "max": "max(value)", "first": "arg_min(value, ord)"}

LIVE_DECISIONS = pa.schema([("seq", pa.int64()), ("created_at", pa.float64()), ("unit_key", pa.int64()),
                            ("variant", pa.string()), ("model_version", pa.int64()), ("slots", pa.int32()),
                            ("first_item", pa.string())])
LIVE_REWARDS = pa.schema([("seq", pa.int64()), ("slot", pa.int32()), ("value", pa.float64()), ("type", pa.string()),
                          ("late", pa.int32()), ("duplicates", pa.int64()), ("ord", pa.int64())])
DECISION_COLUMNS = "seq, created_at, unit_key, variant, model_version, slots, first_item"
SUMMARY_COLUMNS = ("NULL::VARCHAR AS kind, NULL::BIGINT AS hour, NULL::VARCHAR AS variant, NULL::VARCHAR AS item,"
                   " NULL::BIGINT AS model_version, NULL::BIGINT AS decisions, NULL::BIGINT AS rewarded,"
                   " NULL::BIGINT AS slots, NULL::DOUBLE AS extra, NULL::DOUBLE AS mean, NULL::DOUBLE AS m2,"
                   " NULL::BIGINT AS rewards, NULL::BIGINT AS duplicates, NULL::BIGINT AS unattributed,"
                   " NULL::BIGINT AS min_seq, NULL::DOUBLE AS first_at, NULL::DOUBLE AS last_at,"
                   " NULL::VARCHAR AS reward_aggregation, NULL::DOUBLE AS reward_default")


def literal(value) -> str:
    """A SQL literal for a number or text we produced ourselves (never caller text)."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, float) and not math.isfinite(value):
        return f"'{'-' if value < 0 else ''}inf'::DOUBLE"
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def connect() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with bounded memory (it spills past the limit) and at most two threads."""
    con = duckdb.connect(config={"memory_limit": MEMORY_LIMIT, "threads": min(2, os.cpu_count() or 1),
                                 "temp_directory": os.path.join(tempfile.gettempdir(), "silent-duckdb")})
    con.execute("SET enable_progress_bar = false")  # a long report would draw one on the caller's terminal
    return con


def archived_files(store, window: Window, archive) -> tuple[object, list[str], dict[str, dict[str, str]], tuple]:
    """Read, in one snapshot, the archive position, the decisions files that can hold decisions of the
    window, each one's companions (by dataset, then by decisions file), and the units index that can
    count the window's units with the files it does not cover (``(None, [])`` when none can)."""
    with store.snapshot():
        position = store.archive_position(window.key)
        entries = store.archive_files(window.key)
        listed = {dataset: store.archive_files(window.key, dataset) for dataset in COMPANIONS}
    if entries and archive is None:
        raise Unavailable("this database has archived decisions but no archive folder is set (ARCHIVE_DIR)",
                          field="archive")
    index = units.find(archive, window.key, entries) if entries else None
    if index is not None and window.start > index.first_at:
        index = None  # a unit first seen before the window may or may not come back in it: count from rows
    low, high = _day_bound(window.start, "0000-00-00"), _day_bound(window.end, "9999-99-99")
    entries = [e for e in entries if low <= e["day"] <= high]
    files = [archive.resolve(e) for e in entries]
    missing = [f for f in files if not os.path.exists(f)]
    if missing:
        raise Unavailable(f"{len(missing)} archive files listed in the database are not in {archive.folder}"
                          f" (first: {missing[0]}); is ARCHIVE_DIR (--archive) right?", field="archive")
    uncovered = [f for e, f in zip(entries, files) if not units.covers(index, e)]
    return position, files, {dataset: _companions(archive, entries, files, listed[dataset])
                             for dataset in COMPANIONS}, (index, uncovered)


def _companions(archive, entries: list[dict], files: list[str], listed: list[dict]) -> dict[str, str]:
    """The companion file (summary or sample) of each decisions file that has one, by decisions file."""
    by_range = {(c["day"], c["first_seq"], c["last_seq"]): c for c in listed}
    out = {}
    for entry, path in zip(entries, files):
        found = by_range.get((entry["day"], entry["first_seq"], entry["last_seq"]))
        if found is not None and os.path.exists(archive.resolve(found)):
            out[path] = archive.resolve(found)
    return out


class ArchivedRows:
    """The archived decisions of one window, file by file in log order (for exports)."""

    def __init__(self, store, window: Window, archive=None):
        self.window = window
        self.position, self.files, _, _ = archived_files(store, window, archive)
        self.con = connect()

    def _where(self) -> str:
        return f"created_at >= {literal(self.window.start)} AND created_at < {literal(self.window.end)}"

    def count(self) -> int:
        if not self.files:
            return 0
        files = ", ".join(literal(f) for f in self.files)
        return self.con.execute(f"SELECT count(*) FROM read_parquet([{files}], hive_partitioning = false)"
                                f" WHERE {self._where()}").fetchall()[0][0]

    def batches(self, size: int):
        """Yield the rows as Arrow tables of at most ``size`` rows, each file in seq order."""
        for path in self.files:
            relation = self.con.sql(f"SELECT * FROM read_parquet({literal(path)}, hive_partitioning = false)"
                                    f" WHERE {self._where()} ORDER BY seq")
            reader = getattr(relation, "to_arrow_reader", None) or relation.fetch_arrow_reader  # DuckDB 2 / 1
            reader = reader(size)
            for batch in reader:
                if batch.num_rows:
                    yield pa.Table.from_batches([batch]).cast(SCHEMA)

    def close(self) -> None:
        self.con.close()


class LogView:
    """The decisions of one window with their reward values, and their rewards, as DuckDB relations.

    ``decisions``: seq, created_at, unit_key, variant, model_version, slots, first_item,
    value (the decision's reward), rewarded, first_reward (slot 0's reward).
    ``rewards``: seq, variant, slot, value, type, late, duplicates, one row per reward.
    """

    def __init__(self, store, window: Window, reward_spec: dict, archive=None):
        self.window, self.default = window, float(reward_spec["default"])
        self.aggregation = reward_spec["aggregation"]
        with store.snapshot():
            self.position, self.files, companions, (self.units_index, self.uncovered) = \
                archived_files(store, window, archive)
            live_d = store.live_decisions(window.key, window.start, window.end, self.position)
            live_r = store.live_rewards(window.key, window.start, window.end, self.position)
        self.summary_of, self.sample_of = companions[SUMMARIES], companions[SAMPLES]
        self.con = connect()
        self.con.register("live_d", _live_decisions(live_d))
        self.con.register("live_r", _live_rewards(live_r))
        self._summary_view()
        self._archived_views()
        self._decisions_view()
        self._rewards_view()

    def _hours(self) -> tuple[int, int]:
        """The whole hours [first, last) inside the window: summaries answer for archived rows in them."""
        w = self.window
        first = math.ceil(w.start / HOUR) if math.isfinite(w.start) else -2**62
        last = math.floor(w.end / HOUR) if math.isfinite(w.end) else 2**62
        return first, max(first, last)

    def _summary_view(self) -> None:
        """Summaries of the files written under today's reward rules, for the window's whole hours; and each
        such file's time span (its cells' first and last decision), which says whether the file has rows
        outside those hours at all. The summary files are read once, into Arrow: a few hundred thousand
        rows at 100 million decisions, cheaper to hold than to open every file again for each figure."""
        summaries = sorted(set(self.summary_of.values()))
        self.spans: dict[str, tuple[float, float]] = {}
        if not summaries:
            self.con.execute(f"CREATE VIEW summary AS SELECT {SUMMARY_COLUMNS} WHERE false")
            return
        relation = self.con.sql(f"SELECT * FROM read_parquet([{', '.join(map(literal, summaries))}],"
                                " hive_partitioning = false, filename = true)")
        self.con.register("summary_rows", (getattr(relation, "to_arrow_table", None) or relation.arrow)())
        current = {f: (low, high) for f, matched, low, high in self.sql(
            f"SELECT filename, bool_and({self._matched()}), min(first_at), max(last_at) FROM summary_rows"
            " GROUP BY filename") if matched}
        self.summary_of = {d: s for d, s in self.summary_of.items() if s in current}
        self.spans = {d: current[s] for d, s in self.summary_of.items()}
        stale = sorted(set(summaries) - set(current))
        first, last = self._hours()
        self.con.execute(f"CREATE VIEW summary AS SELECT * EXCLUDE (filename) FROM summary_rows"
                         f" WHERE hour >= {first} AND hour < {last}" +
                         (f" AND filename NOT IN ({', '.join(map(literal, stale))})" if stale else ""))

    def _has_edge_rows(self, path: str) -> bool:
        """Whether a summarized file may hold rows of the window outside its whole hours (the rows read)."""
        low, high = self.spans.get(path, (None, None))
        if low is None or high is None:
            return True
        w, (first, last) = self.window, self._hours()
        if high < w.start or low >= w.end:
            return False  # none of its rows is in the window
        return low < first * HOUR or high >= last * HOUR

    def _archived_views(self) -> None:
        """``archived_all``: every archived row of the window; ``archived``: those no summary answers for,
        read only from the files that have such rows (a full-range report reads no decisions file)."""
        w = self.window
        window = f"created_at >= {literal(w.start)} AND created_at < {literal(w.end)}"
        first, last = self._hours()
        hour = f"CAST(floor(created_at / {HOUR}) AS BIGINT)"
        summarized = [f for f in self.files if f in self.summary_of and self._has_edge_rows(f)]
        others = [f for f in self.files if f not in self.summary_of]
        self.read_files = summarized + others
        parts = [f"SELECT * FROM {_parquet(summarized)} WHERE {window} AND ({hour} < {first} OR {hour} >= {last})"
                 if summarized else "", f"SELECT * FROM {_parquet(others)} WHERE {window}" if others else ""]
        parts = [p for p in parts if p]
        if not self.files:
            self.con.register("archive_empty", SCHEMA.empty_table())
        everything = f"SELECT * FROM {_parquet(self.files)} WHERE {window}" if self.files else \
            "SELECT * FROM archive_empty"
        self.con.execute(f"CREATE VIEW archived_all AS {everything}")
        rows = " UNION ALL ".join(parts) if parts else "SELECT * FROM archived_all WHERE false"
        self.con.execute(f"CREATE VIEW archived AS {rows}")

    def _matched(self) -> str:
        """Archived rows whose stored reward follows the experiment's current reward rules."""
        return f"reward_aggregation = {literal(self.aggregation)} AND reward_default = {literal(self.default)}"

    def _decisions_view(self) -> None:
        """Live rows, and archived rows under other reward rules, get their values from their rewards."""
        stale = self.con.execute(f"SELECT count(*) FROM archived WHERE NOT ({self._matched()})").fetchall()[0][0]
        recompute_d = f"SELECT {DECISION_COLUMNS} FROM live_d"
        recompute_r = "SELECT seq, slot, value, ord FROM live_r WHERE late = 0"
        if stale:
            recompute_d += f" UNION ALL SELECT {DECISION_COLUMNS} FROM archived WHERE NOT ({self._matched()})"
            recompute_r += (" UNION ALL SELECT seq, r.slot, r.value, i FROM (SELECT seq, unnest(rewards) AS r,"
                            f" generate_subscripts(rewards, 1) AS i FROM archived WHERE NOT ({self._matched()}))")
        d = literal(self.default)
        self.con.execute(f"""
            CREATE TEMP TABLE recomputed AS
            WITH on_time AS ({recompute_r}),
            pairs AS (SELECT seq, slot, {AGGREGATE_SQL[self.aggregation]} AS v FROM on_time
                      WHERE slot IS NOT NULL GROUP BY seq, slot),
            per AS (SELECT seq, sum(v - {d}) AS extra, max(CASE WHEN slot = 0 THEN v END) AS first
                    FROM pairs GROUP BY seq),
            hit AS (SELECT DISTINCT seq FROM on_time)
            SELECT d.*, {d} * d.slots + coalesce(per.extra, 0) AS value, hit.seq IS NOT NULL AS rewarded,
                   coalesce(per.first, {d}) AS first_reward
            FROM ({recompute_d}) d LEFT JOIN per USING (seq) LEFT JOIN hit USING (seq)""")
        self.con.execute(f"""
            CREATE VIEW decisions AS
            SELECT {DECISION_COLUMNS}, reward AS value, rewarded, coalesce(slot_rewards[1], {d}) AS first_reward
            FROM archived WHERE {self._matched()}
            UNION ALL SELECT * FROM recomputed""")

    def _rewards_view(self) -> None:
        self.con.execute("""
            CREATE VIEW rewards AS
            SELECT seq, variant, r.slot AS slot, r.value AS value, r.type AS type, 0 AS late,
                   r.duplicates AS duplicates
            FROM (SELECT seq, variant, unnest(rewards) AS r FROM archived WHERE rewarded)
            UNION ALL SELECT r.seq, d.variant, r.slot, r.value, r.type, r.late, r.duplicates
            FROM live_r r LEFT JOIN live_d d USING (seq)""")

    def sql(self, query: str) -> list[tuple]:
        return self.con.execute(query).fetchall()

    # -- the aggregates a report needs: four scans whatever the size of the log ----------------------
    def variant_totals(self) -> dict[str, tuple]:
        """Per variant: decisions, distinct units, rewarded, mean and sample variance of the reward, first, last.

        Rows and summary cells are parts with their own count, mean and squared deviations; the
        parts combine exactly (total deviations = parts' own + each part's count times its mean's
        squared distance from the overall mean), in DuckDB, however many summary cells there are.
        """
        units = self.units()
        out = {}
        for variant, n, won, mean, m2, first, last in self.sql("""
                WITH parts AS (
                    SELECT variant, count(*) AS n, sum(rewarded::INTEGER) AS won, avg(value) AS mean,
                           coalesce(var_samp(value) * (count(*) - 1), 0.0) AS m2, min(created_at) AS first_at,
                           max(created_at) AS last_at FROM decisions GROUP BY variant
                    UNION ALL SELECT variant, decisions, rewarded, mean, m2, first_at, last_at FROM summary
                    WHERE kind = 'cell'),
                overall AS (SELECT variant, sum(n * mean) / sum(n) AS mean FROM parts GROUP BY variant)
                SELECT variant, sum(n)::BIGINT, sum(won)::BIGINT, any_value(o.mean),
                       sum(m2 + n * (p.mean - o.mean) * (p.mean - o.mean)), min(first_at), max(last_at)
                FROM parts p JOIN overall o USING (variant) GROUP BY variant"""):
            out[variant] = (n, units.get(variant, 0), won, mean, m2 / (n - 1) if n > 1 else None, first, last)
        return out

    def units(self) -> dict[str, int]:
        """Distinct units per variant: from the units index and the rows it does not cover when one
        answers for the window, else from every archived row of the window (both exact)."""
        scan = ("SELECT variant, count(DISTINCT unit_key) FROM (SELECT variant, unit_key FROM archived_all"
                " UNION ALL SELECT variant, unit_key FROM live_d) GROUP BY variant")
        if self.units_index is None:
            return dict(self.sql(scan))
        w = self.window
        others = ["SELECT variant, unit_key FROM live_d"]
        if self.uncovered:
            others.append(f"SELECT variant, unit_key FROM {_parquet(self.uncovered)}"
                          f" WHERE created_at >= {literal(w.start)} AND created_at < {literal(w.end)}")
        index, end = literal(self.units_index.path), literal(w.end)
        try:  # the index's pairs (distinct already), plus the other pairs it does not have
            counted = self.units_index.counts_before(w.end)
            if counted is None:
                counted = dict(self.sql(f"SELECT variant, count(*) FROM read_parquet({index}) WHERE first_at < {end}"
                                        " GROUP BY variant"))
            new = dict(self.sql(f"""
                WITH others AS (SELECT DISTINCT variant, unit_key FROM ({' UNION ALL '.join(others)})),
                known AS (SELECT variant, unit_key FROM read_parquet({index})
                          WHERE unit_key IN (SELECT unit_key FROM others) AND first_at < {end})
                SELECT variant, count(*) FROM others ANTI JOIN known USING (variant, unit_key) GROUP BY variant"""))
            return {v: counted.get(v, 0) + new.get(v, 0) for v in {*counted, *new}}
        except duckdb.IOException:  # the index was replaced or erased a moment ago
            return dict(self.sql(scan))

    def cells(self, width: int) -> list[tuple]:
        """Per ``width``-second bucket, variant and first-slot item: decisions, rewarded, slots, reward above
        the default, and the item's first seq (for stable ordering); rows and summary cells added up here.

        Summary cells are hourly, so buckets of less than an hour read every archived row instead (the
        report only chooses them for a range short enough to make that cheap).
        """
        default = literal(self.default)
        if width % HOUR:
            rows = (f"(SELECT {DECISION_COLUMNS}, reward AS value, rewarded FROM archived_all WHERE {self._matched()}"
                    f" UNION ALL SELECT {DECISION_COLUMNS}, value, rewarded FROM recomputed)")
            cells = ""
        else:
            rows = "decisions"
            cells = (f"UNION ALL SELECT CAST(floor(hour * {HOUR} / {width}) AS BIGINT), variant, item, decisions,"
                     " rewarded, slots, extra, min_seq FROM summary WHERE kind = 'cell'")
        return self.sql(f"""
            SELECT bucket, variant, item, sum(n)::BIGINT, sum(won)::BIGINT, sum(slots)::BIGINT, sum(extra),
                   min(first_seq) FROM (
                SELECT CAST(floor(created_at / {width}) AS BIGINT) AS bucket, variant, first_item AS item,
                       count(*) AS n, sum(rewarded::INTEGER) AS won, sum(slots) AS slots,
                       sum(CASE WHEN rewarded THEN value - {default} * slots ELSE 0 END) AS extra, min(seq) AS first_seq
                FROM {rows} GROUP BY ALL
                {cells})
            GROUP BY bucket, variant, item""")

    def served_models(self) -> list[tuple]:
        """(model version, decisions it served), by version."""
        served: dict[int, int] = {}
        for version, n in self.sql("SELECT model_version, count(*) FROM decisions GROUP BY model_version") + \
                self.sql("SELECT model_version, decisions FROM summary WHERE kind = 'model'"):
            served[version] = served.get(version, 0) + n
        return sorted(served.items())

    def reward_groups(self) -> list[tuple]:
        """Per variant, type and lateness: rewards, distinct decisions, duplicates, rewards without a slot."""
        groups: dict[tuple, list] = {}
        for variant, kind, late, *counts in self.sql(
                "SELECT variant, type, late, count(*), count(DISTINCT seq), coalesce(sum(duplicates), 0),"
                " count(*) FILTER (slot IS NULL) FROM rewards GROUP BY ALL") + self.sql(
                "SELECT variant, item, 0, rewards, decisions, duplicates, unattributed FROM summary"
                " WHERE kind = 'reward'"):
            total = groups.setdefault((variant, kind, late), [0, 0, 0, 0])
            for i, value in enumerate(counts):
                total[i] += int(value)
        return [(*key, *counts) for key, counts in groups.items()]

    def archived_sample(self, threshold: int) -> list[dict]:
        """Archived decisions of the window in the hash sample, with slot 0's reward (context and candidates
        still JSON text); read from the sample files when every file has one and they hold enough."""
        source = "archived_all"
        if self.files and threshold <= SAMPLE_KEPT and all(f in self.sample_of for f in self.files):
            w = self.window
            source = (f"(SELECT * FROM {_parquet([self.sample_of[f] for f in self.files])}"
                      f" WHERE created_at >= {literal(w.start)} AND created_at < {literal(w.end)})")
        rows = self.sql(f"SELECT seq, variant, context, candidate_set, candidates, slate, CASE WHEN {self._matched()}"
                        f" THEN coalesce(slot_rewards[1], {literal(self.default)}) END FROM {source}"
                        f" WHERE {sample_predicate(threshold)}")
        return [{"seq": r[0], "variant": r[1], "context": r[2], "candidate_set": r[3], "candidates": r[4],
                 "slate": r[5], "first_reward": r[6]} for r in rows]

    def recomputed_first_rewards(self, threshold: int) -> dict[int, float]:
        """Slot 0's reward of the sampled decisions whose reward is computed here (live, or under old rules)."""
        return dict(self.sql(f"SELECT seq, first_reward FROM recomputed WHERE {sample_predicate(threshold)}"))

    def close(self) -> None:
        self.con.close()


def _parquet(files: list[str]) -> str:
    return f"read_parquet([{', '.join(map(literal, files))}], hive_partitioning = false)"


def sample_predicate(threshold: int) -> str:
    """Decisions whose hashed seq falls under ``threshold`` (out of 2^32): the same ones on every engine."""
    return f"(seq * {SAMPLE_MULTIPLIER}) % {SAMPLE_MODULUS} < {int(threshold)}"  # BIGINT: exact below 3.4e9


def _day_bound(seconds: float, unbounded: str) -> str:
    return day_of(seconds) if math.isfinite(seconds) else unbounded


def _live_decisions(rows: list[tuple]) -> pa.Table:
    seq, created, unit, variant, model, slots, item = zip(*rows) if rows else ([],) * 7
    return pa.table([pa.array(seq, pa.int64()), pa.array(created, pa.float64()),
                     pa.array([unit_key(u) for u in unit], pa.int64()), pa.array(variant, pa.string()),
                     pa.array(model, pa.int64()), pa.array(slots, pa.int32()), pa.array(item, pa.string())],
                    schema=LIVE_DECISIONS)


def _live_rewards(rows: list[tuple]) -> pa.Table:
    seq, slot, value, kind, late, duplicates = zip(*rows) if rows else ([],) * 6
    return pa.table([pa.array(seq, pa.int64()), pa.array(slot, pa.int32()), pa.array(value, pa.float64()),
                     pa.array(kind, pa.string()), pa.array(late, pa.int32()), pa.array(duplicates, pa.int64()),
                     pa.array(range(len(seq)), pa.int64())], schema=LIVE_REWARDS)
