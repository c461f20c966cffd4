"""``silent demo`` and ``silent simulate`` end to end through click's runner (and a live server for --url)."""
import json
import os
import sqlite3
import xml.etree.ElementTree as ET

from tests.live import Server, call
from web.cli import cli

CONTRACT = {"scenario", "events", "seed", "slots", "ctr", "normalized_lift", "learning_curve"}
RATES = {"bandit", "holdout", "uniform", "best_fixed", "oracle"}


def test_demo_runs_end_to_end_in_a_fresh_folder(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["demo", "--events", "1500"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "silent-demo/silent.db" in out
    assert "bandit clicks/view" in out and "1,351-1,500" in out
    assert "Normalized lift" in out and "oracle (best possible)" in out
    assert "lift " in out and "bandit " in out and "holdout " in out  # the report's headline
    chart = tmp_path / "silent-demo" / "learning-curve.svg"
    root = ET.fromstring(chart.read_text())
    assert root.tag.endswith("svg") and "bandit (measured)" in chart.read_text()
    conn = sqlite3.connect(tmp_path / "silent-demo" / "silent.db")
    try:
        assert conn.execute("SELECT count(*) FROM decisions WHERE experiment = 'home-recs'").fetchone()[0] == 1500
        assert conn.execute("SELECT count(*) FROM models").fetchone()[0] > 0
    finally:
        conn.close()

    again = runner.invoke(cli, ["demo", "--events", "200", "--scenario", "items"])
    assert again.exit_code == 0, again.output
    assert os.path.exists(tmp_path / "silent-demo-2" / "silent.db")  # never reuses an earlier demo's folder
    taken = runner.invoke(cli, ["demo", "--events", "200", "--folder", "silent-demo"])
    assert taken.exit_code == 1 and "already holds a demo database" in taken.output


def test_simulate_json_prints_exactly_the_contract(runner, tmp_path):
    db = str(tmp_path / "sim.db")
    result = runner.invoke(cli, ["simulate", "--scenario", "strategies", "--events", "1500", "--seed", "2", "--json",
                                 "--db", db])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # one object, nothing else on stdout
    assert CONTRACT <= set(data)
    assert (data["scenario"], data["events"], data["seed"], data["slots"]) == ("strategies", 1500, 2, 1)
    assert set(data["ctr"]) == RATES and all(isinstance(data["ctr"][k], float) for k in RATES)
    ctr = data["ctr"]
    lift = (ctr["bandit"] - ctr["uniform"]) / (ctr["oracle"] - ctr["uniform"])
    assert abs(data["normalized_lift"] - lift) < 1e-4
    assert all(set(p) >= {"events", "ctr"} for p in data["learning_curve"])
    assert data["learning_curve"][-1]["events"] == 1500
    assert os.path.exists(db)  # --db keeps the database

    again = runner.invoke(cli, ["simulate", "--scenario", "strategies", "--events", "1500", "--seed", "2", "--json"])
    assert json.loads(again.stdout) == data  # a temporary database, the same result


def test_simulate_prints_a_readable_summary_and_rejects_bad_options(runner):
    result = runner.invoke(cli, ["simulate", "--events", "300"])
    assert result.exit_code == 0, result.output
    assert "items: 300 page views, seed 0, in-process" in result.stdout and "Normalized lift" in result.stdout
    bad = runner.invoke(cli, ["simulate", "--scenario", "nope"])
    assert bad.exit_code == 2 and "nope" in bad.output


def test_simulate_drives_a_running_server_over_http(runner, tmp_path):
    server = Server(str(tmp_path / "live.db"))
    try:
        args = ["simulate", "--url", server.base, "--events", "300", "--scenario", "slate", "--json"]
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["mode"] == "http" and data["slots"] == 3 and sum(data["decisions"].values()) == 300
        again = runner.invoke(cli, args)  # the experiment exists now: reused, fresh event ids
        assert again.exit_code == 0, again.output
        status, experiment = call(server.base, "GET", "/v1/experiments/sim-slate")
        assert status == 200 and experiment["counts"]["decisions"] == 600
        assert experiment["counts"]["rewards"] == sum(data["outcomes"].values()) + sum(
            json.loads(again.stdout)["outcomes"].values())
        wrong = runner.invoke(cli, ["simulate", "--url", server.base, "--events", "5", "--scenario", "items",
                                    "--key", "sim-slate"])
        assert wrong.exit_code == 1 and "exists with other settings" in wrong.output
    finally:
        server.stop()
    refused = runner.invoke(cli, ["simulate", "--url", "ftp://nowhere", "--events", "5"])
    assert refused.exit_code == 1 and "url" in refused.output
