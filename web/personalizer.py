"""Azure AI Personalizer's REST API under ``/personalizer``, for its official clients, unchanged.

Each view parses its input and calls one ``experiments.personalizer.mapping`` method.
The ``Ocp-Apim-Subscription-Key`` header names the resource (the experiment);
errors come back in Personalizer's own shape, ``{"error": {"code", "message",
"target"}}``, with its codes and status codes, and the code again in the
``x-ms-error-code`` header. Every path answers in its path-versioned forms
(``/personalizer/v1.0/rank``, ``/personalizer/v1.1-preview.3/rank``) and with
``?api-version=``; documents whose shape differs between versions are written
in the shape of the version the request spoke (``versions.version_of``).
"""
from __future__ import annotations

import logging
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from experiments.errors import InvalidField, NotFound, ServiceError
from experiments.personalizer import Personalizer
from experiments.personalizer.versions import PATH_VERSIONS, is_v1, version_of
from web.json_input import parse_json

log = logging.getLogger(__name__)

bp = Blueprint("personalizer", __name__, url_prefix="/personalizer")
VERSIONS = ("", *(f"/{v}" for v in PATH_VERSIONS))
KEY_HEADER = "Ocp-Apim-Subscription-Key"
# the error code of a client mistake, per view; anything else is a BadRequest
BAD_REQUEST_CODES = {
    "rank": "InvalidRankRequest", "multislot_rank": "InvalidRankRequest",
    "reward": "InvalidRewardRequest", "multislot_reward": "InvalidRewardRequest",
    "activate": "InvalidEventIdToActivate",
    "update_service_configuration": "InvalidServiceConfiguration",
    "update_policy": "InvalidPolicyConfiguration",
    "create_evaluation": "InvalidEvaluationContract", "submit_evaluation": "InvalidEvaluationContract",
    "import_model": "InvalidModelImportFormat", "get_model": "InvalidRequest",
    "apply_from_evaluation": "InvalidPolicyContract", "list_evaluations": "InvalidRequest",
    "get_evaluation": "InvalidRequest", "create_feature_importance": "InvalidContract",
    "list_feature_importances": "InvalidRequest",
}
NOT_FOUND_CODES = {"get_evaluation": "EvaluationNotFound", "delete_evaluation": "EvaluationNotFound",
                   "create_evaluation": "EvaluationNotFound", "submit_evaluation": "EvaluationNotFound",
                   "get_feature_importance": "FeatureImportanceNotFound",
                   "delete_feature_importance": "FeatureImportanceNotFound"}
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def personalizer() -> Personalizer:
    """Return the app's Personalizer facade over the native service (made by ``create_app``)."""
    return current_app.extensions["silent"]["personalizer"]


def route(rule: str, **options):
    """Register a view under every versioned form of its path."""
    def decorator(view):
        for version in VERSIONS:
            bp.add_url_rule(version + rule, view_func=view, **options)
        return view
    return decorator


def version() -> str:
    """Return the API version this request spoke: from its path, else its ``api-version``."""
    head = request.path[len(bp.url_prefix) + 1:].partition("/")[0]
    return version_of(head if head in PATH_VERSIONS else None, request.args.get("api-version"))


def json_body():
    try:
        return parse_json(request.get_data(cache=False))
    except InvalidField as exc:
        raise InvalidField("", f"the body {exc.message}") from None


def no_content():
    return Response(status=204)


# -- errors -------------------------------------------------------------------
def error_response(status: int, code: str, message: str, target: str | None = None):
    error = {"code": code, "message": message}
    if target:
        error["target"] = target
    response = jsonify({"error": error})
    response.status_code = status
    response.headers["x-ms-error-code"] = code
    return response


def code_for(status: int, view: str) -> tuple[int, str]:
    """Map a native status to Personalizer's status and code for the view that failed."""
    if status == 401:
        return 401, "401"
    if status == 404:
        return 404, NOT_FOUND_CODES.get(view, "ResourceNotFound")
    if status in (400, 409, 422):  # Personalizer answers conflicts with a 400 too
        return 400, BAD_REQUEST_CODES.get(view, "BadRequest")
    if status == 413:
        return 413, "PayloadSizeExceeded"
    return status, "BadRequest" if status < 500 else "InternalServerError"


