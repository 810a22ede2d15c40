"""``build_sidecar(settings)``: every long-lived service of the sidecar, built once, as typed fields.

Why one builder: the REST API, the web pages, the change detectors, the inbound notice endpoint and the
workers share one database, one pipeline, one consent service, one Direct agent and one change fan-in. They
are all constructed here, in one readable order, and handed to their users explicitly; nothing is attached
later or looked up by name. ``create_app`` (``fhir_bridge.app``) mounts the HTTP side on a ``Sidecar``;
``Sidecar.start`` runs the background side (what ``bbdirect serve`` does); ``bbdirect worker`` uses only
the pipeline.

Tests and the benchmark may hand in other ports (``builder``, ``sender``, ``checker``, ``fhir_writer``,
``queue``); by default the real FHIR client, ``ccda_mapper`` and ``direct`` are used (``fhir_bridge.wiring``).
Whatever needs the FHIR server or the Direct identity files is built on first use (:class:`Lazy`), so the
API starts (and answers ``/healthz``) while the FHIR server is down or the keys are not provisioned yet.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from direct.agent import DirectAgent
from direct.discovery.resolver import CertificateResolver
from direct.smime.identity import load_certificate_files
from fhir_bridge import detectors, inbound, wiring
from fhir_bridge.api.auth import KeyRing, PatientTokens
from fhir_bridge.config import Settings
from fhir_bridge.consent.service import ConsentService
from fhir_bridge.consent.sharing import ConsentSharing
from fhir_bridge.db import Database
from fhir_bridge.fhir.client import FhirClient
from fhir_bridge.inbound import NoticeHandler
from fhir_bridge.lazy import Lazy
from fhir_bridge.pipeline.ports import AddressChecker, DocumentBuilder, FhirWriter, Sender
from fhir_bridge.pipeline.runner import LocalRunner
from fhir_bridge.pipeline.service import Pipeline, Queue
from fhir_bridge.sources.dedup import ChangeFanIn
from fhir_bridge.sources.subscription import SubscriptionManager

log = logging.getLogger(__name__)


class Stoppable(Protocol):
    """A running background service (worker threads, detector loops, the inbound SMTP endpoint)."""

    def stop(self) -> None: ...


@dataclass
class Sidecar:
    settings: Settings
    db: Database
    #: The FHIR client of the detectors and the AuditEvent mirror. (The document builder and the Consent
    #: writer keep their own clients: they run on the worker and request threads.)
    fhir: Lazy[FhirClient]
    #: The pipeline's Sender: ``wiring.DirectSender`` unless a test or the benchmark handed in another.
    sender: Sender
    #: The one Direct agent: the real sender's (it seals what is sent), which also reads delivery notices.
    agent: Lazy[DirectAgent]
    pipeline: Pipeline
    consent: ConsentService
    #: The consent service as the web pages see it (``fhir_bridge.web.sharing.SharingService``).
    sharing: ConsentSharing
    #: Every detector reports here; a change seen by two detectors reaches the pipeline once.
    fan_in: ChangeFanIn
    #: Our rest-hook Subscriptions on the FHIR server; None when ``sources.subscriptions`` is off.
    subscriptions: Lazy[SubscriptionManager] | None
    #: What the inbound SMTP endpoint does with a delivery notice (``direct.inbound_port``).
    notices: NoticeHandler
    keys: KeyRing
    tokens: PatientTokens
    #: Background services started by :meth:`start` (local workers, detector loops, inbound endpoint).
    background: list[Stoppable] = field(default_factory=list)

    def start(self, workers: int | None = None) -> None:
        """Start the embedded background work: local worker threads (local queue), change detectors and
        the inbound notice endpoint."""
        settings = self.settings
        count = settings.pipeline_workers if workers is None else workers
        if count > 0 and settings.queue_backend == "local":
            self.background.append(
                LocalRunner(self.pipeline, threads=count, tick=settings.pipeline_tick_seconds).start()
            )
        self.background.extend(detectors.start(settings, self.db, self.fhir, self.fan_in, self.subscriptions))
        endpoint = inbound.start_endpoint(settings, self.notices)
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
    """Construct every long-lived service (nothing starts: see :meth:`Sidecar.start`)."""
    db = Database(settings.database_url)
    if settings.database_auto_upgrade:
        db.upgrade()

    def client() -> FhirClient:
        return wiring.fhir_client(settings)

    def resolver() -> CertificateResolver:
        return wiring.discovery_resolver(settings)

    fhir = Lazy(client)
    builder = builder or wiring.RecordBuilder(client, settings.direct_from_address)
    sender = sender or wiring.DirectSender(settings, resolver)
    checker = checker or wiring.DiscoveryChecker(resolver)
    if fhir_writer is None and settings.fhir_write_consent:
        fhir_writer = wiring.FhirResourceWriter(client)
    if queue is None and settings.queue_backend == "procrastinate":
        # Deferred: procrastinate and psycopg are needed only on PostgreSQL.
        from fhir_bridge.pipeline.pgqueue import ProcrastinateQueue

        queue = ProcrastinateQueue(settings)
    pipeline = Pipeline(db, settings, builder, sender, queue=queue)
    consent = ConsentService(db, pipeline, checker, fhir_writer=fhir_writer)
    agent = Lazy(_direct_agent(settings, sender))
    subscriptions = (
        Lazy(lambda: detectors.subscription_manager(settings, fhir()))
        if settings.sources_subscriptions
        else None
    )
    return Sidecar(
        settings=settings,
        db=db,
        fhir=fhir,
        sender=sender,
        agent=agent,
        pipeline=pipeline,
        consent=consent,
        sharing=ConsentSharing(consent),
        fan_in=ChangeFanIn(pipeline.on_change),
        subscriptions=subscriptions,
        notices=NoticeHandler(db, pipeline, agent),
        keys=KeyRing(settings.server_api_keys),
        tokens=PatientTokens(settings.server_secret_key, settings.server_patient_token_ttl),
    )


def _direct_agent(settings: Settings, sender: Sender) -> Callable[[], DirectAgent]:
    """The one Direct agent: the real sender's, so one policy (signer bound to the From address, discovery
    under the authorization's trust policy, the notice rules) applies to both directions; with a sender
    handed in by a test, an agent of our identity and anchors that only reads notices."""
    if isinstance(sender, wiring.DirectSender):
        direct_sender = sender

        def shared() -> DirectAgent:
            agent = direct_sender.agent
            agent.dsn_relays = list(settings.direct_dsn_relays)
            return agent

        return shared

    def notices_only() -> DirectAgent:
        identity = wiring.load_identity(settings)
        anchors = load_certificate_files([p for p in settings.direct_trust_anchors if os.path.exists(p)])
        return DirectAgent([identity], anchors, dsn_relays=settings.direct_dsn_relays)

    return notices_only
