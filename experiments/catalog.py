"""The item catalog: features and availability per item id, versioned.

Shops upsert their items once and then name candidates by id only. Every change
bumps the catalog version; serving processes reload the catalog when the
version moves. Replay never depends on the catalog's current state, because
each decision's candidate set stores the features it was made with.
"""
from __future__ import annotations

import threading

from experiments.errors import InvalidField, NotFound
from experiments.spec import check_entry, check_features
from experiments.store import dumps, loads

MAX_UPSERT = 10_000


def parse_items(body) -> list[dict]:
    """Validate a bulk upsert body: ``{"items": [...]}`` or a bare list of items."""
    items = body.get("items") if isinstance(body, dict) else body
    prefix = "items" if isinstance(body, dict) else ""
    if not isinstance(items, list) or not items:
        raise InvalidField("items", "must be a non-empty list of {\"id\", \"features\", \"available\"} objects")
    if len(items) > MAX_UPSERT:
        raise InvalidField("items", f"at most {MAX_UPSERT} items per call")
    seen, out = set(), []
    for i, item in enumerate(items):
        field = f"{prefix}[{i}]"
        item_id = check_entry(item, field, {"id", "features", "available"}, seen, "item")
        features = item.get("features", {})
        if not isinstance(features, dict):
            raise InvalidField(f"{field}.features", "must be an object")
        available = item.get("available", True)
        if not isinstance(available, bool):
            raise InvalidField(f"{field}.available", "must be true or false")
        out.append({"id": item_id, "features": check_features(features, f"{field}.features"),
                    "available": available})
    return out


def catalog_version(store) -> int:
    row = store.conn.execute("SELECT value FROM meta WHERE name = 'catalog_version'").fetchone()
    return int(row[0]) if row else 0


def _bump(conn) -> int:
    conn.execute("INSERT INTO meta (name, value) VALUES ('catalog_version', '1') ON CONFLICT(name) DO UPDATE"
                 " SET value = CAST(meta.value AS INTEGER) + 1")
    return int(conn.execute("SELECT value FROM meta WHERE name = 'catalog_version'").fetchone()[0])


def upsert_items(store, items: list[dict], now: float) -> dict:
    """Insert or replace items in one transaction under a new catalog version."""
    with store.transaction() as conn:
        version = _bump(conn)
        conn.executemany(
            "INSERT INTO catalog_items (id, features, available, version, updated_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET features = excluded.features, available = excluded.available,"
            " version = excluded.version, updated_at = excluded.updated_at",
            [(i["id"], dumps(i["features"]), int(i["available"]), version, now) for i in items],
        )
    return {"version": version, "upserted": len(items)}


def delete_item(store, item_id: str) -> dict:
    with store.transaction() as conn:
        if conn.execute("DELETE FROM catalog_items WHERE id = ?", (item_id,)).rowcount == 0:
            raise NotFound(f"catalog item {item_id!r} does not exist", field="id")
        version = _bump(conn)
    return {"version": version, "deleted": item_id}


def item_view(row) -> dict:
    return {"id": row[0], "features": loads(row[1]), "available": bool(row[2]), "version": row[3]}


def get_item(store, item_id: str) -> dict:
    row = store.conn.execute("SELECT id, features, available, version FROM catalog_items WHERE id = ?",
                             (item_id,)).fetchone()
    if row is None:
        raise NotFound(f"catalog item {item_id!r} does not exist", field="id")
    return item_view(row)


def list_items(store, limit: int = 100, after: str = "") -> dict:
    rows = store.conn.execute("SELECT id, features, available, version FROM catalog_items WHERE id > ?"
                              " ORDER BY id LIMIT ?", (after, limit)).fetchall()
    return {"version": catalog_version(store), "items": [item_view(r) for r in rows],
            "next": rows[-1][0] if len(rows) == limit else None}


class CatalogCache:
    """The whole catalog in memory, reloaded when its version changes."""

    def __init__(self, store, clock, refresh_seconds: float = 1.0):
        self.store = store
        self.clock = clock
        self.refresh_seconds = refresh_seconds
        self.version = -1
        self._items: dict[str, tuple[dict, bool]] = {}
        self._checked_at = float("-inf")
        self._lock = threading.Lock()

    def snapshot(self) -> tuple[int, dict]:
        """Return (version, {id: (features, available)}), reloading at most every few seconds."""
        with self._lock:
            now = self.clock.now()
            if now - self._checked_at >= self.refresh_seconds:
                self._checked_at = now
                version = catalog_version(self.store)
                if version != self.version:
                    rows = self.store.conn.execute("SELECT id, features, available FROM catalog_items").fetchall()
                    self._items = {r[0]: (loads(r[1]), bool(r[2])) for r in rows}
                    self.version = version
            return self.version, self._items

    def invalidate(self) -> None:
        with self._lock:
            self._checked_at = float("-inf")
