"""Fail-closed document ownership on the real pieces (issue 12 #4): HAPI FHIR holds the documents, BIND9
publishes the recipient's certificate, a real SMTP listener is the recipient's HISP; the sidecar is the real
application (real FHIR client, builder, discovery and Direct sender) with its jobs run in the test.

A patient token may create a "chosen documents" authorization only for DocumentReferences whose subject is a
literal reference to that patient on this server: another patient's document, one with no subject, one whose
subject is only an identifier or a display are refused at creation (422, nothing saved), through the API and
the web pages. The builder checks again when it packs: a document re-filed after the authorization was
saved fails the job with ``document_not_patients`` and nothing reaches the recipient.
"""

from __future__ import annotations

import base64
import io
import zipfile

import pytest
import requests
from cryptography.hazmat.primitives.serialization import Encoding

from direct.smime.identity import Identity
from direct.smime.seal import unseal

pytestmark = [pytest.mark.service("hapi"), pytest.mark.service("bind9"), pytest.mark.slow]

KEY = "ownership-key"
RECIPIENT = "records@hisp-own.test"
SENDER = "bluebutton@sender-own.test"
NOTE = b"Visit note: keep walking."


@pytest.fixture(scope="module")
def world(hapi, bind, pki, smtp_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ownership")
    recipient = pki.address(RECIPIENT, issuer=pki.root)
    sender = pki.address(SENDER, issuer=pki.root)
    cert_path, key_path = pki.write(sender, "own-sender")
    der = recipient.cert.public_bytes(Encoding.DER)
    bind.zone("hisp-own.test", [f"records IN CERT PKIX 0 0 ( {base64.b64encode(der).decode()} )"])
    mine = hapi.create({"resourceType": "Patient", "name": [{"family": "Own", "given": ["Olive"]}]})
    other = hapi.create({"resourceType": "Patient", "name": [{"family": "Else", "given": ["Eve"]}]})
    return {
        "tmp": tmp,
        "recipient": Identity.from_issued(recipient),
        "anchors": [pki.root.cert],
        "patient": mine["id"],
        "other": other["id"],
        "settings": dict(
            fhir_base_url=hapi.base_url,
            direct_dns_server=bind.nameserver,
            direct_smtp_host=smtp_server.host,
            direct_smtp_port=smtp_server.port,
            direct_from_address=SENDER,
            direct_identity_cert=str(cert_path),
            direct_identity_key=str(key_path),
            direct_trust_anchors=[str(pki.root_pem)],
            server_api_keys=[f"own:{KEY}"],
            pipeline_debounce_seconds=0.0,
            fhir_write_consent=False,
        ),
    }


@pytest.fixture
def app(world, tmp_path):
    """The whole sidecar application (API and pages); no background threads: the test runs the jobs."""
    from fhir_bridge.app import create_app
    from fhir_bridge.config import load_settings

    settings = load_settings(
        env={},
        **world["settings"],
        database_url=f"sqlite:///{tmp_path}/own.sqlite3",
        server_secret_key="ownership-secret",
    )
    settings.extra["web"] = {"cookie_secure": False}  # the test client speaks plain http
    return create_app(settings)


def document(subject: dict | None) -> dict:
    resource: dict = {
        "resourceType": "DocumentReference",
        "status": "current",
        "type": {"coding": [{"system": "http://loinc.org", "code": "11506-3", "display": "Progress note"}]},
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain",
                    "title": "visit-note.txt",
                    "data": base64.b64encode(NOTE).decode(),
                }
            }
        ],
    }
    if subject is not None:
        resource["subject"] = subject
    return resource


def refile(hapi, doc: dict, subject: dict | None) -> None:
    """Change (or remove) the document's subject on the server, as a later edit in the EHR would."""
    changed = {**document(subject), "id": doc["id"]}
    answer = requests.put(
        hapi.url(f"DocumentReference/{doc['id']}"),
        json=changed,
        headers={"Content-Type": "application/fhir+json"},
        timeout=60,
    )
    answer.raise_for_status()


