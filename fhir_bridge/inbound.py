"""The sidecar's inbound SMTP endpoint: delivery notices (MDN / DSN) answering our messages.

Why: a transmission is only ``sent`` when SMTP accepted it; the Direct Applicability Statement (§3.3,
Implementation Guide for Delivery Notification) has the recipient's HISP answer with a signed and
encrypted MDN ``processed`` (and ``dispatched`` when asked), or a failure notice.

One code path (issue 12): the raw mail goes to :meth:`direct.agent.DirectAgent.receive`, which unseals it
and judges every notice by the agent's notice policy (strict ``report-type``; signer bound to the
Final-Recipient; unsigned DSNs only from ``direct.dsn_relays``; explicit dispositions). This module only
applies the agent's verdicts to transmissions: a notice moves a transmission when the agent says it
applies *and* its Final-Recipient is that transmission's recipient; a notice that is not verified is
recorded in the audit trail as such and changes nothing. Text from a notice is stored only quoted and
length-limited, as the remote system's words. Nothing about the content is logged.

Limits (finding 13): ``direct.inbound_max_connections`` sessions (421 beyond), ``direct.inbound_max_bytes``
per message (552 beyond), unsealing on ``direct.inbound_workers`` threads of the endpoint's own pool.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select

from direct.agent import DirectAgent
from direct.errors import MalformedMessage
from direct.mdn import NoticeVerdict, norm_message_id
from direct.transport.smtp_server import ReceivingEndpoint
from fhir_bridge import audit
from fhir_bridge.config import Settings
from fhir_bridge.db import Database
from fhir_bridge.db.models import Transmission
from fhir_bridge.pipeline.service import Pipeline

log = logging.getLogger(__name__)


class NoticeHandler:
    """``handler(mail_from, rcpt_tos, data, peer=)`` for :mod:`direct.transport.smtp_server`."""

    #: The endpoint passes the SMTP client's address: the agent needs it for ``direct.dsn_relays``.
    wants_peer = True

    def __init__(self, db: Database, pipeline: Pipeline, agent: Callable[[], DirectAgent]):
        self.db = db
        self.pipeline = pipeline
        #: The sidecar's one Direct agent, asked for on the first notice (the identity files may be
        #: provisioned after start-up).
        self._agent = agent

    @property
    def agent(self) -> DirectAgent:
        return self._agent()

    def __call__(
        self, mail_from: str, rcpt_tos: Sequence[str], data: bytes, peer: str | None = None
    ) -> str | None:
        result = self.agent.receive(data, mail_from, rcpt_tos, send_mdn=False, peer=peer)
        if not result.accepted:
            raise result.unsealed.error or MalformedMessage()
        if not result.unsigned_report and not result.unsealed.is_notification:
            raise MalformedMessage("this endpoint accepts delivery notices only")
        applied = sum(1 for verdict in result.verdicts if self._apply(verdict))
        log.info("delivery notice received: %d of %d applied", applied, len(result.verdicts))
        return "250 2.0.0 notice accepted"

    def _apply(self, verdict: NoticeVerdict) -> bool:
        """Apply one verdict to the transmission it names; record the ones that may not act."""
        note = verdict.notification
        mid = norm_message_id(note.original_message_id)
        if not mid:
            return False
        with self.db.session() as s:
            job = s.scalar(select(Transmission).where(Transmission.message_id == mid))
            if job is None:
                return False
            ids = (job.id, job.patient_id)
            # DNIG §3.1 / DN-7: a notice speaks only for its Final-Recipient, so it moves a transmission only
            # when that is the transmission's recipient.
            about_this = verdict.concerns(job.message_id, job.recipient)
        if verdict.applies and about_this:
            assert verdict.outcome is not None
            text = verdict.remote_text
            detail = f"The remote system said: {text}" if text else None
            return self.pipeline.apply_notice(mid, verdict.outcome, detail) is not None
        self._record(ids, verdict, "other_recipient" if verdict.applies else verdict.reason)
        return False

    def _record(self, ids: tuple[str, str], verdict: NoticeVerdict, reason: str) -> None:
        """Audit a notice that changed nothing (unverified, not bound, malformed, another recipient's)."""
        note = verdict.notification
        detail: dict[str, Any] = {
            "kind": note.kind,
            "disposition": (note.disposition or "")[:40],
            "signed": verdict.signed,
            "verified": verdict.verified,
        }
        if reason == "unverified" and verdict.remote_text:
            detail["remote_text"] = verdict.remote_text  # quoted, length-limited: the remote's words
        with self.db.session() as s:
            audit.record(
                s,
                actor=audit.SYSTEM,
                action="delivery.notice.unverified" if reason == "unverified" else "delivery.notice.ignored",
                entity_type="transmission",
                entity_id=ids[0],
                patient_id=ids[1],
                outcome=reason,
                detail=detail,
            )


def start_endpoint(settings: Settings, handler: NoticeHandler) -> ReceivingEndpoint | None:
    """Listen on ``direct.inbound_host:inbound_port`` when a port is configured; returns the endpoint
    (``Sidecar.start`` does this with ``Sidecar.notices``; a stopped endpoint is not restarted, a new one is
    started here)."""
    if not settings.direct_inbound_port:
        return None
    return ReceivingEndpoint(
        settings.direct_inbound_host,
        settings.direct_inbound_port,
        handler,
        data_size_limit=settings.direct_inbound_max_bytes,
        max_connections=settings.direct_inbound_max_connections,
        workers=settings.direct_inbound_workers,
    ).start()
