"""The learner on a real SQLite file with real VW, driven on virtual time."""
import numpy as np
import pytest

from experiments.labels import slot_rewards
from experiments.learner import Learner
from experiments.store import open_store
from tests.conftest import ITEMS, SEGMENTS, BEST_ITEM, click_probability
from web import create_app

ENGINES = ("sqlite", "postgresql")  # each test that uses the database runs on both engines


@pytest.mark.parametrize("rewards, aggregation, expected", [
    ([(0, 1.0), (0, 3.0)], "sum", [4.0, 0.5]),
    ([(0, 1.0), (0, 3.0)], "first", [1.0, 0.5]),
    ([(0, 1.0), (0, 3.0), (1, 2.0)], "max", [3.0, 2.0]),
    ([(None, 9.0), (5, 9.0)], "sum", [0.5, 0.5]),
])
def test_slot_rewards_aggregate_and_default(rewards, aggregation, expected):
    assert slot_rewards(rewards, 2, aggregation, 0.5) == expected


def drive(shop, key, n, rng, slots=1, learn_every=100, start=0):
    """Simulated shoppers: 0.8 click rate on the segment's best item, 0.1 elsewhere; return the first slots.

    Event ids are fixed so the sampling, like the clicks, is seeded: a run is reproducible.
    """
    firsts = []
    for t in range(start, start + n):
        segment = SEGMENTS[t % 3]
        answer = shop.slate(key, unit=f"user-{t}", event_id=f"{key}-{t}", context={"user": {"segment": segment}},
                            candidates=ITEMS)
        firsts.append((segment, answer["slate"][0]["id"]))
        for s in answer["slate"]:
            if rng.random() < click_probability(segment, s["id"]):
                shop.reward(answer["event_id"], type="click", item=s["id"])
        shop.clock.advance(0.1)
        if (t - start) % learn_every == learn_every - 1:
            shop.learn()
    return firsts


@pytest.mark.parametrize("slots", [1, 3])
def test_bandit_learns_the_best_item_per_segment(shop, rng, slots):
    shop.create("learn", slots=slots, exploration={"algorithm": "epsilon", "epsilon": 0.1},
                reward={"wait_seconds": 1}, learning={"update_seconds": 1, "learning_rate": 0.1},
                traffic={"holdout": 0.0})
    firsts = drive(shop, "learn", 3600, rng, slots=slots)
    # The share over the last 600 decisions (200 per segment) after 3000 rewarded ones: averaged over
    # many model versions, since one lucky click on an explored item can flip a single snapshot for a while.
    for segment in SEGMENTS:
        share = np.mean([item == BEST_ITEM[segment] for seg, item in firsts[3000:] if seg == segment])
        assert share >= 0.8, (segment, share)


def test_each_decision_is_learned_once_in_log_order(shop, rng, app):
    shop.create("once", reward={"wait_seconds": 10}, learning={"update_seconds": 1})
    drive(shop, "once", 50, rng, learn_every=1000)
    store = app.extensions["silent"]["store"]
    assert shop.learn() == {"once": 0}  # every window still open
    assert shop.learn(seconds=5.5) == {"once": 5}  # 0.1 s apart: the first 5 closed (windows 10 s)
    assert shop.learn(seconds=100) == {"once": 45}
    assert shop.learn(seconds=100) == {"once": 0}
    assert store.latest_model("once")["learned"] == 50


def test_late_rewards_are_not_learned(shop, app):
    shop.create("late", reward={"wait_seconds": 5})
    event = shop.slate("late", candidates=ITEMS)["event_id"]
    shop.clock.advance(6)
    shop.reward(event, type="click", item=None)
    store = app.extensions["silent"]["store"]
    seq = store.get_decision(event)["seq"]
    assert store.rewards_for([seq]) == []


def test_restart_resumes_without_learning_twice(db_path, clock, rng):
    config = {"DATABASE": db_path, "CLOCK": clock, "MODEL_REFRESH_SECONDS": 0.0, "SPEC_REFRESH_SECONDS": 0.0,
              "LEARNER_GRACE_SECONDS": 0.0}
    from tests.conftest import Shop

    first = create_app(config)
    shop = Shop(first.test_client(), clock, first.extensions["silent"]["learner"])
    shop.create("resume", reward={"wait_seconds": 1}, learning={"update_seconds": 1}, traffic={"holdout": 0.0})
    drive(shop, "resume", 40, rng, learn_every=1000)
    shop.learn(seconds=2)
    version = first.extensions["silent"]["store"].latest_model("resume")["version"]
    drive(shop, "resume", 10, rng, learn_every=1000, start=40)
    first.extensions["silent"]["store"].close()

    second = create_app(config)
    shop = Shop(second.test_client(), clock, second.extensions["silent"]["learner"])
    experiment = shop.client.get("/v1/experiments/resume").get_json()
    assert experiment["counts"]["decisions"] == 50 and experiment["model"]["learned"] == 40
    assert shop.learn(seconds=2) == {"resume": 10}
    model = second.extensions["silent"]["store"].latest_model("resume")
    assert model["learned"] == 50 and model["version"] == version + 1
    served = shop.slate("resume", candidates=ITEMS, context={"user": {"segment": "new"}})
    assert served["model_version"] == model["version"]


def test_changed_settings_rebuild_the_model_from_the_log(shop, rng, app):
    shop.create("rebuild", reward={"wait_seconds": 1}, learning={"update_seconds": 1})
    drive(shop, "rebuild", 30, rng, learn_every=1000)
    shop.learn(seconds=2)
    store = app.extensions["silent"]["store"]
    old = store.latest_model("rebuild")
    shop.client.patch("/v1/experiments/rebuild", json={"learning": {"learning_rate": 0.1}})
    shop.learn(seconds=2)
    new = store.latest_model("rebuild")
    assert new["version"] == old["version"] + 1 and new["args"] != old["args"]
    assert new["learned"] == 30 and "-l 0.1" in new["args"]


def test_a_new_learner_on_the_same_file_continues_from_the_snapshot(shop, rng, app, clock):
    shop.create("two", reward={"wait_seconds": 1})
    drive(shop, "two", 20, rng, learn_every=1000)
    shop.learn(seconds=2)
    store = open_store(app.config["DATABASE"])
    assert Learner(store, clock).run_once(force_publish=True) == {"two": 0}
    store.close()
