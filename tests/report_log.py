"""A seeded synthetic decision and reward log written straight into a store, for report comparisons.

Three days of decisions (bandit, holdout and fallback; 1- or 2-slot slates; a few
units seen many times), rewards of three types, some late, some duplicated, some not
attributed to a slot, and one trained model, so every figure of the report has data.
"""
from __future__ import annotations

import numpy as np

from bandit.encoding import action_text, context_text
from bandit.policy import Policy
from experiments.clock import VirtualClock
from experiments.service import Service
from experiments.spec import parse_spec
from experiments.store import dumps

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
CANDIDATES = [{"id": f"sku-{i}", "features": {"category": f"c{i % 3}", "price": float(10 + i)}} for i in range(6)]
TYPES = [("click", 1.0), ("add_to_cart", 3.0), ("purchase", 10.0)]
WAIT = 600.0


def create(store, key: str, slots: int = 2, default: float = 0.0, aggregation: str = "sum", **spec) -> None:
    Service(store, VirtualClock(T0)).create_experiment({
        "key": key, "status": "running", "slots": slots, "exploration": {"algorithm": "epsilon", "epsilon": 0.2},
        "reward": {"wait_seconds": WAIT, "default": default, "aggregation": aggregation,
                   "events": dict(TYPES)}, "traffic": {"holdout": 0.2},
        "learning": {"scaling": {"default": "raw"}}, **spec})  # the golden reports' models saw raw numbers


def decisions(n: int, slots: int, seed: int, days: float = 3.0, first_seq: int = 1) -> list[tuple]:
    """Decision rows (seq, variant, unit, seconds after T0, slate [(index, probability)], segment)."""
    rng = np.random.default_rng(seed)
    times = np.sort(rng.uniform(0, days * 86400, n))
    out = []
    for i in range(n):
        variant = rng.choice(["bandit", "holdout", "fallback"], p=[0.75, 0.2, 0.05])
        picks = rng.permutation(len(CANDIDATES))[:int(rng.integers(1, slots + 1))]
        slate = [(int(j), float(rng.choice([0.1, 0.2, 0.8])) if k == 0 else 1 / (len(CANDIDATES) - k))
                 for k, j in enumerate(picks)]
        out.append((first_seq + i, str(variant), f"u{int(rng.integers(0, n // 3 + 1))}", float(times[i]), slate,
                    ["new", "returning"][int(rng.integers(0, 2))]))
    return out


def rewards(rows: list[tuple], seed: int) -> list[tuple]:
    """Reward rows (seq, type, slot, value, seconds after T0, late, duplicates) for about a third of decisions."""
    rng = np.random.default_rng(seed + 1)
    out = []
    for seq, _, _, at, slate, _ in rows:
        if rng.random() > 0.35:
            continue
        for depth in range(int(rng.integers(1, 4))):
            kind, value = TYPES[depth]
            late = bool(rng.random() < 0.1)
            slot = None if rng.random() < 0.05 else int(rng.integers(0, len(slate)))
            out.append((seq, kind, slot, value * float(rng.choice([1.0, 0.5])), at + (WAIT + 50 if late else 5 + depth),
                        int(late), int(rng.random() < 0.05)))
    return out


def write(store, key: str, rows: list[tuple], reward_rows: list[tuple]) -> None:
    """Insert decisions and rewards as the service would have logged them."""
    digest = store.candidate_set(CANDIDATES)
    for table, times in (("decisions", [at for _, _, _, at, _, _ in rows]), ("rewards", [r[4] for r in reward_rows])):
        for day in sorted({int((T0 + at) // 86400) for at in times}):  # PostgreSQL: the days' partitions
            getattr(store, "ensure_partition", lambda *_: None)(table, day * 86400.0)
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO decisions (seq, event_id, experiment, unit, variant, model_version, spec_version, context,"
            " candidate_set, excluded, slate, created_at, window_closes_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [(seq, f"{key}-{seq}", key, unit, variant, seq // 50, 1, dumps({"user": {"segment": segment}}), digest,
              "[]", dumps([{"slot": k, "id": CANDIDATES[i]["id"], "index": i, "probability": p}
                           for k, (i, p) in enumerate(slate)]), T0 + at, T0 + at + WAIT)
             for seq, variant, unit, at, slate, segment in rows])
        if getattr(store, "engine", "sqlite") == "postgresql":  # its unique event ids live in a table of their own
            conn.executemany("INSERT INTO event_ids (event_id, created_at) VALUES (?, ?)",
                             [(f"{key}-{seq}", T0 + at) for seq, _, _, at, _, _ in rows])
        conn.executemany(
            "INSERT INTO rewards (event_id, experiment, decision_seq, reward_key, type, item, slot, value,"
            " received_at, late, duplicates) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [(f"{key}-{seq}", key, seq, f"r{n}", kind, None, slot, value, T0 + at, late, dup)
             for n, (seq, kind, slot, value, at, late, dup) in enumerate(reward_rows)])


def train(store, key: str, rows: list[tuple], count: int = 300) -> None:
    """Publish one model learned from the first ``count`` decisions (seeded VW: the same bytes every run)."""
    settings = parse_spec(store.get_experiment(key)["spec"]).policy_settings()
    policy = Policy(settings)
    actions = [action_text(c) for c in CANDIDATES]
    for seq, _, _, _, slate, segment in rows[:count]:
        chosen = [(i, p) for i, p in slate][:settings.slots]
        policy.learn(context_text({"user": {"segment": segment}}), actions, chosen,
                     [float(seq % 5 == 0)] * len(chosen))
    store.publish_model({"experiment": key, "version": 1, "args": settings.args(), "spec_version": 1,
                        "cursor_seq": store.position_of(rows[-1][0]), "learned": count, "created_at": T0 + 3600,
                        "model": policy.save()})
    policy.close()


def build(store, key: str, n: int = 3000, slots: int = 2, seed: int = 0, model: bool = True) -> list[tuple]:
    """Write a whole synthetic log of ``n`` decisions; return its decision rows."""
    rows = decisions(n, slots, seed)
    write(store, key, rows, rewards(rows, seed))
    if model:
        train(store, key, rows)
    return rows
