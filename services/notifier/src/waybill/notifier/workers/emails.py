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
        try:
            await aiosmtplib.send(
                message, hostname=self.host, port=self.port, timeout=self.timeout_s
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            detail = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
            return Refused(f"SMTP {detail}", permanent=all(c >= 500 for c in codes))
        except aiosmtplib.SMTPResponseException as exc:
            # 421: the server is closing the channel (overloaded, going down): not this
            # message's fault, the breaker's business.
            return Refused(
                f"SMTP {exc.code} {exc.message}",
                permanent=exc.code >= 500,
                unreachable=exc.code == 421,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # Not reachable, disconnected, timed out: the server may take it later.
            return Refused(f"SMTP {type(exc).__name__}: {exc}", unreachable=True)
        return Delivered()
