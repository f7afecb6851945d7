"""``edgewise cloud ...``: run the cloud (API, managed broker) on this machine.

``cloud up --workers N`` runs the cloud as N processes on PostgreSQL: ``cloud up`` itself is process 0 and
starts ``cloud worker`` for the others (see :mod:`edgewise.cloud.processes`).

The cloud's modules (FastAPI, SQLAlchemy, uvicorn) come with the ``cloud`` extra, which a device does not
install, so they are imported only when a command needs them.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgewise.cli.connection import fail

if TYPE_CHECKING:
    from edgewise.cloud.preparation import BrokerMode, PreparedCloud

#: The external broker's password for the workers; never an option, which would show in the process list.
BROKER_PASSWORD_ENV = "EDGEWISE_BROKER_PASSWORD"  # noqa: S105 - the variable's name, not a password

app = typer.Typer(help="Run the Edgewise cloud: registry API and MQTT gateway.", no_args_is_help=True)
#: Linux's prctl option that sends the calling process a signal when its parent dies.
_PR_SET_PDEATHSIG = 1


def _printing_ready(processes: int) -> Callable[[PreparedCloud], None]:
    def print_ready(cloud: PreparedCloud) -> None:
        if processes > 1:
            typer.echo(f"Workers:        {processes} processes")
        _print_ready(cloud)

    return print_ready


def _print_ready(cloud: PreparedCloud) -> None:
    endpoints = cloud.endpoints
    broker = "managed Mosquitto, mutual TLS" if endpoints.broker == "managed" else "external broker"
    # Plain lines, never wrapped: people copy these and scripts parse them.
    typer.echo(f"API:            {endpoints.api_url}/api/v1 (docs at {endpoints.api_url}/api/v1/docs)")
    typer.echo(f"MQTT endpoint:  {endpoints.mqtt_endpoint} ({broker})")
    if endpoints.broker == "external":
        typer.echo(f"Worker broker:  {cloud.worker_connection.url}")
    typer.echo(f"Data plane:     {endpoints.data_plane_url} (artifact downloads, HTTPS)")
    if endpoints.https_publish_url:
        typer.echo(f"HTTPS publish:  {endpoints.https_publish_url}/topics/<topic> (devices, mutual TLS)")
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
        str | None,
        typer.Option(help="mqtts://host:port (or mqtt://) of an external broker.", show_default=False),
    ] = None,
    broker_worker_url: Annotated[
        str | None,
        typer.Option(
            help="Where the workers reach the external broker (default: --broker-url).", show_default=False
        ),
    ] = None,
    broker_username: Annotated[
        str | None, typer.Option(help="The workers' user name on the external broker.", show_default=False)
    ] = None,
    broker_password_file: Annotated[
        Path | None,
        typer.Option(
            help=f"File holding the workers' password on the external broker (or set {BROKER_PASSWORD_ENV}).",
            show_default=False,
        ),
    ] = None,
    broker_ca: Annotated[
        Path | None,
        typer.Option(
            help="CA certificates the external broker's TLS certificate must chain to (default: the cloud's CA).",
            show_default=False,
        ),
    ] = None,
    data_plane_host: Annotated[
        str, typer.Option(help="Address the artifact data plane (HTTPS) listens on.")
    ] = "0.0.0.0",  # noqa: S104 - devices download over the network
    data_plane_port: Annotated[int, typer.Option(help="Port of the artifact data plane.")] = 8443,
    https_publish_host: Annotated[
        str,
        typer.Option(help="Address HTTPS publish (devices' POST /topics/<topic>, mutual TLS) listens on."),
    ] = "0.0.0.0",  # noqa: S104 - devices publish over the network
    https_publish_port: Annotated[
        int,
        typer.Option(help="Port of HTTPS publish (AWS uses 8443, the data plane's here); 0 turns it off."),
    ] = 8444,
    artifact_store: Annotated[
        str, typer.Option(help="s3://bucket/prefix (default: the directory DATA/artifacts).")
    ] = "",
    artifact_store_endpoint_url: Annotated[
        str | None,
        typer.Option(help="Endpoint of an S3-compatible store (default: AWS S3).", show_default=False),
    ] = None,
    telemetry_topic: Annotated[
        list[str] | None,
        typer.Option(
            "--telemetry-topic",
            help="An MQTT filter whose messages are stored as telemetry; repeat for more (default: dt/+/#).",
            show_default=False,
        ),
    ] = None,
    telemetry_max_age: Annotated[
        str | None,
        typer.Option(
            "--telemetry-max-age",
            help="Delete telemetry older than this (e.g. 30d) in streams without a retention of their own.",
            show_default=False,
        ),
    ] = None,
    telemetry_retention_interval: Annotated[
        float,
        typer.Option(
            "--telemetry-retention-interval", min=1.0, max=86_400.0, help="Seconds between retention passes."
        ),
    ] = 60.0,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Processes serving devices, partitioned by thing (more than 1 needs PostgreSQL).",
        ),
    ] = 1,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
) -> None:
    """Start the cloud in the foreground until SIGTERM or Ctrl-C; the first start prints the admin token."""
    from edgewise.cloud.errors import CloudStartError
    from edgewise.cloud.preparation import ServerOptions, prepare
    from edgewise.cloud.server import serve
    from edgewise.cloud.settings import TELEMETRY_TOPIC_FILTERS
    from edgewise.errors import EdgewiseError

    if workers > 1 and not database_url.startswith("postgresql"):
        fail(
            f"--workers: {workers} processes need PostgreSQL (--database-url postgresql+psycopg://...); "
            "SQLite serves one process",
            code=2,
        )
    if broker not in ("managed", "external"):
        fail(f"--broker: expected 'managed' or 'external', got {broker!r}")
    mode: BrokerMode = "managed" if broker == "managed" else "external"
    level = log_level.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        fail(f"--log-level: expected DEBUG, INFO, WARNING or ERROR, got {log_level!r}")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    broker_password = _broker_password(broker_password_file, external=mode == "external")
    max_age_seconds = (
        None if telemetry_max_age is None else _whole_seconds("--telemetry-max-age", telemetry_max_age)
    )
    try:
        options = ServerOptions(
            data_dir=data.absolute(),
            api_host=api_host,
            api_port=api_port,
            mqtt_port=mqtt_port,
            database_url=database_url,
            broker=mode,
            broker_url=broker_url,
            broker_worker_url=broker_worker_url,
            broker_username=broker_username,
            broker_password=broker_password,
            broker_ca_file=None if broker_ca is None else broker_ca.absolute(),
            data_plane_host=data_plane_host,
            data_plane_port=data_plane_port,
            https_publish_host=https_publish_host,
            https_publish_port=https_publish_port,
            artifact_store=artifact_store,
            artifact_store_endpoint_url=artifact_store_endpoint_url,
            telemetry_topic_filters=tuple(telemetry_topic) if telemetry_topic else TELEMETRY_TOPIC_FILTERS,
            telemetry_retention_interval_seconds=telemetry_retention_interval,
            telemetry_default_max_age_seconds=max_age_seconds,
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
        asyncio.run(serve(cloud, on_ready=_printing_ready(workers), processes=workers))
    except EdgewiseError as exc:
        fail(str(exc))


@app.command()
def worker(
    data: Annotated[
        Path, typer.Option("--data", help="The data directory of the cloud this process serves.")
    ],
    process: Annotated[int, typer.Option("--process", help="This process's index, 1..N-1 (0 is cloud up).")],
    processes: Annotated[int, typer.Option("--processes", help="N, as cloud up --workers N.")],
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
    supervised: Annotated[
        bool, typer.Option("--supervised", hidden=True, help="Stop when the parent process dies.")
    ] = False,
) -> None:
    """Serve devices' requests for the things of one partition, until SIGTERM or Ctrl-C.

    Reads its settings as JSON from standard input (databaseUrl, dataPlaneUrl, broker: host, port, username,
    password, tls, caFile) and prints "ready" once serving. cloud up --workers N starts these itself.
    """
    from edgewise.cloud.partition import Partition
    from edgewise.cloud.worker_process import PartitionSettings, serve_partition
    from edgewise.errors import EdgewiseError

    level = log_level.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        fail(f"--log-level: expected DEBUG, INFO, WARNING or ERROR, got {log_level!r}")
    if not 2 <= processes <= 64:
        fail(f"--processes: {processes} is not between 2 and 64", code=2)
    if not 1 <= process < processes:
        fail(f"--process: {process} is not between 1 and {processes - 1}", code=2)
    if supervised:
        _stop_with_parent()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = PartitionSettings.from_json(sys.stdin.readline())
    except ValueError as exc:
        fail(f"Invalid settings on standard input: {exc}")

    def print_ready() -> None:
        typer.echo("ready")

    try:
        asyncio.run(
            serve_partition(data.absolute(), settings, Partition(process, processes), on_ready=print_ready)
        )
    except EdgewiseError as exc:
        fail(str(exc))


def _stop_with_parent() -> None:
    """Have the kernel send SIGTERM when the parent (cloud up) dies, however it dies."""
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        fail("The parent process exited before this worker started")


def _whole_seconds(option: str, text: str) -> int:
    """A duration option (``30d``) in whole seconds; exits naming ``option`` when it is not one."""
    from edgewise.cloud.errors import InvalidRequestError
    from edgewise.cloud.telemetry.query import parse_duration

    try:
        milliseconds = parse_duration(option, text)
    except InvalidRequestError as exc:
        fail(f"{option}: {exc.problem}")
    if milliseconds % 1000 or milliseconds // 1000 > 2**31 - 1:
        fail(f"{option}: {text!r} must be a whole number of seconds, at most {2**31 - 1}")
    return milliseconds // 1000


def _broker_password(password_file: Path | None, *, external: bool) -> str | None:
    """The external broker's password from ``--broker-password-file`` or the environment, if either is set
    (the environment counts only for an external broker: it may be set for other commands too)."""
    from_environment = os.environ.get(BROKER_PASSWORD_ENV) if external else None
    if password_file is None:
        return from_environment
    if from_environment is not None:
        fail(f"--broker-password-file: {BROKER_PASSWORD_ENV} is set too; give the password one way")
    try:
        password = password_file.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"--broker-password-file: cannot read {password_file}: {exc}")
    if not password:
        fail(f"--broker-password-file: {password_file} is empty")
    return password
