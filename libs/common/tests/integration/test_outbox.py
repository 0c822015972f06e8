"""The outbox relay on real PostgreSQL + Kafka: late commits, order, crashes, leadership."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.common.db import create_engine
from waybill.common.eventstore import EventStore, NewEvent, RecordedEvent, define_common_tables
from waybill.common.outbox import DEFAULT_LOCK_KEY, OutboxRelay
from waybill.devstack.testing import eventually


@dataclass
class Outbox:
    engine: AsyncEngine
    store: EventStore
    dsn: str
    topic: str
    bootstrap_servers: str
    relays: list[subprocess.Popen[bytes]] = field(default_factory=list)

    async def append(self, stream_id: str, expected: int, count: int = 1) -> list[RecordedEvent]:
        async with self.engine.begin() as conn:
            return await self.append_in(conn, stream_id, expected, count)

    async def append_in(
        self, conn: Any, stream_id: str, expected: int, count: int = 1
    ) -> list[RecordedEvent]:
        return await self.store.append(
            conn,
            stream_id=stream_id,
            stream_type="order",
            tenant_id="t1",
            events=[NewEvent("order.placed", {"i": i}) for i in range(count)],
            expected_version=expected,
            correlation_id=stream_id,
        )

    async def backlog(self) -> int:
        async with self.engine.connect() as conn:
            return (await conn.exec_driver_sql("SELECT count(*) FROM outbox")).scalar_one()

    def start_relay(self, log_path: Path, batch_size: int = 500) -> subprocess.Popen[bytes]:
        """A relay in its own process (so a test can SIGKILL it)."""
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "waybill.common.outbox",
                "--dsn",
                self.dsn,
                "--bootstrap",
                self.bootstrap_servers,
                "--service",
                "test",
                "--batch-size",
                str(batch_size),
                "--poll-interval",
                "0.5",
                "--log-level",
                "DEBUG",  # published_batches() reads the per-batch lines
            ],
            stdout=subprocess.DEVNULL,
            stderr=log_path.open("wb"),
        )
        self.relays.append(process)
        return process


@pytest.fixture
async def outbox(infra) -> AsyncIterator[Outbox]:
    name = await asyncio.to_thread(infra.new_database, "outbox")
    topic = await infra.anew_topic("outbox")
    metadata = MetaData()
    events, outbox_table, _ = define_common_tables(metadata)
    settings = infra.settings()
    engine = create_engine(settings.database_dsn(name), pool_size=8)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    store = EventStore(events, outbox_table, source="/waybill/test", topic=topic)
    box = Outbox(engine, store, settings.asyncpg_dsn(name), topic, infra.bootstrap_servers)
    yield box
    for process in box.relays:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    await engine.dispose()


@pytest.fixture
async def relay(outbox) -> AsyncIterator[OutboxRelay]:
    """A relay in this process, for tests that do not kill it."""
    running = OutboxRelay(
        outbox.dsn, outbox.bootstrap_servers, service="test", batch_size=50, poll_interval_s=0.5
    )
    task = asyncio.create_task(running.run())
    yield running
    await running.stop()
    await asyncio.gather(task, return_exceptions=True)


async def read_topic(
    outbox: Outbox, until: Callable[[list[Any]], bool], timeout_s: float = 30.0
) -> list[Any]:
    """Every record on the topic from the start, read until ``until(records)`` holds."""
    # A fresh group per read: it starts from the earliest offset of every partition.
    consumer = AIOKafkaConsumer(
        outbox.topic,
        bootstrap_servers=outbox.bootstrap_servers,
        group_id=f"reader-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[Any] = []
    try:

        async def read_more() -> list[Any]:
            batches = await consumer.getmany(timeout_ms=200)
            records.extend(r for batch in batches.values() for r in batch)
            return records

        if until(records):
            return records
        return await eventually(
            read_more,
            until=until,
            timeout_s=timeout_s,
            interval_s=0,
            what=f"the records wanted on {outbox.topic}",
        )
    finally:
        await consumer.stop()


def header(record: Any, name: str) -> str:
    return dict(record.headers)[name].decode()


def ids_of(records: list[Any]) -> set[str]:
    return {header(r, "ce_id") for r in records}


def contains(*event_ids: uuid.UUID) -> Callable[[list[Any]], bool]:
    wanted = {str(e) for e in event_ids}
    return lambda records: wanted <= ids_of(records)


async def outbox_id(conn: Any, event_id: uuid.UUID) -> int:
    result = await conn.exec_driver_sql("SELECT id FROM outbox WHERE event_id = $1", (event_id,))
    return int(result.scalar_one())


async def test_relay_publishes_a_row_whose_transaction_committed_after_a_later_one(outbox, relay):
    async with outbox.engine.begin() as conn_a:
        [late] = await outbox.append_in(conn_a, f"a-{uuid.uuid4()}", 0)
        late_id = await outbox_id(conn_a, late.event_id)
        async with outbox.engine.begin() as conn_b:
            [early] = await outbox.append_in(conn_b, f"b-{uuid.uuid4()}", 0)
            early_id = await outbox_id(conn_b, early.event_id)
        assert late_id < early_id  # A took the lower position but has not committed yet
        records = await read_topic(outbox, contains(early.event_id))
        assert str(late.event_id) not in ids_of(records)
    # A commits now, after the relay already published (and moved past) the higher row B.
    records = await read_topic(outbox, contains(late.event_id, early.event_id))
    assert ids_of(records) == {str(late.event_id), str(early.event_id)}


async def test_relay_publishes_each_stream_in_version_order(outbox, relay):
    streams, versions = 24, 12

    async def writer(stream_id: str) -> None:
        for version in range(versions):
            await outbox.append(stream_id, version)

    stream_ids = [f"order-{uuid.uuid4()}" for _ in range(streams)]
    # Writers interleave across streams while the relay publishes concurrently.
    await asyncio.gather(*(writer(s) for s in stream_ids))
    records = await read_topic(outbox, lambda rs: len(rs) >= streams * versions)
    sequences: dict[str, list[int]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    for record in records:
        sequences[record.key.decode()].append(int(header(record, "ce_sequence")))
        partitions[record.key.decode()].add(record.partition)
    assert set(sequences) == set(stream_ids)
    for stream_id in stream_ids:
        assert sequences[stream_id] == list(range(1, versions + 1)), stream_id
        assert len(partitions[stream_id]) == 1


async def test_relay_killed_mid_batch_loses_nothing_after_restart(outbox, tmp_path):
    events_per_append, appends = 500, 40
    appended: list[RecordedEvent] = []
    for _ in range(appends):
        appended += await outbox.append(f"order-{uuid.uuid4()}", 0, events_per_append)
    total = len(appended)

    first = outbox.start_relay(tmp_path / "relay-1.log", batch_size=200)
    await eventually(
        lambda: _below(outbox, total), what="the relay's first batch", timeout_s=30, interval_s=0.02
    )
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    left = await outbox.backlog()
    assert 0 < left < total, "the relay must be killed while work remains"

    outbox.start_relay(tmp_path / "relay-2.log", batch_size=200)
    await eventually(
        lambda: _below(outbox, 1), what="the outbox drained", timeout_s=60, interval_s=0.02
    )
    wanted = {str(e.event_id) for e in appended}
    records = await read_topic(outbox, lambda rs: wanted <= ids_of(rs), timeout_s=60)
    assert ids_of(records) == wanted


async def _below(outbox: Outbox, rows: int) -> bool:
    return await outbox.backlog() < rows


LEADER_LOCKS = """
SELECT a.application_name, l.granted
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.database = (SELECT oid FROM pg_database
                                                 WHERE datname = current_database())
  AND l.classid::bigint = $1 AND l.objid::bigint = $2
