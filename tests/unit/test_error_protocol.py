"""One error protocol (issue 13): every package's error base carries code/message/transient/detail, and the
pipeline classifies by that protocol alone."""

from __future__ import annotations

import logging

import pytest

from ccda_mapper.errors import CcdaMapperError, NoPatient, NotFhir
from direct.errors import DirectError, NoCertificate, Revoked, TooManyLookups, TransientDeliveryError
from fhir_bridge.api.errors import status_of
from fhir_bridge.config import ConfigError
from fhir_bridge.consent.errors import (
    Conflict,
    ConsentError,
    Forbidden,
    InvalidRequest,
    NotFound,
    NotJson,
    RateLimited,
)
from fhir_bridge.errors import BridgeError, DomainError
from fhir_bridge.fhir.errors import FhirError, FhirServerError
from fhir_bridge.pipeline.errors import AuthorizationRevoked, TransmissionNotFound, classify
from fhir_bridge.sources.pings import PingError
from fhir_bridge.web.fhir_reads import FhirReadError
from fhir_bridge.web.smart import SmartError
from fhir_bridge.wiring import DocumentUnavailable


@pytest.mark.parametrize(
    "exc",
    [
        DirectError("x"),
        CcdaMapperError("x"),
        BridgeError("x"),
        FhirError("x"),
        ConsentError("x"),
        RateLimited("x", retry_after=3),
        AuthorizationRevoked(),
        TransmissionNotFound(),
        FhirReadError(502),
        ConfigError("fhir.auth must be none, bearer or smart"),
        SmartError("not_smart"),
        DocumentUnavailable("no content"),
        PingError("bad_patient_id", "patient id is not a valid FHIR id"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_every_error_base_satisfies_the_protocol(exc):
    assert isinstance(exc, DomainError)
    assert isinstance(exc.code, str) and exc.code
    assert isinstance(exc.message, str) and exc.message
    assert isinstance(exc.transient, bool)
    assert exc.detail is None or isinstance(exc.detail, str)


def test_a_record_without_a_patient_is_a_permanent_no_patient_failure():
    """It was Failure(transient=True, code='internal_error'): retried 8 times and reported as our bug."""
    failure = classify(NoPatient("the bundle has no Patient"))
    assert (failure.transient, failure.code, failure.message) == (
        False,
        "no_patient",
        "the bundle has no Patient",
    )
    assert classify(NotFhir("not FHIR")).code == "not_fhir"


@pytest.mark.parametrize(
    ("exc", "transient", "code"),
    [
        (NoCertificate(), False, "no_certificate"),
        (TransientDeliveryError(detail="451 busy"), True, "delivery_deferred"),
        (FhirServerError(status=503), True, "fhir_server_error"),
        (NotFound("no such transmission"), False, "not_found"),
        (RateLimited("later", retry_after=5), True, "rate_limited"),
        (
            DocumentUnavailable("not this patient's", code="document_not_patients"),
            False,
            "document_not_patients",
        ),
    ],
)
def test_domain_errors_keep_their_code_and_transience(exc, transient, code):
    failure = classify(exc)
    assert (failure.transient, failure.code, failure.message) == (transient, code, exc.message)
    assert failure.detail == exc.detail


def _fail(text: str) -> None:
    raise RuntimeError(text)


def test_an_unknown_exception_is_a_permanent_internal_error_logged_without_its_text(caplog):
    """Issue 13: an unknown exception is a bug, not an outage; it was retried as transient before."""
    text = "Patient " + "John Smith has diabetes"  # a value at run time; the log shows source lines only
    try:
        _fail(text)
    except RuntimeError as exc:
        with caplog.at_level(logging.ERROR, logger="fhir_bridge.pipeline.errors"):
            failure = classify(exc)
    assert (failure.transient, failure.code) == (False, "internal_error")
    assert "RuntimeError" in failure.message and "Smith" not in failure.message
    assert caplog.records and "RuntimeError" in caplog.text and "Smith" not in caplog.text


def test_an_object_with_look_alike_attributes_of_the_wrong_type_is_not_trusted():
    """The protocol decides, then the values are checked: a ``transient`` that is not a bool is a bug."""

    class LookAlike(Exception):
        code = "x"
        message = "y"
        transient = "yes"
        detail = None

    assert classify(LookAlike()).code == "internal_error"


@pytest.mark.parametrize(
    ("exc", "status", "field"),
    [
        (Revoked(), 422, "address"),  # the recipient's certificate: Direct's own code ``revoked``...
        (AuthorizationRevoked(), 409, None),  # ...and a resend of a revoked authorization: same code, not 422
        (TooManyLookups(retry_after=7), 429, "address"),
        (NoCertificate(), 422, "address"),
        (NotJson("the body is not valid JSON"), 400, None),
        (InvalidRequest("a JSON body is required", code="bad_json"), 422, None),
        (RateLimited("later", retry_after=5, code="resend_too_soon"), 429, None),
        (NotFound("no such authorization", field="id"), 404, None),
        (Forbidden("no"), 403, None),
        (Conflict("no"), 409, None),
        (FhirError("not an API error"), 500, None),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_the_api_table_gives_each_error_its_status(exc, status, field):
    assert status_of(exc) == (status, field)


def test_a_revoked_resend_answers_as_before():
    """The body the route used to build by hand for PermissionError."""
    exc = AuthorizationRevoked()
    assert (exc.code, exc.message) == ("revoked", "The authorization was revoked; nothing can be sent.")
