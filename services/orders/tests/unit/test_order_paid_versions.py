"""``order.paid`` is at schema version 2; a version 1 payload (from before it carried the
customer and the shipping address) still decodes, through the registry orders builds."""

from waybill.common.contracts import orders as contract
from waybill.common.contracts.orders import Address, Customer, OrderPaid
from waybill.common.envelope import EventEnvelope
from waybill.common.registry import EventRegistry

V1_DATA = {"order_id": "ord_1", "payment_id": "pay_1"}


def registry() -> EventRegistry:
    return contract.register(EventRegistry())


def test_order_paid_is_registered_at_version_2():
    assert registry().latest_version("order.paid") == 2


def test_a_version_1_order_paid_decodes_as_version_2_without_customer_or_address():
    paid = registry().decode("order.paid", 1, dict(V1_DATA))
    assert paid == OrderPaid(
        order_id="ord_1", payment_id="pay_1", customer=None, shipping_address=None
    )


def test_a_version_1_order_paid_on_the_wire_parses_as_version_2():
    envelope = EventEnvelope(
        source="/waybill/orders",
        type="order.paid",
        subject="ord_1",
        tenant_id="t_1",
        correlation_id="c_1",
        sequence=2,
        schema_version=1,
        data=dict(V1_DATA),
    )
    _key, value, headers = envelope.to_kafka()
    received = EventEnvelope.from_kafka(value, headers)
    assert received.schema_version == 1
    paid = registry().parse(received)
    assert isinstance(paid, OrderPaid)
    assert (paid.customer, paid.shipping_address) == (None, None)


def test_a_version_2_order_paid_keeps_its_customer_and_address():
    customer = Customer(id="cus_1", email="ada@example.com", phone="+15551234567")
    address = Address(line1="1 Main St", city="Springfield", postal_code="12345", country="US")
    data = OrderPaid(
        order_id="ord_1", payment_id="pay_1", customer=customer, shipping_address=address
    ).model_dump(mode="json")
    paid = registry().decode("order.paid", 2, data)
    assert (paid.customer, paid.shipping_address) == (customer, address)  # type: ignore[attr-defined]
