"""Export an experiment's decision log: CSV for spreadsheets, DSJSON for Vowpal Wabbit's own tools, Parquet.

Archived decisions come from the archive, the rest from the live store; each
decision is exported once.

``parquet``: one file with the archive's columns (``docs/reports.md``) plus
``experiment`` and ``late_rewards``, readable by DuckDB, pandas or Spark alone.

``csv``: one row per decision joined with its rewards: the slate, its logged
probabilities, the per-slot reward the learner used (on-time rewards combined
with ``reward.aggregation``, ``reward.default`` for a slot without any), the
total, on-time reward counts per type, and late and unattributed counts.

``dsjson``: the Decision Service JSON log format, one decision per line, read by
``vw --dsjson --cb_explore_adf`` (one-slot experiments) or ``vw --dsjson
--ccb_explore_adf`` (slates). Context namespaces and candidate features carry
exactly the features the service learns with, numeric ones scaled as
``learning.scaling`` says (``segment=new``, ``price:49.0`` becomes
``{"segment=new": 1, "price": 3.912}`` with log scaling), so ``-q UA`` means the
same thing; standardised features use the newest model's observed statistics. The cost is minus the reward. The log keeps only the
chosen action's probability, so ``a`` / ``p`` (``_a`` / ``_p``) list the chosen
action alone.
"""
from __future__ import annotations

import csv
from collections import Counter, defaultdict
from typing import Callable, TextIO

import pyarrow as pa
import pyarrow.parquet as pq

from bandit.encoding import action_text, context_text
from bandit.scaling import Scaler, Statistics
from experiments import models
from experiments.errors import InvalidField
from experiments.labels import slot_rewards
from experiments.reporting.analytics import ArchivedRows
from experiments.reporting.archive import REWARD_TYPE, SCHEMA, joined_table
from experiments.reporting.reports import parse_window
from experiments.times import iso
from experiments.spec import parse_spec
from experiments.store import dumps, loads

FORMATS = ("csv", "dsjson", "parquet")
CHUNK = 5000
CSV_COLUMNS = ["seq", "event_id", "created_at", "unit", "variant", "model_version", "spec_version", "candidates",
               "slate", "probabilities", "slot_rewards", "reward", "rewarded", "reward_types", "late_rewards",
               "unattributed_rewards", "context"]
# The archive's columns, plus the experiment and the late rewards (which stay in the live store).
EXPORT_SCHEMA = pa.schema([pa.field("experiment", pa.string()), *SCHEMA, pa.field("late_rewards", REWARD_TYPE)])


def export(store, key: str, fmt: str, out, start=None, end=None,
           progress: Callable[[int, int], None] | None = None, archive=None) -> int:
    """Write the decisions created in [start, end) to ``out``; return how many were written.

    ``out`` is a text file for csv and dsjson, a binary file for parquet. Archived
    decisions come from ``archive`` (``experiments.reporting.archive.Archive``), the
    rest from the live store.
    """
    if fmt not in FORMATS:
        raise InvalidField("format", f"must be one of {', '.join(FORMATS)}")
    window = parse_window(key, start, end)
    experiment = store.existing_experiment(key)
    spec = parse_spec(experiment["spec"], check_vw=False)
    log = ArchivedRows(store, window, archive)
    total = log.count() + store.count_decisions_after(key, window.start, window.end, log.position)
    write, close = _writer(fmt, out, spec, _scaler(store, spec))
    written = 0
    try:
        for table in _tables(store, log, spec.reward):
            write(table)
            written += table.num_rows
            if progress:
                progress(written, total)
    finally:
        close()
        log.close()
    return written


def _writer(fmt: str, out, spec, scaler: Scaler):
    """Return (write an EXPORT_SCHEMA table, finish) for a format."""
    if fmt == "parquet":
        writer = pq.ParquetWriter(out, EXPORT_SCHEMA, compression="zstd")
        return writer.write_table, writer.close
    write_one = _csv_writer(out) if fmt == "csv" else _dsjson_writer(out, spec.slots > 1, scaler)

    def write(table: pa.Table) -> None:
        for row in table.to_pylist():
            write_one(_joined(row, spec.reward))
    return write, lambda: None


def _tables(store, log: "ArchivedRows", reward_spec: dict):
    """Yield the window's decisions as EXPORT_SCHEMA tables: archived ones first, then the live ones, in log order."""
    w = log.window
    late: dict[int, list[dict]] = defaultdict(list)
    for reward in store.late_rewards_of_archived(w.key, w.start, w.end, log.position):
        late[reward["decision_seq"]].append(reward)
    for batch in log.batches(CHUNK):
        seqs = batch.column("seq").to_pylist()
        yield _with_extras(batch, w.key, [late.get(seq, []) for seq in seqs])
    after = 0
    while rows := store.export_chunk(w.key, w.start, w.end, log.position, after, CHUNK):
        on_time, late = defaultdict(list), defaultdict(list)
        for reward in store.export_rewards(w.key, rows[0]["seq"], rows[-1]["seq"]):
            (late if reward["late"] else on_time)[reward["decision_seq"]].append(reward)
        candidates = store.candidate_texts(row["candidate_set"] for row in rows)
        table = joined_table(rows, on_time, candidates, reward_spec)
        yield _with_extras(table, w.key, [late.get(row["seq"], []) for row in rows])
        after = rows[-1]["seq"]


def _with_extras(table: pa.Table, key: str, late: list[list[dict]]) -> pa.Table:
    late = [[{k: r[k] for k in ("type", "item", "slot", "value", "received_at", "duplicates")} for r in rs]
            for rs in late]
    table = table.add_column(0, "experiment", pa.array([key] * table.num_rows, pa.string()))
    return table.append_column("late_rewards", pa.array(late, REWARD_TYPE)).cast(EXPORT_SCHEMA)


def _joined(row: dict, reward_spec: dict) -> dict:
    """One exported decision as the csv and dsjson writers read it, its rewards combined by today's rules."""
    on_time, late = row["rewards"], row["late_rewards"]
    slate = row["slate"]
    values = slot_rewards([(r["slot"], r["value"]) for r in on_time], len(slate), reward_spec["aggregation"],
                          reward_spec["default"])
    return {**row, "context": loads(row["context"]), "candidates": loads(row["candidates"]),
            "slot_rewards": values, "reward_types": dict(Counter(r["type"] for r in on_time)),
            "late_rewards": len(late), "unattributed_rewards": sum(1 for r in on_time + late if r["slot"] is None)}


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


def _scaler(store, spec) -> Scaler:
    """Scale as the experiment's newest model does (its statistics, when it was made with these settings)."""
    settings = spec.policy_settings()
    row = store.latest_model(spec.key, with_blob=False)
    statistics = models.statistics(row) if models.matches(row, settings) else None
    return Scaler(settings.scaling, Statistics.from_dict(statistics) if statistics else None)


def _dsjson_writer(out: TextIO, slates: bool, scaler: Scaler):
    actions: dict[str, list[dict]] = {}  # by candidate set: most decisions share a few

    def write(d: dict) -> None:
        context = vw_namespaces(scaler.text(context_text(d["context"])))
        multi = actions.get(d["candidate_set"])
        if multi is None:
            if len(actions) > 1000:
                actions.clear()
            lines = scaler.texts([action_text(c) for c in d["candidates"]])
            multi = actions[d["candidate_set"]] = [vw_namespaces(line) for line in lines]
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
