"""The sidecar as an administrator runs it next to OpenEMR: ``bbdirect serve -c bbdirect.toml``, a real process.

Its configuration is written the way docs/sidecar.md ("OpenEMR as the FHIR source") tells an administrator to
write it; a restart (after the module registered the SMART clients, whose ids go into ``[web]``) is a real
stop and start of the process with the same database, ports and keys.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from tests.support.recipients import toml_text

ROOT = Path(__file__).resolve().parents[2]


class SidecarProcess:
    """``bbdirect serve`` in its own working directory (where it keeps ``var/``), logging to ``serve.log``."""

    def __init__(self, workdir: Path, config: dict[str, dict[str, Any]]):
        self.workdir = workdir
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "serve.log"

    @property
    def url(self) -> str:
        return self.config["server"]["public_url"]

    def write_config(self) -> Path:
        path = self.workdir / "bbdirect.toml"
        path.write_text(toml_text(self.config))
        path.chmod(0o600)
        return path

    def start(self, timeout: float = 90.0) -> SidecarProcess:
        config = self.write_config()
        env = {k: v for k, v in os.environ.items() if not k.startswith("BBDIRECT_")}
        bbdirect = Path(sys.executable).with_name("bbdirect")
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(bbdirect), "serve", "-c", str(config)],
            cwd=self.workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"bbdirect serve did not start:\n{self.log_tail()}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def restart(self) -> SidecarProcess:
        self.stop()
        return self.start()

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        key = self.config["server"]["api_keys"][0].split(":", 1)[1]  # "name:key"
        headers = {"Authorization": f"Bearer {key}", **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.url}{path}", headers=headers, timeout=60, **kwargs)

    def authorize(self, patient_id: str, address: str, *, send_now: bool) -> str:
        """An *always* authorization made through the REST API as the module makes it (a clinician's, in
        person); returns its id."""
        created = self.api(
            "POST",
            "/api/v1/authorizations",
            json={
                "patient_id": patient_id,
                "address": address,
                "kind": "always",
                "created_by": {"type": "clinician", "id": "admin"},
                "consent_method": "in_person",
                "attestation": "Test: the patient asked in person for their record to go to this address.",
                "payload": {"type": "entire_record"},
                "send_now": send_now,
            },
        )
        assert created.status_code == 201, created.text
        return created.json()["authorization"]["id"]
