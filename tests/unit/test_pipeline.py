"""The pipeline's logic on a real SQLite database: states, debounce, idempotency, retries, revoke, MDN.

The FHIR record and the Direct agent are replaced by two tiny in-process ports (a document with a settable
hash, a sender with scripted failures) so each path can be reached deterministically; the same Pipeline runs
against HAPI, the real agent and a real SMTP listener in tests/integration/test_bridge_e2e.py.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from direct.errors import NoCertificate, PermanentDeliveryError, TransientDeliveryError
from fhir_bridge import audit
from fhir_bridge.config import load_settings
from fhir_bridge.db import AuditRecord, Authorization, Database, Transmission
from fhir_bridge.pipeline import jobs
from fhir_bridge.pipeline.ports import Attachment, AuthorizationView, Document, Prepared
from fhir_bridge.pipeline.service import Pipeline
from fhir_bridge.pipeline.states import (
    CANCELLABLE,
    TERMINAL,
    IllegalTransition,
    State,
    backoff,
    can_move,
    check,
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class RecordDouble:
    """The patient's record as a document whose clinical hash the test controls."""

    def __init__(self) -> None:
        self.hash = "h1"
        self.builds = 0
        self.fail: Exception | None = None

    def build(self, auth: AuthorizationView) -> Document:
        self.builds += 1
        if self.fail:
            raise self.fail
        return Document(
            [Attachment("ccd.xml", f"<ccd>{self.hash}</ccd>".encode(), "application/xml")], self.hash
        )


class SenderDouble:
    """Seals by numbering, delivers into a list; scripted delivery failures."""

    def __init__(self) -> None:
        self.sealed = 0
        self.delivered: list[Prepared] = []
        self.failures: list[Exception] = []
        self.prepare_error: Exception | None = None

    def prepare(self, auth: AuthorizationView, document: Document) -> Prepared:
        if self.prepare_error:
            raise self.prepare_error
        self.sealed += 1
        raw = b"sealed-" + str(self.sealed).encode() + b"-" + document.attachments[0].content
        return Prepared(f"<m{self.sealed}@test>", "bb@direct.test", [auth.address], raw, trusted=True)

    def deliver(self, prepared: Prepared) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.delivered.append(prepared)


class Checker:
    def check(self, address: str, policy: str) -> bool:
        return policy == "trusted"


@pytest.fixture
def env(tmp_path):
    settings = load_settings(
        env={},
        database_url=f"sqlite:///{tmp_path}/p.sqlite3",
        pipeline_debounce_seconds=60.0,
        pipeline_backoff_base=10.0,
        pipeline_max_attempts=3,
        pipeline_lease_seconds=30.0,
        pipeline_mdn_timeout=600.0,
    )
    db = Database(settings.database_url)
    db.upgrade()
    clock = Clock()
    record, sender = RecordDouble(), SenderDouble()
    pipeline = Pipeline(db, settings, record, sender, clock=clock)
    from fhir_bridge.consent.model import parse_request
    from fhir_bridge.consent.service import ConsentService

    consent = ConsentService(db, pipeline, Checker(), clock=clock)

    class Env:
        pass

    e = Env()
    e.db, e.clock, e.record, e.sender, e.pipeline, e.consent = db, clock, record, sender, pipeline, consent

    def authorize(kind: str = "always", send_now: bool = True, patient: str = "p1", **extra):
        req = parse_request(
            {
                "patient_id": patient,
                "address": "doc@direct.example.org",
                "kind": kind,
                "created_by": {"type": "patient", "id": patient},
                "send_now": send_now,
                **extra,
            }
        )
        return consent.create(req, audit.Actor("patient", patient))

    e.authorize = authorize
    yield e
    db.dispose()


def states(e) -> list[str]:
    with e.db.session() as s:
        return [t.state for t in s.scalars(select(Transmission).order_by(Transmission.created_at))]


def run(e) -> list:
    return e.pipeline.run_due("w1")


