"""``GET /admin/queues`` on payments: the charges queue and the tenant's own last jobs."""

from __future__ import annotations

import httpx

from waybill.devstack.testing import new_tenant

from .conftest import Shop


async def test_admin_queues_shows_the_charges_queue_and_only_the_tenants_jobs(
    shop: Shop, infra, saga
):
    order = await shop.place("pm_card_ok")
    payment = await shop.settled(order["id"], "captured")
    other = await new_tenant(infra, saga.orders.url)
    other_admin = httpx.AsyncClient(base_url=saga.payments.url, headers=other.admin.headers)
    try:
        mine = await shop.payments_admin.get("/admin/queues")
        theirs = await other_admin.get("/admin/queues")
        forbidden = await shop.payments.get("/admin/queues")
    finally:
        await other_admin.aclose()
        await other.aclose()

    assert mine.status_code == 200, mine.text
    (charges,) = mine.json()["queues"]
    assert charges["name"] == "charges"
    assert {"depth", "running", "failed", "oldest_waiting_s"} <= set(charges)
    (job,) = [j for j in mine.json()["recent_jobs"] if j["key"] == payment["id"]]
    assert (job["queue"], job["status"], job["attempts"]) == ("charges", "done", 1)
    assert theirs.status_code == 200
    assert theirs.json()["recent_jobs"] == []  # another tenant's admin sees none of ours
    assert forbidden.status_code == 403
