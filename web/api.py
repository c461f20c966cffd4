"""The ``/v1`` JSON API: each view parses its input and calls one service function."""
from __future__ import annotations

import os

import orjson
from flask import Blueprint, Response, current_app, request

from experiments import autotune, catalog, erasure
from experiments.errors import InvalidField
from web import metrics
from web.auth import api_actor
from web.json_input import parse_json

bp = Blueprint("api", __name__, url_prefix="/v1")


def service():
    return current_app.extensions["silent"]["service"]


def json_body():
    """Parse the body as strict JSON, nested at most ``json_input.MAX_DEPTH`` deep."""
    return parse_json(request.get_data(cache=False))


def jsonify(value, option: int = 0) -> Response:
    """Serialise an answer with orjson; the hot path answers thousands of these a second."""
    return Response(orjson.dumps(value, option=option), mimetype="application/json")


@bp.post("/experiments")
def create_experiment():
    return jsonify(service().create_experiment(json_body(), actor=api_actor())), 201


@bp.get("/experiments")
def list_experiments():
    return jsonify({"experiments": service().list_experiments()})


@bp.get("/experiments/<key>")
def get_experiment(key):
    return jsonify(service().get_experiment(key))


@bp.patch("/experiments/<key>")
def update_experiment(key):
    return jsonify(service().update_experiment(key, json_body(), actor=api_actor()))


@bp.get("/experiments/<key>/history")
def experiment_history(key):
    return jsonify({"history": service().history(key)})


@bp.post("/experiments/<key>/autotune/undo")
def undo_autotune(key):
    body = json_body()
    if not isinstance(body, dict) or set(body) != {"version"}:
        raise InvalidField("version", 'send {"version": N}, the version of the auto-tuning switch to undo')
    version = body["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidField("version", "must be the version of an auto-tuning switch")
    return jsonify(autotune.undo(service(), key, version, actor=api_actor()))


@bp.post("/experiments/<key>/slate")
def slate(key):
    answer = service().decide(key, json_body())
    metrics.child(metrics.DECISIONS, key, answer["variant"]).inc()
    return jsonify(answer)


@bp.post("/events/<event_id>/rewards")
def reward(event_id):
    answer = service().record_reward(event_id, json_body())
    if not answer["duplicate"]:
        metrics.child(metrics.REWARDS, answer["experiment"], answer["type"]).inc()
    return jsonify(answer), 202


@bp.post("/events/<event_id>/activate")
def activate(event_id):
    return jsonify(service().activate(event_id))


@bp.put("/catalog/items")
def upsert_catalog_items():
    items = catalog.parse_items(json_body())
    answer = catalog.upsert_items(store(), items, clock().now())
    service().catalog.invalidate()
    return jsonify(answer)


@bp.get("/catalog/items")
def list_catalog_items():
    limit = request.args.get("limit", "100")
    if not limit.isdigit() or not 1 <= int(limit) <= 1000:
        raise InvalidField("limit", "must be an integer from 1 to 1000")
    return jsonify(catalog.list_items(store(), int(limit), request.args.get("after", "")))


@bp.get("/catalog/items/<item_id>")
def get_catalog_item(item_id):
    return jsonify(catalog.get_item(store(), item_id))


@bp.delete("/catalog/items/<item_id>")
def delete_catalog_item(item_id):
    answer = catalog.delete_item(store(), item_id)
    service().catalog.invalidate()
    return jsonify(answer)


@bp.delete("/units/<path:unit>")
def forget_unit(unit):
    return jsonify(erasure.forget_unit(store(), unit, current_app.extensions["silent"]["archive"]))


def store():
    return current_app.extensions["silent"]["store"]


def clock():
    return current_app.extensions["silent"]["clock"]


def healthz():
    store().conn.execute("SELECT 1")
    return jsonify({"status": "ok", "process": os.getpid()})
