"""The figures of a ``waybill bench webhooks`` run, from what the receiver saw. Pure: the unit
tests feed it arrivals.

A message is one (endpoint, event): its ``webhook-id`` is the same on every attempt. Healthy
endpoints answer 200, so each of their messages should arrive exactly once; failing ones answer
500, so each of their messages should arrive ``max_attempts`` times, the gaps between arrivals
being the retry schedule's delays (+-10 % jitter, plus the queue's pick-up time).
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from waybill.cli.bench.receiver import Arrival
from waybill.cli.load.stats import Latency, percentile


@dataclass(frozen=True)
class Message:
    webhook_id: str
    path: str
    order_id: str
    arrivals: tuple[float, ...]  # sorted
    succeeded: bool  # the receiver answered 200 at least once


def messages_of(arrivals: Iterable[Arrival]) -> dict[str, Message]:
    """Arrivals grouped by ``webhook-id`` (the order id read from the first body's ``data``)."""
    grouped: dict[str, list[Arrival]] = defaultdict(list)
    for arrival in arrivals:
        grouped[arrival.webhook_id].append(arrival)
    messages = {}
    for webhook_id, seen in grouped.items():
        body: dict[str, Any] = json.loads(seen[0].body)
        messages[webhook_id] = Message(
            webhook_id,
            seen[0].path,
            str(body["data"]["order_id"]),
            tuple(sorted(a.at for a in seen)),
            any(a.status == 200 for a in seen),
        )
    return messages


def _summary(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "min": round(ordered[0], 3) if ordered else 0.0,
        "p50": round(percentile(ordered, 0.5), 3),
        "p95": round(percentile(ordered, 0.95), 3),
        "max": round(ordered[-1], 3) if ordered else 0.0,
    }


def schedule_gaps(
    messages: Iterable[Message], delays: Sequence[float]
) -> list[dict[str, float | int]]:
    """Per retry k (1-based): the configured delay and the observed gaps between arrival k and
    k + 1 of each message that got that far (seconds)."""
    gaps: dict[int, list[float]] = defaultdict(list)
    for message in messages:
        for k, (earlier, later) in enumerate(itertools.pairwise(message.arrivals), 1):
            gaps[k].append(later - earlier)
    return [
        {"retry": k, "configured_s": delays[k - 1] if k <= len(delays) else 0.0}
        | {"messages": len(gaps[k])}
        | {f"observed_{name}_s": value for name, value in _summary(gaps[k]).items()}
        for k in sorted(gaps)
    ]


def delivery_figures(
    arrivals: Sequence[Arrival],
    published: Mapping[str, float],
    *,
    healthy_paths: Collection[str],
    failing_paths: Collection[str],
    max_attempts: int,
    delays: Sequence[float],
) -> dict[str, Any]:
    """Counts, latency and schedule gaps of the messages of the ``published`` orders (order id
    -> ``time.time()`` when handed to the producer)."""
    messages = [m for m in messages_of(arrivals).values() if m.order_id in published]
    healthy = [m for m in messages if m.path in healthy_paths]
    failing = [m for m in messages if m.path in failing_paths]
    latency = Latency.of(m.arrivals[0] - published[m.order_id] for m in healthy)
    per_endpoint = {
        path: sum(m.path == path for m in messages) for path in (*healthy_paths, *failing_paths)
    }
    expected_healthy = len(published) * len(healthy_paths)
    expected_failing = len(published) * len(failing_paths)
    settled = [m.arrivals[-1] for m in healthy] + [
        m.arrivals[-1] for m in failing if len(m.arrivals) >= max_attempts
    ]
    start = min(published.values(), default=0.0)
    window_s = max(settled, default=start) - start
    delivered = sum(m.succeeded for m in healthy)
    return {
        "events": len(published),
        "messages_expected": expected_healthy + expected_failing,
        "healthy": {
            "messages_expected": expected_healthy,
            "delivered": delivered,
            "requests": sum(len(m.arrivals) for m in healthy),
            "duplicates": sum(len(m.arrivals) - 1 for m in healthy),
            "exactly_once": delivered == expected_healthy
            and all(len(m.arrivals) == 1 for m in healthy),
        },
        "failing": {
            "messages_expected": expected_failing,
            "messages_seen": len(failing),
            "requests": sum(len(m.arrivals) for m in failing),
            "all_attempts_seen": sum(len(m.arrivals) == max_attempts for m in failing),
            "over_attempted": sum(len(m.arrivals) > max_attempts for m in failing),
        },
        "messages_per_endpoint": per_endpoint,
        "window_s": round(window_s, 3),
        "deliveries_per_s": round(delivered / window_s, 1) if window_s > 0 else 0.0,
        "requests_per_s": round(sum(len(m.arrivals) for m in messages) / window_s, 1)
        if window_s > 0
        else 0.0,
        "latency_ms": {
            "count": latency.count,
            "p50": latency.p50_ms,
            "p95": latency.p95_ms,
            "p99": latency.p99_ms,
            "max": round(
                max((m.arrivals[0] - published[m.order_id] for m in healthy), default=0) * 1000, 1
            ),
        },
        "schedule_gaps": schedule_gaps(failing, delays),
    }


def latency_points(
    arrivals: Sequence[Arrival], published: Mapping[str, float], healthy_paths: Collection[str]
) -> list[tuple[float, float]]:
    """(seconds since the first publish, published -> received ms) of each healthy message."""
    start = min(published.values(), default=0.0)
    return sorted(
        (published[m.order_id] - start, (m.arrivals[0] - published[m.order_id]) * 1000)
        for m in messages_of(arrivals).values()
        if m.order_id in published and m.path in healthy_paths
    )
