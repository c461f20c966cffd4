"""What public keys cost a call: the shared token bucket alone, and a slate with a public key against a shop key.

Prints one JSON object:
  buckets: µs per ``TokenBuckets.take`` (file-backed, as serving uses it), one process and two at once
  slate: median and p99 µs of a slate through the Flask app (one process, real SQLite file) with a shop key
         and with a public key (origin check + rate limit), alternating so background load hits both alike

Usage: python benchmarks/public_keys.py [--calls 20000] [--slates 2000]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from experiments.clock import SystemClock
from experiments.rate_limit import Rate, TokenBuckets

ORIGIN = "https://shop.example"
CANDIDATES = [{"id": f"sku-{i}", "features": {"category": f"c{i % 5}", "price": 10.0 + i}} for i in range(50)]


def take_many(path: str, calls: int, offset: int = 0) -> float:
    """Seconds for ``calls`` takes spread over 1,000 addresses (never limited: the rate is huge)."""
    buckets = TokenBuckets(path, Rate(per_second=1e9, burst=1e9), SystemClock())
    started = time.perf_counter()
    for i in range(calls):
        buckets.take(f"10.0.{(i + offset) % 1000 // 250}.{(i + offset) % 250}")
    return time.perf_counter() - started


def _worker(path: str, calls: int, offset: int, out) -> None:
    out.put(take_many(path, calls, offset))


def bucket_figures(folder: Path, calls: int) -> dict:
    path = str(folder / "bench.public-rate")
    one = take_many(path, calls)
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    workers = [context.Process(target=_worker, args=(path, calls, k * 7, out)) for k in range(2)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - started
    return {"calls": calls, "one_process_us_per_take": round(one / calls * 1e6, 2),
            "two_processes_takes_per_second": round(2 * calls / wall)}


def slate_figures(folder: Path, slates: int) -> dict:
    from web import create_app

    app = create_app({"DATABASE": str(folder / "bench.db"), "PUBLIC_RATE_PER_SECOND": 1e9,
                      "PUBLIC_RATE_BURST": 1e9})
    client = app.test_client()
    assert client.post("/v1/experiments", json={"key": "home", "slots": 3, "status": "running"}).status_code == 201
    access = app.extensions["silent"]["access"]
    keys = {"shop": ({"Authorization": f"Bearer {access.create_key('shop')['key']}"}),
            "public": {"Authorization": "Bearer " + access.create_key("public", experiments=["home"],
                                                                      origins=[ORIGIN])["key"],
                       "Origin": ORIGIN}}
    times = {"shop": [], "public": []}
    for i in tqdm(range(slates), desc="slates", unit="slate"):
        for role, headers in keys.items():
            started = time.perf_counter()
            answer = client.post("/v1/experiments/home/slate", headers=headers,
                                 json={"unit": f"u{i}", "candidates": CANDIDATES, "context": {"page": {"type": "home"}}})
            times[role].append(time.perf_counter() - started)
            assert answer.status_code == 200, answer.get_json()
    app.extensions["silent"]["store"].close()

    def summary(values):
        values = sorted(values)
        return {"median_us": round(statistics.median(values) * 1e6), "p99_us": round(values[int(len(values) * 0.99)] * 1e6)}

    return {"slates": slates, "candidates": len(CANDIDATES), "slots": 3,
            "shop_key": summary(times["shop"]), "public_key": summary(times["public"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--slates", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        figures = {"buckets": bucket_figures(Path(folder), args.calls),
                   "slate": slate_figures(Path(folder), args.slates)}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
