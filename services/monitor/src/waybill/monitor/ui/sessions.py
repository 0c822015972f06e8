"""The admin UI's session: a signed cookie holding the key's id and tenant (never the key) and
a CSRF token, checked against the key store on every request.

Signed with ``itsdangerous`` (``URLSafeTimedSerializer``: HMAC-SHA1 over the payload, with its
signing time so an old cookie expires) rather than starlette's ``SessionMiddleware`` (which is
built on the same library): the middleware would put a session on every response of the app,
the JSON API's too, and fixes ``Secure`` once at start-up, where the cookie here is only the
UI's and ``Secure`` whenever the request came over https.

CSRF: a synchronizer token, random per session and rotated at login; every form carries it
in a hidden field and every POST is refused (403) without it. A visitor who is not logged in
gets an anonymous session (a token only), so the login form is protected too.

A revoked key's session stops within the key store's cache TTL (2 s): ``KeyStore.live_key``
is asked on every request.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.datastructures import FormData

from waybill.common.auth import Principal
from waybill.common.auth.dependencies import key_store_of

COOKIE = "waybill_monitor_session"
MAX_AGE_S = 8 * 3600
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class Session:
    csrf: str
    key_id: str | None = None
    tenant_id: str | None = None

    @classmethod
    def anonymous(cls) -> Session:
        return cls(csrf=secrets.token_urlsafe(32))

    @classmethod
    def of(cls, principal: Principal) -> Session:
        return cls(
            csrf=secrets.token_urlsafe(32),
            key_id=principal.key_id,
            tenant_id=principal.tenant_id,
        )


class LoginRequired(Exception):
    """No live admin session: the UI answers with the login page."""


class CsrfRejected(Exception):
    """A POST without the session's CSRF token."""


class Sessions:
    """Reads and writes the session cookie."""

    def __init__(self, secret: str) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="waybill-monitor-ui-session")

    def read(self, request: Request) -> Session | None:
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            payload: Any = self._serializer.loads(raw, max_age=MAX_AGE_S)
        except BadSignature:
            return None
        if not isinstance(payload, dict) or not isinstance(payload.get("c"), str):
            return None
        return Session(csrf=payload["c"], key_id=payload.get("k"), tenant_id=payload.get("t"))

    def write(self, request: Request, response: Response, session: Session) -> None:
        payload = {"c": session.csrf, "k": session.key_id, "t": session.tenant_id}
        response.set_cookie(
            COOKIE,
            self._serializer.dumps(payload),
            max_age=MAX_AGE_S,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )

    def clear(self, request: Request, response: Response) -> None:
        response.delete_cookie(
            COOKIE,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )


def sessions_of(request: Request) -> Sessions:
    return request.app.state.ui_sessions  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Admin:
    """A logged-in admin: the live key's principal and the session (its CSRF token)."""

    principal: Principal
    session: Session


async def current_admin(request: Request) -> Admin:
    """The session's admin, its key checked live; otherwise :class:`LoginRequired`."""
    session = sessions_of(request).read(request)
    if session is None or session.key_id is None or session.tenant_id is None:
        raise LoginRequired
    principal = await key_store_of(request).live_key(session.tenant_id, session.key_id)
    if principal is None or principal.role != "admin":
        raise LoginRequired
    return Admin(principal=principal, session=session)


def check_csrf(session: Session | None, submitted: object) -> None:
    if (
        session is None
        or not isinstance(submitted, str)
        or not hmac.compare_digest(session.csrf.encode(), submitted.encode())
    ):
        raise CsrfRejected


async def checked_form(request: Request) -> FormData:
    """The POST's form if it carries its session's CSRF token (logged in or not), else
    :class:`CsrfRejected` (403) before anything else is looked at."""
    form = await request.form()
    check_csrf(sessions_of(request).read(request), form.get(CSRF_FIELD))
    return form


async def admin_post(request: Request) -> Admin:
    """A logged-in admin's POST carrying the session's CSRF token."""
    await checked_form(request)
    return await current_admin(request)


AdminSession = Annotated[Admin, Depends(current_admin)]
AdminPost = Annotated[Admin, Depends(admin_post)]
CheckedForm = Annotated[FormData, Depends(checked_form)]
