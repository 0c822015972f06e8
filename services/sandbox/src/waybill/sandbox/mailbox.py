"""The SMTP server's mailbox: store what it accepted, list it parsed, clear it.

The raw message is the record (what a real inbox keeps); ``subject`` and ``message_id`` are
copied out of it only to filter on. Reading parses the raw text again with the ``email``
stdlib module, so the listing shows exactly what arrived, text and html parts included.
"""

from __future__ import annotations

import email
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.sandbox.tables import mailbox


@dataclass(frozen=True)
class ReceivedMail:
    """One accepted message as the SMTP session handed it over."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes


def _as_text(content: bytes) -> str:
    # 8BITMIME/SMTPUTF8 bodies are UTF-8 in practice; PostgreSQL text cannot hold NUL.
    return content.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def _parse(raw: str) -> EmailMessage:
    message = email.message_from_string(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)  # policy.default builds EmailMessage
    return message


def _header(message: EmailMessage, name: str) -> str | None:
    value = message.get(name)
    return str(value).strip() if value is not None else None


def _part(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None:
        return None
    try:
        return str(part.get_content())
    except (LookupError, ValueError):  # an unknown charset or a broken encoding: keep going
        return None


class Mailbox:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def store(self, mail: ReceivedMail) -> int:
        raw = _as_text(mail.content)
        message = _parse(raw)
        row = {
            "received_at": datetime.now(UTC),
            "mail_from": mail.mail_from,
            "rcpt_tos": mail.rcpt_tos,
            "subject": _header(message, "Subject"),
            "message_id": _header(message, "Message-ID"),
            "raw": raw,
            "size": len(mail.content),
        }
        async with self.engine.begin() as conn:
            inserted = await conn.execute(insert(mailbox).values(row).returning(mailbox.c.id))
            return int(inserted.scalar_one())

    async def list(
        self, to: str | None = None, message_id: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """The last ``limit`` matching messages, newest last. ``to`` is one exact recipient
        address; ``message_id`` matches with or without its angle brackets."""
        query = select(mailbox).order_by(mailbox.c.id.desc()).limit(limit)
        if to is not None:
            query = query.where(mailbox.c.rcpt_tos.contains([to]))
        if message_id is not None:
            bare = message_id.strip().removeprefix("<").removesuffix(">")
            query = query.where(mailbox.c.message_id.in_([bare, f"<{bare}>"]))
        async with self.engine.connect() as conn:
            rows = list(reversed((await conn.execute(query)).all()))
        return [_mail_object(row) for row in rows]

    async def clear(self) -> int:
        async with self.engine.begin() as conn:
            return (await conn.execute(delete(mailbox))).rowcount


def _mail_object(row: Any) -> dict[str, Any]:
    message = _parse(row.raw)
    headers: dict[str, str] = {}
    for name, value in message.items():
        headers.setdefault(name, str(value))  # the first of a repeated header
    return {
        "id": row.id,
        "received_at": row.received_at.timestamp(),
        "mail_from": row.mail_from,
        "rcpt_tos": list(row.rcpt_tos),
        "subject": row.subject,
        "message_id": row.message_id,
        "headers": headers,
        "text": _part(message, "plain"),
        "html": _part(message, "html"),
        "size": row.size,
        "raw": row.raw,
    }
