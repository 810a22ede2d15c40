"""Error taxonomy of the mapper (not a Direct error, so it lives here): stable codes for the CLI.

The base carries the project's one error protocol (``code``, ``message``, ``transient``, ``detail``; see
``fhir_bridge/errors.py``) by itself, because the mapper never imports the sidecar: the sidecar's pipeline
then knows that a record without a patient is permanent, not an outage to retry.
"""

from __future__ import annotations


class CcdaMapperError(Exception):
    """Base class: ``code`` is stable, ``str(exc)`` is a one-line human reason without PHI."""

    code: str = "ccda_error"
    #: The same input fails the same way every time: no mapper error is worth retrying.
    transient: bool = False

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message: str = message
        #: Machine-readable detail (never PHI).
        self.detail: str | None = detail


class NotFhir(CcdaMapperError):
    """The input is not FHIR R4 JSON (no resourceType, not a Bundle/resource list/NDJSON)."""

    code = "not_fhir"


class NoPatient(CcdaMapperError):
    """The input holds FHIR resources but no usable Patient, and a CCD needs its recordTarget."""

    code = "no_patient"
