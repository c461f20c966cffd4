"""Operations in process: fenced publishing, leases, memory bounds, retention, erasure, the WAL."""
import io
import os
import re
import signal
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from experiments import retention
from experiments.clock import VirtualClock
from experiments.learner import Learner
from experiments.reporting.exports import export
from experiments.reporting.reports import report
from experiments.service import Service
from experiments.serving_models import ServingModels
from experiments.store import PublishRefused, Store
from experiments.store.holders import is_dead, this_process
from tests.conftest import ITEMS

DAY = 86400


def log_of(store, clock, key="exp", n=20, units=("u1", "u2"), **spec):
    """Create a running experiment and log ``n`` rewarded decisions, 1 s apart."""
    service = Service(store, clock, model_refresh_seconds=0.0, spec_refresh_seconds=0.0)
    if store.get_experiment(key) is None:
        service.create_experiment({"key": key, "status": "running", "reward": {"wait_seconds": 10},
                                   "learning": {"update_seconds": 1}, **spec})
    events = []
    for i in range(n):
        answer = service.decide(key, {"unit": units[i % len(units)], "event_id": f"{key}-{clock.now()}-{i}",
                                      "candidates": ITEMS[:3 + i % 2], "context": {"user": {"s": f"s{i % 3}"}}})
        service.record_reward(answer["event_id"], {"type": "click", "item": answer["slate"][0]["id"]})
        events.append(answer["event_id"])
        clock.advance(1)
    return events


@pytest.fixture
def store(db_path):
    store = Store(db_path, known_set_seconds=0)
    yield store
    store.close()


# -- fencing and leases ------------------------------------------------------------------------
def test_publishing_is_fenced_by_lease_token_and_version(store, clock):
    log_of(store, clock, n=2)
    row = {"experiment": "exp", "args": "--cb_explore_adf", "spec_version": 1, "cursor_seq": 0, "learned": 0,
           "created_at": clock.now(), "learner": "a", "model": b""}
    token = store.acquire_lease("learner", "a", clock.now(), 30)
    store.publish_model({**row, "version": 1}, lease=("learner", "a", token))
    with pytest.raises(PublishRefused) as refused:
        store.publish_model({**row, "version": 3}, lease=("learner", "a", token))
    assert not refused.value.lease_lost
    assert store.acquire_lease("learner", "b", clock.now() + 31, 30) == token + 1  # a's lease ran out
    with pytest.raises(PublishRefused) as refused:
        store.publish_model({**row, "version": 2}, lease=("learner", "a", token))
    assert refused.value.lease_lost and "belongs to b" in str(refused.value)
    assert store.latest_model("exp")["version"] == 1


def test_a_learner_that_lost_its_lease_publishes_nothing_and_resumes_cleanly(store, clock):
    log_of(store, clock, n=10)
    first = Learner(store, clock, lease_owner="first")
    clock.advance(11)
    assert first.run_once(force_publish=True) == {"exp": 10}
    log_of(store, clock, n=5)
    clock.advance(31)  # first stalls past its lease; second takes over
    second = Learner(store, clock, lease_owner="second")
    assert second.run_once(force_publish=True) == {"exp": 5}
    assert first.run_once(force_publish=True) == {}  # steps back: publishes nothing
    second.stop()  # hands the lease back
    log_of(store, clock, n=3)
    clock.advance(11)
    assert first.run_once(force_publish=True) == {"exp": 3}  # resumes from second's snapshot
    models = store.query("SELECT version, learned, learner FROM models ORDER BY version")
    assert [(m["version"], m["learned"], m["learner"]) for m in models] == [
        (1, 10, "first"), (2, 15, "second"), (3, 18, "first")]


