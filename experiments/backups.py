"""Putting a backup back: refuse to overwrite a database a running service uses, then copy it in.

Taking a backup is ``Store.backup`` (SQLite's online backup API, safe while the
service runs); a backup file also works as it is, as any ``--db``.
"""
from __future__ import annotations

import os

from experiments.errors import Conflict


def restore(source: str, target: str, replace: bool, now: float, progress=None) -> dict:
    """Copy the backup ``source`` into ``target``; with ``replace`` over an existing, idle database."""
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
    return Store.restore(source, target, progress=progress)
