"""Load benchmark: ``silent serve --workers 2`` against a bare Flask app under the same gunicorn.

Usage: python benchmarks/load.py [--seconds 10] [--connections 8] [--candidates 50]

Both servers run gunicorn sync workers with the same settings on 127.0.0.1 and
are driven by the same load generator (wrk when installed, else a keep-alive
Python client), alternating over several rounds in this run, so the ratio
compares like with like on this machine even when something else runs. Prints JSON: requests/s, p50 and p99 for each, their
ratio, resident memory per worker, bytes per logged decision and the learner's
events per second.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

BARE_APP = """
from flask import Flask, jsonify
app = Flask(__name__)

@app.post("/ok")
def ok():
    return jsonify({"ok": True})
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(port: int, path: str = "/healthz", timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not come up")


def post(port: int, path: str, body) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST" if not isinstance(body, tuple) else body[0], path,
                 json.dumps(body if not isinstance(body, tuple) else body[1]),
                 {"Content-Type": "application/json"})
    response = conn.getresponse()
    return json.loads(response.read() or b"{}")


def run_wrk(port: int, path: str, body: dict, seconds: int, connections: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                     f"wrk.body = {json.dumps(json.dumps(body))}\n")
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name,
                          f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True).stdout
    os.unlink(script.name)

    def millis(label):
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests_per_second": round(rps, 1), "p50_ms": round(millis("50"), 2), "p99_ms": round(millis("99"), 2),
            "non_2xx": int(errors.group(1)) if errors else 0, "generator": "wrk"}


