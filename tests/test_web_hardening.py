"""Inputs the audit answered with a 500: each is now a 4xx naming what is wrong."""
import pytest

from tests.test_experiments_personalizer import ACTIONS, Resource
from web.cli import cli
from web.json_input import MAX_DEPTH

HUGE = "99999999999999999999"


@pytest.mark.parametrize("path, field", [
    (f"/v1/experiments/x/report?from={HUGE}", "from"), ("/v1/experiments/x/report?to=1e20", "to"),
    ("/v1/experiments/x/report?from=-5", "from"),
])
def test_report_ranges_beyond_any_date_are_400(client, shop, path, field):
    shop.create("x")
    answer = client.get(path)
    assert answer.status_code == 400 and answer.get_json()["error"]["field"] == field


def test_ids_of_20_digits_are_404_not_overflow(client, shop):
    shop.create("x")
    assert client.get(f"/v1/experiments/x/evaluations/{HUGE}").status_code == 404


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 600, 1000, 5000])
def test_deeply_nested_json_is_refused_on_both_apis(client, app, levels):
    body = "[" * levels + "]" * levels
    native = client.post("/v1/experiments", data=body, content_type="application/json")
    assert native.status_code == 400 and native.get_json()["error"]["field"] == "body"
    resource = Resource(client, app)
    answer = resource.call("POST", "/rank", data='{"actions": ' + body + "}", content_type="application/json")
    assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "InvalidRankRequest"


def test_json_as_deep_as_allowed_is_read(client):
    nested = "{}"
    for _ in range(MAX_DEPTH - 2):  # with the body itself: MAX_DEPTH levels
        nested = '{"a": ' + nested + "}"
    answer = client.post("/v1/experiments", data='{"key": "deep", "name": ' + nested + "}",
                         content_type="application/json")
    assert answer.status_code == 400 and answer.get_json()["error"]["field"] == "name"  # parsed, then validated


def test_wrong_types_in_place_of_names_are_400(client, app):
    answer = client.post("/v1/experiments", json={"key": "k", "exploration": {"algorithm": []}})
    assert answer.status_code == 400 and answer.get_json()["error"]["field"] == "exploration.algorithm"
    resource = Resource(client, app, slots=2)
    rank = resource.call("POST", "/rank", json={"actions": [{"id": {}}, *ACTIONS]})
    assert rank.status_code == 400 and rank.get_json()["error"]["target"] == "actions[0].id"
    multi = resource.call("POST", "/multislot/rank", json={"actions": ACTIONS, "slots": [
        {"id": "a", "baselineAction": []}]})
    assert multi.status_code == 400 and multi.get_json()["error"]["target"] == "slots[0].baselineAction"
    listing = resource.call("GET", f"/evaluations?top={HUGE}&skip={HUGE}")
    assert listing.status_code == 400 and listing.get_json()["error"]["target"] == "top"


def test_revoking_a_key_id_of_20_digits_is_a_usage_error(runner, db_path):
    result = runner.invoke(cli, ["keys", "revoke", HUGE, "--db", db_path])
    assert result.exit_code == 2 and "Traceback" not in result.output and "KEY_ID" in result.output
