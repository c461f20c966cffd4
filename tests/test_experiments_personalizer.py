"""Personalizer's REST API mapped onto the native service, through the Flask test client."""
import base64
import os
import socket
import struct

import pytest

from bandit.policy import Policy
from experiments.personalizer import config
from experiments.errors import InvalidField
from experiments.personalizer.requests import merge_features, renamed
from tests.conftest import table_counts
from web.personalizer import personalizer

ENGINES = ("sqlite", "postgresql")  # each test that uses the database runs on both engines


ACTIONS = [{"id": f"news-{i}", "features": [{"topic": t}, {"length": 100 + i}]}
           for i, t in enumerate(["sports", "politics", "tech", "music"])]
CONTEXT = [{"user": {"tier": "gold"}}, {"time": "morning"}]
SLOTS = [{"id": "hero", "features": [{"size": "large"}], "baselineAction": "news-0"},
         {"id": "side", "features": [{"size": "small"}], "excludedActions": ["news-0"], "baselineAction": "news-1"}]


class Resource:
    """One Personalizer resource: its key's headers and calls under /personalizer."""

    def __init__(self, client, app, key="news", slots=None):
        with app.app_context():
            self.key = personalizer().create_resource(key, slots=slots)["key"]
        self.client, self.app, self.experiment = client, app, key
        self.headers = {"Ocp-Apim-Subscription-Key": self.key}

    def call(self, method, path, expect=None, **kwargs):
        response = self.client.open(f"/personalizer{path}", method=method, headers=self.headers, **kwargs)
        if expect is not None:
            assert response.status_code == expect, response.get_data(as_text=True)
        return response

    def json(self, method, path, expect, body=None):
        return self.call(method, path, expect, json=body).get_json()

    def rank(self, expect=201, **body):
        return self.json("POST", "/rank", expect, {"contextFeatures": CONTEXT, "actions": ACTIONS, **body})


@pytest.fixture
def resource(client, app):
    return Resource(client, app)


def error_of(response, status, code, target=None):
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code and error["message"]
    if target is not None:
        assert error.get("target") == target
    return error


@pytest.mark.parametrize("headers", [{}, {"Ocp-Apim-Subscription-Key": "0" * 32}])
def test_missing_or_unknown_key_is_401_in_personalizer_shape(client, resource, headers):
    error_of(client.post("/personalizer/rank", json={}, headers=headers), 401, "401", "Ocp-Apim-Subscription-Key")


def test_rank_lists_every_action_excluded_ones_at_zero(resource):
    answer = resource.rank(excludedActions=["news-3"], eventId="evt-1")
    assert answer["eventId"] == "evt-1"
    ranking = answer["ranking"]
    assert [r["id"] for r in ranking][-1] == "news-3" and ranking[-1]["probability"] == 0.0
    assert sorted(r["id"] for r in ranking) == sorted(a["id"] for a in ACTIONS)
    assert ranking[0]["id"] == answer["rewardActionId"] != "news-3"
    assert sum(r["probability"] for r in ranking) == pytest.approx(1.0)


def test_path_versions_and_api_version_are_accepted(resource):
    for path in ("/rank?api-version=2022-09-01-preview", "/v1.0/rank", "/v1.1-preview.3/rank"):
        assert resource.call("POST", path, 201, json={"actions": ACTIONS}).get_json()["rewardActionId"]


def test_the_event_id_seeds_the_choice(client, app, tmp_path, clock):
    from web import create_app

    twin = create_app({"DATABASE": str(tmp_path / "twin.db"), "CLOCK": clock})
    first, second = Resource(client, app), Resource(twin.test_client(), twin)
    for t in range(5):
        event = f"seed-{t}"
        assert first.rank(eventId=event)["rewardActionId"] == second.rank(eventId=event)["rewardActionId"]
    assert first.rank(eventId="seed-0")["ranking"] == second.rank(eventId="seed-0")["ranking"]  # a retry replays
    twin.extensions["silent"]["store"].close()


