"""The sidecar's inbound SMTP endpoint: delivery notices (MDN / DSN) answering our messages.

Why: a transmission is only ``sent`` when SMTP accepted it; the Direct Applicability Statement (§3.3,
Implementation Guide for Delivery Notification) has the recipient's HISP answer with a signed and
encrypted MDN ``processed`` (and ``dispatched`` when asked), or a failure notice. This endpoint unseals
what arrives for our address, reads the notices and moves the matching jobs (processed → dispatched, or
failed). Unsigned DSNs from mail servers are accepted too (they carry no PHI and cannot be signed by
a Direct certificate). Anything else is refused; nothing about the content is logged.
"""

from __future__ import annotations

import email
import email.policy
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from direct.errors import MalformedMessage
from direct.mdn import is_notification, norm_message_id, parse_notifications

if TYPE_CHECKING:
    from fhir_bridge.app import Sidecar

log = logging.getLogger(__name__)


class NoticeHandler:
    """``handler(mail_from, rcpt_tos, data)`` for :class:`direct.transport.smtp_server.ReceivingEndpoint`."""

    def __init__(self, sidecar: Sidecar, identity_factory, anchors_factory):  # type: ignore[no-untyped-def]
        self.sidecar = sidecar
        self._identity = identity_factory
        self._anchors = anchors_factory

    def __call__(self, mail_from: str, rcpt_tos: Sequence[str], data: bytes) -> str | None:
        message = self._open(mail_from, rcpt_tos, data)
        notes = parse_notifications(message)
        applied = 0
        for note in notes:
            mid = norm_message_id(note.original_message_id)
            disposition = note.disposition or "failed"
            if note.kind == "dsn" and disposition not in {"failed"}:
                continue  # a "delayed"/"relayed" DSN changes nothing
            if self.sidecar.pipeline.apply_notice(mid, disposition, note.detail) is not None:
                applied += 1
        log.info("delivery notice received: %d of %d applied", applied, len(notes))
        return "250 2.0.0 notice accepted"

    def _open(self, mail_from: str, rcpt_tos: Sequence[str], data: bytes) -> Any:
        head = data[:4096].lower()
        if b"application/pkcs7-mime" in head or b"application/x-pkcs7-mime" in head:
            from direct.smime.seal import unseal

            result = unseal(data, [self._identity()], self._anchors(), mail_from=mail_from, rcpt_tos=rcpt_tos)
            if not result.ok or result.message is None:
                raise result.error or MalformedMessage()
            message = result.message
        else:
            message = email.message_from_bytes(data, policy=email.policy.default)
            # Only DSNs may come unsigned: Direct requires signed MDNs (an unsigned one could be forged).
            if (message.get_param("report-type", "") or "").lower() != "delivery-status":
                raise MalformedMessage("only signed notices (or DSNs) are accepted here")
        if not is_notification(message):
            raise MalformedMessage("this endpoint accepts delivery notices only")
        return message


def start_endpoint(sidecar: Sidecar) -> Any | None:
    """Listen on ``direct.inbound_host:inbound_port`` when a port is configured; returns the endpoint."""
    settings = sidecar.settings
    if not settings.direct_inbound_port:
        return None
    from direct.transport.smtp_server import ReceivingEndpoint
    from fhir_bridge import wiring

    sender = sidecar.pipeline.sender
    identity = getattr(sender, "identity", None) or wiring.DirectSender(settings, lambda: None).identity

    def anchors() -> list[Any]:
        from direct.smime.identity import load_certificate_files

        return load_certificate_files([p for p in settings.direct_trust_anchors if wiring._exists(p)])

    handler = NoticeHandler(sidecar, identity, anchors)
    return ReceivingEndpoint(settings.direct_inbound_host, settings.direct_inbound_port, handler).start()
