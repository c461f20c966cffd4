"""Process lifecycle with real processes: children die with `silent serve`, one learner, fenced publishing."""
import fcntl
import json
import os
import signal
import socket
import sqlite3
import time

from tests.live import Server, alive, call, descendants, wait_for
from tests.test_web_serving import SPEC, drive


def models(db):
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT version, learned, learner FROM models ORDER BY version").fetchall()
    finally:
        conn.close()


def learner_pid(server) -> int:
    return next(pid for pid in descendants(server.proc.pid)
                if b"web.serving\x00learner" in open(f"/proc/{pid}/cmdline", "rb").read())


def owner(server) -> str:
    """The lease owner name of a server's learner, as it signs its models."""
    conn = sqlite3.connect(server.db)
    try:
        holder = json.loads(conn.execute("SELECT value FROM meta WHERE name = 'lease:learner'").fetchone()[0])
    finally:
        conn.close()
    return holder["owner"]


def port_is_free(port) -> bool:
    """True when nothing listens on the port (connections in TIME_WAIT do not count, as for gunicorn)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def stall_outside_the_write_lock(pid, db):
    """SIGSTOP a process at a moment it holds no write lock (a stall inside one stalls every writer)."""
    with open(db + ".lock", "a") as lock:
        while True:
            os.kill(pid, signal.SIGSTOP)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.kill(pid, signal.SIGCONT)
                time.sleep(0.05)
                continue
            fcntl.flock(lock, fcntl.LOCK_UN)
            return


def test_killing_the_supervisor_takes_gunicorn_and_the_learner_with_it(tmp_path):
    db = str(tmp_path / "orphans.db")
    server = Server(db, workers=2, own_group=True)
    call(server.base, "POST", "/v1/experiments", SPEC)
    drive(server.base, 5)
    children = descendants(server.proc.pid)
    assert len(children) == 4  # gunicorn master, two workers, the learner
    os.killpg(server.proc.pid, signal.SIGKILL)  # the supervisor's group; the children run in their own
    server.proc.wait()
    wait_for(lambda: not alive(children) and port_is_free(server.port))
    again = Server(db, port=server.port, workers=1)  # the same port and file start cleanly
    try:
        assert call(again.base, "GET", "/v1/experiments/home")[1]["counts"]["decisions"] == 5
    finally:
        again.stop()


def test_after_a_crash_the_new_learner_takes_over_at_once(tmp_path):
    db = str(tmp_path / "crash.db")
    env = {"SILENT_LEARNER_LEASE_SECONDS": "3600"}  # a lease that would outlive the test if it had to run out
    server = Server(db, workers=1, env=env)
    call(server.base, "POST", "/v1/experiments", SPEC)
    drive(server.base, 10)
    wait_for(lambda: (call(server.base, "GET", "/v1/experiments/home")[1]["model"] or {}).get("learned") == 10)
    everything = descendants(server.proc.pid) | {server.proc.pid}
    for pid in everything:  # a crash of the whole service: nobody hands the lease back
        os.kill(pid, signal.SIGKILL)
    server.proc.wait()
    wait_for(lambda: not alive(everything))
    again = Server(db, port=server.port, workers=1, env=env)
    try:
        drive(again.base, 10)
        wait_for(lambda: (call(again.base, "GET", "/v1/experiments/home")[1]["model"] or {}).get("learned") == 20)
    finally:
        again.stop()
    owners = [learner for _, _, learner in models(db)]
    assert len(set(owners)) == 2 and owners == sorted(owners, key=owners.index)  # one lineage, two learners


def test_a_stalled_learner_publishes_nothing_once_another_took_over(tmp_path):
    db = str(tmp_path / "stall.db")
    env = {"SILENT_LEARNER_LEASE_SECONDS": "1"}
    first = Server(db, workers=1, env=env)
    second, stalled = None, None
    try:
        call(first.base, "POST", "/v1/experiments", SPEC)
        drive(first.base, 10)
        wait_for(lambda: models(db))
        stalled = learner_pid(first)
        stall_outside_the_write_lock(stalled, db)
        second = Server(db, workers=1, env=env)
        drive(second.base, 10)
        wait_for(lambda: models(db)[-1][1:] == (20, owner(second)))  # the second learner took over
        taken_over = models(db)[-1][0]
        os.kill(stalled, signal.SIGCONT)  # wakes up believing it still holds the lease
        drive(first.base, 5)
        wait_for(lambda: models(db)[-1][1] == 25)
        first.stop()  # its last act would be a final publish
        first = None
    finally:
        if stalled and alive([stalled]):
            os.kill(stalled, signal.SIGCONT)
        for server in (first, second):
            if server:
                server.stop()
    after = [m for m in models(db) if m[0] >= taken_over]
    assert len({learner for _, _, learner in after}) == 1 and after[-1][1] == 25


def test_refusing_new_connections_lets_a_handshake_under_way_complete():
    """The race behind a rare reset at shutdown: SYN seen before the filter, the final ACK after it."""
    from web.lifecycle import TCP_ACK, attach_filter, dropping, refuse_new_connections

    with socket.socket() as listener, socket.socket() as shopper, socket.socket() as latecomer:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        # Hold the handshake half-way: drop the shopper's ACKs (its request rides on one too).
        attach_filter(listener, dropping(TCP_ACK))
        shopper.settimeout(5)
        shopper.connect(("127.0.0.1", port))  # the shopper thinks itself connected
        shopper.sendall(b"GET / HTTP/1.0\r\n\r\n")
        listener.settimeout(0.3)
        try:
            listener.accept()
            raise AssertionError("the held handshake reached the queue")
        except TimeoutError:
            pass
        assert refuse_new_connections(listener)  # the stop begins with the handshake under way
        listener.settimeout(5)
        accepted, _ = listener.accept()  # the retransmitted request completes the handshake
        with accepted:
            assert accepted.recv(100).startswith(b"GET / ")
        latecomer.settimeout(0.5)
        try:
            latecomer.connect(("127.0.0.1", port))
            raise AssertionError("a new connection was accepted after the stop began")
        except TimeoutError:
            pass
