"""How serving processes end: with their parent, and without resetting a connection they accepted.

``die_with_parent``: a child of ``silent serve`` asks the kernel for SIGTERM when its
parent dies (``PR_SET_PDEATHSIG``, Linux) and also watches a pipe whose only write
end the parent holds; the pipe reads end-of-file when the parent is gone, however
it died, on any POSIX system. Either way the child stops gracefully, so a
``kill -9`` of the supervisor leaves no gunicorn serving and no learner learning.

``DrainingArbiter`` and ``DrainingWorker``: on a graceful stop the gunicorn master
first makes the listening socket refuse new connections (a socket filter dropping
every SYN that opens a handshake, which then ends in "connection refused", never in
a reset; a handshake already under way still completes into the queue), and each
sync worker, before it exits, answers every connection the kernel had
already accepted into the socket's queue. Plain gunicorn closes the socket with
that queue still full, and each queued client gets a reset.
"""
from __future__ import annotations

import ctypes
import errno
import os
import signal
import socket
import threading
import time

from gunicorn.arbiter import Arbiter
from gunicorn.workers.sync import SyncWorker

PR_SET_PDEATHSIG = 1
SO_ATTACH_FILTER = 26
# Classic BPF opcodes; a TCP socket's filter sees the packet from its TCP header on.
BPF_LDB_ABS, BPF_AND_K, BPF_JEQ_K, BPF_RET_K = 0x30, 0x54, 0x15, 0x06
TCP_FLAGS_OFFSET, TCP_SYN, TCP_ACK = 13, 0x02, 0x10


def dropping(flags: int) -> tuple:
    """A classic BPF program dropping the packets whose SYN and ACK bits read ``flags``; keeping the rest."""
    return ((BPF_LDB_ABS, 0, 0, TCP_FLAGS_OFFSET), (BPF_AND_K, 0, 0, TCP_SYN | TCP_ACK), (BPF_JEQ_K, 0, 1, flags),
            (BPF_RET_K, 0, 0, 0), (BPF_RET_K, 0, 0, 0xFFFFFFFF))


OPENING_SYN_DROPPED = dropping(TCP_SYN)  # a handshake's opening


def die_with_parent(parent_pid: int, watch_fd: int | None = None, signum: int = signal.SIGTERM) -> None:
    """Send ``signum`` to this process when ``parent_pid`` dies (also when it already has)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the pipe alone tells
        pass
    if watch_fd is not None:
        threading.Thread(target=_watch, args=(watch_fd, signum), name="parent-watch", daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before prctl could see it
        os.kill(os.getpid(), signum)


def _watch(fd: int, signum: int) -> None:
    while True:
        try:
            if not os.read(fd, 1):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    os.kill(os.getpid(), signum)


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def refuse_new_connections(listener) -> bool:
    """Drop every new handshake on a listening TCP socket; queued connections stay acceptable.

    A client whose SYN is dropped retries it and, once the socket is closed, gets
    "connection refused" (or reaches the next server on that port). Only the opening
    SYN is dropped: a client whose SYN arrived before the filter believes itself
    connected and sends its request, so its final ACK must still reach the queue
    (dropping it too left that client to a reset when the socket closed, now and then
    under load). Returns False where the system has no socket filters.
    """
    try:
        attach_filter(listener, OPENING_SYN_DROPPED)
    except OSError:
        return False
    return True


def attach_filter(sock, rules) -> None:
    """Attach a classic BPF program given as (code, jt, jf, k) rows to a socket."""
    array = (_SockFilter * len(rules))(*(_SockFilter(*r) for r in rules))
    program = _SockFprog(len(rules), ctypes.cast(array, ctypes.POINTER(_SockFilter)))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(program))


class DrainingArbiter(Arbiter):
    """The gunicorn master: a graceful stop refuses new connections before the workers drain the queue."""

    def stop(self, graceful=True):
        if graceful:
            for listener in self.LISTENERS:
                refuse_new_connections(listener)
        super().stop(graceful)


class DrainingWorker(SyncWorker):
    """A sync worker that, stopping, answers every connection already in the listening socket's queue."""

    def run(self):
        super().run()
        self.drain()

    def drain(self) -> None:
        """Accept and answer queued connections until the queue stays empty for a few milliseconds."""
        deadline = time.monotonic() + self.cfg.graceful_timeout
        quiet = 0
        while quiet < 3 and time.monotonic() < deadline:
            answered = False
            for listener in self.sockets:
                try:
                    self.accept(listener)
                    answered = True
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                        raise
            quiet = 0 if answered else quiet + 1
            if not answered:
                time.sleep(0.005)
