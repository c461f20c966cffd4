"""Experiment specs: parse, fill defaults, validate with errors that name the field.

A spec is stored as its normalised JSON (every default filled in), so what an
experiment does never changes when a default in the code changes.
"""
from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass

from bandit.encoding import FeatureError, validate_features
from bandit.exploration import SettingError, check_number, exploration_to_dict, parse_exploration
from bandit.policy import VW_POWER_T, PolicySettings, validate_settings
from bandit.scaling import parse_scaling
from bandit.vw_args import parse_vw_args
from experiments.errors import Conflict, InvalidField
from experiments.times import TIME_HELP, parse_time

KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
MAX_ARMS = 1000
MAX_SLOTS = 50
MAX_ID_LENGTH = 256
KINDS = ("items", "strategies")
AGGREGATIONS = ("sum", "first", "max")
# online: serve and learn the model's choice; apprentice: serve the baseline, learn to imitate it;
# logging_only: serve the baseline and learn nothing.
LEARNING_MODES = ("online", "apprentice", "logging_only")
STATUSES = ("draft", "running", "paused", "stopped")
TRANSITIONS = {
    "draft": {"running", "stopped"},
    "running": {"paused", "stopped"},
    "paused": {"running", "stopped"},
    "stopped": set(),
}

DEFAULTS = {
    "name": None,  # the key
    "kind": "items",
    "arms": [],
    "slots": 1,
    # SquareCB, normalized: exploration goes to close contenders, so it can be greedier elsewhere (the
    # dataclass's defaults; benchmarks/learning.py, docs/learning.md "How the defaults were chosen").
    "exploration": {"algorithm": "squarecb"},
    "learning": {"interactions": ["UA", "PA"], "learning_rate": None, "update_seconds": 5.0, "vw_args": "",
                 "mode": "online", "decay": 0.5, "scaling": {"default": "log", "features": {}},
                 "autotune": {"enabled": False, "window": 3000, "every": 3000, "budget": 4.0},
                 "drift_watch": {"enabled": True, "threshold": 4.0, "recent": 1500, "reference": 4500,
                                 "min_drop": 0.25},  # measured on the simulated shop (docs/learning.md)
                 "forget": [],
                 "hash_bits": None},  # learning_rate and hash_bits: by kind, see LEARNING_RATE and HASH_BITS
    "reward": {
        "wait_seconds": 600.0,
        "default": 0.0,
        "aggregation": "sum",
        "events": {"click": 1.0, "add_to_cart": 3.0, "purchase": 10.0},
    },
    "traffic": {"holdout": 0.1, "control": "uniform"},
    "retention": {"days": None},  # keep the decision log forever
}
MAX_RETENTION_DAYS = 36500
# The weight table an experiment needs: a few fixed arms cross with the context into hundreds of
# features (2^16 weights, 1 MB, is plenty); per-request items into tens of thousands (VW's 2^18, 4 MB).
# A few arms each learn from every page view: 0.25 kept strategies from swinging between arms (mean normalized
# lift 0.848 against 0.824 at 0.5 over seeds 0-9), where items lost at 0.25 (0.830 against 0.853).
LEARNING_RATE = {"items": 0.5, "strategies": 0.25}
HASH_BITS = {"items": 18, "strategies": 16}
HASH_BITS_RANGE = (12, 24)
TOP_FIELDS = {"key", *DEFAULTS}
MUTABLE_FIELDS = set(DEFAULTS) - {"kind"}
FROZEN_FIELDS = ("key", "kind")
PATCH_FIELDS = MUTABLE_FIELDS | {"status", *FROZEN_FIELDS}


