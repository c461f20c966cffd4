"""The store: every SQL statement of the service, behind one interface, on SQLite or PostgreSQL.

``open_store(path_or_url)`` picks the engine: a file path opens the SQLite engine
(``sqlite.py`` and its mixins, migrations in ``migrations.py``), a ``postgresql://``
URL the PostgreSQL one. Callers catch ``DuplicateKey`` and ``PublishRefused``,
never a driver's exception.

May import ``bandit`` and ``experiments.errors``; nothing above the store sees a driver or a dialect.
"""
from experiments.store.interface import DuplicateKey, PublishRefused, describe, is_url, open_store
from experiments.store.sqlite import INSERT_SET, Store, dumps, insert, loads, set_digest
from experiments.store.sqlite_archive import ArchiveConflict

__all__ = ["ArchiveConflict", "DuplicateKey", "describe", "INSERT_SET", "PublishRefused", "Store", "dumps", "insert", "is_url",
           "loads", "open_store", "set_digest"]