@pytest.mark.parametrize("body, target", [
    ({"actions": []}, "actions"),
    ({"actions": [{"id": "a", "features": [{"x": 1}]}, {"id": "a", "features": []}]}, "actions[1].id"),
    ({"actions": ACTIONS, "excludedActions": [a["id"] for a in ACTIONS]}, "excludedActions"),
    ({"actions": ACTIONS, "contextFeatures": [None]}, "contextFeatures[0]"),
    ({"actions": ACTIONS, "eventId": ""}, "eventId"),
    ({"actions": ACTIONS, "deferActivation": "yes"}, "deferActivation"),
    ({"actions": [{"id": "a", "features": [{"x": float("inf")}]}]}, None),
    ({"actions": [{"id": {}, "features": []}]}, "actions[0].id"),
    ({"actions": [{"id": "x" * 257, "features": []}]}, "actions[0].id"),
])
def test_bad_rank_requests_are_400_and_write_nothing(resource, db_path, body, target):
    before = table_counts(db_path)
    error_of(resource.call("POST", "/rank", json=body), 400, "InvalidRankRequest", target)
    assert table_counts(db_path) == before


def test_unknown_fields_and_exclusions_of_absent_actions_are_ignored(resource, caplog):
    """The spec forbids neither: a static out-of-stock list and newer clients' fields still rank."""
    colour, label = f"colour{os.urandom(4).hex()}", f"label{os.urandom(4).hex()}"  # each is logged once per process
    answer = resource.rank(excludedActions=["news-3", "sold-out-7"], **{colour: "red"},
                           actions=[{**a, label: "x"} for a in ACTIONS])
    assert [r["id"] for r in answer["ranking"]][-1] == "news-3" and len(answer["ranking"]) == len(ACTIONS)
    assert colour in caplog.text and label in caplog.text
    config_doc = resource.json("PUT", "/configurations/service", 200, {"rewardWaitTime": "PT5S", "surprise": 1})
    assert "surprise" not in config_doc and config_doc["rewardWaitTime"] == "PT5S"


def test_body_that_is_not_json_is_a_400(resource):
    error_of(resource.call("POST", "/rank", data="{", content_type="application/json"), 400, "InvalidRankRequest")


def test_reward_and_activate(resource, learner, clock):
    answer = resource.rank()
    event = answer["eventId"]
    resource.call("POST", f"/events/{event}/reward", 204, json={"value": 0.5})
    resource.call("POST", f"/events/{event}/activate", 204)
    error_of(resource.call("POST", f"/events/{event}/reward", json={"value": 1.5}), 400, "InvalidRewardRequest",
             "value")
    store = resource.app.extensions["silent"]["store"]
    rewards = store.query("SELECT item, slot, value FROM rewards")
    assert rewards == [{"item": None, "slot": 0, "value": 0.5}]


def test_rewards_for_unknown_events_are_kept_unattributed_and_counted(client, app, resource):
    """Rewards still in flight for events ranked before a cut-over get 204, as from the retired service."""
    other = Resource(client, app, "other")
    foreign = other.rank()["eventId"]  # another resource's event is unknown to this one
    resource.call("POST", "/events/before-cutover/reward", 204, json={"value": 1})
    resource.call("POST", f"/events/{foreign}/reward", 204, json={"value": 0.5})
    resource.call("POST", "/events/before-cutover/activate", 204)
    resource.call("POST", "/multislot/events/ms-old/reward", 204, json={"reward": [{"slotId": "hero", "value": 1}]})
    store = app.extensions["silent"]["store"]
    kept = store.query("SELECT experiment, event_id, kind, slot_id, value FROM unattributed_rewards ORDER BY id")
    assert kept == [{"experiment": "news", "event_id": "before-cutover", "kind": "reward", "slot_id": None, "value": 1.0},
                    {"experiment": "news", "event_id": foreign, "kind": "reward", "slot_id": None, "value": 0.5},
                    {"experiment": "news", "event_id": "before-cutover", "kind": "activate", "slot_id": None,
                     "value": None},
                    {"experiment": "news", "event_id": "ms-old", "kind": "reward", "slot_id": "hero", "value": 1.0}]
    assert store.query("SELECT count(*) AS n FROM rewards")[0]["n"] == 0
    assert client.get("/v1/experiments/news/report").get_json()["rewards"]["unknown_event"] == 3
    assert client.post("/v1/events/before-cutover/rewards", json={"value": 1}).status_code == 404  # native stays
    resource.call("DELETE", "/logs", 204)
    assert client.get("/v1/experiments/news/report").get_json()["rewards"]["unknown_event"] == 0


