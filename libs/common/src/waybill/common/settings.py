"""Settings shared by every Waybill process (pydantic-settings, ``WAYBILL_`` prefix).

``WAYBILL_DATABASE_URL`` is a *server* URL; each service uses its own database on it
(``waybill_<service>``). ``WAYBILL_KAFKA_BOOTSTRAP_SERVERS`` points at any Kafka-protocol
cluster. When either is unset the embedded default on loopback is used.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from waybill.common import ports
from waybill.common.lifecycle import Role, parse_roles

AUTH_DATABASE = "waybill_auth"


class WaybillSettings(BaseSettings):
    """Infrastructure and runtime settings every process reads the same way."""

    model_config = SettingsConfigDict(env_prefix="WAYBILL_", extra="ignore")

    state_dir: Path = Path(".waybill")
    roles: str = Field(
        default="",
        description="What this process runs: a comma-separated subset of api, consumer, relay, "
        "workers (CONTRACT.md § every service); empty = all",
    )
    database_url: str | None = Field(
        default=None, description="External PostgreSQL server URL; unset = embedded"
    )
    kafka_bootstrap_servers: str | None = Field(
        default=None, description="External Kafka bootstrap servers; unset = embedded"
    )
    postgres_port: int = ports.POSTGRES
    kafka_port: int = ports.KAFKA
    kafka_partitions: int = 6
    host: str = "127.0.0.1"
    log_level: str = "INFO"
    log_json: bool | None = None  # None: JSON unless stderr is a TTY
    otel_exporter_otlp_endpoint: str | None = None
    # The payment provider (the sandbox's Stripe-like API by default) and its shared secrets.
    provider_url: str = f"http://127.0.0.1:{ports.SANDBOX}"
    provider_api_key: str = "sk_test_waybill"
    provider_webhook_secret: str = "whsec_sandbox_dev"  # noqa: S105 - the sandbox dev default
    # The secret shipping seals delivery codes with for the notifier (``waybill.common.sealing``):
    # both services must have the same. Comma-separated: the first seals, every one unseals
    # (rotation: put the new one first, drop the old one once no code sealed with it is open).
    delivery_code_keys: str = Field(
        default="waybill-dev-delivery-code-key",
        description="secret(s) shipping and the notifier share for delivery codes; set your "
        "own in production",
    )
    # Statements slower than this are logged as db_query_slow and counted (observability).
    slow_query_ms: float = Field(default=200.0, gt=0)
    auth_database_url: str | None = Field(
        default=None,
        description="URL of the auth database (API keys) every service shares; unset = the "
        "waybill_auth database on this service's own server",
    )
    migrate_on_start: bool = Field(
        default=True,
        description="Migrate the service's database at start (one replica at a time); false: "
        "only check it is at head, and let a migration Job run `waybill-service migrate`",
    )
    test_poison: bool = Field(
        default=False,
        description="Tests only: an event with data __poison__=<group> fails that consumer "
        "group on purpose (waybill.common.consumer.poison); never in production",
    )

    @property
    def run_roles(self) -> frozenset[Role]:
        """``roles`` parsed (a ValueError names an unknown role at start-up)."""
        return parse_roles(self.roles)

    @property
    def server_url(self) -> str:
        """The PostgreSQL server URL (no database), external or embedded."""
        if self.database_url:
            return self.database_url
        return f"postgresql://postgres@127.0.0.1:{self.postgres_port}/postgres"

    @property
    def auth_dsn(self) -> str:
        """SQLAlchemy (asyncpg) URL of the auth database: ``auth_database_url`` if set (services
        on separate PostgreSQL servers then still share one set of keys), else
        ``waybill_auth`` on :attr:`server_url`."""
        if self.auth_database_url:
            url = make_url(self.auth_database_url).set(drivername="postgresql+asyncpg")
            return url.render_as_string(hide_password=False)
        return self.database_dsn(AUTH_DATABASE)

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap_servers or f"127.0.0.1:{self.kafka_port}"

    def database_dsn(self, database: str, *, driver: str = "asyncpg") -> str:
        """SQLAlchemy URL of ``database`` on the configured server."""
        url = make_url(self.server_url).set(drivername=f"postgresql+{driver}", database=database)
        return url.render_as_string(hide_password=False)

    def asyncpg_dsn(self, database: str) -> str:
        """Plain libpq-style DSN of ``database`` (for asyncpg.connect / LISTEN)."""
        url = make_url(self.server_url).set(drivername="postgresql", database=database)
        return url.render_as_string(hide_password=False)


def service_database(service: str) -> str:
    return f"waybill_{service}"
