"""Learners across hosts on PostgreSQL: one owner per experiment, a takeover when it dies, no lost or doubled learning."""
import os
import signal
import subprocess
import sys
import time
from functools import partial

import numpy as np

from experiments.clock import DatabaseClock
from experiments.service import Service
from experiments.store import open_store
from tests.conftest import ITEMS, SEGMENTS, click_probability
from tests.live import wait_for as live_wait_for
from tests.replay import bare_replay


def learner(pg_url, log_path):
    env = {**os.environ, "SILENT_LEARNER_INTERVAL_SECONDS": "0.1", "SILENT_LEARNER_GRACE_SECONDS": "0"}
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "web", "learn", "--db", pg_url], env=env,
                                stdout=log, stderr=subprocess.STDOUT)


def drive(service, start, n, rng):
    for t in range(start, start + n):
        segment = SEGMENTS[t % 3]
        answer = service.decide("e", {"unit": f"user-{t}", "event_id": f"e-{t}", "candidates": ITEMS,
                                      "context": {"user": {"segment": segment}}})
        first = answer["slate"][0]["id"]
        if rng.random() < click_probability(segment, first):
            service.record_reward(answer["event_id"], {"type": "click", "item": first})


wait_for = partial(live_wait_for, timeout=60.0)


def test_two_learners_share_an_experiment_one_at_a_time_and_the_survivor_takes_over(pg_url, tmp_path):
    store = open_store(pg_url)
    service = Service(store, DatabaseClock(store))
    service.create_experiment({"key": "e", "status": "running", "slots": 1, "traffic": {"holdout": 0.0},
                               "reward": {"wait_seconds": 0.2},
                               "learning": {"update_seconds": 0.3, "scaling": {"default": "raw"}}})
    rng = np.random.default_rng(3)
    procs = [learner(pg_url, tmp_path / f"learner-{i}.log") for i in range(2)]
    try:
        drive(service, 0, 150, rng)
        published = wait_for(lambda: (m := store.latest_model("e", with_blob=False)) and m["learned"] == 150 and m)
        holder = store.live_lease("learner:e", time.time())
        owner = next(p for p in procs if p.pid == holder["process"]["pid"])
        survivor = next(p for p in procs if p is not owner)
        assert published["learner"] == holder["owner"]

        drive(service, 150, 50, rng)
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        killed_at = time.monotonic()
        taken = wait_for(lambda: (h := store.live_lease("learner:e", time.time())) and h["token"] > holder["token"]
                         and h, timeout=30)
        assert taken["process"]["pid"] == survivor.pid
        assert time.monotonic() - killed_at < 5  # the server drops a dead session's locks at once
        last_of_dead = store.latest_model("e", with_blob=False)  # the survivor goes on from here
        assert last_of_dead["learner"] == holder["owner"]

        drive(service, 200, 100, rng)
        wait_for(lambda: store.latest_model("e", with_blob=False)["learned"] == 300)
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(timeout=60) == 0
        final = store.latest_model("e")
        assert final["learner"] == taken["owner"] and final["learned"] == 300
        assert final["model"] == bare_replay(store, "e", ITEMS, final["args"], last_of_dead["learned"])
        assert store.counts("e") == {"decisions": 300, "rewards": store.counts("e")["rewards"]}
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        store.close()
