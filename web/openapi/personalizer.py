"""Personalizer's operations under ``/personalizer``, and again under each path version it accepts.

Bodies follow Personalizer's own REST specification; errors come in its shape
(``{"error": {"code", "message", "target"}}``). The resource is the subscription
key in ``Ocp-Apim-Subscription-Key``. Examples run as a story like the native ones.
"""
from __future__ import annotations

import copy

from web.openapi.schemas import PERSONALIZER_ERRORS, answer, body, path_parameter, query_parameter, ref

SECURITY = [{"personalizerKey": []}]
EVENT = path_parameter("event_id", "The event id of the rank call.", "pv-1")
SLATE_EVENT = path_parameter("event_id", "The event id of the multi-slot rank call.", "ms-1")
EVALUATION = path_parameter("evaluation_id", "The evaluation's id.", "eval-1")

_SCALAR = {"type": ["string", "number", "boolean"]}
_FEATURES = {"type": "array", "description": "A list of feature objects; objects under the same key merge.",
             "items": {"type": "object", "additionalProperties": {"anyOf": [
                 _SCALAR, {"type": "array", "items": _SCALAR},
                 {"type": "object", "additionalProperties": {"anyOf": [_SCALAR, {"type": "array",
                                                                                 "items": _SCALAR}]}}]}}}
_ACTIONS = {"type": "array", "minItems": 1, "items": {
    "type": "object", "required": ["id"],
    "properties": {"id": {"type": "string", "minLength": 1, "maxLength": 256}, "features": _FEATURES}}}
_ACTION_LIST = [{"id": "news-1", "features": [{"topic": "sports"}]}, {"id": "news-2", "features": [{"topic": "tech"}]},
                {"id": "news-3", "features": [{"topic": "music"}]}]
_NO_CONTENT = {"description": "Done; no content."}
_POLICY = {"type": "object", "required": ["name", "arguments"],
           "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 256},
                          "arguments": {"type": "string", "description": "A VW command line; extra options "
                                                                         "from the allowlist (docs/security.md)."}}}
_SERVICE = {"type": "object", "properties": {
    "rewardWaitTime": {"type": "string"}, "defaultReward": {"type": "number"},
    "rewardAggregation": {"type": "string"}, "explorationPercentage": {"type": "number"},
    "modelExportFrequency": {"type": "string"}, "learningMode": {"type": "string"},
    "logRetentionDays": {"type": "integer"}, "modelRetrainDays": {"type": "integer"},
    "isAutoOptimizationEnabled": {"type": "boolean"}}}
_EVALUATION = {"type": "object", "required": ["id", "name", "status"],
               "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "status": {"type": "string"},
                              "startTime": {"type": "string"}, "endTime": {"type": "string"}}}


_EVALUATION_REQUEST = {"type": "object", "required": ["name", "startTime", "endTime"], "properties": {
    "name": {"type": "string"}, "startTime": {"type": "string"}, "endTime": {"type": "string"},
    "enablePolicyOptimization": {"type": "boolean"}, "policies": {"type": "array", "items": _POLICY}}}


def _op(summary: str, responses: dict, **extra) -> dict:
    return {"summary": summary, "tags": ["personalizer"], "security": SECURITY,
            "responses": {**responses, "4XX": PERSONALIZER_ERRORS}, **extra}


