"""Export an experiment's decision log: CSV for spreadsheets, DSJSON for Vowpal Wabbit's own tools.

``csv``: one row per decision joined with its rewards: the slate, its logged
probabilities, the per-slot reward the learner used (on-time rewards combined
with ``reward.aggregation``, ``reward.default`` for a slot without any), the
total, on-time reward counts per type, and late and unattributed counts.

``dsjson``: the Decision Service JSON log format, one decision per line, read by
``vw --dsjson --cb_explore_adf`` (one-slot experiments) or ``vw --dsjson
--ccb_explore_adf`` (slates). Context namespaces and candidate features carry
exactly the feature names the service learns with (``segment=new``,
``price:49.0`` becomes ``{"segment=new": 1, "price": 49.0}``), so ``-q UA``
means the same thing. The cost is minus the reward. The log keeps only the
chosen action's probability, so ``a`` / ``p`` (``_a`` / ``_p``) list the chosen
action alone.
"""
from __future__ import annotations

import csv
from collections import Counter, defaultdict
from typing import Callable, TextIO

from bandit.encoding import action_text, context_text
from experiments.errors import InvalidField
from experiments.learner import slot_rewards
from experiments.reporting.reports import parse_window
from experiments.service import iso
from experiments.spec import parse_spec
from experiments.store import dumps, loads

FORMATS = ("csv", "dsjson")
CHUNK = 5000
CSV_COLUMNS = ["seq", "event_id", "created_at", "unit", "variant", "model_version", "spec_version", "candidates",
               "slate", "probabilities", "slot_rewards", "reward", "rewarded", "reward_types", "late_rewards",
               "unattributed_rewards", "context"]


def export(store, key: str, fmt: str, out: TextIO, start=None, end=None,
           progress: Callable[[int, int], None] | None = None) -> int:
    """Write the decisions created in [start, end) to ``out``; return how many were written."""
    if fmt not in FORMATS:
        raise InvalidField("format", f"must be one of {', '.join(FORMATS)}")
    window = parse_window(key, start, end)
    experiment = store.existing_experiment(key)
    spec = parse_spec(experiment["spec"], check_vw=False)
    total = store.conn.execute("SELECT count(*) FROM decisions WHERE experiment = ? AND created_at >= ?"
                               " AND created_at < ?", window.params()).fetchone()[0]
    write = _csv_writer(out) if fmt == "csv" else _dsjson_writer(out, spec.slots > 1)
    written = 0
    for rows, rewards in _chunks(store, window):
        for row in rows:
            write(_joined(store, row, rewards.get(row["seq"], []), spec.reward))
        written += len(rows)
        if progress:
            progress(written, total)
    return written


def _chunks(store, window):
    """Yield decisions in log order, CHUNK at a time, with all their rewards by seq."""
    after = 0
    while True:
        rows = store.query(
            "SELECT * FROM decisions WHERE experiment = ? AND created_at >= ? AND created_at < ? AND seq > ?"
            " ORDER BY seq LIMIT ?", (*window.params(), after, CHUNK))
        if not rows:
            return
        rewards = defaultdict(list)
        for reward in store.query(
                "SELECT decision_seq, type, slot, value, late FROM rewards WHERE experiment = ?"
                " AND decision_seq BETWEEN ? AND ? ORDER BY received_at, id",
                (window.key, rows[0]["seq"], rows[-1]["seq"])):
            rewards[reward["decision_seq"]].append(reward)
        yield rows, rewards
        after = rows[-1]["seq"]


def _joined(store, row: dict, rewards: list[dict], reward_spec: dict) -> dict:
    """One decision with its slate, candidates and the rewards the learner would use."""
    slate = loads(row["slate"])
    on_time = [r for r in rewards if not r["late"]]
    values = slot_rewards([(r["slot"], r["value"]) for r in on_time], len(slate), reward_spec["aggregation"],
                          reward_spec["default"])
    return {**row, "slate": slate, "context": loads(row["context"]),
            "candidates": store.candidates(row["candidate_set"]),
            "slot_rewards": values, "reward_types": dict(Counter(r["type"] for r in on_time)),
            "late_rewards": sum(1 for r in rewards if r["late"]),
            "unattributed_rewards": sum(1 for r in rewards if r["slot"] is None)}


# -- csv ---------------------------------------------------------------------------------------
def _csv_writer(out: TextIO):
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)

    def write(d: dict) -> None:
        writer.writerow([
            d["seq"], d["event_id"], iso(d["created_at"]), d["unit"], d["variant"], d["model_version"],
            d["spec_version"], len(d["candidates"]), dumps([s["id"] for s in d["slate"]]),
            dumps([s["probability"] for s in d["slate"]]), dumps(d["slot_rewards"]), sum(d["slot_rewards"]),
            int(bool(d["reward_types"])), dumps(d["reward_types"]), d["late_rewards"], d["unattributed_rewards"],
            dumps(d["context"]),
        ])
    return write


# -- dsjson ------------------------------------------------------------------------------------
def vw_namespaces(text: str) -> dict:
    """Turn VW text namespaces into VW JSON objects with the same feature names.

    >>> vw_namespaces("|User segment=new age:30.0 |Action id=sku-1")
    {'User': {'segment=new': 1, 'age': 30.0}, 'Action': {'id=sku-1': 1}}
    """
    out: dict[str, dict] = {}
    for part in text.split("|")[1:]:
        name, *tokens = part.split()
        features = out.setdefault(name, {})
        for token in tokens:
            feature, colon, value = token.partition(":")
            features[feature if colon else token] = float(value) if colon else 1
    return out


def _cost(reward: float) -> float:
    """VW minimises cost: cost is minus the reward (and 0.0, not -0.0)."""
    return -float(reward) if reward else 0.0


def _dsjson_writer(out: TextIO, slates: bool):
    actions: dict[str, list[dict]] = {}  # by candidate set: most decisions share a few

    def write(d: dict) -> None:
        context = vw_namespaces(context_text(d["context"]))
        multi = actions.get(d["candidate_set"])
        if multi is None:
            if len(actions) > 1000:
                actions.clear()
            multi = actions[d["candidate_set"]] = [vw_namespaces(action_text(c)) for c in d["candidates"]]
        context["_multi"] = multi
        line = {"EventId": d["event_id"], "Timestamp": iso(d["created_at"]), "Version": str(d["model_version"])}
        if slates:
            context["_slots"] = [{"_id": f"{d['event_id']}-{s['slot']}"} for s in d["slate"]]
            line["c"] = context
            line["_outcomes"] = [{"_id": f"{d['event_id']}-{s['slot']}", "_label_cost": _cost(value),
                                  "_a": [s["index"]], "_p": [s["probability"]]}
                                 for s, value in zip(d["slate"], d["slot_rewards"])]
        else:
            first = d["slate"][0]
            line = {"_label_cost": _cost(d["slot_rewards"][0]), "_label_probability": first["probability"],
                    "_label_Action": first["index"] + 1, "_labelIndex": first["index"], **line,
                    "a": [first["index"] + 1], "p": [first["probability"]], "c": context}
        out.write(dumps(line))
        out.write("\n")
    return write
