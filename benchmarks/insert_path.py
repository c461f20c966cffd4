"""The PostgreSQL insert path in-process: decisions/s by commit setting, candidate-set case and thread count.

Usage: python benchmarks/insert_path.py [--seconds 2] [--rounds 3] [--candidates 50]
       [--server postgresql://postgres@127.0.0.1:5432]

``Service.decide`` (decision committed, as in serving) with ``synchronous_commit``
on and off (set in the URL, which the store then leaves alone), the candidate set
known (only its hash is written) or new on every decision, on 1 and 8 threads.
The cases take turns within each round, so a busy machine weighs on all alike;
medians over the rounds. ``benchmarks/engines.py`` measures the same over HTTP.
Prints JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid

import numpy as np
import psycopg
from tqdm import tqdm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

CONTEXT = {"user": {"segment": "returning", "country": "DE", "device": "mobile"}, "page": {"type": "home"}}
SLOW = "?options=-csynchronous_commit%3Don"
FAST = "?options=-csynchronous_commit%3Doff"


def candidates(n: int) -> list[dict]:
    return [{"id": f"sku-{i}", "features": {"category": f"c{i % 8}", "price": 5.0 + i, "brand": f"b{i % 13}"}}
            for i in range(n)]


class Databases:
    """Fresh PostgreSQL databases for the run, dropped at its end."""

    def __init__(self, server: str):
        self.server, self.names = server, []

    def fresh(self, options: str = "") -> str:
        name = f"silent_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(f"{self.server}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        self.names.append(name)
        return f"{self.server}/{name}{options}"

    def close(self) -> None:
        with psycopg.connect(f"{self.server}/postgres", autocommit=True) as conn:
            for name in self.names:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def insert_path(databases: Databases, seconds: float, n: int, rounds: int) -> list[dict]:
    """Decisions committed per second in-process, per commit setting, candidate-set case and thread count.

    The cases take turns within each round (medians over the rounds), so a busy
    machine weighs on all of them alike.
    """
    from experiments.clock import DatabaseClock
    from experiments.service import Service
    from experiments.store import open_store

    database = databases.fresh()
    services = {}
    for sync, options in (("on", SLOW), ("off", FAST)):
        store = open_store(database + options)
        services[sync] = Service(store, DatabaseClock(store))
        services[sync].create_experiment({"key": f"e-{sync}", "status": "running", "reward": {"wait_seconds": 5}})
    base = candidates(n)
    cases = [(sync, new_sets, threads) for sync in ("on", "off") for new_sets in (False, True) for threads in (1, 8)]
    runs: dict = {case: [] for case in cases}
    for round_ in tqdm(range(rounds), desc="insert path", leave=False):
        for sync, new_sets, threads in cases:
            service, counts, latencies = services[sync], [], []
            end = time.perf_counter() + seconds

            def run(worker: int) -> None:
                done, own = 0, []
                while time.perf_counter() < end:
                    tag = f"{round_}-{worker}-{done}"
                    cands = [{**c, "id": f"{c['id']}-{tag}"} for c in base] if new_sets else base
                    start = time.perf_counter()
                    service.decide(f"e-{sync}", {"unit": f"u{tag}", "context": CONTEXT, "candidates": cands})
                    own.append(time.perf_counter() - start)
                    done += 1
                counts.append(done)
                latencies.extend(own)

            pool = [threading.Thread(target=run, args=(w,)) for w in range(threads)]
            for t in pool:
                t.start()
            for t in pool:
                t.join()
            runs[(sync, new_sets, threads)].append((sum(counts) / seconds, float(np.percentile(latencies, 99))))
    for service in services.values():
        service.store.close()
    return [{"synchronous_commit": sync, "candidate_set": "new each time" if new_sets else "known",
             "threads": threads, "decisions_per_second": round(float(np.median([r for r, _ in runs[case]])), 1),
             "p99_ms": round(float(np.median([p for _, p in runs[case]])) * 1000, 2),
             "all_decisions_per_second": [round(r, 1) for r, _ in runs[case]]}
            for case in cases for sync, new_sets, threads in [case]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--server", default=os.environ.get("SILENT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432"))
    args = parser.parse_args()
    databases = Databases(args.server)
    try:
        cases = insert_path(databases, args.seconds, args.candidates, args.rounds)
    finally:
        databases.close()
    print(json.dumps({"candidates": args.candidates, "seconds": args.seconds, "rounds": args.rounds,
                      "cores": os.cpu_count(), "cases": cases}, indent=2))


if __name__ == "__main__":
    main()
