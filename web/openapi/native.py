"""The native API's operations: ``/v1``, ``/healthz``, ``/metrics`` and this document itself.

Operations are listed in the order of a first session with the service, and their
named examples are a story the tests replay in that order on a fresh database with
a virtual clock (``tests/test_web_openapi.py``): a request example and the response
example of the same name go together; ``"..."`` in a response example stands for
any value.
"""
from __future__ import annotations

from web.openapi.schemas import ERRORS, answer, body, path_parameter, query_parameter, ref

# Key roles that may call an operation once keys exist (before that the API is open on loopback).
# A public key calls the SHOP operations only for the experiments and browser origins it names.
ADMIN, SHOP, OPS = ("admin",), ("shop", "admin", "public"), ("ops", "admin")

KEY = path_parameter("key", "The experiment's key.", "home-recs", missing="no-such-experiment")
EVENT = path_parameter("event_id", "The event id the slate was answered with.", "pv-1001", unknown="no-such-event")
ITEM = path_parameter("item_id", "A catalog item id.", "sku-1")

_SPEC_ANSWER = {"key": "home-recs", "name": "Home page recommendations", "kind": "items", "status": "running",
                "version": 1, "spec": {"slots": 2, "traffic": {"holdout": 0.1, "control": "uniform"}},
                "created_at": "2026-01-01T00:00:00.000Z", "counts": {"decisions": 0, "rewards": 0},
                "model": None}
_CANDIDATES = [{"id": "sku-1", "features": {"category": "shoes", "price": 49.0}},
               {"id": "sku-2", "features": {"category": "bags", "price": 89.0}},
               {"id": "sku-3", "features": {"category": "shoes", "price": 19.0}}]


def _op(summary: str, roles: tuple, responses: dict, **extra) -> dict:
    security = [{"bearer": []}, {"publicKeyInUrl": []}] if "public" in roles else [{"bearer": []}]
    return {"summary": summary, "security": security, "x-roles": list(roles),
            "responses": {**responses, "4XX": ERRORS}, **extra}


