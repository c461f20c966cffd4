"""Personalizer's Rank and Reward documents, translated to and from native slate requests.

Personalizer sends features as lists of objects (``[{"user": {...}}, {"time": "am"}]``);
the native API takes one object, so the list is merged: objects under the same
key merge, other repeated keys become a list. Actions become candidates, the
slots of a multi-slot request become the native ``slot_context``, and a native
error's field is renamed to the Personalizer field it blames. As the retired
service was, parsing is lenient where the spec allows: fields it does not know
are ignored (and logged once), and exclusions of actions the request does not
list are ignored. Pure functions, but for that log.
"""
from __future__ import annotations

import logging
import math
from numbers import Real

from experiments.errors import InvalidField, ServiceError
from experiments.spec import check_id

log = logging.getLogger(__name__)

RANK_FIELDS = {"contextFeatures", "actions", "excludedActions", "eventId", "deferActivation"}
MULTISLOT_FIELDS = {"contextFeatures", "actions", "slots", "eventId", "deferActivation"}
SLOT_FIELDS = {"id", "features", "excludedActions", "baselineAction"}
REWARD_LOW, REWARD_HIGH = -1.0, 1.0

# native field prefix -> Personalizer field, longest first
FIELD_NAMES = [
    ("slot_context", "slots"), ("candidates", "actions"), ("context", "contextFeatures"),
    ("exclude", "excludedActions"), ("event_id", "eventId"), ("defer_activation", "deferActivation"),
    ("reward.wait_seconds", "rewardWaitTime"), ("reward.default", "defaultReward"),
    ("reward.aggregation", "rewardAggregation"), ("learning.update_seconds", "modelExportFrequency"),
    ("learning.mode", "learningMode"), ("retention.days", "logRetentionDays"),
]
WHOLE_FIELD_NAMES = [("exploration", "arguments"), ("learning", "arguments")]  # the policy's command line
SLOT_FIELD_NAMES = {"exclude": "excludedActions", "baseline": "baselineAction"}


MAX_LOGGED_UNKNOWN = 1000  # distinct (where, field) pairs logged per process; the rest are ignored quietly
_logged_unknown: set = set()


def check_body(body, allowed: set, message: str = "the body must be a JSON object", where: str = "") -> dict:
    """Return the ``allowed`` fields of a JSON object; others are ignored, as the retired service did.

    >>> check_body({"value": 1, "colour": "red"}, {"value"})
    {'value': 1}
    """
    if not isinstance(body, dict):
        raise InvalidField(where, message)
    unknown = [name for name in body if name not in allowed]
    if not unknown:
        return body
    _log_unknown(where, unknown)
    return {name: value for name, value in body.items() if name in allowed}


def _log_unknown(where: str, names: list[str]) -> None:
    """Log each ignored field once per process (names are shortened: they are caller text)."""
    for name in names:
        seen = (where, name[:64])
        if seen not in _logged_unknown and len(_logged_unknown) < MAX_LOGGED_UNKNOWN:
            _logged_unknown.add(seen)
            log.warning("Personalizer request: ignored unknown field %r%s", name[:64],
                        f" in {where}" if where else "")


def check_name(value, field: str = "name") -> str:
    """Return ``value`` if it is a name of 1-256 characters."""
    if not isinstance(value, str) or not 1 <= len(value) <= 256:
        raise InvalidField(field, "must be a string of 1-256 characters")
    return value


