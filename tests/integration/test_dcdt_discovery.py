"""DCDT discovery test cases D1-D18, reproduced on a real BIND9, three slapd servers and an HTTP PKI host.

The layout is DCDT's (onc-healthit/dcdt ``spring-core-testcases-discovery*.xml``, ``spring-core-instance-*.xml``):
domains ``domain1``..``domain10`` under a base domain; three LDAP servers sharing one host name on three
ports (LDAP 1 at SRV priority 0, LDAP 2 at priority 1, LDAP 3 at priority 0 weight 100); a target
``ldap-unavailable`` with no address record; leaves issued by the root CA ``<base>_ca_root`` (D18: by
``<base>_ca_intermediate1``, reachable only through AIA); CRL and AIA URIs on the PKI host. DCDT's CAs carry
a non-critical basicConstraints and the intermediate has no authorityKeyIdentifier. "Invalid" certificates
are expired, except D17's, which are revoked. Each test asserts the exact selection (by common name) or
the exact failure.
"""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from direct import certgen
from direct.discovery import CertificateResolver, DiscoveryConfig
from direct.discovery.dns import CERT_PKIX
from tests.fixtures.ldap import person
from tests.support.httpfiles import LOOPBACK, HttpFiles

pytestmark = [pytest.mark.service("bind9"), pytest.mark.service("slapd")]

BASE = "dcdt.test"


def _d(n: int) -> str:
    return f"domain{n}.{BASE}"


