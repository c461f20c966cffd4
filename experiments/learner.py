"""The learner: joins decisions with their rewards once the window closes, learns in log order.

One learner per experiment at a time: on SQLite the learner lease covers the
whole file; on PostgreSQL each experiment has its own lease, so learners on
many hosts share the experiments and one takes over what a dead one held.
For each experiment it keeps a VW policy and a cursor
(the last decision sequence number learned). A published snapshot stores the
model together with its cursor, so after a restart the learner loads the newest
snapshot and continues after its cursor: no decision is learned twice, none is
skipped. When an experiment's learning settings change, the model is rebuilt
from the log with the new settings, since a model is a function of the log.
"""
from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass

from bandit.allocator import release_free_memory
from bandit.encoding import context_text
from bandit.policy import Policy
from experiments import models
from experiments.autotune import Tuner
from experiments.clock import SystemClock
from experiments.forgetting import forget, forgotten, rules_of, watch_for
from experiments.labels import learnable, slot_texts, training_labels
from experiments.model_memory import DEFAULT_BUDGET_BYTES, DEFAULT_IDLE_SECONDS, to_evict
from experiments.retention import RETENTION_EVERY_SECONDS, apply_retention
from experiments.spec import parse_spec
from experiments.store import PublishRefused, loads

log = logging.getLogger(__name__)
PARK_EVERY_LOADS = 16  # policies loaded in a pass before the learner checks its memory budget again

@dataclass
class _Track:
    """The learner's state for one experiment.

    ``policy`` is None while the track is parked (dropped from memory to stay in
    budget); it is loaded again on demand from the newest snapshot, which holds
    exactly this state (a track is only parked when everything is published), or
    made empty when nothing was published since a rebuild began.
    """

    policy: Policy | None
    identity: tuple  # VW command line, scaling and forgetting rules: a model is a function of the log and these
    version: int
    cursor: int  # the store's log position: seq on SQLite, (xid, seq) packed into one int on PostgreSQL
    learned: int
    published_at: float
    dirty: bool = False
    reset_id: int = 0
    from_snapshot: bool = False  # the newest snapshot (``version``) holds this track's state
    used_at: float = 0.0

    @property
    def rules(self) -> tuple:
        return self.identity[2]


class _Stale(Exception):
    """A parked track's snapshot is no longer the newest; the track starts over next pass."""


class _SteppedBack(Exception):
    """Another learner took the lease during this pass: stop, publish nothing more."""


