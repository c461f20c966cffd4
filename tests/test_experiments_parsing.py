"""Requests parsed once into typed values: a slate request, a reward and a spec patch, without HTTP."""
import pytest

from experiments.candidates import CandidateSets
from experiments.errors import InvalidField
from experiments.reward_request import RewardRequest, parse_reward_request
from experiments.slate_request import parse_slate_request
from experiments.spec import parse_patch, parse_spec

CANDIDATES = [{"id": "a", "features": {"price": 1}}, {"id": "b"}, {"id": "c", "features": {"tag": "x y"}}]


class EmptyCatalog:
    def snapshot(self):
        return 0, {}


def parse(body, **spec):
    return parse_slate_request(body, parse_spec({"key": "k", **spec}, check_vw=False), 1, CandidateSets(EmptyCatalog()))


def test_a_slate_request_becomes_one_value_with_its_vw_text():
    request = parse({"unit": "u", "context": {"user": {"tier": "gold"}}, "candidates": CANDIDATES,
                     "exclude": ["b"], "slots": 2,
                     "slot_context": [{"id": "hero", "features": {"size": "big"}}, {"baseline": "c"}]}, slots=3)
    assert (request.unit, request.event_id, request.slots, request.exclude) == ("u", None, 2, ("b",))
    assert request.shared == "|User tier=gold"
    assert [c["id"] for c in request.candidates] == ["a", "c"]
    assert request.actions == ("|Action id=a price:1.0", "|Action id=c tag=x%20y")
    assert request.candidate_digest is None  # the set lost a candidate: its digest is made when it is logged
    assert request.options.slot_texts == ("|Slot size=big", "|")
    assert request.options.baseline == (0, 1)


def test_defaults_come_from_the_experiment():
    request = parse({"candidates": CANDIDATES}, slots=2)
    assert request.slots == 2 and request.unit is None and request.context == {} and request.shared == ""
    assert request.candidate_digest and request.options.slot_texts == ()


@pytest.mark.parametrize("body, field", [
    ({"candidates": CANDIDATES, "unit": None}, "unit"),
    ({"candidates": CANDIDATES, "slot_context": [{"features": []}]}, "slot_context[0].features"),
    ({"candidates": CANDIDATES, "defer_activation": 1}, "defer_activation"),
])
def test_each_field_is_checked_where_the_request_is_parsed(body, field):
    with pytest.raises(InvalidField) as info:
        parse(body)
    assert info.value.field == field


def test_a_reward_becomes_one_value_and_takes_its_value_from_the_experiment():
    reward = parse_reward_request({"type": "purchase", "item": "a", "id": "r1"})
    assert reward == RewardRequest(type="purchase", value=None, item="a", id="r1")
    assert reward.value_for({"purchase": 10}) == 10.0
    assert parse_reward_request({"value": 2}).value_for({}) == 2.0
    with pytest.raises(InvalidField) as info:
        reward.value_for({"click": 1.0})
    assert info.value.field == "type"


def test_a_patch_keeps_the_fields_as_sent_and_validates_the_merged_spec():
    patch = parse_patch({"traffic": {"holdout": 0.2}, "status": "running"})
    assert patch.status == "running" and patch.fields == {"traffic": {"holdout": 0.2}, "status": "running"}
    current = parse_spec({"key": "k"}).data
    assert patch.apply(current).traffic["holdout"] == 0.2
    with pytest.raises(InvalidField) as info:
        parse_patch({"traffic": {"holdout": 2}}).apply(current)
    assert info.value.field == "traffic.holdout"
