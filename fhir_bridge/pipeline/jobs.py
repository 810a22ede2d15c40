"""Durable jobs in the ``transmissions`` table: creation (idempotent) and compare-and-set state moves.

Why compare-and-set: several workers (threads, processes, machines) and the MDN handler touch the same rows.
Every move is ``UPDATE ... WHERE id = ? AND state = <expected>``; only the writer that sees one row updated
owns the move. This holds on SQLite (one writer at a time) and on PostgreSQL (row locks re-check the WHERE).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fhir_bridge.db.models import Authorization, Transmission, new_id, utcnow
from fhir_bridge.pipeline.states import CANCELLABLE, LEASED, RUNNABLE, State, check


def create(
    session: Session,
    auth: Authorization,
    *,
    trigger: str,
    idempotency_key: str,
    now: datetime,
    next_at: datetime | None = None,
    change_at: datetime | None = None,
) -> tuple[Transmission, bool]:
    """Create the job for ``idempotency_key`` or return the existing one. Returns (job, created)."""
    existing = session.scalar(select(Transmission).where(Transmission.idempotency_key == idempotency_key))
    if existing is not None:
        return existing, False
    job = Transmission(
        id=new_id(),
        authorization_id=auth.id,
        patient_id=auth.patient_id,
        recipient=auth.address,
        idempotency_key=idempotency_key,
        trigger=trigger,
        state=State.QUEUED,
        attempts=0,
        next_at=next_at or now,
        change_at=change_at,
        created_at=now,
        updated_at=now,
    )
    try:
        with session.begin_nested():
            session.add(job)
            session.flush()
    except IntegrityError:  # another process created it between our SELECT and INSERT
        existing = session.scalar(select(Transmission).where(Transmission.idempotency_key == idempotency_key))
        assert existing is not None
        return existing, False
    return job, True


def move(
    session: Session,
    job_id: str,
    old: str | State,
    new: str | State,
    *,
    owner: str | None = None,
    **fields: Any,
) -> bool:
    """Move one job ``old`` → ``new`` if it is still in ``old`` (and, with ``owner``, still leased by that
    worker: a worker whose lease was taken over after a stall must not overwrite the new owner's work).
    True when this caller won.
    """
    check(str(old), str(new))
    values = {"state": str(new), **fields}
    values.setdefault("updated_at", utcnow())
    conditions = [Transmission.id == job_id, Transmission.state == str(old)]
    if owner is not None:
        conditions.append(Transmission.lease_owner == owner)
    result = session.execute(
        update(Transmission).where(*conditions).values(**values).execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def due_ids(session: Session, now: datetime, limit: int = 10) -> list[str]:
    """Jobs a worker may take now: runnable and due, or leased by a worker whose lease expired (crashed)."""
    query = (
        select(Transmission.id)
        .where(
            or_(
                and_(Transmission.state.in_([str(s) for s in RUNNABLE]), Transmission.next_at <= now),
                and_(Transmission.state.in_([str(s) for s in LEASED]), Transmission.lease_until < now),
            )
        )
        .order_by(Transmission.next_at)
        .limit(limit)
    )
    return list(session.scalars(query))


def claim(session: Session, job: Transmission, owner: str, now: datetime, lease: float) -> State | None:
    """Take ``job`` for this worker under a lease. Returns the state it now holds (``building`` or, when a
    sealed message is already stored, ``sending``), or None when another worker got it or it is not due.
    """
    state = State(job.state)
    if state in RUNNABLE:
        if job.next_at is not None and job.next_at > now:
            return None
    elif state in LEASED:
        if job.lease_until is not None and job.lease_until >= now:
            return None
    else:
        return None
    has_message = job.message_id is not None and session.scalar(
        select(Transmission.raw_message.is_not(None)).where(Transmission.id == job.id)
    )
    # A stored sealed message means it may already have reached SMTP: resume by re-sending those exact bytes.
    target = State.SENDING if (has_message or state is State.SENDING) else State.BUILDING
    conditions = [Transmission.id == job.id, Transmission.state == str(state)]
    if state in LEASED:
        conditions.append(Transmission.lease_until == job.lease_until)
    result = session.execute(
        update(Transmission)
        .where(*conditions)
        .values(
            state=str(target),
            lease_owner=owner,
            lease_until=now + timedelta(seconds=lease),
            attempts=Transmission.attempts + 1,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return target if result.rowcount == 1 else None


def cancel_for_authorization(session: Session, auth_id: str, now: datetime) -> int:
    """Cancel every job of a revoked authorization not yet handed to SMTP. Returns how many."""
    result = session.execute(
        update(Transmission)
        .where(
            Transmission.authorization_id == auth_id,
            Transmission.state.in_([str(s) for s in CANCELLABLE]),
        )
        .values(
            state=str(State.CANCELLED),
            reason_code="revoked",
            reason_message="The authorization was revoked before this message was sent.",
            updated_at=now,
            lease_owner=None,
            lease_until=None,
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def queue_depth(session: Session) -> dict[str, int]:
    rows = session.execute(select(Transmission.state, func.count()).group_by(Transmission.state))
    return {state: count for state, count in rows}
