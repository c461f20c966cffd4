"""The operator's commands on real files: backup, restore, purge, forget, and clear errors for a bad --db."""
import json
import sqlite3
import threading

import pytest

from experiments.clock import SystemClock
from experiments.service import Service
from experiments.store import Store
from tests.conftest import ITEMS
from web.cli import cli

READING = [  # commands that only read: a missing database is an error, never a new empty file
    ["report", "home"], ["export", "home", "--format", "csv"], ["experiments", "list"], ["experiments", "show", "home"],
    ["experiments", "start", "home"], ["keys", "list"], ["users", "list"], ["personalizer", "list-resources"],
    ["purge", "home", "--before", "2026-01-01"], ["forget", "user-1"],
]


def serving(db, decisions=5):
    """A store with a running experiment and a few rewarded decisions, on real time."""
    store = Store(db)
    service = Service(store, SystemClock())
    if store.get_experiment("home") is None:
        service.create_experiment({"key": "home", "status": "running"})
    for i in range(decisions):
        answer = service.decide("home", {"unit": f"user-{i % 3}", "candidates": ITEMS})
        service.record_reward(answer["event_id"], {"type": "click"})
    return store, service


@pytest.mark.parametrize("args", READING + [["serve"], ["experiments", "create", "-"], ["keys", "create", "--role", "shop"]],
                         ids=lambda args: " ".join(args[:2]))
def test_a_database_that_cannot_be_opened_is_one_clear_line(runner, tmp_path, args):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    for db in (str(folder), str(tmp_path / "missing" / "x.db")):
        result = runner.invoke(cli, [*args, "--db", db], input="{}")
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output and result.exception.__class__ is SystemExit
        assert f"database {db}" in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("args", READING, ids=lambda args: " ".join(args[:2]))
def test_reading_commands_never_create_a_database(runner, tmp_path, args):
    db = tmp_path / "typo.db"
    result = runner.invoke(cli, [*args, "--db", str(db)])
    assert result.exit_code == 1 and "does not exist" in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_refused_public_bind_creates_nothing(runner, tmp_path):
    result = runner.invoke(cli, ["serve", "--host", "0.0.0.0", "--db", str(tmp_path / "silent.db")])
    assert result.exit_code == 1 and "refusing to listen on 0.0.0.0" in result.output
    assert list(tmp_path.iterdir()) == []


def test_backup_while_writing_then_restore_and_plain_use(runner, tmp_path):
    db, copy = str(tmp_path / "live.db"), str(tmp_path / "copy.db")
    store, service = serving(db)
    stop = threading.Event()

    def shop():
        while not stop.is_set():
            service.decide("home", {"candidates": ITEMS})

    writer = threading.Thread(target=shop)
    writer.start()
    try:
        result = runner.invoke(cli, ["backup", "--db", db, "--to", copy])
    finally:
        stop.set()
        writer.join()
    assert result.exit_code == 0, result.output
    assert "integrity ok" in result.output and "1 experiment," in result.output
    assert runner.invoke(cli, ["backup", "--db", db, "--to", copy]).exit_code == 1  # never overwrites
    conn = sqlite3.connect(copy)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    kept = conn.execute("SELECT count(*) FROM decisions").fetchone()[0]
    conn.close()
    assert kept >= 5
    report = runner.invoke(cli, ["report", "home", "--db", copy, "--format", "json"])  # the copy works as it is
    assert report.exit_code == 0 and sum(v["decisions"] for v in json.loads(report.output)["variants"]) == kept

    restored = str(tmp_path / "restored.db")
    result = runner.invoke(cli, ["restore", copy, "--db", restored])
    assert result.exit_code == 0, result.output
    assert Store(restored, create=False).counts("home")["decisions"] == kept
    refused = runner.invoke(cli, ["restore", copy, "--db", db])
    assert refused.exit_code == 1 and "--replace" in refused.output
    store.acquire_lease("learner", "running", SystemClock().now(), 30)  # this process "is" the service
    refused = runner.invoke(cli, ["restore", copy, "--db", db, "--replace"])
    assert refused.exit_code == 1 and "a service is running" in refused.output
    store.release_lease("learner", "running")
    store.close()
    assert runner.invoke(cli, ["restore", copy, "--db", db, "--replace"]).exit_code == 0
    assert Store(db, create=False).counts("home")["decisions"] == kept
    bad = tmp_path / "not-a-backup.db"
    bad.write_text("hello")
    result = runner.invoke(cli, ["restore", str(bad), "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 1 and "cannot be restored" in result.output


def test_purge_and_forget_from_the_command_line(runner, tmp_path):
    db = str(tmp_path / "shop.db")
    store, _ = serving(db, decisions=6)
    result = runner.invoke(cli, ["forget", "user-1", "--db", db])
    assert result.exit_code == 0, result.output
    assert "deleted 2 decisions and 2 rewards of user-1 in home" in result.output and "not unlearned" in result.output
    result = runner.invoke(cli, ["purge", "home", "--before", "2100-01-01T00:00:00Z", "--db", db])
    assert result.exit_code == 0, result.output
    assert "deleted 0 decisions and 0 rewards" in result.output and "kept 4 decisions" in result.output  # none learned yet
    result = runner.invoke(cli, ["purge", "home", "--before", "yesterday", "--db", db])
    assert result.exit_code == 1 and "before" in result.output
    store.close()
