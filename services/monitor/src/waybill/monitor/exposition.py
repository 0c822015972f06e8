"""The idempotency and third-party-call figures of one ``/metrics`` exposition (pure: text in,
rows out), and ``histogram_quantile`` (PromQL's, over cumulative buckets).

- idempotency, per ``(service, group)``: the kit's ``waybill_consumer_records_total`` summed
  over topics by outcome, the duplicate rate ``duplicates / (applied + duplicates)``, and the
  p50 / p95 of ``waybill_consumer_inbox_check_duration_seconds`` (duplicate detection time);
- integrations, per ``(service, integration)``: ``waybill_integration_calls_total`` (calls,
  errors = every outcome but ``ok``), p50 / p95 of ``waybill_integration_call_duration_seconds``,
  the last error's class (``waybill_integration_last_error_info``) and time.

The counters are a process's since it started (a restart starts them at zero again), and a
quantile is over every observation since then; windows (rates over 5 minutes) are the
Prometheus server's business, not this page's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

RECORDS = "waybill_consumer_records_total"
INBOX_CHECK = "waybill_consumer_inbox_check_duration_seconds"
CALLS = "waybill_integration_calls_total"
CALL_DURATION = "waybill_integration_call_duration_seconds"
LAST_ERROR_AT = "waybill_integration_last_error_timestamp_seconds"
LAST_ERROR = "waybill_integration_last_error_info"


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The ``q``-quantile of a histogram given as ``(upper bound, cumulative count)`` pairs,
    interpolated linearly inside the bucket it falls in, as PromQL's ``histogram_quantile``:
    None without observations or without the ``+Inf`` bucket; the highest finite bound when it
    falls in ``+Inf``; the first bucket starts at 0 (unless its bound is not positive)."""
    if not 0 <= q <= 1:
        raise ValueError(f"a quantile is between 0 and 1, not {q}")
    ordered = sorted(buckets)
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]):
        return None
    observations = ordered[-1][1]
    if observations <= 0:
        return None
    rank = q * observations
    index = next(
        (i for i, (_, count) in enumerate(ordered[:-1]) if count >= rank), len(ordered) - 1
    )
    if index == len(ordered) - 1:
        return ordered[-2][0]
    upper, count = ordered[index]
    if index == 0 and upper <= 0:
        return upper
    lower, below = (0.0, 0.0) if index == 0 else ordered[index - 1]
    in_bucket = count - below
    if in_bucket <= 0:
        return upper
    return lower + (upper - lower) * (rank - below) / in_bucket


@dataclass
class _Histogram:
    buckets: dict[float, float] = field(default_factory=dict)

    def add(self, sample: Sample) -> None:
        bound = float(sample.labels["le"])
        self.buckets[bound] = self.buckets.get(bound, 0.0) + sample.value

    def quantile_ms(self, q: float) -> float | None:
        found = histogram_quantile(q, self.buckets.items())
        return None if found is None else round(found * 1000, 3)


def read_operations(text: str) -> dict[str, list[dict[str, Any]]]:
    """``{"idempotency": [...], "integrations": [...]}`` of one exposition, rows sorted."""
    records: dict[tuple[str, str], dict[str, float]] = {}
    checks: dict[tuple[str, str], _Histogram] = {}
    calls: dict[tuple[str, str], dict[str, float]] = {}
    durations: dict[tuple[str, str], _Histogram] = {}
    last_at: dict[tuple[str, str], float] = {}
    last_class: dict[tuple[str, str], str] = {}
    for sample in _samples(text):
        labels = sample.labels
        if sample.name == RECORDS:
            by_outcome = records.setdefault((labels["service"], labels["group"]), {})
            outcome = labels["outcome"]
            by_outcome[outcome] = by_outcome.get(outcome, 0.0) + sample.value
        elif sample.name == f"{INBOX_CHECK}_bucket":
            checks.setdefault((labels["service"], labels["group"]), _Histogram()).add(sample)
        elif sample.name == CALLS:
            by_outcome = calls.setdefault((labels["service"], labels["integration"]), {})
            outcome = labels["outcome"]
            by_outcome[outcome] = by_outcome.get(outcome, 0.0) + sample.value
        elif sample.name == f"{CALL_DURATION}_bucket":
            key = (labels["service"], labels["integration"])
            durations.setdefault(key, _Histogram()).add(sample)
        elif sample.name == LAST_ERROR_AT:
            last_at[(labels["service"], labels["integration"])] = sample.value
        elif sample.name == LAST_ERROR and sample.value > 0:
            last_class[(labels["service"], labels["integration"])] = labels["error_class"]
    return {
        "idempotency": [
            _group_row(key, records.get(key, {}), checks.get(key))
            for key in sorted(records.keys() | checks.keys())
        ],
        "integrations": [
            _integration_row(
                key, calls.get(key, {}), durations.get(key), last_class.get(key), last_at.get(key)
            )
            for key in sorted(calls.keys() | durations.keys())
        ],
    }


def _samples(text: str) -> Iterable[Sample]:
    for family in text_string_to_metric_families(text):
        yield from family.samples


def _group_row(
    key: tuple[str, str], counts: dict[str, float], check: _Histogram | None
) -> dict[str, Any]:
    applied, duplicates = int(counts.get("applied", 0)), int(counts.get("duplicate", 0))
    seen = applied + duplicates
    return {
        "service": key[0],
        "consumer_group": key[1],
        "applied": applied,
        "duplicates": duplicates,
        "skipped": int(counts.get("skipped", 0)),
        "dead_lettered": int(counts.get("dead_lettered", 0)),
        "duplicate_rate": round(duplicates / seen, 4) if seen else 0.0,
        "check_p50_ms": check.quantile_ms(0.5) if check else None,
        "check_p95_ms": check.quantile_ms(0.95) if check else None,
    }


def _integration_row(
    key: tuple[str, str],
    counts: dict[str, float],
    duration: _Histogram | None,
    last_error: str | None,
    last_error_at: float | None,
) -> dict[str, Any]:
    total = int(sum(counts.values()))
    errors = int(sum(value for outcome, value in counts.items() if outcome != "ok"))
    return {
        "service": key[0],
        "integration": key[1],
        "calls": total,
        "errors": errors,
        "error_rate": round(errors / total, 4) if total else 0.0,
        "p50_ms": duration.quantile_ms(0.5) if duration else None,
        "p95_ms": duration.quantile_ms(0.95) if duration else None,
        "last_error": last_error,
        "last_error_at": (
            datetime.fromtimestamp(last_error_at, UTC).isoformat() if last_error_at else None
        ),
        "outcomes": {outcome: int(value) for outcome, value in sorted(counts.items())},
    }


def of_service(rows: Sequence[dict[str, Any]], service: str) -> list[dict[str, Any]]:
    """The rows a service reports about itself (in a process that runs several services, as
    some tests do, one registry holds them all: each is read from its own address)."""
    return [row for row in rows if row["service"] == service]
