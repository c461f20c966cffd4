"""Faults benchmark: kill -9 under load, the WAL under maximum load, memory with 1,000 experiments.

Usage: nice -n 10 python benchmarks/faults.py [--rounds 5] [--round-seconds 8] [--wal-seconds 60]
                                             [--experiments 1000] [--only crashes|wal|memory]

Prints one JSON object with, per part, the figures and the goals of issue 11:

- ``crashes``: ``silent serve --workers 2`` under load from 8 shoppers (slates and rewards) is
  killed with ``kill -9`` five times: even rounds kill the supervisor's process group (as a shell
  user would; the children must follow), odd rounds every process of the service at once (a crash:
  nobody hands the learner lease back). After each kill: processes of the service still alive 10 s
  later (orphans), and, after a restart on the same port and file, the seconds from the restart
  until a published model has learned every decision logged (and the same from the moment the new
  service answers, which leaves out Python's start-up on a busy machine). At the end: acknowledged decisions and
  rewards missing from the file (lost), and SQLite's integrity check.
- ``wal``: the largest ``-wal`` file during ``--wal-seconds`` of maximum slate load (wrk when
  installed, else a Python client), its size after a SIGTERM stop, and, in process, how long the
  RESTART checkpoint holds the write lock while four writers keep inserting, next to what one
  fsync of the same disk costs in the same run (the lock is held for about one).
- ``memory``: resident memory of the learner and of each worker once ``--experiments`` running
  experiments have each served and learned a few decisions.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import uuid

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.load import candidates, drive  # noqa: E402
from tests.live import Server, alive, call, descendants, free_port, wait_for  # noqa: E402

CANDIDATES = candidates(20)
GOALS = {"lost": 0, "orphans": 0, "fresh_model_seconds": 5.0, "wal_mb": 64, "learner_rss_mb": 1024,
         "worker_rss_mb": 300}
PRODUCTION = {"SILENT_LEARNER_INTERVAL_SECONDS": "0.5", "SILENT_LEARNER_GRACE_SECONDS": "0",
              "SILENT_MODEL_REFRESH_SECONDS": "1", "SILENT_SPEC_REFRESH_SECONDS": "1"}


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024


def roles(server: Server) -> dict[str, list[int]]:
    """The pids of a running ``silent serve``: learner, gunicorn master, workers."""
    found = {"learner": [], "master": [], "workers": []}
    for pid in descendants(server.proc.pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                args = fh.read().split(b"\0")
            with open(f"/proc/{pid}/stat") as fh:
                parent = int(fh.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if b"learner" in args:
            found["learner"].append(pid)
        elif b"gunicorn" in args:
            found["master" if parent == server.proc.pid else "workers"].append(pid)
    return found


# -- kill -9 under load ------------------------------------------------------------------------
class Shoppers:
    """Shoppers posting slates and rewards; they remember what the server acknowledged."""

    def __init__(self, base: str, threads: int = 8):
        self.base, self.threads = base, threads
        self.decisions, self.rewards, self.errors = set(), set(), {}
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        self._stop.clear()
        self._workers = [threading.Thread(target=self._shop) for _ in range(self.threads)]
        for worker in self._workers:
            worker.start()

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join()

    def _shop(self) -> None:
        while not self._stop.is_set():
            event_id = uuid.uuid4().hex
            try:
                status, answer = call(self.base, "POST", "/v1/experiments/faults/slate",
                                      {"event_id": event_id, "unit": event_id[:6], "candidates": CANDIDATES,
                                       "context": {"user": {"segment": event_id[0]}}})
                if status != 200:
                    continue
                self.decisions.add(event_id)
                reward_id = "r-" + event_id
                status, _ = call(self.base, "POST", f"/v1/events/{event_id}/rewards",
                                 {"type": "click", "item": answer["slate"][0]["id"], "id": reward_id})
                if status == 202:
                    self.rewards.add(reward_id)
            except (OSError, ValueError) as exc:
                kind = type(getattr(exc, "reason", exc)).__name__
                self.errors[kind] = self.errors.get(kind, 0) + 1
                time.sleep(0.05)


def kill_service(server: Server, everything: bool) -> set[int]:
    """kill -9 the supervisor's group, or every process of the service; return the pids that were running."""
    tree = descendants(server.proc.pid) | {server.proc.pid}
    if everything:
        for pid in tree:
            os.kill(pid, signal.SIGKILL)
    else:
        os.killpg(server.proc.pid, signal.SIGKILL)
    server.proc.wait()
    return tree


def learned_everything(db: str) -> bool:
    conn = sqlite3.connect(db, timeout=30)
    try:
        logged = conn.execute("SELECT count(*) FROM decisions WHERE experiment = 'faults'").fetchone()[0]
        learned = conn.execute("SELECT max(learned) FROM models WHERE experiment = 'faults'").fetchone()[0]
    finally:
        conn.close()
    return learned is not None and learned >= logged


