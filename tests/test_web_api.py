"""The /v1 API through Flask's test client on a real database (SQLite file and PostgreSQL) with real VW."""
import json

import pytest

from tests.conftest import ITEMS, table_counts

ENGINES = ("sqlite", "postgresql")
CANDIDATES = [{"id": f"sku-{i}", "features": {"category": f"c{i % 3}", "price": 10.0 * i}} for i in range(5)]


@pytest.fixture
def running(shop):
    shop.create("home", slots=2, reward={"wait_seconds": 60})
    return shop


def test_error_shape_is_pinned(client):
    response = client.get("/v1/experiments/missing")
    assert response.status_code == 404
    assert response.get_json() == {"error": {"code": "not_found", "message": "experiment 'missing' does not exist",
                                             "field": "key"}}
    assert client.get("/no/such/route").get_json()["error"]["code"] == "not_found"
    assert client.delete("/v1/experiments").status_code == 405


def test_create_list_show_patch_and_history(client):
    created = client.post("/v1/experiments", json={"key": "home", "name": "Home"})
    assert created.status_code == 201 and created.get_json()["status"] == "draft"
    assert [e["key"] for e in client.get("/v1/experiments").get_json()["experiments"]] == ["home"]
    patched = client.patch("/v1/experiments/home", json={"status": "running", "traffic": {"holdout": 0.2}})
    assert patched.status_code == 200
    body = patched.get_json()
    assert body["status"] == "running" and body["version"] == 2 and body["spec"]["traffic"]["holdout"] == 0.2
    history = client.get("/v1/experiments/home/history").get_json()["history"]
    assert [h["version"] for h in history] == [1, 2]
    assert history[1]["change"] == {"status": "running", "traffic": {"holdout": 0.2}}
    assert client.post("/v1/experiments", json={"key": "home"}).status_code == 409
    assert client.patch("/v1/experiments/home", json={"status": "draft"}).status_code == 409


def test_draft_answers_409_and_paused_serves_the_control(shop):
    shop.create("home", status="draft")
    shop.slate("home", expect=409, candidates=CANDIDATES)
    shop.client.patch("/v1/experiments/home", json={"status": "running"})
    shop.client.patch("/v1/experiments/home", json={"status": "paused"})
    answer = shop.slate("home", candidates=CANDIDATES, unit="u1")
    assert answer["variant"] == "fallback" and answer["slate"][0]["probability"] == pytest.approx(1 / 5)
    shop.client.patch("/v1/experiments/home", json={"status": "stopped"})
    assert shop.slate("home", candidates=CANDIDATES)["variant"] == "fallback"


def test_slate_contract(running):
    answer = running.slate("home", unit="user-42", candidates=CANDIDATES, exclude=["sku-0"],
                           context={"user": {"segment": "returning", "country": "DE"}, "page": {"type": "home"}})
    assert set(answer) == {"event_id", "experiment", "variant", "model_version", "slate"}
    ids = [s["id"] for s in answer["slate"]]
    assert len(ids) == 2 == len(set(ids)) and "sku-0" not in ids
    assert [s["slot"] for s in answer["slate"]] == [0, 1]
    assert all(0 < s["probability"] <= 1 for s in answer["slate"])


def test_same_event_id_gives_the_same_slate_and_one_decision(running, db_path):
    first = running.slate("home", candidates=CANDIDATES, event_id="evt-1", unit="u")
    again = running.slate("home", candidates=CANDIDATES, event_id="evt-1", unit="u")
    assert first == again
    assert table_counts(db_path)["decisions"] == 1


def test_reward_value_defaults_and_idempotency(running, db_path):
    event = running.slate("home", candidates=CANDIDATES, unit="u")["event_id"]
    answer = running.slate("home", candidates=CANDIDATES, unit="u2", event_id="e2")
    second_item = answer["slate"][1]["id"]
    stored = running.reward("e2", type="purchase", item=second_item, id="r1")
    assert stored["value"] == 10.0 and stored["slot"] == 1 and not stored["late"] and not stored["duplicate"]
    again = running.reward("e2", type="purchase", item=second_item, id="r1")
    assert again["duplicate"] and table_counts(db_path)["rewards"] == 1
    custom = running.reward(event, type="review", value=2.5)
    assert custom["value"] == 2.5 and custom["slot"] is None  # a slate reward without an item is unattributed


