"""direct.mdn: MDN/DSN build + parse (with ETT's malformed variants) and the delivery state machine."""

from __future__ import annotations

import datetime as dt

import pytest

from direct.mdn import (
    FINAL_DESTINATION,
    DeliveryState,
    DeliveryTracker,
    Notification,
    build_dsn,
    build_mdn,
    is_notification,
    norm_message_id,
    parse_notifications,
    requests_final_destination,
)
from direct.message import build_message, parse_message, to_bytes

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
MID = "<abc.123@a.example>"


def mdn(disposition="processed", **kw):
    args = {
        "original_message_id": MID,
        "original_sender": "alice@a.example",
        "final_recipient": "bob@b.example",
        "disposition": disposition,
    }
    args.update(kw)
    return build_mdn(**args)


def test_processed_mdn_shape():
    msg = mdn()
    raw = to_bytes(msg)
    assert (
        msg.get_content_type() == "multipart/report"
        and msg.get_param("report-type") == "disposition-notification"
    )
    assert msg["From"] == "bob@b.example" and msg["To"] == "alice@a.example" and msg["Message-ID"] != MID
    assert (
        "Disposition-Notification-To" not in msg and "Disposition-Notification-Options" not in msg
    )  # DTS 452
    part = next(p for p in msg.walk() if p.get_content_type() == "message/disposition-notification")
    assert part is not None
    for line in (
        b"Reporting-UA: bbdirect;",
        b"Final-Recipient: rfc822; bob@b.example",
        b"Original-Message-ID: <abc.123@a.example>",
        b"Disposition: automatic-action/MDN-sent-automatically;processed",
    ):
        assert line in raw
    assert FINAL_DESTINATION.encode() not in raw
    assert parse_notifications(msg) == [Notification("mdn", MID, "bob@b.example", "processed", False, None)]


def test_dispatched_carries_extension_field_only_when_requested():
    with_ext = mdn("dispatched", final_destination=True)
    raw = to_bytes(with_ext)
    report = raw.split(b"message/disposition-notification", 1)[1]
    assert FINAL_DESTINATION.encode() + b":" in report  # inside the report, not a header (PIT-10)
    assert FINAL_DESTINATION not in with_ext  # not a top-level header
    assert parse_notifications(with_ext)[0].final_destination
    assert not parse_notifications(mdn("dispatched"))[0].final_destination  # ETT MT 40


def test_failed_mdn_uses_failed_not_error():
    raw = to_bytes(mdn("failed", failure="mailbox unavailable"))
    assert b"MDN-sent-automatically;failed" in raw and b";error" not in raw
    assert b"Failure: mailbox unavailable" in raw
    note = parse_notifications(parse_message(raw))[0]
    assert note.disposition == "failed" and note.detail == "mailbox unavailable"


def test_header_injection_in_fields_is_neutralised():
    raw = to_bytes(mdn("failed", failure="x\r\nBcc: eve@evil.example"))
    assert b"\r\nBcc:" not in raw


def test_control_characters_in_fields_are_neutralised():
    """NUL, vertical tab, form feed, DEL, C1 controls and Unicode line separators (a failure reason or an
    address taken from a received message) never reach the MDN bytes."""
    raw = to_bytes(mdn("failed", failure="a\x00b\x0bc\x0cd\x7fe\x85f\u2028g\rBcc: x"))
    assert not any((b < 0x20 and b not in (0x0D, 0x0A)) or b == 0x7F for b in raw)
    assert b"\r\nBcc:" not in raw and b"\rBcc" not in raw


