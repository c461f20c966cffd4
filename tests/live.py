"""A live `silent serve` on 127.0.0.1 for tests that need real processes."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class Server:
    """``silent serve`` in a subprocess with fast learner settings; ``stop`` sends SIGTERM.

    ``own_group`` starts it as a shell would, leading its own process group.
    """

    def __init__(self, db, port=None, workers=1, env=None, own_group=False):
        port = self.port = port or free_port()
        self.db = db
        self.base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "SILENT_LEARNER_INTERVAL_SECONDS": "0.1", "SILENT_LEARNER_GRACE_SECONDS": "0",
               "SILENT_MODEL_REFRESH_SECONDS": "0.1", "SILENT_SPEC_REFRESH_SECONDS": "0.1", **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "web", "serve", "--db", db, "--port", str(port),
                                      "--workers", str(workers)],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=own_group)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if call(self.base, "GET", "/healthz")[0] == 200:
                    return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not start")

    def stop(self):
        """SIGTERM and wait for the output; a server that does not stop is killed with its children."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            output, _ = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            for pid in descendants(self.proc.pid):
                os.kill(pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.communicate()
            raise
        return output


def descendants(pid: int) -> set[int]:
    """Return the pids of every living process below ``pid`` (children, grandchildren ...)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids) -> set[int]:
    """Return the pids that still run (zombies count as gone)."""
    living = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] != "Z":
                    living.add(pid)
        except OSError:
            continue
    return living


def wait_for(predicate, timeout=15.0):
    """Return the predicate's first truthy value, polled every 50 ms for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not reached in {timeout} s")


