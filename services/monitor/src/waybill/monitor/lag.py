"""Consumer lag per group and partition, read from Kafka: each group's committed offsets
(``AIOKafkaAdminClient.list_consumer_group_offsets``) against the partitions' end offsets
(``AIOKafkaConsumer.end_offsets``). Lag is the broker's, not a tenant's: every admin sees it.

Each read is bounded (``timeout_s``); a broker that does not answer in time gives
``{"status": "unknown"}`` rather than holding the overview. Every read also sets the gauge
``waybill_monitor_consumer_lag`` (group, topic, partition).
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import Gauge

log = structlog.get_logger(__name__)

PARTITION_LAG = Gauge(
    "waybill_monitor_consumer_lag",
    "Records behind the partition end per consumer group and partition, as the monitor read "
    "them from the broker (committed offsets against end offsets).",
    ["group", "topic", "partition"],
)


class LagReader:
    def __init__(self, bootstrap_servers: str, *, timeout_s: float) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._timeout_s = timeout_s
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    def start(self) -> None:
        """Nothing yet: the clients connect on the first read (the monitor starts, and shows
        lag as unknown, with the broker down)."""

    async def stop(self) -> None:
        await self._close()

    async def _close(self) -> None:
        consumer, admin = self._consumer, self._admin
        self._consumer = self._admin = None
        if consumer is not None:
            await consumer.stop()
        if admin is not None:
            await admin.close()

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._consumer is None:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self._bootstrap_servers, client_id="monitor-lag"
            )
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap_servers,
                client_id="monitor-lag",
                enable_auto_commit=False,
            )
            try:
                await admin.start()
                await consumer.start()
            except BaseException:
                await consumer.stop()
                await admin.close()
                raise
            self._admin, self._consumer = admin, consumer
        return self._admin, self._consumer

    async def read(self) -> dict[str, Any]:
        """``{"status": "ok", "groups": {group: {"total", "partitions": [...]}}}``, or
        ``{"status": "unknown", "error"}``."""
        try:
            async with asyncio.timeout(self._timeout_s):
                groups = await self._read()
        except Exception as exc:  # the broker's absence is a result here, shown as unknown
            log.warning("monitor_lag_unavailable", error=repr(exc))
            await self._close()  # connect afresh next time
            return {"status": "unknown", "groups": {}, "error": type(exc).__name__}
        return {"status": "ok", "groups": groups}

    async def _read(self) -> dict[str, Any]:
        admin, consumer = await self._clients()
        listed = await admin.list_consumer_groups()
        names = sorted({str(entry[0]) for entry in listed})
        offsets = await asyncio.gather(*(admin.list_consumer_group_offsets(name) for name in names))
        committed = {
            name: {tp: meta.offset for tp, meta in found.items() if meta.offset >= 0}
            for name, found in zip(names, offsets, strict=True)
        }
        partitions = sorted({tp for found in committed.values() for tp in found})
        ends: dict[TopicPartition, int] = (
            await consumer.end_offsets(partitions) if partitions else {}
        )
        groups: dict[str, Any] = {}
        for name, found in committed.items():
            if not found:
                continue
            rows = []
            for tp in sorted(found):
                end = ends.get(tp, found[tp])
                lag = max(end - found[tp], 0)
                rows.append(
                    {
                        "topic": tp.topic,
                        "partition": tp.partition,
                        "committed": found[tp],
                        "end": end,
                        "lag": lag,
                    }
                )
                PARTITION_LAG.labels(name, tp.topic, str(tp.partition)).set(lag)
            groups[name] = {"total": sum(r["lag"] for r in rows), "partitions": rows}
        return groups