def share(app, world, doc_id: str):
    """A patient token asks for its chosen document to be sent (the patient app's request)."""
    sidecar = app.extensions["bbdirect"]
    token = sidecar.tokens.issue(world["patient"])
    return app.test_client().post(
        "/api/v1/authorizations",
        json={
            "patient_id": world["patient"],
            "address": RECIPIENT,
            "kind": "once",
            "created_by": {"type": "patient", "id": world["patient"]},
            "consent_method": "portal",
            "payload": {"type": "documents", "documents": [{"id": f"DocumentReference/{doc_id}"}]},
        },
        headers={"Authorization": f"Bearer {token}"},
    )


def saved(app) -> tuple[int, int]:
    """(authorizations, transmissions) in the sidecar's database."""
    from fhir_bridge.db.models import Authorization, Transmission

    with app.extensions["bbdirect"].db.session() as s:
        return s.query(Authorization).count(), s.query(Transmission).count()


def refusals(app) -> list[str]:
    from fhir_bridge.db.models import AuditRecord

    with app.extensions["bbdirect"].db.session() as s:
        rows = s.query(AuditRecord).filter(AuditRecord.action == "authorization.refused").all()
        return [r.detail["code"] for r in rows]


def run_jobs(app) -> None:
    app.extensions["bbdirect"].pipeline.run_due("test")


def only_transmission(app):
    from fhir_bridge.db.models import Transmission

    with app.extensions["bbdirect"].db.session() as s:
        [tx] = s.query(Transmission).all()
        return tx


NOT_THEIRS = {
    "another patient's": lambda w: {"reference": f"Patient/{w['other']}"},
    "no subject": lambda w: None,
    "identifier only": lambda w: {"identifier": {"system": "urn:mrn", "value": w["patient"]}},
    "display only": lambda w: {"display": "Olive Own"},
    "identifier and display": lambda w: {
        "type": "Patient",
        "identifier": {"system": "urn:mrn", "value": w["patient"]},
        "display": "Olive Own",
    },
    "another server": lambda w: {"reference": f"http://elsewhere.test/fhir/Patient/{w['patient']}"},
    "contained": lambda w: {"reference": "#p1"},
}


@pytest.mark.parametrize("case", list(NOT_THEIRS))
def test_a_patient_token_cannot_choose_a_document_that_is_not_its_own(app, world, hapi, smtp_sink, case):
    doc = hapi.create(document(NOT_THEIRS[case](world)))
    r = share(app, world, doc["id"])
    assert r.status_code == 422, r.json
    error = r.json["error"]
    assert (error["code"], error["field"]) == ("document_not_patients", "payload.documents")
    assert f"DocumentReference/{doc['id']}" in error["message"]
    assert saved(app) == (0, 0)  # nothing saved, nothing queued
    assert refusals(app) == ["document_not_patients"]
    run_jobs(app)
    assert smtp_sink.messages == []


def test_a_document_the_server_does_not_have_is_refused_like_another_patients(app, world, smtp_sink):
    r = share(app, world, "no-such-document-0")
    assert r.status_code == 422 and r.json["error"]["code"] == "document_not_patients"
    assert saved(app) == (0, 0)


