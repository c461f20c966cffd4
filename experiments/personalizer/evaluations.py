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
import uuid

from experiments.personalizer import config
from experiments.personalizer import evaluation_documents as documents
from experiments.errors import InvalidField, NotFound
from experiments.personalizer.errors import PersonalizerError
from experiments.reporting.evaluation import Evaluations, parse_request
from experiments.personalizer.requests import check_body, check_name
from experiments.personalizer.versions import V1_1, V2022, is_v1
from experiments.times import iso, parse_time
from experiments.store import dumps, loads

FIELDS = {"name", "startTime", "endTime", "policies", "enablePolicyOptimization", "enableOfflineExperimentation"}
MAX_POLICIES = 10
ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,256}$")
STATUS = {"queued": "Running", "running": "Running", "done": "Succeeded", "failed": "Failed"}
FILTER_FIELDS = ("evaluationType", "status", "name")
_FILTER_TERM = re.compile(r"^\s*(\w+)\s+(eq|ne)\s+'([^']*)'\s*$")
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


def parse_job(job_id: str, id_field: str, body, fields: set, where: str) -> tuple[dict, str, float, float]:
    """Check a job's id and the name and time range of its contract (an evaluation's, a feature importance's);
    return the contract's known fields, the name, the start and the end."""
    if not isinstance(job_id, str) or not ID_PATTERN.match(job_id):
        raise InvalidField(id_field, "must be 1-256 letters, digits, '.', '_' or '-'")
    body = check_body(body, fields, where=where)
    name = check_name(body.get("name"))
    start, end = parse_time(body.get("startTime"), "startTime"), parse_time(body.get("endTime"), "endTime")
    if start is None or end is None:
        raise InvalidField("startTime" if start is None else "endTime", "is required")
    if end <= start:
        raise InvalidField("endTime", "must be later than startTime")
    return body, name, start, end


def parse_evaluation(evaluation_id: str, body) -> dict:
    """Validate an evaluation contract; return it normalised."""
    body, name, start, end = parse_job(evaluation_id, "evaluationId", body, FIELDS, "evaluation contract")
    name_of = "enablePolicyOptimization" if "enablePolicyOptimization" in body else "enableOfflineExperimentation"
    optimize = body.get(name_of, False)  # v1 clients call it enableOfflineExperimentation
    if not isinstance(optimize, bool):
        raise InvalidField(name_of, "must be true or false")
    return {"name": name, "startTime": iso(start), "endTime": iso(end), "policies": _policies(body.get("policies")),
            "enablePolicyOptimization": optimize}


class PersonalizerEvaluations:
    """Create, read, list, delete and apply Personalizer evaluations of one experiment's resource."""

    def __init__(self, store, clock):
        self.store = store
        self.clock = clock
        self.native = Evaluations(store, clock)

    def create(self, key: str, evaluation_id: str | None, body, live_policy: dict) -> str:
        """Validate everything first, then submit one native evaluation per policy; return the id.

        v1 clients POST without an id: one is made for them.
        """
        evaluation_id = evaluation_id if evaluation_id is not None else str(uuid.uuid4())
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
        return evaluation_id

    def _row(self, key: str, evaluation_id: str, required: bool = True) -> dict | None:
        row = self.store.query_one("SELECT * FROM personalizer_evaluations WHERE experiment = ? AND id = ?",
                                   (key, evaluation_id))
        if row is None and required:
            raise NotFound("Offline Evaluation not found.", field="evaluationId")
        return row

    def get(self, key: str, evaluation_id: str, version: str = V2022, query: dict | None = None) -> dict:
        """One evaluation with its results; ``query`` holds the 2022 time series options."""
        return self._document(key, self._row(key, evaluation_id), version, True, query or {})

    def list(self, key: str, version: str = V2022, top: int | None = None, skip: int = 0,
             page_size: int = 100, filter_text: str | None = None) -> tuple[list[dict], bool]:
        """Return a page of evaluations, oldest first, and whether more follow within ``top``."""
        keep = _parse_filter(filter_text)
        rows = self.store.query("SELECT * FROM personalizer_evaluations WHERE experiment = ? ORDER BY created_at, id",
                                (key,))
        found = [doc for doc in (self._document(key, row, version, False, {}) for row in rows) if keep(doc)]
        if is_v1(version):
            return found, False  # v1 lists are one bare array
        wanted = found[skip:] if top is None else found[skip:skip + top]
        return wanted[:page_size], len(wanted) > page_size

    def delete(self, key: str, evaluation_id: str) -> None:
        self._row(key, evaluation_id)
        with self.store.write_lock():
            self.store.conn.execute("DELETE FROM personalizer_evaluations WHERE experiment = ? AND id = ?",
                                    (key, evaluation_id))

    def policy_of(self, key: str, evaluation_id: str, policy_name: str) -> tuple[str, str]:
        """Return (name, arguments) of one policy of a finished evaluation, for applying it."""
        row = self._row(key, evaluation_id, required=False)
        if row is None:
            raise PersonalizerError("EvaluationNotFound", "Offline Evaluation not found.", "evaluationId", 404)
        document = self._document(key, row, V2022, True, {})
        if document["status"] != "Succeeded":
            raise PersonalizerError("OperationNotAllowed", f"the evaluation is {document['status']}, not Succeeded",
                                    "evaluationId")
        results = document["policyResults"]
        found = next((r for r in results if r["name"] == policy_name), None) or next(
            (r for r in results if r["name"].lower() == policy_name.lower()), None)
        if found is None:
            raise PersonalizerError("LearningSettingsNotFound", "Learning Settings not found in evaluation: "
                                    f"it has {', '.join(r['name'] for r in results)}", "policyName", 404)
        return found["name"], found["arguments"]

    def _document(self, key: str, row: dict, version: str, with_results: bool, query: dict) -> dict:
        saved = loads(row["request"])
        contract, runs = saved["contract"], saved["runs"]
        natives = [self.native.get(key, run["id"]) for run in runs]
        statuses = {STATUS[n["status"]] for n in natives}
        status = "Failed" if "Failed" in statuses else "Running" if "Running" in statuses else "Succeeded"
        results = policy_results(contract, runs, natives) if status == "Succeeded" else None
        errors = "; ".join(n["error"] for n in natives if n["error"])
        if is_v1(version):
            return _v1_document(row, contract, runs, status, results, version, with_results, query)
        document = {"id": row["id"], "name": row["name"], "startTime": contract["startTime"],
                    "endTime": contract["endTime"], "status": status, "evaluationType": "Manual",
                    "creationTime": iso(row["created_at"])}
        if with_results and results:
            document["policyResults"] = [{k: v for k, v in r.items() if k != "buckets"} for r in results]
            document["content"] = _content(contract, results, query)
            document["optimalPolicy"] = _optimal(results)
        if errors:
            document["description"] = errors
        return document


