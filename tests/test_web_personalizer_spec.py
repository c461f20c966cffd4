"""Personalizer's own example bodies, per API version, as raw HTTP through the Flask test client.

The examples (tests/personalizer_spec_examples.py) are copied from the published specifications; each test
sends them the way a client of that version does (path version for v1.0 and v1.1, ``api-version`` for
2022-09-01-preview) and checks the answer against the spec's example answer where it is deterministic, and
against its shape where it depends on the model or the log.
"""
import time

import numpy as np
import pytest

from experiments.clock import VirtualClock
from tests import personalizer_spec_examples as spec
from web.personalizer import personalizer

IN_EXAMPLE_RANGE = 1_545_264_000.0  # 2018-12-20T00:00:00Z, inside the examples' evaluation range


@pytest.fixture
def clock():
    return VirtualClock(IN_EXAMPLE_RANGE)


class Client:
    """One resource's key and a version prefix for every call."""

    def __init__(self, app, prefix="", query="", experiment="news"):
        with app.app_context():
            key = personalizer().create_resource(experiment)["key"]
        self.http, self.prefix, self.query = app.test_client(), prefix, query
        self.headers = {"Ocp-Apim-Subscription-Key": key}

    def call(self, method, path, expect, body=None):
        sep = "&" if "?" in path else "?"
        url = f"/personalizer{self.prefix}{path}" + (sep + self.query if self.query else "")
        response = self.http.open(url, method=method, headers=self.headers, json=body)
        assert response.status_code == expect, response.get_data(as_text=True)
        return response


def check_rank(answer: dict, example: dict, request: dict) -> None:
    """The example's answer depends on its model; ours must have its shape and its fixed parts."""
    assert set(answer) == set(example) and answer["eventId"] == example["eventId"]
    ranking = answer["ranking"]
    assert sorted(r["id"] for r in ranking) == sorted(a["id"] for a in request["actions"])
    assert {r["id"]: r["probability"] for r in ranking}["SportsArticle"] == 0  # excluded, as in the example
    assert answer["rewardActionId"] == ranking[0]["id"] != "SportsArticle"
    assert sum(r["probability"] for r in ranking) == pytest.approx(1.0)


def wait_done(client, path, statuses=("pending", "Running")):
    deadline = time.time() + 30
    while (document := client.call("GET", path, 200).get_json())["status"] in statuses:
        assert time.time() < deadline, document
        time.sleep(0.05)
    return document


def rank_and_reward(client, clock, n=40):
    for t in range(n):
        answer = client.call("POST", "/rank", 201, {**spec.V1_1_RANK, "eventId": f"e{t}",
                                                    "contextFeatures": [{"timeOfDay": ["am", "pm"][t % 2]}]})
        client.call("POST", f"/events/e{t}/reward", 204,
                    {"value": float(answer.get_json()["rewardActionId"] == "EntertainmentArticle")})
        clock.advance(30)
    clock.advance(700)  # every reward window (10 minutes) has closed


def test_v1_0_examples(app, clock):
    client = Client(app, "/v1.0")
    check_rank(client.call("POST", "/rank", 201, spec.V1_0_RANK).get_json(), spec.V1_0_RANK_RESPONSE, spec.V1_0_RANK)
    client.call("POST", f"/events/{spec.V1_0_REWARD_EVENT_ID}/reward", 204, spec.V1_0_REWARD)
    client.call("POST", f"/events/{spec.V1_0_REWARD_EVENT_ID}/activate", 204)
    updated = client.call("PUT", "/configurations/service", 200, spec.V1_0_SERVICE_CONFIGURATION).get_json()
    assert {k: updated[k] for k in spec.V1_0_SERVICE_CONFIGURATION} == spec.V1_0_SERVICE_CONFIGURATION
    assert client.call("GET", "/configurations/service", 200).get_json() == updated
    assert set(client.call("GET", "/logs/properties", 200).get_json()["dateRange"]) == {"from", "to"}
    assert set(client.call("GET", "/model/properties", 200).get_json()) == {"creationTime", "lastModifiedTime"}
    assert client.call("PUT", "/configurations/policy", 200, spec.V1_0_POLICY).get_json() == spec.V1_0_POLICY
    assert client.call("GET", "/configurations/policy", 200).get_json() == spec.V1_0_POLICY  # --dsjson and all


