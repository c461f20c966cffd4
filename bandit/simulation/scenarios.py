"""Scenarios: what a driver needs to build requests for the simulated shop and grade the answers.

A scenario is a preset (``items``: one item of the catalog per page view;
``slate``: three slots; ``strategies``: one of five recommendation strategies,
whose three items are shown) bound to a seeded shop: the experiment spec to
create, how to build a request for a page view, and graders under the true
click model (the chosen slate's value, uniform random, the oracle, the best
fixed slate). ``normalized_lift`` places a policy between uniform (0) and the oracle (1).
"""
from __future__ import annotations

from functools import partial

import numpy as np

from bandit.simulation.shop import SimulatedShop

CLICK_EVENTS = {"click": 1.0, "add_to_cart": 0.0, "purchase": 0.0}
SCENARIOS = {
    "items": {"kind": "items", "slots": 1, "shown": 1, "candidate_count": None,
              "description": "One recommended item per page view, chosen from the catalog"},
    "slate": {"kind": "items", "slots": 3, "shown": 3, "candidate_count": None,
              "description": "A slate of three items; lower slots are seen less"},
    "strategies": {"kind": "strategies", "slots": 1, "shown": 3, "candidate_count": None,
                   "description": "Choose a recommendation strategy; its three items are shown"},
    "drift": {"kind": "items", "slots": 1, "shown": 1, "candidate_count": None,
              "description": "One item per page view; half way, the trend followers (s2) turn mainstream (like s3)",
              "drift": {"segment": 2, "like": 3, "at_share": 0.5}},
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
    """Build a preset ("items", "slate", "strategies", "drift"): a shop, the experiment spec and graders.

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
    A ``drift`` preset also holds ``after``: the same scenario once one segment's
    tastes changed (see ``world_at``).

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
    found = {**preset, "shop": shop, "spec": spec, **_bind(shop, preset)}
    if "drift" in preset:
        drift = preset["drift"]
        changed = shop.with_changed_tastes(drift["segment"], drift["like"])
        found["after"] = {**preset, "shop": changed, "spec": spec, **_bind(changed, preset)}
    return found


def _bind(shop: SimulatedShop, preset: dict) -> dict:
    return {key: partial(fn, shop, dict(preset)) for key, fn in _OPERATIONS[preset["kind"]].items()}


def world_at(sc: dict, index: int, change_at: int | None) -> dict:
    """Return the scenario as the world is at event ``index``: after a drift's change, the changed one.

    >>> sc = scenario("drift", seed=0)
    >>> world_at(sc, 10, change_at=100) is sc, world_at(sc, 100, change_at=100) is sc["after"]
    (True, True)
    """
    return sc["after"] if change_at is not None and "after" in sc and index >= change_at else sc


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
