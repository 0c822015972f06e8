"""The load generator's pure parts: mix, open-loop schedule, percentiles, outcomes, summary."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from waybill.cli.load.client import Placement
from waybill.cli.load.outcomes import Outcome, outcome_from_events
from waybill.cli.load.schedule import DROPPED, LoadOptions, arrival_offsets, assign_kinds, parse_mix
from waybill.cli.load.stats import Latency, percentile, summarise

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_mix_weights_are_normalised_to_sum_one() -> None:
    assert parse_mix("ok=7,declined=1,async=2") == {"ok": 0.7, "declined": 0.1, "async": 0.2}


def test_mix_drops_zero_weights_and_tolerates_spaces() -> None:
    assert parse_mix(" ok = 1 , declined=0 ") == {"ok": 1.0}


@pytest.mark.parametrize(
    "text",
    ["", "ok", "visa=1", "ok=-1", "ok=x", "ok=1,ok=2", "ok=0,declined=0", "ok=nan", "ok=inf"],
)
def test_mix_rejects_what_it_cannot_mean(text: str) -> None:
    with pytest.raises(ValueError):
        parse_mix(text)


def test_schedule_is_evenly_spaced_at_the_offered_rate() -> None:
    offsets = arrival_offsets(50, 2)
    assert len(offsets) == 100
    assert offsets[0] == 0.0
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(offsets)}
    assert gaps == {0.02}
    assert offsets[-1] < 2


def test_schedule_of_a_fractional_count_rounds_down_not_past_the_duration() -> None:
    assert len(arrival_offsets(2.5, 3)) == 7
    assert len(arrival_offsets(0.1, 1)) == 0


@pytest.mark.parametrize(("rate", "duration"), [(0, 1), (1, 0), (-5, 10)])
def test_schedule_rejects_non_positive_rate_or_duration(rate: float, duration: float) -> None:
    with pytest.raises(ValueError):
        arrival_offsets(rate, duration)


def test_kinds_follow_the_mix_weights() -> None:
    kinds = Counter(assign_kinds({"ok": 0.8, "declined": 0.2}, 10_000, random.Random(7)))
    assert set(kinds) == {"ok", "declined"}
    assert 0.77 < kinds["ok"] / 10_000 < 0.83


def test_percentile_interpolates_between_ranks() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert percentile(values, 0.0) == 1.0
    assert percentile(values, 0.5) == 3.0
    assert percentile(values, 1.0) == 5.0
    assert percentile(values, 0.95) == pytest.approx(4.8)
    assert percentile([], 0.99) == 0.0
    assert percentile([7.0], 0.99) == 7.0


def test_latency_summary_is_in_milliseconds_and_order_independent() -> None:
    summary = Latency.of([0.3, 0.1, 0.2] * 100)
    assert summary.count == 300
    assert summary.p50_ms == 200.0
    assert summary.p99_ms == 300.0
    assert Latency.of([]) == Latency(count=0, p50_ms=0.0, p95_ms=0.0, p99_ms=0.0)


def _event(version: int, type_: str, at: datetime) -> dict[str, object]:
    return {"type": type_, "version": version, "data": {}, "recorded_at": at.isoformat()}


def test_outcome_latency_runs_from_placed_to_the_first_settling_event() -> None:
    items = [
        _event(2, "order.paid", T0 + timedelta(milliseconds=80)),
        _event(1, "order.placed", T0),
        _event(3, "order.cancelled", T0 + timedelta(seconds=5)),
    ]
    outcome = outcome_from_events(items)
    assert outcome.status == "paid"
    assert outcome.latency_s == pytest.approx(0.08)


def test_outcome_of_an_order_without_a_payment_event_is_unsettled() -> None:
    outcome = outcome_from_events([_event(1, "order.placed", T0)])
    assert outcome == Outcome("unsettled", T0, None)
    assert outcome.latency_s is None


def test_outcome_reads_a_failed_payment_as_settled() -> None:
    items = [_event(1, "order.placed", T0), _event(2, "order.payment_failed", T0)]
    assert outcome_from_events(items).status == "payment_failed"


def test_summary_counts_by_kind_and_errors_by_kind() -> None:
    placements = [
        Placement("ok", 0.0, order_id="ord_a", latency_s=0.01),
        Placement("ok", 0.0, order_id="ord_b", latency_s=0.03),
        Placement("declined", 0.0, order_id="ord_c", latency_s=0.02),
        Placement("ok", 0.0, error=DROPPED),
        Placement("ok", 0.0, error="http_503", latency_s=0.5),
    ]
    outcomes = {
        "ord_a": Outcome("paid", T0, T0 + timedelta(milliseconds=100)),
        "ord_b": Outcome("unsettled", T0, None),
        "ord_c": Outcome("payment_failed", T0, T0 + timedelta(milliseconds=40)),
    }
    options = LoadOptions(10, 1, {"ok": 0.5, "declined": 0.5}, 8, 1, 1)
    result = summarise(placements, outcomes, options)
    assert result["errors"] == {DROPPED: 1, "http_503": 1}
    ok, declined, total = (result["kinds"][k] for k in ("ok", "declined", "all"))
    assert (ok["offered"], ok["placed"], ok["paid"], ok["unsettled"]) == (4, 2, 1, 1)
    assert ok["place_to_settled"]["p99_ms"] == 100.0
    assert (declined["payment_failed"], declined["place_to_settled"]["count"]) == (1, 1)
    assert (total["offered"], total["placed"]) == (5, 3)
    # Placement latency counts only placed orders, never the error's 0.5 s.
    assert result["placement"]["p99_ms"] == pytest.approx(29.8)
