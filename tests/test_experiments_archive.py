"""The Parquet archive: written once, read with the live store by DuckDB, with today's report answers."""
import io
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow.dataset
import pyarrow.parquet
import pytest

from experiments.clock import VirtualClock
from experiments.erasure import forget_unit
from experiments.learner import Learner
from experiments.reporting.analytics import LogView
from experiments.reporting import units
from experiments.reporting.archive import Archive
from experiments.reporting.exports import export
from experiments.reporting.reports import parse_window, report
from experiments.service import Service
from experiments.store import Store, open_store
from tests import report_log

ROOT = Path(__file__).resolve().parent.parent
ENGINES = ("sqlite", "postgresql")  # the tests that take ``db_path`` archive from either engine
GOLDEN = json.loads(open(os.path.join(os.path.dirname(__file__), "golden", "reports.json")).read())


def assert_same(expected, got, path="report"):
    """Equal figure by figure: exact for counts and text, to 1e-9 for computed numbers."""
    if isinstance(expected, dict):
        assert set(expected) == set(got), path
        for key in expected:
            assert_same(expected[key], got[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert len(expected) == len(got), path
        for i, (a, b) in enumerate(zip(expected, got)):
            assert_same(a, b, f"{path}[{i}]")
    elif isinstance(expected, float) and isinstance(got, (int, float)):
        assert math.isclose(expected, got, rel_tol=1e-9, abs_tol=1e-9), f"{path}: {expected} != {got}"
    else:
        assert expected == got, f"{path}: {expected!r} != {got!r}"


def plain(result: dict) -> dict:
    result = json.loads(json.dumps(result))
    result.pop("generated_at")
    result.pop("log")  # where the kept log starts: newer than the golden record (tests/test_experiments_operations.py)
    return result


def logged_store(tmp_path, name: str, case: dict, db: str | None = None) -> Store:
    """The case's log in a SQLite file named ``name``, or in the database ``db`` (a file or a PostgreSQL URL)."""
    store = open_store(db or str(tmp_path / f"{name}.db"))
    report_log.create(store, "exp", slots=case["slots"], default=case["default"], aggregation=case["aggregation"])
    report_log.build(store, "exp", n=case["n"], slots=case["slots"], seed=case["seed"])
    return store


def archive_upto(store, folder, upto_seq: int, batch_rows: int = 300, **options) -> Archive:
    """Archive every closed decision up to the one with ``upto_seq`` (the last one when past it) in batches,
    as the learner would."""
    archive = Archive(store, str(folder), batch_rows=batch_rows, after_seconds=0.0, **options)
    spec = store.get_experiment("exp")["spec"]
    cursor = store.position_of(min(upto_seq, store.query_one("SELECT max(seq) AS s FROM decisions")["s"]))
    while True:
        batch = archive.prepare("exp", spec["reward"], cursor, report_log.T0 + 10 * 86400, report_log.T0, force=True)
        if batch is None:
            return archive
        archive.finish(batch, store.commit_archive(batch.commit()))


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_duckdb_report_equals_the_report_it_replaced(tmp_path, name):
    """The golden file holds the numpy report's answers on these logs, recorded before DuckDB took over."""
    case = GOLDEN[name]["case"]
    store = logged_store(tmp_path, "live", case)
    assert_same(GOLDEN[name]["report"], plain(report(store, "exp", **case["args"])))


@pytest.mark.parametrize("name", ["max_default05_day_range", "sampled_ope"])
def test_archive_plus_live_equals_live_only_whole_and_across_the_boundary(tmp_path, name, db_path):
    case = GOLDEN[name]["case"]
    live, split = logged_store(tmp_path, "live", case), logged_store(tmp_path, "split", case, db_path)
    archive = archive_upto(split, tmp_path / "archive", 700)
    assert split.archive_position("exp") == split.position_of(700)
    boundary = split.get_decision("exp-700")["created_at"]
    spec = split.get_experiment("exp")["spec"]
    for args in (case["args"], {"start": boundary - 20000, "end": boundary + 20000, "ope_sample": 300},
                 {"interval": "day", "ope_sample": 300}, {"ope_sample": 15},  # 15 of 1,200: from the sample files
                 {"start": boundary - 3000, "end": boundary + 3000, "ope_sample": 300}):  # auto: sub-hour
        assert_same(plain(report(live, "exp", **args)), plain(report(split, "exp", archive=archive, **args)))
    view = LogView(split, parse_window("exp", start=boundary - 20000, end=boundary + 20000), spec["reward"], archive)
    summarized, raw, everything = (view.sql(f"SELECT count(*) FROM {name}")[0][0]
                                   for name in ("summary", "archived", "archived_all"))
    sampled = view.files and all(f in view.sample_of for f in view.files)
    edges = view.read_files
    view.close()
    assert summarized > 0 and 0 < raw < everything  # whole hours from summaries, the edges from rows
    assert sampled
    assert 0 < len(edges) < len(view.files)  # only files with rows outside the whole hours are read
    whole = LogView(split, parse_window("exp"), spec["reward"], archive)
    assert whole.files and whole.read_files == []  # a full-range report reads summaries, no decisions file
    whole.close()
    archive_upto(split, tmp_path / "archive", 10**9)
    assert split.archive_position("exp") == split.position_of(1200)
    assert_same(plain(report(live, "exp", **case["args"])), plain(report(split, "exp", archive=archive,
                                                                         **case["args"])))


def units_index_of(store, archive, **window):
    view = LogView(store, parse_window("exp", **window), store.get_experiment("exp")["spec"]["reward"], archive)
    try:
        return view.units_index, len(view.uncovered)
    finally:
        view.close()


def test_the_units_index_counts_the_units_the_rows_do(tmp_path):
    """Units of a full-range report come from the index plus the files after it; the same figures as
    the live log, also for ranges the index cannot answer, and after an erasure or retention drops it."""
    case = GOLDEN["sum_default0_hour"]["case"]
    live, split = logged_store(tmp_path, "live", case), logged_store(tmp_path, "split", case)
    archive = archive_upto(split, tmp_path / "archive", 700, units_tail_rows=500)
    index, uncovered = units_index_of(split, archive)
    assert index is not None and index.upto_seq == 600 and uncovered == 1  # seqs 601-700 are not in it yet
    middle = split.get_decision("exp-650")["created_at"]
    assert units_index_of(split, archive, end=middle)[0] is not None
    assert units_index_of(split, archive, start=middle)[0] is None  # a later start counts from the rows
    for args in ({}, {"end": middle}, {"start": middle}, {"start": middle - 40000, "end": middle}):
        expected, got = report(live, "exp", ope_sample=50, **args), report(split, "exp", archive=archive,
                                                                             ope_sample=50, **args)
        assert [v["units"] for v in got["variants"]] == [v["units"] for v in expected["variants"]] and \
            all(v["units"] for v in got["variants"])
        assert_same(plain(expected), plain(got))
    unit = split.get_decision("exp-3")["unit"]
    for store in (live, split):
        forget_unit(store, unit, archive if store is split else None)
    assert not list((tmp_path / "archive" / "units").rglob("*.parquet"))  # it held the erased unit's key
    assert units_index_of(split, archive)[0] is None
    assert_same(plain(report(live, "exp", ope_sample=50)), plain(report(split, "exp", archive=archive, ope_sample=50)))
    archive_upto(split, tmp_path / "archive", 10**9, units_tail_rows=500)
    assert units_index_of(split, archive)[0].upto_seq > 700  # rebuilt from every file kept
    assert_same(plain(report(live, "exp", ope_sample=50)), plain(report(split, "exp", archive=archive, ope_sample=50)))
    archive.retention_days = 1.5
    assert archive.expire("exp", report_log.T0 + 3 * 86400) > 0
    assert units_index_of(split, archive)[0] is None


def test_the_units_index_is_the_same_in_one_pass_or_many(tmp_path):
    """Past the memory a pass may use, the index groups the units in several passes (by their key): the
    same pairs, and the counts per variant its metadata keeps for full-range reports."""
    case = GOLDEN["sum_default0_hour"]["case"]
    live, split = logged_store(tmp_path, "live", case), logged_store(tmp_path, "split", case)
    archive = archive_upto(split, tmp_path / "archive", 10**9, units_tail_rows=10**9)
    built = {}
    for per_pass in (10**6, 7):
        units.remove(archive, "exp")
        path = units.refresh(archive, split, "exp", tail_rows=0, units_per_pass=per_pass)
        meta = json.loads(pyarrow.parquet.read_metadata(path).metadata[units.METADATA_KEY])
        built[per_pass] = (sorted(pyarrow.parquet.read_table(path).to_pylist(), key=lambda r: (r["variant"], r["unit_key"])),
                           meta["counts"], meta["last_first_at"])
    assert built[10**6] == built[7]
    pairs, counts, last = built[7]
    assert len(pairs) > 7 and counts == {v: sum(r["variant"] == v for r in pairs) for v in counts}
    assert last == max(r["first_at"] for r in pairs)
    expected = report(live, "exp", ope_sample=50)
    assert_same(plain(expected), plain(report(split, "exp", archive=archive, ope_sample=50)))
    assert units_index_of(split, archive)[0].counts_before(math.inf) == counts  # the full range reads no pair


def test_changed_reward_rules_recompute_archived_rows(tmp_path):
    case = GOLDEN["sum_default0_hour"]["case"]
    live, split = logged_store(tmp_path, "live", case), logged_store(tmp_path, "split", case)
    archive = archive_upto(split, tmp_path / "archive", 800)
    for store in (live, split):
        Service(store, VirtualClock(report_log.T0)).update_experiment(
            "exp", {"reward": {"wait_seconds": report_log.WAIT, "default": 0.25, "aggregation": "first"}})
    assert_same(plain(report(live, "exp", ope_sample=300)), plain(report(split, "exp", archive=archive,
                                                                         ope_sample=300)))


def test_late_rewards_after_archiving_stay_live_and_count_as_late(tmp_path, db_path):
    case = GOLDEN["sum_default0_hour"]["case"]
    live, split = logged_store(tmp_path, "live", case), logged_store(tmp_path, "split", case, db_path)
    archive = archive_upto(split, tmp_path / "archive", 10**9)
    before = report(split, "exp", archive=archive, ope_sample=300)
    for store in (live, split):
        service = Service(store, VirtualClock(report_log.T0 + 30 * 86400))
        answer = service.record_reward("exp-10", {"type": "purchase", "value": 10.0, "id": "late-purchase"})
        assert answer["late"] is True
    after = report(split, "exp", archive=archive, ope_sample=300)
    assert after["rewards"]["late"] == before["rewards"]["late"] + 1
    assert after["rewards"]["received"] == before["rewards"]["received"] + 1
    assert_same(before["variants"], after["variants"])  # late rewards are counted, never learned or valued
    assert_same(plain(report(live, "exp", ope_sample=300)), plain(after))
    assert split.query_one("SELECT count(*) AS n FROM rewards WHERE reward_key = 'late-purchase'")["n"] == 1


def test_archive_files_are_plain_hive_partitioned_parquet(tmp_path):
    case = GOLDEN["sum_default0_hour"]["case"]
    store = logged_store(tmp_path, "live", case)
    archive_upto(store, tmp_path / "archive", 10**9)
    folder = tmp_path / "archive" / "decisions"
    days = sorted(p.name for p in (folder / "experiment=exp").iterdir())
    assert days == ["day=2026-01-01", "day=2026-01-02", "day=2026-01-03"]
    table = pyarrow.dataset.dataset(str(folder), format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 1200 and set(table.column("experiment").to_pylist()) == {"exp"}
    got = duckdb.connect().execute(f"SELECT count(*), count(DISTINCT seq), sum(rewarded::INT), min(day), max(day) FROM"
                     f" read_parquet('{folder}/*/*/*.parquet', hive_partitioning = true)").fetchone()
    rewarded = store.query_one("SELECT count(DISTINCT decision_seq) AS n FROM rewards WHERE late = 0")["n"]
    assert got[:3] == (1200, 1200, rewarded) and str(got[3]).startswith("2026-01-01")
    first = table.filter(pyarrow.dataset.field("seq") == 1).to_pylist()[0]
    assert first["slate"][0]["id"] == json.loads(store.get_decision("exp-1")["slate"])[0]["id"]
    assert first["candidates"] == json.dumps(report_log.CANDIDATES, separators=(",", ":"))


def test_two_writers_racing_for_one_range_commit_once(tmp_path, db_path):
    case = GOLDEN["first_one_slot"]["case"]
    store = logged_store(tmp_path, "live", case, db_path)
    spec = store.get_experiment("exp")["spec"]
    first, second = (Archive(store, str(tmp_path / "archive"), batch_rows=500, after_seconds=0.0) for _ in range(2))
    cursor = store.latest_model("exp")["cursor_seq"]
    a, b = (w.prepare("exp", spec["reward"], cursor, report_log.T0 + 10 * 86400, report_log.T0, force=True)
            for w in (first, second))
    assert store.commit_archive(a.commit()) and not store.commit_archive(b.commit())
    first.finish(a, True)
    second.finish(b, False)
    names = [n for _, _, files in os.walk(tmp_path / "archive") for n in files]
    assert len(names) == len(a.files) and not any(n.startswith(".pending") for n in names)
    assert store.archive_position("exp") == a.upto_seq == store.position_of(500)


def test_archive_retention_drops_old_days_and_their_decisions_from_reports(tmp_path, db_path):
    case = GOLDEN["sum_default0_hour"]["case"]
    store = logged_store(tmp_path, "live", case, db_path)
    archive = archive_upto(store, tmp_path / "archive", 10**9)
    archive.retention_days = 1.5
    deleted = archive.expire("exp", report_log.T0 + 3 * 86400)  # keeps 2026-01-02 onwards
    assert deleted == len(store.archive_files("exp", before_day="2026-01-02")) + deleted > 0
    assert not (tmp_path / "archive" / "decisions" / "experiment=exp" / "day=2026-01-01").exists()
    result = report(store, "exp", archive=archive, ope_sample=100)
    assert result["range"]["first_decision"].startswith("2026-01-02")
    assert archive.expire("exp", report_log.T0 + 3 * 86400 + 60) == 0  # at most once an hour


def test_a_deletion_while_a_batch_is_written_keeps_it_from_committing(tmp_path, db_path):
    """Erasure (or retention) deleting decisions after a batch read them: the batch must not list them."""
    case = GOLDEN["first_one_slot"]["case"]
    store = logged_store(tmp_path, "live", case, db_path)
    archive = Archive(store, str(tmp_path / "archive"), batch_rows=10**6, after_seconds=0.0)
    batch = archive.prepare("exp", store.get_experiment("exp")["spec"]["reward"],
                            store.latest_model("exp")["cursor_seq"], report_log.T0 + 10 * 86400, report_log.T0,
                            force=True)
    assert batch is not None and store.forget_unit(store.get_decision("exp-3")["unit"])["decisions"] > 0
    assert not store.commit_archive(batch.commit())
    archive.finish(batch, False)
    assert store.archive_position("exp") == 0 and not store.archive_files("exp")
    assert archive_upto(store, tmp_path / "archive", 10**9).files("exp")  # the next batch reads what is kept


def test_a_failing_archive_never_stops_publishing(tmp_path):
    store = Store(str(tmp_path / "s.db"))
    report_log.create(store, "exp")
    report_log.write(store, "exp", report_log.decisions(50, 2, seed=4), [])
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the archive folder should be")
    clock = VirtualClock(report_log.T0 + 5 * 86400)
    learner = Learner(store, clock, archive=Archive(store, str(blocked), after_seconds=0.0))
    assert learner.run_once(force_publish=True) == {"exp": 50}
    assert store.latest_model("exp")["cursor_seq"] == 50 and store.archive_position("exp") == 0
    learner.archive = Archive(store, str(tmp_path / "archive"), after_seconds=0.0)
    clock.advance(10)
    learner.run_once()  # nothing new to learn: the archive commits on its own, under the published cursor
    assert store.archive_position("exp") == 50


def archived_rows(store, folder) -> tuple:
    """(rows, distinct seqs) in the listed files, and in every final file a folder-reading tool would see."""
    con = duckdb.connect()
    listed = Archive(store, str(folder)).files("exp")
    in_list = con.execute(f"SELECT count(*), count(DISTINCT seq) FROM read_parquet({listed!r})").fetchone()
    on_disk = con.execute(f"SELECT count(*), count(DISTINCT seq) FROM read_parquet("
                          f"'{folder}/decisions/*/*/*.parquet')").fetchone()
    return in_list, on_disk


def past_log(db: str, n: int) -> Store:
    """A store whose ``n`` decisions' reward windows all closed days ago (for real-time learners)."""
    store = open_store(db)
    report_log.create(store, "exp")
    rows = report_log.decisions(n, 2, seed=5)
    start = time.time() - 10 * 86400 - report_log.T0
    rows = [(seq, variant, unit, at + start, slate, segment) for seq, variant, unit, at, slate, segment in rows]
    report_log.write(store, "exp", rows, report_log.rewards(rows, seed=5))
    deadline = time.monotonic() + 60  # PostgreSQL: until no transaction open on the server is older than them
    while len(store.closed_decisions("exp", 0, time.time(), n)) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return store


def test_exactly_once_across_kill_9_of_the_learner(tmp_path, db_path):
    store, folder, n = past_log(db_path, 1000), tmp_path / "archive", 1000
    child = [sys.executable, "-m", "tests.archive_child", db_path, str(folder)]
    for crash in ("fsync:2", "replace:2", "replace:1"):  # before a commit; between a commit and its renames
        done = subprocess.run(child + [crash], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == -signal.SIGKILL, done.stderr
    rng = random.Random(13)
    for _ in range(1):  # and at a moment nobody chose
        proc = subprocess.Popen(child, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "started"
        time.sleep(rng.uniform(0.0, 0.4))
        proc.kill()
        proc.wait(timeout=30)
    done = subprocess.run(child, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert store.archive_position("exp") == store.position_of(n)
    assert archived_rows(store, folder) == ((n, n), (n, n))
    assert store.latest_model("exp")["cursor_seq"] == store.position_of(n)


def test_a_takeover_continues_where_the_last_learner_stopped(tmp_path, db_path):
    """Two hosts, each with its own store: host-a learns and archives part of the log, leaves a pending batch
    and dies (its lease expires on SQLite; its lease connection ends on PostgreSQL); host-b goes on."""
    store, folder, n = past_log(db_path, 1500), tmp_path / "archive", 1500
    other = open_store(db_path)
    clock = VirtualClock(time.time())
    first, second = (Learner(s, clock, lease_owner=owner, lease_seconds=30,
                             archive=Archive(s, str(folder), batch_rows=200, after_seconds=0.0))
                     for s, owner in ((store, "host-a"), (other, "host-b")))
    for _ in range(3):
        first.run_once(force_publish=True)
    assert 0 < store.archive_position("exp") < store.position_of(n)
    spec = store.get_experiment("exp")["spec"]
    orphan = first.archive.prepare("exp", spec["reward"], store.position_of(n), clock.now(),
                                   clock.now())  # then host-a dies
    assert orphan is not None and os.path.exists(folder / orphan.files[0]["pending"])
    assert second.run_once() == {}  # host-a's lease still holds
    clock.advance(31)
    getattr(store, "close_leases", lambda: None)()  # PostgreSQL: the dead host's session ends
    while store.archive_position("exp") < store.position_of(n):
        assert second.run_once(force_publish=True) != {}
    assert archived_rows(store, folder) == ((n, n), (n, n))
    assert first.run_once(force_publish=True) == {}  # host-a, back from the dead, no longer owns anything
    other.close()


def test_exports_read_archive_and_live_once_and_parquet_stands_alone(tmp_path, db_path):
    case = GOLDEN["max_default05_day_range"]["case"]
    live, split = logged_store(tmp_path, "live", case), logged_store(tmp_path, "split", case, db_path)
    archive = archive_upto(split, tmp_path / "archive", 500)
    window = {"start": report_log.T0 + 3600, "end": report_log.T0 + 2.5 * 86400}
    texts = []
    for store, folder in ((live, None), (split, archive)):
        out = io.StringIO()
        count = export(store, "exp", "csv", out, archive=folder, **window)
        texts.append(out.getvalue())
    assert texts[0] == texts[1] and count == texts[0].count("\n") - 1 > 500
    path = tmp_path / "exp.parquet"
    with open(path, "wb") as fh:
        assert export(split, "exp", "parquet", fh, archive=archive, **window) == count
    con = duckdb.connect()
    got = con.execute(f"SELECT count(*), count(DISTINCT seq), min(experiment), sum(len(late_rewards)),"
                      f" sum(len(rewards)) FROM read_parquet('{path}')").fetchone()
    late = live.query_one("SELECT count(*) AS n FROM rewards r JOIN decisions d ON d.seq = r.decision_seq"
                          " WHERE r.late = 1 AND d.created_at >= ? AND d.created_at < ?",
                          (window["start"], window["end"]))["n"]
    on_time = live.query_one("SELECT count(*) AS n FROM rewards r JOIN decisions d ON d.seq = r.decision_seq"
                             " WHERE r.late = 0 AND d.created_at >= ? AND d.created_at < ?",
                             (window["start"], window["end"]))["n"]
    assert got == (count, count, "exp", late, on_time)
    columns = pyarrow.parquet.read_schema(path).names
    documented = open(ROOT / "docs" / "reports.md").read()
    assert all(f"`{name}`" in documented for name in columns)


def test_the_docs_examples_read_the_archive_as_it_is(tmp_path, capsys, monkeypatch):
    case = GOLDEN["first_one_slot"]["case"]
    store = logged_store(tmp_path, "live", case)
    archive_upto(store, tmp_path / "shop-archive", 10**9)
    text = open(ROOT / "docs" / "reports.md").read()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block.replace("home-recs", "exp"), "docs/reports.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == "1200" and printed[0].startswith("[(datetime.date(2026, 1, 1), 'bandit',")


def test_cli_reports_and_exports_find_the_archive_beside_the_database(tmp_path, runner):
    from web.cli import cli

    case = GOLDEN["first_one_slot"]["case"]
    store = logged_store(tmp_path, "shop", case)
    archive_upto(store, tmp_path / "shop-archive", 800)  # the default folder of shop.db
    db = store.path
    out = runner.invoke(cli, ["report", "exp", "--db", db, "--format", "json"])
    assert out.exit_code == 0, out.output
    assert sum(v["decisions"] for v in json.loads(out.output)["variants"]) == 1200
    target = tmp_path / "exp.parquet"
    out = runner.invoke(cli, ["export", "exp", "--db", db, "--format", "parquet", "-o", str(target)])
    assert out.exit_code == 0, out.output
    assert pyarrow.parquet.read_metadata(target).num_rows == 1200
    out = runner.invoke(cli, ["export", "exp", "--db", db, "--format", "parquet"])
    assert out.exit_code == 2 and "--output FILE" in out.output
    out = runner.invoke(cli, ["report", "exp", "--db", db, "--archive", str(tmp_path / "elsewhere")])
    assert out.exit_code == 1 and "not in" in out.output and "ARCHIVE_DIR" in out.output
