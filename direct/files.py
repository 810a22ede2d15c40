"""Writing secrets and health records to disk: owner-only, never through a symlink.

Why one module: private keys (``certgen``, ``bbdirect certs init``) and received health records (the inbox
of :func:`direct.agent.receiving_endpoint`, ``bbdirect unseal --extract``) are the two things this agent
writes that nobody else may read. Both go through :func:`write_private` / :func:`private_dir`, and the
attachment layout (XDM packages unpacked next to the zip) is written by one function,
:func:`save_attachments`, for the inbox and the CLI alike.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from direct.errors import MalformedMessage
from direct.message import Attachment, is_xdm, safe_filename, unpack_xdm


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) owner-only (0700); an existing directory is tightened to 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def write_private(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` with mode 0600, refusing a symlink at ``path`` (O_NOFOLLOW).

    An existing regular file is truncated and its mode reset to 0600 before the bytes go in, so a key never
    sits in a file others could read, even for an instant.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fd = -1
            fh.write(data)
    finally:
        if fd >= 0:
            os.close(fd)
    return path


def save_attachments(
    directory: Path,
    attachments: Iterable[Attachment],
    note: Callable[[str, str], None] = lambda _name, _code: None,
) -> list[Path]:
    """Write each attachment (safe file name, 0600) into ``directory`` (0700); an XDM package is also
    unpacked into ``<name>_xdm/``. A package that cannot be unpacked is kept as received and reported
    through ``note(file_name, error_code)`` (the message was already accepted; XDM-6 is about reading safely).
    File names can carry a patient's name: callers that log must log the code only."""
    private_dir(directory)
    written: list[Path] = []
    for att in attachments:
        name = safe_filename(att.filename)
        written.append(write_private(directory / name, att.data))
        if not is_xdm(att):
            continue
        try:
            docs = unpack_xdm(att.data)
        except MalformedMessage as exc:
            note(name, exc.code)
            continue
        sub = private_dir(directory / (name.rsplit(".", 1)[0] + "_xdm"))
        for doc in docs:
            written.append(write_private(sub / safe_filename(doc.filename), doc.data))
    return written
