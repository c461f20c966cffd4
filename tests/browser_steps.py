"""The browser test's steps, run in a child process: sign in, create an experiment, see its chart.

Usage: python -m tests.browser_steps BASE_URL SCREENSHOT_PATH PASSWORD  (exits non-zero on any failure)
"""
import json
import os
import shutil
import sys
import urllib.request

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


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


def main(base: str, screenshot: str, password: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM)
                                             else shutil.which("chromium"), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(15_000)
            page.goto(base + "/")
            assert page.url.startswith(base + "/sign-in")
            page.fill("#name", "alice")
            page.fill("#password", password)
            page.click("button[type=submit]")
            page.wait_for_url(base + "/")

            page.click("text=New experiment")
            page.fill("[name=key]", "home-recs")
            page.fill("[name=name]", "Home recommendations")
            page.fill("[name=slots]", "2")
            page.check("[name=start]")
            page.click("text=Create experiment")
            page.wait_for_url(base + "/experiments/home-recs")

            shop_traffic(base, "home-recs")
            page.goto(base + "/")
            row = page.locator("table.experiments tbody tr", has_text="Home recommendations")
            assert row.count() == 1 and "running" in row.inner_text()
            row.locator("a", has_text="Home recommendations").click()
            page.wait_for_url(base + "/experiments/home-recs")
            chart = page.locator("figure.chart svg").first
            chart.wait_for(state="visible")
            assert chart.bounding_box()["width"] > 200
            page.screenshot(path=screenshot, full_page=True)
        finally:
            browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
