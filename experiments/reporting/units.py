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
reader uses it only when exactly those files are listed with those counts below
its ``upto_seq``. An erasure or a purge rewrites files (their counts change) and
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
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

UNITS = "units"
METADATA_KEY = b"silent_units"
TAIL_ROWS = 2_000_000  # rebuild once this many archived decisions are not covered yet ...
TAIL_SHARE = 0.05  # ... or this share of the covered ones, whichever is more (rebuilds stay rare)
KEPT = 2  # the newest index files kept: a report may have chosen the previous one a moment ago


@dataclass(frozen=True)
class UnitsIndex:
    """A valid index: its file, the seq it covers up to, its earliest decision, and the files it covers."""

    path: str
    upto_seq: int
    first_at: float
    covered: frozenset


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
                      frozenset((p, int(r)) for p, r in meta["files"]))


def find(archive, key: str, entries: list[dict]) -> UnitsIndex | None:
    """The newest index that covers exactly the listed ``entries`` up to its seq (all of the experiment's)."""
    for _, path in _indexes(archive, key):
        index = _read(path)
        if index is not None and index.covered == _identity(entries, index.upto_seq):
            return index
    return None


def _identity(entries: list[dict], upto_seq: int) -> frozenset:
    return frozenset((e["path"], int(e["rows"])) for e in entries if e["last_seq"] <= upto_seq)


def refresh(archive, store, key: str, tail_rows: int = TAIL_ROWS) -> str | None:
    """Rebuild the experiment's index when enough archived decisions are not covered; return its path.

    Extends the newest valid index with the files written since, or builds it from every
    file when none is valid (after an erasure or retention).
    """
    entries = store.archive_files(key)
    if not entries:
        return None
    index = find(archive, key, entries)
    upto = index.upto_seq if index else 0
    tail = [e for e in entries if e["last_seq"] > upto]
    covered_rows = sum(e["rows"] for e in entries) - sum(e["rows"] for e in tail)
    if sum(e["rows"] for e in tail) < max(tail_rows, TAIL_SHARE * covered_rows):
        return None
    return _write(archive, key, entries, index, tail)


def _write(archive, key: str, entries: list[dict], index: UnitsIndex | None, tail: list[dict]) -> str:
    upto = max(e["last_seq"] for e in entries)
    files = ", ".join(_quote(archive.resolve(e)) for e in tail)
    parts = [f"SELECT variant, unit_key, created_at AS first_at FROM read_parquet([{files}], hive_partitioning = false)"]
    if index is not None:
        parts.append(f"SELECT variant, unit_key, first_at FROM read_parquet({_quote(index.path)})")
    folder = _folder(archive, key)
    os.makedirs(folder, exist_ok=True)
    final = os.path.join(folder, f"units-{upto:012d}.parquet")
    temporary = os.path.join(folder, f".pending-units-{uuid.uuid4().hex[:12]}")
    con = duckdb.connect(config={"threads": 1, "memory_limit": "1GB",  # spills past it
                                 "temp_directory": os.path.join(tempfile.gettempdir(), "silent-duckdb")})
    con.execute("SET enable_progress_bar = false")
    try:
        con.execute(f"CREATE TEMP TABLE pairs AS SELECT variant, unit_key, min(first_at) AS first_at"
                    f" FROM ({' UNION ALL '.join(parts)}) GROUP BY variant, unit_key")
        first_at = con.execute("SELECT min(first_at) FROM pairs").fetchall()[0][0]
        meta = json.dumps({"upto_seq": upto, "first_at": first_at if first_at is not None else math.inf,
                           "files": sorted([e["path"], int(e["rows"])] for e in entries)})
        con.execute(f"COPY pairs TO {_quote(temporary)} (FORMAT parquet, COMPRESSION zstd,"
                    f" KV_METADATA {{silent_units: {_quote(meta)}}})")
    finally:
        con.close()
    os.replace(temporary, final)
    for _, old in _indexes(archive, key)[KEPT:]:
        _remove(old)
    log.info("units index of %s rebuilt up to seq %s", key, upto)
    return final


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
