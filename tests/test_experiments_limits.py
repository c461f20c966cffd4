"""Cost limits on what one request may carry, through Flask's test client on a real SQLite file with real VW."""
import pathlib

import pytest

from bandit.cost import slate_work
from bandit.encoding import TooManyFeatures, context_text
from experiments.clock import VirtualClock
from experiments.limits import Limits
from tests.conftest import Shop, table_counts
from tests.test_experiments_personalizer import Resource
from web import create_app
from web.settings import SETTINGS

ENGINES = ("sqlite", "postgresql")  # each test that uses the database runs on both engines


ROOT = pathlib.Path(__file__).resolve().parent.parent
LIMIT_SETTINGS = ["MAX_REQUEST_FEATURES", "MAX_REQUEST_WORK", "MAX_REWARDS_PER_EVENT"]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """One app with small limits, so a request over them stays small too, and its experiments."""
    db = str(tmp_path_factory.mktemp("limits") / "silent.db")
    app = create_app({"DATABASE": db, "CLOCK": VirtualClock(), "MODEL_REFRESH_SECONDS": 0.0,
                      "SPEC_REFRESH_SECONDS": 0.0, "MAX_REQUEST_FEATURES": 60, "MAX_REQUEST_WORK": 10_000,
                      "MAX_REWARDS_PER_EVENT": 3})
    client = app.test_client()
    for key, spec in {"feats": {"slots": 2}, "crossed": {"slots": 3, "learning": {"interactions": ["::"]}},
                      "plain": {"slots": 3}}.items():
        assert client.post("/v1/experiments", json={"key": key, "status": "running", **spec}).status_code == 201
    yield app
    app.extensions["silent"]["store"].close()


@pytest.fixture
def shop(small):
    return Shop(small.test_client(), VirtualClock(), small.extensions["silent"]["learner"])


@pytest.fixture
def db_path(small):
    return small.config["DATABASE"]


def features(n: int, prefix: str = "f") -> dict:
    return {f"{prefix}{i}": float(i) for i in range(n)}


def candidates(n: int, size: int) -> list[dict]:
    return [{"id": f"c{i}", "features": features(size, "a")} for i in range(n)]


@pytest.mark.parametrize("body, field", [
    ({"context": {"user": features(61)}, "candidates": candidates(2, 0)}, "context"),
    ({"context": {"user": features(40), "hour": list(range(30))}, "candidates": candidates(2, 0)}, "context"),
    ({"candidates": candidates(7, 9)}, "candidates"),  # 7 x (id + 9 features) = 70
    ({"context": {"user": features(30)}, "candidates": candidates(4, 9)}, None),  # 30 + 40 together
    ({"candidates": candidates(2, 0), "slots": 2,
      "slot_context": [{"features": features(30)}, {"features": features(31)}]}, "slot_context"),
])
def test_a_request_past_the_features_limit_is_413_naming_it_and_writes_nothing(shop, db_path, body, field):
    before = table_counts(db_path)
    error = shop.slate("feats", expect=413, **body)["error"]
    assert error["code"] == "limit_exceeded" and "MAX_REQUEST_FEATURES" in error["message"]
    assert error.get("field") == field
    assert table_counts(db_path) == before


def test_a_request_within_the_features_limit_is_served(shop):
    assert shop.slate("feats", slots=1, context={"user": features(20)}, candidates=candidates(4, 9))["slate"]


def test_the_work_limit_counts_crossings_candidates_and_slots(shop, db_path):
    body = {"context": {"user": features(30)}, "candidates": candidates(5, 2)}
    assert shop.slate("crossed", slots=1, **body)["slate"]  # 5 actions x (33 + 33^2) = 5,610
    before = table_counts(db_path)
    error = shop.slate("crossed", expect=413, slots=3, **body)["error"]  # six slot predictions: 33,660 > 10,000
    assert error["code"] == "limit_exceeded" and "MAX_REQUEST_WORK" in error["message"]
    assert table_counts(db_path) == before
    # -q UA -q PA: 5 x (33 + 30 x 3) x 6 = 3,690
    assert len(shop.slate("plain", slots=3, **body)["slate"]) == 3


def test_rewards_per_event_are_capped_and_repeats_still_count_once(shop, db_path):
    event = shop.slate("feats", slots=1, candidates=candidates(3, 1))["event_id"]
    before = table_counts(db_path)["rewards"]
    for i in range(3):
        shop.reward(event, type="click", id=f"r{i}")
    error = shop.reward(event, expect=409, type="click", id="r3")["error"]
    assert error["code"] == "limit_exceeded" and error["field"] == "event_id"
    assert "MAX_REWARDS_PER_EVENT" in error["message"]
    assert shop.reward(event, type="click", id="r1")["duplicate"] is True
    assert table_counts(db_path)["rewards"] == before + 3


def test_personalizer_rank_is_held_to_the_same_limits(small):
    resource = Resource(small.test_client(), small)  # Personalizer's default crosses every namespace pair
    actions = [{"id": f"a{i}", "features": [{"n": i}]} for i in range(3)]
    too_many = resource.json("POST", "/rank", 413, {"contextFeatures": [{"u": features(61)}], "actions": actions})
    assert too_many["error"]["code"] == "PayloadSizeExceeded" and too_many["error"]["target"] == "contextFeatures"
    many = [{"id": f"a{i}", "features": [{"n": i}]} for i in range(10)]  # 10 x (42 + 42^2) = 18,060
    costly = resource.json("POST", "/rank", 413, {"contextFeatures": [{"u": features(40)}], "actions": many})
    assert "MAX_REQUEST_WORK" in costly["error"]["message"]
    assert resource.json("POST", "/rank", 201, {"contextFeatures": [{"u": features(5)}], "actions": actions})


def test_the_default_limits_refuse_the_audits_16k_features_on_both_apis(client, app):
    huge = features(16_000)
    client.post("/v1/experiments", json={"key": "big", "status": "running"})
    response = client.post("/v1/experiments/big/slate", json={"context": {"user": huge}, "candidates": candidates(2, 1)})
    assert response.status_code == 413 and response.get_json()["error"]["field"] == "context"
    resource = Resource(client, app, key="news")
    resource.json("POST", "/rank", 413, {"contextFeatures": [{"user": huge}], "actions": [{"id": "a"}]})


class CountingDict(dict):
    """A features object that counts how many of its entries the encoder reads."""

    read = 0

    def items(self):
        for item in super().items():
            CountingDict.read += 1
            yield item


def test_encoding_stops_at_the_limit_instead_of_walking_the_whole_object():
    CountingDict.read = 0
    with pytest.raises(TooManyFeatures):
        context_text({"user": CountingDict(features(10_000))}, limit=50)
    assert CountingDict.read <= 52


def test_every_limit_is_a_documented_setting():
    names = {name for name, _, _ in SETTINGS}
    security = (ROOT / "docs" / "security.md").read_text()
    limits = security[security.index("## Limits"):]
    for name in LIMIT_SETTINGS:
        assert name in names and f"SILENT_{name}" in limits, name


def test_the_work_examples_in_docs_security_hold():
    assert slate_work({"U": 10, "P": 10}, {6: 50}, 0, ("UA", "PA"), slots=3) == 43_800
    crossed = [slate_work({"U": n}, {2: 50}, 0, ("::",), slots=1) for n in (197, 198)]
    assert crossed[0] <= Limits().work < crossed[1]
    security = (ROOT / "docs" / "security.md").read_text()
    assert "43,800" in security and "about 197 features" in security
