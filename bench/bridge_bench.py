"""Sidecar end to end: FHIR write → Direct message accepted by SMTP, with rest-hook and with polling;
sustained throughput with many ``always`` authorizations; memory of the sidecar process.

Method: a real HAPI FHIR server, BIND9 (DNS CERT discovery) and an SMTP listener run on loopback (the test
fixtures' classes); the sidecar runs as its own process (``bbdirect serve --config``, SQLite, local
workers). ``--patients`` patients are loaded into HAPI, each with an ``always`` authorization (created
through the REST API, so each one passes certificate discovery).

* *latency*: an Observation is POSTed to HAPI and the clock stops when the SMTP listener has accepted the
  signed + encrypted message carrying the new C-CDA. The debounce quiet period is part of the product's
  latency by design, so it is set to ``--debounce`` (default 0: measure the machinery) and reported.
  Rest-hook: HAPI notifies the sidecar; polling: ``_lastUpdated`` searches every ``--poll-interval`` s.
* *throughput*: a change ping for every patient at once; messages/s from the first ping to the last
  message accepted (each message = gather the record from HAPI, build the CCD, discover, sign, encrypt,
  SMTP).
* *RSS*: VmRSS and VmHWM (peak) of the sidecar process from /proc after the throughput run.

Nothing here is a test: numbers depend on the machine and its load.

Usage:  .venv/bin/python bench/bridge_bench.py [--patients 1000] [--runs 20] [--workers 4] [--json OUT]
            [--skip-polling] [--profile OUT.txt] [--label COLUMN]
        .venv/bin/python bench/bridge_bench.py --db-only 300   (the pipeline's write path alone, seconds)
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.serialization import Encoding  # noqa: E402

from bench.patients import load_patients  # noqa: E402
from tests.fixtures.bind import BindServer  # noqa: E402
from tests.fixtures.hapi import start_hapi, stop_hapi  # noqa: E402
from tests.fixtures.smtp import start_sink  # noqa: E402
from tests.support.pki import TestPKI  # noqa: E402
from tests.support.services import free_port, wait_for_port, which  # noqa: E402

KEY = "bench-key"
RECIPIENT = "drbench@hisp-bench.test"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def toml_value(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


class Sidecar:
    def __init__(self, tmp: Path, name: str, settings: dict[str, dict]):
        self.port = free_port()
        settings = {**settings, "server": dict(settings.get("server", {}))}
        settings["server"].update(
            port=self.port,
            public_url=f"http://127.0.0.1:{self.port}",
            api_keys=[f"bench:{KEY}"],
            secret_key=f"bench-{name}",
            log_level="WARNING",
            threads=8,
        )
        settings.setdefault("database", {})["url"] = f"sqlite:///{tmp}/{name}.sqlite3"
        config = tmp / f"{name}.toml"
        config.write_text(
            "".join(
                f"[{section}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in values.items())
                for section, values in settings.items()
            )
        )
        self.log = open(tmp / f"{name}.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bbdirect.cli", "serve", "--config", str(config)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=self.log,
            stderr=self.log,
        )
        wait_for_port("127.0.0.1", self.port, timeout=60)
        self.base = f"http://127.0.0.1:{self.port}"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {KEY}"

    def post(self, path: str, body: dict | None = None) -> requests.Response:
        return self.http.post(self.base + path, json=body, timeout=60)

    def rss_kib(self) -> dict[str, int]:
        out = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS", "VmHWM")):
                key, value = line.split(":")
                out[key] = int(value.split()[0])
        return out

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) from /proc, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_profile(sidecar: Sidecar, out: Path) -> subprocess.Popen:
    """py-spy attached to the sidecar until SIGINT: wall-clock samples of every thread (``--idle``)."""
    spy = which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    command = [spy, "record", "--idle", "--threads", "--rate", "50", "--format", "raw", "-o", str(out)]
    process = subprocess.Popen(
        [*command, "-p", str(sidecar.process.pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    return process


def authorize(sidecar: Sidecar, patient_id: str) -> None:
    r = sidecar.post(
        "/api/v1/authorizations",
        {
            "patient_id": patient_id,
            "address": RECIPIENT,
            "kind": "always",
            "send_now": False,
            "created_by": {"type": "clinician", "id": "bench"},
            "consent_method": "in_person",
        },
    )
    r.raise_for_status()


def observation(patient_id: str, value: float) -> dict:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2026-01-02T10:00:00Z",
        "valueQuantity": {
            "value": value,
            "unit": "mg/dL",
            "system": "http://unitsofmeasure.org",
            "code": "mg/dL",
        },
    }


def measure_latency(hapi, sink, patient_id: str, runs: int) -> list[float]:
    samples = []
    for i in range(runs):
        before = len(sink.messages)
        start = time.perf_counter()
        requests.post(
            hapi.url("Observation"),
            json=observation(patient_id, 100 + i),
            headers={"Content-Type": "application/fhir+json"},
            timeout=30,
        ).raise_for_status()
        sink.wait_for(before + 1, timeout=120)
        samples.append(time.perf_counter() - start)
        time.sleep(0.3)
    return samples


def pipeline_db_only(patients: int, workers: int) -> int:
    """The pipeline's database work alone: ``bbdirect``'s Pipeline and LocalRunner threads on a real SQLite
    file, with the record, sealing and SMTP replaced by the unit tests' doubles (sleeping 10 / 5 / 3 ms,
    releasing the GIL like the network would). ``patients`` always-patients pinged at once from a thread.

    Why: on a shared machine the full run's msg/s moves with the other work more than with a change; this
    isolates the write path and prints per-message counters that move less: write transactions, time
    waiting for / holding the write lock (``Database.writer_stats``, where the tree has it), CPU.
    """
    import threading

    from fhir_bridge import audit
    from fhir_bridge.config import load_settings
    from fhir_bridge.consent.model import parse_request
    from fhir_bridge.consent.service import ConsentService
    from fhir_bridge.db import Database
    from fhir_bridge.pipeline.runner import LocalRunner
    from fhir_bridge.pipeline.service import Pipeline
    from tests.unit import test_pipeline as doubles

    class Record(doubles.RecordDouble):
        def build(self, auth):  # type: ignore[no-untyped-def]
            time.sleep(0.010)
            return super().build(auth)

    class Sender(doubles.SenderDouble):
        def prepare(self, auth, document):  # type: ignore[no-untyped-def]
            time.sleep(0.005)
            return super().prepare(auth, document)

        def deliver(self, prepared) -> None:  # type: ignore[no-untyped-def]
            time.sleep(0.003)
            self.delivered.append(prepared)

    tmp = Path(tempfile.mkdtemp(prefix="bbdirect-pipeline-bench-"))
    settings = load_settings(env={}, database_url=f"sqlite:///{tmp}/p.sqlite3", pipeline_debounce_seconds=0.0)
    db = Database(settings.database_url)
    db.upgrade()
    sender = Sender()
    pipeline = Pipeline(db, settings, Record(), sender)
    consent = ConsentService(db, pipeline, doubles.Checker())
    for n in range(patients):
        request = {
            "patient_id": f"p{n}",
            "address": "doc@direct.example.org",
            "kind": "always",
            "created_by": {"type": "patient", "id": f"p{n}"},
            "send_now": False,
        }
        consent.create(parse_request(request), audit.Actor("patient", f"p{n}"))
    runner = LocalRunner(pipeline, threads=workers, tick=0.1).start()
    stats = getattr(db, "writer_stats", None)
    before = (stats.transactions, stats.lock_wait_s, stats.held_s) if stats else (0, 0.0, 0.0)
    load = os.getloadavg()[0]
    cpu0, t0 = time.process_time(), time.perf_counter()

    def ping() -> None:
        for n in range(patients):
            pipeline.notify(f"p{n}")

    threading.Thread(target=ping, daemon=True).start()
    while len(sender.delivered) < patients:
        time.sleep(0.01)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    runner.stop()
    line = f"pipeline DB only: {patients / elapsed:.1f} msg/s, CPU {1000 * cpu / patients:.2f} ms/message"
    if stats:
        line += (
            f", write transactions {(stats.transactions - before[0]) / patients:.2f}/message, write lock"
            f" waited {1000 * (stats.lock_wait_s - before[1]) / patients:.1f} ms/message (all threads),"
            f" held {1000 * (stats.held_s - before[2]) / patients:.2f} ms/message"
        )
    print(f"{line}; load {load:.2f} → {os.getloadavg()[0]:.2f}")
    db.dispose()
    return 0


def table_rows(r: dict, label: str) -> str:
    """The run as rows of bench/README.md's Sidecar table (one column: ``label``), ready to paste."""
    load = f"load {r['load_average_before'][0]} → {r['load_average_after'][0]}"
    rows = [
        f"| throughput, {r['throughput_messages']} patients pinged at once ({load}) "
        f"| {r['throughput_msgs_per_s']} msg/s |",
        f"| CPU per message: sidecar / HAPI | {r['cpu_ms_per_message']['sidecar']} / "
        f"{r['cpu_ms_per_message']['hapi']} ms |",
        f"| latency rest-hook p50 / p95 | {r['resthook_latency_s']['p50']:.2f} / "
        f"{r['resthook_latency_s']['p95']:.2f} s |",
    ]
    if "polling_latency_s" in r:
        p = r["polling_latency_s"]
        rows.append(
            f"| latency polling ({p['poll_interval_s']:g} s interval) p50 / p95 | {p['p50']:.2f} / "
            f"{p['p95']:.2f} s |"
        )
    rows.append(f"| authorizations created through the API | {r['authorizations_per_s']} /s |")
    rss = r["sidecar_rss_kib"]
    rows.append(f"| sidecar RSS after the throughput run | {rss.get('VmRSS', 0) // 1024} MiB |")
    return f"| measure | {label} |\n|---|---:|\n" + "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--debounce", type=float, default=0.0)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--label", default="this tree", help="column heading of the printed table rows")
    parser.add_argument("--skip-polling", action="store_true", help="no polling-latency phase")
    parser.add_argument(
        "--profile",
        type=Path,
        help="record the sidecar with py-spy (bench extra) during the throughput run: OUT.txt, collapsed "
        "stacks of every thread including idle ones (wall time), thread ids shown",
    )
    parser.add_argument(
        "--db-only",
        type=int,
        metavar="N",
        help="no HAPI/BIND/SMTP: N patients through the pipeline with doubles, the write path's counters",
    )
    args = parser.parse_args()
    if args.db_only:
        return pipeline_db_only(args.db_only, args.workers)
    for program in ("java", "named", "rndc"):
        if not which(program):
            print(f"{program} is not installed (make setup)", file=sys.stderr)
            return 2
    tmp = Path(tempfile.mkdtemp(prefix="bbdirect-bridge-bench-"))
    pki = TestPKI(tmp / "pki")
    recipient = pki.address(RECIPIENT, issuer=pki.root)
    sender = pki.address("bluebutton@sender-bench.test", issuer=pki.root)
    cert_path, key_path = pki.write(sender, "sender")
    (tmp / "bind").mkdir()
    bind = BindServer(tmp / "bind", which("named"), which("rndc"))
    bind.start()
    der = base64.b64encode(recipient.cert.public_bytes(Encoding.DER)).decode()
    bind.zone("hisp-bench.test", [f"drbench IN CERT PKIX 0 0 ( {der} )"])
    sink = start_sink()
    hapi = start_hapi(tmp)
    results: dict = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "patients": args.patients,
        "workers": args.workers,
        "debounce_s": args.debounce,
    }
    common = {
        # One bench "clinician" creates every authorization through the API key: the per-clinician lookup
        # limit (server.lookups_per_minute_staff) is not what is measured here.
        "server": {"lookups_per_minute_staff": 0},
        "fhir": {"base_url": hapi.base_url, "write_consent": False},
        "direct": {
            "dns_server": bind.nameserver,
            "smtp_host": sink.host,
            "smtp_port": sink.port,
            "from_address": "bluebutton@sender-bench.test",
            "identity_cert": str(cert_path),
            "identity_key": str(key_path),
            "trust_anchors": [str(pki.root_pem)],
        },
        "pipeline": {"debounce_seconds": args.debounce, "tick_seconds": 0.1, "workers": args.workers},
    }
    try:
        print(f"loading {args.patients} patients into HAPI...", flush=True)
        ids = load_patients(hapi, args.patients, "Bench")

        hook = Sidecar(
            tmp, "hook", {**common, "sources": {"subscriptions": True, "subscription_recheck": 5.0}}
        )
        try:
            t0 = time.perf_counter()
            for pid in ids:
                authorize(hook, pid)
            results["authorizations_per_s"] = round(len(ids) / (time.perf_counter() - t0), 1)
            time.sleep(8)  # HAPI activates the Subscriptions
            sink.clear()
            hook_lat = measure_latency(hapi, sink, ids[0], args.runs)
            results["resthook_latency_s"] = {
                "p50": round(statistics.median(hook_lat), 3),
                "p95": round(percentile(hook_lat, 0.95), 3),
            }
            print("rest-hook latency", results["resthook_latency_s"], flush=True)
            # Patients not used for latency: their record was never sent, so every ping yields a message
            # (a patient whose content did not change since its last send is skipped by design).
            targets = ids[2:]
            time.sleep(1.0)
            sink.clear()
            spy = start_profile(hook, args.profile) if args.profile else None
            results["load_average_before"] = [round(x, 2) for x in os.getloadavg()]
            cpu0 = cpu_seconds(hook.process.pid), cpu_seconds(hapi.process.pid)
            t0 = time.perf_counter()
            for pid in targets:
                hook.post(f"/api/v1/patients/{pid}/changed").raise_for_status()
            sink.wait_for(len(targets), timeout=3600)
            elapsed = time.perf_counter() - t0
            results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
            cpu1 = cpu_seconds(hook.process.pid), cpu_seconds(hapi.process.pid)
            results["cpu_ms_per_message"] = {
                "sidecar": round(1000 * (cpu1[0] - cpu0[0]) / len(targets), 1),
                "hapi": round(1000 * (cpu1[1] - cpu0[1]) / len(targets), 1),
            }
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
            results["throughput_messages"] = len(targets)
            results["throughput_msgs_per_s"] = round(len(targets) / elapsed, 2)
            results["throughput_elapsed_s"] = round(elapsed, 1)
            results["sidecar_rss_kib"] = hook.rss_kib()
            print(
                "throughput",
                results["throughput_msgs_per_s"],
                "msg/s; CPU ms/message",
                results["cpu_ms_per_message"],
                "; load",
                results["load_average_before"],
                "→",
                results["load_average_after"],
                "; RSS",
                results["sidecar_rss_kib"],
                flush=True,
            )
        finally:
            hook.stop()

        if not args.skip_polling:
            poll = Sidecar(
                tmp,
                "poll",
                {
                    **common,
                    "sources": {
                        "subscriptions": False,
                        "polling": True,
                        "poll_interval": args.poll_interval,
                        "poll_overlap": 2.0,
                    },
                },
            )
            try:
                authorize(poll, ids[1])
                time.sleep(args.poll_interval * 2 + 1)  # the first poll records the watermark
                sink.clear()
                poll_lat = measure_latency(hapi, sink, ids[1], max(5, args.runs // 2))
                results["polling_latency_s"] = {
                    "p50": round(statistics.median(poll_lat), 3),
                    "p95": round(percentile(poll_lat, 0.95), 3),
                    "poll_interval_s": args.poll_interval,
                }
                print("polling latency", results["polling_latency_s"], flush=True)
            finally:
                poll.stop()
    finally:
        stop_hapi(hapi.process)
        sink.controller.stop()
        bind.stop()
    print(json.dumps(results, indent=2))
    print(table_rows(results, args.label))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
