"""Run one outbox relay as its own process::

    python -m waybill.common.outbox --dsn postgresql://... --bootstrap HOST:PORT --service orders

Logs JSON lines on stderr; SIGTERM or SIGINT stops it cleanly (a SIGKILL loses nothing either:
unacknowledged rows stay in the outbox for the next leader).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

import structlog

from waybill.common.outbox.relay import OutboxRelay


def _configure_logging(level: str) -> None:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
    )


async def _main(args: argparse.Namespace) -> None:
    relay = OutboxRelay(
        args.dsn,
        args.bootstrap,
        service=args.service,
        batch_size=args.batch_size,
        poll_interval_s=args.poll_interval,
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: asyncio.ensure_future(relay.stop()))
    await relay.run()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m waybill.common.outbox")
    parser.add_argument("--dsn", required=True, help="plain PostgreSQL DSN of the service database")
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--service", required=True)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--log-level", default="INFO", help="DEBUG shows each published batch")
    args = parser.parse_args()
    _configure_logging(args.log_level)
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
