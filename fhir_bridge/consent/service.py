"""Creating, listing and revoking authorizations: the one place consent changes happen.

Why here and not in the API: the REST API, the web pages and the CLI all create and revoke authorizations;
the rules (check the address before saving anything, queue the first send in the same transaction, cancel
unsent jobs on revoke, audit every change, mirror it as a FHIR Consent) must hold whichever door is used.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from direct.address import DirectAddress
from direct.errors import DirectError
from fhir_bridge import audit
from fhir_bridge.consent.errors import InvalidRequest, NotFound, RateLimited
from fhir_bridge.consent.fhir_consent import to_fhir_consent
from fhir_bridge.consent.lookup_limit import LookupLimiter
from fhir_bridge.consent.model import AuthorizationRequest
from fhir_bridge.consent.ownership import DocumentOwnership
from fhir_bridge.db import Database
from fhir_bridge.db.models import AuditRecord, Authorization, Transmission, new_id, utcnow
from fhir_bridge.pipeline.errors import AuthorizationRevoked
from fhir_bridge.pipeline.ports import AddressChecker, FhirWriter
from fhir_bridge.pipeline.service import Pipeline

log = logging.getLogger(__name__)

#: The sliding window of the per-principal resend quota.
QUOTA_WINDOW = timedelta(hours=1)


class ConsentService:
    def __init__(
        self,
        db: Database,
        pipeline: Pipeline,
        checker: AddressChecker,
        *,
        fhir_writer: FhirWriter | None = None,
        ownership: DocumentOwnership | None = None,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.db = db
        self.pipeline = pipeline
        self.checker = checker
        self.fhir_writer = fhir_writer
        #: Checks chosen documents against the FHIR server (by default the sidecar's own FHIR settings).
        self.ownership = ownership or DocumentOwnership.from_settings(pipeline.settings)
        self.clock = clock
        #: One resend decision at a time in this process (the database locks cover other processes).
        self._resend_lock = threading.Lock()
        #: Lookups one principal may start per minute (issue 12: bounded and rate-limited per principal).
        self.lookups = LookupLimiter(
            {
                "patient": pipeline.settings.server_lookups_per_minute,
                "clinician": pipeline.settings.server_lookups_per_minute_staff,
            }
        )

    def check_address(
        self, address: str, policy: str, principal: str | None = None
    ) -> tuple[str, bool | None]:
        """Syntax first (no lookup for garbage), then discovery under ``policy``. Returns (address, trusted).

        Raises the specific ``DirectError`` (``bad_address``, ``no_certificate``, ``untrusted``...), and
        ``too_many_lookups`` when ``principal`` (who asked) started too many lookups this minute.
        """
        parsed = DirectAddress.parse(address)
        normalized = str(parsed)
        self.lookups.admit(principal)
        return normalized, self.checker.check(normalized, policy)

    def create(self, req: AuthorizationRequest, actor: audit.Actor) -> Authorization:
        """Check the chosen documents and the address, then save the authorization, its first job and the
        audit row in one transaction.

        A chosen document that is not the patient's (read from the FHIR server: see
        ``fhir_bridge.consent.ownership``) raises ``InvalidRequest`` (``document_not_patients``,
        ``document_unreadable``); a refused address raises its ``DirectError``. Either way nothing is saved
        (only the refusal is audited).
        """
        try:
            if req.payload_type == "documents" or req.documents:
                self.ownership.check(req.patient_id, req.documents)
            address, trusted = self.check_address(
                req.address, req.trust_policy, principal=f"{actor.type}:{actor.id}"
            )
        except (DirectError, InvalidRequest) as exc:
            with self.db.session() as s:
                audit.record(
                    s,
                    actor=actor,
                    action="authorization.refused",
                    entity_type="authorization",
                    entity_id="-",
                    patient_id=req.patient_id,
                    outcome="failure",
                    detail={"code": exc.code, "policy": req.trust_policy},
                )
            raise
        now = self.clock()
        with self.db.session() as s:
            auth = Authorization(
                id=new_id(),
                patient_id=req.patient_id,
                address=address,
                kind=req.kind,
                created_by_type=req.created_by_type,
                created_by_id=req.created_by_id,
                consent_method=req.consent_method,
                attestation=req.attestation,
                payload_type=req.payload_type,
                documents=list(req.documents) or None,
                trust_policy=req.trust_policy,
                recipient_trusted=trusted,
                min_interval_seconds=req.min_interval_seconds,
                created_at=now,
            )
            s.add(auth)
            s.flush()
            job_ids = self.pipeline.authorization_created(s, auth, req.send_now)
            audit.record(
                s,
                actor=actor,
                action="authorization.create",
                entity_type="authorization",
                entity_id=auth.id,
                patient_id=auth.patient_id,
                outcome="success",
                detail={
                    "kind": auth.kind,
                    "created_by": f"{auth.created_by_type}:{auth.created_by_id}",
                    "consent_method": auth.consent_method,
                    "payload": auth.payload_type,
                    "policy": auth.trust_policy,
                    "send_now": req.send_now,
                },
            )
        self.pipeline.after_commit(job_ids)
        self._mirror(auth)
        return auth

    def revoke(self, authorization_id: str, actor: audit.Actor) -> Authorization:
        """Revoke (idempotent): stops every job not yet handed to SMTP; later changes send nothing."""
        now = self.clock()
        with self.db.session() as s:
            auth = s.get(Authorization, authorization_id, with_for_update=True)
            if auth is None:
                raise NotFound("no such authorization", field="id")
            if not auth.active:
                return auth
            auth.revoked_at = now
            auth.revoked_by_type = actor.type
            auth.revoked_by_id = actor.id
            cancelled = self.pipeline.authorization_revoked(s, auth)
            audit.record(
                s,
                actor=actor,
                action="authorization.revoke",
                entity_type="authorization",
                entity_id=auth.id,
                patient_id=auth.patient_id,
                outcome="success",
                detail={"cancelled_transmissions": cancelled},
            )
        self._mirror(auth)
        return auth

    def resend(self, transmission_id: str, actor: audit.Actor, key: str | None = None) -> Transmission:
        """Queue a new transmission for the same authorization, within the resend limits.

        Every door that resends comes here (the REST API; the pages have no resend of their own), so the
        limits hold whichever is used: no resend sooner than ``pipeline.resend_min_interval`` after the
        authorization's newest transmission, and at most ``server.resend_quota_per_hour`` (patients) or
        ``server.resend_quota_per_hour_api_key`` (API keys) queued resends per ``actor`` in any sliding hour.
        A refusal raises :class:`RateLimited` (with ``retry_after``) and is audited. A retry carrying the
        ``key`` of a resend already queued gets that transmission back, never a refusal.

        The decision and the new job are serialised: in this process by a lock, across processes (PostgreSQL)
        by a row lock on the authorization and an advisory lock on the actor, both held until the new job is
        committed, so simultaneous requests cannot all pass the same check.
        """
        with self._resend_lock, self.db.session() as s:
            old = s.get(Transmission, transmission_id)
            if old is None:
                raise NotFound("no such transmission", field="id")
            self._lock_principal(s, actor)
            auth = s.get(Authorization, old.authorization_id, with_for_update={"key_share": True})
            assert auth is not None
            if not auth.active:
                raise AuthorizationRevoked()
            replay = key is not None and s.scalar(
                select(Transmission.id).where(Transmission.idempotency_key == f"{auth.id}:resend:{key}")
            )
            if not replay:
                refusal = self._resend_refusal(s, auth, actor)
                if refusal is not None:
                    audit.record(
                        s,
                        actor=actor,
                        action="transmission.resend",
                        entity_type="transmission",
                        entity_id=old.id,
                        patient_id=auth.patient_id,
                        outcome="refused",
                        detail={"code": refusal.code, "retry_after": refusal.retry_after},
                        at=self.clock(),
                    )
                    s.commit()
                    raise refusal
            # The new job commits in the pipeline's own transaction while the locks above are still held.
            return self.pipeline.resend(old.id, actor, key)

    def _lock_principal(self, s: Session, actor: audit.Actor) -> None:
        if s.get_bind().dialect.name != "postgresql":
            return
        digest = hashlib.sha256(f"bbdirect.resend:{actor.type}:{actor.id}".encode()).digest()
        s.execute(
            text("SELECT pg_advisory_xact_lock(:k)"), {"k": int.from_bytes(digest[:8], "big", signed=True)}
        )

    def _resend_refusal(self, s: Session, auth: Authorization, actor: audit.Actor) -> RateLimited | None:
        settings = self.pipeline.settings
        now = self.clock()
        interval = settings.pipeline_resend_min_interval
        if interval > 0:
            newest = s.scalar(
                select(func.max(Transmission.created_at)).where(Transmission.authorization_id == auth.id)
            )
            if newest is not None:
                wait = (newest + timedelta(seconds=interval) - now).total_seconds()
                if wait > 0:
                    seconds = math.ceil(wait)
                    return RateLimited(
                        f"This authorization was last sent less than {interval:g} seconds ago; "
                        f"try again in {seconds} seconds.",
                        retry_after=seconds,
                        code="resend_too_soon",
                    )
        quota = (
            settings.server_resend_quota_per_hour_api_key
            if actor.type == "api_key"
            else settings.server_resend_quota_per_hour
        )
        if quota > 0:
            # The actor's queued resends: the pipeline's audit rows name who asked, the jobs say when.
            recent = list(
                s.scalars(
                    select(Transmission.created_at)
                    .join(AuditRecord, AuditRecord.entity_id == Transmission.id)
                    .where(
                        AuditRecord.action == "transmission.resend",
                        AuditRecord.outcome == "queued",
                        AuditRecord.actor_type == actor.type,
                        AuditRecord.actor_id == actor.id,
                        Transmission.trigger == "resend",
                        Transmission.created_at > now - QUOTA_WINDOW,
                    )
                    .order_by(Transmission.created_at.desc())
                    .limit(quota)
                )
            )
            if len(recent) >= quota:
                seconds = math.ceil((recent[-1] + QUOTA_WINDOW - now).total_seconds())
                return RateLimited(
                    f"At most {quota} resends an hour are allowed; try again in {seconds} seconds.",
                    retry_after=seconds,
                    code="resend_quota_exceeded",
                )
        return None

    # --- reading ---------------------------------------------------------------------------------
    def get(self, authorization_id: str) -> Authorization:
        with self.db.session() as s:
            auth = s.get(Authorization, authorization_id)
        if auth is None:
            raise NotFound("no such authorization", field="id")
        return auth

    def list_for_patient(self, patient_id: str) -> list[Authorization]:
        with self.db.session() as s:
            return list(
                s.scalars(
                    select(Authorization)
                    .where(Authorization.patient_id == patient_id)
                    .order_by(Authorization.created_at.desc(), Authorization.id)
                )
            )

    def transmissions(self, authorization_id: str) -> list[Transmission]:
        with self.db.session() as s:
            return list(
                s.scalars(
                    select(Transmission)
                    .where(Transmission.authorization_id == authorization_id)
                    .order_by(Transmission.created_at.desc(), Transmission.id)
                )
            )

    def transmission(self, transmission_id: str) -> Transmission:
        with self.db.session() as s:
            tx = s.get(Transmission, transmission_id)
        if tx is None:
            raise NotFound("no such transmission", field="id")
        return tx

    # --- FHIR Consent mirror ---------------------------------------------------------------------
    def _mirror(self, auth: Authorization) -> None:
        """Write the FHIR Consent (best effort: a read-only server or an outage must not undo the consent)."""
        if self.fhir_writer is None:
            return
        try:
            resource_id = self.fhir_writer.write(to_fhir_consent(auth))
        except Exception as exc:
            log.warning("FHIR Consent for authorization %s not written: %s", auth.id, type(exc).__name__)
            return
        if resource_id and resource_id != auth.fhir_consent_id:
            with self.db.session() as s:
                row = s.get(Authorization, auth.id)
                if row is not None:
                    row.fhir_consent_id = resource_id
            auth.fhir_consent_id = resource_id