class DcdtWorld:
    """Everything D1-D18 need, built once per module."""

    def __init__(self, bind, ldap_servers) -> None:
        self.http = HttpFiles()
        self.bind = bind
        now = dt.datetime.now(dt.UTC)
        self.root = certgen.make_ca(f"{BASE}_ca_root", basic_constraints_critical=False)
        self.inter = certgen.make_ca(
            f"{BASE}_ca_intermediate1",
            issuer=self.root,
            basic_constraints_critical=False,
            with_aki=False,
            crl_url=self.http.url("/root.crl"),
            aia_ca_issuers_url=self.http.url("/root.cer"),
        )
        self.certs: dict[str, certgen.Issued] = {}

        def leaf(
            name: str,
            *,
            address: str | None = None,
            domain: str | None = None,
            expired: bool = False,
            issuer: certgen.Issued | None = None,
            bits: int = 2048,
        ) -> certgen.Issued:
            issuer = issuer or self.root
            stem = "intermediate1" if issuer is self.inter else "root"
            kwargs = {}
            if expired:
                kwargs = {"not_before": now - dt.timedelta(days=400), "not_after": now - dt.timedelta(days=1)}
            issued = certgen.make_leaf(
                issuer,
                address=address,
                domain=domain,
                common_name=name,
                bits=bits,
                crl_url=self.http.url(f"/{stem}.crl"),
                aia_ca_issuers_url=self.http.url(f"/{stem}.cer"),
                **kwargs,
            )
            self.certs[name] = issued
            return issued

        # --- DNS-published credentials (DCDT "Loc*Dns") ---
        leaf("D1_valA", address=f"d1@{_d(1)}")
        leaf("D1_invB", domain=_d(1), expired=True)
        leaf("D2_valB", domain=_d(1))
        leaf("D5_invA", address=f"d5@{_d(1)}", expired=True)
        leaf("D6_invB", domain=_d(4), expired=True)
        leaf("D9_valA", address=f"d9@{_d(1)}")
        leaf("D9_invA", address=f"d9@{_d(1)}", expired=True)
        leaf("D14_valA", address=f"d14@{_d(1)}", bits=4096)
        leaf("D17_invB", address=f"d17@{_d(9)}")
        leaf("D17_invC", address=f"d17@{_d(9)}")
        leaf("D17_valA", address=f"d17@{_d(9)}")
        leaf("D17_invD", domain=_d(9))
        leaf("D18_valA", address=f"d18@{_d(10)}", issuer=self.inter)
        leaf("D18_invB", domain=_d(10), expired=True)
        # --- LDAP-published credentials ---
        leaf("D1_invC", address=f"d1@{_d(1)}", expired=True)
        leaf("D1_invD", domain=_d(1), expired=True)
        leaf("D2_invC", address=f"d2@{_d(1)}", expired=True)
        leaf("D2_invD", domain=_d(1), expired=True)
        leaf("D3_valC", address=f"d3@{_d(2)}")
        leaf("D3_invD", domain=_d(2), expired=True)
        leaf("D4_valD", domain=_d(2))
        leaf("D7_invC", address=f"d7@{_d(2)}", expired=True)
        leaf("D8_invD", domain=_d(5), expired=True)
        leaf("D10_valE", address=f"d10@{_d(3)}")
        leaf("D15_valC", address=f"d15@{_d(2)}")
        leaf("D15_invE", address=f"d15@{_d(2)}", expired=True)
        leaf("D16_valC", address=f"d16@{_d(5)}")
        leaf("D16_valE", address=f"d16@{_d(5)}")

        # --- PKI host: CA certificates (AIA) and CRLs; D17 invB/invC revoked (keyCompromise in DCDT) ---
        der = serialization.Encoding.DER
        self.http.put("/root.cer", self.root.cert.public_bytes(der))
        self.http.put("/intermediate1.cer", self.inter.cert.public_bytes(der))
        revoked = [self.certs["D17_invB"].cert, self.certs["D17_invC"].cert]
        self.http.put("/root.crl", certgen.make_crl(self.root, revoked).public_bytes(der))
        self.http.put("/intermediate1.crl", certgen.make_crl(self.inter).public_bytes(der))

        # --- LDAP servers (DCDT ldap1/ldap2/ldap3, partition ou=dcdt) ---
        self.ldap1 = ldap_servers("dcdt-ldap1", suffix="ou=dcdt")
        self.ldap2 = ldap_servers("dcdt-ldap2", suffix="ou=dcdt")
        self.ldap3 = ldap_servers("dcdt-ldap3", suffix="ou=dcdt")

        # OpenLDAP stores certificate syntax only with the ;binary transfer option (ApacheDS, which DCDT
        # runs, also takes plain userCertificate); the reader asks for both names.
        def entry(server, name: str, mail: str, attribute: str = "userCertificate;binary"):
            return person(server.suffix, name, mail, [self.certs[name].cert_der], attribute=attribute)

        self.ldap1.load(
            [
                entry(self.ldap1, "D1_invC", f"d1@{_d(1)}"),
                entry(self.ldap1, "D1_invD", _d(1)),
                entry(self.ldap1, "D2_invC", f"d2@{_d(1)}"),
                entry(self.ldap1, "D2_invD", _d(1)),
                entry(self.ldap1, "D3_valC", f"d3@{_d(2)}"),
                entry(self.ldap1, "D3_invD", _d(2)),
                entry(self.ldap1, "D4_valD", _d(2)),
                entry(self.ldap1, "D7_invC", f"d7@{_d(2)}"),
                entry(self.ldap1, "D15_valC", f"d15@{_d(2)}"),
                entry(self.ldap1, "D16_valE", f"d16@{_d(5)}"),
            ]
        )
        self.ldap2.load(
            [
                entry(self.ldap2, "D15_invE", f"d15@{_d(2)}"),
                entry(self.ldap2, "D10_valE", f"d10@{_d(3)}"),
            ]
        )
        self.ldap3.load(
            [
                entry(self.ldap3, "D8_invD", _d(5)),
                entry(self.ldap3, "D16_valC", f"d16@{_d(5)}"),
            ]
        )

        # --- DNS zone ---
        def cert_rr(owner: str, name: str) -> str:
            b64 = base64.b64encode(self.certs[name].cert_der).decode()
            return f"{owner} 300 IN CERT PKIX 0 0 ( {b64} )"

        p1, p2, p3 = self.ldap1.port, self.ldap2.port, self.ldap3.port
        records = [
            "ldap IN A 127.0.0.1",
            "pki IN A 127.0.0.1",
            # ldap-unavailable deliberately has no address record (DCDT)
            cert_rr("d1.domain1", "D1_valA"),
            cert_rr("domain1", "D1_invB"),
            cert_rr("domain1", "D2_valB"),
            cert_rr("d5.domain1", "D5_invA"),
            cert_rr("d9.domain1", "D9_valA"),
            cert_rr("d9.domain1", "D9_invA"),
            cert_rr("d14.domain1", "D14_valA"),
            cert_rr("domain4", "D6_invB"),
            cert_rr("d17.domain9", "D17_invB"),
            cert_rr("d17.domain9", "D17_invC"),
            cert_rr("d17.domain9", "D17_valA"),
            cert_rr("domain9", "D17_invD"),
            cert_rr("d18.domain10", "D18_valA"),
            cert_rr("domain10", "D18_invB"),
            f"_ldap._tcp.domain1 IN SRV 0 0 {p1} ldap.{BASE}.",
            f"_ldap._tcp.domain2 IN SRV 0 0 {p1} ldap.{BASE}.",
            f"_ldap._tcp.domain2 IN SRV 1 0 {p2} ldap.{BASE}.",
            f"_ldap._tcp.domain3 IN SRV 0 0 {p1} ldap-unavailable.{BASE}.",
            f"_ldap._tcp.domain3 IN SRV 1 0 {p2} ldap.{BASE}.",
            f"_ldap._tcp.domain4 IN SRV 0 0 {p1} ldap.{BASE}.",
            f"_ldap._tcp.domain5 IN SRV 0 0 {p1} ldap.{BASE}.",
            f"_ldap._tcp.domain5 IN SRV 0 100 {p3} ldap.{BASE}.",
            f"_ldap._tcp.domain7 IN SRV 0 0 {p1} ldap-unavailable.{BASE}.",
            f"_ldap._tcp.domain8 IN SRV 0 0 {p1} ldap.{BASE}.",
        ]
        records += [f"domain{n} IN MX 10 mail.{BASE}." for n in range(1, 11)]
        records += [f"domain{n} IN A 127.0.0.1" for n in range(1, 11)]
        bind.zone(BASE, records)

    def resolver(self) -> CertificateResolver:
        return CertificateResolver(
            DiscoveryConfig(
                net_policy=LOOPBACK,
                nameservers=[(self.bind.host, self.bind.port)],
                anchors=[self.root.cert],
                ldap_connect_timeout=1.0,
            )
        )

    def close(self) -> None:
        self.http.close()