def finite_number(value, field: str, low: float | None = None, high: float | None = None) -> float:
    """Return ``value`` as a float if it is a finite number (from ``low`` to ``high`` when given)."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise InvalidField(field, "must be a number")
    if (low is not None and value < low) or (high is not None and value > high):
        raise InvalidField(field, f"must be between {low:g} and {high:g}")
    return float(value)


def _without_nulls(value):
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value if v is not None]
    return value


def merge_features(items, field: str) -> dict:
    """Merge Personalizer's list of feature objects into one native features object.

    >>> merge_features([{"user": {"tier": "gold"}}, {"user": {"age": 30}}, {"tag": "a"}, {"tag": "b"}], "f")
    {'user': {'tier': 'gold', 'age': 30}, 'tag': ['a', 'b']}
    """
    if items is None:
        return {}
    if not isinstance(items, list):
        raise InvalidField(field, "must be a list of feature objects")
    merged: dict = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidField(f"{field}[{i}]", "must be an object (null is not a feature)")
        for key, value in _without_nulls(item).items():
            if key == "":
                raise InvalidField(f"{field}[{i}]", "feature names cannot be the empty string")
            if key not in merged:
                merged[key] = value
            elif isinstance(merged[key], dict) and isinstance(value, dict):
                merged[key] = {**merged[key], **value}
            else:
                old = merged[key] if isinstance(merged[key], list) else [merged[key]]
                merged[key] = old + (value if isinstance(value, list) else [value])
    return merged


def candidates(actions) -> list[dict]:
    """Translate Personalizer actions into native candidates."""
    if not isinstance(actions, list) or not actions:
        raise InvalidField("actions", "must be a non-empty list of {\"id\", \"features\"} objects")
    out = []
    for i, action in enumerate(actions):
        where = f"actions[{i}]"
        if not isinstance(action, dict):
            raise InvalidField(where, "must be an object with an id (actions cannot be null)")
        action = check_body(action, {"id", "features"}, where=where)
        out.append({"id": check_id(action.get("id"), f"{where}.id"),
                    "features": merge_features(action.get("features"), f"{where}.features")})
    return out


def _action_ids(value, field: str, known: set) -> list[str]:
    """Return the listed ids that are among this request's actions; others (an out-of-stock list) are ignored."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise InvalidField(field, "must be a list of action ids")
    return list(dict.fromkeys(x for x in value if x in known))


def _defer(body: dict) -> bool:
    defer = body.get("deferActivation")
    if defer is not None and not isinstance(defer, bool):
        raise InvalidField("deferActivation", "must be true or false")
    return bool(defer)


def _event_id(body: dict) -> str | None:
    event_id = body.get("eventId")
    if event_id is not None and (not isinstance(event_id, str) or not event_id):
        raise InvalidField("eventId", "must be a non-empty string or null")
    return event_id


def rank_request(body) -> dict:
    """Translate a single-slot Rank request into a native slate request."""
    body = check_body(body, RANK_FIELDS)
    cands = candidates(body.get("actions"))
    excluded = _action_ids(body.get("excludedActions"), "excludedActions", {c["id"] for c in cands})
    if len(excluded) >= len({c["id"] for c in cands}):
        raise InvalidField("excludedActions", "excludes every action")
    native = {"context": merge_features(body.get("contextFeatures"), "contextFeatures"), "candidates": cands,
              "exclude": excluded, "slots": 1, "defer_activation": _defer(body)}
    if _event_id(body) is not None:
        native["event_id"] = body["eventId"]
    return native


def _slot(slot, k: int, known: set) -> dict:
    where = f"slots[{k}]"
    if not isinstance(slot, dict):
        raise InvalidField(where, "must be an object (slots cannot be null)")
    slot = check_body(slot, SLOT_FIELDS, where=where)
    if not isinstance(slot.get("id"), str) or not slot["id"]:
        raise InvalidField(f"{where}.id", "every slot needs a unique, non-empty id")
    baseline = slot.get("baselineAction")
    if not isinstance(baseline, str) or baseline not in known:
        raise InvalidField(f"{where}.baselineAction", "must be the id of one of the actions")
    excluded = _action_ids(slot.get("excludedActions"), f"{where}.excludedActions", known)
    if baseline in excluded:
        raise InvalidField(f"{where}.baselineAction", "cannot be one of the slot's excludedActions")
    return {"id": slot["id"], "features": merge_features(slot.get("features"), f"{where}.features"),
            "exclude": excluded, "baseline": baseline}


