"""Vet a model file from outside (VW, or the retired Personalizer) before anything loads it in-process.

A model file is parsed by VW's C++ code, so a malformed or hostile one could crash or
hang the process that loads it, or make it allocate without bound (a 32-bit weight
table), and the options stored in its header are acted on by VW as it loads (a crafted
``--sendto`` or ``-p PATH`` would reach a socket or a file). ``inspect_model`` therefore
first reads the header in Python and puts its options and hash size through the same
allowlist as caller text, then loads the file in a separate, short-lived Python process
that limits its own memory, CPU time, open files and file writes, asks it for the options
stored in the model and its learners, and has it rank one example. Only a model that
passed both is ever loaded by a server process.

Run as ``python -m bandit.model_import PATH`` it is that child: it prints one JSON line.
"""
from __future__ import annotations

import json
import os
import re
import resource
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from bandit.exploration import SettingError
from bandit.vw_args import MAX_BIT_PRECISION, MAX_LENGTH, parse_vw_args

MEMORY_BYTES = 2 * 1024**3  # address space of the child: VW, numpy and a model of up to ~26 bits
CPU_SECONDS = 20
WALL_SECONDS = 30
MAX_OUTPUT = 64 * 1024
# Options every saved contextual-bandit model records (VW's own reduction stack) or that the
# retired service wrote for its own bookkeeping: read and dropped, never acted on by us.
MODEL_BOOKKEEPING = frozenset({"cb_adf", "cb_explore_adf", "ccb_explore_adf", "cb_sample", "csoaa_ldf",
                               "csoaa_rank", "id", "save_resume", "preserve_performance_counters", "quiet"})
_VERSION = re.compile(r"[89]\.\d+\.\d+")


class ModelImportError(ValueError):
    """The file is not a usable contextual bandit model; ``reason`` says why."""


@dataclass(frozen=True)
class ModelInfo:
    """What the model file itself says: its stored VW options and whether it ranks slates."""

    arguments: str
    slate: bool


def limit_this_process() -> None:
    """Cap the child's memory, CPU time, open files and file writes (it sets them on itself, first thing)."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


def inspect_model(blob: bytes) -> ModelInfo:
    """Load ``blob`` in a limited child process; return what it stores, or raise ModelImportError."""
    if not blob:
        raise ModelImportError("the model file is empty")
    vet_header(blob)
    with tempfile.TemporaryDirectory(prefix="silent-model-") as folder:
        path = os.path.join(folder, "model.vw")
        with open(path, "wb") as fh:
            fh.write(blob)
        try:
            done = subprocess.run([sys.executable, "-m", "bandit.model_import", path], cwd=folder,
                                  capture_output=True, timeout=WALL_SECONDS, start_new_session=True,
                                  env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(sys.path)})
        except subprocess.TimeoutExpired:
            raise ModelImportError(f"loading the model took longer than {WALL_SECONDS} s") from None
    if done.returncode != 0 or not done.stdout:
        raise ModelImportError("Vowpal Wabbit cannot load it as a model" + _exit_reason(done.returncode))
    try:
        found = json.loads(done.stdout[:MAX_OUTPUT].decode())
    except ValueError:
        raise ModelImportError("Vowpal Wabbit cannot load it as a model") from None
    return ModelInfo(str(found["arguments"]), bool(found["slate"]))


class _Header:
    """Read VW's model header the way VW writes it: little-endian u32 lengths before each string."""

    def __init__(self, blob: bytes):
        self.blob, self.at = blob, 0

    def take(self, size: int) -> bytes:
        if self.at + size > len(self.blob):
            raise ModelImportError("the file ends inside its Vowpal Wabbit header")
        chunk, self.at = self.blob[self.at:self.at + size], self.at + size
        return chunk

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def text(self, most: int, what: str) -> str:
        size = self.u32()
        if size > most:
            raise ModelImportError(f"its header's {what} is {size} bytes long, more than {most}")
        try:
            return self.take(size).rstrip(b"\0").decode("ascii")
        except UnicodeDecodeError:
            raise ModelImportError(f"its header's {what} is not plain text") from None


def header_options(blob: bytes) -> tuple[str, int]:
    """Return (the VW options a model file stores, its bit precision), read without VW.

    >>> import struct
    >>> def s(b): return struct.pack("<I", len(b)) + b
    >>> blob = s(b"9.11.9\\0") + s(b"\\0") + b"m" + bytes(8) + struct.pack("<4I", 18, 0, 0, 0) + s(b" --epsilon 0.2\\0")
    >>> header_options(blob)
    (' --epsilon 0.2', 18)
    """
    header = _Header(blob)
    version = header.text(32, "version")
    if not _VERSION.fullmatch(version):
        raise ModelImportError("it is not a Vowpal Wabbit 8 or 9 model file")
    header.text(1024, "model id")
    if header.take(1) != b"m":
        raise ModelImportError("it is not a Vowpal Wabbit model file")
    header.take(8)  # the label range
    bits, lda, ngrams, skips = (header.u32() for _ in range(4))
    if lda or ngrams or skips:
        raise ModelImportError("it is an LDA or n-gram model, not a contextual bandit")
    return header.text(4 * MAX_LENGTH, "options"), bits


def vet_header(blob: bytes) -> None:
    """Refuse a model whose stored options or hash size caller text could not set (files, sockets, exits)."""
    options, bits = header_options(blob)
    if not 1 <= bits <= MAX_BIT_PRECISION:
        raise ModelImportError(f"its weight table has {bits} bits; at most {MAX_BIT_PRECISION} are allowed")
    try:
        parse_vw_args(options, "model", ignore=MODEL_BOOKKEEPING)
    except SettingError as exc:
        raise ModelImportError(f"the options stored in it are refused: {exc.message}") from None


def _exit_reason(code: int) -> str:
    if code < 0:
        return f" (the loader was stopped by signal {-code}: out of memory or time, or it crashed)"
    return ""


def _probe(path: str) -> dict:
    """Load the model, check it is a contextual bandit over action lists, and rank one example."""
    import vowpalwabbit

    ws = vowpalwabbit.Workspace(f"--quiet --no_stdin -i {path}")
    try:
        learners = set(ws.get_enabled_learners())
        slate = "ccb_explore_adf" in learners
        if not slate and not any(name.startswith("cb_explore_adf") for name in learners):
            raise SystemExit(3)  # not a --cb_explore_adf or --ccb_explore_adf model
        if slate:
            ws.predict(["ccb shared |User a", "ccb action |Action id=x", "ccb action |Action id=y", "ccb slot |"])
        else:
            ws.predict(["shared |User a", "|Action id=x", "|Action id=y"])
        return {"arguments": ws.get_arguments(), "slate": slate}
    finally:
        ws.finish()


if __name__ == "__main__":
    limit_this_process()
    print(json.dumps(_probe(sys.argv[1])))