@pytest.mark.parametrize("extra, named", [("-f /tmp/model.vw", "-f (--final_regressor)"),
                                          ("--extra_metrics /tmp/m.json", "--extra_metrics"),
                                          ("--sendto 127.0.0.1:26542", "--sendto"), ("--help", "--help")])
def test_retired_flags_are_ignored_but_files_sockets_and_exits_stay_refused(app, clock, extra, named):
    client = Client(app, "/v1.0")
    policy = {**spec.V1_0_POLICY, "arguments": f"{spec.V1_0_POLICY['arguments']} {extra}"}
    refused = client.call("PUT", "/configurations/policy", 400, policy).get_json()["error"]
    assert refused["code"] == "InvalidPolicyConfiguration" and named in refused["message"]
    contract = {**spec.V1_0_EVALUATION, "policies": [{**spec.V1_0_EVALUATION["policies"][0],
                                                      "arguments": policy["arguments"]}]}
    refused = client.call("POST", "/evaluations", 400, contract).get_json()["error"]
    assert refused["code"] == "InvalidEvaluationContract" and refused["target"] == "policies[0].arguments"
    assert client.call("GET", "/evaluations", 200).get_json() == []


def test_v1_0_evaluations(app, clock):
    client = Client(app, "/v1.0")
    rank_and_reward(client, clock)
    created = client.call("POST", "/evaluations", 201, spec.V1_0_EVALUATION)  # its --dsjson is ignored
    document = created.get_json()
    assert created.headers["Location"].endswith(f"/personalizer/v1.0/evaluations/{document['id']}")
    assert document["status"] in spec.V1_0_EVALUATION_STATUSES and document["name"] == "myFirstEvaluation"
    assert [p["name"] for p in document["policyResults"]] == ["Custom Learning settings 1"]
    done = wait_done(client, f"/evaluations/{document['id']}")
    assert done["status"] == "completed" and done["featureImportance"] == []
    assert [p["name"] for p in done["policyResults"]] == ["Online", "Custom Learning settings 1"]
    for result in done["policyResults"]:
        assert set(result["totalSummary"]) == spec.V1_0_SUMMARY_KEYS
        assert result["totalSummary"]["ipsEstimatorDenominator"] == 40
        assert isinstance(result["totalSummary"]["confidenceInterval"], float)
        assert result["summary"] and all(set(s) == spec.V1_0_SUMMARY_KEYS for s in result["summary"])
        assert sum(s["ipsEstimatorDenominator"] for s in result["summary"]) == 40
        assert result["summary"][0]["aggregateTimeWindow"] == "06:00:00"  # a month: 6-hour windows, as time spans
    listed = client.call("GET", "/evaluations", 200).get_json()
    assert [e["id"] for e in listed] == [document["id"]]  # a bare array, as v1 clients read it
    client.call("DELETE", f"/evaluations/{document['id']}", 204)


def test_v1_1_preview_3_examples(app, clock):
    client = Client(app, "/v1.1-preview.3")
    check_rank(client.call("POST", "/rank", 201, spec.V1_1_RANK).get_json(), spec.V1_0_RANK_RESPONSE, spec.V1_1_RANK)
    answer = client.call("POST", "/multislot/rank", 201, spec.V1_1_MULTISLOT_RANK).get_json()
    assert answer["eventId"] == spec.V1_1_MULTISLOT_RANK["eventId"]
    assert [s["id"] for s in answer["slots"]] == ["Main Article", "Side Bar"]
    assert answer["slots"][0]["rewardActionId"] != "SportsArticle"
    client.call("POST", "/multislot/events/id/reward", 204, spec.V1_1_MULTISLOT_REWARD)  # the example's id
    client.call("POST", "/multislot/events/id/activate", 204)
    updated = client.call("PUT", "/configurations/service", 200, spec.V1_1_SERVICE_CONFIGURATION).get_json()
    echoed = {k: v for k, v in spec.V1_1_SERVICE_CONFIGURATION.items() if k != "lastConfigurationEditDate"}
    assert {k: updated[k] for k in echoed} == echoed  # the edit date is the server's own


