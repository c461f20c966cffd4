"""Shared fixtures: a real database (a SQLite file under tmp_path, or a fresh PostgreSQL database), a virtual
clock, the app and its client.

A test module that sets ``ENGINES = ("sqlite", "postgresql")`` runs each test that uses ``db_path`` on both
engines; ``db_path`` is then a file path or a ``postgresql://`` URL, which every ``--db`` takes.
"""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from experiments.clock import VirtualClock
from tests import pg
from web import create_app


def pytest_generate_tests(metafunc):
    engines = getattr(metafunc.module, "ENGINES", None)
    marker = metafunc.definition.get_closest_marker("engines")
    if marker:  # @pytest.mark.engines("sqlite"): a test of something only one engine has
        engines = marker.args
    if engines and "db_path" in metafunc.fixturenames:
        metafunc.parametrize("db_path", engines, indirect=True)


@pytest.fixture(scope="session")
def pg_databases():
    databases = pg.Databases()
    yield databases
    databases.close()


@pytest.fixture
def pg_url(pg_databases):
    """A fresh, migrated PostgreSQL database for this test, dropped after it."""
    url = pg_databases.fresh()
    yield url
    pg_databases.release(url)


@pytest.fixture
def clock():
    return VirtualClock()


@pytest.fixture
def db_path(request, tmp_path):
    if getattr(request, "param", "sqlite") == "postgresql":
        return request.getfixturevalue("pg_url")
    return str(tmp_path / "silent.db")


@pytest.fixture
def app(db_path, clock):
    app = create_app({"DATABASE": db_path, "CLOCK": clock, "MODEL_REFRESH_SECONDS": 0.0,
                      "SPEC_REFRESH_SECONDS": 0.0, "LEARNER_GRACE_SECONDS": 0.0})
    yield app
    app.extensions["silent"]["store"].close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def learner(app):
    return app.extensions["silent"]["learner"]


@pytest.fixture
def runner():
    from click.testing import CliRunner

    return CliRunner()


def table_counts(db_path: str) -> dict:
    """Row counts of every table, to prove a rejected request changed nothing."""
    if db_path.startswith("postgresql://"):
        return pg.table_counts(db_path)
    conn = sqlite3.connect(db_path)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in names}
    finally:
        conn.close()


class Shop:
    """A small actions helper for multi-step HTTP flows against the test client."""

    def __init__(self, client, clock, learner):
        self.client, self.clock, self.learner = client, clock, learner

    def create(self, key="exp", status="running", **spec):
        body = {"key": key, "status": status, **spec}
        response = self.client.post("/v1/experiments", json=body)
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def slate(self, key, expect=200, **body):
        response = self.client.post(f"/v1/experiments/{key}/slate", json=body)
        assert response.status_code == expect, response.get_json()
        return response.get_json()

    def reward(self, event_id, expect=202, **body):
        response = self.client.post(f"/v1/events/{event_id}/rewards", json=body)
        assert response.status_code == expect, response.get_json()
        return response.get_json()

    def learn(self, seconds=0.0, publish=True):
        self.clock.advance(seconds)
        return self.learner.run_once(force_publish=publish)


@pytest.fixture
def shop(client, clock, learner):
    return Shop(client, clock, learner)


SEGMENTS = ["new", "returning", "loyal"]
BEST_ITEM = {"new": "item-0", "returning": "item-2", "loyal": "item-4"}
ITEMS = [{"id": f"item-{i}", "features": {"category": f"cat-{i % 3}", "price": 10.0 + i}} for i in range(6)]


def click_probability(segment: str, item: str) -> float:
    """The synthetic problem of the issue: 0.8 for the segment's best item, 0.1 otherwise."""
    return 0.8 if BEST_ITEM[segment] == item else 0.1


@pytest.fixture
def rng():
    return np.random.default_rng(7)
