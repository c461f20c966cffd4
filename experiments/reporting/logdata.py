"""Read one experiment's decision and reward log as numpy arrays.

Reports run over millions of decisions, so nothing here makes a Python object
per decision: SQLite concatenates each decision's numbers into one text that
numpy parses in C, rewards (sparse) come back as rows, and only a bounded,
deterministic sample of decisions is read row by row (for off-policy estimates,
which need each decision's context and candidates).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from experiments.store import loads

VARIANTS = ("bandit", "holdout", "fallback")
VARIANT_CODE = "CASE {} WHEN 'bandit' THEN 0 WHEN 'holdout' THEN 1 ELSE 2 END"
SAMPLE_MULTIPLIER = 2654435761  # Knuth: seq * M mod 2^32 spreads seqs evenly (exact while seq < 3.4e9)
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
class DecisionRows:
    """One entry per decision, in log order: seq, time bucket, variant code, first-slot item, slate length, model."""

    seq: np.ndarray
    bucket: np.ndarray
    variant: np.ndarray
    item: np.ndarray  # codes into ``items``
    slots: np.ndarray
    model_version: np.ndarray
    items: list[str]
    first_created: float | None = None
    last_created: float | None = None

    @property
    def size(self) -> int:
        return int(self.seq.size)


@dataclass
class RewardRows:
    """Every reward of the window's decisions in arrival order; ``slot`` is -1 when not attributed.

    ``position`` is the index of the reward's decision in the ``DecisionRows``.
    """

    seq: np.ndarray
    position: np.ndarray
    slot: np.ndarray
    value: np.ndarray
    type: np.ndarray  # codes into ``types``
    late: np.ndarray
    duplicates: np.ndarray
    types: list[str]

    @property
    def size(self) -> int:
        return int(self.seq.size)


@dataclass
class RewardedDecisions:
    """Decisions with at least one on-time reward: their reward summed over slots, and slot 0's reward."""

    seq: np.ndarray
    variant: np.ndarray
    bucket: np.ndarray
    slots: np.ndarray
    total: np.ndarray
    first_slot: np.ndarray


CHUNK_SEQS = 1_000_000  # decisions per query at most (seq span), so one text stays well under SQLite's limit
ITEM_SEPARATOR = "\x1f"
_ROWS_SQL = (
    "SELECT group_concat(seq || ',' || CAST(created_at / ? AS INTEGER) || ',' || {variant} || ',' || {length}"
    " || ',' || coalesce(model_version, 0), ','), group_concat({item}, char(31)), count(*)"
    " FROM decisions WHERE experiment = ? AND created_at >= ? AND created_at < ? AND seq BETWEEN ? AND ?"
)
_PLAIN_ITEM = "coalesce(json_extract(slate, '$[0].id'), '')"
_SAFE_ITEM = "coalesce(replace(json_extract(slate, '$[0].id'), char(31), ' '), '')"


def decision_rows(store, window: Window, slate_lengths: bool = True) -> DecisionRows:
    """Read every decision of the window as arrays, a span of ``CHUNK_SEQS`` sequence numbers at a time.

    Slate lengths cost a second JSON read per decision; without ``slate_lengths`` they are all 1.
    """
    low, high, first, last = store.conn.execute(
        "SELECT min(seq), max(seq), min(created_at), max(created_at) FROM decisions"
        " WHERE experiment = ? AND created_at >= ? AND created_at < ?", window.params()).fetchone()
    numbers, items = [], []
    for start in range(low or 0, (high or -1) + 1, CHUNK_SEQS):
        chunk = _chunk(store, window, start, min(high, start + CHUNK_SEQS - 1), slate_lengths)
        if chunk:
            numbers.append(chunk[0])
            items.extend(chunk[1])
    values = np.concatenate(numbers).reshape(-1, 5) if numbers else np.zeros((0, 5), dtype=np.int64)
    order = np.argsort(values[:, 0], kind="stable")
    values = values[order]
    lookup = {item: code for code, item in enumerate(dict.fromkeys(items))}
    codes = np.fromiter(map(lookup.__getitem__, items), dtype=np.int64, count=len(items))[order]
    return DecisionRows(values[:, 0], values[:, 1], values[:, 2], codes, values[:, 3], values[:, 4], list(lookup),
                        first, last)


