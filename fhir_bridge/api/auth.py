"""Who is calling the REST API: an integrator / EMR plugin with an API key, or a patient with a scoped token.

Why two kinds: the EMR plugin and integrators act for many patients (and say which clinician acted); a
patient token (issued by the sidecar after a SMART patient launch, or by an integrator) is bound to ONE
patient and every route checks it may act only on that patient's authorizations.

API keys come from ``server.api_keys`` as ``name:key`` or ``name:sha256:<hex>``; the comparison is constant
time. Patient tokens are ``pt.<signed payload>`` signed with ``server.secret_key`` (itsdangerous) and expire.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

PATIENT_TOKEN_PREFIX = "pt."  # noqa: S105 (a marker, not a secret)
_SALT = "bbdirect.patient-token"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller. ``patient_id`` is set only for a patient token (its one patient)."""

    kind: str  # api_key | patient
    id: str
    patient_id: str | None = None

    def may_act_on(self, patient_id: str) -> bool:
        return self.kind == "api_key" or self.patient_id == patient_id


class KeyRing:
    """The configured API keys, stored only as SHA-256 digests in memory."""

    def __init__(self, entries: list[str]):
        self._keys: list[tuple[str, bytes]] = []
        for entry in entries:
            name, _, secret = entry.partition(":")
            if secret.startswith("sha256:"):
                digest = bytes.fromhex(secret[len("sha256:") :])
            else:
                digest = hashlib.sha256(secret.encode()).digest()
            self._keys.append((name, digest))

    def match(self, presented: str) -> str | None:
        digest = hashlib.sha256(presented.encode()).digest()
        found = None
        for name, expected in self._keys:  # no early exit: timing does not reveal which key matched
            if hmac.compare_digest(digest, expected):
                found = name
        return found


class PatientTokens:
    def __init__(self, secret: str, ttl: int):
        self._serializer = URLSafeTimedSerializer(secret, salt=_SALT)
        self.ttl = ttl

    def issue(self, patient_id: str) -> str:
        return PATIENT_TOKEN_PREFIX + self._serializer.dumps({"p": patient_id})

    def verify(self, token: str) -> str | None:
        if not token.startswith(PATIENT_TOKEN_PREFIX):
            return None
        try:
            data = self._serializer.loads(token[len(PATIENT_TOKEN_PREFIX) :], max_age=self.ttl)
        except (BadSignature, SignatureExpired):
            return None
        patient = data.get("p") if isinstance(data, dict) else None
        return patient if isinstance(patient, str) else None


def authenticate(header: str | None, keys: KeyRing, tokens: PatientTokens) -> Principal | None:
    """Parse ``Authorization: Bearer <credential>``; None when absent or not valid."""
    if not header:
        return None
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential or len(credential) > 4096:
        return None
    if credential.startswith(PATIENT_TOKEN_PREFIX):
        patient = tokens.verify(credential)
        return Principal("patient", patient, patient) if patient else None
    name = keys.match(credential)
    return Principal("api_key", name) if name else None
