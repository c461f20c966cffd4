"""A PostgreSQL database for each test, cloned from one migrated template made per test session.

The server is the CI's and the developers' (127.0.0.1:5432, trust auth, user
postgres). A test that needs it fails, never skips, when it cannot be reached.
Cloning the template (``STRATEGY WAL_LOG``) takes a fifth of a second; migrating
a fresh schema would take a second.
"""
from __future__ import annotations

import os
import uuid

import psycopg
import pytest

SERVER = os.environ.get("SILENT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
# Tests do not need their commits to survive a server crash: without waiting for each fsync they run faster.
FAST = "?options=-csynchronous_commit%3Doff"


def name_of(database_url: str) -> str:
    return database_url.rsplit("/", 1)[1].split("?")[0]


def url(name: str) -> str:
    return f"{SERVER}/{name}"


def admin() -> psycopg.Connection:
    try:
        return psycopg.connect(url("postgres"), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {SERVER} (the tests need it): {exc}", pytrace=False)


class Databases:
    """The session's template database and the per-test clones of it."""

    def __init__(self):
        self.prefix = f"silent_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.template: str | None = None

    def _make_template(self) -> str:
        from experiments.store import open_store

        name = f"{self.prefix}_template"
        with admin() as conn:
            self._sweep(conn)
            conn.execute(f"CREATE DATABASE {name}")
        open_store(url(name)).close()  # migrate once; every clone starts from here
        self.template = name
        return name

    @staticmethod
    def _sweep(conn) -> None:
        """Drop the databases of test sessions on this machine whose process is gone (killed before its teardown)."""
        for (name,) in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'silent\\_test\\_%'").fetchall():
            pid = name.split("_")[2]
            if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def fresh(self) -> str:
        """Return the URL of a new, migrated, empty database."""
        template = self.template or self._make_template()
        name = f"{self.prefix}_{uuid.uuid4().hex[:10]}"
        with admin() as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY WAL_LOG")
        return url(name) + FAST

    @staticmethod
    def drop(database_url: str) -> None:
        with admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name_of(database_url)} WITH (FORCE)")

    def release(self, database_url: str) -> None:
        """Drop a test's database now: a drop in the background would hold an old transaction id open, and
        hold back what a learner of the next test may read (rows older than every open transaction)."""
        self.drop(database_url)

    def close(self) -> None:
        if self.template:
            self.drop(url(self.template))


def table_counts(database_url: str) -> dict:
    """Row counts of every table (partitions counted in their parent)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        names = [r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition")]
        return {name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in names}