def test_deferred_events_learn_only_when_activated_in_time(resource, learner, clock):
    resource.json("PUT", "/configurations/service", 200, {"rewardWaitTime": "PT10S"})
    shown = resource.rank(deferActivation=True)["eventId"]
    ignored = resource.rank(deferActivation=True)["eventId"]
    resource.call("POST", f"/events/{shown}/activate", 204)
    resource.call("POST", f"/events/{ignored}/reward", 204, json={"value": 1})
    clock.advance(11)
    learner.run_once(force_publish=True)
    assert resource.app.extensions["silent"]["store"].latest_model("news")["learned"] == 1
    error_of(resource.call("POST", f"/events/{ignored}/activate"), 400, "InvalidEventIdToActivate", "eventId")


def test_multislot_rank_and_reward(client, app):
    slate = Resource(client, app, "slate", slots=2)
    answer = slate.json("POST", "/multislot/rank", 201, {"contextFeatures": CONTEXT, "actions": ACTIONS,
                                                         "slots": SLOTS, "eventId": "ms-1"})
    assert answer["eventId"] == "ms-1" and [s["id"] for s in answer["slots"]] == ["hero", "side"]
    chosen = [s["rewardActionId"] for s in answer["slots"]]
    assert len(set(chosen)) == 2 and chosen[1] != "news-0"
    slate.call("POST", "/multislot/events/ms-1/reward", 204,
               json={"reward": [{"slotId": "side", "value": 1.0}, {"slotId": "hero", "value": 0.2}]})
    slate.call("POST", "/multislot/events/ms-1/activate", 204)
    rewards = app.extensions["silent"]["store"].query("SELECT item, slot, value FROM rewards ORDER BY id")
    assert rewards == [{"item": chosen[1], "slot": 1, "value": 1.0}, {"item": chosen[0], "slot": 0, "value": 0.2}]
    error_of(slate.call("POST", "/multislot/events/ms-1/reward", json={"reward": [{"slotId": "x", "value": 1}]}),
             400, "InvalidRewardRequest", "reward[0].slotId")


@pytest.mark.parametrize("slots, target", [
    ([{"id": "a", "baselineAction": "nope"}], "slots[0].baselineAction"),
    ([{"id": "a", "baselineAction": "news-0", "excludedActions": ["news-0"]}], "slots[0].baselineAction"),
    ([{"id": "a", "baselineAction": "news-0"}, {"id": "a", "baselineAction": "news-1"}], "slots[1].id"),
    ([{"id": "a", "baselineAction": "news-0"}, {"id": "b", "baselineAction": "news-0"}], "slots[1].baselineAction"),
    ([{"baselineAction": "news-0"}], "slots[0].id"),
    ([], "slots"),
    ([{"id": "a", "baselineAction": []}], "slots[0].baselineAction"),
])
def test_bad_multislot_requests_are_400(client, app, slots, target):
    slate = Resource(client, app, "slate", slots=2)
    error_of(slate.call("POST", "/multislot/rank", json={"actions": ACTIONS, "slots": slots}), 400,
             "InvalidRankRequest", target)


def test_a_new_resource_ranks_multi_slot_up_to_its_maximum(client, app, resource):
    """No special creation needed: a new resource takes up to 10 slots; beyond is the spec's error code."""
    answer = resource.json("POST", "/multislot/rank", 201, {"actions": ACTIONS, "slots": SLOTS})
    assert [s["id"] for s in answer["slots"]] == ["hero", "side"]
    one = Resource(client, app, "single", slots=1)
    error = error_of(one.call("POST", "/multislot/rank", json={"actions": ACTIONS, "slots": SLOTS}), 400,
                     "InvalidMultiSlotApiAccess", "slots")
    assert "at most 1 slot" in error["message"]


def test_apprentice_mode_always_answers_the_baseline(client, app):
    slate = Resource(client, app, "slate", slots=2)
    slate.json("PUT", "/configurations/service", 200, {"learningMode": "Apprentice"})
    for t in range(10):
        actions = ACTIONS[t % 4:] + ACTIONS[:t % 4]
        assert slate.rank(actions=actions)["rewardActionId"] == actions[0]["id"]
        answer = slate.json("POST", "/multislot/rank", 201, {"actions": ACTIONS, "slots": SLOTS})
        assert [s["rewardActionId"] for s in answer["slots"]] == ["news-0", "news-1"]
    assert slate.rank(excludedActions=["news-0"])["rewardActionId"] == "news-1"
    config_doc = slate.json("GET", "/configurations/service", 200)
    assert config_doc["learningMode"] == "Apprentice"
    assert config_doc["latestApprenticeModeMetrics"]["numberOfEvents"] == 21


