"""The pipeline's write transactions: few per message, one writer at a time, one claim per job.

Why these tests: on SQLite every write transaction queues for the database's one write lock, and the
sidecar's throughput was bound by those waits (bench/README.md, Sidecar). They pin what the throughput
work relies on: a change costs a bounded number of write transactions, workers claiming at the same time
never claim one job twice, and a read-then-write transaction cannot lose an update to another thread.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from fhir_bridge.db import Authorization, Database, Transmission, utcnow
from fhir_bridge.pipeline import jobs
from fhir_bridge.pipeline.states import State
from tests.unit.test_pipeline import env, states  # noqa: F401  (the same fixture: real SQLite, fake clock)


def test_a_change_costs_its_notify_and_at_most_three_write_transactions(env):  # noqa: F811
    """notify, then one worker step: windows closed and the job claimed together, the sealed message
    stored and gated together, the accepted send recorded."""
    env.authorize("always", send_now=False)
    before = env.db.writer_stats.transactions
    env.pipeline.notify("p1")
    env.clock.advance(61)
    results = env.pipeline.run_due("w1")
    assert [r.state for r in results] == [State.SENT]
    assert env.db.writer_stats.transactions - before <= 4  # notify + 3
    assert states(env) == ["sent"] and len(env.sender.delivered) == 1


def test_workers_claiming_together_claim_each_job_once(env):  # noqa: F811
    for n in range(12):
        env.authorize("always", send_now=False, patient=f"p{n}")
        env.pipeline.notify(f"p{n}")
    env.clock.advance(61)
    env.pipeline.flush_due()
    start = threading.Barrier(4)
    claimed: dict[str, list[str]] = {}

    def worker(name: str) -> None:
        start.wait()
        mine: list[str] = []
        while True:
            with env.db.writer() as s:
                batch = jobs.claim_due(s, name, env.clock.now, 30, 2)
            if not batch:
                break
            assert all(held is State.BUILDING for _, held in batch)
            mine += [job_id for job_id, _ in batch]
        claimed[name] = mine

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [job_id for ids in claimed.values() for job_id in ids]
    assert len(everything) == len(set(everything)) == 12
    with env.db.session() as s:
        rows = s.execute(select(Transmission.id, Transmission.lease_owner, Transmission.attempts)).all()
    owner = {job_id: name for name, ids in claimed.items() for job_id in ids}
    assert all(r.lease_owner == owner[r.id] and r.attempts == 1 for r in rows)


def test_claim_due_takes_only_due_jobs_and_resumes_a_stored_message(env):  # noqa: F811
    env.authorize("once")  # queued, due now
    env.authorize("always", send_now=False, patient="p2")
    env.pipeline.notify("p2")
    env.clock.advance(61)
    with env.db.writer() as s:
        [first] = jobs.claim_due(s, "dead", env.clock.now, 30, 10)  # p2's window is not closed yet
        jobs.move(s, first[0], "building", "sending", message_id="<m0@test>", raw_message=b"sealed-0")
    with env.db.writer() as s:
        assert jobs.claim_due(s, "w", env.clock.now, 30, 10) == []  # the dead worker's lease is live
    env.clock.advance(31)
    with env.db.writer() as s:
        assert jobs.claim_due(s, "w", env.clock.now, 30, 10) == [(first[0], State.SENDING)]
    with env.db.session() as s:
        job = s.get(Transmission, first[0])
        assert (job.lease_owner, job.attempts) == ("w", 2)
        assert job.lease_until.replace(tzinfo=None) == (env.clock.now + timedelta(seconds=30)).replace(
            tzinfo=None
        )


def test_writer_transactions_do_not_lose_updates(tmp_path):
    """Read a counter, write it back + 1, from four threads: every increment survives."""
    db = Database(f"sqlite:///{tmp_path}/w.sqlite3")
    with db.writer() as s:
        s.execute(text("CREATE TABLE counter (n INTEGER)"))
        s.execute(text("INSERT INTO counter VALUES (0)"))

    def bump() -> None:
        for _ in range(50):
            with db.writer() as s:
                n = s.execute(text("SELECT n FROM counter")).scalar_one()
                s.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with db.session() as s:
        assert s.execute(text("SELECT n FROM counter")).scalar_one() == 200
    db.dispose()


@pytest.mark.service("postgres")
def test_workers_claiming_together_on_postgresql_claim_each_job_once(postgres):
    """The same race on PostgreSQL, where the batch claim's row choice runs with ``SKIP LOCKED``."""
    db = Database(postgres.create_database("claims"))
    db.upgrade()
    now = utcnow()
    with db.writer() as s:
        for n in range(12):
            auth = Authorization(
                patient_id=f"p{n}",
                address="doc@direct.example.org",
                kind="always",
                created_by_type="patient",
                created_by_id=f"p{n}",
                consent_method="portal",
                payload_type="entire_record",
                trust_policy="trusted",
            )
            s.add(auth)
            s.flush()
            jobs.create(s, auth, trigger="change", idempotency_key=f"{auth.id}:c", now=now)
    start = threading.Barrier(4)
    claimed: dict[str, list[str]] = {}

    def worker(name: str) -> None:
        start.wait()
        mine: list[str] = []
        while True:
            with db.writer() as s:
                batch = jobs.claim_due(s, name, now + timedelta(seconds=1), 30, 2)
            if not batch:
                break
            mine += [job_id for job_id, _ in batch]
        claimed[name] = mine

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [job_id for ids in claimed.values() for job_id in ids]
    assert len(everything) == len(set(everything)) == 12
    db.dispose()


def test_last_sent_only_moves_forward(env):  # noqa: F811
    """An older job accepted after a newer one (it lost its lease on the wire) leaves last_sent_* alone."""
    auth = env.authorize("always", send_now=False)
    with env.db.writer() as s:
        older, _ = jobs.create(
            s, s.get(Authorization, auth.id), trigger="change", idempotency_key="a", now=env.clock.now
        )
        newer, _ = jobs.create(
            s, s.get(Authorization, auth.id), trigger="change", idempotency_key="b", now=env.clock.now
        )
        s.execute(
            text("UPDATE transmissions SET sent_at = :t WHERE id = :id"), {"t": env.clock.now, "id": newer.id}
        )
        assert jobs.advance_last_sent(s, newer.id, auth.id, "new", env.clock.now)
    env.clock.advance(5)
    with env.db.writer() as s:
        assert not jobs.advance_last_sent(s, older.id, auth.id, "old", env.clock.now)
    with env.db.session() as s:
        current = s.get(Authorization, auth.id)
        assert current.last_sent_hash == "new"
