"""The REST API end to end through Flask: authentication, patient scoping, validation codes, lifecycle.

The address checker here answers from a small table (the real discovery against BIND runs in
test_bridge_e2e.py); everything else — database, migrations, pipeline, audit — is the real thing.
"""

from __future__ import annotations

import hashlib

import pytest

from direct.errors import NoCertificate, Untrusted
from fhir_bridge.app import create_app
from fhir_bridge.config import load_settings
from fhir_bridge.pipeline.ports import Attachment, Document, Prepared

KEY = "integrator-secret-1"


class TableChecker:
    """Discovery outcome per address: trusted, public-only, or no certificate."""

    def check(self, address: str, policy: str) -> bool:
        if address.startswith("nocert@"):
            raise NoCertificate("No certificate was found for nocert@direct.example.org in DNS or LDAP.")
        if address.startswith("public@"):
            if policy == "trusted":
                raise Untrusted()
            return False
        return True


class Builder:
    def build(self, auth):
        return Document([Attachment("CCD.xml", b"<ccd/>", "application/xml")], "h")


class Sender:
    def __init__(self) -> None:
        self.sent: list[Prepared] = []

    def prepare(self, auth, document):
        return Prepared(f"<{len(self.sent)}@t>", "bb@direct.test", [auth.address], b"raw", trusted=True)

    def deliver(self, prepared):
        self.sent.append(prepared)


@pytest.fixture
def client(tmp_path):
    settings = load_settings(
        env={},
        database_url=f"sqlite:///{tmp_path}/api.sqlite3",
        server_api_keys=[f"emr:{KEY}", "ops:sha256:" + hashlib.sha256(b"other").hexdigest()],
        fhir_write_consent=False,
        pipeline_debounce_seconds=0.0,
    )
    sender = Sender()
    app = create_app(
        settings, web=False, detectors=False, builder=Builder(), sender=sender, checker=TableChecker()
    )
    c = app.test_client()
    c.sidecar = app.extensions["bbdirect"]
    c.sender = sender
    return c


def auth_header(token: str = KEY) -> dict:
    return {"Authorization": f"Bearer {token}"}


def body(**over) -> dict:
    data = {
        "patient_id": "p1",
        "address": "dr@direct.example.org",
        "kind": "always",
        "created_by": {"type": "clinician", "id": "u42"},
        "consent_method": "in_person",
        "send_now": True,
    }
    data.update(over)
    return data


def test_every_api_route_needs_a_credential(client):
    assert client.get("/api/v1/patients/p1/authorizations").status_code == 401
    r = client.get("/api/v1/patients/p1/authorizations", headers=auth_header("wrong"))
    assert r.status_code == 401 and r.json["error"]["code"] == "unauthorized"
    assert client.get("/api/v1/patients/p1/authorizations", headers=auth_header("other")).status_code == 200
    assert client.get("/healthz").status_code == 200


def test_create_list_get_revoke_and_transmissions(client):
    r = client.post("/api/v1/authorizations", json=body(), headers=auth_header())
    assert r.status_code == 201, r.json
    auth = r.json["authorization"]
    assert (
        auth["status"] == "active" and auth["trust_policy"] == "trusted" and auth["recipient_trusted"] is True
    )
    assert auth["latest_transmission"]["state"] == "queued"
    client.sidecar.pipeline.run_due("test")
    tx = client.get(f"/api/v1/authorizations/{auth['id']}/transmissions", headers=auth_header()).json
    assert [t["state"] for t in tx["transmissions"]] == ["sent"]
    one = client.get(f"/api/v1/transmissions/{tx['transmissions'][0]['id']}", headers=auth_header()).json
    assert one["transmission"]["message_id"] == "<0@t>"
    listing = client.get("/api/v1/patients/p1/authorizations", headers=auth_header()).json
    assert [a["id"] for a in listing["authorizations"]] == [auth["id"]]
    r = client.post(
        f"/api/v1/authorizations/{auth['id']}/revoke",
        json={"actor": {"type": "clinician", "id": "u42"}},
        headers=auth_header(),
    )
    assert r.status_code == 200 and r.json["authorization"]["status"] == "revoked"
    assert r.json["authorization"]["revoked_by"] == {"type": "clinician", "id": "u42"}
    r = client.post(f"/api/v1/transmissions/{tx['transmissions'][0]['id']}/resend", headers=auth_header())
    assert r.status_code == 409 and r.json["error"]["code"] == "revoked"


