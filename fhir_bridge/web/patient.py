"""The patient's pages (the Blue Button guide's "Patient Portal" storyboard).

Sign in → Share with Direct → address → once / always → entire record or chosen documents → preview →
Share → confirmation with the live delivery state → My sharing (history, Revoke). The patient is always the
one in the SMART token's context; nothing here takes a patient id from the browser.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    get_flashed_messages,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from ccda_mapper import build_ccd
from ccda_mapper.render import render_html
from direct.errors import DirectError
from fhir_bridge.consent.errors import ConsentError
from fhir_bridge.web import forms, smart, wording
from fhir_bridge.web.common import address_error, fhir_failure, service, status_dict, user_fhir
from fhir_bridge.web.fhir_reads import FhirReadError
from fhir_bridge.web.security import PREVIEW_CSP
from fhir_bridge.web.sharing import PayloadType, ShareRequest

log = logging.getLogger(__name__)

bp = Blueprint("web_patient", __name__, template_folder="templates")


def _patient() -> dict[str, Any]:
    ctx = smart.current()
    if ctx["role"] != "patient":
        # A clinician's token covers the chart's patient, but these pages speak to the patient.
        abort(403)
    return ctx


@bp.get("/")
def landing() -> Any:
    ctx = session.get("smart")
    if ctx:
        return redirect(url_for("web_patient.home" if ctx["role"] == "patient" else "web_clinician.record"))
    return render_template("patient/landing.html")


@bp.get("/patient")
def home() -> Any:
    ctx = _patient()
    try:
        patient = user_fhir(ctx).patient(ctx["patient"])
    except FhirReadError as exc:
        return fhir_failure(exc)
    shares = service().list_for_patient(ctx["patient"])
    return render_template("patient/home.html", patient=patient, active=[s for s in shares if s.active])


@bp.route("/patient/share", methods=["GET", "POST"])
def share() -> Any:
    ctx = _patient()
    try:
        documents = user_fhir(ctx).documents(ctx["patient"])
    except FhirReadError as exc:
        return fhir_failure(exc)
    if request.method == "GET":
        draft = session.get("share_draft") or {"kind": "", "payload": "entire_record", "documents": []}
        return render_template("patient/share.html", values=draft, errors={}, documents=documents)
    form = forms.patient_share(
        {**request.form.to_dict(), "documents": request.form.getlist("documents")}, documents
    )
    if form.ok:
        try:
            check = service().check_address(
                form.values["address"], trusted_only=False, principal=f"patient:{ctx['patient']}"
            )
            form.values["trusted"] = check.trusted
        except DirectError as exc:
            form.errors["address"] = address_error(exc, form.values["address"])
    if not form.ok:
        return render_template(
            "patient/share.html", values=form.values, errors=form.errors, documents=documents
        ), 422
    chosen = [d for d in documents if d["id"] in form.values["documents"]]
    session["share_draft"] = {**form.values, "chosen": chosen}
    return redirect(url_for("web_patient.preview"))


@bp.get("/patient/share/preview")
def preview() -> Any:
    _patient()
    draft = session.get("share_draft")
    if not draft:
        return redirect(url_for("web_patient.share"))
    return render_template(
        "patient/preview.html", draft=draft, kinds=wording.KIND_LABELS, not_trusted=wording.NOT_TRUSTED_TEXT
    )


@bp.get("/patient/share/preview/document")
def preview_document() -> Any:
    """The C-CDA that will be sent, rendered for people, in its own sandboxed document."""
    ctx = _patient()
    try:
        html = render_record(user_fhir(ctx).record(ctx["patient"]))
    except FhirReadError as exc:
        return fhir_failure(exc)
    response = current_response(html)
    response.headers["Content-Security-Policy"] = PREVIEW_CSP
    return response


def render_record(resources: list[dict[str, Any]]) -> str:
    try:
        return render_html(build_ccd(resources))
    except Exception as exc:  # the preview is a courtesy: its failure must not block sharing
        log.warning("preview could not be built: %s", type(exc).__name__)
        return "<!doctype html><title>Preview</title><p>The preview is not available right now.</p>"


def current_response(html: str) -> Any:
    response = make_response(html)
    response.headers["Content-Type"] = "text/html; charset=utf-8"
    return response


@bp.post("/patient/share/confirm")
def confirm() -> Any:
    ctx = _patient()
    draft = session.get("share_draft")
    if not draft:
        return redirect(url_for("web_patient.share"))
    payload: PayloadType = "documents" if draft.get("chosen") else "entire_record"
    req = ShareRequest(
        patient_id=ctx["patient"],
        address=draft["address"],
        kind=draft["kind"],
        created_by_type="patient",
        created_by_id=ctx["fhir_user"] or f"Patient/{ctx['patient']}",
        consent_method="portal",
        payload_type=payload,
        documents=draft.get("chosen") or [],
    )
    try:
        view = service().create(req)
    except DirectError as exc:
        flash(address_error(exc, draft["address"]), "error")
        session["share_draft"] = draft
        return redirect(url_for("web_patient.share_again"))
    except ConsentError as exc:
        # A chosen document refused by the consent service (not, or no longer, filed under this patient).
        if exc.field != "payload.documents":
            raise
        flash(wording.document_error(exc.code), "error-documents")
        session["share_draft"] = draft
        return redirect(url_for("web_patient.share_again"))
    session.pop("share_draft", None)
    return redirect(url_for("web_patient.sharing_detail", authorization_id=view.id))


@bp.get("/patient/share/again")
def share_again() -> Any:
    """Back to the form after a refusal at Share time, with what was typed and the error by the field."""
    ctx = _patient()
    draft = session.get("share_draft") or {}
    try:
        documents = user_fhir(ctx).documents(ctx["patient"])
    except FhirReadError as exc:
        return fhir_failure(exc)
    flashes = _flashes()
    messages = [m for cat, m in flashes if cat == "error"]
    errors = {"address": messages[0]} if messages else {}
    refused = [m for cat, m in flashes if cat == "error-documents"]
    if refused:
        errors["documents"] = refused[0]
    return render_template("patient/share.html", values=draft, errors=errors, documents=documents), 422


def _flashes() -> list[tuple[str, str]]:
    # with_categories=True gives (category, message) pairs; Flask's return type also covers plain strings.
    return [(str(item[0]), str(item[1])) for item in get_flashed_messages(with_categories=True)]


@bp.get("/patient/sharing")
def sharing() -> Any:
    ctx = _patient()
    shares = service().list_for_patient(ctx["patient"])
    return render_template(
        "patient/sharing.html",
        shares=shares,
        status_of=wording.status_of,
        kinds=wording.KIND_LABELS,
        methods=wording.METHOD_LABELS,
    )


@bp.get("/patient/sharing/<authorization_id>")
def sharing_detail(authorization_id: str) -> Any:
    ctx = _patient()
    view = service().get(ctx["patient"], authorization_id)
    if view is None:
        return smart.error_page("not_found", 404)
    return render_template(
        "patient/confirmation.html",
        share=view,
        status=status_dict(view),
        status_of=wording.status_of,
        kinds=wording.KIND_LABELS,
        words=wording,
    )


@bp.post("/patient/sharing/<authorization_id>/revoke")
def revoke(authorization_id: str) -> Any:
    ctx = _patient()
    view = service().revoke(
        ctx["patient"],
        authorization_id,
        actor_type="patient",
        actor_id=ctx["fhir_user"] or f"Patient/{ctx['patient']}",
    )
    if view is None:
        return smart.error_page("not_found", 404)
    flash(f"Stopped sharing with {view.address}. Nothing more will be sent there.", "info")
    return redirect(url_for("web_patient.sharing"))
