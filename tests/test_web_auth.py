"""API keys with roles, users, the shared secret key and the loopback rule, on real SQLite files."""
import sqlite3

import pytest

from experiments.store import Store
from web import create_app
from web.auth import BindRefused, check_bind, is_loopback
from web.cli import cli

CANDIDATES = [{"id": f"sku-{i}", "features": {"price": float(i)}} for i in range(3)]

# (family, method, path, body, roles allowed); every /v1 route family the service has
ROUTES = [
    ("create", "POST", "/v1/experiments", {"key": "other"}, {"admin"}),
    ("list", "GET", "/v1/experiments", None, {"admin"}),
    ("read", "GET", "/v1/experiments/home", None, {"admin"}),
    ("patch", "PATCH", "/v1/experiments/home", {"name": "Home"}, {"admin"}),
    ("history", "GET", "/v1/experiments/home/history", None, {"admin"}),
    ("report", "GET", "/v1/experiments/home/report", None, {"admin"}),
    ("evaluations", "GET", "/v1/experiments/home/evaluations", None, {"admin"}),
    ("catalog", "GET", "/v1/catalog/items", None, {"admin"}),
    ("slate", "POST", "/v1/experiments/home/slate", {"unit": "u1", "candidates": CANDIDATES}, {"shop", "admin"}),
    ("reward", "POST", "/v1/events/ev-1/rewards", {"type": "click"}, {"shop", "admin"}),
    ("activate", "POST", "/v1/events/ev-1/activate", None, {"shop", "admin"}),
]


@pytest.fixture
def access(app):
    return app.extensions["silent"]["access"]


@pytest.fixture
def keyed(client, access):
    """A running experiment with one decision, then one key of each role (the API closes)."""
    assert client.post("/v1/experiments", json={"key": "home", "status": "running"}).status_code == 201
    slate = client.post("/v1/experiments/home/slate", json={"unit": "u0", "candidates": CANDIDATES,
                                                           "event_id": "ev-1"})
    assert slate.status_code == 200
    return {role: access.create_key(role, label=f"{role} key")["key"] for role in ("shop", "admin")}


