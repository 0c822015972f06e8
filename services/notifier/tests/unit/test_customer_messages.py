"""The rules of customer notifications: which event is which template (every contract row),
priorities, masking, template delays, and rendering (HTML escaped, a text part, SMS)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from waybill.common.contracts.orders import (
    Address,
    Customer,
    OrderCancelled,
    OrderPaid,
    OrderPaymentFailed,
    OrderPlaced,
)
from waybill.common.contracts.shipping import (
    DeliveryCodeReset,
    ShipmentDelivered,
    ShipmentFailed,
    ShipmentInTransit,
    ShipmentReturned,
)
from waybill.common.sealing import Sealer
from waybill.notifier.domain.messages import (
    RULES,
    Channel,
    Priority,
    context_of,
    mask,
    mask_email,
    mask_phone,
    parse_delays,
    rule_of,
    template_of,
)
from waybill.notifier.rendering import Renderer

SEALER = Sealer("unit-test-key")
CUSTOMER = Customer(id="cus_1", email="jane@example.com", phone="+15551234567")
ADDRESS = Address(line1="1 Main St", city="X", postal_code="1", country="US")


def _in_transit(attempt: int, code: str = "123456") -> ShipmentInTransit:
    return ShipmentInTransit(
        shipment_id="shp_1",
        order_id="ord_1",
        agent_id="agt_1",
        attempt=attempt,
        delivery_code_sealed=SEALER.seal(f"shp_1:{code}"),
        delivery_code_hash="h",
    )


CONTRACT_ROWS = [
    (
        OrderPlaced(
            order_id="ord_1",
            customer=CUSTOMER,
            items=(),
            currency="USD",
            total_cents=1,
            shipping_address=ADDRESS,
            payment_method="pm_card_ok",
            expires_at=datetime.now(UTC),
        ),
        "order_placed",
    ),
    (
        OrderPaid(order_id="ord_1", payment_id="p", customer=None, shipping_address=None),
        "payment_received",
    ),
    (OrderPaymentFailed(order_id="ord_1", reason="declined"), "payment_failed"),
    (_in_transit(1), "shipped"),
    (
        ShipmentDelivered(
            shipment_id="s", order_id="ord_1", agent_id="a", delivered_at=datetime.now(UTC)
        ),
        "delivered",
    ),
    (
        ShipmentFailed(shipment_id="s", order_id="ord_1", agent_id="a", reason="REFUSED"),
        "delivery_failed",
    ),
    (ShipmentReturned(shipment_id="s", order_id="ord_1", agent_id=None), "returned"),
    (_in_transit(2), "delivery_retried"),
    # Beyond the contract's table: a reset code reaches the customer like the first one.
    (
        DeliveryCodeReset(
            shipment_id="shp_1",
            order_id="ord_1",
            delivery_code_sealed=SEALER.seal("shp_1:654321"),
            delivery_code_hash="h",
        ),
        "delivery_code_reset",
    ),
]


@pytest.mark.parametrize(("event", "template"), CONTRACT_ROWS, ids=[t for _, t in CONTRACT_ROWS])
def test_every_contract_row_maps_its_event_to_its_template(event, template):
    assert template_of(event) == template
    assert rule_of(event) == RULES[template]


def test_every_template_has_a_contract_row_and_other_events_notify_nobody():
    assert {t for _, t in CONTRACT_ROWS} == set(RULES)
    assert template_of(OrderCancelled(order_id="ord_1")) is None


def test_urgent_for_failures_sms_beside_email_where_a_code_or_a_failed_delivery_is_told():
    urgent = {name for name, rule in RULES.items() if rule.priority is Priority.urgent}
    assert urgent == {"payment_failed", "delivery_failed"}
    with_sms = {name for name, rule in RULES.items() if Channel.sms in rule.channels}
    assert with_sms == {"shipped", "delivery_failed", "delivery_retried", "delivery_code_reset"}
    assert all(Channel.email in rule.channels for rule in RULES.values())


def test_priorities_map_to_queue_ranks_higher_first():
    ranks = [p.rank for p in (Priority.urgent, Priority.high, Priority.normal, Priority.low)]
    assert ranks == sorted(ranks, reverse=True) and len(set(ranks)) == 4


def test_recipients_are_masked_to_their_first_letter_or_last_four_digits():
    assert mask_email("jane@example.com") == "j***@example.com"
    assert mask_phone("+15551234567") == "+*******4567"
    assert mask("sms", "+4412") == "+****"
    assert mask("email", "not-an-address") == "***"


def test_template_delays_parse_and_a_typo_is_refused():
    assert parse_delays("delivered=3600, returned=0") == {"delivered": 3600.0, "returned": 0.0}
    assert parse_delays("") == {}
    for bad in ("delivred=5", "delivered", "delivered=-1", "delivered=soon"):
        with pytest.raises(ValueError):
            parse_delays(bad)


def test_the_context_keeps_the_code_sealed_and_rendering_unseals_it_only_in_the_message():
    context = context_of(_in_transit(1, "654321"))
    assert "654321" not in str(context) and "delivery_code_sealed" in context
    rendered = Renderer(SEALER).email("shipped", context)
    assert "654321" in rendered.text and "654321" in rendered.html
    assert "654321" in Renderer(SEALER).sms("shipped", context)


def test_a_code_sealed_for_another_shipment_does_not_render():
    context = {**context_of(_in_transit(1)), "shipment_id": "shp_other"}
    with pytest.raises(ValueError, match="another shipment"):
        Renderer(SEALER).email("shipped", context)


def test_html_is_escaped_the_text_part_is_plain_and_every_template_renders_every_channel():
    hostile: dict[str, object] = {"order_id": "<script>x</script>", "reason": "<b>", "attempt": 2}
    hostile["shipment_id"] = "shp_1"
    hostile["delivery_code_sealed"] = SEALER.seal("shp_1:000111")
    renderer = Renderer(SEALER)
    for template in RULES:
        rendered = renderer.email(template, hostile)
        assert "<script>" not in rendered.html and "&lt;script&gt;" in rendered.html
        assert "<script>x</script>" in rendered.text  # plain text is not HTML
        assert rendered.subject and "\n" not in rendered.subject
        assert renderer.sms(template, hostile)