@pytest.mark.parametrize(
    ("over", "status", "code", "field"),
    [
        ({"address": "not an address"}, 422, "bad_address", "address"),
        ({"address": "nocert@direct.example.org"}, 422, "no_certificate", "address"),
        ({"address": "public@direct.example.org"}, 422, "untrusted", "address"),  # clinician: must be trusted
        ({"kind": "sometimes"}, 422, "invalid_request", "kind"),
        ({"consent_method": "clipboard"}, 422, "invalid_request", "attestation"),
        ({"patient_id": "../etc"}, 422, "invalid_request", "patient_id"),
        ({"payload": {"type": "documents"}}, 422, "invalid_request", "payload.documents"),
    ],
)
def test_refusals_have_specific_codes_and_save_nothing(client, over, status, code, field):
    r = client.post("/api/v1/authorizations", json=body(**over), headers=auth_header())
    assert r.status_code == status, r.json
    assert (r.json["error"]["code"], r.json["error"]["field"]) == (code, field)
    assert (
        client.get("/api/v1/patients/p1/authorizations", headers=auth_header()).json["authorizations"] == []
    )


def test_a_patient_created_authorization_accepts_a_public_certificate(client):
    token = client.sidecar.tokens.issue("p1")
    r = client.post(
        "/api/v1/authorizations",
        json=body(
            address="public@direct.example.org",
            created_by={"type": "patient", "id": "p1"},
            consent_method="portal",
            kind="once",
        ),
        headers=auth_header(token),
    )
    assert r.status_code == 201, r.json
    assert r.json["authorization"]["trust_policy"] == "public"
    assert r.json["authorization"]["recipient_trusted"] is False


def test_an_api_key_issues_patient_tokens_and_a_patient_token_cannot(client):
    r = client.post("/api/v1/patients/p1/tokens", headers=auth_header())
    assert r.status_code == 201 and r.json["token"].startswith("pt.") and r.json["patient_id"] == "p1"
    h = auth_header(r.json["token"])
    assert client.get("/api/v1/patients/p1/authorizations", headers=h).status_code == 200
    assert client.post("/api/v1/patients/p1/tokens", headers=h).status_code == 403


def test_a_patient_token_acts_only_on_its_own_patient(client):
    other = client.post("/api/v1/authorizations", json=body(patient_id="p2"), headers=auth_header()).json
    token = client.sidecar.tokens.issue("p1")
    h = auth_header(token)
    assert client.get("/api/v1/patients/p2/authorizations", headers=h).status_code == 403
    assert client.get(f"/api/v1/authorizations/{other['authorization']['id']}", headers=h).status_code == 404
    assert (
        client.post(f"/api/v1/authorizations/{other['authorization']['id']}/revoke", headers=h).status_code
        == 404
    )
    r = client.post(
        "/api/v1/authorizations",
        json=body(patient_id="p2", created_by={"type": "patient", "id": "p2"}, consent_method="portal"),
        headers=h,
    )
    assert r.status_code == 403
    assert client.post("/api/v1/patients/p2/changed", headers=h).status_code == 403
    assert client.post("/api/v1/patients/p1/changed", headers=h).status_code == 202
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert client.get("/api/v1/patients/p1/authorizations", headers=auth_header(forged)).status_code == 401


def test_change_ping_is_debounced_into_one_send(client):
    client.post("/api/v1/authorizations", json=body(send_now=False), headers=auth_header())
    for _ in range(5):
        assert client.post("/api/v1/patients/p1/changed", headers=auth_header()).status_code == 202
    client.sidecar.pipeline.run_due("t")
    assert len(client.sender.sent) == 1


