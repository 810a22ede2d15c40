"""Where server-side sessions live: in this process (memory) or in the sidecar's database (several processes).

Why a database backend: behind a load balancer, or with gunicorn's several workers, the next request of a
browser may reach another process; an in-memory store would sign the person out at random. The sidecar
already has a database every process shares, so sessions go there.

Why encrypted with a key derived from the session id: the rows hold SMART access tokens and half-typed
Direct addresses. Each row is keyed by SHA-256 of the cookie's random id and sealed with AES-256-GCM under a
key derived (HKDF-SHA256) from that same id, so a copy of the database alone neither reveals a token nor lets
anyone present a valid cookie; no shared secret has to be configured or rotated. Losing the table only signs
people out (sessions are short-lived by design: ``session_idle_minutes``).

Why its own table, created by this module, and not an Alembic migration: the table belongs to the web pages,
holds nothing that must survive an upgrade, and is safe to drop at any time; keeping it out of the core
schema's migration chain avoids competing heads with the pipeline's migrations.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Column, Float, LargeBinary, MetaData, String, Table, delete, select, update
from sqlalchemy.engine import Engine


@dataclass
class StoredSession:
    data: dict[str, Any]
    #: Wall-clock seconds (time.time()): every process must agree on them, unlike a monotonic clock.
    created: float
    touched: float


class SessionBackend(Protocol):
    """Storage of session data by session id; the interface enforces the time limits."""

    def load(self, sid: str) -> StoredSession | None: ...

    def save(self, sid: str, item: StoredSession) -> None: ...

    def touch(self, sid: str, when: float) -> None: ...

    def delete(self, sid: str) -> None: ...

    def prune(self, idle_before: float, created_before: float) -> None: ...


class MemoryBackend:
    """One process only (the default without a database, and in unit tests)."""

    def __init__(self) -> None:
        self._items: dict[str, StoredSession] = {}
        self._lock = threading.Lock()

    def load(self, sid: str) -> StoredSession | None:
        with self._lock:
            item = self._items.get(sid)
            return StoredSession(dict(item.data), item.created, item.touched) if item else None

    def save(self, sid: str, item: StoredSession) -> None:
        with self._lock:
            self._items[sid] = StoredSession(dict(item.data), item.created, item.touched)

    def touch(self, sid: str, when: float) -> None:
        with self._lock:
            if sid in self._items:
                self._items[sid].touched = when

    def delete(self, sid: str) -> None:
        with self._lock:
            self._items.pop(sid, None)

    def prune(self, idle_before: float, created_before: float) -> None:
        with self._lock:
            for sid in [
                s for s, i in self._items.items() if i.touched < idle_before or i.created < created_before
            ]:
                del self._items[sid]


_META = MetaData()
WEB_SESSIONS = Table(
    "web_sessions",
    _META,
    Column("key", String(64), primary_key=True),  # hex SHA-256 of the session id, never the id itself
    Column("sealed", LargeBinary, nullable=False),  # 12-byte nonce + AES-256-GCM ciphertext of the JSON data
    Column("created", Float, nullable=False),
    Column("touched", Float, nullable=False, index=True),
)


def _row_key(sid: str) -> str:
    return hashlib.sha256(b"bbdirect-web-session-row:" + sid.encode()).hexdigest()


def _aead(sid: str) -> AESGCM:
    key = HKDF(hashes.SHA256(), 32, salt=None, info=b"bbdirect-web-session-data").derive(sid.encode())
    return AESGCM(key)


def seal(sid: str, data: dict[str, Any]) -> bytes:
    nonce = os.urandom(12)
    row = _row_key(sid).encode()  # bound as associated data: a row cannot be moved under another key
    return nonce + _aead(sid).encrypt(nonce, json.dumps(data, separators=(",", ":")).encode(), row)


def unseal(sid: str, sealed: bytes) -> dict[str, Any] | None:
    try:
        plain = _aead(sid).decrypt(sealed[:12], sealed[12:], _row_key(sid).encode())
        data = json.loads(plain)
    except (InvalidTag, ValueError):
        return None
    return data if isinstance(data, dict) else None


class SqlBackend:
    """Sessions in the sidecar's database, shared by every process that serves the pages."""

    def __init__(self, engine: Engine):
        self.engine = engine
        _META.create_all(engine, checkfirst=True)

    def load(self, sid: str) -> StoredSession | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(WEB_SESSIONS.c.sealed, WEB_SESSIONS.c.created, WEB_SESSIONS.c.touched).where(
                    WEB_SESSIONS.c.key == _row_key(sid)
                )
            ).first()
        if row is None:
            return None
        data = unseal(sid, row.sealed)
        return None if data is None else StoredSession(data, row.created, row.touched)

    def save(self, sid: str, item: StoredSession) -> None:
        key = _row_key(sid)
        values = {"sealed": seal(sid, item.data), "created": item.created, "touched": item.touched}
        with self.engine.begin() as conn:
            if conn.execute(update(WEB_SESSIONS).where(WEB_SESSIONS.c.key == key).values(**values)).rowcount:
                return
            conn.execute(WEB_SESSIONS.insert().values(key=key, **values))

    def touch(self, sid: str, when: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(WEB_SESSIONS).where(WEB_SESSIONS.c.key == _row_key(sid)).values(touched=when))

    def delete(self, sid: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(WEB_SESSIONS).where(WEB_SESSIONS.c.key == _row_key(sid)))

    def prune(self, idle_before: float, created_before: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(WEB_SESSIONS).where(
                    (WEB_SESSIONS.c.touched < idle_before) | (WEB_SESSIONS.c.created < created_before)
                )
            )
