"""A simulated shop with a known ground truth, to drive and grade the service; imports numpy only.

The world model, in small modules: ``catalog`` (items with category, price and
popularity), ``population`` (taste segments, users, page views), ``clicks`` (the
true click model with position bias, and the add-to-carts and purchases that
follow), ``oracle`` (the best possible, uniform and best fixed policies under
that model), ``strategies`` (recommendation strategies to choose among),
``shop`` (``SimulatedShop``, which puts them together from one seed) and
``scenarios`` (presets a driver plays against the service, and their graders).

Every effect that changes which item is best is visible to VW through the
context (``user.segment``, ``user.recent``, ``page.type``, ``page.category``)
crossed with the item's features or id (``-q UA -q PA``), so a contextual
bandit can get close to the oracle. Device, country and hour only shift the
overall click level.
"""
from bandit.simulation.clicks import Outcome
from bandit.simulation.population import PageView
from bandit.simulation.scenarios import CLICK_EVENTS, SCENARIOS, normalized_lift, reference_values, scenario, world_at
from bandit.simulation.shop import SimulatedShop
from bandit.simulation.strategies import STRATEGIES, STRATEGY_FEATURES

__all__ = ["CLICK_EVENTS", "SCENARIOS", "STRATEGIES", "STRATEGY_FEATURES", "Outcome", "PageView", "SimulatedShop",
           "normalized_lift", "reference_values", "scenario", "world_at"]
