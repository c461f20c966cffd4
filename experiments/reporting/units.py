"""The units index: each (variant, unit) of an experiment's archive once, with its first decision's time.

Counting distinct units is the one report figure that no per-file summary can
answer: a unit comes back across files and days, so the count over a week of
100 million decisions would read and hash every row. The index holds one row per
(variant, unit_key) with ``first_at``, the time of the pair's first archived
decision; a window that starts at or before the archive's first decision has
exactly the units whose ``first_at`` is before its end, so the report reads the
index (one row per unit, not per decision) plus the files written since.

The index is a cache derived from the listed decisions files, never a source of
truth: its Parquet metadata names every file it covers with its row count, and a
reader uses it only when all of those files are still listed with those counts
(the other listed files are newer, whatever their seqs: PostgreSQL archives in
commit order, not seq order, and their rows are read). An erasure or a purge rewrites files (their counts change) and
deletes the index (it holds the erased units' keys); retention unlists files; in
every case the report counts from the rows, exactly, until the learner rebuilds
the index after its next archive batch.

Layout: ``units/experiment=<key>/units-<upto seq>.parquet`` (variant, unit_key, first_at).
"""
from __future__ import annotations

import json
import logging
import math
import os
import uuid
from dataclasses import dataclass

import tempfile

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

UNITS = "units"
METADATA_KEY = b"silent_units"
TAIL_ROWS = 2_000_000  # rebuild once this many archived decisions are not covered yet ...
TAIL_SHARE = 0.05  # ... or this share of the covered ones, whichever is more (rebuilds stay rare)
KEPT = 2  # the newest index files kept: a report may have chosen the previous one a moment ago
UNITS_PER_PASS = 4_000_000  # (variant, unit) groups per pass: their hash table stays well inside the memory limit
MEMORY_LIMIT = "1GB"
ROW_GROUP_ROWS = 1024 * 1024
SCHEMA = pa.schema([("variant", pa.string()), ("unit_key", pa.int64()), ("first_at", pa.float64())])


@dataclass(frozen=True)
class UnitsIndex:
    """A valid index: its file, the seq it covers up to, its earliest decision, the files it covers, and
    its pairs per variant with the latest ``first_at`` (None in an index written before they were kept):
    a window that ends after that counts the index's pairs from them without reading it."""

    path: str
    upto_seq: int
    first_at: float
    covered: frozenset
    counts: dict | None = None
    last_first_at: float | None = None

    def counts_before(self, end: float) -> dict | None:
        """Pairs per variant first seen before ``end``, when the metadata answers (every pair is)."""
        if self.counts is None or self.last_first_at is None or not end > self.last_first_at:
            return None
        return self.counts


def _folder(archive, key: str) -> str:
    return archive.path(f"{UNITS}/experiment={key}")


def _indexes(archive, key: str) -> list[tuple[int, str]]:
    """(upto seq, path) of the experiment's index files, newest first."""
    folder = _folder(archive, key)
    found = []
    for name in os.listdir(folder) if os.path.isdir(folder) else []:
        if name.startswith("units-") and name.endswith(".parquet"):
            try:
                found.append((int(name[6:-8]), os.path.join(folder, name)))
            except ValueError:
                continue
    return sorted(found, reverse=True)


def _read(path: str) -> UnitsIndex | None:
    try:
        meta = json.loads(pq.read_metadata(path).metadata[METADATA_KEY])
    except (OSError, KeyError, TypeError, ValueError):  # gone a moment ago, or not ours
        return None
    return UnitsIndex(path, int(meta["upto_seq"]), float(meta["first_at"]),
                      frozenset((p, int(r)) for p, r in meta["files"]),
                      {str(v): int(n) for v, n in meta["counts"].items()} if "counts" in meta else None,
                      float(meta["last_first_at"]) if meta.get("last_first_at") is not None else None)


def find(archive, key: str, entries: list[dict]) -> UnitsIndex | None:
    """The newest index whose files are all still listed among ``entries`` (all of the experiment's) with the
    rows it counted: no retention, erasure or purge touched them since. The other listed files are newer."""
    listed = _identity(entries)
    for _, path in _indexes(archive, key):
        index = _read(path)
        if index is not None and index.covered <= listed:
            return index
    return None


def covers(index: UnitsIndex | None, entry: dict) -> bool:
    """Whether a listed file's units are in the index."""
    return index is not None and (entry["path"], int(entry["rows"])) in index.covered


def _identity(entries: list[dict]) -> frozenset:
    return frozenset((e["path"], int(e["rows"])) for e in entries)