@dataclass(frozen=True)
class Spec:
    """A validated experiment spec; ``data`` is its normalised JSON."""

    data: dict

    @property
    def key(self) -> str:
        return self.data["key"]

    @property
    def slots(self) -> int:
        return self.data["slots"]

    @property
    def arms(self) -> list:
        return self.data["arms"]

    @property
    def reward(self) -> dict:
        return self.data["reward"]

    @property
    def traffic(self) -> dict:
        return self.data["traffic"]

    @property
    def learning(self) -> dict:
        return self.data["learning"]

    def policy_settings(self) -> PolicySettings:
        """Return the VW settings, built once per spec (serving asks on every request)."""
        cached = self.__dict__.get("_policy_settings")
        if cached is not None:
            return cached
        learning = self.learning
        settings = PolicySettings(
            slots=self.slots,
            exploration=parse_exploration(self.data["exploration"]),
            interactions=tuple(learning["interactions"]),
            learning_rate=learning["learning_rate"],
            vw_args=learning["vw_args"],
            decay=learning["decay"],
            scaling=parse_scaling(learning["scaling"]),
            hash_bits=learning["hash_bits"],
        )
        object.__setattr__(self, "_policy_settings", settings)
        return settings


def _number(value, field, *bounds, **options):
    """Check a number with ``bandit.exploration.check_number``, blaming ``field``."""
    try:
        return check_number(field, value, *bounds, **options)
    except SettingError as exc:
        raise InvalidField(exc.field, exc.message) from None


def check_object(value, field, allowed) -> dict:
    """Require a JSON object whose keys are all in ``allowed``; name the first stranger."""
    if not isinstance(value, dict):
        raise InvalidField(field, "must be an object")
    for key in value:
        if key not in allowed:
            raise InvalidField(f"{field}.{key}" if field else key, "unknown field")
    return value


def check_id(value, field) -> str:
    """Validate a candidate or arm id: a non-empty string of at most 256 characters."""
    if not isinstance(value, str) or not value:
        raise InvalidField(field, "must be a non-empty string")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidField(field, f"must be at most {MAX_ID_LENGTH} characters")
    return value


def check_entry(entry, field, allowed, seen: set, what: str) -> str:
    """Validate one ``{"id", ...}`` object of a list; return its id, refusing repeats."""
    if not isinstance(entry, dict):
        raise InvalidField(field, "must be an object with an id")
    check_object(entry, field, allowed)
    entry_id = check_id(entry.get("id"), f"{field}.id")
    if entry_id in seen:
        raise InvalidField(f"{field}.id", f"duplicate {what} id {entry_id!r}")
    seen.add(entry_id)
    return entry_id


def check_features(value, field) -> dict:
    """Validate a features object so that it encodes to VW text."""
    if value is None:
        return {}
    try:
        validate_features(value, field)
    except FeatureError as exc:
        raise InvalidField(exc.field, exc.message) from None
    return value


def _arms(value, kind) -> list:
    if kind == "items":
        if value:
            raise InvalidField("arms", "only strategies experiments have fixed arms")
        return []
    if not isinstance(value, list) or len(value) < 2:
        raise InvalidField("arms", "a strategies experiment needs a list of at least 2 arms")
    if len(value) > MAX_ARMS:
        raise InvalidField("arms", f"at most {MAX_ARMS} arms")
    seen, arms = set(), []
    for i, arm in enumerate(value):
        field = f"arms[{i}]"
        arm_id = check_entry(arm, field, {"id", "features"}, seen, "arm")
        arms.append({"id": arm_id, "features": check_features(arm.get("features"), f"{field}.features")})
    return arms


def _exploration(value) -> dict:
    try:
        return exploration_to_dict(parse_exploration(value))
    except SettingError as exc:
        raise InvalidField(f"exploration.{exc.field}".rstrip("."), exc.message) from None