def test_malformed_bodies_are_client_errors(client):
    r = client.post(
        "/api/v1/authorizations", data=b"{not json", content_type="application/json", headers=auth_header()
    )
    assert r.status_code == 400 and r.json["error"]["code"] == "bad_json"
    r = client.post("/api/v1/authorizations", json=[1, 2], headers=auth_header())
    assert r.status_code == 422
    assert client.get("/api/v1/authorizations/nope%00", headers=auth_header()).status_code == 404


def test_openapi_health_ready_metrics(client):
    doc = client.get("/openapi.json").json
    assert doc["openapi"].startswith("3.") and "/api/v1/authorizations" in doc["paths"]
    assert client.get("/readyz", headers=auth_header()).json["status"] == "ready"
    client.post("/api/v1/authorizations", json=body(), headers=auth_header())
    client.sidecar.pipeline.run_due("t")
    text = client.get("/metrics", headers=auth_header()).get_data(as_text=True)
    assert 'bbdirect_sends_total{outcome="success"} 1.0' in text
    assert 'bbdirect_queue_depth{state="queued"} 0.0' in text
    assert "bbdirect_send_latency_seconds_count 1.0" in text


# --- resend limits (issue 12 #8) -------------------------------------------------------------
class Clock:
    """The one clock of the consent service and the pipeline, moved by the test (no sleeping)."""

    def __init__(self) -> None:
        from fhir_bridge.db.models import utcnow

        self.now = utcnow()

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self.now += timedelta(seconds=seconds)


def _limited_client(tmp_path, **over):
    settings = load_settings(
        env={},
        database_url=f"sqlite:///{tmp_path}/limits.sqlite3",
        server_api_keys=[f"emr:{KEY}"],
        fhir_write_consent=False,
        pipeline_debounce_seconds=0.0,
        **over,
    )
    app = create_app(
        settings, web=False, detectors=False, builder=Builder(), sender=Sender(), checker=TableChecker()
    )
    c = app.test_client()
    c.sidecar = app.extensions["bbdirect"]
    c.clock = Clock()
    c.sidecar.consent.clock = c.sidecar.pipeline.clock = c.clock
    return c


def _once_by_patient(c, patient: str = "p1") -> tuple[dict, str]:
    token = c.sidecar.tokens.issue(patient)
    r = c.post(
        "/api/v1/authorizations",
        json=body(
            patient_id=patient,
            address="public@direct.example.org",
            created_by={"type": "patient", "id": patient},
            consent_method="portal",
            kind="once",
        ),
        headers=auth_header(token),
    )
    assert r.status_code == 201, r.json
    return r.json["authorization"], token


def _resend_audit(c) -> list[tuple[str, str, str]]:
    from fhir_bridge import audit

    with c.sidecar.db.session() as s:
        rows = audit.history(s)
    return [
        (r.actor_id, r.outcome, (r.detail or {}).get("code", ""))
        for r in rows
        if r.action == "transmission.resend"
    ]


def test_resend_of_a_send_once_authorization_is_refused_within_the_minimum_interval(tmp_path):
    """The review's 51 sends in seconds: now one send, 429 + Retry-After for the rest, each refusal audited."""
    c = _limited_client(tmp_path, pipeline_resend_min_interval=60.0)
    auth, token = _once_by_patient(c)
    tx_id = auth["latest_transmission"]["id"]
    c.clock.advance(5)
    answers = [c.post(f"/api/v1/transmissions/{tx_id}/resend", headers=auth_header(token)) for _ in range(51)]
    assert {r.status_code for r in answers} == {429}
    r = answers[0]
    assert r.json["error"]["code"] == "resend_too_soon" and r.json["error"]["retry_after"] == 55
    assert r.headers["Retry-After"] == "55" and "55" in r.json["error"]["message"]
    txs = c.get(f"/api/v1/authorizations/{auth['id']}/transmissions", headers=auth_header(token)).json
    assert len(txs["transmissions"]) == 1  # nothing more queued
    assert _resend_audit(c) == [("p1", "refused", "resend_too_soon")] * 51
    c.clock.advance(55)
    r = c.post(f"/api/v1/transmissions/{tx_id}/resend", headers=auth_header(token))
    assert r.status_code == 202, r.json
    c.clock.advance(1)
    r = c.post(f"/api/v1/transmissions/{tx_id}/resend", headers=auth_header(token))
    assert r.status_code == 429 and r.headers["Retry-After"] == "59"