def refresh(archive, store, key: str, tail_rows: int = TAIL_ROWS, units_per_pass: int = UNITS_PER_PASS) -> str | None:
    """Rebuild the experiment's index when enough archived decisions are not covered; return its path.

    Extends the newest valid index with the files written since, or builds it from every
    file when none is valid (after an erasure or retention).
    """
    entries = store.archive_files(key)
    if not entries:
        return None
    index = find(archive, key, entries)
    tail = [e for e in entries if not covers(index, e)]
    covered_rows = sum(e["rows"] for e in entries) - sum(e["rows"] for e in tail)
    if sum(e["rows"] for e in tail) < max(tail_rows, TAIL_SHARE * covered_rows):
        return None
    return _write(archive, key, entries, index, tail, units_per_pass)


def _write(archive, key: str, entries: list[dict], index: UnitsIndex | None, tail: list[dict],
           units_per_pass: int = UNITS_PER_PASS) -> str:
    """Group the tail's (variant, unit) pairs with the old index's into a new index file, in as many passes
    over the rows as keep each pass's groups within DuckDB's memory limit (the unit's key picks its pass;
    a first pass counts the units approximately)."""
    upto = max(e["last_seq"] for e in entries)
    files = ", ".join(_quote(archive.resolve(e)) for e in tail)
    parts = [f"SELECT variant, unit_key, created_at AS first_at FROM read_parquet([{files}], hive_partitioning = false)"]
    if index is not None:
        parts.append(f"SELECT variant, unit_key, first_at FROM read_parquet({_quote(index.path)})")
    source = " UNION ALL ".join(parts)
    folder = _folder(archive, key)
    os.makedirs(folder, exist_ok=True)
    final = os.path.join(folder, f"units-{upto:012d}.parquet")
    temporary = os.path.join(folder, f".pending-units-{uuid.uuid4().hex[:12]}")
    con = duckdb.connect(config={"threads": 1, "memory_limit": MEMORY_LIMIT,  # spills past it
                                 "temp_directory": os.path.join(tempfile.gettempdir(), "silent-duckdb")})
    con.execute("SET enable_progress_bar = false")
    try:
        first_at, approximate = con.execute(f"SELECT min(first_at), approx_count_distinct(unit_key) FROM ({source})"
                                            ).fetchall()[0]
        passes = max(1, math.ceil(1.2 * approximate / units_per_pass))  # HyperLogLog errs by a few percent
        meta = {"upto_seq": upto, "first_at": first_at if first_at is not None else math.inf,
                "files": sorted([e["path"], int(e["rows"])] for e in entries)}
        _group(con, source, passes, temporary, meta)
    except BaseException:
        _remove(temporary)
        raise
    finally:
        con.close()
    os.replace(temporary, final)
    for _, old in _indexes(archive, key)[KEPT:]:
        _remove(old)
    log.info("units index of %s rebuilt up to seq %s in %s passes", key, upto, passes)
    return final


def _group(con, source: str, passes: int, path: str, meta: dict) -> None:
    """Write the distinct pairs of ``source`` to ``path``, one pass per share of the units, with ``meta``
    plus the pairs per variant and the latest ``first_at`` as the file's metadata."""
    counts, latest = {}, []
    with pq.ParquetWriter(path, SCHEMA, compression="zstd") as writer:
        for part in range(passes):
            mine = f" WHERE (unit_key % {passes} + {passes}) % {passes} = {part}" if passes > 1 else ""
            relation = con.sql(f"SELECT variant, unit_key, min(first_at) AS first_at FROM ({source}){mine}"
                               " GROUP BY variant, unit_key")
            table = (getattr(relation, "to_arrow_table", None) or relation.arrow)().cast(SCHEMA)  # DuckDB 2 / 1
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            for item in pc.value_counts(table["variant"]).to_pylist():
                counts[item["values"]] = counts.get(item["values"], 0) + item["counts"]
            latest.append(pc.max(table["first_at"]).as_py())
        found = [t for t in latest if t is not None]
        writer.add_key_value_metadata({METADATA_KEY: json.dumps(
            {**meta, "counts": counts, "last_first_at": max(found) if found else None})})


def remove(archive, key: str | None) -> None:
    """Delete an experiment's index files (every experiment's with None): they hold erased units' keys."""
    keys = [key] if key else [name[len("experiment="):] for name in _listdir(archive.path(UNITS))
                              if name.startswith("experiment=")]
    for k in keys:
        for _, path in _indexes(archive, k):
            _remove(path)


def _listdir(folder: str) -> list[str]:
    return os.listdir(folder) if os.path.isdir(folder) else []


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"  # our own paths and JSON


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
