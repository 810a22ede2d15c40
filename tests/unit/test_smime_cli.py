"""``bbdirect seal`` / ``bbdirect unseal --json``: the fixed CLI contract scripts and the Java RI harness use."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bbdirect.cli import main

KEYS = {"ok", "decrypted", "signature", "digest", "signer", "wrapped", "from", "to", "attachments", "error"}


@pytest.fixture(scope="module")
def files(pki, tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    out = {
        name: pki.write(pki.address(addr), name)
        for name, addr in [
            ("alice", "alice@a.example"),
            ("bob", "bob@b.example"),
            ("carol", "carol@c.example"),
        ]
    }
    out["root"] = pki.write_cert(pki.root.cert, "root")
    ccd = d / "ccd.xml"
    ccd.write_bytes(b"<ClinicalDocument/>\n")
    out["ccd"] = ccd
    out["dir"] = d
    return out


def seal_args(files, *extra):
    return [
        "seal",
        "--from",
        "alice@a.example",
        "--to",
        "bob@b.example",
        "--sign-cert",
        str(files["alice"][0]),
        "--sign-key",
        str(files["alice"][1]),
        "--recipient-cert",
        str(files["bob"][0]),
        "--attach",
        str(files["ccd"]),
        *extra,
    ]


def unseal_args(files, *extra, who=("bob",), anchors=None):
    """``unseal`` with a --cert/--key pair for each name in ``who``; ``anchors`` defaults to the test root
    (``()`` = no anchor at all); ``extra`` goes last (message path, --json, --extract...)."""
    args = ["unseal"]
    for name in who:
        args += ["--cert", str(files[name][0]), "--key", str(files[name][1])]
    for anchor in (files["root"],) if anchors is None else anchors:
        args += ["--anchor", str(anchor)]
    return [*args, *extra]


def test_seal_to_stdout_then_unseal_json_from_stdin(files):
    runner = CliRunner()
    sealed = runner.invoke(main, seal_args(files, "--subject", "Records"))
    assert sealed.exit_code == 0, sealed.output
    assert b"smime.p7m" in sealed.stdout_bytes
    res = runner.invoke(main, unseal_args(files, "--json"), input=sealed.stdout_bytes)
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert set(report) == KEYS
    assert report["ok"] and report["decrypted"] and report["signature"] == "valid" and report["wrapped"]
    assert report["from"] == "alice@a.example" and report["to"] == ["bob@b.example"]
    assert report["signer"]["trusted"] and "alice@a.example" in report["signer"]["subject"]
    assert report["attachments"][0]["filename"] == "ccd.xml"
    assert report["attachments"][0]["content_type"] == "application/xml"


def test_seal_to_file_unseal_extract_and_several_keys(files):
    runner = CliRunner()
    out = files["dir"] / "m.eml"
    assert (
        runner.invoke(main, [*seal_args(files), "-o", str(out), "--key-transport", "rsa-oaep"]).exit_code == 0
    )
    dest = files["dir"] / "x"
    res = runner.invoke(
        main, unseal_args(files, str(out), "--extract", str(dest), "--json", who=("carol", "bob"))
    )
    assert res.exit_code == 0, res.output
    assert (dest / "ccd.xml").read_bytes() == files["ccd"].read_bytes()
    # extracted health records are owner-only, like the inbox
    assert (dest / "ccd.xml").stat().st_mode & 0o077 == 0 and dest.stat().st_mode & 0o077 == 0


def test_unseal_failure_exit_code_and_error_object(files):
    runner = CliRunner()
    sealed = runner.invoke(main, seal_args(files)).stdout_bytes
    res = runner.invoke(main, unseal_args(files, "--json", who=("carol",)), input=sealed)
    assert res.exit_code == 1
    report = json.loads(res.stdout)
    assert set(report) == KEYS and report["ok"] is False
    assert report["error"]["code"] == "decrypt_failed" and report["signer"] is None
    # No anchors at all: decrypted and valid, but not trusted.
    res = runner.invoke(main, unseal_args(files, "--json", anchors=()), input=sealed)
    report = json.loads(res.stdout)
    assert (
        res.exit_code == 1
        and report["signature"] == "valid"
        and report["error"]["code"] == "untrusted_signer"
    )


def test_seal_xdm_package(files):
    runner = CliRunner()
    sealed = runner.invoke(main, seal_args(files, "--xdm")).stdout_bytes
    dest = files["dir"] / "xdm"
    res = runner.invoke(main, unseal_args(files, "--json", "--extract", str(dest)), input=sealed)
    report = json.loads(res.stdout)
    assert report["ok"] and report["attachments"][0]["content_type"] == "application/zip"
    assert (dest / "XDM_xdm" / "ccd.xml").read_bytes() == files["ccd"].read_bytes()


def test_unseal_extract_of_unreadable_xdm_keeps_the_json_contract(files):
    """--extract of a package zipfile cannot read (encrypted entry) wrote a traceback instead of the JSON
    report: now the zip is extracted as received, a note goes to stderr and stdout stays pure JSON."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("IHE_XDM/SUBSET01/DOC.XML", b"<x/>")
    data = bytearray(buf.getvalue())
    data[6] |= 1
    data[data.find(b"PK\x01\x02") + 8] |= 1
    bad = files["dir"] / "BAD.ZIP"
    bad.write_bytes(bytes(data))
    args = seal_args(files)
    args[args.index(str(files["ccd"]))] = str(bad)
    runner = CliRunner()
    sealed = runner.invoke(main, args).stdout_bytes
    dest = files["dir"] / "badxdm"
    res = runner.invoke(main, unseal_args(files, "--json", "--extract", str(dest)), input=sealed)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["ok"] is True
    assert (dest / "BAD.ZIP").read_bytes() == bytes(data)
    assert "not unpacked" in res.stderr


def test_anchor_as_pkcs7_bundle_is_read_by_the_one_certificate_loader(files, pki):
    """seal/unseal read certificates through direct.certs.load_certificates (merged loader): a trust
    bundle file (.p7b, PKCS#7 certs-only) works as --anchor, as it already did for ``lookup``."""
    from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

    p7b = files["dir"] / "bundle.p7b"
    p7b.write_bytes(pkcs7.serialize_certificates([pki.root.cert], Encoding.DER))
    runner = CliRunner()
    sealed = runner.invoke(main, seal_args(files)).stdout_bytes
    res = runner.invoke(main, unseal_args(files, "--json", anchors=(p7b,)), input=sealed)
    assert res.exit_code == 0 and json.loads(res.stdout)["signer"]["trusted"] is True
