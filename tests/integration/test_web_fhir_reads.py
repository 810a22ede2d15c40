"""The pages' FHIR reads with the user's token: paging stays on the FHIR server's own origin, and no search
parameter is sent that servers refuse (OpenEMR 7.0.3 answers ``_count`` with an empty Bundle)."""

from __future__ import annotations

import pytest

from fhir_bridge.web.fhir_reads import FhirReadError, UserFhir
from tests.support.scripted_http import Reply, ScriptedServer


def _bundle(*ids: str, next_url: str | None = None) -> dict:
    links = [{"relation": "next", "url": next_url}] if next_url else []
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": [{"resource": {"resourceType": "Condition", "id": i}} for i in ids],
    }


@pytest.fixture
def servers():
    ehr, elsewhere = ScriptedServer(), ScriptedServer()
    yield ehr, elsewhere
    ehr.close()
    elsewhere.close()


def test_same_origin_pages_are_followed_without_count(servers) -> None:
    ehr, _ = servers
    ehr.then(
        Reply(body=_bundle("a", "b", next_url=f"{ehr.base}/fhir?page=2")),
        Reply(body=_bundle("c")),
    )
    found = UserFhir(f"{ehr.base}/fhir", "user-token").search("Condition", {"patient": "p1"})
    assert [r["id"] for r in found] == ["a", "b", "c"]
    assert "_count" not in ehr.seen[0].path and "patient=p1" in ehr.seen[0].path
    assert ehr.seen[1].path == "/fhir?page=2"


def test_next_link_to_another_origin_is_refused_and_gets_no_token(servers) -> None:
    ehr, elsewhere = servers
    ehr.then(Reply(body=_bundle("a", next_url=f"{elsewhere.base}/collect?page=2")))
    with pytest.raises(FhirReadError) as refused:
        UserFhir(f"{ehr.base}/fhir", "user-token").search("Condition", {"patient": "p1"})
    assert refused.value.status == 502
    assert elsewhere.seen == []  # the user's bearer token never left the FHIR server's origin
