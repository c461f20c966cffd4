"""A reward report, parsed once where it enters the domain into one validated value.

``parse_reward_request`` checks the body on its own; what needs the experiment
(the value of a reward type it knows) is ``RewardRequest.value_for``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

from experiments.errors import InvalidField
from experiments.spec import check_id, check_object

FIELDS = frozenset({"type", "item", "value", "id"})
MAX_TYPE_LENGTH = 64


@dataclass(frozen=True)
class RewardRequest:
    """One outcome the shop reports for a decision."""

    type: str | None  # an event type of the experiment's reward map, or the shop's own name
    value: float | None  # None takes the experiment's value for ``type``
    item: str | None  # the candidate the outcome belongs to, which names its slot
    id: str | None  # the idempotency key; None means a fresh one

    def value_for(self, events: dict) -> float:
        """Return the value to store: the one given, else the experiment's value for the type."""
        if self.value is not None:
            return self.value
        if self.type not in events:
            raise InvalidField("type", f"unknown reward type {self.type!r}; known: {', '.join(events)}"
                                       " (or give a value)")
        return float(events[self.type])


def _type(body: dict) -> str | None:
    kind = body.get("type")
    if kind is not None and (not isinstance(kind, str) or not 1 <= len(kind) <= MAX_TYPE_LENGTH):
        raise InvalidField("type", f"must be a string of 1-{MAX_TYPE_LENGTH} characters")
    return kind


def _value(body: dict, kind: str | None) -> float | None:
    value = body.get("value")
    if value is None:
        if kind is None:
            raise InvalidField("value", "give a reward type or a value")
        return None
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise InvalidField("value", "must be a finite number")
    return float(value)


def _optional_id(body: dict, field: str) -> str | None:
    value = body.get(field)
    return None if value is None else check_id(value, field)


def parse_reward_request(body) -> RewardRequest:
    """Validate a reward body; every error names the field it blames."""
    body = check_object(body, "", FIELDS)
    kind = _type(body)
    value = _value(body, kind)
    return RewardRequest(type=kind, value=value, id=_optional_id(body, "id"), item=_optional_id(body, "item"))
