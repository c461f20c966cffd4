"""API keys, dashboard users and the database's own secrets, in SQLite."""
from __future__ import annotations

import sqlite3

from experiments.store.interface import DuplicateKey


class SqliteAccess:
    """The access tables; mixed into ``Store``, which gives ``conn`` and ``query``."""

    unique_errors: tuple = (sqlite3.IntegrityError,)  # what the engine's driver raises for a taken unique key

    def insert_api_key(self, row: dict) -> int:
        """Store a key's hash (and a public key's experiments and origins, JSON text) and return its id."""
        return self.conn.execute(
            "INSERT INTO api_keys (hash, hint, role, label, created_at, experiments, origins)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (row["hash"], row["hint"], row["role"], row["label"], row["created_at"], row.get("experiments"),
             row.get("origins"))).lastrowid

    def api_keys(self) -> list[dict]:
        return self.query("SELECT * FROM api_keys ORDER BY id")

    def api_key(self, key_id: int) -> dict | None:
        return self.query_one("SELECT * FROM api_keys WHERE id = ?", (key_id,))

    def active_api_key(self, digest: str) -> dict | None:
        return self.query_one("SELECT * FROM api_keys WHERE hash = ? AND revoked_at IS NULL", (digest,))

    def active_api_keys(self, role: str) -> list[dict]:
        """Every active key of a role (public keys' scopes answer CORS preflights)."""
        return self.query("SELECT * FROM api_keys WHERE role = ? AND revoked_at IS NULL ORDER BY id", (role,))

    def revoke_api_key(self, key_id: int, at: float) -> None:
        self.conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (at, key_id))

    def has_api_keys(self) -> bool:
        return self.conn.execute("SELECT EXISTS (SELECT 1 FROM api_keys)").fetchone()[0] == 1

    def insert_user(self, name: str, password_hash: str, created_at: float) -> int:
        """Store a user and return its id; ``DuplicateKey`` when the name is taken."""
        try:
            return self.conn.execute("INSERT INTO users (name, password_hash, created_at) VALUES (?, ?, ?)",
                                     (name, password_hash, created_at)).lastrowid
        except self.unique_errors:
            raise DuplicateKey(f"user {name!r} exists") from None

    def users(self) -> list[dict]:
        return self.query("SELECT id, name, created_at FROM users ORDER BY id")

    def has_users(self) -> bool:
        return self.conn.execute("SELECT EXISTS (SELECT 1 FROM users)").fetchone()[0] == 1

    def user(self, user_id) -> dict | None:
        return self.query_one("SELECT id, name, created_at FROM users WHERE id = ?", (user_id,))

    def user_by_name(self, name: str) -> dict | None:
        """The user with its password hash (for checking a sign-in)."""
        return self.query_one("SELECT * FROM users WHERE name = ?", (name,))

    def app_secret(self, name: str, fresh: str, now: float) -> str:
        """Return the named secret, storing ``fresh`` first when there is none, so every process agrees."""
        self.conn.execute("INSERT OR IGNORE INTO app_secrets (name, value, created_at) VALUES (?, ?, ?)",
                          (name, fresh, now))
        return self.conn.execute("SELECT value FROM app_secrets WHERE name = ?", (name,)).fetchone()[0]