def test_service_configuration_round_trip(resource):
    sent = {"rewardWaitTime": "PT5S", "defaultReward": -0.5, "rewardAggregation": "sum",
            "explorationPercentage": 0.35, "modelExportFrequency": "PT30S", "logRetentionDays": 7,
            "modelRetrainDays": 2, "learningMode": "Online", "isAutoOptimizationEnabled": False}
    back = resource.json("PUT", "/configurations/service", 200, sent)
    assert {k: back[k] for k in sent} == sent
    assert resource.json("GET", "/configurations/service", 200) == back
    experiment = resource.client.get("/v1/experiments/news").get_json()
    assert experiment["spec"]["reward"] == {**experiment["spec"]["reward"], "wait_seconds": 5.0, "default": -0.5,
                                            "aggregation": "sum"}
    assert experiment["spec"]["exploration"]["epsilon"] == 0.35
    assert experiment["spec"]["learning"]["update_seconds"] == 30.0
    assert experiment["spec"]["retention"] == {"days": 7}  # acted on by the learner's retention
    history = resource.client.get("/v1/experiments/news/history").get_json()["history"]
    assert history[-1]["actor"] == "personalizer"


@pytest.mark.parametrize("body, code, target", [
    ({"rewardWaitTime": "ten minutes"}, "InvalidServiceConfiguration", "rewardWaitTime"),
    ({"rewardWaitTime": "P31D"}, "InvalidServiceConfiguration", "rewardWaitTime"),
    ({"rewardWaitTime": "PT4S"}, "InvalidRewardWaitTime", "rewardWaitTime"),
    ({"rewardWaitTime": "P2DT1S"}, "InvalidRewardWaitTime", "rewardWaitTime"),
    ({"defaultReward": 2}, "InvalidServiceConfiguration", "defaultReward"),
    ({"rewardAggregation": "median"}, "InvalidServiceConfiguration", "rewardAggregation"),
    ({"explorationPercentage": 20}, "InvalidServiceConfiguration", "explorationPercentage"),
    ({"explorationPercentage": 120}, "InvalidServiceConfiguration", "explorationPercentage"),
    ({"explorationPercentage": -0.1}, "InvalidServiceConfiguration", "explorationPercentage"),
    ({"learningMode": "Teacher"}, "InvalidServiceConfiguration", "learningMode"),
    ({"learningMode": "Apprentice", "defaultReward": 0.5}, "InvalidLearningModeServiceConfiguration",
     "learningMode"),
    ({"logRetentionDays": 0}, "InvalidLogRetentionDays", "logRetentionDays"),
    ({"logRetentionDays": 3, "modelRetrainDays": 4}, "InvalidModelRetrainDays", "modelRetrainDays"),
    ({"modelRetrainDays": -1}, "InvalidModelRetrainDays", "modelRetrainDays"),
    ({"modelExportFrequency": "PT0S"}, "InvalidServiceConfiguration", "modelExportFrequency"),
])
def test_bad_service_configuration_is_400_and_changes_nothing(resource, db_path, body, code, target):
    before = table_counts(db_path)
    response = resource.call("PUT", "/configurations/service", json=body)
    error_of(response, 400, code, target)
    assert response.headers["x-ms-error-code"] == code
    assert table_counts(db_path) == before


