"""Finding the real services the tests run against, and refusing to skip them in CI.

A test that needs a real peer (BIND9, slapd, PostgreSQL, Chromium, Java, OpenSSL, PHP) calls :func:`need`.
On a developer machine a missing program skips the test with the install hint; under CI (``CI=true``) it
fails instead, because a green CI run that skipped the real-service tests proves nothing.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

#: Where Debian puts daemons that are not on a normal user's PATH.
_EXTRA_DIRS = ["/usr/sbin", "/sbin", "/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin"]


def which(program: str) -> str | None:
    found = shutil.which(program)
    if found:
        return found
    for directory in _EXTRA_DIRS:
        candidate = Path(directory) / program
        if candidate.exists() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def unavailable(reason: str) -> None:
    """Skip (developer machine) or fail (CI) because a real service cannot run."""
    if IN_CI:
        pytest.fail(f"real service unavailable in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def need(program: str, hint: str = "") -> str:
    """Path of ``program``; skip (or fail in CI) when it is not installed."""
    path = which(program)
    if path is None:
        unavailable(f"{program} is not installed{': ' + hint if hint else ''} (run `make setup`)")
    return path  # type: ignore[return-value]


def free_port(host: str = "127.0.0.1") -> int:
    """An unused TCP port on loopback (also free for UDP, which BIND needs)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = tcp.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port on loopback")


def wait_for_port(host: str, port: int, timeout: float = 30.0) -> None:
    """Block until something accepts TCP connections on host:port."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")
