"""The Python client against a live `silent serve`: slates, rewards that count once, and the fallback."""
import socket
import sqlite3
import threading
import time

import pytest

from silent_client import SilentClient
from tests.live import Server, call, free_port

CANDIDATES = [{"id": f"sku-{i}", "features": {"price": 10.0 + i}} for i in range(4)]
SHOP_ORDER = [c["id"] for c in CANDIDATES]
SLACK = 0.15  # seconds past the budget a loaded 2-core machine may take to notice it (about 1 ms idle)


@pytest.fixture
def served(tmp_path):
    db = str(tmp_path / "shop.db")
    server = Server(db)
    assert call(server.base, "POST", "/v1/experiments", {"key": "home-recs", "slots": 2, "status": "running"})[0] == 201
    yield server
    if server.proc.poll() is None:  # a test may have stopped it already
        server.stop()


@pytest.fixture
def hanging():
    """Accepts connections and never answers: a service that is slow beyond any budget."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def rewards(db):
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT event_id, reward_key, type, item FROM rewards").fetchall()
    finally:
        conn.close()


def test_a_slate_and_a_reward_that_counts_once(served):
    client = SilentClient(served.base, timeout=5.0)
    slate = client.slate("home-recs", {"unit": "user-1", "candidates": CANDIDATES,
                                       "context": {"page": {"type": "home"}}})
    assert slate.fallback is False and slate.reason is None and slate.event_id
    assert len(slate.items) == 2 and set(slate.items) <= set(SHOP_ORDER)
    assert slate.items == [s["id"] for s in slate.slate] and slate.variant in ("bandit", "holdout")
    first = client.reward(slate.event_id, type="click", item=slate.items[0], id="click-1")
    assert first.ok and first.attempts == 1 and first.answer["duplicate"] is False and first.answer["slot"] == 0
    again = client.reward(slate.event_id, type="click", item=slate.items[0], id="click-1")
    assert again.ok and again.answer["duplicate"] is True
    assert rewards(served.db) == [(slate.event_id, "click-1", "click", slate.items[0])]


def test_a_reward_retried_across_a_restart_arrives_once(served):
    """The service is down when the shop posts; the retries carry one id, so it is stored once when it is back."""
    client = SilentClient(served.base, timeout=5.0, retries=40, backoff=0.25)
    slate = client.slate("home-recs", {"unit": "user-2", "candidates": CANDIDATES})
    assert not slate.fallback
    served.stop()
    result = {}
    posting = threading.Thread(target=lambda: result.update(
        done=client.reward(slate.event_id, type="add_to_cart", item=slate.items[1])))
    posting.start()
    time.sleep(0.6)  # a few refused tries
    assert posting.is_alive()
    restarted = Server(served.db, port=served.port)
    try:
        posting.join(60)
        done = result["done"]
        assert done.ok and done.attempts > 1 and done.answer["duplicate"] is False
        stored = rewards(served.db)
        assert [(e, t, i) for e, _, t, i in stored] == [(slate.event_id, "add_to_cart", slate.items[1])]
        repeat = client.reward(slate.event_id, type="add_to_cart", item=slate.items[1], id=done.answer["id"])
        assert repeat.ok and repeat.answer["duplicate"] is True and len(rewards(served.db)) == 1
    finally:
        restarted.stop()


def test_mistakes_are_not_retried(served):
    client = SilentClient(served.base, retries=3, backoff=1.0)
    started = time.monotonic()
    missing = client.reward("no-such-event", type="click")
    assert not missing.ok and missing.status == 404 and missing.attempts == 1 and missing.reason == "http 404"
    assert missing.answer["error"]["field"] == "event_id" and time.monotonic() - started < 1.0
    refused = client.slate("no-such-experiment", {"candidates": CANDIDATES}, timeout=5.0)
    assert refused.fallback and refused.reason == "http 404" and refused.items == SHOP_ORDER


def test_a_slow_service_costs_no_more_than_the_budget(hanging):
    client = SilentClient(hanging)  # the default budget: 50 ms
    started = time.monotonic()
    slate = client.slate("home-recs", {"unit": "user-1", "candidates": CANDIDATES, "slots": 3})
    took = time.monotonic() - started
    assert slate.fallback and slate.reason == "timeout" and slate.event_id is None
    assert slate.items == SHOP_ORDER[:3]  # the shop's own order, as many as the slots asked for
    assert 0.05 <= took < 0.05 + SLACK
    own = client.slate("home-recs", {"candidates": CANDIDATES}, fallback=["sku-3", "sku-1"], timeout=0.02)
    assert own.items == ["sku-3", "sku-1"] and own.fallback


def test_a_stopped_service_falls_back_at_once(served, caplog):
    base = served.base
    served.stop()
    client = SilentClient(base)
    started = time.monotonic()
    with caplog.at_level("WARNING", logger="silent_client"):
        slate = client.slate("home-recs", {"unit": "user-1", "candidates": CANDIDATES})
    assert time.monotonic() - started < 0.05 + SLACK
    assert slate.fallback and slate.reason.startswith("network") and slate.items == SHOP_ORDER
    assert "silent slate fallback: experiment=home-recs reason=network" in caplog.text
    assert client.reward(None).ok is False  # nothing to reward on the shop's own order
    down = SilentClient(base, retries=2, backoff=0.01).reward("pv-1", type="click")
    assert not down.ok and down.attempts == 3 and down.reason.startswith("network")


def test_a_free_port_is_a_stopped_service():
    slate = SilentClient(f"http://127.0.0.1:{free_port()}").slate("x", {"candidates": ["a", "b"]})
    assert slate.fallback and slate.items == ["a", "b"]


def test_the_endpoint_must_be_a_url():
    with pytest.raises(ValueError, match="endpoint"):
        SilentClient("127.0.0.1:8000")