def test_policy_update_validates_with_vw_and_resets(resource):
    policy = resource.json("GET", "/configurations/policy", 200)
    assert policy == {"name": "news", "arguments": "--ccb_explore_adf --epsilon 0.2 -q :: -l 0.5"}
    sent = {"name": "tuned", "arguments": "--cb_explore_adf --epsilon 0.1 --power_t 0 -l 0.01 -q ::"}
    updated = resource.json("PUT", "/configurations/policy", 200, sent)
    assert updated == sent  # read back as sent, like the spec's example
    experiment = resource.client.get("/v1/experiments/news").get_json()["spec"]
    assert experiment["exploration"]["epsilon"] == 0.1 and experiment["learning"]["vw_args"] == "--power_t 0"
    error = error_of(resource.call("PUT", "/configurations/policy",
                                   json={"name": "bad", "arguments": "--cb_explore_adf --no_such_flag 3"}),
                     400, "InvalidPolicyConfiguration", "arguments")
    assert "Vowpal Wabbit" in error["message"] and "no_such_flag" in error["message"]
    assert resource.json("GET", "/configurations/policy", 200) == updated
    resource.client.patch("/v1/experiments/news", json={"learning": {"learning_rate": 0.02}})
    assert resource.json("GET", "/configurations/policy", 200)["arguments"] == (
        "--ccb_explore_adf --epsilon 0.1 -q :: -l 0.02 --power_t 0")  # changed elsewhere: the live line
    assert resource.json("DELETE", "/configurations/policy", 200) == policy


def test_model_export_reset_and_properties(resource, learner, clock):
    resource.json("PUT", "/configurations/service", 200, {"rewardWaitTime": "PT5S"})
    for _ in range(5):
        resource.call("POST", f"/events/{resource.rank()['eventId']}/reward", 204, json={"value": 1})
    clock.advance(6)
    learner.run_once(force_publish=True)
    blob = resource.call("GET", "/model", 200).data
    settings = resource.app.extensions["silent"]["service"].spec("news").policy_settings()
    Policy(settings, blob).close()  # VW loads what it exported
    first = resource.json("GET", "/model/properties", 200)
    clock.advance(60)
    resource.call("DELETE", "/model", 204)
    props = resource.json("GET", "/model/properties", 200)
    assert props["creationTime"] > first["creationTime"] and props["lastModifiedTime"] == props["creationTime"]
    assert resource.app.extensions["silent"]["store"].latest_model("news")["learned"] == 0


def test_log_properties_and_delete(resource):
    error_of(resource.call("GET", "/logs/properties"), 404, "LogsPropertiesNotFound")
    for _ in range(3):
        resource.rank()
    dates = resource.json("GET", "/logs/properties", 200)["dateRange"]
    assert dates["from"] and dates["to"]
    resource.call("DELETE", "/logs", 204)
    assert resource.app.extensions["silent"]["store"].counts("news")["decisions"] <= 1


@pytest.mark.engines("sqlite")  # the Parquet archive is the SQLite engine's
def test_deleting_logs_deletes_their_archive(resource, learner, clock):
    resource.json("PUT", "/configurations/service", 200, {"rewardWaitTime": "PT5S"})
    for _ in range(3):
        resource.rank()
    clock.advance(700)  # past the archive's default wait (ARCHIVE_AFTER_SECONDS)
    learner.run_once(force_publish=True)
    silent = resource.app.extensions["silent"]
    folder = os.path.join(silent["archive"].folder, "decisions", "experiment=news")
    assert silent["store"].archive_files("news") and os.path.isdir(folder)
    resource.call("DELETE", "/logs", 204)
    assert not silent["store"].archive_files("news") and not os.path.exists(folder)


def test_unknown_operations_are_404_in_personalizer_shape(resource):
    error_of(resource.call("GET", "/nothing/here"), 404, "ResourceNotFound")


def test_native_api_keeps_its_own_error_shape(client):
    assert "field" in client.post("/v1/experiments", json={}).get_json()["error"]


@pytest.mark.parametrize("text, seconds", [("PT10M", 600), ("PT5S", 5), ("P2D", 172800), ("PT1H30M", 5400),
                                           ("PT0.5S", 0.5), ("00:10:00", 600), ("1.00:00:00", 86400)])
def test_durations(text, seconds):
    assert config.parse_duration(text, "f") == seconds
    assert config.parse_duration(config.format_duration(seconds), "f") == seconds


@pytest.mark.parametrize("text", ["", "P", "PT", "10M", "PT-5S", "P1DT", None, 600])
def test_bad_durations(text):
    with pytest.raises(InvalidField):
        config.parse_duration(text, "f")


