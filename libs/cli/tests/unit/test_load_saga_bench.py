"""``waybill bench saga``'s arithmetic: steps, achieved rate, sustained, CPU shares."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from waybill.cli.bench.saga import (
    CpuSample,
    Step,
    cpu_share,
    max_sustained,
    parse_steps,
    score_step,
)
from waybill.cli.load.outcomes import Outcome

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_steps_parse_as_increasing_rates() -> None:
    assert parse_steps("25, 50,100") == [25.0, 50.0, 100.0]


@pytest.mark.parametrize("text", ["", "a,b", "50,25", "25,25", "0,10", "-5"])
def test_steps_reject_what_cannot_be_stepped(text: str) -> None:
    with pytest.raises(ValueError):
        parse_steps(text)


def _paid(after_ms: float, placed: datetime = T0) -> Outcome:
    return Outcome("paid", placed, placed + timedelta(milliseconds=after_ms))


def _score(outcomes: dict[str, Outcome], window_end: datetime, **errors: int) -> Step:
    return score_step(
        10.0,
        10.0,
        window_end.timestamp(),
        outcomes,
        placement_errors=errors,
        placement_p99_ms=5.0,
        cpu={},
    )


def test_achieved_counts_only_orders_paid_inside_the_window() -> None:
    outcomes = {f"ord_{i}": _paid(50) for i in range(90)}
    outcomes |= {f"late_{i}": _paid(50, T0 + timedelta(seconds=30)) for i in range(10)}
    step = _score(outcomes, T0 + timedelta(seconds=15))
    assert step.achieved_per_s == 9.0
    assert step.paid == 100  # the late ones still count for latency
    assert step.sustained is False  # 90 % < 95 %
    assert step.saturated is False  # but not < 80 %


def test_a_step_is_sustained_only_under_the_p99_target() -> None:
    fast = {f"ord_{i}": _paid(20) for i in range(100)}
    assert _score(fast, T0 + timedelta(seconds=5)).sustained is True
    slow = {f"ord_{i}": _paid(20 if i < 90 else 400) for i in range(100)}
    step = _score(slow, T0 + timedelta(seconds=5))
    assert step.p99_ms > 250
    assert step.sustained is False


def test_declines_and_placement_failures_are_errors_by_kind() -> None:
    outcomes = {"ord_a": _paid(10), "ord_b": Outcome("payment_failed", T0, T0)}
    step = _score(outcomes, T0 + timedelta(seconds=5), dropped=3)
    assert step.errors == 4
    assert step.error_kinds == {"dropped": 3, "payment_failed": 1}


def test_a_step_with_nothing_paid_is_saturated_not_sustained() -> None:
    step = _score({"ord_a": Outcome("unsettled", T0, None)}, T0)
    assert (step.achieved_per_s, step.sustained, step.saturated) == (0.0, False, True)


def test_max_sustained_is_the_highest_sustained_offered_rate() -> None:
    def step(offered: float, achieved: float, p99: float) -> Step:
        return Step(offered, achieved, 1, 1, p99, 0, {}, {}, 1, 1, 1)

    steps = [step(25, 25, 40), step(50, 50, 90), step(100, 99, 300), step(200, 120, 900)]
    assert max_sustained(steps) == 50
    assert max_sustained(steps[2:]) is None


def test_cpu_shares_are_fractions_of_the_machine_with_other_and_idle() -> None:
    before = CpuSample(wall=100.0, per_process={"orders": 10.0, "kafka": 5.0}, machine_busy=50.0)
    after = CpuSample(wall=110.0, per_process={"orders": 16.0, "kafka": 7.0}, machine_busy=62.0)
    shares = cpu_share(before, after, cpus=2)
    assert shares == {"orders": 0.3, "kafka": 0.1, "other": 0.2, "idle": 0.4}


def test_cpu_share_of_a_restarted_process_is_never_negative() -> None:
    before = CpuSample(wall=0.0, per_process={"orders": 50.0}, machine_busy=0.0)
    after = CpuSample(wall=1.0, per_process={"orders": 0.5}, machine_busy=1.0)
    assert cpu_share(before, after, cpus=1)["orders"] == 0.0
