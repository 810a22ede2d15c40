"""FhirClient against the real HAPI server, plus failure paths against scripted HTTP peers and SMART auth
against an Authlib authorization server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import jwt
import pytest

from fhir_bridge.fhir.auth import BearerAuth, SmartBackendAuth, new_signing_key
from fhir_bridge.fhir.client import FhirClient
from fhir_bridge.fhir.errors import (
    FhirAuthError,
    FhirInvalidResponse,
    FhirNotFound,
    FhirRateLimited,
    FhirServerError,
    FhirTimeout,
)
from tests.fixtures.hapi import HapiServer
from tests.support.scripted_http import Reply, ScriptedServer
from tests.support.smart_server import SmartServer, start_smart_server

PATIENT = {"resourceType": "Patient", "id": "p1"}


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def smart() -> Iterator[SmartServer]:
    state, http = start_smart_server()
    yield state
    http.shutdown()


class Sleeps(list[float]):
    """Records the client's waits instead of sleeping, so retry tests are fast and see the schedule."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


# --- against HAPI ------------------------------------------------------------------------------------------
@pytest.mark.service("hapi")
def test_capabilities_pick_hapi_features(hapi: HapiServer) -> None:
    caps = FhirClient(hapi.base_url).capabilities()

    assert caps.fhir_version == "4.0.1"
    assert caps.has_subscriptions
    assert caps.has_patient_everything
    assert caps.supports_last_updated("Observation")
    assert caps.can_search("Observation", "patient")
    assert caps.can("Consent", "create") and caps.can("AuditEvent", "create")


@pytest.mark.service("hapi")
def test_create_read_update_and_missing(hapi: HapiServer) -> None:
    client = FhirClient(hapi.base_url)
    created = client.create({"resourceType": "Patient", "name": [{"family": "Client"}]})

    created["name"][0]["family"] = "Updated"
    client.update(created)
    read = client.read("Patient", created["id"])

    assert read["name"][0]["family"] == "Updated"
    assert read["meta"]["versionId"] == "2"
    with pytest.raises(FhirNotFound) as missing:
        client.read("Patient", "does-not-exist-" + uuid.uuid4().hex[:8])
    assert missing.value.status == 404 and not missing.value.transient


@pytest.mark.service("hapi")
def test_search_follows_every_page(hapi: HapiServer) -> None:
    client = FhirClient(hapi.base_url)
    patient = client.create({"resourceType": "Patient"})
    ids = {
        client.create(
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": f"n{i}"},
                "subject": {"reference": f"Patient/{patient['id']}"},
            }
        )["id"]
        for i in range(7)
    }

    pages = list(client.search_pages("Observation", {"patient": patient["id"], "_count": 3}))
    found = {r["id"] for r in client.search("Observation", {"patient": patient["id"], "_count": 3})}

    assert len(pages) == 3
    assert found == ids


# --- failure paths against scripted peers ------------------------------------------------------------------
def test_429_retry_after_is_honoured(scripted: ScriptedServer) -> None:
    scripted.then(Reply(429, headers={"Retry-After": "2"}), Reply(200, PATIENT))
    sleeps = Sleeps()

    patient = FhirClient(scripted.base, sleep=sleeps).read("Patient", "p1")

    assert patient["id"] == "p1"
    assert sleeps == [2.0]
    assert len(scripted.seen) == 2


def test_429_with_too_long_retry_after_gives_up_at_once(scripted: ScriptedServer) -> None:
    scripted.then(Reply(429, headers={"Retry-After": "3600"}))

    with pytest.raises(FhirRateLimited) as err:
        FhirClient(scripted.base, sleep=Sleeps(), max_retry_after=60).read("Patient", "p1")

    assert err.value.transient
    assert len(scripted.seen) == 1


def test_5xx_is_retried_with_growing_backoff_then_surfaced(scripted: ScriptedServer) -> None:
    scripted.default = Reply(503, {"resourceType": "OperationOutcome", "issue": [{"code": "transient"}]})
    sleeps = Sleeps()

    with pytest.raises(FhirServerError) as err:
        FhirClient(scripted.base, sleep=sleeps, max_retries=3, backoff=1.0).read("Patient", "p1")

    assert err.value.transient and err.value.status == 503 and err.value.detail == "transient"
    assert len(scripted.seen) == 4
    assert len(sleeps) == 3 and sleeps[0] < sleeps[2]  # jittered, but exponential: 0.5-1, 1-2, 2-4 s


def test_post_is_not_retried_after_a_500(scripted: ScriptedServer) -> None:
    scripted.then(Reply(500))

    with pytest.raises(FhirServerError):
        FhirClient(scripted.base, sleep=Sleeps()).create({"resourceType": "Observation", "status": "final"})

    assert len(scripted.seen) == 1  # a 500 may have stored it: a second POST could duplicate


def test_timeout_is_a_transient_error(scripted: ScriptedServer) -> None:
    scripted.then(Reply(200, PATIENT, delay=1.5), Reply(200, PATIENT, delay=1.5))

    with pytest.raises(FhirTimeout) as err:
        FhirClient(scripted.base, timeout=0.3, max_retries=1, sleep=Sleeps()).read("Patient", "p1")

    assert err.value.transient


