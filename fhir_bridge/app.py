"""``create_app(settings)``: the Flask application of the sidecar, mounted on a ``Sidecar``.

Why this is short: every service is built by :func:`fhir_bridge.sidecar.build_sidecar`; this module only
registers the HTTP side of them — the REST API, the ops endpoints, the JWKS, the web pages and the rest-hook
endpoint of the change detectors — and puts the ``Sidecar`` in ``app.extensions["bbdirect"]`` where the
routes find it. ``Sidecar`` and ``build_sidecar`` are re-exported for the callers that import them from here.
"""

from __future__ import annotations

from flask import Flask
from prometheus_client import CollectorRegistry

from fhir_bridge.api.jwks import jwks
from fhir_bridge.api.metrics import PipelineCollector
from fhir_bridge.api.routes import api, ops
from fhir_bridge.config import Settings, load_settings
from fhir_bridge.detectors import NOTIFY_PATH, rest_hook
from fhir_bridge.pipeline.ports import AddressChecker, DocumentBuilder, FhirWriter, Sender
from fhir_bridge.pipeline.service import Queue
from fhir_bridge.sidecar import Sidecar, build_sidecar
from fhir_bridge.web import load_config as load_web_config
from fhir_bridge.web import register as register_pages

__all__ = ["Sidecar", "build_sidecar", "create_app"]


def create_app(
    settings: Settings | None = None,
    *,
    sidecar: Sidecar | None = None,
    web: bool = True,
    detectors: bool = True,
    builder: DocumentBuilder | None = None,
    sender: Sender | None = None,
    checker: AddressChecker | None = None,
    fhir_writer: FhirWriter | None = None,
    queue: Queue | None = None,
) -> Flask:
    """The WSGI application. Background work is started separately (``app.extensions["bbdirect"].start()``,
    done by ``bbdirect serve``) so importing or testing the app never spawns threads by surprise.

    ``web=False`` leaves out the SMART pages and ``detectors=False`` the rest-hook endpoint: the bare REST
    API that the API tests use. The ports go to :func:`build_sidecar` when no ``sidecar`` is given.
    """
    if sidecar is None:
        sidecar = build_sidecar(
            settings or load_settings(),
            builder=builder,
            sender=sender,
            checker=checker,
            fhir_writer=fhir_writer,
            queue=queue,
        )
    settings = sidecar.settings
    app = Flask("fhir_bridge")
    app.config["SECRET_KEY"] = settings.server_secret_key
    app.config["MAX_CONTENT_LENGTH"] = 2 * 2**20
    app.json.sort_keys = False  # type: ignore[attr-defined]  # DefaultJSONProvider's attribute
    app.extensions["bbdirect"] = sidecar
    registry = CollectorRegistry()
    registry.register(PipelineCollector(sidecar.db))
    app.extensions["bbdirect.metrics"] = registry

    app.register_blueprint(api, url_prefix="/api/v1")
    app.register_blueprint(ops)
    app.register_blueprint(jwks)  # public key set of the SMART backend client (no authentication)
    if web:
        register_pages(app, load_web_config(settings), sidecar.sharing, sidecar.db)
    if detectors and sidecar.subscriptions is not None:
        hook = rest_hook(settings, sidecar.fan_in, sidecar.subscriptions)
        app.register_blueprint(hook, url_prefix=NOTIFY_PATH)
    return app
