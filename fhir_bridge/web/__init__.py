"""The sidecar's web pages: SMART on FHIR sign-in, the patient's and the clinician's sharing flows.

``create_app`` calls :func:`register` with the ``[web]`` settings and the sidecar's ``sharing`` service.
Everything browser-facing lives here: server-side sessions, CSRF, the Content-Security-Policy, templates and
static files. The pages reach the consent service only through
:class:`fhir_bridge.web.sharing.SharingService` (``app.extensions["bbdirect.sharing"]``, set here).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, redirect, request, session, url_for
from werkzeug.exceptions import HTTPException

from fhir_bridge.config import Settings
from fhir_bridge.db import Database
from fhir_bridge.web import clinician, common, patient, security, smart
from fhir_bridge.web.config import WebConfig
from fhir_bridge.web.session_backends import MemoryBackend, SessionBackend, SqlBackend
from fhir_bridge.web.session_store import ServerSessionInterface
from fhir_bridge.web.sharing import SharingService

_HERE = Path(__file__).parent
_BLUEPRINTS = (smart.bp, patient.bp, clinician.bp, common.bp)
_NAMES = {bp.name for bp in _BLUEPRINTS} | {"web_static"}


def _session_backend(config: WebConfig, db: Database | None) -> SessionBackend:
    """The sidecar's database when there is one (sessions shared by every process), else this process."""
    if config.session_store == "database" and db is not None:
        return SqlBackend(db.engine)
    return MemoryBackend()


def load_config(settings: Settings) -> WebConfig:
    """The ``[web]`` section of the settings; ``web.public_url`` defaults to ``server.public_url``."""
    section = settings.section("web")
    return WebConfig.load(section, public_url=section.get("public_url", "") or settings.server_public_url)


def register(app: Flask, config: WebConfig, sharing: SharingService, db: Database | None = None) -> None:
    """Attach the pages to the sidecar's Flask app: ``sharing`` is the consent service as the pages see it
    (``Sidecar.sharing``); sessions live in ``db`` when ``web.session_store`` is ``database`` and there is
    one, else in this process."""
    app.extensions["bbdirect.sharing"] = sharing
    app.extensions["bbdirect.web.config"] = config
    app.session_interface = ServerSessionInterface(
        config.session_idle_minutes, config.session_max_hours, _session_backend(config, db)
    )
    app.config.update(
        SESSION_COOKIE_NAME="bbd_session",
        SESSION_COOKIE_SECURE=config.cookie_secure,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE=config.cookie_samesite,
    )
    app.jinja_env.autoescape = True
    static = Blueprint(
        "web_static",
        __name__,
        static_folder=str(_HERE / "static"),
        static_url_path="/static/web",
        template_folder=str(_HERE / "templates"),
    )
    app.register_blueprint(static)
    for bp in _BLUEPRINTS:
        app.register_blueprint(bp)

    @app.before_request
    def _csrf() -> None:
        if request.blueprint in _NAMES and request.blueprint != "web_smart":
            security.check_csrf()
        elif request.endpoint == "web_smart.logout":
            security.check_csrf()

    @app.after_request
    def _headers(response: Any) -> Any:
        if request.blueprint in _NAMES:
            preview = request.endpoint == "web_patient.preview_document"
            security.secure_headers(response, config.frame_ancestors, preview=preview)
        return response

    @app.context_processor
    def _template_globals() -> dict[str, Any]:
        if request.blueprint not in _NAMES:
            return {}
        return {"csrf_token": security.csrf_token, "signed_in": session.get("smart")}


def _http_error(exc: HTTPException) -> Any:
    """Errors inside the pages become plain-language pages (not JSON, not a stack trace)."""
    if exc.code == 401:
        if getattr(session, "expired", False) or exc.description == "expired":
            return smart.error_page("expired", 401)
        return redirect(url_for("web_patient.landing"))
    if exc.code == 400 and exc.description == "csrf":
        return smart.error_page("csrf", 400)
    if exc.code == 403:
        return smart.error_page("forbidden", 403)
    if exc.code == 404:
        return smart.error_page("not_found", 404)
    return exc


# Set up once at import: a blueprint cannot change after its first registration, and several apps may use it.
for _bp in _BLUEPRINTS:
    _bp.register_error_handler(HTTPException, _http_error)