def multislot_request(body) -> dict:
    """Translate a multi-slot Rank request into a native slate request with ``slot_context``."""
    body = check_body(body, MULTISLOT_FIELDS)
    cands = candidates(body.get("actions"))
    known = {c["id"] for c in cands}
    raw = body.get("slots")
    if not isinstance(raw, list) or not 1 <= len(raw) <= len(cands):
        raise InvalidField("slots", "must be a list of 1 to (number of actions) slots")
    slots = [_slot(slot, k, known) for k, slot in enumerate(raw)]
    ids = [s["id"] for s in slots]
    for k, slot in enumerate(slots):
        if ids.index(slot["id"]) != k:
            raise InvalidField(f"slots[{k}].id", f"duplicate slot id {slot['id']!r}")
        if [s["baseline"] for s in slots].index(slot["baseline"]) != k:
            raise InvalidField(f"slots[{k}].baselineAction", "each slot needs its own baselineAction")
    native = {"context": merge_features(body.get("contextFeatures"), "contextFeatures"), "candidates": cands,
              "slots": len(slots), "slot_context": slots, "defer_activation": _defer(body)}
    if len(slots) == 1:  # one slot excludes with the request's exclude (native rule)
        native["exclude"] = slots[0].pop("exclude")
    if _event_id(body) is not None:
        native["event_id"] = body["eventId"]
    return native


def reward_value(value, field: str = "value") -> float:
    """Check a Personalizer reward: a number from -1 to 1."""
    return finite_number(value, field, REWARD_LOW, REWARD_HIGH)


def single_reward(body) -> float:
    """Return the value of a single-slot Reward document ``{"value": ...}``."""
    body = check_body(body, {"value"})
    if "value" not in body:
        raise InvalidField("value", "is required")
    return reward_value(body["value"])


def multislot_rewards(body) -> list[tuple[str, float]]:
    """Return (slot id, value) pairs of a multi-slot Reward document ``{"reward": [...]}``."""
    body = check_body(body, {"reward"})
    rewards = body.get("reward")
    if not isinstance(rewards, list) or not rewards:
        raise InvalidField("reward", "must be a non-empty list of {\"slotId\", \"value\"} objects")
    out = []
    for i, item in enumerate(rewards):
        if not isinstance(item, dict) or not isinstance(item.get("slotId"), str):
            raise InvalidField(f"reward[{i}].slotId", "must be a slot id")
        item = check_body(item, {"slotId", "value"}, where=f"reward[{i}]")
        out.append((item["slotId"], reward_value(item.get("value"), f"reward[{i}].value")))
    return out


def ranking(ids: list[str], probabilities: list[float], chosen: int, excluded: list[str]) -> list[dict]:
    """Order the ranking: the chosen action, the rest by probability, then excluded ones at 0.

    >>> ranking(["a", "b", "c"], [0.1, 0.3, 0.6], 1, ["x"])
    [{'id': 'b', 'probability': 0.3}, {'id': 'c', 'probability': 0.6}, {'id': 'a', 'probability': 0.1}, \
{'id': 'x', 'probability': 0.0}]
    """
    order = [chosen] + sorted((i for i in range(len(ids)) if i != chosen), key=lambda i: -probabilities[i])
    return ([{"id": ids[i], "probability": float(probabilities[i])} for i in order]
            + [{"id": x, "probability": 0.0} for x in excluded])


def renamed(field: str | None) -> str | None:
    """Rename a native field to the Personalizer field it stands for.

    >>> renamed("candidates[2].features.price"), renamed("slot_context[1].baseline")
    ('actions[2].features.price', 'slots[1].baselineAction')
    """
    if not field:
        return field
    for native, personalizer in FIELD_NAMES:
        if field == native or field.startswith((native + ".", native + "[")):
            field = personalizer + field[len(native):]
            break
    else:
        for native, personalizer in WHOLE_FIELD_NAMES:
            if field == native or field.startswith(native + "."):
                return personalizer
    if field.startswith("slots["):
        head, _, tail = field.partition("].")
        field = f"{head}].{SLOT_FIELD_NAMES.get(tail, tail)}" if tail else field
    return field


def translated(exc: ServiceError) -> ServiceError:
    """Return the same kind of error, blaming the Personalizer field and not the native one."""
    field = exc.field
    message = exc.message
    if field and message.startswith(field + ": "):
        message = message[len(field) + 2:]
    new_field = renamed(field)
    if new_field == field:
        return exc
    clone = type(exc).__new__(type(exc))  # InvalidField's constructor takes other arguments
    clone.__dict__.update(exc.__dict__)  # a status or Personalizer code of its own stays
    ServiceError.__init__(clone, f"{new_field}: {message}" if new_field else message, new_field)
    return clone
