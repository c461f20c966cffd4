"""Schema migrations, applied in order and recorded in ``_migrations``.

Each migration is a function of a ``sqlite_utils.Database``; add new ones at the
end of ``MIGRATIONS`` and never edit one that has shipped.
"""
from __future__ import annotations

import json
import sqlite3
import time

import sqlite_utils

from bandit.exploration import SettingError
from bandit.vw_args import parse_vw_args


def m001_core(db: sqlite_utils.Database) -> None:
    db["experiments"].create(
        {"key": str, "name": str, "kind": str, "status": str, "version": int, "spec": str,
         "created_at": float, "updated_at": float},
        pk="key", if_not_exists=True,
    )
    db["experiment_history"].create(
        {"id": int, "experiment": str, "version": int, "status": str, "spec": str, "change": str,
         "actor": str, "at": float},
        pk="id", if_not_exists=True,
    )
    db["experiment_history"].create_index(["experiment", "version"], if_not_exists=True)
    db["decisions"].create(
        {"seq": int, "event_id": str, "experiment": str, "unit": str, "variant": str,
         "model_version": int, "spec_version": int, "context": str, "candidate_set": str,
         "excluded": str, "slate": str, "created_at": float, "window_closes_at": float},
        pk="seq", not_null={"event_id", "experiment", "variant", "slate", "created_at"}, if_not_exists=True,
    )
    db["decisions"].create_index(["event_id"], unique=True, if_not_exists=True)
    db["decisions"].create_index(["experiment", "created_at"], if_not_exists=True)
    # Candidate lists are stored once per distinct content and referenced by hash, so a
    # shop sending the same 50 candidates on every page view logs them once.
    db["candidate_sets"].create({"hash": str, "candidates": str, "size": int}, pk="hash", if_not_exists=True)
    db["rewards"].create(
        {"id": int, "event_id": str, "experiment": str, "decision_seq": int, "reward_key": str,
         "type": str, "item": str, "slot": int, "value": float, "received_at": float,
         "late": int, "duplicates": int},
        pk="id", not_null={"event_id", "decision_seq", "reward_key", "value", "received_at"},
        defaults={"late": 0, "duplicates": 0}, if_not_exists=True,
    )
    db["rewards"].create_index(["event_id", "reward_key"], unique=True, if_not_exists=True)
    db["rewards"].create_index(["decision_seq"], if_not_exists=True)
    db["rewards"].create_index(["experiment", "received_at"], if_not_exists=True)
    db["models"].create(
        {"id": int, "experiment": str, "version": int, "args": str, "spec_version": int,
         "cursor_seq": int, "learned": int, "created_at": float, "learner": str, "model": bytes},
        pk="id", if_not_exists=True,
    )
    db["models"].create_index(["experiment", "version"], unique=True, if_not_exists=True)


def m002_catalog(db: sqlite_utils.Database) -> None:
    db["catalog_items"].create(
        {"id": str, "features": str, "available": int, "version": int, "updated_at": float},
        pk="id", if_not_exists=True,
    )
    db["meta"].create({"name": str, "value": str}, pk="name", if_not_exists=True)


def m003_access(db: sqlite_utils.Database) -> None:
    db["api_keys"].create(
        {"id": int, "hash": str, "hint": str, "role": str, "label": str, "created_at": float, "revoked_at": float},
        pk="id", not_null={"hash", "role", "created_at"}, if_not_exists=True,
    )
    db["api_keys"].create_index(["hash"], unique=True, if_not_exists=True)
    db["users"].create({"id": int, "name": str, "password_hash": str, "created_at": float},
                       pk="id", not_null={"name", "password_hash"}, if_not_exists=True)
    db["users"].create_index(["name"], unique=True, if_not_exists=True)
    db["app_secrets"].create({"name": str, "value": str, "created_at": float}, pk="name", if_not_exists=True)


