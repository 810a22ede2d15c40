"""``DirectAgent``: the one façade the sidecar, the CLI and the demo use to send and receive Direct messages.

send    = build the wrapped message -> find recipient certificates (given, or ``resolver.lookup``) -> seal
          (sign with our address- or domain-bound identity, encrypt to every recipient cert and to us) ->
          SMTP delivery -> track delivery (processed/dispatched MDNs, DSNs, timeouts).
receive = unseal (decrypt with whichever identity fits, verify, trust, routing) -> if it is an MDN/DSN,
          judge it by the notice policy and update the tracker; otherwise answer a signed+encrypted
          ``processed`` MDN (MDN-1) and, once the final destination has the message, a ``dispatched`` MDN
          when requested (DN-2).

Notice policy (issue 12; docs/direct-messages.md "Notice policy"): a notice is parsed strictly by its
``report-type`` (:func:`direct.mdn.parse_notifications`) and judged per Final-Recipient
(:meth:`DirectAgent.judge`): it speaks for that recipient only when signed by a trusted certificate bound to
the address or its domain (DN-7; AS 1.2 §4.1 binding, CERT-1). An unsigned notice never reports
``processed``/``dispatched`` (AS 1.2 §2: every Direct message, MDNs included, is signed and encrypted;
DNIG §3.1: MDNs are Direct messages). An unsigned DSN - a mail server's bounce, which no Direct certificate
can sign - counts only when it came from a configured relay (``dsn_relays``: our own smart host); from
anyone else it is an *unverified* report that changes nothing. Dispositions map explicitly
(:data:`direct.mdn.OUTCOMES`); a notice without one is malformed and ignored.

The agent holds no sockets of its own: delivery goes through :func:`direct.transport.deliver` to the
configured :class:`~direct.transport.SmtpTarget`; :func:`receiving_endpoint` wires the agent to an SMTP
listener with an inbox folder (what ``bbdirect receive`` and ``bbdirect demo`` run).
"""

from __future__ import annotations

import datetime as dt
import inspect
import ipaddress
import json
import logging
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from direct.certs import bound_to, can_sign
from direct.errors import DirectError, MalformedMessage, NoCertificate, NotBound, NotEncrypted
from direct.files import save_attachments, write_private
from direct.mdn import (
    DEFAULT_REPORTING_UA,
    DeliveryTracker,
    NoticeVerdict,
    Notification,
    Transition,
    build_mdn,
    is_notification,
    parse_notifications,
    requests_final_destination,
)
from direct.message import Attachment, build_message, pack_xdm, parse_message, safe_filename
from direct.smime import Identity, SealOptions, UnsealResult, seal, unseal
from direct.smime.identity import as_identities
from direct.transport import DeliveryReceipt, ReceivingEndpoint, SmtpTarget, deliver

log = logging.getLogger(__name__)


@dataclass
class SendReceipt:
    """What :meth:`DirectAgent.send` did (architecture contract + delivery details)."""

    message_id: str
    recipients: list[str]
    signed: bool
    encrypted: bool
    #: True when every recipient certificate chains to one of our anchors (False under the PUBLIC policy).
    trusted: bool
    delivery: DeliveryReceipt | None = None
    size: int = 0


@dataclass
class PreparedMessage:
    message_id: str
    raw: bytes
    mail_from: str
    recipients: list[str]
    trusted: bool


