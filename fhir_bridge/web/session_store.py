"""Server-side sessions: the browser holds only a random id; tokens and drafts stay in the sidecar.

Why not Flask's default cookie session: it is signed, not encrypted, so an access token (or a half-typed
Direct address) would travel in a cookie the user or an extension can read. SMART App Launch 2.x
(§Best practices) asks apps to keep tokens away from the browser when they can; a server-side store is the
simple way. The store is in-process (one sidecar process serves the pages; run extra workers with
``bbdirect worker``); sessions end after ``idle_minutes`` without a request and ``max_hours`` in total.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict


class ServerSession(CallbackDict, SessionMixin):
    def __init__(
        self, sid: str, initial: dict[str, Any] | None = None, *, new: bool = False, expired: bool = False
    ):
        def on_update(_: Any) -> None:
            self.modified = True

        super().__init__(initial or {}, on_update)
        self.sid = sid
        self.new = new
        #: True when the browser presented a session id that had timed out (the page says so).
        self.expired = expired
        self.modified = False


class _Entry:
    __slots__ = ("created", "data", "touched")

    def __init__(self, data: dict[str, Any]):
        self.data = data
        self.created = self.touched = time.monotonic()


class ServerSessionInterface(SessionInterface):
    """Keeps session data in memory keyed by an unguessable id; rotates the id at sign-in."""

    def __init__(self, idle_minutes: float = 15, max_hours: float = 8):
        self.idle = idle_minutes * 60
        self.max_age = max_hours * 3600
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def _fresh(self, entry: _Entry, now: float) -> bool:
        return now - entry.touched < self.idle and now - entry.created < self.max_age

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        sid = request.cookies.get(self.get_cookie_name(app), "")
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(sid)
            if entry is not None and self._fresh(entry, now):
                entry.touched = now
                return ServerSession(sid, dict(entry.data))
            expired = entry is not None
            if expired:
                del self._entries[sid]
        return ServerSession(secrets.token_urlsafe(32), new=True, expired=expired)

    def save_session(self, app: Flask, session: ServerSession, response: Response) -> None:  # type: ignore[override]
        name = self.get_cookie_name(app)
        cookie = {
            "domain": self.get_cookie_domain(app),
            "path": self.get_cookie_path(app),
            "secure": self.get_cookie_secure(app),
            "httponly": True,
            "samesite": self.get_cookie_samesite(app),
        }
        if not session:
            with self._lock:
                self._entries.pop(session.sid, None)
            if not session.new:
                response.delete_cookie(name, **cookie)
            return
        if session.modified or session.new:
            with self._lock:
                self._prune()
                entry = self._entries.get(session.sid)
                if entry is None:
                    self._entries[session.sid] = _Entry(dict(session))
                else:  # keep the creation time: the total limit counts from sign-in
                    entry.data = dict(session)
        # No Expires: a browser session cookie; the server enforces the idle and total limits.
        response.set_cookie(name, session.sid, **cookie)

    def rotate(self, session: ServerSession) -> None:
        """New id for the same data (call at sign-in: a pre-login id can never reach a signed-in session)."""
        with self._lock:
            self._entries.pop(session.sid, None)
        session.sid = secrets.token_urlsafe(32)
        session.modified = True

    def _prune(self) -> None:
        now = time.monotonic()
        for sid in [s for s, e in self._entries.items() if not self._fresh(e, now)]:
            del self._entries[sid]
