"""The UI's session cookie: signed (a changed cookie is no session), HttpOnly, SameSite=Strict,
Secure over https only, and holding the key's id and tenant, never the key."""

from __future__ import annotations

import pytest
from fastapi import Response
from starlette.requests import Request

from waybill.common.auth import Principal
from waybill.monitor.ui.sessions import COOKIE, CsrfRejected, Session, Sessions, check_csrf


def request(scheme: str = "http", cookie: str | None = None) -> Request:
    headers = [(b"host", b"monitor.example")]
    headers += [(b"cookie", f"{COOKIE}={cookie}".encode())] if cookie else []
    return Request({"type": "http", "scheme": scheme, "headers": headers, "path": "/"})


def written(sessions: Sessions, scheme: str, session: Session) -> tuple[str, str]:
    response = Response()
    sessions.write(request(scheme), response, session)
    header = response.headers["set-cookie"]
    return header.split(";")[0].split("=", 1)[1], header


ADMIN = Principal(tenant_id="t_1", role="admin", key_id="0b6f4cf8-6c6e-4a53-9d0e-2f4c1c7a9e11")


def test_a_written_session_reads_back_and_holds_no_key():
    sessions = Sessions("secret")
    value, header = written(sessions, "http", Session.of(ADMIN))

    read = sessions.read(request(cookie=value))

    assert read is not None
    assert (read.key_id, read.tenant_id) == (ADMIN.key_id, ADMIN.tenant_id)
    assert "HttpOnly" in header
    assert "SameSite=strict" in header
    assert "Secure" not in header


def test_the_cookie_is_secure_when_the_request_came_over_https():
    _, header = written(Sessions("secret"), "https", Session.anonymous())

    assert "Secure" in header


@pytest.mark.parametrize("change", ["tamper", "other_secret", "garbage"])
def test_a_changed_or_foreign_cookie_is_no_session(change: str):
    value, _ = written(Sessions("secret"), "http", Session.of(ADMIN))
    reader = Sessions("another secret" if change == "other_secret" else "secret")
    if change == "tamper":
        value = value[:-2] + ("AA" if not value.endswith("AA") else "BB")
    if change == "garbage":
        value = "not-a-cookie"

    assert reader.read(request(cookie=value)) is None


def test_csrf_needs_the_sessions_own_token():
    session = Session.anonymous()

    check_csrf(session, session.csrf)
    for submitted in (None, "", "forged", session.csrf + "x"):
        with pytest.raises(CsrfRejected):
            check_csrf(session, submitted)
    with pytest.raises(CsrfRejected):
        check_csrf(None, session.csrf)