def _learning(value, kind: str) -> dict:
    value = check_object(value, "learning", DEFAULTS["learning"])
    out = {**DEFAULTS["learning"], **value}
    bits = HASH_BITS[kind] if out["hash_bits"] is None else out["hash_bits"]
    out["hash_bits"] = _number(bits, "learning.hash_bits", *HASH_BITS_RANGE, integer=True)
    interactions = out["interactions"]
    if not isinstance(interactions, list) or not all(
        isinstance(q, str) and 2 <= len(q) <= 3 and all(c.isalpha() or c == ":" for c in q) for q in interactions
    ):
        raise InvalidField("learning.interactions", "must be a list of 2-3 letter namespace crossings like \"UA\"")
    rate = LEARNING_RATE[kind] if out["learning_rate"] is None else out["learning_rate"]
    out["learning_rate"] = _number(rate, "learning.learning_rate", 0, 100, low_open=True)
    out["update_seconds"] = _number(out["update_seconds"], "learning.update_seconds", 0, 86400, low_open=True)
    try:  # the allowlist, before any VW workspace exists; the spec keeps the canonical form
        out["vw_args"] = parse_vw_args(out["vw_args"]).text
    except SettingError as exc:
        raise InvalidField("learning.vw_args", exc.message) from None
    out["decay"] = _number(out["decay"], "learning.decay", 0, 1)
    if "--power_t" in out["vw_args"] and out["decay"] != VW_POWER_T:
        raise InvalidField("learning.decay", "give the learning-rate decay once: learning.decay or --power_t in "
                                             "learning.vw_args, not both")
    out["scaling"] = _scaling(out["scaling"])
    out["autotune"] = _switched(out["autotune"], "autotune")
    out["drift_watch"] = _switched(out["drift_watch"], "drift_watch")
    out["forget"] = _forget(out["forget"])
    if out["mode"] not in LEARNING_MODES:
        raise InvalidField("learning.mode", f"must be one of {', '.join(LEARNING_MODES)}")
    return out


def _scaling(value) -> dict:
    if isinstance(value, dict) and "default" not in value:  # a new object replaces the old whole: the default fills in
        value = {**value, "default": DEFAULTS["learning"]["scaling"]["default"]}
    try:
        return parse_scaling(value).to_dict()
    except SettingError as exc:
        raise InvalidField(f"learning.scaling.{exc.field}".rstrip("."), exc.message) from None


# The learning aids switched by ``enabled``, and their numbers: (lowest, highest, whole number). The
# OpenAPI schema and the dashboard's form are made from these too.
SWITCHED_NUMBERS = {
    "autotune": {"window": (500, 100_000, True), "every": (100, 10_000_000, True), "budget": (0.5, 100, False)},
    "drift_watch": {"threshold": (3, 20, False), "recent": (100, 100_000, True),
                    "reference": (100, 1_000_000, True), "min_drop": (0, 1, False)},
}


def _switched(value, name: str) -> dict:
    """Fill in and check one learning aid (``learning.autotune``, ``learning.drift_watch``)."""
    field, defaults = f"learning.{name}", DEFAULTS["learning"][name]
    out = {**defaults, **check_object(value, field, defaults)}
    if not isinstance(out["enabled"], bool):
        raise InvalidField(f"{field}.enabled", "must be true or false")
    for number, (low, high, integer) in SWITCHED_NUMBERS[name].items():
        out[number] = _number(out[number], f"{field}.{number}", low, high, integer=integer)
    return out


FORGET_FIELDS = {"feature": None, "value": None, "before": None}
MAX_FORGET = 32
FEATURE_PATH = re.compile(r"^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64})?$")


