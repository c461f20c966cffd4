"""What every engine shares: the exceptions callers catch and ``open_store``, which picks the engine.

Callers above the store catch ``DuplicateKey`` and ``PublishRefused``, never a
driver's exception, so the service reads the same on SQLite and PostgreSQL.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from experiments.errors import InvalidField

URL_SCHEMES = ("postgresql://", "postgres://")


class DuplicateKey(Exception):
    """A row with the same unique key exists (or the row changed meanwhile): nothing was written."""


class PublishRefused(Exception):
    """A model snapshot was not published: the learner lost its lease, or its version is no longer next."""

    def __init__(self, message: str, lease_lost: bool):
        super().__init__(message)
        self.lease_lost = lease_lost


def is_url(target: str) -> bool:
    """Tell a PostgreSQL URL from a SQLite file path."""
    return isinstance(target, str) and target.lower().startswith(URL_SCHEMES)


def describe(target: str) -> str:
    """Name a database for messages: a URL loses its user and password."""
    if not is_url(target):
        return target
    parts = urlsplit(target)
    return f"{parts.scheme}://{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"


def open_store(target: str, create: bool = True, **options):
    """Open the store at ``target``: a ``postgresql://`` URL, or else a SQLite file path.

    ``options`` are the SQLite engine's tuning knobs (WAL sizes); an engine ignores
    the ones that mean nothing to it.
    """
    if not isinstance(target, str) or not target:
        raise InvalidField("db", "must be a SQLite file path or a postgresql:// URL")
    if is_url(target):
        from experiments.store.postgres import PostgresStore

        return PostgresStore(target, create=create)
    from experiments.store.sqlite import Store

    return Store(target, create=create, **options)
