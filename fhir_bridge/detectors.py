"""Running the change detectors of ``fhir_bridge.sources`` inside the sidecar.

Why here: ``sources`` provides the detectors (rest-hook blueprint, SubscriptionManager, Poller); the sidecar
owns their schedule, their persistent state (polling watermarks in the ``source_state`` table) and the
path from a detected change to the pipeline's debounce window. Every detector reports into one
``ChangeFanIn`` so a change seen by both the rest-hook and the poller opens one window.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from fhir_bridge.db import Database, SourceState, utcnow

if TYPE_CHECKING:
    from fhir_bridge.app import Sidecar

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


def subscription_secret(sidecar: Sidecar) -> str:
    """The configured secret, or one derived from ``server.secret_key`` (stable across restarts)."""
    configured = sidecar.settings.sources_subscription_secret
    if configured:
        return configured
    return hmac.new(sidecar.settings.server_secret_key.encode(), b"rest-hook", hashlib.sha256).hexdigest()[
        :40
    ]


def fan_in(sidecar: Sidecar) -> Callable[[Any], None]:
    from fhir_bridge.sources.dedup import ChangeFanIn

    if not hasattr(sidecar, "_fan_in"):
        sidecar._fan_in = ChangeFanIn(sidecar.pipeline.on_change)  # type: ignore[attr-defined]
    return sidecar._fan_in  # type: ignore[attr-defined]


def register(app: Any, sidecar: Sidecar) -> None:
    """Mount the rest-hook notification endpoint (when subscriptions are on)."""
    if not sidecar.settings.sources_subscriptions:
        return
    from fhir_bridge.sources.subscription import notifications_blueprint

    manager = subscription_manager(sidecar)
    bp = notifications_blueprint(
        fan_in(sidecar),
        subscription_secret(sidecar),
        resolver=manager.resolve_patient,
        base_url=sidecar.settings.fhir_base_url,
    )
    app.register_blueprint(bp, url_prefix=NOTIFY_PATH)


def subscription_manager(sidecar: Sidecar):  # type: ignore[no-untyped-def]
    from fhir_bridge.sources.subscription import SubscriptionManager

    if not hasattr(sidecar, "_subscriptions"):
        endpoint = sidecar.settings.server_public_url.rstrip("/") + NOTIFY_PATH
        sidecar._subscriptions = SubscriptionManager(  # type: ignore[attr-defined]
            sidecar.fhir_client(), endpoint, subscription_secret(sidecar)
        )
    return sidecar._subscriptions  # type: ignore[attr-defined]


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


def start(sidecar: Sidecar) -> list[Any]:
    """Start the configured detectors: Subscription upkeep (re-create if gone or in error) and polling."""
    settings = sidecar.settings
    services: list[Any] = []
    if settings.sources_subscriptions:
        manager = subscription_manager(sidecar)

        def upkeep() -> None:
            if manager.client.capabilities().has_subscriptions:
                manager.ensure_subscriptions()

        services.append(
            _Loop("bbdirect-subscriptions", upkeep, settings.sources_subscription_recheck).start()
        )
    if settings.sources_polling:
        from fhir_bridge.sources.polling import Poller

        poller = Poller(
            sidecar.fhir_client(),
            DbWatermarkStore(sidecar.db),
            fan_in(sidecar),
            overlap=timedelta(seconds=settings.sources_poll_overlap),
        )
        services.append(_Loop("bbdirect-poller", poller.poll_once, settings.sources_poll_interval).start())
    if settings.fhir_write_audit:
        from fhir_bridge import audit, wiring

        writer = wiring.FhirResourceWriter(sidecar.fhir_client)
        services.append(
            _Loop("bbdirect-audit-mirror", lambda: audit.mirror_to_fhir(sidecar.db, writer), 5.0).start()
        )
    return services
