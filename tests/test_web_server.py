"""A real `silent serve` on 127.0.0.1: restart on the same file keeps everything."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class Server:
    def __init__(self, db, port):
        self.base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "SILENT_LEARNER_INTERVAL_SECONDS": "0.1", "SILENT_LEARNER_GRACE_SECONDS": "0",
               "SILENT_MODEL_REFRESH_SECONDS": "0.1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "web", "serve", "--db", db, "--port", str(port)],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if call(self.base, "GET", "/healthz")[0] == 200:
                    return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not start")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        output, _ = self.proc.communicate(timeout=30)
        return output


def wait_for(predicate, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not reached")


def test_restart_keeps_experiments_decisions_rewards_and_model(tmp_path):
    db = str(tmp_path / "shop.db")
    port = free_port()
    server = Server(db, port)
    try:
        spec = {"key": "home", "status": "running", "reward": {"wait_seconds": 0}, "learning": {"update_seconds": 0.1}}
        assert call(server.base, "POST", "/v1/experiments", spec)[0] == 201
        candidates = [{"id": f"sku-{i}", "features": {"price": i}} for i in range(4)]
        events = []
        for i in range(20):
            status, answer = call(server.base, "POST", "/v1/experiments/home/slate",
                                  {"unit": f"u{i}", "candidates": candidates})
            assert status == 200
            events.append(answer["event_id"])
        assert call(server.base, "POST", f"/v1/events/{events[0]}/rewards", {"type": "click", "id": "r"})[0] == 202
        model = wait_for(lambda: (call(server.base, "GET", "/v1/experiments/home")[1]["model"] or {})
                         .get("learned") == 20 and call(server.base, "GET", "/v1/experiments/home")[1]["model"])
    finally:
        output = server.stop()
    assert "stopped" in output

    server = Server(db, port)
    try:
        status, experiment = call(server.base, "GET", "/v1/experiments/home")
        assert experiment["status"] == "running"
        assert experiment["counts"] == {"decisions": 20, "rewards": 1}
        assert experiment["model"]["version"] >= model["version"] and experiment["model"]["learned"] == 20
        time.sleep(1.0)  # several learner passes: nothing may be learned again
        assert call(server.base, "GET", "/v1/experiments/home")[1]["model"]["learned"] == 20
        assert call(server.base, "POST", f"/v1/events/{events[0]}/rewards", {"type": "click", "id": "r"})[1]["duplicate"]
    finally:
        server.stop()
