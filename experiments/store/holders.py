"""Who holds a lease, precisely enough to tell at once that a holder on this machine has died.

A holder is its host name, the kernel's boot id and pid namespace, its pid and that
pid's start time: a pid reused by another process after a crash, a reboot, or a
container with its own pid numbering never passes for the old holder. Holders on
other machines cannot be checked; their lease simply runs out.
"""
from __future__ import annotations

import functools
import os
import socket


def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str:
    """Return a process's start time in clock ticks since boot ('' when it does not exist)."""
    stat = _read(f"/proc/{pid}/stat")
    # The command name (field 2) may contain spaces and parentheses; the fields after it do not.
    return stat.rsplit(")", 1)[1].split()[19] if ")" in stat else ""


@functools.lru_cache(maxsize=1)
def _machine() -> tuple[str, str, str]:
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return socket.gethostname(), _read("/proc/sys/kernel/random/boot_id"), namespace


def this_process() -> dict:
    """Describe the calling process as a lease holder."""
    host, boot, namespace = _machine()
    pid = os.getpid()
    return {"host": host, "boot": boot, "pidns": namespace, "pid": pid, "started": _start_time(pid)}


def is_dead(holder: dict) -> bool:
    """Return True when ``holder`` ran on this machine and its process is gone; False when unsure."""
    host, boot, namespace = _machine()
    if not holder or holder.get("host") != host or holder.get("pidns") != namespace or not holder.get("pid"):
        return False  # another machine, container or an old-style lease: wait for it to expire
    if holder.get("boot") != boot:
        return True  # this machine rebooted since
    started = holder.get("started")
    if started and os.path.exists("/proc/self/stat"):
        return _start_time(int(holder["pid"])) != started
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