# --- the pure state machine ------------------------------------------------------------------
def test_terminal_states_have_no_way_out():
    assert {State.DISPATCHED, State.FAILED, State.SKIPPED, State.CANCELLED} == TERMINAL
    for state in TERMINAL:
        for other in State:
            assert not can_move(state, other)


def test_revocation_cannot_cross_the_smtp_hand_over():
    assert can_move("queued", "cancelled") and can_move("building", "cancelled")
    # sending -> cancelled exists only for a job superseded by a newer one; revocation never takes it.
    assert State.SENDING not in CANCELLABLE
    with pytest.raises(IllegalTransition):
        check("sent", "queued")


def test_backoff_doubles_and_is_capped():
    assert [backoff(n, 30, 200) for n in (1, 2, 3, 4)] == [30, 60, 120, 200]
    with pytest.raises(ValueError):
        backoff(0, 30, 200)


# --- once / always ---------------------------------------------------------------------------
def test_once_sends_now_and_never_again(env):
    env.authorize("once")
    run(env)
    assert states(env) == ["sent"] and len(env.sender.delivered) == 1
    env.record.hash = "h2"
    env.pipeline.notify("p1")
    env.clock.advance(61)
    run(env)
    assert len(env.sender.delivered) == 1


def test_once_without_send_now_waits_for_the_next_change(env):
    env.authorize("once", send_now=False)
    assert run(env) == [] and states(env) == []
    env.pipeline.notify("p1")
    env.clock.advance(61)
    run(env)
    assert states(env) == ["sent"]


def test_a_burst_of_changes_is_one_send_after_the_quiet_period(env):
    env.authorize("always")
    run(env)
    env.record.hash = "h2"
    for _ in range(20):
        env.pipeline.notify("p1", "rest-hook")
        env.clock.advance(2)
    run(env)
    assert len(env.sender.delivered) == 1  # still inside the quiet period: nothing new
    env.clock.advance(59)
    run(env)
    assert len(env.sender.delivered) == 2
    assert states(env) == ["sent", "sent"]


def test_no_send_when_clinical_content_is_unchanged(env):
    env.authorize("always")
    run(env)
    env.pipeline.notify("p1")
    env.clock.advance(61)
    run(env)
    assert states(env) == ["sent", "skipped"]
    assert len(env.sender.delivered) == 1


def test_frequency_cap_delays_the_next_send(env):
    env.authorize("always", min_interval_seconds=3600)
    run(env)
    env.record.hash = "h2"
    env.pipeline.notify("p1")
    env.clock.advance(61)
    run(env)
    assert len(env.sender.delivered) == 1 and states(env)[-1] == "queued"
    env.clock.advance(3600)
    run(env)
    assert len(env.sender.delivered) == 2


def test_windows_are_idempotent_per_patient(env):
    env.authorize("always", send_now=False)
    env.pipeline.notify("p1")
    env.clock.advance(61)
    first = env.pipeline.flush_window("p1")
    again = env.pipeline.flush_window("p1")
    assert len(first) == 1 and again == []


# --- retries, failures, crash recovery -------------------------------------------------------
def test_transient_failure_retries_with_the_same_message(env):
    env.sender.failures = [TransientDeliveryError("busy", detail="451 4.3.0 busy")]
    env.authorize("once")
    run(env)
    assert states(env) == ["retrying"]
    with env.db.session() as s:
        tx = s.scalars(select(Transmission)).one()
        assert tx.reason_code == "delivery_deferred" and tx.reason_detail == "451 4.3.0 busy"
        assert tx.next_at == env.clock.now + timedelta(seconds=10)
    env.clock.advance(5)
    assert run(env) == []  # not due yet
    env.clock.advance(5)
    run(env)
    assert states(env) == ["sent"]
    assert env.sender.sealed == 1  # sealed once, re-sent identical bytes
    assert [p.message_id for p in env.sender.delivered] == [tx.message_id]
    with env.db.session() as s:  # the deferral's reason ends with it: a sent job shows no stale reason
        sent = s.scalars(select(Transmission)).one()
        assert (sent.reason_code, sent.reason_message, sent.reason_detail) == (None, None, None)


