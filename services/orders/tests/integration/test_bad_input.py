"""Bad input gets a clear problem+json error with a stable code, and changes nothing."""

from __future__ import annotations

import pytest

from .conftest import Tenant, order_body

SKU = "BAD-IN"


def _body(**overrides):
    return order_body(SKU, **overrides)


BAD_REQUESTS = {
    "malformed json": (b'{"customer": ', 422),
    "invalid utf-8": (b'{"currency": "\xff\xfe"}', 422),
    "not an object": (b"[1, 2, 3]", 422),
    "empty body": (b"", 422),
    "deeply nested json": (b"[" * 100_000 + b"]" * 100_000, 422),
    "2 MiB body": (b'{"pad": "' + b"x" * (2 * 1024 * 1024) + b'"}', 413),
}

BAD_BODIES = {
    "wrong type for quantity": _body(items=[{"sku": SKU, "quantity": "1", "unit_price_cents": 1}]),
    "float quantity": _body(items=[{"sku": SKU, "quantity": 1.5, "unit_price_cents": 1}]),
    "zero quantity": _body(items=[{"sku": SKU, "quantity": 0, "unit_price_cents": 1}]),
    "negative quantity": _body(items=[{"sku": SKU, "quantity": -3, "unit_price_cents": 1}]),
    "negative price": _body(items=[{"sku": SKU, "quantity": 1, "unit_price_cents": -1}]),
    "no items": _body(items=[]),
    "unknown field": {**_body(), "discount": 10},
    "unknown nested field": _body(customer={"id": "c", "email": "a@example.com", "vip": True}),
    "bad email": _body(customer={"id": "c", "email": "not-an-email"}),
    "bad currency": _body(currency="XYZ"),
    "numeric currency": _body(currency=840),
    "bad country": _body(
        shipping_address={"line1": "1", "city": "c", "postal_code": "1", "country": "ZZ"}
    ),
    "bad payment method": _body(payment_method="4242424242424242"),
    "missing customer": {k: v for k, v in _body().items() if k != "customer"},
    "null items": _body(items=None),
}


@pytest.mark.parametrize("name", sorted(BAD_REQUESTS))
async def test_malformed_requests_get_a_problem_and_change_nothing(tenant: Tenant, name: str):
    await tenant.stock(SKU, 5)
    raw, status = BAD_REQUESTS[name]
    response = await tenant.service.post(
        "/orders", content=raw, headers={"Content-Type": "application/json"}
    )
    await _assert_problem_and_nothing_written(tenant, response, status)


@pytest.mark.parametrize("name", sorted(BAD_BODIES))
async def test_invalid_orders_get_a_problem_and_change_nothing(tenant: Tenant, name: str):
    await tenant.stock(SKU, 5)
    response = await tenant.service.post("/orders", json=BAD_BODIES[name])
    await _assert_problem_and_nothing_written(tenant, response, 422)


async def test_unknown_sku_is_insufficient_stock_and_changes_nothing(tenant: Tenant):
    await tenant.stock(SKU, 5)
    response = await tenant.service.post("/orders", json=order_body("NOPE"))
    await _assert_problem_and_nothing_written(tenant, response, 409)
    assert response.json()["code"] == "INSUFFICIENT_STOCK"


@pytest.mark.parametrize(
    "body", [{"available": -1}, {"available": "5"}, {"available": 5, "x": 1}, {}]
)
async def test_invalid_stock_updates_are_refused(tenant: Tenant, body):
    await tenant.stock(SKU, 5)
    response = await tenant.admin.put(f"/inventory/{SKU}", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert (await tenant.admin.get(f"/inventory/{SKU}")).json()["available"] == 5


async def test_a_malformed_order_id_or_cursor_is_a_clear_error(tenant: Tenant):
    assert (await tenant.service.get("/orders/not-an-id")).json()["code"] == "VALIDATION_ERROR"
    bad_cursor = await tenant.service.get("/orders", params={"cursor": "%%%"})
    assert bad_cursor.status_code == 422
    too_many = await tenant.service.get("/orders", params={"limit": 201})
    assert too_many.status_code == 422


async def _assert_problem_and_nothing_written(tenant: Tenant, response, status: int) -> None:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert {"type", "title", "status", "code"} <= problem.keys()
    assert problem["status"] == status
    assert problem["code"].isupper()
    assert (await tenant.service.get("/orders")).json()["items"] == []
    stock = (await tenant.admin.get(f"/inventory/{SKU}")).json()
    assert (stock["available"], stock["reserved"]) == (5, 0)
