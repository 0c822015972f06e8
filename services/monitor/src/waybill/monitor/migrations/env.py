"""Alembic environment of the monitor database (all logic lives in waybill.common.alembic_env)."""

from waybill.common.alembic_env import run_migrations_env
from waybill.monitor.tables import metadata

run_migrations_env(metadata)
