"""The ``waybill`` command."""

import typer

app = typer.Typer(help="Waybill: event-sourced order fulfilment over Kafka.", no_args_is_help=True)


@app.command()
def version() -> None:
    """Print the Waybill version."""
    typer.echo("waybill 0.1.0")