def test_permanent_failure_stops_with_the_server_text(env):
    env.sender.failures = [PermanentDeliveryError("refused", detail="550 5.1.1 no such user")]
    env.authorize("once")
    run(env)
    with env.db.session() as s:
        tx = s.scalars(select(Transmission)).one()
    assert (tx.state, tx.reason_code, tx.reason_detail) == (
        "failed",
        "delivery_refused",
        "550 5.1.1 no such user",
    )
    env.clock.advance(3600)
    assert run(env) == []


def test_discovery_failure_at_send_time_is_permanent(env):
    env.authorize("once", send_now=False)
    env.sender.prepare_error = NoCertificate()
    env.pipeline.notify("p1")
    env.clock.advance(61)
    run(env)
    with env.db.session() as s:
        assert s.scalars(select(Transmission.reason_code)).one() == "no_certificate"


def test_transient_failures_end_after_max_attempts(env):
    env.sender.failures = [TransientDeliveryError() for _ in range(3)]
    env.authorize("once")
    for _ in range(3):
        run(env)
        env.clock.advance(1000)
    assert states(env) == ["failed"]


def test_unexpected_errors_fail_permanently_without_leaking_their_text(env):
    # Issue 13: an unknown exception is a bug of ours, not an outage: permanent (it was "retrying" before).
    env.record.fail = RuntimeError("Patient John Smith has diabetes")
    env.authorize("once")
    run(env)
    with env.db.session() as s:
        tx = s.scalars(select(Transmission)).one()
    assert tx.state == "failed" and tx.reason_code == "internal_error"
    assert "Smith" not in (tx.reason_message or "")


def test_a_crashed_worker_is_taken_over_after_its_lease_with_the_same_message(env):
    env.authorize("once")
    with env.db.session() as s:
        job = s.scalars(select(Transmission)).one()
        assert jobs.claim(s, job, "dead-worker", env.clock.now, 30) is State.BUILDING
    # The dead worker had sealed and stored the message (state sending) but never got a reply from SMTP.
    with env.db.session() as s:
        jobs.move(
            s,
            job.id,
            "building",
            "sending",
            message_id="<m0@test>",
            raw_message=b"sealed-0",
            mail_from="bb@x",
        )
    assert run(env) == []  # lease still valid
    env.clock.advance(31)
    run(env)
    assert states(env) == ["sent"]
    assert env.sender.sealed == 0 and env.sender.delivered[0].raw == b"sealed-0"


