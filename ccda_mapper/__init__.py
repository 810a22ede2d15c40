"""FHIR R4 (US Core) → C-CDA R2.1 Continuity of Care Document.

Pure: resources in, bytes out; no I/O.  :func:`render_html` and :func:`validate` are plain functions whose
modules (:mod:`.render`, :mod:`.validation`) are imported on first call, so this package imports without
them and without lxml (``bbdirect ccda`` builds a document faster that way).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .document import BuildResult, build, build_ccd, clinical_hash
from .errors import CcdaMapperError, NoPatient, NotFhir

if TYPE_CHECKING:
    from .validation import ValidationReport

__all__ = [
    "BuildResult",
    "CcdaMapperError",
    "NoPatient",
    "NotFhir",
    "build",
    "build_ccd",
    "clinical_hash",
    "render_html",
    "validate",
]


def render_html(xml: bytes) -> str:
    """Render a C-CDA document as a self-contained, script-free, accessible HTML page
    (:func:`ccda_mapper.render.render_html`)."""
    from .render import render_html as render

    return render(xml)


def validate(xml: bytes) -> ValidationReport:
    """Validate one C-CDA document against the CDA SDTC XSD and the HL7 C-CDA R2.1 Schematron
    (:func:`ccda_mapper.validation.validate`; the validator is built on first use and shared)."""
    from .validation import validate as check

    return check(xml)