def with_rule_positions(body, first_seq_since, now: float):
    """Turn each forgetting rule's ``before_time`` into ``before``: the first decision logged at or after it.

    A shop knows when a group changed, not where the log was then; the stored rule keeps the position,
    so what the model leaves out (and its bare-VW replay) never depends on clocks again.
    ``first_seq_since(t)`` looks the position up; a body with more rules than allowed is left for
    the spec to refuse before any lookup.
    """
    learning = body.get("learning") if isinstance(body, dict) else None
    rules = learning.get("forget") if isinstance(learning, dict) else None
    if not isinstance(rules, list) or len(rules) > MAX_FORGET:
        return body
    resolved = []
    for i, rule in enumerate(rules):
        if isinstance(rule, dict) and "before_time" in rule:
            field = f"learning.forget[{i}]"
            rule = dict(rule)
            moment = parse_time(rule.pop("before_time"), f"{field}.before_time")
            if "before" in rule:
                raise InvalidField(field, "give before (a sequence number) or before_time, not both")
            if moment is None or moment > now:
                raise InvalidField(f"{field}.before_time", f"{TIME_HELP}, not in the future")
            rule["before"] = first_seq_since(moment)
        resolved.append(rule)
    return {**body, "learning": {**learning, "forget": resolved}}


def _forget(value) -> list:
    """What the model leaves out of the log: each group's decisions before a log position.

    A later rule for the same group replaces an earlier one.
    """
    if not isinstance(value, list) or len(value) > MAX_FORGET:
        raise InvalidField("learning.forget", f"must be a list of at most {MAX_FORGET} rules")
    rules = {}
    for i, rule in enumerate(value):
        field = f"learning.forget[{i}]"
        rule = check_object(rule, field, FORGET_FIELDS)
        if set(rule) != set(FORGET_FIELDS):
            raise InvalidField(field, "must have feature, value and before")
        if not isinstance(rule["feature"], str) or not FEATURE_PATH.match(rule["feature"]):
            raise InvalidField(f"{field}.feature", "must be a context feature path like \"user.segment\"")
        if not isinstance(rule["value"], str) or not 0 < len(rule["value"]) <= MAX_ID_LENGTH:
            raise InvalidField(f"{field}.value", f"must be a string of 1-{MAX_ID_LENGTH} characters")
        before = _number(rule["before"], f"{field}.before", 1, 2 ** 62, integer=True)
        key = (rule["feature"], rule["value"])
        rules[key] = before
    return [{"feature": f, "value": v, "before": b} for (f, v), b in rules.items()]


def _reward(value) -> dict:
    value = check_object(value, "reward", DEFAULTS["reward"])
    out = {**DEFAULTS["reward"], **value}
    out["wait_seconds"] = _number(out["wait_seconds"], "reward.wait_seconds", 0, 30 * 86400)
    out["default"] = _number(out["default"], "reward.default")
    if out["aggregation"] not in AGGREGATIONS:
        raise InvalidField("reward.aggregation", f"must be one of {', '.join(AGGREGATIONS)}")
    events = out["events"]
    if not isinstance(events, dict):
        raise InvalidField("reward.events", "must be an object of event type to value")
    events = out["events"] = dict(events)  # never write into DEFAULTS
    for name, reward in events.items():
        if not name or len(name) > 64:
            raise InvalidField("reward.events", "event types must be 1-64 characters")
        events[name] = _number(reward, f"reward.events.{name}")
    return out


def _traffic(value, arms) -> dict:
    value = check_object(value, "traffic", DEFAULTS["traffic"])
    out = {**DEFAULTS["traffic"], **value}
    out["holdout"] = _number(out["holdout"], "traffic.holdout", 0, 1, high_open=True)
    control = out["control"]
    if control == "uniform":
        return out
    if not isinstance(control, dict) or set(control) != {"arm"}:
        raise InvalidField("traffic.control", 'must be "uniform" or {"arm": "<arm id>"}')
    if control["arm"] not in {arm["id"] for arm in arms}:
        raise InvalidField("traffic.control.arm", "must name one of the experiment's arms")
    return out


def _retention(value, reward: dict) -> dict:
    """Days to keep decisions (None: forever); at least the reward wait plus the late-reward day."""
    value = check_object(value, "retention", DEFAULTS["retention"])
    days = value.get("days")
    if days is None:
        return {"days": None}
    days = _number(days, "retention.days", 1, MAX_RETENTION_DAYS, integer=True)
    least = math.ceil(reward["wait_seconds"] / 86400) + 1
    if days < least:
        raise InvalidField("retention.days", f"must be at least {least}: the reward wait plus a day for late "
                                             "rewards, in whole days (or null to keep the log forever)")
    return {"days": days}


