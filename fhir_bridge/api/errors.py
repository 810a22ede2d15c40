"""The API's error answers: one table from domain error to HTTP status, and the handler that uses it.

Every error is ``{"error": {"code", "message", "field"}}`` (plus ``detail`` and ``retry_after`` when there
are some). The routes raise domain errors (``fhir_bridge.errors.DomainError``) and never choose a status:
:data:`STATUSES` does, in one place.

Why the table is keyed by error class and not by code alone: the same code can mean two things to an HTTP
caller. ``revoked`` is a refused address when it is the Direct agent's (the recipient's certificate was
revoked: 422, ``field = "address"``) and a refused resend when it is the consent service's (409).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from direct.errors import DirectError, TooManyLookups
from fhir_bridge.consent.errors import (
    Conflict,
    ConsentError,
    Forbidden,
    NotFound,
    NotJson,
    RateLimited,
)
from fhir_bridge.errors import BridgeError
from fhir_bridge.pipeline.errors import AuthorizationRevoked, TransmissionNotFound

#: (error class, HTTP status, ``field`` when the error has none): the first row the error is an instance of
#: decides, so a subclass comes before its base.
STATUSES: tuple[tuple[type[DirectError] | type[BridgeError], int, str | None], ...] = (
    # The Direct agent refused the recipient's address (its own code: bad_address, no_certificate, ...).
    (TooManyLookups, 429, "address"),  # the caller started too many lookups, like the resend limits
    (DirectError, 422, "address"),
    # The sidecar's own refusals.
    (NotJson, 400, None),
    (RateLimited, 429, None),  # resend_too_soon, resend_quota_exceeded, rate_limited
    (NotFound, 404, None),
    (TransmissionNotFound, 404, "id"),
    (Forbidden, 403, None),
    (Conflict, 409, None),
    (AuthorizationRevoked, 409, None),  # a resend of a revoked authorization
    (ConsentError, 422, None),  # invalid_request and the other checks of a request (``field`` names it)
)


def status_of(exc: DirectError | BridgeError) -> tuple[int, str | None]:
    """HTTP status and default ``field`` of a domain error the API answers (500 for one it does not)."""
    for cls, status, field in STATUSES:
        if isinstance(exc, cls):
            return status, field
    return 500, None


def error(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    detail: str | None = None,
    *,
    retry_after: int | None = None,
) -> Response:
    """The one shape of every API error answer (also used for the 401 of a missing credential)."""
    body: dict[str, Any] = {"code": code, "message": message, "field": field}
    if detail:
        body["detail"] = detail
    if retry_after is not None:
        body["retry_after"] = retry_after
    response = jsonify({"error": body})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="bbdirect"'
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def domain_error(exc: DirectError | BridgeError) -> Response:
    """Flask error handler: the answer for a domain error raised by a route."""
    status, default_field = status_of(exc)
    field = exc.field if isinstance(exc, ConsentError) else default_field
    retry_after = exc.retry_after if isinstance(exc, (RateLimited, TooManyLookups)) else None
    return error(status, exc.code, exc.message, field, exc.detail, retry_after=retry_after)


def register(blueprint: Blueprint) -> None:
    """Answer every error class of :data:`STATUSES` raised under ``blueprint`` from the table."""
    for cls in dict.fromkeys(cls for cls, _, _ in STATUSES):
        blueprint.register_error_handler(cls, domain_error)
