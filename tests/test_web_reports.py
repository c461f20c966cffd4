"""Reports, evaluations and the report/export/evaluate CLI over a log made through the real API."""
import json
import time

import pytest
import vowpalwabbit

from tests.conftest import ITEMS, SEGMENTS, click_probability, table_counts
from web.cli import cli

ENGINES = ("sqlite", "postgresql")  # each test that uses the database runs on both engines


@pytest.fixture
def home(shop):
    shop.create("home", reward={"wait_seconds": 60}, traffic={"holdout": 0.3}, learning={"update_seconds": 1},
                exploration={"algorithm": "epsilon", "epsilon": 0.2})
    return shop


@pytest.fixture
def logged(home, rng):
    """300 page views over 2.5 virtual hours, 30% holdout, clicks from the synthetic click model."""
    shop = home
    for t in range(300):
        segment = SEGMENTS[t % 3]
        answer = shop.slate("home", unit=f"user-{t % 120}", context={"user": {"segment": segment}}, candidates=ITEMS)
        if rng.random() < click_probability(segment, answer["slate"][0]["id"]):
            shop.reward(answer["event_id"], type="click", id=f"click-{t}")
            if t % 10 == 0:
                shop.reward(answer["event_id"], type="click", id=f"click-{t}")  # a retried post
        shop.clock.advance(30)
        if t % 50 == 49:
            shop.learn()
    shop.clock.advance(60)
    shop.reward(answer["event_id"], type="purchase", value=5.0)  # arrives after the 60 s window
    shop.learn(seconds=60)
    return shop


def test_report_end_to_end(logged, client):
    response = client.get("/v1/experiments/home/report?interval=hour")
    assert response.status_code == 200
    report = response.get_json()
    variants = {v["variant"]: v for v in report["variants"]}
    assert set(variants) == {"bandit", "holdout"}
    assert variants["bandit"]["decisions"] + variants["holdout"]["decisions"] == 300
    assert variants["bandit"]["units"] + variants["holdout"]["units"] == 120
    assert report["lift"]["absolute"]["value"] > 0  # the bandit learns the best item per segment
    assert not report["sample_ratio"]["flagged"] and report["sample_ratio"]["expected_shares"] == [0.7, 0.3]
    assert [p["policy"] for p in report["off_policy"]] == ["learned", "learned-greedy", "uniform", "first-candidate"]
    assert report["off_policy_sample"]["decisions"] == 300
    assert len(report["time_series"]["buckets"]) == 3
    assert report["rewards"]["late"] == 1 and report["rewards"]["duplicate"] >= 1
    assert report["model_versions"]["latest"] == len(report["model_versions"]["published"])
    assert report["generated_at"] == "2026-01-01T02:32:00.000Z"  # the app's (virtual) clock


@pytest.mark.parametrize("query, field", [
    ("from=yesterday", "from"),
    ("to=2026-02-30T00:00:00Z", "to"),
    ("interval=week", "interval"),
    ("from=2026-01-02&to=2026-01-01", "to"),
])
def test_report_bad_parameters_get_a_400_naming_them(home, client, query, field):
    response = client.get(f"/v1/experiments/home/report?{query}")
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field


def test_report_range_and_unknown_experiment(logged, client):
    report = client.get("/v1/experiments/home/report?from=2026-01-01T01:00:00Z&to=2026-01-01T02:00:00Z").get_json()
    assert sum(v["decisions"] for v in report["variants"]) == 120
    assert client.get("/v1/experiments/nope/report").status_code == 404


