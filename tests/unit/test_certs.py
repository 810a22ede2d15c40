"""Certificate facts: SAN binding (case-insensitive, no wildcards, never subject E=), key usage, parsing."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from direct import certgen
from direct.address import DirectAddress
from direct.certs import bound_to, can_encrypt, can_sign, is_current, load_certificates, sha256_hex
from direct.trust.policy import binds_as


def test_address_binding_is_case_insensitive(pki) -> None:
    leaf = pki.address("Bob.Smith@Direct.Example.org")
    assert bound_to(leaf.cert, "bob.smith@direct.example.org") == "address"
    assert bound_to(leaf.cert, DirectAddress.parse("BOB.SMITH@DIRECT.EXAMPLE.ORG")) == "address"
    assert bound_to(leaf.cert, "alice@direct.example.org") is None


def test_domain_binding(pki) -> None:
    leaf = pki.domain("direct.example.org")
    assert bound_to(leaf.cert, "anyone@Direct.Example.org") == "domain"
    assert bound_to(leaf.cert, "anyone@sub.direct.example.org") is None


def test_wildcard_dns_name_never_binds(pki) -> None:
    leaf = pki.domain("*.example.org")
    assert bound_to(leaf.cert, "bob@direct.example.org") is None
    assert not binds_as(leaf.cert, DirectAddress.parse("bob@direct.example.org"), "domain")


def test_subject_email_alone_does_not_bind(pki) -> None:
    """A certificate with E=bob@... in the subject but a SAN for someone else is not Bob's (CERT-1)."""
    leaf = certgen.make_leaf(pki.intermediate, address="other@x.example", common_name="bob@x.example")
    assert bound_to(leaf.cert, "bob@x.example") is None


def test_binds_as_requires_the_step_binding(pki) -> None:
    addr = DirectAddress.parse("bob@direct.example.org")
    domain_cert = pki.domain("direct.example.org")
    assert binds_as(domain_cert.cert, addr, "domain")
    assert not binds_as(domain_cert.cert, addr, "address")


def test_plus_tag_binds_to_base_address(pki) -> None:
    leaf = pki.address("bob@direct.example.org")
    assert bound_to(leaf.cert, "bob+lab@direct.example.org") == "address"


def test_key_usage(pki) -> None:
    both = pki.address("ku@x.example")
    sign_only = pki.wrong_key_usage("ku2@x.example")
    enc_only = pki.address("ku3@x.example", digital_signature=False)
    assert can_encrypt(both.cert) and can_sign(both.cert)
    assert not can_encrypt(sign_only.cert) and can_sign(sign_only.cert)
    assert can_encrypt(enc_only.cert) and not can_sign(enc_only.cert)


def test_ec_key_needs_key_agreement(pki) -> None:
    ec_leaf = pki.address("ec@x.example", key_kind="ec")
    assert can_encrypt(ec_leaf.cert)  # keyAgreement set by certgen for EC
    assert can_sign(ec_leaf.cert)


def test_eku_without_email_protection_is_refused(pki) -> None:
    ca = pki.intermediate
    key = certgen.new_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "tls")]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
        .not_valid_after(dt.datetime.now(dt.UTC) + dt.timedelta(days=10))
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name("tls@x.example")]), False)
        .sign(ca.key, certgen.hashes.SHA256())
    )
    assert not can_encrypt(cert) and not can_sign(cert)


def test_validity(pki) -> None:
    assert is_current(pki.address("v@x.example").cert)
    assert not is_current(pki.expired("v2@x.example").cert)
    assert not is_current(pki.not_yet_valid("v3@x.example").cert)


def test_sha256_is_of_der(pki) -> None:
    leaf = pki.address("h@x.example")
    assert sha256_hex(leaf.cert) == hashlib.sha256(leaf.cert_der).hexdigest()


@pytest.mark.parametrize("form", ["der", "pem", "pem-chain", "p7-der", "p7-pem"])
def test_load_certificates_forms(pki, form: str) -> None:
    leaf = pki.address("f@x.example")
    certs = [leaf.cert, pki.intermediate.cert]
    data = {
        "der": leaf.cert_der,
        "pem": leaf.cert_pem,
        "pem-chain": leaf.cert_pem + pki.intermediate.cert_pem,
        "p7-der": pkcs7.serialize_certificates(certs, serialization.Encoding.DER),
        "p7-pem": pkcs7.serialize_certificates(certs, serialization.Encoding.PEM),
    }[form]
    got = load_certificates(data)
    assert leaf.cert in got
    assert len(got) == (1 if form in {"der", "pem"} else 2)


def test_load_certificates_garbage() -> None:
    with pytest.raises(ValueError):
        load_certificates(b"\x30\x03\x02\x01\x00garbage")


def test_der_ending_in_whitespace_byte_is_not_stripped(pki) -> None:
    """DER ends with signature bytes; 6 in 256 certificates end in a byte that looks like whitespace."""
    key = certgen.new_key()
    for _ in range(3000):
        leaf = pki.address("ws@x.example", key=key)
        if leaf.cert_der[-1:].isspace():
            break
    assert leaf.cert_der[-1:].isspace()
    assert load_certificates(leaf.cert_der) == [leaf.cert]
