"""A real HTTP server on loopback that answers with a script of responses and records every request.

For the FHIR client's failure paths (429 + Retry-After, 5xx, slow answers, hostile next links) that a healthy
HAPI never produces. It is a real peer on a socket: the client's retry, timeout and header logic run as in
production. Once the script is used up it answers ``default``.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict -> JSON, bytes/str as is
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class ScriptedServer:
    def __init__(self) -> None:
        self.script: deque[Reply] = deque()
        self.default = Reply(404, {"resourceType": "OperationOutcome", "issue": [{"code": "not-found"}]})
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer._lock:
                    outer.seen.append(Seen(self.command, self.path, dict(self.headers), body))
                    reply = outer.script.popleft() if outer.script else outer.default
                if reply.delay:
                    time.sleep(reply.delay)
                payload = reply.body
                if isinstance(payload, dict):
                    payload = json.dumps(payload).encode()
                elif isinstance(payload, str):
                    payload = payload.encode()
                payload = payload or b""
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/fhir+json")
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True, name="scripted-http").start()

    def then(self, *replies: Reply) -> ScriptedServer:
        with self._lock:
            self.script.extend(replies)
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
