"""``create_app(settings)``: the Flask application of the sidecar, wired to the real pieces.

Why a ``Sidecar`` object: the REST API, the web pages, the change detectors and the workers share one
database, one pipeline and one consent service; they find them in ``app.extensions["bbdirect"]``.
Tests and the benchmark may hand in other ports (``builder``, ``sender``, ``checker``) — by default the
real FHIR client, ``ccda_mapper`` and ``direct`` are used.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from prometheus_client import CollectorRegistry

from fhir_bridge import wiring
from fhir_bridge.api.auth import KeyRing, PatientTokens
from fhir_bridge.api.metrics import PipelineCollector
from fhir_bridge.config import Settings, load_settings
from fhir_bridge.consent.service import ConsentService
from fhir_bridge.db import Database
from fhir_bridge.pipeline.ports import AddressChecker, DocumentBuilder, FhirWriter, Sender
from fhir_bridge.pipeline.service import Pipeline, Queue

log = logging.getLogger(__name__)


@dataclass
class Sidecar:
    settings: Settings
    db: Database
    pipeline: Pipeline
    consent: ConsentService
    keys: KeyRing
    tokens: PatientTokens
    #: Background services started by :meth:`start` (local workers, pollers, subscription manager).
    background: list[Any] = field(default_factory=list)
    _client: Any = None

    def fhir_client(self):  # type: ignore[no-untyped-def]
        """The shared FHIR client (built on first use, so the API starts while the FHIR server is down)."""
        if self._client is None:
            self._client = wiring.fhir_client(self.settings)
        return self._client

    def start(self, workers: int | None = None) -> None:
        """Start the embedded background work: local worker threads (local queue) and change detectors."""
        from fhir_bridge.pipeline.runner import LocalRunner

        count = self.settings.pipeline_workers if workers is None else workers
        if count > 0 and self.settings.queue_backend == "local":
            self.background.append(
                LocalRunner(self.pipeline, threads=count, tick=self.settings.pipeline_tick_seconds).start()
            )
        from fhir_bridge import detectors

        self.background.extend(detectors.start(self))
        from fhir_bridge.inbound import start_endpoint

        endpoint = start_endpoint(self)
        if endpoint is not None:
            self.background.append(endpoint)

    def stop(self) -> None:
        for service in reversed(self.background):
            try:
                service.stop()
            except Exception:
                log.exception("stopping %s failed", type(service).__name__)
        self.background.clear()


def build_sidecar(
    settings: Settings,
    *,
    builder: DocumentBuilder | None = None,
    sender: Sender | None = None,
    checker: AddressChecker | None = None,
    fhir_writer: FhirWriter | None = None,
    queue: Queue | None = None,
) -> Sidecar:
    db = Database(settings.database_url)
    if settings.database_auto_upgrade:
        db.upgrade()

    def client():  # type: ignore[no-untyped-def]
        return wiring.fhir_client(settings)

    def resolver():  # type: ignore[no-untyped-def]
        return wiring.discovery_resolver(settings)

    builder = builder or wiring.RecordBuilder(client, settings.direct_from_address)
    sender = sender or wiring.DirectSender(settings, resolver)
    checker = checker or wiring.DiscoveryChecker(resolver)
    if fhir_writer is None and settings.fhir_write_consent:
        fhir_writer = wiring.FhirResourceWriter(client)
    if queue is None and settings.queue_backend == "procrastinate":
        from fhir_bridge.pipeline.pgqueue import ProcrastinateQueue

        queue = ProcrastinateQueue(settings)
    pipeline = Pipeline(db, settings, builder, sender, queue=queue)
    consent = ConsentService(db, pipeline, checker, fhir_writer=fhir_writer)
    return Sidecar(
        settings=settings,
        db=db,
        pipeline=pipeline,
        consent=consent,
        keys=KeyRing(settings.server_api_keys),
        tokens=PatientTokens(settings.server_secret_key, settings.server_patient_token_ttl),
    )


#: Parts owned by other modules that plug into the app with ``register(app)`` when present.
PLUGINS = ("fhir_bridge.web", "fhir_bridge.detectors")


def create_app(
    settings: Settings | None = None,
    *,
    sidecar: Sidecar | None = None,
    plugins: tuple[str, ...] = PLUGINS,
    **ports: Any,
) -> Flask:
    """The WSGI application. Background work is started separately (``app.extensions["bbdirect"].start()``,
    done by ``bbdirect serve``) so importing or testing the app never spawns threads by surprise.
    ``plugins=()`` gives the bare REST API (the API tests use it).
    """
    settings = settings or (sidecar.settings if sidecar else load_settings())
    sidecar = sidecar or build_sidecar(settings, **ports)
    app = Flask("fhir_bridge")
    app.config["SECRET_KEY"] = settings.server_secret_key
    app.config["MAX_CONTENT_LENGTH"] = 2 * 2**20
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["bbdirect"] = sidecar
    registry = CollectorRegistry()
    registry.register(PipelineCollector(sidecar.db))
    app.extensions["bbdirect.metrics"] = registry
    from fhir_bridge.consent.sharing import ConsentSharing

    #: The web pages' view of the consent service (``fhir_bridge.web.sharing.SharingService``).
    app.extensions["bbdirect.sharing"] = ConsentSharing(sidecar.consent)

    from fhir_bridge.api.routes import api, ops

    app.register_blueprint(api, url_prefix="/api/v1")
    app.register_blueprint(ops)
    from fhir_bridge.api.jwks import jwks

    app.register_blueprint(jwks)  # public key set of the SMART backend client (no authentication)
    for module_name in plugins:
        _register_optional(app, module_name)
    return app


def _register_optional(app: Flask, module_name: str) -> None:
    """Parts built by other modules plug in with ``register(app)`` when they are installed."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            return
        raise
    register = getattr(module, "register", None)
    if register is None:
        return
    import inspect

    if len(inspect.signature(register).parameters) > 1:
        register(app, app.extensions["bbdirect"])
    else:
        register(app)
