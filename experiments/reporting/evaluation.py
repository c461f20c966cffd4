"""Counterfactual evaluation: would other exploration or learning settings have done better?

A request names alternative ``exploration`` and/or ``learning`` settings (merged
into the experiment's spec as a PATCH would). The logged decisions are replayed
in log order through two fresh VW learners, the alternative and the live
settings: each decision is first scored (the learner's first-slot distribution
before it has seen that decision) and then learned exactly as the live learner
learns it. IPS, SNIPS and DR of both, and of their difference, come out with
95% intervals, so "would squarecb have beaten epsilon 0.2 on our own traffic?"
has an answer before anyone changes the live experiment.

Evaluations run in background threads, one at a time per process, and keep
their progress and result in the ``evaluations`` table, so any server process
can answer ``GET``. An evaluation whose process died is marked failed once its
heartbeat is older than ``STALE_SECONDS``.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

from bandit import estimators
from bandit.encoding import context_text
from bandit.policy import Policy
from experiments import background
from experiments.reporting import offpolicy
from experiments.clock import SystemClock
from experiments.errors import InvalidField, NotFound
from experiments.labels import learnable, slot_texts, training_labels
from experiments.reporting.logdata import Window
from experiments.reporting.reports import parse_window
from experiments.times import iso
from experiments.spec import apply_patch, parse_spec
from experiments.store import dumps, loads

log = logging.getLogger(__name__)

REQUEST_FIELDS = {"exploration", "learning", "limit", "from", "to"}
MAX_LIMIT = 10_000_000
CHUNK = 2000
BUCKET_SECONDS = 300  # the finest time window of per-policy sums (Personalizer's 5 minutes)
STALE_SECONDS = 120.0
HEARTBEAT_SECONDS = 2.0
REPLAY_SLOT = threading.Semaphore(1)  # replays are CPU-bound: one at a time per process


@dataclass(frozen=True)
class Request:
    """A validated evaluation request."""

    key: str
    patch: dict
    candidate: object  # Spec with the alternative settings
    live: object  # Spec as it is now
    window: Window
    limit: int | None


def parse_request(store, key: str, body) -> Request:
    """Validate a body like {"exploration": {...}, "learning": {...}, "limit": 50000, "from", "to"}."""
    experiment = store.existing_experiment(key)
    if not isinstance(body, dict):
        raise InvalidField("", "the body must be a JSON object")
    unknown = set(body) - REQUEST_FIELDS
    if unknown:
        raise InvalidField(sorted(unknown)[0], "unknown field; give exploration and/or learning settings")
    patch = {name: body[name] for name in ("exploration", "learning") if name in body}
    if not patch:
        raise InvalidField("exploration", "give the exploration and/or learning settings to evaluate")
    candidate, _ = apply_patch(experiment["spec"], patch)
    limit = body.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT):
        raise InvalidField("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    window = parse_window(key, body.get("from"), body.get("to"))
    return Request(key, patch, candidate, parse_spec(experiment["spec"], check_vw=False), window, limit)


# -- replay ----------------------------------------------------------------------------------------
class Track:
    """One replayed learner and what it would have done on each logged decision."""

    def __init__(self, name: str, spec):
        self.name, self.spec = name, spec
        self.settings = spec.policy_settings()
        self.policy = Policy(self.settings)
        self.p_target: list[float] = []
        self.q_target: list[float] = []

    def score_and_learn(self, shared, actions, index, predicted, chosen, values, slots, score: bool = True) -> None:
        if score:
            pmf = self.policy.pmf(shared, actions)
            self.p_target.append(float(pmf[index]))
            self.q_target.append(float(pmf @ predicted))
        self.policy.learn(shared, actions, chosen, values, slot_texts=slots)

    def view(self) -> dict:
        return {"policy": self.name, "exploration": self.spec.data["exploration"],
                "learning": self.spec.data["learning"], "args": self.settings.args()}


def replay(store, request: Request, closed_by: float, progress: Callable[[int, int], None] | None = None) -> dict:
    """Replay the closed decisions of the window in log order through the candidate and live learners."""
    total = count_closed(store, request.window, closed_by, request.limit)
    run = Replay(store, [Track("candidate", request.candidate), Track("live", request.live)], request.live.reward)
    done = 0
    try:
        for rows, rewards in closed_chunks(store, request.window, closed_by, total):
            for row in rows:
                run.step(row, rewards.get(row["seq"], []))
            done += len(rows)
            if progress:
                progress(done, total)
    finally:
        for track in run.tracks:
            track.policy.close()
    return _result(run.tracks, run.logged)


_CLOSED = ("FROM decisions WHERE experiment = ? AND created_at >= ? AND created_at < ? AND window_closes_at <= ?"
           " AND seq > ?")


def count_closed(store, window: Window, closed_by: float, limit: int | None = None) -> int:
    """How many decisions of the window have closed by ``closed_by`` (at most ``limit``)."""
    count = store.conn.execute(f"SELECT count(*) {_CLOSED}", (*window.params(), closed_by, 0)).fetchone()[0]
    return min(count, limit or count)


ROW_COLUMNS = ("seq, variant, context, candidate_set, slate, defer_activation, activated_at, learning_mode,"
               " model_slate, slot_context, created_at")


def closed_chunks(store, window: Window, closed_by: float, total: int, skip: int = 0):
    """Yield ``total`` closed decisions in log order, after the first ``skip``, with their on-time
    (slot, value) rewards by seq."""
    after, seen = 0, 0
    if skip:
        row = store.conn.execute(f"SELECT seq {_CLOSED} ORDER BY seq LIMIT 1 OFFSET ?",
                                 (*window.params(), closed_by, 0, skip - 1)).fetchone()
        after = row[0] if row else after
    while seen < total:
        rows = store.query(
            f"SELECT {ROW_COLUMNS} {_CLOSED} ORDER BY seq LIMIT ?",
            (*window.params(), closed_by, after, min(CHUNK, total - seen)))
        if not rows:
            return
        yield rows, _rewards_by_seq(store, rows)
        after, seen = rows[-1]["seq"], seen + len(rows)


def decisions_between(store, key: str, after_seq: int, until_seq: int, limit: int) -> tuple[list, dict]:
    """Return up to ``limit`` decisions with after_seq < seq <= until_seq, in log order, and their rewards."""
    rows = store.query(f"SELECT {ROW_COLUMNS} FROM decisions WHERE experiment = ? AND seq > ? AND seq <= ?"
                       " ORDER BY seq LIMIT ?", (key, after_seq, until_seq, limit))
    return rows, _rewards_by_seq(store, rows)


def _rewards_by_seq(store, rows: list[dict]) -> dict[int, list]:
    rewards: dict[int, list] = {}
    for reward in store.rewards_for([row["seq"] for row in rows]):
        rewards.setdefault(reward["decision_seq"], []).append((reward["slot"], reward["value"]))
    return rewards


class Replay:
    """The state of one replay: the learners, an online reward model, and what was logged."""

    def __init__(self, store, tracks: list[Track], reward_spec: dict):
        self.store, self.tracks, self.reward_spec = store, tracks, reward_spec
        self.model = offpolicy.OnlineRewardModel()
        self.logged = {"reward": [], "p_logged": [], "q_logged": [], "bandit": [], "at": []}

    def step(self, row: dict, rewards: list, score: bool = True) -> None:
        """Score one logged decision with every learner, then let each learn it as the live learner did.

        Without ``score`` the learners only learn it (a warm-up before the decisions that are scored).
        """
        slate = loads(row["slate"])
        first = slate[0]
        if not first["probability"] > 0 or not learnable(row):
            return  # the live learner skips these too: never activated, or logged only
        candidates = self.store.candidates(row["candidate_set"])
        actions = self.store.actions(row["candidate_set"])
        shared = context_text(loads(row["context"]))
        # every track has the experiment's slots: only exploration and learning settings differ
        values, chosen, learned = training_labels(row, rewards, self.reward_spec, self.tracks[0].settings.slots)
        predicted = self.model.predict(candidates)
        slots = slot_texts(row)
        for track in self.tracks:
            track.score_and_learn(shared, actions, first["index"], predicted, chosen, learned, slots, score)
        if not score:
            self.model.update(candidates[first["index"]]["id"], values[0])
            return
        for name, value in (("reward", values[0]), ("p_logged", min(1.0, first["probability"])),
                            ("q_logged", float(predicted[first["index"]])), ("bandit", row["variant"] == "bandit"),
                            ("at", row["created_at"])):
            self.logged[name].append(value)
        self.model.update(candidates[first["index"]]["id"], values[0])


def _result(tracks: list[Track], logged: dict) -> dict:
    """Estimates of each replayed learner, of their difference, and what the log itself earned."""
    reward = np.array(logged["reward"], dtype=float)
    policies, terms = _policies(tracks, logged)
    difference = _difference(terms["candidate"], terms["live"])
    bandit = np.array(logged["bandit"], dtype=bool)
    return {"decisions": int(reward.size), "slot": 0, "policies": policies, "difference": difference,
            "verdict": _verdict(difference["dr"]),
            "logged": {"all": _mean(reward), "bandit": _mean(reward[bandit]) if bandit.any() else _mean([])}}


def _policies(tracks: list[Track], logged: dict) -> tuple[list[dict], dict]:
    """Each track's IPS, SNIPS and DR, and its per-decision IPS and DR terms by track name."""
    reward, p_logged, q_logged = (np.array(logged[k], dtype=float) for k in ("reward", "p_logged", "q_logged"))
    policies, terms = [], {}
    for track in tracks:
        p_target = np.clip(np.array(track.p_target, dtype=float), 0.0, 1.0)
        q_target = np.array(track.q_target, dtype=float)
        weights = p_target / p_logged
        terms[track.name] = (weights * reward, q_target + weights * (reward - q_logged))
        policies.append({**track.view(), **offpolicy.estimates(reward, p_logged, p_target, q_logged, q_target),
                         "buckets": bucket_sums(np.array(logged["at"], dtype=float), weights, *terms[track.name])})
    return policies, terms


