"""The test SMART server is checked with the official SMART client library before the sidecar relies on it.

``fhirclient`` (smart-on-fhir/client-py) drives a standalone patient launch end to end: authorize URL with PKCE
S256 and state, login, callback, code exchange, patient context, a FHIR read through the token-enforcing proxy
in front of the real HAPI server. The negative cases pin the SMART rules the sidecar's tests depend on.
"""

from __future__ import annotations

import base64
import hashlib
import urllib.parse

import jwt
import pytest
import requests
from fhirclient import client as fhir_client
from fhirclient.models.patient import Patient
from fhirclient.server import FHIRPermissionDeniedException

from tests.support.smart_launch_server import SmartServer
from tests.support.web_env import fhir_base, seed_patient

REDIRECT = "http://127.0.0.1:9/callback"
SCOPE = "launch/patient openid fhirUser patient/Patient.read patient/Observation.read"

pytestmark = pytest.mark.service("hapi")


@pytest.fixture(scope="module")
def smart(request):
    base = fhir_base(request)
    patient_id = seed_patient(base, family="Fhirclient", given="Fiona")
    other_id = seed_patient(base, family="Other", given="Oscar")
    server = SmartServer(base).start()
    server.add_client("fhirclient-test", [REDIRECT])
    server.add_user("fiona", "pw-fiona", f"Patient/{patient_id}", "Fiona Fhirclient")
    server.patient_id, server.other_id = patient_id, other_id
    yield server
    server.stop()


def _login(url: str, decision: str = "allow", username: str = "fiona", password: str = "pw-fiona") -> str:  # noqa: S107
    """Play the user on the server's login page; return the redirect the browser would follow."""
    page = requests.get(url, timeout=10)
    assert page.status_code == 200, page.text
    answer = requests.post(
        url,
        data={"username": username, "password": password, "decision": decision},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def _client(smart: SmartServer, scope: str = SCOPE) -> fhir_client.FHIRClient:
    return fhir_client.FHIRClient(
        settings={
            "app_id": "fhirclient-test",
            "api_base": smart.fhir_base,
            "redirect_uri": REDIRECT,
            "scope": scope,
        }
    )


def test_fhirclient_standalone_patient_launch(smart: SmartServer) -> None:
    app = _client(smart)
    url = app.authorize_url
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert query["code_challenge_method"] == "S256" and query["aud"] == smart.fhir_base

    app.handle_callback(_login(url))

    assert app.ready and app.patient_id == smart.patient_id
    assert app.patient.name[0].family == "Fhirclient"  # read through the proxy from HAPI
    # The token is confined to its patient's compartment.
    with pytest.raises(FHIRPermissionDeniedException):
        Patient.read(smart.other_id, app.server)


def test_id_token_is_signed_and_names_the_fhir_user(smart: SmartServer) -> None:
    verifier = "v" * 64
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    url = f"{smart.base_url}/authorize?" + urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": "fhirclient-test",
            "redirect_uri": REDIRECT,
            "scope": SCOPE,
            "state": "s1",
            "aud": smart.fhir_base,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    back = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(_login(url)).query))
    assert back["state"] == "s1"
    token = requests.post(
        f"{smart.base_url}/token",
        data={
            "grant_type": "authorization_code",
            "code": back["code"],
            "redirect_uri": REDIRECT,
            "client_id": "fhirclient-test",
            "code_verifier": verifier,
        },
        timeout=10,
    ).json()
    jwks = jwt.PyJWKClient(smart.smart_configuration()["jwks_uri"])
    claims = jwt.decode(
        token["id_token"],
        jwks.get_signing_key_from_jwt(token["id_token"]).key,
        algorithms=["RS256"],
        audience="fhirclient-test",
        issuer=smart.base_url,
    )
    assert claims["fhirUser"] == f"{smart.fhir_base}/Patient/{smart.patient_id}"
    assert token["patient"] == smart.patient_id


def test_denied_consent_returns_access_denied(smart: SmartServer) -> None:
    app = _client(smart)
    back = _login(app.authorize_url, decision="deny")
    assert dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(back).query))["error"] == "access_denied"
    with pytest.raises(Exception, match=r"access_denied|denied"):
        app.handle_callback(back)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"scope": "launch/patient openid patient/*.read"}, "wildcard"),
        ({"code_challenge_method": "plain"}, "S256"),
        ({"code_challenge": None, "code_challenge_method": None}, "S256"),
        ({"aud": "http://elsewhere.example/fhir"}, "aud"),
        ({"scope": "launch openid patient/Patient.read", "launch": "forged"}, "launch"),
    ],
)
def test_server_refuses_non_smart_requests(smart: SmartServer, change: dict, why: str) -> None:
    params = {
        "response_type": "code",
        "client_id": "fhirclient-test",
        "redirect_uri": REDIRECT,
        "scope": SCOPE,
        "state": "s",
        "aud": smart.fhir_base,
        "code_challenge": "c" * 43,
        "code_challenge_method": "S256",
    }
    params.update(change)
    params = {k: v for k, v in params.items() if v is not None}
    answer = requests.get(f"{smart.base_url}/authorize", params=params, timeout=10)
    assert answer.status_code == 400
    assert why in answer.text
