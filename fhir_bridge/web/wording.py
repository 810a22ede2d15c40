"""Plain-language wording for states and errors: pure functions, one place, so every page says the same thing.

Why here and not in templates: the same failure appears next to a form field, on the confirmation page, in
the sharing history and in the JSON the status script polls; the wording must match everywhere, and it is
tested without a browser. Messages never contain PHI beyond what the person typed (the domain).
"""

from __future__ import annotations

from dataclasses import dataclass

from fhir_bridge.web.sharing import TransmissionView

#: Pipeline states shown as one of five steps a person understands.
_STATE_LABELS: dict[str, tuple[str, str]] = {
    "queued": ("waiting", "Waiting to send"),
    "building": ("waiting", "Preparing your record"),
    "sending": ("waiting", "Sending"),
    "retrying": ("waiting", "Trying again soon"),
    "sent": ("sent", "Sent, waiting for the recipient to confirm"),
    "processed": ("delivered", "Delivered (the recipient's system confirmed it)"),
    "dispatched": ("delivered", "Delivered (the recipient's system confirmed it)"),
    "failed": ("failed", "Not delivered"),
}

#: States after which the status no longer changes (the page stops refreshing).
FINAL_STATES = frozenset({"processed", "dispatched", "failed"})

LOCK_TEXT = "Encrypted: only the recipient can open it."
LOCK_PENDING = "Will be encrypted so only the recipient can open it."
SIGNATURE_TEXT = "Signed: the recipient can check it came from us and was not changed."
SIGNATURE_PENDING = "Will be signed so the recipient can check it came from us."
NOT_TRUSTED_TEXT = (
    "This recipient is not in a trust bundle. Your record is still encrypted for them, but no one we trust "
    "has checked who runs this address."
)


@dataclass(frozen=True)
class Status:
    tone: str  # waiting | sent | delivered | failed  (CSS class, never colour alone: the label says it)
    label: str
    reason: str | None
    final: bool


_UNUSABLE = {
    "expired": "it has expired",
    "revoked": "it has been revoked by its issuer",
    "wrong_key_usage": "it is not meant for encrypting messages",
    "not_bound": "it is issued to a different address",
    "weak_key": "its key is too weak (RSA keys need at least 2048 bits)",
}


def address_error(code: str, domain: str | None, message: str = "") -> str:
    """The sentence shown next to the address field for a refused address."""
    where = domain or "this address"
    match code:
        case "bad_address":
            return "This is not a valid Direct address. It looks like name@direct.example.org."
        case "no_certificate":
            return (
                f"No Direct certificate was found for {where}. Check the address for typos, or ask the "
                "recipient for their Direct address."
            )
        case "no_usable_certificate" | "expired" | "revoked" | "wrong_key_usage" | "not_bound" | "weak_key":
            why = _UNUSABLE.get(code, "it cannot be used")
            return f"{where} has a Direct certificate, but {why}. Ask the recipient to check their setup."
        case "untrusted" | "untrusted_signer":
            return (
                f"The certificate for {where} is not in a trust bundle we use, so the clinic cannot send "
                "there. The patient can still share with it from their own account."
            )
        case "discovery_timeout" | "discovery_deadline" | "discovery_failed":
            return f"The certificate servers for {where} did not answer. Please try again in a few minutes."
        case "too_many_lookups":
            return "Many addresses were checked in a short time. Please wait a minute and try again."
        case "fetch_refused":
            # The internal reason names a setting; the person only needs to know the address cannot be used.
            return (
                f"The certificate for {where} is published on a server we do not contact, so this address "
                "cannot be used. Ask the recipient for another Direct address."
            )
        case _:
            return message or "This address cannot be used."


def transmission_reason(code: str | None, message: str | None, detail: str | None = None) -> str | None:
    """Why a transmission failed (or is being retried), in plain words; the server's reply is kept."""
    if not code:
        return None
    match code:
        case "delivery_refused":
            reply = f' It answered: "{detail}"' if detail else ""
            return f"The recipient's mail server refused the message.{reply}"
        case "mdn_timeout":
            return (
                "The recipient's system did not confirm delivery in time, so we cannot tell whether it "
                "arrived."
            )
        case "delivery_deferred":
            return "The recipient's mail server is busy. We will try again."
        case "delivery_failed_notice":
            return "The recipient's system reported that it could not deliver the message."
        case "superseded":
            return "A newer version of the record was sent instead."
        case "waiting_for_previous":
            return "Waiting for the previous message to this address to go out first."
        case "fhir_search_refused" | "fhir_incomplete_result" | "fhir_auth_failed":
            return (
                "Part of the record could not be read from the health record system, so nothing was sent "
                "(a partial record never goes out). The administrator can see why in the sharing service."
            )
        case "document_not_patients":
            return (
                "One of the chosen documents is not (or is no longer) filed under this patient in the health "
                "record, so nothing was sent."
            )
        case "document_unavailable":
            return "One of the chosen documents has no content that can be sent, so nothing was sent."
        case _:
            return address_error(code, None, message or "")


def document_error(code: str) -> str:
    """The sentence shown next to the documents choice when the chosen documents were refused at Share."""
    if code == "document_unreadable":
        return (
            "The health record system did not answer while we checked your documents. Nothing was shared; "
            "please try again in a few minutes."
        )
    return (
        "One of the chosen documents is not filed under your record in the health record system, so it "
        "cannot be shared. Nothing was shared; choose again."
    )


def status_of(tx: TransmissionView | None) -> Status:
    if tx is None:
        return Status("waiting", "Nothing sent yet", None, False)
    tone, label = _STATE_LABELS.get(tx.state, ("waiting", tx.state))
    return Status(
        tone,
        label,
        transmission_reason(tx.reason_code, tx.reason_message, tx.reason_detail),
        tx.state in FINAL_STATES,
    )


KIND_LABELS = {"once": "Once", "always": "Whenever the record is updated"}
METHOD_LABELS = {
    "portal": "By the patient online",
    "in_person": "In person",
    "clipboard": "Signed paper form",
}