def test_an_api_key_cannot_choose_another_patients_document_either(app, world, hapi):
    doc = hapi.create(document({"reference": f"Patient/{world['other']}"}))
    r = app.test_client().post(
        "/api/v1/authorizations",
        json={
            "patient_id": world["patient"],
            "address": RECIPIENT,
            "kind": "once",
            "created_by": {"type": "clinician", "id": "dr-own"},
            "consent_method": "in_person",
            "payload": {"type": "documents", "documents": [f"DocumentReference/{doc['id']}"]},
        },
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert r.status_code == 422 and r.json["error"]["code"] == "document_not_patients"
    assert saved(app) == (0, 0)


OWN_FORMS = {
    "relative": lambda w, base: {"reference": f"Patient/{w['patient']}"},
    "absolute on this server": lambda w, base: {"reference": f"{base}/Patient/{w['patient']}"},
    "with a version": lambda w, base: {"reference": f"Patient/{w['patient']}/_history/1"},
}


@pytest.mark.parametrize("form", list(OWN_FORMS))
def test_the_patients_own_document_is_packed_and_sent(app, world, hapi, smtp_sink, form):
    doc = hapi.create(document(OWN_FORMS[form](world, hapi.base_url)))
    r = share(app, world, doc["id"])
    assert r.status_code == 201, r.json
    run_jobs(app)
    [message] = smtp_sink.wait_for(1, timeout=30)
    result = unseal(message.data, [world["recipient"]], world["anchors"])
    assert result.ok and result.message["Subject"] == "XDM/1.0/DDM"
    [package] = [a for a in result.attachments if a.filename.lower().endswith(".zip")]
    assert zipfile.ZipFile(io.BytesIO(package.data)).read("IHE_XDM/SUBSET01/visit-note.txt") == NOTE
    assert only_transmission(app).state == "sent"


REFILED = {
    "to another patient": lambda w: {"reference": f"Patient/{w['other']}"},
    "to no subject": lambda w: None,
    "to an identifier only": lambda w: {"identifier": {"system": "urn:mrn", "value": w["patient"]}},
    "to a display only": lambda w: {"display": "Olive Own"},
}


@pytest.mark.parametrize("case", list(REFILED))
def test_a_document_refiled_after_creation_fails_the_job_and_nothing_is_sent(
    app, world, hapi, smtp_sink, case
):
    doc = hapi.create(document({"reference": f"Patient/{world['patient']}"}))
    r = share(app, world, doc["id"])
    assert r.status_code == 201, r.json
    refile(hapi, doc, REFILED[case](world))
    run_jobs(app)
    tx = only_transmission(app)
    assert (tx.state, tx.reason_code) == ("failed", "document_not_patients")
    assert tx.attempts == 1  # permanent: not retried
    answer = app.test_client().get(
        f"/api/v1/transmissions/{tx.id}", headers={"Authorization": f"Bearer {KEY}"}
    )
    assert answer.json["transmission"]["reason"]["code"] == "document_not_patients"
    from fhir_bridge.web import wording

    assert "not (or is no longer) filed under this patient" in wording.transmission_reason(
        tx.reason_code, tx.reason_message
    )
    run_jobs(app)
    assert smtp_sink.messages == []


# --- the web pages ----------------------------------------------------------------------------------
def signed_in(app, world, hapi):
    """A browser session of the patient (the SMART sign-in itself is covered by tests/e2e)."""
    import time

    client = app.test_client()
    with client.session_transaction() as sess:
        sess["smart"] = {
            "role": "patient",
            "patient": world["patient"],
            "expires_at": time.time() + 600,
            "iss": hapi.base_url,
            "access_token": "t",
            "fhir_user": f"Patient/{world['patient']}",
        }
        sess["csrf"] = "csrf-1"
    return client


def test_the_share_page_refuses_a_document_refiled_before_share_and_saves_nothing(
    app, world, hapi, smtp_sink
):
    doc = hapi.create(document({"reference": f"Patient/{world['patient']}"}))
    client = signed_in(app, world, hapi)
    form = {
        "csrf_token": "csrf-1",
        "address": RECIPIENT,
        "kind": "once",
        "payload": "documents",
        "documents": f"DocumentReference/{doc['id']}",
    }
    answer = client.post("/patient/share", data=form)
    assert answer.status_code == 302, answer.text  # to the preview: the document is the patient's
    refile(hapi, doc, {"reference": f"Patient/{world['other']}"})
    answer = client.post("/patient/share/confirm", data={"csrf_token": "csrf-1"}, follow_redirects=True)
    assert answer.status_code == 422
    assert "is not filed under your record" in answer.text
    assert 'id="documents-error"' in answer.text
    assert saved(app) == (0, 0)
    assert smtp_sink.messages == []


def test_the_share_page_offers_and_accepts_only_the_patients_own_documents(app, world, hapi):
    own = hapi.create(document({"reference": f"Patient/{world['patient']}"}))
    theirs = hapi.create(document({"reference": f"Patient/{world['other']}"}))
    client = signed_in(app, world, hapi)
    page = client.get("/patient/share")
    assert f"DocumentReference/{own['id']}" in page.text
    assert f"DocumentReference/{theirs['id']}" not in page.text
    forged = {
        "csrf_token": "csrf-1",
        "address": RECIPIENT,
        "kind": "once",
        "payload": "documents",
        "documents": f"DocumentReference/{theirs['id']}",
    }
    answer = client.post("/patient/share", data=forged)
    assert answer.status_code == 422 and 'id="documents-error"' in answer.text
    assert saved(app) == (0, 0)
