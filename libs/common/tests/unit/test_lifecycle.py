"""The service lifecycle: parts by role, in order, stopped in reverse, never half-started."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import structlog

from waybill.common.lifecycle import ALL_ROLES, Lifecycle, Role, parse_roles
from waybill.devstack.testing import eventually


def test_roles_default_to_all_and_unknown_names_are_refused() -> None:
    assert parse_roles(None) == ALL_ROLES
    assert parse_roles("") == ALL_ROLES
    assert parse_roles(" api , Relay ") == {Role.API, Role.RELAY}
    with pytest.raises(ValueError, match="unknown role"):
        parse_roles("api,cron")


def _recording(journal: list[str], name: str):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def part() -> AsyncIterator[None]:
        journal.append(f"start {name}")
        try:
            yield
        finally:
            journal.append(f"stop {name}")

    return part


async def test_parts_start_in_order_and_stop_in_reverse_for_the_roles_run() -> None:
    journal: list[str] = []
    life = Lifecycle("svc", {Role.API, Role.RELAY})

    async def migrate() -> None:
        journal.append("migrate")

    async def dispose() -> None:
        journal.append("dispose")

    life.step("database", migrate)
    life.cleanup("engine", dispose)
    life.context(Role.RELAY, "relay", _recording(journal, "relay"))
    life.context(Role.CONSUMER, "consumer", _recording(journal, "consumer"))
    life.context(Role.API, "keys", _recording(journal, "keys"))
    async with life.running():
        journal.append("serving")
    assert journal == [
        "migrate",
        "start relay",
        "start keys",
        "serving",
        "stop keys",
        "stop relay",
        "dispose",
    ]


async def test_a_part_that_fails_to_start_stops_the_ones_started_before_it() -> None:
    journal: list[str] = []
    life = Lifecycle("svc")
    life.context(Role.RELAY, "relay", _recording(journal, "relay"))

    async def broken() -> None:
        raise RuntimeError("no database")

    life.step("database", broken)
    life.context(Role.API, "keys", _recording(journal, "keys"))
    with pytest.raises(RuntimeError, match="no database"):
        async with life.running():
            journal.append("serving")
    assert journal == ["start relay", "stop relay"]


async def test_a_task_is_stopped_gracefully_then_cancelled() -> None:
    events: list[str] = []
    started = asyncio.Event()
    stopping = asyncio.Event()

    async def loop() -> None:
        started.set()
        try:
            await stopping.wait()
            events.append("drained")
            await asyncio.Event().wait()  # would run forever: the lifecycle cancels it
        except asyncio.CancelledError:
            events.append("cancelled")
            raise

    async def stop() -> None:
        stopping.set()
        await asyncio.sleep(0)

    life = Lifecycle("svc")
    life.task(Role.WORKERS, "loop", loop, stop=stop)
    async with life.running():
        await asyncio.wait_for(started.wait(), 5)
    assert events == ["drained", "cancelled"]


async def test_a_task_that_dies_is_logged_when_it_dies() -> None:
    async def crash() -> None:
        raise ValueError("boom")

    life = Lifecycle("svc")
    life.task(Role.WORKERS, "crashy", crash)
    with structlog.testing.capture_logs() as logs:
        async with life.running():
            failed = await eventually(
                lambda: [e for e in logs if e["event"] == "service_task_failed"],
                timeout_s=5,
                interval_s=0.01,
                what="the task's failure logged",
            )
    assert failed[0]["task"] == "crashy"
