"""Scale-out: N worker processes on procrastinate + a real PostgreSQL; every job runs exactly once.

The workers are real separate processes (this file run as a script) consuming procrastinate's queue;
each job "sends" a plain message to the real SMTP listener through the pipeline's normal
prepare → store → deliver path. What is under test is the queue and the job state machine, so the
document and the S/MIME sealing are minimal here (test_bridge_e2e.py covers them).
"""

from __future__ import annotations

import email
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

N_WORKERS = 3
N_JOBS = 60


def _ports():  # type: ignore[no-untyped-def]
    from fhir_bridge.pipeline.ports import Attachment, Document, Prepared

    class Builder:
        def build(self, auth):
            # The ordering test keeps its record version in a file every worker process reads.
            record = os.environ.get("BBDIRECT_TEST_RECORD_FILE")
            version = open(record).read().strip() if record else ""
            content = f"<ClinicalDocument>{version}</ClinicalDocument>".encode()
            return Document([Attachment("CCD.xml", content, "application/xml")], "h" + version)

    class PlainSender:
        def __init__(self, settings):
            self.settings = settings

        def prepare(self, auth, document):
            from direct.message import build_message, to_bytes

            text = "scale test " + document.attachments[0].content.decode()
            msg = build_message(self.settings.direct_from_address, [auth.address], "scale", text)
            return Prepared(
                str(msg["Message-ID"]), self.settings.direct_from_address, [auth.address], to_bytes(msg)
            )

        def deliver(self, prepared):
            from fhir_bridge.wiring import _smtplib_deliver

            _smtplib_deliver(self.settings, prepared)

    class Checker:
        def check(self, address, policy):
            return True

    return Builder, PlainSender, Checker


def _env(postgres: Any, name: str, smtp_host: str, smtp_port: int, **pipeline: str) -> dict[str, str]:
    """The settings every scale-out test shares (a new database each), plus its own ``pipeline.*`` values."""
    return {
        "BBDIRECT_DATABASE_URL": postgres.create_database(name),
        "BBDIRECT_DIRECT_SMTP_HOST": smtp_host,
        "BBDIRECT_DIRECT_SMTP_PORT": str(smtp_port),
        "BBDIRECT_PIPELINE_TICK_SECONDS": "0.2",
        **{f"BBDIRECT_PIPELINE_{key.upper()}": value for key, value in pipeline.items()},
        "BBDIRECT_FHIR_WRITE_CONSENT": "false",
        "BBDIRECT_SERVER_SECRET_KEY": f"{name}-test",
    }


def _core(env: dict[str, str]) -> tuple[Any, Any, bool]:
    """(settings, sidecar, whether the queue schema was installed) for ``env``, as the tests' parent process."""
    from fhir_bridge.app import build_sidecar
    from fhir_bridge.config import load_settings
    from fhir_bridge.pipeline.pgqueue import apply_schema

    settings = load_settings(env=env)
    builder, sender, checker = _ports()
    core = build_sidecar(settings, builder=builder(), sender=sender(settings), checker=checker())
    return settings, core, apply_schema(settings)


def _authorize(core: Any, patient: str, address: str, **extra: object) -> Any:
    """A clinician's *once* authorization (or ``kind=...``) with its first job queued."""
    from fhir_bridge import audit
    from fhir_bridge.consent.model import parse_request

    body = {
        "patient_id": patient,
        "address": address,
        "kind": "once",
        "created_by": {"type": "clinician", "id": "u1"},
        "consent_method": "in_person",
        **extra,
    }
    return core.consent.create(parse_request(body), audit.Actor("clinician", "u1"))


def _worker_main() -> None:
    from fhir_bridge.app import build_sidecar
    from fhir_bridge.config import load_settings
    from fhir_bridge.pipeline.pgqueue import run_worker

    settings = load_settings()
    builder, sender, checker = _ports()
    sidecar = build_sidecar(settings, builder=builder(), sender=sender(settings), checker=checker())
    run_worker(sidecar, concurrency=1)


