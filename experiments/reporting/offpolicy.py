"""Off-policy estimates: what other policies would have earned on the logged decisions.

Each target policy is a function from a logged decision to a probability over
its candidates. IPS, SNIPS and DR (``bandit.estimators``) then weigh the logged
first-slot reward by target / logged probability of the logged first-slot
action. Slates are evaluated on their first slot, the slot every policy's
distribution describes. The DR reward model is the mean first-slot reward of
each item in the same sample, shrunk towards the overall mean.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from bandit import estimators
from bandit.encoding import action_text, context_text
from bandit.policy import PolicySettings
from experiments import models

SHRINKAGE = 1.0  # pseudo-observations of the overall mean in each item's reward estimate


@dataclass
class LoggedSample:
    """Logged decisions with their first-slot action, probability and reward."""

    rows: list[dict]
    index: np.ndarray
    p_logged: np.ndarray
    reward: np.ndarray

    @property
    def size(self) -> int:
        return len(self.rows)


def logged_sample(rows: list[dict], rewarded_seq: np.ndarray, first_slot: np.ndarray, default: float) -> LoggedSample:
    """Attach each sampled decision's first-slot reward (``default`` when it has none)."""
    rows = [r for r in rows if r["slate"] and r["slate"][0]["probability"] > 0]
    seq = np.array([r["seq"] for r in rows], dtype=np.int64)
    reward = np.full(seq.size, float(default))
    if rewarded_seq.size and seq.size:
        position = np.minimum(np.searchsorted(rewarded_seq, seq), rewarded_seq.size - 1)
        found = rewarded_seq[position] == seq
        reward[found] = first_slot[position[found]]
    index = np.array([r["slate"][0]["index"] for r in rows], dtype=np.int64)
    p_logged = np.array([min(1.0, r["slate"][0]["probability"]) for r in rows], dtype=float)
    return LoggedSample(rows, index, p_logged, reward)


class RewardModel:
    """Mean first-slot reward per item id, shrunk towards the overall mean (for DR)."""

    def __init__(self, sample: LoggedSample):
        self.overall = float(sample.reward.mean()) if sample.size else 0.0
        totals: dict[str, list[float]] = {}
        for row, reward in zip(sample.rows, sample.reward):
            entry = totals.setdefault(row["candidates"][row["slate"][0]["index"]]["id"], [0.0, 0])
            entry[0] += reward
            entry[1] += 1
        self._means = {item: (s + SHRINKAGE * self.overall) / (n + SHRINKAGE) for item, (s, n) in totals.items()}
        self._cache: dict[str, np.ndarray] = {}

    def predict(self, row: dict) -> np.ndarray:
        """Return the predicted reward of every candidate of a decision."""
        cached = self._cache.get(row["candidate_set"])
        if cached is None:
            cached = np.array([self._means.get(c["id"], self.overall) for c in row["candidates"]])
            self._cache[row["candidate_set"]] = cached
        return cached


# -- target policies: decision row -> probability of each candidate ------------------------------
def uniform_policy(row: dict) -> np.ndarray:
    """Uniform random over the decision's candidates."""
    n = len(row["candidates"])
    return np.full(n, 1.0 / n)


def first_candidate_policy(row: dict) -> np.ndarray:
    """Always the first candidate the shop sent (its own ranking)."""
    pmf = np.zeros(len(row["candidates"]))
    pmf[0] = 1.0
    return pmf


def arm_policy(arm_id: str) -> Callable[[dict], np.ndarray]:
    """Always one arm; when a request excluded it, uniform over the rest (what the control does)."""
    def policy(row: dict) -> np.ndarray:
        ids = [c["id"] for c in row["candidates"]]
        if arm_id not in ids:
            return uniform_policy(row)
        pmf = np.zeros(len(ids))
        pmf[ids.index(arm_id)] = 1.0
        return pmf
    return policy