def wait_until_finished(client, url, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(url).get_json()
        if body["status"] in ("done", "failed"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"{url} did not finish")


def test_evaluation_runs_in_the_background_then_get_reads_it(logged, client):
    response = client.post("/v1/experiments/home/evaluations",
                           json={"exploration": {"algorithm": "squarecb", "gamma_scale": 10}, "limit": 250})
    assert response.status_code == 202
    created = response.get_json()
    assert created["status"] in ("queued", "running", "done")
    assert created["settings"]["exploration"]["algorithm"] == "squarecb"
    body = wait_until_finished(client, f"/v1/experiments/home/evaluations/{created['id']}")
    assert body["status"] == "done", body["error"]
    assert body["progress"] == {"done": 250, "total": 250}
    result = body["result"]
    assert result["decisions"] == 250 and [p["policy"] for p in result["policies"]] == ["candidate", "live"]
    assert result["policies"][0]["args"].startswith("--cb_explore_adf --squarecb")
    assert result["policies"][1]["exploration"] == {"algorithm": "epsilon", "epsilon": 0.2}
    for policy in result["policies"]:
        assert policy["dr"]["low"] <= policy["dr"]["value"] <= policy["dr"]["high"]
    assert result["verdict"] in ("candidate better", "live better", "no clear difference")
    assert result["difference"]["dr"]["n"] == 250
    listed = client.get("/v1/experiments/home/evaluations").get_json()["evaluations"]
    assert [e["id"] for e in listed] == [created["id"]] and "result" not in listed[0]
    assert client.get("/v1/experiments/home/evaluations/999").status_code == 404


@pytest.mark.parametrize("body, field", [
    ({}, "exploration"),
    ({"exploration": {"algorithm": "thompson"}}, "exploration.algorithm"),
    ({"exploration": {"algorithm": "epsilon", "epsilon": 3}}, "exploration.epsilon"),
    ({"learning": {"learning_rate": -1}}, "learning.learning_rate"),
    ({"exploration": {"algorithm": "bag"}, "limit": 0}, "limit"),
    ({"exploration": {"algorithm": "bag"}, "slots": 2}, "slots"),
    ({"exploration": {"algorithm": "bag"}, "from": "whenever"}, "from"),
])
def test_evaluation_rejects_bad_requests_and_writes_nothing(home, client, db_path, body, field):
    before = table_counts(db_path)
    response = client.post("/v1/experiments/home/evaluations", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field
    assert table_counts(db_path) == before
    assert client.post("/v1/experiments/nope/evaluations", json={"exploration": {}}).status_code == 404


def test_cli_report_in_three_formats(logged, runner, db_path, tmp_path):
    result = runner.invoke(cli, ["report", "home", "--db", db_path])
    assert result.exit_code == 0, result.output
    assert "bandit" in result.output and "Lift of bandit over holdout" in result.output
    assert "Sample ratio (units)" in result.output and "uniform random" in result.output
    as_json = runner.invoke(cli, ["report", "home", "--db", db_path, "--format", "json", "--interval", "day"])
    assert json.loads(as_json.output)["time_series"]["interval"] == "day"
    page = tmp_path / "report.html"
    result = runner.invoke(cli, ["report", "home", "--db", db_path, "--format", "html", "-o", str(page),
                                 "--interval", "hour"])
    assert result.exit_code == 0, result.output
    html = page.read_text()
    assert html.startswith("<!doctype html>") and html.count("<svg") >= 2 and "Rewarded decisions per hour" in html
    bad = runner.invoke(cli, ["report", "home", "--db", db_path, "--from", "later"])
    assert bad.exit_code == 1 and "[from]" in bad.output


def test_cli_export_csv_and_dsjson(logged, runner, db_path, tmp_path):
    result = runner.invoke(cli, ["export", "home", "--db", db_path, "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert len(result.output.splitlines()) == 301
    path = tmp_path / "home.json"
    result = runner.invoke(cli, ["export", "home", "--db", db_path, "--format", "dsjson", "-o", str(path)])
    assert result.exit_code == 0, result.output
    ws = vowpalwabbit.Workspace(f"--dsjson --cb_explore_adf -q UA --quiet -d {path}")
    ws.run_parser()
    assert ws.get_weighted_examples() == 300
    ws.finish()


def test_cli_evaluate(logged, runner, db_path, tmp_path):
    spec = tmp_path / "squarecb.json"
    spec.write_text(json.dumps({"exploration": {"algorithm": "squarecb"}, "limit": 100}))
    result = runner.invoke(cli, ["evaluate", "home", "--spec", str(spec), "--db", db_path])
    assert result.exit_code == 0, result.output
    assert "replayed 100 decisions" in result.output and "candidate: squarecb" in result.output
    assert "live: epsilon (epsilon=0.2)" in result.output and "Candidate minus live" in result.output
    spec.write_text(json.dumps({"exploration": {"algorithm": "nope"}}))
    result = runner.invoke(cli, ["evaluate", "home", "--spec", str(spec), "--db", db_path])
    assert result.exit_code == 1 and "[exploration.algorithm]" in result.output