@bp.errorhandler(Exception)
def handle_exception(exc: Exception):
    """Render every error raised under /personalizer in Personalizer's shape."""
    view = (request.endpoint or "").rpartition(".")[2]
    if isinstance(exc, ServiceError):
        status, code = code_for(exc.status, view)
        code = getattr(exc, "personalizer_code", None) or code
        return error_response(status, code, exc.message, exc.field)
    if isinstance(exc, HTTPException):
        status, code = code_for(exc.code or 500, view)
        return error_response(status, code, exc.description or exc.name)
    log.exception("unhandled error in the Personalizer API")
    return error_response(500, "InternalServerError", "A generic error has occurred on the server.")


@bp.before_request
def resource():
    """Find the experiment behind the subscription key (401 without a known one)."""
    g.resource = personalizer().experiment_for(request.headers.get(KEY_HEADER))


# -- rank, reward, activate -------------------------------------------------------
@route("/rank", methods=["POST"])
def rank():
    return jsonify(personalizer().rank(g.resource, json_body())), 201


@route("/events/<event_id>/reward", methods=["POST"])
def reward(event_id):
    personalizer().reward(g.resource, event_id, json_body())
    return no_content()


@route("/events/<event_id>/activate", methods=["POST"])
@route("/multislot/events/<event_id>/activate", methods=["POST"])
def activate(event_id):
    personalizer().activate(g.resource, event_id)
    return no_content()


@route("/multislot/rank", methods=["POST"])
def multislot_rank():
    return jsonify(personalizer().multislot_rank(g.resource, json_body())), 201


@route("/multislot/events/<event_id>/reward", methods=["POST"])
def multislot_reward(event_id):
    personalizer().multislot_reward(g.resource, event_id, json_body())
    return no_content()


# -- configurations ---------------------------------------------------------------
@route("/configurations/service", methods=["GET"])
def get_service_configuration():
    return jsonify(personalizer().service_configuration(g.resource, version()))


@route("/configurations/service", methods=["PUT"])
def update_service_configuration():
    return jsonify(personalizer().update_service_configuration(g.resource, json_body(), version()))


@route("/configurations/policy", methods=["GET"])
def get_policy():
    return jsonify(personalizer().policy(g.resource))


@route("/configurations/policy", methods=["PUT"])
def update_policy():
    return jsonify(personalizer().update_policy(g.resource, json_body()))


@route("/configurations/policy", methods=["DELETE"])
def reset_policy():
    return jsonify(personalizer().reset_policy(g.resource))


# -- model and logs -----------------------------------------------------------------
@route("/model", methods=["GET"])
def get_model():
    signed = request.args.get("signed", "false").lower()
    if signed not in ("true", "false"):
        raise InvalidField("signed", "must be true or false")
    if signed == "true":
        return Response(personalizer().signed_model(g.resource), mimetype="application/zip")
    return Response(personalizer().model(g.resource), mimetype="application/octet-stream")


@route("/model", methods=["PUT"])
def import_model():
    """Replace the model with a VW model file or a signed archive (up to MAX_MODEL_BYTES)."""
    request.max_content_length = current_app.config["MAX_MODEL_BYTES"]
    blob = request.get_data(cache=False)
    if not blob:
        raise InvalidField("model", "send the model file as the request body (application/octet-stream)")
    personalizer().import_model(g.resource, blob)
    return no_content()


@route("/model", methods=["DELETE"])
def reset_model():
    personalizer().reset_model(g.resource)
    return no_content()


@route("/model/properties", methods=["GET"])
def model_properties():
    return jsonify(personalizer().model_properties(g.resource))


@route("/logs/properties", methods=["GET"])
def log_properties():
    return jsonify(personalizer().log_properties(g.resource))


@route("/logs", methods=["DELETE"])
def delete_logs():
    personalizer().delete_logs(g.resource)
    archive = current_app.extensions["silent"]["archive"]
    if archive is not None:  # the log is gone, so are its archived days
        archive.remove(g.resource)
    return no_content()


