"""The simulated shop's catalog: items with a category, a price, a popularity and a hidden sales buzz."""
from __future__ import annotations

import numpy as np

BASE_PRICE = 40.0  # the median category's typical price


class Catalog:
    """The items of the shop, as arrays by item index and as the service's candidate JSON."""

    def __init__(self, category: np.ndarray, price: np.ndarray, popularity: np.ndarray, buzz: np.ndarray,
                 n_categories: int):
        self.category = category
        self.price = price
        self.popularity = popularity
        self.buzz = buzz  # hidden "sold in the last hour": drives the trending strategy and the trend segment
        self.n_categories = n_categories
        log_price = np.log(price)
        self.z_price = (log_price - log_price.mean()) / (log_price.std() or 1.0)
        self.ids = [f"sku-{i}" for i in range(category.size)]
        self._index = {item: i for i, item in enumerate(self.ids)}
        self.items = [{"id": self.ids[i], "features": {"category": f"c{category[i]}", "price": float(price[i]),
                                                       "popularity": float(popularity[i])}}
                      for i in range(category.size)]

    def __len__(self) -> int:
        return len(self.ids)

    def indices(self, item_ids) -> np.ndarray:
        """Return the item indices of ids, refusing an id the catalog does not have."""
        try:
            return np.array([self._index[item] for item in item_ids], dtype=int)
        except KeyError as exc:
            raise KeyError(f"unknown item {exc.args[0]!r}") from None

    def in_categories(self, categories) -> np.ndarray:
        """Return a boolean per item: is its category one of ``categories``."""
        chosen = np.zeros(self.n_categories, dtype=bool)
        chosen[list(categories)] = True
        return chosen[self.category]

    def candidates(self, rng=None, count=None) -> list:
        """Return the whole catalog, or ``count`` items drawn by ``rng`` (in catalog order)."""
        if count is None or count >= len(self):
            return self.items
        chosen = np.sort(rng.choice(len(self), size=count, replace=False))
        return [self.items[i] for i in chosen]


def build_catalog(rng, n_items: int, n_categories: int) -> Catalog:
    """Draw a catalog: categories spread evenly, log-normal prices around a per-category level.

    >>> catalog = build_catalog(np.random.default_rng(0), 10, 3)
    >>> len(catalog), catalog.items[0]["id"], sorted(catalog.items[0]["features"])
    (10, 'sku-0', ['category', 'popularity', 'price'])
    """
    category = rng.permutation(np.arange(n_items) % n_categories)
    category_price = np.exp(rng.normal(np.log(BASE_PRICE), 0.6, size=n_categories))
    price = np.round(category_price[category] * np.exp(rng.normal(0.0, 0.35, size=n_items)), 2)
    popularity = np.round(rng.beta(2.0, 3.0, size=n_items), 2)
    buzz = rng.beta(1.2, 4.0, size=n_items)
    return Catalog(category, np.maximum(price, 1.0), popularity, buzz, n_categories)
