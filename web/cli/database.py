"""``silent db``: moving a database between engines."""
from __future__ import annotations

import sys

import click
from tqdm import tqdm

from experiments.errors import ServiceError
from web.cli.common import fail, open_store
from web.cli.main import cli


@cli.group()
def db():
    """Move a database: silent db copy --from silent.db --to postgresql://..."""


@db.command("copy")
@click.option("--from", "source", required=True, help="SQLite database file to copy.")
@click.option("--to", "target", required=True, help="PostgreSQL URL of an empty database (its schema is made).")
def copy(source, target):
    """Copy a SQLite database (log, models, settings, API keys, users) into PostgreSQL.

    Stop the service on the SQLite file first; start it on the URL afterwards.
    Sequence numbers, ids and model cursors carry over, so learning goes on
    where it stopped.

    Example: silent db copy --from silent.db --to postgresql://silent@db.internal/shop
    """
    from experiments.store import describe, is_url
    from experiments.store.copy import copy_database

    if is_url(source) or not is_url(target):
        raise click.ClickException("copies a SQLite file (--from) into a PostgreSQL URL (--to)")
    src = open_store(source)
    dst = open_store(target, create=True)
    bar = tqdm(desc="copying", unit=" rows", disable=None, file=sys.stderr)
    try:
        counts = copy_database(src, dst, progress=lambda table, n: (bar.set_postfix_str(table), bar.update(n)))
    except ServiceError as exc:
        fail(exc)
    finally:
        bar.close()
        src.close()
        dst.close()
    click.echo(f"copied {source} to {describe(target)}: " + ", ".join(
        f"{n:,} {table}" for table, n in counts.items() if n))