@pytest.mark.parametrize("arguments, exploration, learning", [
    ("--cb_explore_adf -q ::", {"algorithm": "epsilon", "epsilon": 0.05}, {"interactions": ["::"]}),
    ("--cb_explore_adf --squarecb --gamma_scale 20 -qUA -l 0.1",
     {"algorithm": "squarecb", "gamma_scale": 20.0, "gamma_exponent": 0.5, "normalize": False},
     {"interactions": ["UA"], "learning_rate": 0.1}),
    ("--cb_explore_adf --bag 4 --epsilon 0.05 --learning_rate=0.2",
     {"algorithm": "bag", "bag": 4, "epsilon": 0.05, "greedify": False}, {"learning_rate": 0.2}),
    ("--cb_explore_adf --cb_type ips --epsilon 0.3", {"algorithm": "epsilon", "epsilon": 0.3},
     {"vw_args": "--cb_type ips"}),
])
def test_policy_arguments_split_into_spec_settings(arguments, exploration, learning):
    patch = config.policy_patch(arguments)
    assert patch["exploration"] == exploration
    assert patch["learning"] == {**patch["learning"], **learning}


def test_every_exploration_algorithm_has_its_vw_flags():
    from bandit.exploration import EXPLORATIONS, SquareCB, exploration_to_dict

    assert set(config.EXPLORATION_OPTIONS) == set(EXPLORATIONS)
    for cls in EXPLORATIONS.values():  # and a spec's command line reads back as the same settings
        setting = cls(normalize=False) if cls is SquareCB else cls()  # normalize is no VW option: --squarecb is VW's
        assert config.policy_patch(setting.vw_args())["exploration"] == exploration_to_dict(setting)


@pytest.mark.parametrize("arguments", ["", "--epsilon", "--epsilon x", "--bag 2.5", "'unclosed", "--epsilon 3"])
def test_unparsable_policy_arguments(arguments):
    with pytest.raises(InvalidField) as info:
        config.policy_patch(arguments)
    assert info.value.field == "arguments"


def test_feature_lists_merge_and_fields_are_renamed():
    assert merge_features([{"a": {"x": 1}}, {"a": {"y": None}}, {"b": 1}, {"b": [2]}], "f") == {"a": {"x": 1},
                                                                                              "b": [1, 2]}
    assert renamed("learning.vw_args") == "arguments" and renamed("reward.wait_seconds") == "rewardWaitTime"


def wait_for_evaluation(resource, evaluation_id):
    import time

    deadline = time.time() + 30
    while time.time() < deadline:
        document = resource.json("GET", f"/evaluations/{evaluation_id}", 200)
        if document["status"] != "Running":
            return document
        time.sleep(0.05)
    raise AssertionError("the evaluation did not finish")


def test_offline_evaluations_compare_custom_policies_with_the_online_one(resource, clock):
    resource.json("PUT", "/configurations/service", 200, {"rewardWaitTime": "PT5S"})
    for t in range(60):
        answer = resource.rank(contextFeatures=[{"user": {"tier": ["gold", "silver"][t % 2]}}])
        resource.call("POST", f"/events/{answer['eventId']}/reward", 204,
                      json={"value": float(answer["rewardActionId"] == "news-2")})
        clock.advance(1)
    clock.advance(5)
    contract = {"name": "squarecb or not", "startTime": "2025-12-31T00:00:00Z", "endTime": "2026-01-02T00:00:00Z",
                "policies": [{"name": "square", "arguments": "--cb_explore_adf --squarecb -q ::"}]}
    created = resource.json("PUT", "/evaluations/eval-1", 200, contract)
    assert created["id"] == "eval-1" and created["status"] in ("Running", "Succeeded")
    done = wait_for_evaluation(resource, "eval-1")
    assert done["status"] == "Succeeded" and done["evaluationType"] == "Manual"
    results = {r["name"]: r for r in done["policyResults"]}
    assert set(results) == {"Online", "square"} and results["square"]["policySource"] == "Custom"
    assert results["Online"]["decisions"] == 60 and len(results["Online"]["confidenceInterval"]) == 2
    assert [v["name"] for v in done["content"]["value"]] == ["Online", "square"]
    assert done["optimalPolicy"] in results
    listed = resource.json("GET", "/evaluations", 200)
    assert [e["id"] for e in listed["value"]] == ["eval-1"] and listed["nextLink"] is None
    error_of(resource.call("PUT", "/evaluations/eval-1", json=contract), 400, "EvaluationAlreadyExists",
             "evaluationId")
    resource.call("DELETE", "/evaluations/eval-1", 204)
    error_of(resource.call("GET", "/evaluations/eval-1"), 404, "EvaluationNotFound")


