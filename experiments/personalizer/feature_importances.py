"""Personalizer's Feature Importances (2022-09-01-preview) on the native feature importance.

``PUT /featureImportances/{id}`` with ``{name, startTime, endTime}`` stores a job
and computes it in a background thread, one replay at a time per process as
evaluations are (``experiments.reporting.feature_importance``). ``GET`` answers
``Running`` until the job is ``Succeeded``, with ``featureScores`` most important
first (the top one scores 1), or ``Failed`` with a ``description``. A job whose
process stopped is marked failed once its heartbeat is stale.

Namespaces are named as the shop sent the features: a context object's key
(``{"user": {...}}`` -> ``user``), an action's or slot's feature object key
(``{"productInfo": {"category": ...}}`` -> ``productInfo``); loose features are
under ``contextFeatures``, ``actionFeatures`` and ``slotFeatures``, and the action
id, which this service learns from as a feature, under ``action``.
"""
from __future__ import annotations

import logging

from experiments import background
from experiments.errors import NotFound
from experiments.personalizer.errors import PersonalizerError
from experiments.personalizer.evaluations import parse_job
from experiments.reporting.evaluation import HEARTBEAT_SECONDS, REPLAY_SLOT, STALE_SECONDS, count_closed
from experiments.reporting.feature_importance import feature_importance
from experiments.reporting.logdata import Window
from experiments.times import iso
from experiments.store import dumps, loads

log = logging.getLogger(__name__)

FIELDS = {"name", "startTime", "endTime"}
STATUS = {"running": "Running", "done": "Succeeded", "failed": "Failed"}
LOOSE = {"context": "contextFeatures", "candidate": "actionFeatures", "slot": "slotFeatures"}
ACTION_ID = ("candidate", None, "id")  # the feature every candidate carries: its id
MAX_RUNNING = 3  # jobs of one resource queued or running at once (each holds a thread until it is done)


def parse_contract(feature_importance_id: str, body) -> dict:
    """Validate a feature importance contract; return its name and time range (epoch seconds)."""
    _, name, start, end = parse_job(feature_importance_id, "featureImportanceId", body, FIELDS,
                                    "feature importance contract")
    return {"name": name, "start": start, "end": end}


def feature_score(feature: dict) -> dict:
    """One native feature score in Personalizer's ``{namespace, featureName, score}``.

    >>> feature_score({"source": "candidate", "namespace": None, "feature": "productInfo.category", "score": 0.5})
    {'namespace': 'productInfo', 'featureName': 'category', 'score': 0.5}
    >>> feature_score({"source": "context", "namespace": None, "feature": "hour", "score": 1.0})
    {'namespace': 'contextFeatures', 'featureName': 'hour', 'score': 1.0}
    """
    namespace, name = feature["namespace"], feature["feature"]
    if (feature["source"], namespace, name) == ACTION_ID:
        namespace = "action"
    elif namespace is None:
        head, dot, rest = name.partition(".")
        namespace, name = (head, rest) if dot and feature["source"] != "context" else (LOOSE[feature["source"]], name)
    return {"namespace": namespace, "featureName": name, "score": feature["score"]}


