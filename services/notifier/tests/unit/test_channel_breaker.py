"""The channels' breaker: sends that find the server unreachable open it, a mailbox's refusal
does not, and while it is open nothing is sent and the message waits (no attempt spent)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from waybill.common.breaker import CircuitBreakers
from waybill.common.queue import JobQueue, QueueSpec, RetryLater
from waybill.notifier.workers.messages import Delivered, MessageSender, Refused


class Server:
    """Stands in for the SMTP relay: answers what the test says, counts what reached it."""

    def __init__(self, answer: Delivered | Refused) -> None:
        self.answer = answer
        self.calls = 0

    async def send(self, notification: Any) -> Delivered | Refused:
        self.calls += 1
        return self.answer


def _sender(server: Server) -> MessageSender:
    breakers = CircuitBreakers(
        service=f"test-{uuid.uuid4().hex[:6]}", failure_threshold=3, reset_s=60
    )
    queue = JobQueue(None, QueueSpec(name="emails"))  # type: ignore[arg-type]  # never claimed
    return MessageSender(queue, server, None, None, breakers=breakers)  # type: ignore[arg-type]


async def test_an_unreachable_server_opens_the_breaker_and_messages_then_wait_unsent():
    server = Server(Refused("SMTP ConnectionRefusedError", unreachable=True))
    sender = _sender(server)
    for _ in range(3):
        assert isinstance(await sender._send(object()), Refused)

    with pytest.raises(RetryLater) as waited:
        await sender._send(object())

    assert server.calls == 3  # the fourth never reached the server
    assert waited.value.delay_s is not None and waited.value.delay_s >= 60


async def test_a_mailbox_refusal_keeps_the_breaker_closed():
    server = Server(Refused("SMTP 550 no such mailbox", permanent=True))
    sender = _sender(server)
    for _ in range(5):
        await sender._send(object())
    assert server.calls == 5
