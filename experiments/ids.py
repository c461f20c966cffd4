"""Fresh ids for events and rewards that sort by time.

A random id (uuid4) lands on a random page of the unique index on every insert,
so each commit rewrites a cold page; an id that starts with the time keeps the
inserts at the right edge of the B-tree, where the page is already in cache.
The 64 random bits after the millisecond make a clash across processes
negligible (``random`` reseeds itself in every forked worker).
"""
from __future__ import annotations

import random


def new_id(now: float) -> str:
    """Return 12 hex digits of milliseconds since the epoch, then 16 random hex digits.

    >>> len(new_id(1767225600.0)), new_id(1767225600.0)[:12]
    (28, '019b76daa800')
    >>> new_id(1.0) < new_id(2.0)
    True
    """
    return f"{int(now * 1000):012x}{random.getrandbits(64):016x}"
