"""Native slate options on a real file: deferred activation, learning modes, per-slot context, model resets."""
import pytest

from bandit.policy import Policy
from experiments.request_options import default_baselines
from tests.conftest import BEST_ITEM, ITEMS, SEGMENTS, table_counts


def model(shop, key):
    return shop.client.get(f"/v1/experiments/{key}").get_json()["model"]


def spec(**overrides):
    base = {"reward": {"wait_seconds": 10}, "learning": {"update_seconds": 1}, "traffic": {"holdout": 0.0}}
    return {**base, **overrides}


def test_deferred_decisions_are_learned_only_once_activated(shop):
    shop.create("defer", **spec())
    shown = shop.slate("defer", candidates=ITEMS, defer_activation=True)
    hidden = shop.slate("defer", candidates=ITEMS, defer_activation=True)
    plain = shop.slate("defer", candidates=ITEMS)
    assert shop.client.post(f"/v1/events/{shown['event_id']}/activate").status_code == 200
    shop.reward(hidden["event_id"], value=1.0)  # a reward without activation is not learned
    shop.learn(seconds=11)
    assert model(shop, "defer")["learned"] == 2  # shown (default reward) and plain; hidden skipped
    late = shop.client.post(f"/v1/events/{hidden['event_id']}/activate")
    assert late.status_code == 409 and late.get_json()["error"]["field"] == "event_id"
    again = shop.client.post(f"/v1/events/{shown['event_id']}/activate")  # already activated: still fine
    assert again.status_code == 200
    assert plain["event_id"]
    shop.learn(seconds=20)
    assert model(shop, "defer")["learned"] == 2  # the skipped one is never learned later


def test_activation_of_unknown_event_is_404(shop):
    assert shop.client.post("/v1/events/nope/activate").status_code == 404


def test_defer_activation_must_be_boolean(shop, db_path):
    shop.create("strict", **spec())
    before = table_counts(db_path)
    body = shop.slate("strict", expect=400, candidates=ITEMS, defer_activation="yes")
    assert body["error"]["field"] == "defer_activation"
    assert table_counts(db_path) == before


def imitation_round(shop, key, n, start=0):
    """The shop's old rule puts the segment's best item first; the model may only watch."""
    for t in range(start, start + n):
        segment = SEGMENTS[t % 3]
        ordered = sorted(ITEMS, key=lambda item: item["id"] != BEST_ITEM[segment])
        answer = shop.slate(key, unit=f"u{t}", context={"user": {"segment": segment}}, candidates=ordered,
                            event_id=f"watch-{t}")
        assert answer["slate"][0]["id"] == BEST_ITEM[segment] and answer["slate"][0]["probability"] == 1.0
        shop.reward(answer["event_id"], value=0.0)  # rewards go to the log, not to the apprentice


def test_apprentice_serves_the_baseline_and_learns_to_imitate_it(shop, app):
    shop.create("apprentice", exploration={"algorithm": "epsilon", "epsilon": 0.2},
                **spec(reward={"wait_seconds": 1}, learning={"update_seconds": 1, "mode": "apprentice"}))
    imitation_round(shop, "apprentice", 900)
    shop.learn(seconds=5)
    assert model(shop, "apprentice")["learned"] == 900
    shop.client.patch("/v1/experiments/apprentice", json={"learning": {"mode": "online"}})
    matched = 0
    for t in range(90):
        segment = SEGMENTS[t % 3]
        answer = shop.slate("apprentice", unit=f"v{t}", context={"user": {"segment": segment}}, candidates=ITEMS,
                            event_id=f"act-{t}")
        matched += answer["slate"][0]["id"] == BEST_ITEM[segment]
    assert matched >= 60, matched  # greedy on the baseline: 80% + 20%/6 of the time


def test_logging_only_serves_the_baseline_and_learns_nothing(shop):
    shop.create("logonly", **spec(reward={"wait_seconds": 1}, learning={"update_seconds": 1, "mode": "logging_only"}))
    for t in range(5):
        answer = shop.slate("logonly", candidates=ITEMS[t:] + ITEMS[:t])
        assert answer["slate"] == [{"slot": 0, "id": ITEMS[t]["id"], "probability": 1.0}]
    shop.learn(seconds=5)
    assert model(shop, "logonly")["learned"] == 0  # published only to keep the cursor


