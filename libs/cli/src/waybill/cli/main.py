"""The ``waybill`` command: ``up``, ``keys create|list|revoke``, ``load``, ``bench``,
``monitor rebuild``, ``version``.

Each command body parses options and hands over to the module that does the work.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from waybill.cli.console import configure_logging, make_console
from waybill.common import ports
from waybill.common.settings import WaybillSettings

app = typer.Typer(help="Waybill: event-sourced order fulfilment over Kafka.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks on the embedded infrastructure.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
monitor_app = typer.Typer(help="The monitor's read models.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
app.add_typer(monitor_app, name="monitor")

StateDirOption = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="State dir (default: WAYBILL_STATE_DIR or ./.waybill)",
        show_default=False,
    ),
]


def _settings(state_dir: Path | None) -> WaybillSettings:
    return WaybillSettings(state_dir=state_dir) if state_dir else WaybillSettings()


@app.command()
def version() -> None:
    """Print the Waybill version."""
    typer.echo("waybill 0.1.0")


@app.command()
def up(
    fresh: Annotated[bool, typer.Option("--fresh", help="Delete the state dir first")] = False,
    state_dir: StateDirOption = None,
) -> None:
    """Start PostgreSQL, Kafka and every service; supervise them until Ctrl-C."""
    from waybill.cli.stack.up import run_up

    console = make_console()
    configure_logging(console)
    raise typer.Exit(run_up(_settings(state_dir), fresh=fresh, console=console))


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant id")],
    role: Annotated[str, typer.Option("--role", help="service | agent | admin")],
    agent_id: Annotated[str | None, typer.Option("--agent-id", help="For --role agent")] = None,
    state_dir: StateDirOption = None,
) -> None:
    """Issue an API key on the running stack; the key is the last token of the `key:` line."""
    from waybill.cli.keys import Role, StackNotReachable, create_key

    try:
        parsed_role = Role(role)
    except ValueError:
        raise typer.BadParameter(
            f"{role!r} is not one of {', '.join(r.value for r in Role)}", param_hint="--role"
        ) from None
    try:
        issued = asyncio.run(
            create_key(_settings(state_dir), tenant_id=tenant, role=parsed_role, agent_id=agent_id)
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    except StackNotReachable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"tenant: {issued.tenant_id}")
    typer.echo(f"role: {issued.role}")
    typer.echo(f"key id: {issued.key_id}")
    typer.echo(f"key: {issued.key}")


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant")] = None,
    state_dir: StateDirOption = None,
) -> None:
    """List API keys (prefix, tenant, role, created, last used, revoked); never the keys."""
    from waybill.cli.keys import StackNotReachable, list_keys

    try:
        records = asyncio.run(list_keys(_settings(state_dir), tenant_id=tenant))
    except StackNotReachable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo("id\tprefix\ttenant\trole\tcreated\tlast used\trevoked")
    for r in records:
        cells = (
            r.key_id,
            r.prefix,
            r.tenant_id,
            r.role,
            r.created_at,
            r.last_used_at,
            r.revoked_at,
        )
        typer.echo("\t".join("-" if c is None else str(c) for c in cells))


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (see `waybill keys list`)")],
    state_dir: StateDirOption = None,
) -> None:
    """Revoke an API key: every service refuses it within seconds."""
    from waybill.cli.keys import StackNotReachable, revoke_key

    try:
        revoked = asyncio.run(revoke_key(_settings(state_dir), key_id))
    except StackNotReachable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if not revoked:
        typer.echo(f"error: no live key has id {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked: {key_id}")


@bench_app.command("eventstore")
def bench_eventstore(
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the results as JSON here")
    ] = None,
) -> None:
    """Event store, outbox relay and idempotent consumer throughput on embedded infrastructure."""
    from waybill.cli.bench.eventstore import run

    run(json_path, make_console())


@bench_app.command("memory")
def bench_memory(
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the results as JSON here")
    ] = None,
    idle_s: Annotated[float, typer.Option("--idle", help="Seconds to idle while sampling")] = 20.0,
) -> None:
    """Peak RSS of every process of the stack at idle (target: each service < 150 MiB)."""
    from waybill.cli.bench.memory import run

    run(json_path, make_console(), idle_s=idle_s)


@bench_app.command("webhooks")
def bench_webhooks(
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the results as JSON here")
    ] = None,
    chart: Annotated[Path | None, typer.Option("--chart", help="Write a latency PNG here")] = None,
    events: Annotated[
        int, typer.Option("--events", min=1, help="order.cancelled to publish")
    ] = 2000,
    endpoints: Annotated[
        int, typer.Option("--endpoints", min=1, help="Endpoints subscribed to order.cancelled")
    ] = 4,
    rate: Annotated[
        float | None,
        typer.Option("--rate", min=0.001, help="Offered events/s (default: as fast as possible)"),
    ] = None,
    failing_share: Annotated[
        float,
        typer.Option("--failing-share", min=0.0, max=1.0, help="Share of endpoints answering 500"),
    ] = 0.0,
    retry_schedule: Annotated[
        str, typer.Option("--retry-schedule", help="The notifier's retry delays, seconds")
    ] = "1,1",
    timeout: Annotated[
        float, typer.Option("--timeout", min=1.0, help="Seconds to wait for every delivery")
    ] = 600.0,
) -> None:
    """Webhook deliveries: deliveries/s, published->received latency, CPU and commits each."""
    from waybill.cli.bench.webhooks import Options, run

    options = Options(
        events=events,
        endpoints=endpoints,
        rate=rate,
        failing_share=failing_share,
        retry_schedule_s=retry_schedule,
        timeout_s=timeout,
    )
    run(json_path, make_console(), options, chart_path=chart)


@app.command()
def load(
    rate: Annotated[float, typer.Option("--rate", help="Offered orders per second")],
    duration: Annotated[float, typer.Option("--duration", help="Seconds of arrivals")],
    url: Annotated[
        str | None,
        typer.Option("--url", help="Orders base URL (default: from up.json, else :8001)"),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option("--key", help="Service key to place with (default: issue a fresh tenant's)"),
    ] = None,
    admin_key: Annotated[
        str | None,
        typer.Option("--admin-key", help="With --key: admin key to stock the skus with"),
    ] = None,
    mix: Annotated[
        str, typer.Option("--mix", help="Payment-method weights: ok, declined, async, async_silent")
    ] = "ok=0.7,declined=0.1,async=0.15,async_silent=0.05",
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="Cap on requests in flight")
    ] = 64,
    drain: Annotated[
        float, typer.Option("--drain", help="Seconds to wait for orders to settle afterwards")
    ] = 10.0,
    skus: Annotated[int, typer.Option("--skus", min=1, help="Distinct skus to spread over")] = 20,
    agents: Annotated[
        int,
        typer.Option(
            "--agents",
            min=0,
            help="Delivery agents that accept, ship and deliver every paid order (shipping)",
        ),
    ] = 0,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the summary as JSON here")
    ] = None,
    state_dir: StateDirOption = None,
) -> None:
    """Place orders at an offered rate against a running stack; live progress, then a summary.
    With ``--agents N``, N delivery agents take each paid order on to delivered."""
    import json

    from waybill.cli.keys import StackNotReachable
    from waybill.cli.load import command
    from waybill.cli.load.schedule import LoadOptions, parse_mix

    try:
        weights = parse_mix(mix)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--mix") from exc
    if rate <= 0 or duration <= 0:
        raise typer.BadParameter("--rate and --duration must be positive")
    options = LoadOptions(rate, duration, weights, concurrency, drain, skus, agents)
    settings = _settings(state_dir)
    creds = None
    if key is not None:
        target_url = url or command.orders_url(settings) or f"http://127.0.0.1:{ports.ORDERS}"
        creds = command.Credentials(target_url, key, admin_key)
    console = make_console()
    try:
        result = command.run(creds, settings, options, console, url=url)
    except StackNotReachable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2) + "\n")


@bench_app.command("saga")
def bench_saga(
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the results as JSON here")
    ] = None,
    steps: Annotated[
        str, typer.Option("--steps", help="Offered orders/s, one step each")
    ] = "25,50,100,200,400",
    step_seconds: Annotated[
        float, typer.Option("--step-seconds", help="Seconds of arrivals per step")
    ] = 20.0,
    chart: Annotated[
        Path | None, typer.Option("--chart", help="Write a latency/throughput PNG here")
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="Cap on requests in flight")
    ] = 128,
    keep_going: Annotated[
        bool, typer.Option("--keep-going", help="Run every step, even past saturation")
    ] = False,
) -> None:
    """Order -> payment saga throughput and place->paid latency, stepping the offered rate."""
    from waybill.cli.bench.saga import parse_steps, run

    try:
        rates = parse_steps(steps)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--steps") from exc
    run(
        json_path,
        make_console(),
        rates=rates,
        step_s=step_seconds,
        chart_path=chart,
        concurrency=concurrency,
        stop_at_saturation=not keep_going,
    )


@monitor_app.command("rebuild")
def monitor_rebuild(state_dir: StateDirOption = None) -> None:
    """Rebuild every read model of the monitor from its copy of the consumed events."""
    from waybill.monitor.rebuild import rebuild
    from waybill.monitor.settings import MonitorSettings

    settings = MonitorSettings(state_dir=state_dir) if state_dir else MonitorSettings()
    replayed = asyncio.run(rebuild(settings))
    typer.echo(f"monitor read models rebuilt from {replayed} events")


if __name__ == "__main__":
    app()