def call(client, method, path, body, key=None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.open(path, method=method, json=body, headers=headers)


def test_without_keys_the_api_is_open(client):
    assert client.post("/v1/experiments", json={"key": "home"}).status_code == 201
    assert client.get("/v1/experiments", headers={"Authorization": "Bearer whatever"}).status_code == 200


@pytest.mark.parametrize("family,method,path,body,allowed", ROUTES, ids=[r[0] for r in ROUTES])
def test_each_route_family_answers_401_and_403_by_role(client, keyed, family, method, path, body, allowed):
    missing = call(client, method, path, body)
    assert missing.status_code == 401
    assert missing.get_json()["error"] == {
        "code": "unauthorized", "field": "Authorization",
        "message": "this call needs an API key: send 'Authorization: Bearer <key>'"}
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = call(client, method, path, body, key="sk_admin_not-a-real-key")
    assert wrong.status_code == 401 and wrong.get_json()["error"]["code"] == "unauthorized"
    for role, key in keyed.items():
        response = call(client, method, path, body, key=key)
        if role in allowed:
            assert response.status_code not in (401, 403), (role, response.get_json())
        else:
            assert response.status_code == 403
            assert response.get_json()["error"]["code"] == "forbidden"
            message = response.get_json()["error"]["message"]
            assert message == "a shop key may not make this call; it needs an admin key"


def test_rejected_calls_write_nothing(client, keyed, db_path):
    from tests.conftest import table_counts

    before = table_counts(db_path)
    assert call(client, "POST", "/v1/experiments", {"key": "x"}, key=keyed["shop"]).status_code == 403
    assert call(client, "POST", "/v1/experiments/home/slate", {"candidates": CANDIDATES}).status_code == 401
    assert table_counts(db_path) == before


def test_keys_are_stored_hashed_and_revoking_the_last_one_keeps_the_api_closed(client, keyed, access, db_path):
    conn = sqlite3.connect(db_path)
    dump = "\n".join(conn.iterdump())
    conn.close()
    assert keyed["shop"] not in dump and keyed["admin"] not in dump
    listed = access.list_keys()
    assert [k["role"] for k in listed] == ["shop", "admin"] and all("key" not in k for k in listed)
    for row in listed:
        access.revoke_key(row["id"])
    assert call(client, "GET", "/v1/experiments", None, key=keyed["admin"]).status_code == 401
    assert call(client, "GET", "/v1/experiments", None).status_code == 401
    assert client.get("/healthz").status_code == 200


def test_history_names_the_key_that_made_a_change(client, keyed):
    call(client, "PATCH", "/v1/experiments/home", {"status": "paused"}, key=keyed["admin"])
    history = call(client, "GET", "/v1/experiments/home/history", None, key=keyed["admin"]).get_json()["history"]
    assert history[0]["actor"] == "api" and history[-1]["actor"] == "api key 2 (admin key)"


def test_users_have_slow_salted_password_hashes(access, db_path):
    access.create_user("alice", "correct horse")
    with pytest.raises(Exception, match="already exists"):
        access.create_user("alice", "another one")
    with pytest.raises(Exception, match="at least 8"):
        access.create_user("bob", "short")
    stored = sqlite3.connect(db_path).execute("SELECT password_hash FROM users").fetchone()[0]
    assert stored.startswith("scrypt:") and "correct horse" not in stored
    assert access.check_password("alice", "correct horse")["name"] == "alice"
    assert access.check_password("alice", "wrong") is None and access.check_password("nobody", "x") is None


def test_the_secret_key_is_generated_once_and_shared_by_every_app_on_the_file(app, db_path, clock):
    other = create_app({"DATABASE": db_path, "CLOCK": clock})
    assert app.secret_key and other.secret_key == app.secret_key
    assert create_app({"DATABASE": db_path, "SECRET_KEY": "configured"}).secret_key == "configured"
    assert app.config["SESSION_COOKIE_HTTPONLY"] and app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_serve_stays_on_loopback_without_keys(tmp_path, runner):
    from experiments.auth import Access
    from experiments.store import Store

    store = Store(str(tmp_path / "bind.db"))
    assert "loopback" in check_bind("127.0.0.1", store) and is_loopback("::1") and is_loopback("localhost")
    for host in ("0.0.0.0", "192.168.1.5", "::", "shop.example.com"):
        with pytest.raises(BindRefused, match="no API keys exist"):
            check_bind(host, store)
    result = runner.invoke(cli, ["serve", "--db", store.path, "--host", "0.0.0.0"])
    assert result.exit_code == 1 and "refusing to listen on 0.0.0.0" in result.output
    Access(store).create_key("admin")
    assert "API keys required" in check_bind("0.0.0.0", store)


def test_keys_and_users_commands(runner, tmp_path):
    db = str(tmp_path / "cli.db")
    assert "does not exist" in runner.invoke(cli, ["keys", "list", "--db", db]).output  # reading creates nothing
    Store(db).close()
    assert "no API keys yet" in runner.invoke(cli, ["keys", "list", "--db", db]).output
    created = runner.invoke(cli, ["keys", "create", "--role", "shop", "--label", "web shop", "--db", db])
    assert created.exit_code == 0 and created.output.startswith("sk_shop_")
    secret = created.output.splitlines()[0]
    listing = runner.invoke(cli, ["keys", "list", "--db", db]).output
    assert "shop" in listing and "web shop" in listing and "active" in listing and secret not in listing
    assert runner.invoke(cli, ["keys", "revoke", "1", "--db", db]).exit_code == 0
    assert "revoked" in runner.invoke(cli, ["keys", "list", "--db", db]).output
    assert runner.invoke(cli, ["keys", "revoke", "9", "--db", db]).exit_code == 1
    assert runner.invoke(cli, ["keys", "create", "--role", "owner", "--db", db]).exit_code == 2
    made = runner.invoke(cli, ["users", "create", "alice", "--db", db], input="s3cret-pass\ns3cret-pass\n")
    assert made.exit_code == 0 and "user alice created" in made.output
    assert runner.invoke(cli, ["users", "create", "bob", "--password", "s3cret-pass", "--db", db]).exit_code == 0
    assert runner.invoke(cli, ["users", "create", "bob", "--password", "s3cret-pass", "--db", db]).exit_code == 1
    assert ["alice", "bob"] == [line.split()[1] for line in
                                runner.invoke(cli, ["users", "list", "--db", db]).output.splitlines()]
