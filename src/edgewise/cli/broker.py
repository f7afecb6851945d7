"""``edgewise broker acl|crl``: the files the managed broker would be given now, for a Mosquitto of one's own.

Both ask the API (``GET /api/v1/broker/acl`` and ``/crl``, an admin token) and print the file, or write it
atomically to ``--output FILE`` so that a broker reloading it never reads half of one. The ACL is exactly what
the managed broker renders; Mosquitto checks the CRL only at connection time and rereads both on SIGHUP.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from edgewise.cli.api import ApiOption, DataOption, api_client, send
from edgewise.cli.connection import fail

app = typer.Typer(
    help="Authorization files for a Mosquitto the cloud does not manage (--broker external).",
    no_args_is_help=True,
)

OutputOption = Annotated[
    Path | None,
    typer.Option(
        "--output", "-o", help="Write the file here (atomically) instead of printing it.", show_default=False
    ),
]


def _deliver(text: str, output: Path | None, *, mode: int) -> None:
    if output is None:
        typer.echo(text, nl=False)
        return
    partial = output.with_name(output.name + ".partial")
    try:
        partial.unlink(missing_ok=True)
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(text)
        partial.replace(output)
    except OSError as exc:
        fail(f"--output: cannot write {output}: {exc.strerror}")


@app.command("acl")
def acl(output: OutputOption = None, api: ApiOption = None, data: DataOption = None) -> None:
    """Print the ACL file (Mosquitto's acl_file) granting each device what its policies allow."""
    with api_client(api, data) as client:
        text = send(client, "GET", "/broker/acl").text
    _deliver(text, output, mode=0o644)
    typer.echo(
        "Mosquitto also needs the CRL to refuse revoked certificates: `edgewise broker crl --output FILE` (its"
        " crlfile); send SIGHUP after replacing either.",
        err=True,
    )


@app.command("crl")
def crl(output: OutputOption = None, api: ApiOption = None, data: DataOption = None) -> None:
    """Print the CRL (PEM, Mosquitto's crlfile): every certificate of the cloud's CA that is not ACTIVE."""
    with api_client(api, data) as client:
        text = send(client, "GET", "/broker/crl").text
    _deliver(text, output, mode=0o644)
