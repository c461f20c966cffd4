"""Public client keys: only their experiments, only from their origins, CORS for exactly those, rate-limited."""
import json
import multiprocessing
import os

import pytest

from experiments.auth import parse_origin
from experiments.clock import VirtualClock
from experiments.errors import InvalidField, NotFound
from experiments.rate_limit import Rate, RateLimited, TokenBuckets
from tests.conftest import table_counts
from web import create_app
from web.cli import cli

SHOP = "https://shop.example"
CANDIDATES = [{"id": f"sku-{i}", "features": {"price": float(i)}} for i in range(3)]
PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}


@pytest.fixture
def access(app):
    return app.extensions["silent"]["access"]


@pytest.fixture
def keys(client, access):
    """Two running experiments, a decision in each, and a public key for ``home`` from the shop's origin."""
    for key in ("home", "other"):
        assert client.post("/v1/experiments", json={"key": key, "status": "running"}).status_code == 201
        assert client.post(f"/v1/experiments/{key}/slate", json={
            "unit": "u0", "candidates": CANDIDATES, "event_id": f"ev-{key}"}).status_code == 200
    public = access.create_key("public", "storefront", experiments=["home"], origins=[SHOP, "http://localhost:3000"])
    return {"public": public["key"], "shop": access.create_key("shop")["key"],
            "admin": access.create_key("admin")["key"]}


def post(client, path, key, origin=SHOP, body=None, **headers):
    if origin is not None:
        headers["Origin"] = origin
    return client.post(path, json=body if body is not None else {}, headers={"Authorization": f"Bearer {key}",
                                                                            **headers})


def slate_body(**extra):
    return {"unit": "u1", "candidates": CANDIDATES, **extra}


def test_a_public_key_asks_for_slates_and_posts_rewards_and_activations_from_its_origin(client, keys):
    slate = post(client, "/v1/experiments/home/slate", keys["public"], body=slate_body(defer_activation=True))
    assert slate.status_code == 200, slate.get_json()
    assert slate.headers["Access-Control-Allow-Origin"] == SHOP
    assert "Origin" in slate.headers["Vary"]
    event = slate.get_json()["event_id"]
    activated = post(client, f"/v1/events/{event}/activate", keys["public"])
    assert activated.status_code == 200 and activated.headers["Access-Control-Allow-Origin"] == SHOP
    item = slate.get_json()["slate"][0]["id"]
    reward = post(client, f"/v1/events/{event}/rewards", keys["public"], origin="http://localhost:3000",
                  body={"type": "click", "item": item, "id": "click-1"})
    assert reward.status_code == 202 and reward.get_json()["slot"] == 0
    assert reward.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    again = post(client, f"/v1/events/{event}/rewards", keys["public"], body={"type": "click", "item": item,
                                                                             "id": "click-1"})
    assert again.status_code == 202 and again.get_json()["duplicate"] is True


@pytest.mark.parametrize("method,path,body", [
    ("POST", "/v1/experiments", {"key": "x"}), ("GET", "/v1/experiments", None),
    ("GET", "/v1/experiments/home", None), ("PATCH", "/v1/experiments/home", {"name": "x"}),
    ("GET", "/v1/experiments/home/report", None), ("PUT", "/v1/catalog/items", {"items": []}),
    ("GET", "/v1/catalog/items", None), ("DELETE", "/v1/units/u0", None), ("GET", "/metrics", None),
])
def test_every_other_call_refuses_a_public_key_without_cors_headers(client, keys, method, path, body, db_path):
    before = table_counts(db_path)
    response = client.open(path, method=method, json=body,
                           headers={"Authorization": f"Bearer {keys['public']}", "Origin": SHOP})
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"
    assert "public key may only ask for slates" in response.get_json()["error"]["message"] or path == "/metrics"
    assert "Access-Control-Allow-Origin" not in response.headers
    assert table_counts(db_path) == before


def test_experiments_the_key_does_not_name_refuse_it(client, keys, db_path):
    before = table_counts(db_path)
    slate = post(client, "/v1/experiments/other/slate", keys["public"], body=slate_body())
    assert slate.status_code == 403
    assert slate.get_json()["error"] == {"code": "forbidden", "field": "experiment",
                                         "message": "this public key may only be used for experiment(s) home"}
    assert slate.headers["Access-Control-Allow-Origin"] == SHOP  # the page may read why
    for action, body in (("rewards", {"type": "click"}), ("activate", {})):
        refused = post(client, f"/v1/events/ev-other/{action}", keys["public"], body=body)
        assert refused.status_code == 403 and refused.get_json()["error"]["field"] == "experiment"
    unknown = post(client, "/v1/events/no-such-event/rewards", keys["public"], body={"type": "click"})
    assert unknown.status_code == 404
    assert table_counts(db_path) == before


