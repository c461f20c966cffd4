"""Reusable pieces of the OpenAPI document: schemas, error answers, parameters.

Bounds come from the code that enforces them (``experiments.spec``, ``bandit``),
so the document cannot drift from what the service accepts.
"""
from __future__ import annotations

from bandit.exploration import EXPLORATIONS
from bandit.scaling import MAX_BUCKETS, MAX_FEATURES as MAX_SCALED, MODES as SCALING_MODES
from bandit.vw_args import MAX_LENGTH as MAX_VW_ARGS
from experiments.spec import (AGGREGATIONS, FEATURE_PATH, HASH_BITS_RANGE, KINDS, LEARNING_MODES, MAX_ARMS, MAX_FORGET,
                              MAX_ID_LENGTH, MAX_SLOTS, STATUSES, SWITCHED_NUMBERS)


def _switched(name: str, description: str) -> dict:
    """A learning aid's object: ``enabled`` and its numbers, with the bounds the spec checks."""
    numbers = {number: {"type": "integer" if integer else "number", "minimum": low, "maximum": high}
               for number, (low, high, integer) in SWITCHED_NUMBERS[name].items()}
    return {"type": "object", "additionalProperties": False, "properties": {"enabled": {"type": "boolean"}, **numbers},
            "description": description}


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: dict, examples: dict | None = None) -> dict:
    """A JSON media type; ``examples`` maps an example name to its value."""
    content = {"schema": schema}
    if examples:
        content["examples"] = {name: {"value": value} for name, value in examples.items()}
    return {"application/json": content}


def answer(description: str, schema: dict | None = None, examples: dict | None = None, **extra) -> dict:
    response = {"description": description, **extra}
    if schema is not None:
        response["content"] = json_content(schema, examples)
    return response


def body(schema: dict, examples: dict | None = None, required: bool = True) -> dict:
    return {"required": required, "content": json_content(schema, examples)}


def path_parameter(name: str, description: str, example: str, schema: dict | None = None, **examples) -> dict:
    """A path parameter; keyword ``examples`` give other values for named examples of the operation."""
    parameter = {"name": name, "in": "path", "required": True, "description": description,
                 "schema": schema or {"type": "string", "minLength": 1}, "example": example}
    if examples:
        parameter["examples"] = {label: {"value": value} for label, value in examples.items()}
    return parameter


def query_parameter(name: str, description: str, schema: dict, **examples) -> dict:
    parameter = {"name": name, "in": "query", "required": False, "description": description, "schema": schema}
    if examples:
        parameter["examples"] = {label: {"value": value} for label, value in examples.items()}
    return parameter


ERRORS = {
    "description": "A client mistake (4xx): the error names the field it blames. 401 answers carry "
                   "`WWW-Authenticate: Bearer`, 429 answers `Retry-After`.",
    "content": json_content(ref("Error")),
}
PERSONALIZER_ERRORS = {"description": "A client mistake, in Personalizer's error shape.",
                       "content": json_content(ref("PersonalizerError"))}

_SCALAR = {"type": ["string", "number", "boolean"]}
_VALUE = {"anyOf": [_SCALAR, {"type": "array", "items": {"type": ["string", "number"]}},
                    {"type": "object", "additionalProperties": _SCALAR}]}
_FEATURES = {"type": "object", "additionalProperties": _VALUE,
             "description": "Features: strings are one-hot, numbers values, booleans and lists of strings work, "
                            "objects nest (up to 8 levels; one is shown here)."}
_ID = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH}
_TIME = {"type": "string", "description": "ISO 8601 UTC time with milliseconds"}
_INTERVAL = {"type": "object", "description": "An estimate with its 95% interval.",
             "properties": {"value": {"type": ["number", "null"]}, "low": {"type": ["number", "null"]},
                            "high": {"type": ["number", "null"]}, "n": {"type": "integer"},
                            "alpha": {"type": "number"}}}

_EXPLORATION = {
    "type": "object", "required": ["algorithm"],
    "description": "epsilon (epsilon), squarecb (gamma_scale, gamma_exponent, normalize; elim only false), "
                   "bag (bag, epsilon, greedify), softmax (lambda), cover (cover, psi, nounif). normalize: "
                   "exploration goes to close contenders (normalized inverse-gap weighting) instead of SquareCB's "
                   "fixed share per candidate.",
    "properties": {"algorithm": {"enum": list(EXPLORATIONS)},
                   "epsilon": {"type": "number", "minimum": 0, "maximum": 1},
                   "gamma_scale": {"type": "number", "exclusiveMinimum": 0},
                   "gamma_exponent": {"type": "number", "minimum": 0}, "elim": {"const": False},
                   "normalize": {"type": "boolean"},
                   "bag": {"type": "integer", "minimum": 1, "maximum": 100}, "greedify": {"type": "boolean"},
                   "lambda": {"type": "number", "exclusiveMinimum": 0},
                   "cover": {"type": "integer", "minimum": 1, "maximum": 100},
                   "psi": {"type": "number", "minimum": 0}, "nounif": {"type": "boolean"}},
}
_SCALE = {"oneOf": [{"enum": list(SCALING_MODES)},
                    {"type": "object", "additionalProperties": False, "required": ["buckets"],
                     "properties": {"buckets": {"type": "array", "items": {"type": "number"}, "minItems": 1,
                                                "maxItems": MAX_BUCKETS}}}]}
