import pytest

from experiments.errors import Conflict, InvalidField
from experiments.spec import apply_patch, check_transition, parse_spec

ARMS = [{"id": "bestsellers", "features": {"source": "popularity"}}, {"id": "trending"}]


def test_defaults_are_filled_in():
    data = parse_spec({"key": "home-recs"}).data
    assert data["name"] == "home-recs" and data["kind"] == "items" and data["slots"] == 1
    assert data["reward"]["aggregation"] == "sum" and data["traffic"]["holdout"] == 0.1
    assert data["learning"]["interactions"] == ["UA", "PA"]


@pytest.mark.parametrize(
    "spec, field",
    [
        ({}, "key"),
        ({"key": "Bad Key"}, "key"),
        ({"key": "x" * 65}, "key"),
        ({"key": "k", "colour": "red"}, "colour"),
        ({"key": "k", "kind": "pages"}, "kind"),
        ({"key": "k", "slots": 0}, "slots"),
        ({"key": "k", "slots": 1.5}, "slots"),
        ({"key": "k", "slots": True}, "slots"),
        ({"key": "k", "arms": ARMS}, "arms"),
        ({"key": "k", "kind": "strategies"}, "arms"),
        ({"key": "k", "kind": "strategies", "arms": [ARMS[0], ARMS[0]]}, "arms[1].id"),
        ({"key": "k", "kind": "strategies", "arms": [ARMS[0], {"id": ""}]}, "arms[1].id"),
        ({"key": "k", "kind": "strategies", "arms": [ARMS[0], {"id": "x", "features": {"p": float("nan")}}]},
         "arms[1].features.p"),
        ({"key": "k", "kind": "strategies", "arms": ARMS, "slots": 3}, "slots"),
        ({"key": "k", "exploration": {"algorithm": "epsilon", "epsilon": 2}}, "exploration.epsilon"),
        ({"key": "k", "exploration": {"algorithm": "thompson"}}, "exploration.algorithm"),
        ({"key": "k", "learning": {"learning_rate": 0}}, "learning.learning_rate"),
        ({"key": "k", "learning": {"interactions": "UA"}}, "learning.interactions"),
        ({"key": "k", "learning": {"update_seconds": -1}}, "learning.update_seconds"),
        ({"key": "k", "learning": {"vw_args": "--nonsense_flag"}}, "learning.vw_args"),
        ({"key": "k", "learning": {"vw_args": "-f /tmp/x"}}, "learning.vw_args"),
        ({"key": "k", "learning": {"speed": 1}}, "learning.speed"),
        ({"key": "k", "reward": {"aggregation": "mean"}}, "reward.aggregation"),
        ({"key": "k", "reward": {"wait_seconds": -5}}, "reward.wait_seconds"),
        ({"key": "k", "reward": {"default": float("inf")}}, "reward.default"),
        ({"key": "k", "reward": {"events": {"click": "one"}}}, "reward.events.click"),
        ({"key": "k", "traffic": {"holdout": 1.0}}, "traffic.holdout"),
        ({"key": "k", "traffic": {"control": "random"}}, "traffic.control"),
        ({"key": "k", "kind": "strategies", "arms": ARMS, "traffic": {"control": {"arm": "nope"}}},
         "traffic.control.arm"),
    ],
)
def test_invalid_specs_name_the_field(spec, field):
    with pytest.raises(InvalidField) as info:
        parse_spec(spec)
    assert info.value.field == field


def test_strategies_with_fixed_arm_control():
    spec = parse_spec({"key": "s", "kind": "strategies", "arms": ARMS, "traffic": {"control": {"arm": "trending"}}})
    assert spec.traffic["control"] == {"arm": "trending"}


def test_patch_merges_one_level_and_switching_algorithm_replaces_it():
    spec = parse_spec({"key": "k", "exploration": {"algorithm": "epsilon", "epsilon": 0.2}}).data
    patched, status = apply_patch(spec, {"learning": {"learning_rate": 0.1}, "status": "running"})
    assert patched.learning["learning_rate"] == 0.1 and patched.learning["interactions"] == ["UA", "PA"]
    assert status == "running"
    patched, _ = apply_patch(spec, {"exploration": {"algorithm": "squarecb"}})
    assert patched.data["exploration"]["algorithm"] == "squarecb"
    with pytest.raises(InvalidField) as info:
        apply_patch(spec, {"kind": "strategies"})
    assert info.value.field == "kind"


@pytest.mark.parametrize("old, new, ok", [
    ("draft", "running", True), ("running", "paused", True), ("paused", "running", True),
    ("running", "stopped", True), ("stopped", "running", False), ("paused", "draft", False),
    ("running", "draft", False), ("draft", "paused", False),
])
def test_status_transitions(old, new, ok):
    if ok:
        check_transition(old, new)
    else:
        with pytest.raises(Conflict):
            check_transition(old, new)
