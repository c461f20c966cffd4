"""``silent purge``, ``silent forget``, ``silent backup`` and ``silent restore``: looking after the data."""
from __future__ import annotations

import os
import sys

import click
from tqdm import tqdm

from experiments.errors import ServiceError
from web.cli.common import ARCHIVE_OPTION, DB_OPTION, fail, open_archive, open_store


@click.command("purge")
@click.argument("key")
@click.option("--before", required=True, help="Delete decisions made before this time (ISO 8601 UTC or epoch seconds).")
@DB_OPTION
@ARCHIVE_OPTION
def purge(key, before, db, archive_dir):
    """Delete an experiment's decisions made before a time, with their rewards, once.

    Only decisions the published model has learned and whose late rewards can no
    longer arrive (a day after their window) go; the model is kept. For a standing
    rule, set the experiment's retention.days.

    Example: silent purge home-recs --before 2026-01-01T00:00:00Z --db shop.db
    """
    from experiments.clock import SystemClock
    from experiments.times import parse_time
    from experiments.retention import purge as run
    from experiments.times import iso

    try:
        store = open_store(db)
        counts = run(store, key, parse_time(before, "before"), SystemClock().now(),
                     archive=open_archive(store, db, archive_dir))
    except ServiceError as exc:
        fail(exc)
    click.echo(f"deleted {_count(counts['decisions'], 'decision')} and {_count(counts['rewards'], 'reward')} of "
               f"{key} made before {iso(counts['before'])}")
    if counts.get("archived", {}).get("decisions"):
        click.echo(f"and {_count(counts['archived']['decisions'], 'archived decision')} from the archive")
    if counts["kept"]:
        click.echo(f"kept {_count(counts['kept'], 'decision')} made before then: not learned yet, or rewards may "
                   "still arrive for them (run it again later)")


@click.command("forget")
@click.argument("unit")
@DB_OPTION
@ARCHIVE_OPTION
def forget(unit, db, archive_dir):
    """Erase one shopper: delete every decision of UNIT, in every experiment, with its rewards.

    Models already trained keep what they learned from them (they are not unlearned).

    Example: silent forget user-42 --db shop.db
    """
    from experiments.erasure import forget_unit

    try:
        store = open_store(db)
        answer = forget_unit(store, unit, open_archive(store, db, archive_dir))
    except ServiceError as exc:
        fail(exc)
    deleted = answer["deleted"]
    where = f" in {', '.join(answer['experiments'])}" if answer["experiments"] else ""
    click.echo(f"deleted {_count(deleted['decisions'], 'decision')} and {_count(deleted['rewards'], 'reward')} "
               f"of {unit}{where}")
    if deleted.get("archived_decisions"):
        click.echo(f"and {_count(deleted['archived_decisions'], 'archived decision')} from the archive")
    click.echo(answer["not_undone"])


class _Pages:
    """A progress bar over the pages SQLite's backup API copies."""

    def __init__(self, desc: str):
        self.bar = tqdm(desc=desc, unit=" pages", disable=None, file=sys.stderr)

    def __call__(self, status, remaining: int, total: int) -> None:
        self.bar.total = total
        self.bar.update(total - remaining - self.bar.n)


@click.command("backup")
@DB_OPTION
@ARCHIVE_OPTION
@click.option("--to", "target", required=True, type=click.Path(dir_okay=False),
              help="The backup file to write (must not exist yet).")
def backup(db, archive_dir, target):
    """Copy the database to a file while the service keeps running (SQLite's online backup API).

    The copy is one consistent moment of the log, models and settings; the Parquet
    archive files it lists are copied beside it (FILE-archive). Use the pair as it
    is (silent serve --db FILE on the new machine) or put it back with silent restore.

    Example: silent backup --db shop.db --to backups/shop-2026-01-31.db
    """
    if os.path.exists(target):
        raise click.ClickException(f"{target} already exists; choose a new file")
    from experiments.backups import backup as run

    store = open_store(db)
    progress = _Pages(f"backup {db}")
    try:
        result = run(store, target, open_archive(store, db, archive_dir), progress=progress)
    except OSError as exc:
        raise click.ClickException(f"cannot write {target}: {exc.strerror}")
    finally:
        progress.bar.close()
        store.close()
    click.echo(f"backed up {db} to {target} ({result['bytes']:,} bytes, integrity {result['check']}): "
               f"{_count(result['experiments'], 'experiment')}, {_count(result['decisions'], 'decision')}, "
               f"{_count(result['rewards'], 'reward')}, {_count(result['models'], 'model snapshot')}")
    copied = result.get("archive")
    if copied and copied["files"]:
        click.echo(f"and the archive: {_count(copied['files'], 'file')} ({copied['bytes']:,} bytes) in "
                   f"{copied['folder']}")


def _count(n: int, noun: str) -> str:
    """Say how many, in the plural when it is not one: '1 experiment', '2,000 decisions'."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


@click.command("restore")
@click.argument("backup_file", type=click.Path(exists=True, dir_okay=False))
@DB_OPTION
@click.option("--replace", is_flag=True, help="Overwrite an existing database (stop the service first).")
def restore(backup_file, db, replace):
    """Put a backup in place as the database (stop the service on it first).

    Example: silent restore backups/shop-2026-01-31.db --db shop.db --replace
    """
    from experiments.backups import restore as run
    from experiments.clock import SystemClock

    progress = _Pages(f"restore {backup_file}")
    try:
        result = run(backup_file, db, replace, SystemClock().now(), progress=progress)
    except ServiceError as exc:
        fail(exc)
    finally:
        progress.bar.close()
    archive = f" and its archive into {result['archive']}" if result.get("archive") else ""
    click.echo(f"restored {backup_file} into {db} ({result['bytes']:,} bytes){archive}; start it with: "
               f"silent serve --db {db}")
