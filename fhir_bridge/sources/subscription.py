"""R4 rest-hook Subscriptions that the sidecar creates and owns on the FHIR server.

Why the sidecar owns them: a Subscription that an administrator created by hand drifts (wrong endpoint, old
secret, switched off) and nobody notices until a patient's update is not sent. The sidecar therefore declares
the Subscriptions it needs (one per watched resource type, ``criteria = "<Type>?"``: R4 criteria name a single
type), tags them as its own, and ``ensure_subscriptions()`` re-creates any that disappeared, went to ``error``
or ``off``, or no longer match the endpoint or secret. Subscriptions it does not own are never touched.

Delivery (HAPI): with ``payload = application/fhir+json`` HAPI sends ``PUT {endpoint}/{Type}/{id}`` with the
resource; deletions come as ``DELETE {endpoint}/{Type}/{id}`` because we ask for them with HAPI's
``subscription-send-delete-messages`` extension. The notification endpoint itself is the Flask blueprint in
``notifications`` (which imports this module's ``SECRET_HEADER``; Flask stays out of this module).

The shared secret travels in ``channel.header`` (R4 Subscription.channel.header): whoever can read
Subscriptions on the FHIR server can read it, so use a random secret dedicated to this purpose.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fhir_bridge.fhir import shapes
from fhir_bridge.fhir.client import FhirClient
from fhir_bridge.fhir.errors import FhirNotFound, FhirUnsupported
from fhir_bridge.sources.compartment import PATIENT_PATHS, patient_of

log = logging.getLogger(__name__)

#: meta.tag system marking the Subscriptions this sidecar owns (code = the owner name).
OWNER_TAG_SYSTEM = "urn:bbdirect:subscription-owner"
#: Header HAPI sends back with every notification (value = the shared secret).
SECRET_HEADER = "X-BBDirect-Secret"  # noqa: S105 (a header name, not a secret)
#: HAPI extension (on Subscription.channel) asking for DELETE notifications.
SEND_DELETES_EXT = "http://hapifhir.io/fhir/StructureDefinition/subscription-send-delete-messages"
REASON = "Blue Button Direct: send the patient's record when it changes"
#: Subscription states in which HAPI delivers, or will once it has activated the Subscription.
LIVE_STATUSES = {"requested", "active"}

#: Types the sidecar itself writes (authorizations mirrored as Consent, sends as AuditEvent): watching them
#: would make every write of ours report a change of the patient's record.
OWN_WRITES = frozenset({"Consent", "AuditEvent"})
#: What we watch by default: the patient and every type whose changes can alter the C-CDA.
DEFAULT_RESOURCE_TYPES: tuple[str, ...] = ("Patient", *sorted(set(PATIENT_PATHS) - OWN_WRITES))


@dataclass
class EnsureReport:
    """What ``ensure_subscriptions`` did, by resource type."""

    created: list[str] = field(default_factory=list)
    recreated: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


class SubscriptionManager:
    """Declares, checks and repairs our rest-hook Subscriptions on one FHIR server.

    ``endpoint`` is the public URL of our notification blueprint (HAPI appends ``/{Type}/{id}``). ``owner``
    distinguishes several sidecars sharing one FHIR server.
    """

    def __init__(
        self,
        client: FhirClient,
        endpoint: str,
        secret: str,
        *,
        owner: str = "bbdirect",
        resource_types: Iterable[str] | None = None,
    ):
        if not secret or any(c in secret for c in "\r\n:"):
            raise ValueError("subscription secret must be a non-empty single token")
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError("notification endpoint must be an absolute http(s) URL")
        if not shapes.ID_RE.match(owner):
            raise ValueError("owner must be a FHIR id-like token")
        self.client = client
        self.endpoint = endpoint.rstrip("/")
        self.secret = secret
        self.owner = owner
        self._requested_types = tuple(resource_types) if resource_types else DEFAULT_RESOURCE_TYPES

    # --- declaration -----------------------------------------------------------------------------------
    def resource_types(self) -> list[str]:
        """The requested types that the server actually has."""
        caps = self.client.capabilities()
        return [t for t in self._requested_types if caps.supports(t)]

    def desired(self, resource_type: str) -> dict[str, Any]:
        """The Subscription we want for one resource type (pure)."""
        return {
            "resourceType": "Subscription",
            "meta": {"tag": [{"system": OWNER_TAG_SYSTEM, "code": self.owner}]},
            "status": "requested",
            "reason": REASON,
            "criteria": f"{resource_type}?",
            "channel": {
                "extension": [{"url": SEND_DELETES_EXT, "valueBoolean": True}],
                "type": "rest-hook",
                "endpoint": self.endpoint,
                "payload": "application/fhir+json",
                "header": [f"{SECRET_HEADER}: {self.secret}"],
            },
        }

    def matches(self, existing: dict[str, Any], resource_type: str) -> bool:
        """An existing Subscription still does our job for ``resource_type`` (pure)."""
        channel: dict[str, Any] = existing["channel"] if isinstance(existing.get("channel"), dict) else {}
        headers: list[Any] = channel["header"] if isinstance(channel.get("header"), list) else []
        return (
            existing.get("status") in LIVE_STATUSES
            and existing.get("criteria") == f"{resource_type}?"
            and channel.get("type") == "rest-hook"
            and str(channel.get("endpoint", "")).rstrip("/") == self.endpoint
            and channel.get("payload") == "application/fhir+json"
            and f"{SECRET_HEADER}: {self.secret}" in headers
        )

    # --- server side -----------------------------------------------------------------------------------
    def owned(self) -> list[dict[str, Any]]:
        """Our Subscriptions currently on the server (any status)."""
        found = self.client.search(
            "Subscription", {"_tag": f"{OWNER_TAG_SYSTEM}|{self.owner}", "_count": 200}
        )
        return [s for s in found if s.get("resourceType") == "Subscription" and _owned_by(s, self.owner)]

    def ensure_subscriptions(self) -> EnsureReport:
        """Make the server hold exactly one live, correct Subscription per watched type (idempotent)."""
        caps = self.client.capabilities()
        if not caps.has_subscriptions:
            raise FhirUnsupported("this FHIR server does not accept Subscriptions")
        report = EnsureReport()
        wanted = self.resource_types()
        by_type: dict[str, list[dict[str, Any]]] = {}
        for sub in self.owned():
            criteria = str(sub.get("criteria", ""))
            by_type.setdefault(criteria[:-1] if criteria.endswith("?") else criteria, []).append(sub)
        for rtype in wanted:
            existing = by_type.pop(rtype, [])
            good = [s for s in existing if self.matches(s, rtype)]
            for stale in existing:
                if not good or stale is not good[0]:
                    self.client.delete("Subscription", stale["id"])
            if good:
                report.kept.append(rtype)
            else:
                self.client.create(self.desired(rtype))
                (report.recreated if existing else report.created).append(rtype)
        for rtype, leftovers in by_type.items():  # types no longer watched
            for sub in leftovers:
                self.client.delete("Subscription", sub["id"])
            report.removed.append(rtype)
        if report.created or report.recreated or report.removed:
            log.info(
                "subscriptions: %d created, %d re-created, %d kept, %d removed",
                len(report.created),
                len(report.recreated),
                len(report.kept),
                len(report.removed),
            )
        return report

    def all_active(self) -> bool:
        """Every watched type has an ``active`` Subscription (HAPI activates ``requested`` ones shortly after
        creation; the readiness probe and the tests wait for this)."""
        active = [s for s in self.owned() if s.get("status") == "active"]
        return all(any(self.matches(s, t) for s in active) for t in self.resource_types())

    def remove_subscriptions(self) -> int:
        """Delete every Subscription we own (on shutdown of a source, or when switching to polling)."""
        owned = self.owned()
        for sub in owned:
            self.client.delete("Subscription", sub["id"])
        return len(owned)

    def resolve_patient(self, resource_type: str, resource_id: str) -> str | None:
        """Patient of a resource we were notified about without its body (deleted: use its last version)."""
        try:
            return patient_of(self.client.read(resource_type, resource_id), self.client.base_url)
        except FhirNotFound:
            pass
        if not shapes.TYPE_RE.match(resource_type) or not shapes.ID_RE.match(resource_id):
            return None
        history = self.client.search_pages(f"{resource_type}/{resource_id}/_history", {"_count": 5})
        for version in shapes.bundle_resources(next(iter(history), {})):
            patient = patient_of(version, self.client.base_url)
            if patient:
                return patient
        return None


def _owned_by(subscription: dict[str, Any], owner: str) -> bool:
    tags = (subscription.get("meta") or {}).get("tag") or []
    return any(
        isinstance(t, dict) and t.get("system") == OWNER_TAG_SYSTEM and t.get("code") == owner for t in tags
    )
