"""Time the experiment report over 1M, 10M and 100M decisions (archive + live store); print JSON.

Usage: python benchmarks/report.py [--decisions 1000000,10000000,100000000] [--live 100000]
       [--data /tmp/silent-report-bench] [--repeat 2] [--jobs 2]
(goals on 2 cores: 100,000,000 decisions in at most 10 s with at most 2 GB peak memory)

For each size, a week of traffic is generated once into ``--data`` and reused by
later runs: all but the newest ``--live`` decisions straight into Parquet files
of the archive (the files the learner writes: one per 200,000 decisions, split
at midnight; each file has its own slice of the week and its own seeded
generator, so ``--jobs`` processes write them side by side and an interrupted
build keeps its whole files), the newest ones with their rewards into the live SQLite store, plus one
model snapshot trained on the first live decisions so the learned policy's
off-policy estimate does real VW work. 10% holdout by the real assignment hash,
10 candidates from 40 candidate sets, 15% of decisions rewarded (clicks, add to
carts, purchases), some duplicates and unattributed rewards. Then each report
runs ``--repeat`` times in a fresh process, which prints its seconds and its peak
resident memory (``ru_maxrss``, imports included).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from bandit.encoding import context_text
from bandit.policy import Policy
from experiments.assignment import bucket
from experiments.clock import VirtualClock
from experiments.reporting import units
from experiments.reporting.archive import (COMPANIONS, DATASET, ROW_GROUP_ROWS, SCHEMA, Archive, companion, day_of,
                                          part_name, unit_key)
from experiments.service import Service
from experiments.spec import parse_spec
from experiments.store import Store, dumps

KEY = "bench-report"
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
WEEK = 7 * 86400.0
FILE_ROWS = 200_000  # the learner's ARCHIVE_BATCH_ROWS default
ITEMS_PER_SET, CANDIDATE_SETS, CATALOG = 10, 40, 200
SEGMENTS, COUNTRIES = ["new", "returning", "loyal", "vip"], ["DE", "FR", "US", "GB", "IT"]
DEVICES = ["mobile", "desktop"]
KINDS = [("click", 1.0), ("add_to_cart", 3.0), ("purchase", 10.0)]
# Repeated texts go in as dictionary columns, as Parquet stores them anyway: no 100 MB copy per file.
DICTIONARY = {"variant", "context", "candidate_set", "candidates", "excluded", "first_item", "learning_mode",
              "reward_aggregation"}
FILE_SCHEMA = pa.schema([pa.field(f.name, pa.dictionary(pa.int32(), pa.string())) if f.name in DICTIONARY else f
                         for f in SCHEMA])


class Shop:
    """The fixed parts of the synthetic shop: candidate sets, contexts, and every unit's key and variant."""

    def __init__(self, decisions: int, rng):
        self.sets = []
        for _ in range(CANDIDATE_SETS):
            ids = rng.choice(CATALOG, size=ITEMS_PER_SET, replace=False)
            self.sets.append([{"id": f"sku-{i}", "features": {"category": f"c{i % 7}", "price": float(5 + i % 50)}}
                              for i in ids])
        self.set_texts = pa.array([dumps(s) for s in self.sets])
        self.contexts = [{"user": {"segment": s, "country": c, "device": d}, "page": {"type": "home"}}
                         for s in SEGMENTS for c in COUNTRIES for d in DEVICES]
        self.context_texts = pa.array([dumps(c) for c in self.contexts])
        self.units = max(decisions // 10, 1)  # a unit comes back ten times a week on average
        names = [f"user-{u}" for u in range(self.units)]
        self.unit_keys = np.fromiter((unit_key(n) for n in tqdm(names, desc="unit keys", unit=" units",
                                                               mininterval=2)), np.int64, self.units)
        self.holdout = np.fromiter((bucket(KEY, n) < 0.1 for n in names), bool, self.units)

    def draw(self, n: int, rng) -> dict:
        """Per decision: unit, holdout flag, candidate set, context and the first-slot pick with its probability."""
        unit = rng.integers(0, self.units, n)
        holdout = self.holdout[unit]
        exploit = (rng.random(n) < 0.8) & ~holdout  # epsilon-greedy 0.2 around candidate 0; holdout uniform
        pick = np.where(exploit, 0, rng.integers(0, ITEMS_PER_SET, n))
        prob = np.where(holdout, 1 / ITEMS_PER_SET, np.where(pick == 0, 0.8 + 0.2 / ITEMS_PER_SET, 0.2 / ITEMS_PER_SET))
        return {"unit": unit, "holdout": holdout, "set": rng.integers(0, CANDIDATE_SETS, n),
                "context": rng.integers(0, len(self.contexts), n), "pick": pick, "prob": prob}


def reward_lists(n: int, rng) -> tuple[pa.Array, np.ndarray]:
    """On-time rewards per decision (15% rewarded, deeper funnels rarer) and each decision's summed reward."""
    rewarded = rng.random(n) < 0.15
    depth = np.where(rewarded, 1 + (rng.random(n) < 0.3) + (rng.random(n) < 0.1), 0).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(depth)])
    level = np.arange(offsets[-1]) - np.repeat(offsets[:-1], depth)
    values = np.array([v for _, v in KINDS])[level]
    slot = np.where(rng.random(level.size) < 0.01, -1, 0)
    rewards = pa.StructArray.from_arrays([
        pa.array(np.array([k for k, _ in KINDS])[level]), pa.nulls(level.size, pa.string()),
        pa.array(slot, pa.int32(), mask=slot < 0), pa.array(values), pa.array(np.zeros(level.size)),
        pa.array((rng.random(level.size) < 0.01).astype(np.int32))],
        names=["type", "item", "slot", "value", "received_at", "duplicates"])
    attributed = np.where(slot >= 0, values, 0.0)
    total = np.add.reduceat(np.concatenate([attributed, [0.0]]), offsets[:-1]) * (depth > 0)
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), rewards), total


