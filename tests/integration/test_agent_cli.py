"""``bbdirect receive`` and ``bbdirect send --wait`` as real processes: a message crosses SMTP, lands in the
inbox, and the sender sees processed + dispatched MDNs come back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.services import free_port, wait_for_port

BBDIRECT = [sys.executable, "-m", "bbdirect.cli"]


def test_send_wait_against_receive(pki, tmp_path):
    alice_pem, alice_key = pki.write(pki.address("alice@clia.test"), "cli-alice")
    bob_pem, bob_key = pki.write(pki.address("bob@clib.test"), "cli-bob")
    root = pki.write_cert(pki.root.cert, "cli-root")
    ccd = tmp_path / "ccd.xml"
    ccd.write_bytes(b"<ClinicalDocument/>\n")
    inbox = tmp_path / "inbox"
    recv_port, mdn_port = free_port(), free_port()
    receiver = subprocess.Popen(
        [
            *BBDIRECT,
            "receive",
            "--listen",
            f"127.0.0.1:{recv_port}",
            "--cert",
            str(bob_pem),
            "--key",
            str(bob_key),
            "--anchor",
            str(root),
            "--inbox",
            str(inbox),
            "--count",
            "1",
            "--smtp-host",
            "127.0.0.1",
            "--smtp-port",
            str(mdn_port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )
    try:
        wait_for_port("127.0.0.1", recv_port, timeout=30)
        sent = subprocess.run(
            [
                *BBDIRECT,
                "send",
                "--from",
                "alice@clia.test",
                "--to",
                "bob@clib.test",
                "--sign-cert",
                str(alice_pem),
                "--sign-key",
                str(alice_key),
                "--recipient-cert",
                str(bob_pem),
                "--anchor",
                str(root),
                "--attach",
                str(ccd),
                "--smtp-host",
                "127.0.0.1",
                "--smtp-port",
                str(recv_port),
                "--wait",
                "--listen",
                f"127.0.0.1:{mdn_port}",
                "--timeout",
                "30",
                "--json",
            ],
            capture_output=True,
            timeout=60,
            cwd=Path(__file__).parents[2],
        )
        assert sent.returncode == 0, sent.stderr.decode()
        report = json.loads(sent.stdout)
        assert report["state"] == {"bob@clib.test": "dispatched"} and report["ok"]
        out, _err = receiver.communicate(timeout=30)
    finally:
        if receiver.poll() is None:
            receiver.kill()
    line = json.loads(out.decode().strip().splitlines()[0])
    assert line["ok"] and line["mdns_sent"] == ["processed", "dispatched"]
    stored = inbox / report["message_id"].strip("<>") / "ccd.xml"
    assert stored.read_bytes() == ccd.read_bytes()
