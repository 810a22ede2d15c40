"""FHIR R4 (US Core) → C-CDA R2.1 Continuity of Care Document.

Pure: resources in, bytes out; no I/O.  ``render_html`` and ``validate`` live in their own modules and are
imported on first use, so this package imports without them (and without their heavier dependencies).
"""

from __future__ import annotations

from typing import Any

from .document import BuildResult, build, build_ccd, clinical_hash
from .errors import CcdaMapperError, NoPatient, NotFhir

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


def __getattr__(name: str) -> Any:
    if name == "render_html":
        from .render import render_html

        return render_html
    if name == "validate":
        from .validate import validate

        return validate
    raise AttributeError(name)
