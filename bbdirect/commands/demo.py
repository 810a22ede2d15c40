"""``bbdirect demo``: one whole Direct transmission on this machine, with nothing to configure.

It is the README's first command, so it must work on a fresh machine with no certificates, no DNS, no
FHIR server and no mail server: it makes a demo PKI, builds a C-CDA from a bundled synthetic patient,
validates it, then seals (sign + encrypt) and delivers it over real SMTP to an embedded recipient HISP on
loopback, which unseals it, stores the document in its inbox and answers with signed + encrypted MDNs
(processed, then dispatched) to our own receiving endpoint, where the delivery tracker records them.
Every step is the product's real code; only the network is local.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import click

from direct import certgen
from direct.agent import DirectAgent, receiving_endpoint
from direct.errors import DirectError
from direct.mdn import DeliveryState, DeliveryTracker
from direct.message import Attachment
from direct.smime import Identity
from direct.transport import SmtpTarget

SENDER = "records@sender.direct.test"
RECIPIENT = "inbox@recipient.direct.test"
SAMPLE = "synthea24_clemente_kreiger_small.json"
#: The data holder named in the C-CDA header (a FHIR Organization, as ccda_mapper expects).
CUSTODIAN = {
    "resourceType": "Organization",
    "id": "bbdirect-demo-clinic",
    "name": "Blue Button Direct Demo Clinic",
}


@dataclass
class DemoReport:
    """What the demo did, step by step (printed, or emitted as JSON with ``--json``)."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    ok: bool = False
    document: str | None = None

    def add(self, name: str, **facts: Any) -> None:
        self.steps.append({"step": name, **facts})


def _say(quiet: bool, number: int, total: int, text: str) -> None:
    if not quiet:
        click.echo(f"[{number}/{total}] {text}")


def _load_patient(path: Path | None) -> tuple[dict[str, Any], str]:
    if path is None:
        source = resources.files("bbdirect.samples").joinpath(SAMPLE)
        return json.loads(source.read_text(encoding="utf-8")), f"bundled sample {SAMPLE}"
    return json.loads(path.read_text(encoding="utf-8")), str(path)


def _patient_name(bundle: dict[str, Any]) -> str:
    for entry in bundle.get("entry", []):
        resource = entry.get("resource", {})
        if resource.get("resourceType") == "Patient":
            name = (resource.get("name") or [{}])[0]
            return " ".join([*name.get("given", []), name.get("family", "")]).strip() or "(unnamed)"
    return "(no Patient resource)"