def test_late_reward_is_kept_and_marked(running):
    event = running.slate("home", candidates=CANDIDATES)["event_id"]
    running.clock.advance(61)
    assert running.reward(event, type="click")["late"] is True


BAD_SLATES = [
    (b"{not json", "body"),
    ([1, 2], ""),
    ({"candidates": []}, "candidates"),
    ({}, "candidates"),
    ({"candidates": "sku-1"}, "candidates"),
    ({"candidates": [{"id": "a"}, {"id": "a"}]}, "candidates[1].id"),
    ({"candidates": [{"id": 7}]}, "candidates[0].id"),
    ({"candidates": [{"id": "x" * 257}]}, "candidates[0].id"),
    ({"candidates": [{"id": f"i{i}"} for i in range(1001)]}, "candidates"),
    ({"candidates": [{"features": {}}]}, "candidates[0].id"),
    ({"candidates": ["sku"]}, "candidates[0]"),
    ({"candidates": [{"id": "a", "price": 1}]}, "candidates[0].price"),
    ({"candidates": [{"id": "a", "features": {"p": None}}]}, "candidates[0].features.p"),
    ({"candidates": [{"id": "a", "features": [1]}]}, "candidates[0].features"),
    ({"candidates": [{"id": "a"}, {"id": "b"}], "slots": 0}, "slots"),
    ({"candidates": [{"id": "a"}, {"id": "b"}], "slots": 3}, "slots"),
    ({"candidates": [{"id": "a"}, {"id": "b"}], "exclude": ["a"]}, "slots"),
    ({"candidates": [{"id": "a"}], "exclude": ["a"]}, "exclude"),
    ({"candidates": [{"id": "a"}, {"id": "b"}], "exclude": "a"}, "exclude"),
    ({"candidates": [{"id": "a"}, {"id": "b"}], "slots": "2"}, "slots"),
    ({"candidates": [{"id": "a"}, {"id": "b"}], "context": {"user": {"score": float("nan")}}}, "body"),
    (b'{"candidates": [{"id": "a"}, {"id": "b"}], "context": {"user": {"score": Infinity}}}', "body"),
    ({"candidates": [{"id": "a"}, {"id": "b"}], "context": "home"}, "context"),
    ({"candidates": [{"id": "a"}, {"id": "b"}], "unit": 42}, "unit"),
    ({"candidates": [{"id": "a"}, {"id": "b"}], "event_id": ""}, "event_id"),
    ({"candidates": [{"id": "a"}, {"id": "b"}], "shop": "x"}, "shop"),
]


@pytest.mark.parametrize("body, field", BAD_SLATES)
def test_bad_slate_requests_get_400_naming_the_field_and_write_nothing(running, db_path, body, field):
    before = table_counts(db_path)
    data = body if isinstance(body, bytes) else json.dumps(body, allow_nan=True).encode()
    response = running.client.post("/v1/experiments/home/slate", data=data, content_type="application/json")
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["field"] == field
    assert table_counts(db_path) == before


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_features_are_refused_in_process_too(app, running, value):
    """NaN is not JSON, but in-process callers (simulations) could still pass it."""
    from experiments.errors import InvalidField

    service = app.extensions["silent"]["service"]
    with pytest.raises(InvalidField) as info:
        service.decide("home", {"candidates": CANDIDATES, "context": {"user": {"score": value}}})
    assert info.value.field == "context.user.score"
    with pytest.raises(InvalidField) as info:
        service.decide("home", {"candidates": [{"id": "a", "features": {"p": value}}, {"id": "b"}]})
    assert info.value.field == "candidates[0].features.p"


