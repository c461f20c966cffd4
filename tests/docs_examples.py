"""Run the console examples of a Markdown file as a reader would, and say where they differ.

A ```` ```console ```` block holds ``$ command`` lines (a line ending in ``\\``, or inside an open
quote, continues the command), each followed by the output it shows. The commands of one file run in order in one
bash session in a fresh folder, so files, variables and servers made by one example serve the
next. Other fenced blocks whose info string names a file (```` ```python file=rank.py ````) are
written to the folder when the reader reaches them. ``silent serve`` starts a live server on a
free port, and ``localhost:8000`` in later commands and files reaches it. Compared after masking times,
32-digit ids and API keys on both sides; ``...`` in a shown output stands for anything. JSON is
compared without the whitespace between its tokens, so a long answer may be shown wrapped.
"""
from __future__ import annotations

import os
import re
import select
import shlex
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.live import call, descendants, free_port

MASKS = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)"), "<time>"),
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d(?::\d\d)? UTC"), "<time>"),
    (re.compile(r"\b[0-9a-f]{32}\b"), "<id>"),
    (re.compile(r"\bsk_(shop|admin|ops|public)_[A-Za-z0-9_-]+"), r"sk_\1_<key>"),
]
FAST_LEARNER = {"SILENT_LEARNER_INTERVAL_SECONDS": "0.1", "SILENT_LEARNER_GRACE_SECONDS": "0",
                "SILENT_MODEL_REFRESH_SECONDS": "0.1", "SILENT_SPEC_REFRESH_SECONDS": "0.1"}
SERVE = re.compile(r"^silent serve\b(.*?)\s*&?\s*$", re.S)
ADDRESS = re.compile(r"(?:http://)?(?:localhost|127\.0\.0\.1):8000")


@dataclass
class Example:
    line: int  # where the command starts in the file
    command: str
    expected: list[str] = field(default_factory=list)


@dataclass
class File:
    line: int
    name: str
    text: str


def steps(path: Path) -> list:
    """The file's examples and named files, in reading order."""
    found: list = []
    text = path.read_text()
    for match in re.finditer(r"^```([^\n]*)\n(.*?)^```\s*$", text, re.S | re.M):
        info, body, line = match.group(1).strip(), match.group(2), text[:match.start()].count("\n") + 2
        named = re.search(r"\bfile=(\S+)", info)
        if named:
            found.append(File(line, named.group(1), body))
        elif info == "console":
            lines = body.splitlines()
            i = 0
            while i < len(lines):
                if lines[i].startswith("$ "):
                    command, start = [lines[i][2:]], line + i
                    while incomplete("\n".join(command)) and i + 1 < len(lines):
                        i += 1
                        command.append(lines[i])
                    found.append(Example(start, "\n".join(command)))
                else:
                    assert found and isinstance(found[-1], Example), f"{path}:{line + i}: output before any command"
                    found[-1].expected.append(lines[i])
                i += 1
    return found


def incomplete(command: str) -> bool:
    """A command continues on the next line after a trailing backslash or inside an open quote."""
    if command.endswith("\\"):
        return True
    try:
        shlex.split(command)
    except ValueError:
        return True
    return False


def mask(text: str) -> str:
    for pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    return text


def compact(text: str) -> str:
    """Drop the whitespace outside JSON strings."""
    out, in_string, escaped = [], False, False
    for char in text:
        if in_string:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            out.append(char)
            in_string = True
        elif not char.isspace():
            out.append(char)
    return "".join(out)


def wildcard(expected: str, actual: str) -> bool:
    pattern = "(?s:.*?)".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual) is not None


def differs(expected: list[str], actual: str) -> str | None:
    """None when the output is as shown, else a note of how it differs."""
    if expected and expected[0].lstrip().startswith(("{", "[")):
        want, got = compact(mask("\n".join(expected))), compact(mask(actual))
    else:
        want = "\n".join(re.sub(r"\s{2,}# .*$", "", line).rstrip() for line in map(mask, expected) if line.strip())
        want = "\n".join(line for line in want.splitlines() if line.strip())
        got = "\n".join(line.rstrip() for line in mask(actual).splitlines() if line.strip())
    return None if wildcard(want, got) else f"shown:\n{want}\n\ngot:\n{got}"


