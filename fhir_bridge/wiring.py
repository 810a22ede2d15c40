"""The real pieces behind the pipeline's ports: FHIR + ``ccda_mapper`` for documents, ``direct`` for sending.

Why lazy: the API must start (and answer ``/healthz``) even when the FHIR server is down or the Direct
identity files are not provisioned yet; the pieces (not the modules: those are imported up front) are built
on first use and a failure there becomes a job failure with its code (``fhir_unreachable``,
``bad_key_file``...) rather than a dead process.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import smtplib
import threading
import time
from collections.abc import Callable
from typing import Any

import dns.resolver

from ccda_mapper import document as ccda
from direct.agent import DirectAgent
from direct.discovery.config import DiscoveryConfig, parse_nameserver
from direct.discovery.resolver import CertificateResolver
from direct.errors import PermanentDeliveryError, TransientDeliveryError
from direct.message import XDM_SUBJECT, build_xdm, safe_filename
from direct.message import Attachment as MailAttachment
from direct.netpolicy import NetPolicy
from direct.smime.identity import Identity, load_certificate_files
from direct.transport import smtp_client
from direct.trust.bundles import TrustBundle, TrustStore
from direct.trust.fetch import HttpFetcher
from direct.trust.policy import TrustPolicy
from fhir_bridge.config import Settings
from fhir_bridge.consent import ownership
from fhir_bridge.errors import BridgeError
from fhir_bridge.fhir.auth import auth_from_settings
from fhir_bridge.fhir.client import FhirClient
from fhir_bridge.fhir.gather import gather_patient_record
from fhir_bridge.lazy import Lazy
from fhir_bridge.pipeline.ports import Attachment, AuthorizationView, Document, Prepared

CCD_FILENAME = "CCD.xml"

#: SMTP session reuse for bursts (``direct.transport.smtp_client.SmtpPool``); module constants, not settings
#: yet: idle sessions kept per server, how long one may sit idle, and transactions per session before QUIT.
SMTP_POOL_MAX_IDLE = 8
SMTP_POOL_IDLE_SECONDS = 10.0
SMTP_POOL_MAX_MESSAGES = 100


class DocumentUnavailable(BridgeError):
    """A chosen document cannot be sent (not this patient's, or empty): permanent, shown by its code."""

    code = "document_unavailable"
    transient = False

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message, code=code)


# --- FHIR -------------------------------------------------------------------------------------------
def fhir_client(settings: Settings) -> FhirClient:
    return FhirClient(settings.fhir_base_url, auth_from_settings(settings), timeout=settings.fhir_timeout)


class RecordBuilder:
    """DocumentBuilder: the patient's record as a C-CDA CCD, or the chosen documents as an XDM package."""

    def __init__(self, client_factory: Callable[[], FhirClient], sender_address: str):
        self._client = Lazy(client_factory)
        self.sender_address = sender_address

    @property
    def client(self) -> FhirClient:
        return self._client()

    def build(self, auth: AuthorizationView) -> Document:
        if auth.payload_type == "documents":
            return self._documents(auth)

        resources = gather_patient_record(self.client, auth.patient_id)
        xml = ccda.build_ccd(resources)
        return Document([Attachment(CCD_FILENAME, xml, "application/xml")], ccda.clinical_hash(xml))

    def _documents(self, auth: AuthorizationView) -> Document:
        """Chosen DocumentReferences packaged as XDM (IHE ITI-32) with their file list (METADATA.XML)."""
        files: list[MailAttachment] = []
        digest = hashlib.sha256()
        for number, doc in enumerate(auth.documents, 1):
            rtype, _, rid = doc["id"].partition("/")
            ref = self.client.read(rtype, rid)
            if not ownership.belongs_to(ref, auth.patient_id, self.client.base_url):
                # Fail closed: only a subject that is a literal reference to exactly this patient (re-read
                # now, since a document can be re-filed after the authorization was saved) is sent.
                raise DocumentUnavailable(
                    "A chosen document is not (or no longer) filed under this patient.",
                    ownership.NOT_PATIENTS,
                )
            for content in ref.get("content", []):
                att = content.get("attachment", {})
                data = self._attachment_bytes(att)
                name = safe_filename(att.get("title") or doc.get("title") or f"document-{number}")
                ctype = att.get("contentType") or "application/octet-stream"
                files.append(MailAttachment(name, ctype.split(";")[0].strip(), data))
                digest.update(hashlib.sha256(data).digest())
        zipped = build_xdm(files, self.sender_address, auth.address)
        return Document([Attachment("XDM.zip", zipped, "application/zip")], digest.hexdigest())

    def _attachment_bytes(self, att: dict[str, Any]) -> bytes:
        if "data" in att:
            return base64.b64decode(att["data"])
        url = att.get("url", "")
        if url.startswith("Binary/"):
            binary = self.client.read("Binary", url.split("/", 1)[1])
            return base64.b64decode(binary.get("data", ""))
        raise DocumentUnavailable("A chosen document has no content to send (no data, no Binary).")


