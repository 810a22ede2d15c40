"""Helpers shared by the patient and clinician pages: the signed-in context, the service, status JSON."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, current_app, jsonify, make_response, render_template, session

from direct.errors import DirectError
from fhir_bridge.web import smart, wording
from fhir_bridge.web.backend import sharing_service
from fhir_bridge.web.fhir_reads import FhirReadError, UserFhir
from fhir_bridge.web.sharing import AuthorizationView, SharingService

log = logging.getLogger(__name__)

bp = Blueprint("web_common", __name__, template_folder="templates")


def service() -> SharingService:
    return sharing_service(current_app)


def user_fhir(ctx: dict[str, Any]) -> UserFhir:
    return UserFhir(ctx["iss"], ctx["access_token"])


def domain_of(address: str) -> str | None:
    return address.rpartition("@")[2] or None


def address_error(exc: DirectError, address: str, *, trusted_only: bool = False) -> str:
    """The sentence for a refused address. Under the clinician's *trusted* policy, discovery reports a
    certificate that fails only the trust-anchor check as "none usable"; asking again under the public policy
    tells that case apart, so the page can say plainly that the recipient is not in a trust bundle.
    """
    code = exc.code
    if trusted_only and code == "no_usable_certificate":
        try:
            check = service().check_address(address, trusted_only=False)
        except DirectError:
            pass
        else:
            if not check.trusted:
                code = "untrusted"
    return wording.address_error(code, domain_of(address), exc.message)


def status_dict(view: AuthorizationView) -> dict[str, Any]:
    """What the status script needs: no address, no patient data, only the state of the latest send."""
    tx = view.latest
    status = wording.status_of(tx)
    return {
        "id": view.id,
        "tone": status.tone,
        "label": status.label,
        "reason": status.reason,
        "final": status.final or not view.active,
        "active": view.active,
        "encrypted": bool(tx and tx.encrypted),
        "signed": bool(tx and tx.signed),
    }


@bp.get("/sharing/<authorization_id>/status")
def status(authorization_id: str) -> Any:
    """Polled by static/status.js (and usable by anything else that holds the session)."""
    ctx = smart.current()
    view = service().get(ctx["patient"], authorization_id)
    if view is None:
        return jsonify({"error": "not_found"}), 404
    return jsonify(status_dict(view))


def fhir_failure(exc: FhirReadError) -> Any:
    """A FHIR read failed with the user's token: 401 means the sign-in is no longer valid."""
    if exc.status == 401:
        session.clear()
        return smart.error_page("expired", 401)
    log.warning("FHIR read failed with HTTP %s", exc.status)
    return make_response(
        render_template(
            "error.html",
            code="fhir",
            title="The health record is not available",
            text="Please try again in a few minutes.",
        ),
        502,
    )