@dataclass
class ReceiveResult:
    unsealed: UnsealResult
    notifications: list[Notification] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    #: Dispositions of the MDNs we sent back ("processed", "dispatched", "failed").
    mdns_sent: list[str] = field(default_factory=list)
    mdn_errors: list[str] = field(default_factory=list)
    #: Notifications not applied: their signer is not bound to the recipient they report on (DN-7).
    ignored_notifications: list[Notification] = field(default_factory=list)
    #: The notice policy's verdict on every notification, in order (:meth:`DirectAgent.judge`).
    verdicts: list[NoticeVerdict] = field(default_factory=list)
    #: An unsigned, unencrypted ``delivery-status`` report (a mail server's DSN), read by the notice policy.
    unsigned_report: bool = False

    @property
    def ok(self) -> bool:
        return self.unsealed.ok

    @property
    def accepted(self) -> bool:
        """Take the message (SMTP 250): a verified Direct message, or an unsigned DSN that was judged."""
        return self.ok or self.unsigned_report


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class DirectAgent:
    """Send and receive Direct messages for a set of our own identities.

    ``trust``: a list of anchor certificates, or an object with ``anchors_for(local_domain)`` (e.g.
    :class:`direct.trust.bundles.TrustStore`). ``resolver``: anything with ``lookup(address, policy=...)``
    returning ``selected`` candidates that have ``.cert`` and ``.trusted`` (e.g.
    :class:`direct.discovery.resolver.CertificateResolver`). ``transport``: SMTP target for everything we
    send (messages and MDNs); ``None`` = the recipient domain's MX.
    """

    def __init__(
        self,
        identities: Sequence[object],
        trust: object = (),
        resolver: object | None = None,
        transport: SmtpTarget | None = None,
        *,
        options: SealOptions | None = None,
        tracker: DeliveryTracker | None = None,
        accept_sha1: bool = False,
        reporting_ua: str = DEFAULT_REPORTING_UA,
        clock: Callable[[], dt.datetime] = _utcnow,
        deliver_fn: Callable[..., DeliveryReceipt] = deliver,
        dsn_relays: Sequence[str] = (),
    ):
        self.identities: list[Identity] = as_identities(identities)
        self.trust = trust
        self.resolver = resolver
        self.transport = transport
        self.options = options or SealOptions()
        self.tracker = tracker or DeliveryTracker()
        self.accept_sha1 = accept_sha1
        self.reporting_ua = reporting_ua
        self.clock = clock
        self.deliver = deliver_fn
        #: Hosts, IP addresses or networks of the relays (our own smart host) whose unsigned DSNs count.
        #: Empty (the default) = no unsigned DSN changes anything.
        self.dsn_relays = list(dsn_relays)
        self._lock = threading.Lock()

    # --- our identities and anchors ----------------------------------------------------------------------
    def identity_for(self, address: str) -> Identity:
        """Our signing identity for ``address``: address-bound first, then domain-bound (CERT-1)."""
        best: Identity | None = None
        for ident in self.identities:
            binding = bound_to(ident.cert, address)
            if binding is None or not can_sign(ident.cert):
                continue
            if binding == "address":
                return ident
            best = best or ident
        if best is None:
            raise NotBound(f"we hold no signing certificate for {address}")
        return best

    def owns(self, address: str) -> bool:
        return any(bound_to(i.cert, address) is not None for i in self.identities)

    def anchors(self, local_domain: str | None = None, direction: str = "incoming") -> list[x509.Certificate]:
        """Anchors for ``local_domain``; a store that scopes by direction (TB-3) is asked for ``direction``
        (``incoming`` = signers of what we receive, which is what the agent validates)."""
        anchors_for = getattr(self.trust, "anchors_for", None)
        if callable(anchors_for):
            if "direction" in inspect.signature(anchors_for).parameters:
                return list(anchors_for(local_domain, direction=direction))
            return list(anchors_for(local_domain))
        anchors: list[x509.Certificate] = list(self.trust)  # type: ignore[call-overload]  # trust: an anchor iterable here
        return anchors

    # --- sending ------------------------------------------------------------------------------------------
    def recipient_certificates(
        self, address: str, policy: object = None
    ) -> tuple[list[x509.Certificate], bool]:
        """Certificates to encrypt to for ``address`` via the resolver, and whether all are anchored."""
        if self.resolver is None:
            raise NoCertificate(f"no certificate given for {address} and no resolver configured")
        lookup = self.resolver.lookup  # type: ignore[attr-defined]  # any resolver: duck-typed ``lookup``
        result = lookup(address) if policy is None else lookup(address, policy=policy)
        selected = list(getattr(result, "selected", []) or [])
        if not selected:
            error = getattr(result, "error", None)
            raise error if isinstance(error, DirectError) else NoCertificate(f"no certificate for {address}")
        return [c.cert for c in selected], all(bool(getattr(c, "trusted", False)) for c in selected)

    def prepare(
        self,
        from_addr: str,
        to_addrs: Sequence[str],
        subject: str,
        text: str,
        attachments: Sequence[Attachment] = (),
        *,
        cc_addrs: Sequence[str] = (),
        recipient_certs: Sequence[x509.Certificate] | Mapping[str, Sequence[x509.Certificate]] | None = None,
        policy: object = None,
        xdm: bool = False,
        message_id: str | None = None,
    ) -> PreparedMessage:
        """Build and seal without sending (for callers that deliver or queue themselves)."""
        recipients = [*to_addrs, *cc_addrs]
        signer = self.identity_for(from_addr)
        certs: list[x509.Certificate] = []
        trusted = True
        for addr in recipients:
            if isinstance(recipient_certs, Mapping):
                given = list(recipient_certs.get(addr, []))
            elif recipient_certs is not None:
                given = list(recipient_certs)
            else:
                given = []
            if given:
                certs.extend(given)
                continue
            found, anchored = self.recipient_certificates(addr, policy)
            certs.extend(found)
            trusted = trusted and anchored
        if xdm:
            attachments, subject = pack_xdm(attachments, from_addr, recipients[0], subject)
        inner = build_message(
            from_addr, to_addrs, subject, text, attachments, cc_addrs=cc_addrs, message_id=message_id
        )
        raw = seal(inner, signer, certs, self.options)
        return PreparedMessage(str(inner["Message-ID"]), raw, from_addr, recipients, trusted)

    def send(
        self,
        from_addr: str,
        to_addrs: Sequence[str],
        subject: str,
        text: str,
        attachments: Sequence[Attachment] = (),
        *,
        reliable: bool = True,
        **kwargs: object,
    ) -> SendReceipt:
        """Build, seal, deliver (MAIL FROM = From, RCPT TO = To + Cc; MSG-5) and start tracking."""
        prepared = self.prepare(from_addr, to_addrs, subject, text, attachments, **kwargs)  # type: ignore[arg-type]  # prepare()'s options
        # Track before delivering: the receiver may answer with an MDN before our DATA command returns.
        with self._lock:
            self.tracker.track(prepared.message_id, prepared.recipients, self.clock(), reliable)
        try:
            receipt = self.deliver(prepared.raw, prepared.mail_from, prepared.recipients, self.transport)
        except DirectError:
            with self._lock:
                self.tracker.forget(prepared.message_id)
            raise
        with self._lock:
            for rcpt, reply in receipt.refused.items():
                self.tracker.fail(prepared.message_id, rcpt, reply, self.clock())
        return SendReceipt(
            prepared.message_id, prepared.recipients, True, True, prepared.trusted, receipt, len(prepared.raw)
        )

    # --- receiving ----------------------------------------------------------------------------------------
    def unseal(
        self, raw: bytes, mail_from: str | None = None, rcpt_tos: Sequence[str] | None = None
    ) -> UnsealResult:
        local = rcpt_tos[0].rsplit("@", 1)[-1] if rcpt_tos else None
        return unseal(
            raw,
            self.identities,
            self.anchors(local),
            mail_from=mail_from,
            rcpt_tos=rcpt_tos,
            accept_sha1=self.accept_sha1,
        )

    def receive(
        self,
        raw: bytes,
        mail_from: str | None = None,
        rcpt_tos: Sequence[str] | None = None,
        *,
        send_mdn: bool = True,
        peer: str | None = None,
    ) -> ReceiveResult:
        """Unseal one inbound message; judge and track it if it is a notification, else answer ``processed``.

        ``peer``: the IP address of the SMTP client that handed the message over (an unsigned DSN counts only
        when it is one of :attr:`dsn_relays`).
        """
        result = ReceiveResult(self.unseal(raw, mail_from, rcpt_tos))
        unsealed = result.unsealed
        if not unsealed.ok or unsealed.message is None:
            if isinstance(unsealed.error, NotEncrypted):
                self._unsigned_report(result, raw, peer)
            return result  # rejected: no processed MDN (EDGE-2)
        if is_notification(unsealed.message):
            result.notifications = parse_notifications(unsealed.message)
            if not result.notifications:
                log.info("a signed report with no notification of its report-type: ignored")
            result.verdicts = [self.judge(n, unsealed.signer) for n in result.notifications]
            # DN-7 / CERT-1: a notification speaks for the Final-Recipient only when signed by a certificate
            # bound to that address or its domain; any other trust-community member could otherwise move
            # (or fail) someone else's delivery.
            result.ignored_notifications = [
                v.notification for v in result.verdicts if v.reason == "not_bound"
            ]
            if result.ignored_notifications:
                log.warning(
                    "%d notification(s) not signed for their recipient", len(result.ignored_notifications)
                )
            self._track(result)
            return result  # never MDN an MDN (MDN-1)
        if send_mdn:
            self._answer(result, "processed")
        return result

    def judge(
        self, note: Notification, signer: x509.Certificate | None, *, from_relay: bool = False
    ) -> NoticeVerdict:
        """The notice policy for one notification (see the module docstring).

        ``signer``: the trusted certificate that signed the notice (None when unsigned); ``from_relay``: an
        unsigned notice handed over by one of :attr:`dsn_relays`.
        """
        signed = signer is not None
        if not note.original_message_id or not note.final_recipient or note.disposition is None:
            # DNIG §3 / RFC 8098 §3.2.4, §3.2.6: Final-Recipient and Disposition are required; a notice
            # without them says nothing we may act on (it is not a failure).
            return NoticeVerdict(note, False, signed, None, "malformed")
        if signed:
            verified = _signed_for(signer, note.final_recipient)
            reason = "not_bound"
        else:
            # AS 1.2 §2: MDNs are Direct messages (signed); only a relay's DSN may come unsigned.
            verified = note.kind == "dsn" and from_relay
            reason = "unverified"
        outcome = note.outcome
        if not signed and outcome in {"processed", "dispatched"}:
            outcome = None  # an unsigned notice never reports success
        if not verified:
            return NoticeVerdict(note, False, signed, None, reason)
        if outcome is None:
            return NoticeVerdict(note, True, signed, None, "informational")
        return NoticeVerdict(note, True, signed, outcome, "applies")

    def is_relay(self, peer: str | None) -> bool:
        """Is ``peer`` (an IP address) one of :attr:`dsn_relays` (addresses, networks or host names)?"""
        if not peer or not self.dsn_relays:
            return False
        try:
            address = ipaddress.ip_address(peer.split("%", 1)[0])
        except ValueError:
            return False
        for entry in self.dsn_relays:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
                continue
            except ValueError:
                pass
            try:
                infos = socket.getaddrinfo(entry, None, proto=socket.IPPROTO_TCP)
            except OSError:
                continue
            if any(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) == address for info in infos):
                return True
        return False

    def _unsigned_report(self, result: ReceiveResult, raw: bytes, peer: str | None) -> None:
        """A plain (not S/MIME) message: only a ``delivery-status`` report is read, and judged unsigned."""
        try:
            message = parse_message(raw)
        except Exception:  # a message fault: it stays refused as not encrypted
            return
        report_type = (message.get_param("report-type", "") or "").lower()  # type: ignore[union-attr]  # an RFC 2231 tuple only if encoded; a token is not
        if not is_notification(message) or report_type != "delivery-status":
            return  # AS 1.2 §2: anything else must be encrypted and signed (an unsigned MDN is refused)
        notes = parse_notifications(message)
        if not notes:
            result.unsealed.error = MalformedMessage("a delivery-status report without its status part")
            return
        from_relay = self.is_relay(peer)
        result.unsigned_report = True
        result.unsealed.error = None
        result.notifications = notes
        result.verdicts = [self.judge(n, None, from_relay=from_relay) for n in notes]
        unverified = sum(1 for v in result.verdicts if v.reason == "unverified")
        if unverified:
            log.info("%d unsigned delivery-status notification(s) not from a relay: unverified", unverified)
        self._track(result)

    def _track(self, result: ReceiveResult) -> None:
        applicable = [v.notification for v in result.verdicts if v.applies]
        with self._lock:
            result.transitions = self.tracker.apply_all(applicable, self.clock())

    def dispatched(self, result: ReceiveResult) -> None:
        """The final destination has the message: send ``dispatched`` if the sender asked for it (DN-2)."""
        message = result.unsealed.message
        if message is not None and result.ok and requests_final_destination(message):
            self._answer(result, "dispatched", final_destination=True)

    def failed(self, result: ReceiveResult, reason: str) -> None:
        """We accepted the message but could not deliver it to its final destination (DN-3)."""
        self._answer(result, "failed", failure=reason)

    def _our_recipients(self, result: ReceiveResult) -> list[str]:
        return [a for a in result.unsealed.to_addrs if self.owns(a)]

    def _answer(
        self,
        result: ReceiveResult,
        disposition: str,
        *,
        final_destination: bool = False,
        failure: str | None = None,
    ) -> None:
        unsealed = result.unsealed
        sender = unsealed.from_addr
        if not sender or unsealed.message_id is None:
            return
        for rcpt in self._our_recipients(result):
            try:
                mdn = build_mdn(
                    original_message_id=unsealed.message_id,
                    original_sender=sender,
                    final_recipient=rcpt,
                    disposition=disposition,
                    reporting_ua=self.reporting_ua,
                    final_destination=final_destination,
                    failure=failure,
                )
                certs = self._mdn_certs(sender, unsealed)
                raw = seal(mdn, self.identity_for(rcpt), certs, self.options)
                # MAIL FROM = the MDN's From, so the routing check at the sender's side passes (MSG-5).
                self.deliver(raw, rcpt, [sender], self.transport)
                result.mdns_sent.append(disposition)
            except DirectError as exc:
                log.warning("could not send %s MDN: %s", disposition, exc.code)
                result.mdn_errors.append(exc.code)

    def _mdn_certs(self, sender: str, unsealed: UnsealResult) -> list[x509.Certificate]:
        """Encrypt the MDN to the sender's discovered certificates, else to the certificate that signed.

        MDN-1 / ALG-1: MDNs are signed AND encrypted like any Direct message (ETT DTS 450), which is why our
        own certificates must be discoverable by peers (TRUST-8; ``bbdirect publish``)."""
        if self.resolver is not None:
            try:
                return self.recipient_certificates(sender)[0]
            except DirectError:
                pass
        if unsealed.signer is None:
            raise NoCertificate(f"no certificate to encrypt the MDN to {sender}")
        return [unsealed.signer]


