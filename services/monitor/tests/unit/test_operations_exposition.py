"""What the monitor reads from a service's /metrics for the idempotency and third-party-call
views, and ``histogram_quantile`` (PromQL's linear interpolation in the buckets)."""

from __future__ import annotations

import math
import random

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

from waybill.monitor.exposition import histogram_quantile, of_service, read_operations

EXPOSITION = """\
# HELP waybill_consumer_records_total Records consumed, by outcome.
# TYPE waybill_consumer_records_total counter
waybill_consumer_records_total{group="payments",outcome="applied",service="payments",topic="waybill.orders.events"} 6.0
waybill_consumer_records_total{group="payments",outcome="duplicate",service="payments",topic="waybill.orders.events"} 1.0
waybill_consumer_records_total{group="payments",outcome="duplicate",service="payments",topic="waybill.retry.payments"} 1.0
waybill_consumer_records_total{group="payments",outcome="skipped",service="payments",topic="waybill.orders.events"} 3.0
waybill_consumer_records_total{group="payments",outcome="dead_lettered",service="payments",topic="waybill.orders.events"} 2.0
waybill_consumer_records_total{group="quiet",outcome="skipped",service="payments",topic="waybill.orders.events"} 4.0
# HELP waybill_consumer_inbox_check_duration_seconds Inbox statement time.
# TYPE waybill_consumer_inbox_check_duration_seconds histogram
waybill_consumer_inbox_check_duration_seconds_bucket{group="payments",le="0.001",service="payments"} 4.0
waybill_consumer_inbox_check_duration_seconds_bucket{group="payments",le="0.002",service="payments"} 8.0
waybill_consumer_inbox_check_duration_seconds_bucket{group="payments",le="+Inf",service="payments"} 8.0
waybill_consumer_inbox_check_duration_seconds_count{group="payments",service="payments"} 8.0
waybill_consumer_inbox_check_duration_seconds_sum{group="payments",service="payments"} 0.01
# HELP waybill_integration_calls_total Calls to third parties.
# TYPE waybill_integration_calls_total counter
waybill_integration_calls_total{integration="payment_provider",outcome="ok",service="payments"} 7.0
waybill_integration_calls_total{integration="payment_provider",outcome="http_5xx",service="payments"} 2.0
waybill_integration_calls_total{integration="payment_provider",outcome="timeout",service="payments"} 1.0
# HELP waybill_integration_call_duration_seconds Call time.
# TYPE waybill_integration_call_duration_seconds histogram
waybill_integration_call_duration_seconds_bucket{integration="payment_provider",le="0.01",service="payments"} 0.0
waybill_integration_call_duration_seconds_bucket{integration="payment_provider",le="0.1",service="payments"} 5.0
waybill_integration_call_duration_seconds_bucket{integration="payment_provider",le="1.0",service="payments"} 9.0
waybill_integration_call_duration_seconds_bucket{integration="payment_provider",le="+Inf",service="payments"} 10.0
waybill_integration_call_duration_seconds_count{integration="payment_provider",service="payments"} 10.0
waybill_integration_call_duration_seconds_sum{integration="payment_provider",service="payments"} 3.2
# HELP waybill_integration_last_error_timestamp_seconds Last failed call.
# TYPE waybill_integration_last_error_timestamp_seconds gauge
waybill_integration_last_error_timestamp_seconds{integration="payment_provider",service="payments"} 1.7962272e+09
# HELP waybill_integration_last_error_info Last failed call's class.
# TYPE waybill_integration_last_error_info gauge
waybill_integration_last_error_info{error_class="timeout",integration="payment_provider",service="payments"} 1.0
"""  # noqa: E501 (an exposition's lines as a service writes them)


def test_duplicates_are_summed_per_consumer_group_over_its_topics_with_their_rate():
    groups = read_operations(EXPOSITION)["idempotency"]
    assert [(g["service"], g["consumer_group"]) for g in groups] == [
        ("payments", "payments"),
        ("payments", "quiet"),
    ]
    busy, quiet = groups
    assert {k: busy[k] for k in ("applied", "duplicates", "skipped", "dead_lettered")} == {
        "applied": 6,
        "duplicates": 2,
        "skipped": 3,
        "dead_lettered": 2,
    }
    assert busy["duplicate_rate"] == 0.25  # 2 / (6 + 2): skipped and dead letters aside
    # Half the checks under 1 ms, all under 2: p50 at the first bound, p95 inside the second.
    assert busy["check_p50_ms"] == 1.0
    assert busy["check_p95_ms"] == pytest.approx(1.9)
    assert quiet["duplicate_rate"] == 0.0  # nothing applied nor duplicated: 0, not a division
    assert quiet["check_p50_ms"] is None


