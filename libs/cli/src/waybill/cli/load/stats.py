"""The figures of a run: percentiles, latency summaries, live rates, the summary by kind."""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from waybill.cli.load.client import Placement
from waybill.cli.load.outcomes import Outcome
from waybill.cli.load.schedule import LoadOptions


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); 0.0 for no values."""
    if not sorted_values:
        return 0.0
    position = fraction * (len(sorted_values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


@dataclass(frozen=True)
class Latency:
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @classmethod
    def of(cls, seconds: Iterable[float]) -> Latency:
        values = sorted(seconds)
        p50, p95, p99 = (round(percentile(values, q) * 1000, 1) for q in (0.5, 0.95, 0.99))
        return cls(count=len(values), p50_ms=p50, p95_ms=p95, p99_ms=p99)


class RateWindow:
    """Per-second rates over the last ``span_s`` seconds of (time, count) snapshots."""

    def __init__(self, span_s: float = 2.0) -> None:
        self.span_s = span_s
        self.snapshots: deque[tuple[float, int, int]] = deque()

    def rates(self, now: float, placed: int, settled: int) -> tuple[float, float]:
        self.snapshots.append((now, placed, settled))
        while len(self.snapshots) > 2 and now - self.snapshots[1][0] >= self.span_s:
            self.snapshots.popleft()
        then, placed_then, settled_then = self.snapshots[0]
        span = now - then
        if span <= 0:
            return 0.0, 0.0
        return (placed - placed_then) / span, (settled - settled_then) / span


def summarise(
    placements: Sequence[Placement],
    outcomes: Mapping[str, Outcome],
    options: LoadOptions,
    *,
    tenant_id: str | None = None,
) -> dict[str, Any]:
    """Counts, errors by kind and latencies, per payment kind and in total."""
    errors = Counter(p.error for p in placements if p.error is not None)
    by_kind: dict[str, dict[str, Any]] = {}
    for kind in [*options.mix, "all"]:
        mine = [p for p in placements if kind in ("all", p.kind)]
        ends = [outcomes[p.order_id] for p in mine if p.order_id and p.order_id in outcomes]
        by_kind[kind] = {
            "offered": len(mine),
            "placed": sum(p.order_id is not None for p in mine),
            "paid": sum(o.status == "paid" for o in ends),
            "payment_failed": sum(o.status == "payment_failed" for o in ends),
            "unsettled": sum(o.status == "unsettled" for o in ends),
            "place_to_settled": vars(
                Latency.of(o.latency_s for o in ends if o.latency_s is not None)
            ),
        }
    placing = [p.latency_s for p in placements if p.order_id is not None and p.latency_s]
    return {
        "tenant_id": tenant_id,
        "offered_per_s": options.rate_per_s,
        "duration_s": options.duration_s,
        "mix": options.mix,
        "concurrency": options.concurrency,
        "errors": dict(errors),
        "placement": vars(Latency.of(placing)),
        "kinds": by_kind,
    }
