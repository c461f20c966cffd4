"""A simulated shop with a known ground truth, to drive and grade the service.

The shop has a catalog (items with category, price and popularity), a finite
population of users in segments, and a click model: per-segment category
affinity, price sensitivity, taste for popular or trending items, a boost for the
user's recent categories and for the category being viewed, and position bias on
slates (slot k is seen with probability ``position_bias[k]``; clicks on seen
items are independent). Add-to-cart and purchase follow a click, rarer and later,
so delayed rewards and the reward window get exercised.

Every effect that changes which item is best is visible to VW through the
context (``user.segment``, ``user.recent``, ``page.type``, ``page.category``)
crossed with the item's features or id (``-q UA -q PA``), so a contextual bandit
can get close to the oracle. Device, country and hour only shift the overall
click level. All randomness comes from numpy Generators: the shop's own from
``seed``, and the ``rng`` passed to ``page_view`` and ``outcomes``.

Values are expected clicks per page view (for one slot: the click-through rate);
``normalized_lift`` puts a policy between uniform random (0) and the oracle (1).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

PAGE_TYPES = ("home", "product", "category")
PAGE_MIX = (0.4, 0.35, 0.25)
PAGE_BOOST = {"home": 0.0, "product": 0.9, "category": 0.7}  # logit boost for the viewed category
DEVICES = ("mobile", "desktop", "tablet")
DEVICE_MIX = (0.55, 0.35, 0.10)
DEVICE_SHIFT = {"mobile": -0.1, "desktop": 0.1, "tablet": 0.0}
COUNTRIES = ("DE", "FR", "GB", "US", "NL")
COUNTRY_MIX = (0.35, 0.2, 0.2, 0.15, 0.1)
COUNTRY_SHIFT = {"DE": 0.05, "FR": -0.05, "GB": 0.0, "US": 0.1, "NL": -0.1}
EVENING = range(18, 23)
EVENING_SHIFT = 0.15
DEFAULT_POSITION_BIAS = (1.0, 0.7, 0.5, 0.35, 0.25, 0.18, 0.13, 0.1)
POSITION_DECAY = 0.75  # each slot past the given biases is seen this much less
ARCHETYPES = ("loyal", "bargain", "trend", "mainstream")
# Per archetype: taste for popularity, price aversion, taste for trending, boost for recent categories.
TASTES = {
    "loyal": (0.5, 0.2, 0.0, 1.0),
    "bargain": (0.3, 1.0, 0.0, 0.2),
    "trend": (0.0, 0.15, 3.0, 0.2),
    "mainstream": (2.5, 0.2, 0.0, 0.2),
}
RECENT_COUNT = 2
CALIBRATION_VIEWS = 1000
ADD_TO_CART_BASE = 0.3
PURCHASE_RATE = 0.4
CLICK_DELAY_MEAN = 8.0  # seconds after the page view
ADD_TO_CART_DELAY = (5.0, 120.0)  # seconds after the click
PURCHASE_DELAY = (30.0, 600.0)  # seconds after the add-to-cart


@dataclass(frozen=True)
class Outcome:
    """One thing a user did after a page view; ``delay_seconds`` counts from the page view."""

    type: str
    item: str
    slot: int
    delay_seconds: float


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


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _hour_weights() -> np.ndarray:
    hours = np.arange(24)
    w = 0.2 + np.exp(-(((hours - 13) / 4.0) ** 2)) + 1.5 * np.exp(-(((hours - 20) / 2.5) ** 2))
    return w / w.sum()


HOUR_WEIGHTS = _hour_weights()  # traffic by hour of day: a midday bump and an evening peak


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
        self._build_catalog(rngs[0])
        self._build_segments(rngs[1])
        self._build_users(rngs[2])
        self._build_downstream()
        self._base_logits = self._item_logits()
        self._offset = self._calibrate(rngs[3])

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

    # -- construction -------------------------------------------------------------------

    def _build_catalog(self, rng) -> None:
        n, k = self.n_items, self.n_categories
        self._item_category = rng.permutation(np.arange(n) % k)
        category_price = np.exp(rng.normal(np.log(40.0), 0.6, size=k))
        price = np.round(category_price[self._item_category] * np.exp(rng.normal(0.0, 0.35, size=n)), 2)
        self._price = np.maximum(price, 1.0)
        self._popularity = np.round(rng.beta(2.0, 3.0, size=n), 2)
        self._buzz = rng.beta(1.2, 4.0, size=n)  # hidden "sold in the last hour": drives trending
        log_price = np.log(self._price)
        self._z_price = (log_price - log_price.mean()) / (log_price.std() or 1.0)
        self._ids = [f"sku-{i}" for i in range(n)]
        self._index = {item: i for i, item in enumerate(self._ids)}
        self._catalog = [{"id": self._ids[i], "features": {"category": f"c{self._item_category[i]}",
                                                           "price": float(self._price[i]),
                                                           "popularity": float(self._popularity[i])}}
                         for i in range(n)]

    def _build_segments(self, rng) -> None:
        s, k = self.n_segments, self.n_categories
        self._archetype = [ARCHETYPES[i % len(ARCHETYPES)] for i in range(s)]
        affinity = rng.normal(0.0, 0.3, size=(s, k))
        favourites = rng.permutation(k)
        for i in range(s):
            affinity[i, favourites[i % k]] += 1.0
            affinity[i, favourites[(i + s) % k]] += 0.5 if k > 1 else 0.0
        self._affinity = affinity
        tastes = np.array([TASTES[a] for a in self._archetype])
        tastes = tastes * rng.uniform(0.85, 1.15, size=tastes.shape)
        self._w_pop, self._w_price, self._w_buzz, self._w_recent = tastes.T
        self._item_noise = rng.normal(0.0, 0.15, size=(s, self.n_items))

    def _build_users(self, rng) -> None:
        u, k = self.n_users, self.n_categories
        self._user_segment = rng.integers(self.n_segments, size=u)
        self._user_device = rng.choice(len(DEVICES), size=u, p=DEVICE_MIX)
        self._user_country = rng.choice(len(COUNTRIES), size=u, p=COUNTRY_MIX)
        # Gumbel top-k: each user's recent categories, drawn without replacement ~ exp(2 * affinity).
        keys = 2.0 * self._affinity[self._user_segment] + rng.gumbel(size=(u, k))
        top = np.sort(np.argsort(-keys, axis=1)[:, :min(RECENT_COUNT, k)], axis=1)
        self._user_recent = [tuple(row) for row in top.tolist()]

    def _build_downstream(self) -> None:
        price_aversion = self._w_price[:, None] * self._z_price[None, :]
        self._p_add_to_cart = np.clip(ADD_TO_CART_BASE - 0.08 * price_aversion, 0.05, 0.6)

    def _item_logits(self) -> np.ndarray:
        """Return the (segment, item) logit before offset, page, history and context shifts."""
        pop = self._popularity - self._popularity.mean()
        buzz = self._buzz - self._buzz.mean()
        return (self._affinity[:, self._item_category] + self._w_pop[:, None] * pop[None, :]
                + self._w_buzz[:, None] * buzz[None, :] - self._w_price[:, None] * self._z_price[None, :]
                + self._item_noise)

    def _calibrate(self, rng) -> float:
        """Return the logit offset that makes the mean click probability over page views ``mean_ctr``."""
        logits = np.array([self._logits(self.page_view(rng)) for _ in range(CALIBRATION_VIEWS)])
        low, high = -15.0, 10.0
        for _ in range(50):
            mid = (low + high) / 2
            low, high = (mid, high) if _sigmoid(logits + mid).mean() < self.mean_ctr else (low, mid)
        return (low + high) / 2

    # -- data in the service's JSON shapes --------------------------------------------------

    @property
    def catalog(self) -> list:
        """Return the catalog as candidates: ``{"id", "features": {category, price, popularity}}``.

        Built once and shared by every call: treat it as read-only.
        """
        return self._catalog

    def candidates(self, rng=None, count=None) -> list:
        """Return the candidates of one request: the whole catalog, or ``count`` items drawn by ``rng``.

        >>> shop = SimulatedShop(seed=0)
        >>> [c["id"] for c in shop.candidates(np.random.default_rng(0), count=3)]
        ['sku-25', 'sku-31', 'sku-40']
        """
        catalog = self.catalog
        if count is None or count >= self.n_items:
            return catalog
        chosen = np.sort(rng.choice(self.n_items, size=count, replace=False))
        return [catalog[i] for i in chosen]

    def page_view(self, rng) -> PageView:
        """Draw one page view of a user from the population (users repeat, so units are sticky).

        >>> shop = SimulatedShop(seed=0)
        >>> a, b = shop.page_view(np.random.default_rng(7)), shop.page_view(np.random.default_rng(7))
        >>> a == b, a.unit.startswith("user-")
        (True, True)
        """
        user = int(rng.integers(self.n_users))
        page_type = PAGE_TYPES[int(rng.choice(len(PAGE_TYPES), p=PAGE_MIX))]
        category = None if page_type == "home" else self._browse_category(user, rng)
        hour = int(rng.choice(24, p=HOUR_WEIGHTS))
        return self._make_view(user, page_type, category, hour)

    def _browse_category(self, user: int, rng) -> int:
        if rng.random() < 0.5:
            return int(rng.choice(self._user_recent[user]))
        p = np.exp(self._affinity[self._user_segment[user]])
        return int(rng.choice(self.n_categories, p=p / p.sum()))

    def _make_view(self, user: int, page_type: str, category, hour: int) -> PageView:
        segment = int(self._user_segment[user])
        device = DEVICES[self._user_device[user]]
        country = COUNTRIES[self._user_country[user]]
        recent = self._user_recent[user]
        page = {"type": page_type} if category is None else {"type": page_type, "category": f"c{category}"}
        context = {"user": {"segment": f"s{segment}", "device": device, "country": country, "hour": hour,
                            "recent": [f"c{c}" for c in recent]}, "page": page}
        return PageView(f"user-{user}", context, user, segment, page_type, category, hour, device, country, recent)

    def sample_views(self, count: int, seed: int = 0) -> list:
        """Draw ``count`` page views from a Generator seeded with ``seed`` (for reference values).

        >>> len(SimulatedShop(seed=0).sample_views(3))
        3
        """
        rng = np.random.default_rng(seed)
        return [self.page_view(rng) for _ in range(count)]

    # -- ground truth -----------------------------------------------------------------------

    def _attractiveness(self, view: PageView) -> np.ndarray:
        """Return every item's click probability for this view when it is seen."""
        return _sigmoid(self._offset + self._logits(view))

    def _logits(self, view: PageView) -> np.ndarray:
        s = view.segment
        logit = self._base_logits[s]
        logit = logit + self._w_recent[s] * self._in_categories(view.recent)
        if view.category is not None:
            logit = logit + PAGE_BOOST[view.page_type] * (self._item_category == view.category)
        shift = DEVICE_SHIFT[view.device] + COUNTRY_SHIFT[view.country] + EVENING_SHIFT * (view.hour in EVENING)
        return logit + shift

    def _in_categories(self, categories) -> np.ndarray:
        """Return a boolean per item: is its category one of ``categories``."""
        chosen = np.zeros(self.n_categories, dtype=bool)
        chosen[list(categories)] = True
        return chosen[self._item_category]

    def _indices(self, item_ids) -> np.ndarray:
        try:
            return np.array([self._index[item] for item in item_ids], dtype=int)
        except KeyError as exc:
            raise KeyError(f"unknown item {exc.args[0]!r}") from None

    def bias(self, slots: int) -> np.ndarray:
        """Return the probability that each of the first ``slots`` slots is seen.

        >>> SimulatedShop(seed=0).bias(3).tolist()
        [1.0, 0.7, 0.5]
        """
        given = np.asarray(self.position_bias, dtype=float)
        if slots <= given.size:
            return given[:slots].copy()
        extra = given[-1] * POSITION_DECAY ** np.arange(1, slots - given.size + 1)
        return np.concatenate([given, extra])

    def click_probability(self, view: PageView, item_id: str) -> float:
        """Return the probability that the user clicks the item when seen (before position bias).

        >>> shop = SimulatedShop(seed=0)
        >>> 0 < shop.click_probability(shop.page_view(np.random.default_rng(0)), "sku-3") < 1
        True
        """
        return float(self._attractiveness(view)[self._indices([item_id])[0]])

    def slot_click_probabilities(self, view: PageView, slate_ids) -> np.ndarray:
        """Return each slot's click probability: attractiveness times the chance the slot is seen.

        >>> shop = SimulatedShop(seed=0)
        >>> p = shop.slot_click_probabilities(shop.page_view(np.random.default_rng(0)), ["sku-1", "sku-1"])
        >>> bool(p[1] < p[0])
        True
        """
        idx = self._indices(slate_ids)
        return self._attractiveness(view)[idx] * self.bias(len(idx))

    def expected_clicks(self, view: PageView, slate_ids) -> float:
        """Return the slate's expected clicks for this view (for one slot: the CTR)."""
        return self.expected_reward(view, slate_ids)

    def _item_values(self, view: PageView, events=None) -> np.ndarray:
        """Return each item's expected reward when seen: clicks only, or weighted by ``events``."""
        attractive = self._attractiveness(view)
        if events is None:
            return attractive
        after = events.get("add_to_cart", 0.0) + PURCHASE_RATE * events.get("purchase", 0.0)
        return attractive * (events.get("click", 0.0) + self._p_add_to_cart[view.segment] * after)

    def expected_reward(self, view: PageView, slate_ids, events=None) -> float:
        """Return the slate's expected reward with event values like ``{"click": 1, "purchase": 10}``.

        Without ``events`` it is the expected clicks.

        >>> shop = SimulatedShop(seed=0)
        >>> view = shop.page_view(np.random.default_rng(0))
        >>> shop.expected_reward(view, ["sku-2"], {"click": 1.0}) == shop.expected_clicks(view, ["sku-2"])
        True
        """
        idx = self._indices(slate_ids)
        return float((self._item_values(view, events)[idx] * self.bias(len(idx))).sum())

    def _pool(self, candidates) -> np.ndarray:
        return np.arange(self.n_items) if candidates is None else self._indices(candidates)

    def oracle(self, view: PageView, slots: int, candidates=None, events=None) -> tuple:
        """Return the best slate under the true model and its expected clicks (or reward).

        Slots are seen less the lower they are and clicks are independent, so
        sorting by attractiveness puts the best item in the most-seen slot.

        >>> shop = SimulatedShop(seed=0)
        >>> view = shop.page_view(np.random.default_rng(0))
        >>> ids, value = shop.oracle(view, 3)
        >>> len(ids), value >= shop.uniform_value(view, 3)
        (3, True)
        """
        pool = self._pool(candidates)
        values = self._item_values(view, events)
        order = pool[np.argsort(-values[pool], kind="stable")][:slots]
        ids = [self._ids[i] for i in order]
        return ids, float((values[order] * self.bias(len(order))).sum())

    def uniform_value(self, view: PageView, slots: int, candidates=None, events=None) -> float:
        """Return the expected clicks (or reward) of a uniformly random slate: each slot's item is uniform.

        >>> shop = SimulatedShop(seed=0)
        >>> view = shop.page_view(np.random.default_rng(0))
        >>> round(shop.uniform_value(view, 2) / shop.uniform_value(view, 1), 6)
        1.7
        """
        pool = self._pool(candidates)
        slots = min(slots, pool.size)
        return float(self._item_values(view, events)[pool].mean() * self.bias(slots).sum())

    def best_fixed(self, slots: int, views, candidates=None, events=None) -> tuple:
        """Return the best one-for-everyone slate over ``views`` and its mean expected clicks.

        Clicks are linear in each slot's attractiveness, so the best fixed slate
        sorts items by their mean attractiveness over the views. With per-view
        ``candidates`` (one id list per view) the fixed policy is that ranking
        restricted to each view's candidates; then the full ranking is returned.

        >>> shop = SimulatedShop(seed=0)
        >>> views = shop.sample_views(200)
        >>> ids, value = shop.best_fixed(2, views)
        >>> len(ids), bool(np.isclose(value, np.mean([shop.expected_clicks(v, ids) for v in views])))
        (2, True)
        """
        values = np.array([self._item_values(v, events) for v in views])
        ranking = np.argsort(-values.mean(axis=0), kind="stable")
        if candidates is None:
            top = ranking[:slots]
            return [self._ids[i] for i in top], float((values[:, top] @ self.bias(len(top))).mean())
        rank_of = np.empty(self.n_items, dtype=int)
        rank_of[ranking] = np.arange(self.n_items)
        total = 0.0
        for row, cands in zip(values, candidates):
            idx = self._indices(cands)
            top = idx[np.argsort(rank_of[idx])][:slots]
            total += float(row[top] @ self.bias(len(top)))
        return [self._ids[i] for i in ranking], total / max(len(views), 1)

    # -- outcomes -----------------------------------------------------------------------------

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
        idx = self._indices(slate_ids)
        p_click = self.slot_click_probabilities(view, slate_ids)
        u = rng.random((len(idx), 6))
        found = []
        for slot, item in enumerate(idx):
            if u[slot, 0] >= p_click[slot]:
                continue
            found += self._after_click(view, item, slot, u[slot])
        return sorted(found, key=lambda o: o.delay_seconds)

    def _after_click(self, view: PageView, item: int, slot: int, u) -> list:
        item_id = self._ids[item]
        delay = 1.0 - CLICK_DELAY_MEAN * np.log1p(-u[1])  # 1 s plus an exponential
        events = [Outcome("click", item_id, slot, float(delay))]
        if u[2] < self._p_add_to_cart[view.segment, item]:
            delay += ADD_TO_CART_DELAY[0] + (ADD_TO_CART_DELAY[1] - ADD_TO_CART_DELAY[0]) * u[3]
            events.append(Outcome("add_to_cart", item_id, slot, float(delay)))
            if u[4] < PURCHASE_RATE:
                delay += PURCHASE_DELAY[0] + (PURCHASE_DELAY[1] - PURCHASE_DELAY[0]) * u[5]
                events.append(Outcome("purchase", item_id, slot, float(delay)))
        return events

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
        if name not in STRATEGIES:
            raise KeyError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")
        return STRATEGIES[name](self, view, slots)

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