@pytest.mark.service("postgres")
@pytest.mark.slow
def test_n_workers_run_every_job_exactly_once(postgres, smtp_sink, tmp_path):
    from fhir_bridge.db import AuditRecord, Transmission

    env = _env(postgres, "scale", smtp_sink.host, smtp_sink.port)
    settings, sidecar, installed = _core(env)
    assert settings.queue_backend == "procrastinate"
    assert installed is True
    for i in range(N_JOBS):
        _authorize(sidecar, f"p{i}", f"doc{i}@direct.example.org")
    sidecar.pipeline.queue.close()

    child_env = {**os.environ, **env, "PYTHONPATH": os.getcwd()}
    workers = [
        subprocess.Popen(
            [sys.executable, __file__],
            env=child_env,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / f"w{i}.log", "wb"),
        )
        for i in range(N_WORKERS)
    ]
    try:
        messages = smtp_sink.wait_for(N_JOBS, timeout=90)
        time.sleep(1.0)  # a duplicate, if any, would arrive now
        messages = smtp_sink.messages
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(15)
            except subprocess.TimeoutExpired:
                w.kill()
    ids = Counter(email.message_from_bytes(m.data)["Message-ID"] for m in messages)
    assert len(messages) == N_JOBS and all(n == 1 for n in ids.values())
    with sidecar.db.session() as s:
        rows = s.execute(select(Transmission.state, Transmission.attempts, Transmission.message_id)).all()
        successes = s.scalars(
            select(AuditRecord.detail).where(
                AuditRecord.action == "send.attempt", AuditRecord.outcome == "success"
            )
        ).all()
    assert sorted({(state, attempts) for state, attempts, _ in rows}) == [("sent", 1)]
    assert {mid for _, _, mid in rows} == set(ids)
    assert len(successes) == N_JOBS
    # More than one worker process took part: the work was really shared.
    assert len({d["worker"].split(":")[1] for d in successes}) > 1
    logs = [(tmp_path / f"w{i}.log").read_text(errors="replace") for i in range(N_WORKERS)]
    assert all("Traceback" not in log for log in logs), logs
    sidecar.db.dispose()


@pytest.mark.service("postgres")
def test_db_upgrade_command_migrates_postgresql_and_installs_the_queue_once(postgres):
    import json

    env = {**os.environ, "PYTHONPATH": os.getcwd(), "BBDIRECT_DATABASE_URL": postgres.create_database("upg")}
    runs = [
        subprocess.run(
            [sys.executable, "-m", "bbdirect.cli", "db", "upgrade"], env=env, capture_output=True, check=True
        )
        for _ in range(2)
    ]
    first, second = (json.loads(r.stdout.decode().strip().splitlines()[-1]) for r in runs)
    assert first == {"revision": "0001", "queue_schema_installed": True}
    assert second == {"revision": "0001", "queue_schema_installed": False}


@pytest.mark.service("postgres")
@pytest.mark.slow
def test_kill_9_of_a_procrastinate_worker_mid_send_then_another_worker_sends_exactly_once(postgres, tmp_path):
    from fhir_bridge.db import Transmission
    from tests.integration.test_bridge_e2e import StallingHisp

    hisp = StallingHisp()
    env = _env(postgres, "kill", "127.0.0.1", hisp.controller.port, lease_seconds="2", sweep_seconds="2")
    _, core, _ = _core(env)
    auth = _authorize(core, "p1", "doc@direct.example.org")
    core.pipeline.queue.close()
    child_env = {**os.environ, **env, "PYTHONPATH": os.getcwd()}

    def worker() -> subprocess.Popen:
        log = open(tmp_path / "worker.log", "ab")
        return subprocess.Popen(
            [sys.executable, __file__], env=child_env, stdout=subprocess.DEVNULL, stderr=log
        )

    first = worker()
    second = None
    try:
        assert hisp.in_data.wait(60), (tmp_path / "worker.log").read_text()
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        hisp.release.set()
        second = worker()
        deadline = time.monotonic() + 60
        while not hisp.accepted and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3.0)  # a second copy, if any, would arrive now (one more sweep period)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
        hisp.controller.stop()
    assert len(hisp.accepted) == 1
    with core.db.session() as s:
        [job] = s.query(Transmission).filter_by(authorization_id=auth.id).all()
    assert (job.state, job.attempts) == ("sent", 2)
    assert email.message_from_bytes(hisp.accepted[0])["Message-ID"] == job.message_id
    core.db.dispose()


def _procrastinate_rows(url: str) -> list[tuple[str, str]]:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute("SELECT task_name, status::text FROM procrastinate_jobs ORDER BY id").fetchall()


