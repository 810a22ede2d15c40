"""Whose document is it: the pure fail-closed rule and the creation check's refusals (issue 12 #4).

The same rule runs against HAPI in tests/integration/test_document_ownership.py; here every reference form
is covered, including the ones HAPI will not store (``urn:uuid:`` outside a transaction).
"""

from __future__ import annotations

import pytest

from fhir_bridge.consent.errors import InvalidRequest
from fhir_bridge.consent.ownership import DocumentOwnership, belongs_to, subject_patient
from fhir_bridge.fhir.errors import FhirNotFound, FhirUnreachable
from fhir_bridge.web import wording

BASE = "http://fhir.example/r4"


def doc(subject: object = None, **extra: object) -> dict:
    resource: dict = {"resourceType": "DocumentReference", "id": "d1", **extra}
    if subject is not None:
        resource["subject"] = subject
    return resource


@pytest.mark.parametrize(
    "subject",
    [
        {"reference": "Patient/p1"},
        {"reference": "Patient/p1/_history/3"},
        {"reference": f"{BASE}/Patient/p1"},
        {"reference": f"{BASE}/Patient/p1/_history/3"},
        {"reference": "Patient/p1", "type": "Patient", "display": "Olive Own"},
        {"reference": "Patient/p1", "identifier": {"system": "urn:mrn", "value": "somebody-else"}},
    ],
)
def test_a_literal_reference_to_exactly_this_patient_on_this_server_belongs(subject):
    assert belongs_to(doc(subject), "p1", BASE)
    assert subject_patient(doc(subject), BASE) == "p1"


@pytest.mark.parametrize(
    "subject",
    [
        None,
        {},
        "Patient/p1",
        {"reference": None},
        {"reference": 7},
        {"reference": ""},
        {"identifier": {"system": "urn:mrn", "value": "p1"}},
        {"display": "Patient/p1"},
        {"type": "Patient", "identifier": {"value": "p1"}, "display": "Olive Own"},
        {"reference": "Patient/p2"},
        {"reference": "Patient/p10"},
        {"reference": "Patient/p1x"},
        {"reference": "patient/p1"},
        {"reference": "Group/p1"},
        {"reference": "Patient/p1", "type": "Group"},
        {"reference": "http://elsewhere.example/r4/Patient/p1"},
        {"reference": "http://fhir.example/r4-other/Patient/p1"},
        {"reference": "https://fhir.example/r4/Patient/p1"},
        {"reference": "urn:uuid:6f0e9a44-38a8-4f7e-9d52-0d3a3c4b9f10"},
        {"reference": "urn:oid:1.2.3.4"},
        {"reference": "#p1"},
        {"reference": "Patient?identifier=urn:mrn|p1"},
        {"reference": " Patient/p1"},
        {"reference": "Patient/p1/"},
    ],
)
def test_anything_else_does_not_belong(subject):
    assert not belongs_to(doc(subject), "p1", BASE)


def test_only_a_document_reference_is_a_document():
    assert not belongs_to({"resourceType": "Binary", "subject": {"reference": "Patient/p1"}}, "p1", BASE)
    assert not belongs_to({}, "p1", BASE)


class Client:
    base_url = BASE

    def __init__(self, answers: dict[str, object]):
        self.answers = answers
        self.reads: list[tuple[str, str]] = []

    def read(self, rtype: str, rid: str) -> dict:
        self.reads.append((rtype, rid))
        answer = self.answers[rid]
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]


def refusal(answers: dict[str, object], ids: list[str]) -> InvalidRequest:
    check = DocumentOwnership(lambda: Client(answers))
    with pytest.raises(InvalidRequest) as caught:
        check.check("p1", [{"id": f"DocumentReference/{i}"} for i in ids])
    assert caught.value.field == "payload.documents"
    return caught.value


def test_the_creation_check_reads_every_document_and_passes_only_the_patients_own():
    client = Client({"a": doc({"reference": "Patient/p1"}), "b": doc({"reference": f"{BASE}/Patient/p1"})})
    DocumentOwnership(lambda: client).check(
        "p1", [{"id": "DocumentReference/a"}, {"id": "DocumentReference/b"}]
    )
    assert client.reads == [("DocumentReference", "a"), ("DocumentReference", "b")]


def test_one_document_not_the_patients_refuses_the_whole_request():
    err = refusal({"a": doc({"reference": "Patient/p1"}), "b": doc({"display": "p1"})}, ["a", "b"])
    assert err.code == "document_not_patients" and "DocumentReference/b" in err.message


def test_a_missing_document_gets_the_same_answer_as_another_patients():
    missing = refusal({"a": FhirNotFound(status=404)}, ["a"])
    theirs = refusal({"a": doc({"reference": "Patient/p2"})}, ["a"])
    assert (missing.code, missing.message) == (theirs.code, theirs.message)


@pytest.mark.parametrize("failure", [FhirUnreachable(), RuntimeError("bad key file"), ValueError("bad url")])
def test_a_document_that_cannot_be_read_is_refused_not_assumed(failure):
    err = refusal({"a": failure}, ["a"])
    assert err.code == "document_unreadable"


def test_a_client_that_cannot_be_built_refuses():
    def broken():
        raise ValueError("FHIR base URL must be an absolute http(s) URL")

    with pytest.raises(InvalidRequest) as caught:
        DocumentOwnership(broken).check("p1", [{"id": "DocumentReference/a"}])
    assert caught.value.code == "document_unreadable"


def test_plain_words_for_the_new_reasons():
    assert "nothing was sent" in wording.transmission_reason("document_not_patients", "x")
    assert "nothing was sent" in wording.transmission_reason("document_unavailable", "x")
    assert "not filed under your record" in wording.document_error("document_not_patients")
    assert "did not answer" in wording.document_error("document_unreadable")
