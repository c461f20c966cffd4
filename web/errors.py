"""One error handler, one error shape: ``{"error": {"code", "message", "field"}}``."""
from __future__ import annotations

import logging

from flask import jsonify
from werkzeug.exceptions import HTTPException

from experiments.errors import ServiceError

log = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str, field: str | None = None):
    error = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    response = jsonify({"error": error})
    response.status_code = status
    return response


def handle_exception(exc: Exception):
    """Render domain errors with their status, HTTP errors by name, the rest as a plain 500."""
    if isinstance(exc, ServiceError):
        return error_response(exc.status, exc.code, exc.message, exc.field)
    if isinstance(exc, HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        response = error_response(exc.code or 500, code, exc.description or exc.name)
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response
    log.exception("unhandled error")
    return error_response(500, "internal_error", "the server failed; the error was logged")


def register(app) -> None:
    app.register_error_handler(Exception, handle_exception)
