"""Many hosts on one PostgreSQL database: three serving hosts and two learner hosts that share nothing but the URL.

Each host is a network namespace with its own address where the machine allows it
(root with ``ip`` and ``socat``), else a separate port on 127.0.0.1; always its own
working and temp folder (tests/hosts.py). A load client spreads slates and rewards
over the three serving hosts; mid-run the learner that owns the experiment is killed
with SIGKILL. Afterwards every acknowledged decision and reward is stored exactly
once, the other learner took over within seconds, and its final model equals a bare
VW replay of the log in log order.
"""
import http.client
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from functools import partial

import numpy as np
import psycopg

from experiments.store import open_store
from tests.conftest import ITEMS, SEGMENTS, click_probability
from tests.hosts import Hosts
from tests.live import free_port, wait_for as live_wait_for
from tests.replay import bare_replay

SERVING, LEARNERS, PORT = 3, 2, 8000
FAST = {"SILENT_LEARNER_INTERVAL_SECONDS": "0.1", "SILENT_LEARNER_GRACE_SECONDS": "0",
        "SILENT_MODEL_REFRESH_SECONDS": "0.2", "SILENT_SPEC_REFRESH_SECONDS": "0.2"}


wait_for = partial(live_wait_for, timeout=30.0)


def request(conn, method, path, body=None, key=None):
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    conn.request(method, path, None if body is None else json.dumps(body), headers)
    response = conn.getresponse()
    return response.status, json.loads(response.read() or b"{}")


class LoadClient:
    """Threads sending each slate to one serving host and its reward to the next; acknowledged ones are noted.

    ``addresses`` holds each serving host's (address, port).
    """

    def __init__(self, addresses, key, threads=4):
        self.addresses, self.key, self.stop = addresses, key, threading.Event()
        self.decisions, self.rewards, self.failures = [], [], []
        self._numbers, self._lock = itertools.count(), threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(seed,)) for seed in range(threads)]

    def start(self):
        for thread in self._threads:
            thread.start()

    def finish(self):
        self.stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self, seed):
        rng = np.random.default_rng(seed)
        conns = [http.client.HTTPConnection(*address, timeout=20) for address in self.addresses]
        while not self.stop.is_set():
            t = next(self._numbers)
            segment, event_id = SEGMENTS[t % 3], f"e-{t}"
            try:
                status, answer = request(conns[t % SERVING], "POST", "/v1/experiments/e/slate", {
                    "unit": f"user-{t}", "event_id": event_id, "candidates": ITEMS,
                    "context": {"user": {"segment": segment}}}, self.key)
                if status != 200:
                    raise AssertionError(f"slate {status}: {answer}")
                with self._lock:
                    self.decisions.append(event_id)
                first = answer["slate"][0]["id"]
                if rng.random() < click_probability(segment, first):
                    status, answer = request(conns[(t + 1) % SERVING], "POST", f"/v1/events/{event_id}/rewards",
                                             {"type": "click", "item": first, "id": f"r-{t}"}, self.key)
                    if status != 202:
                        raise AssertionError(f"reward {status}: {answer}")
                    with self._lock:
                        self.rewards.append(event_id)
            except (OSError, http.client.HTTPException, AssertionError) as exc:
                with self._lock:
                    self.failures.append(f"{event_id}: {exc!r}")
                return


def stored_once(pg_url, table):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        return dict(conn.execute(f"SELECT event_id, count(*) FROM {table} WHERE experiment = 'e' GROUP BY event_id"))


def test_three_serving_hosts_two_learners_one_killed_nothing_lost_or_doubled(pg_url, tmp_path):
    # Hosts listening beyond 127.0.0.1 refuse to start without keys.
    key = subprocess.run([sys.executable, "-m", "web", "keys", "create", "--role", "admin", "--db", pg_url],
                         capture_output=True, text=True, check=True).stdout.split()[0]
    hosts = Hosts(SERVING + LEARNERS, tmp_path)
    print(f"hosts in network namespaces: {hosts.isolated}")
    url = hosts.database_url(pg_url)
    env = {**os.environ, **FAST}
    # In namespaces every host binds the same port at its own address; otherwise each its own port.
    ports = [PORT if hosts.isolated else free_port() for _ in range(SERVING)]
    servers = [hosts.start(i, [sys.executable, "-m", "web", "serve", "--db", url, "--host", hosts.address(i),
                               "--port", str(ports[i]), "--workers", "1", "--no-learner"],
                           env, tmp_path / f"serve-{i}.log") for i in range(SERVING)]
    learners = [hosts.start(SERVING + i, [sys.executable, "-m", "web", "learn", "--db", url], env,
                            tmp_path / f"learn-{i}.log") for i in range(LEARNERS)]
    procs = servers + learners
    store = open_store(pg_url)
    load = None
    try:
        addresses = [(hosts.address(i), ports[i]) for i in range(SERVING)]
        conns = [http.client.HTTPConnection(*a, timeout=20) for a in addresses]
        wait_for(lambda: all(_healthy(c) for c in conns))
        assert request(conns[0], "POST", "/v1/experiments", {
            "key": "e", "status": "running", "slots": 1, "traffic": {"holdout": 0.0}, "reward": {"wait_seconds": 1},
            "learning": {"update_seconds": 0.3, "scaling": {"default": "raw"}}}, key)[0] == 201
        load = LoadClient(addresses, key)
        load.start()
        wait_for(lambda: (m := store.latest_model("e", with_blob=False)) and m["learned"] >= 50)
        holder = store.live_lease("learner:e", time.time())
        owner = next(p for p in learners if p.pid == holder["process"]["pid"])
        survivor = next(p for p in learners if p is not owner)
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        killed_at = time.monotonic()
        last_of_dead = store.latest_model("e", with_blob=False)  # it publishes no more; the survivor starts here
        assert last_of_dead["learner"] == holder["owner"]
        taken = wait_for(lambda: (h := store.live_lease("learner:e", time.time())) and h["token"] > holder["token"]
                         and h)
        moved_after = time.monotonic() - killed_at
        assert taken["process"]["pid"] == survivor.pid
        assert moved_after < 5, moved_after
        wait_for(lambda: store.latest_model("e", with_blob=False)["learner"] == taken["owner"])
        time.sleep(1.0)  # the survivor learns under load for a while
        load.finish()
        assert not load.failures, load.failures[:5]
        assert len(load.decisions) > 100
        print(f"{len(load.decisions)} decisions, {len(load.rewards)} rewards; ownership moved in {moved_after:.2f} s")

        assert stored_once(pg_url, "decisions") == {event_id: 1 for event_id in load.decisions}
        assert stored_once(pg_url, "rewards") == {event_id: 1 for event_id in load.rewards}
        total = len(load.decisions)
        wait_for(lambda: store.latest_model("e", with_blob=False)["learned"] == total)
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(timeout=60) == 0
        final = store.latest_model("e")
        assert final["learner"] == taken["owner"] and final["learned"] == total
        assert final["model"] == bare_replay(store, "e", ITEMS, final["args"], last_of_dead["learned"])
    finally:
        if load is not None:
            load.finish()
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except Exception:
                proc.kill()
                proc.wait()
        store.close()
        hosts.close()


def _healthy(conn):
    try:
        return request(conn, "GET", "/healthz")[0] == 200
    except (OSError, http.client.HTTPException):
        conn.close()
        return False
