"""A learner process with an archive, for the kill -9 tests: ``python -m tests.archive_child DB FOLDER [CRASH]``
(DB: a SQLite file or a PostgreSQL URL).

It learns and archives until every decision is archived, then exits 0. ``CRASH``
is ``fsync:N`` (die at the N-th fsync: files written, nothing committed) or
``replace:N`` (die at the N-th rename: committed, not yet renamed); the process
sends itself SIGKILL there, exactly as if it had been killed at that instant.
"""
import os
import signal
import sys
import time

from experiments.clock import SystemClock
from experiments.learner import Learner
from experiments.reporting.archive import Archive
from experiments.store import open_store


def die_at(name: str, n: int) -> None:
    real, calls = getattr(os, name), [0]

    def call(*args):
        calls[0] += 1
        if calls[0] == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args)
    setattr(os, name, call)


def main(db: str, folder: str, crash: str = "") -> None:
    if crash:
        name, n = crash.split(":")
        die_at(name, int(n))
    store = open_store(db)
    total = store.counts("exp")["decisions"]
    learner = Learner(store, SystemClock(), archive=Archive(store, folder, batch_rows=250, after_seconds=0.0))
    print("started", flush=True)
    last = store.position_of(store.query_one("SELECT max(seq) AS s FROM decisions")["s"])
    while store.archive_position("exp") < last or not total:
        learner.run_once(force_publish=True)
        time.sleep(0.01)
    store.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
