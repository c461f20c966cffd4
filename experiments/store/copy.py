"""Moving up: copy a whole SQLite database (log, models, settings, keys, users) into an empty PostgreSQL one.

Rows keep their sequence numbers and ids, so rewards still find their decisions
and every model its cursor. Decisions are copied in log order, a batch per
transaction, so their transaction ids grow with their sequence numbers and a
model's cursor (a SQLite ``seq``) becomes the (xid, seq) of the same decision:
the learner on PostgreSQL goes on exactly where the one on SQLite stopped. The
Parquet archive's file list stays behind (the live log it was written from is
copied whole; given an archive folder, the learner on PostgreSQL archives it
again from the start, in its own commit order).
"""
from __future__ import annotations

from experiments.errors import Conflict, InvalidField

BATCH = 2000
SKIPPED = {"_migrations", "archive_positions", "archive_files"}
# Copied in this order; tables not named here follow, in name order.
FIRST = ["experiments", "experiment_history", "candidate_sets", "decisions", "rewards", "models", "model_resets"]
ORDER_BY = {"decisions": "seq", "rewards": "id", "candidate_sets": "hash"}


def copy_database(source, target, progress=None) -> dict:
    """Copy every table of the SQLite store ``source`` into the empty PostgreSQL store ``target``; return counts.

    ``progress(table, rows)`` is called after each batch.
    """
    if getattr(source, "engine", None) != "sqlite" or getattr(target, "engine", None) != "postgresql":
        raise InvalidField("to", "copies a SQLite database (--from FILE) into a PostgreSQL one (--to postgresql://...)")
    if target.list_experiments() or target.query_one("SELECT 1 AS x FROM decisions LIMIT 1"):
        raise Conflict("the target database already holds experiments or decisions; copy into an empty one",
                       field="to")
    tables = [r["name"] for r in source.query("SELECT name FROM sqlite_master WHERE type = 'table'"
                                              " AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    tables = [t for t in FIRST if t in tables] + [t for t in tables if t not in FIRST and t not in SKIPPED]
    _make_days(source, target)
    counts = {}
    for table in tables:
        counts[table] = _copy_table(source, target, table, progress)
    target.finish_copy()
    return counts


def _make_days(source, target) -> None:
    for table, column in (("decisions", "created_at"), ("rewards", "received_at")):
        low, high = source.conn.execute(f"SELECT min({column}), max({column}) FROM {table}").fetchone()
        if low is None:
            continue
        for day in range(int(low // 86400), int(high // 86400) + 1):
            target.ensure_partition(table, day * 86400.0)


def _copy_table(source, target, table: str, progress) -> int:
    order = ORDER_BY.get(table, "rowid")
    keyset = order in ("seq", "id")  # numeric keys page by key; the rest by offset
    where = " WHERE name NOT LIKE 'lease:%'" if table == "meta" else ""  # leases belong to running processes
    copied, after = 0, -1
    while True:
        if keyset:
            rows = source.query(f"SELECT * FROM {table} WHERE {order} > ? ORDER BY {order} LIMIT ?", (after, BATCH))
        else:
            rows = source.query(f"SELECT * FROM {table}{where} ORDER BY {order} LIMIT ? OFFSET ?", (BATCH, copied))
        if not rows:
            return copied
        target.copy_rows(table, rows)
        copied += len(rows)
        if keyset:
            after = rows[-1][order]
        if progress:
            progress(table, len(rows))
