"""What only the PostgreSQL engine has: a learner cursor in commit order, day partitions, a schema it refuses."""
import time

import psycopg
import pytest

from experiments.errors import Unavailable
from experiments.store import PublishRefused, open_store
from experiments.store.postgres import pack
from experiments.store.postgres_schema import VERSION
from tests import pg


@pytest.fixture
def store(pg_url):
    store = open_store(pg_url)
    yield store
    store.close()


def closed_when_settled(store, cursor, closed_by, count, limit=100):
    """Closed decisions once ``count`` are readable: a transaction still open in this database (another
    test's connection) holds the horizon back, and rows wait for it, as a learner would."""
    deadline = time.monotonic() + 60
    while True:
        rows = store.closed_decisions("e", cursor, closed_by, limit)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def _log(conn, store, event_id: str, at: float) -> int:
    """Insert a decision on ``conn`` (the caller decides when it commits); return its seq."""
    return conn.execute(
        "INSERT INTO decisions (event_id, experiment, variant, slate, created_at, window_closes_at, context,"
        " candidate_set) VALUES (%s, 'e', 'bandit', '[]', %s, %s, '{}', 'x') RETURNING seq",
        (event_id, at, at)).fetchone()[0]


def test_a_seq_cursor_skips_a_late_commit_and_the_xid_cursor_does_not(store, pg_url):
    now = store.db_now()
    early = psycopg.connect(pg_url)  # a transaction that takes the lower seq and commits last
    late = psycopg.connect(pg_url, autocommit=True)
    try:
        first = _log(early, store, "first", now)
        second = _log(late, store, "second", now)
        assert first < second

        # The naive reader: everything after its cursor, in seq order.
        seen = [r[0] for r in late.execute("SELECT seq FROM decisions WHERE seq > 0 ORDER BY seq")]
        assert seen == [second]
        naive_cursor = seen[-1]
        # The store's reader waits: the open transaction is older than the committed row.
        assert store.closed_decisions("e", 0, now + 1, 100) == []

        early.commit()
        # The naive cursor never sees the first decision: it was skipped for good.
        assert [r[0] for r in late.execute("SELECT seq FROM decisions WHERE seq > %s ORDER BY seq",
                                           (naive_cursor,))] == []
        rows = closed_when_settled(store, 0, now + 1, 2)
        assert [r["event_id"] for r in rows] == ["first", "second"]
        assert rows[0]["cursor"] < rows[1]["cursor"]
        assert store.closed_decisions("e", rows[-1]["cursor"], now + 1, 100) == []
    finally:
        early.close()
        late.close()


def test_a_schema_newer_than_the_code_is_refused_with_a_clear_message(store, pg_url, runner):
    store.conn.execute("INSERT INTO _migrations VALUES (?, 'from the future', 0)", (VERSION + 1,))
    with pytest.raises(Unavailable, match=f"version {VERSION + 1}, newer than this Silent Customizer knows"):
        open_store(pg_url)
    from web.cli import cli

    result = runner.invoke(cli, ["serve", "--db", pg_url, "--port", "8931"])
    assert result.exit_code == 1
    assert f"schema at postgresql://127.0.0.1:5432/{pg.name_of(pg_url)} is version {VERSION + 1}" in result.output


def test_reading_never_creates_a_schema(pg_databases):
    name = f"{pg_databases.prefix}_empty"
    with pg.admin() as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        with pytest.raises(Unavailable, match="holds no Silent Customizer schema"):
            open_store(pg.url(name), create=False)
    finally:
        pg.Databases.drop(pg.url(name))


def test_an_unreachable_server_is_a_clear_error():
    with pytest.raises(Unavailable, match="cannot reach PostgreSQL at postgresql://127.0.0.1:1/x"):
        open_store("postgresql://someone:secret@127.0.0.1:1/x")


def test_days_are_partitioned_ahead_and_a_missing_day_is_made_on_insert(store):
    now = store.db_now()
    days = [p[0] for p in store.partitions("decisions")]
    assert len(days) >= 5 and len(store.partitions("rewards")) >= 5
    far = now + 400 * 86400
    store.insert_decision({"event_id": "far", "experiment": "e", "variant": "bandit", "slate": "[]",
                           "created_at": far, "window_closes_at": far})
    assert store.get_decision("far")["created_at"] == far
    assert len(store.partitions("decisions")) == len(days) + 1


def test_retention_drops_whole_days(store):
    old = store.db_now() - 10 * 86400
    for i in range(3):
        store.insert_decision({"event_id": f"old-{i}", "experiment": "e", "variant": "bandit", "slate": "[]",
                               "created_at": old + i, "window_closes_at": old + i, "candidate_set": "x"})
    names = [p[0] for p in store.partitions("decisions")]
    newest = closed_when_settled(store, 0, old + 10, 3)[-1]["cursor"]
    counts = store.purge_log("e", old + 86400 * 2, newest, old + 86400, "retention", old + 86400 * 3)
    assert counts["decisions"] == 3 and counts["kept"] == 0
    assert len(store.partitions("decisions")) == len(names) - 1  # the old day went whole
    assert store.get_decision("old-0") is None


def test_publishing_is_a_compare_and_set_on_the_next_version(store):
    row = {"experiment": "e", "version": 1, "args": "", "cursor_seq": pack(5, 3), "learned": 1, "created_at": 0.0,
           "learner": "a", "model": b"\x00model"}
    store.publish_model(row)
    with pytest.raises(PublishRefused, match="does not follow the newest"):
        store.publish_model({**row, "learner": "b"})
    latest = store.latest_model("e")
    assert latest["learner"] == "a" and latest["model"] == b"\x00model" and latest["cursor_seq"] == pack(5, 3)


def test_both_engines_have_the_same_tables_and_columns(store, tmp_path):
    import sqlite3

    open_store(str(tmp_path / "s.db")).close()
    lite = sqlite3.connect(tmp_path / "s.db")
    expected = {}
    for (table,) in lite.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"):
        expected[table] = {row[1] for row in lite.execute(f"PRAGMA table_info({table})")}
    lite.close()
    found = {}
    for table, column in store.conn.execute(
            "SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
            " WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')"
            " AND NOT c.relispartition AND a.attnum > 0 AND NOT a.attisdropped").fetchall():
        found.setdefault(table, set()).add(column)
    extra = {"decisions": {"xid"}, "models": {"cursor_xid"}, "model_resets": {"after_xid"},
             "archive_positions": {"xid"}}
    for table, columns in expected.items():
        if table == "_migrations":
            continue
        assert found.get(table, set()) - (extra.get(table) or set()) == columns, table
    assert set(found) - set(expected) == {"event_ids", "leases", "rate_buckets"}  # what SQLite keeps elsewhere


def test_log_inserts_skip_the_fsync_wait_and_everything_else_waits_unless_the_url_says(pg_url):
    plain = pg_url.split("?")[0]  # the tests' URLs set synchronous_commit themselves
    store, durable = open_store(plain), open_store(plain + "?options=-csynchronous_commit%3Don")
    try:
        assert store.conn.execute("SHOW synchronous_commit").fetchone()[0] == "off"
        with store.transaction() as conn:
            assert conn.execute("SHOW synchronous_commit").fetchone()[0] == "on"
        assert durable.conn.execute("SHOW synchronous_commit").fetchone()[0] == "on"
    finally:
        store.close()
        durable.close()
