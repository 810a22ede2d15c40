"""Server-side web sessions in the sidecar's database: shared by several processes, unreadable at rest.

Two Flask apps, each with its own engine and session interface on one SQLite file, stand for two sidecar
processes behind a load balancer: nothing is shared between them but the database.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, session
from sqlalchemy import create_engine, select, update

from fhir_bridge.web.session_backends import WEB_SESSIONS, SqlBackend, StoredSession, _row_key, unseal
from fhir_bridge.web.session_store import ServerSessionInterface

TOKEN = "secret-access-token-for-ana"


def _process(db: Path) -> tuple[Flask, ServerSessionInterface]:
    app = Flask("sidecar")
    store = ServerSessionInterface(15, 8, SqlBackend(create_engine(f"sqlite:///{db}")))
    app.session_interface = store

    @app.get("/sign-in")
    def sign_in() -> str:
        session["smart"] = {"access_token": TOKEN, "patient": "p1"}
        store.rotate(session)  # type: ignore[arg-type]
        return "ok"

    @app.get("/whoami")
    def whoami() -> str:
        ctx = session.get("smart") or {}
        return f"{ctx.get('patient')}|{session.expired}"  # type: ignore[attr-defined]

    @app.get("/sign-out")
    def sign_out() -> str:
        session.clear()
        return "bye"

    return app, store


def _sid(answer) -> str:  # type: ignore[no-untyped-def]
    return answer.headers["Set-Cookie"].split(";", 1)[0].split("=", 1)[1]


def test_a_session_started_in_one_process_is_used_in_another(tmp_path: Path) -> None:
    db = tmp_path / "sidecar.sqlite3"
    first, _ = _process(db)
    second, second_store = _process(db)
    sid = _sid(first.test_client().get("/sign-in"))

    other = second.test_client()
    other.set_cookie("session", sid)  # Flask's default cookie name (the pages call it bbd_session)
    assert other.get("/whoami").text == "p1|False"

    # At rest: no token, no session id, nothing readable; the row is found only by a hash of the id.
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        rows = conn.execute(select(WEB_SESSIONS)).all()
    assert len(rows) == 1
    assert TOKEN.encode() not in rows[0].sealed and b"p1" not in rows[0].sealed and rows[0].key != sid

    # A guessed or altered id finds nothing and cannot decrypt the row.
    assert SqlBackend(engine).load(sid[:-1] + ("A" if sid[-1] != "A" else "B")) is None

    # Signing out in the second process ends the session for the first one too.
    other.get("/sign-out")
    again = first.test_client()
    again.set_cookie("session", sid)
    assert again.get("/whoami").text == "None|False"

    # The idle limit holds whichever process sees the request.
    sid = _sid(first.test_client().get("/sign-in"))
    second_store.idle = 0.0
    late = second.test_client()
    late.set_cookie("session", sid)
    assert late.get("/whoami").text == "None|True"


def test_rows_bound_to_their_id_and_expired_rows_pruned(tmp_path: Path) -> None:
    backend = SqlBackend(create_engine(f"sqlite:///{tmp_path / 's.sqlite3'}"))
    backend.save("id-one", StoredSession({"a": 1}, created=100.0, touched=100.0))
    backend.save("id-two", StoredSession({"b": 2}, created=100.0, touched=500.0))
    assert backend.load("id-one").data == {"a": 1}  # type: ignore[union-attr]
    backend.prune(idle_before=200.0, created_before=0.0)  # id-one idle since 100: gone
    assert backend.load("id-one") is None and backend.load("id-two").data == {"b": 2}  # type: ignore[union-attr]
    # A row's ciphertext copied under another id's row is refused (the row key is the associated data).
    backend.save("id-three", StoredSession({"c": 3}, created=500.0, touched=500.0))
    with backend.engine.begin() as conn:
        two = conn.execute(select(WEB_SESSIONS.c.sealed).where(WEB_SESSIONS.c.touched == 500.0)).all()
        stolen = next(r.sealed for r in two if unseal("id-two", r.sealed) is not None)
        conn.execute(
            update(WEB_SESSIONS).where(WEB_SESSIONS.c.key == _row_key("id-three")).values(sealed=stolen)
        )
    assert backend.load("id-three") is None
