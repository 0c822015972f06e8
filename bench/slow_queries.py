"""Per-statement cost of slow-query detection (``waybill.common.observability.slow_queries``).

    .venv/bin/python bench/slow_queries.py [--statements 10000] [--rounds 5]

Starts an embedded PostgreSQL (or uses ``WAYBILL_DATABASE_URL``) and times ``SELECT 1`` one
statement at a time on one connection, with and without the hooks, in alternating rounds of
the same run (both sides see the same load; which side goes first alternates too): through
SQLAlchemy (``conn.execute(text(...))``) and through the raw driver (``db.driver`` +
``fetchval``). Reports the best round's CPU microseconds of this process per statement (the
client's cost is what the hooks add; wall time on a shared machine is mostly PostgreSQL and
noise), then the hooks' own cost measured without a database.

Figures on the 2-core dev machine while other jobs ran (load 2-4), 30 rounds x 1,000:
the hooks alone cost 0.30 us (SQLAlchemy pair) and 0.57 us (TimedConnection) per statement;
end to end the raw driver's ``SELECT 1`` (26-43 us) moved by +0.7 to +4 us and SQLAlchemy's
(95-160 us) by -2 to +18 us between runs, the same spread as two identical engines compared
with each other (104.5 vs 117.9 us in one run): below what this machine can resolve. The
asyncpg query logger that was tried first cost +8.8 us on the raw path, hence the wrapper.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from waybill.common.db import async_url, create_databases, create_engine, driver
from waybill.common.observability.slow_queries import SlowQueryWatch, TimedConnection
from waybill.common.settings import WaybillSettings
from waybill.devstack.infra import EmbeddedPostgres, free_port

DATABASE = "waybill_slowbench"


async def per_statement_us(engine: AsyncEngine, statements: int, raw: bool) -> float:
    async with engine.begin() as conn:
        db = await driver(conn)
        started = time.process_time()
        if raw:
            for _ in range(statements):
                await db.fetchval("SELECT 1")
        else:
            query = text("SELECT 1")
            for _ in range(statements):
                await conn.execute(query)
        return (time.process_time() - started) / statements * 1e6


async def measure(server_url: str, statements: int, rounds: int) -> dict[str, float]:
    dsn = WaybillSettings(database_url=server_url).database_dsn(DATABASE)
    watched = create_engine(dsn, pool_size=1, slow_query_ms=200)
    plain = create_async_engine(async_url(dsn), pool_size=1)
    samples: dict[str, list[float]] = {
        k: [] for k in ("sa_plain", "sa_hooked", "raw_plain", "raw_hooked")
    }
    try:
        for engine in (watched, plain):  # warm up: connect, prepare
            await per_statement_us(engine, 500, raw=False)
            await per_statement_us(engine, 500, raw=True)
        for round_ in range(rounds):
            for raw, label in ((False, "sa"), (True, "raw")):
                sides = [("plain", plain), ("hooked", watched)]
                for side, engine in sides if round_ % 2 else reversed(sides):
                    samples[f"{label}_{side}"].append(
                        await per_statement_us(engine, statements, raw)
                    )
    finally:
        await watched.dispose()
        await plain.dispose()
    return {k: min(v) for k, v in samples.items()}


def hooks_alone_us(calls: int = 200_000) -> dict[str, float]:
    """CPU microseconds of the hooks themselves per fast statement, without a database: the
    SQLAlchemy before/after pair, and the TimedConnection wrapper around a no-op statement.
    Deterministic where the end-to-end figures above are noisy on a shared machine."""

    class Context:
        pass

    class NoOpConnection:
        async def fetchval(self, query: str, *args: object) -> None:
            return None

    watch = SlowQueryWatch(service="bench", threshold_ms=200)
    context = Context()
    started = time.process_time()
    for _ in range(calls):
        watch._before(None, None, "SELECT 1", (), context, False)
        watch._after(None, None, "SELECT 1", (), context, False)
    sa = (time.process_time() - started) / calls * 1e6

    async def wrapped(conn: object) -> float:
        t0 = time.process_time()
        for _ in range(calls):
            await conn.fetchval("SELECT 1")  # type: ignore[attr-defined]
        return (time.process_time() - t0) / calls * 1e6

    bare = asyncio.run(wrapped(NoOpConnection()))
    timed = asyncio.run(wrapped(TimedConnection(NoOpConnection(), watch)))
    return {"sa": sa, "raw": timed - bare}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    settings = WaybillSettings()
    root = postgres = None
    try:
        if settings.database_url:
            server_url = settings.database_url
        else:
            root = Path(tempfile.mkdtemp(prefix="waybill-bench-slowq-"))
            root.chmod(0o755)  # the unprivileged PostgreSQL user must reach its data dir
            postgres = EmbeddedPostgres(root / "postgres", free_port())
            postgres.start()
            server_url = postgres.url
        create_databases(server_url, [DATABASE])
        result = asyncio.run(measure(server_url, args.statements, args.rounds))
    finally:
        if postgres is not None:
            postgres.stop()
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
    for path in ("sa", "raw"):
        plain, hooked = result[f"{path}_plain"], result[f"{path}_hooked"]
        print(
            f"{path:>3}: {plain:7.1f} us/statement without, {hooked:7.1f} with "
            f"({hooked - plain:+.1f} us, {(hooked / plain - 1) * 100:+.1f} %)"
        )
    for path, cost in hooks_alone_us().items():
        print(f"{path:>3}: the hooks alone cost {cost:.2f} us of CPU per statement")


if __name__ == "__main__":
    main()