@pytest.fixture(scope="module")
def dcdt(bind, ldap_servers):
    world = DcdtWorld(bind, ldap_servers)
    yield world
    world.close()


def _cn(candidate) -> str:
    return candidate.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def _lookup(dcdt, address: str):
    resolver = dcdt.resolver()
    return resolver, resolver.lookup(address)


def _selected(result) -> list[tuple[str, str, str]]:
    return sorted((_cn(c), c.source, c.binding) for c in result.selected)


# --- positive cases: exact selection ---------------------------------------------------------------------
def test_d1_dns_address_bound_valid(dcdt) -> None:
    _, res = _lookup(dcdt, f"d1@{_d(1)}")
    assert res.error is None
    assert _selected(res) == [("D1_valA", "dns", "address")]
    assert [_cn(c) for c in res.candidates] == ["D1_valA"]  # domain-bound and LDAP never consulted


def test_d2_dns_domain_bound_valid(dcdt) -> None:
    _, res = _lookup(dcdt, f"d2@{_d(1)}")
    assert _selected(res) == [("D2_valB", "dns", "domain")]
    assert {(_cn(c), c.reason) for c in res.candidates} == {("D2_valB", None), ("D1_invB", "expired")}


def test_d3_ldap_address_bound_valid(dcdt) -> None:
    _, res = _lookup(dcdt, f"d3@{_d(2)}")
    assert _selected(res) == [("D3_valC", "ldap", "address")]


def test_d4_ldap_domain_bound_valid(dcdt) -> None:
    _, res = _lookup(dcdt, f"d4@{_d(2)}")
    assert _selected(res) == [("D4_valD", "ldap", "domain")]
    assert {(_cn(c), c.reason) for c in res.candidates} == {("D4_valD", None), ("D3_invD", "expired")}


# --- negative cases: found but invalid → stop, no fallback ------------------------------------------------
def test_d5_dns_address_bound_invalid_no_fallback(dcdt) -> None:
    _, res = _lookup(dcdt, f"d5@{_d(1)}")
    assert res.selected == []
    assert res.error.code == "no_usable_certificate"
    assert [(_cn(c), c.reason) for c in res.candidates] == [("D5_invA", "expired")]  # D2_valB not used


def test_d6_dns_domain_bound_invalid(dcdt) -> None:
    _, res = _lookup(dcdt, f"d6@{_d(4)}")
    assert res.selected == [] and res.error.code == "no_usable_certificate"
    assert [(_cn(c), c.binding) for c in res.candidates] == [("D6_invB", "domain")]


