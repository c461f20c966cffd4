"""The deployment files: the image builds and serves where Docker can, the unit and compose commands are ones
``silent`` accepts, and the Grafana dashboard asks only for metrics a live ``silent serve`` exports."""
import configparser
import json
import pathlib
import re
import shlex
import shutil
import subprocess
import time
import urllib.request
import uuid

import pytest
import yaml

from tests.conftest import ITEMS
from tests.live import Server, call, free_port, wait_for
from web.cli import cli

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROMQL_WORDS = {"sum", "max", "min", "avg", "count", "rate", "irate", "increase", "histogram_quantile", "by",
                "without", "and", "or", "unless", "on", "ignoring", "group_left", "group_right"}
ADDED_BY_PROMETHEUS = {"job", "instance"}


def serve_args(command: list[str]) -> list[str]:
    """Check that ``silent serve ...`` parses as the CLI would parse it; return its arguments."""
    assert command[0] == "serve", command
    context = cli.commands["serve"].make_context("serve", list(command[1:]))
    assert context.params["host"] and context.params["db"], context.params
    return command


def test_the_image_the_unit_and_compose_run_silent_serve_with_options_it_accepts():
    dockerfile = (ROOT / "Dockerfile").read_text()
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (.*)$", dockerfile, re.M).group(1))
    command = json.loads(re.search(r"^CMD (.*)$", dockerfile, re.M).group(1))
    assert entrypoint == ["silent"] and serve_args(command)[serve_args(command).index("--db") + 1] == "/data/silent.db"
    assert re.search(r"^USER silent$", dockerfile, re.M) and re.search(r"^FROM python:3\.\d+-slim$", dockerfile, re.M)
    assert 'VOLUME /data' in dockerfile

    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    service = compose["services"]["silent"]
    command = serve_args(service["command"])
    database = command[command.index("--db") + 1]
    assert database == "postgresql://silent:silent@postgres:5432/silent"  # the service beside it, by its name
    postgres = compose["services"]["postgres"]
    assert service["depends_on"] == {"postgres": {"condition": "service_healthy"}} and postgres["healthcheck"]
    env = postgres["environment"]
    assert database == f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@postgres:5432/{env['POSTGRES_DB']}"
    assert "postgres-data:/var/lib/postgresql/data" in postgres["volumes"] and "postgres-data" in compose["volumes"]
    assert "silent-data:/data" in service["volumes"] and "silent-data" in compose["volumes"]
    assert service["environment"]["SILENT_SECURE_COOKIES"] in ("true", "false")

    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read_string((ROOT / "deploy" / "silent.service").read_text())
    exec_start = shlex.split(unit["Service"]["ExecStart"])
    assert exec_start[0].endswith("/silent") and serve_args(exec_start[1:])
    assert unit["Service"]["User"] == "silent" and unit["Service"]["KillMode"] == "mixed"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def exported(text: str) -> dict[str, set[str]]:
    """Metric names of a Prometheus text exposition, with the label names each carries."""
    found: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, rest = line.partition("{")
            name = name.split()[0]
            labels = set(re.findall(r'(\w+)="', rest.split("}")[0])) if rest else set()
            found.setdefault(name, set()).update(labels)
    return found


def queried(expr: str) -> tuple[set[str], set[str]]:
    """The metric names and label names one PromQL expression of the dashboard uses."""
    labels = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"", expr))
    for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        labels |= {name.strip() for name in group.split(",") if name.strip()}
    bare = re.sub(r'"[^"]*"', "", expr)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", bare)
    bare = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", bare)
    names = {word for word in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", bare) if word not in PROMQL_WORDS}
    return names, labels


def test_every_metric_the_grafana_dashboard_queries_is_exported(tmp_path):
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "silent.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    exprs += [v["query"]["query"].replace("label_values(", "").split(",")[0]
              for v in dashboard["templating"]["list"] if v["type"] == "query"]
    assert len(exprs) >= 10
    server = Server(str(tmp_path / "shop.db"))
    try:
        base = server.base
        assert call(base, "POST", "/v1/experiments", {"key": "home-recs", "status": "running",
                                                      "reward": {"wait_seconds": 1}})[0] == 201
        status, answer = call(base, "POST", "/v1/experiments/home-recs/slate", {"unit": "u1", "candidates": ITEMS})
        assert status == 200
        assert call(base, "POST", f"/v1/events/{answer['event_id']}/rewards",
                    {"type": "click", "item": answer["slate"][0]["id"]})[0] == 202
        call(base, "GET", "/v1/experiments/nope")  # a 404 for the error panel
        text = wait_for(lambda: (lambda t: "silent_model_version{" in t and t)(
            urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()))
    finally:
        server.stop()
    metrics = exported(text)
    for expr in exprs:
        names, labels = queried(expr)
        assert names, expr
        for name in names:
            assert name in metrics, f"{name} (in {expr}) is not in /metrics"
            missing = labels - metrics[name] - ADDED_BY_PROMETHEUS - {"le"}
            assert not missing, f"{name} has no label {missing} (in {expr})"


def docker_unavailable() -> str | None:
    """Why this machine cannot build and run images, or None when it can."""
    if shutil.which("docker") is None:
        return "no docker command on this machine"
    probe = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                           timeout=60)
    if probe.returncode != 0:
        return "the Docker daemon is not reachable: " + (probe.stderr.strip().splitlines() or ["?"])[-1]
    return None


def docker(*args, check=True, timeout=900) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    assert not check or result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-2000:])
    return result


def test_the_image_builds_runs_as_non_root_and_serves_from_its_volume():
    reason = docker_unavailable()
    if reason:
        pytest.skip(reason)
    tag, volume, name = f"silent-test-{uuid.uuid4().hex[:8]}", f"silent-test-{uuid.uuid4().hex[:8]}", None
    try:
        docker("build", "-t", tag, str(ROOT), timeout=1800)
        key = docker("run", "--rm", "-v", f"{volume}:/data", tag, "keys", "create", "--role", "admin",
                     "--db", "/data/silent.db").stdout.split()[0]
        assert key.startswith("sk_admin_")
        port = free_port()
        name = docker("run", "-d", "--init", "-p", f"127.0.0.1:{port}:8000", "-v", f"{volume}:/data",
                      tag).stdout.strip()
        base = f"http://127.0.0.1:{port}"

        def healthy():
            try:
                return urllib.request.urlopen(base + "/healthz", timeout=2).status == 200
            except OSError:
                return False

        wait_for(healthy, timeout=60)
        request = urllib.request.Request(base + "/v1/experiments", method="POST", headers={
            "Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            data=json.dumps({"key": "home-recs", "status": "running"}).encode())
        assert urllib.request.urlopen(request, timeout=10).status == 201
        assert docker("exec", name, "id", "-u").stdout.strip() != "0"
        started = time.time()
        docker("stop", "-t", "60", name)
        assert time.time() - started < 55  # SIGTERM stopped it; nothing had to be killed
        assert docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip() == "0"
        listed = docker("run", "--rm", "-v", f"{volume}:/data", tag, "experiments", "list",
                        "--db", "/data/silent.db").stdout
        assert "home-recs" in listed  # the database outlived the container in its volume
    finally:
        if name:
            docker("rm", "-f", name, check=False)
        docker("volume", "rm", "-f", volume, check=False)
        docker("image", "rm", "-f", tag, check=False)
