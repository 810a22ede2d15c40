"""SQLAlchemy 2 models of the sidecar's durable state.

Why these tables: an authorization is the patient's consent (who may receive what); a transmission is one
durable job (one message to one recipient) whose ``state`` column is the pipeline's state machine; a pending
change is the debounce window of one patient; the audit log is append-only; source state holds the change
detectors' watermarks. Changing a column means a new Alembic revision in ``fhir_bridge/db/migrations``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class UtcDateTime(TypeDecorator):
    """Timestamps stored as naive UTC, returned as aware UTC (SQLite keeps no zone; PostgreSQL gets UTC)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class Authorization(Base):
    """A patient's consent to send their record to one Direct address (``once`` or ``always``)."""

    __tablename__ = "authorizations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    address: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(8))  # once | always
    created_by_type: Mapped[str] = mapped_column(String(16))  # patient | clinician
    created_by_id: Mapped[str] = mapped_column(String(128))
    consent_method: Mapped[str] = mapped_column(String(16))  # portal | in_person | clipboard
    attestation: Mapped[str | None] = mapped_column(Text, nullable=True)
    payload_type: Mapped[str] = mapped_column(String(16))  # entire_record | documents
    documents: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    trust_policy: Mapped[str] = mapped_column(String(16))  # public | trusted
    recipient_trusted: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    min_interval_seconds: Mapped[float | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoked_by_type: Mapped[str | None] = mapped_column(String(16), nullable=True)
    revoked_by_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    #: Set when a ``once`` authorization has had its one transmission.
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    #: clinical_hash of the last document handed to SMTP (skip a re-send when nothing clinical changed).
    last_sent_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    last_sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    fhir_consent_id: Mapped[str | None] = mapped_column(String(128), nullable=True)

    transmissions: Mapped[list[Transmission]] = relationship(back_populates="authorization", lazy="raise")

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class Transmission(Base):
    """One durable job: one message to one authorization's address. ``state`` follows pipeline.states."""

    __tablename__ = "transmissions"
    __table_args__ = (Index("ix_transmissions_due", "state", "next_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    authorization_id: Mapped[str] = mapped_column(ForeignKey("authorizations.id"), index=True)
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    recipient: Mapped[str] = mapped_column(String(320))
    #: Unique per intended message: a duplicate trigger (retry of a flush, double click) finds the same job.
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    trigger: Mapped[str] = mapped_column(String(16))  # initial | change | resend
    state: Mapped[str] = mapped_column(String(16), default="queued")
    reason_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason_detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    #: Assigned once, before the first hand-over to SMTP, and reused on every retry (one job = one message).
    message_id: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    #: The exact bytes handed to SMTP, kept so a retry re-sends the identical message.
    raw_message: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, deferred=True)
    mail_from: Mapped[str | None] = mapped_column(String(320), nullable=True)
    document_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    signed: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    encrypted: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    trusted: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    #: When the (first coalesced) change that caused this job was seen: the start of end-to-end latency.
    change_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    processed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    dispatched_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    authorization: Mapped[Authorization] = relationship(back_populates="transmissions", lazy="raise")


class PendingChange(Base):
    """The debounce window of one patient: changes coalesce here until ``due_at`` passes quietly."""

    __tablename__ = "pending_changes"

    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: Identifies this window; it becomes part of the transmissions' idempotency keys.
    window_id: Mapped[str] = mapped_column(String(36), default=new_id)
    first_change_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_change_at: Mapped[datetime] = mapped_column(UtcDateTime)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    changes: Mapped[int] = mapped_column(Integer, default=1)
    sources: Mapped[str] = mapped_column(String(200), default="")


class AuditRecord(Base):
    """Append-only audit trail: consent changes and send attempts (who, what, when, outcome). No PHI."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    actor_type: Mapped[str] = mapped_column(String(16))  # patient | clinician | api_key | system
    actor_id: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))  # authorization.create | .revoke | send.attempt ...
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    outcome: Mapped[str] = mapped_column(String(32))  # success | failure | retry | skipped ...
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class SourceState(Base):
    """Persistent state of a change detector (polling watermark per source and resource type...)."""

    __tablename__ = "source_state"

    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