"""


async def leader_locks(outbox: Outbox) -> dict[int, bool]:
    """Relay process id -> holds (True) or waits for (False) the leader lock."""
    key = DEFAULT_LOCK_KEY & 0xFFFF_FFFF_FFFF_FFFF
    async with outbox.engine.connect() as conn:
        rows = await conn.exec_driver_sql(LEADER_LOCKS, (key >> 32, key & 0xFFFF_FFFF))
        return {int(name.rsplit(":", 1)[1]): granted for name, granted in rows}


def published_batches(log_path: Path) -> int:
    lines = log_path.read_text().splitlines()
    return sum(json.loads(line).get("event") == "outbox_batch_published" for line in lines)


@pytest.fixture
def relay_logs(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    yield tmp_path / "relay-1.log", tmp_path / "relay-2.log"


async def test_second_relay_stays_idle_until_the_leader_dies_then_takes_over(outbox, relay_logs):
    log_1, log_2 = relay_logs
    first = outbox.start_relay(log_1)

    async def first_leads() -> bool:
        return (await leader_locks(outbox)).get(first.pid) is True

    # A relay is a fresh Python process: on a loaded 2-core machine its start alone took 30 s.
    await eventually(first_leads, what="relay 1 leads", timeout_s=90, interval_s=0.02)
    second = outbox.start_relay(log_2)

    async def second_waits() -> bool:
        return (await leader_locks(outbox)).get(second.pid) is False

    await eventually(
        second_waits, what="relay 2 waits for the leader lock", timeout_s=90, interval_s=0.02
    )

    before = [e for _ in range(5) for e in await outbox.append(f"order-{uuid.uuid4()}", 0)]
    await read_topic(outbox, contains(*(e.event_id for e in before)))
    assert published_batches(log_1) >= 1
    assert published_batches(log_2) == 0
    assert (await leader_locks(outbox)) == {first.pid: True, second.pid: False}

    first.send_signal(signal.SIGKILL)
    first.wait(10)
    after = [e for _ in range(5) for e in await outbox.append(f"order-{uuid.uuid4()}", 0)]
    await read_topic(outbox, contains(*(e.event_id for e in after)))
    assert published_batches(log_2) >= 1
    assert (await leader_locks(outbox)) == {second.pid: True}
