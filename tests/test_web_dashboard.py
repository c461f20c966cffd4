"""The dashboard through Flask's test client: sign-in, every page, forms, CSRF and confirmations."""
import re
import time
from html.parser import HTMLParser

import pytest

from tests.conftest import ITEMS, table_counts

PASSWORD = "correct horse battery"


class Form(HTMLParser):
    """Collect the named inputs of the first form with a CSRF token, as a browser would submit them."""

    def __init__(self, html: str):
        super().__init__()
        self.values, self._select, self._textarea, self.errors = {}, None, None, {}
        self._error_for = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        name = attrs.get("name")
        if tag == "input" and name:
            if attrs.get("type") == "checkbox":
                if "checked" in attrs:
                    self.values[name] = "on"
            else:
                self.values[name] = attrs.get("value", "")
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and ("selected" in attrs or self._select not in self.values):
            self.values[self._select] = attrs.get("value", "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.values[name] = ""
        elif tag == "p" and "field-error" in attrs.get("class", ""):
            self._error_for = attrs["id"].removesuffix("-error")

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "p":
            self._error_for = None

    def handle_data(self, data):
        if self._textarea:
            self.values[self._textarea] += data.removeprefix("\n") if not self.values[self._textarea] else data
        if self._error_for:
            self.errors[self._error_for] = self.errors.get(self._error_for, "") + data


class Dashboard:
    """A signed-in admin clicking through the dashboard."""

    def __init__(self, client):
        self.client = client

    def get(self, path, expect=200):
        response = self.client.get(path)
        assert response.status_code == expect, (path, response.status_code, response.text[:500])
        return response

    def submit(self, path, changes=None, expect=302, drop=()):
        """Load the form at ``path``, change some fields and post it back."""
        values = Form(self.get(path).text).values
        values.update(changes or {})
        for name in drop:
            values.pop(name, None)
        response = self.client.post(path, data=values)
        assert response.status_code == expect, (path, response.status_code, response.text[:2000])
        return response

    def sign_in(self, name="alice", password=PASSWORD, expect=302):
        return self.submit("/sign-in", {"name": name, "password": password}, expect=expect)


@pytest.fixture
def admin(app, client):
    app.extensions["silent"]["access"].create_user("alice", PASSWORD)
    board = Dashboard(client)
    board.sign_in()
    return board


@pytest.fixture
def experiment(admin):
    admin.submit("/new", {"key": "home-recs", "name": "Home recommendations", "slots": "2", "start": "on"})
    return "home-recs"


def test_pages_need_a_signed_in_user(client, app):
    for path in ("/", "/new", "/experiments/x", "/experiments/x/edit", "/experiments/x/history"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/sign-in?next=")
    page = client.get("/sign-in")
    assert "silent users create NAME" in page.text
    app.extensions["silent"]["access"].create_user("alice", PASSWORD)
    board = Dashboard(client)
    assert "do not match" in board.sign_in(password="wrong password", expect=401).text
    assert board.sign_in().headers["Location"] == "/"


def test_sign_in_follows_next_only_within_the_site(app, client):
    app.extensions["silent"]["access"].create_user("alice", PASSWORD)
    board = Dashboard(client)
    values = Form(board.get("/sign-in").text).values | {"name": "alice", "password": PASSWORD}
    assert client.post("/sign-in?next=/new", data=values).headers["Location"] == "/new"
    values = Form(board.get("/sign-in").text).values | {"name": "alice", "password": PASSWORD}
    assert client.post("/sign-in?next=//evil.example", data=values).headers["Location"] == "/"


def test_session_cookie_is_httponly_and_samesite(app, client):
    app.extensions["silent"]["access"].create_user("alice", PASSWORD)
    cookie = Dashboard(client).sign_in().headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_every_page_renders_for_a_signed_in_admin(admin, experiment, shop):
    for i in range(30):
        answer = shop.slate(experiment, unit=f"u{i}", candidates=ITEMS, context={"user": {"segment": "new"}})
        if i % 3 == 0:
            shop.reward(answer["event_id"], type="click", item=answer["slate"][0]["id"])
    shop.learn(seconds=700)
    pages = ["/", "/new", f"/experiments/{experiment}", f"/experiments/{experiment}/edit",
             f"/experiments/{experiment}/history", f"/experiments/{experiment}/evaluate",
             f"/experiments/{experiment}/pause"]
    for path in pages:
        page = admin.get(path)
        assert "<html" in page.text and "alice" in page.text and "Sign out" in page.text, path
        assert not re.search(r'(src|href)="(https?:)?//', page.text), f"{path} loads something from elsewhere"
    for asset in ("/static/dashboard.css", "/static/dashboard.js"):
        assert admin.get(asset).status_code == 200
    listing = admin.get("/").text
    assert "Home recommendations" in listing and "running" in listing and "90% bandit · 10% holdout" in listing


def test_create_shows_each_validation_message_next_to_its_field(admin, db_path):
    before = table_counts(db_path)
    cases = [
        ({"key": "Bad Key"}, "key", "must be 1-64 characters"),
        ({"key": "x", "slots": "0"}, "slots", "must be >= 1"),
        ({"key": "x", "slots": "two"}, "slots", "must be a finite number"),
        ({"key": "x", "traffic.holdout": "1.5"}, "traffic-holdout", "must be < 1"),
        ({"key": "x", "exploration.algorithm": "epsilon", "exploration.epsilon.epsilon": "2"},
         "exploration-epsilon-epsilon", "must be <= 1"),
        ({"key": "x", "exploration.algorithm": "squarecb", "exploration.squarecb.gamma_scale": "-1"},
         "exploration-squarecb-gamma_scale", "must be > 0"),
        ({"key": "x", "reward.events": "click 1"}, "reward-events", "write it as name = value"),
        ({"key": "x", "reward.events": "click = lots"}, "reward-events", "must be a finite number"),
        ({"key": "x", "learning.interactions": "U"}, "learning-interactions", "namespace crossings"),
        ({"key": "x", "arms": "a\nb"}, "arms", "only strategies experiments"),
        ({"key": "x", "kind": "strategies", "arms": "a\na"}, "arms", "duplicate arm id"),
        ({"key": "x", "kind": "strategies", "arms": "a {nope"}, "arms", "line 1: features must be a JSON object"),
        ({"key": "x", "kind": "strategies", "arms": "a\nb", "traffic.control": "c"}, "traffic-control",
         "must name one of the experiment's arms"),
    ]
    for changes, field, message in cases:
        response = admin.submit("/new", changes, expect=400)
        form = Form(response.text)
        assert list(form.errors) == [field], (changes, form.errors)
        assert message in form.errors[field], (changes, form.errors)
        for name, value in changes.items():  # what was typed is kept
            assert form.values[name] == value
    assert table_counts(db_path) == before


def test_create_then_duplicate_key_is_reported_on_the_key(admin, experiment):
    page = admin.get(f"/experiments/{experiment}").text
    assert "Home recommendations" in page and "running" in page
    response = admin.submit("/new", {"key": experiment}, expect=400)
    assert "already exists" in Form(response.text).errors["key"]


def test_strategies_experiment_round_trips_through_the_form(admin, client):
    admin.submit("/new", {"key": "banner", "kind": "strategies", "slots": "1",
                          "arms": 'bestsellers {"source": "popularity"}\nnew-in\nsale {"discount": true}',
                          "traffic.control": "bestsellers", "exploration.algorithm": "softmax",
                          "exploration.softmax.lambda": "5", "reward.events": "click = 1\npurchase = 12.5"})
    spec = client.get("/v1/experiments/banner").get_json()["spec"]
    assert [a["id"] for a in spec["arms"]] == ["bestsellers", "new-in", "sale"]
    assert spec["arms"][0]["features"] == {"source": "popularity"}
    assert spec["traffic"]["control"] == {"arm": "bestsellers"}
    assert spec["exploration"] == {"algorithm": "softmax", "lambda": 5.0}
    assert spec["reward"]["events"] == {"click": 1.0, "purchase": 12.5}
    edit = Form(admin.get("/experiments/banner/edit").text).values
    assert edit["arms"].splitlines()[0] == 'bestsellers {"source": "popularity"}'
    assert edit["exploration.algorithm"] == "softmax" and edit["traffic.control"] == "bestsellers"


def test_edit_records_only_what_changed_with_the_user_as_actor(admin, experiment, client):
    admin.submit(f"/experiments/{experiment}/edit", {"traffic.holdout": "0.2", "name": "Home v2"})
    response = admin.submit(f"/experiments/{experiment}/edit", {"traffic.holdout": "0.2", "name": "Home v2"})
    assert client.get(response.headers["Location"]).status_code == 200
    history = client.get(f"/v1/experiments/{experiment}/history").get_json()["history"]
    assert [h["actor"] for h in history] == ["alice", "alice"]
    assert history[1]["change"] == {"name": "Home v2", "traffic": {"holdout": 0.2, "control": "uniform"}}
    page = admin.get(f"/experiments/{experiment}/history").text
    assert "alice" in page and "created as running" in page and "holdout" in page
    bad = admin.submit(f"/experiments/{experiment}/edit", {"learning.learning_rate": "0"}, expect=400)
    assert "must be > 0" in Form(bad.text).errors["learning-learning_rate"]


def test_the_drift_watch_is_switched_on_in_the_form_keeping_the_rules(admin, experiment, client):
    rule = {"feature": "user.segment", "value": "s2", "before": 9}
    client.patch(f"/v1/experiments/{experiment}", json={"learning": {"forget": [rule]}})
    admin.submit(f"/experiments/{experiment}/edit", {"learning.drift_watch.enabled": "on",
                                                     "learning.drift_watch.threshold": "4"})
    learning = client.get(f"/v1/experiments/{experiment}").get_json()["spec"]["learning"]
    assert learning["drift_watch"] == {"enabled": True, "threshold": 4.0, "recent": 1500, "reference": 4500,
                                       "min_drop": 0.25}
    assert learning["forget"] == [rule]
    assert Form(admin.get(f"/experiments/{experiment}/edit").text).values["learning.drift_watch.threshold"] == "4"
    bad = admin.submit(f"/experiments/{experiment}/edit", {"learning.drift_watch.threshold": "1"}, expect=400)
    assert "must be >= 3" in Form(bad.text).errors["learning-drift_watch-threshold"]


def test_edit_refuses_a_stale_form(admin, experiment, client):
    stale = Form(admin.get(f"/experiments/{experiment}/edit").text).values
    admin.submit(f"/experiments/{experiment}/edit", {"name": "Changed first"})
    response = client.post(f"/experiments/{experiment}/edit", data=stale | {"name": "Changed second"})
    assert response.status_code == 409 and "changed this experiment while you were editing" in response.text
    assert client.get(f"/v1/experiments/{experiment}").get_json()["name"] == "Changed first"


def test_start_pause_stop_ask_for_confirmation(admin, client):
    admin.submit("/new", {"key": "promo"})
    assert client.get("/v1/experiments/promo").get_json()["status"] == "draft"
    for action, status in [("start", "running"), ("pause", "paused"), ("start", "running"), ("stop", "stopped")]:
        page = admin.get(f"/experiments/promo/{action}").text
        assert "Cancel" in page and f"Yes, {action} it" in page
        assert client.get("/v1/experiments/promo").get_json()["status"] != status  # asking changed nothing
        admin.submit(f"/experiments/promo/{action}")
        assert client.get("/v1/experiments/promo").get_json()["status"] == status
    assert admin.get("/experiments/promo/start", expect=409)
    assert admin.get("/experiments/promo/explode", expect=404)
    assert [h["actor"] for h in client.get("/v1/experiments/promo/history").get_json()["history"]] == ["alice"] * 5


def test_a_form_post_without_the_csrf_token_is_rejected(admin, client, db_path):
    before = table_counts(db_path)
    response = admin.submit("/new", {"key": "sneaky"}, expect=400, drop=["csrf_token"])
    assert "security token" in response.text
    assert client.post("/sign-out").status_code == 400
    response = admin.submit("/new", {"key": "sneaky", "csrf_token": "forged"}, expect=400)
    assert "security token" in response.text
    assert table_counts(db_path) == before
    assert admin.get("/").status_code == 200  # still signed in


def test_sign_out_ends_the_session(admin, client):
    page = admin.get("/").text
    token = Form(page).values["csrf_token"]
    assert client.post("/sign-out", data={"csrf_token": token}).status_code == 302
    assert client.get("/").status_code == 302


def test_unknown_experiment_is_a_404_page(admin):
    page = admin.get("/experiments/missing", expect=404).text
    assert "does not exist" in page and "<html" in page


def row_of(listing: str, key: str) -> str:
    """Return the list's table row of one experiment."""
    start = listing.rindex("<tr>", 0, listing.index(f'href="/experiments/{key}"'))
    return listing[start:listing.index("</tr>", start)]


def traffic(shop, key, n=60, reward_every=3, segment="new"):
    for i in range(n):
        answer = shop.slate(key, unit=f"{segment}-{i}", candidates=ITEMS, context={"user": {"segment": segment}})
        if reward_every and i % reward_every == 0:
            shop.reward(answer["event_id"], type="click", item=answer["slate"][0]["id"])


def test_experiment_page_shows_the_report_with_tables_and_charts(admin, experiment, shop):
    traffic(shop, experiment, n=90)
    shop.learn(seconds=700)
    page = admin.get(f"/experiments/{experiment}").text
    for text in ("Variants", "bandit", "holdout", "Rewarded share", "click rate", "Lift, relative", "Sample ratio",
                 "Off-policy estimates", "uniform random", "IPS", "SNIPS", "DR", "Published models"):
        assert text in page, text
    assert page.count("<svg") == 4 and "Model versions" in page and "Item shares over time" in page
    assert "item-" in page and 'class="legend"' in page


def test_report_range_errors_appear_next_to_their_inputs(admin, experiment):
    page = Form(admin.get(f"/experiments/{experiment}?from=yesterday&interval=hour").text)
    assert "ISO 8601" in page.errors["from"]
    page = Form(admin.get(f"/experiments/{experiment}?interval=week").text)
    assert "must be one of auto, hour, day" in page.errors["interval"]
    assert admin.get(f"/experiments/{experiment}?from=2026-01-01T00:00:00Z&interval=day").status_code == 200


def test_list_shows_lift_with_interval_and_warning_badges(admin, shop, client, clock):
    shop.create("lively", slots=1, reward={"wait_seconds": 60})
    traffic(shop, "lively", n=60, reward_every=2)
    shop.create("quiet", slots=1, reward={"wait_seconds": 60})
    traffic(shop, "quiet", n=60, reward_every=0)
    clock.advance(120)
    assert client.patch("/v1/experiments/lively", json={"traffic": {"holdout": 0.9}}).status_code == 200
    listing = admin.get("/").text
    lively, quiet = (row_of(listing, key) for key in ("lively", "quiet"))
    assert "sample ratio mismatch" in lively and "no rewards arriving" not in lively
    assert "no rewards arriving" in quiet and "sample ratio" not in quiet
    assert re.search(r"[+-]?\d+\.\d%</span>\s*<span class=\"muted\">\[", lively)  # lift with its interval
    assert ">60</td>" in quiet  # decisions today


def test_list_says_not_enough_data_until_the_lift_has_an_interval(admin, shop, clock):
    shop.create("fresh", slots=1, traffic={"holdout": 0.5})
    seen = set()
    for i in range(100):  # one decision per variant: a lift of -100% or +inf, with no interval yet
        answer = shop.slate("fresh", unit=f"u{i}", candidates=ITEMS)
        if answer["variant"] not in seen:
            seen.add(answer["variant"])
            if answer["variant"] == "holdout":
                shop.reward(answer["event_id"], type="click", item=answer["slate"][0]["id"])
        if seen == {"bandit", "holdout"}:
            break
    clock.advance(120)
    row = row_of(admin.get("/").text, "fresh")
    assert "not enough data" in row and "%" not in row.split('data-label="Lift over holdout"')[1].split("</td>")[0]
    assert 'class="badge ok"' not in row


def test_counterfactual_evaluation_runs_and_shows_both_policies(admin, experiment, shop):
    traffic(shop, experiment, n=40)
    shop.clock.advance(700)
    bad = admin.submit(f"/experiments/{experiment}/evaluate",
                       {"exploration.algorithm": "epsilon", "exploration.epsilon.epsilon": "3"}, expect=400)
    assert "must be <= 1" in Form(bad.text).errors["exploration-epsilon-epsilon"]
    bad = admin.submit(f"/experiments/{experiment}/evaluate", {"limit": "0"}, expect=400)
    assert "must be an integer from 1" in Form(bad.text).errors["limit"]
    started = admin.submit(f"/experiments/{experiment}/evaluate",
                           {"exploration.algorithm": "squarecb", "exploration.squarecb.gamma_scale": "20"})
    location = started.headers["Location"]
    assert "run=" in location
    deadline = time.time() + 60
    while time.time() < deadline:
        page = admin.get(location).text
        if "Verdict" in page or "failed" in page:
            break
        assert 'http-equiv="refresh"' in page
        time.sleep(0.2)
    assert "Verdict" in page, page[:3000]
    assert "Alternative settings" in page and "Live settings" in page and "squarecb (gamma_scale 20" in page
    assert "squarecb (gamma_scale 1000" in page and "Difference" in page and "Earlier runs" in page
    assert 'http-equiv="refresh"' not in page


def test_dashboard_chart_examples_run():
    import doctest

    from web.dashboard import bar_charts

    from web.dashboard import formatting

    from web.dashboard import forms

    for module in (bar_charts, formatting, forms):
        assert doctest.testmod(module).failed == 0