# -- strategies: each builds a slate from the catalog for one view ---------------------------

def _top(shop: SimulatedShop, score, slots: int, mask=None) -> list:
    """Return the ids of the ``slots`` best-scored items, the masked ones first."""
    order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
    if mask is not None:
        order = np.concatenate([order[mask[order]], order[~mask[order]]])
    return [shop._ids[i] for i in order[:slots]]


def bestsellers(shop: SimulatedShop, view: PageView, slots: int) -> list:
    """Show the most popular items, the same for everyone."""
    return _top(shop, shop._popularity, slots)


def same_category(shop: SimulatedShop, view: PageView, slots: int) -> list:
    """Show the most popular items of the viewed category (bestsellers on the home page)."""
    if view.category is None:
        return bestsellers(shop, view, slots)
    return _top(shop, shop._popularity, slots, shop._item_category == view.category)


def recently_viewed(shop: SimulatedShop, view: PageView, slots: int) -> list:
    """Show the most popular items of the user's recently viewed categories."""
    return _top(shop, shop._popularity, slots, shop._in_categories(view.recent))


def trending(shop: SimulatedShop, view: PageView, slots: int) -> list:
    """Show what sells most right now (the shop's hidden, seeded sales buzz)."""
    return _top(shop, shop._buzz, slots)


