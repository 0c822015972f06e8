"""The SMTP server: a message sent over real SMTP is kept and listed; rejections keep nothing."""

from __future__ import annotations

import time
import uuid
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib
import pytest


def new_recipient() -> str:
    return f"customer-{uuid.uuid4().hex[:12]}@example.test"


def new_message(to: str, subject: str = "Your order is on its way") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Waybill <no-reply@waybill.test>"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="waybill.test")
    message.set_content("Plain text: delivery code follows.")
    message.add_alternative("<p>HTML: <b>delivery</b> code follows.</p>", subtype="html")
    return message


async def send(port: int, message: EmailMessage) -> None:
    await aiosmtplib.send(message, hostname="127.0.0.1", port=port, start_tls=False, timeout=10)


async def mailbox(api, **params) -> list[dict]:
    response = await api.http.get("/mailbox", params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_a_sent_email_is_in_the_mailbox_with_its_message_id_and_parts(api, smtp_port):
    to = new_recipient()
    message = new_message(to, subject="Grüße: shipped")
    await send(smtp_port, message)

    (mail,) = await mailbox(api, message_id=message["Message-ID"])
    assert mail["rcpt_tos"] == [to]
    assert mail["mail_from"] == "no-reply@waybill.test"
    assert mail["subject"] == "Grüße: shipped"
    assert mail["message_id"] == message["Message-ID"]
    assert mail["headers"]["To"] == to
    assert mail["text"].strip() == "Plain text: delivery code follows."
    assert mail["html"].strip() == "<p>HTML: <b>delivery</b> code follows.</p>"
    assert mail["size"] == len(mail["raw"].encode())
    # The same message by recipient, and by its id without the angle brackets.
    assert [m["id"] for m in await mailbox(api, to=to)] == [mail["id"]]
    bare = message["Message-ID"].strip("<>")
    assert [m["id"] for m in await mailbox(api, message_id=bare)] == [mail["id"]]


async def test_the_mailbox_lists_newest_last_and_honours_the_limit(api, smtp_port):
    to = new_recipient()
    subjects = [f"message {n}" for n in range(3)]
    for subject in subjects:
        await send(smtp_port, new_message(to, subject))
    assert [m["subject"] for m in await mailbox(api, to=to)] == subjects
    assert [m["subject"] for m in await mailbox(api, to=to, limit=2)] == subjects[1:]


async def test_a_temporary_rejection_answers_451_and_keeps_nothing(api, smtp_port):
    await api.set_faults(smtp_temporary_reject_rate=1.0)
    to = new_recipient()
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
        await send(smtp_port, new_message(to))
    (rejection,) = refused.value.recipients
    assert rejection.code == 451
    assert "4.3.0" in rejection.message
    assert await mailbox(api, to=to) == []


async def test_counted_rejections_refuse_the_next_recipients_then_accept(api, smtp_port):
    await api.set_faults(smtp_reject_next=2)
    to = new_recipient()
    for _ in range(2):
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await send(smtp_port, new_message(to))
        assert refused.value.recipients[0].code == 451
    await send(smtp_port, new_message(to))
    assert len(await mailbox(api, to=to)) == 1
    assert (await api.http.get("/admin/faults")).json()["smtp_reject_next"] == 0


async def test_a_permanent_rejection_answers_550_and_keeps_nothing(api, smtp_port):
    await api.set_faults(smtp_permanent_reject_rate=1.0)
    to = new_recipient()
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
        await send(smtp_port, new_message(to))
    (rejection,) = refused.value.recipients
    assert rejection.code == 550
    assert "5.1.1" in rejection.message
    assert await mailbox(api, to=to) == []
    # The knobs reset: the same recipient is accepted again.
    await api.http.post("/admin/faults/reset")
    await send(smtp_port, new_message(to))
    assert len(await mailbox(api, to=to)) == 1


async def test_smtp_latency_delays_the_reply_to_each_message(api, smtp_port):
    await api.set_faults(smtp_latency_ms=300)
    started = time.monotonic()
    await send(smtp_port, new_message(new_recipient()))
    assert time.monotonic() - started >= 0.3


async def test_the_mailbox_survives_a_sandbox_restart(api, smtp_port):
    message = new_message(new_recipient())
    await send(smtp_port, message)
    api.process.restart()
    assert len(await mailbox(api, message_id=message["Message-ID"])) == 1
    # The SMTP server is back on its port too.
    again = new_message(new_recipient())
    await send(smtp_port, again)
    assert len(await mailbox(api, message_id=again["Message-ID"])) == 1


async def test_delete_mailbox_empties_it(api, smtp_port):
    message = new_message(new_recipient())
    await send(smtp_port, message)
    response = await api.http.delete("/mailbox")
    assert response.status_code == 200
    assert response.json()["deleted"] >= 1
    assert await mailbox(api, message_id=message["Message-ID"]) == []
