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

What we accept (notice policy, issue 12): a notice is read strictly by its ``report-type`` (RFC 6522 §3: the
machine-readable part is the report's own ``message/<report-type>`` child, nothing nested or mislabelled);
dispositions are mapped explicitly (:data:`OUTCOMES`); text a notice carries is the remote system's words,
kept one-line, length-limited and shown quoted (:func:`remote_words`). Who may speak for which recipient is
decided by :class:`direct.agent.DirectAgent` (:class:`NoticeVerdict`).

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
from typing import cast

from direct.message import DNO_HEADER, parse_message
from direct.text import one_line

FINAL_DESTINATION = "X-DIRECT-FINAL-DESTINATION-DELIVERY"
DEFAULT_REPORTING_UA = "bbdirect; Blue Button Direct"
#: RFC 8098 §3.2.6.2 disposition types (RFC 3798's list; "error" was only ever a modifier).
_DISPOSITIONS = ("processed", "dispatched", "failed", "displayed", "deleted", "denied")
#: RFC 3464 §2.3.3 Action values of a DSN.
_DSN_ACTIONS = ("failed", "delayed", "delivered", "relayed", "expanded")
#: Notice policy: what a disposition (MDN) or action (DSN) means for a transmission. Anything not listed
#: (a missing Disposition, ``delayed``/``relayed``/... DSNs) changes nothing.
#: DNIG §3.1: ``processed`` = the receiving HISP took responsibility; ``dispatched`` = handed to the final
#: destination; RFC 8098 §3.2.6.2 ``displayed`` = shown to the recipient, which is delivered too;
#: ``failed`` (DNIG §3.3), ``deleted`` and ``denied`` = it will not be delivered.
OUTCOMES: dict[tuple[str, str], str] = {
    ("mdn", "processed"): "processed",
    ("mdn", "dispatched"): "dispatched",
    ("mdn", "displayed"): "dispatched",
    ("mdn", "failed"): "failed",
    ("mdn", "deleted"): "failed",
    ("mdn", "denied"): "failed",
    ("dsn", "failed"): "failed",
}
#: The longest text from a notice we keep (Failure:, Diagnostic-Code:, Status:).
REMOTE_TEXT_LIMIT = 200


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
    return parse_message(raw.encode("ascii", "replace"))


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
    return parse_message(raw.encode("ascii", "replace"))


# --- parsing -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Notification:
    """One per-recipient outcome reported by an MDN or DSN."""

    kind: str  # "mdn" | "dsn"
    original_message_id: str
    final_recipient: str
    #: MDN: the RFC 8098 disposition type (``processed``, ``displayed``...); DSN: the Action (``failed``,
    #: ``delayed``...); None when missing or not one of them (a malformed notice, ignored).
    disposition: str | None
    final_destination: bool = False
    #: The remote system's own text (Failure / Diagnostic-Code / Status): one line, at most
    #: :data:`REMOTE_TEXT_LIMIT` characters. Show it only through :func:`remote_words`.
    detail: str | None = None

    @property
    def outcome(self) -> str | None:
        """``processed`` / ``dispatched`` / ``failed`` per :data:`OUTCOMES`, None when it changes nothing."""
        return OUTCOMES.get((self.kind, self.disposition or ""))


def remote_words(text: str | None, limit: int = REMOTE_TEXT_LIMIT) -> str | None:
    """Text a remote system put in a notice, as its words: one line, cut to ``limit``, in double quotes
    (inner quotes escaped) - never shown or stored as if it were ours."""
    if not text:
        return None
    line = one_line(text)
    if len(line) > limit:
        line = line[: limit - 3] + "..."
    return '"' + line.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _limited(value: str | None) -> str | None:
    """One line of at most :data:`REMOTE_TEXT_LIMIT` characters, ``...`` marking a cut."""
    line = one_line(value or "")
    if len(line) > REMOTE_TEXT_LIMIT:
        line = line[: REMOTE_TEXT_LIMIT - 3] + "..."
    return line or None


@dataclass(frozen=True)
class NoticeVerdict:
    """What the agent decided about one notification (the notice policy, issue 12).

    ``verified``: the notice speaks for its Final-Recipient - signed by a trusted certificate bound to that
    address or its domain (DN-7, CERT-1), or an unsigned DSN from a configured relay. ``outcome``: what it
    may do to a delivery (``processed``/``dispatched``/``failed``), None when it changes nothing.
    ``reason``: ``applies`` | ``not_bound`` (signer not bound to the Final-Recipient) | ``unverified``
    (unsigned DSN not from a relay: recorded, shown as unverified, changes nothing) | ``malformed`` (no
    usable Disposition / Final-Recipient / Original-Message-ID) | ``informational`` (e.g. a ``delayed`` DSN).
    """

    notification: Notification
    verified: bool
    signed: bool
    outcome: str | None
    reason: str

    @property
    def applies(self) -> bool:
        return self.reason == "applies"

    def concerns(self, message_id: str | None, recipient: str | None) -> bool:
        """Is this notice about ``message_id`` sent to ``recipient`` (its Final-Recipient, DNIG §3.1)?"""
        note = self.notification
        return bool(
            note.original_message_id
            and note.original_message_id == norm_message_id(message_id)
            and note.final_recipient
            and note.final_recipient == _norm_addr(recipient)
        )

    @property
    def remote_text(self) -> str | None:
        return remote_words(self.notification.detail)


def _part_text(part: Message) -> str:
    payload = part.get_payload()
    if isinstance(payload, list):  # email parses message/* bodies into header-only sub-messages
        # Their fields as received (raw_items): as_string() would re-fold long ones into RFC 2047 words.
        # What follows a stray blank line is the sub-message's "body" (ETT extra_line_break_mdn).
        blocks = []
        for sub in cast("list[Message]", payload):  # message/* parts: a list of sub-messages
            body = sub.get_payload()
            head = "\n".join(f"{k}: {v}" for k, v in sub.raw_items())
            blocks.append(head + ("\n\n" + body if isinstance(body, str) and body.strip() else ""))
        return "\n\n".join(blocks)
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
    """``automatic-action/MDN-sent-automatically; processed/warning`` -> ``processed``.

    RFC 3798 §3.2.6.3: the ``error`` modifier means processing failed: ``processed/error`` is ``failed``."""
    if not value or ";" not in value:
        return None
    kind, _, modifiers = value.split(";", 1)[1].strip().partition("/")
    kind = kind.strip().lower()
    if kind not in _DISPOSITIONS:
        return None
    if "error" in {m.strip().lower() for m in modifiers.split(",")}:
        return "failed"
    return kind


def _report_children(msg: Message) -> list[Message]:
    """The direct body parts of a multipart/report (RFC 6522 §3); nothing nested inside them."""
    payload = msg.get_payload()
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


def parse_notifications(msg: Message) -> list[Notification]:
    """Every per-recipient outcome in an MDN or DSN; ``[]`` for anything else.

    Strictly by ``report-type`` (RFC 6522 §3): ``disposition-notification`` is read only from the report's own
    ``message/disposition-notification`` part (RFC 8098 §3), ``delivery-status`` only from its own
    ``message/delivery-status`` part (RFC 3464 §2). A report labelled one way carrying the other kind of
    part - the forged-notice finding of issue 12 - yields nothing.
    """
    if not is_notification(msg):
        return []
    report_type = (msg.get_param("report-type", "") or "").lower()  # type: ignore[union-attr]  # an RFC 2231 tuple only if encoded; a token is not
    children = _report_children(msg)
    if report_type == "disposition-notification":
        part = next((p for p in children if p.get_content_type() == "message/disposition-notification"), None)
        if part is None:
            return []
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
                _limited(fields.get("failure") or fields.get("error")),
            )
        ]
    if report_type != "delivery-status":
        return []
    status_part = next((p for p in children if p.get_content_type() == "message/delivery-status"), None)
    if status_part is None:
        return []
    groups = _field_groups(_part_text(status_part))
    per_message = groups[0] if groups else {}
    original = per_message.get("x-original-message-id") or per_message.get("original-message-id")
    if not original:
        returned = next(
            (p for p in children if p.get_content_type() in {"text/rfc822-headers", "message/rfc822"}), None
        )
        if returned is not None:
            if returned.is_multipart():
                inner = cast(Message, returned.get_payload(0))  # message/rfc822: the returned message
            else:
                raw = returned.get_payload(decode=True)  # text/rfc822-headers: bytes (or None)
                inner = parse_message(raw if isinstance(raw, bytes) else b"")
            original = inner.get("Message-ID")
    out = []
    for group in groups[1:]:
        action = group.get("action", "").strip().lower()
        out.append(
            Notification(
                "dsn",
                norm_message_id(original),
                _norm_addr(group.get("final-recipient") or group.get("original-recipient")),
                action if action in _DSN_ACTIONS else None,
                False,
                _limited(group.get("diagnostic-code") or group.get("status")),
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
        outcome = note.outcome  # explicit mapping; a missing Disposition or a "delayed" DSN changes nothing
        if outcome == "processed":
            if rec.state != DeliveryState.SENT:
                return None
            return self._move(msg, rec, DeliveryState.PROCESSED, now, None)
        if outcome == "dispatched":
            if msg.reliable and not note.final_destination and note.disposition == "dispatched":
                # DN-4: a reliable send succeeds only on dispatched *with* the final-destination field
                # (``displayed`` says the recipient saw it, which is past the final destination).
                return None
            return self._move(msg, rec, DeliveryState.DISPATCHED, now, None)
        if outcome == "failed":
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
