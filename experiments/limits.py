"""What one request may cost: the limits serving enforces (docs/security.md, "Limits").

``web/settings.py`` sets them per deployment (``MAX_REQUEST_FEATURES``,
``MAX_REQUEST_WORK``, ``MAX_REWARDS_PER_EVENT``); the defaults keep a request at
the limits within a few tens of milliseconds of one worker, which
``benchmarks/limits.py`` measures. A request over a limit gets 413 naming it.
"""
from __future__ import annotations

from dataclasses import dataclass

from bandit.encoding import FeatureError, TooManyFeatures
from experiments.errors import InvalidField, LimitExceeded, LimitReached, ServiceError


@dataclass(frozen=True)
class Limits:
    """The cost limits of one service; every caller, admins included, is held to them."""

    features: int = 10_000  # features in one slate request: context, candidates and slots together
    work: int = 2_000_000  # feature evaluations VW may spend picking one slate (bandit.cost.slate_work)
    rewards_per_event: int = 1_000  # distinct rewards one event keeps

    def too_many_features(self, field: str | None, count: int | None = None) -> LimitExceeded:
        found = f"{count}" if count is not None else f"more than {self.features}"
        return LimitExceeded(f"{field or 'the request'}: {found} features; a request carries at most "
                             f"{self.features} (context, candidates and slot features together; limit "
                             "MAX_REQUEST_FEATURES)", field=field)

    def check_features(self, count: int, field: str | None) -> None:
        if count > self.features:
            raise self.too_many_features(field, count)

    def check_work(self, work: int) -> None:
        if work > self.work:
            raise LimitExceeded(f"picking this slate would cost Vowpal Wabbit {work:,} feature evaluations "
                                f"(features and their crossings x candidates x slots); at most {self.work:,} "
                                "are allowed (limit MAX_REQUEST_WORK): send fewer candidates or features, "
                                "ask for fewer slots, or cross fewer namespaces")

    def too_many_rewards(self, event_id: str) -> LimitReached:
        return LimitReached(f"event {event_id!r} already has {self.rewards_per_event} rewards, the most one event "
                             "keeps (limit MAX_REWARDS_PER_EVENT)",
                             field="event_id")

    def feature_error(self, exc: FeatureError) -> ServiceError:
        """Return the domain error for an encoding failure: 413 past the limit, else 400 naming the field."""
        if isinstance(exc, TooManyFeatures):
            return self.too_many_features(exc.field.split(".")[0].split("[")[0] if exc.field else None)
        return InvalidField(exc.field, exc.message)
