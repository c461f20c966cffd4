"""Slate latency while sign-ins flood the server; print JSON.

Usage: python benchmarks/sign_in_flood.py [--threads 4] [--slates 400] [--workers 2]
Starts ``silent serve`` (2 workers, trusting one proxy) with a user and a running
experiment, measures slate latency alone, then again while ``--threads`` threads
post wrong passwords as fast as they can, each from a new client address and user
name (the worst case: no per-address or per-name limit ever applies, only the one
password check at a time across workers). Reports p50/p99 of both rounds, their
ratio, and the sign-in answers by status.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import threading
import time

import numpy as np
import requests

CANDIDATES = [{"id": f"sku-{i}", "features": {"category": f"c{i % 4}", "price": 5.0 + i}} for i in range(20)]


def slate_latencies(base: str, n: int) -> list[float]:
    session, out = requests.Session(), []
    for i in range(n):
        started = time.perf_counter()
        answer = session.post(f"{base}/v1/experiments/home/slate", json={"unit": f"u{i}", "candidates": CANDIDATES},
                              timeout=30)
        out.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.text
    return out


def flood(base: str, stop: threading.Event, counts: collections.Counter, lock: threading.Lock, thread: int) -> None:
    session, i = requests.Session(), 0
    while not stop.is_set():
        i += 1
        address = f"10.{thread}.{i // 250 % 250}.{i % 250}"
        headers = {"X-Forwarded-For": address}
        form = session.get(f"{base}/sign-in", headers=headers, timeout=30).text
        token = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        answer = session.post(f"{base}/sign-in", headers=headers, timeout=30, allow_redirects=False,
                              data={"csrf_token": token, "name": f"guess-{thread}-{i}", "password": "wrong password"})
        with lock:
            counts[answer.status_code] += 1


def figures(latencies: list[float]) -> dict:
    ms = np.asarray(latencies) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--slates", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slots", type=int, default=1, help="SILENT_SIGN_IN_SLOTS: password checks at once")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from experiments.auth import Access
    from experiments.store import Store
    from tests.live import Server

    with tempfile.TemporaryDirectory() as folder:
        db = os.path.join(folder, "flood.db")
        store = Store(db)
        Access(store).create_user("alice", "correct horse battery")
        store.close()
        server = Server(db, workers=args.workers, env={"SILENT_TRUSTED_PROXIES": "1",
                                                                  "SILENT_SIGN_IN_SLOTS": str(args.slots)})
        try:
            requests.post(f"{server.base}/v1/experiments", json={"key": "home", "status": "running"}, timeout=30)
            slate_latencies(server.base, 50)  # warm up
            alone = slate_latencies(server.base, args.slates)
            stop, counts, lock = threading.Event(), collections.Counter(), threading.Lock()
            threads = [threading.Thread(target=flood, args=(server.base, stop, counts, lock, t))
                       for t in range(args.threads)]
            for thread in threads:
                thread.start()
            time.sleep(1.0)
            flooded = slate_latencies(server.base, args.slates)
            stop.set()
            for thread in threads:
                thread.join()
        finally:
            server.stop()
    result = {"workers": args.workers, "sign_in_slots": args.slots, "flood_threads": args.threads, "slates": args.slates,
              "alone": figures(alone), "during_flood": figures(flooded),
              "p50_ratio": round(figures(flooded)["p50_ms"] / figures(alone)["p50_ms"], 2),
              "sign_in_answers": {str(k): v for k, v in sorted(counts.items())}}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
