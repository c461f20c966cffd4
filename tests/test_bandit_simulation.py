"""The simulated shop: a known ground truth that is optimal where it says, seeded, and learnable."""
from __future__ import annotations

import dataclasses
import itertools
import json
from collections import Counter, defaultdict

import numpy as np
import pytest

from bandit.simulation import (
    SCENARIOS,
    STRATEGIES,
    Outcome,
    SimulatedShop,
    normalized_lift,
    reference_values,
    scenario,
    world_at,
)


@pytest.fixture(scope="module")
def shop():
    return SimulatedShop(seed=0)


@pytest.fixture(scope="module")
def views(shop):
    return shop.sample_views(2000, seed=1)


@pytest.fixture(scope="module")
def tiny():
    return SimulatedShop(seed=3, n_items=6, n_categories=3, n_segments=2, n_users=20)


def test_oracle_is_optimal_by_brute_force(tiny):
    rng = np.random.default_rng(0)
    for _ in range(15):
        view = tiny.page_view(rng)
        for slots in (1, 2, 3):
            best = max(tiny.expected_clicks(view, list(p))
                       for p in itertools.permutations([c["id"] for c in tiny.catalog], slots))
            ids, value = tiny.oracle(view, slots)
            assert value == pytest.approx(best, abs=1e-12)
            assert tiny.expected_clicks(view, ids) == pytest.approx(value, abs=1e-12)


def test_oracle_respects_candidates_and_event_values(tiny):
    view = tiny.page_view(np.random.default_rng(4))
    candidates = ["sku-1", "sku-3", "sku-4", "sku-5"]
    events = {"click": 1.0, "add_to_cart": 3.0, "purchase": 10.0}
    ids, value = tiny.oracle(view, 2, candidates, events)
    assert set(ids) <= set(candidates)
    best = max(tiny.expected_reward(view, list(p), events) for p in itertools.permutations(candidates, 2))
    assert value == pytest.approx(best, abs=1e-12)


def test_best_fixed_is_the_best_single_slate_by_brute_force(tiny):
    few = tiny.sample_views(60, seed=2)
    ids, value = tiny.best_fixed(2, few)
    means = {p: np.mean([tiny.expected_clicks(v, list(p)) for v in few])
             for p in itertools.permutations([c["id"] for c in tiny.catalog], 2)}
    assert value == pytest.approx(max(means.values()), abs=1e-12)
    assert means[tuple(ids)] == pytest.approx(value, abs=1e-12)


def test_best_fixed_with_per_view_candidates_uses_one_ranking(shop, views):
    few, rng = views[:100], np.random.default_rng(0)
    candidates = [[c["id"] for c in shop.candidates(rng, 10)] for _ in few]
    ranking, value = shop.best_fixed(2, few, candidates)
    assert sorted(ranking) == sorted(c["id"] for c in shop.catalog)
    position = {item: i for i, item in enumerate(ranking)}
    by_hand = [shop.expected_clicks(v, sorted(c, key=position.get)[:2]) for v, c in zip(few, candidates)]
    assert value == pytest.approx(np.mean(by_hand))
    assert value <= np.mean([shop.oracle(v, 2, c)[1] for v, c in zip(few, candidates)])


def test_same_seed_gives_identical_catalog_views_and_outcomes():
    def run(seed):
        shop = SimulatedShop(seed=seed)
        rng = np.random.default_rng(11)
        views = [shop.page_view(rng) for _ in range(200)]
        slate = ["sku-1", "sku-2", "sku-3"]
        outcomes = [shop.outcomes(v, slate, rng) for v in views]
        return shop.catalog, views, outcomes, shop.clicks.offset

    assert run(0) == run(0)
    assert run(0)[0] != run(1)[0]


def test_catalog_and_context_follow_the_json_contract(shop, views):
    assert len(shop.catalog) == 50
    assert {c["features"]["category"] for c in shop.catalog} == {f"c{i}" for i in range(8)}
    for item in shop.catalog:
        assert set(item) == {"id", "features"}
        assert set(item["features"]) == {"category", "price", "popularity"}
        assert item["features"]["price"] > 0 and 0 <= item["features"]["popularity"] <= 1
    for view in views[:200]:
        json.dumps(view.context)
        user, page = view.context["user"], view.context["page"]
        assert user["segment"] == f"s{view.segment}" and 0 <= user["hour"] < 24
        assert page["type"] in ("home", "product", "category")
        assert ("category" in page) == (page["type"] != "home")
    units = Counter(v.unit for v in views)
    assert units.most_common(1)[0][1] > 1  # a finite population: units repeat