def crash_round(server: Server, shoppers: Shoppers, index: int, seconds: float) -> tuple[Server, dict]:
    shoppers.errors = {}
    shoppers.start()
    time.sleep(seconds)
    everything = index % 2 == 1
    tree = kill_service(server, everything)
    killed_at = time.time()
    shoppers.stop()
    time.sleep(10)
    orphans = len(alive(tree))
    wait_for(lambda: not alive(tree), timeout=60)
    gone_after = time.time() - killed_at
    restarted = time.time()
    server = Server(server.db, port=server.port, workers=2, env=PRODUCTION, own_group=True)
    up = time.time() - restarted
    for _ in range(10):  # fresh decisions after the restart, closed at once
        call(server.base, "POST", "/v1/experiments/faults/slate", {"candidates": CANDIDATES})
    wait_for(lambda: learned_everything(server.db), timeout=120)
    fresh = time.time() - restarted
    return server, {"kill": "every process" if everything else "supervisor's process group",
                    "client_errors": dict(shoppers.errors),
                    "orphans_after_10s": orphans, "all_gone_after_seconds": round(gone_after, 2),
                    "restart_healthy_seconds": round(up, 2), "fresh_model_seconds": round(fresh, 2),
                    "fresh_model_after_healthy_seconds": round(fresh - up, 2)}


def stored(db: str) -> tuple[set, set, str]:
    conn = sqlite3.connect(db)
    try:
        decisions = {r[0] for r in conn.execute("SELECT event_id FROM decisions")}
        rewards = {r[0] for r in conn.execute("SELECT reward_key FROM rewards")}
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()
    return decisions, rewards, check


def crashes(folder: str, rounds: int, seconds: float) -> dict:
    db = os.path.join(folder, "faults.db")
    server = Server(db, port=free_port(), workers=2, env=PRODUCTION, own_group=True)
    call(server.base, "POST", "/v1/experiments", {"key": "faults", "status": "running", "traffic": {"holdout": 0},
                                                  "reward": {"wait_seconds": 1}, "learning": {"update_seconds": 1}})
    shoppers = Shoppers(server.base)
    results = []
    try:
        for index in range(rounds):
            server, result = crash_round(server, shoppers, index, seconds)
            results.append(result)
    finally:
        server.stop()
    decisions, rewards, check = stored(db)
    return {"rounds": results, "acknowledged_decisions": len(shoppers.decisions),
            "acknowledged_rewards": len(shoppers.rewards), "stored_decisions": len(decisions),
            "stored_rewards": len(rewards), "lost_decisions": len(shoppers.decisions - decisions),
            "lost_rewards": len(shoppers.rewards - rewards), "integrity_check": check,
            "max_orphans": max(r["orphans_after_10s"] for r in results),
            "max_fresh_model_seconds": max(r["fresh_model_seconds"] for r in results)}


# -- the WAL under maximum load ----------------------------------------------------------------
def wal(folder: str, seconds: int) -> dict:
    db = os.path.join(folder, "wal.db")
    server = Server(db, port=free_port(), workers=2, env=PRODUCTION)
    body = {"context": {"user": {"segment": "returning"}}, "candidates": candidates(50)}
    call(server.base, "POST", "/v1/experiments", {"key": "wal", "status": "running",
                                                  "reward": {"wait_seconds": 5}})
    sizes, stop = [], threading.Event()

    def sample():
        while not stop.wait(0.25):
            sizes.append(os.path.getsize(db + "-wal") if os.path.exists(db + "-wal") else 0)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        load = drive(server.port, "/v1/experiments/wal/slate", body, seconds, 8)
    finally:
        stop.set()
        sampler.join()
        server.stop()
    after = os.path.getsize(db + "-wal") if os.path.exists(db + "-wal") else 0
    conn = sqlite3.connect(db)
    decisions = conn.execute("SELECT count(*) FROM decisions").fetchone()[0]
    conn.close()
    return {"seconds": seconds, "load": load, "decisions": decisions,
            "largest_wal_mb": round(max(sizes) / 2**20, 2), "wal_after_stop_mb": round(after / 2**20, 3),
            "restart": restart_stall(folder)}


def fsync_ms(folder: str, samples: int = 50) -> dict:
    """What one fsync of 40 KB costs on this disk now."""
    path = os.path.join(folder, "fsync.bin")
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    times = []
    try:
        for _ in range(samples):
            os.write(fd, b"x" * 40960)
            started = time.perf_counter()
            os.fsync(fd)
            times.append((time.perf_counter() - started) * 1000)
    finally:
        os.close(fd)
        os.unlink(path)
    return {"median": round(float(np.median(times)), 2), "p90": round(float(np.percentile(times, 90)), 2)}


