"""The ``silent`` command line: thin click commands over the library."""
from __future__ import annotations

import json
import os
import sys

import click

from experiments.errors import ServiceError
from web.cli.common import DB_OPTION, fail, open_store


def _service(db: str, create: bool = False):
    from experiments.service import Service

    return Service(open_store(db, create))


def _echo_json(value) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


@click.group()
@click.version_option(package_name="silent-customizer")
def cli():
    """Silent Customizer: contextual-bandit personalization you host yourself."""


@cli.command()
@DB_OPTION
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to bind.")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="gunicorn worker processes  [default: number of cores]")
@click.option("--no-learner", is_flag=True, help="Serve only; learners run elsewhere (silent learn).")
def serve(db, host, port, workers, no_learner):
    """Serve the API: gunicorn workers plus one learner process (none with --no-learner).

    On PostgreSQL, any number of hosts serve one database; their learners share
    the experiments, each owned by one learner at a time.

    SIGTERM or Ctrl+C drains in-flight requests, then the learner publishes
    what it learned; nothing accepted is lost.

    Example: silent serve --db shop.db --port 8000 --workers 2
    """
    from web.auth import BindRefused, check_bind, is_loopback
    from web.serving import Supervisor, default_workers

    from experiments.store import describe, is_url

    if not (is_loopback(host) or is_url(db) or os.path.isfile(db)):
        raise click.ClickException(
            f"refusing to listen on {host}: database {db} does not exist yet, so no API keys exist and the API "
            f"would be open to anyone. Create keys first (silent keys create --role admin --db {db}) "
            "or listen on 127.0.0.1.")
    store = open_store(db, create=True)
    try:
        access_notice = check_bind(host, store)
    except BindRefused as exc:
        raise click.ClickException(str(exc))
    finally:
        store.close()
    workers = workers or default_workers()
    supervisor = Supervisor(db, host, port, workers, learner=not no_learner)
    supervisor.start()
    learners = "no learner" if no_learner else "1 learner"
    click.echo(f"Silent Customizer on http://{host}:{port} (database {describe(db)}, {workers} workers + {learners});"
               " Ctrl+C stops")
    click.echo(access_notice)
    code = supervisor.wait()
    click.echo("stopped; the learner saved what it learned")
    sys.exit(code)


@cli.command()
@DB_OPTION
def learn(db):
    """Run a learner alone, until SIGTERM or Ctrl+C, then publish what it learned.

    On PostgreSQL start as many as you like, on any hosts: each experiment is
    learned by one of them at a time, and another takes over within a pass when
    its learner dies. On SQLite one learner holds the file's lease; others wait.

    Example: silent learn --db postgresql://silent@db.internal/shop
    """
    from experiments.store import describe
    from web.serving import learner_main

    open_store(db, create=True).close()  # a clear error now, not in the loop
    click.echo(f"Silent Customizer learner on {describe(db)}; Ctrl+C stops", err=True)
    learner_main({"DATABASE": db})


@cli.group()
def experiments():
    """Create, list, show, start, pause and stop experiments."""


@experiments.command("create")
@click.argument("spec_file", type=click.File("r"))
@DB_OPTION
@click.option("--start", is_flag=True, help="Start it right away instead of leaving a draft.")
def create_experiment(spec_file, db, start):
    """Create an experiment from a JSON spec file ('-' reads standard input).

    Example: silent experiments create home-recs.json --start
    """
    try:
        spec = json.load(spec_file)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{spec_file.name}: not valid JSON ({exc})")
    if start and isinstance(spec, dict):
        spec["status"] = "running"
    try:
        _echo_json(_service(db, create=True).create_experiment(spec, actor="cli"))
    except ServiceError as exc:
        fail(exc)


@experiments.command("list")
@DB_OPTION
def list_experiments(db):
    """List experiments with their status and counts.

    Example: silent experiments list --db shop.db
    """
    rows = _service(db).list_experiments()
    if not rows:
        click.echo("no experiments yet")
    for row in rows:
        counts = row["counts"]
        click.echo(f"{row['key']:<24} {row['status']:<8} v{row['version']:<4} "
                   f"{counts['decisions']:>9} decisions {counts['rewards']:>9} rewards  {row['name']}")


@experiments.command("show")
@click.argument("key")
@DB_OPTION
def show_experiment(key, db):
    """Show one experiment as JSON (spec, status, version, counts).

    Example: silent experiments show home-recs
    """
    try:
        _echo_json(_service(db).get_experiment(key))
    except ServiceError as exc:
        fail(exc)


def _status_command(name: str, status: str, verb: str):
    @click.argument("key")
    @DB_OPTION
    def command(key, db):
        try:
            row = _service(db).update_experiment(key, {"status": status}, actor="cli")
        except ServiceError as exc:
            fail(exc)
        click.echo(f"{row['key']} is now {row['status']} (version {row['version']})")

    command.__doc__ = f"{verb} an experiment.\n\n    Example: silent experiments {name} home-recs\n    "
    experiments.command(name)(command)


_status_command("start", "running", "Start (or resume)")
_status_command("pause", "paused", "Pause (serve the control policy)")
_status_command("stop", "stopped", "Stop for good")


from web.cli.access import keys, users  # noqa: E402  (after cli, which they join)

cli.add_command(keys)
cli.add_command(users)

from web.cli.reports import evaluate, export, report  # noqa: E402

for _command in (report, export, evaluate):
    cli.add_command(_command)

from web.cli.personalizer import personalizer  # noqa: E402

cli.add_command(personalizer)

from web.cli.operations import backup, forget, purge, restore  # noqa: E402

for _command in (purge, forget, backup, restore):
    cli.add_command(_command)

from web.cli.database import db  # noqa: E402
from web.cli.simulate import demo, simulate  # noqa: E402


@cli.command("openapi")
@click.option("--format", "fmt", type=click.Choice(["json", "markdown"]), default="json", show_default=True)
@click.option("--output", "-o", type=click.File("w"), default="-", help="Write here instead of standard output.")
def openapi(fmt, output):
    """Print the OpenAPI document /openapi.json serves, or its Markdown rendering (docs/api.md).

    Example: silent openapi --format markdown -o docs/api.md
    """
    from web.openapi import document
    from web.openapi.markdown import render

    output.write(render(document()) if fmt == "markdown" else json.dumps(document(), indent=2) + "\n")


cli.add_command(demo)
cli.add_command(simulate)


def main():  # pragma: no cover - console entry point
    sys.exit(cli())
