"""The store's contract, held by both engines: what the service, learner and access code rely on."""
import time

import pytest

from experiments.store import DuplicateKey, PublishRefused, open_store
from tests.test_store_postgres import closed_when_settled

ENGINES = ("sqlite", "postgresql")


@pytest.fixture
def store(db_path):
    store = open_store(db_path)
    yield store
    store.close()


def _experiment(key="e", version=1, status="running"):
    return {"key": key, "name": key, "kind": "items", "status": status, "version": version,
            "spec": {"key": key, "reward": {"wait_seconds": 5}}, "created_at": 1.0, "updated_at": float(version)}


def _decision(event_id, at=100.0, closes=105.0, experiment="e", candidate_set="c"):
    return {"event_id": event_id, "experiment": experiment, "unit": "u", "variant": "bandit", "model_version": 0,
            "spec_version": 1, "context": "{}", "candidate_set": candidate_set, "excluded": "[]",
            "slate": '[{"slot": 0, "id": "a", "probability": 1.0}]', "created_at": at, "window_closes_at": closes}


def test_experiments_are_versioned_and_a_stale_write_is_refused(store):
    store.save_experiment(_experiment(), {"created": True}, "me", expected_version=None)
    with pytest.raises(DuplicateKey):
        store.save_experiment(_experiment(), {"created": True}, "you", expected_version=None)
    store.save_experiment(_experiment(version=2, status="paused"), {"status": "paused"}, "me", expected_version=1)
    with pytest.raises(DuplicateKey):
        store.save_experiment(_experiment(version=3), {}, "late", expected_version=1)
    assert store.get_experiment("e")["status"] == "paused"
    assert store.experiment_versions() == {"e": 2}
    assert [h["version"] for h in store.history("e")] == [1, 2]
    assert [r["key"] for r in store.list_experiments()] == ["e"]


def test_a_decision_is_logged_once_per_event_id(store):
    digest, new = store.new_candidate_set([{"id": "a"}])
    store.insert_decision(_decision("pv-1", candidate_set=digest), new)
    with pytest.raises(DuplicateKey):
        store.insert_decision(_decision("pv-1", candidate_set=digest))
    decision = store.get_decision("pv-1")
    assert decision["event_id"] == "pv-1" and decision["created_at"] == 100.0
    assert store.candidates(decision["candidate_set"]) == [{"id": "a"}]
    assert store.get_decision("pv-2") is None
    assert store.counts("e") == {"decisions": 1, "rewards": 0}


def test_rewards_count_once_per_key_and_stop_at_the_limit(store):
    store.insert_decision(_decision("pv-1"))
    seq = store.get_decision("pv-1")["seq"]
    row = {"event_id": "pv-1", "experiment": "e", "decision_seq": seq, "reward_key": "r1", "type": "click",
           "item": "a", "slot": 0, "value": 1.0, "received_at": 101.0, "late": 0}
    stored, duplicate = store.insert_reward(row, max_per_event=2)
    assert stored["value"] == 1.0 and not duplicate
    stored, duplicate = store.insert_reward(row, max_per_event=2)
    assert duplicate and stored["duplicates"] == 1
    assert store.insert_reward({**row, "reward_key": "r2"}, max_per_event=2)[0] is not None
    assert store.insert_reward({**row, "reward_key": "r3"}, max_per_event=2) == (None, False)
    assert store.rewards_for([seq]) == [{"decision_seq": seq, "slot": 0, "value": 1.0}] * 2


def test_closed_decisions_come_in_log_order_and_stop_at_the_first_open_window(store):
    for i, closes in enumerate([105.0, 106.0, 200.0, 107.0]):
        store.insert_decision(_decision(f"pv-{i}", at=100.0 + i, closes=closes))
    closed_when_settled(store, 0, 300.0, 4)
    rows = store.closed_decisions("e", 0, 150.0, 100)
    assert [r["event_id"] for r in rows] == ["pv-0", "pv-1"]
    cursors = [r["cursor"] for r in rows]
    assert cursors == sorted(cursors)
    assert [r["event_id"] for r in store.closed_decisions("e", cursors[0], 150.0, 1)] == ["pv-1"]
    assert [r["event_id"] for r in store.closed_decisions("e", cursors[-1], 300.0, 100)] == ["pv-2", "pv-3"]
    assert store.backlog("e", cursors[-1]) == 2
    assert store.learned_through_seq("e", cursors[-1]) == rows[-1]["seq"]  # what counterfactual replays may use
    everything = store.closed_decisions("e", 0, 300.0, 100)
    assert store.learned_through_seq("e", everything[-1]["cursor"]) == max(r["seq"] for r in everything)
    assert store.closed_decisions("other", 0, 300.0, 100) == []