def archive_table(shop: Shop, first_seq: int, seconds: np.ndarray, rng) -> pa.Table:
    """One archive file's rows, built column by column (no Python object per decision)."""
    n = seconds.size
    d = shop.draw(n, rng)
    seq = np.arange(first_seq, first_seq + n, dtype=np.int64)
    created = START + seconds
    item_ids = pa.array([c["id"] for s in shop.sets for c in s])
    first_item = pa.DictionaryArray.from_arrays(pa.array((d["set"] * ITEMS_PER_SET + d["pick"]).astype(np.int32)),
                                                item_ids)
    slate = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)), pa.StructArray.from_arrays(
        [pa.array(np.zeros(n, np.int32)), first_item.cast(pa.string()), pa.array(d["pick"].astype(np.int32)),
         pa.array(d["prob"])], names=["slot", "id", "index", "probability"]))
    rewards, total = reward_lists(n, rng)
    digests = pa.array([f"set-{i:02d}" for i in range(CANDIDATE_SETS)])

    def coded(codes, texts) -> pa.DictionaryArray:
        return pa.DictionaryArray.from_arrays(pa.array(np.asarray(codes, dtype=np.int32)), texts)

    constant = lambda value: coded(np.zeros(n), pa.array([value]))  # noqa: E731
    columns = {
        "seq": pa.array(seq), "event_id": pc.binary_join_element_wise("evt-", pc.cast(pa.array(seq), pa.string()), ""),
        "unit": pc.binary_join_element_wise("user-", pc.cast(pa.array(d["unit"]), pa.string()), ""),
        "unit_key": pa.array(shop.unit_keys[d["unit"]]),
        "variant": coded(d["holdout"], pa.array(["bandit", "holdout"])),
        "model_version": pa.array((seconds // 3600).astype(np.int64) + 1),
        "spec_version": pa.array(np.ones(n, np.int64)),
        "created_at": pa.array(created), "window_closes_at": pa.array(created + 600.0),
        "context": coded(d["context"], shop.context_texts), "candidate_set": coded(d["set"], digests),
        "candidates": coded(d["set"], shop.set_texts), "excluded": constant("[]"), "slate": slate,
        "slots": pa.array(np.ones(n, np.int32)), "first_item": first_item, "learning_mode": constant("online"),
        "defer_activation": pa.array(np.zeros(n, bool)), "activated_at": pa.nulls(n, pa.float64()),
        "model_slate": pa.nulls(n, pa.string()), "slot_context": pa.nulls(n, pa.string()), "rewards": rewards,
        "slot_rewards": pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)), pa.array(total)),
        "reward": pa.array(total), "rewarded": pa.array(pc.list_value_length(rewards).to_numpy() > 0),
        "reward_aggregation": constant("sum"), "reward_default": pa.array(np.zeros(n)),
    }
    return pa.table([columns[f.name].cast(f.type) for f in FILE_SCHEMA], schema=FILE_SCHEMA)


