"""``waybill bench webhooks`` run tiny on its own embedded stack: its counts add up.

Counts only, never times: every healthy endpoint's message arrives exactly once per
``webhook-id``, every failing endpoint's message gets the schedule's attempts and is exhausted,
the notifier's own record agrees with the receiver's, and the per-delivery figures are there.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from waybill.cli.bench.webhooks import Options, run

pytestmark = pytest.mark.infra

EVENTS = 50


def test_a_tiny_run_delivers_each_message_once_and_exhausts_the_failing_ones(
    tmp_path: Path,
) -> None:
    # Three endpoints, one answering 500 (a third, rounded): two retries one second apart.
    options = Options(
        events=EVENTS, endpoints=3, failing_share=0.34, retry_schedule_s="1,1", warm_up_events=5
    )
    json_path = tmp_path / "webhooks.json"
    run(json_path, Console(record=True, width=120), options, chart_path=tmp_path / "w.png")
    result = json.loads(json_path.read_text())

    assert result["complete"] is True
    healthy, failing, notifier = result["healthy"], result["failing"], result["notifier"]
    assert healthy["messages_expected"] == 2 * EVENTS
    assert healthy["delivered"] == 2 * EVENTS
    assert healthy["duplicates"] == 0
    assert healthy["exactly_once"] is True
    assert failing["messages_expected"] == EVENTS
    assert failing["all_attempts_seen"] == EVENTS
    assert failing["over_attempted"] == 0
    assert result["messages_per_endpoint"] == {
        "/ep1/ok": EVENTS,
        "/ep2/ok": EVENTS,
        "/ep0/fail": EVENTS,
    }
    # The notifier's record agrees: 3 attempts per failing message, 1 per healthy one.
    assert notifier == {
        "messages": 3 * EVENTS,
        "attempts": 2 * EVENTS + 3 * EVENTS,
        "succeeded": 2 * EVENTS,
        "exhausted": EVENTS,
        "pending": 0,
    }
    assert [gap["retry"] for gap in result["schedule_gaps"]] == [1, 2]
    assert all(gap["messages"] == EVENTS for gap in result["schedule_gaps"])
    assert result["commits"]["per_delivery"] > 0
    assert result["cpu_ms"]["notifier_per_delivery"] > 0
    assert result["latency_ms"]["count"] == 2 * EVENTS
    assert result["machine"]["cpu_count"] >= 1
    assert (tmp_path / "w.png").stat().st_size > 0
