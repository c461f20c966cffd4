"""Forgetting by group: rules that leave a group's earlier decisions out of the model, and the drift watch
that writes them when a group's reward falls. Real HTTP through the test client, real SQLite, real VW."""
import re

import numpy as np
import pytest

from bandit.drift import MAX_VALUES, DriftWatch
from bandit.scaling import parse_scaling
from experiments import models
from experiments.store import loads
from experiments.spec import DEFAULTS
from experiments.times import iso
from tests.conftest import BEST_ITEM, ITEMS, SEGMENTS, click_probability
from tests.test_experiments_learning import bare_replay
from tests.test_security_vw_args import upgrade_stored_spec
from tests.test_web_dashboard import PASSWORD, Dashboard

ENGINES = ("sqlite", "postgresql")  # each test that uses the database runs on both engines
RULE = {"feature": "user.segment", "value": "loyal", "before": 40}


def steady(segment, item, t):
    return click_probability(segment, item)


def drive(shop, key, decisions, rng, taste=steady, start=0):
    """Shoppers of three segments in turn; each clicks the first item with ``taste(segment, item, t)``."""
    for t in range(start, start + decisions):
        segment = SEGMENTS[t % 3]
        answer = shop.slate(key, unit=f"user-{t}", event_id=f"{key}-{t}", context={"user": {"segment": segment}},
                            candidates=ITEMS)
        first = answer["slate"][0]["id"]
        if rng.random() < taste(segment, first, t):
            shop.reward(answer["event_id"], type="click", item=first)
        shop.clock.advance(0.1)


@pytest.mark.parametrize("forget, field", [
    ({"feature": "user.segment"}, "learning.forget"),
    (["user.segment"], "learning.forget[0]"),
    ([{"feature": "user.segment", "value": "loyal"}], "learning.forget[0]"),
    ([{**RULE, "feature": "user segment"}], "learning.forget[0].feature"),
    ([{**RULE, "value": 7}], "learning.forget[0].value"),
    ([{**RULE, "before": 0}], "learning.forget[0].before"),
    ([{**RULE, "after": 3}], "learning.forget[0].after"),
    ([RULE] * 33, "learning.forget"),
])
def test_bad_forgetting_rules_are_refused_naming_the_field(shop, forget, field):
    shop.create("rules")
    response = shop.client.patch("/v1/experiments/rules", json={"learning": {"forget": forget}})
    assert response.status_code == 400 and response.get_json()["error"]["field"] == field, response.get_json()


@pytest.mark.parametrize("watch, field", [
    ({"enabled": "yes"}, "learning.drift_watch.enabled"),
    ({"threshold": 1}, "learning.drift_watch.threshold"),
    ({"recent": 5}, "learning.drift_watch.recent"),
    ({"min_drop": 2}, "learning.drift_watch.min_drop"),
    ({"window": 5}, "learning.drift_watch.window"),
])
def test_bad_drift_watch_settings_are_refused_naming_the_field(shop, watch, field):
    response = shop.client.post("/v1/experiments", json={"key": "w", "learning": {"drift_watch": watch}})
    assert response.status_code == 400 and response.get_json()["error"]["field"] == field, response.get_json()


def test_a_later_rule_for_the_same_group_replaces_the_earlier(shop):
    shop.create("twice")
    rules = [{**RULE, "before": 90}, {**RULE, "value": "new"}, RULE]
    body = shop.client.patch("/v1/experiments/twice", json={"learning": {"forget": rules}}).get_json()
    assert body["spec"]["learning"]["forget"] == [RULE, {**RULE, "value": "new"}]


def test_a_rule_may_name_the_time_the_group_changed_and_is_stored_as_a_position(shop, rng, app):
    """A shop knows when a segment changed, not the log position: ``before_time`` becomes ``before``, the
    first decision logged at or after that time; one past the newest when none is yet."""
    shop.create("timed", traffic={"holdout": 0.0})
    drive(shop, "timed", 40, rng)
    store = app.extensions["silent"]["store"]
    changed = store.get_decision("timed-30")
    body = shop.client.patch("/v1/experiments/timed", json={"learning": {"forget": [
        {"feature": "user.segment", "value": "loyal", "before_time": iso(changed["created_at"])},
        {"feature": "user.segment", "value": "bargain", "before_time": shop.clock.now()}]}}).get_json()
    newest = store.get_decision("timed-39")["seq"]
    assert body["spec"]["learning"]["forget"] == [
        {"feature": "user.segment", "value": "loyal", "before": changed["seq"]},
        {"feature": "user.segment", "value": "bargain", "before": newest + 1}]
    history = shop.client.get("/v1/experiments/timed/history").get_json()["history"]
    assert history[-1]["change"]["learning"]["forget"][0]["before"] == changed["seq"]


