"""Every console example of README.md and docs/*.md runs as shown, in order, against live servers.

Each file runs in its own fresh folder (``tests/docs_examples.py`` says how); a file whose
examples read a prepared log gets it from ``SETUPS`` first, as its text says.
"""
from pathlib import Path

import pytest

from experiments.clock import VirtualClock
from experiments.learner import Learner
from experiments.reporting.archive import open_archive
from experiments.service import Service
from experiments.store import Store
from tests.conftest import ITEMS
from tests.docs_examples import Example, run_file, steps

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def shop_log(folder: Path, decisions: int, shoppers: int, archive: bool) -> None:
    """A ``shop.db`` as a running service leaves it: ``decisions`` of ``shoppers``, one every 30 s from
    2026-01-01T00:00Z, every third one clicked, then learned (and archived beside it when asked)."""
    clock = VirtualClock()
    store = Store(str(folder / "shop.db"))
    service = Service(store, clock)
    service.create_experiment({"key": "home-recs", "status": "running", "reward": {"wait_seconds": 600}})
    for i in range(decisions):
        answer = service.decide("home-recs", {"unit": f"user-{i % shoppers}", "candidates": ITEMS,
                                              "context": {"user": {"segment": f"s{i % 3}"}}})
        if i % 3 == 0:
            service.record_reward(answer["event_id"], {"type": "click", "item": answer["slate"][0]["id"]})
        clock.advance(30)
    clock.advance(601)
    Learner(store, clock, archive=open_archive(store, str(folder / "shop.db")) if archive else None
            ).run_once(force_publish=True)
    store.close()


def operations_log(folder: Path) -> None:
    """docs/operations.md: 2,000 decisions of 400 shoppers, learned and archived."""
    shop_log(folder, 2000, 400, archive=True)


def production_move(folder: Path) -> None:
    """docs/production.md: a 300-decision ``shop.db`` to move, and an empty PostgreSQL database ``shop`` (made
    afresh) to move it into."""
    from tests import pg

    shop_log(folder, 300, 60, archive=False)
    with pg.admin() as conn:
        conn.execute("DROP DATABASE IF EXISTS shop WITH (FORCE)")
        conn.execute("CREATE DATABASE shop")


SETUPS = {"operations.md": operations_log, "production.md": production_move}


@pytest.mark.parametrize("doc", DOCS, ids=[doc.name for doc in DOCS])
def test_every_console_example_runs_as_shown(doc, tmp_path):
    examples = [step for step in steps(doc) if isinstance(step, Example)]
    if not examples:
        pytest.skip(f"{doc.name} has no console examples")
    if doc.name in SETUPS:
        SETUPS[doc.name](tmp_path)
    problems = run_file(doc, tmp_path)
    assert not problems, "\n\n".join(problems)
