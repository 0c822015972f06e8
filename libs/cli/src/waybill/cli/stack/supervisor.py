"""Keep the service processes running: a process that dies is restarted with backoff.

The backoff (the kit's one policy, ``waybill.common.backoff``) doubles from 0.5 s to 30 s
while a service keeps crashing, and resets once it has stayed up ``stable_after_s``: a crash
loop does not hammer the database, and a service that crashes once a day restarts at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import structlog

from waybill.common.backoff import Backoff, Jitter
from waybill.devstack.infra import ManagedProcess

log = structlog.get_logger("waybill.cli.stack.supervisor")

READY_PATH = "/health/ready"


@dataclass(frozen=True)
class RestartPolicy:
    # No jitter: one supervisor restarts its own processes, there is no herd to spread.
    backoff: Backoff = field(
        default_factory=lambda: Backoff(base_s=0.5, factor=2.0, max_s=30.0, jitter=Jitter.NONE)
    )
    stable_after_s: float = 60.0

    def delay_s(self, consecutive_failures: int) -> float:
        """Wait before restart number ``consecutive_failures`` (1-based) of a crash streak."""
        return self.backoff.delay(consecutive_failures)


def is_ready(base_url: str, timeout_s: float = 1.0) -> bool:
    """True if the service answers ``GET /health/ready`` with 200."""
    try:
        return httpx.get(base_url + READY_PATH, timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


class SupervisedService:
    """One service process and its restart bookkeeping."""

    def __init__(
        self, name: str, argv: list[str], *, env: dict[str, str], log_path: Path, url: str
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.url = url
        self.process: ManagedProcess | None = None
        self.started_at = 0.0
        self.consecutive_failures = 0
        self.restart_at: float | None = None
        self.restarts = 0
        self.ready = False

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, now: float) -> None:
        self.process = ManagedProcess(self.name, self.argv, log_path=self.log_path, env=self.env)
        self.process.start()
        self.started_at = now
        self.restart_at = None
        self.ready = False

    def exit_code(self) -> int | None:
        """None while running (or never started), else the exit code."""
        return self.process.poll() if self.process else None

    def stop(self, grace_s: float = 10.0) -> None:
        if self.process is not None:
            self.process.stop(grace_s=grace_s)

    def tail(self) -> str:
        return self.process.tail() if self.process else ""


class Supervisor:
    """Polls the services; schedules and performs restarts; reports changes to ``on_change``."""

    def __init__(
        self,
        services: Iterable[SupervisedService],
        *,
        policy: RestartPolicy = RestartPolicy(),
        on_change: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        probe: Callable[[str], bool] = is_ready,
    ) -> None:
        self.services = list(services)
        self.policy = policy
        self.on_change = on_change
        self.clock = clock
        self.probe = probe

    def tick(self) -> None:
        now = self.clock()
        for service in self.services:
            if service.restart_at is not None:
                if now >= service.restart_at:
                    self._restart(service, now)
                continue
            code = service.exit_code()
            if code is not None:
                self._schedule_restart(service, code, now)
            elif not service.ready and self.probe(service.url):
                service.ready = True
                log.info("service_ready", service=service.name, pid=service.pid, url=service.url)

    def _schedule_restart(self, service: SupervisedService, exit_code: int, now: float) -> None:
        uptime = now - service.started_at
        if uptime >= self.policy.stable_after_s:
            service.consecutive_failures = 0
        service.consecutive_failures += 1
        delay = self.policy.delay_s(service.consecutive_failures)
        service.restart_at = now + delay
        service.ready = False
        log.warning(
            "service_process_exited",
            service=service.name,
            pid=service.pid,
            exit_code=exit_code,
            uptime_s=round(uptime, 1),
            restart_in_s=delay,
            consecutive_failures=service.consecutive_failures,
            log=str(service.log_path),
        )

    def _restart(self, service: SupervisedService, now: float) -> None:
        old_pid = service.pid
        if service.process is not None:
            service.process.stop(grace_s=0)  # already exited: reap it and close its log
        service.start(now)
        service.restarts += 1
        log.info(
            "service_process_restarted",
            service=service.name,
            old_pid=old_pid,
            pid=service.pid,
            restarts=service.restarts,
        )
        self.on_change()

    def run_forever(self, interval_s: float = 0.25) -> None:
        """Supervise until interrupted (KeyboardInterrupt from Ctrl-C or our SIGTERM handler)."""
        while True:
            self.tick()
            time.sleep(interval_s)
