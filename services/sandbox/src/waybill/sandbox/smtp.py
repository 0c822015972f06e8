"""The sandbox's SMTP server: aiosmtpd on the process's own event loop, keeping what it accepts.

It runs in the sandbox process (one process for the whole outside world, like webhook delivery)
rather than in aiosmtpd's ``Controller`` thread: the handler then shares the loop, the engine
and the fault knobs with the HTTP side, and starts and stops with the lifespan.

Faults are decided per recipient at ``RCPT TO`` (where real servers refuse a mailbox): a
temporary ``451 4.3.0`` or a permanent ``550 5.1.1``. A message none of whose recipients was
accepted never reaches DATA, so nothing is stored. The latency knob holds the message back
before it is stored and the final reply to DATA sent (a slow server, not a lost reply).
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.exc import SQLAlchemyError

from waybill.sandbox.faults import FaultKnobs, SmtpVerdict
from waybill.sandbox.mailbox import Mailbox, ReceivedMail

log = structlog.get_logger(__name__)

HOSTNAME = "sandbox.waybill.test"  # given, so aiosmtpd does not look up the machine's FQDN
MAX_MESSAGE_BYTES = 10 * 1024 * 1024
STORE_FAILED = "451 4.3.0 Mailbox unavailable, try again later"


class MailboxHandler:
    """aiosmtpd handler hooks: the fault knobs at RCPT, the mailbox at DATA."""

    def __init__(self, mailbox: Mailbox, knobs: FaultKnobs) -> None:
        self.mailbox = mailbox
        self.knobs = knobs

    async def handle_RCPT(  # aiosmtpd's hook names
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        verdict = self.knobs.draw_smtp_verdict()
        if verdict is not SmtpVerdict.accept:
            log.info("sandbox_smtp_rcpt_rejected", recipient=address, reply=verdict.value[:3])
            return verdict.value
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return verdict.value

    async def handle_DATA(  # aiosmtpd's hook names
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        latency_ms = self.knobs.current.smtp_latency_ms
        if latency_ms > 0:
            await asyncio.sleep(latency_ms / 1000)
        content = envelope.original_content or b""
        mail = ReceivedMail(envelope.mail_from or "", list(envelope.rcpt_tos), content)
        try:
            mail_id = await self.mailbox.store(mail)
        except (SQLAlchemyError, OSError) as exc:
            # A real server answers a local failure with a 4xx: the client may try again.
            log.warning("sandbox_smtp_store_failed", error=repr(exc))
            return STORE_FAILED
        log.info("sandbox_smtp_message_accepted", mail_id=mail_id, size=len(content))
        return f"250 2.0.0 Ok: queued as {mail_id}"


class SmtpServer:
    """A lifecycle component: listens on ``host:port`` between ``start`` and ``stop``."""

    def __init__(self, handler: MailboxHandler, host: str, port: int) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self._server: asyncio.AbstractServer | None = None

    def _protocol(self) -> Any:
        return SMTP(
            self.handler,
            hostname=HOSTNAME,
            enable_SMTPUTF8=True,
            data_size_limit=MAX_MESSAGE_BYTES,
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, host=self.host, port=self.port)
        log.info("sandbox_smtp_start_succeeded", host=self.host, port=self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