class ModelPolicy:
    """A published VW snapshot's first-slot distribution (exploration included)."""

    def __init__(self, model_row: dict):
        slate = "--ccb_explore_adf" in model_row["args"]
        self.version = model_row["version"]
        settings = PolicySettings(slots=2 if slate else 1, scaling=models.scaling(model_row))
        self._policy = models.load(model_row, settings)
        self._actions: dict[str, list[str]] = {}
        self._pmfs: dict[int, np.ndarray] = {}  # by seq: the greedy variant asks again

    def __call__(self, row: dict) -> np.ndarray:
        pmf = self._pmfs.get(row["seq"])
        if pmf is None:
            actions = self._actions.get(row["candidate_set"])
            if actions is None:
                actions = self._actions[row["candidate_set"]] = [action_text(c) for c in row["candidates"]]
            pmf = self._pmfs[row["seq"]] = self._policy.pmf(context_text(row["context"]), actions)
        return pmf

    def close(self) -> None:
        self._policy.close()


def greedy(policy: Callable[[dict], np.ndarray]) -> Callable[[dict], np.ndarray]:
    """Always the most probable candidate of ``policy`` (its exploitation without exploration)."""
    def policy_greedy(row: dict) -> np.ndarray:
        pmf = policy(row)
        out = np.zeros(pmf.size)
        out[int(np.argmax(pmf))] = 1.0
        return out
    return policy_greedy


# -- estimates -------------------------------------------------------------------------------------
def estimate(sample: LoggedSample, model: RewardModel, policies: dict[str, Callable]) -> list[dict]:
    """Return IPS, SNIPS and DR (value, low, high, n) for each named policy, on one sample."""
    out = []
    for name, policy in policies.items():
        p_target, q_target, q_logged = target_arrays(sample, model, policy)
        out.append({"policy": name, **estimates(sample.reward, sample.p_logged, p_target, q_logged, q_target)})
    return out


def target_arrays(sample: LoggedSample, model: RewardModel, policy) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per logged decision: target probability of the logged action, expected and logged model reward."""
    p_target, q_target, q_logged = np.zeros(sample.size), np.zeros(sample.size), np.zeros(sample.size)
    for i, row in enumerate(sample.rows):
        pmf, predicted = policy(row), model.predict(row)
        p_target[i] = pmf[sample.index[i]]
        q_target[i] = float(pmf @ predicted)
        q_logged[i] = predicted[sample.index[i]]
    return np.clip(p_target, 0.0, 1.0), q_target, q_logged


def estimates(reward, p_logged, p_target, q_logged, q_target) -> dict:
    """Return the three estimators' JSON for arrays of equal length (``None`` values when empty), and how many
    decisions they effectively rest on (``bandit.estimators.effective_decisions``)."""
    if len(reward) == 0:
        empty = {"value": None, "low": None, "high": None, "n": 0, "alpha": 0.05}
        return {"ips": empty, "snips": empty, "dr": empty, "effective_decisions": 0.0}
    return {"ips": estimators.ips(reward, p_logged, p_target).to_dict(),
            "snips": estimators.snips(reward, p_logged, p_target).to_dict(),
            "dr": estimators.dr(reward, p_logged, p_target, q_logged, q_target).to_dict(),
            "effective_decisions": round(estimators.effective_decisions(p_logged, p_target), 1)}


class OnlineRewardModel:
    """Running mean first-slot reward per item, for DR during a replay (it only knows the past)."""

    def __init__(self):
        self._totals: dict[str, list[float]] = {}
        self._sum, self._count = 0.0, 0

    def predict(self, candidates: list[dict]) -> np.ndarray:
        overall = self._sum / self._count if self._count else 0.0
        out = np.full(len(candidates), overall)
        for i, candidate in enumerate(candidates):
            entry = self._totals.get(candidate["id"])
            if entry:
                out[i] = (entry[0] + SHRINKAGE * overall) / (entry[1] + SHRINKAGE)
        return out

    def update(self, item: str, reward: float) -> None:
        entry = self._totals.setdefault(item, [0.0, 0])
        entry[0] += reward
        entry[1] += 1
        self._sum += reward
        self._count += 1
