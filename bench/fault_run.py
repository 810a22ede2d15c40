"""Fault run of the sidecar: *always* authorizations under kills, 451s and dropped connections, judged by the
receiving side.

Why: the pipeline's promises (no change lost, one message per job, a stale record never delivered after a
newer one, the API telling what the recipient got) are about what happens when things break. This script
breaks them for ``--minutes`` on loopback, with real parts only, and lets an independent judge - the
receiving SMTP server, which decrypts every message it accepts - say whether the promises held.

Parts: a real HAPI FHIR server (tests/fixtures/hapi.py), BIND9 publishing one certificate per recipient as
DNS CERT records, ``bbdirect serve`` as its own process on SQLite (polling + pings, local workers), and the
faulty receiving server of tests/fixtures/smtp.py. ``--patients`` patients each get an *always*
authorization to their own Direct address, made through the REST API.

During the run, concurrently:

* *changes*: every ``--change-interval`` (random in [0.5x, 1.5x]) one random patient's Observation
  ``f<n>`` is rewritten in HAPI with that patient's next counter value, then the sidecar is pinged (best
  effort: a ping to a dead sidecar is lost, polling must catch the change);
* *kills*: ``kill -9`` of the sidecar at random moments - some while the receiving server holds the final
  reply of a DATA (the sink tells the killer the data are in; half of those it has already stored), some at
  any moment, some during start-up - and a restart, timed to ``/readyz``;
* *receiver faults*: stretches in which every DATA is answered ``451``, and connections cut mid-DATA.

Then changes stop, faults stop, and the sidecar drains. Invariants (exit 1 if any fails):

1. every recipient's last accepted message carries the newest counter written for its patient (no change
   lost, newest last);
2. no out-of-order delivery: no message accepted with an older counter than one already accepted for that
   recipient;
3. one job, one message: no Message-ID accepted with two different contents, and no accepted Message-ID
   that no transmission carries (a job that replaced its stored message with a new one);
4. the API agrees with the sink: per authorization the newest sent transmission's Message-ID is the last
   one the recipient accepted, ``last_sent_at`` is its ``sent_at``, every transmission is settled and none
   failed, and every Message-ID the API calls sent was accepted.

With ``--postgres`` the database is PostgreSQL (tests/fixtures/postgres.py) with procrastinate's queue:
``bbdirect serve`` only queues, two ``bbdirect worker`` processes send, and the killer picks among the
three (a mid-DATA kill hits the process that holds the SMTP connection, found through /proc). A fifth
invariant: after the drain no procrastinate job is left in ``doing``.

Also reported: kills by kind and process, restarts and restart-to-ready times (``/readyz`` of serve), 451s
answered, drops done, holds, pings lost, messages and duplicates (identical re-sends of an ambiguous
hand-over), messages the recipient holds that the API records as not sent (a kill after the server
stored the message, before the 250 reached the sidecar: SMTP cannot tell), RSS per process.

Usage:  .venv/bin/python -m bench.fault_run --minutes 10 [--patients 40] [--postgres] [--json [OUT]]
        (or ``python -m bench fault ...``; ``--help`` lists the knobs; exit status 1 = an invariant failed)
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.serialization import Encoding  # noqa: E402
from lxml import etree  # noqa: E402

from bench.patients import load_patients  # noqa: E402
from direct.smime.identity import Identity  # noqa: E402
from direct.smime.seal import unseal  # noqa: E402
from tests.fixtures.bind import BindServer  # noqa: E402
from tests.fixtures.hapi import start_hapi, stop_hapi  # noqa: E402
from tests.fixtures.smtp import FaultySink, start_faulty_sink  # noqa: E402
from tests.support.pki import TestPKI  # noqa: E402
from tests.support.services import free_port, which  # noqa: E402

KEY = "fault-key"
DOMAIN = "hisp-fault.test"
SENDER = "bluebutton@sender-fault.test"
LOINC = "2345-7"
HL7 = "{urn:hl7-org:v3}"
SENT_STATES = {"sent", "processed", "dispatched"}
OPEN_STATES = {"queued", "retrying", "building", "sending"}


def log(*parts: object) -> None:
    print(time.strftime("%H:%M:%S"), *parts, flush=True)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def observation(patient_id: str, n: int, counter: int) -> dict:
    """The one Observation per patient whose value is the change counter (what the judge reads back)."""
    return {
        "resourceType": "Observation",
        "id": f"f{n}",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": LOINC, "display": "Glucose"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2026-01-02T10:00:00Z",
        "valueQuantity": {
            "value": counter,
            "unit": "mg/dL",
            "system": "http://unitsofmeasure.org",
            "code": "mg/dL",
        },
    }


def counter_of(ccd: bytes) -> int | None:
    """The counter in a C-CDA: the value of the observation coded LOINC 2345-7."""
    found = None
    parser = etree.XMLParser(resolve_entities=False, no_network=True)  # our own sender's output, still
    for obs in etree.fromstring(ccd, parser).iter(f"{HL7}observation"):
        code = obs.find(f"{HL7}code")
        value = obs.find(f"{HL7}value")
        if code is not None and code.get("code") == LOINC and value is not None and value.get("value"):
            number = int(float(value.get("value", "")))
            found = number if found is None else max(found, number)
    return found


# --- the sidecar process --------------------------------------------------------------------------------
class Sidecar:
    """``bbdirect serve`` (and, on PostgreSQL, ``bbdirect worker`` processes) as subprocesses that can be
    killed and started again on the same database. ``serve`` is the one with the API; RSS is kept per name."""

    def __init__(self, tmp: Path, settings: dict[str, dict], database_url: str, workers: int = 0):
        self.port = free_port()
        settings.setdefault("server", {}).update(
            port=self.port,
            public_url=f"http://127.0.0.1:{self.port}",
            api_keys=[f"fault:{KEY}"],
            secret_key="fault-run",  # noqa: S106 (a throw-away sidecar on loopback)
            log_level="WARNING",
            threads=8,
        )
        settings.setdefault("database", {})["url"] = database_url
        self.config = tmp / "fault.toml"
        self.config.write_text(
            "".join(
                f"[{section}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in values.items())
                for section, values in settings.items()
            )
        )
        cli = [sys.executable, "-m", "bbdirect.cli"]
        self.commands = {"serve": [*cli, "serve", "--config", str(self.config)]}
        for i in range(workers):
            self.commands[f"worker{i + 1}"] = [*cli, "worker", "--config", str(self.config)]
        self.tmp = tmp
        self.logs = {name: open(tmp / f"{name}.log", "ab") for name in self.commands}
        self.base = f"http://127.0.0.1:{self.port}"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {KEY}"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.started_at = 0.0
        self.lock = threading.RLock()
        self.hwm_kib: dict[str, int] = {}
        self.rss_kib: dict[str, list[int]] = {}

    def run_once(self, *args: str) -> None:
        """A one-shot command (``db upgrade``) on the same configuration."""
        cli = [sys.executable, "-m", "bbdirect.cli", *args, "--config", str(self.config)]
        subprocess.run(cli, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)

    def start(self, name: str = "serve") -> None:
        with self.lock:
            log_file = self.logs[name]
            log_file.write(f"\n==== start {time.strftime('%H:%M:%S')}\n".encode())
            log_file.flush()
            if name == "serve":
                self.started_at = time.monotonic()
            self.processes[name] = subprocess.Popen(
                self.commands[name],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=log_file,
                stderr=log_file,
            )

    def start_all(self) -> None:
        for name in self.commands:
            self.start(name)

    def alive(self, name: str = "serve") -> bool:
        process = self.processes.get(name)
        return process is not None and process.poll() is None

    def ready(self) -> bool:
        try:
            return self.http.get(self.base + "/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Seconds from start of ``serve`` to its first 200 of /readyz (raises if it died or timed out)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"sidecar exited with {self.processes['serve'].returncode}")
            if self.ready():
                return time.monotonic() - self.started_at
            time.sleep(0.05)
        raise TimeoutError("sidecar not ready")

    def kill(self, name: str = "serve") -> None:
        with self.lock:
            if self.alive(name):
                process = self.processes[name]
                self.sample_rss()
                process.send_signal(signal.SIGKILL)
                process.wait(30)

    def owner_of(self, local_port: int) -> str | None:
        """Which of our processes holds the TCP socket bound to ``local_port`` (the SMTP client's side)."""
        inodes = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == local_port:
                    inodes.add(f"socket:[{fields[9]}]")
        for name, process in self.processes.items():
            try:
                fds = os.listdir(f"/proc/{process.pid}/fd")
            except OSError:
                continue
            for fd in fds:
                try:
                    if os.readlink(f"/proc/{process.pid}/fd/{fd}") in inodes:
                        return name
                except OSError:
                    continue
        return None

    def stop(self) -> None:
        with self.lock:
            for process in self.processes.values():
                if process.poll() is None:
                    process.terminate()
            for process in self.processes.values():
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
        for log_file in self.logs.values():
            log_file.close()

    def sample_rss(self) -> None:
        for name, process in list(self.processes.items()):
            if process.poll() is not None:
                continue
            try:
                status = Path(f"/proc/{process.pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS"):
                    self.rss_kib.setdefault(name, []).append(int(line.split()[1]))
                elif line.startswith("VmHWM"):
                    self.hwm_kib[name] = max(self.hwm_kib.get(name, 0), int(line.split()[1]))

    def api(self, method: str, path: str, **kw: Any) -> requests.Response:
        return self.http.request(method, self.base + path, timeout=30, **kw)


# --- the judge ------------------------------------------------------------------------------------------
@dataclass
class Accepted:
    index: int
    at: float
    recipient: str
    message_id: str
    sha256: str
    counter: int | None
    error: str | None = None


@dataclass
class Judge:
    """Decrypts every accepted message with its recipient's key, in acceptance order, off the SMTP thread."""

    sink: FaultySink
    identities: dict[str, Identity]
    anchors: list
    accepted: list[Accepted] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    keep_dir: Path | None = None  # where messages the judge cannot read are kept for inspection

    def run(self) -> None:
        while True:
            self.catch_up()
            if self.stop.is_set():
                self.catch_up()
                return
            time.sleep(0.2)

    def catch_up(self) -> None:
        with self.lock:  # the judge thread and the drain loop both call this; one reader at a time
            for message in self.sink.messages[len(self.accepted) :]:
                self.accepted.append(self.judge(len(self.accepted), message))

    def judge(self, index: int, message: Any) -> Accepted:
        recipient = message.rcpt_tos[0].lower()
        digest = hashlib.sha256(message.data).hexdigest()
        result = unseal(message.data, [self.identities[recipient]], self.anchors)
        if not result.ok:
            code = getattr(result.error, "code", type(result.error).__name__)
            if self.keep_dir is not None:
                self.keep_dir.mkdir(exist_ok=True)
                (self.keep_dir / f"{index}.eml").write_bytes(message.data)
            return Accepted(index, message.at, recipient, str(result.message_id), digest, None, str(code))
        ccds = [a for a in result.attachments if a.filename.lower().endswith(".xml")]
        counter = counter_of(ccds[0].data) if ccds else None
        error = None if counter is not None else ("no_counter_in_ccd" if ccds else "no_ccd_attachment")
        if error and self.keep_dir is not None:
            self.keep_dir.mkdir(exist_ok=True)
            (self.keep_dir / f"{index}.eml").write_bytes(message.data)
            for a in result.attachments:
                (self.keep_dir / f"{index}-{a.filename}").write_bytes(a.data)
        return Accepted(index, message.at, recipient, str(result.message_id), digest, counter, error)


# --- the run --------------------------------------------------------------------------------------------
@dataclass
class Stats:
    kills: dict[str, int] = field(default_factory=lambda: {"mid_data": 0, "any_moment": 0, "starting": 0})
    holds_committed: int = 0
    restarts: int = 0
    worker_restarts: int = 0
    killed: dict[str, int] = field(default_factory=dict)
    ready_s: list[float] = field(default_factory=list)
    changes: int = 0
    pings_ok: int = 0
    pings_lost: int = 0
    stretches_451: int = 0
    errors: list[str] = field(default_factory=list)


class Run:
    def __init__(
        self, args: argparse.Namespace, sidecar: Sidecar, sink: FaultySink, hapi, patients: list[str]
    ):
        self.args = args
        self.sidecar = sidecar
        self.sink = sink
        self.hapi = hapi
        self.patients = patients
        self.written = [0] * len(patients)  # newest counter HAPI confirmed, per patient
        self.stats = Stats()
        self.stop = threading.Event()
        self.rng = random.Random(args.seed)
        self.http = requests.Session()

    # changes
    def writer(self) -> None:
        mean = self.args.change_interval
        pings = requests.Session()
        pings.headers["Authorization"] = f"Bearer {KEY}"
        while not self.stop.wait(self.rng.uniform(0.5 * mean, 1.5 * mean)):
            n = self.rng.randrange(len(self.patients))
            counter = self.written[n] + 1
            try:
                self.http.put(
                    self.hapi.url(f"Observation/f{n}"),
                    json=observation(self.patients[n], n, counter),
                    headers={"Content-Type": "application/fhir+json"},
                    timeout=30,
                ).raise_for_status()
            except requests.RequestException as exc:
                self.stats.errors.append(f"HAPI write: {type(exc).__name__}")
                continue
            self.written[n] = counter
            self.stats.changes += 1
            try:
                r = pings.post(f"{self.sidecar.base}/api/v1/patients/{self.patients[n]}/changed", timeout=2)
                ok = r.status_code == 202
            except requests.RequestException:
                ok = False
            if ok:
                self.stats.pings_ok += 1
            else:
                self.stats.pings_lost += 1

    # receiver faults
    def faults(self) -> None:
        handler = self.sink.handler
        while not self.stop.wait(self.rng.uniform(4, 15)):
            if self.rng.random() < 0.5:
                self.stats.stretches_451 += 1
                handler.answer_451 = True
                self.stop.wait(self.rng.uniform(2, 10))
                handler.answer_451 = False
            else:
                handler.drop_next(self.rng.randint(1, 4))

    # kills
    def restart(self, name: str = "serve", kill_while_starting: bool = True) -> None:
        self.sidecar.start(name)
        self.stats.restarts += 1
        if name != "serve":
            self.stats.worker_restarts += 1
            return
        if kill_while_starting and self.rng.random() < 0.1:  # killed again while starting
            time.sleep(self.rng.uniform(0.05, 1.5))
            if not self.sidecar.ready():
                self.sidecar.kill()
                self.stats.kills["starting"] += 1
                self.sidecar.start()
                self.stats.restarts += 1
        try:
            self.stats.ready_s.append(self.sidecar.wait_ready())
        except (RuntimeError, TimeoutError) as exc:
            self.stats.errors.append(f"restart: {exc}")
            self.sidecar.kill()
            self.sidecar.start()
            self.stats.restarts += 1
            self.stats.ready_s.append(self.sidecar.wait_ready())

    def killer(self) -> None:
        handler = self.sink.handler
        lo, hi = self.args.kill_every
        names = list(self.sidecar.commands)
        while not self.stop.wait(self.rng.uniform(lo, hi)):
            victim = self.rng.choice(names)
            if self.rng.random() < 0.6:
                commit = self.rng.random() < 0.5
                handler.hold_next(commit)
                deadline = time.monotonic() + 15
                while not handler.held.wait(0.05) and time.monotonic() < deadline:
                    if self.stop.is_set():
                        break
                if self.stop.is_set():
                    handler.release()
                    return
                hit = handler.held.is_set()
                if hit:
                    # The process holding the SMTP connection: serve on SQLite, one of the workers on PostgreSQL.
                    victim = self.sidecar.owner_of(handler.held_peer[1]) or victim
                    time.sleep(self.rng.uniform(0, 0.05))
                self.sidecar.kill(victim)
                handler.release()
                if hit:
                    self.stats.kills["mid_data"] += 1
                    self.stats.holds_committed += commit
                else:
                    self.stats.kills["any_moment"] += 1
            else:
                self.sidecar.kill(victim)
                self.stats.kills["any_moment"] += 1
            self.stats.killed[victim] = self.stats.killed.get(victim, 0) + 1
            self.restart(victim)

    def sampler(self) -> None:
        while not self.stop.wait(1.0):
            self.sidecar.sample_rss()

    def go(self) -> None:
        threads = [
            threading.Thread(target=self.guard(f), name=f.__name__, daemon=True)
            for f in (self.writer, self.faults, self.killer, self.sampler)
        ]
        for t in threads:
            t.start()
        end = time.monotonic() + 60 * self.args.minutes
        while time.monotonic() < end:
            time.sleep(min(30, max(0.1, end - time.monotonic())))
            if time.monotonic() < end:
                log(
                    f"changes {self.stats.changes}, messages {len(self.sink.messages)}, kills "
                    f"{sum(self.stats.kills.values())}, 451s {self.sink.handler.answered_451}, drops "
                    f"{self.sink.handler.drops_done}"
                )
        self.stop.set()
        for t in threads:
            t.join(60)
        handler = self.sink.handler
        handler.answer_451 = False
        handler.drops_pending = 0
        handler.release()
        for name in self.sidecar.commands:
            if not self.sidecar.alive(name):
                self.restart(name, kill_while_starting=False)

    def guard(self, target):  # type: ignore[no-untyped-def]
        def run() -> None:
            try:
                target()
            except Exception as exc:  # a dead fault thread must show in the report, not hang the run
                self.stats.errors.append(f"{target.__name__}: {type(exc).__name__}: {exc}")

        return run


# --- verdict --------------------------------------------------------------------------------------------
def queue_depth(sidecar: Sidecar) -> int | None:
    try:
        text = sidecar.api("GET", "/metrics").text
    except requests.RequestException:
        return None
    return sum(int(float(v)) for v in re.findall(r"^bbdirect_queue_depth\{[^}]*\} (\S+)$", text, re.M))


def drain(run: Run, judge: Judge, addresses: list[str], timeout: float) -> float:
    """Wait until every recipient holds its patient's newest counter and nothing is queued; seconds taken."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        judge.catch_up()
        last: dict[str, int | None] = {}
        for a in judge.accepted:
            last[a.recipient] = a.counter
        done = all(last.get(addr) == run.written[n] for n, addr in enumerate(addresses))
        if done and queue_depth(run.sidecar) == 0:
            return time.monotonic() - t0
        time.sleep(1.0)
    return time.monotonic() - t0


def verdict(run: Run, judge: Judge, addresses: list[str], auth_ids: list[str]) -> dict:
    judge.catch_up()
    by_recipient: dict[str, list[Accepted]] = {a: [] for a in addresses}
    contents: dict[str, set[str]] = {}
    undecryptable = 0
    for a in judge.accepted:
        by_recipient.setdefault(a.recipient, []).append(a)
        contents.setdefault(a.message_id, set()).add(a.sha256)
        undecryptable += a.error is not None or a.counter is None
    out_of_order: list[dict] = []
    not_newest: list[dict] = []
    duplicates = 0
    for n, address in enumerate(addresses):
        seen: set[str] = set()
        high = -1
        for a in by_recipient[address]:
            duplicates += a.message_id in seen
            seen.add(a.message_id)
            if a.counter is not None and a.counter < high:
                out_of_order.append({"recipient": address, "counter": a.counter, "after": high})
            high = max(high, a.counter if a.counter is not None else -1)
        last = by_recipient[address][-1].counter if by_recipient[address] else None
        if last != run.written[n]:
            not_newest.append({"recipient": address, "last": last, "newest_written": run.written[n]})
    two_contents = [mid for mid, hashes in contents.items() if len(hashes) > 1]

    api_problems: list[str] = []
    sink_mids = {a.message_id for a in judge.accepted}
    sent_not_accepted = 0
    accepted_not_sent = 0
    unknown_to_api = 0
    api_states: dict[str, int] = {}
    for n, auth_id in enumerate(auth_ids):
        address = addresses[n]
        auth = run.sidecar.api("GET", f"/api/v1/authorizations/{auth_id}").json()["authorization"]
        txs = run.sidecar.api("GET", f"/api/v1/authorizations/{auth_id}/transmissions").json()[
            "transmissions"
        ]
        for tx in txs:
            key = tx["state"] + (f"/{tx['reason']['code']}" if tx.get("reason") else "")
            api_states[key] = api_states.get(key, 0) + 1
        sent = [t for t in txs if t["state"] in SENT_STATES]
        for t in sent:
            sent_not_accepted += t["message_id"] not in sink_mids
        api_mids = {t["message_id"] for t in sent}
        every_mid = {t["message_id"] for t in txs if t["message_id"]}
        # A Message-ID the recipient holds that no transmission carries: a job replaced its stored message
        # (a second, different message from one job).
        unknown_to_api += len({a.message_id for a in by_recipient[address]} - every_mid)
        accepted_not_sent += len({a.message_id for a in by_recipient[address]} - api_mids)
        open_or_failed = [t["state"] for t in txs if t["state"] in OPEN_STATES | {"failed"}]
        if open_or_failed:
            api_problems.append(f"{address}: transmissions {open_or_failed}")
        if not sent or not by_recipient[address]:
            api_problems.append(f"{address}: nothing sent per API or sink")
            continue
        newest = max(sent, key=lambda t: t["sent_at"])
        if newest["message_id"] != by_recipient[address][-1].message_id:
            api_problems.append(f"{address}: API newest sent {newest['id']} is not the sink's last message")
        if auth["last_sent_at"] != newest["sent_at"]:
            api_problems.append(
                f"{address}: last_sent_at {auth['last_sent_at']} != newest sent_at {newest['sent_at']}"
            )
        latest = auth.get("latest_transmission") or {}
        if latest.get("state") not in SENT_STATES | {"skipped"}:
            api_problems.append(f"{address}: latest transmission is {latest.get('state')}")
        elif latest["state"] in SENT_STATES and latest["message_id"] != by_recipient[address][-1].message_id:
            # The API's newest transmission is sent, yet the recipient's last message is another (older) one.
            api_problems.append(f"{address}: API latest transmission {latest['id']} is not the sink's last")
    if sent_not_accepted:
        api_problems.append(f"{sent_not_accepted} transmissions the API calls sent never reached the sink")
    stats = run.stats
    handler = run.sink.handler
    return {
        "invariants": {
            "every_recipient_has_newest": not not_newest,
            "no_out_of_order": not out_of_order,
            "one_message_per_job": not two_contents and not unknown_to_api,
            "api_agrees_with_sink": not api_problems,
            "all_messages_decrypted": not undecryptable,
        },
        "not_newest": not_newest,
        "out_of_order": len(out_of_order),
        "out_of_order_examples": out_of_order[:5],
        "message_ids_with_two_contents": two_contents[:5],
        "accepted_message_ids_no_job_has": unknown_to_api,
        "api_problems": api_problems[:20],
        "messages_accepted": len(judge.accepted),
        "duplicates_identical": duplicates,
        "accepted_but_not_sent_per_api": accepted_not_sent,
        "undecryptable": undecryptable,
        "undecryptable_reasons": {
            reason: sum(
                1
                for a in judge.accepted
                if (a.error or ("no_counter" if a.counter is None else None)) == reason
            )
            for reason in {a.error or "no_counter" for a in judge.accepted if a.error or a.counter is None}
        },
        "api_transmission_states": dict(sorted(api_states.items())),
        "changes_written": stats.changes,
        "pings_ok": stats.pings_ok,
        "pings_lost": stats.pings_lost,
        "kills": dict(stats.kills, total=sum(stats.kills.values())),
        "killed_processes": stats.killed,
        "worker_restarts": stats.worker_restarts,
        "mid_data_kills_after_store": stats.holds_committed,
        "holds_client_vanished": handler.holds_lost,
        "restarts": stats.restarts,
        "ready_s": {
            "min": round(min(stats.ready_s), 2) if stats.ready_s else None,
            "median": round(statistics.median(stats.ready_s), 2) if stats.ready_s else None,
            "max": round(max(stats.ready_s), 2) if stats.ready_s else None,
        },
        "answered_451": handler.answered_451,
        "stretches_451": stats.stretches_451,
        "drops_mid_data": handler.drops_done,
        "data_commands": handler.data_started,
        "rss_mib": {
            name: {
                "median": round(statistics.median(values) / 1024, 1),
                "max": round(max(values) / 1024, 1),
                "peak_hwm": round(run.sidecar.hwm_kib.get(name, 0) / 1024, 1),
            }
            for name, values in run.sidecar.rss_kib.items()
        },
        "errors": stats.errors[:20],
    }


def procrastinate_jobs(url: str) -> dict[str, int]:
    """procrastinate's job rows by status after the drain (a dead worker's job must not stay in ``doing``)."""
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY 1").fetchall()
    return {status: count for status, count in rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--patients", type=int, default=40)
    parser.add_argument("--change-interval", type=float, default=0.3, help="mean seconds between changes")
    parser.add_argument("--kill-every", type=float, nargs=2, default=(8.0, 30.0), metavar=("MIN", "MAX"))
    parser.add_argument("--debounce", type=float, default=0.5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--lease-seconds", type=float, default=10.0)
    parser.add_argument("--drain-timeout", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="PostgreSQL (tests/fixtures/postgres.py) with procrastinate: serve + 2 'bbdirect worker' processes",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, database)")
    parser.add_argument(
        "--json", nargs="?", const="-", help="print the result as JSON (or write it to the file given)"
    )
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.randrange(2**31)
    for program in ("java", "named", "rndc"):
        if not which(program):
            print(f"{program} is not installed (make setup)", file=sys.stderr)
            return 2
    tmp = Path(tempfile.mkdtemp(prefix="bbdirect-fault-run-"))
    log(f"fault run: {args.minutes} min, {args.patients} patients, seed {args.seed}, folder {tmp}")
    pki = TestPKI(tmp / "pki")
    sender = pki.address(SENDER, issuer=pki.root)
    cert_path, key_path = pki.write(sender, "sender")
    addresses = [f"dr{n}@{DOMAIN}" for n in range(args.patients)]
    recipients = {a: pki.address(a, issuer=pki.root) for a in addresses}
    (tmp / "bind").mkdir()
    bind = BindServer(tmp / "bind", which("named"), which("rndc"))
    bind.start()
    bind.zone(
        DOMAIN,
        [
            f"{a.split('@')[0]} IN CERT PKIX 0 0 ( "
            f"{base64.b64encode(issued.cert.public_bytes(Encoding.DER)).decode()} )"
            for a, issued in recipients.items()
        ],
    )
    sink = start_faulty_sink()
    judge = Judge(
        sink,
        {a: Identity.from_issued(i) for a, i in recipients.items()},
        [pki.root.cert],
        keep_dir=tmp / "unreadable",
    )
    hapi = None
    sidecar = None
    postgres = None
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "minutes": args.minutes,
        "patients": args.patients,
        "seed": args.seed,
        "database": "postgresql + 2 workers" if args.postgres else "sqlite",
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        log("starting HAPI FHIR...")
        hapi = start_hapi(tmp)
        patients = load_patients(hapi, args.patients, "Fault")
        hapi.transaction(
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {
                        "resource": observation(pid, n, 0),
                        "request": {"method": "PUT", "url": f"Observation/f{n}"},
                    }
                    for n, pid in enumerate(patients)
                ],
            }
        )
        database_url = f"sqlite:///{tmp}/fault.sqlite3"
        if args.postgres:
            from tests.fixtures.postgres import start_postgres

            postgres = start_postgres()
            database_url = postgres.create_database("fault")
        sidecar = Sidecar(
            tmp,
            {
                "fhir": {"base_url": hapi.base_url, "write_consent": False},
                "sources": {
                    "subscriptions": False,
                    "polling": True,
                    "poll_interval": 1.0,
                    "poll_overlap": 2.0,
                    "pings": True,
                },
                "direct": {
                    "dns_server": bind.nameserver,
                    "smtp_host": sink.host,
                    "smtp_port": sink.port,
                    "from_address": SENDER,
                    "identity_cert": str(cert_path),
                    "identity_key": str(key_path),
                    "trust_anchors": [str(pki.root_pem)],
                },
                "pipeline": {
                    "debounce_seconds": args.debounce,
                    "tick_seconds": 0.1,
                    "workers": args.workers,
                    "backoff_base": 0.5,
                    "backoff_max": 5.0,
                    "max_attempts": 10000,
                    "lease_seconds": args.lease_seconds,
                    **({"queue": "procrastinate", "sweep_seconds": 5} if args.postgres else {}),
                },
            },
            database_url,
            workers=2 if args.postgres else 0,
        )
        if args.postgres:
            sidecar.run_once("db", "upgrade")
        sidecar.start_all()
        log(f"sidecar ready in {sidecar.wait_ready():.1f}s; creating {args.patients} authorizations")
        auth_ids = []
        for n, pid in enumerate(patients):
            r = sidecar.api(
                "POST",
                "/api/v1/authorizations",
                json={
                    "patient_id": pid,
                    "address": addresses[n],
                    "kind": "always",
                    "send_now": True,
                    "created_by": {"type": "clinician", "id": "fault-run"},
                    "consent_method": "in_person",
                },
            )
            r.raise_for_status()
            auth_ids.append(r.json()["authorization"]["id"])
        judge_thread = threading.Thread(target=judge.run, name="judge", daemon=True)
        judge_thread.start()
        run = Run(args, sidecar, sink, hapi, patients)
        log(f"faults on for {args.minutes} min")
        run.go()
        log("changes and faults stopped; draining")
        result["drain_s"] = round(drain(run, judge, addresses, args.drain_timeout), 1)
        sidecar.sample_rss()
        result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        judge.stop.set()
        judge_thread.join(120)
        result.update(verdict(run, judge, addresses, auth_ids))
        if args.postgres:
            # procrastinate's stalled-job recovery works on heartbeats: give it its time, then nothing of a
            # killed worker may remain in ``doing`` (issue 14 #3).
            deadline = time.monotonic() + 120
            while procrastinate_jobs(database_url).get("doing", 0) and time.monotonic() < deadline:
                time.sleep(2)
            result["procrastinate_jobs"] = procrastinate_jobs(database_url)
            result["invariants"]["no_procrastinate_job_left_doing"] = not result["procrastinate_jobs"].get(
                "doing", 0
            )
    finally:
        if sidecar is not None:
            sidecar.stop()
        if hapi is not None:
            stop_hapi(hapi.process)
        if postgres is not None:
            from tests.fixtures.postgres import stop_postgres

            stop_postgres(postgres)
        sink.controller.stop()
        bind.stop()
    ok = all(result.get("invariants", {"ran": False}).values())
    result["ok"] = ok
    if args.json == "-":
        print(json.dumps(result, indent=2))
    else:
        report(result)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
    if not args.keep and ok:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    else:
        log(f"logs and database kept in {tmp}")
    return 0 if ok else 1


def report(result: dict) -> None:
    print()
    for name, held in result.get("invariants", {}).items():
        print(f"  [{'PASS' if held else 'FAIL'}] {name}")
    for key, value in result.items():
        if key != "invariants":
            print(f"  {key}: {value}")
    print("OK" if result.get("ok") else "INVARIANT FAILED")


if __name__ == "__main__":
    raise SystemExit(main())
