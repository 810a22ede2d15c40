"""The clinician's pages (the Blue Button guide's "Provider Setting" storyboard), opened by EHR launch.

Patient record → Add Direct Address → address (pre-filled from the patient's Direct / trusted e-mail) →
Always send → consent method (in person / signed clipboard form) with an attestation → Add & Send; the
patient's sharing list with Stop sending. Clinician-created authorizations need a *trusted* recipient
(the certificate must chain to one of our trust anchors): the discovery issue's policy.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from direct.errors import DirectError
from fhir_bridge.web import forms, smart, wording
from fhir_bridge.web.common import address_error, fhir_failure, service, status_dict, user_fhir
from fhir_bridge.web.fhir_reads import FhirReadError
from fhir_bridge.web.sharing import ShareRequest

bp = Blueprint("web_clinician", __name__, template_folder="templates")


def _clinician() -> dict[str, Any]:
    ctx = smart.current()
    if ctx["role"] != "clinician":
        abort(403)
    return ctx


def _record_page(ctx: dict[str, Any], status: int = 200, **extra: Any) -> Any:
    try:
        patient = user_fhir(ctx).patient(ctx["patient"])
    except FhirReadError as exc:
        return fhir_failure(exc)
    shares = service().list_for_patient(ctx["patient"])
    return render_template(
        "clinician/record.html",
        patient=patient,
        shares=shares,
        status_of=wording.status_of,
        status_dict=status_dict,
        kinds=wording.KIND_LABELS,
        methods=wording.METHOD_LABELS,
        **extra,
    ), status


@bp.get("/clinician")
def record() -> Any:
    return _record_page(_clinician())


@bp.route("/clinician/add", methods=["GET", "POST"])
def add() -> Any:
    ctx = _clinician()
    try:
        patient = user_fhir(ctx).patient(ctx["patient"])
    except FhirReadError as exc:
        return fhir_failure(exc)
    if request.method == "GET":
        values = {"address": patient.direct_address or "", "always": True, "method": "", "attest": False}
        return render_template(
            "clinician/add.html",
            patient=patient,
            values=values,
            errors={},
            prefilled=bool(patient.direct_address),
        )
    form = forms.clinician_add(request.form.to_dict())
    if form.ok:
        req = ShareRequest(
            patient_id=ctx["patient"],
            address=form.values["address"],
            kind="always" if form.values["always"] else "once",
            created_by_type="clinician",
            created_by_id=ctx["fhir_user"] or "unknown-user",
            consent_method=form.values["method"],
            attestation=forms.attestation_text(form.values["method"]),
        )
        try:
            view = service().create(req)
        except DirectError as exc:
            form.errors["address"] = address_error(exc, form.values["address"], trusted_only=True)
        else:
            flash(f"Added {view.address}. The record is being sent now.", "info")
            return redirect(url_for("web_clinician.record", _anchor=f"share-{view.id}"))
    return render_template(
        "clinician/add.html", patient=patient, values=form.values, errors=form.errors, prefilled=False
    ), 422


@bp.post("/clinician/sharing/<authorization_id>/stop")
def stop(authorization_id: str) -> Any:
    ctx = _clinician()
    view = service().revoke(
        ctx["patient"], authorization_id, actor_type="clinician", actor_id=ctx["fhir_user"] or "unknown-user"
    )
    if view is None:
        return smart.error_page("not_found", 404)
    flash(f"Stopped sending to {view.address}.", "info")
    return redirect(url_for("web_clinician.record"))