def test_unknown_experiment_and_oversized_body(running, db_path):
    before = table_counts(db_path)
    assert running.client.post("/v1/experiments/nope/slate", json={"candidates": CANDIDATES}).status_code == 404
    big = json.dumps({"candidates": [{"id": "a", "features": {"blob": "x" * 1_100_000}}]})
    response = running.client.post("/v1/experiments/home/slate", data=big, content_type="application/json")
    assert response.status_code == 413 and response.get_json()["error"]["code"] == "request_entity_too_large"
    assert table_counts(db_path) == before


BAD_REWARDS = [
    ({"type": "click", "value": float("nan")}, "body", 400),
    ({"type": "click", "value": "1"}, "value", 400),
    ({"type": "click", "value": True}, "value", 400),
    ({"type": "wishlist"}, "type", 400),
    ({}, "value", 400),
    ({"type": 3}, "type", 400),
    ({"type": "click", "item": 5}, "item", 400),
    ({"type": "click", "id": ""}, "id", 400),
    ({"type": "click", "bonus": 1}, "bonus", 400),
]


@pytest.mark.parametrize("body, field, status", BAD_REWARDS)
def test_bad_rewards_get_4xx_naming_the_field_and_write_nothing(running, db_path, body, field, status):
    event = running.slate("home", candidates=CANDIDATES)["event_id"]
    before = table_counts(db_path)
    data = json.dumps(body, allow_nan=True)
    response = running.client.post(f"/v1/events/{event}/rewards", data=data, content_type="application/json")
    assert response.status_code == status
    assert response.get_json()["error"]["field"] == field
    assert table_counts(db_path) == before


def test_reward_for_unknown_event_is_404(running, db_path):
    before = table_counts(db_path)
    response = running.client.post("/v1/events/nope/rewards", json={"type": "click"})
    assert response.status_code == 404 and response.get_json()["error"]["field"] == "event_id"
    assert table_counts(db_path) == before


@pytest.mark.parametrize("patch, field", [
    ({"slots": 0}, "slots"), ({"status": "finished"}, "status"), ({"key": "other"}, "key"),
    ({"exploration": {"epsilon": -1}}, "exploration.epsilon"), ({"learning": {"vw_args": "--bogus"}}, "learning.vw_args"),
    ({"nonsense": 1}, "nonsense"),
])
def test_bad_patches_name_the_field_and_change_nothing(running, db_path, patch, field):
    before = table_counts(db_path)
    response = running.client.patch("/v1/experiments/home", json=patch)
    assert response.status_code == 400 and response.get_json()["error"]["field"] == field
    assert table_counts(db_path) == before
    assert running.client.get("/v1/experiments/home").get_json()["version"] == 1


def test_holdout_share_is_close_to_configured_and_sticky(shop):
    shop.create("split", traffic={"holdout": 0.2})
    variants = {}
    for u in range(1500):
        variants[u] = shop.slate("split", unit=f"user-{u}", candidates=ITEMS)["variant"]
    share = sum(v == "holdout" for v in variants.values()) / len(variants)
    assert 0.17 < share < 0.23
    for u in range(0, 1500, 50):
        assert shop.slate("split", unit=f"user-{u}", candidates=ITEMS)["variant"] == variants[u]


def test_holdout_logs_the_control_probabilities(shop):
    shop.create("all-holdout", slots=3, traffic={"holdout": 0.999999})
    answer = shop.slate("all-holdout", unit="u", candidates=ITEMS)
    assert answer["variant"] == "holdout"
    assert [s["probability"] for s in answer["slate"]] == pytest.approx([1 / 6, 1 / 5, 1 / 4])


def test_fixed_arm_control_for_strategies(shop):
    arms = [{"id": "bestsellers"}, {"id": "trending"}, {"id": "cheapest"}]
    shop.create("strat", kind="strategies", arms=arms, traffic={"holdout": 0.999999, "control": {"arm": "trending"}})
    answer = shop.slate("strat", unit="u")
    assert answer["slate"] == [{"slot": 0, "id": "trending", "probability": 1.0}]


def test_healthz(client):
    assert client.get("/healthz").get_json()["status"] == "ok"
