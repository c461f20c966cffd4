"""Typed domain errors: each carries its HTTP status, a code and the field it blames."""
from __future__ import annotations


class ServiceError(Exception):
    """Base of every error a client can cause; rendered as one JSON shape by the web layer."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class RetryLater(ServiceError):
    """A limit on how often, not on what: the same request succeeds after ``retry_after`` seconds."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int = 1):
        super().__init__(message)
        self.retry_after = retry_after


class InvalidField(ServiceError):
    status = 400
    code = "invalid_field"

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}" if field else message, field)


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class Unavailable(ServiceError):
    """The service cannot answer as configured: a database it cannot open, archive files not where it looks."""

    status = 503
    code = "unavailable"


class LimitExceeded(ServiceError):
    """A request too large to serve under one of the documented limits (docs/security.md); the message names it."""

    status = 413
    code = "limit_exceeded"


class LimitReached(LimitExceeded):
    """A request the resource has no room left for under a documented limit (rewards per event)."""

    status = 409
