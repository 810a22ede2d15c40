"""The sidecar's defaults against OpenEMR, pure parts: scopes, RS384 key, JWKS, declared-only search parameters,
refused searches failing the record, PHP ``DateTime`` export times, and the polling plan.

The OpenEMR shapes below were captured from real 7.0.3 and 8.1.0 instances (``../shared/openemr/boot.sh``):
the CapabilityStatement's search parameters per type, the nested ``scopes_supported``, the ``$export`` status
``transactionTime``. The live check against both versions is in tests/openemr/ (fixture owner) and in the
worked example of docs/sidecar.md.
"""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from fhir_bridge.config import load_settings
from fhir_bridge.fhir import scopes as smart_scopes
from fhir_bridge.fhir.auth import (
    SmartBackendAuth,
    jwks_from_settings,
    load_or_create_key,
    new_signing_key,
)
from fhir_bridge.fhir.client import Capabilities, FhirClient, search_params, search_set_problem
from fhir_bridge.fhir.errors import (
    FhirAuthError,
    FhirIncompleteResult,
    FhirSearchRefused,
)
from fhir_bridge.fhir.gather import gather_patient_record
from fhir_bridge.pipeline.errors import classify
from fhir_bridge.sources.polling import Poller, parse_transaction_time

ROOT = Path(__file__).parents[2]
REGISTRAR = ROOT / "plugin/openemr/oe-module-bluebutton-direct/src/SmartClientRegistrar.php"

#: Search parameters per type in OpenEMR 7.0.3's CapabilityStatement (GET /fhir/metadata; every type below
#: also has interactions read and search-type). No type declares _count; none has $everything; system
#: rest.operation is empty ($export only appears on Patient/Group and OperationDefinition).
OPENEMR_703_PARAMS: dict[str, list[str]] = {
    "AllergyIntolerance": ["_id", "_lastUpdated", "patient"],
    "Appointment": ["_id", "_lastUpdated", "date", "patient"],
    "CarePlan": ["_id", "_lastUpdated", "category", "patient"],
    "CareTeam": ["_id", "_lastUpdated", "patient", "status"],
    "Condition": ["_id", "_lastUpdated", "patient"],
    "Coverage": ["_id", "_lastUpdated", "patient", "payor"],
    "Device": ["_id", "_lastUpdated", "patient"],
    "DiagnosticReport": ["_id", "_lastUpdated", "category", "code", "date", "patient"],
    "DocumentReference": ["_id", "_lastUpdated", "category", "date", "patient", "type"],
    "Encounter": ["_id", "_lastUpdated", "date", "patient"],
    "Goal": ["_id", "_lastUpdated", "patient"],
    "Group": ["_id", "_lastUpdated", "patient"],
    "Immunization": ["_id", "_lastUpdated", "patient"],
    "Location": ["_id", "_lastUpdated"],
    "Medication": ["_id", "_lastUpdated"],
    "MedicationRequest": ["_id", "_lastUpdated", "intent", "patient", "status"],
    "Observation": ["_id", "_lastUpdated", "category", "code", "date", "patient"],
    "Organization": ["_id", "_lastUpdated", "name"],
    "Patient": ["_id", "_lastUpdated", "birthdate", "family", "given", "identifier", "name"],
    "Person": ["_id", "_lastUpdated", "name"],
    "Practitioner": ["_id", "_lastUpdated", "name"],
    "PractitionerRole": ["_id", "_lastUpdated", "practitioner", "specialty"],
    "Procedure": ["_id", "_lastUpdated", "date", "patient"],
    "Provenance": ["_id"],
    "ValueSet": ["_id", "_lastUpdated"],
}


def openemr_statement(params: dict[str, list[str]] = OPENEMR_703_PARAMS) -> dict[str, Any]:
    resources = [
        {
            "type": rtype,
            "interaction": [{"code": "search-type"}, {"code": "read"}],
            "searchParam": [{"name": n, "type": "token"} for n in names],
            **({"operation": [{"name": "export"}]} if rtype in {"Patient", "Group"} else {}),
        }
        for rtype, names in params.items()
    ]
    return {
        "resourceType": "CapabilityStatement",
        "fhirVersion": "4.0.1",
        "rest": [{"mode": "server", "resource": resources}],
    }


