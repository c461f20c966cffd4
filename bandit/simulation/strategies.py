"""Recommendation strategies a strategies experiment chooses among: each builds a slate for a view.

Which one is best depends on the segment and the page (the trend segment wants
trending items, bargain hunters the cheapest, a product page its own category),
so a contextual bandit can beat any single strategy.
"""
from __future__ import annotations

import numpy as np

from bandit.simulation.catalog import Catalog
from bandit.simulation.population import PageView


def _top(catalog: Catalog, score, slots: int, mask=None) -> list:
    """Return the ids of the ``slots`` best-scored items, the masked ones first."""
    order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
    if mask is not None:
        order = np.concatenate([order[mask[order]], order[~mask[order]]])
    return [catalog.ids[i] for i in order[:slots]]


def bestsellers(catalog: Catalog, view: PageView, slots: int) -> list:
    """Show the most popular items, the same for everyone."""
    return _top(catalog, catalog.popularity, slots)


def same_category(catalog: Catalog, view: PageView, slots: int) -> list:
    """Show the most popular items of the viewed category (bestsellers on the home page)."""
    if view.category is None:
        return bestsellers(catalog, view, slots)
    return _top(catalog, catalog.popularity, slots, catalog.category == view.category)


def recently_viewed(catalog: Catalog, view: PageView, slots: int) -> list:
    """Show the most popular items of the user's recently viewed categories."""
    return _top(catalog, catalog.popularity, slots, catalog.in_categories(view.recent))


def trending(catalog: Catalog, view: PageView, slots: int) -> list:
    """Show what sells most right now (the shop's hidden, seeded sales buzz)."""
    return _top(catalog, catalog.buzz, slots)


def cheapest_first(catalog: Catalog, view: PageView, slots: int) -> list:
    """Show the cheapest items."""
    return _top(catalog, -catalog.price, slots)


STRATEGIES = {
    "bestsellers": bestsellers,
    "same-category": same_category,
    "recently-viewed": recently_viewed,
    "trending": trending,
    "cheapest-first": cheapest_first,
}
STRATEGY_FEATURES = {
    "bestsellers": {"source": "popularity"},
    "same-category": {"source": "page-category"},
    "recently-viewed": {"source": "history"},
    "trending": {"source": "sales-buzz"},
    "cheapest-first": {"source": "price"},
}


def strategy_slate(catalog: Catalog, name: str, view: PageView, slots: int) -> list:
    """Return the item ids the named strategy shows for this view."""
    if name not in STRATEGIES:
        raise KeyError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    return STRATEGIES[name](catalog, view, slots)