def restart_stall(folder: str, seconds: float = 10.0) -> dict:
    """In process: four writers insert decision-sized rows while checkpoints start the WAL over at 4 MB."""
    from experiments.store import Store

    path = os.path.join(folder, "stall.db")
    store = Store(path, wal_autocheckpoint=0, wal_limit_bytes=4 * 2**20)
    store.conn.execute("CREATE TABLE IF NOT EXISTS filler (blob TEXT)")
    waits, held, stop = [], [], threading.Event()

    def writer():
        while not stop.is_set():
            started = time.perf_counter()
            with store.transaction() as conn:
                conn.execute("INSERT INTO filler VALUES (?)", ("x" * 350,))
            waits.append(time.perf_counter() - started)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    deadline = time.time() + seconds
    while time.time() < deadline:
        result = store.checkpoint()
        if result["restarted"]:
            held.append(result["locked_seconds"])
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join()
    store.close()
    ms = np.array(waits) * 1000
    return {"restarts": len(held), "fsync_ms": fsync_ms(folder), "lock_held_ms_max": round(max(held, default=0) * 1000, 2),
            "lock_held_ms_median": round(float(np.median(held)) * 1000, 2) if held else None,
            "writer_ms_p50": round(float(np.percentile(ms, 50)), 3), "writer_ms_p99": round(float(np.percentile(ms, 99)), 3),
            "writer_ms_max": round(float(ms.max()), 2), "writes": len(waits)}


# -- memory with many experiments --------------------------------------------------------------
def memory(folder: str, experiments: int, rounds: int = 3) -> dict:
    db = os.path.join(folder, "memory.db")
    server = Server(db, port=free_port(), workers=2, env=PRODUCTION)
    keys = [f"exp-{i:04d}" for i in range(experiments)]
    peak = {"learner": 0.0, "workers": 0.0}
    try:
        for key in keys:
            call(server.base, "POST", "/v1/experiments", {"key": key, "status": "running", "traffic": {"holdout": 0},
                                                          "reward": {"wait_seconds": 1},
                                                          "learning": {"update_seconds": 1}})
        for round_ in range(rounds):  # every experiment serves and learns, again and again
            spread(server.base, keys, round_)
            sample_peak(server, peak)
        wait_for(lambda: learned_all(db, experiments * rounds), timeout=600)
        sample_peak(server, peak)
        final = {role: [round(rss_mb(pid), 1) for pid in pids] for role, pids in roles(server).items()}
    finally:
        server.stop()
    return {"experiments": experiments, "decisions_per_experiment": rounds, "rss_mb_now": final,
            "learner_rss_mb_peak": round(peak["learner"], 1), "worker_rss_mb_peak": round(peak["workers"], 1)}


def spread(base: str, keys: list[str], round_: int, threads: int = 8) -> None:
    """One rewarded slate for every experiment, from a few threads."""
    def shop(part):
        for key in part:
            status, answer = call(base, "POST", f"/v1/experiments/{key}/slate",
                                  {"unit": f"u{round_}", "candidates": CANDIDATES,
                                   "context": {"user": {"segment": f"s{round_}"}}})
            if status == 200:
                call(base, "POST", f"/v1/events/{answer['event_id']}/rewards", {"type": "click"})

    workers = [threading.Thread(target=shop, args=(keys[i::threads],)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def sample_peak(server: Server, peak: dict) -> None:
    found = roles(server)
    peak["learner"] = max([peak["learner"], *map(rss_mb, found["learner"])])
    peak["workers"] = max([peak["workers"], *map(rss_mb, found["workers"])])


def learned_all(db: str, total: int) -> bool:
    conn = sqlite3.connect(db, timeout=30)
    try:
        learned = conn.execute("SELECT coalesce(sum(m.learned), 0) FROM models m WHERE m.version ="
                               " (SELECT max(version) FROM models WHERE experiment = m.experiment)").fetchone()[0]
    finally:
        conn.close()
    return learned >= total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--round-seconds", type=float, default=8.0)
    parser.add_argument("--wal-seconds", type=int, default=60)
    parser.add_argument("--experiments", type=int, default=1000)
    parser.add_argument("--only", choices=["crashes", "wal", "memory"])
    args = parser.parse_args()
    result = {"goals": GOALS}
    with tempfile.TemporaryDirectory() as folder:
        if args.only in (None, "crashes"):
            result["crashes"] = crashes(folder, args.rounds, args.round_seconds)
        if args.only in (None, "wal"):
            result["wal"] = wal(folder, args.wal_seconds)
        if args.only in (None, "memory"):
            result["memory"] = memory(folder, args.experiments)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
