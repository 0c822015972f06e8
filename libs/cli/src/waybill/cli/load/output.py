"""What ``waybill load`` prints: the live status line and the summary table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table as RichTable

from waybill.cli.load.client import LoadGenerator
from waybill.cli.load.outcomes import SettlementWatcher
from waybill.cli.load.schedule import DROPPED, TOKENS
from waybill.cli.load.stats import RateWindow


def status_line(
    generator: LoadGenerator, watcher: SettlementWatcher, window: RateWindow, elapsed: float
) -> str:
    c = generator.counters
    settled = sum(watcher.settled.values())
    placed_rate, settled_rate = window.rates(elapsed, c.placed, settled)
    errors = sum(c.errors.values())
    return (
        f"{elapsed:6.1f}s  placed {c.placed:,} ({placed_rate:,.1f}/s)  "
        f"settled {settled:,} ({settled_rate:,.1f}/s)  in flight {c.in_flight}  "
        f"errors {errors:,}" + (f" ({c.errors[DROPPED]:,} dropped)" if c.errors[DROPPED] else "")
    )


def print_summary(console: Console, result: Mapping[str, Any]) -> None:
    table = RichTable(
        title=f"waybill load: {result['offered_per_s']:g} orders/s offered for "
        f"{result['duration_s']:g} s"
    )
    for column in ("payment", "offered", "placed", "paid", "failed", "unsettled"):
        table.add_column(column, justify="left" if column == "payment" else "right")
    for column in ("settle p50 ms", "p95 ms", "p99 ms"):
        table.add_column(column, justify="right")
    for kind, row in result["kinds"].items():
        if kind == "all":
            table.add_section()
        lat = row["place_to_settled"]
        table.add_row(
            TOKENS.get(kind, kind),
            *(f"{row[k]:,}" for k in ("offered", "placed", "paid", "payment_failed", "unsettled")),
            *(f"{lat[k]:,.1f}" if lat["count"] else "-" for k in ("p50_ms", "p95_ms", "p99_ms")),
        )
    console.print(table)
    placement = result["placement"]
    console.print(
        f"placement latency (from the due time): p50 {placement['p50_ms']:,.1f} ms, "
        f"p95 {placement['p95_ms']:,.1f} ms, p99 {placement['p99_ms']:,.1f} ms"
    )
    errors = result["errors"]
    console.print(
        "errors: " + (", ".join(f"{k} {v:,}" for k, v in sorted(errors.items())) or "none")
    )
    if delivery := result.get("delivery"):
        console.print("delivery agents: " + ", ".join(f"{k} {v:,}" for k, v in delivery.items()))
