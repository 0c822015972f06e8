"""How ``waybill bench webhooks`` shows a run: a rich table, and a PNG of the latencies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def print_result(console: Console, result: Mapping[str, Any]) -> None:
    options = result["options"]
    title = (
        f"waybill bench webhooks: {options['events']:,} events x {options['endpoints']} endpoints"
        f" ({options['failing_endpoints']} answering 500)"
    )
    table = Table(title=title, show_header=True)
    table.add_column("figure")
    table.add_column("value", justify="right")
    healthy, failing, latency = result["healthy"], result["failing"], result["latency_ms"]
    rows: list[tuple[str, Any]] = [
        ("complete", "yes" if result["complete"] else "NO (timed out)"),
        (
            "healthy messages delivered / expected",
            f"{healthy['delivered']:,} / {healthy['messages_expected']:,}",
        ),
        ("duplicates (same webhook-id twice)", healthy["duplicates"]),
        ("deliveries/s (healthy)", result["deliveries_per_s"]),
        (
            "latency p50 / p95 / p99 ms",
            f"{latency['p50']:,.1f} / {latency['p95']:,.1f} / {latency['p99']:,.1f}",
        ),
        ("notifier CPU-ms per delivery", result["cpu_ms"]["notifier_per_delivery"]),
        ("  of which its PostgreSQL backends", result["cpu_ms"]["notifier_backends_per_delivery"]),
        ("notifier CPU-ms per attempt", result["cpu_ms"]["notifier_per_attempt"]),
        ("harness CPU-ms per delivery", result["cpu_ms"]["harness_per_delivery"]),
        ("receiver CPU-ms per request", result["cpu_ms"]["receiver_per_request"]),
        ("commits per delivery", result["commits"]["per_delivery"]),
        ("  less the idle commits", result["commits"]["per_delivery_less_idle"]),
        ("idle commits/s", result["commits"]["idle_per_s"]),
        (
            "attempts / succeeded / exhausted",
            f"{result['notifier']['attempts']:,} / {result['notifier']['succeeded']:,} / "
            f"{result['notifier']['exhausted']:,}",
        ),
    ]
    if failing["messages_expected"]:
        rows.append(
            (
                "failing messages with every attempt seen",
                f"{failing['all_attempts_seen']:,} / {failing['messages_expected']:,}",
            )
        )
    for row in rows:
        table.add_row(row[0], _fmt(row[1]))
    console.print(table)
    if result["schedule_gaps"]:
        gaps = Table(title="retry schedule: observed gaps between attempts of one message (s)")
        for column in ("retry", "configured", "messages", "min", "p50", "p95", "max"):
            gaps.add_column(column, justify="right")
        for gap in result["schedule_gaps"]:
            gaps.add_row(
                str(gap["retry"]),
                _fmt(gap["configured_s"]),
                _fmt(gap["messages"]),
                *(_fmt(gap[f"observed_{k}_s"]) for k in ("min", "p50", "p95", "max")),
            )
        console.print(gaps)


def write_chart(
    path: Path, points: Sequence[tuple[float, float]], result: Mapping[str, Any]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    latency = result["latency_ms"]
    figure, (over_time, cdf) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=120)
    over_time.scatter([p[0] for p in points], [p[1] for p in points], s=2, alpha=0.4)
    for key, colour in (("p50", "green"), ("p95", "orange"), ("p99", "red")):
        over_time.axhline(
            latency[key], color=colour, linestyle="--", label=f"{key} {latency[key]:,.0f} ms"
        )
    over_time.set_xlabel("event published at, s since the first")
    over_time.set_ylabel("published -> received, ms")
    over_time.set_yscale("log")
    over_time.grid(True, which="both", alpha=0.3)
    over_time.legend(loc="upper left", fontsize=8)
    ordered = sorted(p[1] for p in points)
    cdf.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))])
    cdf.set_xscale("log")
    cdf.set_xlabel("published -> received, ms")
    cdf.set_ylabel("share of deliveries")
    cdf.grid(True, which="both", alpha=0.3)
    options = result["options"]
    figure.suptitle(
        f"waybill bench webhooks: {options['events']:,} events x {options['endpoints']} endpoints, "
        f"{result['deliveries_per_s']:,.0f} deliveries/s, "
        f"{result['cpu_ms']['notifier_per_delivery']} notifier CPU-ms/delivery"
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