REPORT = (
    "From: bob@b.example\r\nTo: alice@a.example\r\nMessage-ID: <m1@b.example>\r\nSubject: Processed\r\n"
    "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=disposition-notification; boundary=BB\r\n\r\n"
    "--BB\r\nContent-Type: text/plain\r\n\r\nok\r\n--BB\r\nContent-Type: message/disposition-notification\r\n\r\n"
    "{fields}\r\n--BB--\r\n"
)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        # white_space_mdn / extra_space_disposition / different_cases_822 / white_space_822 (ETT variants)
        (
            "Final-Recipient:   RFC822 ;   Bob@B.example  \r\nOriginal-Message-ID:   < abc.123@a.example >\r\n"
            "Disposition:  automatic-action/MDN-sent-automatically ;  processed  \r\n",
            "processed",
        ),
        # extra_line_break_mdn: blank line inside the field block
        (
            "Final-Recipient: rfc822; bob@b.example\r\n\r\nOriginal-Message-ID: <abc.123@a.example>\r\n"
            "Disposition: automatic-action/MDN-sent-automatically;\r\n processed\r\n",
            "processed",
        ),
        # folded disposition with modifier
        (
            "Final-Recipient: rfc822;bob@b.example\r\nOriginal-Message-ID: abc.123@a.example\r\n"
            "Disposition: automatic-action/MDN-sent-automatically;dispatched/warning\r\n",
            "dispatched",
        ),
        # missing_disposition
        ("Final-Recipient: rfc822; bob@b.example\r\nOriginal-Message-ID: <abc.123@a.example>\r\n", None),
    ],
)
def test_parses_etts_malformed_variants(fields, expected):
    note = parse_notifications(parse_message(REPORT.format(fields=fields).encode()))[0]
    assert note.original_message_id == MID and note.final_recipient == "bob@b.example"
    assert note.disposition == expected


def test_dsn_round_trip_and_returned_headers_fallback():
    dsn = build_dsn(
        original_message_id=MID,
        original_sender="alice@a.example",
        recipient="bob@b.example",
        reporting_mta="mx.a.example",
        status="5.1.1",
        diagnostic="no such user",
    )
    assert is_notification(dsn) and dsn.get_param("report-type") == "delivery-status"
    notes = parse_notifications(dsn)
    assert notes == [Notification("dsn", MID, "bob@b.example", "failed", False, "smtp; no such user")]
    raw = to_bytes(dsn).replace(b"X-Original-Message-ID: <abc.123@a.example>\r\n", b"")
    assert parse_notifications(parse_message(raw))[0].original_message_id == MID


def test_requests_final_destination_and_is_notification():
    original = build_message("alice@a.example", ["bob@b.example"], "s", "t")
    assert requests_final_destination(original) and not is_notification(original)
    plain = build_message("alice@a.example", ["bob@b.example"], "s", "t", request_delivery_notification=False)
    assert not requests_final_destination(plain)
    assert is_notification(mdn()) and parse_notifications(original) == []
    assert norm_message_id(" <a@b> ") == norm_message_id("a@b") == "<a@b>"


# --- tracker ------------------------------------------------------------------------------------------------
def note(disposition, rcpt="bob@b.example", final=False, kind="mdn"):
    return Notification(kind, MID, rcpt, disposition, final, None)


def tracker(**kw):
    t = DeliveryTracker(
        processed_timeout=dt.timedelta(minutes=10), dispatched_timeout=dt.timedelta(minutes=60)
    )
    t.track(MID, ["Bob@b.example", "carol@c.example"], T0, **kw)
    return t


def test_reliable_happy_path_per_recipient():
    t = tracker()
    tr = t.apply(note("processed"), T0 + dt.timedelta(minutes=1))
    assert (tr.old, tr.new) == (DeliveryState.SENT, DeliveryState.PROCESSED)
    assert t.apply(note("dispatched"), T0) is None  # no extension field: not final-destination delivery
    assert (
        t.apply(note("dispatched", final=True), T0 + dt.timedelta(minutes=2)).new == DeliveryState.DISPATCHED
    )
    msg = t.get(MID)
    assert msg.recipients["bob@b.example"].state == DeliveryState.DISPATCHED
    assert msg.recipients["carol@c.example"].state == DeliveryState.SENT and not msg.done


def test_non_reliable_is_done_at_processed():
    t = tracker(reliable=False)
    t.apply_all([note("processed"), note("processed", "carol@c.example")], T0)
    assert t.get(MID).done
    assert t.expire(T0 + dt.timedelta(days=1)) == []


