"""Each fault kind as a client sees it, and that a faulted request (but a timeout) did nothing."""

from __future__ import annotations

import time

import httpx
import pytest


async def _requests(api, key: str) -> list[dict]:
    response = await api.http.get("/admin/requests", params={"idempotency_key": key})
    assert response.status_code == 200
    return response.json()


async def test_error_fault_answers_500_and_creates_nothing(api):
    await api.set_faults(error_rate=1.0)
    body, key = api.intent_body(), api.new_key()
    response = await api.create_intent(body, key)
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "api_error"
    assert await api.charges(body["metadata"]["order_id"]) == []
    assert [(r["status"], r["fault"]) for r in await _requests(api, key)] == [(500, "error")]


async def test_reset_fault_closes_the_connection_without_an_answer(api):
    await api.set_faults(reset_rate=1.0)
    body, key = api.intent_body(), api.new_key()
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        await api.create_intent(body, key)
    assert await api.charges(body["metadata"]["order_id"]) == []
    assert [r["fault"] for r in await _requests(api, key)] == ["reset"]
    await api.http.post("/admin/faults/reset")
    # The same key is still free: the reset request had no effect.
    assert (await api.create_intent(body, key)).status_code == 200
    assert len(await api.charges(body["metadata"]["order_id"])) == 1


async def test_rate_limit_fault_answers_429_with_retry_after_and_creates_nothing(api):
    await api.set_faults(rate_limit_rate=1.0, retry_after_s=7)
    body = api.intent_body()
    response = await api.create_intent(body)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert await api.charges(body["metadata"]["order_id"]) == []


async def test_timeout_fault_charges_but_never_answers_in_time(api):
    await api.set_faults(timeout_rate=1.0)
    body, key = api.intent_body(), api.new_key()
    with pytest.raises(httpx.ReadTimeout):
        await api.http.post(
            "/v1/payment_intents",
            json=body,
            headers={"Idempotency-Key": key},
            timeout=httpx.Timeout(10, read=0.5),
        )
    # Decided after the effect: charged, and the retry with the same key replays it.
    (charge,) = await api.charges(body["metadata"]["order_id"])
    await api.http.post("/admin/faults/reset")
    retry = await api.create_intent(body, key)
    assert retry.status_code == 200
    assert retry.json()["id"] == charge["payment_intent"]
    assert len(await api.charges(body["metadata"]["order_id"])) == 1
    assert [r["fault"] for r in await _requests(api, key)] == ["timeout", None]


async def test_latency_knob_delays_provider_answers(api):
    await api.set_faults(latency_ms=300)
    started = time.monotonic()
    response = await api.create_intent(api.intent_body())
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3


async def test_faults_never_touch_admin_ledger_or_health(api):
    await api.set_faults(error_rate=1.0)
    for path in ("/admin/faults", "/ledger?metadata_key=order_id&metadata_value=x", "/health/live"):
        assert (await api.http.get(path)).status_code == 200, path


async def test_fault_knobs_are_validated_and_reset_to_the_settings(api):
    out_of_range = await api.http.put("/admin/faults", json={"error_rate": 1.5})
    assert out_of_range.status_code == 422
    unknown = await api.http.put("/admin/faults", json={"chaos": 1})
    assert unknown.status_code == 422
    changed = await api.http.put("/admin/faults", json={"webhook_drop_rate": 0.5})
    assert changed.json()["webhook_drop_rate"] == 0.5
    assert changed.json()["error_rate"] == 0.0  # untouched knobs keep their value
    reset = await api.http.post("/admin/faults/reset")
    assert reset.json()["webhook_drop_rate"] == 0.0
    assert (await api.http.get("/admin/faults")).json() == reset.json()