class PersonalizerFeatureImportances:
    """Create, run, read, list and delete the feature importance jobs of a resource."""

    def __init__(self, store, clock):
        self.store = store
        self.clock = clock

    def create(self, key: str, feature_importance_id: str, body) -> None:
        """Store a new job and start it; the range must hold logged decisions."""
        contract = parse_contract(feature_importance_id, body)
        window = Window(key, contract["start"], contract["end"], 3600)
        if not count_closed(self.store, window, float("inf")):
            raise PersonalizerError("NoLogsExistInDateRange", "No logs exist in date range.", "startTime")
        now = self.clock.now()
        self._expire_stale(key)
        with self.store.write_lock():
            if self._row(key, feature_importance_id, required=False):
                raise PersonalizerError("FeatureImportanceAlreadyExists",
                                        f"Feature importance with id {feature_importance_id} already exists.",
                                        "featureImportanceId")
            running = self.store.conn.execute("SELECT count(*) FROM personalizer_feature_importances"
                                              " WHERE experiment = ? AND status = 'running'", (key,)).fetchone()[0]
            if running >= MAX_RUNNING:
                raise PersonalizerError("OperationNotAllowed", f"{running} feature importances are still running;"
                                        " wait for one to finish", "featureImportanceId")
            self.store.conn.execute(
                "INSERT INTO personalizer_feature_importances (experiment, id, name, start_time, end_time, status,"
                " done, total, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'running', 0, 0, ?, ?)",
                (key, feature_importance_id, contract["name"], contract["start"], contract["end"], now, now))
        background.start(self.run, key, feature_importance_id, name=f"silent-feature-importance-{key}")

    def run(self, key: str, feature_importance_id: str) -> None:
        """Compute a stored job now (after any other replay of this process) and keep its result or error."""
        row = self._row(key, feature_importance_id, required=False)
        if row is None:
            return  # deleted before it started: nothing to compute, nowhere to keep a result
        while not REPLAY_SLOT.acquire(timeout=HEARTBEAT_SECONDS):
            if background.stopping():
                return self._interrupted(key, feature_importance_id)
            self._update(key, feature_importance_id, updated_at=self.clock.now())
        try:
            window = Window(key, row["start_time"], row["end_time"], 3600)
            result = feature_importance(self.store, window, self.clock.now(), self._progress(key, feature_importance_id))
            self._update(key, feature_importance_id, status="done", scores=dumps(result["features"]),
                         updated_at=self.clock.now())
        except background.Stopped:
            self._interrupted(key, feature_importance_id)
        except Exception as exc:  # a failed job is reported on its row, never lost silently
            log.exception("feature importance %s of %s failed", feature_importance_id, key)
            self._update(key, feature_importance_id, status="failed", error=str(exc) or type(exc).__name__,
                         updated_at=self.clock.now())
        finally:
            REPLAY_SLOT.release()

    def _progress(self, key: str, feature_importance_id: str):
        last = [float("-inf")]

        def progress(done: int, total: int) -> None:
            background.check()
            now = self.clock.now()
            if now - last[0] >= HEARTBEAT_SECONDS or done == total:
                last[0] = now
                self._update(key, feature_importance_id, done=done, total=total, updated_at=now)
        return progress

    def _interrupted(self, key: str, feature_importance_id: str) -> None:
        self._update(key, feature_importance_id, status="failed", error=background.INTERRUPTED,
                     updated_at=self.clock.now())

    def _update(self, key: str, feature_importance_id: str, **values) -> None:
        assignments = ", ".join(f"{name} = ?" for name in values)
        self.store.conn.execute(f"UPDATE personalizer_feature_importances SET {assignments}"
                                " WHERE experiment = ? AND id = ?", (*values.values(), key, feature_importance_id))

    def _expire_stale(self, key: str) -> None:
        self.store.conn.execute(
            "UPDATE personalizer_feature_importances SET status = 'failed',"
            " error = ? WHERE experiment = ? AND status = 'running' AND updated_at < ?",
            (background.INTERRUPTED, key, self.clock.now() - STALE_SECONDS))

    def _row(self, key: str, feature_importance_id: str, required: bool = True) -> dict | None:
        row = self.store.query_one("SELECT * FROM personalizer_feature_importances WHERE experiment = ? AND id = ?",
                                   (key, feature_importance_id))
        if row is None and required:
            raise NotFound("Feature importance not found.", field="featureImportanceId")
        return row

    def get(self, key: str, feature_importance_id: str) -> dict:
        """One job with, once it succeeded, its feature scores."""
        self._expire_stale(key)
        return _document(self._row(key, feature_importance_id), with_scores=True)

    def list(self, key: str, top: int | None, skip: int, page_size: int) -> tuple[list[dict], bool]:
        """Return a page of jobs, newest first, and whether more follow within ``top``."""
        self._expire_stale(key)
        wanted = page_size + 1 if top is None else min(page_size + 1, top)
        rows = self.store.query("SELECT * FROM personalizer_feature_importances WHERE experiment = ?"
                                " ORDER BY created_at DESC, id LIMIT ? OFFSET ?", (key, wanted, skip))
        return [_document(row, with_scores=False) for row in rows[:page_size]], len(rows) > page_size

    def delete(self, key: str, feature_importance_id: str) -> None:
        self._row(key, feature_importance_id)
        with self.store.write_lock():
            self.store.conn.execute("DELETE FROM personalizer_feature_importances WHERE experiment = ? AND id = ?",
                                    (key, feature_importance_id))


def _document(row: dict, with_scores: bool) -> dict:
    status = STATUS[row["status"]]
    document = {"id": row["id"], "name": row["name"], "startTime": iso(row["start_time"]),
                "endTime": iso(row["end_time"]), "creationTime": iso(row["created_at"]), "status": status}
    if with_scores and status == "Succeeded":
        document["featureScores"] = [feature_score(f) for f in loads(row["scores"])]
    if status == "Running" and row["total"]:
        document["description"] = f"{row['done']} of {row['total']} logged decisions learned"
    elif status == "Failed":
        document["description"] = row["error"]
    return document
