"""The email channel: a notification rendered to a MIME message and sent over SMTP with
aiosmtplib (the sandbox's aiosmtpd server by default, any SMTP relay in production).

The message is rebuilt from the notification at every attempt and is the same each time: the
``Message-ID`` chosen when the notification was inserted, ``Date`` its creation. A resend after
a crash is therefore the same message to the receiving side, which is what lets anyone count
distinct Message-IDs against notifications.

SMTP replies decide retry or not, as RFC 5321 means them: 4xx (451 at ``RCPT TO``, say) and a
server that cannot be reached or times out are temporary; 5xx (550 5.1.1, no such mailbox) is
permanent.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import aiosmtplib

from waybill.common.observability.integrations import exception_error_class, integration_call
from waybill.notifier.metrics import SERVICE, SMTP
from waybill.notifier.rendering import Renderer
from waybill.notifier.workers.messages import Delivered, Refused


@dataclass
class SmtpChannel:
    renderer: Renderer
    host: str
    port: int
    sender: str
    timeout_s: float = 10.0

    def message(self, notification: Any) -> EmailMessage:
        rendered = self.renderer.email(notification.template, notification.context)
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = notification.recipient
        message["Subject"] = rendered.subject
        message["Message-ID"] = notification.message_id
        message["Date"] = format_datetime(notification.created_at)
        message["X-Waybill-Notification"] = notification.notification_id
        message.set_content(rendered.text)
        message.add_alternative(rendered.html, subtype="html")
        return message

    async def send(self, notification: Any) -> Delivered | Refused:
        message = self.message(notification)
        async with integration_call(SERVICE, SMTP) as call:
            try:
                await aiosmtplib.send(
                    message, hostname=self.host, port=self.port, timeout=self.timeout_s
                )
            except aiosmtplib.SMTPRecipientsRefused as exc:
                codes = [r.code for r in exc.recipients]
                permanent = all(c >= 500 for c in codes)
                call.failed(_smtp_class(500 if permanent else 400))
                detail = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
                return Refused(f"SMTP {detail}", permanent=permanent)
            except aiosmtplib.SMTPResponseException as exc:
                call.failed(_smtp_class(exc.code))
                # 421: the server is closing the channel (overloaded, going down): not this
                # message's fault, the breaker's business.
                return Refused(
                    f"SMTP {exc.code} {exc.message}",
                    permanent=exc.code >= 500,
                    unreachable=exc.code == 421,
                )
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                call.failed(_unreachable_class(exc))
                # Not reachable, disconnected, timed out: the server may take it later.
                return Refused(f"SMTP {type(exc).__name__}: {exc}", unreachable=True)
        return Delivered()


def _smtp_class(code: int) -> str:
    """A refusal's error class by its reply code (RFC 5321: 4yz temporary, 5yz permanent)."""
    return "smtp_5xx" if code >= 500 else "smtp_4xx"


def _unreachable_class(exc: BaseException) -> str:
    # aiosmtplib's timeout and connect errors are TimeoutError and ConnectionError already.
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return "connect"
    return exception_error_class(exc)
