"""Normalized inverse-gap weighting: SquareCB's probabilities with the scale solved, not fixed at K.

SquareCB gives every action but the best ``1 / (K + gamma * gap)``, where ``gap``
is how much worse the model thinks it is, and the best the rest. With many
candidates the fixed ``K`` spreads exploration thin: among 50 items, a close
contender gets at most 1/50 however unsure the model is about it. The normalized
rule gives every action ``1 / (lam + gamma * gap)``, the best included
(``gap = 0``), with ``lam`` in [1, K] chosen so the probabilities sum to one:
a few close contenders share the exploration, clearly worse actions get about
what SquareCB gives them, and ties are uniform.

VW computes ``gamma * gap`` but returns only SquareCB's probabilities, so the
gaps are read back from them: ``gamma * gap = 1 / p - K`` for every action but
the best. The model and what it learns are VW's own; only the probabilities
that are sampled and logged change.
"""
from __future__ import annotations

import numpy as np

MAX_STEPS = 50  # Newton's steps; a few suffice (the sum's curvature is mild near its root)
TOLERANCE = 1e-6  # of the sum; the weights are normalised after


def normalized(pmf) -> np.ndarray:
    """Turn SquareCB probabilities over K actions into normalized inverse-gap weights (same order).

    >>> normalized([0.25, 0.25, 0.25, 0.25]).tolist()  # a tie: uniform
    [0.25, 0.25, 0.25, 0.25]
    >>> [round(float(x), 4) for x in normalized([0.94, 0.02, 0.02, 0.02])]  # all well behind: about SquareCB
    [0.9363, 0.0212, 0.0212, 0.0212]
    >>> squarecb = [1 - 1 / 55 - 48 / 550, 1 / 55] + [1 / 550] * 48  # 50 items, one close contender
    >>> [round(float(x), 4) for x in normalized(squarecb)[:3]]  # it gets 0.158, not 0.018
    [0.7465, 0.1577, 0.002]
    """
    p = np.asarray(pmf, dtype=float)
    k = p.size
    if k <= 1:
        return np.ones(k)
    best = int(np.argmax(p))
    gaps = np.maximum(1.0 / np.maximum(p, 1e-300) - k, 0.0)  # gamma * gap, read back from SquareCB
    gaps[best] = 0.0
    # The sum is convex and falling in lam, so Newton's steps from below rise to the root and never pass it;
    # by Jensen the root is at least K - mean(gaps), where ties start it close.
    lam = max(1.0, k - float(gaps.mean()))
    for _ in range(MAX_STEPS):
        weights = 1.0 / (lam + gaps)
        total = weights.sum()
        if total - 1.0 <= TOLERANCE:
            return weights / total  # the weights at the root: computed once, not again after the loop
        lam = min(lam + (total - 1.0) / (weights @ weights), float(k))
    weights = 1.0 / (lam + gaps)
    return weights / weights.sum()
