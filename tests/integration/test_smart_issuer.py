"""Which issuer an id_token must carry, when smart-configuration names the FHIR base instead (as OpenEMR does).

The real OpenEMR path runs in tests/openemr/test_smart_flows.py; these reach the refusals a real server does
not produce: a discovery document of another authority (other keys) or one whose issuer is not its own URL.
"""

from __future__ import annotations

from fhir_bridge.web.smart import oidc_issuer
from tests.support.scripted_http import Reply, ScriptedServer


def test_issuer_confirmed_by_the_authorization_servers_own_discovery() -> None:
    server = ScriptedServer()
    try:
        fhir, auth = f"{server.base}/apis/default/fhir", f"{server.base}/oauth2/default"
        jwks = f"{auth}/jwk"
        server.then(
            Reply(404, {}),  # {fhir}/.well-known/openid-configuration: none
            Reply(body={"issuer": auth, "jwks_uri": jwks}),
        )
        assert oidc_issuer(fhir, f"{auth}/authorize", jwks) == (auth, jwks)
        assert [s.path for s in server.seen] == [
            "/apis/default/fhir/.well-known/openid-configuration",
            "/oauth2/default/.well-known/openid-configuration",
        ]
        # Another key set, or an issuer that is not the document's own URL: not confirmed, the declared one stays.
        server.then(Reply(404, {}), Reply(body={"issuer": auth, "jwks_uri": f"{server.base}/other-keys"}))
        assert oidc_issuer(fhir, f"{auth}/authorize", jwks) == (fhir, jwks)
        server.then(Reply(404, {}), Reply(body={"issuer": "https://elsewhere.test", "jwks_uri": jwks}))
        assert oidc_issuer(fhir, f"{auth}/authorize", jwks) == (fhir, jwks)
        # OpenEMR 7.0.3: smart-configuration names neither; the authorization server's discovery gives both.
        server.then(Reply(body={"issuer": auth, "jwks_uri": jwks}))
        assert oidc_issuer(None, f"{auth}/authorize", None) == (auth, jwks)
    finally:
        server.close()
