"""Log retention: decisions older than an experiment's ``retention.days`` are deleted, with their rewards.

Only decisions that a published model has learned and whose late-reward horizon
has passed go, so the newest snapshot plus what is kept is still everything the
model is; a model rebuilt later (new settings) learns from what is kept. A
purge of one experiment (``silent purge``) follows the same rule. Decisions in the
Parquet archive go too: by whole days with retention, row by row with a purge.
"""
from __future__ import annotations

import pyarrow.compute as pc

DAY = 86400.0
# Rewards for a decision are accepted (as late, not learned) for this long after its window closes;
# retention never deletes a decision before then, so a late reward still finds its decision.
LATE_REWARD_SECONDS = DAY
RETENTION_EVERY_SECONDS = 3600.0


def purge(store, key: str, before: float, now: float, reason: str = "purge", archive=None) -> dict:
    """Delete one experiment's learned and settled decisions made before ``before``; return the counts.

    The answer also says how many decisions from before ``before`` were kept
    (not learned yet, or within the late-reward horizon). With an ``archive``, its
    files are rewritten without those rows too (archived rows are learned ones).
    """
    store.existing_experiment(key)
    model = store.latest_model(key, with_blob=False)
    learned_through = model["cursor_seq"] if model else 0
    settled = now - LATE_REWARD_SECONDS
    counts = store.purge_log(key, before, learned_through, settled, reason, now)
    if archive is not None:
        counts["archived"] = archive.delete_rows(key, ["created_at", "window_closes_at"], lambda table: pc.and_(
            pc.less(table["created_at"], before), pc.less(table["window_closes_at"], settled)))
    return {"experiment": key, "before": before, **counts}


def apply_retention(store, now: float) -> dict[str, dict]:
    """Apply ``retention.days`` of every experiment that sets it; return the counts where something went.

    The live store only: the learner expires archived decisions by whole days
    (``Archive.expire`` with the experiment's ``retention.days``).
    """
    done = {}
    for row in store.list_experiments():
        days = row["spec"].get("retention", {}).get("days")
        if days is None:
            continue
        counts = purge(store, row["key"], now - days * DAY, now, reason=f"retention {days} days")
        if counts["decisions"]:
            done[row["key"]] = counts
    return done
