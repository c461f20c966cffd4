"""README's "Integrating your shop" runs as written against a live `silent serve`: keys, Python, browser page.

The examples name the service http://127.0.0.1:8000 (Python) and https://silent.example (the page); the test
points them at its own server, and gives the page a public key for the origin the test serves it from.
"""
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys
import time
import urllib.request

from tests.live import Server, call, free_port
from tests.docs_examples import wildcard as matches
from tests.test_web_js_client import browse, rewards_stored
from web.cli import cli

ROOT = pathlib.Path(__file__).resolve().parent.parent
TITLE = "## Integrating your shop"
WARM_UP = [{"id": "sku-1", "features": {"category": "shoes", "price": 49.0}},
           {"id": "sku-2", "features": {"category": "bags", "price": 89.0}}]


def section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(TITLE)
    end = text.find("\n## ", start + len(TITLE))
    return text[start:end if end != -1 else len(text)]


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", section(), re.S)


def console_examples() -> list[tuple[str, list[str]]]:
    found = []
    for block in blocks("console"):
        for line in block.splitlines():
            if line.startswith("$ "):
                found.append((line[2:], []))
            else:
                found[-1][1].append(line)
    return found


def slate_with(base, key):
    request = urllib.request.Request(base + "/v1/experiments/home-recs/slate", method="POST",
                                     data=json.dumps({"unit": "warm-up", "candidates": WARM_UP}).encode(),
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_the_integration_examples_run_as_documented(tmp_path, monkeypatch, runner):
    monkeypatch.chdir(tmp_path)
    server = Server(str(tmp_path / "shop.db"))
    try:
        # the quick start's experiment, made while the API is still open
        assert call(server.base, "POST", "/v1/experiments", {"key": "home-recs", "slots": 2, "status": "running",
                                                             "reward": {"wait_seconds": 5}})[0] == 201
        made = []
        for command, expected in console_examples():
            args = shlex.split(command)
            assert args[0] == "silent"
            result = runner.invoke(cli, args[1:])
            assert result.exit_code == 0, (command, result.output)
            lines = result.output.splitlines()
            assert len(lines) == len(expected), (command, result.output)
            for want, got in zip(expected, lines):
                assert matches(want, got), (command, want, got)
            made.append(lines[0])
        public, shop = made
        assert public.startswith("sk_public_") and shop.startswith("sk_shop_")
        time.sleep(1.2)  # the workers notice the first keys within a second
        slate_with(server.base, shop)  # a running shop's service is warm: its worker has the experiment loaded

        code = blocks("python")[0].replace("http://127.0.0.1:8000", server.base)
        for _ in range(3):  # a loaded test machine may take a slate past its 50 ms budget: the example falls back
            ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT,
                                 env={**os.environ, "SILENT_SHOP_KEY": shop})
            if not ran.stdout.startswith("True "):
                break
        assert ran.returncode == 0, ran.stderr
        printed, shown = ran.stdout.splitlines(), blocks("text")[0].splitlines()
        assert len(printed) == len(shown), ran.stdout
        for want, got in zip(shown, printed):
            assert matches(want, got), (want, got)
        assert len(rewards_stored(server.db)) == 1

        port = free_port()
        browser_key = runner.invoke(cli, ["keys", "create", "--role", "public", "--experiment", "home-recs",
                                          "--origin", f"http://127.0.0.1:{port}", "--db", "shop.db"]).output
        browser_key = browser_key.splitlines()[0]
        page = blocks("html")[0].replace("https://silent.example", server.base).replace("sk_public_...", browser_key)
        time.sleep(1.2)  # preflights see the new key's origin within a second
        seen = browse({"service": server.base, "key": browser_key, "scenarios": [
            {"name": "readme", "port": port, "script": "service", "ready": "#recs a", "click": True,
             "links": 2, "tries": 5,  # a loaded test machine may take the page past its 50 ms budget: reload
             "html": f"<!doctype html><html><head><meta charset=utf-8></head><body>{page}</body></html>"}]})["readme"]
        assert seen["errors"] == []
        assert len(seen["rendered"]) == 2, seen  # the service's two-slot slate, not the shop's three products
        assert seen["landed"].endswith(f"/products/{seen['clicked']}")
        deadline = time.time() + 10
        while len(rewards_stored(server.db)) < 2 and time.time() < deadline:
            time.sleep(0.1)
        assert [item for _, kind, item in rewards_stored(server.db)][1:] == [seen["clicked"]]
    finally:
        server.stop()
