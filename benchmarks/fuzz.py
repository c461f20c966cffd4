"""Fuzz every operation of the OpenAPI document against a live ``silent serve``; print JSON.

Usage: python benchmarks/fuzz.py [--examples 60] [--seed 0] [--workers 2]
Starts ``silent serve`` on a free 127.0.0.1 port with a fresh database, makes one
experiment and one Personalizer resource, then lets schemathesis generate requests
for every operation from /openapi.json: valid ones (positive) and ones that break
the schema (negative), with path parameters naming real objects or generated ones.
Every answer must be below 500, and every 4xx must have the documented error shape.
Prints the requests sent, counts by status, the 5xx count, the failures, and whether
the server still answers /healthz and a slate afterwards. ``tests/test_web_fuzz.py``
runs the same driver in process with fewer examples.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as with_seed
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance
from tqdm import tqdm

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
KEY_HEADER = "Ocp-Apim-Subscription-Key"
EXPERIMENT = {"key": "home-recs", "slots": 2, "status": "running", "traffic": {"holdout": 0.1}}
CANDIDATES = [{"id": f"sku-{i}", "features": {"category": f"c{i % 3}", "price": 5.0 + i}} for i in range(6)]
# Path parameters that name objects the setup made, so generated bodies reach the views' deeper checks.
REAL = {"key": "home-recs", "event_id": "pv-1", "item_id": "sku-1", "evaluation_id": 1, "unit": "user-9"}
REAL_PERSONALIZER = {"event_id": "pz-1", "evaluation_id": "eval-1"}


def bounded(document: dict, size: int) -> dict:
    """A copy of the document whose request lists and objects hold at most ``size`` entries.

    Unbounded feature lists make Hypothesis draw 40 kB bodies at a second each; small
    ones reach the same checks, so a run covers every operation in seconds.
    """
    def walk(value):
        if isinstance(value, dict):
            out = {k: walk(v) for k, v in value.items()}
            if out.get("type") == "array" or (isinstance(out.get("type"), list) and "array" in out["type"]):
                out.setdefault("maxItems", size)
            if out.get("type") == "object":
                out.setdefault("maxProperties", size)
            return out
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    copied = dict(document)
    copied["paths"] = {path: {method: ({**op, "requestBody": walk(op["requestBody"])}
                                       if isinstance(op, dict) and "requestBody" in op else op)
                              for method, op in item.items()} for path, item in document["paths"].items()}
    return copied


def load_schema(document: dict, size: int, app=None):
    """The schemathesis schema of a bounded copy of the document; ``app`` to call a WSGI app in process."""
    schema = schemathesis.openapi.from_dict(bounded(document, size))
    if app is not None:
        schema.app = app
    return schema


def operations(schema):
    """Every operation, once: the versioned Personalizer paths share the unversioned paths' views."""
    for result in schema.get_all_operations():
        operation = result.ok()
        if "{apiVersion}" not in operation.path:
            yield operation


class Tally:
    """Counts answers by status and keeps the first failures of each kind."""

    def __init__(self):
        self.statuses = collections.Counter()
        self.failures: list[dict] = []

    def record(self, case, response) -> None:
        self.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis raises a group of check failures
            if len(self.failures) < 20:
                self.failures.append({"operation": f"{case.method} {case.path}", "status": response.status_code,
                                      "body": _shown(case.body), "path": case.path_parameters,
                                      "query": case.query, "failure": str(exc)[:600]})

    def summary(self) -> dict:
        return {"requests": sum(self.statuses.values()),
                "by_status": {str(k): v for k, v in sorted(self.statuses.items())},
                "server_errors": sum(v for k, v in self.statuses.items() if k >= 500),
                "failures": len(self.failures), "first_failures": self.failures[:5]}


def _shown(body):
    text = json.dumps(body, default=str) if isinstance(body, (dict, list, str, int, float)) else None
    return text if text is None or len(text) < 300 else text[:300] + "..."