def test_a_dead_lease_holder_on_this_machine_is_replaced_at_once(db_path, clock):
    Store(db_path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from experiments.store import Store; "
         f"print(Store({db_path!r}).acquire_lease('learner', 'child', time.time(), 3600), flush=True); "
         "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "1"
        store = Store(db_path)
        assert store.acquire_lease("learner", "me", clock.now(), 30) is None  # alive: it keeps its lease
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert store.acquire_lease("learner", "me", clock.now(), 30) == 2  # no waiting for the hour it had left
    store.close()


def test_holders_elsewhere_are_never_declared_dead():
    me = this_process()
    assert not is_dead(me)
    assert not is_dead({**me, "host": "another-machine", "pid": 999_999_999})
    assert is_dead({**me, "started": "0"})  # this pid, but not the process that took the lease


# -- memory ------------------------------------------------------------------------------------
def test_a_learner_within_a_tiny_budget_publishes_the_same_models(store, clock, tmp_path):
    for key in ("a", "b", "c"):
        log_of(store, clock, key=key, n=30)
    copy = str(tmp_path / "copy.db")
    store.backup(copy)
    other = Store(copy)
    roomy = Learner(store, VirtualClock(clock.now()))
    tight = Learner(other, VirtualClock(clock.now()), budget_bytes=1, idle_seconds=0)
    for learner in (roomy, tight):
        for _ in range(4):  # windows close a few at a time: the tight one reloads between passes
            learner.clock.advance(8)
            learner.run_once(force_publish=True)
    assert all(t.policy is None for t in tight._tracks.values())
    for key in ("a", "b", "c"):  # the weights, not the byte image: VW restarts its loss statistics on load
        assert weights(store.latest_model(key)["model"], tmp_path) == weights(other.latest_model(key)["model"], tmp_path)
        assert other.latest_model(key)["learned"] == 30
    other.close()


def weights(model: bytes, folder) -> list[str]:
    """Return a VW model's weights as its readable dump lists them (index and value per line)."""
    import vowpalwabbit

    path, text = folder / "model.vw", folder / "model.txt"
    path.write_bytes(model)
    vowpalwabbit.Workspace(f"--quiet -i {path} --readable_model {text}").finish()
    return [line for line in text.read_text().splitlines() if re.match(r"^\d+:", line)]


def test_serving_keeps_only_what_fits_and_reloads_the_same_model(store, clock):
    keys = ["a", "b", "c"]
    for key in keys:
        log_of(store, clock, key=key, n=12)
    clock.advance(11)
    Learner(store, clock).run_once(force_publish=True)
    models = ServingModels(store, clock, refresh_seconds=0.0, budget_bytes=1, idle_seconds=60)
    service = Service(store, clock, spec_refresh_seconds=0.0, serving_models=models)
    body = {"unit": "u9", "candidates": ITEMS, "context": {"user": {"s": "s1"}}}
    first = [service.decide(key, {**body, "event_id": f"once-{key}"}) for key in keys]
    assert len(models.cached()) <= 1
    roomy = Service(store, clock, spec_refresh_seconds=0.0)
    again = [roomy.decide(key, {**body, "event_id": f"again-{key}"}) for key in keys]
    tight = [service.decide(key, {**body, "event_id": f"again-{key}-2"}) for key in keys]
    assert [a["model_version"] for a in first] == [a["model_version"] for a in again] == [1, 1, 1]
    assert [a["slate"] for a in tight] == [
        roomy.decide(key, {**body, "event_id": f"again-{key}-2"})["slate"] for key in keys]


# -- retention and purges ----------------------------------------------------------------------
def test_retention_deletes_learned_settled_decisions_and_says_where_data_starts(store, clock):
    old = log_of(store, clock, n=10, retention={"days": 2})
    learner = Learner(store, clock, retention_seconds=0)
    clock.advance(11)
    learner.run_once(force_publish=True)
    clock.advance(DAY)
    recent = log_of(store, clock, n=4, units=("u3",))
    clock.advance(DAY + 3600)
    learner.run_once(force_publish=True)
    kept = {row["event_id"] for row in store.query("SELECT event_id FROM decisions")}
    assert kept == set(recent)
    assert store.get_decision(old[0]) is None and store.counts("exp") == {"decisions": 4, "rewards": 4}
    log = report(store, "exp", clock=clock)["log"]
    assert log["retention_days"] == 2 and log["purged_decisions"] == 10
    assert log["purged_before"] < log["data_from"]
    assert store.query_one("SELECT count(*) AS n FROM candidate_sets")["n"] == 2  # both lists still in use


def test_retention_days_also_expire_the_archive(app, clock, learner):
    store, archive = app.extensions["silent"]["store"], app.extensions["silent"]["archive"]
    log_of(store, clock, n=5, retention={"days": 2})
    clock.advance(11)
    learner.run_once(force_publish=True)
    clock.advance(DAY)
    learner.run_once(force_publish=True)
    assert archive.files("exp")
    clock.advance(2 * DAY)
    learner.run_once(force_publish=True)
    assert not archive.files("exp") and store.counts("exp")["decisions"] == 1  # the file's newest row stays


def test_a_purge_keeps_what_no_model_has_learned_and_models_stay_rebuildable(store, clock, app):
    log_of(store, clock, n=6)
    clock.advance(2 * DAY)
    counts = retention.purge(store, "exp", clock.now(), clock.now())
    assert counts["decisions"] == 0 and counts["kept"] == 6  # nothing is in a published model yet
    learner = Learner(store, clock)
    learner.run_once(force_publish=True)
    log_of(store, clock, n=3)
    counts = retention.purge(store, "exp", clock.now(), clock.now() + DAY + 20)
    assert counts["decisions"] == 6 and counts["rewards"] == 6 and counts["kept"] == 3
    Service(store, clock).update_experiment("exp", {"learning": {"learning_rate": 0.1}})
    clock.advance(11)
    learner.run_once(force_publish=True)
    assert store.latest_model("exp")["learned"] == 3  # rebuilt from what is kept


def test_retention_is_validated_against_the_reward_wait(store, clock):
    from experiments.errors import InvalidField
    from experiments.spec import parse_spec

    with pytest.raises(InvalidField) as error:
        parse_spec({"key": "x", "reward": {"wait_seconds": 2 * DAY}, "retention": {"days": 2}}, check_vw=False)
    assert error.value.field == "retention.days" and "at least 3" in error.value.message
    assert parse_spec({"key": "x"}, check_vw=False).data["retention"] == {"days": None}


# -- erasure -----------------------------------------------------------------------------------
def test_forgetting_a_unit_removes_its_decisions_and_rewards_everywhere(client, app, clock, learner):
    store, archive = app.extensions["silent"]["store"], app.extensions["silent"]["archive"]
    log_of(store, clock, key="a", n=6, units=("gone", "stays"))
    events = log_of(store, clock, key="b", n=2, units=("stays", "gone"))  # the newest decision is gone's
    clock.advance(11)
    learner.run_once(force_publish=True)
    clock.advance(DAY)
    learner.run_once(force_publish=True)  # the learned decisions go to the Parquet archive too
    assert store.archive_position("a") and store.archive_position("b")
    response = client.delete("/v1/units/gone")
    assert response.status_code == 200
    answer = response.get_json()
    assert answer["deleted"] == {"decisions": 4, "rewards": 4, "archived_decisions": 4}
    assert answer["experiments"] == ["a", "b"] and "not unlearned" in answer["not_undone"]
    assert client.get("/v1/experiments/a").get_json()["counts"] == {"decisions": 3, "rewards": 3}
    exported = io.StringIO()
    assert export(store, "a", "csv", exported, archive=archive) == 3 and "gone" not in exported.getvalue()
    assert "gone" not in str(pq.read_table(archive.files("b")[0]).to_pylist())
    summed = report(store, "a", archive=archive, clock=clock)  # the archive's summaries were rewritten too
    assert sum(v["decisions"] for v in summed["variants"]) == 3
    blank = store.get_decision(events[-1])  # the newest row keeps its number, with nothing of the unit
    assert blank["unit"] is None and blank["context"] == "{}" and blank["learning_mode"] == "logging_only"
    again = client.delete("/v1/units/gone").get_json()["deleted"]
    assert again == {"decisions": 0, "rewards": 0, "archived_decisions": 0}
    error = client.delete("/v1/units/" + "x" * 300).get_json()["error"]
    assert error["field"] == "unit"


# -- the write-ahead log -----------------------------------------------------------------------
def test_the_wal_is_cut_back_past_its_limit(tmp_path):
    store = Store(str(tmp_path / "wal.db"), wal_autocheckpoint=0, wal_limit_bytes=1024 * 1024)
    store.conn.execute("CREATE TABLE filler (blob TEXT)")
    for _ in range(40):
        with store.transaction() as conn:
            conn.executemany("INSERT INTO filler VALUES (?)", [("x" * 1000,)] * 100)
    assert store.wal_bytes() > 2 * 1024 * 1024
    assert store.checkpoint()["restarted"]
    with store.transaction() as conn:  # the next write starts the log over and cuts the file
        conn.execute("INSERT INTO filler VALUES ('y')")
    assert store.wal_bytes() <= 1024 * 1024
    store.checkpoint(full=True)
    assert store.wal_bytes() == 0 and os.path.exists(store.path)
    store.close()