def test_two_workers_racing_for_one_job_run_it_once(env):
    env.authorize("once", send_now=False)
    env.pipeline.notify("p1")
    env.clock.advance(61)
    [job_id] = env.pipeline.flush_due()
    results: list = []
    barrier = threading.Barrier(4)

    def race(name: str) -> None:
        barrier.wait()
        results.append(env.pipeline.run_job(job_id, name))

    threads = [threading.Thread(target=race, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(str(r.state) for r in results) == ["None", "None", "None", "sent"]
    assert len(env.sender.delivered) == 1


# --- revoke ----------------------------------------------------------------------------------
def test_revoke_cancels_what_is_not_yet_handed_to_smtp(env):
    auth = env.authorize("always")
    env.consent.revoke(auth.id, audit.Actor("patient", "p1"))
    assert states(env) == ["cancelled"]
    env.pipeline.notify("p1")
    env.clock.advance(61)
    run(env)
    assert env.sender.delivered == [] and states(env) == ["cancelled"]


def test_revoke_does_not_touch_a_message_already_handed_over(env):
    auth = env.authorize("once")
    with env.db.session() as s:
        job = s.scalars(select(Transmission)).one()
        jobs.claim(s, job, "w", env.clock.now, 30)
        jobs.move(s, job.id, "building", "sending", message_id="<m@x>", raw_message=b"x", mail_from="a@b")
    env.consent.revoke(auth.id, audit.Actor("patient", "p1"))
    assert states(env) == ["sending"]


# --- MDN -------------------------------------------------------------------------------------
def test_mdns_move_the_job_to_processed_then_dispatched(env):
    env.authorize("once")
    run(env)
    mid = env.sender.delivered[0].message_id
    assert env.pipeline.apply_notice(mid, "processed") == "processed"
    assert env.pipeline.apply_notice(mid, "processed") is None
    assert env.pipeline.apply_notice(mid, "dispatched") == "dispatched"
    assert env.pipeline.apply_notice("<unknown@x>", "processed") is None


def test_a_failure_notice_or_no_mdn_in_time_fails_the_job(env):
    env.authorize("once")
    env.authorize("once", patient="p2")
    run(env)
    first, second = env.sender.delivered
    assert env.pipeline.apply_notice(first.message_id, "failed", "5.1.1 mailbox unknown") == "failed"
    env.clock.advance(601)
    assert env.pipeline.expire_mdn() == 1
    with env.db.session() as s:
        reasons = {t.message_id: t.reason_code for t in s.scalars(select(Transmission))}
    assert reasons == {first.message_id: "delivery_failed_notice", second.message_id: "mdn_timeout"}


# --- audit -----------------------------------------------------------------------------------
def test_every_send_attempt_is_audited_and_the_log_is_append_only(env):
    env.sender.failures = [TransientDeliveryError()]
    env.authorize("once")
    run(env)
    env.clock.advance(10)
    run(env)
    with env.db.session() as s:
        rows = s.scalars(select(AuditRecord).order_by(AuditRecord.id)).all()
    assert [(r.action, r.outcome) for r in rows] == [
        ("authorization.create", "success"),
        ("send.attempt", "retry"),
        ("send.attempt", "success"),
    ]
    from sqlalchemy.exc import DatabaseError

    for statement in ("UPDATE audit_log SET outcome = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(DatabaseError, match="append-only"), env.db.session() as s:
            s.execute(text(statement))


def test_a_stalled_worker_whose_lease_was_taken_over_does_not_send(env):
    """Worker A stalls in building past its lease; B takes the job over (and is building it) when A wakes
    up: A's hand-over is refused because the lease is B's, so A sends nothing; B then sends the one message."""
    env.authorize("once", send_now=False)
    env.pipeline.notify("p1")
    env.clock.advance(61)
    [job_id] = env.pipeline.flush_due()
    original = env.record.build

    def stalling_build(auth):
        env.clock.advance(31)  # A's lease (30 s) expires while it builds; B claims the job
        with env.db.session() as s:
            assert jobs.claim(s, s.get(Transmission, job_id), "B", env.clock.now, 30) is State.BUILDING
        return original(auth)

    env.record.build = stalling_build
    assert env.pipeline.run_job(job_id, "A").state is None
    assert env.sender.delivered == []
    with env.db.session() as s:
        job = s.get(Transmission, job_id)
        assert (job.state, job.lease_owner) == ("building", "B")
    env.record.build = original
    env.clock.advance(31)
    assert env.pipeline.run_job(job_id, "C").state == "sent"
    assert len(env.sender.delivered) == 1


# --- per-authorization ordering --------------------------------------------------------------
def _change(env, new_hash: str) -> None:
    """The record changes and its debounce window closes (the next run_due creates the change job)."""
    env.record.hash = new_hash
    env.pipeline.notify("p1")
    env.clock.advance(61)


def _contents(env) -> list[bytes]:
    return [p.raw.split(b"-", 2)[2] for p in env.sender.delivered]


def test_an_older_job_retrying_with_its_stored_message_never_arrives_after_a_newer_one(env):
    """Issue 14 #1: a job deferred by 451 must not deliver its stored (stale) record after a newer job's
    message was accepted; it is retired as superseded and ``last_sent_*`` follow the newest message."""
    auth = env.authorize("always")
    run(env)
    deferred = []
    deliver = env.sender.deliver

    def busy_for_h2(prepared):  # the receiving server answers 451 to the h2 message twice
        if b"h2" in prepared.raw and len(deferred) < 2:
            deferred.append(prepared.message_id)
            raise TransientDeliveryError("busy", detail="451 4.3.0 busy")
        deliver(prepared)

    env.sender.deliver = busy_for_h2
    _change(env, "h2")
    run(env)  # the h2 job is sealed and stored, then deferred (retry in 10 s)
    assert states(env) == ["sent", "retrying"]
    _change(env, "h3")  # 61 s later: the h2 job is due again, and a window for h3 is due as well
    for _ in range(3):
        run(env)
        env.clock.advance(30)
    assert _contents(env) == [b"<ccd>h1</ccd>", b"<ccd>h3</ccd>"]
    with env.db.session() as s:
        txs = s.scalars(select(Transmission).order_by(Transmission.created_at)).all()
        current = s.get(Authorization, auth.id)
    assert [(t.state, t.reason_code) for t in txs] == [
        ("sent", None),
        ("cancelled", "superseded"),
        ("sent", None),
    ]
    assert current.last_sent_hash == "h3" and current.last_sent_at == txs[-1].sent_at


def test_an_older_job_still_building_when_a_newer_one_was_accepted_never_sends(env):
    """The older job gathered its record before the newer change and is slow to seal: by the time it
    would hand over, the newer message was accepted, so it retires instead of arriving last."""
    auth = env.authorize("always", send_now=False)
    _change(env, "h1")
    [old_id] = env.pipeline.flush_due()
    original = env.record.build

    def slow_build(view):
        document = original(view)  # the record as it was: h1
        env.record.build = original
        _change(env, "h2")  # meanwhile the record changes and the newer job runs to the end
        [new_id] = env.pipeline.flush_due()
        assert env.pipeline.run_job(new_id, "B").state == "sent"
        return document

    env.record.build = slow_build
    assert env.pipeline.run_job(old_id, "A").state == "cancelled"
    assert _contents(env) == [b"<ccd>h2</ccd>"]
    with env.db.session() as s:
        old = s.get(Transmission, old_id)
        current = s.get(Authorization, auth.id)
    assert (old.reason_code, old.sent_at) == ("superseded", None)
    assert current.last_sent_hash == "h2"


def test_a_newer_job_waits_while_an_older_message_is_on_the_wire(env):
    """Two messages of one authorization are never on the wire together (their arrival order would be
    the network's choice): the newer one waits, uncounted, until the older one's SMTP exchange ended."""
    env.authorize("always", send_now=False)
    _change(env, "h1")
    [old_id] = env.pipeline.flush_due()
    on_wire, release = threading.Event(), threading.Event()
    deliver = env.sender.deliver

    def slow_deliver(prepared):
        if b"h1" in prepared.raw:
            on_wire.set()
            release.wait(30)
        deliver(prepared)

    env.sender.deliver = slow_deliver
    older = threading.Thread(target=env.pipeline.run_job, args=(old_id, "A"))
    older.start()
    try:
        assert on_wire.wait(30)
        env.record.hash = "h2"  # a resend now (no clock change: the older job's lease stays live)
        new_id = env.pipeline.resend(old_id, audit.Actor("patient", "p1")).id
        assert env.pipeline.run_job(new_id, "B").state == "retrying"
        with env.db.session() as s:
            waiting = s.get(Transmission, new_id)
        assert (waiting.reason_code, waiting.attempts) == ("waiting_for_previous", 0)
    finally:
        release.set()
        older.join(30)
    env.clock.advance(30)
    assert env.pipeline.run_job(new_id, "B").state == "sent"
    assert _contents(env) == [b"<ccd>h1</ccd>", b"<ccd>h2</ccd>"]
    with env.db.session() as s:
        assert s.get(Transmission, new_id).attempts == 1
