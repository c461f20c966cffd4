"""Backups of a whole installation: the database and the Parquet archive beside it.

``backup`` copies the database with SQLite's online backup API (``Store.backup``,
safe while the service runs), then the archive files that copy lists, into the
folder beside the backup file (``shop-backup.db`` -> ``shop-backup-archive``), so
the pair works as it is as any ``--db``. ``restore`` refuses to overwrite a
database a running service uses, then copies the pair into place.
"""
from __future__ import annotations

import os
import shutil

from experiments.errors import Conflict
from experiments.reporting.archive import COMPANIONS, DATASET, default_folder


def backup(store, target: str, archive=None, progress=None) -> dict:
    """Copy the database to ``target`` and, with an ``archive``, the files the copy lists beside it."""
    from experiments.store import Store

    result = store.backup(target, progress=progress)
    if archive is None:
        return result
    copy = Store(target, create=False)
    try:
        result["archive"] = _copy_listed(copy, archive, default_folder(target))
    finally:
        copy.close()
    return result


def _copy_listed(copy, archive, folder: str) -> dict:
    """Copy each archive file the backup lists; a file expired meanwhile leaves the backup's list."""
    copied, missing, size = 0, [], 0
    for entry in [e for dataset in (DATASET, *COMPANIONS) for e in copy.archive_files(dataset=dataset)]:
        source = archive.resolve(entry)
        destination = os.path.join(folder, entry["path"])
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        try:
            shutil.copyfile(source, destination)
        except FileNotFoundError:
            missing.append(entry["id"])
            continue
        copied += 1
        size += os.path.getsize(destination)
    if missing:
        copy.forget_archive_files(missing)
    return {"folder": folder, "files": copied, "bytes": size, "expired_meanwhile": len(missing)}


def restore(source: str, target: str, replace: bool, now: float, progress=None) -> dict:
    """Copy the backup ``source`` (and its archive folder) into ``target``; with ``replace`` over an idle one."""
    from experiments.store import Store

    if os.path.exists(target):
        if not replace:
            raise Conflict(f"database {target} exists; add --replace to overwrite it (stop the service first)",
                           field="db")
        store = Store(target, create=False)
        try:
            holder = store.live_lease("learner", now)
        finally:
            store.close()
        if holder:
            process = holder.get("process") or {}
            raise Conflict(f"a service is running on {target} (its learner is pid {process.get('pid')} on "
                           f"{process.get('host')}); stop it first", field="db")
    result = Store.restore(source, target, progress=progress)
    archived, folder = default_folder(source), default_folder(target)
    if os.path.isdir(archived):
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(archived, folder)
        result["archive"] = folder
    return result