@pytest.mark.service("postgres")
@pytest.mark.slow
def test_a_killed_workers_procrastinate_jobs_do_not_stay_in_doing(postgres, tmp_path):
    """Issue 14 #3: the task a kill -9 interrupted is recovered by procrastinate's stalled-job mechanism
    (the dead worker's heartbeat stops), not left in ``doing`` forever; the message still goes out once."""
    from fhir_bridge.db import Transmission
    from tests.integration.test_bridge_e2e import StallingHisp

    hisp = StallingHisp()
    env = _env(postgres, "stalled", "127.0.0.1", hisp.controller.port, lease_seconds="2", sweep_seconds="2")
    url = env["BBDIRECT_DATABASE_URL"]
    _, core, _ = _core(env)
    for i in range(3):
        _authorize(core, f"p{i}", f"doc{i}@direct.example.org")
    core.pipeline.queue.close()
    child_env = {**os.environ, **env, "PYTHONPATH": os.getcwd()}

    def worker(name: str) -> subprocess.Popen:
        log = open(tmp_path / f"{name}.log", "ab")
        return subprocess.Popen(
            [sys.executable, __file__], env=child_env, stdout=subprocess.DEVNULL, stderr=log
        )

    workers = {"a": worker("a"), "b": worker("b")}
    try:
        assert hisp.in_data.wait(60), (tmp_path / "a.log").read_text()
        # The other worker sends the two other messages meanwhile; the stalled one stays in sending.
        deadline = time.monotonic() + 60
        while True:
            with core.db.session() as s:
                rows = s.execute(select(Transmission.state, Transmission.lease_owner)).all()
            if sorted(state for state, _ in rows) == ["sending", "sent", "sent"]:
                break
            assert time.monotonic() < deadline, rows
            time.sleep(0.2)
        [owner] = [owner for state, owner in rows if state == "sending"]
        pid = int(owner.split(":")[1])  # worker names are host:pid:index:suffix
        [victim] = [name for name, p in workers.items() if p.pid == pid]
        workers[victim].send_signal(signal.SIGKILL)
        workers[victim].wait(10)
        assert ("bbdirect.run_transmission", "doing") in _procrastinate_rows(url)
        hisp.release.set()
        workers["c"] = worker("c")  # a replacement, as an orchestrator would start
        deadline = time.monotonic() + 90
        while True:
            with core.db.session() as s:
                states = s.scalars(select(Transmission.state)).all()
            doing = [row for row in _procrastinate_rows(url) if row[1] == "doing"]
            if sorted(states) == ["sent"] * 3 and not doing:
                break
            assert time.monotonic() < deadline, f"still doing: {doing}, transmissions: {states}"
            time.sleep(0.3)
    finally:
        for process in workers.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
        hisp.controller.stop()
    assert len(hisp.accepted) == 3
    logs = "".join((tmp_path / f"{name}.log").read_text(errors="replace") for name in workers)
    assert "Traceback" not in logs, logs
    core.db.dispose()


@pytest.mark.service("postgres")
@pytest.mark.slow
def test_two_workers_never_deliver_an_older_record_after_a_newer_one(postgres, smtp_sink, tmp_path):
    """Issue 14 #1 across processes: one *always* authorization, its record changing while the receiving
    server answers 451 now and then, two procrastinate workers racing. Every message the recipient holds
    carries a record at least as new as the one before it, and the last one carries the newest record."""
    import random
    import re

    from fhir_bridge.db import Authorization, Transmission
    from fhir_bridge.pipeline.states import PENDING

    record = tmp_path / "record"
    record.write_text("0")
    env = {
        **_env(
            postgres,
            "order",
            smtp_sink.host,
            smtp_sink.port,
            debounce_seconds="0.05",
            backoff_base="0.3",
            backoff_max="1.0",
            max_attempts="50",
            sweep_seconds="2",
        ),
        "BBDIRECT_TEST_RECORD_FILE": str(record),
    }
    _, core, _ = _core(env)
    auth = _authorize(core, "p1", "doc@direct.example.org", kind="always", send_now=False)
    child_env = {**os.environ, **env, "PYTHONPATH": os.getcwd()}
    workers = [
        subprocess.Popen(
            [sys.executable, __file__],
            env=child_env,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / f"w{i}.log", "wb"),
        )
        for i in range(2)
    ]
    rng = random.Random(14)
    newest = 30

    def versions() -> list[int]:
        found = (re.search(rb"<ClinicalDocument>(\d+)<", m.data) for m in smtp_sink.messages)
        return [int(v.group(1)) for v in found if v]

    try:
        for version in range(1, newest + 1):
            record.write_text(str(version))
            if rng.random() < 0.4 and not smtp_sink.handler.replies:
                smtp_sink.fail_next("451 4.3.0 Try again later", times=rng.randint(1, 2))
            core.pipeline.notify("p1")
            # Wait for this version's job to exist (or be coalesced into a queued one), then change again.
            time.sleep(rng.uniform(0.05, 0.4))
        deadline = time.monotonic() + 120
        while True:
            with core.db.session() as s:
                pending = s.scalar(
                    select(Transmission.id).where(Transmission.state.in_([str(p) for p in PENDING])).limit(1)
                )
            got = versions()
            if not pending and got and got[-1] == newest:
                break
            assert time.monotonic() < deadline, (got, pending)
            time.sleep(0.3)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(15)
            except subprocess.TimeoutExpired:
                w.kill()
        core.pipeline.queue.close()
    got = versions()
    assert got == sorted(got), got  # never an older record after a newer one
    with core.db.session() as s:
        current = s.get(Authorization, auth.id)
        last = s.scalars(
            select(Transmission)
            .where(Transmission.authorization_id == auth.id, Transmission.sent_at.is_not(None))
            .order_by(Transmission.sent_at.desc())
            .limit(1)
        ).one()
    assert current.last_sent_hash == f"h{newest}" and current.last_sent_at == last.sent_at
    logs = [(tmp_path / f"w{i}.log").read_text(errors="replace") for i in range(2)]
    assert all("Traceback" not in log for log in logs), logs
    core.db.dispose()


if __name__ == "__main__":
    _worker_main()
