"""``edgewise cloud ...``: run the cloud (API, managed broker) on this machine.

The cloud's modules (FastAPI, SQLAlchemy, uvicorn) come with the ``cloud`` extra, which a device does not
install, so they are imported only when a command needs them.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgewise.cli.connection import fail

if TYPE_CHECKING:
    from edgewise.cloud.server import BrokerMode, PreparedCloud

app = typer.Typer(help="Run the Edgewise cloud: registry API and MQTT gateway.", no_args_is_help=True)


def _print_ready(cloud: PreparedCloud) -> None:
    endpoints = cloud.endpoints
    broker = "managed Mosquitto" if endpoints.broker == "managed" else "external broker"
    # Plain lines, never wrapped: people copy these and scripts parse them.
    typer.echo(f"API:            {endpoints.api_url}/api/v1 (docs at {endpoints.api_url}/api/v1/docs)")
    typer.echo(f"MQTT endpoint:  {endpoints.mqtt_endpoint} ({broker}, mutual TLS)")
    typer.echo(f"CA certificate: {endpoints.ca_file}")
    typer.echo(f"Admin token:    {endpoints.admin_token_file}")
    typer.echo("Ready; stop with Ctrl-C or SIGTERM.")


@app.command()
def up(
    data: Annotated[Path, typer.Option("--data", help="Data directory (created on first start).")],
    api_host: Annotated[str, typer.Option(help="Address the API listens on.")] = "127.0.0.1",
    api_port: Annotated[int, typer.Option(help="Port of the API.")] = 8080,
    mqtt_port: Annotated[int, typer.Option(help="Port of the devices' MQTT listener (mutual TLS).")] = 8883,
    database_url: Annotated[
        str, typer.Option(help="postgresql+psycopg://... (default: SQLite in the data directory).")
    ] = "",
    broker: Annotated[
        str, typer.Option(help="'managed' starts Mosquitto; 'external' uses --broker-url.")
    ] = "managed",
    broker_url: Annotated[
        str | None, typer.Option(help="mqtts://host:port of an external broker.", show_default=False)
    ] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
) -> None:
    """Start the cloud in the foreground until SIGTERM or Ctrl-C; the first start prints the admin token."""
    from edgewise.cloud.server import CloudStartError, ServerOptions, prepare, serve
    from edgewise.errors import EdgewiseError

    if broker not in ("managed", "external"):
        fail(f"--broker: expected 'managed' or 'external', got {broker!r}")
    mode: BrokerMode = "managed" if broker == "managed" else "external"
    level = log_level.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        fail(f"--log-level: expected DEBUG, INFO, WARNING or ERROR, got {log_level!r}")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        options = ServerOptions(
            data_dir=data.absolute(),
            api_host=api_host,
            api_port=api_port,
            mqtt_port=mqtt_port,
            database_url=database_url,
            broker=mode,
            broker_url=broker_url,
        )
        cloud = prepare(options)
    except CloudStartError as exc:
        fail(str(exc))
    except EdgewiseError as exc:
        fail(f"Cannot prepare {data}: {exc}")
    except ValueError as exc:  # pydantic's ValidationError: a settings value, e.g. --database-url
        fail(f"Invalid settings: {exc}")
    if cloud.admin_token is not None:
        typer.echo(
            f"Admin API token (shown once; also in {cloud.settings.admin_token_file}): {cloud.admin_token}"
        )
    try:
        asyncio.run(serve(cloud, on_ready=_print_ready))
    except EdgewiseError as exc:
        fail(str(exc))
