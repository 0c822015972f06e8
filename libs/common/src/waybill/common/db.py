"""Database access for a service: the async engine and programmatic Alembic migrations."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def async_url(dsn: str) -> str:
    """``dsn`` (any ``postgresql[+driver]://`` URL) as a SQLAlchemy asyncpg URL."""
    url = make_url(dsn).set(drivername="postgresql+asyncpg")
    return url.render_as_string(hide_password=False)


def plain_dsn(dsn: str) -> str:
    """``dsn`` as a libpq-style URL for asyncpg.connect (LISTEN, advisory locks)."""
    url = make_url(dsn).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def create_engine(dsn: str, *, pool_size: int = 10) -> AsyncEngine:
    """An asyncpg-backed engine for ``dsn``; accepts plain ``postgresql://`` URLs too."""
    return create_async_engine(
        async_url(dsn),
        pool_size=pool_size,
        max_overflow=pool_size,
        # A dead connection surfaces as an error on first use and is replaced; pinging on every
        # checkout would add a round trip to every command.
        pool_pre_ping=False,
        pool_recycle=3600,
    )


def migrate(sync_or_async_dsn: str, script_location: str | Path) -> None:
    """Run Alembic ``upgrade head`` for the migrations in ``script_location``.

    Synchronous (Alembic's env runs its own event loop); from async code call it through
    ``asyncio.to_thread``.
    """
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", async_url(sync_or_async_dsn).replace("%", "%%"))
    command.upgrade(config, "head")