def compare_with_live(tracks: list[Track], logged: dict, alpha: float) -> tuple[dict, list[dict]]:
    """Return live's estimates, and every other track's with its paired difference from live at ``alpha``."""
    policies, terms = _policies(tracks, logged)
    live = next(policy for policy in policies if policy["policy"] == "live")
    return live, [{**policy, "difference": _difference(terms[policy["policy"]], terms["live"], alpha)}
                  for policy in policies if policy["policy"] != "live"]


def bucket_sums(at: np.ndarray, weights: np.ndarray, ips: np.ndarray, dr: np.ndarray) -> list[list[float]]:
    """Additive sums per ``BUCKET_SECONDS`` window with decisions, for time series at any coarser width.

    Each entry is [window start, decisions, sum of weights, of IPS terms, of their squares, decisions the
    policy could have chosen (weight > 0), sum of DR terms, of their squares].

    >>> bucket_sums(np.array([0.0, 10.0, 400.0]), np.array([2.0, 0.0, 1.0]), np.array([2.0, 0.0, 1.0]),
    ...             np.array([1.0, 0.5, 1.0]))
    [[0.0, 2, 2.0, 2.0, 4.0, 1.0, 1.5, 1.25], [300.0, 1, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]]
    """
    if at.size == 0:
        return []
    starts, index = np.unique(np.floor(at / BUCKET_SECONDS) * BUCKET_SECONDS, return_inverse=True)
    sums = [np.bincount(index, weights=values, minlength=starts.size)
            for values in (weights, ips, ips * ips, (weights > 0).astype(float), dr, dr * dr)]
    counts = np.bincount(index, minlength=starts.size)
    return [[float(starts[i]), int(counts[i]), *(round(float(column[i]), 9) for column in sums)]
            for i in range(starts.size)]


