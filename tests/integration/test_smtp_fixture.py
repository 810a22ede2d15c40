"""The SMTP listener fixture records what it receives and answers 4xx/5xx on demand."""

import smtplib

import pytest


@pytest.mark.service("smtp")
def test_records_a_message(smtp_sink):
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as client:
        client.sendmail("a@x.example", ["b@y.example"], b"Subject: hi\r\n\r\nbody\r\n")
    [msg] = smtp_sink.wait_for(1, timeout=5)
    assert msg.mail_from == "a@x.example"
    assert msg.rcpt_tos == ["b@y.example"]
    assert b"body" in msg.data


@pytest.mark.service("smtp")
@pytest.mark.parametrize("reply,code", [("451 4.3.0 busy", 451), ("554 5.7.1 no thanks", 554)])
def test_answers_failure_on_demand(smtp_sink, reply, code):
    smtp_sink.fail_next(reply)
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as client:
        with pytest.raises(smtplib.SMTPDataError) as err:
            client.sendmail("a@x.example", ["b@y.example"], b"Subject: hi\r\n\r\nbody\r\n")
    assert err.value.smtp_code == code
    assert smtp_sink.messages == []
