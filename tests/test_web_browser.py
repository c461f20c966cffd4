"""One real browser (the system Chromium, headless, driven by Playwright) against a live `silent serve`."""
import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

from tests.live import Server, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse battery"

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM) and not shutil.which("chromium"),
                                reason="the system Chromium (Debian package 'chromium') is not installed")


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
    """Drive Chromium from a child process, so Playwright's greenlets never live in pytest's own interpreter."""
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("playwright is not installed (it comes with the test extras)")
    screenshot = tmp_path / "experiment-page.png"
    done = subprocess.run([sys.executable, "-m", "tests.browser_steps", server.base, str(screenshot), PASSWORD],
                          capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert screenshot.stat().st_size > 10_000
