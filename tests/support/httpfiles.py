"""A tiny HTTP file server on loopback for AIA certificates, CRLs, trust bundles and IPKIX URLs.

Tests put bytes at a path (``server.put("/ca.cer", der)``) and get a URL back. Paths can also be made slow
(``delay``), huge (``size``) or failing (``status``) to exercise the fetch limits against a real socket.

The server is on loopback, which the outbound fetch policy refuses by default (``direct.netpolicy``): tests
that fetch from it give their resolver, fetcher or trust store :data:`LOOPBACK` explicitly — the default is
never weakened for them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from direct.netpolicy import NetPolicy

#: The outbound fetch policy with loopback allow-listed (the test servers: HTTP, slapd, BIND).
LOOPBACK = NetPolicy.from_strings(["127.0.0.0/8", "::1/128"])


@dataclass
class _Entry:
    body: bytes = b""
    status: int = 200
    delay: float = 0.0
    size: int | None = None  # stream this many filler bytes instead of body


class HttpFiles:
    def __init__(self) -> None:
        self.entries: dict[str, _Entry] = {}
        self.hits: dict[str, int] = {}
        files = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                entry = files.entries.get(self.path)
                files.hits[self.path] = files.hits.get(self.path, 0) + 1
                if entry is None:
                    self.send_error(404)
                    return
                if entry.delay:
                    time.sleep(entry.delay)
                try:
                    self.send_response(entry.status)
                    if entry.size is not None:
                        self.end_headers()  # no Content-Length: the client must count
                        chunk = b"\0" * 65536
                        sent = 0
                        while sent < entry.size:
                            self.wfile.write(chunk)
                            sent += len(chunk)
                        return
                    self.send_header("Content-Length", str(len(entry.body)))
                    self.end_headers()
                    self.wfile.write(entry.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def put(self, path: str, body: bytes = b"", **kwargs) -> str:
        self.entries[path] = _Entry(body=body, **kwargs)
        return self.url(path)

    def remove(self, path: str) -> None:
        self.entries.pop(path, None)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
