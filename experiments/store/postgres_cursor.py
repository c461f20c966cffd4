"""A PostgreSQL log position: (transaction id, seq) packed into one int that orders as the pair does.

A sequence number is not commit order on PostgreSQL, so learner cursors, model resets and the
archive's position are pairs; packed, they stay one comparable int, as a seq is on SQLite.
"""
from __future__ import annotations

SHIFT = 64  # xid << 64 | seq: seq < 2**63, so ints compare as the pairs do


def pack(xid: int, seq: int) -> int:
    """One int that orders like (xid, seq)."""
    return (int(xid) << SHIFT) | int(seq)


def unpack(cursor: int) -> tuple[int, int]:
    return int(cursor) >> SHIFT, int(cursor) & ((1 << SHIFT) - 1)