def test_failed_mdn_and_dsn_fail_the_recipient():
    t = tracker()
    assert t.apply(note("failed"), T0).new == DeliveryState.FAILED
    assert t.apply(note("failed", "carol@c.example", kind="dsn"), T0).new == DeliveryState.FAILED
    assert t.get(MID).done


def test_separate_timeouts_with_reasons():
    t = tracker()
    t.apply(note("processed"), T0 + dt.timedelta(minutes=1))
    assert t.next_deadline() == T0 + dt.timedelta(minutes=10)
    early = t.expire(T0 + dt.timedelta(minutes=9))
    assert early == []
    at_10 = t.expire(T0 + dt.timedelta(minutes=10))
    assert [(x.recipient, x.new, x.reason) for x in at_10] == [
        ("carol@c.example", DeliveryState.TIMED_OUT, "no processed MDN")
    ]
    assert t.expire(T0 + dt.timedelta(minutes=59)) == []
    at_60 = t.expire(T0 + dt.timedelta(minutes=60))
    assert [(x.recipient, x.reason) for x in at_60] == [("bob@b.example", "no dispatched MDN")]


def test_late_dispatched_after_timeout_is_suppressed():
    t = tracker()
    t.apply(note("processed"), T0)
    t.expire(T0 + dt.timedelta(hours=2))
    assert t.apply(note("dispatched", final=True), T0 + dt.timedelta(hours=3)) is None
    assert t.get(MID).recipients["bob@b.example"].state == DeliveryState.TIMED_OUT
    assert len(t.suppressed) == 1


def test_unknown_messages_and_recipients_are_ignored():
    t = tracker()
    assert t.apply(Notification("mdn", "<other@x>", "bob@b.example", "processed"), T0) is None
    assert t.apply(note("processed", "eve@b.example"), T0) is None
    assert t.apply(note(None), T0) is None  # missing Disposition


# --- notice policy (issue 12) --------------------------------------------------------------------------------
def test_reports_are_read_strictly_by_their_report_type():
    """A delivery-status report carrying a disposition-notification part is not an MDN (finding 1)."""
    fields = (
        "Final-Recipient: rfc822; bob@b.example\r\nOriginal-Message-ID: <abc.123@a.example>\r\n"
        "Disposition: automatic-action/MDN-sent-automatically;dispatched\r\n"
    )
    relabelled = REPORT.format(fields=fields).replace(
        "report-type=disposition-notification", "report-type=delivery-status"
    )
    assert parse_notifications(parse_message(relabelled.encode())) == []
    unlabelled = REPORT.format(fields=fields).replace("; report-type=disposition-notification", "")
    assert parse_notifications(parse_message(unlabelled.encode())) == []
    assert (
        parse_notifications(parse_message(REPORT.format(fields=fields).encode()))[0].outcome == "dispatched"
    )


@pytest.mark.parametrize(
    ("disposition", "outcome"),
    [
        ("processed", "processed"),
        ("dispatched", "dispatched"),
        ("displayed", "dispatched"),
        ("failed", "failed"),
        ("deleted", "failed"),
        ("denied", "failed"),
        ("processed/error", "failed"),
        ("bogus", None),
    ],
)
def test_dispositions_map_explicitly(disposition, outcome):
    fields = (
        "Final-Recipient: rfc822; bob@b.example\r\nOriginal-Message-ID: <abc.123@a.example>\r\n"
        f"Disposition: automatic-action/MDN-sent-automatically;{disposition}\r\n"
    )
    assert parse_notifications(parse_message(REPORT.format(fields=fields).encode()))[0].outcome == outcome


def test_remote_text_is_one_line_limited_and_quoted():
    from direct.mdn import REMOTE_TEXT_LIMIT, remote_words

    assert remote_words('no "such"\r\nuser') == '"no \\"such\\" user"'
    long = remote_words("x" * 1000)
    assert long.startswith('"xxx') and long.endswith('..."') and len(long) <= REMOTE_TEXT_LIMIT + 2
    assert remote_words(None) is None
