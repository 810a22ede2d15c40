"""Errors of the consent service that are not Direct errors (validation, lookup, permission).

Each has a stable ``code`` and names the ``field`` at fault, so the REST API answers
``422 {"error": {"code", "message", "field"}}`` and a web page puts the message next to the right input.
"""

from __future__ import annotations


class ConsentError(Exception):
    code = "invalid_request"
    status = 422

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code

    def to_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "field": self.field}


class InvalidRequest(ConsentError):
    code = "invalid_request"


class NotFound(ConsentError):
    code = "not_found"
    status = 404


class Forbidden(ConsentError):
    code = "forbidden"
    status = 403


class Conflict(ConsentError):
    code = "conflict"
    status = 409


class RateLimited(ConsentError):
    """Too many requests: the same request passes after ``retry_after`` (whole) seconds."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after: int, code: str | None = None):
        super().__init__(message, code=code)
        self.retry_after = max(1, retry_after)