@pytest.mark.parametrize("rule, field", [
    ({"before": 3, "before_time": "2026-01-01T00:00:00Z"}, "learning.forget[0]"),
    ({"before_time": "last tuesday"}, "learning.forget[0].before_time"),
    ({"before_time": [2026]}, "learning.forget[0].before_time"),
    ({"before_time": "9999-01-01T00:00:00Z"}, "learning.forget[0].before_time"),  # the future
])
def test_a_bad_rule_time_is_refused_naming_the_field(shop, rule, field):
    shop.create("timed")
    body = {"learning": {"forget": [{"feature": "user.segment", "value": "loyal", **rule}]}}
    response = shop.client.patch("/v1/experiments/timed", json=body)
    assert response.status_code == 400 and response.get_json()["error"]["field"] == field, response.get_json()
    assert shop.client.get("/v1/experiments/timed").get_json()["version"] == 1


def test_forgetting_a_group_rebuilds_the_model_without_its_earlier_decisions(shop, rng, app):
    shop.create("forget", reward={"wait_seconds": 1}, learning={"update_seconds": 1}, traffic={"holdout": 0.0})
    drive(shop, "forget", 60, rng)
    shop.learn(seconds=2)
    store = app.extensions["silent"]["store"]
    old = store.latest_model("forget")
    assert old["learned"] == 60 and "forget" not in loads(old["features"])
    before = store.get_decision("forget-39")["seq"]  # sequence numbers need not start at 1 (PostgreSQL)
    shop.client.patch("/v1/experiments/forget", json={"learning": {"forget": [{**RULE, "before": before}]}})
    assert shop.slate("forget", candidates=ITEMS)["model_version"] == old["version"]  # serving keeps it meanwhile
    shop.learn(seconds=2)
    new = store.latest_model("forget")
    skipped = sum(1 for t in range(39) if SEGMENTS[t % 3] == "loyal")
    assert new["learned"] == 61 - skipped and new["args"] == old["args"]  # 61: the slate served meanwhile
    assert models.forgetting(new) == (("user.segment", "loyal", before),)
    scaling = parse_scaling(loads(new["features"])["scaling"])
    forgotten = lambda seq, context: seq < before and context["user"]["segment"] == "loyal"  # noqa: E731
    assert new["model"] == bare_replay(store, "forget", scaling, new["args"], skip=forgotten)
    assert new["model"] != bare_replay(store, "forget", scaling, new["args"])


def test_the_drift_watch_forgets_a_group_whose_reward_fell(shop, rng, app):
    """The loyal segment, which clicked half its slates, stops clicking at decision 900: the watch names it,
    the model forgets what it did before."""
    shop.create("drift", reward={"wait_seconds": 1}, traffic={"holdout": 0.0},
                learning={"update_seconds": 1, "drift_watch": {"enabled": True, "recent": 150, "reference": 600}})

    def taste(segment, item, t):
        if segment == "loyal":
            return 0.5 if t < 900 else 0.0
        return click_probability(segment, item)

    drive(shop, "drift", 900, rng, taste)
    shop.learn(seconds=2)
    assert shop.client.get("/v1/experiments/drift").get_json()["spec"]["learning"]["forget"] == []
    for start in range(900, 1500, 100):
        drive(shop, "drift", 100, rng, taste, start=start)
        shop.learn(seconds=2)
    history = shop.client.get("/v1/experiments/drift/history").get_json()["history"]
    entry = next(h for h in history if h["actor"] == "drift-watch")
    rule = entry["change"]["learning"]["forget"][0]
    assert (rule["feature"], rule["value"]) == ("user.segment", "loyal")
    store = app.extensions["silent"]["store"]
    changed = store.get_decision("drift-900")["seq"]  # the first decision after the change
    assert changed - 50 <= rule["before"] <= changed + 100
    evidence = entry["change"]["drift"]
    assert evidence["after_mean"] < 0.3 < evidence["before_mean"] and evidence["z"] <= -4.0  # the default threshold
    shop.learn(seconds=2)
    model = store.latest_model("drift")
    assert models.forgetting(model) == (("user.segment", "loyal", rule["before"]),)
    forgotten = lambda seq, context: context["user"]["segment"] == "loyal" and seq < rule["before"]  # noqa: E731
    scaling = parse_scaling(loads(model["features"])["scaling"])
    assert model["model"] == bare_replay(store, "drift", scaling, model["args"], skip=forgotten)


def test_the_drift_watch_stays_quiet_on_steady_traffic_and_on_rises():
    rng = np.random.default_rng(7)
    watch = DriftWatch()
    rates = {"s0": 0.05, "s1": 0.2, "s2": 0.5}
    for seq in range(60_000):
        segment = f"s{seq % 3}"
        rate = rates[segment] * (2 if seq > 30_000 else 1)  # every group doubles half way: a rise, not a drift
        context = {"user": {"segment": segment, "id": f"u{seq % 500}"}, "page": ("home", "product")[seq % 2]}
        assert watch.observe(seq, context, float(rng.random() < rate)) is None, seq
    assert "user.id" in watch._ignored and len(watch._values["user.id"]) == MAX_VALUES  # a user id is no group