_LEARNING = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "interactions": {"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z:]{2,3}$"},
                         "description": "Namespace crossings by first letter: two letters `-q`, three `--cubic`."},
        "learning_rate": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 100,
                          "description": "VW's `-l`; omitted or null: 0.5 for `items`, 0.25 for `strategies`."},
        "decay": {"type": "number", "minimum": 0, "maximum": 1,
                  "description": "VW's `--power_t` (0.5): how fast each feature's rate shrinks; lower forgets faster."},
        "scaling": {"type": "object", "additionalProperties": False,
                    "properties": {"default": _SCALE, "features": {"type": "object", "maxProperties": MAX_SCALED,
                                                                   "additionalProperties": _SCALE}},
                    "description": "How numbers are scaled: a `default` (`log` unless given) and modes per "
                                   "feature path such as `action.price` (docs/learning.md)."},
        "autotune": _switched("autotune", "Settings tuned by counterfactual replays of the recent log (opt-in)."),
        "drift_watch": _switched("drift_watch", "Forget a group's earlier decisions when its reward falls (on by "
                                                "default for new experiments; docs/learning.md)."),
        "forget": {"type": "array", "maxItems": MAX_FORGET,
                   "items": {"type": "object", "additionalProperties": False,
                             "required": ["feature", "value"],
                             "properties": {"feature": {"type": "string", "pattern": FEATURE_PATH.pattern},
                                            "value": {"type": "string", "minLength": 1,
                                                      "maxLength": MAX_ID_LENGTH},
                                            "before": {"type": "integer", "minimum": 1,
                                                       "description": "A decision's sequence number."},
                                            "before_time": {"type": ["string", "number"],
                                                            "description": "Instead of `before` in a request: "
                                                            "ISO 8601 or epoch seconds, not in the future; "
                                                            "stored as `before`, the first decision logged "
                                                            "at or after it."}}},
                   "description": "Decisions the model leaves out: those of a context feature's value "
                                  "logged before a sequence number (or a time)."},
        "hash_bits": {"type": ["integer", "null"], "minimum": HASH_BITS_RANGE[0], "maximum": HASH_BITS_RANGE[1],
                      "description": "2^bits weights; omitted or null: 18 for `items`, 16 for `strategies`."},
        "update_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 86400},
        "vw_args": {"type": "string", "maxLength": MAX_VW_ARGS,
                    "description": "More VW learning options, from an allowlist (docs/security.md)."},
        "mode": {"enum": list(LEARNING_MODES)},
    },
}
_REWARD = {
    "type": "object", "additionalProperties": False,
    "properties": {"wait_seconds": {"type": "number", "minimum": 0, "maximum": 30 * 86400},
                   "default": {"type": "number"}, "aggregation": {"enum": list(AGGREGATIONS)},
                   "events": {"type": "object", "additionalProperties": {"type": "number"}}},
}
_TRAFFIC = {
    "type": "object", "additionalProperties": False,
    "properties": {"holdout": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
                   "control": {"oneOf": [{"const": "uniform"},
                                         {"type": "object", "required": ["arm"], "additionalProperties": False,
                                          "properties": {"arm": _ID}}]}},
}
_SPEC_PROPERTIES = {
    "name": {"type": "string", "maxLength": 200},
    "arms": {"type": "array", "maxItems": MAX_ARMS,
             "items": {"type": "object", "required": ["id"], "additionalProperties": False,
                       "properties": {"id": _ID, "features": _FEATURES}}},
    "slots": {"type": "integer", "minimum": 1, "maximum": MAX_SLOTS},
    "exploration": _EXPLORATION, "learning": _LEARNING, "reward": _REWARD, "traffic": _TRAFFIC,
    "status": {"enum": list(STATUSES)},
}

