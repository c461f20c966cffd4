"""``silent keys`` and ``silent users``: thin click commands over ``experiments.auth``."""
from __future__ import annotations

from datetime import datetime, timezone

import click

from experiments.auth import ROLES, Access
from experiments.errors import ServiceError
from web.cli.common import DB_OPTION, open_store



def _access(db: str, create: bool = False) -> Access:
    return Access(open_store(db, create))


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _fail(exc: ServiceError):
    raise click.ClickException(exc.message)


@click.group()
def keys():
    """Create, list and revoke API keys (shop: slate and rewards; public: the same from named browser origins;
    admin: everything; ops: /metrics)."""


@keys.command("create")
@click.option("--role", required=True, type=click.Choice(ROLES),
              help="shop (slates, rewards), public (the same, from a browser), admin (everything) or ops (/metrics).")
@click.option("--label", default="", help="A note saying who holds the key.")
@click.option("--experiment", "experiments", multiple=True, metavar="KEY",
              help="public keys: an experiment the key may be used for (repeat for more).")
@click.option("--origin", "origins", multiple=True, metavar="URL",
              help="public keys: a browser origin the key is accepted from, e.g. https://shop.example (repeatable).")
@DB_OPTION
def create_key(role, label, experiments, origins, db):
    """Create an API key and print it once; only its hash is stored.

    Example: silent keys create --role shop --label "web shop"

    Example: silent keys create --role public --experiment home-recs --origin https://shop.example
    """
    try:
        key = _access(db, create=True).create_key(role, label, experiments, origins)
    except ServiceError as exc:
        _fail(exc)
    click.echo(key["key"])
    if role == "public":
        click.echo(f"key {key['id']} (public) created for {', '.join(key['experiments'])} from "
                   f"{', '.join(key['origins'])}; it may ship in the shop's pages.", err=True)
    else:
        click.echo(f"key {key['id']} ({role}) created; copy it now, it is not shown again. "
                   "Send it as 'Authorization: Bearer <key>'.", err=True)


@keys.command("list")
@DB_OPTION
def list_keys(db):
    """List API keys with their role, label and state (never the secret).

    Example: silent keys list --db shop.db
    """
    rows = _access(db).list_keys()
    if not rows:
        click.echo("no API keys yet: the API is open and 'silent serve' stays on loopback")
    for row in rows:
        state = "active" if row["revoked_at"] is None else f"revoked {_when(row['revoked_at'])}"
        scope = (f"  experiments {','.join(row['experiments'])} origins {','.join(row['origins'])}"
                 if row["role"] == "public" else "")
        click.echo(f"{row['id']:>4}  {row['role']:<6} {row['hint']:<16} created {_when(row['created_at'])}"
                   f"  {state:<28} {row['label']}{scope}")


@keys.command("revoke")
@click.argument("key_id", type=click.IntRange(1, 2**63 - 1))
@DB_OPTION
def revoke_key(key_id, db):
    """Revoke an API key for good; its next call gets a 401.

    Example: silent keys revoke 3
    """
    try:
        row = _access(db).revoke_key(key_id)
    except ServiceError as exc:
        _fail(exc)
    click.echo(f"key {row['id']} ({row['role']}) revoked")


@click.group()
def users():
    """Create and list dashboard users."""


@users.command("create")
@click.argument("name")
@click.option("--password", help="For scripts; without it the password is asked for (hidden, twice).")
@DB_OPTION
def create_user(name, password, db):
    """Create a dashboard user who signs in with NAME and a password.

    Example: silent users create alice
    """
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = _access(db, create=True).create_user(name, password)
    except ServiceError as exc:
        _fail(exc)
    click.echo(f"user {user['name']} created; sign in on the dashboard at /")


@users.command("list")
@DB_OPTION
def list_users(db):
    """List dashboard users.

    Example: silent users list --db shop.db
    """
    rows = _access(db).list_users()
    if not rows:
        click.echo("no users yet: create one with 'silent users create NAME'")
    for row in rows:
        click.echo(f"{row['id']:>4}  {row['name']:<24} created {_when(row['created_at'])}")
