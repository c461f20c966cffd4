"""Seeded sampling from probability mass functions.

The seed comes from the event id, so the same event and the same model always
give the same slate: a retried request gets the same answer, and replay can check
what was shown.
"""
from __future__ import annotations

import bisect
import hashlib
import itertools
import math


def uniform_draws(event_id: str, count: int) -> list[float]:
    """Return ``count`` uniform numbers in [0, 1) seeded by the event id, one per slot.

    Each is 53 bits of a keyed BLAKE2b digest: as good as a seeded generator for
    this purpose and a few times cheaper than building one per request.

    >>> uniform_draws("evt-1", 2) == uniform_draws("evt-1", 2)
    True
    >>> all(0 <= u < 1 for u in uniform_draws("evt-1", 3))
    True
    """
    seed = str(event_id).encode()
    return [
        (int.from_bytes(hashlib.blake2b(seed, digest_size=8, salt=k.to_bytes(16, "little")).digest(), "little") >> 11)
        / 9007199254740992.0
        for k in range(count)
    ]


def sample_index(pmf, u: float) -> int:
    """Pick an index of ``pmf`` with the inverse-CDF method using the uniform number ``u``.

    Zero-probability entries are never picked, even with rounding at the top end.

    >>> sample_index([0.2, 0.0, 0.8], 0.1), sample_index([0.2, 0.0, 0.8], 0.5)
    (0, 2)
    """
    pmf = [float(p) for p in pmf]  # plain floats: faster than numpy for a few hundred entries
    total = math.fsum(pmf)
    if not math.isfinite(total) or total <= 0:
        raise ValueError("pmf: must have a positive finite sum")
    target = u * total
    index = bisect.bisect_right(list(itertools.accumulate(pmf)), target)
    index = min(index, len(pmf) - 1)
    while pmf[index] <= 0:  # only reachable through rounding at the very top
        index -= 1
    return index


def uniform_slate(n: int, slots: int, event_id: str, first: int | None = None,
                  excluded: tuple = ()) -> list[tuple[int, float]]:
    """Sample ``slots`` distinct indices uniformly without replacement, or a fixed index first.

    Slot k of a uniform slate has probability 1/(n-k); a fixed ``first`` index has
    probability 1 in the first slot and the later slots are uniform over the rest.
    ``excluded`` holds, per slot, the indices that slot may not show; the slate
    stops early when a slot has nothing left to show.

    >>> [p for _, p in uniform_slate(4, 2, "evt")]
    [0.25, 0.3333333333333333]
    >>> [i for i, _ in uniform_slate(4, 2, "evt", first=3)][0]
    3
    """
    draws = uniform_draws(event_id, slots)
    remaining = list(range(n))
    chosen = []
    if first is not None and not (excluded and first in excluded[0]):
        remaining.remove(first)
        chosen.append((first, 1.0))
    while len(chosen) < slots:
        k = len(chosen)
        allowed = [i for i in remaining if not excluded or i not in excluded[k]]
        if not allowed:
            break
        pick = allowed[int(draws[k] * len(allowed))]
        remaining.remove(pick)
        chosen.append((pick, 1.0 / len(allowed)))
    return chosen
