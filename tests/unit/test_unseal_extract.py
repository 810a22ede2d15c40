"""``bbdirect unseal --extract`` writes only what was decrypted, validly signed and chained to a trusted anchor
(issue 12 #7). Anything else writes nothing, exits non-zero and says why — unless ``--quarantine DIR`` is
given, which keeps the rejected content, as received (XDM never unpacked), in that folder. The ``--json``
report keeps its fixed shape throughout."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from bbdirect.cli import main
from direct.certgen import load_pem_chain
from direct.message import Attachment, build_message, to_bytes
from direct.smime import envelope, mime
from tests.unit import test_smime_cli
from tests.unit.test_smime_cli import KEYS, seal_args, unseal_args

files = test_smime_cli.files  # the module-scoped fixture: our PKI files and a C-CDA to attach


def _sealed(files, *extra: str) -> bytes:
    res = CliRunner().invoke(main, seal_args(files, *extra))
    assert res.exit_code == 0, res.output
    return res.stdout_bytes


def _unsigned(files) -> bytes:
    """Encrypted to bob, but not signed (an unsigned, unauthenticated message)."""
    msg = build_message(
        "alice@a.example",
        ["bob@b.example"],
        "Records",
        "Unsigned.",
        [Attachment("ccd.xml", "application/xml", files["ccd"].read_bytes())],
    )
    bob = load_pem_chain(Path(files["bob"][0]).read_bytes())[0]
    headers, body = mime.build_enveloped_body(envelope.encrypt(to_bytes(msg), [bob]))
    outer = f"From: alice@a.example\r\nTo: bob@b.example\r\nMessage-ID: {msg['Message-ID']}\r\nMIME-Version: 1.0\r\n"
    return outer.encode() + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers) + b"\r\n" + body


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


def test_untrusted_signer_extracts_nothing_and_says_why(files, tmp_path) -> None:
    """Validly signed, but by a signer that chains to no anchor we gave (``--anchor`` absent): the XDM package
    was written and unpacked into the --extract folder; now nothing is, and the reason is on stderr."""
    dest = tmp_path / "out"
    res = CliRunner().invoke(
        main, unseal_args(files, "--json", "--extract", str(dest), anchors=()), input=_sealed(files, "--xdm")
    )
    assert res.exit_code == 1
    report = json.loads(res.stdout)  # stdout is still only the fixed JSON report
    assert set(report) == KEYS and report["ok"] is False and report["error"]["code"] == "untrusted_signer"
    assert report["attachments"][0]["content_type"] == "application/zip"
    assert _tree(dest) == []
    assert "not extracted" in res.stderr and "untrusted_signer" in res.stderr


def test_unsigned_message_extracts_nothing(files, tmp_path) -> None:
    dest = tmp_path / "out"
    res = CliRunner().invoke(main, unseal_args(files, "--extract", str(dest)), input=_unsigned(files))
    assert res.exit_code == 1
    assert "REJECTED [missing_signature]" in res.stdout
    assert _tree(dest) == []
    assert "not extracted" in res.stderr and "missing_signature" in res.stderr


def test_quarantine_keeps_rejected_content_as_received(files, tmp_path) -> None:
    """The explicit option: the untrusted message's attachments go to the quarantine folder, the XDM zip as
    received (not unpacked), nothing to --extract; the command still fails (the message is not OK)."""
    dest, quarantine = tmp_path / "out", tmp_path / "quarantine"
    res = CliRunner().invoke(
        main,
        unseal_args(files, "--json", "--extract", str(dest), "--quarantine", str(quarantine), anchors=()),
        input=_sealed(files, "--xdm"),
    )
    assert res.exit_code == 1
    report = json.loads(res.stdout)
    assert set(report) == KEYS and report["error"]["code"] == "untrusted_signer"
    assert _tree(dest) == []
    assert _tree(quarantine) == ["XDM.ZIP"]
    assert (quarantine / "XDM.ZIP").read_bytes()[:2] == b"PK"
    assert (quarantine / "XDM.ZIP").stat().st_mode & 0o077 == 0 and quarantine.stat().st_mode & 0o077 == 0
    assert "quarantined" in res.stderr and "untrusted_signer" in res.stderr


def test_quarantine_of_an_unsigned_message(files, tmp_path) -> None:
    quarantine = tmp_path / "q"
    res = CliRunner().invoke(
        main, unseal_args(files, "--quarantine", str(quarantine)), input=_unsigned(files)
    )
    assert res.exit_code == 1
    assert (quarantine / "ccd.xml").read_bytes() == files["ccd"].read_bytes()


def test_trusted_message_is_extracted_and_quarantine_stays_empty(files, tmp_path) -> None:
    dest, quarantine = tmp_path / "out", tmp_path / "quarantine"
    res = CliRunner().invoke(
        main,
        unseal_args(files, "--json", "--extract", str(dest), "--quarantine", str(quarantine)),
        input=_sealed(files, "--xdm"),
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["ok"] is True
    assert (dest / "XDM_xdm" / "ccd.xml").read_bytes() == files["ccd"].read_bytes()
    assert _tree(quarantine) == []


def test_undecryptable_message_writes_nothing_even_with_quarantine(files, tmp_path) -> None:
    dest, quarantine = tmp_path / "out", tmp_path / "quarantine"
    res = CliRunner().invoke(
        main,
        unseal_args(files, "--json", "--extract", str(dest), "--quarantine", str(quarantine), who=("carol",)),
        input=_sealed(files),
    )
    assert res.exit_code == 1 and json.loads(res.stdout)["error"]["code"] == "decrypt_failed"
    assert _tree(dest) == [] and _tree(quarantine) == []