# -- offline evaluations ---------------------------------------------------------------
def _count_arg(name: str, default: int | None) -> int | None:
    value = request.args.get(name)
    if value is None:
        return default
    if not value.isdigit() or len(value) > 9:
        raise InvalidField(name, "must be a non-negative integer")
    return int(value)


@route("/evaluations/<evaluation_id>", methods=["PUT"])
def create_evaluation(evaluation_id):
    return jsonify(personalizer().create_evaluation(g.resource, evaluation_id, json_body(), version()))


@route("/evaluations", methods=["POST"])
def submit_evaluation():
    """v1.0 and v1.1: POST makes the id and answers 201 with the evaluation's Location."""
    document = personalizer().create_evaluation(g.resource, None, json_body(), version())
    response = jsonify(document)
    response.status_code = 201
    response.headers["Location"] = f"{request.base_url.rstrip('/')}/{document['id']}"
    return response


@route("/evaluations/<evaluation_id>", methods=["GET"])
def get_evaluation(evaluation_id):
    query = {name: request.args.get(name) for name in ("startTime", "endTime", "window")}
    query["intervalInMinutes"] = _count_arg("intervalInMinutes", None)
    return jsonify(personalizer().evaluation(g.resource, evaluation_id, version(), query))


def _paging() -> tuple[int | None, int, int]:
    """``top`` (evaluations wanted in all), ``skip`` and the page size (``maxpagesize``, at most 100)."""
    return _count_arg("top", None), _count_arg("skip", 0), min(_count_arg("maxpagesize", 100) or 100, 100)


def _page(page: list[dict], more: bool, top: int | None, skip: int):
    return jsonify({"value": page, "nextLink": _next_link(top, skip, len(page)) if more else None})


@route("/evaluations", methods=["GET"])
def list_evaluations():
    top, skip, page_size = _paging()
    page, more = personalizer().list_evaluations(g.resource, version(), top, skip, page_size,
                                                 request.args.get("filter"))
    return jsonify(page) if is_v1(version()) else _page(page, more, top, skip)


def _next_link(top: int | None, skip: int, taken: int) -> str:
    """Link the next page; ``top`` stays the number of evaluations still wanted in all."""
    params = {k: v for k, v in request.args.items() if k not in ("top", "skip")}
    params["skip"] = str(skip + taken)
    if top is not None:
        params["top"] = str(top - taken)
    return f"{request.base_url}?{urlencode(params)}"


@route("/evaluations/<evaluation_id>", methods=["DELETE"])
def delete_evaluation(evaluation_id):
    personalizer().delete_evaluation(g.resource, evaluation_id)
    return no_content()


@route("/configurations/applyFromEvaluation", methods=["POST"])
def apply_from_evaluation():
    personalizer().apply_from_evaluation(g.resource, json_body())
    return no_content()


# -- feature importances (2022-09-01-preview) -------------------------------------------
@route("/featureImportances/<feature_importance_id>", methods=["PUT"])
def create_feature_importance(feature_importance_id):
    personalizer().create_feature_importance(g.resource, feature_importance_id, json_body())
    return Response(status=200)


@route("/featureImportances/<feature_importance_id>", methods=["GET"])
def get_feature_importance(feature_importance_id):
    return jsonify(personalizer().feature_importance(g.resource, feature_importance_id))


@route("/featureImportances", methods=["GET"])
def list_feature_importances():
    top, skip, page_size = _paging()
    return _page(*personalizer().list_feature_importances(g.resource, top, skip, page_size), top, skip)


@route("/featureImportances/<feature_importance_id>", methods=["DELETE"])
def delete_feature_importance(feature_importance_id):
    personalizer().delete_feature_importance(g.resource, feature_importance_id)
    return no_content()


# -- everything else ------------------------------------------------------------------
@bp.route("/<path:rest>", methods=ALL_METHODS)
def unsupported(rest):
    raise NotFound(f"{request.method} /personalizer/{rest} is not an operation of this service")
