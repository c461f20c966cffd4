"""Vet a model file from outside (VW, or the retired Personalizer) before anything loads it in-process.

A model file is parsed by VW's C++ code, so a malformed or hostile one could crash or
hang the process that loads it, or make it allocate without bound (a 32-bit weight
table). ``inspect_model`` therefore loads it in a separate, short-lived Python process
that limits its own memory, CPU time, open files and file writes, asks it for the options
stored in the model and its learners, and has it rank one example. Only a model that
passed is ever loaded by a server process.

Run as ``python -m bandit.model_import PATH`` it is that child: it prints one JSON line.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from dataclasses import dataclass

MEMORY_BYTES = 2 * 1024**3  # address space of the child: VW, numpy and a model of up to ~26 bits
CPU_SECONDS = 20
WALL_SECONDS = 30
MAX_OUTPUT = 64 * 1024


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
