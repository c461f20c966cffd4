"""The simulated shop's visitors: taste segments, a finite population of users, and their page views.

A segment has an archetype (loyal, bargain, trend, mainstream) that sets its
taste for popularity, price, trending items and its own recent categories, plus
a category affinity. Users belong to one segment, have a device, a country and
two recent categories (drawn from their segment's affinity), and come back, so
units are sticky.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PAGE_TYPES = ("home", "product", "category")
PAGE_MIX = (0.4, 0.35, 0.25)
DEVICES = ("mobile", "desktop", "tablet")
DEVICE_MIX = (0.55, 0.35, 0.10)
COUNTRIES = ("DE", "FR", "GB", "US", "NL")
COUNTRY_MIX = (0.35, 0.2, 0.2, 0.15, 0.1)
ARCHETYPES = ("loyal", "bargain", "trend", "mainstream")
# Per archetype: taste for popularity, price aversion, taste for trending, boost for recent categories.
TASTES = {
    "loyal": (0.5, 0.2, 0.0, 1.0),
    "bargain": (0.3, 1.0, 0.0, 0.2),
    "trend": (0.0, 0.15, 3.0, 0.2),
    "mainstream": (2.5, 0.2, 0.0, 0.2),
}
RECENT_COUNT = 2


def _hour_weights() -> np.ndarray:
    hours = np.arange(24)
    w = 0.2 + np.exp(-(((hours - 13) / 4.0) ** 2)) + 1.5 * np.exp(-(((hours - 20) / 2.5) ** 2))
    return w / w.sum()


HOUR_WEIGHTS = _hour_weights()  # traffic by hour of day: a midday bump and an evening peak


@dataclass(frozen=True)
class PageView:
    """One page view: ``unit`` and ``context`` go to the service, the rest is hidden truth."""

    unit: str
    context: dict
    user: int
    segment: int
    page_type: str
    category: int | None
    hour: int
    device: str
    country: str
    recent: tuple


@dataclass(frozen=True, eq=False)
class Segments:
    """Each segment's tastes, as arrays by segment (and category or item)."""

    archetype: tuple
    affinity: np.ndarray  # (segment, category) logit
    w_pop: np.ndarray
    w_price: np.ndarray
    w_buzz: np.ndarray
    w_recent: np.ndarray
    item_noise: np.ndarray  # (segment, item): what no feature explains

    def __len__(self) -> int:
        return len(self.archetype)


def build_segments(rng, n_segments: int, n_categories: int, n_items: int) -> Segments:
    """Draw segment tastes: a favourite and a second category each, archetype weights jittered by 15%."""
    s, k = n_segments, n_categories
    archetype = tuple(ARCHETYPES[i % len(ARCHETYPES)] for i in range(s))
    affinity = rng.normal(0.0, 0.3, size=(s, k))
    favourites = rng.permutation(k)
    for i in range(s):
        affinity[i, favourites[i % k]] += 1.0
        affinity[i, favourites[(i + s) % k]] += 0.5 if k > 1 else 0.0
    tastes = np.array([TASTES[a] for a in archetype])
    tastes = tastes * rng.uniform(0.85, 1.15, size=tastes.shape)
    w_pop, w_price, w_buzz, w_recent = tastes.T
    return Segments(archetype, affinity, w_pop, w_price, w_buzz, w_recent, rng.normal(0.0, 0.15, size=(s, n_items)))


class Population:
    """Users of the segments; draws page views in the service's context JSON."""

    def __init__(self, rng, segments: Segments, n_users: int):
        u, k = n_users, segments.affinity.shape[1]
        self.n_users = n_users
        self.affinity = segments.affinity  # where users browse (the click model may drift away from it)
        self.segment = rng.integers(len(segments), size=u)
        self.device = rng.choice(len(DEVICES), size=u, p=DEVICE_MIX)
        self.country = rng.choice(len(COUNTRIES), size=u, p=COUNTRY_MIX)
        # Gumbel top-k: each user's recent categories, drawn without replacement ~ exp(2 * affinity).
        keys = 2.0 * self.affinity[self.segment] + rng.gumbel(size=(u, k))
        top = np.sort(np.argsort(-keys, axis=1)[:, :min(RECENT_COUNT, k)], axis=1)
        self.recent = [tuple(row) for row in top.tolist()]

    def page_view(self, rng) -> PageView:
        """Draw one page view of a user from the population (users repeat, so units are sticky)."""
        user = int(rng.integers(self.n_users))
        page_type = PAGE_TYPES[int(rng.choice(len(PAGE_TYPES), p=PAGE_MIX))]
        category = None if page_type == "home" else self._browse_category(user, rng)
        hour = int(rng.choice(24, p=HOUR_WEIGHTS))
        return self._make_view(user, page_type, category, hour)

    def _browse_category(self, user: int, rng) -> int:
        if rng.random() < 0.5:
            return int(rng.choice(self.recent[user]))
        p = np.exp(self.affinity[self.segment[user]])
        return int(rng.choice(p.size, p=p / p.sum()))

    def _make_view(self, user: int, page_type: str, category, hour: int) -> PageView:
        segment = int(self.segment[user])
        device = DEVICES[self.device[user]]
        country = COUNTRIES[self.country[user]]
        recent = self.recent[user]
        page = {"type": page_type} if category is None else {"type": page_type, "category": f"c{category}"}
        context = {"user": {"segment": f"s{segment}", "device": device, "country": country, "hour": hour,
                            "recent": [f"c{c}" for c in recent]}, "page": page}
        return PageView(f"user-{user}", context, user, segment, page_type, category, hour, device, country, recent)
