"""Watch each group of traffic for a fall in reward that says its tastes changed.

A model that learned a segment's tastes from months of traffic unlearns them slowly
when they change: its per-feature learning rates have shrunk with the evidence. The
log can forget for it, precisely: a group is a value of a categorical context feature
(``user.segment = s2``), and when the rewards of a group's latest decisions fall
clearly below the group's own reference before them, what that group did before the
change can be left out of the model, which is then rebuilt from the rest of the log.

``DriftWatch.observe`` takes the learned decisions in log order. The windows are spans
of the experiment's traffic, the same for every group: the last ``recent`` decisions
and the ``reference`` decisions before them. A group has drifted when its mean reward
in the recent span is below its mean in the reference span by at least ``min_drop`` of
it and by ``threshold`` standard errors (one-sided, strict because it is tested after
every decision). Then every group is measured over the same spans, and among those
falling at least half as clearly the one is named without which the rest of the traffic
falls least: a segment's fall also drags down every device and page its shoppers use,
and the group that explains it is the one to forget. The change point is the split of
that group's rewards in both spans that best separates two means (the least-squares
split of a mean shift), so what is forgotten ends where the new tastes begin. The watch
then forgets the same decisions, so the rest of the traffic stays watched without a
pause. Rises are never changes: a group the model serves better is learning, not drifting.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

MAX_GROUPS = 64  # groups watched per experiment
MAX_VALUES = 16  # a feature with more values (a user id, a search query) is not a grouping
MIN_DECISIONS = 30  # a group's span with fewer decisions is not tested


@dataclass(frozen=True)
class Change:
    """A group whose reward fell: forget its decisions before ``before`` (a log position).

    The means are the group's mean rewards before and after that change point; ``z`` is the test's.
    """

    feature: str
    value: str
    before: int
    before_mean: float
    after_mean: float
    z: float
    decisions: int  # the group's decisions in both spans when the watch saw the change

    def to_dict(self) -> dict:
        return {"feature": self.feature, "value": self.value, "before": self.before,
                "before_mean": round(self.before_mean, 4), "after_mean": round(self.after_mean, 4),
                "z": round(self.z, 2), "decisions": self.decisions}


class _Group:
    """A group's (traffic index, position, reward) in the recent and the reference span, with running sums."""

    __slots__ = ("recent", "reference", "recent_sum", "recent_sq", "reference_sum", "reference_sq")

    def __init__(self):
        self.recent: deque = deque()
        self.reference: deque = deque()
        self.recent_sum = self.recent_sq = self.reference_sum = self.reference_sq = 0.0

    def advance(self, now: int, recent: int, reference: int) -> None:
        """Move what left the recent span into the reference span, and drop what left both."""
        while self.recent and self.recent[0][0] <= now - recent:
            moved = self.recent.popleft()
            self.recent_sum -= moved[2]
            self.recent_sq -= moved[2] ** 2
            self.reference.append(moved)
            self.reference_sum += moved[2]
            self.reference_sq += moved[2] ** 2
        while self.reference and self.reference[0][0] <= now - recent - reference:
            dropped = self.reference.popleft()
            self.reference_sum -= dropped[2]
            self.reference_sq -= dropped[2] ** 2

    def fall(self, without: "_Group | None" = None) -> tuple[float, float, float] | None:
        """Return (z, reference mean, recent mean), or None while either span holds too few decisions.

        ``without``: a group inside this one, whose decisions do not count (the rest of the traffic).
        """
        n_recent, n_reference = len(self.recent), len(self.reference)
        sums = [self.recent_sum, self.recent_sq, self.reference_sum, self.reference_sq]
        if without is not None:
            n_recent, n_reference = n_recent - len(without.recent), n_reference - len(without.reference)
            sums = [a - b for a, b in zip(sums, (without.recent_sum, without.recent_sq, without.reference_sum,
                                                 without.reference_sq))]
        if n_recent < MIN_DECISIONS or n_reference < MIN_DECISIONS:
            return None
        recent_sum, recent_sq, reference_sum, reference_sq = sums
        recent_mean, reference_mean = recent_sum / n_recent, reference_sum / n_reference
        n = n_recent + n_reference
        mean = (recent_sum + reference_sum) / n
        variance = max((recent_sq + reference_sq) / n - mean * mean, 0.0)
        if variance == 0:
            return None
        z = (recent_mean - reference_mean) / math.sqrt(variance * (1 / n_recent + 1 / n_reference))
        return z, reference_mean, recent_mean