def test_resend_quota_per_principal_is_a_sliding_hour(tmp_path):
    c = _limited_client(tmp_path, pipeline_resend_min_interval=10.0, server_resend_quota_per_hour=3)
    first, token = _once_by_patient(c)
    second, _ = _once_by_patient(c)
    txs = [first["latest_transmission"]["id"], second["latest_transmission"]["id"]]
    c.clock.advance(60)
    for i in range(3):  # three resends spread over 20 minutes, alternating authorizations
        r = c.post(f"/api/v1/transmissions/{txs[i % 2]}/resend", headers=auth_header(token))
        assert r.status_code == 202, r.json
        c.clock.advance(600)
    r = c.post(f"/api/v1/transmissions/{txs[1]}/resend", headers=auth_header(token))
    assert r.status_code == 429 and r.json["error"]["code"] == "resend_quota_exceeded"
    # the oldest of the three leaves the hour 3600 - 1800 = 1800 s from now
    assert r.headers["Retry-After"] == "1800" and r.json["error"]["retry_after"] == 1800
    # the quota is the principal's: the integrator's API key still may resend
    assert c.post(f"/api/v1/transmissions/{txs[1]}/resend", headers=auth_header()).status_code == 202
    c.clock.advance(1800)
    r = c.post(f"/api/v1/transmissions/{txs[0]}/resend", headers=auth_header(token))
    assert r.status_code == 202, r.json
    outcomes = [o for actor, o, _ in _resend_audit(c) if actor == "p1"]
    assert outcomes == ["queued", "queued", "queued", "refused", "queued"]


def test_a_retried_resend_with_its_idempotency_key_is_not_refused(tmp_path):
    c = _limited_client(tmp_path, pipeline_resend_min_interval=60.0)
    auth, token = _once_by_patient(c)
    c.clock.advance(120)
    h = {**auth_header(token), "Idempotency-Key": "click-1"}
    one = c.post(f"/api/v1/transmissions/{auth['latest_transmission']['id']}/resend", headers=h)
    again = c.post(f"/api/v1/transmissions/{auth['latest_transmission']['id']}/resend", headers=h)
    assert (one.status_code, again.status_code) == (202, 202)
    assert one.json["transmission"]["id"] == again.json["transmission"]["id"]


