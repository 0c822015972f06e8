"""Schema-driven fuzzing of every HTTP service: schemathesis with all its checks.

    .venv/bin/python .ci/fuzz.py            # start a stack, fuzz every service
    .venv/bin/python .ci/fuzz.py --serve    # start the stack and print its URLs and keys

Starts embedded PostgreSQL and Kafka on free loopback ports (or uses WAYBILL_DATABASE_URL /
WAYBILL_KAFKA_BOOTSTRAP_SERVERS), then the sandbox, payments and orders as real processes
through the test support's ``start_service`` (the same helpers as the test fixtures), issues
real API keys for a fresh tenant, and runs ``schemathesis run`` against each service's
``/openapi.json``: bounded examples, fixed seed, every check. The settings, and every
exclusion with its reason, are in ``.ci/schemathesis.toml``. Exit status: non-zero on any
failure.

Each service is fuzzed once per role its routes accept (``service``, ``admin``, ``agent``): a route
refusing a key of the wrong role with 403 is declared, but only the right role reaches the
handler, where the conformance failures live.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from waybill.common import topics
from waybill.common.auth import ensure_auth_schema, issue_key
from waybill.common.db import create_databases
from waybill.common.settings import AUTH_DATABASE, WaybillSettings
from waybill.devstack.infra import EmbeddedKafka, EmbeddedPostgres, free_port
from waybill.devstack.infra.kafka import ensure_topics
from waybill.devstack.testing import Infra, ServiceProcess, start_service
from waybill.devstack.topology import SERVICES, link_env

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".ci" / "schemathesis.toml"


@dataclass(frozen=True)
class Target:
    """One fuzzing run: a service, under one role's key (None: the service needs no key)."""

    service: str
    role: str | None


TARGETS = [
    Target("orders", "service"),
    Target("orders", "admin"),
    Target("payments", "service"),
    Target("payments", "admin"),
    Target("shipping", "admin"),
    Target("shipping", "agent"),
    Target("notifier", "service"),
    Target("monitor", "admin"),
    Target("sandbox", None),
]


def start_stack(root: Path) -> tuple[Infra, dict[str, ServiceProcess], list[object]]:
    settings = WaybillSettings()
    servers: list[object] = []
    if settings.database_url:
        server_url = settings.database_url
    else:
        postgres = EmbeddedPostgres(root / "postgres", free_port())
        postgres.start()
        servers.append(postgres)
        server_url = postgres.url
    if settings.kafka_bootstrap_servers:
        bootstrap = settings.kafka_bootstrap_servers
    else:
        kafka = EmbeddedKafka(root / "kafka", free_port(), partitions=2)
        kafka.start()
        servers.append(kafka)
        bootstrap = kafka.bootstrap_servers
    asyncio.run(ensure_topics(bootstrap, topics.ALL_TOPICS, partitions=2))
    infra = Infra(server_url=server_url, bootstrap_servers=bootstrap, root=root, partitions=2)
    create_databases(server_url, [AUTH_DATABASE])
    asyncio.run(ensure_auth_schema(infra.settings()))
    # Wired as ``waybill up`` wires them (the topology's links), on free ports.
    ports = {spec.name: free_port() for spec in SERVICES}
    env = link_env(SERVICES, lambda name: f"http://127.0.0.1:{ports[name]}")
    services = {
        spec.name: start_service(infra, spec, port=ports[spec.name], extra_env=env)
        for spec in SERVICES
    }
    return infra, services, servers


def issue_keys(infra: Infra, shipping_url: str) -> dict[str, str]:
    """A fresh tenant's service and admin keys, and the key of a real delivery agent of it
    (an agent key belongs to an agent: shipping creates both, ``POST /agents``)."""
    tenant = f"t_fuzz_{uuid.uuid4().hex[:8]}"

    async def issue() -> dict[str, str]:
        keys = {
            role: (await issue_key(infra.settings(), tenant_id=tenant, role=role)).key
            for role in ("service", "admin")
        }
        async with httpx.AsyncClient(base_url=shipping_url, timeout=30) as client:
            agent = await client.post(
                "/agents",
                json={"name": "fuzz agent", "service_zip_codes": ["12345"]},
                headers={"Authorization": f"Bearer {keys['admin']}"},
            )
            agent.raise_for_status()
            keys["agent"] = agent.json()["api_key"]
        return keys

    return asyncio.run(issue())


def fuzz(target: Target, url: str, keys: dict[str, str], seed: int) -> int:
    command = [
        str(ROOT / ".venv" / "bin" / "schemathesis"),
        "--config-file",
        str(CONFIG),
        "run",
        f"{url}/openapi.json",
        "--seed",
        str(seed),
    ]
    env = {**os.environ, "FUZZ_AUTHORIZATION": ""}
    if target.role is not None:
        env["FUZZ_AUTHORIZATION"] = f"Bearer {keys[target.role]}"
    print(f"== schemathesis: {target.service} as {target.role or 'anonymous'}", flush=True)
    started = time.monotonic()
    rc = subprocess.run(command, env=env, cwd=ROOT, check=False).returncode
    who = target.role or "anonymous"
    print(f"== {target.service} as {who}: rc={rc} in {time.monotonic() - started:.0f} s")
    return rc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="start the stack and wait")
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--only", help="fuzz only this service")
    args = parser.parse_args()
    # SIGTERM (CI cancelling, or `kill`) stops the stack too, like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(tempfile.mkdtemp(prefix="waybill-fuzz-"))
    root.chmod(0o755)  # the unprivileged PostgreSQL user must reach its data dir
    services: dict[str, ServiceProcess] = {}
    servers: list[object] = []
    try:
        infra, services, servers = start_stack(root)
        keys = issue_keys(infra, services["shipping"].url)
        if args.serve:
            for name, service in services.items():
                print(f"{name}: {service.url}")
            for role, key in keys.items():
                print(f"{role} key: {key}")
            print("Ctrl-C to stop", flush=True)
            while True:
                time.sleep(3600)
        failed = [
            t
            for t in TARGETS
            if (args.only in (None, t.service))
            and fuzz(t, services[t.service].url, keys, args.seed) != 0
        ]
        for target in failed:
            print(f"FAILED: {target.service} as {target.role}", file=sys.stderr)
        return 1 if failed else 0
    except KeyboardInterrupt:
        return 130
    finally:
        for service in services.values():
            service.stop()
        for server in reversed(servers):
            server.stop()  # type: ignore[attr-defined]
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
