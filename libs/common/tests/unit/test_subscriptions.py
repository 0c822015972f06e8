"""A subscription table is the one declaration of what a consumer group consumes: its
registry, topics, dispatch and AsyncAPI subscribe side all follow from it."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc

from waybill.common import topics
from waybill.common.asyncapi import published_by_topic
from waybill.common.consumer.pause import lost_connection
from waybill.common.consumer.subscriptions import Subscriptions
from waybill.common.contracts import orders, payments
from waybill.common.envelope import EventEnvelope
from waybill.common.eventstore import Caller
from waybill.common.registry import EventRegistry


async def _ignore(conn: Any, caller: Caller, event: Any) -> None:
    return None


def test_the_table_is_the_registry_the_topics_and_the_subscribe_side() -> None:
    table = Subscriptions(
        "orders", {payments.PaymentCaptured: _ignore, payments.PaymentFailed: _ignore}
    )
    assert table.registry.types() == ["payment.captured", "payment.failed"]
    assert not table.registry.knows("payment.created")  # skipped by ce_type, never decoded
    assert table.topics == [topics.PAYMENTS_EVENTS]
    assert table.consumes == {
        topics.PAYMENTS_EVENTS: [payments.PaymentCaptured, payments.PaymentFailed]
    }


def test_a_table_over_two_producers_reads_both_topics() -> None:
    table = Subscriptions(
        "notifier", {orders.OrderPlaced: _ignore, payments.PaymentRefunded: _ignore}
    )
    assert table.topics == sorted([topics.ORDERS_EVENTS, topics.PAYMENTS_EVENTS])


def test_an_empty_table_is_refused() -> None:
    with pytest.raises(ValueError, match="subscribes to nothing"):
        Subscriptions("idle", {})


async def test_dispatch_calls_the_types_handler_with_the_caller_of_the_envelope() -> None:
    calls: list[tuple[str, Caller, Any]] = []

    def recorder(name: str) -> Any:
        async def handle(conn: Any, caller: Caller, event: Any) -> None:
            calls.append((name, caller, event))

        return handle

    table = Subscriptions(
        "orders",
        {
            payments.PaymentCaptured: recorder("captured"),
            payments.PaymentFailed: recorder("failed"),
        },
    )
    failed = payments.PaymentFailed(payment_id="pay_1", order_id="ord_1", code="x", reason="y")
    envelope = EventEnvelope(
        source="/waybill/payments",
        type=failed.event_type,
        subject="pay_1",
        tenant_id="t1",
        correlation_id="corr-1",
        sequence=2,
        traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01",
        data=failed.model_dump(mode="json"),
    )
    await table.dispatch(None, envelope, failed)  # type: ignore[arg-type]
    assert calls == [
        (
            "failed",
            Caller("t1", "corr-1", causation_id=str(envelope.id), traceparent=envelope.traceparent),
            failed,
        )
    ]


def test_only_public_events_are_on_the_publish_side() -> None:
    appended = orders.register(EventRegistry()).models()
    published = published_by_topic(appended)
    assert set(published) == {topics.ORDERS_EVENTS}
    assert {m.event_type for m in published[topics.ORDERS_EVENTS]} == {
        m.event_type for m in orders.ORDER_EVENTS
    }
    assert not any(m.event_type.startswith("inventory.") for m in published[topics.ORDERS_EVENTS])


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connect call failed"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        sa_exc.DBAPIError("SELECT 1", None, Exception("gone"), connection_invalidated=True),
    ],
    ids=["refused", "closed-mid-operation", "starting-up", "invalidated"],
)
def test_a_lost_database_connection_is_recognised_through_wrappers(error: Exception) -> None:
    wrapped = RuntimeError("handler failed")
    wrapped.__cause__ = error
    assert lost_connection(error)
    assert lost_connection(wrapped)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.SerializationError("could not serialize access"),
        asyncpg.UniqueViolationError("duplicate key"),
        TimeoutError("provider did not answer"),
        ValueError(str(uuid.uuid4())),
    ],
    ids=["serialization", "unique", "timeout", "value"],
)
def test_other_failures_are_the_records_own(error: Exception) -> None:
    assert not lost_connection(error)