def parse_spec(data, check_vw: bool = True) -> Spec:
    """Validate a spec, fill in defaults and check that VW accepts its settings.

    Specs read back from the store were checked when they were saved; their
    readers pass ``check_vw=False`` to skip building a throwaway VW workspace.
    """
    data = copy.deepcopy(check_object(data, "", TOP_FIELDS))
    key = data.get("key")
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise InvalidField("key", "must be 1-64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit")
    name = data.get("name") or key
    if not isinstance(name, str) or len(name) > 200:
        raise InvalidField("name", "must be a string of at most 200 characters")
    kind = data.get("kind", DEFAULTS["kind"])
    if kind not in KINDS:
        raise InvalidField("kind", f"must be one of {', '.join(KINDS)}")
    arms = _arms(data.get("arms", []), kind)
    slots = _number(data.get("slots", 1), "slots", 1, MAX_SLOTS, integer=True)
    if kind == "strategies" and slots > len(arms):
        raise InvalidField("slots", f"must be at most the number of arms ({len(arms)})")
    reward = _reward(data.get("reward", {}))
    spec = Spec({
        "key": key,
        "name": name,
        "kind": kind,
        "arms": arms,
        "slots": slots,
        "exploration": _exploration(data.get("exploration", DEFAULTS["exploration"])),
        "learning": _learning(data.get("learning", {}), kind),
        "reward": reward,
        "traffic": _traffic(data.get("traffic", {}), arms),
        "retention": _retention(data.get("retention", {}), reward),
    })
    if check_vw:
        try:
            validate_settings(spec.policy_settings())
        except SettingError as exc:
            raise InvalidField(f"learning.{exc.field}", exc.message) from None
    return spec


@dataclass(frozen=True)
class SpecPatch:
    """A validated PATCH body: the spec fields to change and the status to move to."""

    fields: dict  # every field as sent, in order: what the experiment's history keeps
    status: str | None

    def apply(self, current: dict) -> Spec:
        """Merge the fields into a spec and validate the result.

        Objects merge one level deep; an ``exploration`` with a new ``algorithm``
        replaces the old one whole, since the old algorithm's fields mean nothing to it.
        """
        for frozen in FROZEN_FIELDS:
            if frozen in self.fields and self.fields[frozen] != current[frozen]:
                raise InvalidField(frozen, "cannot be changed; create a new experiment instead")
        merged = dict(current)  # parse_spec copies deeply; only top-level keys change here
        for name, value in self.fields.items():
            if name not in MUTABLE_FIELDS:
                continue
            old = merged.get(name)
            if isinstance(old, dict) and isinstance(value, dict):
                if name == "exploration" and value.get("algorithm", old["algorithm"]) != old["algorithm"]:
                    merged[name] = value
                else:
                    merged[name] = {**old, **value}
            else:
                merged[name] = value
        return parse_spec(merged)


def parse_patch(body) -> SpecPatch:
    """Validate a PATCH body's shape; its values are validated with the spec they change."""
    body = check_object(body, "", PATCH_FIELDS)
    status = body.get("status")
    if status is not None and status not in STATUSES:
        raise InvalidField("status", f"must be one of {', '.join(STATUSES)}")
    return SpecPatch(fields=body, status=status)


def apply_patch(current: dict, body) -> tuple[Spec, str | None]:
    """Merge a PATCH body into a spec; return the new spec and the requested status."""
    patch = parse_patch(body)
    return patch.apply(current), patch.status


def check_transition(old: str, new: str) -> None:
    """Allow draft -> running <-> paused -> stopped; anything else is a conflict."""
    if new != old and new not in TRANSITIONS[old]:
        raise Conflict(f"status: cannot go from {old} to {new}", field="status")
