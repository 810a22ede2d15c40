"""Classifying failures of a job: retry (transient) or stop and surface (permanent), with a stable code.

Why here: the worker must decide for any exception, from the Direct agent, the FHIR client or the mapper.
Each of them raises domain errors that satisfy :class:`fhir_bridge.errors.DomainError`, which says all the
worker needs. Anything else is a bug of ours, not an outage: it ends the job at once as a permanent
``internal_error`` with a log line (retrying a bug eight times only delays the report), and the code
location is logged so it can be fixed.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from typing import TypeGuard

from fhir_bridge.errors import BridgeError, DomainError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Failure:
    transient: bool
    code: str
    message: str
    detail: str | None = None


class TransmissionNotFound(BridgeError):
    """No such transmission."""

    code = "not_found"


class AuthorizationRevoked(BridgeError):
    """The authorization was revoked; nothing can be sent."""

    code = "revoked"


def _is_domain_error(exc: BaseException) -> TypeGuard[DomainError]:
    """The protocol, with its values' types (a runtime Protocol check only sees that the names exist)."""
    return (
        isinstance(exc, DomainError)
        and isinstance(exc.code, str)
        and isinstance(exc.message, str)
        and isinstance(exc.transient, bool)
        and (exc.detail is None or isinstance(exc.detail, str))
    )


def classify(exc: BaseException) -> Failure:
    if _is_domain_error(exc):
        return Failure(exc.transient, exc.code, exc.message or type(exc).__name__, exc.detail)
    # Never put str(exc) here: it may quote clinical content. The class name and the code location (stack
    # frames, without the message or any values) are enough to start a diagnosis.
    log.error(
        "unexpected %s in a transmission:\n%s",
        type(exc).__name__,
        "".join(traceback.format_tb(exc.__traceback__)),
    )
    return Failure(
        False, "internal_error", f"Unexpected {type(exc).__name__} while processing the transmission."
    )