#: OpenEMR 7.0.3's ``.well-known/smart-configuration`` ``scopes_supported``: a nested array (excerpt).
OPENEMR_703_SCOPES_SUPPORTED = [
    [
        "openid",
        "fhirUser",
        "launch/patient",
        "system/Patient.$export",
        "system/*.$bulkdata-status",
        "system/*.$export",
        "system/AllergyIntolerance.read",
        "system/Binary.read",
        "system/CarePlan.read",
        "system/CareTeam.read",
        "system/Condition.read",
        "system/Coverage.read",
        "system/Device.read",
        "system/DiagnosticReport.read",
        "system/DocumentReference.read",
        "system/Encounter.read",
        "system/Goal.read",
        "system/Immunization.read",
        "system/Location.read",
        "system/Medication.read",
        "system/MedicationRequest.read",
        "system/Observation.read",
        "system/Organization.read",
        "system/Patient.read",
        "system/Practitioner.read",
        "system/Procedure.read",
        "patient/Patient.read",
        "user/Patient.read",
    ]
]


# --- scopes --------------------------------------------------------------------------------------------
def test_backend_resources_are_the_list_the_openemr_module_registers() -> None:
    """The module registers the backend client with system/<R>.read for R in SmartClientRegistrar::RESOURCES;
    a type the sidecar asks for but the client lacks is trimmed from the token and fails every record."""
    php = REGISTRAR.read_text()
    block = re.search(r"public const RESOURCES = \[(.*?)\];", php, re.S)
    assert block, "SmartClientRegistrar::RESOURCES not found"
    registered = tuple(re.findall(r"'([A-Za-z]+)'", block.group(1)))

    assert registered == smart_scopes.BACKEND_RESOURCES


def test_scopes_supported_is_flattened_whatever_its_nesting() -> None:
    assert smart_scopes.flatten_scopes_supported([["openid", "system/Patient.read"]]) == [
        "openid",
        "system/Patient.read",
    ]
    assert smart_scopes.flatten_scopes_supported(["a", ["b", ["c"]]]) == ["a", "b", "c"]
    assert smart_scopes.flatten_scopes_supported(None) == []
    assert smart_scopes.flatten_scopes_supported({"x": 1}) == []


def test_scopes_for_openemr_703_are_per_resource_system_reads() -> None:
    caps = Capabilities.from_statement(openemr_statement())
    supported = smart_scopes.flatten_scopes_supported(OPENEMR_703_SCOPES_SUPPORTED)

    scope = smart_scopes.derive_scopes(server_types=caps.resources, scopes_supported=supported)

    assert scope.split() == [f"system/{r}.read" for r in smart_scopes.BACKEND_RESOURCES]
    assert "*" not in scope


def test_scopes_without_listed_system_scopes_fall_back_to_the_capability_statement() -> None:
    """OpenEMR 8.1 lists no system/ scope in scopes_supported although it grants them."""
    only_some = {"Patient": ["_id"], "Condition": ["patient"], "Observation": ["patient"]}
    caps = Capabilities.from_statement(openemr_statement(only_some))

    scope = smart_scopes.derive_scopes(server_types=caps.resources, scopes_supported=["openid", "launch"])

    assert scope == "system/Patient.read system/Condition.read system/Observation.read"


def test_scopes_use_v2_form_when_only_that_is_listed_and_export_extras_on_request() -> None:
    scope = smart_scopes.derive_scopes(
        ["Patient", "Condition", "Goal"],
        scopes_supported=["system/Patient.rs", "system/Condition.read", "system/*.$export"],
        export=True,
    )

    assert scope == "system/Patient.rs system/Condition.read system/*.$export"


@pytest.mark.parametrize(
    ("scopes", "rtype", "allowed"),
    [
        (["system/Condition.read"], "Condition", True),
        (["system/Condition.rs"], "Condition", True),
        (["system/Condition.cruds"], "Condition", True),
        (["system/*.read"], "Condition", True),
        (["system/Condition.r"], "Condition", False),  # read by id only: no search
        (["system/Condition.rs?category=problem-list-item"], "Condition", False),  # a subset only
        (["patient/Condition.read"], "Condition", False),
        (["system/Observation.read"], "Condition", False),
        (["system/Condition.write"], "Condition", False),
    ],
)
def test_granted_scopes_decide_what_may_be_read(scopes: list[str], rtype: str, allowed: bool) -> None:
    assert smart_scopes.allows_read(scopes, rtype) is allowed