def _difference(candidate: tuple, live: tuple, alpha: float = 0.05) -> dict:
    """Candidate minus live, per decision (paired), for IPS and DR terms."""
    return {name: _mean(candidate[i] - live[i], alpha) for i, name in enumerate(("ips", "dr"))}


def _mean(values, alpha: float = 0.05) -> dict:
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return {"value": None, "low": None, "high": None, "n": 0, "alpha": alpha}
    return estimators.mean_interval(values, alpha).to_dict()


def _verdict(dr: dict) -> str:
    """Say which settings win on DR, only when the 95% interval of the difference excludes 0."""
    if dr["low"] is not None and dr["low"] > 0:
        return "candidate better"
    if dr["high"] is not None and dr["high"] < 0:
        return "live better"
    return "no clear difference"


# -- background runs and their rows ------------------------------------------------------------------
class Evaluations:
    """Create, run (in the background or here) and read evaluations of one store."""

    def __init__(self, store, clock=None):
        self.store = store
        self.clock = clock or SystemClock()

    def create(self, key: str, body, request: Request | None = None) -> dict:
        """Validate a request and store it as queued; nothing is written when it is invalid.

        A caller that validated the body already passes its ``parse_request`` result.
        """
        request = request or parse_request(self.store, key, body)
        now = self.clock.now()
        options = {"limit": request.limit, "from": body.get("from"), "to": body.get("to")}
        with self.store.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO evaluations (experiment, status, spec, options, done, total, created_at, updated_at)"
                " VALUES (?, 'queued', ?, ?, 0, 0, ?, ?)", (key, dumps(request.patch), dumps(options), now, now))
        return self.get(key, cursor.lastrowid)

    def submit(self, key: str, body, request: Request | None = None) -> dict:
        """Create an evaluation and run it in a background thread; return it as queued."""
        view = self.create(key, body, request)
        background.start(self.run, view["id"], name=f"silent-evaluation-{view['id']}")
        return view

    def run(self, evaluation_id: int, progress: Callable[[int, int], None] | None = None) -> dict:
        """Run a queued evaluation now (waiting for any other to finish); store and return its view."""
        row = self._row(evaluation_id)
        while not REPLAY_SLOT.acquire(timeout=HEARTBEAT_SECONDS):
            if background.stopping():
                return self._interrupted(row, evaluation_id)
            self._update(evaluation_id, updated_at=self.clock.now())
        try:
            self._update(evaluation_id, status="running", started_at=self.clock.now(), updated_at=self.clock.now())
            body = {**loads(row["spec"]), **{k: v for k, v in loads(row["options"]).items() if v is not None}}
            request = parse_request(self.store, row["experiment"], body)
            result = replay(self.store, request, self.clock.now(), self._progress(evaluation_id, progress))
            self._update(evaluation_id, status="done", result=dumps(result), finished_at=self.clock.now(),
                         updated_at=self.clock.now())
        except background.Stopped:
            return self._interrupted(row, evaluation_id)
        except Exception as exc:  # a failed run is reported on its row, never lost silently
            log.exception("evaluation %s failed", evaluation_id)
            self._update(evaluation_id, status="failed", error=str(exc) or type(exc).__name__,
                         finished_at=self.clock.now(), updated_at=self.clock.now())
        finally:
            REPLAY_SLOT.release()
        return self.get(row["experiment"], evaluation_id)

    def _progress(self, evaluation_id: int, callback):
        last = [float("-inf")]

        def progress(done: int, total: int) -> None:
            background.check()
            if callback:
                callback(done, total)
            now = self.clock.now()
            if now - last[0] >= HEARTBEAT_SECONDS or done == total:
                last[0] = now
                self._update(evaluation_id, done=done, total=total, updated_at=now)
        return progress

    def _interrupted(self, row: dict, evaluation_id: int) -> dict:
        now = self.clock.now()
        self._update(evaluation_id, status="failed", error=background.INTERRUPTED, finished_at=now, updated_at=now)
        return self.get(row["experiment"], evaluation_id)

    def _update(self, evaluation_id: int, **values) -> None:
        assignments = ", ".join(f"{name} = ?" for name in values)
        self.store.conn.execute(f"UPDATE evaluations SET {assignments} WHERE id = ?", (*values.values(), evaluation_id))

    def _row(self, evaluation_id: int) -> dict:
        row = self.store.query_one("SELECT * FROM evaluations WHERE id = ?", (evaluation_id,))
        if row is None:
            raise NotFound(f"evaluation {evaluation_id} does not exist", field="id")
        return row

    def _expire_stale(self, key: str) -> None:
        self.store.conn.execute(
            "UPDATE evaluations SET status = 'failed', error = ?, finished_at = ?"
            " WHERE experiment = ? AND status IN ('queued', 'running') AND updated_at < ?",
            (background.INTERRUPTED, self.clock.now(), key, self.clock.now() - STALE_SECONDS))

    def get(self, key: str, evaluation_id: int) -> dict:
        """Return one evaluation of an experiment with its progress and, once done, its result."""
        self._expire_stale(key)
        row = self.store.query_one("SELECT * FROM evaluations WHERE id = ? AND experiment = ?", (evaluation_id, key))
        if row is None:
            raise NotFound(f"evaluation {evaluation_id} of experiment {key!r} does not exist", field="id")
        return _view(row)

    def list(self, key: str) -> list[dict]:
        """Return an experiment's evaluations, newest first, without their results."""
        self.store.existing_experiment(key)
        self._expire_stale(key)
        rows = self.store.query("SELECT * FROM evaluations WHERE experiment = ? ORDER BY id DESC", (key,))
        return [{k: v for k, v in _view(row).items() if k != "result"} for row in rows]


def _view(row: dict) -> dict:
    return {"id": row["id"], "experiment": row["experiment"], "status": row["status"], "settings": loads(row["spec"]),
            "options": loads(row["options"]), "progress": {"done": row["done"], "total": row["total"]},
            "result": loads(row["result"]) if row["result"] else None, "error": row["error"],
            "created_at": iso(row["created_at"]), "started_at": iso(row["started_at"]),
            "finished_at": iso(row["finished_at"])}