class FhirResourceWriter:
    """FhirWriter: create or update Consent / AuditEvent where the server's CapabilityStatement allows it."""

    def __init__(self, client_factory: Callable[[], FhirClient]):
        self._factory = client_factory
        self._client: FhirClient | None = None

    def write(self, resource: dict[str, Any]) -> str | None:
        if self._client is None:
            self._client = self._factory()
        client = self._client
        rtype = resource["resourceType"]
        caps = client.capabilities()
        if resource.get("id"):
            if not caps.can(rtype, "update"):
                return None
            return _id_of(client.update(resource))
        if not caps.can(rtype, "create"):
            return None
        return _id_of(client.create(resource))


def _id_of(resource: dict[str, Any]) -> str | None:
    rid = resource.get("id")
    return rid if isinstance(rid, str) else None


# --- Direct -----------------------------------------------------------------------------------------
def discovery_resolver(settings: Settings) -> CertificateResolver:
    anchors = load_certificate_files([p for p in settings.direct_trust_anchors if _exists(p)])
    nameservers = [settings.direct_dns_server] if settings.direct_dns_server else []
    policy = net_policy(settings)
    store = (
        RefreshingBundles(
            settings.direct_trust_bundles,
            signing_certs=load_certificate_files([settings.direct_trust_bundle_signing_cert])
            if settings.direct_trust_bundle_signing_cert
            else (),
            allow_http=settings.direct_trust_bundles_allow_http,
            policy=policy,
        )
        if settings.direct_trust_bundles
        else None
    )
    return CertificateResolver(
        DiscoveryConfig.from_strings(nameservers, anchors=anchors, trust_store=store, net_policy=policy)
    )


def net_policy(settings: Settings) -> NetPolicy:
    """The outbound fetch policy of ``direct.allow_networks`` / ``direct.lookup_deadline`` (the environment
    variable BBDIRECT_DIRECT_ALLOW_NETWORKS is already in the settings)."""
    return NetPolicy.from_strings(
        settings.direct_allow_networks, lookup_deadline=settings.direct_lookup_deadline
    )


class RefreshingBundles:
    """Trust bundles (``direct.trust_bundles``) refreshed on use, at most once a minute (each bundle on its
    own interval; a failed refresh keeps the last good anchors — ``direct.trust.bundles.TrustStore``).
    With ``signing_certs`` every bundle must be signed by one of them (``direct.trust_bundle_signing_cert``);
    ``http://`` URLs only with ``allow_http``; fetched under the outbound fetch policy ``policy``."""

    def __init__(
        self,
        urls: list[str],
        check_every: float = 60.0,
        *,
        signing_certs: Any = (),
        allow_http: bool = False,
        policy: Any = None,
    ):
        signers = tuple(signing_certs) or None
        self.store = TrustStore(
            bundles=[TrustBundle(f"bundle{i}", url, signing_cert=signers) for i, url in enumerate(urls, 1)],
            fetcher=HttpFetcher(timeout=10, deadline=30, max_bytes=20_000_000, policy=policy),
            allow_http=allow_http,
        )
        self._clock = time.monotonic
        self._check_every = check_every
        self._last = -check_every
        self._lock = threading.Lock()

    def anchors_for(self, local_domain: str | None = None, direction: str | None = None) -> list[Any]:
        with self._lock:
            if self._clock() - self._last >= self._check_every:
                self._last = self._clock()
                self.store.refresh_due()
        # direction: "inbound"/"outbound" from our callers; the store declares it as its Direction Literal
        return self.store.anchors_for(local_domain, direction)  # type: ignore[arg-type]  # see above


def _exists(path: str) -> bool:
    return os.path.exists(path)


class DiscoveryChecker:
    """AddressChecker: certificate discovery under the authorization's trust policy (DCDT algorithm)."""

    def __init__(self, resolver_factory: Callable[[], CertificateResolver]):
        self._resolver = functools.cache(resolver_factory)

    def check(self, address: str, policy: str) -> bool | None:
        result = self._resolver().lookup(address, TrustPolicy(policy))
        result.raise_for_error()
        return result.trusted


def load_identity(settings: Settings) -> Identity:
    """Our signing/decryption identity from ``direct.identity_cert`` / ``identity_key`` (+ chain)."""
    identity = Identity.load(settings.direct_identity_cert, settings.direct_identity_key)
    if settings.direct_identity_chain:
        identity.chain.extend(load_certificate_files(settings.direct_identity_chain))
    return identity


