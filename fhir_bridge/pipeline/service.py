"""The pipeline façade: change events in, durable jobs through their states, MDNs applied.

Why one class: the API, the change detectors, the local worker threads and the procrastinate tasks all call
the same few methods, so embedded mode (one process, SQLite) and scale-out mode (many processes, PostgreSQL)
run exactly the same logic; only *who calls* :meth:`run_job` differs (``runner.LocalRunner`` or
``pgqueue``).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from direct.errors import DeliveryFailedNotice, MdnTimeout
from fhir_bridge import audit
from fhir_bridge.config import Settings
from fhir_bridge.db import Database
from fhir_bridge.db.models import Authorization, Transmission, utcnow
from fhir_bridge.pipeline import debounce, jobs
from fhir_bridge.pipeline.errors import AuthorizationRevoked, Failure, TransmissionNotFound, classify
from fhir_bridge.pipeline.ports import AuthorizationView, DocumentBuilder, Prepared, Sender
from fhir_bridge.pipeline.states import AWAITING_MDN, State, backoff

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class Queue(Protocol):
    """Who runs the jobs: told when new work exists so it need not wait for its next poll."""

    def jobs_created(self, ids: list[str], at: datetime) -> None: ...

    def window_opened(self, patient_id: str, due_at: datetime) -> None: ...


class NullQueue:
    def jobs_created(self, ids: list[str], at: datetime) -> None:
        pass

    def window_opened(self, patient_id: str, due_at: datetime) -> None:
        pass


@dataclass(frozen=True)
class _Claimed:
    """A job this worker holds, with what running it needs (read when it was claimed)."""

    job_id: str
    held: State
    auth: AuthorizationView
    trigger: str
    last_hash: str | None
    attempts: int


@dataclass(frozen=True)
class _Ready:
    """A sealed message stored and past the delivery gate: this worker may hand it to SMTP now."""

    prepared: Prepared
    doc_hash: str | None


@dataclass(frozen=True)
class RunResult:
    job_id: str
    state: str | None  # the state the job ended in, or None when this worker did not get it


class Pipeline:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        builder: DocumentBuilder,
        sender: Sender,
        *,
        queue: Queue | None = None,
        clock: Clock = utcnow,
    ):
        self.db = db
        self.settings = settings
        self.builder = builder
        self.sender = sender
        self.queue: Queue = queue or NullQueue()
        self.clock = clock
        #: Set whenever new work exists; local worker threads wait on it between polls.
        self.wakeup = threading.Event()

    # --- triggers ----------
    def notify(self, patient_id: str, source: str = "ping") -> datetime:
        """A change of this patient's record was seen (rest-hook, poll, ping): open or extend its window."""
        now = self.clock()
        with self.db.writer() as s:
            due = debounce.note_change(s, patient_id, source, now, self.settings.pipeline_debounce_seconds)
        self.queue.window_opened(patient_id, due)
        self.wakeup.set()
        return due

    def on_change(self, event: object) -> None:
        """Adapter for ``fhir_bridge.sources``: any object with ``patient_id`` (and optionally ``source``)."""
        patient_id = getattr(event, "patient_id", None)
        if not patient_id:
            return
        self.notify(str(patient_id), str(getattr(event, "source", "change")))

    def authorization_created(self, session: Session, auth: Authorization, send_now: bool) -> list[str]:
        """Queue the first transmission in the creator's transaction (so an authorization never lacks it)."""
        if not send_now:
            return []
        now = self.clock()
        job, _ = jobs.create(session, auth, trigger="initial", idempotency_key=f"{auth.id}:initial", now=now)
        if auth.kind == "once":
            auth.used_at = now
        return [job.id]

    def authorization_revoked(self, session: Session, auth: Authorization) -> int:
        return jobs.cancel_for_authorization(session, auth.id, self.clock())

    def resend(self, transmission_id: str, actor: audit.Actor, key: str | None = None) -> Transmission:
        """A new job (new Message-ID) for the same authorization; refused when it was revoked."""
        now = self.clock()
        with self.db.session() as s:
            old = s.get(Transmission, transmission_id)
            if old is None:
                raise TransmissionNotFound("no such transmission")
            auth = s.get(Authorization, old.authorization_id)
            assert auth is not None
            if not auth.active:
                raise AuthorizationRevoked()
            idem = f"{auth.id}:resend:{key or uuid.uuid4()}"
            job, created = jobs.create(s, auth, trigger="resend", idempotency_key=idem, now=now)
            if created:
                audit.record(
                    s,
                    actor=actor,
                    action="transmission.resend",
                    entity_type="transmission",
                    entity_id=job.id,
                    patient_id=auth.patient_id,
                    outcome="queued",
                    detail={"resend_of": old.id},
                )
        self.after_commit([job.id])
        return job

    def after_commit(self, job_ids: list[str]) -> None:
        if job_ids:
            self.queue.jobs_created(job_ids, self.clock())
            self.wakeup.set()

    # --- debounce windows ----------
    def flush_due(self) -> list[str]:
        """Close every window whose quiet period passed; create one job per authorization. Returns job ids."""
        with self.db.writer() as s:
            created = self._flush_due(s, self.clock())
        self.after_commit(created)
        return created

    def _flush_due(self, s: Session, now: datetime) -> list[str]:
        created: list[str] = []
        for window in debounce.due_windows(s, now):
            created += self._close_window(s, window, now)
        return created

    def flush_window(self, patient_id: str, *, now: datetime | None = None) -> list[str]:
        """Close this patient's window if due (and still unchanged): idempotent per window."""
        now = now or self.clock()
        with self.db.writer() as s:
            window = s.get(debounce.PendingChange, patient_id)
            if window is None or window.due_at > now:
                return []
            created = self._close_window(s, window, now)
        self.after_commit(created)
        return created

    def _close_window(self, s: Session, window: debounce.PendingChange, now: datetime) -> list[str]:
        if not debounce.close(s, window):
            return []
        created: list[str] = []
        auths = s.scalars(
            select(Authorization).where(
                Authorization.patient_id == window.patient_id, Authorization.revoked_at.is_(None)
            )
        ).all()
        for auth in auths:
            job_id = self._job_for_change(s, auth, window, now)
            if job_id:
                created.append(job_id)
        return created

    def _job_for_change(
        self, s: Session, auth: Authorization, window: debounce.PendingChange, now: datetime
    ) -> str | None:
        if auth.kind == "once":
            if auth.used_at is not None:
                return None
            auth.used_at = now
            job, _ = jobs.create(s, auth, trigger="initial", idempotency_key=f"{auth.id}:initial", now=now)
            return job.id
        # Coalescing: a job still queued (not started) will gather the record when it runs, so it already
        # covers this change; a second one would only send the same document twice.
        waiting = s.scalar(
            select(Transmission.id).where(
                Transmission.authorization_id == auth.id, Transmission.state == str(State.QUEUED)
            )
        )
        if waiting:
            return None
        next_at = now
        cap = auth.min_interval_seconds
        if cap is None:
            cap = self.settings.pipeline_min_interval_seconds
        if cap and auth.last_sent_at is not None:
            next_at = max(now, auth.last_sent_at + timedelta(seconds=cap))
        job, _ = jobs.create(
            s,
            auth,
            trigger="change",
            idempotency_key=f"{auth.id}:change:{window.window_id}",
            now=now,
            next_at=next_at,
            change_at=window.first_change_at,
        )
        return job.id

    # --- running one job ----------
    def run_due(self, owner: str, limit: int = 5) -> list[RunResult]:
        """Local worker step: close due windows and claim up to ``limit`` due jobs (one transaction), then
        run the claimed jobs one after the other.

        Why one transaction and a batch: on SQLite every write transaction queues for the one write lock;
        closing windows, then claiming each job separately (and losing most claims to the other workers,
        which listed the same due jobs) cost several lock turns per message.
        """
        now = self.clock()
        lease = self.settings.pipeline_lease_seconds
        with self.db.writer() as s:
            created = self._flush_due(s, now)
            claimed = jobs.claim_due(s, owner, now, lease, limit)
            started = self._start(s, claimed)
        self.after_commit(created)
        return [self._run_claimed(job, owner) for job in started]

    def run_job(self, job_id: str, owner: str) -> RunResult:
        """Claim and run one job to its next resting state. Safe to call twice: only one caller wins."""
        now = self.clock()
        lease = self.settings.pipeline_lease_seconds
        with self.db.writer() as s:
            job = s.get(Transmission, job_id)
            if job is None:
                return RunResult(job_id, None)
            held = jobs.claim(s, job, owner, now, lease)
            if held is None:
                return RunResult(job_id, None)
            [started] = self._start(s, [(job_id, held)])
        return self._run_claimed(started, owner)

    def _start(self, s: Session, claimed: list[tuple[str, State]]) -> list[_Claimed]:
        """What the claimed jobs need to run (read in the claiming transaction); a job whose authorization
        was revoked before it was built is cancelled here."""
        if not claimed:
            return []
        held = dict(claimed)
        rows = {
            row.id: row
            for row in s.execute(
                select(Transmission.id, Transmission.trigger, Transmission.attempts, Authorization)
                .join(Authorization, Authorization.id == Transmission.authorization_id)
                .where(Transmission.id.in_(list(held)))
            )
        }
        started: list[_Claimed] = []
        for job_id, state in claimed:
            row = rows[job_id]
            auth = row.Authorization
            if state is State.BUILDING and not auth.active:
                jobs.move(s, job_id, state, State.CANCELLED, reason_code="revoked", lease_owner=None)
                started.append(
                    _Claimed(
                        job_id, State.CANCELLED, AuthorizationView.of(auth), row.trigger, None, row.attempts
                    )
                )
                continue
            # ``attempts`` was counted by the claim: this run is attempt number ``row.attempts``.
            last_hash = auth.last_sent_hash
            started.append(
                _Claimed(job_id, state, AuthorizationView.of(auth), row.trigger, last_hash, row.attempts)
            )
        return started

    def _run_claimed(self, job: _Claimed, owner: str) -> RunResult:
        if job.held is State.CANCELLED:
            return RunResult(job.job_id, State.CANCELLED)
        ready = None
        if job.held is State.BUILDING:
            outcome = self._build(job.job_id, job.auth, job.trigger, job.last_hash, job.attempts, owner)
            if not isinstance(outcome, _Ready):
                return RunResult(job.job_id, outcome)
            ready = outcome
        return RunResult(job.job_id, self._deliver(job.job_id, job.auth, job.attempts, owner, ready))

    def _build(
        self,
        job_id: str,
        auth: AuthorizationView,
        trigger: str,
        last_hash: str | None,
        attempts: int,
        owner: str,
    ) -> State | _Ready | None:
        try:
            document = self.builder.build(auth)
            if trigger == "change" and last_hash is not None and document.clinical_hash == last_hash:
                return self._finish(
                    job_id, State.BUILDING, State.SKIPPED, auth, "skipped", reason="unchanged", owner=owner
                )
            prepared = self.sender.prepare(auth, document)
        except Exception as exc:
            return self._failed(job_id, State.BUILDING, auth, classify(exc), attempts, owner)
        return self._hand_over(job_id, auth, document.clinical_hash, prepared, owner)

    def _hand_over(
        self, job_id: str, auth: AuthorizationView, doc_hash: str, prepared: Prepared, owner: str
    ) -> State | _Ready | None:
        """Store the sealed message, then move to ``sending``: from here on revocation cannot stop it.

        In the same transaction the job passes the delivery gate (:func:`jobs.delivery_gate`): retired when
        a newer job of its authorization exists, deferred while an older message is on the wire, else
        ``_Ready`` to be handed to SMTP. None when this worker lost the job meanwhile (its lease was taken
        over): it must not deliver.
        """
        now = self.clock()
        with self.db.writer() as s:
            # The authorization's lock first, as in delivery_gate: one lock order, no deadlock.
            if not jobs.lock_authorization(s, auth.id, active=True):  # revoked (or gone) meanwhile
                jobs.move(s, job_id, State.BUILDING, State.CANCELLED, reason_code="revoked", lease_owner=None)
                return State.CANCELLED
            ok = jobs.move(
                s,
                job_id,
                State.BUILDING,
                State.SENDING,
                owner=owner,
                message_id=prepared.message_id,
                raw_message=prepared.raw,
                mail_from=prepared.mail_from,
                document_hash=doc_hash,
                signed=prepared.signed,
                encrypted=prepared.encrypted,
                trusted=prepared.trusted,
                lease_until=now + timedelta(seconds=self.settings.pipeline_lease_seconds),
            )
            if not ok:  # cancelled by a revoke that committed first, or taken over by another worker
                return None
            return self._gate(s, job_id, auth, owner, now, locked=True) or _Ready(prepared, doc_hash)

    def _gate(
        self,
        s: Session,
        job_id: str,
        auth: AuthorizationView,
        owner: str,
        now: datetime,
        locked: bool = False,
    ) -> State | None:
        """The delivery gate's verdict applied: the job's new state, or None when it may go on the wire."""
        gate = jobs.delivery_gate(s, job_id, now, locked=locked)
        if gate.action == jobs.SUPERSEDED:
            return self._retire(s, job_id, auth, owner)
        if gate.action == "wait":
            return self._wait_for_previous(s, job_id, now, gate, owner)
        return None

    def _deliver(
        self,
        job_id: str,
        auth: AuthorizationView,
        attempts: int,
        owner: str = "",
        ready: _Ready | None = None,
    ) -> State:
        """Hand the stored message to SMTP, in the authorization's order (see :func:`jobs.delivery_gate`).

        ``ready``: the message this worker just stored and gated (:meth:`_hand_over`); otherwise (a job
        resumed in ``sending``) the stored one, once it passes the gate.
        """
        if ready is None:
            resumed = self._resume(job_id, auth, owner)
            if not isinstance(resumed, _Ready):
                return resumed
            ready = resumed
        prepared, doc_hash = ready.prepared, ready.doc_hash
        try:
            self.sender.deliver(prepared)
        except Exception as exc:
            return self._failed(job_id, State.SENDING, auth, classify(exc), attempts)
        now = self.clock()
        with self.db.writer() as s:
            jobs.lock_authorization(s, auth.id)  # first, as in delivery_gate: one lock order, no deadlock
            if not jobs.move(
                s,
                job_id,
                State.SENDING,
                State.SENT,
                sent_at=now,
                lease_owner=None,
                lease_until=None,
                # an earlier attempt's reason (delivery_deferred, waiting_for_previous) no longer applies
                reason_code=None,
                reason_message=None,
                reason_detail=None,
            ):
                return _current_state(s, job_id)
            # last_sent_* describe the newest accepted message: they only ever move forward (a job that
            # lost its lease while on the wire may still finish after a newer one was accepted).
            jobs.advance_last_sent(s, job_id, auth.id, doc_hash, now)
            detail = {"message_id": prepared.message_id, "attempt": attempts, "worker": owner[:64]}
            self._audit(s, job_id, auth, "success", detail)
        return State.SENT

    def _resume(self, job_id: str, auth: AuthorizationView, owner: str) -> State | _Ready:
        """The stored message of a job claimed in ``sending``, if the delivery gate lets it go."""
        now = self.clock()
        with self.db.writer() as s:
            verdict = self._gate(s, job_id, auth, owner, now)
            if verdict is not None:
                return verdict
            row = s.execute(
                select(
                    Transmission.message_id,
                    Transmission.mail_from,
                    Transmission.raw_message,
                    Transmission.recipient,
                    Transmission.signed,
                    Transmission.encrypted,
                    Transmission.trusted,
                    Transmission.document_hash,
                ).where(Transmission.id == job_id)
            ).one()
        prepared = Prepared(
            message_id=row.message_id,
            mail_from=row.mail_from,
            rcpt_to=[row.recipient],
            raw=row.raw_message,
            signed=bool(row.signed),
            encrypted=bool(row.encrypted),
            trusted=row.trusted,
        )
        return _Ready(prepared, row.document_hash)

    def _retire(self, s: Session, job_id: str, auth: AuthorizationView, owner: str) -> State:
        """A newer job of this authorization exists: this job's stored message is never (re-)sent."""
        moved = jobs.move(
            s,
            job_id,
            State.SENDING,
            State.CANCELLED,
            owner=owner or None,
            reason_code=jobs.SUPERSEDED,
            reason_message=jobs.SUPERSEDED_MESSAGE,
            lease_owner=None,
            lease_until=None,
        )
        if not moved:
            return _current_state(s, job_id)
        self._audit(s, job_id, auth, "superseded", {"code": jobs.SUPERSEDED})
        log.info("transmission %s superseded by a newer one", job_id)
        return State.CANCELLED

    def _wait_for_previous(
        self, s: Session, job_id: str, now: datetime, gate: jobs.Gate, owner: str
    ) -> State:
        """An older message of this authorization is on the wire: come back shortly, without counting an
        attempt (nothing was tried), so the two can never arrive in the network's order."""
        assert gate.until is not None
        pause = timedelta(seconds=max(1.0, self.settings.pipeline_tick_seconds))
        moved = jobs.move(
            s,
            job_id,
            State.SENDING,
            State.RETRYING,
            owner=owner or None,
            next_at=min(gate.until, now + pause),
            attempts=Transmission.attempts - 1,
            reason_code="waiting_for_previous",
            reason_message="An earlier message to this recipient is being delivered; this one follows it.",
            reason_detail=None,
            lease_owner=None,
            lease_until=None,
        )
        if not moved:
            return _current_state(s, job_id)
        return State.RETRYING

    def _failed(
        self,
        job_id: str,
        old: State,
        auth: AuthorizationView,
        failure: Failure,
        attempts: int,
        owner: str | None = None,
    ) -> State:
        if failure.transient and attempts < self.settings.pipeline_max_attempts:
            delay = _backoff(self.settings, attempts)
            now = self.clock()
            with self.db.writer() as s:
                moved = jobs.move(
                    s,
                    job_id,
                    old,
                    State.RETRYING,
                    owner=owner,
                    next_at=now + timedelta(seconds=delay),
                    reason_code=failure.code,
                    reason_message=failure.message,
                    reason_detail=failure.detail,
                    lease_owner=None,
                    lease_until=None,
                )
                if not moved:
                    return _current_state(s, job_id)
                self._audit(s, job_id, auth, "retry", {"code": failure.code, "attempt": attempts})
            log.info("transmission %s: %s, retry in %.0fs", job_id, failure.code, delay)
            return State.RETRYING
        return self._finish(job_id, old, State.FAILED, auth, "failure", failure=failure, owner=owner)

    def _finish(
        self,
        job_id: str,
        old: State,
        new: State,
        auth: AuthorizationView,
        outcome: str,
        *,
        failure: Failure | None = None,
        reason: str | None = None,
        owner: str | None = None,
    ) -> State:
        fields: dict[str, object] = {"lease_owner": None, "lease_until": None}
        if failure is not None:
            fields.update(
                reason_code=failure.code, reason_message=failure.message, reason_detail=failure.detail
            )
        elif reason:
            fields.update(
                reason_code=reason, reason_message="The clinical content has not changed since the last send."
            )
        with self.db.writer() as s:
            if not jobs.move(s, job_id, old, new, owner=owner, **fields):
                return _current_state(s, job_id)
            self._audit(s, job_id, auth, outcome, {"code": failure.code if failure else reason})
        if failure:
            log.warning("transmission %s failed: %s", job_id, failure.code)
        return new

    def _audit(self, s: Session, job_id: str, auth: AuthorizationView, outcome: str, detail: dict) -> None:
        audit.record(
            s,
            actor=audit.SYSTEM,
            action="send.attempt",
            entity_type="transmission",
            entity_id=job_id,
            patient_id=auth.patient_id,
            outcome=outcome,
            detail={"authorization_id": auth.id, **detail},
        )

    # --- delivery notices ----------
    def apply_notice(self, message_id: str, disposition: str, detail: str | None = None) -> str | None:
        """Apply an MDN/DSN about ``message_id``: ``processed``, ``dispatched`` or ``failed``/``failure``.

        Direct Applicability Statement §3.3 / IG for Delivery Notification: a processed MDN means the
        recipient's HISP took responsibility; dispatched means it reached the recipient's system.
        Returns the job's new state (None when the Message-ID is not ours or the notice is out of order).
        """
        now = self.clock()
        with self.db.writer() as s:
            job = s.scalar(select(Transmission).where(Transmission.message_id == message_id))
            if job is None or State(job.state) not in AWAITING_MDN:
                return None
            old = State(job.state)
            if disposition == "processed":
                if old is not State.SENT:
                    return None
                ok = jobs.move(s, job.id, old, State.PROCESSED, processed_at=now)
                new = State.PROCESSED
            elif disposition == "dispatched":
                ok = jobs.move(
                    s, job.id, old, State.DISPATCHED, dispatched_at=now, processed_at=job.processed_at or now
                )
                new = State.DISPATCHED
            else:
                ok = jobs.move(
                    s,
                    job.id,
                    old,
                    State.FAILED,
                    reason_code=DeliveryFailedNotice.code,
                    reason_message=DeliveryFailedNotice().message,
                    reason_detail=(detail or disposition)[:500],
                )
                new = State.FAILED
            if ok:
                audit.record(
                    s,
                    actor=audit.SYSTEM,
                    action="delivery.notice",
                    entity_type="transmission",
                    entity_id=job.id,
                    patient_id=job.patient_id,
                    outcome=str(new),
                    detail={"disposition": disposition[:40]},
                )
            return str(new) if ok else None

    def expire_mdn(self) -> int:
        """Fail transmissions with no processed MDN within ``pipeline.mdn_timeout`` (code ``mdn_timeout``)."""
        cutoff = self.clock() - timedelta(seconds=self.settings.pipeline_mdn_timeout)
        count = 0
        with self.db.writer() as s:
            ids = s.scalars(
                select(Transmission.id).where(
                    Transmission.state == str(State.SENT), Transmission.sent_at < cutoff
                )
            ).all()
            for job_id in ids:
                if jobs.move(
                    s,
                    job_id,
                    State.SENT,
                    State.FAILED,
                    reason_code=MdnTimeout.code,
                    reason_message=MdnTimeout().message,
                ):
                    count += 1
        return count


def _backoff(settings: Settings, attempt: int) -> float:

    return backoff(attempt, settings.pipeline_backoff_base, settings.pipeline_backoff_max)


def _current_state(s: Session, job_id: str) -> State:
    """The state another worker left a job in after our compare-and-set move lost (jobs are never deleted;
    a missing row is reported, not turned into a state)."""
    value = s.scalar(select(Transmission.state).where(Transmission.id == job_id))
    if value is None:
        raise TransmissionNotFound(f"Transmission {job_id} no longer exists.")
    return State(value)
