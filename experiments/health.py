"""Quick health figures of an experiment for the dashboard list: traffic today, rewards arriving.

Both are index range reads on ``decisions (experiment, created_at)``, cheap enough
to run for every experiment each time the list is shown.
"""
from __future__ import annotations

RECENT_CLOSED = 200  # the newest decisions whose reward window has closed
MIN_SILENT = 50  # this many closed decisions without any reward means rewards are not arriving
DAY = 86400


def start_of_day(now: float) -> float:
    """Return midnight UTC of the day ``now`` falls in."""
    return now - now % DAY


def decisions_since(store, key: str, since: float) -> int:
    return store.conn.execute("SELECT count(*) FROM decisions WHERE experiment = ? AND created_at >= ?",
                              (key, since)).fetchone()[0]


def recent_closed_rewarded(store, key: str, closed_before: float) -> tuple[int, int]:
    """Among the newest closed decisions, count them and those with at least one reward (any, even late)."""
    return store.conn.execute(
        "SELECT count(*), coalesce(sum(CASE WHEN EXISTS (SELECT 1 FROM rewards r WHERE r.decision_seq = d.seq)"
        " THEN 1 ELSE 0 END), 0)"
        " FROM (SELECT seq FROM decisions WHERE experiment = ? AND created_at <= ?"
        " ORDER BY created_at DESC LIMIT ?) d",
        (key, closed_before, RECENT_CLOSED)).fetchone()


def health(store, key: str, spec: dict, status: str, now: float) -> dict:
    """Return decisions today and whether rewards have stopped arriving for a live experiment.

    "No rewards arriving" fires when at least ``MIN_SILENT`` of the newest
    decisions whose reward window has closed got no reward at all: the shop
    is most likely not posting rewards, so nothing is being learned.
    """
    closed, rewarded = recent_closed_rewarded(store, key, now - spec["reward"]["wait_seconds"])
    silent = status in ("running", "paused") and closed >= MIN_SILENT and rewarded == 0
    return {"decisions_today": decisions_since(store, key, start_of_day(now)),
            "recent_closed": closed, "recent_rewarded": rewarded, "no_rewards": silent}
