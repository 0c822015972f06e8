"""The event store on a real PostgreSQL: optimistic concurrency, outbox rows, transactions."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel
from sqlalchemy import MetaData, Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.common.backoff import Backoff, RetryPolicy
from waybill.common.contracts import DomainEvent
from waybill.common.db import create_engine
from waybill.common.eventstore import (
    Caller,
    ConcurrencyError,
    EventStore,
    NewEvent,
    append_decided,
    define_common_tables,
    retry_on_conflict,
)
from waybill.common.registry import EventRegistry
from waybill.devstack.testing import eventually

FAST = Backoff(base_s=0.001, max_s=0.01)


@dataclass
class Db:
    engine: AsyncEngine
    store: EventStore
    events: Table
    outbox: Table


@pytest.fixture
async def db(infra) -> AsyncIterator[Db]:
    name = await asyncio.to_thread(infra.new_database, "eventstore")
    metadata = MetaData()
    events, outbox, _ = define_common_tables(metadata)
    engine = create_engine(infra.settings().database_dsn(name), pool_size=4)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    store = EventStore(events, outbox, source="/waybill/test", topic="test.events")
    yield Db(engine, store, events, outbox)
    await engine.dispose()


def placed(n: int = 1) -> list[NewEvent]:
    return [NewEvent("order.placed", {"n": i}) for i in range(n)]


async def append(db: Db, stream_id: str, expected: int, events: list[NewEvent] | None = None):
    async with db.engine.begin() as conn:
        return await db.store.append(
            conn,
            stream_id=stream_id,
            stream_type="order",
            tenant_id="t1",
            events=events or placed(),
            expected_version=expected,
            correlation_id="corr-1",
        )


async def count(db: Db, table: Table, stream_id: str) -> int:
    column = table.c.stream_id if table is db.events else table.c.key
    value = stream_id if table is db.events else stream_id.encode()
    async with db.engine.connect() as conn:
        return (await conn.execute(select(func.count()).where(column == value))).scalar_one()


async def wait_until_blocked_on_a_lock(db: Db, deadline_s: float = 10.0) -> None:
    """Poll pg_stat_activity until some session of this database waits on a lock."""
    query = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with db.engine.connect() as conn:

        async def blocked() -> bool:
            # pg_stat_activity is read once per transaction: each probe needs its own.
            waiting = (await conn.exec_driver_sql(query)).scalar_one()
            await conn.commit()
            return bool(waiting > 0)

        await eventually(
            blocked,
            timeout_s=deadline_s,
            interval_s=0.02,
            what="the second append blocking on the first one's row",
        )


async def test_two_concurrent_appends_at_one_expected_version_yield_exactly_one_winner(db):
    stream = f"order-{uuid.uuid4()}"
    await append(db, stream, 0)
    # A holds its uncommitted version 2 while B tries the same version: B must block on the
    # unique index, then lose once A commits -- the race the unique constraint exists for.
    async with db.engine.begin() as conn_a:
        await db.store.append(
            conn_a,
            stream_id=stream,
            stream_type="order",
            tenant_id="t1",
            events=placed(),
            expected_version=1,
            correlation_id="a",
        )
        b = asyncio.create_task(append(db, stream, 1))
        await wait_until_blocked_on_a_lock(db)
    with pytest.raises(ConcurrencyError) as lost:
        await b
    assert lost.value.stream_id == stream and lost.value.expected_version == 1
    async with db.engine.connect() as conn:
        loaded = await db.store.load(conn, stream)
    assert [(e.version, e.metadata["correlation_id"]) for e in loaded] == [(1, "corr-1"), (2, "a")]
    assert await count(db, db.outbox, stream) == 2


async def test_many_racing_appends_at_one_version_have_one_winner(db):
    stream = f"order-{uuid.uuid4()}"
    outcomes = await asyncio.gather(
        *(append(db, stream, 0) for _ in range(8)), return_exceptions=True
    )
    winners = [o for o in outcomes if isinstance(o, list)]
    losers = [o for o in outcomes if isinstance(o, ConcurrencyError)]
    assert len(winners) == 1 and len(losers) == 7
    assert await count(db, db.events, stream) == 1
    assert await count(db, db.outbox, stream) == 1


@pytest.mark.parametrize("expected", [0, 2, 5])
async def test_append_at_a_wrong_expected_version_raises_and_writes_nothing(db, expected):
    stream = f"order-{uuid.uuid4()}"
    await append(db, stream, 0)  # the stream is at version 1
    with pytest.raises(ConcurrencyError) as err:
        await append(db, stream, expected)
    assert err.value.actual_version in (1, None)
    assert await count(db, db.events, stream) == 1
    assert await count(db, db.outbox, stream) == 1


async def test_appended_events_load_back_in_version_order_with_growing_global_positions(db):
    stream = f"order-{uuid.uuid4()}"
    first = await append(db, stream, 0, placed(3))
    second = await append(db, stream, 3, [NewEvent("order.paid", {"amount": "9.99"}, 2)])
    async with db.engine.connect() as conn:
        loaded = await db.store.load(conn, stream)
        tail = await db.store.load(conn, stream, after_version=2)
        version = await db.store.stream_version(conn, stream)
    assert loaded == [*first, *second]
    assert [e.version for e in loaded] == [1, 2, 3, 4]
    positions = [e.global_position for e in loaded]
    assert positions == sorted(positions) and len(set(positions)) == 4
    assert loaded[3].type == "order.paid" and loaded[3].schema_version == 2
    assert loaded[3].data == {"amount": "9.99"}
    assert [e.version for e in tail] == [3, 4]
    assert version == 4


async def test_each_event_gets_an_outbox_record_in_cloudevents_binary_mode(db):
    stream = f"order-{uuid.uuid4()}"
    recorded = await append(db, stream, 0, placed(2))
    async with db.engine.connect() as conn:
        rows = (await conn.execute(select(db.outbox).order_by(db.outbox.c.id))).all()
    assert [row.event_id for row in rows] == [e.event_id for e in recorded]
    for row, event in zip(rows, recorded, strict=True):
        headers = dict(row.headers if isinstance(row.headers, list) else json.loads(row.headers))
        assert row.topic == "test.events" and row.key == stream.encode()
        assert json.loads(row.value) == event.data
        assert headers["ce_id"] == str(event.event_id)
        assert headers["ce_sequence"] == str(event.version)
        assert headers["ce_type"] == "order.placed" and headers["ce_subject"] == stream
        assert headers["ce_tenantid"] == "t1" and headers["ce_correlationid"] == "corr-1"


async def test_append_joins_the_callers_transaction_and_rolls_back_with_it(db):
    stream = f"order-{uuid.uuid4()}"

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        async with db.engine.begin() as conn:
            await db.store.append(
                conn,
                stream_id=stream,
                stream_type="order",
                tenant_id="t1",
                events=placed(),
                expected_version=0,
                correlation_id="c",
            )
            raise Abort
    assert await count(db, db.events, stream) == 0
    assert await count(db, db.outbox, stream) == 0


async def test_retry_on_conflict_reruns_the_command_until_it_wins(db):
    stream = f"order-{uuid.uuid4()}"
    await append(db, stream, 0)
    attempts = 0

    async def command():
        nonlocal attempts
        attempts += 1
        async with db.engine.begin() as conn:
            # The first attempt decides on a stale read, as if a rival had just appended.
            version = 0 if attempts == 1 else await db.store.stream_version(conn, stream)
            return await db.store.append(
                conn,
                stream_id=stream,
                stream_type="order",
                tenant_id="t1",
                events=placed(),
                expected_version=version,
                correlation_id="c",
            )

    recorded = await retry_on_conflict(command, policy=RetryPolicy(attempts=3, backoff=FAST))
    assert attempts == 2 and recorded[0].version == 2


async def test_retry_on_conflict_gives_up_after_its_attempts():
    calls = 0

    async def always_conflicts():
        nonlocal calls
        calls += 1
        raise ConcurrencyError("s", 1, 2)

    with pytest.raises(ConcurrencyError):
        await retry_on_conflict(always_conflicts, policy=RetryPolicy(attempts=4, backoff=FAST))
    assert calls == 4


async def test_a_private_append_is_stored_but_never_reaches_the_outbox(infra):
    from sqlalchemy import MetaData, func, select
    from sqlalchemy.ext.asyncio import create_async_engine

    from waybill.common.eventstore import EventStore, NewEvent, define_common_tables

    metadata = MetaData()
    events, outbox, _ = define_common_tables(metadata)
    database = await asyncio.to_thread(infra.new_database, "private")
    engine = create_async_engine(infra.settings().database_dsn(database))
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    store = EventStore(events, outbox, source="/test", topic="unused")
    try:
        async with engine.begin() as conn:
            await store.append(
                conn,
                stream_id="stock-1",
                stream_type="stock",
                tenant_id="t",
                events=[
                    NewEvent("stock.set", {"n": 1}, public=False),
                    NewEvent("stock.set", {"n": 2}, public=False),
                ],
                expected_version=0,
                correlation_id="c",
            )
        async with engine.connect() as conn:
            assert [e.version for e in await store.load(conn, "stock-1")] == [1, 2]
            assert await conn.scalar(select(func.count()).select_from(outbox)) == 0
        with pytest.raises(ConcurrencyError):
            async with engine.begin() as conn:
                await store.append(
                    conn,
                    stream_id="stock-1",
                    stream_type="stock",
                    tenant_id="t",
                    events=[NewEvent("stock.set", {"n": 3}, public=False)],
                    expected_version=1,
                    correlation_id="c",
                )
    finally:
        await engine.dispose()


class _Renamed(BaseModel):
    """``thing.renamed`` v2: v1 had one ``name``; v2 splits it."""

    first: str
    last: str


async def test_a_v1_event_loads_as_the_v2_model_through_its_upcaster(infra):
    registry = EventRegistry()
    registry.register("thing.renamed", _Renamed, version=2)

    @registry.upcaster("thing.renamed", from_version=1)
    def split_name(data: dict[str, Any]) -> dict[str, Any]:
        first, last = data["name"].split(" ", 1)
        return {"first": first, "last": last}

    metadata = MetaData()
    events, outbox, _ = define_common_tables(metadata)
    database = await asyncio.to_thread(infra.new_database, "upcast")
    engine = create_engine(infra.settings().database_dsn(database), pool_size=2)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    store = EventStore(events, outbox, source="/test", topic="unused", registry=registry)
    stream = f"thing-{uuid.uuid4()}"
    try:
        async with engine.begin() as conn:  # written by a release that knew only v1
            await store.append(
                conn,
                stream_id=stream,
                stream_type="thing",
                tenant_id="t",
                events=[
                    NewEvent("thing.renamed", {"name": "Ada Lovelace"}, schema_version=1),
                    NewEvent("thing.renamed", {"first": "Grace", "last": "Hopper"}, 2),
                ],
                expected_version=0,
                correlation_id="c",
            )
        async with engine.connect() as conn:
            loaded = await store.load(conn, stream)
    finally:
        await engine.dispose()
    assert [r.typed() for r in loaded] == [
        _Renamed(first="Ada", last="Lovelace"),
        _Renamed(first="Grace", last="Hopper"),
    ]
    # The record itself stays as it was stored.
    assert [(r.schema_version, r.data) for r in loaded] == [
        (1, {"name": "Ada Lovelace"}),
        (2, {"first": "Grace", "last": "Hopper"}),
    ]


class _Shelved(DomainEvent):
    event_type: ClassVar[str] = "test.shelved"
    service: ClassVar[str] = "test"
    public: ClassVar[bool] = False
    sku: str


class _Announced(DomainEvent):
    event_type: ClassVar[str] = "test.announced"
    service: ClassVar[str] = "test"
    sku: str


async def test_the_event_class_decides_whether_an_event_reaches_the_outbox(db):
    stream = f"mixed-{uuid.uuid4()}"
    caller = Caller(tenant_id="t1", correlation_id="c")
    async with db.engine.begin() as conn:
        recorded = await append_decided(
            db.store,
            conn,
            caller,
            stream_id=stream,
            stream_type="mixed",
            expected_version=0,
            events=[_Shelved(sku="A"), _Announced(sku="A"), _Shelved(sku="B")],
        )
    async with db.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(db.outbox.c.event_id, db.outbox.c.value, db.outbox.c.headers).where(
                    db.outbox.c.key == stream.encode()
                )
            )
        ).all()
        stored = await db.store.load(conn, stream)
    assert [r.type for r in stored] == ["test.shelved", "test.announced", "test.shelved"]
    assert [r.data for r in stored] == [{"sku": "A"}, {"sku": "A"}, {"sku": "B"}]
    assert [row.event_id for row in rows] == [recorded[1].event_id]
    assert json.loads(rows[0].value) == {"sku": "A"}
    assert dict(rows[0].headers)["ce_type"] == "test.announced"
    assert dict(rows[0].headers)["ce_sequence"] == "2"
