"""Numeric features on a sensible scale: log, standardised from observed statistics, bucketed, or raw.

VW learns a weight per feature, and ``-q``/``--cubic`` multiply feature values:
a raw price of 349.0 crossed with a one-hot segment (value 1) gives a feature
hundreds of times larger than its neighbours, so one expensive item swings the
model. A ``Scaling`` says how each numeric feature is put on a scale: a default
mode and per-feature modes by path (``action.price`` for a candidate feature,
``user.age`` for a context one; see ``feature_path``):

- ``raw``: the value as sent;
- ``log``: sign(x) * log(1 + |x|), so 349.0 becomes 5.86 and 0.4 stays 0.34;
- ``standard``: (x - mean) / standard deviation, both observed over the first
  ``OBSERVE`` learned examples and then fixed for the model's life;
- ``{"buckets": [10, 50, 200]}``: one-hot of the interval the value falls in
  (``price=[10.0,50.0)``), so the model can learn any shape over the ranges.

``Scaler`` applies a scaling to VW text (what ``bandit.encoding`` writes): every
numeric token ``name:value`` after a namespace is rewritten, everything else is
left as it is. The policy applies it to whatever it predicts or learns, so
serving, the learner, replays and evaluations see the same features.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from numbers import Real

from bandit.encoding import escape, namespace_name
from bandit.exploration import SettingError

MODES = ("raw", "log", "standard")
OBSERVE = 500  # examples whose features set a standardised feature's mean and deviation
MAX_FEATURES = 200
MAX_BUCKETS = 64
CACHE_SIZE = 50_000  # scaled texts kept per scaler (candidate lines repeat across requests)
_INDEX = re.compile(r"\[\d+\]$")


@dataclass(frozen=True)
class Buckets:
    """One-hot of the interval between sorted edges that a value falls in."""

    edges: tuple

    def label(self, value: float) -> str:
        """Return the interval's name, e.g. ``[10.0,50.0)``.

        >>> Buckets((10.0, 50.0)).label(3), Buckets((10.0, 50.0)).label(10), Buckets((10.0, 50.0)).label(99)
        ('(-inf,10.0)', '[10.0,50.0)', '[50.0,inf)')
        """
        low = "(-inf"
        for edge in self.edges:
            if value < edge:
                return f"{low},{edge!r})"
            low = f"[{edge!r}"
        return f"{low},inf)"


@dataclass(frozen=True)
class Scaling:
    """How numeric features are scaled: ``default`` for all, ``features`` by path as given (``action.price``)."""

    default: object = "raw"
    features: tuple = ()  # ((path, mode), ...) in the order given

    @property
    def is_identity(self) -> bool:
        return self.default == "raw" and all(mode == "raw" for _, mode in self.features)

    @property
    def needs_statistics(self) -> bool:
        return self.default == "standard" or any(mode == "standard" for _, mode in self.features)

    def mode(self, vw_path: str):
        """Return the mode of a feature by the path VW sees (``Action.price``)."""
        by_path = self.__dict__.get("_by_path")
        if by_path is None:
            by_path = {feature_path(path): mode for path, mode in self.features}
            object.__setattr__(self, "_by_path", by_path)
        return by_path.get(vw_path, self.default)

    def to_dict(self) -> dict:
        """Return the JSON object of this scaling (inverse of ``parse_scaling``)."""
        def plain(mode):
            return {"buckets": list(mode.edges)} if isinstance(mode, Buckets) else mode
        return {"default": plain(self.default), "features": {path: plain(mode) for path, mode in self.features}}


def feature_path(path: str) -> str:
    """Normalise a spec's feature path to the namespace and feature name VW sees.

    The part before the first dot is the context key (``action`` for candidate
    features, ``slot`` for slot features, ``context`` for loose context values);
    the rest is the feature's name, nested objects joined with dots.

    >>> feature_path("action.price"), feature_path("user.geo.lat"), feature_path("user.unit price")
    ('Action.price', 'User.geo.lat', 'User.unit%20price')
    """
    namespace, dot, name = path.partition(".")
    if not namespace or not dot or not name:
        raise ValueError("must be a namespace and a feature name like \"action.price\" or \"user.age\"")
    return f"{namespace_name(namespace)}.{escape(name)}"


def _mode(value, field_name: str):
    if isinstance(value, str):
        if value not in MODES:
            raise SettingError(field_name, f"must be one of {', '.join(MODES)} or {{\"buckets\": [...]}}")
        return value
    if not isinstance(value, dict) or set(value) != {"buckets"}:
        raise SettingError(field_name, f"must be one of {', '.join(MODES)} or {{\"buckets\": [...]}}")
    edges = value["buckets"]
    if (not isinstance(edges, list) or not 1 <= len(edges) <= MAX_BUCKETS
            or not all(isinstance(e, Real) and not isinstance(e, bool) and math.isfinite(e) for e in edges)
            or any(b <= a for a, b in zip(edges, edges[1:]))):
        raise SettingError(f"{field_name}.buckets",
                           f"must be 1-{MAX_BUCKETS} finite numbers in increasing order")
    return Buckets(tuple(float(e) for e in edges))


def parse_scaling(data) -> Scaling:
    """Build a validated ``Scaling`` from its JSON object; errors name the field.

    >>> parse_scaling({"default": "log", "features": {"action.price": {"buckets": [10, 50]}}})
    Scaling(default='log', features=(('action.price', Buckets(edges=(10.0, 50.0))),))
    >>> parse_scaling({"default": "cube"})
    Traceback (most recent call last):
    ...
    bandit.exploration.SettingError: default: must be one of raw, log, standard or {"buckets": [...]}
    """
    if not isinstance(data, dict):
        raise SettingError("", "must be an object like {\"default\": \"log\", \"features\": {\"action.price\": "
                               "\"standard\"}}")
    for key in data:
        if key not in ("default", "features"):
            raise SettingError(key, "unknown field")
    default = _mode(data.get("default", "raw"), "default")
    features = data.get("features", {})
    if not isinstance(features, dict) or len(features) > MAX_FEATURES:
        raise SettingError("features", f"must be an object of at most {MAX_FEATURES} feature paths to modes")
    parsed, seen = [], {}
    for path, mode in features.items():
        where = f"features.{path}"
        try:
            normal = feature_path(path)
        except ValueError as exc:
            raise SettingError(where, str(exc)) from None
        if normal in seen:
            raise SettingError(where, f"names the same feature as {seen[normal]!r}")
        seen[normal] = path
        parsed.append((path, _mode(mode, where)))
    return Scaling(default, tuple(parsed))


@dataclass
class Statistics:
    """Running count, sum and sum of squares per standardised feature path, frozen once observed."""

    moments: dict = field(default_factory=dict)  # path -> [count, sum, sum of squares]
    examples: int = 0
    frozen: bool = False

    def add(self, path: str, value: float) -> None:
        m = self.moments.setdefault(path, [0, 0.0, 0.0])
        m[0] += 1
        m[1] += value
        m[2] += value * value

    def mean_std(self, path: str) -> tuple[float, float] | None:
        """Return (mean, standard deviation) of a path, None when it was never observed."""
        m = self.moments.get(path)
        if not m or not m[0]:
            return None
        mean = m[1] / m[0]
        return mean, math.sqrt(max(m[2] / m[0] - mean * mean, 0.0))

    def to_dict(self) -> dict:
        return {"examples": self.examples, "frozen": self.frozen, "moments": self.moments}

    @classmethod
    def from_dict(cls, data: dict | None) -> "Statistics":
        if not data:
            return cls()
        return cls({k: list(v) for k, v in data["moments"].items()}, data["examples"], data["frozen"])


def _log(value: float) -> float:
    return math.copysign(math.log1p(abs(value)), value)


class Scaler:
    """Apply a ``Scaling`` to VW feature text; observe the statistics that ``standard`` needs first.

    >>> scaler = Scaler(parse_scaling({"default": "log", "features": {"action.id_len": "raw"}}))
    >>> scaler.text("|Action id=sku-1 price:349.0 id_len:5.0 tags[0]:0.0")
    '|Action id=sku-1 price:5.857933154483459 id_len:5.0 tags[0]:0.0'
    """

    def __init__(self, scaling: Scaling, statistics: Statistics | None = None):
        self.scaling = scaling
        self.statistics = statistics or Statistics(frozen=not scaling.needs_statistics)
        self._modes: dict[str, object] = {}
        self._cache: dict[str, str] = {}

    @property
    def observing(self) -> bool:
        """True while a standardised feature's statistics are still being observed."""
        return not self.statistics.frozen

    def observe(self, texts) -> None:
        """Count the standardised features of one example's texts; freeze after ``OBSERVE`` examples."""
        if self.statistics.frozen:
            return
        for text in texts:
            for path, value in self._numbers(text):
                if self._mode(path) == "standard":
                    self.statistics.add(path, value)
        self.statistics.examples += 1
        if self.statistics.examples >= OBSERVE:
            self.statistics.frozen = True
            self._cache.clear()

    def _numbers(self, text: str):
        namespace = None
        for token in text.split(" "):
            if token.startswith("|"):
                namespace = token[1:]
                continue
            name, colon, value = token.rpartition(":")
            if namespace is not None and colon:
                yield f"{namespace}.{_INDEX.sub('', name)}", float(value)

    def _mode(self, path: str):
        mode = self._modes.get(path)
        if mode is None:
            mode = self._modes[path] = self.scaling.mode(path)
        return mode

    def text(self, text: str) -> str:
        """Return VW feature text with every numeric feature scaled."""
        return text if self.scaling.is_identity else self._scale(text)

    def texts(self, texts) -> list[str]:
        """Scale many texts (a request's candidates), remembering each: the same lines come again."""
        if self.scaling.is_identity:
            return texts
        cache, out = self._cache, []
        for text in texts:
            scaled = cache.get(text)
            if scaled is None:
                if len(cache) >= CACHE_SIZE:
                    cache.clear()
                scaled = cache[text] = self._scale(text)
            out.append(scaled)
        return out

    def _scale(self, text: str) -> str:
        out, namespace = [], None
        for token in text.split(" "):
            if token.startswith("|"):
                namespace = token[1:]
            else:
                name, colon, value = token.rpartition(":")
                if namespace is not None and colon:
                    token = self._token(f"{namespace}.{_INDEX.sub('', name)}", name, float(value))
            out.append(token)
        return " ".join(out)

    def _token(self, path: str, name: str, value: float) -> str:
        mode = self._mode(path)
        if mode == "log":
            value = _log(value)
        elif mode == "standard":
            found = None if self.observing else self.statistics.mean_std(path)
            if found is not None:
                mean, std = found
                value = (value - mean) / std if std > 0 else value - mean
        elif isinstance(mode, Buckets):
            return f"{name}={mode.label(value)}"
        return f"{name}:{value!r}"