def _chunk(store, window: Window, low: int, high: int, slate_lengths: bool):
    """Return (numbers, first-slot ids) of decisions with seq in [low, high], or None when there are none."""
    length = "json_array_length(slate)" if slate_lengths else "1"
    for item in (_PLAIN_ITEM, _SAFE_ITEM):  # the safe form only when an id holds the separator
        sql = _ROWS_SQL.format(variant=VARIANT_CODE.format("variant"), length=length, item=item)
        text, ids, count = store.conn.execute(sql, (window.width, *window.params(), low, high)).fetchone()
        if not count:
            return None
        ids = ids.split(ITEM_SEPARATOR)
        if len(ids) == count:
            return np.fromstring(text, dtype=np.int64, sep=","), ids
    raise RuntimeError("decisions: first-slot ids and numbers do not line up")


def unit_counts(store, window: Window) -> dict[str, int]:
    """Count distinct units per variant (read from the covering index of migration m005)."""
    rows = store.conn.execute(
        "SELECT variant, count(DISTINCT unit) FROM decisions"
        " WHERE experiment = ? AND created_at >= ? AND created_at < ? GROUP BY variant",
        window.params(),
    ).fetchall()
    return dict(rows)


def reward_rows(store, window: Window, decisions: DecisionRows) -> RewardRows:
    """Return the rewards of the window's decisions in the order they arrived."""
    rows = store.conn.execute(
        "SELECT decision_seq, coalesce(slot, -1), value, type, late, duplicates FROM rewards"
        " WHERE experiment = ? AND decision_seq BETWEEN ? AND ? ORDER BY received_at, id",
        (window.key, int(decisions.seq[0]) if decisions.size else 0, int(decisions.seq[-1]) if decisions.size else -1),
    ).fetchall()
    if not rows:
        ints = np.zeros(0, dtype=np.int64)
        return RewardRows(ints, ints, ints, np.zeros(0), ints, ints, ints, [])
    seq, slot, value, kind, late, duplicates = zip(*rows)
    seq = np.array(seq, dtype=np.int64)
    position = np.minimum(np.searchsorted(decisions.seq, seq), decisions.size - 1)
    mine = decisions.seq[position] == seq  # the decision is in the window (its time range)
    types, codes = np.unique(np.array(kind, dtype=object)[mine].astype(str), return_inverse=True)
    as_int = lambda column: np.array(column, dtype=np.int64)[mine]  # noqa: E731
    return RewardRows(seq[mine], position[mine], as_int(slot), np.array(value, dtype=float)[mine], codes.ravel(),
                      as_int(late), as_int(duplicates), types.tolist())


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


def rewarded_decisions(rows: RewardRows, decisions: DecisionRows, aggregation: str,
                       default: float) -> RewardedDecisions:
    """Sum each rewarded decision's per-slot rewards (on time only), a slot without any counting ``default``.

    Late rewards and rewards not attributed to a slot are not in the value, as
    in learning; a decision whose only rewards are late is not rewarded.
    """
    on_time = rows.late == 0
    seq, first = np.unique(rows.seq[on_time], return_index=True)
    at = rows.position[on_time][first]
    variant, bucket, slots = decisions.variant[at], decisions.bucket[at], decisions.slots[at]
    attributed = on_time & (rows.slot >= 0)
    pair_seq, pair_slot, combined = aggregate_slots(rows.seq[attributed], rows.slot[attributed],
                                                    rows.value[attributed], aggregation)
    position = np.searchsorted(seq, pair_seq)
    total = default * slots.astype(float)
    np.add.at(total, position, combined - default)
    first_slot = np.full(seq.size, float(default))
    first_slot[position[pair_slot == 0]] = combined[pair_slot == 0]
    return RewardedDecisions(seq, variant, bucket, slots, total, first_slot)


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