def file_plan(count: int) -> list[tuple[int, float, float, int]]:
    """Split the archived part of the week into files of ``FILE_ROWS`` decisions: (first seq, start and end
    second, rows) each. Every file covers its own slice of time, so each can be drawn and written alone."""
    span, files = WEEK - 3600, max(1, -(-count // FILE_ROWS))  # the last hour stays live
    return [(k * FILE_ROWS + 1, span * k / files, span * (k + 1) / files, min(FILE_ROWS, count - k * FILE_ROWS))
            for k in range(files)]


_SHOP: Shop | None = None  # the parent's shop, inherited by forked file writers


def write_file(task: tuple[str, int, int, tuple]) -> list[dict]:
    """Write one planned file (split at midnight, as the learner splits) with its companions, unless they
    are whole already; return its archive list entries. Its own seeded generator: any order, same files."""
    folder, seed, index, (first_seq, begin, end, rows) = task
    rng = np.random.default_rng([seed, index])
    seconds = np.sort(rng.uniform(begin, end, rows))
    days = ((START + seconds) // 86400).astype(np.int64)
    entries, seq = [], first_seq
    for day in np.unique(days):
        mine = seconds[days == day]
        name = f"experiment={KEY}/day={day_of(day * 86400.0)}/{part_name(seq, seq + mine.size - 1)}"
        for dataset in (DATASET, *COMPANIONS):
            os.makedirs(os.path.dirname(os.path.join(folder, dataset, name)), exist_ok=True)
        path = os.path.join(folder, DATASET, name)
        table = archive_table(_SHOP, seq, mine, rng)  # drawn even when kept, so later parts stay the same
        if not all(os.path.exists(os.path.join(folder, dataset, name)) for dataset in COMPANIONS):
            pq.write_table(table, path, compression="zstd", row_group_size=ROW_GROUP_ROWS)
            for dataset in COMPANIONS:  # written last: their presence says the file is whole
                companion(dataset, path, os.path.join(folder, dataset, name))
        for dataset in (DATASET, *COMPANIONS):
            entries.append({"dataset": dataset, "day": day_of(day * 86400.0), "path": f"{dataset}/{name}",
                            "pending": "", "first_seq": seq, "last_seq": seq + mine.size - 1,
                            "rows": int(mine.size), "bytes": os.path.getsize(os.path.join(folder, dataset, name))})
        seq += mine.size
    return entries


def write_archive(store: Store, folder: str, shop: Shop, count: int, seed: int, jobs: int) -> None:
    """Write ``count`` decisions of the first part of the week as archive files, ``jobs`` files at a time
    (forked processes sharing the shop), and list them in the store in one commit."""
    global _SHOP
    _SHOP = shop
    plan = file_plan(count) if count else []
    tasks = [(folder, seed, index, part) for index, part in enumerate(plan)]
    progress = tqdm(total=count, desc="archive", unit=" decisions", unit_scale=True, mininterval=2)
    entries = []
    with multiprocessing.get_context("fork").Pool(jobs) if jobs > 1 else _Serial() as pool:
        for written in pool.imap(write_file, tasks):  # in order: the list keeps seq order
            entries += written
            progress.update(sum(e["rows"] for e in written if e["dataset"] == DATASET))
    progress.close()
    last = plan[-1][0] + plan[-1][3] - 1 if plan else 0
    store.publish_model({"experiment": KEY, "version": 1, "args": "", "spec_version": 1, "cursor_seq": last,
                        "learned": last, "created_at": START, "model": b""})
    if entries:
        assert store.commit_archive({"experiment": KEY, "after_seq": 0, "upto_seq": last, "on_time": 0,
                                     "files": entries, "created_at": START})


class _Serial:
    """``Pool``'s imap in this process (``--jobs 1``)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    imap = staticmethod(map)


def write_live(store: Store, shop: Shop, first_seq: int, count: int, rng) -> None:
    """The newest ``count`` decisions, not archived yet, with their rewards, into the live store."""
    seconds = np.sort(rng.uniform(WEEK - 3600, WEEK, count))
    d = shop.draw(count, rng)
    hashes = [store.candidate_set(s) for s in shop.sets]
    rows, rewards = [], []
    for i in range(count):
        seq, created = first_seq + i, START + float(seconds[i])
        cands = shop.sets[d["set"][i]]
        slate = [{"slot": 0, "id": cands[d["pick"][i]]["id"], "index": int(d["pick"][i]),
                  "probability": float(d["prob"][i])}]
        rows.append((seq, f"evt-{seq}", KEY, f"user-{d['unit'][i]}", "holdout" if d["holdout"][i] else "bandit",
                     int(seconds[i] // 3600) + 1, 1, dumps(shop.contexts[d["context"][i]]), hashes[d["set"][i]], "[]",
                     dumps(slate), created, created + 600.0))
        if rng.random() < 0.15:
            for depth in range(1 + (rng.random() < 0.3) + (rng.random() < 0.1)):
                kind, value = KINDS[depth]
                late = int(rng.random() < 0.02)
                rewards.append((f"evt-{seq}", KEY, seq, f"r{seq}-{depth}", kind, None,
                                None if rng.random() < 0.01 else 0, value, created + (900.0 if late else 30.0), late,
                                int(rng.random() < 0.01)))
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO decisions (seq, event_id, experiment, unit, variant, model_version, spec_version, context,"
            " candidate_set, excluded, slate, created_at, window_closes_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        conn.executemany(
            "INSERT INTO rewards (event_id, experiment, decision_seq, reward_key, type, item, slot, value,"
            " received_at, late, duplicates) VALUES (?,?,?,?,?,?,?,?,?,?,?)", rewards)


def train_model(store: Store, first_seq: int, count: int = 2000) -> None:
    """Publish one snapshot learned from the first live decisions (the learned policy of the report)."""
    settings = parse_spec(store.get_experiment(KEY)["spec"]).policy_settings()
    policy = Policy(settings)
    for seq, context, digest, slate in store.conn.execute(
            "SELECT seq, context, candidate_set, slate FROM decisions WHERE seq >= ? ORDER BY seq LIMIT ?",
            (first_seq, count)):
        chosen = [(s["index"], s["probability"]) for s in json.loads(slate)]
        policy.learn(context_text(json.loads(context)), store.actions(digest), chosen, [float(seq % 7 == 0)])
    store.publish_model({"experiment": KEY, "version": 2, "args": settings.args(), "spec_version": 1,
                        "cursor_seq": first_seq - 1, "learned": count, "created_at": START + WEEK - 60,
                        "model": policy.save()})


def index_units(folder: str) -> float:
    """Build the units index as the learner does after its archive batches (kept when still valid); seconds."""
    started = time.perf_counter()
    store = Store(os.path.join(folder, "silent.db"))
    units.refresh(Archive(store, os.path.join(folder, "archive")), store, KEY, tail_rows=0)
    store.close()
    return time.perf_counter() - started


def build(folder: str, decisions: int, live: int, jobs: int, seed: int = 0) -> float:
    """Generate one size's data set into ``folder`` (skipped when it is there already); return seconds."""
    done = os.path.join(folder, "complete")
    if os.path.exists(done):
        return 0.0
    for suffix in ("", "-wal", "-shm", ".lock"):  # an interrupted build starts a new store, keeps whole files
        if os.path.exists(os.path.join(folder, "silent.db" + suffix)):
            os.remove(os.path.join(folder, "silent.db" + suffix))
    started, rng = time.perf_counter(), np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    store = Store(os.path.join(folder, "silent.db"))
    Service(store, VirtualClock(START)).create_experiment({
        "key": KEY, "status": "running", "exploration": {"algorithm": "epsilon", "epsilon": 0.2},
        "reward": {"wait_seconds": 600}, "traffic": {"holdout": 0.1}})
    live = min(live, decisions)
    shop = Shop(decisions, rng)
    write_archive(store, os.path.join(folder, "archive"), shop, decisions - live, seed, jobs)
    write_live(store, shop, decisions - live + 1, live, rng)
    train_model(store, decisions - live + 1, min(2000, live))
    store.close()
    open(done, "w").close()
    return time.perf_counter() - started


def measure(folder: str) -> None:
    """Run one report over a generated data set (in this fresh process) and print its seconds and peak memory."""
    from experiments.reporting.reports import report

    store = Store(os.path.join(folder, "silent.db"))
    started, cpu = time.perf_counter(), time.process_time()
    result = report(store, KEY, interval="hour", archive=Archive(store, os.path.join(folder, "archive")))
    print(json.dumps({"seconds": round(time.perf_counter() - started, 2),
                      "cpu_seconds": round(time.process_time() - cpu, 2),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                      "decisions": sum(v["decisions"] for v in result["variants"]),
                      "units": {v["variant"]: v["units"] for v in result["variants"]},
                      "off_policy_sample": result["off_policy_sample"]["decisions"]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", default="1000000,10000000,100000000")
    parser.add_argument("--live", type=int, default=100_000, help="Newest decisions kept in the live store only.")
    parser.add_argument("--data", default="/tmp/silent-report-bench", help="Where generated data sets are kept.")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="Archive files written at a time.")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        return measure(args.measure)
    results = []
    for decisions in (int(x) for x in args.decisions.split(",")):
        folder = os.path.join(args.data, f"n{decisions}-live{args.live}")
        build_seconds = build(folder, decisions, args.live, args.jobs)
        index_seconds = index_units(folder)
        runs = [json.loads(subprocess.run([sys.executable, __file__, "--measure", folder], check=True,
                                          capture_output=True, text=True).stdout) for _ in range(args.repeat)]
        archive_bytes = sum(os.path.getsize(os.path.join(root, f)) for root, _, files in
                            os.walk(os.path.join(folder, "archive")) for f in files)
        results.append({"decisions": decisions, "live_decisions": min(args.live, decisions),
                        "build_seconds": round(build_seconds, 1),
                        "units_index_seconds": round(index_seconds, 1), "report_seconds": [r["seconds"] for r in runs],
                        "best_seconds": min(r["seconds"] for r in runs),
                        "report_cpu_seconds": [r["cpu_seconds"] for r in runs],
                        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "archive_mb": round(archive_bytes / 2**20),
                        "units": runs[0]["units"], "off_policy_sample": runs[0]["off_policy_sample"],
                        "reported_decisions": runs[0]["decisions"]})
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"results": results, "load_average": [round(x, 2) for x in os.getloadavg()],
                      "cpu_count": os.cpu_count()}, indent=2))


if __name__ == "__main__":
    main()
