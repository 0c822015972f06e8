"""eventually(): returns the probe's value once it holds; fails with the last value it saw."""

from __future__ import annotations

import itertools
import time

import pytest

from waybill.devstack.eventually import eventually, eventually_sync


async def test_returns_the_first_value_that_satisfies_the_condition_from_a_sync_probe():
    counter = itertools.count()

    value = await eventually(lambda: next(counter), until=lambda n: n >= 3, interval_s=0.001)

    assert value == 3


async def test_awaits_an_async_probe_and_returns_its_truthy_value():
    calls = itertools.count(1)

    async def probe() -> list[int] | None:
        n = next(calls)
        return [n] if n == 4 else None

    assert await eventually(probe, interval_s=0.001) == [4]


async def test_times_out_with_a_message_that_names_the_wait_and_shows_the_last_value():
    started = time.monotonic()

    with pytest.raises(AssertionError) as failure:
        await eventually(
            lambda: "pending_payment",
            until=lambda status: status == "paid",
            timeout_s=0.3,
            interval_s=0.05,
            what="order o_1 paid",
        )

    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 3
    message = str(failure.value)
    assert "order o_1 paid did not happen within 0.3s" in message
    assert "last value: 'pending_payment'" in message


async def test_ignored_errors_count_as_not_yet_and_the_last_one_is_reported():
    def probe() -> bool:
        raise ConnectionError("refused")

    with pytest.raises(AssertionError, match=r"last error: ConnectionError\('refused'\)"):
        await eventually(probe, timeout_s=0.2, interval_s=0.05, ignoring=(ConnectionError,))


async def test_an_error_that_is_not_ignored_propagates_at_once():
    calls = itertools.count(1)

    def probe() -> bool:
        next(calls)
        raise KeyError("bug in the probe")

    with pytest.raises(KeyError):
        await eventually(probe, timeout_s=5, interval_s=0.01)
    assert next(calls) == 2  # called once, not retried


def test_the_blocking_variant_has_the_same_contract():
    counter = itertools.count()
    assert eventually_sync(lambda: next(counter), until=lambda n: n == 2, interval_s=0.001) == 2
    with pytest.raises(AssertionError, match="last value: 0"):
        eventually_sync(lambda: 0, timeout_s=0.1, interval_s=0.02)


async def test_a_large_last_value_is_shortened_in_the_message():
    with pytest.raises(AssertionError) as failure:
        await eventually(lambda: list(range(10_000)), until=lambda _: False, timeout_s=0.05)

    assert len(str(failure.value)) < 300
