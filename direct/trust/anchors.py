"""Trust anchors from files: PEM (one or many), DER, or PKCS#7 bundles on disk."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from cryptography import x509

from direct.certs import load_certificates


class AnchorFileError(ValueError):
    """A trust anchor file could not be read (a configuration error, not a Direct failure)."""

    code = "bad_anchor_file"


def load_anchor_file(path: str | Path) -> list[x509.Certificate]:
    """Every certificate in ``path``; raises :class:`AnchorFileError` with the file name (no contents)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise AnchorFileError(f"cannot read trust anchor file {p.name}") from exc
    try:
        certs = load_certificates(data)
    except ValueError as exc:
        raise AnchorFileError(f"{p.name} holds no certificate (PEM, DER or PKCS#7 expected)") from exc
    if not certs:
        raise AnchorFileError(f"{p.name} holds no certificate")
    return certs


def load_anchor_files(paths: Iterable[str | Path]) -> list[x509.Certificate]:
    out: list[x509.Certificate] = []
    for path in paths:
        out.extend(load_anchor_file(path))
    return out
