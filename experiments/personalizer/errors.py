"""Personalizer's own error codes (``InvalidRewardWaitTime``, ``LogsPropertiesNotFound`` ...) on typed errors.

Most client mistakes take the code of the operation that failed (a bad Rank body is
``InvalidRankRequest``); the errors here name a more specific code of the spec.
"""
from __future__ import annotations

from experiments.errors import ServiceError


class PersonalizerError(ServiceError):
    """A client mistake with the Personalizer error code the spec gives it."""

    def __init__(self, code: str, message: str, field: str | None = None, status: int = 400):
        super().__init__(f"{field}: {message}" if field else message, field)
        self.personalizer_code = code
        self.status = status
