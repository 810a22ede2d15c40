"""Durable jobs in the ``transmissions`` table: creation (idempotent) and compare-and-set state moves.

Why compare-and-set: several workers (threads, processes, machines) and the MDN handler touch the same rows.
Every move is ``UPDATE ... WHERE id = ? AND state = <expected>``; only the writer that sees one row updated
owns the move. This holds on SQLite (one writer at a time) and on PostgreSQL (row locks re-check the WHERE).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, case, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import BindParameter

from fhir_bridge.db import rowcount
from fhir_bridge.db.models import Authorization, Transmission, UtcDateTime, new_id, utcnow
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
    """Create the job for ``idempotency_key`` or return the existing one. Returns (job, created).

    A new job is the newest of its authorization: it gets a ``created_at`` strictly after every older job's
    (the per-authorization order, see :func:`delivery_gate`), and the older jobs still waiting to run are
    retired as superseded (:func:`supersede_older`), so their stored messages are never sent.
    """
    existing = session.scalar(select(Transmission).where(Transmission.idempotency_key == idempotency_key))
    if existing is not None:
        return existing, False
    newest = session.scalar(
        select(func.max(Transmission.created_at)).where(Transmission.authorization_id == auth.id)
    )
    created_at = now
    if newest is not None and newest >= now:  # same clock reading (or a clock behind another process's)
        created_at = newest + timedelta(microseconds=1)
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
        created_at=created_at,
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
    supersede_older(session, job, now)
    return job, True


SUPERSEDED = "superseded"
SUPERSEDED_MESSAGE = (
    "A newer transmission of this authorization replaced this one: its message is not sent (again)."
)


def _older_than(job: Transmission) -> Any:
    return or_(
        Transmission.created_at < job.created_at,
        and_(Transmission.created_at == job.created_at, Transmission.id < job.id),
    )


def supersede_older(session: Session, job: Transmission, now: datetime) -> int:
    """Retire the older jobs of ``job``'s authorization that are waiting to run (queued or retrying).

    Why: ``job`` gathers the record when it runs, so it carries everything they carry and more; an older
    job's stored message sent later would put a stale record last at the recipient. Jobs held by a worker
    (building, sending) are left to :func:`delivery_gate`, which retires them before any hand-over.
    """
    result = session.execute(
        update(Transmission)
        .where(
            Transmission.authorization_id == job.authorization_id,
            Transmission.id != job.id,
            Transmission.state.in_([str(s) for s in RUNNABLE]),
            _older_than(job),
        )
        .values(
            state=str(State.CANCELLED),
            reason_code=SUPERSEDED,
            reason_message=SUPERSEDED_MESSAGE,
            updated_at=now,
            lease_owner=None,
            lease_until=None,
        )
        .execution_options(synchronize_session=False)
    )
    return rowcount(result)


def lock_authorization(session: Session, auth_id: str, *, active: bool = False) -> bool:
    """Serialise the ordering decisions of one authorization's jobs until this transaction ends.

    A no-op UPDATE takes the row lock on PostgreSQL and the database write lock on SQLite (whose deferred
    transactions would otherwise only lock at their first write, after the reads that decided). With
    ``active``, only a not-revoked authorization is locked. True when the row was locked.
    """
    conditions = [Authorization.id == auth_id]
    if active:
        conditions.append(Authorization.revoked_at.is_(None))
    result = session.execute(
        update(Authorization)
        .where(*conditions)
        .values(last_sent_hash=Authorization.last_sent_hash)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


@dataclass(frozen=True)
class Gate:
    """What a job about to hand its message to SMTP must do: ``go``, ``superseded`` or ``wait`` (until)."""

    action: str
    until: datetime | None = None


def _gate_statements() -> tuple[Any, Any]:
    """The delivery gate's two queries, built once with bind parameters (see ``_ADVANCE_LAST_SENT``)."""
    job_id: BindParameter[str] = bindparam("job_id")
    created_at: BindParameter[datetime] = bindparam("created_at", type_=UtcDateTime)
    siblings = (Transmission.authorization_id == bindparam("auth_id"), Transmission.id != job_id)
    newer = (
        select(func.count())
        .select_from(Transmission)
        .where(
            *siblings,
            or_(
                Transmission.created_at > created_at,
                and_(Transmission.created_at == created_at, Transmission.id > job_id),
            ),
            or_(Transmission.state != str(State.CANCELLED), Transmission.reason_code == SUPERSEDED),
        )
    )
    on_wire = select(func.max(Transmission.lease_until)).where(
        *siblings,
        or_(
            Transmission.created_at < created_at,
            and_(Transmission.created_at == created_at, Transmission.id < job_id),
        ),
        Transmission.state == str(State.SENDING),
        Transmission.lease_until >= bindparam("now", type_=UtcDateTime),
    )
    return newer, on_wire


_NEWER_SIBLINGS, _OLDER_ON_WIRE = _gate_statements()


