"""``silent personalizer``: resource keys for Personalizer's API, thin click commands over the library."""
from __future__ import annotations

from datetime import datetime, timezone

import click

from experiments.errors import ServiceError
from web.cli.common import DB_OPTION, open_store



def _personalizer(db: str, create: bool = False):
    from experiments.personalizer import Personalizer
    from experiments.service import Service

    return Personalizer(Service(open_store(db, create)))


@click.group()
def personalizer():
    """Serve Azure AI Personalizer's API: one resource key per experiment."""


@personalizer.command("create-resource")
@click.argument("experiment")
@click.option("--slots", type=click.IntRange(1, 50), default=None,
              help="Most slots a multi-slot rank may ask for: the slots of a new experiment [10].")
@DB_OPTION
def create_resource(experiment, slots, db):
    """Print a new subscription key for EXPERIMENT, creating the experiment if it does not exist.

    A new experiment starts running with Personalizer's defaults: 10 minute reward
    wait, earliest reward, 20% exploration, every namespace pair crossed, no holdout,
    and multi-slot rank up to 10 slots.
    The key is shown once and stored only as its hash. Point the official client at
    http://HOST:PORT with this key.

    Example: silent personalizer create-resource news-recs --db shop.db
    """
    try:
        made = _personalizer(db, create=True).create_resource(experiment, slots=slots)
    except ServiceError as exc:
        raise click.ClickException(exc.message)
    click.echo(made["key"])
    click.echo(f"key for experiment {made['experiment']!r}; send it as Ocp-Apim-Subscription-Key", err=True)


@personalizer.command("list-resources")
@DB_OPTION
def list_resources(db):
    """List resource keys (their last four characters) and their experiments.

    Example: silent personalizer list-resources --db shop.db
    """
    rows = _personalizer(db).list_resources()
    if not rows:
        click.echo("no resource keys yet")
    for row in rows:
        created = datetime.fromtimestamp(row["created_at"], timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        click.echo(f"…{row['hint']}  {row['experiment']:<24} created {created}")


@personalizer.command("revoke-resources")
@click.argument("experiment")
@DB_OPTION
def revoke_resources(experiment, db):
    """Revoke every resource key of EXPERIMENT; their next call gets a 401.

    Example: silent personalizer revoke-resources news-recs --db shop.db
    """
    count = _personalizer(db).delete_resources(experiment)
    click.echo(f"revoked {count} key(s) of {experiment}")