class Learner:
    """Learn every closed decision exactly once and publish snapshots every ``update_seconds``."""

    def __init__(self, store, clock=None, batch_size: int = 2000, grace_seconds: float = 0.0,
                 lease_owner: str | None = None, lease_seconds: float = 30.0, checkpoints: bool = False,
                 archive=None, budget_bytes: int = DEFAULT_BUDGET_BYTES,
                 idle_seconds: float = DEFAULT_IDLE_SECONDS, retention_seconds: float = RETENTION_EVERY_SECONDS):
        """``checkpoints``: fold the WAL back after every batch, for a learner process that owns
        checkpoints (serving workers never run one); a long rebuild then cannot grow the WAL.
        ``archive`` (``experiments.reporting.archive.Archive``): learned, closed decisions go to
        Parquet, committed with the model that learned them. ``budget_bytes`` and
        ``idle_seconds`` bound the policies kept in memory (``experiments.model_memory``);
        ``retention_seconds`` is how often retention runs."""
        self.store = store
        self.archive = archive
        self.clock = clock or SystemClock()
        self.batch_size = batch_size
        self.grace_seconds = grace_seconds
        self.lease_owner = lease_owner
        self.lease_seconds = lease_seconds
        self.checkpoints = checkpoints
        self.budget_bytes = budget_bytes
        self.idle_seconds = idle_seconds
        self._loaded_since_park = 0
        self.retention_seconds = retention_seconds
        self._tracks: dict[str, _Track] = {}
        self._token: int | None = None
        self._tokens: dict[str, int] = {}  # per-experiment lease tokens (PostgreSQL)
        self._retention_at = float("-inf")
        self.tuner = Tuner(store, self.clock)  # acts only on experiments whose spec asks for auto-tuning
        self._watches: dict = {}  # drift watches (experiments.forgetting), for experiments that ask for one
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def _track(self, key: str, spec) -> _Track:
        settings = spec.policy_settings()
        rules = rules_of(spec.learning)
        identity = (*settings.identity(), rules)
        reset_id, floor = self.store.model_reset(key)  # a reset model never learns what came before it
        track = self._tracks.get(key)
        if track and track.identity == identity and track.reset_id == reset_id:
            return track
        row = self.store.latest_model(key, with_blob=False)
        version = row["version"] if row else 0
        fresh = track is None or track.reset_id != reset_id
        now = self.clock.now()
        if fresh and models.matches(row, settings, rules) and row["cursor_seq"] >= floor:
            track = _Track(None, identity, version, row["cursor_seq"], row["learned"], now, reset_id=reset_id,
                           from_snapshot=True, used_at=now)
        else:  # first model, or settings changed: rebuild from the start of the log (or the last reset)
            if track is not None or row:
                log.info("learning settings of %s changed; rebuilding its model from the log", key)
            track = _Track(None, identity, version, floor, 0, now, dirty=bool(row), reset_id=reset_id, used_at=now)
        self._tracks[key] = track
        return track

    def _policy(self, key: str, track: _Track, settings) -> Policy:
        """Return the track's policy, loading it from the newest snapshot when it was parked."""
        if track.policy is None:
            row = self.store.latest_model(key) if track.from_snapshot else None
            if track.from_snapshot and (row is None or row["version"] != track.version):
                self._tracks.pop(key, None)  # someone else published meanwhile: start over next pass
                raise _Stale(key)
            track.policy = models.load(row, settings) if row else Policy(settings)
            self._loaded_since_park += 1
        return track.policy

    def run_once(self, force_publish: bool = False) -> dict[str, int]:
        """Learn what has closed and publish snapshots that are due; return learned counts."""
        with self._lock:
            learned = {}
            if not self._hold_lease():
                return learned  # another process is this database's learner
            try:
                for row in self.store.list_experiments():
                    if row["status"] != "draft" and self._owns(row["key"]):
                        self._pass(row, learned, force_publish)
                    if self._loaded_since_park >= PARK_EVERY_LOADS:
                        self._park()  # within the pass too, so a pass over 1,000 experiments stays in budget
                self._retain()
            except _SteppedBack:
                return learned
            self._park()
            return learned

    def _pass(self, row: dict, learned: dict, force_publish: bool) -> None:
        """Learn, publish, archive and tune one experiment."""
        spec = parse_spec(row["spec"], check_vw=False)
        track = self._track(row["key"], spec)
        try:
            learned[row["key"]], change = self._learn_closed(row["key"], spec, track)
            if change is not None:  # the next pass rebuilds the model without what the group did before
                self._watches[row["key"]].watch.forget(change)
                forget(self.store, self.clock, row["key"], spec.learning, change)
                return
            if not self._maybe_publish(row, spec, track, force_publish) and not track.dirty:
                self._archive_alone(row["key"], spec, track)
        except _Stale:
            return
        if self.archive is not None:
            self.archive.expire(row["key"], self.clock.now(), spec.data["retention"]["days"])
        self.tuner.after_pass(row, spec, track.cursor, learned[row["key"]])

    def _owns(self, key: str) -> bool:
        """Hold this experiment's own lease where the store has them; a new token means others may have published."""
        if not self.lease_owner or not self.store.per_experiment_leases:
            return True
        token = self.store.acquire_lease(f"learner:{key}", self.lease_owner, self.clock.now(), self.lease_seconds)
        if token != self._tokens.get(key):
            if token is not None:
                log.info("learner %s now owns %s (token %d)", self.lease_owner, key, token)
            self._tracks.pop(key, None)
            self._tokens.pop(key, None)
            if token is not None:
                self._tokens[key] = token
        return token is not None

    def _lease(self, key: str):
        """The lease a publish of ``key`` is fenced by: (name, owner, token), or None without leases."""
        if not self.lease_owner:
            return None
        if self.store.per_experiment_leases:
            return f"learner:{key}", self.lease_owner, self._tokens.get(key)
        return "learner", self.lease_owner, self._token

    def _hold_lease(self) -> bool:
        """Take or renew the learner lease; after losing it, forget every track (others may have published)."""
        if not self.lease_owner or self.store.per_experiment_leases:
            return True
        token = self.store.acquire_lease("learner", self.lease_owner, self.clock.now(), self.lease_seconds)
        if token != self._token:
            if self._token is None and token is not None:
                log.info("learner %s holds the lease (token %d)", self.lease_owner, token)
            self._tracks.clear()
            self._token = token
        return token is not None

    def _learn_closed(self, key: str, spec, track: _Track):
        """Learn what has closed; return how many decisions passed and the drift the watch saw, if any.

        A drift stops the pass at once: the model is rebuilt from the log next pass.
        """
        reward = spec.reward
        rules, watch = track.rules, watch_for(self._watches, key, spec.learning)
        total = 0
        while True:
            closed_by = self.clock.now() - self.grace_seconds
            rows = self.store.closed_decisions(key, track.cursor, closed_by, self.batch_size)
            if not rows:
                return total, None
            policy = self._policy(key, track, spec.policy_settings())
            by_seq = defaultdict(list)
            for r in self.store.rewards_for([row["seq"] for row in rows]):
                by_seq[r["decision_seq"]].append((r["slot"], r["value"]))
            learned, change = 0, None
            for passed, row in enumerate(rows, start=1):
                if not learnable(row):
                    continue  # skipped for good: never activated, or logged only
                context = loads(row["context"])
                left_out = forgotten(rules, row["seq"], context)
                if left_out and watch is None:
                    continue
                values, chosen, labels = training_labels(row, by_seq.get(row["seq"], []), reward,
                                                         policy.settings.slots)
                if not left_out:
                    policy.learn(context_text(context), self.store.actions(row["candidate_set"]), chosen, labels,
                                 slot_texts=slot_texts(row))
                    learned += 1
                if watch is not None:
                    change = watch.observe(row["cursor"], row["seq"], context, sum(values))
                    if change is not None:
                        break
            track.cursor = row["cursor"]  # the last one passed: the batch's end, or the drift
            track.learned += learned
            track.dirty = True
            track.used_at = self.clock.now()
            total += passed
            if change is not None or len(rows) < self.batch_size:
                return total, change
            if self.checkpoints:
                self.store.checkpoint()  # more to come: a long catch-up must not grow the WAL

    def _maybe_publish(self, experiment: dict, spec, track: _Track, force: bool) -> bool:
        now = self.clock.now()
        if not track.dirty or (not force and now - track.published_at < spec.learning["update_seconds"]):
            return False
        key = experiment["key"]
        policy = self._policy(key, track, spec.policy_settings())
        if policy.waiting:
            return False  # still observing feature statistics: nothing learned yet, and a restart re-reads them
        lease = self._lease(key)
        batch, archived = self._archive_batch(key, spec, track, now), False
        try:
            archived = self.store.publish_model({
                "experiment": key, "version": track.version + 1, "args": track.identity[0],
                "features": models.features_column(policy.settings, policy.statistics(), track.rules),
                "spec_version": experiment["version"],
                "cursor_seq": track.cursor, "learned": track.learned, "created_at": now,
                "learner": self.lease_owner or "in-process", "model": policy.save(),
            }, lease=lease, archive=batch.commit() if batch else None)
        except PublishRefused as exc:
            self._refused(key, exc)
            return False
        finally:
            if batch:
                self.archive.finish(batch, archived)
        track.version += 1
        track.published_at = now
        track.dirty = False
        track.from_snapshot = True
        return True

    def _refused(self, key: str, exc: PublishRefused) -> None:
        """A publish was fenced off: without the lease step back entirely, else start this track over."""
        if exc.lease_lost and self.store.per_experiment_leases:
            log.info("not publishing: %s; this learner leaves %s", exc, key)
            self._tracks.pop(key, None)
            self._tokens.pop(key, None)
            return
        if exc.lease_lost:
            log.info("not publishing: %s; this learner steps back", exc)
            self._tracks.clear()
            self._token = None
            raise _SteppedBack() from None
        log.info("not publishing: %s; reloading it", exc)
        self._tracks.pop(key, None)

    def _archive_alone(self, key: str, spec, track: _Track) -> None:
        """Archive what the published model has learned when no new snapshot is coming (traffic stopped)."""
        batch, archived = self._archive_batch(key, spec, track, self.clock.now()), False
        if batch:
            try:
                archived = self.store.commit_archive(batch.commit())
            finally:
                self.archive.finish(batch, archived)

    def _archive_batch(self, key: str, spec, track: _Track, now: float):
        """Write the decisions this model has learned (closed, not archived yet) as pending Parquet files.

        A failing archive (a full disk, say) costs the archive a turn, never the model its publication.
        """
        if self.archive is None:
            return None
        try:
            return self.archive.prepare(key, spec.reward, track.cursor, now - self.grace_seconds, now)
        except Exception:
            log.exception("archiving %s failed; the decisions stay in the live store and the next snapshot retries",
                          key)
            return None

    def _park(self) -> None:
        """Drop policies that are idle or past the memory budget; only published ones, so nothing is lost."""
        loaded = {key: t for key, t in self._tracks.items() if t.policy is not None}
        unpublished = sum(t.policy.footprint() for t in loaded.values() if t.dirty)
        clean = {key: (t.used_at, t.policy.footprint()) for key, t in loaded.items() if not t.dirty}
        dropped = to_evict(clean, self.budget_bytes - unpublished, self.clock.now() - self.idle_seconds)
        for key in dropped:
            self._tracks[key].policy = None
        self._loaded_since_park = 0
        if dropped:
            release_free_memory()

    def _retain(self) -> None:
        """Apply each experiment's log retention, every ``retention_seconds``."""
        now = self.clock.now()
        if now - self._retention_at < self.retention_seconds:
            return
        self._retention_at = now
        if self.lease_owner and self.store.per_experiment_leases and self.store.acquire_lease(
                "retention", self.lease_owner, now, self.lease_seconds) is None:
            return  # another learner of this database runs retention
        for key, counts in apply_retention(self.store, now).items():
            log.info("retention deleted %d decisions and %d rewards of %s", counts["decisions"],
                     counts["rewards"], key)

    def lag(self) -> dict[str, int]:
        """Return, per experiment, how many logged decisions are not learned yet."""
        with self._lock:
            return {key: self.store.backlog(key, t.cursor) for key, t in self._tracks.items()}

    # -- background thread ---------------------------------------------------
    def start(self, interval: float = 0.5) -> None:
        """Run ``run_once`` every ``interval`` real seconds in a daemon thread."""
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(interval,), name="silent-learner", daemon=True)
        self._thread.start()

    def _loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.run_once()
            except Exception:
                log.exception("learner pass failed; retrying")

    def stop(self) -> None:
        """Stop the thread, publish what was learned since the last snapshot, hand back the lease."""
        self._stop.set()
        if self._thread:
            self._thread.join()
            self._thread = None
        self.run_once(force_publish=True)
        if self.lease_owner:
            self.store.release_leases(self.lease_owner)

    def run_forever(self, stop: threading.Event, interval: float = 0.5) -> None:
        """Learn until ``stop`` is set, then publish; the body of the learner process."""
        while not stop.wait(interval):
            try:
                self.run_once()
                self.store.checkpoint()  # also when nothing closed: the workers keep writing
            except Exception:
                log.exception("learner pass failed; retrying")
        self.stop()
