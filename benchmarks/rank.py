"""Measure in-process ``decide`` latency and the learner's throughput; print JSON.

Usage: python benchmarks/rank.py [--decisions 2000]
Each case runs against a fresh SQLite file (decision committed, as in serving)
with a model trained on a few hundred events, so VW does real work. The learner is
timed twice over the same kind of log, with the drift watch off and on.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
from tqdm import tqdm

from experiments.clock import VirtualClock
from experiments.learner import Learner
from experiments.service import Service
from experiments.store import Store


def candidates(n: int) -> list[dict]:
    return [{"id": f"sku-{i}", "features": {"category": f"c{i % 8}", "price": 5.0 + i, "brand": f"b{i % 13}"}}
            for i in range(n)]


def context(i: int) -> dict:
    return {"user": {"segment": f"s{i % 4}", "country": "DE", "device": "mobile"}, "page": {"type": "home"}}


def run_case(n: int, slots: int, decisions: int, folder: str) -> dict:
    clock = VirtualClock()
    store = Store(os.path.join(folder, f"rank-{n}-{slots}.db"))
    service = Service(store, clock, model_refresh_seconds=1e9, spec_refresh_seconds=1e9)
    key = f"bench-{n}-{slots}"
    service.create_experiment({"key": key, "slots": slots, "status": "running", "traffic": {"holdout": 0.0},
                               "reward": {"wait_seconds": 0}})
    cands = candidates(n)
    learner = Learner(store, clock)
    for i in range(300):  # warm the model so predictions are not trivial
        answer = service.decide(key, {"unit": f"u{i}", "context": context(i), "candidates": cands})
        service.record_reward(answer["event_id"], {"type": "click", "item": answer["slate"][0]["id"]})
    clock.advance(1)
    learner.run_once(force_publish=True)
    timings = []
    for i in tqdm(range(decisions), desc=f"decide n={n} slots={slots}", leave=False):
        body = {"unit": f"v{i}", "context": context(i), "candidates": cands}
        start = time.perf_counter()
        service.decide(key, body)
        timings.append(time.perf_counter() - start)
    micros = np.array(timings) * 1e6
    store.close()
    return {"candidates": n, "slots": slots, "median_us": round(float(np.median(micros)), 1),
            "p99_us": round(float(np.percentile(micros, 99)), 1)}


def learner_throughput(events: int, folder: str, drift_watch: bool = False) -> dict:
    clock = VirtualClock()
    store = Store(os.path.join(folder, f"learner-{drift_watch}.db"))
    service = Service(store, clock)
    service.create_experiment({"key": "learn", "status": "running", "reward": {"wait_seconds": 0},
                               "learning": {"drift_watch": {"enabled": drift_watch}}})
    cands = candidates(50)
    for i in tqdm(range(events), desc="log decisions", leave=False):
        answer = service.decide("learn", {"unit": f"u{i}", "context": context(i), "candidates": cands})
        if i % 5 == 0:
            service.record_reward(answer["event_id"], {"type": "click"})
    clock.advance(1)
    start = time.perf_counter()
    learned = Learner(store, clock).run_once(force_publish=True)["learn"]
    seconds = time.perf_counter() - start
    store.close()
    return {"events": learned, "seconds": round(seconds, 3), "events_per_second": round(learned / seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--learner-events", type=int, default=10000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        cases = [run_case(n, slots, args.decisions, folder) for n in (10, 50, 200) for slots in (1, 3)]
        plain, watched = (learner_throughput(args.learner_events, folder, watch) for watch in (False, True))
        result = {"decide": cases, "learner": plain, "learner_with_drift_watch": watched,
                  "drift_watch_cost_ratio": round(plain["events_per_second"] / watched["events_per_second"], 3)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
