"""Server-side sessions: the browser holds only a random id; tokens and drafts stay in the sidecar.

Why not Flask's default cookie session: it is signed, not encrypted, so an access token (or a half-typed
Direct address) would travel in a cookie the user or an extension can read. SMART App Launch 2.x
(§Best practices) asks apps to keep tokens away from the browser when they can; a server-side store is the
simple way. Where the data lives is a :mod:`session_backends` backend: the sidecar's database (encrypted per
session, shared by every process serving the pages) or this process's memory; sessions end after
``idle_minutes`` without a request and ``max_hours`` in total, whichever backend holds them.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from fhir_bridge.web.session_backends import MemoryBackend, SessionBackend, StoredSession


class ServerSession(CallbackDict, SessionMixin):
    def __init__(
        self,
        sid: str,
        initial: dict[str, Any] | None = None,
        *,
        new: bool = False,
        expired: bool = False,
        created: float | None = None,
    ):
        def on_update(_: Any) -> None:
            self.modified = True

        super().__init__(initial or {}, on_update)
        self.sid = sid
        self.new = new
        #: True when the browser presented a session id that had timed out (the page says so).
        self.expired = expired
        #: Wall-clock start of the session (the total limit counts from here).
        self.created = time.time() if created is None else created
        self.modified = False


class ServerSessionInterface(SessionInterface):
    """Keeps session data server-side keyed by an unguessable id; rotates the id at sign-in."""

    #: Prune expired sessions at most this often (seconds): a delete per request would be wasteful.
    PRUNE_EVERY = 60.0
    #: Record activity at most this often (seconds): the status page polls, and a write per poll buys
    #: nothing against a 15-minute idle limit.
    TOUCH_EVERY = 30.0
    #: ``touched`` of an ended session's marker (the epoch: older than any idle limit).
    ENDED = 0.0

    def __init__(self, idle_minutes: float = 15, max_hours: float = 8, backend: SessionBackend | None = None):
        self.idle = idle_minutes * 60
        self.max_age = max_hours * 3600
        self.backend: SessionBackend = backend or MemoryBackend()
        self._pruned = 0.0

    def _fresh(self, item: StoredSession, now: float) -> bool:
        return now - item.touched < self.idle and now - item.created < self.max_age

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        sid = request.cookies.get(self.get_cookie_name(app), "")
        now = time.time()
        item = self.backend.load(sid) if sid else None
        if item is not None and self._fresh(item, now):
            if now - item.touched >= self.TOUCH_EVERY:
                self.backend.touch(sid, now)
            return ServerSession(sid, item.data, created=item.created)
        expired = item is not None
        if item is not None and (item.data or item.touched != self.ENDED):
            # Keep a data-less marker instead of deleting: several requests may carry the ended id (a page
            # and its background poll), and each of them must learn the session ended, not just the first.
            # touched = ENDED can never be fresh again; pruning removes the marker like any old session.
            self.backend.save(sid, StoredSession({}, item.created, self.ENDED))
        return ServerSession(secrets.token_urlsafe(32), new=True, expired=expired)

    def save_session(self, app: Flask, session: ServerSession, response: Response) -> None:  # type: ignore[override]  # narrower session type
        name = self.get_cookie_name(app)
        domain, path = self.get_cookie_domain(app), self.get_cookie_path(app)
        secure, samesite = self.get_cookie_secure(app), self.get_cookie_samesite(app)
        if not session:
            if not session.new:
                self.backend.delete(session.sid)
                response.delete_cookie(
                    name, path=path, domain=domain, secure=secure, httponly=True, samesite=samesite
                )
            return
        if session.modified or session.new:
            now = time.time()
            self._prune(now)
            # Keep the creation time: the total limit counts from sign-in.
            self.backend.save(session.sid, StoredSession(dict(session), session.created, now))
        # No Expires: a browser session cookie; the server enforces the idle and total limits.
        response.set_cookie(
            name, session.sid, path=path, domain=domain, secure=secure, httponly=True, samesite=samesite
        )

    def rotate(self, session: ServerSession) -> None:
        """New id for the same data (call at sign-in: a pre-login id can never reach a signed-in session)."""
        self.backend.delete(session.sid)
        session.sid = secrets.token_urlsafe(32)
        session.created = time.time()
        session.modified = True

    def _prune(self, now: float) -> None:
        if now - self._pruned >= self.PRUNE_EVERY:
            self._pruned = now
            self.backend.prune(now - self.idle, now - self.max_age)
