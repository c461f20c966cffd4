"""The simulated shop's click model: who clicks what, where on the slate, and what follows a click.

An item's click logit for a view is its segment's category affinity, taste for
popularity and trending items, price aversion and an item effect, plus a boost
for the user's recent categories and for the category being viewed, plus small
shifts for device, country and evening hours. A slate's slot k is seen with
probability ``bias(k)``; clicks on seen items are independent. Add-to-cart and
purchase follow a click, rarer and later, so delayed rewards get exercised.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from bandit.simulation.catalog import Catalog
from bandit.simulation.population import PageView, Segments

PAGE_BOOST = {"home": 0.0, "product": 0.9, "category": 0.7}  # logit boost for the viewed category
DEVICE_SHIFT = {"mobile": -0.1, "desktop": 0.1, "tablet": 0.0}
COUNTRY_SHIFT = {"DE": 0.05, "FR": -0.05, "GB": 0.0, "US": 0.1, "NL": -0.1}
EVENING = range(18, 23)
EVENING_SHIFT = 0.15
DEFAULT_POSITION_BIAS = (1.0, 0.7, 0.5, 0.35, 0.25, 0.18, 0.13, 0.1)
POSITION_DECAY = 0.75  # each slot past the given biases is seen this much less
ADD_TO_CART_BASE = 0.3
PURCHASE_RATE = 0.4
CLICK_DELAY_MEAN = 8.0  # seconds after the page view
ADD_TO_CART_DELAY = (5.0, 120.0)  # seconds after the click
PURCHASE_DELAY = (30.0, 600.0)  # seconds after the add-to-cart
TASTE_FIELDS = ("affinity", "w_pop", "w_price", "w_buzz", "w_recent", "item_noise")
CALIBRATION_BOUNDS = (-15.0, 10.0)
CALIBRATION_STEPS = 50


@dataclass(frozen=True)
class Outcome:
    """One thing a user did after a page view; ``delay_seconds`` counts from the page view."""

    type: str
    item: str
    slot: int
    delay_seconds: float


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class ClickModel:
    """The true click, add-to-cart and purchase probabilities of every item for a page view."""

    def __init__(self, catalog: Catalog, segments: Segments, position_bias, offset: float = 0.0):
        self.catalog = catalog
        self.segments = segments
        self.position_bias = position_bias
        self.offset = offset  # shifts every logit so the mean click rate is the shop's
        self._base_logits = self._item_logits()
        price_aversion = segments.w_price[:, None] * catalog.z_price[None, :]
        self.p_add_to_cart = np.clip(ADD_TO_CART_BASE - 0.08 * price_aversion, 0.05, 0.6)

    def with_tastes_of(self, segment: int, other: int) -> "ClickModel":
        """Return this model where ``segment`` has taken on every taste of ``other`` (a drift)."""
        segments = self.segments
        changed = {}
        for name in TASTE_FIELDS:
            values = getattr(segments, name).copy()
            values[segment] = values[other]
            changed[name] = values
        return ClickModel(self.catalog, dataclasses.replace(segments, **changed), self.position_bias, self.offset)

    def _item_logits(self) -> np.ndarray:
        """Return the (segment, item) logit before offset, page, history and context shifts."""
        c, s = self.catalog, self.segments
        pop = c.popularity - c.popularity.mean()
        buzz = c.buzz - c.buzz.mean()
        return (s.affinity[:, c.category] + s.w_pop[:, None] * pop[None, :]
                + s.w_buzz[:, None] * buzz[None, :] - s.w_price[:, None] * c.z_price[None, :]
                + s.item_noise)

    def logits(self, view: PageView) -> np.ndarray:
        """Return every item's click logit for this view, before the offset."""
        s = view.segment
        logit = self._base_logits[s]
        logit = logit + self.segments.w_recent[s] * self.catalog.in_categories(view.recent)
        if view.category is not None:
            logit = logit + PAGE_BOOST[view.page_type] * (self.catalog.category == view.category)
        shift = DEVICE_SHIFT[view.device] + COUNTRY_SHIFT[view.country] + EVENING_SHIFT * (view.hour in EVENING)
        return logit + shift

    def attractiveness(self, view: PageView) -> np.ndarray:
        """Return every item's click probability for this view when it is seen."""
        return sigmoid(self.offset + self.logits(view))

    def bias(self, slots: int) -> np.ndarray:
        """Return the probability that each of the first ``slots`` slots is seen."""
        given = np.asarray(self.position_bias, dtype=float)
        if slots <= given.size:
            return given[:slots].copy()
        extra = given[-1] * POSITION_DECAY ** np.arange(1, slots - given.size + 1)
        return np.concatenate([given, extra])

    def item_values(self, view: PageView, events=None) -> np.ndarray:
        """Return each item's expected reward when seen: clicks only, or weighted by ``events``."""
        attractive = self.attractiveness(view)
        if events is None:
            return attractive
        after = events.get("add_to_cart", 0.0) + PURCHASE_RATE * events.get("purchase", 0.0)
        return attractive * (events.get("click", 0.0) + self.p_add_to_cart[view.segment] * after)

    def expected_reward(self, view: PageView, slate_ids, events=None) -> float:
        """Return the slate's expected reward (without ``events``: its expected clicks)."""
        idx = self.catalog.indices(slate_ids)
        return float((self.item_values(view, events)[idx] * self.bias(len(idx))).sum())

    def slot_click_probabilities(self, view: PageView, slate_ids) -> np.ndarray:
        """Return each slot's click probability: attractiveness times the chance the slot is seen."""
        idx = self.catalog.indices(slate_ids)
        return self.attractiveness(view)[idx] * self.bias(len(idx))

    def outcomes(self, view: PageView, slate_ids, rng) -> list:
        """Draw clicks, then add-to-carts and purchases; six uniforms per slot whatever happens."""
        idx = self.catalog.indices(slate_ids)
        p_click = self.slot_click_probabilities(view, slate_ids)
        u = rng.random((len(idx), 6))
        found = []
        for slot, item in enumerate(idx):
            if u[slot, 0] >= p_click[slot]:
                continue
            found += self._after_click(view, item, slot, u[slot])
        return sorted(found, key=lambda o: o.delay_seconds)

    def _after_click(self, view: PageView, item: int, slot: int, u) -> list:
        item_id = self.catalog.ids[item]
        delay = 1.0 - CLICK_DELAY_MEAN * np.log1p(-u[1])  # 1 s plus an exponential
        events = [Outcome("click", item_id, slot, float(delay))]
        if u[2] < self.p_add_to_cart[view.segment, item]:
            delay += ADD_TO_CART_DELAY[0] + (ADD_TO_CART_DELAY[1] - ADD_TO_CART_DELAY[0]) * u[3]
            events.append(Outcome("add_to_cart", item_id, slot, float(delay)))
            if u[4] < PURCHASE_RATE:
                delay += PURCHASE_DELAY[0] + (PURCHASE_DELAY[1] - PURCHASE_DELAY[0]) * u[5]
                events.append(Outcome("purchase", item_id, slot, float(delay)))
        return events


def calibrated_offset(model: ClickModel, views, mean_ctr: float) -> float:
    """Return the logit offset that makes the mean click probability over ``views`` equal ``mean_ctr``."""
    logits = np.array([model.logits(view) for view in views])
    low, high = CALIBRATION_BOUNDS
    for _ in range(CALIBRATION_STEPS):
        mid = (low + high) / 2
        low, high = (mid, high) if sigmoid(logits + mid).mean() < mean_ctr else (low, mid)
    return (low + high) / 2
