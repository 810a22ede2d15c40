"""Errors of the consent service that are not Direct errors (validation, lookup, permission).

Each has a stable ``code`` and names the ``field`` at fault, so the REST API answers
``{"error": {"code", "message", "field"}}`` (its HTTP status from the one table in
``fhir_bridge/api/errors.py``) and a web page puts the message next to the right input.
"""

from __future__ import annotations

from fhir_bridge.errors import BridgeError


class ConsentError(BridgeError):
    code = "invalid_request"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message, code=code)
        self.field = field

    def to_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "field": self.field}


class InvalidRequest(ConsentError):
    code = "invalid_request"


class NotJson(InvalidRequest):
    """The request body is not valid JSON (a 400, where a JSON body that is refused is a 422)."""

    code = "bad_json"


class NotFound(ConsentError):
    code = "not_found"


class Forbidden(ConsentError):
    code = "forbidden"


class Conflict(ConsentError):
    code = "conflict"


class RateLimited(ConsentError):
    """Too many requests: the same request passes after ``retry_after`` (whole) seconds."""

    code = "rate_limited"
    #: The same request passes later.
    transient = True

    def __init__(self, message: str, *, retry_after: int, code: str | None = None):
        super().__init__(message, code=code)
        self.retry_after = max(1, retry_after)
