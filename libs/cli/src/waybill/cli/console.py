"""The CLI's two output channels: a rich console for people, structlog lines for events.

Both go to stdout so a captured ``waybill up`` log reads in order.
"""

from __future__ import annotations

import logging
import sys

import structlog
from rich.console import Console


def make_console() -> Console:
    # Captured output (a log file, a test) gets a wide fixed width so URLs and paths in the
    # summary table are never cut.
    width = None if sys.stdout.isatty() else 200
    return Console(width=width, highlight=False)


def configure_logging(console: Console) -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S"),
            structlog.dev.ConsoleRenderer(colors=console.is_terminal),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=True,
    )
