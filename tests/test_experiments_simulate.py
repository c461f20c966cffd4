"""The simulation driver against the real service and learner on SQLite files, on virtual time."""
import sqlite3

import numpy as np
import pytest

from experiments.clock import VirtualClock
from experiments.errors import InvalidField
from experiments.simulation.runner import InProcessTarget, OutcomeQueue, SimulationSettings, run
from bandit.simulation import Outcome


def simulate(tmp_path, name="run", **options):
    settings = SimulationSettings(**{"events": 1500, **options})
    clock = VirtualClock()
    target = InProcessTarget(str(tmp_path / f"{name}.db"), clock, settings.learn_seconds)
    try:
        return run(settings, target, clock)
    finally:
        target.close()


def table(db: str, sql: str) -> list:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_seeded_runs_are_reproducible_bit_for_bit(tmp_path):
    first = simulate(tmp_path, "a", scenario="slate", seed=3)
    second = simulate(tmp_path, "b", scenario="slate", seed=3)
    assert first == second
    for sql in ("SELECT event_id, unit, variant, model_version, context, slate, created_at FROM decisions ORDER BY seq",
                "SELECT event_id, reward_key, type, item, slot, value, received_at, late FROM rewards ORDER BY id",
                "SELECT version, cursor_seq, learned, created_at, model FROM models ORDER BY version"):
        assert table(str(tmp_path / "a.db"), sql) == table(str(tmp_path / "b.db"), sql)
    other = simulate(tmp_path, "c", scenario="slate", seed=4)
    assert other["ctr"] != first["ctr"]


@pytest.mark.parametrize("scenario, slots", [("items", 1), ("slate", 3), ("strategies", 1)])
def test_the_bandit_learns_and_is_graded_against_the_references(tmp_path, scenario, slots):
    result = simulate(tmp_path, scenario=scenario, events=2500)
    assert result["scenario"] == scenario and result["slots"] == slots and result["events"] == 2500
    truth = result["expected"]
    assert truth["uniform"] < truth["best_fixed"] < truth["oracle"]
    assert truth["bandit"] > truth["uniform"] and result["normalized_lift_expected"] > 0.15
    ctr = result["ctr"]
    assert result["normalized_lift"] == round((ctr["bandit"] - ctr["uniform"]) / (ctr["oracle"] - ctr["uniform"]), 4)
    assert sum(result["decisions"].values()) == 2500 and result["decisions"]["fallback"] == 0
    assert 0.05 < result["decisions"]["holdout"] / 2500 < 0.2
    curve = result["learning_curve"]
    assert [p["events"] for p in curve] == list(range(125, 2501, 125))
    assert np.mean([p["expected"] for p in curve[-5:]]) > np.mean([p["expected"] for p in curve[:2]])


def test_slate_click_rates_count_every_slot(tmp_path):
    slate = simulate(tmp_path, "slate", scenario="slate", events=600)
    items = simulate(tmp_path, "items", scenario="items", events=600)
    assert slate["expected"]["uniform"] > 2 * items["expected"]["uniform"]  # 1 + .7 + .5 slots seen


def test_outcomes_are_posted_after_their_delay_and_everything_is_learned(tmp_path):
    result = simulate(tmp_path, scenario="items", events=800, wait_seconds=60)
    db = str(tmp_path / "run.db")
    delays = table(db, "SELECT r.received_at - d.created_at, r.late, d.window_closes_at - d.created_at, r.type"
                       " FROM rewards r JOIN decisions d ON d.seq = r.decision_seq")
    assert delays and all(delay >= 1.0 for delay, *_ in delays)  # a click comes 1 s after the view at the earliest
    assert all(late == (delay > window) for delay, late, window, _ in delays)
    assert {kind for *_, kind in delays} >= {"click", "add_to_cart"}
    posted = {kind: sum(k == kind for *_, k in delays) for kind in result["outcomes"]}
    assert posted == result["outcomes"]  # every outcome was posted, once
    assert table(db, "SELECT max(learned) FROM models") == [(800,)]
    assert table(db, "SELECT count(*) FROM decisions") == [(800,)]


def test_outcome_queue_posts_in_time_order():
    queue = OutcomeQueue()
    queue.schedule(10.0, "b", 1, [Outcome("click", "x", 0, 5.0), Outcome("purchase", "x", 0, 50.0)])
    queue.schedule(0.0, "a", 0, [Outcome("click", "y", 0, 12.0)])
    assert [e for e, *_ in queue.due(13.0)] == ["a"]
    assert [(e, n) for e, _, n, _ in queue.due(100.0)] == [("b", 0), ("b", 1)]
    assert len(queue) == 0


@pytest.mark.parametrize("options, field", [
    ({"scenario": "nope"}, "scenario"),
    ({"events": 0}, "events"),
    ({"events": 1.5}, "events"),
    ({"seed": -1}, "seed"),
    ({"rate": 0}, "rate"),
    ({"learn_seconds": float("inf")}, "learn_seconds"),
    ({"wait_seconds": -1}, "wait_seconds"),
    ({"holdout": 1.0}, "holdout"),
    ({"curve_points": 0}, "curve_points"),
])
def test_invalid_settings_name_the_field(options, field):
    with pytest.raises(InvalidField) as exc:
        SimulationSettings(**options).validate()
    assert exc.value.field == field


def test_the_drift_scenario_reports_the_changed_segments_recovery(tmp_path):
    result = simulate(tmp_path, scenario="drift", events=1500)
    drift = result["drift"]
    assert drift["segment"] == "s2" and drift["like"] == "s3" and drift["change_at"] == 750
    assert [p["events"] for p in drift["segment_lift"]] == list(range(250, 1501, 250))
    assert all(p["decisions"] > 0 for p in drift["segment_lift"])
    assert drift["recovery_share"] == 0.8
    assert drift["recovery_events"] is None or 0 < drift["recovery_events"] <= 750
    assert "drift" not in simulate(tmp_path, "plain", events=300)


@pytest.mark.parametrize("options, field", [
    ({"scenario": "items", "change_at": 100}, "change_at"),
    ({"scenario": "drift", "change_at": 1300}, "change_at"),
    ({"scenario": "drift", "change_at": 0}, "change_at"),
])
def test_a_bad_change_point_is_refused(options, field):
    with pytest.raises(InvalidField) as err:
        SimulationSettings(events=1500, **options).validate()
    assert err.value.field == field
