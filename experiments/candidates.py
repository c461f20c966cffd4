"""Validate, complete and encode a slate request's candidates, once per distinct content.

Shops send the same candidate list on many page views. The validated list and
its VW encodings are cached under a digest of the raw list and the catalog
version, so a repeat costs one hash instead of a walk over every feature.
"""
from __future__ import annotations

import hashlib
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass

import orjson

from bandit.encoding import FeatureError, action_text
from experiments.errors import InvalidField
from experiments.limits import Limits
from experiments.spec import MAX_ARMS, check_entry
from experiments.store import dumps, set_digest

MAX_CANDIDATES = MAX_ARMS


@dataclass(frozen=True)
class CandidateSet:
    """Validated, available candidates with their VW action lines and the digest they are logged under."""

    candidates: tuple
    actions: tuple
    digest: str | None  # None for a set with candidates excluded: its digest is computed when logged
    features: int  # features of every candidate validated for the set (ids included), available or not
    sizes: dict  # an action's feature count (id included) -> how many actions have it

    def without(self, excluded: tuple) -> CandidateSet:
        """Drop excluded candidates, keeping order; the digest survives only an intact set."""
        if excluded:
            excluded = set(excluded)
            kept = [(c, a) for c, a in zip(self.candidates, self.actions) if c["id"] not in excluded]
            if len(kept) < len(self.candidates):
                actions = tuple(a for _, a in kept)
                return CandidateSet(tuple(c for c, _ in kept), actions, None, self.features, action_sizes(actions))
        return self


def action_sizes(actions) -> dict:
    """Map an action line's feature count (its id included) to how many actions have it."""
    return Counter(action.count(" ") for action in actions)


def _encode(cand: dict, field: str, limit: int, limits: Limits) -> str:
    try:
        return action_text(cand, field, limit)
    except FeatureError as exc:
        raise limits.feature_error(exc) from None


def build_set(raw, catalog: dict, field: str = "candidates", limits: Limits = Limits()) -> CandidateSet:
    """Validate raw candidates; an id-only candidate takes its features from the catalog.

    Unavailable catalog items are validated like the rest, then left out once here,
    not on every request that uses the set. Encoding stops past the features limit.
    """
    if not isinstance(raw, list) or not raw:
        raise InvalidField(field, "must be a non-empty list of {\"id\", \"features\"} objects")
    if len(raw) > MAX_CANDIDATES:
        raise InvalidField(field, f"at most {MAX_CANDIDATES} candidates")
    seen, candidates, actions, counted = set(), [], [], 0
    for i, cand in enumerate(raw):
        where = f"{field}[{i}]"
        cand_id = check_entry(cand, where, {"id", "features"}, seen, "candidate")
        features, available = cand.get("features"), True
        if cand_id in catalog:
            known, available = catalog[cand_id]
            features = known if features is None else features
        if features is None:
            features = {}
        if not isinstance(features, dict):
            raise InvalidField(f"{where}.features", "must be an object")
        candidate = {"id": cand_id, "features": features}
        action = _encode(candidate, where, limits.features - counted, limits)  # validates the features too
        counted += action.count(" ")
        if available:
            candidates.append(candidate)
            actions.append(action)
    limits.check_features(counted, field)
    return CandidateSet(tuple(candidates), tuple(actions), set_digest(dumps(candidates)), counted,
                        action_sizes(actions))


def catalog_set(catalog: dict, limits: Limits = Limits()) -> CandidateSet:
    """All available catalog items as candidates, for requests that send none."""
    raw = [{"id": item_id, "features": features} for item_id, (features, available) in catalog.items() if available]
    if not raw:
        raise InvalidField("candidates", "send candidates, or add available items to the catalog first")
    return build_set(raw, {}, field="catalog", limits=limits)


class CandidateCache:
    """An LRU of validated candidate sets keyed by (source, catalog version, digest)."""

    def __init__(self, maxsize: int = 1024):
        self.maxsize = maxsize
        self._sets: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key, build) -> CandidateSet:
        with self._lock:
            found = self._sets.get(key)
            if found is not None:
                self._sets.move_to_end(key)
                return found
        found = build()
        with self._lock:
            self._sets[key] = found
            if len(self._sets) > self.maxsize:
                self._sets.popitem(last=False)
        return found


def digest(raw) -> str | None:
    """Hash a JSON value; None when it cannot be serialised (then it is never cached)."""
    try:
        return hashlib.blake2b(orjson.dumps(raw), digest_size=16).hexdigest()
    except (TypeError, orjson.JSONEncodeError):
        return None


class CandidateSets:
    """The candidates of each request: the experiment's arms, the catalog, or the request's own list.

    Validated sets are cached, so a list seen before costs one hash, not a walk over its features.
    """

    def __init__(self, catalog, limits: Limits = Limits(), maxsize: int = 1024):
        self.catalog = catalog
        self.limits = limits
        self.cache = CandidateCache(maxsize)

    def _full(self, spec, spec_version: int, raw) -> CandidateSet:
        if spec.data["kind"] == "strategies":
            if raw is not None:
                raise InvalidField("candidates", "a strategies experiment chooses among its arms; omit candidates")
            build = lambda: build_set(spec.arms, {}, "arms", self.limits)  # noqa: E731
            return self.cache.get(("arms", spec.key, spec_version), build)
        catalog_version, catalog = self.catalog.snapshot()
        if raw is None:
            return self.cache.get(("catalog", catalog_version), lambda: catalog_set(catalog, self.limits))
        key = digest(raw)
        build = lambda: build_set(raw, catalog, "candidates", self.limits)  # noqa: E731
        return self.cache.get(("raw", catalog_version, key), build) if key else build()

    def for_request(self, spec, spec_version: int, raw, exclude: tuple) -> tuple[CandidateSet, CandidateSet]:
        """Return the request's candidate set without unavailable items, and what exclude left of it."""
        full = self._full(spec, spec_version, raw)
        chosen = full.without(exclude)
        if not chosen.candidates:
            where = what_is_left(spec.data["kind"], raw, full, chosen)
            raise InvalidField("exclude" if exclude else "candidates", f"no candidate is left to show ({where})")
        return full, chosen


def what_is_left(kind: str, raw, full: CandidateSet, chosen: CandidateSet) -> str:
    """Say where a request's candidates went, so a refusal names the real cause (unavailable or excluded).

    >>> s = lambda n: CandidateSet(tuple({"id": str(i)} for i in range(n)), (), None, 0, {})
    >>> what_is_left("items", [{"id": "a"}, {"id": "b"}], s(1), s(1))
    '1 of 2 sent: 1 unavailable in the catalog'
    >>> what_is_left("items", None, s(3), s(1))
    '1 of 3 available catalog items: 2 excluded'
    """
    kept = len(chosen.candidates)
    if kind == "strategies":
        source = f"{kept} of {len(full.candidates)} arms"
    elif raw is None:
        source = f"{kept} of {len(full.candidates)} available catalog items"
    else:
        source = f"{kept} of {len(raw)} sent"
    causes = []
    if isinstance(raw, list) and len(raw) > len(full.candidates):
        causes.append(f"{len(raw) - len(full.candidates)} unavailable in the catalog")
    if len(full.candidates) > kept:
        causes.append(f"{len(full.candidates) - kept} excluded")
    return source + (": " + ", ".join(causes) if causes else "")
