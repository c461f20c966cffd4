"""Time the experiment report over a large synthetic decision and reward log; print JSON.

Usage: python benchmarks/report.py [--decisions 1000000] [--slots 1] [--repeat 3]
(the goal: a report over 1,000,000 decisions in at most 5 s on 2 cores)

The log is written straight into a temporary SQLite file with ``executemany``
(a week of traffic, 10% holdout, 40 candidate sets of 10 items, clicks, add to
carts and purchases, some late, duplicate and unattributed rewards) together
with one model snapshot trained on the first decisions, so the learned policy's
off-policy estimate does real VW work. Then ``experiments.reporting.reports.report`` runs
``--repeat`` times and the figures are printed.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

from bandit.encoding import context_text
from bandit.policy import Policy
from experiments.assignment import bucket
from experiments.clock import VirtualClock
from experiments.reporting.reports import report
from experiments.service import Service
from experiments.spec import parse_spec
from experiments.store import Store, dumps

KEY = "bench-report"
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
SEGMENTS = ["new", "returning", "loyal", "vip"]
CANDIDATE_SETS = 40
ITEMS_PER_SET = 10


def candidate_sets(rng) -> list[list[dict]]:
    """Draw overlapping candidate lists from a catalog of 200 items."""
    sets = []
    for _ in range(CANDIDATE_SETS):
        ids = rng.choice(200, size=ITEMS_PER_SET, replace=False)
        sets.append([{"id": f"sku-{i}", "features": {"category": f"c{i % 7}", "price": float(5 + i % 50)}}
                     for i in ids])
    return sets


def create_experiment(store: Store, slots: int) -> None:
    service = Service(store, VirtualClock(START))
    service.create_experiment({"key": KEY, "status": "running", "slots": slots,
                               "exploration": {"algorithm": "epsilon", "epsilon": 0.2},
                               "reward": {"wait_seconds": 600}, "traffic": {"holdout": 0.1}})


def decision_rows(n: int, slots: int, sets: list, hashes: list, seconds, rng):
    """Yield decision rows; a unit's variant comes from the real assignment hash."""
    units = rng.integers(0, n // 4 + 1, size=n)
    holdout = np.array([bucket(KEY, f"user-{u}") < 0.1 for u in range(n // 4 + 1)])[units]
    set_of = rng.integers(0, len(sets), size=n)
    segment = rng.integers(0, len(SEGMENTS), size=n)
    picks = np.argsort(rng.random((n, ITEMS_PER_SET)), axis=1)[:, :slots]
    # The bandit explores like epsilon-greedy (epsilon 0.2) around its favourite, candidate 0;
    # the holdout is uniform. Later slots are uniform over the rest in both.
    exploit = (rng.random(n) < 0.8) & ~holdout
    picks[exploit] = np.argsort(rng.random((int(exploit.sum()), ITEMS_PER_SET - 1)), axis=1)[:, :slots] + 1
    picks[exploit, 0] = 0
    bandit_first = np.where(picks[:, 0] == 0, 0.8 + 0.2 / ITEMS_PER_SET, 0.2 / ITEMS_PER_SET)
    first = np.where(holdout, 1.0 / ITEMS_PER_SET, bandit_first).tolist()
    picks = picks.tolist()
    for i in range(n):
        cands = sets[set_of[i]]
        slate = [{"slot": k, "id": cands[j]["id"], "index": j,
                  "probability": first[i] if k == 0 else 1.0 / (ITEMS_PER_SET - k)} for k, j in enumerate(picks[i])]
        created = START + float(seconds[i])
        yield (i + 1, f"evt-{i}", KEY, f"user-{units[i]}", "holdout" if holdout[i] else "bandit",
               int(seconds[i] // 3600) + 1, 1,
               dumps({"user": {"segment": SEGMENTS[segment[i]]}, "page": {"type": "home"}}), hashes[set_of[i]],
               "[]", dumps(slate), created, created + 600.0)


def reward_rows(n: int, slots: int, seconds, rng):
    """Yield rewards for about 15% of decisions; a few late, duplicate or unattributed."""
    rewarded = np.flatnonzero(rng.random(n) < 0.15)
    depth = 1 + (rng.random(len(rewarded)) < 0.3) + (rng.random(len(rewarded)) < 0.1)
    kinds = [("click", 1.0), ("add_to_cart", 3.0), ("purchase", 10.0)]
    for j, i in enumerate(rewarded.tolist()):
        created = START + float(seconds[i])
        for d in range(depth[j]):
            kind, value = kinds[d]
            late = int(rng.random() < 0.02)
            slot = None if rng.random() < 0.01 else int(rng.integers(0, slots))
            yield (f"evt-{i}", KEY, i + 1, f"r{j}-{d}", kind, None, slot, value,
                   created + (900.0 if late else 30.0), late, int(rng.random() < 0.01))


def train_model(store: Store, slots: int, count: int = 2000) -> None:
    """Publish one snapshot learned from the first ``count`` decisions (the learned policy)."""
    settings = parse_spec(store.get_experiment(KEY)["spec"]).policy_settings()
    policy = Policy(settings)
    for seq, context, digest, slate in store.conn.execute(
            "SELECT seq, context, candidate_set, slate FROM decisions ORDER BY seq LIMIT ?", (count,)):
        chosen = [(s["index"], s["probability"]) for s in json.loads(slate)]
        actions = store.actions(digest)
        rewards = [float(seq % 7 == 0)] * len(chosen)
        policy.learn(context_text(json.loads(context)), actions, chosen if slots > 1 else chosen[:1],
                     rewards if slots > 1 else rewards[:1])
    store.insert_model({"experiment": KEY, "version": 1, "args": settings.args(), "spec_version": 1,
                        "cursor_seq": count, "learned": count, "created_at": START + 3600, "model": policy.save()})


def build_log(path: str, decisions: int, slots: int = 1, seed: int = 0) -> float:
    """Write the synthetic log into ``path``; return the seconds it took."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    store = Store(path)
    create_experiment(store, slots)
    sets = candidate_sets(rng)
    hashes = [store.candidate_set(s) for s in sets]
    seconds = np.sort(rng.uniform(0, 7 * 86400, size=decisions))
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO decisions (seq, event_id, experiment, unit, variant, model_version, spec_version, context,"
            " candidate_set, excluded, slate, created_at, window_closes_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            decision_rows(decisions, slots, sets, hashes, seconds, rng))
        conn.executemany(
            "INSERT INTO rewards (event_id, experiment, decision_seq, reward_key, type, item, slot, value,"
            " received_at, late, duplicates) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            reward_rows(decisions, slots, seconds, rng))
    train_model(store, slots)
    store.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--slots", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "report.db")
        build_seconds = build_log(path, args.decisions, args.slots)
        store = Store(path)
        timings, cpu = [], []
        for _ in range(args.repeat):
            started, cpu_started = time.perf_counter(), time.process_time()
            result = report(store, KEY, interval="hour")
            timings.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
        store.close()
    variants = {v["variant"]: v["decisions"] for v in result["variants"]}
    print(json.dumps({"decisions": args.decisions, "slots": args.slots, "build_seconds": round(build_seconds, 1),
                      "report_seconds": [round(t, 2) for t in timings], "best_seconds": round(min(timings), 2),
                      "report_cpu_seconds": [round(t, 2) for t in cpu],
                      "load_average": [round(x, 2) for x in os.getloadavg()],
                      "variants": variants, "off_policy_sample": result["off_policy_sample"],
                      "cpu_count": os.cpu_count()}, indent=2))


if __name__ == "__main__":
    main()