def cheapest_first(shop: SimulatedShop, view: PageView, slots: int) -> list:
    """Show the cheapest items."""
    return _top(shop, -shop._price, slots)


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


# -- scenarios: what a driver needs to build requests and grade the answers -------------------

CLICK_EVENTS = {"click": 1.0, "add_to_cart": 0.0, "purchase": 0.0}
SCENARIOS = {
    "items": {"kind": "items", "slots": 1, "shown": 1, "candidate_count": None,
              "description": "One recommended item per page view, chosen from the catalog"},
    "slate": {"kind": "items", "slots": 3, "shown": 3, "candidate_count": None,
              "description": "A slate of three items; lower slots are seen less"},
    "strategies": {"kind": "strategies", "slots": 1, "shown": 3, "candidate_count": None,
                   "description": "Choose a recommendation strategy; its three items are shown"},
}


def _ids(candidates):
    if candidates is None:
        return None
    return [c["id"] if isinstance(c, dict) else c for c in candidates]


def _item_request(shop, preset, view, rng) -> dict:
    return {"unit": view.unit, "context": view.context,
            "candidates": shop.candidates(rng, preset["candidate_count"])}


def _item_value(shop, preset, view, chosen) -> float:
    return shop.expected_reward(view, chosen, preset["events"] or None)  # {} counts clicks, as the spec does


