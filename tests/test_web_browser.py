"""One real browser (the system Chromium, headless, driven by Playwright) against a live `silent serve`."""
import json
import os
import shutil
import subprocess
import sys
import urllib.request

import pytest

from tests.test_web_server import Server, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
PASSWORD = "correct horse battery"

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM) and not shutil.which("chromium"),
                                reason="the system Chromium (Debian package 'chromium') is not installed")


def post(base, path, body):
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def shop_traffic(base, key, n=60):
    """Page views with a few clicks, so the report has something to draw."""
    items = [{"id": f"sku-{i}", "features": {"category": f"c{i % 3}", "price": 10.0 + i}} for i in range(5)]
    for i in range(n):
        answer = post(base, f"/v1/experiments/{key}/slate",
                      {"unit": f"user-{i}", "candidates": items, "context": {"user": {"segment": "new"}}})
        if i % 3 == 0:
            post(base, f"/v1/events/{answer['event_id']}/rewards", {"type": "click", "item": answer["slate"][0]["id"]})


@pytest.fixture
def server(tmp_path):
    db = str(tmp_path / "browser.db")
    made = subprocess.run([sys.executable, "-m", "web", "users", "create", "alice", "--password", PASSWORD,
                           "--db", db], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    live = Server(db, free_port())
    yield live
    live.stop()


def test_sign_in_create_an_experiment_and_see_its_chart(server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM)
                                             else shutil.which("chromium"), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(15_000)
            page.goto(server.base + "/")
            assert page.url.startswith(server.base + "/sign-in")
            page.fill("#name", "alice")
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(server.base + "/")

            page.click("text=New experiment")
            page.fill("[name=key]", "home-recs")
            page.fill("[name=name]", "Home recommendations")
            page.fill("[name=slots]", "2")
            page.check("[name=start]")
            page.click("text=Create experiment")
            page.wait_for_url(server.base + "/experiments/home-recs")

            shop_traffic(server.base, "home-recs")
            page.goto(server.base + "/")
            row = page.locator("table.experiments tbody tr", has_text="Home recommendations")
            assert row.count() == 1 and "running" in row.inner_text()
            row.locator("a", has_text="Home recommendations").click()
            page.wait_for_url(server.base + "/experiments/home-recs")
            chart = page.locator("figure.chart svg").first
            chart.wait_for(state="visible")
            assert chart.bounding_box()["width"] > 200
            page.screenshot(path=str(tmp_path / "experiment-page.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "experiment-page.png").stat().st_size > 10_000