# --- keys and JWKS -------------------------------------------------------------------------------------
def test_generated_key_is_rsa_rs384_written_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "var" / "fhir-client-key.pem"

    first = load_or_create_key(path)
    second = load_or_create_key(path)

    assert first == second  # a restart keeps the key the EHR registered
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    auth = SmartBackendAuth("bbdirect-sidecar", first, token_url="https://emr.example/oauth2/default/token")
    assert auth.alg == "RS384"
    assert list(tmp_path.joinpath("var").iterdir()) == [path]  # no temporary file left behind
    with pytest.raises(FileNotFoundError):
        load_or_create_key(tmp_path / "configured.pem", create=False)  # a configured path must exist


def test_new_keys_default_to_rsa() -> None:
    assert SmartBackendAuth("c", new_signing_key(), token_url="https://x.example/token").alg == "RS384"


def test_jwks_holds_the_public_half_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(env={}, fhir_auth="smart", fhir_client_id="bbdirect-sidecar")

    document = jwks_from_settings(settings)

    (key,) = document["keys"]
    assert key["kty"] == "RSA" and key["alg"] == "RS384" and key["use"] == "sig" and key["kid"]
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)
    assert (tmp_path / "var" / "fhir-client-key.pem").exists()
    assert jwks_from_settings(settings) == document  # stable across calls (and restarts)


def test_the_sidecar_serves_its_jwks_without_authentication(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fhir_bridge.app import create_app

    monkeypatch.chdir(tmp_path)
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(new_signing_key("RS384"))
    db = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    smart = load_settings(
        env={}, database_url=db, fhir_auth="smart", fhir_private_key_file=str(key_file), fhir_key_id="k1"
    )
    plain = load_settings(env={}, database_url=db)

    served = create_app(smart, web=False, detectors=False).test_client().get("/.well-known/jwks.json")
    off = create_app(plain, web=False, detectors=False).test_client().get("/.well-known/jwks.json")

    assert served.status_code == 200 and served.mimetype == "application/jwk-set+json"
    (key,) = served.get_json()["keys"]
    assert key["kid"] == "k1" and key["alg"] == "RS384" and "d" not in key
    assert served.get_json() == jwks_from_settings(smart)
    assert off.status_code == 404 and off.get_json()["error"]["code"] == "no_backend_client"

    printed = CliRunner().invoke(
        __import__("bbdirect.cli", fromlist=["main"]).main,
        ["fhir", "jwks", "--compact"],
        env={
            "BBDIRECT_FHIR_AUTH": "smart",
            "BBDIRECT_FHIR_PRIVATE_KEY_FILE": str(key_file),
            "BBDIRECT_FHIR_KEY_ID": "k1",
            "BBDIRECT_DATABASE_URL": db,
        },
    )
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.output) == served.get_json()


def test_an_algorithm_the_server_does_not_list_is_refused_with_the_reason() -> None:
    auth = SmartBackendAuth("c", new_signing_key("RS384"), fhir_base_url="https://emr.example/fhir")
    auth._smart_config = {"token_endpoint_auth_signing_alg_values_supported": ["ES384"]}

    with pytest.raises(FhirAuthError) as caught:
        auth._check_signing_alg()

    assert "RS384" in caught.value.message and caught.value.detail == "unsupported_signing_alg"


# --- searches ------------------------------------------------------------------------------------------
def test_only_declared_search_parameters_are_sent() -> None:
    caps = Capabilities.from_statement(openemr_statement())

    query = search_params(caps, "Condition", {"patient": "Patient/p1"}, optional={"_count": 200})
    polling = search_params(caps, "Goal", {"_lastUpdated": "gt2026-01-01T00:00:00.000Z"}, {"_count": 9})

    assert query == {"patient": "Patient/p1"}  # _count: OpenEMR 7.0.3 answers it with an empty Bundle
    assert polling == {"_lastUpdated": "gt2026-01-01T00:00:00.000Z"}
    with pytest.raises(FhirSearchRefused, match="Medication"):
        search_params(caps, "Medication", {"patient": "Patient/p1"})
    with pytest.raises(FhirSearchRefused, match="Specimen"):
        search_params(caps, "Specimen", {"patient": "Patient/p1"})
    assert search_params(caps, "Observation", {"code:text": "bp"}) == {"code:text": "bp"}


