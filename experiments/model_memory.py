"""Which model policies a process lets go of: idle ones, then the least recently used beyond a budget.

Serving workers and the learner each keep a VW policy per experiment in memory; a
shop with hundreds of experiments would otherwise hold every one it ever touched.
A dropped policy is simply loaded again from the newest snapshot when next needed.
"""
from __future__ import annotations

DEFAULT_BUDGET_BYTES = 128 * 1024 * 1024
DEFAULT_IDLE_SECONDS = 300.0


def to_evict(entries: dict[str, tuple[float, int]], budget_bytes: int, idle_before: float) -> list[str]:
    """Return the keys to drop: those last used before ``idle_before``, then the oldest until within budget.

    ``entries`` maps a key to (last used, bytes).

    >>> to_evict({"a": (1.0, 5), "b": (5.0, 5), "c": (9.0, 5)}, budget_bytes=100, idle_before=2.0)
    ['a']
    >>> to_evict({"a": (3.0, 5), "b": (5.0, 5), "c": (9.0, 5)}, budget_bytes=6, idle_before=2.0)
    ['a', 'b']
    """
    total = sum(size for _, size in entries.values())
    dropped = []
    for key in sorted(entries, key=lambda k: entries[k][0]):
        used, size = entries[key]
        if used >= idle_before and total <= budget_bytes:
            break
        dropped.append(key)
        total -= size
    return dropped
