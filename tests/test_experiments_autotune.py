"""Auto-tuning on a real log (SQLite and PostgreSQL) and real VW: alternatives, a switch on evidence, its history entry, undo, budget."""
import re

import pytest

from bandit.scaling import parse_scaling
from experiments.autotune import ACTOR, alternatives, switched_settings
from experiments.spec import parse_spec
from tests.test_experiments_learner import drive
from tests.test_experiments_learning import bare_replay
from tests.test_web_dashboard import PASSWORD, Dashboard

ENGINES = ("sqlite", "postgresql")
TUNED = {"enabled": True, "window": 600, "every": 600, "budget": 50}


def labels(spec: dict) -> list[str]:
    return [label for label, _ in alternatives(parse_spec(spec, check_vw=False).data)]


def test_alternatives_stay_near_the_live_settings():
    assert labels({"key": "k", "exploration": {"algorithm": "epsilon", "epsilon": 0.8},
                   "learning": {"interactions": ["UA", "PA", "UPA"], "decay": 0.1, "learning_rate": 2,
                                "scaling": {"default": "raw"}}}) == [
        "pairs only", "forget faster (decay 0)", "less exploration (epsilon 0.4)", "learning rate 4", "scaling log",
        "learning rate 1", "forget slower (decay 0.3)"]  # epsilon 1.6 is no epsilon: not tried
    assert labels({"key": "k", "learning": {"interactions": ["UA"], "decay": 0.0}})[:2] == [
        "less exploration (gamma_scale 2000)", "learning rate 1"]  # one context namespace: no cubic; no faster decay


def test_a_clearly_better_setting_is_switched_to_with_its_evidence_and_can_be_undone(shop, rng, app, client):
    shop.create("tuned", reward={"wait_seconds": 1}, exploration={"algorithm": "epsilon", "epsilon": 1.0},
                learning={"update_seconds": 1, "autotune": TUNED}, traffic={"holdout": 0.0})
    drive(shop, "tuned", 1400, rng, learn_every=100)  # a round proposes, the next confirms
    history = client.get("/v1/experiments/tuned/history").get_json()["history"]
    switch = next(h for h in history if h["actor"] == ACTOR)
    summary = switch["change"]["autotune"]
    assert summary["chosen"] == "less exploration (epsilon 0.5)"
    assert switch["spec"]["exploration"]["epsilon"] == 0.5 and switch["change"]["exploration"]["epsilon"] == 0.5
    assert summary["window"]["scored"] == 300 and summary["alpha"] == pytest.approx(0.05 / 4)
    chosen = next(a for a in summary["alternatives"] if a["label"] == summary["chosen"])
    assert chosen["gain"]["low"] > 0 and len(summary["alternatives"]) == 4
    assert chosen["effective_decisions"] >= 100 and summary["live"]["effective_decisions"] >= 100
    assert summary["round"] == 2 and summary["confirms"]["round"] == 1 and summary["confirms"]["gain"]["low"] > 0

    shop.learn(seconds=2)  # the switch rebuilds the model from the log with the new settings
    store = app.extensions["silent"]["store"]
    model = store.latest_model("tuned")
    assert "--epsilon 0.5" in model["args"] and model["learned"] == 1400
    scaling = parse_scaling(switch["spec"]["learning"]["scaling"])
    assert model["model"] == bare_replay(store, "tuned", scaling, model["args"])

    work = shop.learner.tuner.work("tuned")
    assert 0 < work["replays"] <= TUNED["budget"] * work["learned"]
    drive(shop, "tuned", 1200, rng, learn_every=100)  # exploration was switched once: later rounds leave it be
    later = shop.learner.tuner.last_round("tuned")
    assert later["round"] > summary["round"] and not any("exploration" in a["patch"] for a in later["alternatives"])

    assert client.post("/v1/experiments/tuned/autotune/undo", json={"version": 1}).status_code == 400
    assert client.post("/v1/experiments/tuned/autotune/undo", json={"version": 99}).status_code == 404
    assert client.post("/v1/experiments/tuned/autotune/undo", json={"version": "2"}).get_json()["error"][
        "field"] == "version"
    undone = client.post("/v1/experiments/tuned/autotune/undo", json={"version": switch["version"]}).get_json()
    assert undone["spec"]["exploration"]["epsilon"] == 1.0
    assert undone["spec"]["learning"]["autotune"] == {**TUNED, "enabled": False, "budget": 50.0}
    last = client.get("/v1/experiments/tuned/history").get_json()["history"][-1]
    assert last["change"]["undo"] == {"version": switch["version"]} and last["actor"] != ACTOR


