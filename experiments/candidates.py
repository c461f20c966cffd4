"""Validate, complete and encode a slate request's candidates, once per distinct content.

Shops send the same candidate list on many page views. The validated list and
its VW encodings are cached under a digest of the raw list and the catalog
version, so a repeat costs one hash instead of a walk over every feature.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import orjson

from bandit.encoding import FeatureError, action_text
from experiments.errors import InvalidField
from experiments.spec import MAX_ARMS, check_entry
from experiments.store import dumps, set_digest

MAX_CANDIDATES = MAX_ARMS


@dataclass(frozen=True)
class CandidateSet:
    """Validated, available candidates with their VW action lines and the digest they are logged under."""

    candidates: tuple
    actions: tuple
    digest: str

    def without(self, excluded: tuple) -> tuple[tuple, tuple, str | None]:
        """Drop excluded candidates, keeping order; the digest survives only an intact set."""
        if excluded:
            excluded = set(excluded)
            kept = [(c, a) for c, a in zip(self.candidates, self.actions) if c["id"] not in excluded]
            if len(kept) < len(self.candidates):
                return tuple(c for c, _ in kept), tuple(a for _, a in kept), None
        return self.candidates, self.actions, self.digest


def _encode(cand: dict, field: str) -> str:
    try:
        return action_text(cand, field)
    except FeatureError as exc:
        raise InvalidField(exc.field, exc.message) from None


def build_set(raw, catalog: dict, field: str = "candidates") -> CandidateSet:
    """Validate raw candidates; an id-only candidate takes its features from the catalog.

    Unavailable catalog items are validated like the rest, then left out once here,
    not on every request that uses the set.
    """
    if not isinstance(raw, list) or not raw:
        raise InvalidField(field, "must be a non-empty list of {\"id\", \"features\"} objects")
    if len(raw) > MAX_CANDIDATES:
        raise InvalidField(field, f"at most {MAX_CANDIDATES} candidates")
    seen, candidates, actions = set(), [], []
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
        action = _encode(candidate, where)  # validates the features too
        if available:
            candidates.append(candidate)
            actions.append(action)
    return CandidateSet(tuple(candidates), tuple(actions), set_digest(dumps(candidates)))


def catalog_set(catalog: dict) -> CandidateSet:
    """All available catalog items as candidates, for requests that send none."""
    raw = [{"id": item_id, "features": features} for item_id, (features, available) in catalog.items() if available]
    if not raw:
        raise InvalidField("candidates", "send candidates, or add available items to the catalog first")
    return build_set(raw, {}, field="catalog")


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

    def __init__(self, catalog, maxsize: int = 1024):
        self.catalog = catalog
        self.cache = CandidateCache(maxsize)

    def _full(self, spec, spec_version: int, raw) -> CandidateSet:
        if spec.data["kind"] == "strategies":
            if raw is not None:
                raise InvalidField("candidates", "a strategies experiment chooses among its arms; omit candidates")
            return self.cache.get(("arms", spec.key, spec_version), lambda: build_set(spec.arms, {}, field="arms"))
        catalog_version, catalog = self.catalog.snapshot()
        if raw is None:
            return self.cache.get(("catalog", catalog_version), lambda: catalog_set(catalog))
        key = digest(raw)
        build = lambda: build_set(raw, catalog)  # noqa: E731
        return self.cache.get(("raw", catalog_version, key), build) if key else build()

    def for_request(self, spec, spec_version: int, raw, exclude: tuple) -> tuple[tuple, tuple, str | None]:
        """Return (candidates, actions, digest or None) after exclude and unavailable items."""
        candidates, actions, known_digest = self._full(spec, spec_version, raw).without(exclude)
        if not candidates:
            raise InvalidField("exclude", "no candidate is left after exclude and unavailable items")
        return candidates, actions, known_digest
