"""The storefront test's browser steps, run in a child process: shop pages on their own origins use silent.js.

Usage: python -m tests.browser_shop_steps CONFIG_JSON   (prints one JSON object of results; non-zero exit on failure)

CONFIG_JSON names the service (``service``), the public key (``key``) and the scenarios to run, each with the
port its shop page is served from and where the page loads silent.js from:
  {"service": "http://127.0.0.1:8000", "key": "sk_public_...",
   "scenarios": [{"name": "allowed", "port": 9001, "script": "service", "timeout_ms": 5000, "click": true}, ...]}
``script`` is "service" (``SERVICE/static/silent.js``) or "copy" (the shop serves its own copy, as a shop that
must render while the service is down does). ``endpoint`` overrides the service URL for one scenario. ``html``
replaces the page (a documented example), ``ready`` the selector that says it has rendered; with ``links`` and
``tries`` the page is loaded again (up to ``tries`` times) until it renders that many links; ``then`` is a
JavaScript function run on the rendered page, its result returned.
"""
import json
import os
import shutil
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from playwright.sync_api import sync_playwright

from tests.browser_steps import CHROMIUM, CHROMIUM_ARGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIENT = os.path.join(ROOT, "web", "static", "silent.js")
PRODUCTS = [{"id": f"sku-{i}", "features": {"category": f"c{i % 3}", "price": 10.0 + i}} for i in range(5)]

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>A shop</title></head>
<body><h1>Recommended for you</h1><ul id="recs"></ul>
<script type="module">
import { SilentClient } from %(script)s;
const failures = [];
const silent = new SilentClient({endpoint: %(endpoint)s, key: %(key)s, onError: (f) => failures.push(f)%(budget)s});
const products = %(products)s;
const answer = await silent.slate("home-recs", {unit: "user-1", candidates: products,
                                                context: {page: {type: "home"}}});
window.answer = answer;
window.failures = failures;
window.silent = silent;
const list = document.getElementById("recs");
for (const id of answer.items) {
  const link = document.createElement("a");
  link.href = "/thanks";
  link.id = id;
  link.textContent = id;
  link.addEventListener("click", () => { silent.reward(answer.event_id, {type: "click", item: id}); });
  const item = document.createElement("li");
  item.append(link);
  list.append(item);
}
document.body.dataset.ready = "yes";
</script></body></html>
"""


def page_for(config: dict, scenario: dict) -> str:
    if "html" in scenario:
        return scenario["html"]
    endpoint = scenario.get("endpoint", config["service"])
    script = endpoint + "/static/silent.js" if scenario["script"] == "service" else "/silent.js"
    budget = f", timeoutMs: {scenario['timeout_ms']}" if "timeout_ms" in scenario else ""
    return PAGE % {"script": json.dumps(script), "endpoint": json.dumps(endpoint), "key": json.dumps(config["key"]),
                   "budget": budget, "products": json.dumps(PRODUCTS)}


def serve_shop(port: int, page: str) -> ThreadingHTTPServer:
    """The shop's own web server: its page, its copy of silent.js, and the page a click leads to."""
    files = {"/": ("text/html", page.encode()), "/thanks": ("text/html", b"<!doctype html><p>thanks</p>"),
             "/silent.js": ("text/javascript", open(CLIENT, "rb").read())}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            kind, body = files.get(self.path.split("?")[0], ("text/plain", b"not here"))
            self.send_response(200 if self.path.split("?")[0] in files else 404)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run(config: dict) -> dict:
    results = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM)
                                             else shutil.which("chromium"), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()  # one shopper: preflight answers and connections are reused
            for scenario in config["scenarios"]:
                shop = serve_shop(scenario["port"], page_for(config, scenario))
                try:
                    results[scenario["name"]] = visit(context, scenario)
                finally:
                    shop.shutdown()
                    shop.server_close()
        finally:
            browser.close()
    return results


def visit(context, scenario: dict) -> dict:
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(15_000)
    for visits in range(1, scenario.get("tries", 1) + 1):  # a page that may fall back: until it did not
        page.goto(f"http://127.0.0.1:{scenario['port']}/")
        page.wait_for_selector(scenario.get("ready", "body[data-ready=yes]"))
        answer = page.evaluate("window.answer ?? null")
        rendered = page.locator("#recs a").all_inner_texts()
        if len(rendered) == scenario.get("links", len(rendered)):
            break
    result = {"answer": answer, "rendered": rendered, "failures": page.evaluate("window.failures ?? null"),
              "errors": errors, "visits": visits}
    if scenario.get("then"):  # more steps on the rendered page: a JavaScript function's awaited result
        result["then"] = page.evaluate(scenario["then"])
    if scenario.get("click"):
        clicked = rendered[0]
        with page.expect_navigation():
            page.click(f"#recs a >> text={clicked}")  # the reward is sent as the page unloads
        result["clicked"] = clicked
        result["landed"] = page.url
    page.close()
    return result


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))))
