"""Production serving: gunicorn sync workers plus exactly one learner process per database.

``silent serve`` runs a small supervisor with two children in their own
process groups: the gunicorn master (which forks the workers) and the learner.
On SIGTERM or Ctrl+C the supervisor first stops gunicorn gracefully: it refuses
new connections, answers every one it had accepted, and commits their decisions;
then it stops the learner, which learns what has closed and publishes a final
snapshot. Children die with the supervisor however it ends (``web.lifecycle``),
gracefully too. Workers never learn; they reload the newest snapshot within
``MODEL_REFRESH_SECONDS``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import uuid

# Workers never checkpoint: SQLite runs an automatic checkpoint inside the committing
# statement, that is under our write lock, and every other writer would wait for it.
WORKER_SETTINGS = {"LEARNER_THREAD": False, "WAL_AUTOCHECKPOINT": 0}


def default_workers() -> int:
    return os.cpu_count() or 1


def gunicorn_main(options: dict, config: dict) -> None:
    """Run the gunicorn master in this process (the supervisor's first child)."""
    from gunicorn.app.base import BaseApplication

    from web.lifecycle import DrainingArbiter

    class SilentApplication(BaseApplication):
        def load_config(self):
            for key, value in options.items():
                self.cfg.set(key, value)
            self.cfg.set("child_exit", _child_exit)  # functions: they cannot travel in the JSON payload
            self.cfg.set("post_fork", _post_fork)

        def load(self):
            from web import create_app

            return create_app({**config, **WORKER_SETTINGS})

        def run(self):
            DrainingArbiter(self).run()

    SilentApplication().run()


def _post_fork(server, worker) -> None:
    """In a new worker: stop (gracefully) when the gunicorn master dies."""
    from web.lifecycle import die_with_parent

    die_with_parent(server.pid)


def _child_exit(server, worker) -> None:
    """Tell prometheus-client that a worker's metric files belong to a dead process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def gunicorn_options(host: str, port: int, workers: int) -> dict:
    return {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "web.lifecycle.DrainingWorker",
        "timeout": 30,
        "graceful_timeout": 30,
        "keepalive": 2,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
    }


def learner_main(config: dict) -> None:
    """Run the learner until SIGTERM, then publish (the supervisor's second child)."""
    from experiments.clock import DatabaseClock, SystemClock
    from experiments.learner import Learner
    from experiments.store import is_url, open_store
    from web.settings import MB, archive_from, learner_memory, resolve_settings

    settings = resolve_settings(config, os.environ)
    os.nice(10)  # learning can wait a moment; a shopper's page view cannot
    store = open_store(settings["DATABASE"], wal_autocheckpoint=0,  # it checkpoints between passes, unlocked
                       wal_limit_bytes=settings["WAL_LIMIT_MB"] * MB)
    clock = DatabaseClock(store) if is_url(settings["DATABASE"]) else SystemClock()
    learner = Learner(store, clock, grace_seconds=settings["LEARNER_GRACE_SECONDS"],
                      lease_owner=f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
                      lease_seconds=settings["LEARNER_LEASE_SECONDS"], checkpoints=True,
                      archive=archive_from(store, settings), **learner_memory(settings))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    learner.run_forever(stop, settings["LEARNER_INTERVAL_SECONDS"])
    store.checkpoint(full=True)  # the workers have stopped: leave a small WAL behind
    store.close()


class Supervisor:
    """Start gunicorn and the learner; stop them in the order that loses nothing."""

    def __init__(self, db: str, host: str, port: int, workers: int, config: dict | None = None,
                 learner: bool = True):
        """``learner=False`` serves only: learners run elsewhere (``silent learn``, on a PostgreSQL database)."""
        self.db, self.host, self.port, self.workers, self.learner = db, host, port, workers, learner
        self.config = {**(config or {}), "DATABASE": db}
        self._children: dict[str, subprocess.Popen] = {}
        self._stopping = threading.Event()
        self._lifeline: int | None = None  # the write end of the pipe the children watch

    def _spawn(self, role: str, payload: dict, watch_fd: int) -> subprocess.Popen:
        payload = {**payload, "parent": os.getpid(), "watch_fd": watch_fd}
        return subprocess.Popen([sys.executable, "-m", "web.serving", role, json.dumps(payload)],
                                start_new_session=True, pass_fds=(watch_fd,))

    def start(self) -> None:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="silent-metrics-"))
        from experiments.store import open_store

        open_store(self.db).close()  # migrate once before the workers race to do it
        watch_fd, self._lifeline = os.pipe()
        try:
            self._children["gunicorn"] = self._spawn("gunicorn", {
                "options": gunicorn_options(self.host, self.port, self.workers),
                "config": self.config}, watch_fd)
            if self.learner:
                self._children["learner"] = self._spawn("learner", {"config": self.config}, watch_fd)
        finally:
            os.close(watch_fd)

    def wait(self) -> int:
        """Block until stopped by a signal or until a child dies; return the exit code."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self._stopping.set())
        while not self._stopping.wait(0.2):
            for name, child in self._children.items():
                if child.poll() is not None:
                    print(f"silent: the {name} process exited ({child.returncode}); stopping", file=sys.stderr)
                    self.stop()
                    return 1
        self.stop()
        return 0

    def stop(self) -> None:
        for name in ("gunicorn", "learner"):  # drain requests first, then let the learner publish
            child = self._children.get(name)
            if child and child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None
        from experiments.store import open_store

        store = open_store(self.db)
        try:
            store.checkpoint(full=True)  # nobody writes any more: leave a small WAL behind
        finally:
            store.close()


def main(argv: list[str]) -> None:
    from web.lifecycle import die_with_parent

    role, payload = argv[0], json.loads(argv[1])
    die_with_parent(payload["parent"], payload["watch_fd"])
    if role == "gunicorn":
        gunicorn_main(payload["options"], payload["config"])
    elif role == "learner":
        learner_main(payload["config"])
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
