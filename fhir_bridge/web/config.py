"""Settings of the web pages: the ``[web]`` section of the sidecar's config file (``BBDIRECT_WEB_*`` env).

Why a section of its own: ``fhir_bridge.config.Settings`` keeps sections it does not own in ``extra`` for
their owners; these are the SMART client registration and the browser-facing security knobs. This module only
*declares* the section: ``fhir_bridge.config.load_section`` loads it exactly as it loads every other section
(same precedence, same conversions, same ``ConfigError``).
"""

# ruff: noqa: RUF009  (`setting` is `dataclasses.field` with documentation metadata)
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from fhir_bridge.config import Bool, ConfigError, Float, Str, StrList, load_section, setting
from fhir_bridge.fhir.scopes import BACKEND_RESOURCES

#: Resources the CCD is built from (US Core), each requested as its own scope: OpenEMR refuses wildcards. One
#: list for the web pages' user/patient scopes and the sidecar's system scopes (fhir_bridge.fhir.scopes).
CCD_RESOURCES = BACKEND_RESOURCES


@dataclass
class WebConfig:
    SECTION: ClassVar[str] = "web"

    smart_client_id: Str = setting(
        "Client id registered with the EHR's authorization server.", default="bbdirect"
    )
    smart_client_secret: Str = setting(
        "Confidential client secret (empty = public client; PKCE protects the code either way).",
        default="",
        secret=True,
    )
    smart_patient_client_id: Str = setting(
        "Client for the standalone patient launch, when the EHR registers patients' apps apart (OpenEMR "
        "registers a user-role client for EHR launch and a patient-role client for the portal). Empty = the "
        "same client as the EHR launch.",
        default="",
    )
    smart_patient_client_secret: Str = setting(
        "Secret of the patient client (empty = public client). Used only with `smart_patient_client_id`.",
        default="",
        secret=True,
    )
    smart_iss: Str = setting(
        "FHIR base the standalone patient launch signs in to (the patient portal's FHIR server).", default=""
    )
    smart_allowed_iss: StrList = setting(
        "Other FHIR bases allowed as `iss` of an EHR launch (the configured one always is).",
        default_factory=list,
    )
    smart_scope_style: Str = setting(
        '"v1" scopes (`patient/Observation.read`, OpenEMR 7) or "v2" (`patient/Observation.rs`).',
        default="v1",
    )
    session_idle_minutes: Float = setting("Minutes without a request before the session ends.", default=15.0)
    session_max_hours: Float = setting("Hours after sign-in when the session ends regardless.", default=8.0)
    session_store: Str = setting(
        'Where sessions live: "database" (the sidecar\'s, shared by all its processes) or "memory" (one '
        "process).",
        default="database",
    )
    cookie_secure: Bool = setting(
        "Send the session cookie only over HTTPS (turn off only for plain-HTTP development).", default=True
    )
    cookie_samesite: Str = setting(
        "SameSite of the session cookie: Lax survives the OAuth redirect; None is needed inside an EHR "
        "iframe.",
        default="Lax",
    )
    frame_ancestors: StrList = setting(
        "Origins allowed to frame the pages (the EHR), for CSP `frame-ancestors`.", default_factory=list
    )
    public_url: Str = setting(
        "Public base URL of the sidecar (for the SMART redirect URI); `server.public_url` when empty.",
        default="",
    )

    @classmethod
    def load(
        cls, section: Mapping[str, Any], public_url: str = "", env: Mapping[str, str] | None = None
    ) -> WebConfig:
        """From the ``[web]`` section, each key overridable by ``BBDIRECT_WEB_<KEY>`` (``env``, default the
        process environment); ``public_url`` is the default of ``web.public_url`` (the server's)."""
        config = load_section(
            cls,
            {cls.SECTION: section},
            os.environ if env is None else env,
            source="the [web] section",
            defaults={"public_url": public_url},
        )
        config.validate()
        return config

    def validate(self) -> None:
        """Reject values that cannot work (``ConfigError`` is a ``ValueError``, as this raised before)."""
        if self.session_store not in {"database", "memory"}:
            raise ConfigError("web.session_store must be database or memory")
        if self.cookie_samesite not in {"Lax", "Strict", "None"}:
            raise ConfigError("web.cookie_samesite must be Lax, Strict or None")

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
