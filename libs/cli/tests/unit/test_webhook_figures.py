"""``waybill bench webhooks``' figures from the receiver's arrivals (no I/O)."""

from __future__ import annotations

import json

from waybill.cli.bench.receiver import Arrival
from waybill.cli.bench.webhook_figures import delivery_figures, messages_of, schedule_gaps

T0 = 1_000_000.0


def _arrival(webhook_id: str, path: str, order_id: str, at: float, status: int = 200) -> Arrival:
    body = json.dumps({"type": "order.cancelled", "data": {"order_id": order_id}}).encode()
    return Arrival(webhook_id, path, at, body, status)


def _figures(arrivals: list[Arrival], published: dict[str, float]) -> dict[str, object]:
    return delivery_figures(
        arrivals,
        published,
        healthy_paths=["/ok"],
        failing_paths=["/fail"],
        max_attempts=3,
        delays=(1.0, 2.0),
    )


def test_a_healthy_message_seen_twice_is_a_duplicate_not_a_second_delivery() -> None:
    published = {"ord_a": T0, "ord_b": T0}
    arrivals = [
        _arrival("msg_a", "/ok", "ord_a", T0 + 0.1),
        _arrival("msg_a", "/ok", "ord_a", T0 + 0.3),
        _arrival("msg_b", "/ok", "ord_b", T0 + 0.2),
    ]
    healthy = _figures(arrivals, published)["healthy"]
    assert healthy == {
        "messages_expected": 2,
        "delivered": 2,
        "requests": 3,
        "duplicates": 1,
        "exactly_once": False,
    }


def test_latency_is_from_publish_to_the_first_arrival() -> None:
    published = {f"ord_{i}": T0 + i for i in range(100)}
    arrivals = [_arrival(f"msg_{i}", "/ok", f"ord_{i}", T0 + i + 0.050) for i in range(100)]
    figures = _figures(arrivals, published)
    assert figures["latency_ms"]["p50"] == 50.0  # type: ignore[index]
    assert figures["healthy"]["exactly_once"] is True  # type: ignore[index]
    assert figures["failing"]["messages_seen"] == 0  # type: ignore[index]


def test_gaps_are_between_consecutive_attempts_of_one_message() -> None:
    arrivals = [_arrival("msg_x", "/fail", "ord_x", T0 + t, 500) for t in (0.0, 1.1, 3.2)] + [
        _arrival("msg_y", "/fail", "ord_y", T0 + t, 500) for t in (0.5, 1.4, 3.6)
    ]
    gaps = schedule_gaps(messages_of(arrivals).values(), (1.0, 2.0))
    assert [(g["retry"], g["configured_s"], g["messages"]) for g in gaps] == [
        (1, 1.0, 2),
        (2, 2.0, 2),
    ]
    assert gaps[0]["observed_min_s"] == 0.9
    assert gaps[1]["observed_max_s"] == 2.2


def test_a_failing_message_with_every_attempt_counts_once_and_messages_of_other_runs_not() -> None:
    published = {"ord_x": T0}
    arrivals = [_arrival("msg_x", "/fail", "ord_x", T0 + t, 500) for t in (0.0, 1.0, 3.0)]
    arrivals.append(_arrival("msg_old", "/ok", "ord_warm_up", T0 - 5))
    failing = _figures(arrivals, published)["failing"]
    assert failing == {
        "messages_expected": 1,
        "messages_seen": 1,
        "requests": 3,
        "all_attempts_seen": 1,
        "over_attempted": 0,
    }