def m005_reports(db: sqlite_utils.Database) -> None:
    # Counting distinct units per variant (the sample-ratio check) reads only this index.
    db["decisions"].create_index(["experiment", "variant", "unit", "created_at"], if_not_exists=True)
    db["evaluations"].create(
        {"id": int, "experiment": str, "status": str, "spec": str, "options": str, "done": int, "total": int,
         "result": str, "error": str, "created_at": float, "started_at": float, "updated_at": float,
         "finished_at": float},
        pk="id", not_null={"experiment", "status", "spec", "created_at"}, defaults={"done": 0, "total": 0},
        if_not_exists=True,
    )
    db["evaluations"].create_index(["experiment", "id"], if_not_exists=True)


def m004_personalizer(db: sqlite_utils.Database) -> None:
    """Deferred activation, learning modes, per-slot context, model resets, Personalizer resources."""
    for name, kind in (("defer_activation", int), ("activated_at", float), ("learning_mode", str),
                       ("model_slate", str), ("slot_context", str)):
        if name not in db["decisions"].columns_dict:
            try:
                db["decisions"].add_column(name, kind)
            except sqlite3.OperationalError:  # another process added it a moment ago
                pass
    # A reset starts the model afresh: decisions up to ``after_seq`` are never learned again.
    db["model_resets"].create({"id": int, "experiment": str, "after_seq": int, "at": float},
                              pk="id", not_null={"experiment", "after_seq", "at"}, if_not_exists=True)
    db["model_resets"].create_index(["experiment", "id"], if_not_exists=True)
    db["personalizer_resources"].create(
        {"hash": str, "experiment": str, "hint": str, "created_at": float},
        pk="hash", not_null={"experiment", "created_at"}, if_not_exists=True,
    )
    db["personalizer_settings"].create({"experiment": str, "settings": str, "updated_at": float},
                                       pk="experiment", if_not_exists=True)
    db["personalizer_evaluations"].create(
        {"experiment": str, "id": str, "name": str, "request": str, "evaluation_id": int, "created_at": float},
        pk=("experiment", "id"), if_not_exists=True,
    )


def m006_unattributed_rewards(db: sqlite_utils.Database) -> None:
    """Rewards and activations for event ids this experiment never ranked (kept, counted, never learned)."""
    db["unattributed_rewards"].create(
        {"id": int, "experiment": str, "event_id": str, "kind": str, "slot_id": str, "value": float,
         "received_at": float},
        pk="id", not_null={"experiment", "event_id", "kind", "received_at"}, if_not_exists=True,
    )
    db["unattributed_rewards"].create_index(["experiment", "received_at"], if_not_exists=True)


def m007_feature_importances(db: sqlite_utils.Database) -> None:
    """Personalizer's feature importance jobs: a time range, their progress, then scores or an error."""
    db["personalizer_feature_importances"].create(
        {"experiment": str, "id": str, "name": str, "start_time": float, "end_time": float, "status": str,
         "done": int, "total": int, "scores": str, "error": str, "created_at": float, "updated_at": float},
        pk=("experiment", "id"), not_null={"name", "start_time", "end_time", "status", "created_at", "updated_at"},
        if_not_exists=True,
    )


def m008_archive(db: sqlite_utils.Database) -> None:
    """The Parquet archive: how far each experiment is archived, and the files that hold it."""
    db["archive_positions"].create({"experiment": str, "seq": int, "updated_at": float}, pk="experiment",
                                   not_null={"seq"}, if_not_exists=True)
    # One row per committed Parquet file; readers take the file list from here, never from the folder.
    db["archive_files"].create(
        {"id": int, "experiment": str, "dataset": str, "day": str, "path": str, "pending": str,
         "first_seq": int, "last_seq": int, "rows": int, "bytes": int, "created_at": float},
        pk="id", not_null={"experiment", "dataset", "day", "path", "first_seq", "last_seq", "rows"},
        if_not_exists=True,
    )
    db["archive_files"].create_index(["experiment", "dataset", "day"], if_not_exists=True)
    db["archive_files"].create_index(["path"], unique=True, if_not_exists=True)
    # Late rewards of archived decisions stay in the live store; reports find them here.
    db.execute("CREATE INDEX IF NOT EXISTS idx_rewards_late ON rewards (experiment, decision_seq) WHERE late = 1")


