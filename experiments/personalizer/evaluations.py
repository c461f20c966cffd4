"""Personalizer's Offline Evaluations on the native counterfactual evaluation.

A Personalizer evaluation names a time range and up to ten learning policies
(VW command lines). Each policy becomes one native evaluation
(``experiments.reporting.evaluation``): the logged decisions of the range are replayed
through that policy and through the live one, and their doubly robust estimates
with 95% intervals become Personalizer's ``expectedReward`` and
``confidenceInterval``. Without custom policies the live policy is evaluated
alone. ``enablePolicyOptimization`` is accepted and kept, but no search runs.
"""
from __future__ import annotations

import re

from experiments.personalizer import config
from experiments.errors import InvalidField, NotFound
from experiments.personalizer.errors import PersonalizerError
from experiments.reporting.evaluation import Evaluations, parse_request
from experiments.personalizer.requests import check_body, check_name
from experiments.reporting.reports import parse_time
from experiments.service import iso
from experiments.store import dumps, loads

FIELDS = {"name", "startTime", "endTime", "policies", "enablePolicyOptimization"}
MAX_POLICIES = 10
ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,256}$")
STATUS = {"queued": "Running", "running": "Running", "done": "Succeeded", "failed": "Failed"}
ESTIMATOR = "dr"  # the estimate reported as expectedReward


