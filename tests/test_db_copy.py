"""silent db copy: a shop that started on one SQLite file moves to PostgreSQL without losing its history."""
import time

import numpy as np

from experiments.auth import Access
from experiments.clock import VirtualClock
from experiments.learner import Learner
from experiments.service import Service
from experiments.store import open_store
from tests.conftest import ITEMS, table_counts
from tests.test_learners_postgres import drive, wait_for
from web.cli import cli


def test_copy_moves_log_models_keys_and_the_learner_goes_on_where_it_stopped(tmp_path, pg_url, runner):
    path = str(tmp_path / "shop.db")
    lite = open_store(path)
    clock = VirtualClock(start=time.time() - 3600)
    service = Service(lite, clock)
    service.create_experiment({"key": "e", "status": "running", "slots": 1, "traffic": {"holdout": 0.0},
                               "reward": {"wait_seconds": 1}, "learning": {"scaling": {"default": "raw"}}})
    drive(service, 0, 120, np.random.default_rng(5))
    clock.advance(60)
    assert Learner(lite, clock).run_once(force_publish=True) == {"e": 120}
    secret = Access(lite, clock).create_key("admin")["key"]
    Access(lite, clock).create_user("ann", "a long password")
    model = lite.latest_model("e")

    result = runner.invoke(cli, ["db", "copy", "--from", path, "--to", pg_url])
    assert result.exit_code == 0, result.output
    assert "120 decisions" in result.output and "secret" not in result.output

    before, after = table_counts(path), table_counts(pg_url)
    for table in ("experiments", "decisions", "rewards", "models", "api_keys", "users", "candidate_sets"):
        assert after[table] == before[table], table
    store = open_store(pg_url)
    try:
        copied = store.latest_model("e")
        assert copied["model"] == model["model"] and copied["learned"] == 120
        assert Access(store).key_for(secret)["role"] == "admin"
        assert Access(store).check_password("ann", "a long password")["name"] == "ann"
        pg_service = Service(store, clock)
        replay = {"event_id": "e-3", "candidates": ITEMS}
        assert pg_service.decide("e", replay) == service.decide("e", replay)  # a logged event id answers as it did
        drive(pg_service, 120, 30, np.random.default_rng(6))  # new decisions get new sequence numbers
        clock.advance(60)
        learner = Learner(store, clock)
        def learned_all() -> bool:  # a pass may see none of them yet: an open transaction holds xmin back
            learner.run_once(force_publish=True)
            return store.latest_model("e")["learned"] == 150

        wait_for(learned_all)
        assert store.latest_model("e")["learned"] == 150  # the old 120 were not learned again
        assert store.counts("e")["decisions"] == 150
    finally:
        store.close()
        lite.close()

    again = runner.invoke(cli, ["db", "copy", "--from", path, "--to", pg_url])
    assert again.exit_code == 1 and "copy into an empty one" in again.output
