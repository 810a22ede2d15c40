"""Delivery notification for Direct (Implementation Guide for Delivery Notification in Direct, RFC 3798/8098,
RFC 3464): build and parse MDNs and DSNs, and track each sent message per recipient. Pure: no I/O, clocks
passed in.

What we emit (MDN-1, MDN-2, DN-2, DN-3): ``multipart/report; report-type=disposition-notification`` with a
human-readable part and a ``message/disposition-notification`` part carrying Reporting-UA, Original-Recipient,
Final-Recipient, Original-Message-ID, ``Disposition: automatic-action/MDN-sent-automatically;processed``
(or ``dispatched``, or ``failed`` with a ``Failure:`` field - never ``error``, nhin-d #265). A ``dispatched``
MDN carries the ``X-DIRECT-FINAL-DESTINATION-DELIVERY`` *extension field* inside the report (PIT-10) only when
the original asked for it. MDNs carry no Disposition-Notification-To/Options (DTS 452) and we never answer a
notification with one (nhin-d #47).

What we track (DN-4..DN-6): per recipient, sent -> processed -> dispatched, or failed, or timed out when no
``processed`` arrived within ``processed_timeout`` or (reliable sends) no ``dispatched`` within
``dispatched_timeout``, both counted from the send. A notification arriving after a final state - notably a
late ``dispatched`` after a timeout - is suppressed (nhin-d #196).
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from email.utils import format_datetime, make_msgid

from direct.message import DNO_HEADER, parse_message
from direct.text import one_line

FINAL_DESTINATION = "X-DIRECT-FINAL-DESTINATION-DELIVERY"
DEFAULT_REPORTING_UA = "bbdirect; Blue Button Direct"
_DISPOSITIONS = ("processed", "dispatched", "failed", "displayed", "deleted", "denied", "error")


def _norm_addr(value: str | None) -> str:
    """``rfc822; Bob@X`` / ``<bob@x>`` / `` RFC822 ;bob@x `` -> ``bob@x`` (DN-7)."""
    if not value:
        return ""
    value = value.split(";", 1)[1] if ";" in value else value
    return value.strip().strip("<>").strip().lower()


def norm_message_id(value: str | None) -> str:
    """Message-IDs compared without surrounding whitespace, with exactly one pair of angle brackets."""
    if not value:
        return ""
    value = re.sub(r"\s+", "", value).strip("<>")
    return f"<{value}>" if value else ""


def requests_final_destination(msg: Message) -> bool:
    """DN-1: does the original request final-destination delivery (``X-DIRECT-FINAL-...=optional,true``)?"""
    for value in msg.get_all(DNO_HEADER, []):
        for option in str(value).split(";"):
            name, _, params = option.partition("=")
            if name.strip().upper() == FINAL_DESTINATION and params.split(",")[-1].strip().lower() == "true":
                return True
    return False


def is_notification(msg: Message) -> bool:
    """MDNs and DSNs are ``multipart/report``: they are never answered with an MDN (MDN-1)."""
    return msg.get_content_type() == "multipart/report"


# --- building ----------------------------------------------------------------------------------------------
_HUMAN = {
    "processed": "Your message was successfully processed.",
    "dispatched": "Your message was successfully dispatched to its final destination.",
    "failed": "Your message could not be delivered to its final destination.",
}


def build_mdn(
    *,
    original_message_id: str,
    original_sender: str,
    final_recipient: str,
    disposition: str,
    original_recipient: str | None = None,
    reporting_ua: str = DEFAULT_REPORTING_UA,
    final_destination: bool = False,
    failure: str | None = None,
    subject: str | None = None,
    date: dt.datetime | None = None,
) -> EmailMessage:
    """An MDN from ``final_recipient`` to ``original_sender`` (to be sealed: MDNs are signed + encrypted).

    RFC 3798 §3: multipart/report; report-type=disposition-notification, a human-readable part, then the
    message/disposition-notification fields of §3.2 (Reporting-UA §3.2.1, Original-Recipient §3.2.3,
    Final-Recipient §3.2.4 - required, Original-Message-ID §3.2.5, Disposition §3.2.6 - required; Failure
    §3.2.7) and the DNIG extension field (§3.3 extension-field syntax). MDN-1 / ETT DTS 452: an MDN carries
    no Disposition-Notification-To/Options of its own.
    """
    if disposition not in {"processed", "dispatched", "failed"}:
        raise ValueError(f"unsupported disposition {disposition!r}")
    boundary = f"----=_BBD_MDN_{uuid.uuid4().hex}"
    fields = [
        f"Reporting-UA: {one_line(reporting_ua)}",
        f"Original-Recipient: rfc822; {one_line(original_recipient or final_recipient)}",
        f"Final-Recipient: rfc822; {one_line(final_recipient)}",
        f"Original-Message-ID: {norm_message_id(original_message_id)}",
        f"Disposition: automatic-action/MDN-sent-automatically;{disposition}",
    ]
    if disposition == "dispatched" and final_destination:
        fields.append(f"{FINAL_DESTINATION}:")  # DN-2 / PIT-10: an extension field of the report
    if disposition == "failed":
        fields.append(f"Failure: {one_line(failure or 'delivery failed')}")
    human = _HUMAN[disposition] + (f" {one_line(failure)}" if failure and disposition == "failed" else "")
    domain = final_recipient.rsplit("@", 1)[-1]
    headers = [
        f"From: {one_line(final_recipient)}",
        f"To: {one_line(original_sender)}",
        f"Date: {format_datetime(date or dt.datetime.now(dt.UTC))}",
        f"Message-ID: {make_msgid(idstring=uuid.uuid4().hex[:12], domain=domain)}",
        f"Subject: {one_line(subject or disposition.capitalize())}",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=disposition-notification; boundary="{boundary}"',
    ]
    raw = (
        "\r\n".join(headers) + "\r\n\r\n"
        f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n"
        "Content-Transfer-Encoding: 7bit\r\n\r\n"
        f"{human}\r\n\r\n"
        f"--{boundary}\r\nContent-Type: message/disposition-notification\r\n"
        "Content-Transfer-Encoding: 7bit\r\n\r\n" + "\r\n".join(fields) + "\r\n\r\n"
        f"--{boundary}--\r\n"
    )
    return parse_message(raw.encode("ascii", "replace"))  # type: ignore[return-value]


def build_dsn(
    *,
    original_message_id: str,
    original_sender: str,
    recipient: str,
    reporting_mta: str,
    status: str = "5.0.0",
    diagnostic: str = "delivery failed",
    date: dt.datetime | None = None,
) -> EmailMessage:
    """A failure DSN for one recipient, e.g. to tell the edge sender about a timeout (DN-5).

    RFC 3464 §2: multipart/report; report-type=delivery-status with per-message fields (Reporting-MTA §2.2.2)
    then per-recipient fields (Final-Recipient §2.3.2, Action §2.3.3, Status §2.3.4, Diagnostic-Code §2.3.6).
    """
    boundary = f"----=_BBD_DSN_{uuid.uuid4().hex}"
    raw = (
        f"From: mailer-daemon@{one_line(reporting_mta)}\r\nTo: {one_line(original_sender)}\r\n"
        f"Date: {format_datetime(date or dt.datetime.now(dt.UTC))}\r\n"
        f"Message-ID: {make_msgid(idstring=uuid.uuid4().hex[:12], domain=one_line(reporting_mta))}\r\n"
        "Subject: Delivery Status Notification (Failure)\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        f"Delivery to {one_line(recipient)} failed: {one_line(diagnostic)}\r\n\r\n"
        f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; {one_line(reporting_mta)}\r\n"
        f"X-Original-Message-ID: {norm_message_id(original_message_id)}\r\n\r\n"
        f"Final-Recipient: rfc822; {one_line(recipient)}\r\n"
        f"Action: failed\r\nStatus: {one_line(status)}\r\n"
        f"Diagnostic-Code: smtp; {one_line(diagnostic)}\r\n\r\n"
        f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {norm_message_id(original_message_id)}\r\n\r\n"
        f"--{boundary}--\r\n"
    )
    return parse_message(raw.encode("ascii", "replace"))  # type: ignore[return-value]


# --- parsing -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Notification:
    """One per-recipient outcome reported by an MDN or DSN."""

    kind: str  # "mdn" | "dsn"
    original_message_id: str
    final_recipient: str
    #: processed | dispatched | failed | (other MDN types) | None when the Disposition field is missing.
    disposition: str | None
    final_destination: bool = False
    detail: str | None = None


def _part_text(part: Message) -> str:
    payload = part.get_payload()
    if isinstance(payload, list):  # email parses message/* bodies into header-only sub-messages
        return "\n\n".join(p.as_string() for p in payload)
    raw = part.get_payload(decode=True)
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(payload)


def _field_groups(text: str) -> list[dict[str, str]]:
    """RFC 3464/3798 field blocks: unfold continuation lines, split on blank lines, keys lower-cased."""
    groups: list[dict[str, str]] = [{}]
    last: str | None = None
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if groups[-1]:
                groups.append({})
            last = None
            continue
        if line[0] in " \t" and last:
            groups[-1][last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        last = name.strip().lower()
        groups[-1][last] = value.strip()
    return [g for g in groups if g]


def _disposition_type(value: str | None) -> str | None:
    """``automatic-action/MDN-sent-automatically; processed/error`` -> ``processed``."""
    if not value or ";" not in value:
        return None
    kind = re.split(r"[/\s]", value.split(";", 1)[1].strip(), maxsplit=1)[0].lower()
    return kind if kind in _DISPOSITIONS else None


def parse_notifications(msg: Message) -> list[Notification]:
    """Every per-recipient outcome in an MDN or DSN; ``[]`` for anything else."""
    if not is_notification(msg):
        return []
    report_type = (msg.get_param("report-type", "") or "").lower()  # type: ignore[union-attr]
    parts = list(msg.walk())
    if report_type == "disposition-notification" or any(
        p.get_content_type() == "message/disposition-notification" for p in parts
    ):
        for part in parts:
            if part.get_content_type() != "message/disposition-notification":
                continue
            fields: dict[str, str] = {}
            for group in _field_groups(_part_text(part)):  # tolerate stray blank lines (ETT variants)
                fields.update(group)
            return [
                Notification(
                    "mdn",
                    norm_message_id(fields.get("original-message-id")),
                    _norm_addr(fields.get("final-recipient") or fields.get("original-recipient")),
                    _disposition_type(fields.get("disposition")),
                    FINAL_DESTINATION.lower() in fields,
                    fields.get("failure") or fields.get("error"),
                )
            ]
        return []
    status_part = next((p for p in parts if p.get_content_type() == "message/delivery-status"), None)
    if status_part is None:
        return []
    groups = _field_groups(_part_text(status_part))
    per_message = groups[0] if groups else {}
    original = per_message.get("x-original-message-id") or per_message.get("original-message-id")
    if not original:
        returned = next(
            (p for p in parts if p.get_content_type() in {"text/rfc822-headers", "message/rfc822"}), None
        )
        if returned is not None:
            inner = (
                returned.get_payload(0)
                if returned.is_multipart()
                else parse_message(returned.get_payload(decode=True) or b"")
            )
            original = inner.get("Message-ID")  # type: ignore[union-attr]
    out = []
    for group in groups[1:]:
        action = group.get("action", "").lower()
        out.append(
            Notification(
                "dsn",
                norm_message_id(original),
                _norm_addr(group.get("final-recipient") or group.get("original-recipient")),
                "failed" if action == "failed" else None,
                False,
                group.get("diagnostic-code") or group.get("status"),
            )
        )
    return out


# --- tracking ----------------------------------------------------------------------------------------------
class DeliveryState(enum.StrEnum):
    SENT = "sent"
    PROCESSED = "processed"
    DISPATCHED = "dispatched"
    FAILED = "failed"
    TIMED_OUT = "timed_out"


FINAL_STATES = {DeliveryState.DISPATCHED, DeliveryState.FAILED, DeliveryState.TIMED_OUT}


@dataclass
class RecipientDelivery:
    address: str
    state: DeliveryState = DeliveryState.SENT
    reason: str | None = None
    updated_at: dt.datetime | None = None


@dataclass
class TrackedMessage:
    message_id: str
    sent_at: dt.datetime
    #: Reliable (DNIG "timely and reliable"): success needs ``dispatched``; otherwise ``processed`` suffices.
    reliable: bool
    recipients: dict[str, RecipientDelivery] = field(default_factory=dict)

    def is_final(self, address: str) -> bool:
        rec = self.recipients[address]
        return rec.state in FINAL_STATES or (not self.reliable and rec.state == DeliveryState.PROCESSED)

    @property
    def done(self) -> bool:
        return all(self.is_final(a) for a in self.recipients)


@dataclass(frozen=True)
class Transition:
    message_id: str
    recipient: str
    old: DeliveryState
    new: DeliveryState
    reason: str | None = None


class DeliveryTracker:
    """Per-message, per-recipient delivery state from MDNs/DSNs and the clock (DN-4..DN-6). Pure."""

    def __init__(
        self,
        processed_timeout: dt.timedelta = dt.timedelta(hours=1),
        dispatched_timeout: dt.timedelta = dt.timedelta(hours=1),
    ):
        self.processed_timeout = processed_timeout
        self.dispatched_timeout = dispatched_timeout
        self.messages: dict[str, TrackedMessage] = {}
        #: Notifications that arrived for a message/recipient already final (e.g. late dispatched).
        self.suppressed: list[Notification] = []

    def track(
        self, message_id: str, recipients: Sequence[str], sent_at: dt.datetime, reliable: bool = True
    ) -> TrackedMessage:
        mid = norm_message_id(message_id)
        msg = TrackedMessage(
            mid,
            sent_at,
            reliable,
            {_norm_addr(r): RecipientDelivery(_norm_addr(r), updated_at=sent_at) for r in recipients},
        )
        self.messages[mid] = msg
        return msg

    def forget(self, message_id: str) -> None:
        """Stop tracking (e.g. the message was never accepted for delivery)."""
        self.messages.pop(norm_message_id(message_id), None)

    def fail(self, message_id: str, recipient: str, reason: str, now: dt.datetime) -> Transition | None:
        """Mark one recipient failed for a reason we learned ourselves (e.g. refused at RCPT TO)."""
        msg = self.messages.get(norm_message_id(message_id))
        rec = msg.recipients.get(_norm_addr(recipient)) if msg else None
        if msg is None or rec is None or msg.is_final(rec.address):
            return None
        return self._move(msg, rec, DeliveryState.FAILED, now, reason)

    def get(self, message_id: str) -> TrackedMessage | None:
        return self.messages.get(norm_message_id(message_id))

    def _move(
        self,
        msg: TrackedMessage,
        rec: RecipientDelivery,
        new: DeliveryState,
        now: dt.datetime,
        reason: str | None,
    ) -> Transition:
        old = rec.state
        rec.state, rec.reason, rec.updated_at = new, reason, now
        return Transition(msg.message_id, rec.address, old, new, reason)

    def apply(self, note: Notification, now: dt.datetime) -> Transition | None:
        """Apply one notification; None when unknown, not meaningful, or suppressed (already final)."""
        msg = self.messages.get(note.original_message_id)
        if msg is None or note.final_recipient not in msg.recipients:
            return None
        rec = msg.recipients[note.final_recipient]
        if msg.is_final(rec.address):
            self.suppressed.append(note)  # DN-6 / PIT-11
            return None
        if note.disposition == "processed":
            if rec.state != DeliveryState.SENT:
                return None
            return self._move(msg, rec, DeliveryState.PROCESSED, now, None)
        if note.disposition == "dispatched":
            if msg.reliable and not note.final_destination:
                # DN-4: a reliable send succeeds only on dispatched *with* the final-destination field.
                return None
            return self._move(msg, rec, DeliveryState.DISPATCHED, now, None)
        if note.disposition in {"failed", "denied", "deleted", "error"}:
            return self._move(msg, rec, DeliveryState.FAILED, now, note.detail or note.disposition)
        return None

    def apply_all(self, notes: Iterable[Notification], now: dt.datetime) -> list[Transition]:
        return [t for t in (self.apply(n, now) for n in notes) if t is not None]

    def expire(self, now: dt.datetime) -> list[Transition]:
        """Time out every recipient whose window passed (DN-5); each timeout names which MDN was missing."""
        out: list[Transition] = []
        for msg in self.messages.values():
            for rec in msg.recipients.values():
                if msg.is_final(rec.address):
                    continue
                age = now - msg.sent_at
                if rec.state == DeliveryState.SENT and age >= self.processed_timeout:
                    out.append(self._move(msg, rec, DeliveryState.TIMED_OUT, now, "no processed MDN"))
                elif msg.reliable and age >= self.dispatched_timeout:
                    out.append(self._move(msg, rec, DeliveryState.TIMED_OUT, now, "no dispatched MDN"))
        return out

    def next_deadline(self) -> dt.datetime | None:
        """When :meth:`expire` can next change something (for a scheduler)."""
        times = []
        for msg in self.messages.values():
            for rec in msg.recipients.values():
                if msg.is_final(rec.address):
                    continue
                window = (
                    self.processed_timeout if rec.state == DeliveryState.SENT else self.dispatched_timeout
                )
                if rec.state == DeliveryState.SENT and msg.reliable:
                    window = min(self.processed_timeout, self.dispatched_timeout)
                times.append(msg.sent_at + window)
        return min(times) if times else None
