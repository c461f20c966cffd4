"""The store: every SQL statement of the service, behind one interface (the SQLite engine and its migrations).

May import ``bandit`` and ``experiments.errors``; nothing above the store sees a driver or a dialect.
"""
from experiments.store.sqlite import INSERT_SET, PublishRefused, Store, dumps, insert, loads, set_digest
from experiments.store.sqlite_archive import ArchiveConflict

__all__ = ["ArchiveConflict", "INSERT_SET", "PublishRefused", "Store", "dumps", "insert", "loads", "set_digest"]