def _signed_for(signer: x509.Certificate | None, recipient: str) -> bool:
    if signer is None:
        return False
    try:
        return bound_to(signer, recipient) is not None
    except DirectError:  # a Final-Recipient that is not an address
        return False


# --- inbox endpoint ---------------------------------------------------------------------------------------
class InboxHandler:
    """SMTP handler: unseal with the agent, store accepted messages in ``inbox_dir``, answer MDNs.

    Layout: ``inbox_dir/<message-id>/`` with ``message.json`` (the unseal report) and the attachments (XDM
    packages also unpacked into ``<name>_xdm/``). Rejected messages get a 5xx reply and are not stored.
    """

    def __init__(
        self,
        agent: DirectAgent,
        inbox_dir: str | Path,
        on_message: Callable[[ReceiveResult], None] | None = None,
    ):
        self.agent = agent
        self.inbox = Path(inbox_dir)
        self.on_message = on_message

    #: :class:`~direct.transport.smtp_server.ReceivingEndpoint` passes the SMTP client's address (``peer``).
    wants_peer = True

    def __call__(self, mail_from: str, rcpt_tos: Sequence[str], data: bytes, peer: str | None = None) -> str:
        result = self.agent.receive(data, mail_from, rcpt_tos, peer=peer)
        if not result.accepted:
            assert result.unsealed.error is not None
            raise result.unsealed.error  # the endpoint words the SMTP reply (no padding oracle)
        if result.ok and not result.unsealed.is_notification and result.unsealed.message is not None:
            try:
                self._store(result)
            except OSError as exc:
                log.error("inbox write failed: %s", type(exc).__name__)
                self.agent.failed(result, "the receiving system could not store the message")
            else:
                self.agent.dispatched(result)
        if self.on_message is not None:
            self.on_message(result)
        return "250 2.0.0 Message accepted"

    def _store(self, result: ReceiveResult) -> Path:
        """Owner-only folder per message (PHI at rest), attachments via :func:`save_attachments`."""
        base = safe_filename((result.unsealed.message_id or "message").strip("<>"))
        report = json.dumps(result.unsealed.to_json(), indent=2).encode()
        folder = self.inbox / base
        n = 1
        # A retransmission (same report) lands in the same folder; another message reusing a Message-ID
        # gets its own folder instead of overwriting stored records.
        while (folder / "message.json").exists() and (folder / "message.json").read_bytes() != report:
            n += 1
            folder = self.inbox / f"{base}~{n}"
        save_attachments(
            folder,
            result.unsealed.attachments,
            lambda _name, code: log.warning("inbox: an XDM package was kept without unpacking (%s)", code),
        )
        write_private(folder / "message.json", report)
        return folder


def receiving_endpoint(
    host: str,
    port: int,
    agent: DirectAgent,
    inbox_dir: str | Path,
    *,
    data_size_limit: int = 25 * 2**20,
    on_message: Callable[[ReceiveResult], None] | None = None,
) -> ReceivingEndpoint:
    """An SMTP listener that unseals into ``inbox_dir`` and answers MDNs through ``agent.transport``.

    Call ``.start()`` (or use ``with``); ``port=0`` picks a free port (read ``.port``).
    """
    return ReceivingEndpoint(
        host, port, InboxHandler(agent, inbox_dir, on_message), data_size_limit=data_size_limit
    )