def fuzz_operation(operation, send, tally: Tally, examples: int, seed: int) -> None:
    """Send ``examples`` positive and negative cases, with real and with generated path parameters."""
    known = REAL_PERSONALIZER if operation.path.startswith("/personalizer/") else REAL
    real = {name: value for name, value in known.items() if "{" + name + "}" in operation.path}
    passes = [(GenerationMode.POSITIVE, real), (GenerationMode.NEGATIVE, real), (GenerationMode.POSITIVE, None)]
    for mode, path_parameters in passes:
        if path_parameters is None and not real:
            continue
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters or None)

        @with_seed(seed)
        @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(strategy)
        def run(case):
            tally.record(case, send(case))

        try:
            run()
        except Unsatisfiable:  # nothing to negate: no parameters and no body
            pass


def fuzz(schema, send, examples: int, seed: int, progress: bool = False) -> Tally:
    """Fuzz every operation of ``schema`` through ``send(case) -> response``."""
    tally = Tally()
    ops = list(operations(schema))
    for operation in tqdm(ops, desc="operations", disable=not progress):
        fuzz_operation(operation, send, tally, examples, seed)
    return tally


# -- against a live server ------------------------------------------------------------------------
SETUP = [  # (method, path, body, personalizer?): the objects the real path parameters name
    ("POST", "/v1/experiments", EXPERIMENT, False),
    ("POST", "/v1/experiments/home-recs/slate", {"event_id": "pv-1", "candidates": CANDIDATES}, False),
    ("POST", "/v1/experiments/home-recs/slate", {"event_id": "pv-9", "unit": "user-9", "candidates": CANDIDATES},
     False),  # a unit of its own for DELETE /v1/units/{unit}, so erasing it leaves pv-1 alone
    ("PUT", "/v1/catalog/items", {"items": CANDIDATES}, False),
    ("POST", "/v1/experiments/home-recs/evaluations", {"exploration": {"algorithm": "epsilon"}}, False),
    ("POST", "/personalizer/rank", {"actions": [{"id": c["id"]} for c in CANDIDATES], "eventId": "pz-1"}, True),
    ("PUT", "/personalizer/evaluations/eval-1", {"name": "e", "startTime": "2026-01-01T00:00:00Z",
                                                 "endTime": "2026-01-02T00:00:00Z"}, True),
]


def _setup(base: str, resource: str) -> None:
    import requests

    for method, path, body, personalizer in SETUP:
        headers = {KEY_HEADER: resource} if personalizer else {}
        requests.request(method, base + path, json=body, headers=headers, timeout=30).raise_for_status()


def send_with_key(key: str, **call_options):
    """Send a case with the Personalizer resource key (generated cases may carry none or a wrong one)."""
    def send(case):
        case.headers = {**(case.headers or {}), KEY_HEADER: key}
        return case.call(**call_options)
    return send


def healthy(base: str) -> bool:
    import requests

    health = requests.get(f"{base}/healthz", timeout=10)
    slate = requests.post(f"{base}/v1/experiments/home-recs/slate", json={"candidates": CANDIDATES}, timeout=10)
    return health.status_code == 200 and slate.status_code in (200, 409)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=60, help="cases per operation and pass")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=8, help="most entries of a generated list or object")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import requests

    from tests.live import Server

    with tempfile.TemporaryDirectory() as folder:
        db = os.path.join(folder, "fuzz.db")
        resource = _create_resource(db)
        server = Server(db, workers=args.workers)
        try:
            _setup(server.base, resource)
            schema = load_schema(requests.get(f"{server.base}/openapi.json", timeout=30).json(), args.size)
            started = time.perf_counter()
            send = send_with_key(resource, base_url=server.base, timeout=60)
            tally = fuzz(schema, send, args.examples, args.seed, progress=True)
            figures = {"examples_per_pass": args.examples, "size": args.size, "seed": args.seed, "workers": args.workers,
                       "seconds": round(time.perf_counter() - started, 1), **tally.summary(),
                       "healthy_after": healthy(server.base)}
        finally:
            server.stop()
    print(json.dumps(figures, indent=1))
    return figures


def _create_resource(db: str) -> str:
    import subprocess

    made = subprocess.run([sys.executable, "-m", "web", "personalizer", "create-resource", "news", "--slots", "2",
                           "--db", db], capture_output=True, text=True, timeout=120, check=True)
    return made.stdout.strip()


if __name__ == "__main__":
    main()
