"""Sign-in limits, the hashing slots, safe redirects, server-side sessions and who may read /metrics."""
import fcntl
import os

import pytest

from experiments.sign_in import HashingSlots
from tests.test_web_dashboard import PASSWORD, Dashboard, Form
from web import create_app

ENGINES = ("sqlite", "postgresql")  # each test that uses the database runs on both engines


@pytest.fixture
def strict_app(db_path, clock):
    """An app with small limits, so a test reaches them in a few password checks."""
    app = create_app({"DATABASE": db_path, "CLOCK": clock, "SIGN_IN_LIMIT_PER_USER": 3,
                      "SIGN_IN_LIMIT_PER_ADDRESS": 4, "SIGN_IN_WINDOW_SECONDS": 600.0, "TRUSTED_PROXIES": 1})
    app.extensions["silent"]["access"].create_user("alice", PASSWORD)
    app.extensions["silent"]["access"].create_user("bob", PASSWORD)
    yield app
    app.extensions["silent"]["store"].close()


def attempt(client, name, password, address="10.0.0.1"):
    """Post the sign-in form from a client address (the proxy's X-Forwarded-For)."""
    headers = {"X-Forwarded-For": address}
    values = Form(client.get("/sign-in", headers=headers).text).values | {"name": name, "password": password}
    return client.post("/sign-in", data=values, headers=headers)


def test_failed_sign_ins_per_user_name_are_limited_with_retry_after(strict_app, clock):
    client = strict_app.test_client()
    assert [attempt(client, "alice", "wrong password").status_code for _ in range(3)] == [401, 401, 401]
    refused = attempt(client, "alice", PASSWORD)  # even the right password waits: no more guesses
    assert refused.status_code == 429 and 0 < int(refused.headers["Retry-After"]) <= 601
    assert "Too many failed sign-ins for this user name" in refused.text
    assert attempt(client, "bob", PASSWORD, address="10.0.0.2").status_code == 302  # others sign in
    clock.advance(601)
    assert attempt(client, "alice", PASSWORD).status_code == 302


def test_failed_sign_ins_per_address_are_limited_across_names(strict_app):
    client = strict_app.test_client()
    for name in ("x1", "x2", "x3", "x4"):
        assert attempt(client, name, "wrong password").status_code == 401
    assert attempt(client, "alice", PASSWORD).status_code == 429
    assert attempt(client, "alice", PASSWORD, address="10.0.0.9").status_code == 302


def test_limits_are_shared_by_every_worker_of_a_database(strict_app, db_path, clock):
    other = create_app({"DATABASE": db_path, "CLOCK": clock, "SIGN_IN_LIMIT_PER_USER": 3, "TRUSTED_PROXIES": 1})
    try:
        for app in (strict_app, other, strict_app):
            assert attempt(app.test_client(), "alice", "wrong password").status_code == 401
        assert attempt(other.test_client(), "alice", PASSWORD).status_code == 429
    finally:
        other.extensions["silent"]["store"].close()


def test_a_sign_in_finding_every_hashing_slot_taken_is_503_at_once(strict_app, db_path):
    """Another worker checking a password holds the slot: this one answers 503 instead of queueing."""
    fd = os.open(HashingSlots(db_path, 1).paths[0], os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        busy = attempt(strict_app.test_client(), "alice", PASSWORD)
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "1" and "busy" in busy.text
    finally:
        os.close(fd)
    assert attempt(strict_app.test_client(), "alice", PASSWORD).status_code == 302


@pytest.mark.parametrize("target, location", [
    ("/new", "/new"), ("/experiments/x?interval=day", "/experiments/x?interval=day"),
    ("/%09/evil.example/path", "/"), ("/%0A/x", "/"), ("/%0D%0ALocation:%20//evil", "/"), ("//evil.example", "/"),
    ("/%5Cevil.example", "/"), ("/%5C%5Cevil.example", "/"), ("https://evil.example/", "/"),
    ("javascript:alert(1)", "/"), ("/%20/evil.example", "/"), ("", "/"), ("/%7F/evil", "/"),
])
def test_sign_in_follows_next_only_to_a_path_of_this_site(app, client, target, location):
    app.extensions["silent"]["access"].create_user("alice", PASSWORD)
    values = Form(client.get("/sign-in").text).values | {"name": "alice", "password": PASSWORD}
    answer = client.post(f"/sign-in?next={target}", data=values)
    assert answer.status_code == 302 and answer.headers["Location"] == location


def test_signing_out_ends_the_session_for_every_copy_of_the_cookie(app):
    app.extensions["silent"]["access"].create_user("alice", PASSWORD)
    alice, thief = app.test_client(), app.test_client()
    Dashboard(alice).sign_in()
    cookie = alice.get_cookie("silent_session")
    thief.set_cookie("silent_session", cookie.value)
    assert thief.get("/").status_code == 200
    page = alice.get("/")
    alice.post("/sign-out", data={"csrf_token": Form(page.text).values["csrf_token"]})
    assert thief.get("/").status_code == 302 and alice.get("/").status_code == 302


def test_sessions_end_after_the_documented_idle_time(app, clock):
    app.extensions["silent"]["access"].create_user("alice", PASSWORD)
    client = app.test_client()
    Dashboard(client).sign_in()
    for _ in range(3):  # in use: every page moves the idle deadline
        clock.advance(20 * 60)
        assert client.get("/").status_code == 200
    clock.advance(30 * 60 + 1)
    answer = client.get("/")
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/sign-in")


def test_metrics_need_an_ops_or_admin_key_once_keys_exist(app, client):
    assert client.get("/metrics").status_code == 200  # no key at all: open, on loopback
    access = app.extensions["silent"]["access"]
    keys = {role: access.create_key(role)["key"] for role in ("shop", "ops", "admin")}
    bearer = {role: {"Authorization": f"Bearer {key}"} for role, key in keys.items()}
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=bearer["shop"]).status_code == 403
    assert client.get("/metrics", headers=bearer["ops"]).status_code == 200
    assert client.get("/metrics", headers=bearer["admin"]).status_code == 200
    assert client.get("/v1/experiments", headers=bearer["ops"]).status_code == 403  # ops reads metrics only
    assert client.get("/healthz").status_code == 200


def test_metrics_open_to_named_addresses(db_path, clock):
    app = create_app({"DATABASE": db_path, "CLOCK": clock, "METRICS_OPEN_TO": "10.1.1.1, 10.1.1.2"})
    try:
        app.extensions["silent"]["access"].create_key("admin")
        client = app.test_client()
        assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.1.2"}).status_code == 200
        assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.1.3"}).status_code == 401
    finally:
        app.extensions["silent"]["store"].close()
