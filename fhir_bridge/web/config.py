"""Settings of the web pages: the ``[web]`` section of the sidecar's config file (``BBDIRECT_WEB_*`` env).

Why a section of its own: ``fhir_bridge.config.Settings`` keeps sections it does not own in ``extra`` for
their owners; these are the SMART client registration and the browser-facing security knobs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any

from fhir_bridge.fhir.scopes import BACKEND_RESOURCES

#: Resources the CCD is built from (US Core), each requested as its own scope: OpenEMR refuses wildcards. One
#: list for the web pages' user/patient scopes and the sidecar's system scopes (fhir_bridge.fhir.scopes).
CCD_RESOURCES = BACKEND_RESOURCES


@dataclass
class WebConfig:
    #: Client id registered with the EHR's authorization server.
    smart_client_id: str = "bbdirect"
    #: Confidential client secret (empty = public client; PKCE protects the code either way).
    smart_client_secret: str = ""
    #: Client for the standalone patient launch, when the EHR registers patients' apps apart (OpenEMR
    #: registers a user-role client for EHR launch and a patient-role client for the portal). Empty = the
    #: same client as the EHR launch.
    smart_patient_client_id: str = ""
    #: Secret of the patient client (empty = public client). Used only with ``smart_patient_client_id``.
    smart_patient_client_secret: str = ""
    #: FHIR base the standalone patient launch signs in to (the patient portal's FHIR server).
    smart_iss: str = ""
    #: Other FHIR bases allowed as ``iss`` of an EHR launch (the configured one always is).
    smart_allowed_iss: list[str] = field(default_factory=list)
    #: "v1" scopes (``patient/Observation.read``, OpenEMR 7) or "v2" (``patient/Observation.rs``).
    smart_scope_style: str = "v1"
    #: Minutes without a request before the session ends.
    session_idle_minutes: float = 15.0
    #: Hours after sign-in when the session ends regardless.
    session_max_hours: float = 8.0
    #: Where sessions live: "database" (the sidecar's, shared by all its processes) or "memory" (one process).
    session_store: str = "database"
    #: Send the session cookie only over HTTPS (turn off only for plain-HTTP development).
    cookie_secure: bool = True
    #: SameSite of the session cookie: Lax survives the OAuth redirect; None is needed inside an EHR iframe.
    cookie_samesite: str = "Lax"
    #: Origins allowed to frame the pages (the EHR), for CSP ``frame-ancestors``.
    frame_ancestors: list[str] = field(default_factory=list)
    #: Public base URL of the sidecar (for the SMART redirect URI); the request's host when empty.
    public_url: str = ""

    @classmethod
    def load(cls, section: dict[str, Any], public_url: str = "") -> WebConfig:
        """From the ``[web]`` section, each key overridable by ``BBDIRECT_WEB_<KEY>``."""
        values: dict[str, Any] = {"public_url": public_url}
        for f in fields(cls):
            raw = os.environ.get(f"BBDIRECT_WEB_{f.name.upper()}", section.get(f.name))
            if raw is None:
                continue
            default = getattr(cls(), f.name)
            if isinstance(default, bool):
                values[f.name] = (
                    raw if isinstance(raw, bool) else str(raw).lower() in {"1", "true", "yes", "on"}
                )
            elif isinstance(default, list):
                values[f.name] = (
                    raw if isinstance(raw, list) else [x.strip() for x in str(raw).split(",") if x]
                )
            elif isinstance(default, int | float):
                values[f.name] = float(raw)
            else:
                values[f.name] = str(raw)
        config = cls(**values)
        if config.session_store not in {"database", "memory"}:
            raise ValueError("web.session_store must be database or memory")
        if config.cookie_samesite not in {"Lax", "Strict", "None"}:
            raise ValueError("web.cookie_samesite must be Lax, Strict or None")
        return config

    def client_for(self, flow: str) -> tuple[str, str]:
        """(client_id, secret) for a launch: ``standalone`` uses the patient client when one is configured."""
        if flow == "standalone" and self.smart_patient_client_id:
            return self.smart_patient_client_id, self.smart_patient_client_secret
        return self.smart_client_id, self.smart_client_secret

    def issuers(self) -> set[str]:
        return {i.rstrip("/") for i in [self.smart_iss, *self.smart_allowed_iss] if i}

    def scopes(self, role: str) -> str:
        """Per-resource read scopes (SMART App Launch 2.x §Scopes), never ``*``."""
        level = "patient" if role == "patient" else "user"
        perm = "rs" if self.smart_scope_style == "v2" else "read"
        context = ["launch/patient"] if role == "patient" else ["launch"]
        return " ".join([*context, "openid", "fhirUser", *(f"{level}/{r}.{perm}" for r in CCD_RESOURCES)])
