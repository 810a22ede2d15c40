"""Running the change detectors of ``fhir_bridge.sources`` inside the sidecar.

Why here: ``sources`` provides the detectors (rest-hook blueprint, SubscriptionManager, Poller); the sidecar
owns their schedule, their persistent state (polling watermarks in the ``source_state`` table) and the
path from a detected change to the pipeline's debounce window. Every detector reports into the sidecar's one
``ChangeFanIn`` (``Sidecar.fan_in``, built by :func:`fhir_bridge.sidecar.build_sidecar` and handed in here as
``on_change``) so a change seen by both the rest-hook and the poller opens one window. Nothing here keeps
state of its own: the services are the ``Sidecar``'s fields.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint
from sqlalchemy import select

from fhir_bridge import audit, wiring
from fhir_bridge.config import Settings
from fhir_bridge.db import Database, SourceState, utcnow
from fhir_bridge.fhir.client import FhirClient
from fhir_bridge.sources.events import ChangeEvent
from fhir_bridge.sources.notifications import notifications_blueprint
from fhir_bridge.sources.polling import Poller
from fhir_bridge.sources.subscription import SubscriptionManager

log = logging.getLogger(__name__)

#: Path of the rest-hook endpoint (HAPI appends ``/{Type}/{id}``).
NOTIFY_PATH = "/fhir-notify"


class DbWatermarkStore:
    """``sources.polling.WatermarkStore`` on the ``source_state`` table (shared by all sidecar processes)."""

    def __init__(self, db: Database):
        self.db = db

    def get(self, source: str, resource_type: str) -> datetime | None:
        with self.db.session() as s:
            value = s.scalar(
                select(SourceState.value).where(
                    SourceState.source == source, SourceState.key == resource_type
                )
            )
        return datetime.fromisoformat(value).astimezone(UTC) if value else None

    def set(self, source: str, resource_type: str, value: datetime) -> None:
        with self.db.session() as s:
            row = s.get(SourceState, (source, resource_type))
            if row is None:
                s.add(
                    SourceState(
                        source=source, key=resource_type, value=value.isoformat(), updated_at=utcnow()
                    )
                )
            else:
                row.value = value.isoformat()
                row.updated_at = utcnow()


def subscription_secret(settings: Settings) -> str:
    """The configured secret, or one derived from ``server.secret_key`` (stable across restarts)."""
    configured = settings.sources_subscription_secret
    if configured:
        return configured
    return hmac.new(settings.server_secret_key.encode(), b"rest-hook", hashlib.sha256).hexdigest()[:40]


def subscription_manager(settings: Settings, client: FhirClient) -> SubscriptionManager:
    """The manager of our rest-hook Subscriptions, pointing HAPI at this sidecar's public notify URL."""
    endpoint = settings.server_public_url.rstrip("/") + NOTIFY_PATH
    return SubscriptionManager(client, endpoint, subscription_secret(settings))


def rest_hook(
    settings: Settings,
    on_change: Callable[[ChangeEvent], None],
    subscriptions: Callable[[], SubscriptionManager],
) -> Blueprint:
    """The rest-hook notification endpoint (mount at :data:`NOTIFY_PATH`). The manager is asked for only
    when a notification without a body needs its patient resolved, so mounting it needs no FHIR client."""

    def resolve(resource_type: str, resource_id: str) -> str | None:
        return subscriptions().resolve_patient(resource_type, resource_id)

    return notifications_blueprint(
        on_change, subscription_secret(settings), resolver=resolve, base_url=settings.fhir_base_url
    )


class _Loop:
    """A daemon thread calling ``step`` every ``interval`` seconds until stopped; failures are logged."""

    def __init__(self, name: str, step: Callable[[], Any], interval: float):
        self.step = step
        self.interval = interval
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> _Loop:
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception as exc:
                log.warning("%s failed: %s", self.thread.name, getattr(exc, "code", type(exc).__name__))
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(10)


def start(
    settings: Settings,
    db: Database,
    fhir: Callable[[], FhirClient],
    on_change: Callable[[ChangeEvent], None],
    subscriptions: Callable[[], SubscriptionManager] | None,
) -> list[_Loop]:
    """Start the configured detectors: Subscription upkeep (re-create if gone or in error) and polling;
    and the AuditEvent mirror when ``fhir.write_audit`` is on."""
    services: list[_Loop] = []
    if subscriptions is not None:
        manager = subscriptions()

        def upkeep() -> None:
            if manager.client.capabilities().has_subscriptions:
                manager.ensure_subscriptions()

        services.append(
            _Loop("bbdirect-subscriptions", upkeep, settings.sources_subscription_recheck).start()
        )
    if settings.sources_polling:
        poller = Poller(
            fhir(),
            DbWatermarkStore(db),
            on_change,
            overlap=timedelta(seconds=settings.sources_poll_overlap),
        )
        services.append(_Loop("bbdirect-poller", poller.poll_once, settings.sources_poll_interval).start())
    if settings.fhir_write_audit:
        writer = wiring.FhirResourceWriter(fhir)
        services.append(_Loop("bbdirect-audit-mirror", lambda: audit.mirror_to_fhir(db, writer), 5.0).start())
    return services
