"""Classifying failures of a job: retry (transient) or stop and surface (permanent), with a stable code.

Why here: the worker must decide for any exception, including ones from the FHIR client or the mapper that
are not Direct errors. Unknown failures are treated as transient (a bug or an outage should not lose a
transmission) but still end as ``failed`` after ``pipeline.max_attempts``.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass

from direct.errors import DirectError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Failure:
    transient: bool
    code: str
    message: str
    detail: str | None = None


def classify(exc: BaseException) -> Failure:
    if isinstance(exc, DirectError):
        return Failure(bool(exc.transient), exc.code, exc.message, exc.detail)
    code = getattr(exc, "code", None)
    transient = getattr(exc, "transient", None)
    if isinstance(code, str) and isinstance(
        transient, bool
    ):  # another package's small taxonomy (FHIR, mapper)
        message = getattr(exc, "message", None) or type(exc).__name__
        return Failure(transient, code, str(message))
    # Never put str(exc) here: it may quote clinical content. The class name and the code location (stack
    # frames, without the message or any values) are enough to start a diagnosis.
    log.error(
        "unexpected %s in a transmission:\n%s",
        type(exc).__name__,
        "".join(traceback.format_tb(exc.__traceback__)),
    )
    return Failure(
        True, "internal_error", f"Unexpected {type(exc).__name__} while processing the transmission."
    )