def _policies(value) -> list[tuple[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_POLICIES:
        raise InvalidField("policies", f"must be a list of at most {MAX_POLICIES} {{name, arguments}} policies")
    out = []
    for i, policy in enumerate(value):
        if not isinstance(policy, dict):
            raise InvalidField(f"policies[{i}]", "must be an object with name and arguments")
        try:
            name, arguments = config.check_policy_body(policy)
        except InvalidField as exc:
            raise InvalidField(f"policies[{i}].{exc.field}", exc.message.partition(": ")[2]) from None
        if name in [n for n, _ in out]:
            raise PersonalizerError("DuplicateCustomPolicyNames", "custom policy names must be unique",
                                    f"policies[{i}].name")
        out.append((name, arguments))
    return out


def parse_evaluation(evaluation_id: str, body) -> dict:
    """Validate an evaluation contract; return it normalised."""
    if not isinstance(evaluation_id, str) or not ID_PATTERN.match(evaluation_id):
        raise InvalidField("evaluationId", "must be 1-256 letters, digits, '.', '_' or '-'")
    check_body(body, FIELDS)
    name = check_name(body.get("name"))
    start, end = parse_time(body.get("startTime"), "startTime"), parse_time(body.get("endTime"), "endTime")
    if start is None or end is None:
        raise InvalidField("startTime" if start is None else "endTime", "is required")
    if end <= start:
        raise InvalidField("endTime", "must be later than startTime")
    optimize = body.get("enablePolicyOptimization", False)
    if not isinstance(optimize, bool):
        raise InvalidField("enablePolicyOptimization", "must be true or false")
    return {"name": name, "startTime": iso(start), "endTime": iso(end), "policies": _policies(body.get("policies")),
            "enablePolicyOptimization": optimize}


class PersonalizerEvaluations:
    """Create, read, list and delete Personalizer evaluations of one experiment's resource."""

    def __init__(self, store, clock):
        self.store = store
        self.clock = clock
        self.native = Evaluations(store, clock)

    def create(self, key: str, evaluation_id: str, body, live_policy: dict) -> dict:
        """Validate everything first, then submit one native evaluation per policy."""
        contract = parse_evaluation(evaluation_id, body)
        if self._row(key, evaluation_id, required=False):
            raise PersonalizerError("EvaluationAlreadyExists", f"Evaluation with id {evaluation_id} already exists.",
                                    "evaluationId")
        policies = contract["policies"] or [(live_policy["name"], live_policy["arguments"])]
        bodies = []
        for i, (name, arguments) in enumerate(policies):
            try:
                patch = config.policy_patch(arguments)
            except InvalidField as exc:
                raise InvalidField(f"policies[{i}].arguments", exc.message.partition(": ")[2]) from None
            bodies.append((name, arguments, {**patch, "from": contract["startTime"], "to": contract["endTime"]}))
        parsed = []
        for i, (_, _, native) in enumerate(bodies):  # a policy VW rejects fails the whole request
            try:
                parsed.append(parse_request(self.store, key, native))
            except InvalidField as exc:
                raise InvalidField(f"policies[{i}].arguments", exc.message) from None
        runs = [{"policy": name, "arguments": arguments, "id": self.native.submit(key, native, request)["id"]}
                for (name, arguments, native), request in zip(bodies, parsed)]
        with self.store.write_lock():
            self.store.conn.execute(
                "INSERT INTO personalizer_evaluations (experiment, id, name, request, evaluation_id, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (key, evaluation_id, contract["name"], dumps({"contract": contract, "runs": runs}), runs[0]["id"],
                 self.clock.now()))
        return self.get(key, evaluation_id)

    def _row(self, key: str, evaluation_id: str, required: bool = True) -> dict | None:
        row = self.store.query_one("SELECT * FROM personalizer_evaluations WHERE experiment = ? AND id = ?",
                                   (key, evaluation_id))
        if row is None and required:
            raise NotFound("Offline Evaluation not found.", field="evaluationId")
        return row

    def get(self, key: str, evaluation_id: str) -> dict:
        return self._document(key, self._row(key, evaluation_id), with_results=True)

    def list(self, key: str, top: int | None = None, skip: int = 0) -> tuple[list[dict], bool]:
        """Return a page of evaluations, oldest first, and whether more follow."""
        rows = self.store.query("SELECT * FROM personalizer_evaluations WHERE experiment = ? ORDER BY created_at, id"
                                " LIMIT ? OFFSET ?", (key, -1 if top is None else top + 1, skip))
        more = top is not None and len(rows) > top
        return [self._document(key, row, with_results=False) for row in rows[:top]], more

    def delete(self, key: str, evaluation_id: str) -> None:
        self._row(key, evaluation_id)
        with self.store.write_lock():
            self.store.conn.execute("DELETE FROM personalizer_evaluations WHERE experiment = ? AND id = ?",
                                    (key, evaluation_id))

    def _document(self, key: str, row: dict, with_results: bool) -> dict:
        saved = loads(row["request"])
        contract, runs = saved["contract"], saved["runs"]
        natives = [self.native.get(key, run["id"]) for run in runs]
        statuses = {STATUS[n["status"]] for n in natives}
        status = "Failed" if "Failed" in statuses else "Running" if "Running" in statuses else "Succeeded"
        document = {"id": row["id"], "name": row["name"], "startTime": contract["startTime"],
                    "endTime": contract["endTime"], "status": status, "evaluationType": "Manual",
                    "creationTime": iso(row["created_at"])}
        if with_results and status == "Succeeded":
            results = policy_results(contract, runs, natives)
            document["policyResults"] = results
            document["content"] = {"startTime": contract["startTime"], "endTime": contract["endTime"],
                                   "value": [_content(r) for r in results]}
            document["optimalPolicy"] = max(results, key=lambda r: r["expectedReward"] or float("-inf"))["name"]
        errors = [n["error"] for n in natives if n["error"]]
        if errors:
            document["description"] = "; ".join(errors)
        return document


def _estimate(policy: dict, name: str, arguments: str, source: str) -> dict:
    chosen = policy[ESTIMATOR]
    return {"name": name, "arguments": arguments, "policySource": source, "expectedReward": chosen["value"],
            "confidenceInterval": [chosen["low"], chosen["high"]], "decisions": chosen["n"],
            "estimates": {k: policy[k] for k in ("ips", "snips", "dr")}}


def policy_results(contract: dict, runs: list[dict], natives: list[dict]) -> list[dict]:
    """Return the live policy's result first, then each custom policy's."""
    live = next(p for p in natives[0]["result"]["policies"] if p["policy"] == "live")
    results = [_estimate(live, "Online", config.policy_arguments(live["args"]), "Online")]
    if contract["policies"]:
        for run, native in zip(runs, natives):
            candidate = next(p for p in native["result"]["policies"] if p["policy"] == "candidate")
            results.append(_estimate(candidate, run["policy"], run["arguments"], "Custom"))
    return results


def _content(result: dict) -> dict:
    return {"name": result["name"], "arguments": result["arguments"], "policySource": result["policySource"],
            "summary": {"expectedReward": result["expectedReward"],
                        "confidenceInterval": result["confidenceInterval"]}}
