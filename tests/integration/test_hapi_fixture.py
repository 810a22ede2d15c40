"""The HAPI fixture serves what the test wrote: a Patient round-trips, and a rest-hook Subscription delivers."""

from __future__ import annotations

import http.server
import json
import queue
import threading
import time
import uuid

import pytest
import requests

from tests.fixtures.hapi import HapiServer

pytestmark = pytest.mark.service("hapi")


def test_patient_created_and_read_back(hapi: HapiServer) -> None:
    family = f"Fixture-{uuid.uuid4().hex[:8]}"
    created = hapi.create({"resourceType": "Patient", "name": [{"family": family, "given": ["Ada"]}]})

    read = requests.get(hapi.url(f"Patient/{created['id']}"), timeout=30)

    assert read.status_code == 200
    assert read.json()["name"][0]["family"] == family
    metadata = requests.get(hapi.url("metadata"), timeout=30).json()
    assert metadata["fhirVersion"] == "4.0.1"


def test_rest_hook_subscription_delivers_to_a_local_listener(hapi: HapiServer) -> None:
    received: queue.Queue[tuple[str, str, dict[str, str], bytes]] = queue.Queue()

    class Hook(http.server.BaseHTTPRequestHandler):
        def _record(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.put((self.command, self.path, dict(self.headers), body))
            self.send_response(200)
            self.end_headers()

        do_PUT = do_POST = _record

        def log_message(self, *args: object) -> None:
            pass

    listener = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    patient = hapi.create({"resourceType": "Patient", "name": [{"family": "Hooked"}]})
    code = f"fixture-{uuid.uuid4().hex[:8]}"
    subscription = hapi.create(
        {
            "resourceType": "Subscription",
            "status": "requested",
            "reason": "fixture test",
            "criteria": f"Observation?code={code}",
            "channel": {
                "type": "rest-hook",
                "endpoint": f"http://127.0.0.1:{listener.server_port}/hook",
                "payload": "application/fhir+json",
                "header": ["X-Test-Secret: s3cret"],
            },
        }
    )
    try:
        deadline = time.monotonic() + 30  # HAPI activates a "requested" Subscription asynchronously
        while (
            requests.get(hapi.url(f"Subscription/{subscription['id']}"), timeout=30).json()["status"]
            != "active"
        ):
            assert time.monotonic() < deadline, "Subscription never became active"
            time.sleep(0.2)
        observation = hapi.create(
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"code": code}]},
                "subject": {"reference": f"Patient/{patient['id']}"},
            }
        )
        method, path, headers, body = received.get(timeout=30)
        assert method == "PUT"
        assert path == f"/hook/Observation/{observation['id']}"
        assert headers.get("X-Test-Secret") == "s3cret"
        assert json.loads(body)["subject"]["reference"] == f"Patient/{patient['id']}"
    finally:
        requests.delete(hapi.url(f"Subscription/{subscription['id']}"), timeout=30)
        listener.shutdown()
