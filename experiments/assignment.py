"""Sticky assignment: a unit always lands in the same variant of an experiment.

The unit is hashed with the experiment key, so one user can be in the holdout of
one experiment and in the bandit of another, and the split of each is uniform.
The unit is never used as a feature.
"""
from __future__ import annotations

import hashlib

BANDIT = "bandit"
HOLDOUT = "holdout"
FALLBACK = "fallback"  # paused or stopped experiment, or a failing model: control policy, logged as such


def bucket(experiment_key: str, unit: str) -> float:
    """Map (experiment, unit) to a stable number in [0, 1).

    >>> bucket("home-recs", "user-42") == bucket("home-recs", "user-42")
    True
    >>> 0 <= bucket("home-recs", "user-42") < 1
    True
    """
    digest = hashlib.sha256(f"{experiment_key}\x00{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def variant_for(experiment_key: str, unit: str, holdout: float) -> str:
    """Return ``holdout`` for the first ``holdout`` share of buckets, else ``bandit``."""
    return HOLDOUT if bucket(experiment_key, unit) < holdout else BANDIT
