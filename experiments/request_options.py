"""Optional parts of a slate request: per-slot context, baselines, deferred activation, learning modes.

``slot_context`` describes each slot of a slate: a name, the slot's own features,
the candidates it may not show and its baseline (what the shop would show there
without a model). The experiment's learning mode decides what is served:
``online`` serves the model's choice; ``apprentice`` and ``logging_only`` serve
the baseline. An apprentice decision also logs the model's own choice, from
which the learner teaches the model to imitate the baseline.

A decision made with ``defer_activation`` is learned only once the shop says it
was shown (``Service.activate``) before its reward window closed.
"""
from __future__ import annotations

from typing import NamedTuple

from bandit.encoding import FeatureError, slot_text
from experiments.errors import InvalidField
from experiments.limits import Limits
from experiments.spec import check_id
from experiments.store import dumps

OPTION_FIELDS = frozenset({"slot_context", "defer_activation"})
SLOT_FIELDS = frozenset({"id", "features", "exclude", "baseline"})
ONLINE, APPRENTICE, LOGGING_ONLY = "online", "apprentice", "logging_only"


class RequestOptions(NamedTuple):
    """The validated options of one request; indices refer to the candidates after exclude.

    A named tuple rather than a frozen dataclass: it is made on every request, and costs a third.
    """

    slot_ids: tuple = ()
    slot_features: tuple = ()
    slot_texts: tuple = ()  # each slot's features as VW text, empty when no slot has any
    excluded: tuple = ()
    baseline: tuple = ()
    defer_activation: bool = False

    @property
    def has_slot_context(self) -> bool:
        return bool(self.slot_ids)

    def policy_kwargs(self) -> dict:
        """Keyword arguments for ``Policy.choose``."""
        kwargs = {}
        if self.slot_texts:
            kwargs["slot_texts"] = list(self.slot_texts)
        if any(self.excluded):
            kwargs["slot_excluded"] = list(self.excluded)
        return kwargs


def _slot_text(features, field: str, limit: int, limits: Limits) -> str:
    if features is not None and not isinstance(features, dict):
        raise InvalidField(f"{field}.features", "must be an object")
    try:
        return slot_text(features, field, limit)
    except FeatureError as exc:
        raise limits.feature_error(exc) from None


def _slot_entries(raw, slots: int, limits: Limits) -> tuple[list[dict], tuple]:
    """Check each slot's object; return the entries and their features encoded for VW."""
    if not isinstance(raw, list) or len(raw) != slots:
        raise InvalidField("slot_context", f"must be a list with one object per slot ({slots})")
    seen, texts, used = set(), [], 0
    for k, entry in enumerate(raw):
        where = f"slot_context[{k}]"
        if not isinstance(entry, dict):
            raise InvalidField(where, "must be an object")
        extra = set(entry) - SLOT_FIELDS
        if extra:
            raise InvalidField(f"{where}.{sorted(extra)[0]}", "unknown field")
        if entry.get("id") is not None:
            slot_id = check_id(entry["id"], f"{where}.id")
            if slot_id in seen:
                raise InvalidField(f"{where}.id", f"duplicate slot id {slot_id!r}")
            seen.add(slot_id)
        texts.append(_slot_text(entry.get("features"), where, limits.features - used, limits))
        used += texts[-1].count(" ")
        exclude = entry.get("exclude") or []
        if not isinstance(exclude, list) or not all(isinstance(x, str) for x in exclude):
            raise InvalidField(f"{where}.exclude", "must be a list of candidate ids")
    return raw, tuple(texts) if any(text != "|" for text in texts) else ()


def _given_baselines(entries: list[dict], index: dict, excluded: list[frozenset]) -> list[int | None]:
    given: list[int | None] = []
    for k, entry in enumerate(entries):
        baseline = entry.get("baseline")
        if baseline is None:
            given.append(None)
            continue
        where = f"slot_context[{k}].baseline"
        if check_id(baseline, where) not in index:
            raise InvalidField(where, "must be one of the candidates left after exclude")
        if index[baseline] in excluded[k]:
            raise InvalidField(where, "is excluded from its own slot")
        if index[baseline] in given:
            raise InvalidField(where, f"{baseline!r} is already the baseline of another slot")
        given.append(index[baseline])
    return given


def default_baselines(n: int, slots: int, excluded: tuple = (), given: list | None = None) -> tuple:
    """Fill each slot without a baseline with the first candidate no slot uses yet.

    >>> default_baselines(4, 3, excluded=(frozenset(), frozenset({0, 1}), frozenset()), given=[None, None, 0])
    (1, 2, 0)
    """
    baseline = list(given or [None] * slots)
    used = {b for b in baseline if b is not None}
    for k in range(slots):
        if baseline[k] is None:
            blocked = used | (excluded[k] if excluded else frozenset())
            baseline[k] = next((i for i in range(n) if i not in blocked), None)
            if baseline[k] is not None:
                used.add(baseline[k])
    return tuple(baseline)


def parse_options(raw, defer: bool, candidates, slots: int, limits: Limits = Limits()) -> RequestOptions:
    """Validate ``slot_context`` against the candidates left after exclude."""
    if raw is None:
        return RequestOptions(baseline=default_baselines(len(candidates), slots), defer_activation=defer)
    entries, texts = _slot_entries(raw, slots, limits)
    if slots == 1 and entries[0].get("exclude"):
        raise InvalidField("slot_context[0].exclude", "a one-slot request excludes candidates with exclude")
    index = {c["id"]: i for i, c in enumerate(candidates)}
    excluded = tuple(frozenset(index[x] for x in (e.get("exclude") or []) if x in index) for e in entries)
    for k, blocked in enumerate(excluded):
        if len(blocked) == len(candidates):
            raise InvalidField(f"slot_context[{k}].exclude", "excludes every candidate")
    given = _given_baselines(entries, index, list(excluded))
    return RequestOptions(
        slot_ids=tuple(e.get("id") for e in entries),
        slot_features=tuple(e.get("features") or {} for e in entries),
        slot_texts=texts,
        excluded=excluded,
        baseline=default_baselines(len(candidates), slots, excluded, given),
        defer_activation=defer,
    )


def serve(mode: str, chosen: list[tuple[int, float]], options: RequestOptions):
    """Return (served slate, model's own slate to log) for the experiment's learning mode."""
    if mode == ONLINE:
        return chosen, None
    served = []
    for index in options.baseline:
        if index is None:
            break
        served.append((index, 1.0))
    return served, (chosen if mode == APPRENTICE else None)


def slate_entries(chosen, candidates) -> list[dict]:
    """The logged slate: one entry per slot with the candidate's id, index and probability."""
    return [{"slot": k, "id": candidates[i]["id"], "index": i, "probability": p} for k, (i, p) in enumerate(chosen)]


def record_fields(options: RequestOptions, mode: str, model_chosen, candidates: list[dict]) -> dict:
    """Return the decision-log columns these options add."""
    context = None
    if options.has_slot_context:
        context = [{"id": options.slot_ids[k], "features": options.slot_features[k],
                    "exclude": [candidates[i]["id"] for i in sorted(options.excluded[k])],
                    "baseline": None if options.baseline[k] is None else candidates[options.baseline[k]]["id"]}
                   for k in range(len(options.slot_ids))]
    return {
        "defer_activation": int(options.defer_activation),
        "learning_mode": mode,
        "model_slate": None if model_chosen is None else dumps(slate_entries(model_chosen, candidates)),
        "slot_context": None if context is None else dumps(context),
    }