PATHS = {
    "/v1/experiments": {
        "post": _op("Create an experiment from a spec (\"status\": \"running\" starts it)", ADMIN, {
            "201": answer("The experiment with its normalised spec, every default filled in.", ref("Experiment"),
                          {"create": _SPEC_ANSWER}),
            "400": answer("A field is invalid; nothing was created.", ref("Error"), {"bad_vw_args": {"error": {
                "code": "invalid_field", "field": "learning.vw_args",
                "message": "learning.vw_args: option --sendto is not allowed: it opens network connections"}}}),
        }, requestBody=body(ref("ExperimentSpec"), {
            "create": {"key": "home-recs", "name": "Home page recommendations", "slots": 2, "status": "running",
                       "reward": {"wait_seconds": 5}},
            "bad_vw_args": {"key": "other", "learning": {"vw_args": "--sendto 127.0.0.1:9000"}},
        })),
        "get": _op("List experiments", ADMIN, {
            "200": answer("Every experiment.", {"type": "object", "required": ["experiments"],
                                                "properties": {"experiments": {"type": "array",
                                                                               "items": ref("Experiment")}}},
                          {"list": {"experiments": [{"key": "home-recs", "status": "running"},
                                                     {"key": "news", "status": "running"}]}})}),
    },
    "/v1/experiments/{key}": {
        "parameters": [KEY],
        "get": _op("Read an experiment: spec, status, version, counts, model", ADMIN, {
            "200": answer("The experiment.", ref("Experiment"), {"read": {"key": "home-recs", "version": 1}}),
            "404": answer("No experiment has this key.", ref("Error"), {"missing": {"error": {
                "code": "not_found", "message": "...", "field": "key"}}})}),
        "patch": _op("Change settings or status (draft -> running <-> paused -> stopped)", ADMIN, {
            "200": answer("The experiment, one version newer.", ref("Experiment"), {"change": {
                "version": 2, "spec": {"traffic": {"holdout": 0.2, "control": "uniform"}}}}),
            "409": answer("The status cannot go there from the current one.", ref("Error")),
        }, requestBody=body(ref("ExperimentPatch"), {"change": {"traffic": {"holdout": 0.2}}})),
    },
    "/v1/experiments/{key}/history": {
        "parameters": [KEY],
        "get": _op("Every change of an experiment, with who and when", ADMIN, {
            "200": answer("The history, oldest first.", {"type": "object", "required": ["history"],
                                                         "properties": {"history": {"type": "array"}}},
                          {"history": {"history": [{"version": 1, "actor": "api"}, {"version": 2, "actor": "api",
                                                    "change": {"traffic": {"holdout": 0.2}}}]}})}),
    },
    "/v1/experiments/{key}/autotune/undo": {
        "parameters": [KEY],
        "post": _op("Undo an auto-tuning switch (the settings it changed go back) and turn auto-tuning off",
                    ADMIN, {
            "200": answer("The experiment, one version newer.", ref("Experiment")),
            "400": answer("The version is not an auto-tuning switch.", ref("Error"), {"not_a_switch": {"error": {
                "code": "invalid_field", "field": "version",
                "message": "version: version 2 is not an auto-tuning switch"}}}),
            "404": answer("The experiment has no such version.", ref("Error"), {"no_version": {"error": {
                "code": "not_found", "field": "version", "message": "..."}}}),
        }, requestBody=body({"type": "object", "required": ["version"], "additionalProperties": False,
                             "properties": {"version": {"type": "integer", "minimum": 1,
                                                        "maximum": 2**63 - 1}}},
                            {"not_a_switch": {"version": 2}, "no_version": {"version": 99}})),
    },
    "/v1/experiments/{key}/slate": {
        "parameters": [KEY],
        "post": _op("Pick a slate for a page view; the decision is logged before the answer", SHOP, {
            "200": answer("The slate and the event id to post rewards against.", ref("Slate"), {"slate": {
                "event_id": "pv-1001", "experiment": "home-recs", "variant": "bandit", "model_version": 0,
                "slate": [{"slot": 0, "id": "...", "probability": "..."},
                          {"slot": 1, "id": "...", "probability": "..."}]}}),
            "400": answer("A field is invalid; nothing was logged.", ref("Error"), {"duplicate": {"error": {
                "code": "invalid_field", "field": "candidates[1].id",
                "message": "candidates[1].id: duplicate candidate id 'sku-1'"}}}),
        }, requestBody=body(ref("SlateRequest"), {
            "slate": {"unit": "user-7", "event_id": "pv-1001", "defer_activation": True,
                      "context": {"user": {"segment": "returning", "country": "DE"}, "page": {"type": "home"}},
                      "candidates": _CANDIDATES},
            "duplicate": {"candidates": [{"id": "sku-1"}, {"id": "sku-1"}]},
        })),
    },
    "/v1/events/{event_id}/activate": {
        "parameters": [EVENT],
        "post": _op("Activate a slate asked for with defer_activation (the shop showed it)", SHOP, {
            "200": answer("The activated decision.", {"type": "object", "required": ["event_id"]}, {"activate": {
                "event_id": "pv-1001", "experiment": "home-recs", "activated_at": "2026-01-01T00:00:00.000Z"}}),
            "404": answer("No decision has this event id.", ref("Error"))}),
    },
    "/v1/events/{event_id}/rewards": {
        "parameters": [EVENT],
        "post": _op("Report an outcome of a decision (idempotent by id)", SHOP, {
            "202": answer("The reward as stored.", ref("Reward"), {"reward": {
                "event_id": "pv-1001", "experiment": "home-recs", "id": "click-1", "type": "click",
                "value": 1.0, "late": False, "duplicate": False}}),
            "404": answer("No decision has this event id.", ref("Error"), {"unknown": {"error": {
                "code": "not_found", "message": "event 'no-such-event' does not exist", "field": "event_id"}}}),
        }, requestBody=body(ref("RewardRequest"), {"reward": {"type": "click", "item": "sku-2", "id": "click-1"},
                                                   "unknown": {"type": "click"}})),
    },
    "/v1/catalog/items": {
        "put": _op("Upsert catalog items (candidates may then name items by id only)", ADMIN, {
            "200": answer("The new catalog version.", {"type": "object", "required": ["version", "upserted"]},
                          {"upsert": {"version": 1, "upserted": 2}}),
        }, requestBody=body({"oneOf": [{"type": "object", "required": ["items"],
                                        "properties": {"items": {"type": "array", "items": ref("CatalogItem")}}},
                                       {"type": "array", "items": ref("CatalogItem")}]},
                            {"upsert": {"items": [{"id": "sku-1", "features": {"category": "shoes"}},
                                                  {"id": "sku-2", "available": False}]}})),
        "get": _op("List catalog items, by id, a page at a time", ADMIN, {
            "200": answer("A page of items; next is the after= value of the next page.",
                          {"type": "object", "required": ["version", "items", "next"]},
                          {"page": {"version": 1, "items": [{"id": "sku-1", "available": True}], "next": "sku-1"}}),
        }, parameters=[
            query_parameter("limit", "Items per page, 1-1000 (100).", {"type": "string"}, page="1"),
            query_parameter("after", "List items after this id.", {"type": "string"})]),
    },
    "/v1/catalog/items/{item_id}": {
        "parameters": [ITEM],
        "get": _op("Read a catalog item", ADMIN, {
            "200": answer("The item.", ref("CatalogItem"), {"item": {"id": "sku-1", "available": True}}),
            "404": answer("No such item.", ref("Error"))}),
        "delete": _op("Delete a catalog item", ADMIN, {
            "200": answer("The new catalog version.", {"type": "object"}, {"delete": {"version": 2,
                                                                                      "deleted": "sku-1"}}),
            "404": answer("No such item.", ref("Error"))}),
    },
    "/v1/experiments/{key}/report": {
        "parameters": [KEY],
        "get": _op("The report: lift over the holdout, sample ratio, off-policy estimates, time series", ADMIN, {
            "200": answer("The report (see docs for every field).", ref("Report"), {"report": {
                "experiment": {"key": "home-recs"}, "range": {"interval": "day"}}}),
            "400": answer("from, to or interval is invalid.", ref("Error"), {"bad_interval": {"error": {
                "code": "invalid_field", "field": "interval", "message": "interval: must be one of auto, hour, day"}}}),
        }, parameters=[
            query_parameter("from", "Decisions made at or after this time (ISO 8601 or epoch seconds).",
                            {"type": "string"}),
            query_parameter("to", "Decisions made before this time.", {"type": "string"}),
            query_parameter("interval", "Time-series bucket: auto (default: the finest of minute, 5 and 15 "
                            "minutes, hour, 6 hours and day that draws the range in at most 100 buckets), hour or "
                            "day.", {"type": "string"}, report="day", bad_interval="week")]),
    },
    "/v1/experiments/{key}/evaluations": {
        "parameters": [KEY],
        "post": _op("Replay the log with other settings, in the background", ADMIN, {
            "202": answer("The queued evaluation; poll it by id.", ref("Evaluation"), {"evaluate": {
                "id": 1, "experiment": "home-recs", "status": "queued"}}),
        }, requestBody=body(ref("EvaluationRequest"), {"evaluate": {
            "exploration": {"algorithm": "epsilon", "epsilon": 0.1}, "limit": 1000}})),
        "get": _op("List evaluations, newest first, without results", ADMIN, {
            "200": answer("The evaluations.", {"type": "object", "required": ["evaluations"]},
                          {"evaluations": {"evaluations": [{"id": 1, "experiment": "home-recs"}]}})}),
    },
    "/v1/experiments/{key}/evaluations/{evaluation_id}": {
        "parameters": [KEY, path_parameter("evaluation_id", "The evaluation's id.", 1,
                                           {"type": "integer", "minimum": 1, "maximum": 2**63 - 1})],
        "get": _op("Read an evaluation with its progress and, once done, its result", ADMIN, {
            "200": answer("The evaluation.", ref("Evaluation"), {"evaluation": {"id": 1, "experiment": "home-recs"}}),
            "404": answer("No such evaluation.", ref("Error"))}),
    },
    "/v1/units/{unit}": {
        "parameters": [path_parameter("unit", "The shopper's unit id, as slate requests sent it (1-256 characters).",
                                      "user-7", {"type": "string", "minLength": 1, "maxLength": 256})],
        "delete": _op("Erase one shopper: every decision of the unit in every experiment, with its rewards", ADMIN, {
            "200": answer("What was deleted, and what erasure cannot undo (models already trained).",
                          {"type": "object", "required": ["unit", "deleted", "experiments"]},
                          {"forget": {"unit": "user-7", "deleted": {"decisions": 1, "rewards": 1},
                                      "experiments": ["home-recs"]}})}),
    },
    "/healthz": {
        "get": {"summary": "Liveness: the database answers", "security": [], "responses": {
            "200": answer("The server and its database work.", {"type": "object", "required": ["status"]},
                          {"health": {"status": "ok", "process": "..."}})}},
    },
    "/metrics": {
        "get": _op("Prometheus metrics (needs an ops or admin key once keys exist)", OPS, {
            "200": {"description": "Prometheus text format.", "content": {"text/plain": {"schema": {
                "type": "string"}}}}}),
    },
    "/openapi.json": {
        "get": {"summary": "This document", "security": [], "responses": {
            "200": answer("OpenAPI 3.1.", {"type": "object", "required": ["openapi", "paths"]})}},
    },
}
