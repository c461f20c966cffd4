"""The ``/v1`` JSON API: each view parses its input and calls one service function."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from experiments.errors import InvalidField

bp = Blueprint("api", __name__, url_prefix="/v1")


def service():
    return current_app.extensions["silent"]["service"]


def json_body():
    """Return the parsed JSON body, or a 400 naming the body when it is not JSON."""
    data = request.get_json(force=True, silent=True)
    if data is None:
        raise InvalidField("body", "must be valid JSON")
    return data


@bp.post("/experiments")
def create_experiment():
    return jsonify(service().create_experiment(json_body())), 201


@bp.get("/experiments")
def list_experiments():
    return jsonify({"experiments": service().list_experiments()})


@bp.get("/experiments/<key>")
def get_experiment(key):
    return jsonify(service().get_experiment(key))


@bp.patch("/experiments/<key>")
def update_experiment(key):
    return jsonify(service().update_experiment(key, json_body()))


@bp.get("/experiments/<key>/history")
def experiment_history(key):
    return jsonify({"history": service().history(key)})


@bp.post("/experiments/<key>/slate")
def slate(key):
    return jsonify(service().decide(key, json_body()))


@bp.post("/events/<event_id>/rewards")
def reward(event_id):
    return jsonify(service().record_reward(event_id, json_body())), 202


def healthz():
    current_app.extensions["silent"]["store"].conn.execute("SELECT 1")
    return jsonify({"status": "ok"})