def test_an_estimate_resting_on_few_effective_decisions_never_wins():
    """A gain whose interval excludes a loss is not enough when a handful of rarely explored decisions carry it."""
    from experiments.autotune import MIN_EFFECTIVE, _winner

    def summary(alternative_effective, live_effective=1000.0):
        gain = {"value": 0.1, "low": 0.05, "high": 0.15, "n": 1500, "alpha": 0.0125}
        return {"window": {"scored": 1500}, "live": {"effective_decisions": live_effective},
                "alternatives": [{"label": "x", "patch": {}, "gain": gain, "effective_decisions": alternative_effective}]}

    assert _winner(summary(MIN_EFFECTIVE))["label"] == "x"
    assert _winner(summary(MIN_EFFECTIVE - 1)) is None
    assert _winner(summary(1000.0, live_effective=MIN_EFFECTIVE - 1)) is None


def test_each_setting_is_switched_once_until_tuning_is_turned_on_again():
    def entry(actor, change):
        return {"actor": actor, "change": change}

    on = entry("api", {"learning": {"autotune": {"enabled": True}}})
    rate = entry(ACTOR, {"learning": {"learning_rate": 0.25}, "autotune": {}})
    more = entry(ACTOR, {"exploration": {"algorithm": "squarecb", "gamma_scale": 25.0}, "autotune": {}})
    assert switched_settings([on, rate, entry("api", {"name": "x"}), more]) == {"learning_rate", "exploration"}
    assert switched_settings([rate, on, more]) == {"exploration"}  # turned on again after the rate's switch
    assert switched_settings([rate, entry("alice", {"learning": {"autotune": {"enabled": False}}, "undo": {}})]) \
        == set()


def test_the_budget_bounds_the_work_and_a_paused_experiment_is_not_tuned(shop, rng):
    shop.create("slow", reward={"wait_seconds": 1}, learning={"update_seconds": 1,
                                                              "autotune": {**TUNED, "budget": 0.5}})
    drive(shop, "slow", 800, rng, learn_every=100)
    work = shop.learner.tuner.work("slow")
    assert work["rounds"] == 1 and 0 < work["replays"] <= 0.5 * work["learned"]
    assert shop.learner.tuner.last_round("slow") is None  # 5 learners x 600 decisions: far from done
    shop.client.patch("/v1/experiments/slow", json={"status": "paused"})
    shop.learn(seconds=2)
    assert shop.learner.tuner.work("slow")["rounds"] == 0  # dropped while paused


def test_the_dashboard_shows_a_switch_and_undoes_it(app, client, shop):
    row = shop.create("shown", exploration={"algorithm": "epsilon", "epsilon": 0.4})
    gain = {"value": 0.05, "low": 0.01, "high": 0.09, "n": 800, "alpha": 0.0125}
    summary = {"round": 1, "window": {"after_seq": 0, "scored_after_seq": 10, "until_seq": 20, "scored": 800},
               "alpha": 0.0125, "live": {"dr": gain}, "chosen": "learning rate 1",
               "alternatives": [{"label": "learning rate 1", "patch": {"learning": {"learning_rate": 1.0}},
                                 "dr": gain, "gain": gain}]}
    service = app.extensions["silent"]["service"]
    service.update_experiment("shown", {"learning": {"learning_rate": 1.0}}, actor=ACTOR, note={"autotune": summary})
    app.extensions["silent"]["access"].create_user("alice", PASSWORD)
    board = Dashboard(client)
    board.sign_in()
    page = board.get("/experiments/shown").text
    assert "Auto-tuning" in page and "learning rate 1" in page and "+0.05" in page and ">Undo</button>" in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/experiments/shown/autotune/undo", data={"csrf_token": token, "version": "2"})
    assert response.status_code == 302
    assert service.get_experiment("shown")["spec"]["learning"]["learning_rate"] == row["spec"]["learning"][
        "learning_rate"]
    assert "undone in version 3" in board.get("/experiments/shown").text
