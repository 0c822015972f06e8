"""What a service process runs, by role, started in order and stopped in reverse.

Every service has the same parts: preparing its database (create it where it may, migrate),
the HTTP API, its Kafka consumers, its outbox relay and its workers (queue consumers,
periodic jobs). ``WAYBILL_ROLES`` (CONTRACT.md § every service) names the roles a process
runs, so production can scale HTTP, consumers and the relay as separate Deployments; the
default runs all of them in one process, as ``waybill up`` and the tests do.

A service declares its parts once, in ``app.py``::

    life = Lifecycle(SERVICE, settings.roles)
    life.step("database", prepare)                      # every role: before anything else
    life.task(Role.RELAY, "outbox-relay", relay.run, stop=relay.stop)
    life.component(Role.CONSUMER, "consumer", build_consumer)  # start() / stop()
    life.cleanup("engine", engine.dispose)              # every role: after everything else

and hands ``life.lifespan`` to ``create_app``. Parts start in declaration order inside one
``AsyncExitStack``: if one fails to start, the ones already started are stopped (in reverse)
and the error propagates, so a process never runs half-started. A background task that ends
on its own with an error is logged at once (``service_task_failed``) instead of surfacing only
at shutdown.

Written here rather than taken from a library: FastAPI's lifespan is the hook, and
``contextlib.AsyncExitStack`` already is the mechanism; what this module adds is the role
filter and one way to run a loop as a task, which no library offers on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class Role(StrEnum):
    API = "api"
    CONSUMER = "consumer"
    RELAY = "relay"
    WORKERS = "workers"


ALL_ROLES: frozenset[Role] = frozenset(Role)


def parse_roles(value: str | Iterable[str] | None) -> frozenset[Role]:
    """``"api,relay"`` (or an iterable of names) as roles; empty or None means all of them.

    An unknown name is a configuration error, reported with the names that exist.
    """
    if value is None:
        return ALL_ROLES
    names = value.split(",") if isinstance(value, str) else list(value)
    cleaned = [name.strip().lower() for name in names if name.strip()]
    if not cleaned:
        return ALL_ROLES
    unknown = sorted(set(cleaned) - {role.value for role in Role})
    if unknown:
        known = ", ".join(role.value for role in Role)
        raise ValueError(f"unknown role(s) {', '.join(unknown)} in WAYBILL_ROLES (known: {known})")
    return frozenset(Role(name) for name in cleaned)


ContextFactory = Callable[[], AbstractAsyncContextManager[Any]]


@dataclass(frozen=True)
class _Part:
    name: str
    role: Role | None  # None: every process runs it
    enter: ContextFactory


class Lifecycle:
    """The ordered parts of one service process, filtered by the roles it runs."""

    def __init__(self, service: str, roles: Collection[Role] = ALL_ROLES) -> None:
        self.service = service
        self.roles = frozenset(roles)
        self._parts: list[_Part] = []

    def runs(self, role: Role) -> bool:
        return role in self.roles

    def context(self, role: Role | None, name: str, enter: ContextFactory) -> None:
        """Enter ``enter()`` at start and exit it at stop, if this process runs ``role``."""
        self._parts.append(_Part(name, role, enter))

    def step(self, name: str, run: Callable[[], Awaitable[Any]], role: Role | None = None) -> None:
        """Await ``run()`` at start (e.g. migrations); nothing to undo at stop."""

        @asynccontextmanager
        async def once() -> AsyncIterator[None]:
            await run()
            yield

        self.context(role, name, once)

    def cleanup(
        self, name: str, run: Callable[[], Awaitable[Any]], role: Role | None = None
    ) -> None:
        """Await ``run()`` at stop (e.g. ``engine.dispose``), after every later part stopped."""

        @asynccontextmanager
        async def at_exit() -> AsyncIterator[None]:
            try:
                yield
            finally:
                await run()

        self.context(role, name, at_exit)

    def component(self, role: Role | None, name: str, make: Callable[[], Any]) -> None:
        """``make()`` at start returns an object with ``start()`` and ``stop()`` (or
        ``close()``), each sync or async: it is started, and stopped at stop. ``make`` runs at
        start, not at declaration, for parts that need the running loop (Kafka clients)."""

        @asynccontextmanager
        async def started() -> AsyncIterator[Any]:
            part = make()
            await _maybe_await(part.start())
            try:
                yield part
            finally:
                finish = getattr(part, "stop", None) or part.close
                await _maybe_await(finish())

        self.context(role, name, started)

    def task(
        self,
        role: Role | None,
        name: str,
        run: Callable[[], Awaitable[Any]],
        *,
        stop: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        """Run the loop ``run()`` as a background task; at stop await ``stop()`` (a graceful
        end, if the part has one), then cancel the task and wait for it."""
        self.context(role, name, lambda: _background(self.service, name, run, stop))

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Start every part this process runs; stop them in reverse on exit."""
        async with AsyncExitStack() as stack:
            for part in self._parts:
                if part.role is not None and part.role not in self.roles:
                    continue
                await stack.enter_async_context(part.enter())
            log.info(
                "service_start_succeeded",
                service=self.service,
                roles=sorted(role.value for role in self.roles),
            )
            try:
                yield
            finally:
                log.info("service_stop_started", service=self.service)

    def lifespan(self, _app: object = None) -> AbstractAsyncContextManager[None]:
        """``create_app(lifespan=life.lifespan)``: FastAPI passes the app, which is not needed."""
        return self.running()


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


@asynccontextmanager
async def _background(
    service: str,
    name: str,
    run: Callable[[], Awaitable[Any]],
    stop: Callable[[], Awaitable[Any]] | None,
) -> AsyncIterator[asyncio.Task[Any]]:
    async def body() -> Any:
        return await run()

    task = asyncio.create_task(body(), name=f"{service}-{name}")

    def report(done: asyncio.Task[Any]) -> None:
        if done.cancelled():
            return
        error = done.exception()
        if error is not None:
            log.error(
                "service_task_failed", service=service, task=name, error=repr(error), exc_info=error
            )

    task.add_done_callback(report)
    try:
        yield task
    finally:
        if stop is not None and not task.done():
            try:
                await stop()
            except Exception as exc:  # still cancel the task below; never leave it running
                log.warning("service_task_stop_failed", service=service, task=name, error=repr(exc))
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