class DirectSender:
    """Sender: discover + trust-check the recipient's certificates, build, sign and encrypt; SMTP delivery.

    ``prepare`` and ``deliver`` are separate so the pipeline stores the sealed bytes in between: a retry
    re-sends the identical message with the same Message-ID (Direct Applicability Statement §4: one message,
    one MDN; recipients de-duplicate on Message-ID).
    """

    def __init__(
        self,
        settings: Settings,
        resolver_factory: Callable[[], CertificateResolver],
        identity_factory: Callable[[], Identity] | None = None,
    ):
        self.settings = settings
        self._resolver = functools.cache(resolver_factory)
        self._identity = functools.cache(identity_factory or (lambda: load_identity(settings)))
        self._smtp_pool: smtp_client.SmtpPool | None = None
        self._smtp_target: smtp_client.SmtpTarget | None = None
        self._agent: DirectAgent | None = None
        self._pool_lock = threading.Lock()

    def identity(self) -> Identity:
        """Our signing/decryption identity (loaded once)."""
        return self._identity()

    @property
    def agent(self) -> DirectAgent:
        """The one Direct agent of the sidecar (built once): it seals what the pipeline sends and reads the
        delivery notices that come back (``fhir_bridge.inbound`` uses this same agent), so one policy — the
        signer bound to the From address, the recipient's certificates from discovery under the
        authorization's trust policy, the notice rules — applies to both directions."""
        with self._pool_lock:
            if self._agent is None:
                s = self.settings
                anchors = load_certificate_files([p for p in s.direct_trust_anchors if _exists(p)])
                self._agent = DirectAgent(
                    [self._identity()], anchors, self._resolver(), dsn_relays=s.direct_dsn_relays
                )
            return self._agent

    def prepare(self, auth: AuthorizationView, document: Document) -> Prepared:
        """Discovery, build and seal through the agent (``DirectAgent.prepare``); the pipeline stores the
        sealed bytes before ``deliver`` so a retry re-sends them unchanged."""
        # ETT DTS 124: an XDM package is announced in the Subject.
        subject = XDM_SUBJECT if auth.payload_type == "documents" else self.settings.direct_subject
        prepared = self.agent.prepare(
            self.settings.direct_from_address,
            [auth.address],
            subject,
            document.text,
            [MailAttachment(a.filename, a.media_type, a.content) for a in document.attachments],
            policy=TrustPolicy(auth.trust_policy),
        )
        return Prepared(
            message_id=prepared.message_id,
            mail_from=prepared.mail_from,
            rcpt_to=list(prepared.recipients),
            raw=prepared.raw,
            signed=True,
            encrypted=True,
            trusted=prepared.trusted,
        )

    def deliver(self, prepared: Prepared) -> None:
        smtp_client.deliver(
            prepared.raw, prepared.mail_from, prepared.rcpt_to, self.smtp_target(), pool=self.smtp_pool()
        )

    def smtp_target(self) -> smtp_client.SmtpTarget:
        """Where messages go, from the settings (built once: a resolver per message cost as much as a
        pooled SMTP transaction)."""
        with self._pool_lock:
            if self._smtp_target is None:
                s = self.settings
                self._smtp_target = smtp_client.SmtpTarget(
                    host=s.direct_smtp_host or None,
                    port=s.direct_smtp_port,
                    starttls="require" if s.direct_smtp_starttls else "opportunistic",
                    resolver=_dns_resolver(s.direct_dns_server) if s.direct_dns_server else None,
                )
            return self._smtp_target

    def smtp_pool(self) -> smtp_client.SmtpPool:
        """The SMTP sessions this sender reuses across messages (one connection per server for a burst)."""
        with self._pool_lock:
            if self._smtp_pool is None:
                self._smtp_pool = smtp_client.SmtpPool(
                    max_idle=SMTP_POOL_MAX_IDLE,
                    idle_seconds=SMTP_POOL_IDLE_SECONDS,
                    max_messages=SMTP_POOL_MAX_MESSAGES,
                )
            return self._smtp_pool


def _dns_resolver(server: str) -> dns.resolver.Resolver:
    """A resolver asking only ``host[:port]`` (MX lookups in the same DNS as certificate discovery)."""
    host, port = parse_nameserver(server)
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = port
    return resolver


def _smtplib_deliver(settings: Settings, prepared: Prepared) -> None:
    """Plain smart-host delivery (tests of the queue only): 4xx/5xx mapped to the Direct delivery errors."""
    try:
        with smtplib.SMTP(
            settings.direct_smtp_host or "localhost", settings.direct_smtp_port, timeout=60
        ) as smtp:
            refused = smtp.sendmail(prepared.mail_from, prepared.rcpt_to, prepared.raw)
    except smtplib.SMTPResponseException as exc:
        said = exc.smtp_error
        text = f"{exc.smtp_code} {said.decode(errors='replace') if isinstance(said, bytes) else said}"
        cls = TransientDeliveryError if 400 <= exc.smtp_code < 500 else PermanentDeliveryError
        raise cls(detail=text) from None
    except smtplib.SMTPRecipientsRefused as exc:
        code, msg = next(iter(exc.recipients.values()))
        cls = TransientDeliveryError if 400 <= code < 500 else PermanentDeliveryError
        raise cls(detail=f"{code} {msg.decode(errors='replace')}") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise TransientDeliveryError(detail=type(exc).__name__) from None
    if refused:
        code, msg = next(iter(refused.values()))
        raise PermanentDeliveryError(detail=f"{code} {msg.decode(errors='replace')}")
