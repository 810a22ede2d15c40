"""``bbdirect ccda BUNDLE.json [-o OUT.xml] [--html OUT.html] [--validate] [--claims OUT.json]``.

Fixed contract: the C-CDA goes to stdout when there is no ``-o``; input that is not FHIR exits non-zero with
ONE line saying why (no traceback, no patient data).  ``--validate`` and ``--html`` import their modules only
when asked, so the command works without them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

EXIT_OK, EXIT_BAD_INPUT, EXIT_INVALID = 0, 2, 3


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    click.echo(f"error: {message.splitlines()[0] if message else 'failed'}", err=True)
    sys.exit(code)


@click.command()
@click.argument("bundle", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write the C-CDA here.")
@click.option(
    "--html",
    "html_out",
    type=click.Path(dir_okay=False, writable=True),
    help="Also write a patient-friendly HTML view of the same document.",
)
@click.option(
    "--validate",
    "do_validate",
    is_flag=True,
    help="Validate the result (CDA XSD + HL7 C-CDA R2.1 Schematron); exit 3 when it has errors.",
)
@click.option(
    "--claims",
    "claims_out",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the ExplanationOfBenefit claims (CARIN Blue Button Bundle) here, when there are any.",
)
def ccda(
    bundle: str, output: str | None, html_out: str | None, do_validate: bool, claims_out: str | None
) -> None:
    """Build a C-CDA R2.1 CCD from a FHIR R4 Bundle / NDJSON / resource list (``-`` reads stdin)."""
    from ccda_mapper import build
    from ccda_mapper.errors import CcdaMapperError

    try:
        data = sys.stdin.buffer.read() if bundle == "-" else Path(bundle).read_bytes()
    except OSError as exc:
        _fail(f"cannot read {bundle}: {exc.strerror or exc}")
    try:
        result = build(data)
    except CcdaMapperError as exc:
        _fail(f"{exc.code}: {exc.message}")
    except RecursionError:
        _fail("not_fhir: input nests too deeply")
    if output:
        Path(output).write_bytes(result.xml)
    else:
        sys.stdout.buffer.write(result.xml)
        sys.stdout.buffer.flush()
    for line in result.skipped:
        click.echo(f"skipped: {line}", err=True)
    if claims_out and result.claims_bundle is not None:
        Path(claims_out).write_text(json.dumps(result.claims_bundle, indent=1), encoding="utf-8")
    if html_out:
        from ccda_mapper.render import render_html

        Path(html_out).write_text(render_html(result.xml), encoding="utf-8")
    if do_validate:
        from ccda_mapper import validate

        report = validate(result.xml)
        click.echo(
            f"validation: {len(report.xsd_errors)} XSD errors, "
            f"{len(report.schematron_errors)} Schematron errors, "
            f"{len(report.schematron_warnings)} warnings",
            err=True,
        )
        for issue in report.errors[:20]:
            click.echo(f"  {issue}", err=True)
        if not report.ok:
            sys.exit(EXIT_INVALID)