def test_after_a_forgetting_the_watch_stays_armed_for_the_next_group():
    """s1 stops clicking at 3,000 and s2 at 3,400: once s1 is forgotten, s2's fall is seen without waiting
    for new spans to fill (800 decisions here), and s1, measured from its new tastes on, stays quiet."""
    rng, falls_at = np.random.default_rng(3), {"s1": 3_000, "s2": 3_400}
    watch, changes = DriftWatch(recent=200, reference=600), []
    for seq in range(4_500):
        segment = f"s{seq % 3}"
        rate = .1 if seq >= falls_at.get(segment, 10**9) else .5
        change = watch.observe(seq, {"user": {"segment": segment}}, float(rng.random() < rate))
        if change is not None:
            changes.append((seq, change))
            watch.forget(change)
    assert [c.value for _, c in changes] == ["s1", "s2"]
    assert all(abs(c.before - falls_at[c.value]) <= 100 for _, c in changes)
    assert changes[1][0] - falls_at["s2"] < 400  # within a recent span of the change: no cool-down (800 here)


def test_the_dashboard_shows_a_rule_with_its_evidence_and_remembers_again(app, client, shop):
    shop.create("shown", learning={"drift_watch": {"enabled": True}})
    evidence = {"feature": "user.segment", "value": "loyal", "before": 40, "before_mean": 0.31,
                "after_mean": 0.12, "z": -6.2, "decisions": 750}
    service = app.extensions["silent"]["service"]
    service.update_experiment("shown", {"learning": {"forget": [RULE]}}, actor="drift-watch",
                              note={"drift": evidence})
    app.extensions["silent"]["access"].create_user("alice", PASSWORD)
    board = Dashboard(client)
    board.sign_in()
    page = board.get("/experiments/shown").text
    assert "Drift watch on" in page and "user.segment = loyal" in page and "0.310 &rarr; 0.120" in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/experiments/shown/forget/remove",
                           data={"csrf_token": token, "feature": "user.segment", "value": "new"})
    assert response.status_code == 400  # no such rule: nothing changes
    response = client.post("/experiments/shown/forget/remove",
                           data={"csrf_token": token, "feature": "user.segment", "value": "loyal"})
    assert response.status_code == 302
    assert service.get_experiment("shown")["spec"]["learning"]["forget"] == []
    assert "Remember again" not in board.get("/experiments/shown").text


def test_the_dashboard_forgets_a_group_before_a_time(app, client, shop, rng):
    shop.create("by-hand", traffic={"holdout": 0.0})
    drive(shop, "by-hand", 20, rng)
    store = app.extensions["silent"]["store"]
    changed = store.get_decision("by-hand-10")
    app.extensions["silent"]["access"].create_user("alice", PASSWORD)
    board = Dashboard(client)
    board.sign_in()
    page = board.get("/experiments/by-hand").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = {"csrf_token": token, "feature": "user.segment", "value": "loyal"}
    response = client.post("/experiments/by-hand/forget/add", data={**form, "before_time": "soon"})
    assert response.status_code == 400 and "learning.forget[0].before_time" in response.text
    when = iso(changed["created_at"])[:-1]  # what a datetime-local input sends: no zone, read as UTC
    response = client.post("/experiments/by-hand/forget/add", data={**form, "before_time": when})
    assert response.status_code == 302
    rules = shop.client.get("/v1/experiments/by-hand").get_json()["spec"]["learning"]["forget"]
    assert rules == [{"feature": "user.segment", "value": "loyal", "before": changed["seq"]}]
    page = board.get("/experiments/by-hand").text
    assert f"before decision #{changed['seq']:,}" in page and "set by hand" in page


def test_an_experiment_from_before_the_drift_watch_keeps_it_off_on_upgrade(db_path, client, shop):
    """The watch is on for new experiments; one stored before it existed ran without it and still does."""
    shop.create("older")
    assert shop.client.get("/v1/experiments/older").get_json()["spec"]["learning"]["drift_watch"]["enabled"] is True
    upgrade_stored_spec(db_path, "older", lambda spec: spec["learning"].pop("drift_watch"),
                        migration=("m015_drift_watch", 7))
    row = client.get("/v1/experiments/older").get_json()
    assert row["spec"]["learning"]["drift_watch"] == {**DEFAULTS["learning"]["drift_watch"], "enabled": False}
    assert row["version"] == 1  # the experiment does what it did: no new version


def test_a_change_already_forgotten_is_not_written_again(app):
    from bandit.drift import Change
    from experiments.forgetting import forget

    service = app.extensions["silent"]["service"]
    service.create_experiment({"key": "again", "learning": {"forget": [RULE]}})
    store, clock = service.store, service.clock
    learning = service.get_experiment("again")["spec"]["learning"]
    seen_again = Change("user.segment", "loyal", 35, 0.5, 0.1, -6.0, 400)  # a rebuild shows an old change again
    assert forget(store, clock, "again", learning, seen_again) is None
    assert service.get_experiment("again")["version"] == 1
    later = Change("user.segment", "loyal", 80, 0.5, 0.1, -6.0, 400)
    assert forget(store, clock, "again", learning, later)["spec"]["learning"]["forget"] == [{**RULE, "before": 80}]