PATHS = {
    "/personalizer/configurations/service": {
        "get": _op("Read the service configuration", {"200": answer("The configuration.", _SERVICE, {
            "read": {"rewardWaitTime": "PT10M", "rewardAggregation": "earliest", "learningMode": "Online"}})}),
        "put": _op("Update the service configuration", {"200": answer("The configuration.", _SERVICE, {
            "update": {"rewardWaitTime": "PT5M", "defaultReward": 0.0, "modelExportFrequency": "PT1M"}})},
            requestBody=body(_SERVICE, {"update": {"rewardWaitTime": "PT5M", "defaultReward": 0,
                                                   "rewardAggregation": "earliest", "modelExportFrequency": "PT1M",
                                                   "logRetentionDays": -1}})),
    },
    "/personalizer/configurations/policy": {
        "get": _op("Read the learning policy", {"200": answer("The policy.", _POLICY, {
            "read": {"name": "news", "arguments": "..."}})}),
        "put": _op("Set the learning policy (a VW command line)", {
            "200": answer("The policy as the model is trained.", _POLICY, {"update": {"name": "tuned"}}),
            "400": answer("The arguments are refused.", ref("PersonalizerError"), {"refused": {"error": {
                "code": "InvalidPolicyConfiguration", "target": "arguments",
                "message": "arguments: option -f (--final_regressor) is not allowed: it reads or writes files on "
                           "the server"}}}),
        }, requestBody=body(_POLICY, {
            "update": {"name": "tuned", "arguments": "--cb_explore_adf --epsilon 0.2 --power_t 0 -q ::"},
            "refused": {"name": "x", "arguments": "--cb_explore_adf --epsilon 0.2 -f/tmp/model.vw"}})),
        "delete": _op("Reset the learning policy to the default", {"200": answer("The default policy.", _POLICY, {
            "reset": {"name": "news"}})}),
    },
    "/personalizer/rank": {
        "post": _op("Rank actions for a context (one slot)", {
            "201": answer("The ranking; rewardActionId is the action to show.", {
                "type": "object", "required": ["ranking", "eventId", "rewardActionId"]}, {"rank": {
                    "eventId": "pv-1", "rewardActionId": "...", "ranking": ["...", "...", "..."]}}),
        }, requestBody=body({"type": "object", "required": ["actions"], "properties": {
            "contextFeatures": _FEATURES, "actions": _ACTIONS, "excludedActions": {"type": "array", "items": {
                "type": "string"}}, "eventId": {"type": "string"}, "deferActivation": {"type": "boolean"}}},
            {"rank": {"contextFeatures": [{"user": {"tier": "gold"}}, {"time": "morning"}], "actions": _ACTION_LIST,
                      "eventId": "pv-1", "deferActivation": True}})),
    },
    "/personalizer/events/{event_id}/activate": {
        "parameters": [EVENT],
        "post": _op("Activate a deferred event", {"204": _NO_CONTENT}),
    },
    "/personalizer/events/{event_id}/reward": {
        "parameters": [EVENT],
        "post": _op("Report the reward of a rank call (-1 to 1)", {"204": _NO_CONTENT},
                    requestBody=body({"type": "object", "required": ["value"], "properties": {
                        "value": {"type": "number", "minimum": -1, "maximum": 1}}}, {"reward": {"value": 1.0}})),
    },
    "/personalizer/multislot/rank": {
        "post": _op("Rank actions for several slots", {
            "201": answer("Per slot, the action to show.", {"type": "object", "required": ["slots", "eventId"]},
                          {"rank": {"eventId": "ms-1", "slots": [{"id": "hero"}, {"id": "side"}]}}),
        }, requestBody=body({"type": "object", "required": ["actions", "slots"], "properties": {
            "contextFeatures": _FEATURES, "actions": _ACTIONS, "eventId": {"type": "string"},
            "deferActivation": {"type": "boolean"},
            "slots": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["id", "baselineAction"],
                "properties": {"id": {"type": "string"}, "baselineAction": {"type": "string"},
                               "features": _FEATURES, "excludedActions": {"type": "array",
                                                                          "items": {"type": "string"}}}}}}},
            {"rank": {"contextFeatures": [{"user": {"tier": "gold"}}], "actions": _ACTION_LIST, "eventId": "ms-1",
                      "slots": [{"id": "hero", "baselineAction": "news-1"},
                                {"id": "side", "baselineAction": "news-2"}]}})),
    },
    "/personalizer/multislot/events/{event_id}/reward": {
        "parameters": [SLATE_EVENT],
        "post": _op("Report rewards per slot", {"204": _NO_CONTENT}, requestBody=body({
            "type": "object", "required": ["reward"], "properties": {"reward": {"type": "array", "items": {
                "type": "object", "required": ["slotId", "value"],
                "properties": {"slotId": {"type": "string"}, "value": {"type": "number"}}}}}},
            {"reward": {"reward": [{"slotId": "hero", "value": 1.0}]}})),
    },
    "/personalizer/multislot/events/{event_id}/activate": {
        "parameters": [SLATE_EVENT],
        "post": _op("Activate a deferred multi-slot event", {"204": _NO_CONTENT}),
    },
    "/personalizer/model": {
        "get": _op("Export the model (VW's own format; signed=true: a signed archive)", {"200": {
            "description": "The model file, or with signed=true a zip archive with its signature.", "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                "application/zip": {"schema": {"type": "string", "format": "binary"}}}}},
            parameters=[query_parameter("signed", "true for a signed archive.", {"enum": ["true", "false"]})]),
        "put": _op("Import a model (a VW model file or a signed archive), vetted in a separate process first",
                   {"204": _NO_CONTENT}, requestBody={"required": True, "content": {"application/octet-stream": {
                       "schema": {"type": "string", "format": "binary"}}}}),
        "delete": _op("Reset the model: it starts afresh from decisions after now", {"204": _NO_CONTENT}),
    },
    "/personalizer/model/properties": {
        "get": _op("When the model was created and last changed", {"200": answer("The properties.", {
            "type": "object", "required": ["creationTime", "lastModifiedTime"]})}),
    },
    "/personalizer/logs/properties": {
        "get": _op("The time range of the logged events", {"200": answer("The range.", {
            "type": "object", "required": ["dateRange"]})}),
    },
    "/personalizer/logs": {
        "delete": _op("Delete the resource's logged events", {"204": _NO_CONTENT}),
    },
    "/personalizer/evaluations/{evaluation_id}": {
        "parameters": [EVALUATION],
        "put": _op("Start an offline evaluation of other policies", {
            "200": answer("The evaluation.", _EVALUATION, {"evaluate": {"id": "eval-1", "name": "compare"}}),
        }, requestBody=body(_EVALUATION_REQUEST,
            {"evaluate": {"name": "compare", "startTime": "2025-12-31T00:00:00Z", "endTime": "2026-01-02T00:00:00Z",
                          "policies": [{"name": "lower", "arguments": "--cb_explore_adf --epsilon 0.1 -q ::"}]}})),
        "get": _op("Read an evaluation", {"200": answer("The evaluation.", _EVALUATION, {"read": {"id": "eval-1"}})}),
        "delete": _op("Delete an evaluation", {"204": _NO_CONTENT}),
    },
    "/personalizer/evaluations": {
        "get": _op("List evaluations", {"200": answer("A page of evaluations (v1.0 and v1.1: a bare list).", {
            "oneOf": [{"type": "object", "required": ["value"]}, {"type": "array", "items": _EVALUATION}]},
            {"list": {"value": [], "nextLink": None}})},
            parameters=[query_parameter("top", "Evaluations wanted in all.", {"type": "string"}),
                        query_parameter("skip", "Evaluations to skip.", {"type": "string"}),
                        query_parameter("maxpagesize", "Evaluations per page (at most 100).", {"type": "string"}),
                        query_parameter("filter", "Filter by name or status.", {"type": "string"})]),
        "post": _op("Start an offline evaluation; the service names it (v1.0 and v1.1)", {
            "201": answer("The evaluation; its URL is in the Location header.", _EVALUATION)},
            requestBody=body(_EVALUATION_REQUEST)),
    },
    "/personalizer/configurations/applyFromEvaluation": {
        "post": _op("Make a policy of a finished evaluation the live one", {"204": _NO_CONTENT},
                    requestBody=body({"type": "object", "required": ["evaluationId", "policyName"], "properties": {
                        "evaluationId": {"type": "string"}, "policyName": {"type": "string"}}})),
    },
}


_FEATURE_IMPORTANCE = path_parameter("feature_importance_id", "The feature importance job's id.", "fi-1")
_JOB = {"type": "object", "required": ["name", "startTime", "endTime"], "properties": {
    "name": {"type": "string"}, "startTime": {"type": "string"}, "endTime": {"type": "string"}}}
_FEATURE_PATHS = {
    "/personalizer/featureImportances/{feature_importance_id}": {
        "parameters": [_FEATURE_IMPORTANCE],
        "put": _op("Start computing feature importances over a time range (2022-09-01-preview)",
                   {"200": {"description": "Started; poll it with GET."}}, requestBody=body(_JOB, {"start": {
                       "name": "drivers", "startTime": "2025-12-31T00:00:00Z", "endTime": "2026-01-02T00:00:00Z"}})),
        "get": _op("Read a feature importance job and, once done, its scores per feature",
                   {"200": answer("The job.", {"type": "object", "required": ["id", "status"]})}),
        "delete": _op("Delete a feature importance job", {"204": _NO_CONTENT}),
    },
    "/personalizer/featureImportances": {
        "get": _op("List feature importance jobs", {"200": answer("A page of jobs.", {
            "type": "object", "required": ["value"]})},
            parameters=[query_parameter("top", "Jobs wanted in all.", {"type": "string"}),
                        query_parameter("skip", "Jobs to skip.", {"type": "string"}),
                        query_parameter("maxpagesize", "Jobs per page (at most 100).", {"type": "string"})]),
    },
}
# in the story they run while the log still has the rank calls (before DELETE /personalizer/logs)
_at = list(PATHS).index("/personalizer/logs/properties")
PATHS = {**dict(list(PATHS.items())[:_at]), **_FEATURE_PATHS, **dict(list(PATHS.items())[_at:])}


def versioned(paths: dict, versions: list[str]) -> dict:
    """The same operations under ``/personalizer/{apiVersion}/...``, for clients that put the version in the path."""
    version = path_parameter("apiVersion", "A Personalizer API version in the path.", versions[-1],
                             {"enum": versions})
    out = {}
    for path, item in paths.items():
        copied = _without_examples(copy.deepcopy(item))
        copied["parameters"] = [version, *copied.get("parameters", [])]
        out[path.replace("/personalizer/", "/personalizer/{apiVersion}/", 1)] = copied
    return out


def _without_examples(value):
    """Drop named examples (they run once, under the unversioned path)."""
    if isinstance(value, dict):
        return {k: _without_examples(v) for k, v in value.items() if k != "examples"}
    if isinstance(value, list):
        return [_without_examples(v) for v in value]
    return value
