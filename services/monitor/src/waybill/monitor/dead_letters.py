"""Dead-letter use cases: read them, retry one to the group that failed, abandon one.

Retry of a ``consumer`` dead letter: the original record (its key, its value or the edited
one, its non-``dlq_`` headers) goes to ``waybill.retry.<group>`` with ``dlq_retry_id`` and
``dlq_retry_priority`` (the issue-11 spec), read by that consumer group only; its outcome
record resolves it (``ingest``). Retry of a ``delivery`` dead letter: the notifier replays the
message (``POST /deliveries/{id}/replay``) with the caller's own admin key (the dead letter is
of the caller's tenant); the message's final outcome event resolves it or sets it back.

Each action runs in one transaction that locks the dead letter: its status is checked, the
retry handed over (produced with acks=all, or replayed), then status and audit are written.
If the hand-over fails, nothing is written and the dead letter stays ``pending``; if the commit
fails after it, the retry is out and its outcome still resolves the letter (from ``pending``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import ValidationError
from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from waybill.common.keyset import Position, newest_first_page
from waybill.common.registry import EventRegistry
from waybill.common.topics import retry_topic
from waybill.monitor import repository
from waybill.monitor.domain.errors import (
    DataNotEditable,
    DeadLetterNotFound,
    InvalidEventData,
    RetryUnavailable,
)
from waybill.monitor.domain.lifecycle import act
from waybill.monitor.tables import dead_letters

log = structlog.get_logger(__name__)


class DeadLetters:
    def __init__(
        self,
        engine: AsyncEngine,
        registry: EventRegistry,
        *,
        bootstrap_servers: str,
        notifier: httpx.AsyncClient,
    ) -> None:
        self._engine = engine
        self._registry = registry
        self._bootstrap_servers = bootstrap_servers
        self._producer: AIOKafkaProducer | None = None
        self._notifier = notifier

    async def start(self) -> None:
        """Start the producer of retries (acks=all: a retry is out only once durable)."""
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            client_id="monitor-retries",
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def page(
        self, tenant_id: str, filters: dict[str, str | None], *, limit: int, after: Position | None
    ) -> tuple[Sequence[Any], Position | None]:
        query = repository.dead_letters_query(tenant_id, filters)
        return await newest_first_page(
            self._engine,
            query,
            created=dead_letters.c.created_at,
            key=dead_letters.c.id,
            limit=limit,
            after=after,
        )

    async def groups(
        self, tenant_id: str, filters: dict[str, str | None], *, limit: int, after: Position | None
    ) -> tuple[Sequence[Any], Position | None]:
        grouped = repository.groups_query(tenant_id, filters).subquery()
        return await newest_first_page(
            self._engine,
            select(grouped),
            created=grouped.c.last_seen,
            key=grouped.c.fingerprint,
            limit=limit,
            after=after,
        )

    async def get(self, tenant_id: str, dead_letter_id: str) -> tuple[Row[Any], Sequence[Any]]:
        async with self._engine.connect() as conn:
            letter = await repository.find_dead_letter(conn, dead_letter_id, tenant_id, lock=False)
            if letter is None:
                raise _not_found(dead_letter_id)
            return letter, await repository.audit_of(conn, dead_letter_id)

    async def abandon(self, tenant_id: str, dead_letter_id: str, actor: str) -> Row[Any]:
        async with self._engine.begin() as conn:
            await self.abandon_in(conn, tenant_id, dead_letter_id, actor)
        return await self._fresh(tenant_id, dead_letter_id)

    async def abandon_in(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        dead_letter_id: str,
        actor: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Abandon a pending dead letter in ``conn``'s transaction (a bulk job's item)."""
        letter = await self._locked(conn, tenant_id, dead_letter_id)
        status = act(letter.status, "abandon", dead_letter_id)
        await repository.update_dead_letter(conn, dead_letter_id, status=status)
        await repository.add_audit(conn, dead_letter_id, actor, "abandoned", detail or {})

    async def retry(
        self,
        tenant_id: str,
        dead_letter_id: str,
        actor: str,
        *,
        priority: str,
        data: dict[str, Any] | None,
        authorization: str | None,
    ) -> Row[Any]:
        async with self._engine.begin() as conn:
            letter = await self.retry_in(
                conn,
                tenant_id,
                dead_letter_id,
                actor,
                priority=priority,
                data=data,
                authorization=authorization,
            )
        log.info(
            "monitor_dead_letter_retried",
            dead_letter_id=dead_letter_id,
            tenant_id=tenant_id,
            kind=letter.kind,
            priority=priority,
            edited=data is not None,
        )
        return await self._fresh(tenant_id, dead_letter_id)

    async def retry_in(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        dead_letter_id: str,
        actor: str,
        *,
        priority: str,
        data: dict[str, Any] | None = None,
        authorization: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> Row[Any]:
        """Retry a pending dead letter in ``conn``'s transaction; returns it as it was. A
        ``delivery`` one needs the caller's ``authorization`` (the notifier's replay is done
        with the admin's own key, which the monitor never stores)."""
        letter = await self._locked(conn, tenant_id, dead_letter_id)
        status = act(letter.status, "retry", dead_letter_id)
        audit: dict[str, Any] = {"priority": priority, **(detail or {})}
        if letter.kind == "delivery":
            if data is not None:
                raise DataNotEditable("a webhook message is replayed as it was sent")
            if authorization is None:
                raise RetryUnavailable(
                    "a webhook message is replayed with the admin's own key: retry it by itself "
                    "(POST /api/dlq/{id}/retry)"
                )
            await self._replay(letter, authorization)
        else:
            value = letter.record_value
            if data is not None:
                value = self._edited(letter, data)
                audit["data"] = {"before": _json_or_none(letter.record_value), "after": data}
            await self._redeliver(letter, value, priority)
            audit["topic"] = retry_topic(letter.consumer_group)
        await repository.update_dead_letter(
            conn, dead_letter_id, status=status, retries=letter.retries + 1
        )
        await repository.add_audit(conn, dead_letter_id, actor, "retried", audit)
        return letter  # type: ignore[no-any-return]

    def _edited(self, letter: Row[Any], data: dict[str, Any]) -> bytes:
        """``data`` as the record's new value, if the event type's schema accepts it."""
        if not letter.event_type or not self._registry.knows(letter.event_type):
            raise DataNotEditable(
                f"no schema for event type {letter.event_type!r} to check edited data against"
            )
        try:
            self._registry.decode(letter.event_type, letter.schema_version or 1, data)
        except ValidationError as exc:
            errors = [
                {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
                for e in exc.errors()
            ]
            raise InvalidEventData(
                f"data does not match the schema of {letter.event_type}",
                extra={"errors": errors},
            ) from None
        except ValueError as exc:  # an upcaster missing for the record's version
            raise InvalidEventData(str(exc)) from None
        return json.dumps(data, separators=(",", ":")).encode()

    async def _redeliver(self, letter: Row[Any], value: bytes | None, priority: str) -> None:
        headers = [(name, text.encode()) for name, text in letter.record_headers]
        headers += [
            ("dlq_retry_id", letter.id.encode()),
            ("dlq_retry_priority", priority.encode()),
        ]
        if self._producer is None:
            raise RetryUnavailable("the monitor's API is not running", retry_after_s=5)
        try:
            await self._producer.send_and_wait(
                retry_topic(letter.consumer_group),
                value=value,
                key=letter.record_key,
                headers=headers,
            )
        except KafkaError as exc:
            raise RetryUnavailable(
                f"the broker did not take the retry: {exc}", retry_after_s=5
            ) from exc

    async def _replay(self, letter: Row[Any], authorization: str) -> None:
        try:
            answer = await self._notifier.post(
                f"/deliveries/{letter.delivery_id}/replay",
                headers={"Authorization": authorization},
            )
        except httpx.HTTPError as exc:
            raise RetryUnavailable(
                f"the notifier did not answer: {type(exc).__name__}", retry_after_s=5
            ) from exc
        if answer.status_code != 200:
            raise RetryUnavailable(
                f"the notifier refused the replay ({answer.status_code}): {answer.text[:300]}",
                retry_after_s=5,
            )

    async def _locked(self, conn: AsyncConnection, tenant_id: str, dead_letter_id: str) -> Any:
        letter = await repository.find_dead_letter(conn, dead_letter_id, tenant_id, lock=True)
        if letter is None:
            raise _not_found(dead_letter_id)
        return letter

    async def _fresh(self, tenant_id: str, dead_letter_id: str) -> Row[Any]:
        letter, _ = await self.get(tenant_id, dead_letter_id)
        return letter


def _not_found(dead_letter_id: str) -> DeadLetterNotFound:
    return DeadLetterNotFound(f"no dead letter {dead_letter_id}")


def _json_or_none(value: bytes | None) -> Any:
    try:
        return json.loads(value) if value else None
    except ValueError:
        return None
