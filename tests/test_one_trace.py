"""One trace across the saga, on the real stack (``waybill up``) exporting OTLP to a receiver
of the test (``tests.up_stack``): ``POST /orders`` through payments (the consumer, the charges
job, the provider's webhook), back to orders, then shipping, notifier and monitor, every span
in the order's trace and the parent chain unbroken (a tree with the request at its root).

The test client sends a ``traceparent`` of its own, so the trace id is known before the first
span is exported; its span is the root's parent and the one span id not exported.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable

import httpx
import pytest
from tests.saga_stack import order_body
from tests.up_stack import WaybillUp

from waybill.common import topics
from waybill.devstack.eventually import eventually
from waybill.devstack.otlp_receiver import ReceivedSpan

pytestmark = pytest.mark.infra

TRACE_WITHIN_S = 60.0  # the whole saga plus the exporters' batches, on a shared 2-core machine
SERVICES = {"orders", "payments", "shipping", "notifier", "monitor"}


def broken_links(spans: Iterable[ReceivedSpan], root_parent: str) -> list[ReceivedSpan]:
    """The spans whose parent is not in the trace (the client's span is the root's parent)."""
    spans = list(spans)
    known = {s.span_id for s in spans} | {root_parent}
    return [s for s in spans if s.parent_id is None or s.parent_id not in known]


def ancestors(span: ReceivedSpan, spans: Iterable[ReceivedSpan]) -> list[ReceivedSpan]:
    by_id = {s.span_id: s for s in spans}
    chain: list[ReceivedSpan] = []
    while span.parent_id in by_id:
        span = by_id[span.parent_id]
        chain.append(span)
    return chain


def services_of(spans: Iterable[ReceivedSpan]) -> set[str]:
    return {s.service.removeprefix("waybill-") for s in spans}


async def place_order(stack: WaybillUp, payment_method: str) -> tuple[str, str]:
    """Place an order under a fresh tenant with a traceparent of ours: (trace id, client span)."""
    tenant = f"t_{uuid.uuid4().hex[:10]}"
    admin = await stack.new_key(tenant, "admin")
    service = await stack.new_key(tenant, "service")
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    sku = f"SKU-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=stack.url("orders"), timeout=15) as orders:
        stocked = await orders.put(
            f"/inventory/{sku}",
            json={"available": 5},
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert stocked.status_code == 200, stocked.text
        placed = await orders.post(
            "/orders",
            json=order_body(sku, payment_method=payment_method),
            headers={
                "Authorization": f"Bearer {service}",
                "traceparent": f"00-{trace_id}-{client_span}-01",
            },
        )
    assert placed.status_code == 201, placed.text
    return trace_id, client_span


async def whole_trace(
    stack: WaybillUp, trace_id: str, client_span: str, *, expect: set[tuple[str, str]]
) -> list[ReceivedSpan]:
    """The trace's spans once every service of ``SERVICES`` and every (service, span name) of
    ``expect`` is in it and no parent is missing (children may be exported before parents)."""

    def missing(spans: list[ReceivedSpan]) -> dict[str, object]:
        named = {(s.service.removeprefix("waybill-"), s.name) for s in spans}
        gaps = {
            "services": SERVICES - services_of(spans),
            "spans": expect - named,
            "parent not in the trace": broken_links(spans, client_span),
        }
        return {what: gap for what, gap in gaps.items() if gap}

    try:
        return await eventually(
            lambda: stack.traces.spans(trace_id),
            until=lambda spans: not missing(spans),
            timeout_s=TRACE_WITHIN_S,
            what=f"the spans of trace {trace_id} from every service, connected",
        )
    except AssertionError:
        gaps = missing(stack.traces.spans(trace_id))
        raise AssertionError(f"trace {trace_id} incomplete: {gaps}") from None


def one(spans: Iterable[ReceivedSpan], service: str, name: str) -> ReceivedSpan:
    found = [s for s in spans if s.service == f"waybill-{service}" and s.name == name]
    assert found, f"no {name!r} span from {service}"
    return found[0]


async def test_one_order_is_one_trace_from_its_request_to_every_service(
    stack: WaybillUp,
) -> None:
    trace_id, client_span = await place_order(stack, "pm_card_ok")
    orders_process = f"{topics.ORDERS_EVENTS} process"
    payments_process = f"{topics.PAYMENTS_EVENTS} process"
    spans = await whole_trace(
        stack,
        trace_id,
        client_span,
        expect={
            ("orders", "POST /orders"),
            ("payments", orders_process),
            ("payments", "charges run"),
            ("orders", payments_process),
            ("shipping", orders_process),
            ("notifier", orders_process),
            ("notifier", "emails run"),
            ("monitor", payments_process),
        },
    )
    (root,) = [s for s in spans if s.parent_id == client_span]
    assert (root.service, root.name) == ("waybill-orders", "POST /orders")
    # A tree, not siblings of the request: the charge runs under the payments consumer that
    # enqueued it, and order.paid (appended by orders while handling payment.captured, which
    # the charge appended) reaches shipping as that consumer's child.
    charge = one(spans, "payments", "charges run")
    assert one(spans, "payments", orders_process) in ancestors(charge, spans)
    shipping = one(spans, "shipping", orders_process)
    assert charge in ancestors(shipping, spans)
    assert one(spans, "orders", payments_process) in ancestors(shipping, spans)


async def test_a_charge_settled_by_the_providers_webhook_stays_in_the_orders_trace(
    stack: WaybillUp,
) -> None:
    # pm_card_async: the provider answers "processing" and settles it by a signed webhook.
    trace_id, client_span = await place_order(stack, "pm_card_async")
    spans = await whole_trace(
        stack,
        trace_id,
        client_span,
        expect={
            ("payments", "payment_intent.succeeded process"),
            ("shipping", f"{topics.ORDERS_EVENTS} process"),
        },
    )
    webhook = one(spans, "payments", "payment_intent.succeeded process")
    # Its parent is the payment's opening (the payments consumer), its link the provider's
    # request (a trace of its own).
    assert ancestors(webhook, spans)[0].name == f"{topics.ORDERS_EVENTS} process"
    assert webhook.links and trace_id not in webhook.links
    shipping = one(spans, "shipping", f"{topics.ORDERS_EVENTS} process")
    assert webhook in ancestors(shipping, spans)