def m009_model_scaling(db: sqlite_utils.Database) -> None:
    """Models record how they scaled numeric features; older experiments keep VW's raw numbers and decay.

    The spec gained ``learning.decay`` and ``learning.scaling`` with new defaults;
    experiments stored before keep what they did: raw numbers and VW's --power_t
    (or the one their ``vw_args`` give).
    """
    if "features" not in db["models"].columns_dict:
        try:
            db["models"].add_column("features", str)
        except sqlite3.OperationalError:  # another process added it a moment ago
            pass
    for key, text in db.execute("SELECT key, spec FROM experiments").fetchall():
        spec = json.loads(text)
        learning = spec.get("learning", {})
        if "decay" in learning:
            continue
        learning["decay"] = 0.5
        learning["scaling"] = {"default": "raw", "features": {}}
        db.execute("UPDATE experiments SET spec = ? WHERE key = ?", [json.dumps(spec, separators=(",", ":")), key])


def m010_operations(db: sqlite_utils.Database) -> None:
    """When each candidate set was last written (for the clean-up after retention), the purges done,
    and the hash space of experiments made before it was a setting."""
    if "used_at" not in db["candidate_sets"].columns_dict:
        try:
            db["candidate_sets"].add_column("used_at", float)
        except sqlite3.OperationalError:  # another process added it a moment ago
            pass
    db["log_purges"].create(
        {"id": int, "experiment": str, "before": float, "decisions": int, "rewards": int, "reason": str,
         "at": float},
        pk="id", not_null={"experiment", "before", "at"}, if_not_exists=True,
    )
    db["log_purges"].create_index(["experiment", "id"], if_not_exists=True)
    # Experiments made before learning.hash_bits existed ran with VW's 18 bits; they keep them.
    db.execute("UPDATE experiments SET spec = json_set(spec, '$.learning.hash_bits', 18)"
               " WHERE json_extract(spec, '$.learning.hash_bits') IS NULL")


def m011_vw_args_allowlist(db: sqlite_utils.Database) -> None:
    """Drop extra VW arguments saved before the allowlist that it refuses (they could touch files or sockets).

    The change is a new version of the experiment with a history row that says why,
    so nothing disappears unexplained; arguments the allowlist accepts stay as they are.
    """
    _each_experiment(db, _drop_refused_vw_args)


def _each_experiment(db: sqlite_utils.Database, change) -> None:
    """Call ``change(db, key)`` for every experiment, each in its own write transaction."""
    for (key,) in db.execute("SELECT key FROM experiments").fetchall():
        db.execute("BEGIN IMMEDIATE")  # two processes starting at once change each experiment once
        try:
            change(db, key)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def _drop_refused_vw_args(db: sqlite_utils.Database, key: str) -> None:
    spec = json.loads(db.execute("SELECT spec FROM experiments WHERE key = ?", [key]).fetchone()[0])
    try:
        parse_vw_args(spec.get("learning", {}).get("vw_args", ""))
        return
    except SettingError as exc:
        refused = exc.message
    spec["learning"]["vw_args"] = ""
    _upgrade(db, key, spec, {"learning": {"vw_args": ""}},
             f"upgrade: the VW allowlist refused the old vw_args ({refused[:160]})")


def _upgrade(db: sqlite_utils.Database, key: str, spec: dict, change: dict, why: str) -> None:
    """Save an upgraded spec as a new version of the experiment, with a history row that says why."""
    version, status = db.execute("SELECT version, status FROM experiments WHERE key = ?", [key]).fetchone()
    now, text = time.time(), json.dumps(spec, separators=(",", ":"))
    db.execute("UPDATE experiments SET spec = ?, version = ?, updated_at = ? WHERE key = ?",
               [text, version + 1, now, key])
    db.execute("INSERT INTO experiment_history (experiment, version, status, spec, change, actor, at)"
               " VALUES (?, ?, ?, ?, ?, ?, ?)",
               [key, version + 1, status, text, json.dumps(change), why, now])