class Session:
    """One bash session in a folder, with the live servers its examples started."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.env = {name: value for name, value in os.environ.items() if not name.startswith("SILENT_")}
        self.env.update({"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                         "PYTHONUNBUFFERED": "1", "TZ": "UTC", **FAST_LEARNER})
        self.bash = subprocess.Popen(["bash", "--noprofile", "--norc"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=folder, env=self.env)
        self.servers: list[subprocess.Popen] = []
        self.port: int | None = None

    def run(self, command: str, shown_lines: int = 0, timeout: float = 900) -> tuple[int, str]:
        """Run one command as typed; return its exit status and its output (stdout and stderr).

        A server's output goes on while it runs: its first ``shown_lines`` lines are its output. The
        timeout is generous: ``silent demo`` takes minutes on a loaded 2-core machine.
        """
        command = self.local(command)
        serve = SERVE.match(command)
        if serve:
            return self._serve(shlex.split(serve.group(1)), shown_lines)
        marker = f"__done_{uuid.uuid4().hex}__"
        self.bash.stdin.write(f"{{ {command}\n}} </dev/null 2>&1\necho {marker} $?\n".encode())
        self.bash.stdin.flush()
        output = self._read_until(self.bash, re.compile(rf"{marker} (\d+)\n".encode()), timeout)
        found = re.search(rf"{marker} (\d+)\n".encode(), output)
        assert found, f"no end of output after {timeout} s: {output[-2000:]!r}"
        return int(found.group(1)), self._shown(output[:found.start()])

    def local(self, text: str) -> str:
        """Point ``localhost:8000`` at the live server the examples started."""
        return ADDRESS.sub(lambda m: m.group(0).replace("8000", str(self.port)), text) if self.port else text

    def _shown(self, output: bytes) -> str:
        text = output.decode("utf-8", "replace")
        return text.replace(f"127.0.0.1:{self.port}", "127.0.0.1:8000") if self.port else text

    @staticmethod
    def _read_until(proc: subprocess.Popen, pattern, timeout: float, lines: int | None = None) -> bytes:
        output, deadline, fd = b"", time.time() + timeout, proc.stdout.fileno()
        while time.time() < deadline:
            if pattern is not None and pattern.search(output):
                break
            if lines is not None and output.count(b"\n") >= lines:
                break
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                output += chunk
        return output

    def _serve(self, args: list[str], lines: int) -> tuple[int, str]:
        """``silent serve``: in the background on a free port, as a second terminal would run it."""
        port = free_port()
        if "--port" in args:
            args[args.index("--port") + 1] = str(port)
        else:
            args += ["--port", str(port)]
        proc = subprocess.Popen(["silent", "serve", *args], cwd=self.folder, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            if proc.poll() is not None:  # refused to start: its message is the example's output
                return proc.returncode, self._shown(proc.stdout.read())
            try:
                if call(f"http://127.0.0.1:{port}", "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        self.servers.append(proc)
        self.port = port
        return 0, self._shown(self._read_until(proc, None, 10, lines=lines) if lines else b"")

    def close(self) -> None:
        for proc in self.servers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    for pid in descendants(proc.pid):
                        os.kill(pid, signal.SIGKILL)
                    proc.kill()
                    proc.wait()
        self.bash.stdin.close()
        self.bash.wait(timeout=30)


def run_file(path: Path, folder: Path, skip=()) -> list[str]:
    """Run every step of one file in ``folder``; return one note per example that differs."""
    problems, session = [], Session(folder)
    try:
        for step in steps(path):
            if isinstance(step, File):
                (folder / step.name).write_text(session.local(step.text))
                continue
            if any(step.command.startswith(prefix) for prefix in skip):
                continue
            status, output = session.run(step.command, sum(1 for line in step.expected if line.strip()))
            where = f"{path.name}:{step.line}: $ {step.command}"
            if status != 0 and not any("rror" in line for line in step.expected):
                problems.append(f"{where}\nexit status {status}:\n{output}")
                continue
            note = differs(step.expected, output)
            if note:
                problems.append(f"{where}\n{note}")
    finally:
        session.close()
    return problems