def test_error_outcomes_in_a_search_set_are_found() -> None:
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-supported"}]}
    warning = {"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": "processing"}]}

    assert search_set_problem({"entry": [{"resource": outcome, "search": {"mode": "outcome"}}]}) == (
        "not-supported"
    )
    assert search_set_problem({"entry": [{"resource": warning}]}) is None
    assert search_set_problem({"entry": []}) is None


class ScriptedSession(requests.Session):
    """Answers each GET from a table keyed by path; records the query strings it was sent."""

    def __init__(self, answers: dict[str, Any]):
        super().__init__()
        self.answers = answers
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def request(self, method: str, url: str, params: Any = None, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        path = url.split("/fhir/", 1)[1] if "/fhir/" in url else url.rsplit("/", 1)[-1]
        self.sent.append((path, dict(params or {})))
        body = self.answers.get(path, {"resourceType": "Bundle", "type": "searchset", "total": 0})
        response = requests.Response()
        response.status_code = 200
        response._content = json.dumps(body).encode()
        response.headers["Content-Type"] = "application/fhir+json"
        return response


def _bundle(*resources: dict[str, Any], total: int | None = None) -> dict[str, Any]:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    bundle["entry"] = [{"resource": r} for r in resources]
    if total is not None:
        bundle["total"] = total
    return bundle


def _client(answers: dict[str, Any], auth: Any = None) -> tuple[FhirClient, ScriptedSession]:
    session = ScriptedSession({"metadata": openemr_statement(), **answers})
    return FhirClient("http://emr.example/apis/default/fhir", auth, session=session), session


PATIENT = {"resourceType": "Patient", "id": "p1"}
CONDITION = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"}}


def test_a_refused_search_stops_the_record_with_a_specific_reason() -> None:
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-supported"}]}
    client, _ = _client({"Patient/p1": PATIENT, "Condition": _bundle(outcome)})

    with pytest.raises(FhirSearchRefused) as caught:
        gather_patient_record(client, "p1")

    failure = classify(caught.value)
    assert (failure.transient, failure.code) == (False, "fhir_search_refused")
    assert "Condition" in failure.message and "not-supported" in failure.message


def test_fewer_matches_than_announced_is_an_incomplete_record() -> None:
    client, _ = _client({"Patient/p1": PATIENT, "Condition": _bundle(CONDITION, total=3)})

    with pytest.raises(FhirIncompleteResult) as caught:
        gather_patient_record(client, "p1")

    assert classify(caught.value).code == "fhir_incomplete_result" and caught.value.transient


def test_per_resource_gather_sends_no_count_and_keeps_every_match() -> None:
    client, session = _client({"Patient/p1": PATIENT, "Condition": _bundle(CONDITION, total=1)})

    record = gather_patient_record(client, "p1")

    assert [(r["resourceType"], r["id"]) for r in record] == [("Patient", "p1"), ("Condition", "c1")]
    searches = [(path, params) for path, params in session.sent if params]
    assert searches and all(set(params) == {"patient"} for _, params in searches)
    assert not any("$everything" in path for path, _ in session.sent)


class GrantedAuth:
    """An auth whose token grants read scopes for some types only (what OpenEMR does when the registered
    client has fewer scopes than requested: it trims the grant without an error)."""

    def __init__(self, granted: set[str]):
        self.granted = granted

    def headers(self) -> dict[str, str]:
        return {"Authorization": "Bearer t"}

    def invalidate(self) -> bool:
        return False

    def readable(self, rtype: str) -> bool | None:
        if rtype in self.granted:
            return True
        return False if rtype in smart_scopes.BACKEND_RESOURCES else None  # asked for, or never asked


def test_a_record_type_the_token_does_not_grant_stops_the_send() -> None:
    granted = set(smart_scopes.BACKEND_RESOURCES) - {"Condition"}
    client, _ = _client({"Patient/p1": PATIENT}, auth=GrantedAuth(granted))

    with pytest.raises(FhirAuthError) as caught:
        gather_patient_record(client, "p1")

    failure = classify(caught.value)
    assert failure.code == "fhir_auth_failed" and not failure.transient
    assert "Condition" in failure.message


def test_types_outside_the_record_list_are_not_searched_without_a_scope() -> None:
    client, session = _client(
        {"Patient/p1": PATIENT, "Coverage": _bundle({"resourceType": "Coverage", "id": "x"})},
        auth=GrantedAuth(set(smart_scopes.BACKEND_RESOURCES)),
    )

    record = gather_patient_record(client, "p1")

    assert not any(path == "Coverage" for path, _ in session.sent)
    assert {r["resourceType"] for r in record} == {"Patient"}


# --- polling and $export -------------------------------------------------------------------------------
def test_openemr_is_polled_by_last_updated_on_every_watched_type_it_has() -> None:
    client, _ = _client({})
    poller = Poller(client, store=None, on_change=print)  # type: ignore[arg-type]

    by_search, by_export = poller.plan()

    assert by_export == []  # $export is not in rest.operation: never chosen
    assert set(by_search) == {
        "Patient",
        "AllergyIntolerance",
        "CarePlan",
        "CareTeam",
        "Condition",
        "Coverage",
        "Device",
        "DiagnosticReport",
        "DocumentReference",
        "Encounter",
        "Goal",
        "Immunization",
        "MedicationRequest",
        "Observation",
        "Procedure",
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            {"date": "2026-12-07 18:01:00.000000", "timezone_type": 3, "timezone": "UTC"},
            "2026-12-07T18:01:00",
        ),
        (
            {"date": "2026-12-07 19:01:00.250000", "timezone_type": 3, "timezone": "Europe/Paris"},
            "2026-12-07T18:01:00.250000",
        ),
        (
            {"date": "2026-12-07 13:01:00.000000", "timezone_type": 1, "timezone": "-05:00"},
            "2026-12-07T18:01:00",
        ),
        (
            {"date": "2026-12-07 18:01:00.000000", "timezone_type": 2, "timezone": "GMT"},
            "2026-12-07T18:01:00",
        ),
        ("2026-12-07T18:01:00Z", "2026-12-07T18:01:00"),
        ("2026-12-07T19:01:00+01:00", "2026-12-07T18:01:00"),
        ({"date": "2026-12-07 18:01:00.000000", "timezone_type": 2, "timezone": "EST"}, None),  # ambiguous
        ({"date": "2026-12-07 18:01:00", "timezone_type": 3, "timezone": "Nowhere/Atlantis"}, None),
        ({"date": "yesterday", "timezone_type": 3, "timezone": "UTC"}, None),
        ("2026-12-07T18:01:00", None),  # an instant needs a zone
        (None, None),
        (1765130460, None),
    ],
)
def test_export_transaction_time_in_both_forms(value: Any, expected: str | None) -> None:
    parsed = parse_transaction_time(value)

    if expected is None:
        assert parsed is None
    else:
        assert parsed is not None and parsed.utcoffset() is not None
        assert parsed.replace(tzinfo=None).isoformat() == expected


