"""The stack's topology: every service, its port, what it needs and whom it calls. One list.

``waybill up``, the benchmarks and the test fixtures all read ``SERVICES``, so adding a service
(the monitor next) is one entry here. Ports come from ``waybill.common.ports``, the one source of
port numbers; the service reads its own from ``WAYBILL_<NAME>_PORT``.

It lives in the dev package because only the dev side starts processes: the CLI and the test
support both depend on ``waybill-devstack``, and neither is imported by it (no cycle).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from waybill.common import ports
from waybill.common.settings import service_database

# Replica k (0-based) of a service listens on its port + k * REPLICA_PORT_STEP: 8001, 8101, ...
# The step keeps replicas clear of the neighbouring services' ports (8001-8010).
REPLICA_PORT_STEP = 100


@dataclass(frozen=True)
class Link:
    """A setting through which a service reaches another one: that service's URL + ``path``,
    or, with ``listener``, the port of that service's listener of that setting (the notifier
    reaches the sandbox's SMTP server on whatever port it was given)."""

    setting: str
    service: str
    path: str = ""
    listener: str | None = None


@dataclass(frozen=True)
class Listener:
    """A second port a service listens on (the sandbox's SMTP server), read from ``setting``.

    ``waybill up`` leaves it at ``default_port``; the test support gives it a free port, so
    parallel sessions and two sandboxes in one session never collide."""

    setting: str
    default_port: int


@dataclass(frozen=True)
class Instance:
    """One process of a service: its name in logs and ``up.json``, and its port."""

    name: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class ServiceSpec:
    """A service run as ``python -m <module>`` on 127.0.0.1, and what it needs to run."""

    name: str
    module: str
    default_port: int
    needs_database: bool = True
    needs_broker: bool = True
    links: tuple[Link, ...] = ()
    listeners: tuple[Listener, ...] = ()
    replicas: int = 1
    # Settings the dev stack (``waybill up``, the tests) gives the service unless the caller's
    # environment says otherwise: what is right on a laptop and wrong in production.
    dev_env: tuple[tuple[str, str], ...] = ()

    @property
    def port_env(self) -> str:
        return f"WAYBILL_{self.name.upper()}_PORT"

    @property
    def databases(self) -> tuple[str, ...]:
        return (service_database(self.name),) if self.needs_database else ()

    def port(self, environ: Mapping[str, str]) -> int:
        return int(environ.get(self.port_env, self.default_port))

    def instances(self, environ: Mapping[str, str]) -> list[Instance]:
        """Its processes: the first keeps the service's name, the others are ``<name>-<k>``."""
        base = self.port(environ)
        return [
            Instance(self.name if k == 0 else f"{self.name}-{k + 1}", base + k * REPLICA_PORT_STEP)
            for k in range(self.replicas)
        ]


# Start order: the sandbox (the outside world) before payments, which calls it; the monitor
# last (it polls everyone's readiness). Stopped in reverse.
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "sandbox",
        "waybill.sandbox",
        ports.SANDBOX,
        needs_broker=False,
        # The provider calls back the merchant that charged it (signed webhooks).
        links=(Link("WAYBILL_SANDBOX_WEBHOOK_URL", "payments", "/webhooks/provider"),),
        listeners=(Listener("WAYBILL_SANDBOX_SMTP_PORT", ports.SANDBOX_SMTP),),
    ),
    ServiceSpec("orders", "waybill.orders", ports.ORDERS),
    ServiceSpec(
        "payments",
        "waybill.payments",
        ports.PAYMENTS,
        links=(Link("WAYBILL_PROVIDER_URL", "sandbox"),),
    ),
    ServiceSpec("shipping", "waybill.shipping", ports.SHIPPING),
    ServiceSpec(
        "notifier",
        "waybill.notifier",
        ports.NOTIFIER,
        # Customer email goes to the sandbox's SMTP server, SMS to its SMS provider.
        links=(
            Link("WAYBILL_NOTIFIER_SMS_URL", "sandbox"),
            Link("WAYBILL_NOTIFIER_SMTP_PORT", "sandbox", listener="WAYBILL_SANDBOX_SMTP_PORT"),
        ),
        # Webhook receivers on this machine (the tests' and yours) pass the SSRF check; no
        # other loopback or private address does (CONTRACT.md § notifier).
        dev_env=(("WAYBILL_NOTIFIER_ALLOWED_TARGETS", "127.0.0.1/32"),),
    ),
    ServiceSpec(
        "monitor",
        "waybill.monitor",
        ports.MONITOR,
        # It polls every service's readiness and replays webhook messages on the notifier.
        links=tuple(
            Link(f"WAYBILL_MONITOR_{name.upper()}_URL", name)
            for name in ("orders", "payments", "shipping", "notifier")
        ),
    ),
)


def service(name: str, specs: Iterable[ServiceSpec] = SERVICES) -> ServiceSpec:
    """The entry called ``name`` (KeyError names the ones there are)."""
    found = {spec.name: spec for spec in specs}
    if name not in found:
        raise KeyError(f"no service {name!r} in the topology ({', '.join(found)})")
    return found[name]


def link_env(
    specs: Iterable[ServiceSpec],
    url_of: Callable[[str], str | None],
    port_of: Callable[[str], int | None] = lambda setting: None,
) -> dict[str, str]:
    """The settings that wire ``specs`` to each other; ``url_of(name)`` is None when a linked
    service does not run (its setting is then left to the service's default), and
    ``port_of(setting)`` is the port a listener was given (None: leave the default)."""
    env: dict[str, str] = {}
    for spec in specs:
        for link in spec.links:
            url = url_of(link.service)
            if url is None:
                continue
            if link.listener is None:
                env[link.setting] = url + link.path
            elif (port := port_of(link.listener)) is not None:
                env[link.setting] = str(port)
    return env


def listener_ports(specs: Iterable[ServiceSpec], environ: Mapping[str, str]) -> dict[str, int]:
    """Every listener's port by its setting: the environment's, else its default."""
    return {
        listener.setting: int(environ.get(listener.setting, listener.default_port))
        for spec in specs
        for listener in spec.listeners
    }
