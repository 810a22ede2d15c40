"""Schemathesis against the running API (waitress on loopback): generated requests from /openapi.json.

Checks: no server error (5xx) on any request, responses match the documented schemas, status codes and
content types. Examples are bounded so this stays a few seconds; an API key is sent so the generated
requests reach the handlers (missing/invalid credentials are covered in test_api.py).
"""

from __future__ import annotations

import threading

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.test_api import KEY, Builder, Sender, TableChecker
from tests.support.services import free_port, wait_for_port


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    import waitress.server

    from fhir_bridge.app import create_app
    from fhir_bridge.config import load_settings

    tmp = tmp_path_factory.mktemp("schemathesis")
    port = free_port()
    settings = load_settings(
        env={},
        database_url=f"sqlite:///{tmp}/api.sqlite3",
        server_api_keys=[f"emr:{KEY}"],
        fhir_write_consent=False,
    )
    app = create_app(
        settings, web=False, detectors=False, builder=Builder(), sender=Sender(), checker=TableChecker()
    )
    server = waitress.server.create_server(app, host="127.0.0.1", port=port, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_port("127.0.0.1", port)
    yield schemathesis.openapi.from_url(f"http://127.0.0.1:{port}/openapi.json")
    server.task_dispatcher.shutdown()
    server.close()


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_generated_requests_never_cause_a_server_error(api_schema):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 11
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def check(case):
            case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"}, checks=CHECKS)

        check()