def test_a_disallowed_origin_gets_a_403_and_no_cors_headers(client, keys, db_path):
    before = table_counts(db_path)
    for origin in ("https://evil.example", "https://shop.example:8443", "http://shop.example", "null"):
        refused = post(client, "/v1/experiments/home/slate", keys["public"], origin=origin, body=slate_body())
        assert refused.status_code == 403 and refused.get_json()["error"]["field"] == "Origin"
        assert "not accepted from this origin" in refused.get_json()["error"]["message"]
        assert "Access-Control-Allow-Origin" not in refused.headers
        preflight = client.options("/v1/experiments/home/slate", headers={"Origin": origin, **PREFLIGHT})
        assert preflight.status_code == 403 and "Access-Control-Allow-Origin" not in preflight.headers
    no_origin = post(client, "/v1/experiments/home/slate", keys["public"], origin=None, body=slate_body())
    assert no_origin.status_code == 403
    assert "sent no Origin header" in no_origin.get_json()["error"]["message"]
    assert table_counts(db_path) == before


def test_preflights_answer_exactly_the_named_origins_on_exactly_the_public_routes(client, keys):
    for path in ("/v1/experiments/home/slate", "/v1/events/ev-home/rewards", "/v1/events/anything/activate"):
        answer = client.options(path, headers={"Origin": SHOP, **PREFLIGHT})
        assert answer.status_code == 204, path
        assert answer.headers["Access-Control-Allow-Origin"] == SHOP
        assert answer.headers["Access-Control-Allow-Methods"] == "POST"
        assert answer.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
        assert answer.headers["Access-Control-Max-Age"] == "600"
        assert "Origin" in answer.headers["Vary"]
    other = client.options("/v1/experiments/other/slate", headers={"Origin": SHOP, **PREFLIGHT})
    assert other.status_code == 403 and "Access-Control-Allow-Origin" not in other.headers
    for path in ("/v1/experiments", "/v1/experiments/home", "/v1/catalog/items", "/metrics"):
        answer = client.options(path, headers={"Origin": SHOP, **PREFLIGHT})
        assert "Access-Control-Allow-Origin" not in answer.headers, path


def test_shop_and_admin_keys_never_get_cors_headers(client, keys):
    for role in ("shop", "admin"):
        answer = post(client, "/v1/experiments/home/slate", keys[role], body=slate_body())
        assert answer.status_code == 200 and "Access-Control-Allow-Origin" not in answer.headers


def test_a_revoked_public_key_stops_preflights_and_calls(app, client, keys, access, clock):
    public_id = next(key["id"] for key in access.list_keys() if key["role"] == "public")
    access.revoke_key(public_id)
    assert post(client, "/v1/experiments/home/slate", keys["public"], body=slate_body()).status_code == 401
    preflight = client.options("/v1/experiments/home/slate", headers={"Origin": SHOP, **PREFLIGHT})
    assert preflight.status_code == 403


def test_public_keys_are_rate_limited_per_client_address_with_retry_after(db_path, clock):
    app = create_app({"DATABASE": db_path, "CLOCK": clock, "PUBLIC_RATE_PER_SECOND": 2.0, "PUBLIC_RATE_BURST": 3.0})
    client = app.test_client()
    assert client.post("/v1/experiments", json={"key": "home", "status": "running"}).status_code == 201
    key = app.extensions["silent"]["access"].create_key("public", experiments=["home"], origins=[SHOP])["key"]
    shop = app.extensions["silent"]["access"].create_key("shop")["key"]

    def slate(address, secret=key):
        return client.post("/v1/experiments/home/slate", json=slate_body(),
                           headers={"Authorization": f"Bearer {secret}", "Origin": SHOP},
                           environ_base={"REMOTE_ADDR": address})

    assert [slate("10.0.0.1").status_code for _ in range(3)] == [200, 200, 200]
    limited = slate("10.0.0.1")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
    assert limited.get_json()["error"]["code"] == "rate_limited"
    assert limited.headers["Access-Control-Allow-Origin"] == SHOP  # the page can read Retry-After
    assert limited.headers["Access-Control-Expose-Headers"] == "Retry-After"
    assert slate("10.0.0.2").status_code == 200  # another address has its own bucket
    assert slate("10.0.0.1", shop).status_code == 200  # shop keys are not limited
    clock.advance(0.5)
    assert slate("10.0.0.1").status_code == 200  # one token back after half a second
    assert slate("10.0.0.1").status_code == 429
    app.extensions["silent"]["store"].close()


