"""Browser security for the pages: CSRF tokens, a strict Content-Security-Policy, no caching of PHI.

Why a small token check and not a framework: every form here is a POST rendered by our own templates, so a
per-session secret compared in constant time is the whole of the synchronizer-token pattern (OWASP CSRF
Prevention Cheat Sheet); SameSite cookies add a second layer.
"""

from __future__ import annotations

import secrets

from flask import Response, abort, request, session

#: No inline script or style anywhere; scripts and styles only from our own /static.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-src 'self'; base-uri 'none'; frame-ancestors {ancestors}"
)
#: The rendered C-CDA preview: its own document in an ``<iframe sandbox="allow-same-origin">`` (no scripts,
#: no forms, no navigation of the page); the renderer's inline styles are allowed there only and nothing
#: can run (no script-src). Same-origin on purpose: an opaque-origin frame is put in another process, and
#: headless Chromium then loses clicks on the page around it.
PREVIEW_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Reject a state-changing request whose form token does not match the session's."""
    if request.method in {"GET", "HEAD", "OPTIONS"}:
        return
    sent = request.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    if not expected or not secrets.compare_digest(str(sent), str(expected)):
        abort(400, description="csrf")


def secure_headers(response: Response, frame_ancestors: list[str], *, preview: bool = False) -> Response:
    ancestors = " ".join(["'self'", *frame_ancestors])
    response.headers["Content-Security-Policy"] = PREVIEW_CSP if preview else CSP.format(ancestors=ancestors)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    return response