def _parse_filter(text: str | None):
    """Read a filter like ``evaluationType eq 'Manual' and status ne 'Failed'`` into a predicate."""
    if not text:
        return lambda document: True
    terms = []
    for part in re.split(r"\s+and\s+", text.strip().removeprefix("metadata=")):
        match = _FILTER_TERM.match(part)
        if not match or match.group(1) not in FILTER_FIELDS:
            raise InvalidField("filter", f"use terms like evaluationType eq 'Manual' (fields: "
                                         f"{', '.join(FILTER_FIELDS)}; eq or ne; joined by and)")
        terms.append(match.groups())
    return lambda document: all((document.get(field) == value) == (op == "eq") for field, op, value in terms)


def _optimal(results: list[dict]) -> str:
    return max(results, key=lambda r: r["expectedReward"] if r["expectedReward"] is not None else float("-inf"))[
        "name"]


def _range(contract: dict) -> tuple[float, float]:
    return parse_time(contract["startTime"], "startTime"), parse_time(contract["endTime"], "endTime")


def _v1_document(row, contract, runs, status, results, version, with_results, query) -> dict:
    """An evaluation as v1.0 and v1.1 clients read it."""
    start, end = _range(contract)
    minutes = documents.interval_minutes(query.get("intervalInMinutes"), start, end)
    if results is None:
        source = "Custom" if contract["policies"] else "Online"
        results = [{"name": run["policy"], "arguments": run["arguments"], "policySource": source} for run in runs]
    span = {"start": start, "end": end}
    document = {"id": row["id"], "name": row["name"], "startTime": contract["startTime"],
                "endTime": contract["endTime"], "jobId": str(row["evaluation_id"]),
                "status": documents.V1_STATUS[status],
                "policyResults": [documents.v1_policy_result(r, span, minutes, version, with_results)
                                  for r in results],
                "featureImportance": []}
    if version == V1_1:
        document.update({"evaluationType": "Manual", "creationTime": iso(row["created_at"]),
                         "optimalPolicy": _optimal(results) if status == "Succeeded" else ""})
    return document


def _estimate(policy: dict, name: str, arguments: str, source: str) -> dict:
    chosen = policy[ESTIMATOR]
    return {"name": name, "arguments": arguments, "policySource": source, "expectedReward": chosen["value"],
            "confidenceInterval": [chosen["low"], chosen["high"]], "decisions": chosen["n"],
            "estimates": {k: policy[k] for k in ("ips", "snips", "dr")}, "buckets": policy.get("buckets", [])}


def policy_results(contract: dict, runs: list[dict], natives: list[dict]) -> list[dict]:
    """Return the live policy's result first, then each custom policy's."""
    live = next(p for p in natives[0]["result"]["policies"] if p["policy"] == "live")
    results = [_estimate(live, "Online", config.policy_arguments(live["args"]), "Online")]
    if contract["policies"]:
        for run, native in zip(runs, natives):
            candidate = next(p for p in native["result"]["policies"] if p["policy"] == "candidate")
            results.append(_estimate(candidate, run["policy"], run["arguments"], "Custom"))
    return results


def _content(contract: dict, results: list[dict], query: dict) -> dict:
    """The 2022 ``content``: each policy's summary and its time series over the asked range."""
    start, end = _range(contract)
    low = parse_time(query.get("startTime"), "startTime") if query.get("startTime") else start
    high = parse_time(query.get("endTime"), "endTime") if query.get("endTime") else end
    minutes = documents.interval_minutes(query.get("intervalInMinutes") or 5, low, high)
    window = documents.check_window(query.get("window"))
    return {"startTime": iso(low), "endTime": iso(high), "intervalInMinutes": minutes,
            "value": [{"name": r["name"], "arguments": r["arguments"], "policySource": r["policySource"],
                       "summary": {"expectedReward": r["expectedReward"],
                                   "confidenceInterval": r["confidenceInterval"]},
                       "timeseries": documents.timeseries(r["buckets"], minutes, window, low, high)}
                      for r in results]}
