"""The simulated shop: a catalog, a population and a click model, seeded, so any policy can be graded exactly.

All randomness comes from numpy Generators: the shop's own from ``seed``, and
the ``rng`` passed to ``page_view`` and ``outcomes``. Values are expected clicks
per page view (for one slot: the click-through rate), or the expected reward
when event values are given.
"""
from __future__ import annotations

import copy

import numpy as np

from bandit.simulation import oracle as reference
from bandit.simulation.catalog import build_catalog
from bandit.simulation.clicks import DEFAULT_POSITION_BIAS, ClickModel, Outcome, calibrated_offset
from bandit.simulation.population import PageView, Population, build_segments
from bandit.simulation.strategies import STRATEGIES, STRATEGY_FEATURES, strategy_slate

CALIBRATION_VIEWS = 1000


def _check(name: str, ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(f"{name}: {message}")


class SimulatedShop:
    """A seeded shop whose click model is known, so any policy can be graded exactly.

    >>> shop = SimulatedShop(seed=0)
    >>> len(shop.catalog), shop.catalog[0]["id"], sorted(shop.catalog[0]["features"])
    (50, 'sku-0', ['category', 'popularity', 'price'])
    >>> view = shop.page_view(np.random.default_rng(1))
    >>> sorted(view.context), sorted(view.context["user"])
    (['page', 'user'], ['country', 'device', 'hour', 'recent', 'segment'])
    """

    def __init__(self, seed=0, n_items=50, n_categories=8, n_segments=4, n_users=2000,
                 position_bias=DEFAULT_POSITION_BIAS, mean_ctr=0.05):
        self.seed = seed
        self.n_items = n_items
        self.n_categories = n_categories
        self.n_segments = n_segments
        self.n_users = n_users
        self.position_bias = position_bias
        self.mean_ctr = mean_ctr
        self._validate()
        rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]
        self.products = build_catalog(rngs[0], n_items, n_categories)
        segments = build_segments(rngs[1], n_segments, n_categories, n_items)
        self.population = Population(rngs[2], segments, n_users)
        uncalibrated = ClickModel(self.products, segments, position_bias)
        views = [self.page_view(rngs[3]) for _ in range(CALIBRATION_VIEWS)]
        offset = calibrated_offset(uncalibrated, views, mean_ctr)
        self.clicks = ClickModel(self.products, segments, position_bias, offset)

    def __repr__(self) -> str:
        return (f"SimulatedShop(seed={self.seed!r}, n_items={self.n_items!r}, n_categories={self.n_categories!r}, "
                f"n_segments={self.n_segments!r}, n_users={self.n_users!r}, "
                f"position_bias={self.position_bias!r}, mean_ctr={self.mean_ctr!r})")

    def _validate(self) -> None:
        _check("n_items", isinstance(self.n_items, int) and self.n_items >= 1, "must be an integer >= 1")
        _check("n_categories", isinstance(self.n_categories, int) and 1 <= self.n_categories <= self.n_items,
               "must be an integer between 1 and n_items")
        _check("n_segments", isinstance(self.n_segments, int) and self.n_segments >= 1, "must be an integer >= 1")
        _check("n_users", isinstance(self.n_users, int) and self.n_users >= 1, "must be an integer >= 1")
        bias = np.asarray(self.position_bias, dtype=float)
        _check("position_bias", bias.ndim == 1 and bias.size >= 1 and np.all((bias > 0) & (bias <= 1))
               and np.all(np.diff(bias) <= 0), "must be a non-empty, non-increasing list of numbers in (0, 1]")
        _check("mean_ctr", 0 < self.mean_ctr < 0.5, "must be between 0 and 0.5")

    def with_changed_tastes(self, segment: int, like: int) -> "SimulatedShop":
        """Return the same shop (catalog, users, page views) after ``segment`` took on the tastes of ``like``.

        Its users keep their segment, devices and recent categories and arrive as
        before; only what they click changes, so a model must unlearn what it knew.

        >>> shop = SimulatedShop(seed=0)
        >>> after = shop.with_changed_tastes(2, like=3)
        >>> view = next(v for v in shop.sample_views(50) if v.segment == 2)
        >>> shop.oracle(view, 1)[0] != after.oracle(view, 1)[0], shop.catalog is after.catalog
        (True, True)
        """
        for name, value in (("segment", segment), ("like", like)):
            _check(name, isinstance(value, int) and 0 <= value < self.n_segments,
                   f"must be an integer from 0 to {self.n_segments - 1}")
        changed = copy.copy(self)
        changed.clicks = self.clicks.with_tastes_of(segment, like)
        return changed

    # -- data in the service's JSON shapes --------------------------------------------------

    @property
    def catalog(self) -> list:
        """Return the catalog as candidates: ``{"id", "features": {category, price, popularity}}``.

        Built once and shared by every call: treat it as read-only.
        """
        return self.products.items

    def candidates(self, rng=None, count=None) -> list:
        """Return the candidates of one request: the whole catalog, or ``count`` items drawn by ``rng``.

        >>> shop = SimulatedShop(seed=0)
        >>> [c["id"] for c in shop.candidates(np.random.default_rng(0), count=3)]
        ['sku-25', 'sku-31', 'sku-40']
        """
        return self.products.candidates(rng, count)

    def page_view(self, rng) -> PageView:
        """Draw one page view of a user from the population (users repeat, so units are sticky).

        >>> shop = SimulatedShop(seed=0)
        >>> a, b = shop.page_view(np.random.default_rng(7)), shop.page_view(np.random.default_rng(7))
        >>> a == b, a.unit.startswith("user-")
        (True, True)
        """
        return self.population.page_view(rng)

    def sample_views(self, count: int, seed: int = 0) -> list:
        """Draw ``count`` page views from a Generator seeded with ``seed`` (for reference values).

        >>> len(SimulatedShop(seed=0).sample_views(3))
        3
        """
        rng = np.random.default_rng(seed)
        return [self.page_view(rng) for _ in range(count)]

    # -- ground truth -----------------------------------------------------------------------

    def attractiveness(self, view: PageView) -> np.ndarray:
        """Return every item's click probability for this view when it is seen."""
        return self.clicks.attractiveness(view)

    def bias(self, slots: int) -> np.ndarray:
        """Return the probability that each of the first ``slots`` slots is seen.

        >>> SimulatedShop(seed=0).bias(3).tolist()
        [1.0, 0.7, 0.5]
        """
        return self.clicks.bias(slots)

    def click_probability(self, view: PageView, item_id: str) -> float:
        """Return the probability that the user clicks the item when seen (before position bias).

        >>> shop = SimulatedShop(seed=0)
        >>> 0 < shop.click_probability(shop.page_view(np.random.default_rng(0)), "sku-3") < 1
        True
        """
        return float(self.clicks.attractiveness(view)[self.products.indices([item_id])[0]])

    def slot_click_probabilities(self, view: PageView, slate_ids) -> np.ndarray:
        """Return each slot's click probability: attractiveness times the chance the slot is seen.

        >>> shop = SimulatedShop(seed=0)
        >>> p = shop.slot_click_probabilities(shop.page_view(np.random.default_rng(0)), ["sku-1", "sku-1"])
        >>> bool(p[1] < p[0])
        True
        """
        return self.clicks.slot_click_probabilities(view, slate_ids)

    def expected_clicks(self, view: PageView, slate_ids) -> float:
        """Return the slate's expected clicks for this view (for one slot: the CTR)."""
        return self.clicks.expected_reward(view, slate_ids)

    def expected_reward(self, view: PageView, slate_ids, events=None) -> float:
        """Return the slate's expected reward with event values like ``{"click": 1, "purchase": 10}``.

        Without ``events`` it is the expected clicks.

        >>> shop = SimulatedShop(seed=0)
        >>> view = shop.page_view(np.random.default_rng(0))
        >>> shop.expected_reward(view, ["sku-2"], {"click": 1.0}) == shop.expected_clicks(view, ["sku-2"])
        True
        """
        return self.clicks.expected_reward(view, slate_ids, events)

    def oracle(self, view: PageView, slots: int, candidates=None, events=None) -> tuple:
        """Return the best slate under the true model and its expected clicks (or reward).

        >>> shop = SimulatedShop(seed=0)
        >>> view = shop.page_view(np.random.default_rng(0))
        >>> ids, value = shop.oracle(view, 3)
        >>> len(ids), value >= shop.uniform_value(view, 3)
        (3, True)
        """
        return reference.oracle(self.clicks, view, slots, candidates, events)

    def uniform_value(self, view: PageView, slots: int, candidates=None, events=None) -> float:
        """Return the expected clicks (or reward) of a uniformly random slate: each slot's item is uniform.

        >>> shop = SimulatedShop(seed=0)
        >>> view = shop.page_view(np.random.default_rng(0))
        >>> round(shop.uniform_value(view, 2) / shop.uniform_value(view, 1), 6)
        1.7
        """
        return reference.uniform_value(self.clicks, view, slots, candidates, events)

    def best_fixed(self, slots: int, views, candidates=None, events=None) -> tuple:
        """Return the best one-for-everyone slate over ``views`` and its mean expected clicks.

        >>> shop = SimulatedShop(seed=0)
        >>> views = shop.sample_views(200)
        >>> ids, value = shop.best_fixed(2, views)
        >>> len(ids), bool(np.isclose(value, np.mean([shop.expected_clicks(v, ids) for v in views])))
        (2, True)
        """
        return reference.best_fixed(self.clicks, slots, views, candidates, events)

    def outcomes(self, view: PageView, slate_ids, rng) -> list:
        """Draw what the user does with a slate: clicks, then rarer and later add-to-cart and purchase.

        Each slot uses six fresh uniforms whatever happens, so equal seeds give
        equal outcomes and one slot's luck never shifts another's.

        >>> shop = SimulatedShop(seed=0)
        >>> view = shop.page_view(np.random.default_rng(0))
        >>> events = shop.outcomes(view, ["sku-1", "sku-2", "sku-3"], np.random.default_rng(0))
        >>> all(e.delay_seconds > 0 for e in events)
        True
        """
        return self.clicks.outcomes(view, slate_ids, rng)

    # -- strategies ---------------------------------------------------------------------------

    def strategy_arms(self) -> list:
        """Return the strategies as a strategies experiment's arms: ``{"id", "features"}``.

        >>> [a["id"] for a in SimulatedShop(seed=0).strategy_arms()][:2]
        ['bestsellers', 'same-category']
        """
        return [{"id": name, "features": dict(STRATEGY_FEATURES[name])} for name in STRATEGIES]

    def strategy_slate(self, name: str, view: PageView, slots: int) -> list:
        """Return the item ids the named strategy shows for this view.

        >>> shop = SimulatedShop(seed=0)
        >>> len(shop.strategy_slate("cheapest-first", shop.page_view(np.random.default_rng(0)), 3))
        3
        """
        return strategy_slate(self.products, name, view, slots)

    def strategy_value(self, name: str, view: PageView, slots: int, events=None) -> float:
        """Return the expected clicks (or reward) of the named strategy's slate for this view."""
        return self.expected_reward(view, self.strategy_slate(name, view, slots), events)

    def strategy_values(self, view: PageView, slots: int, events=None) -> dict:
        """Return every strategy's expected clicks (or reward) for this view, by name."""
        return {name: self.strategy_value(name, view, slots, events) for name in STRATEGIES}

    def strategy_oracle(self, view: PageView, slots: int, events=None) -> tuple:
        """Return the best strategy for this view and its expected clicks.

        >>> shop = SimulatedShop(seed=0)
        >>> name, value = shop.strategy_oracle(shop.page_view(np.random.default_rng(0)), 3)
        >>> name in STRATEGIES
        True
        """
        values = self.strategy_values(view, slots, events)
        best = max(values, key=values.get)
        return best, values[best]

    def strategy_uniform_value(self, view: PageView, slots: int, events=None) -> float:
        """Return the expected clicks of picking a strategy uniformly at random for this view."""
        return float(np.mean(list(self.strategy_values(view, slots, events).values())))

    def strategy_best_fixed(self, slots: int, views, events=None) -> tuple:
        """Return the one strategy that is best for everyone over ``views`` and its mean expected clicks.

        >>> shop = SimulatedShop(seed=0)
        >>> name, value = shop.strategy_best_fixed(3, shop.sample_views(100))
        >>> name in STRATEGIES and value > 0
        True
        """
        totals = dict.fromkeys(STRATEGIES, 0.0)
        for view in views:
            for name, value in self.strategy_values(view, slots, events).items():
                totals[name] += value
        best = max(totals, key=totals.get)
        return best, totals[best] / max(len(views), 1)

    def strategy_outcomes(self, name: str, view: PageView, slots: int, rng) -> list:
        """Draw the outcomes of showing the named strategy's slate, attributed to the strategy (slot 0)."""
        found = self.outcomes(view, self.strategy_slate(name, view, slots), rng)
        return [Outcome(o.type, name, 0, o.delay_seconds) for o in found]
