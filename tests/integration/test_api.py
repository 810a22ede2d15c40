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
    app = create_app(settings, plugins=(), builder=Builder(), sender=sender, checker=TableChecker())
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
    assert client.get("/readyz").json["status"] == "ready"
    client.post("/api/v1/authorizations", json=body(), headers=auth_header())
    client.sidecar.pipeline.run_due("t")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'bbdirect_sends_total{outcome="success"} 1.0' in text
    assert 'bbdirect_queue_depth{state="queued"} 0.0' in text
    assert "bbdirect_send_latency_seconds_count 1.0" in text
