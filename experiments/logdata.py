"""Read one experiment's decision and reward log as grouped counts and numpy arrays.

Reports run over millions of decisions, so nothing here loops over decisions in
Python: SQLite groups the decisions (per time bucket, variant, first-slot item,
slate length and model version), rewards are sparse and come back as arrays,
and only a bounded, deterministic sample of decisions is read row by row (for
off-policy estimates, which need each decision's context and candidates).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from experiments.store import loads

VARIANTS = ("bandit", "holdout", "fallback")
VARIANT_CODE = "CASE {} WHEN 'bandit' THEN 0 WHEN 'holdout' THEN 1 ELSE 2 END"
SAMPLE_MULTIPLIER = 2654435761  # Knuth's multiplicative hash: seq * M mod 2^32 spreads seqs evenly
SAMPLE_MODULUS = 2**32


@dataclass(frozen=True)
class Window:
    """Which decisions a report reads: one experiment, created in [start, end), bucketed by ``width`` seconds."""

    key: str
    start: float
    end: float
    width: int

    def params(self) -> tuple:
        return self.key, self.start, self.end


@dataclass
class DecisionGroups:
    """Decision counts per (bucket, variant, first-slot item, slate length, model version)."""

    bucket: np.ndarray
    variant: np.ndarray
    item: np.ndarray  # codes into ``items``
    slots: np.ndarray
    model_version: np.ndarray
    count: np.ndarray
    items: list[str]


@dataclass
class RewardRows:
    """Every reward of the window's decisions, oldest first; ``slot`` is -1 when not attributed."""

    seq: np.ndarray
    slot: np.ndarray
    value: np.ndarray
    type: np.ndarray  # codes into ``types``
    late: np.ndarray
    duplicates: np.ndarray
    variant: np.ndarray
    created_at: np.ndarray
    slots: np.ndarray
    types: list[str]


@dataclass
class RewardedDecisions:
    """Decisions with at least one on-time reward, with their reward summed over slots and slot 0's."""

    seq: np.ndarray
    variant: np.ndarray
    created_at: np.ndarray
    slots: np.ndarray
    total: np.ndarray
    first_slot: np.ndarray


def decision_groups(store, window: Window) -> DecisionGroups:
    """Count decisions per bucket, variant, first-slot item, slate length and model version."""
    rows = store.conn.execute(
        f"SELECT CAST(created_at / ? AS INTEGER), {VARIANT_CODE.format('variant')},"
        " json_extract(slate, '$[0].id'), json_array_length(slate), model_version, count(*)"
        " FROM decisions WHERE experiment = ? AND created_at >= ? AND created_at < ?"
        " GROUP BY 1, 2, 3, 4, 5",
        (window.width, *window.params()),
    ).fetchall()
    if not rows:
        empty = np.zeros(0, dtype=np.int64)
        return DecisionGroups(empty, empty, empty, empty, empty, empty, [])
    bucket, variant, item, slots, version, count = zip(*rows)
    items, codes = np.unique(np.array(item, dtype=object).astype(str), return_inverse=True)
    return DecisionGroups(np.array(bucket, dtype=np.int64), np.array(variant, dtype=np.int64), codes,
                          np.array(slots, dtype=np.int64), np.array(version, dtype=np.int64),
                          np.array(count, dtype=np.int64), items.tolist())


def unit_counts(store, window: Window) -> dict[str, int]:
    """Count distinct units per variant (read from the covering index of migration m005)."""
    rows = store.conn.execute(
        "SELECT variant, count(DISTINCT unit) FROM decisions"
        " WHERE experiment = ? AND created_at >= ? AND created_at < ? GROUP BY variant",
        window.params(),
    ).fetchall()
    return dict(rows)