def _drain(path, results):
    buckets = TokenBuckets(path, Rate(per_second=0.001, burst=50), VirtualClock())
    allowed = 0
    for _ in range(40):
        try:
            buckets.take("203.0.113.9")
            allowed += 1
        except RateLimited:
            pass
    results.put(allowed)


def test_the_buckets_are_shared_by_every_process_of_a_database(tmp_path):
    """Three processes (like gunicorn workers) take 120 tokens from one address's bucket of 50: 50 get through."""
    path = str(tmp_path / "silent.db.public-rate")
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    workers = [context.Process(target=_drain, args=(path, results)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert sum(results.get(timeout=5) for _ in workers) == 50


def test_many_addresses_fit_and_a_full_bucket_frees_its_slot():
    clock = VirtualClock()
    buckets = TokenBuckets(None, Rate(per_second=1.0, burst=2), clock)
    for i in range(50_000):  # more addresses than slots: refilled buckets give theirs up
        buckets.take(f"198.51.100.{i}")
        clock.advance(0.01)
    buckets.take("192.0.2.1")
    buckets.take("192.0.2.1")
    with pytest.raises(RateLimited):
        buckets.take("192.0.2.1")


@pytest.mark.parametrize("text,normal", [
    ("https://shop.example", "https://shop.example"), ("HTTPS://Shop.Example:443/", "https://shop.example"),
    ("http://localhost:3000", "http://localhost:3000"), ("http://[::1]:8080", "http://[::1]:8080"),
    ("https://bücher.example", "https://xn--bcher-kva.example"),
])
def test_origins_are_kept_as_browsers_send_them(text, normal):
    assert parse_origin(text) == normal


@pytest.mark.parametrize("text", ["shop.example", "ftp://shop.example", "https://shop.example/path",
                                  "https://*.example", "https://user@shop.example", "https://", 42,
                                  "https://shop.example?x=1", "https://shop.example:99999"])
def test_anything_but_an_origin_is_refused(text):
    with pytest.raises(InvalidField):
        parse_origin(text)


def test_a_public_key_must_name_existing_experiments_and_origins(access, client):
    assert client.post("/v1/experiments", json={"key": "home"}).status_code == 201
    with pytest.raises(InvalidField, match="experiments"):
        access.create_key("public", origins=[SHOP])
    with pytest.raises(InvalidField, match="origins"):
        access.create_key("public", experiments=["home"])
    with pytest.raises(NotFound, match="experiment 'nope' does not exist"):
        access.create_key("public", experiments=["nope"], origins=[SHOP])
    with pytest.raises(InvalidField, match="only public keys"):
        access.create_key("shop", experiments=["home"])
    assert access.list_keys() == []


def test_the_cli_creates_and_lists_public_keys(runner, db_path, app, client):
    assert client.post("/v1/experiments", json={"key": "home"}).status_code == 201
    assert client.post("/v1/experiments", json={"key": "cart"}).status_code == 201
    created = runner.invoke(cli, ["keys", "create", "--role", "public", "--experiment", "home", "--experiment",
                                  "cart", "--origin", SHOP, "--origin", "https://www.shop.example", "--db", db_path])
    assert created.exit_code == 0, created.output
    assert created.stdout.startswith("sk_public_")
    assert "created for home, cart from https://shop.example, https://www.shop.example" in created.stderr
    listed = runner.invoke(cli, ["keys", "list", "--db", db_path])
    assert "experiments home,cart origins https://shop.example,https://www.shop.example" in listed.output
    bad = runner.invoke(cli, ["keys", "create", "--role", "public", "--experiment", "home", "--origin",
                              "shop.example", "--db", db_path])
    assert bad.exit_code != 0 and "origins[0]: must be an origin" in bad.output


def test_the_browser_client_is_served_to_any_origin(client):
    script = client.get("/static/silent.js", headers={"Origin": SHOP})
    assert script.status_code == 200 and script.mimetype == "text/javascript"
    assert script.headers["Access-Control-Allow-Origin"] == "*"
    assert b"export class SilentClient" in script.data
    assert "Access-Control-Allow-Origin" not in client.get("/static/dashboard.js").headers


def test_the_buckets_file_sits_beside_the_database_or_where_configured():
    from web.public_keys import rate_file

    base = {"PUBLIC_RATE_FILE": ""}
    assert rate_file({**base, "DATABASE": "/srv/shop.db"}) == "/srv/shop.db.public-rate"
    assert rate_file({**base, "DATABASE": ":memory:"}) is None
    assert rate_file({"PUBLIC_RATE_FILE": "/run/silent/rate", "DATABASE": "/srv/shop.db"}) == "/run/silent/rate"


@pytest.mark.engines("postgresql")
def test_on_postgresql_every_host_draws_from_the_same_bucket(db_path):
    """Two apps on one database, as two hosts: an address's burst of 3 is 3 calls in all, not 3 on each."""
    hosts = [create_app({"DATABASE": db_path, "PUBLIC_RATE_PER_SECOND": 0.01, "PUBLIC_RATE_BURST": 3.0})
             for _ in range(2)]
    assert hosts[0].test_client().post("/v1/experiments", json={"key": "home", "status": "running"}).status_code == 201
    key = hosts[0].extensions["silent"]["access"].create_key("public", experiments=["home"], origins=[SHOP])["key"]

    def slate(host, address):
        return host.test_client().post("/v1/experiments/home/slate", json=slate_body(), environ_base={
            "REMOTE_ADDR": address}, headers={"Authorization": f"Bearer {key}", "Origin": SHOP})

    assert [slate(hosts[n % 2], "10.0.0.1").status_code for n in range(3)] == [200, 200, 200]
    limited = slate(hosts[1], "10.0.0.1")
    assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 100
    assert slate(hosts[0], "10.0.0.1").status_code == 429
    assert slate(hosts[1], "10.0.0.2").status_code == 200  # another address has its own bucket
    store = hosts[0].extensions["silent"]["store"]
    assert store.drop_full_buckets(300.0) == 0  # both drained just now: kept
    store.conn.execute("UPDATE rate_buckets SET at = at - 301")
    assert store.drop_full_buckets(300.0) == 2  # full again after 3 tokens / 0.01 per second: nothing to keep
    for host in hosts:
        host.extensions["silent"]["store"].close()


def test_a_buckets_file_of_another_user_is_refused(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root (CI runs as root)")
    path = tmp_path / "rate"
    path.write_bytes(b"")
    os.chown(path, 65534, 65534)
    with pytest.raises(PermissionError, match="belongs to another user"):
        TokenBuckets(str(path), Rate(), VirtualClock()).take("192.0.2.7")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError):
        TokenBuckets(str(link), Rate(), VirtualClock()).take("192.0.2.7")


def test_a_public_key_in_the_url_makes_a_simple_request_without_preflight(client, keys, db_path):
    """What silent.js sends: ?key= and a text/plain body, which browsers send without a preflight."""
    slate = client.post(f"/v1/experiments/home/slate?key={keys['public']}", data=json.dumps(slate_body()),
                        headers={"Origin": SHOP, "Content-Type": "text/plain;charset=UTF-8"})
    assert slate.status_code == 200 and slate.headers["Access-Control-Allow-Origin"] == SHOP
    event, item = slate.get_json()["event_id"], slate.get_json()["slate"][0]["id"]
    reward = client.post(f"/v1/events/{event}/rewards?key={keys['public']}", headers={"Origin": SHOP},
                         data=json.dumps({"type": "click", "item": item, "id": "c-1"}), content_type="text/plain")
    assert reward.status_code == 202 and reward.headers["Access-Control-Allow-Origin"] == SHOP
    before = table_counts(db_path)
    elsewhere = client.post(f"/v1/experiments/home/slate?key={keys['public']}", data=json.dumps(slate_body()),
                            headers={"Origin": "https://evil.example"}, content_type="text/plain")
    assert elsewhere.status_code == 403 and "Access-Control-Allow-Origin" not in elsewhere.headers
    assert table_counts(db_path) == before  # a refused origin's simple request changes nothing


def test_only_public_keys_may_travel_in_the_url(client, keys, db_path):
    before = table_counts(db_path)
    for role in ("shop", "admin"):
        refused = client.post(f"/v1/experiments/home/slate?key={keys[role]}", json=slate_body())
        assert refused.status_code == 401 and refused.get_json()["error"]["field"] == "key"
        assert f"send this {role} key as 'Authorization: Bearer <key>'" in refused.get_json()["error"]["message"]
    admin_route = client.get(f"/v1/experiments?key={keys['admin']}")  # other routes never read ?key=
    assert admin_route.status_code == 401 and admin_route.get_json()["error"]["field"] == "Authorization"
    assert table_counts(db_path) == before