def test_v1_1_preview_3_evaluations_and_apply(app, clock):
    client = Client(app, "/v1.1-preview.3")
    rank_and_reward(client, clock)
    contract = {**spec.V1_0_EVALUATION, "policies": [{"name": "online", "arguments": "--cb_explore_adf -q ::"}]}
    document = client.call("POST", "/evaluations", 201, contract).get_json()
    done = wait_done(client, f"/evaluations/{document['id']}")
    assert set(done) == spec.V1_1_EVALUATION_KEYS | {"jobId"} and done["status"] == "completed"
    assert done["evaluationType"] == "Manual" and done["optimalPolicy"] in ("Online", "online")
    for result in done["policyResults"]:
        assert result["policySource"] in ("Online", "Custom")
        assert all(set(s) == spec.V1_1_SUMMARY_KEYS for s in result["summary"] + [result["totalSummary"]])
        assert result["summary"][0]["aggregateTimeWindow"] == "PT6H"
    client.call("POST", "/configurations/applyFromEvaluation", 204,
                {**spec.V1_1_APPLY, "evaluationId": document["id"]})
    assert client.call("GET", "/configurations/policy", 200).get_json()["name"] == "online"
    missing = client.call("POST", "/configurations/applyFromEvaluation", 404, spec.V1_1_APPLY)
    assert missing.get_json()["error"]["code"] == "EvaluationNotFound"


def test_2022_09_01_preview_examples(app, clock):
    client = Client(app, query="api-version=2022-09-01-preview")
    check_rank(client.call("POST", "/rank", 201, spec.V2022_RANK).get_json(), spec.V1_0_RANK_RESPONSE, spec.V2022_RANK)
    client.call("POST", "/events/id/reward", 204, {"value": 1})
    rank_and_reward(client, clock)
    client.call("PUT", "/evaluations/id", 200, spec.V2022_EVALUATION)
    query = "/evaluations/id?startTime=2018-12-19T00:00:00Z&endTime=2019-01-19T00:00:00Z&intervalInMinutes=60"
    done = wait_done(client, query)
    assert spec.V2022_EVALUATION_KEYS <= set(done) and done["status"] == "Succeeded"
    for result in done["content"]["value"]:
        assert set(result) == spec.V2022_RESULT_KEYS and len(result["summary"]["confidenceInterval"]) == 2
        assert result["timeseries"]["data"] and result["timeseries"]["data"][-1]["expectedReward"] is not None
    listed = client.call("GET", "/evaluations", 200).get_json()
    assert [e["id"] for e in listed["value"]] == ["id"] and listed["nextLink"] is None


IN_FEATURE_IMPORTANCE_RANGE = 1_547_337_600.0  # 2019-01-13T00:00:00Z, inside FeatureImportances_Create's range
SEGMENT_BEST = {"new": "NewsArticle", "returning": "SportsArticle", "loyal": "EntertainmentArticle"}


def shop_with_known_drivers(client, clock, n=240, seed=7):
    """Rewards depend on the user's segment alone; a session id and the hour are noise."""
    rng = np.random.default_rng(seed)
    for t in range(n):
        segment = list(SEGMENT_BEST)[t % 3]
        context = [{"user": {"segment": segment}}, {"session": {"id": f"s{rng.integers(1 << 40)}"}},
                   {"hour": int(rng.integers(24))}]
        answer = client.call("POST", "/rank", 201, {"contextFeatures": context, "actions": spec.V1_1_RANK["actions"],
                                                    "eventId": f"fi{t}"}).get_json()
        client.call("POST", f"/events/fi{t}/reward", 204,
                    {"value": float(answer["rewardActionId"] == SEGMENT_BEST[segment])})
        clock.advance(5)
    clock.advance(700)