def test_repr_holds_the_constructor_arguments():
    shop = SimulatedShop(seed=5, n_items=20, n_categories=4, n_segments=3, n_users=50)
    assert eval(repr(shop)).catalog == shop.catalog


@pytest.mark.parametrize("options, field", [
    ({"n_items": 0}, "n_items"),
    ({"n_categories": 60}, "n_categories"),
    ({"n_segments": 0}, "n_segments"),
    ({"n_users": 0}, "n_users"),
    ({"position_bias": [0.5, 0.9]}, "position_bias"),
    ({"position_bias": []}, "position_bias"),
    ({"position_bias": [1.2]}, "position_bias"),
    ({"mean_ctr": 0.0}, "mean_ctr"),
])
def test_invalid_settings_name_the_field(options, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        SimulatedShop(**options)


def test_position_bias_lowers_lower_slots(shop, views):
    view = views[0]
    same = shop.slot_click_probabilities(view, ["sku-7"] * 12)
    assert np.all(np.diff(same) < 0)
    assert shop.bias(12)[:4].tolist() == [1.0, 0.7, 0.5, 0.35]
    rng = np.random.default_rng(0)
    clicks = Counter(o.slot for _ in range(4000) for o in shop.outcomes(view, ["sku-7"] * 3, rng)
                     if o.type == "click")
    assert clicks[0] > clicks[1] > clicks[2]


def test_downstream_events_only_follow_clicks_with_positive_delays(shop, views):
    rng = np.random.default_rng(3)
    counts = Counter()
    for view in views:
        slate, _ = shop.oracle(view, 3)
        found = shop.outcomes(view, slate, rng)
        assert [o.delay_seconds for o in found] == sorted(o.delay_seconds for o in found)
        by_slot = defaultdict(dict)
        for o in found:
            assert isinstance(o, Outcome) and o.delay_seconds > 0 and o.item == slate[o.slot]
            by_slot[o.slot][o.type] = o.delay_seconds
            counts[o.type] += 1
        for events in by_slot.values():
            assert "click" in events
            if "add_to_cart" in events:
                assert events["add_to_cart"] >= events["click"] + 5
            if "purchase" in events:
                assert events["purchase"] >= events["add_to_cart"] + 30
    assert counts["click"] > counts["add_to_cart"] > counts["purchase"] > 0


def test_click_rates_are_tuned_to_be_measurable(shop, views):
    by_segment = defaultdict(list)
    for view in views:
        by_segment[view.segment].append(shop.attractiveness(view))
    for rows in by_segment.values():
        rows = np.array(rows)
        assert 0.02 <= rows.mean() <= 0.08
        assert 0.12 <= rows.max(axis=1).mean() <= 0.45  # the best item for the view


def test_strategies_are_context_dependent(shop, views):
    wins = defaultdict(Counter)
    for view in views:
        wins[(view.segment, view.page_type)][shop.strategy_oracle(view, 3)[0]] += 1
    favourites = {cell: counts.most_common(1)[0][0] for cell, counts in wins.items()}
    assert len(set(favourites.values())) >= 3
    _, fixed = shop.strategy_best_fixed(3, views)
    oracle = np.mean([shop.strategy_oracle(view, 3)[1] for view in views])
    uniform = np.mean([shop.strategy_uniform_value(view, 3) for view in views])
    assert uniform < fixed and oracle > fixed * 1.2
    assert normalized_lift(fixed, uniform, oracle) < 0.6


def test_strategy_slates_follow_their_rule(shop, views):
    product = next(v for v in views if v.page_type == "product")
    features = {c["id"]: c["features"] for c in shop.catalog}
    same = shop.strategy_slate("same-category", product, 3)
    assert all(features[i]["category"] == f"c{product.category}" for i in same)
    recent = shop.strategy_slate("recently-viewed", product, 3)
    assert all(features[i]["category"] in product.context["user"]["recent"] for i in recent)
    prices = [features[i]["price"] for i in shop.strategy_slate("cheapest-first", product, 5)]
    assert prices == sorted(prices) and prices[0] == min(f["price"] for f in features.values())
    pops = [features[i]["popularity"] for i in shop.strategy_slate("bestsellers", product, 5)]
    assert pops == sorted(pops, reverse=True)
    assert [a["id"] for a in shop.strategy_arms()] == list(STRATEGIES)
    with pytest.raises(KeyError):
        shop.strategy_slate("nope", product, 3)


def test_uniform_value_matches_monte_carlo(shop, views):
    rng = np.random.default_rng(9)
    ids = [c["id"] for c in shop.catalog]
    view = views[5]
    draws = [shop.expected_clicks(view, list(rng.permutation(ids)[:3])) for _ in range(20000)]
    error = np.std(draws) / np.sqrt(len(draws))
    assert np.mean(draws) == pytest.approx(shop.uniform_value(view, 3), abs=4 * error)
    clicks = sum(o.type == "click" for _ in range(20000)
                 for o in shop.outcomes(view, list(rng.permutation(ids)[:3]), rng))
    assert clicks / 20000 == pytest.approx(shop.uniform_value(view, 3), abs=0.012)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenarios_build_requests_and_rank_reference_policies(name):
    sc = scenario(name, seed=0)
    shop, rng = sc["shop"], np.random.default_rng(0)
    views = shop.sample_views(300, seed=4)
    bodies = [sc["request"](v, rng) for v in views]
    json.dumps(bodies[:3])
    assert sc["spec"]["kind"] == sc["kind"] and sc["spec"]["slots"] == sc["slots"]
    assert ("candidates" in bodies[0]) == (sc["kind"] == "items")
    ref = reference_values(sc, views)
    assert ref["uniform"] < ref["best_fixed"] < ref["oracle"]
    ids, value = sc["oracle"](views[0], bodies[0].get("candidates"))
    assert sc["value"](views[0], ids) == pytest.approx(value)
    found = sc["outcomes"](views[0], ids, rng)
    allowed = set(ids)
    assert all(o.item in allowed and o.slot < sc["slots"] for o in found)


def test_scenario_with_candidate_subsets_grades_against_the_same_candidates():
    sc = scenario("items", seed=0, candidate_count=20)
    rng = np.random.default_rng(0)
    views = sc["shop"].sample_views(200, seed=4)
    candidates = [sc["request"](v, rng)["candidates"] for v in views]
    assert {len(c) for c in candidates} == {20}
    ref = reference_values(sc, views, candidates)
    assert ref["uniform"] < ref["best_fixed"] < ref["oracle"]
    ids, _ = sc["oracle"](views[0], candidates[0])
    assert ids[0] in {c["id"] for c in candidates[0]}


def test_scenario_specs_are_valid_experiment_specs():
    from experiments.spec import parse_spec

    for name in SCENARIOS:
        spec = parse_spec(scenario(name, seed=0)["spec"])
        assert spec.data["reward"]["events"]["click"] == 1.0


def test_unknown_scenario_and_item_are_refused(shop, views):
    with pytest.raises(KeyError, match="unknown scenario"):
        scenario("nope")
    with pytest.raises(KeyError, match="unknown item"):
        shop.click_probability(views[0], "sku-999")


def test_a_drift_changes_one_segment_and_makes_its_old_favourites_poor(shop, views):
    after = shop.with_changed_tastes(2, like=3)
    assert after.catalog is shop.catalog and after.clicks is not shop.clicks
    for view in views[:200]:
        if view.segment == 2:  # now clicks exactly as segment 3 would on the same page
            assert np.array_equal(after.attractiveness(view),
                                  shop.attractiveness(dataclasses.replace(view, segment=3)))
        else:
            assert np.array_equal(after.attractiveness(view), shop.attractiveness(view))
    mine = [v for v in views if v.segment == 2]
    old_favourites = np.mean([after.expected_clicks(v, shop.oracle(v, 1)[0]) for v in mine])
    uniform = np.mean([after.uniform_value(v, 1) for v in mine])
    oracle = np.mean([after.oracle(v, 1)[1] for v in mine])
    assert normalized_lift(old_favourites, uniform, oracle) < 0.3
    with pytest.raises(ValueError, match="^segment:"):
        shop.with_changed_tastes(4, like=0)


def test_the_drift_scenario_switches_worlds_at_the_change():
    sc = scenario("drift", seed=0)
    assert sc["drift"] == {"segment": 2, "like": 3, "at_share": 0.5}
    assert world_at(sc, 99, change_at=100) is sc and world_at(sc, 100, change_at=100) is sc["after"]
    assert world_at(scenario("items", seed=0), 10**6, change_at=1) is not None
    view = next(v for v in sc["shop"].sample_views(100) if v.segment == 2)
    assert sc["oracle"](view)[0] != sc["after"]["oracle"](view)[0]
