"""Forgetting by group: what the model leaves out of the log, and the watch that decides it.

``learning.forget`` lists rules ``{"feature": "user.segment", "value": "s2", "before": N}``:
the model learns every logged decision except those whose context has that value
and whose sequence number is below ``N``. The rules are part of what a model is a
function of (with its VW command line and scaling), so changing them rebuilds the
model from the log, and a bare VW replay of the log without those decisions gives
the same model. Serving keeps answering with the newest snapshot meanwhile: its
command line is unchanged. A request may name a time instead (``before_time``), which
is stored as the position it was then (``spec.with_rule_positions``).

``learning.drift_watch`` (on for new experiments) writes the rules: the learner feeds
every decision it learns for the first time to a ``bandit.drift.DriftWatch``; when a
group's reward falls, it adds (or moves) that group's rule to the change point, as a new experiment
version with a history entry by ``drift-watch`` that carries the evidence. Undo is
a patch of ``learning.forget``, like any setting.
"""
from __future__ import annotations

import logging

from bandit.drift import Change, DriftWatch
from experiments.errors import Conflict, InvalidField
from experiments.service import Service

log = logging.getLogger(__name__)

ACTOR = "drift-watch"


def rules_of(learning: dict) -> tuple:
    """Return the forgetting rules as a hashable tuple of (feature, value, before)."""
    return tuple((r["feature"], r["value"], r["before"]) for r in learning["forget"])


def forgotten(rules: tuple, seq: int, context: dict) -> bool:
    """True when a rule leaves this decision out of the model.

    >>> forgotten((("user.segment", "s2", 10),), 9, {"user": {"segment": "s2"}})
    True
    >>> forgotten((("user.segment", "s2", 10),), 10, {"user": {"segment": "s2"}})
    False
    """
    for feature, value, before in rules:
        if seq < before and _value(context, feature) == value:
            return True
    return False


def _value(context: dict, feature: str):
    namespace, _, name = feature.partition(".")
    found = context.get(namespace)
    return found.get(name) if name and isinstance(found, dict) else (None if name else found)


class Watch:
    """One experiment's drift watch, and how far into the log it has looked."""

    def __init__(self, settings: dict):
        self.settings = settings
        self.watch = DriftWatch(settings["recent"], settings["reference"], settings["threshold"],
                                settings["min_drop"])
        self.through = None  # the cursor of the last decision observed: a rebuild does not show it again

    def observe(self, cursor: int, seq: int, context: dict, reward: float) -> Change | None:
        if self.through is not None and cursor <= self.through:
            return None
        self.through = cursor
        return self.watch.observe(seq, context, reward)


def watch_for(watches: dict, key: str, learning: dict) -> Watch | None:
    """Return the experiment's watch (made afresh when its settings change), or None when it is off."""
    settings = learning["drift_watch"]
    if not settings["enabled"]:
        watches.pop(key, None)
        return None
    current = watches.get(key)
    if current is None or current.settings != settings:
        current = watches[key] = Watch(settings)
    return current


def forget(store, clock, key: str, learning: dict, change: Change) -> dict | None:
    """Add the change's rule to the experiment's spec; the learner then rebuilds the model without it.

    Nothing changes when the group is already forgotten up to that point (a learner that restarted
    and rebuilds from the log shows the watch the old change again).
    """
    group = (change.feature, change.value)
    if any((r["feature"], r["value"]) == group and r["before"] >= change.before for r in learning["forget"]):
        return None
    rules = _without(learning["forget"], group)
    rules.append({"feature": change.feature, "value": change.value, "before": change.before})
    try:
        view = Service(store, clock).update_experiment(key, {"learning": {"forget": rules}}, actor=ACTOR,
                                                       note={"drift": change.to_dict()})
    except (Conflict, InvalidField) as exc:
        log.info("drift watch of %s did not forget: %s", key, exc)
        return None
    log.info("drift watch: %s = %s of %s fell (z %.1f); forgetting it before decision %d",
             change.feature, change.value, key, change.z, change.before)
    return view


def forget_before(service, key: str, feature: str, value: str, moment, actor: str) -> dict:
    """Add (or move) one group's rule at a time the caller names: the model is rebuilt without what it did before."""
    rules = service.get_experiment(key)["spec"]["learning"]["forget"]
    rule = {"feature": feature, "value": value, "before_time": moment}
    return service.update_experiment(key, {"learning": {"forget": [*_without(rules, (feature, value)), rule]}},
                                     actor=actor)


def remember(service, key: str, feature: str, value: str, actor: str) -> dict:
    """Drop one group's rule: the model is rebuilt with that group's earlier decisions again."""
    rules = service.get_experiment(key)["spec"]["learning"]["forget"]
    kept = _without(rules, (feature, value))
    if len(kept) == len(rules):
        raise InvalidField("feature", f"no forgetting rule for {feature} = {value}")
    return service.update_experiment(key, {"learning": {"forget": kept}}, actor=actor)


def _without(rules: list[dict], group: tuple[str, str]) -> list[dict]:
    return [r for r in rules if (r["feature"], r["value"]) != group]