def _model(version, cursor=0, learner="a"):
    return {"experiment": "e", "version": version, "args": "--cb_explore_adf", "spec_version": 1,
            "cursor_seq": cursor, "learned": version, "created_at": float(version), "learner": learner,
            "model": bytes([version]) * 10}


def test_publishing_is_fenced_by_version_and_lease(store, db_path):
    now = time.time()
    other = open_store(db_path)  # a second learner process
    try:
        token = store.acquire_lease("learner", "a", now, 30)
        assert store.acquire_lease("learner", "a", now + 1, 30) == token
        assert other.acquire_lease("learner", "b", now, 30) is None
        assert store.live_lease("learner", now)["owner"] == "a"
        store.publish_model(_model(1), lease=("learner", "a", token))
        with pytest.raises(PublishRefused) as refused:
            store.publish_model(_model(1, learner="b"))
        assert not refused.value.lease_lost
        store.release_lease("learner", "a")
        assert store.live_lease("learner", now) is None
        newer = other.acquire_lease("learner", "b", now, 30)
    finally:
        other.close()
    assert newer == token + 1
    with pytest.raises(PublishRefused) as refused:
        store.publish_model(_model(2), lease=("learner", "a", token))
    assert refused.value.lease_lost
    store.publish_model(_model(2, learner="b"), lease=("learner", "b", newer))
    latest = store.latest_model("e")
    assert (latest["version"], latest["learner"], latest["model"]) == (2, "b", bytes([2]) * 10)
    assert "model" not in store.latest_model("e", with_blob=False)
    assert store.model_versions() == {"e": 2}


def test_a_reset_model_never_learns_what_came_before(store):
    store.insert_decision(_decision("before"))
    published = store.reset_model({"experiment": "e", "args": "", "spec_version": 1, "created_at": 1.0,
                                   "learner": "reset", "model": b"empty"})
    store.insert_decision(_decision("after", at=101.0))
    closed_when_settled(store, 0, 1000.0, 2)
    reset_id, floor = store.model_reset("e")
    assert reset_id and published["version"] == 1 and published["cursor_seq"] == floor
    assert [r["event_id"] for r in store.closed_decisions("e", floor, 1000.0, 100)] == ["after"]
    assert store.latest_model("e")["cursor_seq"] == floor


def test_deleting_a_log_leaves_other_experiments(store):
    store.insert_decision(_decision("a-1"))
    store.insert_decision(_decision("b-1", experiment="b"))
    store.insert_decision(_decision("a-2"))
    store.delete_log("e")
    assert store.counts("b")["decisions"] == 1
    assert store.get_decision("b-1") is not None


def test_access_keys_users_and_secrets(store):
    key_id = store.insert_api_key({"hash": "h1", "hint": "sk_", "role": "admin", "label": "", "created_at": 1.0})
    assert store.has_api_keys() and store.active_api_key("h1")["id"] == key_id
    store.revoke_api_key(key_id, 2.0)
    assert store.active_api_key("h1") is None and store.api_key(key_id)["revoked_at"] == 2.0
    user_id = store.insert_user("ann", "hash", 1.0)
    with pytest.raises(DuplicateKey):
        store.insert_user("ann", "other", 2.0)
    assert store.user(user_id)["name"] == "ann" and store.user_by_name("ann")["password_hash"] == "hash"
    assert store.has_users() and [u["name"] for u in store.users()] == ["ann"]
    first = store.app_secret("signing", "one", 1.0)
    assert first == "one" and store.app_secret("signing", "two", 2.0) == "one"


def test_public_keys_keep_what_they_name_and_are_listed_while_active(store):
    """Preflights ask for every active public key's experiments and origins (JSON text, as the access code wrote it)."""
    scope = {"experiments": '["home"]', "origins": '["https://shop.example"]'}
    public = store.insert_api_key({"hash": "p1", "hint": "sk_public_", "role": "public", "label": "", "created_at": 1.0,
                                   **scope})
    store.insert_api_key({"hash": "s1", "hint": "sk_shop_", "role": "shop", "label": "", "created_at": 1.0})
    listed = store.active_api_keys("public")
    assert [k["id"] for k in listed] == [public]
    assert (listed[0]["experiments"], listed[0]["origins"]) == (scope["experiments"], scope["origins"])
    assert store.active_api_key("s1")["experiments"] is None
    store.revoke_api_key(public, 2.0)
    assert store.active_api_keys("public") == []


def test_the_database_clock_is_close_to_this_hosts(store):
    assert abs(store.db_now() - time.time()) < 5