@pytest.mark.parametrize("change, code, target", [
    ({"policies": [{"name": "x", "arguments": "--cb_explore_adf --bogus_flag"}]}, "InvalidEvaluationContract",
     "policies[0].arguments"),
    ({"policies": [{"name": "x", "arguments": "-q ::"}, {"name": "x", "arguments": "-q ::"}]},
     "DuplicateCustomPolicyNames", "policies[1].name"),
    ({"endTime": "2025-01-01T00:00:00Z"}, "InvalidEvaluationContract", "endTime"),
    ({"startTime": None}, "InvalidEvaluationContract", "startTime"),
    ({"name": ""}, "InvalidEvaluationContract", "name"),
])
def test_bad_evaluation_contracts_are_400_and_write_nothing(resource, db_path, change, code, target):
    contract = {"name": "n", "startTime": "2025-12-31T00:00:00Z", "endTime": "2026-01-02T00:00:00Z", **change}
    before = table_counts(db_path)
    error_of(resource.call("PUT", "/evaluations/e", json=contract), 400, code, target)
    assert table_counts(db_path) == before


def test_evaluation_pages_link_to_the_next(resource):
    contract = {"name": "n", "startTime": "2025-12-31T00:00:00Z", "endTime": "2026-01-02T00:00:00Z"}
    for i in range(3):
        resource.json("PUT", f"/evaluations/e{i}", 200, contract)
    page = resource.json("GET", "/evaluations?top=2", 200)  # top is how many in all, not the page size
    assert [e["id"] for e in page["value"]] == ["e0", "e1"] and page["nextLink"] is None
    page = resource.json("GET", "/evaluations?maxpagesize=2&api-version=2022-09-01-preview", 200)
    assert [e["id"] for e in page["value"]] == ["e0", "e1"] and "skip=2" in page["nextLink"]
    link = page["nextLink"].partition("/personalizer")[2]
    assert "api-version=2022-09-01-preview" in link
    follow = resource.json("GET", link, 200)
    assert [e["id"] for e in follow["value"]] == ["e2"] and follow["nextLink"] is None
    page = resource.json("GET", "/evaluations?top=2&maxpagesize=1", 200)
    assert [e["id"] for e in page["value"]] == ["e0"]
    follow = resource.json("GET", page["nextLink"].partition("/personalizer")[2], 200)
    assert [e["id"] for e in follow["value"]] == ["e1"] and follow["nextLink"] is None
    assert len(resource.json("GET", "/evaluations?filter=evaluationType eq 'Manual'", 200)["value"]) == 3
    assert resource.json("GET", "/evaluations?filter=metadata=evaluationType eq 'Auto'", 200)["value"] == []
    assert len(resource.json("GET", "/evaluations?filter=name eq 'n' and status ne 'Failed'", 200)["value"]) == 3
    error_of(resource.call("GET", "/evaluations?filter=drop table"), 400, "InvalidRequest", "filter")
    for i in range(3):
        wait_for_evaluation(resource, f"e{i}")


def test_oversized_bodies_are_413_in_personalizer_shape(resource):
    big = {"actions": [{"id": f"a{i}", "features": [{"text": "x" * 1000}]} for i in range(1200)]}
    error_of(resource.call("POST", "/rank", json=big), 413, "PayloadSizeExceeded")


def test_signed_export_and_model_import_round_trip(client, app, resource, learner, clock):
    """A model exported (plain or signed) imports back; its stored options become the settings."""
    resource.json("PUT", "/configurations/service", 200, {"rewardWaitTime": "PT5S"})
    for _ in range(5):
        resource.call("POST", f"/events/{resource.rank()['eventId']}/reward", 204, json={"value": 1})
    clock.advance(6)
    learner.run_once(force_publish=True)
    plain = resource.call("GET", "/model?api-version=2022-09-01-preview", 200).data
    signed = resource.call("GET", "/model?signed=true", 200)
    assert signed.mimetype == "application/zip" and signed.data[:2] == b"PK"
    other = Resource(client, app, "other", slots=1)
    other.call("PUT", "/model", 204, data=signed.data, content_type="application/octet-stream")
    store = app.extensions["silent"]["store"]
    assert store.latest_model("other")["model"] == plain  # the same model, now the other resource's
    assert client.get("/v1/experiments/other").get_json()["spec"]["slots"] == 10  # a slate model: multi-slot
    imported_from_vw = Policy(app.extensions["silent"]["service"].spec("news").policy_settings(), plain)
    imported_from_vw.close()
    resource.call("PUT", "/model", 204, data=plain)
    assert other.rank()["rewardActionId"] and resource.rank()["rewardActionId"]


