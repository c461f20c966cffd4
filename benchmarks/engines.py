"""SQLite against PostgreSQL: slate requests/s and p99 with 1 and 3 serving processes, and the learner on PostgreSQL.

Usage: python benchmarks/engines.py [--seconds 8] [--connections 8] [--candidates 50] [--decisions 5000]
       [--postgres postgresql://postgres@127.0.0.1:5432]

Each serving process is a ``silent serve --workers 1`` of its own on its own port, as separate hosts
would run it (the first with the learner, the others ``--no-learner``), all on one SQLite file or one
PostgreSQL database. A keep-alive client per connection spreads 1-slot slate requests over them.
Then the learner's events/s on PostgreSQL: decisions logged through the service, learned in one pass.
Prints JSON. Everything runs on this machine, so the client and the database share its cores.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

from tqdm import tqdm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.load import candidates, free_port, post, run_python_client, stop, wait_until_up  # noqa: E402


def serve(db: str, count: int, folder: str) -> list[tuple[subprocess.Popen, int]]:
    servers = []
    for i in range(count):
        port = free_port()
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(dir=folder)}
        args = [sys.executable, "-m", "web", "serve", "--db", db, "--port", str(port), "--workers", "1"]
        proc = subprocess.Popen(args + (["--no-learner"] if i else []), env=env, stdout=subprocess.DEVNULL,
                                cwd=folder)
        wait_until_up(port)
        servers.append((proc, port))
    return servers


def serving(db: str, processes: int, folder: str, args) -> dict:
    servers = serve(db, processes, folder)
    try:
        port = servers[0][1]
        post(port, "/v1/experiments", {"key": "load", "slots": 1, "status": "running", "reward": {"wait_seconds": 5}})
        body = {"context": {"user": {"segment": "returning", "country": "DE"}, "page": {"type": "home"}},
                "candidates": candidates(args.candidates)}
        run_python_client([p for _, p in servers], "/v1/experiments/load/slate", body, 2, args.connections)  # warm up
        return run_python_client([p for _, p in servers], "/v1/experiments/load/slate", body, args.seconds,
                                 args.connections)
    finally:
        for proc, _ in servers:
            stop(proc)


def learner_events_per_second(url: str, decisions: int) -> dict:
    from experiments.clock import VirtualClock
    from experiments.learner import Learner
    from experiments.service import Service
    from experiments.store import open_store

    store = open_store(url)
    clock = VirtualClock(start=time.time() - 3600)
    service = Service(store, clock)
    service.create_experiment({"key": "learn", "status": "running", "reward": {"wait_seconds": 1}})
    items = candidates(20)
    for i in tqdm(range(decisions), desc="logging", file=sys.stderr, disable=None):
        answer = service.decide("learn", {"context": {"user": {"segment": f"s{i % 5}"}}, "candidates": items})
        if i % 4 == 0:
            service.record_reward(answer["event_id"], {"type": "click", "item": answer["slate"][0]["id"]})
    clock.advance(10)
    learner = Learner(store, clock)
    started, learned = time.perf_counter(), 0
    while learned < decisions:
        learned += learner.run_once(force_publish=True).get("learn", 0)
    seconds = time.perf_counter() - started
    store.close()
    return {"decisions": decisions, "seconds": round(seconds, 2), "events_per_second": round(decisions / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--decisions", type=int, default=5000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    import psycopg

    admin = psycopg.connect(f"{args.postgres}/postgres", autocommit=True)
    result = {"connections": args.connections, "candidates": args.candidates, "seconds": args.seconds}
    with tempfile.TemporaryDirectory() as folder:
        for processes in (1, 3):
            result[f"sqlite_{processes}"] = serving(os.path.join(folder, f"bench-{processes}.db"), processes,
                                                    folder, args)
            name = f"silent_bench_{uuid.uuid4().hex[:8]}"
            admin.execute(f"CREATE DATABASE {name}")
            try:
                result[f"postgresql_{processes}"] = serving(f"{args.postgres}/{name}", processes, folder, args)
            finally:
                admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        name = f"silent_bench_{uuid.uuid4().hex[:8]}"
        admin.execute(f"CREATE DATABASE {name}")
        try:
            result["postgresql_learner"] = learner_events_per_second(f"{args.postgres}/{name}", args.decisions)
        finally:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
