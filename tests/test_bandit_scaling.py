"""Numeric feature scaling: the transforms, their validation, and a policy that learns with them."""
import math

import pytest
import vowpalwabbit

from bandit.encoding import action_text, cb_lines, context_text
from bandit.exploration import SettingError
from bandit.policy import Policy, PolicySettings
from bandit.scaling import OBSERVE, Scaler, parse_scaling

ITEMS = [{"id": f"sku-{i}", "features": {"price": 5.0 * (i + 1) ** 2, "colour": "red"}} for i in range(4)]


@pytest.mark.parametrize("data, field", [
    ("log", ""),
    ({"default": "cube"}, "default"),
    ({"mode": "log"}, "mode"),
    ({"features": []}, "features"),
    ({"features": {"price": "log"}}, "features.price"),
    ({"features": {"action.price": "square"}}, "features.action.price"),
    ({"features": {"action.price": {"buckets": []}}}, "features.action.price.buckets"),
    ({"features": {"action.price": {"buckets": [50, 10]}}}, "features.action.price.buckets"),
    ({"features": {"action.price": {"buckets": [1, float("inf")]}}}, "features.action.price.buckets"),
    ({"features": {"action.price": {"buckets": [1, True]}}}, "features.action.price.buckets"),
    ({"features": {"action.price": "log", "Action.price": "raw"}}, "features.Action.price"),
])
def test_invalid_scaling_names_the_field(data, field):
    with pytest.raises(SettingError) as err:
        parse_scaling(data)
    assert err.value.field == field


def test_log_raw_and_buckets_rewrite_only_numbers():
    scaler = Scaler(parse_scaling({"default": "log", "features": {"user.age": {"buckets": [18, 30]},
                                                                  "action.popularity": "raw"}}))
    shared = context_text({"user": {"age": 25, "segment": "new", "visits": [3, 0]}, "hour": -9})
    assert scaler.text(shared) == (f"|User age=[18.0,30.0) segment=new visits[0]:{math.log1p(3)!r} visits[1]:0.0 "
                                   f"|Context hour:{-math.log1p(9)!r}")
    item = action_text({"id": "a:b", "features": {"price": 349.0, "popularity": 0.4, "tags": ["x:1"]}})
    assert scaler.texts([item]) == [f"|Action id=a%3Ab price:{math.log1p(349)!r} popularity:0.4 tags=x%3A1"]
    assert Scaler(parse_scaling({"default": "raw"})).text(shared) == shared


def test_standard_scaling_observes_then_freezes():
    scaler = Scaler(parse_scaling({"features": {"action.price": "standard"}}))
    lines = [action_text(item) for item in ITEMS]
    assert scaler.observing and scaler.texts(lines) == lines  # nothing known yet: as sent
    for _ in range(OBSERVE):
        scaler.observe(lines)
    assert not scaler.observing
    prices = [item["features"]["price"] for item in ITEMS]
    mean = sum(prices) / len(prices)
    std = math.sqrt(sum((p - mean) ** 2 for p in prices) / len(prices))
    scaled = [float(line.split("price:")[1].split()[0]) for line in scaler.texts(lines)]
    assert scaled == pytest.approx([(p - mean) / std for p in prices])
    scaler.observe(lines)
    assert scaler.statistics.examples == OBSERVE  # frozen: later examples change nothing


def test_a_standardising_policy_learns_what_it_waited_for_in_order():
    """Until the statistics are observed nothing is learned; then the model is VW fed the scaled examples."""
    settings = PolicySettings(scaling=parse_scaling({"default": "standard"}), interactions=())
    policy = Policy(settings)
    actions = [action_text(item) for item in ITEMS]
    examples = [(context_text({"user": {"visits": i % 7}}), [(i % 4, 0.25)], [float(i % 3 == 0)])
                for i in range(OBSERVE + 20)]
    for n, (shared, chosen, reward) in enumerate(examples):
        policy.learn(shared, actions, chosen, reward)
        assert policy.waiting == (n + 1 if n + 1 < OBSERVE else 0)
    scaler = Scaler(settings.scaling)
    for shared, _, _ in examples[:OBSERVE]:
        scaler.observe([shared, *actions])
    bare = vowpalwabbit.Workspace(settings.args())
    for shared, chosen, reward in examples:
        index, p = chosen[0]
        bare.learn(cb_lines(scaler.text(shared), scaler.texts(actions), label=(index, -reward[0], p)))
    probe = context_text({"user": {"visits": 3}})
    assert list(policy.pmf(probe, actions)) == pytest.approx(bare.predict(cb_lines(scaler.text(probe),
                                                                                   scaler.texts(actions))))
    restored = Policy(settings, policy.save(), policy.statistics())
    assert list(restored.pmf(probe, actions)) == list(policy.pmf(probe, actions))
    bare.finish()