def test_2022_09_01_preview_feature_importances(app, clock):
    client = Client(app, query="api-version=2022-09-01-preview")
    clock.advance(IN_FEATURE_IMPORTANCE_RANGE - clock.now())
    empty = client.call("PUT", "/featureImportances/id", 400, spec.V2022_FEATURE_IMPORTANCE)
    assert empty.get_json()["error"]["code"] == "NoLogsExistInDateRange"
    shop_with_known_drivers(client, clock)
    client.call("PUT", "/featureImportances/id", 200, spec.V2022_FEATURE_IMPORTANCE)
    again = client.call("PUT", "/featureImportances/id", 400, spec.V2022_FEATURE_IMPORTANCE)
    assert again.get_json()["error"]["code"] == "FeatureImportanceAlreadyExists"
    done = wait_done(client, "/featureImportances/id")
    assert set(done) == spec.V2022_FEATURE_IMPORTANCE_KEYS and done["status"] == "Succeeded", done
    scores = done["featureScores"]
    assert all(set(s) == spec.V2022_FEATURE_SCORE_KEYS for s in scores) and scores[0]["score"] == 1.0
    assert [s["score"] for s in scores] == sorted((s["score"] for s in scores), reverse=True)
    rank = {(s["namespace"], s["featureName"]): i for i, s in enumerate(scores)}
    assert rank[("user", "segment")] == 0  # the one feature the rewards depend on comes first
    assert {("session", "id"), ("contextFeatures", "hour"), ("action", "id"), ("actionFeatures", "type")} <= set(rank)

    clock.advance(60)
    client.call("PUT", "/featureImportances/second", 200, {**spec.V2022_FEATURE_IMPORTANCE, "name": "second"})
    page = client.call("GET", "/featureImportances?maxpagesize=1", 200).get_json()
    assert set(page) == spec.V2022_FEATURE_IMPORTANCE_LIST_KEYS and [d["id"] for d in page["value"]] == ["second"]
    assert set(page["value"][0]) <= spec.V2022_FEATURE_IMPORTANCE_DETAILS_KEYS | {"description"}
    rest = client.http.get(page["nextLink"], headers=client.headers).get_json()
    assert [d["id"] for d in rest["value"]] == ["id"] and rest["nextLink"] is None
    wait_done(client, "/featureImportances/second")

    bad = client.call("PUT", "/featureImportances/third", 400, {**spec.V2022_FEATURE_IMPORTANCE,
                                                                "endTime": "2019-01-01T00:00:00Z"})
    assert bad.get_json()["error"] == {"code": "InvalidContract", "message": "endTime: must be later than startTime",
                                       "target": "endTime"}
    client.call("DELETE", "/featureImportances/id", 204)
    gone = client.call("GET", "/featureImportances/id", 404)
    assert gone.get_json()["error"]["code"] == "FeatureImportanceNotFound"

    store = app.extensions["silent"]["store"]  # three jobs still running hold their threads: a fourth waits
    for i in range(3):
        store.conn.execute("INSERT INTO personalizer_feature_importances (experiment, id, name, start_time, end_time,"
                           " status, done, total, created_at, updated_at) VALUES ('news', ?, 'busy', 0, 1, 'running',"
                           " 0, 0, ?, ?)", (f"busy{i}", clock.now(), clock.now()))
    busy = client.call("PUT", "/featureImportances/fourth", 400, spec.V2022_FEATURE_IMPORTANCE)
    assert busy.get_json()["error"]["code"] == "OperationNotAllowed"
