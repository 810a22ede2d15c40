"""Contract test: the OpenEMR module's PHP client against the REAL running sidecar.

The sidecar runs for real (create_app with its real wiring: SQLite, discovery against the BIND9 fixture,
HAPI as the FHIR server), served by waitress on loopback. A WSGI recorder keeps every exchange, and each
request the PHP client made and each response it handled is validated against the sidecar's own
/openapi.json with openapi-core. The PHP side reports what it understood (values or SidecarException codes).
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import threading
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.serialization import Encoding

from tests.support.services import free_port, need, wait_for_port

pytestmark = [pytest.mark.service("php"), pytest.mark.service("bind9"), pytest.mark.service("hapi")]

MODULE = Path(__file__).resolve().parents[2] / "plugin" / "openemr" / "oe-module-bluebutton-direct"
KEY = "openemr-module-contract"
GOOD = "doctor@contract-hisp.test"
NOCERT = "nobody@contract-empty.test"


class Recorder:
    """WSGI middleware that keeps (method, path, query, content type, body, status, response) per request."""

    def __init__(self, app):
        self.app = app
        self.exchanges: list[dict] = []

    def __call__(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        record = {
            "method": environ["REQUEST_METHOD"],
            "path": environ.get("PATH_INFO", ""),
            "query": environ.get("QUERY_STRING", ""),
            "content_type": environ.get("CONTENT_TYPE", ""),
            "authorization": environ.get("HTTP_AUTHORIZATION", ""),
            "body": body,
        }

        def capture(status, headers, exc_info=None):
            record["status"] = int(status.split()[0])
            record["response_type"] = dict(headers).get("Content-Type", "")
            return start_response(status, headers, exc_info)

        chunks = list(self.app(environ, capture))
        record["response"] = b"".join(chunks)
        self.exchanges.append(record)
        return chunks


@pytest.fixture(scope="module")
def sidecar(hapi, bind, pki, tmp_path_factory):
    import waitress.server

    from fhir_bridge.app import create_app
    from fhir_bridge.config import load_settings

    tmp = tmp_path_factory.mktemp("contract")
    recipient = pki.address(GOOD, issuer=pki.root)
    der = base64.b64encode(recipient.cert.public_bytes(Encoding.DER)).decode()
    bind.zone("contract-hisp.test", [f"doctor IN CERT PKIX 0 0 ( {der} )"])
    bind.zone("contract-empty.test", ["www IN A 127.0.0.1"])
    sender = pki.address("ehr@contract-sender.test", issuer=pki.root)
    cert_path, key_path = pki.write(sender, "contract-sender")
    patient = hapi.create({"resourceType": "Patient", "name": [{"family": "Contract", "given": ["Pat"]}]})
    port = free_port()
    settings = load_settings(
        env={},
        database_url=f"sqlite:///{tmp}/contract.sqlite3",
        server_port=port,
        server_public_url=f"http://127.0.0.1:{port}",
        server_api_keys=[f"openemr:{KEY}"],
        fhir_base_url=hapi.base_url,
        fhir_write_consent=False,
        direct_dns_server=bind.nameserver,
        direct_from_address="ehr@contract-sender.test",
        direct_identity_cert=str(cert_path),
        direct_identity_key=str(key_path),
        direct_trust_anchors=[str(pki.root_pem)],
        sources_subscriptions=False,
        pipeline_workers=0,
    )
    app = create_app(settings, web=False, detectors=False)
    recorder = Recorder(app.wsgi_app)
    app.wsgi_app = recorder
    server = waitress.server.create_server(app, host="127.0.0.1", port=port, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    wait_for_port("127.0.0.1", port)
    yield {"url": f"http://127.0.0.1:{port}", "patient": patient["id"], "recorder": recorder}
    server.task_dispatcher.shutdown()
    server.close()


@pytest.fixture(scope="module")
def php_run(sidecar):
    php = need("php")
    env = {
        **os.environ,
        "SIDECAR_URL": sidecar["url"],
        "SIDECAR_API_KEY": KEY,
        "PATIENT_ID": sidecar["patient"],
        "GOOD_ADDRESS": GOOD,
        "NOCERT_ADDRESS": NOCERT,
    }
    result = subprocess.run(
        [php, str(MODULE / "tests" / "contract" / "contract_client.php")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_module_understands_every_answer(php_run, sidecar):
    assert php_run["list_before"] == {"ok": True, "value": []}
    created = php_run["create"]
    assert created["ok"], created
    assert created["value"]["address"] == GOOD
    assert created["value"]["kind"] == "always"
    assert php_run["create_bad_syntax"]["ok"] is False
    assert php_run["create_bad_syntax"]["code"] == "bad_address"
    assert php_run["create_bad_syntax"]["field"] == "address"
    nocert = php_run["create_no_certificate"]
    assert nocert["ok"] is False and nocert["code"] == "no_certificate"
    assert "contract-empty.test" in nocert["message"]
    [listed] = php_run["list_after"]["value"]  # the refused ones were not saved
    assert listed["id"] == created["value"]["id"]
    assert php_run["transmissions"]["ok"]
    assert php_run["revoke"]["ok"]
    assert php_run["ping"] == {"ok": True, "value": None}
    assert php_run["wrong_key"]["ok"] is False and php_run["wrong_key"]["status"] == 401


def test_every_exchange_matches_the_openapi_document(php_run, sidecar):
    from openapi_core import OpenAPI
    from openapi_core.testing import MockRequest, MockResponse

    spec = requests.get(sidecar["url"] + "/openapi.json", timeout=10).json()
    openapi = OpenAPI.from_dict(spec)
    exchanges = [x for x in sidecar["recorder"].exchanges if x["path"].startswith("/api/")]
    assert len(exchanges) >= 8
    for x in exchanges:
        request = MockRequest(
            sidecar["url"],
            x["method"].lower(),
            x["path"],
            args=dict(p.split("=", 1) for p in x["query"].split("&") if "=" in p),
            headers={
                "Authorization": x["authorization"],
                "Content-Type": x["content_type"] or "application/json",
            },
            data=x["body"] or None,
            content_type=x["content_type"] or None,
        )
        if x["authorization"] == f"Bearer {KEY}":
            openapi.validate_request(request)
        response = MockResponse(
            x["response"],
            status_code=x["status"],
            content_type=x["response_type"].split(";")[0] or "application/json",
        )
        openapi.validate_response(request, response)
