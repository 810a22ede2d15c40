"""REST routes (``/api/v1``), health, readiness and metrics (the last two only to a credential).

Every error is ``{"error": {"code", "message", "field"}}`` with a stable code; a Direct error refusing an
address keeps its own code (``bad_address``, ``no_certificate``, ``untrusted``...) so the EMR plugin and
the pages can show the specific reason. A patient token may touch only its own patient.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import ValidationError
from sqlalchemy import select, text
from werkzeug.exceptions import HTTPException

from fhir_bridge import audit
from fhir_bridge.api import errors, serialize
from fhir_bridge.api.auth import KeyRing, Principal, authenticate
from fhir_bridge.api.errors import error
from fhir_bridge.api.models import FHIR_ID, ChangeAccepted, PatientToken, Revoke
from fhir_bridge.api.openapi import document
from fhir_bridge.consent.errors import Forbidden, InvalidRequest, NotFound, NotJson
from fhir_bridge.consent.model import parse_request
from fhir_bridge.db.models import Authorization, Transmission
from fhir_bridge.sources.pings import PingError, ping_event

if TYPE_CHECKING:
    from fhir_bridge.sidecar import Sidecar

log = logging.getLogger(__name__)

api = Blueprint("bbdirect_api", __name__)
errors.register(api)  # domain errors -> HTTP statuses: the one table in fhir_bridge/api/errors.py
ops = Blueprint("bbdirect_ops", __name__)

_ID = re.compile(r"[A-Za-z0-9\-]{1,64}\Z")


def sidecar() -> Sidecar:
    return current_app.extensions["bbdirect"]


# --- authentication --------------------------------------------------------------------------
@api.before_request
def _authenticate() -> Response | None:
    sc = sidecar()
    principal = authenticate(request.headers.get("Authorization"), sc.keys, sc.tokens)
    if principal is None:
        return error(401, "unauthorized", "A valid API key or patient token is required.")
    g.principal = principal
    return None


def principal() -> Principal:
    return g.principal


def require_patient(patient_id: str) -> None:
    if not principal().may_act_on(patient_id):
        raise Forbidden("This token may act only on its own patient.")


def _caller_actor(body_actor: Any = None) -> audit.Actor:
    p = principal()
    if p.kind == "patient":
        return audit.Actor("patient", p.id)
    if body_actor is not None:
        if not isinstance(body_actor, dict):
            raise InvalidRequest("actor must be an object {type, id}", field="actor")
        try:
            actor = Revoke.model_validate({"actor": body_actor}).actor
        except ValidationError:
            raise InvalidRequest("actor must be {type: patient|clinician, id}", field="actor") from None
        if actor is not None:
            return audit.Actor(actor.type, actor.id)
    return audit.Actor("api_key", p.id)


def _json_body(required: bool) -> Any:
    if not request.data:
        if required:
            raise InvalidRequest("a JSON body is required", code="bad_json")
        return {}
    body = request.get_json(silent=True)
    if body is None:
        raise NotJson("the body is not valid JSON")
    return body


@api.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return error(exc.code or 500, (exc.name or "error").lower().replace(" ", "_"), exc.description or "")


# --- authorizations --------------------------------------------------------------------------
@api.post("/authorizations")
def create_authorization() -> tuple[Response, int]:
    body = _json_body(required=True)
    req = parse_request(body)
    p = principal()
    if p.kind == "patient":
        # A patient acts for themself only, through the portal, and is recorded as the creator.
        if req.patient_id != p.patient_id or req.created_by_type != "patient" or req.created_by_id != p.id:
            raise Forbidden(
                "A patient token may create authorizations only for its own patient, as that patient."
            )
    actor = audit.Actor(req.created_by_type, req.created_by_id)
    auth = sidecar().consent.create(req, actor)
    latest = _latest(auth.id)
    return jsonify({"authorization": serialize.authorization(auth, latest)}), 201


def _latest(auth_id: str) -> Transmission | None:
    with sidecar().db.session() as s:
        return s.scalar(
            select(Transmission)
            .where(Transmission.authorization_id == auth_id)
            .order_by(Transmission.created_at.desc(), Transmission.id)
            .limit(1)
        )


def _check_id(value: str, what: str) -> str:
    if not _ID.match(value):
        raise NotFound(f"no such {what}", field="id")
    return value


def _owned_authorization(auth_id: str) -> Authorization:
    auth = sidecar().consent.get(_check_id(auth_id, "authorization"))
    if not principal().may_act_on(auth.patient_id):
        raise NotFound("no such authorization", field="id")  # do not reveal other patients' ids
    return auth


@api.get("/patients/<pid>/authorizations")
def list_authorizations(pid: str) -> Response:
    if not FHIR_ID.match(pid):
        raise InvalidRequest("pid must be a FHIR id", field="pid")
    require_patient(pid)
    auths = sidecar().consent.list_for_patient(pid)
    return jsonify({"authorizations": [serialize.authorization(a, _latest(a.id)) for a in auths]})


@api.get("/authorizations/<auth_id>")
def get_authorization(auth_id: str) -> Response:
    auth = _owned_authorization(auth_id)
    return jsonify({"authorization": serialize.authorization(auth, _latest(auth.id))})


@api.post("/authorizations/<auth_id>/revoke")
def revoke_authorization(auth_id: str) -> Response:
    body = _json_body(required=False)
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    auth = _owned_authorization(auth_id)
    actor = _caller_actor(body.get("actor"))
    auth = sidecar().consent.revoke(auth.id, actor)
    return jsonify({"authorization": serialize.authorization(auth, _latest(auth.id))})


@api.get("/authorizations/<auth_id>/transmissions")
def list_transmissions(auth_id: str) -> Response:
    auth = _owned_authorization(auth_id)
    return jsonify(
        {"transmissions": [serialize.transmission(t) for t in sidecar().consent.transmissions(auth.id)]}
    )


def _owned_transmission(tx_id: str) -> Transmission:
    tx = sidecar().consent.transmission(_check_id(tx_id, "transmission"))
    if not principal().may_act_on(tx.patient_id):
        raise NotFound("no such transmission", field="id")
    return tx


@api.get("/transmissions/<tx_id>")
def get_transmission(tx_id: str) -> Response:
    return jsonify({"transmission": serialize.transmission(_owned_transmission(tx_id))})


@api.post("/transmissions/<tx_id>/resend")
def resend_transmission(tx_id: str) -> tuple[Response, int]:
    tx = _owned_transmission(tx_id)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not re.fullmatch(r"[A-Za-z0-9_\-.:]{1,100}", key):
        raise InvalidRequest("Idempotency-Key: letters, digits and -_.: only", field="Idempotency-Key")
    job = sidecar().consent.resend(tx.id, _caller_actor(), key)
    return jsonify({"transmission": serialize.transmission(job)}), 202


# --- patient tokens
@api.post("/patients/<pid>/tokens")
def issue_patient_token(pid: str) -> tuple[Response, int]:
    """An integrator (API key) issues a token that may act only on this patient (e.g. for a portal page)."""
    if not FHIR_ID.match(pid):
        raise InvalidRequest("pid must be a FHIR id", field="pid")
    if principal().kind != "api_key":
        raise Forbidden("Only an API key may issue patient tokens.")
    sc = sidecar()
    audit_actor = audit.Actor("api_key", principal().id)
    with sc.db.session() as s:
        audit.record(
            s,
            actor=audit_actor,
            action="token.issue",
            entity_type="patient",
            entity_id=pid,
            patient_id=pid,
            outcome="success",
        )
    body = PatientToken(
        token=sc.tokens.issue(pid),
        token_type="Bearer",  # noqa: S106  # the OAuth token type, not a secret
        expires_in=sc.tokens.ttl,
        patient_id=pid,
    )
    return jsonify(serialize.body(body)), 201


# --- change pings ----------------------------------------------------------------------------
@api.post("/patients/<pid>/changed")
def patient_changed(pid: str) -> tuple[Response, int]:
    if not FHIR_ID.match(pid):
        raise InvalidRequest("pid must be a FHIR id", field="pid")
    require_patient(pid)
    if not sidecar().settings.sources_pings:
        raise Forbidden("Change pings are turned off (sources.pings).")

    body = _json_body(required=False)
    try:
        event = ping_event(pid, body or None)
    except PingError as exc:
        raise InvalidRequest(exc.message, code=exc.code) from None
    due = sidecar().pipeline.notify(event.patient_id, event.source)
    return jsonify(serialize.body(ChangeAccepted(patient_id=pid, due_at=due))), 202


# --- operations ------------------------------------------------------------------------------
@ops.get("/openapi.json")
def openapi() -> Response:
    return jsonify(document())


@ops.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


#: Operations endpoints that tell more than "alive": answered only to a credential (see :func:`_ops_guard`).
_GUARDED_OPS = frozenset({"bbdirect_ops.readyz", "bbdirect_ops.metrics"})


@ops.before_request
def _ops_guard() -> Response | None:
    """``/readyz`` and ``/metrics`` need an API key or an ops key (``server.ops_keys``), unless
    ``server.ops_public``. ``/healthz`` and ``/openapi.json`` stay open (liveness probes, integrators)."""
    if request.endpoint not in _GUARDED_OPS:
        return None
    sc = sidecar()
    if sc.settings.server_ops_public:
        return None
    header = request.headers.get("Authorization") or ""
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    if scheme.lower() == "bearer" and credential and len(credential) <= 4096:
        ops_keys = current_app.extensions.get("bbdirect.ops_keys")
        if ops_keys is None:
            ops_keys = current_app.extensions["bbdirect.ops_keys"] = KeyRing(sc.settings.server_ops_keys)
        if ops_keys.match(credential) or sc.keys.match(credential):
            return None
    return error(401, "unauthorized", "An API key or an ops key (server.ops_keys) is required.")


@ops.get("/readyz")
def readyz() -> tuple[Response, int]:
    try:
        with sidecar().db.session() as s:
            revision = s.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception as exc:
        return jsonify({"status": "unavailable", "reason": type(exc).__name__}), 503
    if revision is None:
        return jsonify({"status": "unavailable", "reason": "database not migrated"}), 503
    return jsonify({"status": "ready", "schema": revision}), 200


@ops.get("/metrics")
def metrics() -> Response:
    registry: CollectorRegistry = current_app.extensions["bbdirect.metrics"]
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
