"""How long one request at the cost limits holds a worker; print JSON.

Usage: python benchmarks/limits.py [--repeats 7]

Through the real app (Flask test client, a SQLite file, real VW, default
settings), for each shape of costly request it finds the largest request the
limits still accept (a binary search on its size), then times that request and
the same one refused just past the limit. Shapes: a context full of features,
every namespace pair crossed (Personalizer's ``-q ::``), a thousand fresh
candidates, many slots, and Personalizer's rank. Also times the audit's 16k and
60k feature requests, which must be refused fast, and a typical request
(50 candidates) for scale. Medians of ``--repeats`` runs, in milliseconds of
wall time and of this thread's CPU (the test client runs the app in it, so on a
busy machine the CPU figure is the fairer one); the goal is a few tens of ms at
the limits.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import tempfile
import time

import orjson
from tqdm import tqdm

from experiments.clock import VirtualClock
from web import create_app

FRESH = itertools.count()


def features(n: int, prefix: str = "f") -> dict:
    return {f"{prefix}{i}": float(i % 7) for i in range(n)}


def candidates(n: int, size: int, fresh: bool = False) -> list[dict]:
    """``n`` candidates of ``size`` features; fresh ones get ids never sent before (no cache hit)."""
    tag = f"{next(FRESH)}-" if fresh else ""
    return [{"id": f"{tag}c{i}", "features": features(size, "a")} for i in range(n)]


class Target:
    """Send one shape of request to the app and time it."""

    def __init__(self, client, path: str, make, headers=None):
        self.client, self.path, self.make, self.headers = client, path, make, headers or {}

    def send(self, size: int) -> tuple[int, float, float]:
        """Return (status, wall ms, CPU ms of this thread): the test client runs the app in this thread."""
        data = orjson.dumps(self.make(size))
        wall, cpu = time.perf_counter(), time.thread_time()
        response = self.client.post(self.path, data=data, content_type="application/json", headers=self.headers)
        return response.status_code, (time.perf_counter() - wall) * 1000, (time.thread_time() - cpu) * 1000

    def largest_accepted(self, low: int, high: int) -> int:
        """Binary search the largest size answered 2xx (``low`` must be, ``high`` must not be)."""
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (mid, high) if self.send(mid)[0] < 300 else (low, mid)
        return low

    def timed(self, size: int, repeats: int) -> dict:
        runs = [self.send(size) for _ in range(repeats)]
        return {"status": runs[0][0], "median_ms": round(statistics.median(r[1] for r in runs), 2),
                "max_ms": round(max(r[1] for r in runs), 2),
                "median_cpu_ms": round(statistics.median(r[2] for r in runs), 2)}


def shapes(client, rank_headers) -> dict:
    """Each shape: (target, smallest size, a size past the limit, what the size counts)."""
    slate = "/v1/experiments/{}/slate".format
    return {
        "context_features_50_candidates": (Target(client, slate("one"), lambda n: {
            "context": {"user": features(n)}, "candidates": candidates(50, 5)}), 10, 20_000, "context features"),
        "crossed_all_pairs_50_candidates": (Target(client, slate("crossed"), lambda n: {
            "context": {"user": features(n)}, "candidates": candidates(50, 5)}), 10, 5_000, "context features"),
        "fresh_candidates_uncached": (Target(client, slate("one"), lambda n: {
            "context": {"user": features(20)}, "candidates": candidates(n, 9, fresh=True)}), 2, 1_000,
            "candidates of 9 features"),
        "slate_of_3_candidates_x_features": (Target(client, slate("three"), lambda n: {
            "context": {"user": features(20)}, "candidates": candidates(n, 20)}), 3, 1_000, "candidates of 20 features"),
        "slate_of_50_slots_50_candidates": (Target(client, slate("fifty"), lambda n: {
            "context": {"user": features(n)}, "candidates": candidates(50, 1)}), 0, 1_000, "context features"),
        "personalizer_rank_crossed": (Target(client, "/personalizer/rank", lambda n: {
            "contextFeatures": [{"user": features(n)}],
            "actions": [{"id": f"a{i}", "features": [{"n": i}]} for i in range(50)]}, rank_headers), 10, 5_000,
            "context features"),
    }


def setup(client, app) -> dict:
    for key, spec in {"one": {}, "three": {"slots": 3}, "fifty": {"slots": 50},
                      "crossed": {"learning": {"interactions": ["::"]}}}.items():
        client.post("/v1/experiments", json={"key": key, "status": "running", **spec})
    with app.app_context():
        resource = app.extensions["silent"]["personalizer"].create_resource("rank")
    return {"Ocp-Apim-Subscription-Key": resource["key"]}


def refused_fast(client, repeats: int) -> dict:
    out = {}
    for n in (16_000, 60_000):  # 60k features is about the most a 1 MB body holds
        target = Target(client, "/v1/experiments/one/slate", lambda size: {
            "context": {"user": features(size)}, "candidates": candidates(2, 1)})
        out[f"context_{n}_features"] = target.timed(n, max(3, repeats // 2))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        app = create_app({"DATABASE": os.path.join(folder, "limits.db"), "CLOCK": VirtualClock()})
        client = app.test_client()
        rank_headers = setup(client, app)
        result = {"limits": {name: app.config[name] for name in
                             ("MAX_REQUEST_FEATURES", "MAX_REQUEST_WORK", "MAX_BODY_BYTES")}, "at_the_limits": {}}
        for name, (target, low, high, unit) in tqdm(shapes(client, rank_headers).items(), desc="shapes"):
            size = target.largest_accepted(low, high)
            result["at_the_limits"][name] = {"size": size, "counts": unit, "accepted": target.timed(size, args.repeats),
                                             "just_past": target.timed(size + 1, args.repeats)}
        result["refused"] = refused_fast(client, args.repeats)
        result["typical"] = Target(client, "/v1/experiments/one/slate", lambda n: {
            "context": {"user": features(5), "page": features(3)}, "candidates": candidates(50, 3)}).timed(0, 50)
        app.extensions["silent"]["store"].close()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