def m012_sign_in(db: sqlite_utils.Database) -> None:
    """Failed sign-ins per scope (``user:NAME``, ``address:IP``) and server-side dashboard sessions."""
    db["sign_in_failures"].create({"id": int, "scope": str, "at": float}, pk="id", not_null={"scope", "at"},
                                  if_not_exists=True)
    db["sign_in_failures"].create_index(["scope", "at"], if_not_exists=True)
    db["sessions"].create({"hash": str, "user_id": int, "created_at": float, "last_seen": float, "ended_at": float},
                          pk="hash", not_null={"user_id", "created_at", "last_seen"}, if_not_exists=True)


def m013_public_keys(db: sqlite_utils.Database) -> None:
    """Public client keys name their experiments and browser origins (JSON lists; NULL for other roles)."""
    for column in ("experiments", "origins"):
        if column not in db["api_keys"].columns_dict:
            db["api_keys"].add_column(column, str)


ELIM_UPGRADE = ("upgrade: exploration.elim is off; Vowpal Wabbit 9's elimination variant returns negative "
                "probabilities when candidates tie, so the probabilities it logged were false")


def m014_squarecb(db: sqlite_utils.Database) -> None:
    """SquareCB specs stored before ``normalize`` existed ran VW's probabilities: they say so, and keep them.

    Then SquareCB's elimination variant is turned off, as ``exploration.elim`` or ``--elim`` in vw_args
    (see ELIM_UPGRADE), each change a new version with a history row as in m011. PostgreSQL: V6_SQUARECB.
    """
    db.execute("UPDATE experiments SET spec = json_set(spec, '$.exploration.normalize', json('false'))"
               " WHERE json_extract(spec, '$.exploration.algorithm') = 'squarecb'"
               " AND json_type(spec, '$.exploration.normalize') IS NULL")
    _each_experiment(db, _no_elim)


def _no_elim(db: sqlite_utils.Database, key: str) -> None:
    spec = json.loads(db.execute("SELECT spec FROM experiments WHERE key = ?", [key]).fetchone()[0])
    if spec.get("exploration", {}).get("elim") is True:
        spec["exploration"]["elim"] = False
        _upgrade(db, key, spec, {"exploration": {"elim": False}}, ELIM_UPGRADE)
    _drop_refused_vw_args(db, key)  # --elim is refused there now


WATCH_BEFORE_DEFAULT = {"enabled": False, "threshold": 4.0, "recent": 1500, "reference": 4500, "min_drop": 0.25}


def m015_drift_watch(db: sqlite_utils.Database) -> None:
    """The drift watch is on for new experiments; one stored before ``learning.drift_watch`` existed ran
    without it and keeps doing so. PostgreSQL: V7_DRIFT_WATCH."""
    db.execute("UPDATE experiments SET spec = json_set(spec, '$.learning.drift_watch', json(?))"
               " WHERE json_type(spec, '$.learning') = 'object' AND json_type(spec, '$.learning.drift_watch') IS NULL",
               [json.dumps(WATCH_BEFORE_DEFAULT)])


MIGRATIONS = [m001_core, m002_catalog, m003_access, m005_reports, m004_personalizer, m006_unattributed_rewards,
              m007_feature_importances, m008_archive, m009_model_scaling,
              m010_operations, m011_vw_args_allowlist, m012_sign_in, m013_public_keys,
              m014_squarecb, m015_drift_watch]


def migrate(db: sqlite_utils.Database) -> list[str]:
    """Apply the migrations this database has not seen; return their names.

    Migrations use ``if_not_exists`` throughout, so two processes starting at once,
    or a migration interrupted half way, simply run it again harmlessly.
    """
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL)")
    done = {row[0] for row in db.execute("SELECT name FROM _migrations").fetchall()}
    applied = []
    for migration in MIGRATIONS:
        if migration.__name__ in done:
            continue
        migration(db)
        db.execute("INSERT OR IGNORE INTO _migrations VALUES (?, ?)", [migration.__name__, time.time()])
        applied.append(migration.__name__)
    return applied
