"""Separate hosts on one machine for multi-host tests: a network namespace each, with its own address.

As root, with ``ip`` and ``socat`` at hand, every host gets a network namespace joined
to a bridge of its own subnet (10.231.N.0/24), and sees the database only at the
bridge's address, where socat relays to PostgreSQL on 127.0.0.1 (the server listens
there only). Where the machine does not allow that, each host is a separate port on
127.0.0.1. Either way each host runs in its own working folder with its own temp
folder, and hosts share nothing but the database URL. ``isolated`` says which.
"""
from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time

PG_PORT = 5432


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _wait_for_port(address: str, port: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection((address, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {address}:{port}")


def _free_subnet() -> str:
    """A 10.231.N subnet no interface of this machine uses (another test run may hold one)."""
    try:
        taken = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        taken = ""
    free = [n for n in range(1, 255) if f" 10.231.{n}." not in taken]
    return f"10.231.{random.choice(free)}"


class Hosts:
    """``count`` hosts; ``command(i, argv)`` runs argv on host i, ``address(i)`` is where it can be reached."""

    def __init__(self, count: int, folder):
        self.count, self.isolated = count, False
        self.folders = [os.path.join(folder, f"host-{i}") for i in range(count)]
        for path in self.folders:
            os.makedirs(path, exist_ok=True)
        tag = f"{os.getpid() % 100000}{random.randrange(100):02d}"
        self.bridge, self.spaces, self.relay = f"sbr{tag}", [f"silent-{tag}-{i}" for i in range(count)], None
        self.subnet = _free_subnet()
        self._made: list[tuple[str, ...]] = []
        if os.geteuid() == 0 and shutil.which("ip") and shutil.which("socat"):
            try:
                self._isolate()
                self.isolated = True
            except (subprocess.SubprocessError, OSError, RuntimeError):
                self.close()

    def _isolate(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        self._made.append(("link", "del", self.bridge))
        _ip("addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i, space in enumerate(self.spaces):
            _ip("netns", "add", space)
            self._made.append(("netns", "del", space))
            outside, inside = f"{self.bridge}h{i}", f"{self.bridge}n{i}"
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            self._made.append(("link", "del", outside))
            _ip("link", "set", inside, "netns", space)
            _ip("link", "set", outside, "master", self.bridge)
            _ip("link", "set", outside, "up")
            _ip("-n", space, "addr", "add", f"{self.address(i, isolated=True)}/24", "dev", inside)
            _ip("-n", space, "link", "set", inside, "up")
            _ip("-n", space, "link", "set", "lo", "up")
        self.relay = subprocess.Popen(["socat", f"TCP-LISTEN:{PG_PORT},bind={self.subnet}.1,fork,reuseaddr",
                                       f"TCP:127.0.0.1:{PG_PORT}"], stderr=subprocess.DEVNULL)
        _wait_for_port(f"{self.subnet}.1", PG_PORT)
        subprocess.run(["ip", "netns", "exec", self.spaces[0], "python3", "-c",
                        f"import socket; socket.create_connection(('{self.subnet}.1', {PG_PORT}), timeout=3)"],
                       check=True, capture_output=True, timeout=10)

    def address(self, i: int, isolated: bool | None = None) -> str:
        return f"{self.subnet}.{10 + i}" if (self.isolated if isolated is None else isolated) else "127.0.0.1"

    def database_url(self, url: str) -> str:
        """The URL as the hosts reach the database (the relay on the bridge when isolated)."""
        return url.replace(f"@127.0.0.1:{PG_PORT}/", f"@{self.subnet}.1:{PG_PORT}/") if self.isolated else url

    def start(self, i: int, argv: list[str], env: dict, log_path) -> subprocess.Popen:
        """Run argv on host i, in its working folder with its own temp folder; output goes to log_path."""
        prefix = ["ip", "netns", "exec", self.spaces[i]] if self.isolated else []  # exec, so the pid is argv's
        with open(log_path, "ab") as log:
            return subprocess.Popen(prefix + argv, cwd=self.folders[i], env={**env, "TMPDIR": self.folders[i]},
                                    stdout=log, stderr=subprocess.STDOUT)

    def close(self) -> None:
        if self.relay is not None:
            self.relay.terminate()
            self.relay.wait(timeout=10)
            self.relay = None
        for args in reversed(self._made):
            subprocess.run(["ip", *args], capture_output=True, timeout=10)
        self._made = []