SCHEMAS = {
    "Error": {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "message"],
                                 "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                                                "field": {"type": "string"}}}},
    },
    "PersonalizerError": {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "message"],
                                 "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                                                "target": {"type": "string"}}}},
    },
    "ExperimentSpec": {
        "type": "object", "required": ["key"], "additionalProperties": False,
        "properties": {"key": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_.-]{0,63}$"},
                       "kind": {"enum": list(KINDS)}, **_SPEC_PROPERTIES},
    },
    "ExperimentPatch": {"type": "object", "additionalProperties": False,
                        "properties": {"key": {"type": "string"}, "kind": {"enum": list(KINDS)},
                                       **_SPEC_PROPERTIES}},
    "Experiment": {
        "type": "object", "required": ["key", "name", "kind", "status", "version", "spec", "counts"],
        "properties": {"key": {"type": "string"}, "name": {"type": "string"}, "kind": {"enum": list(KINDS)},
                       "status": {"enum": list(STATUSES)}, "version": {"type": "integer"},
                       "spec": {"type": "object"}, "created_at": _TIME, "updated_at": _TIME,
                       "counts": {"type": "object"}, "model": {"type": ["object", "null"]}},
    },
    "SlateRequest": {
        "type": "object", "additionalProperties": False,
        "properties": {
            "unit": {"type": "string", "description": "Sticky assignment unit; hashed, never a feature."},
            "context": {"type": "object", "description": "Objects become VW namespaces named after their key; "
                                                        "other values go to the Context namespace.",
                        "additionalProperties": {"anyOf": [_SCALAR, _FEATURES]}},
            "candidates": {"type": "array", "items": {"type": "object", "required": ["id"],
                                                      "properties": {"id": _ID, "features": _FEATURES}},
                           "description": "Leave out to choose among the available catalog items."},
            "slots": {"type": "integer", "minimum": 1, "maximum": MAX_SLOTS},
            "exclude": {"type": "array", "items": {"type": "string"}},
            "event_id": _ID,
            "defer_activation": {"type": "boolean"},
            "slot_context": {"type": "array", "items": {
                "type": "object", "properties": {"id": {"type": "string"}, "features": _FEATURES,
                                                 "exclude": {"type": "array", "items": {"type": "string"}},
                                                 "baseline": {"type": "string"}}}},
        },
    },
    "Slate": {
        "type": "object", "required": ["event_id", "experiment", "variant", "model_version", "slate"],
        "properties": {"event_id": {"type": "string"}, "experiment": {"type": "string"},
                       "variant": {"enum": ["bandit", "holdout", "fallback"]}, "model_version": {"type": "integer"},
                       "slate": {"type": "array", "items": {
                           "type": "object", "required": ["slot", "id", "probability"],
                           "properties": {"slot": {"type": "integer"}, "id": {"type": "string"},
                                          "probability": {"type": "number"}}}}},
    },
    "RewardRequest": {
        "type": "object", "additionalProperties": False,
        "properties": {"type": {"type": "string", "minLength": 1, "maxLength": 64},
                       "item": _ID, "value": {"type": "number"},
                       "id": {**_ID, "description": "Idempotency key: the same id counts once."}},
    },
    "Reward": {
        "type": "object", "required": ["event_id", "experiment", "id", "value", "late", "duplicate"],
        "properties": {"event_id": {"type": "string"}, "experiment": {"type": "string"}, "id": {"type": "string"},
                       "type": {"type": ["string", "null"]}, "item": {"type": ["string", "null"]},
                       "slot": {"type": ["integer", "null"]}, "value": {"type": "number"},
                       "late": {"type": "boolean"}, "duplicate": {"type": "boolean"}, "received_at": _TIME},
    },
    "CatalogItem": {
        "type": "object", "required": ["id"], "additionalProperties": False,
        "properties": {"id": _ID, "features": _FEATURES, "available": {"type": "boolean"},
                       "version": {"type": "integer"}},
    },
    "EvaluationRequest": {
        "type": "object", "additionalProperties": False,
        "properties": {"exploration": _EXPLORATION, "learning": _LEARNING,
                       "limit": {"type": "integer", "minimum": 1, "maximum": 10_000_000},
                       "from": {"type": ["string", "number"]}, "to": {"type": ["string", "number"]}},
    },
    "Evaluation": {
        "type": "object", "required": ["id", "experiment", "status", "progress"],
        "properties": {"id": {"type": "integer"}, "experiment": {"type": "string"},
                       "status": {"enum": ["queued", "running", "done", "failed"]},
                       "settings": {"type": "object"}, "options": {"type": "object"},
                       "progress": {"type": "object"}, "result": {"type": ["object", "null"]},
                       "error": {"type": ["string", "null"]}},
    },
    "Report": {
        "type": "object", "required": ["experiment", "range", "variants", "lift", "sample_ratio", "rewards"],
        "properties": {"experiment": {"type": "object"}, "range": {"type": "object"},
                       "variants": {"type": "array", "items": {
                           "type": "object", "properties": {"variant": {"type": "string"},
                                                            "decisions": {"type": "integer"},
                                                            "rewarded_rate": _INTERVAL, "reward": _INTERVAL}}},
                       "lift": {"type": ["object", "null"]}, "sample_ratio": {"type": ["object", "null"]},
                       "off_policy": {"type": "array"}, "time_series": {"type": "object"},
                       "rewards": {"type": "object"}, "model_versions": {"type": "object"}},
    },
}
