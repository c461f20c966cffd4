"""docs/operations.md's examples run as written, on a database of 2,000 decisions made on 1 January 2026.

The decisions are learned and in the Parquet archive beside the database, as a running service leaves them.
"""
import json
import pathlib
import re
import shlex

import pytest

from experiments.clock import VirtualClock
from experiments.learner import Learner
from experiments.reporting.archive import open_archive
from experiments.service import Service
from experiments.store import Store
from tests.conftest import ITEMS
from web import create_app
from web.cli import cli

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "operations.md"


def examples() -> list[tuple[str, list[str]]]:
    """Return each ``$ command`` of the console blocks with the output lines shown under it."""
    found = []
    for block in re.findall(r"```console\n(.*?)```", DOC.read_text(), re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                found.append((line[2:], []))
            else:
                found[-1][1].append(line)
    return found


def matches(expected: str, actual: str) -> bool:
    """Compare one output line; ``...`` in the documentation stands for anything."""
    return re.fullmatch(".*".join(re.escape(part) for part in expected.split("...")), actual) is not None


@pytest.fixture
def shop_db(tmp_path, monkeypatch):
    """2,000 decisions of 400 shoppers, one every 30 s from 2026-01-01T00:00Z, every third one clicked."""
    monkeypatch.chdir(tmp_path)
    clock = VirtualClock()
    store = Store("shop.db")
    service = Service(store, clock)
    service.create_experiment({"key": "home-recs", "status": "running", "reward": {"wait_seconds": 600}})
    for i in range(2000):
        answer = service.decide("home-recs", {"unit": f"user-{i % 400}", "candidates": ITEMS,
                                              "context": {"user": {"segment": f"s{i % 3}"}}})
        if i % 3 == 0:
            service.record_reward(answer["event_id"], {"type": "click", "item": answer["slate"][0]["id"]})
        clock.advance(30)
    clock.advance(601)
    Learner(store, clock, archive=open_archive(store, "shop.db")).run_once(force_publish=True)  # and archives
    store.close()
    return tmp_path


def test_the_operations_examples_run_as_documented(shop_db, runner):
    ran = 0
    for command, expected in examples():
        if command.startswith("curl "):
            answer = api_call(shlex.split(command))
            assert matches(expected[0], json.dumps(answer, separators=(",", ":"))), (command, answer)
            continue
        args = shlex.split(command)
        assert args[0] == "silent"
        result = runner.invoke(cli, args[1:])
        assert result.exit_code == 0, (command, result.output)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == len(expected), (command, result.output)
        for want, got in zip(expected, lines):
            assert matches(want, got), (command, want, got)
        ran += 1
    assert ran >= 4


def api_call(args: list[str]) -> dict:
    """Run a documented ``curl -X METHOD localhost:8000/path`` against the app on the same database."""
    method, url = args[args.index("-X") + 1], next(a for a in args if a.startswith("localhost:"))
    app = create_app({"DATABASE": "shop.db"})
    try:
        return app.test_client().open(url.split(":8000", 1)[1], method=method).get_json()
    finally:
        app.extensions["silent"]["store"].close()
