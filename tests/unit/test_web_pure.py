"""The web pages' pure parts: wording, form validation, Direct address pick-up, scopes, PKCE, sessions."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import jwt
import pytest
from flask import Flask, session

from fhir_bridge.web import forms, smart, wording
from fhir_bridge.web.config import WebConfig
from fhir_bridge.web.fhir_reads import direct_address_of, display_name
from fhir_bridge.web.session_store import ServerSessionInterface
from fhir_bridge.web.sharing import TransmissionView

DOCS = [{"id": "DocumentReference/7", "title": "Visit note", "date": "2024-05-01"}]


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("bad_address", "not a valid Direct address"),
        ("no_certificate", "No Direct certificate was found for direct.x.test"),
        ("no_usable_certificate", "direct.x.test has a Direct certificate, but it cannot be used"),
        ("expired", "it has expired"),
        ("untrusted", "not in a trust bundle"),
        ("discovery_timeout", "did not answer"),
        ("weak_key", "direct.x.test has a Direct certificate, but its key is too weak"),
        ("discovery_deadline", "did not answer"),
        ("fetch_refused", "published on a server we do not contact"),
    ],
)
def test_address_errors_are_plain_and_name_the_domain(code: str, expected: str) -> None:
    assert expected in wording.address_error(code, "direct.x.test", "internal text")
    assert "internal text" not in wording.address_error(code, "direct.x.test", "internal text")


def test_transmission_states_and_reasons() -> None:
    refused = TransmissionView("t", "failed", reason_code="delivery_refused", reason_detail="550 5.7.1 no")
    status = wording.status_of(refused)
    assert (status.tone, status.label, status.final) == ("failed", "Not delivered", True)
    assert status.reason == 'The recipient\'s mail server refused the message. It answered: "550 5.7.1 no"'
    assert (
        "did not confirm delivery in time"
        in wording.status_of(TransmissionView("t", "failed", reason_code="mdn_timeout")).reason
    )
    assert wording.status_of(TransmissionView("t", "dispatched")).tone == "delivered"
    assert wording.status_of(TransmissionView("t", "retrying")).final is False
    assert wording.status_of(None).label == "Nothing sent yet"
    # A newer record retired an older job; a record that could not be read whole was not sent at all.
    assert (
        "newer version"
        in wording.status_of(TransmissionView("t", "cancelled", reason_code="superseded")).reason
    )
    partial = wording.status_of(TransmissionView("t", "failed", reason_code="fhir_search_refused"))
    assert "nothing was sent" in partial.reason and "fhir" not in partial.reason


def test_patient_form_keeps_input_and_names_each_field() -> None:
    form = forms.patient_share(
        {"address": " not-an-address ", "payload": "documents", "documents": ["x"]}, DOCS
    )
    assert form.values["address"] == "not-an-address"
    assert set(form.errors) == {"address", "kind", "documents"}
    ok = forms.patient_share(
        {
            "address": "Bob@Direct.Example.ORG",
            "kind": "always",
            "payload": "documents",
            "documents": ["DocumentReference/7", "DocumentReference/unknown"],
        },
        DOCS,
    )
    assert ok.ok and ok.values["address"] == "Bob@direct.example.org"
    assert ok.values["documents"] == ["DocumentReference/7"]  # only the patient's own documents


def test_header_injection_in_the_address_is_refused() -> None:
    form = forms.patient_share({"address": "a@b.test\r\nBcc: x@y.test", "kind": "once"}, DOCS)
    assert "address" in form.errors


def test_clinician_form_needs_method_and_attestation() -> None:
    form = forms.clinician_add({"address": "a@direct.b.test", "always": "yes"})
    assert set(form.errors) == {"method", "attest"} and form.values["always"] is True
    ok = forms.clinician_add({"address": "a@direct.b.test", "method": "clipboard", "attest": "yes"})
    assert ok.ok and ok.values["always"] is False
    assert "signed consent form" in forms.attestation_text("clipboard")


def test_direct_address_from_patient_telecom() -> None:
    openemr = {
        "telecom": [
            {"system": "email", "value": "ana@gmail.test", "use": "home"},
            {"system": "email", "value": "ana@hisp.test", "use": "mobile"},
        ]
    }
    assert direct_address_of(openemr) == "ana@hisp.test"  # OpenEMR's "Trusted Email"
    by_domain = {"telecom": [{"system": "email", "value": "mailto:ana@direct.home.test"}]}
    assert direct_address_of(by_domain) == "ana@direct.home.test"
    assert direct_address_of({"telecom": [{"system": "email", "value": "ana@gmail.test"}]}) is None
    assert direct_address_of({}) is None
    assert display_name({"name": [{"given": ["Ana", "M"], "family": "Rivera"}]}) == "Ana M Rivera"


def test_scopes_are_per_resource_never_wildcards() -> None:
    config = WebConfig()
    patient, clinician = config.scopes("patient").split(), config.scopes("clinician").split()
    assert patient[:3] == ["launch/patient", "openid", "fhirUser"] and "patient/Condition.read" in patient
    assert clinician[0] == "launch" and "user/Patient.read" in clinician
    assert not any("*" in s for s in patient + clinician)
    assert "patient/Observation.rs" in WebConfig(smart_scope_style="v2").scopes("patient").split()


def test_config_from_section_and_environment(monkeypatch) -> None:
    monkeypatch.setenv("BBDIRECT_WEB_SESSION_IDLE_MINUTES", "5")
    monkeypatch.setenv("BBDIRECT_WEB_COOKIE_SECURE", "false")
    config = WebConfig.load(
        {"smart_iss": "https://ehr.test/fhir/", "smart_allowed_iss": ["https://b.test/fhir"]}
    )
    assert config.session_idle_minutes == 5.0 and config.cookie_secure is False
    assert config.issuers() == {"https://ehr.test/fhir", "https://b.test/fhir"}
    with pytest.raises(ValueError, match="cookie_samesite"):
        WebConfig.load({"cookie_samesite": "lax-ish"})
    with pytest.raises(ValueError, match="session_store"):
        WebConfig.load({"session_store": "redis"})


def test_patient_launch_uses_the_patient_client_and_falls_back(monkeypatch) -> None:
    same = WebConfig(smart_client_id="emr-user", smart_client_secret="s1")
    assert same.client_for("standalone") == same.client_for("ehr") == ("emr-user", "s1")
    monkeypatch.setenv("BBDIRECT_WEB_SMART_PATIENT_CLIENT_ID", "emr-patient")
    split = WebConfig.load({"smart_client_id": "emr-user", "smart_client_secret": "s1"})
    assert split.client_for("standalone") == ("emr-patient", "")  # a public patient client: no user secret
    assert split.client_for("ehr") == ("emr-user", "s1")


def test_pkce_is_s256_and_roles() -> None:
    verifier, challenge = smart.pkce_pair()
    assert 43 <= len(verifier) <= 128
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert challenge == expected
    assert smart.role_of("https://ehr.test/fhir/Practitioner/9", "ehr") == "clinician"
    assert smart.role_of("https://ehr.test/fhir/Patient/1", "ehr") == "patient"
    assert smart.role_of(None, "standalone") == "patient"
    assert smart.role_of("https://ehr.test/fhir/PractitionerRole/3", "ehr") == "clinician"
    # Inside the EHR is not a role: no verified fhirUser, or a Person (OpenEMR's user without an NPI), is none.
    assert smart.role_of(None, "ehr") == "none"
    assert smart.role_of("https://ehr.test/fhir/Person/4", "ehr") == "none"
    assert smart.role_of("https://ehr.test/fhir/Practitioner", "ehr") == "none"


def test_server_side_session_ends_after_idle_and_keeps_data_off_the_cookie() -> None:
    app = Flask("t")
    store = ServerSessionInterface(idle_minutes=15)
    app.session_interface = store

    @app.get("/set")
    def set_() -> str:
        session["token"] = "secret-access-token"
        return "ok"

    @app.get("/get")
    def get() -> str:
        return f"{session.get('token')}|{session.expired}"  # type: ignore[attr-defined]

    client = app.test_client()
    answer = client.get("/set")
    cookie = answer.headers["Set-Cookie"]
    assert "secret-access-token" not in cookie and "HttpOnly" in cookie
    assert client.get("/get").text == "secret-access-token|False"
    store.idle = 0.0
    assert client.get("/get").text == "None|True"
    # Whichever request comes first after the limit (often the status page's background poll), the page the
    # person opens next must still say the session ended, not silently show the start page: the ended
    # session leaves a data-less marker, and its data is gone.
    assert client.get("/get").text == "None|True"
    store.idle = 15 * 60.0
    assert client.get("/get").text == "None|True"


def _pages_app() -> Flask:
    from fhir_bridge.web import register
    from fhir_bridge.web.config import WebConfig

    app = Flask("pages")
    config = WebConfig.load({"smart_iss": "https://ehr.test/fhir", "cookie_secure": False})
    register(app, config, sharing=object())  # type: ignore[arg-type]  # never reached by these requests
    return app


def test_pages_need_a_sign_in_and_say_when_the_token_ran_out() -> None:
    import time

    client = _pages_app().test_client()
    answer = client.get("/patient")
    assert answer.status_code == 302 and answer.headers["Location"] == "/"
    with client.session_transaction() as sess:
        sess["smart"] = {
            "role": "patient",
            "patient": "p1",
            "expires_at": time.time() - 1,
            "iss": "https://ehr.test/fhir",
            "access_token": "t",
            "fhir_user": "",
        }
    answer = client.get("/patient")
    assert answer.status_code == 401 and "Your session has ended" in answer.text
    csp = answer.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_launch_refuses_unknown_issuers_and_missing_parameters() -> None:
    client = _pages_app().test_client()
    assert (
        "Unknown health record system" in client.get("/smart/launch?iss=https://evil.test/fhir&launch=1").text
    )
    assert client.get("/smart/launch?iss=https://ehr.test/fhir").status_code == 400
    assert "Your session has ended" in client.get("/smart/callback?code=x&state=y").text


def _rsa_jwk(kid: str | None = None) -> tuple[Any, Any]:
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    data["use"] = "sig"
    if kid:
        data["kid"] = kid
    return key, jwt.PyJWK(data)


def test_id_token_key_without_kid_is_the_servers_only_signing_key() -> None:
    """OpenEMR publishes one RSA key without ``kid`` and signs its id_tokens without one (OIDC Core §10.1.1)."""
    from fhir_bridge.web.smart import id_token_key

    key, public = _rsa_jwk()
    token = jwt.encode({"sub": "u1"}, key, algorithm="RS384")
    assert jwt.decode(token, id_token_key([public], token), algorithms=["RS384"])["sub"] == "u1"
    _, other = _rsa_jwk()
    with pytest.raises(jwt.PyJWKClientError):  # two keys, no kid: which one is not ours to guess
        id_token_key([public, other], token)
    named = jwt.encode({"sub": "u1"}, key, algorithm="RS384", headers={"kid": "k1"})
    _, with_kid = _rsa_jwk("k1")
    assert id_token_key([with_kid, other], named) is with_kid.key
    with pytest.raises(jwt.PyJWKClientError):
        id_token_key([other], named)
