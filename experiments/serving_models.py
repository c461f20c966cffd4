"""The models a serving process answers with: the newest snapshot per experiment, within a memory budget.

Each process checks for newer snapshots every ``refresh_seconds``. A policy not used
for ``idle_seconds``, or the least recently used one when the policies together
would pass ``budget_bytes``, is dropped and loaded again from the newest snapshot
on its next request; a request still using a dropped policy keeps it until it ends.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

from bandit.allocator import release_free_memory
from bandit.policy import Policy
from experiments import models
from experiments.model_memory import DEFAULT_BUDGET_BYTES, DEFAULT_IDLE_SECONDS, to_evict


@dataclass
class _Served:
    newest: int  # the newest published version when this policy was chosen
    identity: tuple  # the settings it serves (VW command line and scaling)
    version: int  # the version this policy is (0: an empty model)
    policy: Policy
    used_at: float
    size: int


class ServingModels:
    """The newest published model of each experiment, reloaded when a newer one appears."""

    def __init__(self, store, clock, refresh_seconds: float = 1.0, budget_bytes: int = DEFAULT_BUDGET_BYTES,
                 idle_seconds: float = DEFAULT_IDLE_SECONDS):
        self.store = store
        self.clock = clock
        self.refresh_seconds = refresh_seconds
        self.budget_bytes = budget_bytes
        self.idle_seconds = idle_seconds
        self._models: dict[str, _Served] = {}
        self._versions: dict[str, int] = {}
        self._checked_at = float("-inf")
        self._lock = threading.Lock()

    def _refresh(self, now: float) -> None:
        if now - self._checked_at >= self.refresh_seconds:
            self._versions = self.store.model_versions()
            self._checked_at = now
            self._evict(now)

    def _evict(self, now: float) -> None:
        entries = {key: (m.used_at, m.size) for key, m in self._models.items()}
        dropped = to_evict(entries, self.budget_bytes, now - self.idle_seconds)
        for key in dropped:
            del self._models[key]
        if dropped:
            release_free_memory()  # else the freed pages stay resident (bandit.allocator)

    def get(self, key: str, settings) -> tuple[int, Policy]:
        """Return (model version, policy) for an experiment's current settings."""
        identity = settings.identity()
        with self._lock:
            now = self.clock.now()
            self._refresh(now)
            newest = self._versions.get(key, 0)
            served = self._models.get(key)
            if served is None or served.newest != newest or served.identity != identity:
                served = self._models[key] = self._load(key, settings, identity, newest, now)
                if sum(m.size for m in self._models.values()) > self.budget_bytes:
                    self._evict(now)
            served.used_at = now
            return served.version, served.policy

    def _load(self, key: str, settings, identity: tuple, newest: int, now: float) -> _Served:
        row = self.store.latest_model(key) if newest else None
        if models.matches(row, settings):
            policy, version = models.load(row, settings), row["version"]
        else:  # no model yet, or settings changed and the learner is rebuilding
            policy, version = Policy(settings), row["version"] if row else 0
        return _Served(newest, identity, version, policy, now, policy.footprint())

    def cached(self) -> list[str]:
        """Return the experiments whose policy is in memory now."""
        with self._lock:
            return sorted(self._models)
