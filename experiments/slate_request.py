"""A slate request, parsed once where it enters the domain into one validated value.

``parse_slate_request`` checks every field of a request body in one pass, against
the experiment it asks (its kind, slots and arms) and the item catalog, and
encodes what Vowpal Wabbit reads on the way: the context, the candidates (once
per distinct list, see ``experiments.candidates``) and each slot's features.
``Service.decide`` and everything after it trust the value, and the decision log
keeps what it holds. On the way it holds the request to the service's ``Limits``:
features in all, and the work Vowpal Wabbit would spend picking the slate.
"""
from __future__ import annotations

from typing import NamedTuple

from bandit.cost import ensemble_size, interaction_terms, slate_work, slate_work_bound
from bandit.encoding import FeatureError, context_text, feature_count, namespace_counts
from experiments.candidates import CandidateSet, CandidateSets, what_is_left
from experiments.errors import InvalidField
from experiments.limits import Limits
from experiments.request_options import OPTION_FIELDS, RequestOptions, parse_options
from experiments.spec import Spec, check_id, check_object

FIELDS = frozenset({"unit", "context", "candidates", "slots", "exclude", "event_id", *OPTION_FIELDS})


class SlateRequest(NamedTuple):
    """One page view's validated request; candidate indices count after exclude and unavailable items.

    A named tuple rather than a frozen dataclass: it is made on every request, and costs a third.
    """

    event_id: str | None  # the shop's own id for the page view; None asks for a fresh one
    unit: str | None  # the sticky assignment unit; None means the event id
    context: dict
    shared: str  # the context as VW namespaces
    candidates: tuple  # {"id", "features"} objects, in request order
    actions: tuple  # each candidate's VW action line
    candidate_digest: str | None  # the digest the set is logged under, when known already
    exclude: tuple  # candidate ids, as sent
    slots: int
    options: RequestOptions


def _unit(body: dict) -> str | None:
    return check_id(body["unit"], "unit") if "unit" in body else None


def _event_id(body: dict) -> str | None:
    event_id = body.get("event_id")
    return None if event_id is None else check_id(event_id, "event_id")


def _context(body: dict, limits: Limits) -> tuple[dict, str]:
    context = body.get("context", {})
    try:
        return context, context_text(context, "context", limits.features)
    except FeatureError as exc:
        raise limits.feature_error(exc) from None


def _exclude(body: dict) -> tuple:
    exclude = body.get("exclude") or []
    if not isinstance(exclude, list) or not all(isinstance(x, str) for x in exclude):
        raise InvalidField("exclude", "must be a list of candidate ids")
    return tuple(exclude)


def _defer(body: dict) -> bool:
    value = body.get("defer_activation", False)
    if not isinstance(value, bool):
        raise InvalidField("defer_activation", "must be true or false")
    return value


def _slots(body: dict, most: int, available: int, where) -> int:
    """``where()`` says where the missing candidates went, computed only for a refusal."""
    slots = body.get("slots", most)
    if isinstance(slots, bool) or not isinstance(slots, int):
        raise InvalidField("slots", "must be an integer")
    if slots < 1:
        raise InvalidField("slots", "must be at least 1")
    if slots > most:
        raise InvalidField("slots", f"must be at most the experiment's slots ({most})")
    if slots > available:
        raise InvalidField("slots", f"must be at most the number of candidates left to show ({where()})")
    return slots


def _check_cost(spec: Spec, shared: str, chosen: CandidateSet, options: RequestOptions, slots: int,
                limits: Limits) -> None:
    """Refuse a request whose features, or whose work for VW, are past the limits.

    A cheap upper bound settles the usual request; only one near the limit is counted exactly.
    """
    features = feature_count(shared)
    slot_sizes = [text.count(" ") for text in options.slot_texts]
    largest_slot = max(slot_sizes, default=0)
    limits.check_features(features + chosen.features + sum(slot_sizes), None)
    settings = spec.policy_settings()
    terms = interaction_terms(settings.interactions, settings.vw_args)
    policies = ensemble_size(settings.exploration)
    largest = features + max(chosen.sizes) + largest_slot
    if slate_work_bound(largest, len(chosen.candidates), terms, slots, policies) > limits.work:
        limits.check_work(slate_work(namespace_counts(shared), chosen.sizes, largest_slot, terms, slots, policies))


def parse_slate_request(body, spec: Spec, spec_version: int, candidate_sets: CandidateSets,
                        limits: Limits = Limits()) -> SlateRequest:
    """Validate a slate request body for one experiment; every error names the field it blames."""
    body = check_object(body, "", FIELDS)
    event_id, unit = _event_id(body), _unit(body)
    context, shared = _context(body, limits)
    exclude = _exclude(body)
    raw = body.get("candidates")
    full, chosen = candidate_sets.for_request(spec, spec_version, raw, exclude)
    slots = _slots(body, spec.slots, len(chosen.candidates), lambda: what_is_left(spec.data["kind"], raw, full, chosen))
    options = parse_options(body.get("slot_context"), _defer(body), chosen.candidates, slots, limits)
    _check_cost(spec, shared, chosen, options, slots, limits)
    return SlateRequest(event_id=event_id, unit=unit, context=context, shared=shared, candidates=chosen.candidates,
                        actions=chosen.actions, candidate_digest=chosen.digest, exclude=exclude, slots=slots,
                        options=options)