def test_next_link_to_another_origin_is_refused(scripted: ScriptedServer) -> None:
    page = {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": [{"relation": "next", "url": "http://attacker.invalid/fhir?page=2"}],
        "entry": [{"resource": PATIENT}],
    }
    scripted.then(Reply(200, page))

    with pytest.raises(FhirInvalidResponse):
        list(FhirClient(scripted.base, auth=BearerAuth("secret-token")).search("Patient"))

    assert len(scripted.seen) == 1


def test_malformed_resources_are_refused(scripted: ScriptedServer) -> None:
    scripted.then(Reply(200, {"resourceType": "Patient", "id": "bad id!"}), Reply(200, "not json"))
    client = FhirClient(scripted.base)

    with pytest.raises(FhirInvalidResponse):
        client.read("Patient", "p1")
    with pytest.raises(FhirInvalidResponse):
        client.read("Patient", "p1")


def test_bearer_token_is_sent(scripted: ScriptedServer) -> None:
    scripted.then(Reply(200, PATIENT))

    FhirClient(scripted.base, auth=BearerAuth("tok-123")).read("Patient", "p1")

    assert scripted.seen[0].headers["Authorization"] == "Bearer tok-123"


# --- SMART Backend Services against Authlib ----------------------------------------------------------------
@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_smart_backend_services_token_is_obtained_cached_and_renewed(smart: SmartServer, alg: str) -> None:
    client_id = f"bbdirect-{alg.lower()}-{uuid.uuid4().hex[:6]}"
    auth = SmartBackendAuth(client_id, new_signing_key(alg), fhir_base_url=smart.fhir_base)
    smart.register(client_id, auth.jwks())
    client = FhirClient(smart.fhir_base, auth=auth, sleep=Sleeps())
    before = smart.token_requests

    client.read("Patient", "a")
    client.read("Patient", "b")
    assert smart.token_requests - before == 1  # cached until expiry

    smart.revoke_all()
    assert client.read("Patient", "c")["id"] == "c"  # 401 -> new token -> success
    assert smart.token_requests - before == 2


def test_smart_assertion_claims_follow_the_spec(smart: SmartServer) -> None:
    auth = SmartBackendAuth("claims-client", new_signing_key("ES384"), token_url=smart.token_url)

    assertion = auth.client_assertion()
    header = jwt.get_unverified_header(assertion)
    claims = jwt.decode(
        assertion, jwt.PyJWK(auth.jwks()["keys"][0]).key, algorithms=["ES384"], audience=smart.token_url
    )

    assert header["alg"] == "ES384" and header["kid"] == auth.kid
    assert claims["iss"] == claims["sub"] == "claims-client"
    assert claims["exp"] - claims["iat"] <= 300
    assert "d" not in auth.jwks()["keys"][0]  # the JWKS never carries the private key


def test_smart_unregistered_client_is_refused(smart: SmartServer) -> None:
    auth = SmartBackendAuth("nobody", new_signing_key("RS384"), token_url=smart.token_url)

    with pytest.raises(FhirAuthError) as err:
        FhirClient(smart.fhir_base, auth=auth).read("Patient", "a")

    assert err.value.detail == "invalid_client"


def test_smart_wrong_key_is_refused(smart: SmartServer) -> None:
    registered = SmartBackendAuth("impostor-target", new_signing_key("ES384"), token_url=smart.token_url)
    smart.register("impostor-target", registered.jwks())
    impostor = SmartBackendAuth(
        "impostor-target", new_signing_key("ES384"), token_url=smart.token_url, kid=registered.kid
    )

    with pytest.raises(FhirAuthError):
        impostor.access_token()


def test_smart_token_url_falls_back_to_the_capability_statement(smart: SmartServer) -> None:
    auth = SmartBackendAuth("legacy-client", new_signing_key("ES384"), fhir_base_url=f"{smart.base}/legacy")
    smart.register("legacy-client", auth.jwks())

    patient = FhirClient(f"{smart.base}/legacy", auth=auth).read("Patient", "x")

    assert patient["id"] == "x"
    assert auth.token_url == smart.token_url


def test_smart_derived_scopes_and_a_trimmed_grant(smart: SmartServer) -> None:
    """Default scopes are per-resource system reads (never system/*.read); a server that grants fewer than
    asked (OpenEMR trims to the registered scopes without an error) is seen in ``readable``."""
    from fhir_bridge.fhir.scopes import BACKEND_RESOURCES

    auth = SmartBackendAuth("derived-client", new_signing_key(), fhir_base_url=smart.fhir_base)
    registered = " ".join(f"system/{r}.read" for r in BACKEND_RESOURCES if r != "Condition")
    smart.register("derived-client", auth.jwks(), scope=registered)

    FhirClient(smart.fhir_base, auth=auth).read("Patient", "x")

    assert auth.alg == "RS384"
    assert auth.scopes.split() == [f"system/{r}.read" for r in BACKEND_RESOURCES]
    assert auth.granted_scopes == tuple(registered.split())
    assert auth.readable("Patient") is True and auth.readable("Condition") is False
    assert auth.readable("Coverage") is None  # never asked for