def _item_oracle(shop, preset, view, candidates=None) -> tuple:
    return shop.oracle(view, preset["slots"], _ids(candidates), preset["events"])


def _item_uniform(shop, preset, view, candidates=None) -> float:
    return shop.uniform_value(view, preset["slots"], _ids(candidates), preset["events"])


def _item_best_fixed(shop, preset, views, candidates=None) -> tuple:
    per_view = None if candidates is None else [_ids(c) for c in candidates]
    return shop.best_fixed(preset["slots"], views, per_view, preset["events"])


def _item_outcomes(shop, preset, view, chosen, rng) -> list:
    return shop.outcomes(view, chosen, rng)


def _strategy_request(shop, preset, view, rng) -> dict:
    return {"unit": view.unit, "context": view.context}


def _strategy_value(shop, preset, view, chosen) -> float:
    return shop.strategy_value(chosen[0], view, preset["shown"], preset["events"])


def _strategy_oracle(shop, preset, view, candidates=None) -> tuple:
    name, value = shop.strategy_oracle(view, preset["shown"], preset["events"])
    return [name], value


def _strategy_uniform(shop, preset, view, candidates=None) -> float:
    return shop.strategy_uniform_value(view, preset["shown"], preset["events"])


def _strategy_best_fixed(shop, preset, views, candidates=None) -> tuple:
    name, value = shop.strategy_best_fixed(preset["shown"], views, preset["events"])
    return [name], value


