"""Error taxonomy of the mapper (not a Direct error, so it lives here): stable codes for the CLI."""

from __future__ import annotations


class CcdaMapperError(Exception):
    """Base class: ``code`` is stable, ``str(exc)`` is a one-line human reason without PHI."""

    code = "ccda_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFhir(CcdaMapperError):
    """The input is not FHIR R4 JSON (no resourceType, not a Bundle/resource list/NDJSON)."""

    code = "not_fhir"


class NoPatient(CcdaMapperError):
    """The input holds FHIR resources but no usable Patient, and a CCD needs its recordTarget."""

    code = "no_patient"