class DriftWatch:
    """Per group, test whether the latest rewards fell below the group's reference.

    >>> watch, rng = DriftWatch(recent=200, reference=600, threshold=4.0), np.random.default_rng(0)
    >>> def view(seq):  # two segments alternate; from decision 1,500 on, s2 clicks a fifth as often
    ...     segment = f"s{seq % 2 + 1}"
    ...     rate = .1 if segment == "s2" and seq >= 1500 else .5
    ...     return {"user": {"segment": segment, "device": "mobile"}}, float(rng.random() < rate)
    >>> change = next(c for c in (watch.observe(seq, *view(seq)) for seq in range(3000)) if c)
    >>> change.feature, change.value, 1450 <= change.before <= 1550, change.after_mean < .25 < change.before_mean
    ('user.segment', 's2', True, True)
    """

    def __init__(self, recent: int = 1500, reference: int = 4500, threshold: float = 4.0, min_drop: float = 0.25):
        self.recent, self.reference, self.threshold, self.min_drop = recent, reference, threshold, min_drop
        self._groups: dict[tuple[str, str], _Group] = {}
        self._all = _Group()  # every decision: what the rest of the traffic did is this minus a group
        self._values: dict[str, set] = {}
        self._ignored: set[str] = set()
        self._seen = 0  # decisions observed since the watch started
        self._kept: deque = deque()  # (now, position, reward, group keys) of the decisions in the spans

    def forget(self, change: Change) -> None:
        """Leave out of every span what the model now leaves out: the group's decisions before the change.

        The rest of the traffic keeps its spans, so the watch stays armed for the next change, and the
        forgotten group is measured from its new tastes on.
        """
        group = (change.feature, change.value)
        kept = [d for d in self._kept if not (d[1] < change.before and group in d[3])]
        self._groups = {key: _Group() for key in self._groups}
        self._all, self._kept = _Group(), deque()
        for now, position, reward, keys in kept:
            self._record(now, position, reward, keys)

    def observe(self, position: int, context: dict, reward: float) -> Change | None:
        """Add one learned decision; return the change it reveals, if any."""
        self._seen += 1
        now = self._seen
        keys = tuple(key for key in groups_of(context) if self._group(key) is not None)
        groups = self._record(now, position, reward, keys)
        tripped = any(self._falls(group.fall(), self.threshold) for group in groups)
        if not tripped or now < self.recent + self.reference:
            return None
        return self._culprit(now)

    def _record(self, now: int, position: int, reward: float, keys: tuple) -> list[_Group]:
        """Add a decision to the spans of every traffic and of its groups; return its groups."""
        self._kept.append((now, position, reward, keys))
        while self._kept[0][0] <= now - self.recent - self.reference:
            self._kept.popleft()
        self._add(self._all, now, position, reward)
        # A feature found to have too many values since is no longer watched.
        groups = [self._groups[key] for key in keys if key in self._groups]
        for group in groups:
            self._add(group, now, position, reward)
        return groups

    def _add(self, group: _Group, now: int, position: int, reward: float) -> None:
        group.recent.append((now, position, reward))
        group.recent_sum += reward
        group.recent_sq += reward * reward
        group.advance(now, self.recent, self.reference)

    def _culprit(self, now: int) -> Change | None:
        """Name the group that explains the fall: of those falling at least half as clearly, the one
        without which the rest of the traffic falls least (a segment's fall also drags down every
        device and page its shoppers use, and a small group beside it can look as if it fell)."""
        best = None
        for key, group in self._groups.items():
            group.advance(now, self.recent, self.reference)
            fall = group.fall()
            if not self._falls(fall, self.threshold / 2):
                continue
            rest = self._all.fall(without=group)  # None: the group is (nearly) all traffic, the last resort
            score = (rest[0] if rest is not None else -math.inf, -fall[0])
            if best is None or score > best[0]:
                best = (score, key, group, fall[0])
        if best is None:
            return None
        _, (feature, value), group, z = best
        kept = [*group.reference, *group.recent]
        rewards = np.array([r for _, _, r in kept])
        at = split(rewards)
        return Change(feature, value, kept[at][1], float(rewards[:at].mean()), float(rewards[at:].mean()), z,
                      len(kept))

    def _falls(self, fall, threshold: float) -> bool:
        return fall is not None and fall[1] > 0 and fall[2] <= fall[1] * (1 - self.min_drop) and fall[0] <= -threshold

    def _group(self, key: tuple[str, str]) -> _Group | None:
        feature, value = key
        if feature in self._ignored:
            return None
        seen = self._values.setdefault(feature, set())
        if value not in seen:
            if len(seen) >= MAX_VALUES:
                self._ignored.add(feature)
                for dropped in [k for k in self._groups if k[0] == feature]:
                    del self._groups[dropped]
                return None
            seen.add(value)
        group = self._groups.get(key)
        if group is None:
            if len(self._groups) >= MAX_GROUPS:
                return None
            group = self._groups[key] = _Group()
        return group


def split(rewards: np.ndarray) -> int:
    """Return the index where the later rewards begin: the least-squares split of a fall in the mean.

    >>> split(np.array([1.0, 1, 1, 1, 0, 0, 1, 0, 0, 0]))
    4
    """
    n = len(rewards)
    k = np.arange(1, n)
    before = np.cumsum(rewards)[:-1]
    total = rewards.sum()
    shift = before / k - (total - before) / (n - k)  # mean before minus mean after
    score = np.where(shift > 0, shift * shift * k * (n - k) / n, -1.0)
    return int(np.argmax(score)) + 1


def groups_of(context: dict):
    """Yield (feature, value) for each categorical feature of a context: ``namespace.name`` and its string.

    >>> list(groups_of({"user": {"segment": "s2", "hour": 20, "recent": ["c1"]}, "page": "home"}))
    [('user.segment', 's2'), ('page', 'home')]
    """
    for namespace, features in context.items():
        if isinstance(features, str):
            yield namespace, features
        elif isinstance(features, dict):
            for name, value in features.items():
                if isinstance(value, str):
                    yield f"{namespace}.{name}", value