def _strategy_outcomes(shop, preset, view, chosen, rng) -> list:
    return shop.strategy_outcomes(chosen[0], view, preset["shown"], rng)


_OPERATIONS = {
    "items": {"request": _item_request, "value": _item_value, "oracle": _item_oracle,
              "uniform": _item_uniform, "best_fixed": _item_best_fixed, "outcomes": _item_outcomes},
    "strategies": {"request": _strategy_request, "value": _strategy_value, "oracle": _strategy_oracle,
                   "uniform": _strategy_uniform, "best_fixed": _strategy_best_fixed,
                   "outcomes": _strategy_outcomes},
}


def scenario(name: str, seed: int = 0, candidate_count=None, events=None, **shop_options) -> dict:
    """Build a preset ("items", "slate", "strategies"): a shop, the experiment spec and graders.

    The dict holds plain settings (``kind``, ``slots``: slate size the service
    picks, ``shown``: items the user sees, ``candidate_count``, ``events``), the
    ``shop``, a ``spec`` to merge into an experiment spec, and callables:
    ``request(view, rng)`` -> slate request body; ``value(view, chosen_ids)``,
    ``uniform(view, candidates=None)`` -> expected clicks (or ``events``-weighted
    reward) per page view; ``oracle(view, candidates=None)`` and
    ``best_fixed(views, candidates=None)`` -> (ids, value);
    ``outcomes(view, chosen_ids, rng)`` -> list of ``Outcome`` in the ids the
    service chose (for strategies: the strategy, slot 0). ``candidates`` are the
    request's candidates (dicts or ids), one list per view for ``best_fixed``.

    >>> sc = scenario("slate", seed=0)
    >>> sc["spec"]["kind"], sc["spec"]["slots"], len(sc["spec"]["arms"])
    ('items', 3, 0)
    >>> view = sc["shop"].page_view(np.random.default_rng(0))
    >>> body = sc["request"](view, np.random.default_rng(0))
    >>> ids, best = sc["oracle"](view, body["candidates"])
    >>> sc["uniform"](view) < sc["value"](view, ids) == best
    True
    """
    if name not in SCENARIOS:
        raise KeyError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    shop = SimulatedShop(seed=seed, **shop_options)
    preset = {**SCENARIOS[name], "name": name, "seed": seed, "events": events}
    if candidate_count is not None:
        preset["candidate_count"] = candidate_count
    arms = shop.strategy_arms() if preset["kind"] == "strategies" else []
    spec = {"key": f"sim-{name}", "name": preset["description"], "kind": preset["kind"],
            "slots": preset["slots"], "arms": arms, "reward": {"events": dict(events or CLICK_EVENTS)}}
    operations = {key: partial(fn, shop, dict(preset)) for key, fn in _OPERATIONS[preset["kind"]].items()}
    return {**preset, "shop": shop, "spec": spec, **operations}


def reference_values(sc: dict, views, candidates=None) -> dict:
    """Return the mean expected clicks per page view of uniform, best fixed and oracle policies.

    >>> sc = scenario("items", seed=0)
    >>> ref = reference_values(sc, sc["shop"].sample_views(300))
    >>> ref["uniform"] < ref["best_fixed"] < ref["oracle"]
    True
    """
    per_view = candidates or [None] * len(views)
    uniform = float(np.mean([sc["uniform"](v, c) for v, c in zip(views, per_view)]))
    oracle = float(np.mean([sc["oracle"](v, c)[1] for v, c in zip(views, per_view)]))
    fixed_ids, fixed = sc["best_fixed"](views, candidates)
    return {"uniform": uniform, "best_fixed": fixed, "oracle": oracle, "best_fixed_ids": fixed_ids}


def normalized_lift(value: float, uniform: float, oracle: float) -> float:
    """Place a policy's value between uniform random (0.0) and the oracle (1.0).

    >>> round(normalized_lift(0.15, uniform=0.05, oracle=0.25), 6)
    0.5
    """
    gap = oracle - uniform
    return float("nan") if gap <= 0 else (value - uniform) / gap
