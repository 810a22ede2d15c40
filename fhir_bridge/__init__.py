"""The Blue Button Direct sidecar.

It watches a FHIR R4 server for changes to a patient's record and, for every active authorization of that
patient, builds a C-CDA (``ccda_mapper``) and sends it over Direct (``direct``), tracking delivery to the MDN.

Sub-packages: ``config`` (one settings object), ``db`` (SQLAlchemy models + Alembic migrations), ``consent``
(authorizations), ``pipeline`` (durable jobs, debounce, workers), ``api`` (REST + OpenAPI), ``fhir`` (client),
``sources`` (change detection), ``web`` (SMART pages). ``app.create_app(settings)`` wires them together.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