def test_third_party_calls_count_every_outcome_but_ok_as_an_error_and_keep_the_last_one():
    (row,) = read_operations(EXPOSITION)["integrations"]
    assert row["service"] == "payments"
    assert row["integration"] == "payment_provider"
    assert (row["calls"], row["errors"], row["error_rate"]) == (10, 3, 0.3)
    assert row["outcomes"] == {"http_5xx": 2, "ok": 7, "timeout": 1}
    assert row["p50_ms"] == 100.0  # rank 5 is the 0.1 bucket's last observation
    assert row["p95_ms"] == 1000.0  # in +Inf: the highest finite bound, as PromQL
    assert row["last_error"] == "timeout"
    assert row["last_error_at"].startswith("2026-12-02T")


def test_a_service_without_the_families_has_no_rows():
    assert read_operations("") == {"idempotency": [], "integrations": []}


def test_rows_are_kept_only_for_the_service_that_reports_them():
    rows = read_operations(EXPOSITION)["integrations"]
    assert of_service(rows, "payments") == rows
    assert of_service(rows, "notifier") == []


INF = math.inf


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.5, [(0.1, 5), (0.5, 10), (1.0, 10), (INF, 10)], 0.1),
        (0.75, [(0.1, 5), (0.5, 10), (1.0, 10), (INF, 10)], 0.3),  # 0.1 + 0.4 * 2.5 / 5
        (0.25, [(0.1, 5), (0.5, 10), (INF, 10)], 0.05),  # the first bucket starts at 0
        (0.95, [(0.1, 0), (0.5, 0), (INF, 4)], 0.5),  # in +Inf: the highest finite bound
        (0.5, [(INF, 10), (1.0, 10), (0.5, 2)], 0.6875),  # any order: 0.5 + 0.5 * 3 / 8
        (0.0, [(0.1, 5), (INF, 5)], 0.0),
        (1.0, [(0.1, 5), (0.2, 10), (INF, 10)], 0.2),
        (0.5, [(-1.0, 3), (0.0, 4), (INF, 4)], -1.0),  # a non-positive first bound as is
    ],
)
def test_quantiles_interpolate_linearly_inside_their_bucket_as_promql(q, buckets, expected):
    assert histogram_quantile(q, buckets) == pytest.approx(expected)


@pytest.mark.parametrize(
    "buckets",
    [[], [(INF, 0)], [(0.1, 0), (INF, 0)], [(0.1, 3), (1.0, 5)]],
    ids=["none", "only-inf", "no-observations", "no-inf-bucket"],
)
def test_a_histogram_without_observations_or_an_inf_bucket_has_no_quantile(buckets):
    assert histogram_quantile(0.5, buckets) is None


def test_a_quantile_outside_zero_and_one_is_refused():
    with pytest.raises(ValueError, match="between 0 and 1"):
        histogram_quantile(1.5, [(0.1, 1), (INF, 1)])


def test_quantiles_of_a_real_histograms_exposition_land_near_the_true_ones():
    registry = CollectorRegistry()
    bounds = tuple(i / 10 for i in range(1, 11))
    histogram = Histogram(
        "waybill_integration_call_duration_seconds",
        "call time",
        ["service", "integration"],
        buckets=bounds,
        registry=registry,
    )
    Counter(
        "waybill_integration_calls_total",
        "calls",
        ["service", "integration", "outcome"],
        registry=registry,
    ).labels("notifier", "smtp", "ok").inc(5000)
    rng = random.Random(7)
    values = sorted(rng.uniform(0, 1) for _ in range(5000))
    for value in values:
        histogram.labels("notifier", "smtp").observe(value)
    (row,) = read_operations(generate_latest(registry).decode())["integrations"]
    # Uniform inside every bucket: the interpolation is off by sampling noise only.
    assert row["p50_ms"] == pytest.approx(values[2499] * 1000, abs=15)
    assert row["p95_ms"] == pytest.approx(values[4749] * 1000, abs=15)