def test_operator_chosen_scopes_leave_a_type_out_on_purpose() -> None:
    """fhir.scopes set without Condition: Condition was never asked for, so it is not searched (logged)."""
    from fhir_bridge.fhir.auth import SmartBackendAuth as Smart

    explicit = " ".join(f"system/{r}.read" for r in smart_scopes.BACKEND_RESOURCES if r != "Condition")
    auth = Smart("c", new_signing_key(), token_url="https://emr.example/token", scopes=explicit)
    auth.granted_scopes = tuple(explicit.split())
    client, session = _client({"Patient/p1": PATIENT, "Condition": _bundle(CONDITION, total=1)}, auth=auth)
    auth.access_token = lambda: "t"  # type: ignore[method-assign]

    record = gather_patient_record(client, "p1")

    assert auth.readable("Condition") is None and auth.readable("Observation") is True
    assert not any(path == "Condition" for path, _ in session.sent)
    assert [r["resourceType"] for r in record] == ["Patient"]


def test_fhir_defaults_fit_the_openemr_module() -> None:
    from fhir_bridge.config import ConfigError

    settings = load_settings(env={"BBDIRECT_FHIR_AUTH": "smart"})

    assert settings.fhir_client_id == "bbdirect-sidecar"  # GlobalConfig::DEFAULT_BACKEND_CLIENT_ID
    assert settings.fhir_scopes == "" and settings.fhir_private_key_file == ""  # derived / generated
    with pytest.raises(ConfigError, match="client_id"):
        load_settings(env={"BBDIRECT_FHIR_AUTH": "smart", "BBDIRECT_FHIR_CLIENT_ID": ""})
