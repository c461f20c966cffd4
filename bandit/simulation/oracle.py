"""Reference policies under the true click model: the oracle, uniform random and the best fixed slate.

Slots are seen less the lower they are and clicks are independent, so the
expected value of a slate is linear in its items' values: sorting by value puts
the best item in the most-seen slot, and the best one-for-everyone slate sorts
items by their mean value over the views.
"""
from __future__ import annotations

import numpy as np

from bandit.simulation.clicks import ClickModel
from bandit.simulation.population import PageView


def _pool(model: ClickModel, candidates) -> np.ndarray:
    return np.arange(len(model.catalog)) if candidates is None else model.catalog.indices(candidates)


def oracle(model: ClickModel, view: PageView, slots: int, candidates=None, events=None) -> tuple:
    """Return the best slate of ``candidates`` (ids; all items when None) and its expected reward."""
    pool = _pool(model, candidates)
    values = model.item_values(view, events)
    order = pool[np.argsort(-values[pool], kind="stable")][:slots]
    ids = [model.catalog.ids[i] for i in order]
    return ids, float((values[order] * model.bias(len(order))).sum())


def uniform_value(model: ClickModel, view: PageView, slots: int, candidates=None, events=None) -> float:
    """Return the expected reward of a uniformly random slate: each slot's item is uniform."""
    pool = _pool(model, candidates)
    slots = min(slots, pool.size)
    return float(model.item_values(view, events)[pool].mean() * model.bias(slots).sum())


def best_fixed(model: ClickModel, slots: int, views, candidates=None, events=None) -> tuple:
    """Return the best one-for-everyone slate over ``views`` and its mean expected reward.

    With per-view ``candidates`` (one id list per view) the fixed policy is one
    ranking restricted to each view's candidates; then the full ranking is returned.
    """
    values = np.array([model.item_values(v, events) for v in views])
    ranking = np.argsort(-values.mean(axis=0), kind="stable")
    ids = model.catalog.ids
    if candidates is None:
        top = ranking[:slots]
        return [ids[i] for i in top], float((values[:, top] @ model.bias(len(top))).mean())
    rank_of = np.empty(len(ids), dtype=int)
    rank_of[ranking] = np.arange(len(ids))
    total = 0.0
    for row, cands in zip(values, candidates):
        idx = model.catalog.indices(cands)
        top = idx[np.argsort(rank_of[idx])][:slots]
        total += float(row[top] @ model.bias(len(top)))
    return [ids[i] for i in ranking], total / max(len(views), 1)
