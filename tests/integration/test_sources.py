"""Change detection against the real HAPI server: rest-hook Subscriptions delivered to our blueprint,
``_lastUpdated`` polling, ``$export?_since=`` polling, and several detectors deduplicated."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from flask import Flask
from werkzeug.serving import make_server

from fhir_bridge.fhir.client import FhirClient
from fhir_bridge.sources.dedup import ChangeFanIn
from fhir_bridge.sources.events import ChangeEvent
from fhir_bridge.sources.notifications import notifications_blueprint
from fhir_bridge.sources.polling import JsonWatermarkStore, Poller
from fhir_bridge.sources.subscription import SECRET_HEADER, SubscriptionManager
from tests.fixtures.hapi import HapiServer

pytestmark = pytest.mark.service("hapi")

SECRET = "test-" + uuid.uuid4().hex
WATCHED = ["Patient", "Observation", "Condition"]


@dataclass
class Hook:
    """Our notification endpoint, served by a real WSGI server, recording what it passes on."""

    endpoint: str
    events: queue.Queue[ChangeEvent]
    wakeups: list[float]
    route: list[Callable[[ChangeEvent], None]]

    def wait_for(self, predicate: Callable[[ChangeEvent], bool], timeout: float = 30.0) -> ChangeEvent:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self.events.get(timeout=max(0.05, deadline - time.monotonic()))
            except queue.Empty:
                break
            if predicate(event):
                return event
        raise AssertionError(f"no matching ChangeEvent within {timeout}s")

    def drain(self) -> None:
        while not self.events.empty():
            self.events.get_nowait()


@pytest.fixture(scope="module")
def hook(hapi: HapiServer) -> Iterator[Hook]:
    events: queue.Queue[ChangeEvent] = queue.Queue()
    wakeups: list[float] = []
    route: list[Callable[[ChangeEvent], None]] = [events.put]
    client = FhirClient(hapi.base_url)
    manager_for_resolver = SubscriptionManager(client, "http://127.0.0.1/unused", SECRET)
    app = Flask("hook-test")
    app.register_blueprint(
        notifications_blueprint(
            lambda e: route[0](e),
            SECRET,
            resolver=manager_for_resolver.resolve_patient,
            on_wakeup=lambda: wakeups.append(time.time()),
            base_url=hapi.base_url,
        ),
        url_prefix="/hooks/fhir",
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield Hook(f"http://127.0.0.1:{server.server_port}/hooks/fhir", events, wakeups, route)
    server.shutdown()


@pytest.fixture(scope="module")
def manager(hapi: HapiServer, hook: Hook) -> Iterator[SubscriptionManager]:
    mgr = SubscriptionManager(
        FhirClient(hapi.base_url),
        hook.endpoint,
        SECRET,
        owner=f"t{uuid.uuid4().hex[:12]}",
        resource_types=WATCHED,
    )
    report = mgr.ensure_subscriptions()
    assert sorted(report.created) == sorted(WATCHED)
    _wait_active(mgr)
    yield mgr
    mgr.remove_subscriptions()


def _wait_active(mgr: SubscriptionManager, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not mgr.all_active():
        assert time.monotonic() < deadline, "HAPI did not activate our Subscriptions"
        time.sleep(0.2)


def _observation(client: FhirClient, patient_id: str, text: str = "glucose") -> dict:
    return client.create(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": text},
            "subject": {"reference": f"Patient/{patient_id}"},
        }
    )


# --- rest-hook subscriptions -------------------------------------------------------------------------------
def test_new_observation_arrives_as_a_change_event_for_its_patient(
    hapi: HapiServer, hook: Hook, manager: SubscriptionManager
) -> None:
    client = FhirClient(hapi.base_url)
    patient = client.create({"resourceType": "Patient"})

    observation = _observation(client, patient["id"])
    event = hook.wait_for(lambda e: e.resource_id == observation["id"])

    assert event.patient_id == patient["id"]
    assert event.source == "subscription"
    assert (event.resource_type, event.version) == ("Observation", "1")


def test_deleted_observation_is_mapped_to_its_patient(
    hapi: HapiServer, hook: Hook, manager: SubscriptionManager
) -> None:
    client = FhirClient(hapi.base_url)
    patient = client.create({"resourceType": "Patient"})
    observation = _observation(client, patient["id"], "to be deleted")
    hook.wait_for(lambda e: e.resource_id == observation["id"])

    client.delete("Observation", observation["id"])
    event = hook.wait_for(lambda e: e.resource_id == observation["id"])

    assert event.patient_id == patient["id"]


def test_subscriptions_are_kept_and_recreated_when_deleted_or_switched_off(
    hapi: HapiServer, hook: Hook, manager: SubscriptionManager
) -> None:
    client = FhirClient(hapi.base_url)
    assert sorted(manager.ensure_subscriptions().kept) == sorted(WATCHED)
    owned = {s["criteria"]: s for s in manager.owned()}

    client.delete("Subscription", owned["Observation?"]["id"])
    switched_off = dict(owned["Condition?"], status="off")
    client.update(switched_off)
    report = manager.ensure_subscriptions()

    assert report.created == ["Observation"]  # it had disappeared
    assert report.recreated == ["Condition"]  # it was there, but off
    assert report.kept == ["Patient"]
    _wait_active(manager)
    patient = client.create({"resourceType": "Patient"})
    observation = _observation(client, patient["id"], "after re-creation")
    assert hook.wait_for(lambda e: e.resource_id == observation["id"]).patient_id == patient["id"]


def test_endpoint_refuses_missing_secret_and_malformed_notifications(hook: Hook) -> None:
    good = {SECRET_HEADER: SECRET, "Content-Type": "application/fhir+json"}
    obs = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "subject": {"reference": "Patient/p9"},
    }

    no_secret = requests.put(f"{hook.endpoint}/Observation/o1", json=obs, timeout=10)
    wrong_secret = requests.put(
        f"{hook.endpoint}/Observation/o1", json=obs, headers={SECRET_HEADER: "nope"}, timeout=10
    )
    mismatch = requests.put(f"{hook.endpoint}/Observation/other", json=obs, headers=good, timeout=10)
    garbage = requests.put(f"{hook.endpoint}/Observation/o1", data=b"{not json", headers=good, timeout=10)
    not_a_patient = requests.put(
        f"{hook.endpoint}/Practitioner/d1",
        json={"resourceType": "Practitioner", "id": "d1"},
        headers=good,
        timeout=10,
    )
    empty_post = requests.post(hook.endpoint, headers={SECRET_HEADER: SECRET}, timeout=10)
    too_big = requests.put(
        f"{hook.endpoint}/Observation/o1", data=b" " * (5 * 2**20 + 1), headers=good, timeout=10
    )
    chunked_too_big = requests.put(
        f"{hook.endpoint}/Observation/o1", data=iter([b" " * 2**20] * 6), headers=good, timeout=10
    )

    assert (no_secret.status_code, wrong_secret.status_code) == (401, 401)
    assert (mismatch.status_code, garbage.status_code) == (400, 400)
    assert not_a_patient.status_code == 200 and not_a_patient.content == b""
    assert empty_post.status_code == 200 and hook.wakeups
    assert (too_big.status_code, chunked_too_big.status_code) == (413, 413)


# --- polling ---------------------------------------------------------------------------------------------
def test_last_updated_polling_reports_each_new_version_once(hapi: HapiServer, tmp_path: Path) -> None:
    client = FhirClient(hapi.base_url)
    store = JsonWatermarkStore(tmp_path / "watermarks.json")
    seen: list[ChangeEvent] = []
    poller = Poller(
        client, store, seen.append, source_name="hapi", resource_types=["Observation", "Condition"]
    )

    assert poller.effective_mode() == "last_updated"
    assert poller.poll_once() == []  # first run: sets the watermark, reports nothing old
    assert store.get("hapi", "Observation") is not None
    patient = client.create({"resourceType": "Patient"})
    observation = _observation(client, patient["id"], "polled")

    first = poller.poll_once()
    again = poller.poll_once()  # inside the overlap window: the same version is not reported twice

    # Changes from just before the first watermark may be re-reported (overlap, at-least-once): look at ours.
    mine = [(e.patient_id, e.resource_id, e.source) for e in first if e.patient_id == patient["id"]]
    assert mine == [(patient["id"], observation["id"], "polling")]
    assert again == []
    assert seen == first
    reloaded = Poller(
        client, JsonWatermarkStore(tmp_path / "watermarks.json"), seen.append, source_name="hapi"
    )
    assert reloaded.store.get("hapi", "Observation") >= store.get("hapi", "Condition")


def test_export_polling_reports_changes_since_the_watermark(hapi: HapiServer, tmp_path: Path) -> None:
    client = FhirClient(hapi.base_url)
    seen: list[ChangeEvent] = []
    poller = Poller(
        client,
        JsonWatermarkStore(tmp_path / "wm.json"),
        seen.append,
        mode="export",
        resource_types=["Patient", "Observation"],
        export_poll_interval=0.5,
    )
    assert poller.poll_once() == []
    patient = client.create({"resourceType": "Patient"})
    observation = _observation(client, patient["id"], "exported")

    events = poller.poll_once()

    ids = {(e.resource_type, e.resource_id) for e in events}
    assert ("Observation", observation["id"]) in ids and ("Patient", patient["id"]) in ids
    assert {e.patient_id for e in events if e.resource_id in {observation["id"], patient["id"]}} == {
        patient["id"]
    }
    assert all(e.source == "export" for e in events)


# --- several detectors together ----------------------------------------------------------------------------
def test_subscription_and_polling_together_report_one_change_once(
    hapi: HapiServer, hook: Hook, manager: SubscriptionManager, tmp_path: Path
) -> None:
    client = FhirClient(hapi.base_url)
    delivered: list[ChangeEvent] = []
    fan_in = ChangeFanIn(delivered.append)
    hook.drain()
    hook.route[0] = lambda e: (fan_in(e), hook.events.put(e))
    try:
        poller = Poller(
            client, JsonWatermarkStore(tmp_path / "wm.json"), fan_in, resource_types=["Observation"]
        )
        poller.poll_once()
        patient = client.create({"resourceType": "Patient"})
        observation = _observation(client, patient["id"], "seen twice")
        hook.wait_for(lambda e: e.resource_id == observation["id"])  # the rest-hook report
        polled = poller.poll_once()  # the polling report of the same version
    finally:
        hook.route[0] = hook.events.put

    # (the overlap may also re-report the previous test's changes: only ours matter here)
    assert [e.resource_id for e in polled if e.patient_id == patient["id"]] == [observation["id"]]
    mine = [e for e in delivered if e.resource_id == observation["id"]]
    assert len(mine) == 1 and mine[0].source == "subscription"
    assert fan_in.dropped >= 1