def test_d7_ldap_address_bound_invalid_no_fallback(dcdt) -> None:
    _, res = _lookup(dcdt, f"d7@{_d(2)}")
    assert res.selected == [] and res.error.code == "no_usable_certificate"
    assert [_cn(c) for c in res.candidates] == ["D7_invC"]  # the valid domain-bound D4_valD is not used


def test_d8_ldap_domain_bound_invalid(dcdt) -> None:
    _, res = _lookup(dcdt, f"d8@{_d(5)}")
    assert res.selected == [] and res.error.code == "no_usable_certificate"
    assert [(_cn(c), c.source, c.binding) for c in res.candidates] == [("D8_invD", "ldap", "domain")]


# --- selection among several -----------------------------------------------------------------------------
def test_d9_dns_select_valid_over_invalid(dcdt) -> None:
    _, res = _lookup(dcdt, f"d9@{_d(1)}")
    assert _selected(res) == [("D9_valA", "dns", "address")]
    assert {(_cn(c), c.reason) for c in res.candidates} == {("D9_valA", None), ("D9_invA", "expired")}


def test_d10_ldap_unavailable_server_skipped(dcdt) -> None:
    _, res = _lookup(dcdt, f"d10@{_d(3)}")
    assert _selected(res) == [("D10_valE", "ldap", "address")]
    assert any(w.startswith("ldap_unresolvable: ldap-unavailable") for w in res.warnings)


def test_d11_no_dns_certs_no_srv(dcdt) -> None:
    _, res = _lookup(dcdt, f"d11@{_d(6)}")
    assert res.selected == [] and res.candidates == []
    assert res.error.code == "no_certificate"


def test_d12_no_available_ldap_server(dcdt) -> None:
    _, res = _lookup(dcdt, f"d12@{_d(7)}")
    assert res.selected == [] and res.candidates == []
    assert res.error.code == "no_certificate"


def test_d13_no_certs_anywhere(dcdt) -> None:
    _, res = _lookup(dcdt, f"d13@{_d(8)}")
    assert res.selected == [] and res.candidates == []
    assert res.error.code == "no_certificate"


def test_d14_large_cert_over_tcp(dcdt) -> None:
    resolver, res = _lookup(dcdt, f"d14@{_d(1)}")
    assert _selected(res) == [("D14_valA", "dns", "address")]
    assert len(res.selected[0].cert.public_bytes(serialization.Encoding.DER)) > 512
    assert resolver.dns.stats["tcp"] >= 1  # the UDP answer was truncated and retried over TCP


def test_d15_ldap_srv_priority(dcdt) -> None:
    _, res = _lookup(dcdt, f"d15@{_d(2)}")
    assert _selected(res) == [("D15_valC", "ldap", "address")]  # priority 0 server; D15_invE never seen
    assert [_cn(c) for c in res.candidates] == ["D15_valC"]


def test_d16_ldap_srv_weight(dcdt) -> None:
    for _ in range(5):  # weight 100 beats weight 0 every time, not by chance
        _, res = _lookup(dcdt, f"d16@{_d(5)}")
        assert _selected(res) == [("D16_valC", "ldap", "address")]


def test_d17_crl_revocation(dcdt) -> None:
    _, res = _lookup(dcdt, f"d17@{_d(9)}")
    assert _selected(res) == [("D17_valA", "dns", "address")]
    assert {(_cn(c), c.reason) for c in res.candidates} == {
        ("D17_invB", "revoked"),
        ("D17_invC", "revoked"),
        ("D17_valA", None),
    }
    assert dcdt.http.hits["/root.crl"] >= 1


def test_d18_aia_intermediate_issuer(dcdt) -> None:
    resolver, res = _lookup(dcdt, f"d18@{_d(10)}")
    assert _selected(res) == [("D18_valA", "dns", "address")]
    assert res.selected[0].trusted
    fetched = dcdt.http.hits["/intermediate1.cer"]
    assert fetched >= 1
    resolver.dns.clear()  # even with DNS asked again, the AIA certificate comes from the cache
    assert _selected(resolver.lookup(f"d18@{_d(10)}")) == [("D18_valA", "dns", "address")]
    assert dcdt.http.hits["/intermediate1.cer"] == fetched


def test_dcdt_records_are_pkix(dcdt) -> None:
    """The published records are what DCDT publishes: CERT type PKIX (1)."""
    resolver = dcdt.resolver()
    assert {rd.certificate_type for rd in resolver.dns.cert(f"d9.{_d(1)}").rdatas} == {CERT_PKIX}
