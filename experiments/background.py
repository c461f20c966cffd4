"""Background replays (evaluations, feature importances) that stop when the process exits.

They run in daemon threads so a stopping server never waits for a long replay. But a daemon
thread still writing (a log line, say) while the interpreter finalises aborts the whole process
("could not acquire lock for <stderr> at interpreter shutdown"), so at exit each replay is asked to
stop at its next progress report and is waited for, briefly. A replay stopped that way is failed as
interrupted, as one whose process died is once its heartbeat goes stale; it can be asked for again.
"""
from __future__ import annotations

import atexit
import threading
import time

INTERRUPTED = "interrupted: the process computing it stopped"
EXIT_WAIT_SECONDS = 5.0

_stopping = threading.Event()
_running: set[threading.Thread] = set()
_lock = threading.Lock()


class Stopped(Exception):
    """The process is exiting: a background replay gives up at its next progress report."""


def start(target, *args, name: str) -> None:
    """Run ``target(*args)`` in a daemon thread that exit waits for (``EXIT_WAIT_SECONDS`` at most)."""
    thread = threading.Thread(target=_run, args=(target, args), name=name, daemon=True)
    with _lock:
        _running.add(thread)
    thread.start()


def stopping() -> bool:
    """Tell whether the process is exiting."""
    return _stopping.is_set()


def check() -> None:
    """Raise ``Stopped`` once the process is exiting; replays call it as they report progress."""
    if _stopping.is_set():
        raise Stopped(INTERRUPTED)


def _run(target, args) -> None:
    try:
        target(*args)
    finally:
        with _lock:
            _running.discard(threading.current_thread())


@atexit.register
def _stop_all() -> None:
    _stopping.set()
    deadline = time.monotonic() + EXIT_WAIT_SECONDS
    with _lock:
        threads = list(_running)
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
