"""The ``waybill`` command: ``up``, ``keys create``, ``bench``, ``version``.

Each command body parses options and hands over to the module that does the work.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from waybill.cli.console import configure_logging, make_console
from waybill.common.settings import WaybillSettings

app = typer.Typer(help="Waybill: event-sourced order fulfilment over Kafka.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks on the embedded infrastructure.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(bench_app, name="bench")

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
    from waybill.cli.up import run_up

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


@bench_app.command("eventstore")
def bench_eventstore(
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the results as JSON here")
    ] = None,
) -> None:
    """Event store, outbox relay and idempotent consumer throughput on embedded infrastructure."""
    from waybill.cli.bench_eventstore import run

    run(json_path, make_console())


@bench_app.command("memory")
def bench_memory(
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the results as JSON here")
    ] = None,
    idle_s: Annotated[float, typer.Option("--idle", help="Seconds to idle while sampling")] = 20.0,
) -> None:
    """Peak RSS of every process of the stack at idle (target: each service < 150 MiB)."""
    from waybill.cli.bench_memory import run

    run(json_path, make_console(), idle_s=idle_s)


if __name__ == "__main__":
    app()