def reward_rows(store, window: Window) -> RewardRows:
    """Return the rewards of the window's decisions in the order they arrived."""
    rows = store.conn.execute(
        f"SELECT r.decision_seq, coalesce(r.slot, -1), r.value, r.type, r.late, r.duplicates,"
        f" {VARIANT_CODE.format('d.variant')}, d.created_at, json_array_length(d.slate)"
        " FROM rewards r JOIN decisions d ON d.seq = r.decision_seq"
        " WHERE r.experiment = ? AND d.created_at >= ? AND d.created_at < ? ORDER BY r.received_at, r.id",
        window.params(),
    ).fetchall()
    if not rows:
        ints, floats = np.zeros(0, dtype=np.int64), np.zeros(0)
        return RewardRows(ints, ints, floats, ints, ints, ints, ints, floats, ints, [])
    seq, slot, value, kind, late, duplicates, variant, created_at, slots = zip(*rows)
    types, codes = np.unique(np.array(kind, dtype=object).astype(str), return_inverse=True)
    as_int = lambda column: np.array(column, dtype=np.int64)  # noqa: E731
    return RewardRows(as_int(seq), as_int(slot), np.array(value, dtype=float), codes, as_int(late),
                      as_int(duplicates), as_int(variant), np.array(created_at, dtype=float), as_int(slots),
                      types.tolist())


def aggregate_slots(seq, slot, value, aggregation: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Combine (decision, slot) reward values like ``experiments.learner.slot_rewards``, vectorised.

    Rows must be in arrival order (``first`` keeps the earliest). Returns the
    decision seq, slot and combined value of each (decision, slot) pair.

    >>> aggregate_slots([7, 7, 7, 9], [0, 0, 1, 0], [1.0, 3.0, 2.0, 5.0], "sum")
    (array([7, 7, 9]), array([0, 1, 0]), array([4., 2., 5.]))
    """
    seq, slot, value = np.asarray(seq, dtype=np.int64), np.asarray(slot, dtype=np.int64), np.asarray(value, float)
    if seq.size == 0:
        return seq, slot, value
    span = int(slot.max()) + 1
    key = seq * span + slot
    order = np.argsort(key, kind="stable")
    key, value = key[order], value[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    if aggregation == "sum":
        combined = np.add.reduceat(value, starts)
    elif aggregation == "max":
        combined = np.maximum.reduceat(value, starts)
    elif aggregation == "first":
        combined = value[starts]
    else:
        raise ValueError(f"aggregation: must be sum, first or max, not {aggregation!r}")
    return key[starts] // span, key[starts] % span, combined


def rewarded_decisions(rows: RewardRows, aggregation: str, default: float) -> RewardedDecisions:
    """Sum each rewarded decision's per-slot rewards (on time only), a slot without any counting ``default``.

    Late rewards and rewards not attributed to a slot are not in the value, as
    in learning; a decision whose only rewards are late is not rewarded.
    """
    on_time = rows.late == 0
    seq, first = np.unique(rows.seq[on_time], return_index=True)
    variant, created_at, slots = (a[on_time][first] for a in (rows.variant, rows.created_at, rows.slots))
    attributed = on_time & (rows.slot >= 0)
    pair_seq, pair_slot, combined = aggregate_slots(rows.seq[attributed], rows.slot[attributed],
                                                    rows.value[attributed], aggregation)
    position = np.searchsorted(seq, pair_seq)
    total = default * slots.astype(float)
    np.add.at(total, position, combined - default)
    first_slot = np.full(seq.size, float(default))
    first_slot[position[pair_slot == 0]] = combined[pair_slot == 0]
    return RewardedDecisions(seq, variant, created_at, slots, total, first_slot)


def sample_decisions(store, window: Window, fraction: float) -> list[dict]:
    """Return about ``fraction`` of the window's decisions, the same ones every time (hash of seq).

    Each row has seq, variant, context, candidate_set, candidates (ids and features), slate.
    """
    threshold = int(min(1.0, max(0.0, fraction)) * SAMPLE_MODULUS)
    rows = store.query(
        "SELECT seq, variant, context, candidate_set, slate FROM decisions"
        " WHERE experiment = ? AND created_at >= ? AND created_at < ? AND (seq * ?) % ? < ? ORDER BY seq",
        (*window.params(), SAMPLE_MULTIPLIER, SAMPLE_MODULUS, threshold),
    )
    for row in rows:
        row["context"], row["slate"] = loads(row["context"]), loads(row["slate"])
        row["candidates"] = store.candidates(row["candidate_set"])
    return rows
