"""The supervisor's restart rules: exponential backoff, a cap, a reset after a stable run."""

from __future__ import annotations

import sys
from pathlib import Path

from waybill.cli.stack.supervisor import RestartPolicy, SupervisedService, Supervisor
from waybill.devstack.testing import eventually_sync


def test_restart_delay_doubles_from_half_a_second_and_is_capped_at_thirty() -> None:
    policy = RestartPolicy()
    assert [policy.delay_s(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _crashing_service(tmp_path: Path) -> SupervisedService:
    # A real process that exits at once with code 3: the supervisor sees a real exit code.
    return SupervisedService(
        "crashy",
        [sys.executable, "-c", "raise SystemExit(3)"],
        env={},
        log_path=tmp_path / "crashy.log",
        url="http://127.0.0.1:9",
    )


def _wait_exited(service: SupervisedService) -> None:
    eventually_sync(
        lambda: service.exit_code() is not None,
        timeout_s=30,
        interval_s=0.01,
        what="the crashing process exiting",
    )


def test_a_crashing_service_is_restarted_only_after_its_backoff(tmp_path: Path) -> None:
    clock = FakeClock()
    service = _crashing_service(tmp_path)
    changes: list[int | None] = []
    supervisor = Supervisor(
        [service], clock=clock, probe=lambda _: False, on_change=lambda: changes.append(service.pid)
    )
    service.start(clock.now)
    first_pid = service.pid
    _wait_exited(service)

    supervisor.tick()  # sees exit code 3, schedules a restart in 0.5 s
    assert service.restart_at == clock.now + 0.5
    clock.now += 0.4
    supervisor.tick()
    assert service.pid == first_pid and service.restarts == 0

    clock.now += 0.1
    supervisor.tick()
    assert service.pid != first_pid and service.restarts == 1
    assert changes == [service.pid]

    _wait_exited(service)
    supervisor.tick()  # second crash in a row: twice the wait
    assert service.restart_at == clock.now + 1.0
    service.stop(grace_s=0)


def test_the_backoff_resets_after_a_service_stayed_up_a_minute(tmp_path: Path) -> None:
    clock = FakeClock()
    service = _crashing_service(tmp_path)
    supervisor = Supervisor([service], clock=clock, probe=lambda _: False)
    service.consecutive_failures = 5  # a past crash streak
    service.start(clock.now)
    _wait_exited(service)
    clock.now += 61  # it "ran" for over a minute before this crash

    supervisor.tick()

    assert service.consecutive_failures == 1
    assert service.restart_at == clock.now + 0.5
    service.stop(grace_s=0)