def test_slot_context_excludes_per_slot_and_names_baselines(shop, app):
    shop.create("slots", slots=2, **spec(learning={"update_seconds": 1, "mode": "apprentice"}))
    context = [{"id": "hero", "features": {"size": "large"}, "exclude": ["item-0", "item-1"]},
               {"id": "side", "features": {"size": "small"}, "baseline": "item-0"}]
    answer = shop.slate("slots", slots=2, candidates=ITEMS, slot_context=context)
    assert [s["id"] for s in answer["slate"]] == ["item-2", "item-0"]  # default baseline skips the excluded
    decision = app.extensions["silent"]["store"].get_decision(answer["event_id"])
    assert decision["learning_mode"] == "apprentice" and decision["model_slate"]
    assert "large" in decision["slot_context"]
    shop.client.patch("/v1/experiments/slots", json={"learning": {"mode": "online"}})
    for t in range(30):
        answer = shop.slate("slots", slots=2, candidates=ITEMS, slot_context=context, event_id=f"e{t}")
        assert answer["slate"][0]["id"] not in ("item-0", "item-1")
    shop.learn(seconds=11)
    assert model(shop, "slots")["learned"] == 31


@pytest.mark.parametrize("context, field", [
    ([{"id": "a"}], "slot_context"),
    ([{"id": "a"}, {"id": "a"}], "slot_context[1].id"),
    ([{"baseline": "nope"}, {}], "slot_context[0].baseline"),
    ([{"baseline": "item-0", "exclude": ["item-0"]}, {}], "slot_context[0].baseline"),
    ([{"baseline": "item-0"}, {"baseline": "item-0"}], "slot_context[1].baseline"),
    ([{"exclude": [i["id"] for i in ITEMS]}, {}], "slot_context[0].exclude"),
    ([{"features": {"x": None}}, {}], "slot_context[0].features.x"),
    ([{"colour": "red"}, {}], "slot_context[0].colour"),
])
def test_bad_slot_context_is_rejected_and_writes_nothing(shop, db_path, context, field):
    shop.create("bad", slots=2, **spec())
    before = table_counts(db_path)
    body = shop.slate("bad", expect=400, slots=2, candidates=ITEMS, slot_context=context)
    assert body["error"]["field"] == field
    assert table_counts(db_path) == before


def test_one_slot_excludes_with_exclude(shop):
    shop.create("one", **spec())
    body = shop.slate("one", expect=400, candidates=ITEMS, slot_context=[{"exclude": ["item-0"]}])
    assert body["error"]["field"] == "slot_context[0].exclude"


def test_default_baselines_take_the_first_free_candidate():
    assert default_baselines(3, 2) == (0, 1)
    assert default_baselines(2, 2, (frozenset(), frozenset({0, 1}))) == (0, None)


def test_model_reset_starts_afresh_and_never_relearns_older_decisions(shop, app):
    shop.create("reset", **spec(reward={"wait_seconds": 1}))
    for _ in range(10):
        shop.slate("reset", candidates=ITEMS)
    shop.learn(seconds=2)
    before = model(shop, "reset")
    service = app.extensions["silent"]["service"]
    reset = service.reset_model("reset")
    assert reset["version"] == before["version"] + 1 and reset["learned"] == 0
    shop.learn(seconds=2)
    assert model(shop, "reset")["learned"] == 0
    for _ in range(3):
        shop.slate("reset", candidates=ITEMS)
    shop.learn(seconds=2)
    assert model(shop, "reset")["learned"] == 3
    shop.client.patch("/v1/experiments/reset", json={"learning": {"learning_rate": 0.1}})  # rebuild from the log
    shop.learn(seconds=2)
    assert model(shop, "reset")["learned"] == 3
    row = app.extensions["silent"]["store"].latest_model("reset")
    Policy(service.spec("reset").policy_settings(), row["model"]).close()


def test_learner_restart_after_a_reset_resumes_from_the_reset(shop, app, db_path, clock):
    from experiments.learner import Learner
    from experiments.store import Store

    shop.create("restart", **spec(reward={"wait_seconds": 1}))
    for _ in range(4):
        shop.slate("restart", candidates=ITEMS)
    shop.learn(seconds=2)
    app.extensions["silent"]["service"].reset_model("restart")
    shop.slate("restart", candidates=ITEMS)
    clock.advance(2)
    fresh = Learner(Store(db_path), clock)
    assert fresh.run_once(force_publish=True)["restart"] == 1
    assert model(shop, "restart")["learned"] == 1


def test_deleted_log_keeps_sequence_numbers_moving(shop, app):
    shop.create("forget", **spec(reward={"wait_seconds": 1}))
    for _ in range(5):
        shop.slate("forget", candidates=ITEMS)
    shop.learn(seconds=2)
    store = app.extensions["silent"]["store"]
    assert store.delete_log("forget") == 4  # the newest row stays, so its number is never reused
    shop.slate("forget", candidates=ITEMS)
    shop.learn(seconds=2)
    assert model(shop, "forget")["learned"] == 6
