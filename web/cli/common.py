"""What every ``silent`` command module shares: the database option and the error exit.

A module of its own because ``web.cli.main`` imports the command modules at its end.
"""
from __future__ import annotations

import click

from experiments.errors import ServiceError

DB_OPTION = click.option("--db", default="silent.db", show_default=True, help="SQLite database file, or a postgresql:// URL.")
ARCHIVE_OPTION = click.option("--archive", "archive_dir", default="", envvar="SILENT_ARCHIVE_DIR",
                              help="Folder of the Parquet archive  [default: beside the database, DB-archive].")


def open_store(db: str, create: bool = False):
    """Open the database for a command; one clear line and exit code 1 when it cannot be opened.

    Only commands that set something up (serve, create ...) pass ``create``; a
    command that reads never leaves a stray empty database behind a mistyped path.
    """
    from experiments.store import open_store as open_engine

    try:
        return open_engine(db, create=create)
    except ServiceError as exc:
        fail(exc)


def open_archive(store, db: str, folder: str):
    """The Parquet archive of a database (``--archive``, or beside the file), or None when it is off."""
    from experiments.reporting.archive import open_archive as archive_of

    return archive_of(store, db, folder)


def fail(exc: ServiceError):
    """Exit with the service's message and, when it names one, the field at fault."""
    field = f" [{exc.field}]" if exc.field else ""
    raise click.ClickException(f"{exc.message}{field}")