@pytest.mark.parametrize("blob, code", [
    (b"not a model at all", "InvalidModelImportFormat"),
    (b"\x00" * 4096, "InvalidModelImportFormat"),
    (b"PK\x03\x04 a zip that is not one", "InvalidModelImportSignature"),
])
def test_bad_model_files_are_refused_and_replace_nothing(resource, db_path, blob, code):
    before = table_counts(db_path)
    error_of(resource.call("PUT", "/model", data=blob), 400, code, "model")
    after = table_counts(db_path)
    assert {**after, "app_secrets": 0} == {**before, "app_secrets": 0}  # the signing key may be made on first use


def test_a_tampered_signed_archive_is_refused(resource):
    import io
    import zipfile

    signed = resource.call("GET", "/model?signed=true", 200).data
    source, out = zipfile.ZipFile(io.BytesIO(signed)), io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name in source.namelist():
            data = source.read(name)
            archive.writestr(name, data + b" " if name == "model.vw" else data)
    error = error_of(resource.call("PUT", "/model", data=out.getvalue()), 400, "InvalidModelImportSignature")
    assert "digest" in error["message"]


# A --cb_explore_adf model saved with -b 30 (made once with vowpalwabbit 9.11.9): 274 bytes on disk whose weight
# table needs gigabytes of memory to load.
HUGE_MODEL = base64.b64decode(
    "BwAAADkuMTEuOQABAAAAAG0AAAAAAAAAAB4AAAAAAAAAAAAAAAAAAABMAAAAIC0tY2JfYWRmIC0tY2JfZXhwbG9yZV9hZGYgLS1jYl90eXBl"
    "IG10ciAtLWNzb2FhX2xkZiBtdWx0aWxpbmUgLS1jc29hYV9yYW5rAAQAAAD/3yZqAAAAAAAAAAAAAAAAAAAAAAEAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAIA/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAADwPw==")


def test_a_model_that_would_exhaust_memory_is_refused_before_anything_loads_it(resource):
    """Its header asks for a 30-bit weight table; the header is read in Python, past the allowlist's cap."""
    error = error_of(resource.call("PUT", "/model", data=HUGE_MODEL), 400, "InvalidModelImportFormat", "model")
    assert "30 bits" in error["message"]
    assert resource.rank()["rewardActionId"]  # the worker serves on


def with_stored_options(blob: bytes, options: str) -> bytes:
    """Return a model file whose header stores ``options`` instead of its own (VW acts on them as it loads)."""
    from bandit.model_import import header_options

    stored, _ = header_options(blob)
    old = struct.pack("<I", len(stored) + 1) + stored.encode() + b"\0"
    new = options.encode() + b"\0"
    return blob.replace(old, struct.pack("<I", len(new)) + new, 1)


def test_a_model_whose_header_options_touch_files_or_sockets_is_refused_unloaded(resource, tmp_path):
    """The options a model stores go through the VW-args allowlist before any VW reads the file."""
    plain = resource.call("GET", "/model", 200).data
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.2)
    target = tmp_path / "written"
    port = listener.getsockname()[1]
    for options, named in [(f" --cb_explore_adf --sendto 127.0.0.1:{port}", "--sendto"),
                           (f" --cb_explore_adf -p {target}", "-p (--predictions)"),
                           (f" --cb_explore_adf --readable_model {target}", "--readable_model"),
                           (" --cb_explore_adf --help", "--help")]:
        error = error_of(resource.call("PUT", "/model", data=with_stored_options(plain, options)), 400,
                         "InvalidModelImportFormat", "model")
        assert named in error["message"]
    with pytest.raises(socket.timeout):
        listener.accept()
    listener.close()
    assert not target.exists()
    assert resource.rank()["rewardActionId"]