def delivery_gate(session: Session, job_id: str, now: datetime, *, locked: bool = False) -> Gate:
    """Decide, under the authorization's lock, whether this job may put its message on the wire now.

    The per-authorization order: a message must never arrive after a newer one. So a job with a newer
    (not revocation-cancelled) job is retired, and a job whose older sibling is on the wire right now
    (``sending`` under a live lease) waits for that exchange to end — otherwise the network, not we, would
    pick the order. An older job whose lease expired (its worker died) is not waited for: when taken over it
    meets this gate and retires, since this job is newer. ``locked``: the caller holds the authorization's
    lock (:func:`lock_authorization`) already.
    """
    job = session.get(Transmission, job_id)
    assert job is not None
    if not locked:
        lock_authorization(session, job.authorization_id)
    params = {"auth_id": job.authorization_id, "job_id": job.id, "created_at": job.created_at, "now": now}
    if session.scalar(_NEWER_SIBLINGS, params):
        return Gate(SUPERSEDED)
    on_wire = session.scalar(_OLDER_ON_WIRE, params)
    if on_wire is not None:
        return Gate("wait", on_wire)
    return Gate("go")


def _advance_last_sent_statement() -> Any:
    job, other = aliased(Transmission), aliased(Transmission)
    newer_accepted = (
        select(other.id)
        .where(
            job.id == bindparam("job_id"),
            other.authorization_id == bindparam("auth_id"),
            other.id != bindparam("job_id"),
            or_(
                other.created_at > job.created_at,
                and_(other.created_at == job.created_at, other.id > job.id),
            ),
            other.sent_at.is_not(None),
        )
        .exists()
    )
    return (
        update(Authorization)
        .where(Authorization.id == bindparam("auth_id"), ~newer_accepted)
        .values(last_sent_hash=bindparam("doc_hash"), last_sent_at=bindparam("at", type_=UtcDateTime))
        .execution_options(synchronize_session=False)
    )


#: Built once: constructing the aliased subquery per call cost more Python than running it, under the
#: write lock (profiled).
_ADVANCE_LAST_SENT = _advance_last_sent_statement()


def advance_last_sent(
    session: Session, job_id: str, auth_id: str, doc_hash: str | None, at: datetime
) -> bool:
    """Record ``job_id``'s message as the authorization's last sent one, unless a newer job of the same
    authorization was already accepted (``last_sent_*`` only ever move forward). One statement: the
    decision and the write cannot be separated by another writer. True when recorded.
    """
    params = {"job_id": job_id, "auth_id": auth_id, "doc_hash": doc_hash, "at": at}
    return rowcount(session.execute(_ADVANCE_LAST_SENT, params)) == 1


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
    return rowcount(result) == 1


def due_ids(session: Session, now: datetime, limit: int = 10) -> list[str]:
    """Jobs a worker may take now: runnable and due, or leased by a worker whose lease expired (crashed)."""
    query = select(Transmission.id).where(_due(now)).order_by(Transmission.next_at).limit(limit)
    return list(session.scalars(query))


def _due(now: datetime) -> Any:
    """SQL condition: runnable and due, or leased by a worker whose lease expired (crashed)."""
    return or_(
        and_(Transmission.state.in_([str(s) for s in RUNNABLE]), Transmission.next_at <= now),
        and_(Transmission.state.in_([str(s) for s in LEASED]), Transmission.lease_until < now),
    )


def claim_due(
    session: Session, owner: str, now: datetime, lease: float, limit: int
) -> list[tuple[str, State]]:
    """Take up to ``limit`` due jobs for this worker in one statement, earliest due first. Returns
    ``(job id, state it now holds)`` pairs, as :func:`claim` would for each.

    Why one statement: workers that each list the due jobs and then claim them one by one all list the same
    jobs, and every losing claim is a write transaction too (SQLite's single writer lock, taken for
    nothing). Here the selection and the compare-and-set are one UPDATE: the WHERE is re-checked on each row
    (PostgreSQL re-evaluates it on a row another transaction changed; ``SKIP LOCKED`` passes over rows another
    worker is claiming), so a job is claimed by one worker only.
    """
    if limit <= 0:
        return []
    due = _due(now)
    ids = select(Transmission.id).where(due).order_by(Transmission.next_at).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        ids = ids.with_for_update(skip_locked=True)
    stored = and_(Transmission.message_id.is_not(None), Transmission.raw_message.is_not(None))
    # A stored sealed message means it may already have reached SMTP: resume by re-sending those exact bytes.
    target = case(
        (or_(stored, Transmission.state == str(State.SENDING)), str(State.SENDING)),
        else_=str(State.BUILDING),
    )
    rows = list(
        session.execute(
            update(Transmission)
            .where(Transmission.id.in_(ids.scalar_subquery()), due)
            .values(
                state=target,
                lease_owner=owner,
                lease_until=now + timedelta(seconds=lease),
                attempts=Transmission.attempts + 1,
                updated_at=now,
            )
            .returning(Transmission.id, Transmission.state, Transmission.next_at)
            .execution_options(synchronize_session=False)
        ).all()
    )
    rows.sort(key=lambda r: (r.next_at is None, r.next_at))
    return [(r.id, State(r.state)) for r in rows]


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
    return target if rowcount(result) == 1 else None


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
    return rowcount(result)


def queue_depth(session: Session) -> dict[str, int]:
    rows = session.execute(select(Transmission.state, func.count()).group_by(Transmission.state))
    return {state: count for state, count in rows}
