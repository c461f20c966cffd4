"""SQLite's statements, as the code above the store writes them, in PostgreSQL's dialect.

The statements outside the engines are kept to a portable subset (plain
SELECT/INSERT/UPDATE/DELETE with ``?`` parameters); the few SQLite forms they
and the shared store methods use are rewritten here once per statement text:
``?`` parameters, ``INSERT OR IGNORE``/``OR REPLACE``, ``NOT INDEXED``, JSON
paths, and counting integers kept in text columns.
"""
from __future__ import annotations

import functools
import re

from experiments.store.postgres_schema import PRIMARY_KEYS, SERIAL_ID

_OR_REPLACE = re.compile(r"INSERT OR REPLACE INTO (\w+) \(([^)]*)\)", re.I)
_OR_IGNORE = re.compile(r"INSERT OR IGNORE INTO", re.I)
_INSERT_INTO = re.compile(r"^\s*INSERT INTO (\w+)", re.I)
_JSON_EXTRACT = re.compile(r"json_extract\(([\w.]+), '\$([^']*)'\)", re.I)
_JSON_LENGTH = re.compile(r"json_array_length\(([\w.]+)\)", re.I)
_TEXT_COUNTER = re.compile(r"CAST\(([\w.]+) AS INTEGER\) \+ 1", re.I)


def _json_path(path: str) -> str:
    """'$[0].id' -> '{0,id}'."""
    parts = [p for p in re.split(r"[.\[\]]", path) if p]
    return "{" + ",".join(parts) + "}"


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> tuple[str, bool]:
    """Return (PostgreSQL text, whether it returns the new row's id like SQLite's ``lastrowid``)."""
    text = sql.replace("%", "%%").replace("?", "%s").replace(" NOT INDEXED", "")
    text = _JSON_EXTRACT.sub(lambda m: f"({m.group(1)}::jsonb #>> '{_json_path(m.group(2))}')", text)
    text = _JSON_LENGTH.sub(lambda m: f"jsonb_array_length({m.group(1)}::jsonb)", text)
    text = _TEXT_COUNTER.sub(lambda m: f"(CAST({m.group(1)} AS INTEGER) + 1)::text", text)
    replace = _OR_REPLACE.search(text)
    if replace:
        table, cols = replace.group(1), [c.strip() for c in replace.group(2).split(",")]
        keys = PRIMARY_KEYS[table]
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols if c not in keys)
        text = _OR_REPLACE.sub(f"INSERT INTO {table} ({replace.group(2)})", text)
        text += f" ON CONFLICT ({', '.join(keys)}) DO " + (f"UPDATE SET {updates}" if updates else "NOTHING")
    elif _OR_IGNORE.search(text):
        text = _OR_IGNORE.sub("INSERT INTO", text) + " ON CONFLICT DO NOTHING"
    insert = _INSERT_INTO.match(text)
    returns_id = bool(insert and insert.group(1) in SERIAL_ID and "RETURNING" not in text.upper()
                      and "ON CONFLICT" not in text)
    if returns_id:
        text += " RETURNING id"
    return text, returns_id
