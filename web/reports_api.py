"""Reports and counterfactual evaluations under ``/v1``: each view parses its input and calls one function."""
from __future__ import annotations

import threading

import orjson
from flask import Blueprint, Response, current_app, request

from experiments.reporting import reports
from experiments.reporting.evaluation import Evaluations
from web.api import json_body, jsonify as _jsonify

bp = Blueprint("reports", __name__, url_prefix="/v1")
_lock = threading.Lock()


def jsonify(value) -> Response:
    return _jsonify(value, orjson.OPT_SERIALIZE_NUMPY)  # reports carry numpy numbers


def evaluations() -> Evaluations:
    """The app's evaluation runner, made on first use."""
    silent = current_app.extensions["silent"]
    with _lock:
        if "evaluations" not in silent:
            silent["evaluations"] = Evaluations(silent["store"], silent["clock"])
    return silent["evaluations"]


@bp.get("/experiments/<key>/report")
def report(key):
    silent = current_app.extensions["silent"]
    args = request.args
    return jsonify(reports.report(silent["store"], key, args.get("from"), args.get("to"), args.get("interval"),
                                  clock=silent["clock"], archive=silent["archive"]))


@bp.post("/experiments/<key>/evaluations")
def create_evaluation(key):
    return jsonify(evaluations().submit(key, json_body())), 202


@bp.get("/experiments/<key>/evaluations")
def list_evaluations(key):
    return jsonify({"evaluations": evaluations().list(key)})


@bp.get("/experiments/<key>/evaluations/<int(max=9223372036854775807):evaluation_id>")  # SQLite's largest id
def get_evaluation(key, evaluation_id):
    return jsonify(evaluations().get(key, evaluation_id))