def test_concurrent_resends_queue_exactly_one(tmp_path):
    """Twenty simultaneous requests to the real server (waitress, 8 threads): one send, nineteen 429."""
    import threading

    import requests
    import waitress.server

    from tests.support.services import free_port, wait_for_port

    c = _limited_client(tmp_path, pipeline_resend_min_interval=60.0)
    auth, token = _once_by_patient(c)
    c.clock.advance(120)
    port = free_port()
    server = waitress.server.create_server(c.application, host="127.0.0.1", port=port, threads=8)
    threading.Thread(target=server.run, daemon=True).start()
    wait_for_port("127.0.0.1", port)
    url = f"http://127.0.0.1:{port}/api/v1/transmissions/{auth['latest_transmission']['id']}/resend"
    start = threading.Barrier(20)
    codes: list[int] = []

    def hit() -> None:
        start.wait()
        codes.append(requests.post(url, headers=auth_header(token), timeout=60).status_code)

    threads = [threading.Thread(target=hit) for _ in range(20)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        server.task_dispatcher.shutdown()
        server.close()
    assert sorted(codes) == [202] + [429] * 19


def test_the_openapi_document_lists_the_429_of_resend(client):
    doc = client.get("/openapi.json").json
    answers = doc["paths"]["/api/v1/transmissions/{id}/resend"]["post"]["responses"]
    assert "429" in answers and "Retry-After" in answers["429"]["headers"]


# --- operations endpoints (issue 12 #12) -----------------------------------------------------
SCRAPER = "prometheus-scraper-secret"


def test_metrics_and_readiness_answer_only_a_credential(tmp_path):
    settings = load_settings(
        env={"BBDIRECT_SERVER_OPS_KEYS": "prometheus:sha256:" + hashlib.sha256(SCRAPER.encode()).hexdigest()},
        database_url=f"sqlite:///{tmp_path}/ops.sqlite3",
        server_api_keys=[f"emr:{KEY}"],
        fhir_write_consent=False,
    )
    app = create_app(
        settings, web=False, detectors=False, builder=Builder(), sender=Sender(), checker=TableChecker()
    )
    c = app.test_client()
    patient = app.extensions["bbdirect"].tokens.issue("p1")
    for path in ("/metrics", "/readyz"):
        for headers in (
            {},
            auth_header("wrong"),
            auth_header(patient),
            {"Authorization": f"Basic {SCRAPER}"},
        ):
            r = c.get(path, headers=headers)
            assert r.status_code == 401 and r.json["error"]["code"] == "unauthorized", (path, headers)
            assert b"bbdirect_" not in r.data and b"schema" not in r.data
        assert c.get(path, headers=auth_header(SCRAPER)).status_code == 200
        assert c.get(path, headers=auth_header()).status_code == 200
    # the scraper's key opens nothing else
    assert c.get("/api/v1/patients/p1/authorizations", headers=auth_header(SCRAPER)).status_code == 401
    # liveness and the API description stay open
    assert c.get("/healthz").status_code == 200 and c.get("/openapi.json").status_code == 200


def test_ops_public_opens_metrics_and_readiness_on_purpose(tmp_path):
    settings = load_settings(
        env={"BBDIRECT_SERVER_OPS_PUBLIC": "true"},
        database_url=f"sqlite:///{tmp_path}/ops.sqlite3",
        fhir_write_consent=False,
    )
    assert load_settings(env={}).server_ops_public is False  # the default is closed
    c = create_app(
        settings, web=False, detectors=False, builder=Builder(), sender=Sender(), checker=TableChecker()
    ).test_client()
    assert c.get("/metrics").status_code == 200 and c.get("/readyz").json["status"] == "ready"


@pytest.mark.service("postgres")
def test_concurrent_resends_through_two_sidecars_on_postgresql_queue_exactly_one(postgres, tmp_path):
    """Two sidecar apps (two consent services, so no shared in-process lock) on one PostgreSQL database,
    each served by waitress: twenty simultaneous resends of one transmission, and of the same caller on
    different authorizations, are decided by the database locks — one send each, no deadlock."""
    import threading

    import requests
    import waitress.server

    from tests.support.services import free_port, wait_for_port

    url = postgres.create_database("resend_limits")
    apps, servers, ports = [], [], []
    clock = Clock()
    clock.advance(-3600)  # the authorizations' first sends are an hour old: only the limits below decide
    for _ in range(2):
        settings = load_settings(
            env={},
            database_url=url,
            pipeline_queue="local",
            server_api_keys=[f"emr:{KEY}"],
            server_secret_key="pg-limits",
            fhir_write_consent=False,
            pipeline_resend_min_interval=60.0,
            server_resend_quota_per_hour=2,
        )
        app = create_app(
            settings, web=False, detectors=False, builder=Builder(), sender=Sender(), checker=TableChecker()
        )
        app.extensions["bbdirect"].consent.clock = app.extensions["bbdirect"].pipeline.clock = clock
        port = free_port()
        server = waitress.server.create_server(app, host="127.0.0.1", port=port, threads=8)
        threading.Thread(target=server.run, daemon=True).start()
        apps.append(app)
        servers.append(server)
        ports.append(port)
    for port in ports:
        wait_for_port("127.0.0.1", port)
    c = apps[0].test_client()
    c.sidecar = apps[0].extensions["bbdirect"]
    auths = [_once_by_patient(c)[0] for _ in range(3)]
    token = c.sidecar.tokens.issue("p1")
    clock.advance(3600)

    def storm(tx_ids: list[str]) -> list[int]:
        start = threading.Barrier(20)
        codes: list[int] = []

        def hit(i: int) -> None:
            start.wait()
            target = f"http://127.0.0.1:{ports[i % 2]}/api/v1/transmissions/{tx_ids[i % len(tx_ids)]}/resend"
            codes.append(requests.post(target, headers=auth_header(token), timeout=60).status_code)

        threads = [threading.Thread(target=hit, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sorted(codes)

    try:
        # one authorization: the minimum interval lets exactly one through
        assert storm([auths[0]["latest_transmission"]["id"]]) == [202] + [429] * 19
        # the two others at once: the quota (2 an hour, one already used) lets exactly one more through
        ids = [a["latest_transmission"]["id"] for a in auths[1:]]
        assert storm(ids) == [202] + [429] * 19
    finally:
        for server in servers:
            server.task_dispatcher.shutdown()
            server.close()


def test_the_real_sidecar_process_guards_metrics_and_readiness(tmp_path):
    """`bbdirect serve` as operators run it: liveness open, readiness and metrics only to a key."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import requests

    from tests.support.services import free_port, wait_for_port

    port = free_port()
    env = {
        **os.environ,
        "BBDIRECT_DATABASE_URL": f"sqlite:///{tmp_path}/serve.sqlite3",
        "BBDIRECT_SERVER_API_KEYS": f"emr:{KEY}",
        "BBDIRECT_SERVER_OPS_KEYS": f"prometheus:{SCRAPER}",
        "BBDIRECT_SOURCES_SUBSCRIPTIONS": "false",
        "BBDIRECT_FHIR_WRITE_CONSENT": "false",
    }
    env.pop("BBDIRECT_CONFIG", None)
    bbdirect = Path(sys.executable).parent / "bbdirect"
    process = subprocess.Popen(
        [str(bbdirect), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "0"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=60)
        base = f"http://127.0.0.1:{port}"
        assert requests.get(f"{base}/healthz", timeout=10).status_code == 200
        for path in ("/readyz", "/metrics"):
            r = requests.get(base + path, timeout=10)
            assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
            assert requests.get(base + path, headers=auth_header(SCRAPER), timeout=10).status_code == 200
            assert requests.get(base + path, headers=auth_header(), timeout=10).status_code == 200
    finally:
        process.terminate()
        process.wait(30)


def test_lookups_per_principal_are_limited_before_any_discovery(tmp_path):
    """Issue 12 #3: a patient cannot make the sidecar look up addresses without bound (each lookup talks to
    servers the address's domain names); beyond ``server.lookups_per_minute`` the patient's token gets 429,
    nothing is looked up and nothing is saved — while the EMR's API key (a server-side integrator speaking
    for a whole practice) is not held to the patient's limit."""

    class CountingChecker(TableChecker):
        calls = 0

        def check(self, address: str, policy: str) -> bool:
            CountingChecker.calls += 1
            return super().check(address, policy)

    settings = load_settings(
        env={},
        database_url=f"sqlite:///{tmp_path}/limit.sqlite3",
        server_api_keys=[f"emr:{KEY}"],
        server_lookups_per_minute=3,
        fhir_write_consent=False,
    )
    app = create_app(
        settings, web=False, detectors=False, builder=Builder(), sender=Sender(), checker=CountingChecker()
    )
    c = app.test_client()
    patient = auth_header(app.extensions["bbdirect"].tokens.issue("p1"))
    mine = {"created_by": {"type": "patient", "id": "p1"}, "consent_method": "portal", "kind": "once"}
    answers = [
        c.post(
            "/api/v1/authorizations", json=body(address=f"dr{i}@direct.example.org", **mine), headers=patient
        )
        for i in range(4)
    ]
    assert [a.status_code for a in answers] == [201, 201, 201, 429]
    refused = answers[-1]
    assert refused.json["error"]["code"] == "too_many_lookups"
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    assert CountingChecker.calls == 3
    listed = c.get("/api/v1/patients/p1/authorizations", headers=auth_header()).json["authorizations"]
    assert len(listed) == 3
    for i in range(5):  # the integrator's key is not the patient
        made = c.post(
            "/api/v1/authorizations", json=body(address=f"k{i}@direct.example.org"), headers=auth_header()
        )
        assert made.status_code == 201
