"""The FHIR side's small error taxonomy (the Direct side has ``direct.errors``).

Each class has a stable ``code`` (stored with a failed job, shown by the API) and says whether trying again
later may help (``transient``): the pipeline retries transient failures with backoff and stops on the others.
Messages never carry PHI: at most an HTTP status, a resource type and the server's OperationOutcome code.
"""

from __future__ import annotations

from fhir_bridge.errors import BridgeError


class FhirError(BridgeError):
    """The FHIR server could not be used."""

    code = "fhir_error"
    transient = False

    def __init__(self, message: str | None = None, *, status: int | None = None, detail: str | None = None):
        #: ``detail``: machine-readable (e.g. an OperationOutcome issue code), never PHI.
        super().__init__(message, detail=detail)
        #: HTTP status when the server answered.
        self.status = status

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"code": self.code, "message": self.message}
        if self.status is not None:
            out["status"] = self.status
        if self.detail:
            out["detail"] = self.detail
        return out


class FhirUnreachable(FhirError):
    """The FHIR server could not be reached."""

    code = "fhir_unreachable"
    transient = True


class FhirTimeout(FhirError):
    """The FHIR server did not answer in time."""

    code = "fhir_timeout"
    transient = True


class FhirAuthError(FhirError):
    """The FHIR server or its token endpoint refused our credentials."""

    code = "fhir_auth_failed"


class FhirHttpError(FhirError):
    """The FHIR server answered with an error status."""

    code = "fhir_http_error"


class FhirNotFound(FhirHttpError):
    """The resource does not exist (or was deleted) on the FHIR server."""

    code = "fhir_not_found"


class FhirRateLimited(FhirHttpError):
    """The FHIR server asked us to slow down (429) for longer than we are willing to wait."""

    code = "fhir_rate_limited"
    transient = True


class FhirServerError(FhirHttpError):
    """The FHIR server failed (5xx)."""

    code = "fhir_server_error"
    transient = True


class FhirInvalidResponse(FhirError):
    """The FHIR server sent something that is not the FHIR JSON we asked for."""

    code = "fhir_invalid_response"


class FhirUnsupported(FhirError):
    """The FHIR server does not support what this operation needs."""

    code = "fhir_unsupported"


class FhirSearchRefused(FhirError):
    """The FHIR server refused a search the record needs, or answered it with an error.

    Why an error and not an empty result: a refused search (an unsupported parameter, an error
    OperationOutcome in the search set, a type the token may not read) would otherwise become an empty C-CDA
    section, i.e. a record that silently misses problems or medications. The job fails with this reason.
    """

    code = "fhir_search_refused"


class FhirIncompleteResult(FhirError):
    """The FHIR server announced more matches than it returned (paging broke off or data moved meanwhile)."""

    code = "fhir_incomplete_result"
    transient = True