def run_python_client(ports, path: str, body: dict, seconds: float, connections: int) -> dict:
    """A keep-alive client per connection, for machines without wrk; connections take ``ports`` in turn."""
    ports = [ports] if isinstance(ports, int) else ports
    payload = json.dumps(body)
    latencies, failed, lock, stop = [], [0], threading.Lock(), time.time() + seconds

    def client(port):
        conn, local, errors = None, [], 0
        while time.time() < stop:
            start = time.perf_counter()
            try:
                conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("POST", path, payload, {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                conn = None
                continue
            errors += not 200 <= response.status < 300
            local.append(time.perf_counter() - start)
        with lock:
            latencies.extend(local)
            failed[0] += errors

    threads = [threading.Thread(target=client, args=(ports[i % len(ports)],)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ms = np.array(latencies) * 1000
    return {"requests_per_second": round(len(ms) / seconds, 1), "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2), "non_2xx": failed[0], "generator": "python"}


def drive(port, path, body, seconds, connections) -> dict:
    runner = run_wrk if shutil.which("wrk") else run_python_client
    return runner(port, path, body, seconds, connections)


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def worker_rss_mb(master_pid: int) -> list[float]:
    """Resident memory of the gunicorn workers (children of the master)."""
    out = subprocess.run(["ps", "-o", "pid=,ppid=,rss=", "-A"], capture_output=True, text=True).stdout
    rows = [line.split() for line in out.splitlines()]
    return [round(int(rss) / 1024, 1) for pid, ppid, rss in rows if int(ppid) == master_pid]


def start_bare_app(folder: str) -> tuple[subprocess.Popen, int]:
    with open(os.path.join(folder, "bare_app.py"), "w") as fh:
        fh.write(BARE_APP)
    port = free_port()
    from web.serving import gunicorn_options

    options = gunicorn_options("127.0.0.1", port, 2)
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "--chdir", folder, "-w", "2", "-k", "sync",
                             "-b", options["bind"], "--keep-alive", str(options["keepalive"]),
                             "--timeout", str(options["timeout"]), "--log-level", "warning", "bare_app:app"])
    wait_until_up(port, "/nothing")
    return proc, port


def candidates(n: int) -> list[dict]:
    return [{"id": f"sku-{i}", "features": {"category": f"c{i % 8}", "price": 5.0 + i, "brand": f"b{i % 13}"}}
            for i in range(n)]


def start_silent(folder: str, n: int) -> tuple[subprocess.Popen, int, dict]:
    """Start ``silent serve --workers 2`` with a 1-slot and a 3-slot experiment, warmed up."""
    port = free_port()
    db = os.path.join(folder, "load.db")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(dir=folder)}
    proc = subprocess.Popen([sys.executable, "-m", "web", "serve", "--db", db, "--port", str(port), "--workers", "2"],
                            env=env, stdout=subprocess.DEVNULL)
    wait_until_up(port)
    context = {"user": {"segment": "returning", "country": "DE", "device": "mobile"}, "page": {"type": "home"}}
    bodies = {}
    for slots in (1, 3):
        key = f"load-{slots}"
        post(port, "/v1/experiments", {"key": key, "slots": slots, "status": "running", "reward": {"wait_seconds": 5}})
        body = bodies[slots] = {"context": context, "candidates": candidates(n)}
        for _ in range(200):  # warm: caches, a few rewards, a first model
            answer = post(port, f"/v1/experiments/{key}/slate", body)
            post(port, f"/v1/events/{answer['event_id']}/rewards", {"type": "click"})
    return proc, port, bodies


def median_run(runs: list[dict]) -> dict:
    """Pick the run with the median requests/s, and keep all rates for the record."""
    ordered = sorted(runs, key=lambda r: r["requests_per_second"])
    return {**ordered[len(ordered) // 2], "all_requests_per_second": [r["requests_per_second"] for r in runs],
            "all_p99_ms": [r["p99_ms"] for r in runs]}


def measure(folder: str, seconds: int, connections: int, n: int, rounds: int) -> dict:
    """Alternate bare, 1-slot and 3-slot runs so background load hits all three alike."""
    bare_proc, bare_port = start_bare_app(folder)
    silent_proc, silent_port, bodies = start_silent(folder, n)
    runs = {"bare": [], "slots_1": [], "slots_3": []}
    try:
        drive(bare_port, "/ok", {}, 2, connections)
        for slots in (1, 3):
            drive(silent_port, f"/v1/experiments/load-{slots}/slate", bodies[slots], 2, connections)
        for _ in range(rounds):
            runs["bare"].append(drive(bare_port, "/ok", {}, seconds, connections))
            for slots in (1, 3):
                runs[f"slots_{slots}"].append(
                    drive(silent_port, f"/v1/experiments/load-{slots}/slate", bodies[slots], seconds, connections))
        master = next(int(pid) for pid in subprocess.run(["pgrep", "-f", "web.serving gunicorn"],
                                                         capture_output=True, text=True).stdout.split())
        rss = worker_rss_mb(master)
    finally:
        stop(bare_proc)
        stop(silent_proc)
    ratios = {f"ratio_{k}": round(float(np.median([s["requests_per_second"] / b["requests_per_second"]
                                                   for s, b in zip(runs[k], runs["bare"])])), 3)
              for k in ("slots_1", "slots_3")}
    return {"bare": median_run(runs["bare"]), "silent_1_slot": median_run(runs["slots_1"]),
            "silent_3_slots": median_run(runs["slots_3"]), "ratio_1_slot": ratios["ratio_slots_1"],
            "ratio_3_slots": ratios["ratio_slots_3"], "worker_rss_mb": rss,
            "bytes_per_decision": bytes_per_decision(os.path.join(folder, "load.db"))}


def bytes_per_decision(db: str) -> dict:
    import sqlite3

    conn = sqlite3.connect(db)
    count, row_bytes = conn.execute(
        "SELECT count(*), sum(length(event_id) + length(experiment) + length(unit) + length(variant) + 16"
        " + length(context) + length(candidate_set) + length(excluded) + length(slate) + 16) FROM decisions"
    ).fetchone()
    set_bytes = conn.execute("SELECT coalesce(sum(length(candidates)), 0) FROM candidate_sets").fetchone()[0]
    conn.close()
    return {"decisions": count, "row_bytes": round(row_bytes / count, 1),
            "with_candidate_sets": round((row_bytes + set_bytes) / count, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--candidates", type=int, default=50)
    args = parser.parse_args()
    from benchmarks.rank import learner_throughput

    with tempfile.TemporaryDirectory() as folder:
        result = {"connections": args.connections, "candidates": args.candidates, "seconds": args.seconds,
                  "rounds": args.rounds, **measure(folder, args.seconds, args.connections, args.candidates,
                                                   args.rounds),
                  "learner": learner_throughput(20000, folder)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