def run_demo(
    workdir: Path,
    patient: Path | None = None,
    *,
    validate: bool = True,
    quiet: bool = False,
    timeout: float = 30.0,
) -> DemoReport:
    """Run the whole transmission; return the report (``ok`` False with the failing step on error)."""
    report = DemoReport()
    total = 6
    workdir.mkdir(parents=True, exist_ok=True)

    # 1. A demo PKI: one CA, our sender identity and the recipient's, each address-bound (rfc822Name SAN).
    ca = certgen.make_ca("Blue Button Direct Demo CA")
    sender_issued = certgen.make_leaf(ca, address=SENDER)
    recipient_issued = certgen.make_leaf(ca, address=RECIPIENT)
    pki = workdir / "pki"
    certgen.Issued(ca.cert, ca.key).write(pki, "demo-ca")
    sender_issued.write(pki, "sender")
    recipient_issued.write(pki, "recipient")
    _say(quiet, 1, total, f"Certificates: demo CA, sender {SENDER}, recipient {RECIPIENT} (in {pki})")
    report.add("certificates", directory=str(pki), sender=SENDER, recipient=RECIPIENT)

    # 2. The patient's record.
    try:
        bundle, origin = _load_patient(patient)
    except (OSError, ValueError) as exc:
        report.add("error", code="bad_patient_file", message=f"cannot read the patient bundle: {exc}")
        if not quiet:
            click.echo(f"FAILED: cannot read the patient bundle: {exc}", err=True)
        return report
    _say(
        quiet,
        2,
        total,
        f"Patient: {_patient_name(bundle)}, {len(bundle.get('entry', []))} resources ({origin})",
    )
    report.add("patient", source=origin, resources=len(bundle.get("entry", [])))

    # 3. The C-CDA R2.1 CCD, and what the HL7 schema and Schematron say about it.
    from ccda_mapper import CcdaMapperError, build

    try:
        built = build(bundle, custodian=CUSTODIAN)
    except CcdaMapperError as exc:
        report.add("error", code="not_fhir", message=str(exc))
        if not quiet:
            click.echo(f"FAILED: {exc}", err=True)
        return report
    facts: dict[str, Any] = {"bytes": len(built.xml), "skipped": len(built.skipped)}
    line = f"C-CDA R2.1 CCD built: {len(built.xml) // 1024} KB"
    if validate:
        from ccda_mapper import validate as validate_ccd

        checked = validate_ccd(built.xml)
        facts.update(
            xsd_errors=len(checked.xsd_errors),
            schematron_errors=len(checked.schematron_errors),
            warnings=len(checked.schematron_warnings),
        )
        line += f"; {checked.summary()}"
    _say(quiet, 3, total, line)
    report.add("ccda", **facts)

    # 4. Both ends on loopback: the recipient's HISP, and our own endpoint where MDNs come back.
    anchors = [ca.cert]
    tracker = DeliveryTracker(
        processed_timeout=dt.timedelta(seconds=timeout), dispatched_timeout=dt.timedelta(seconds=timeout)
    )
    sender_agent = DirectAgent([Identity.from_issued(sender_issued)], anchors, tracker=tracker)
    our_endpoint = receiving_endpoint("127.0.0.1", 0, sender_agent, workdir / "sender-inbox").start()
    recipient_agent = DirectAgent(
        [Identity.from_issued(recipient_issued)],
        anchors,
        transport=SmtpTarget("127.0.0.1", our_endpoint.port, starttls="off", timeout=10),
    )
    inbox = workdir / "inbox"
    hisp = receiving_endpoint("127.0.0.1", 0, recipient_agent, inbox).start()
    sender_agent.transport = SmtpTarget("127.0.0.1", hisp.port, starttls="off", timeout=10)
    _say(
        quiet,
        4,
        total,
        f"Recipient HISP on 127.0.0.1:{hisp.port}; our MDN endpoint on 127.0.0.1:{our_endpoint.port}",
    )
    report.add("endpoints", hisp_port=hisp.port, mdn_port=our_endpoint.port)

    try:
        # 5. Seal and send: wrapped RFC 5322 message, SHA-256 signature, AES-256-CBC, SMTP.
        receipt = sender_agent.send(
            SENDER,
            [RECIPIENT],
            "Health information",
            "This message was sent by Blue Button Direct Demo Clinic at the request of the patient.",
            [Attachment("CCD.xml", "application/xml", built.xml)],
            recipient_certs=[recipient_issued.cert],
        )
        reply = receipt.delivery.reply if receipt.delivery else ""
        _say(
            quiet,
            5,
            total,
            f"Sent {receipt.message_id}: signed (SHA-256), encrypted "
            f"({sender_agent.options.cipher}), {receipt.size // 1024} KB; server: {reply}",
        )
        report.add("sent", message_id=receipt.message_id, size=receipt.size)

        # 6. Wait for the MDNs: processed, then dispatched (Delivery Notification IG).
        deadline = time.monotonic() + timeout
        state = DeliveryState.SENT
        while time.monotonic() < deadline:
            tracked = tracker.get(receipt.message_id)
            if tracked is not None:
                state = tracked.recipients[RECIPIENT].state
                if tracked.done:
                    break
            time.sleep(0.05)
        _say(
            quiet,
            6,
            total,
            f"Delivery state: {state.value}"
            + (
                " (processed and dispatched MDNs received and verified)"
                if state == DeliveryState.DISPATCHED
                else ""
            ),
        )
        report.add("delivery", state=state.value)
    except DirectError as exc:
        report.add("error", code=exc.code, message=exc.message)
        if not quiet:
            click.echo(f"FAILED: {exc.code}: {exc.message}", err=True)
        return report
    finally:
        hisp.stop()
        our_endpoint.stop()

    folders = sorted(p for p in inbox.iterdir() if p.is_dir()) if inbox.exists() else []
    if folders:
        document = folders[-1] / "CCD.xml"
        unsealed = json.loads((folders[-1] / "message.json").read_text())
        report.document = str(document)
        report.add(
            "received",
            document=str(document),
            signature=unsealed.get("signature"),
            signer_trusted=(unsealed.get("signer") or {}).get("trusted"),
        )
        same = document.exists() and document.read_bytes() == built.xml
        report.ok = state == DeliveryState.DISPATCHED and same and unsealed.get("signature") == "valid"
        if not quiet:
            click.echo(
                f"Received document: {document} (decrypted; signature {unsealed.get('signature')}, "
                f"signer trusted: {(unsealed.get('signer') or {}).get('trusted')}; "
                f"identical to what was sent: {same})"
            )
    return report


@click.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-out"),
    show_default=True,
    help="Where the demo PKI and the recipient's inbox are written.",
)
@click.option(
    "--patient",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A FHIR Bundle to send instead of the bundled synthetic patient.",
)
@click.option("--no-validate", is_flag=True, help="Skip the XSD + Schematron check of the C-CDA.")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds to wait for the MDNs.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report instead of the steps.")
def demo(workdir: Path, patient: Path | None, no_validate: bool, timeout: float, as_json: bool) -> None:
    """Send a synthetic patient's record as a Direct message, end to end, on this machine."""
    report = run_demo(workdir, patient, validate=not no_validate, quiet=as_json, timeout=timeout)
    if as_json:
        click.echo(
            json.dumps({"ok": report.ok, "document": report.document, "steps": report.steps}, indent=2)
        )
    elif report.ok:
        click.echo("Demo complete: the record was delivered, decrypted, verified and acknowledged.")
    raise SystemExit(0 if report.ok else 1)
