"""``edgewise device bootstrap``: register a device with the cloud and write everything its runtime needs.

It creates the thing if missing, issues a certificate with a cloud-generated key for it (the API attaches a
certificate issued for a thing to that thing), attaches a policy to the certificate, and writes into ``--out``
the certificate, the private key (0600), the cloud's CA certificate (from ``GET /api/v1/ca``) and
``edgewise.yaml``, the file ``edgewise runtime start --config`` reads. The MQTT endpoint comes from
``--endpoint host:port``, else from ``--data DIR``'s ``cloud.json``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
import yaml

from edgewise.cli.api import ApiOption, DataOption, api_client, api_path, cloud_endpoints, request, send
from edgewise.cli.connection import fail
from edgewise.cli.identity import write_private

app = typer.Typer(help="Prepare devices for the cloud.", no_args_is_help=True)

CERTIFICATE_FILE = "device.pem.crt"
PRIVATE_KEY_FILE = "private.pem.key"
ROOT_CA_FILE = "root-ca.pem"
CONFIG_FILE = "edgewise.yaml"
#: The policy every cloud creates on its first start (``edgewise.cloud.identity.policy``); named here
#: rather than imported so that a device, which has no cloud modules, can bootstrap itself.
DEFAULT_POLICY = "EdgewiseDefaultDevicePolicy"
_DEFAULT_MQTT_PORT = 8883


def _split_endpoint(value: str, source: str) -> tuple[str, int]:
    """``host:port`` (or ``mqtts://host:port``) as host and port; exits naming ``source`` when malformed."""
    parts = urlsplit(value if "://" in value else f"mqtts://{value}")
    try:
        port = parts.port or _DEFAULT_MQTT_PORT
    except ValueError:
        fail(f"{source}: {value!r} has a bad port (expected host:port)")
    if parts.scheme != "mqtts" or not parts.hostname or parts.path not in ("", "/"):
        fail(f"{source}: expected host:port or mqtts://host:port, got {value!r}")
    return parts.hostname, port


def _mqtt_endpoint(endpoint: str | None, data: Path | None) -> tuple[str, int]:
    if endpoint is not None:
        return _split_endpoint(endpoint, "--endpoint")
    recorded = cloud_endpoints(data).get("mqttEndpoint")
    if not isinstance(recorded, str):
        fail("No MQTT endpoint: give --endpoint host:port, or --data DIR of a cloud that has started")
    return _split_endpoint(recorded, f"mqttEndpoint in {data}/cloud.json")


def _config(thing: str, host: str, port: int) -> dict[str, Any]:
    # Paths relative to the file: the directory can be moved to the device as a whole.
    return {
        "thingName": thing,
        "cloud": {
            "endpoint": host,
            "port": port,
            "certificate": CERTIFICATE_FILE,
            "privateKey": PRIVATE_KEY_FILE,
            "rootCa": ROOT_CA_FILE,
        },
    }


@app.command()
def bootstrap(
    thing: Annotated[str, typer.Option("--thing", help="The device's thing name (created if missing).")],
    out: Annotated[Path, typer.Option("--out", help="Directory to write the device's files into.")],
    policy: Annotated[
        str, typer.Option(help="Policy to attach to the device's certificate.")
    ] = DEFAULT_POLICY,
    endpoint: Annotated[
        str | None,
        typer.Option(help="The broker as host:port [default: mqttEndpoint of --data DIR's cloud.json]."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite files already in --out.")] = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Register a device and write its certificate, key, CA and edgewise.yaml into --out."""
    host, port = _mqtt_endpoint(endpoint, data)
    files = [out / name for name in (CERTIFICATE_FILE, PRIVATE_KEY_FILE, ROOT_CA_FILE, CONFIG_FILE)]
    existing = [str(path) for path in files if path.exists()]
    if existing and not force:
        fail(f"--out: {', '.join(existing)} already exist(s); give --force to overwrite")
    with api_client(api, data) as client:
        if send(client, "GET", api_path("things", thing), allow=(404,)).status_code == 404:
            request(client, "POST", "/things", json={"thingName": thing})
            typer.echo(f"Created thing {thing}")
        issued = request(client, "POST", "/certificates", json={"thingName": thing, "generateKeyPair": True})
        certificate_id = issued["certificateId"]
        request(client, "PUT", api_path("policies", policy, "targets", "certificates", certificate_id))
        root_ca = request(client, "GET", "/ca")["certificatePem"]
    out.mkdir(parents=True, exist_ok=True)
    for path in files:
        path.unlink(missing_ok=True)
    write_private(out / PRIVATE_KEY_FILE, issued["privateKey"])
    (out / CERTIFICATE_FILE).write_text(issued["certificatePem"], encoding="ascii")
    (out / ROOT_CA_FILE).write_text(root_ca, encoding="ascii")
    (out / CONFIG_FILE).write_text(
        yaml.safe_dump(_config(thing, host, port), sort_keys=False), encoding="utf-8"
    )
    os.chmod(out / CONFIG_FILE, 0o644)
    typer.echo(f"Certificate {certificate_id} for thing {thing} with policy {policy}")
    typer.echo(f"Wrote {', '.join(str(path) for path in files)}")
    typer.echo(f"Start the device with: python -m edgewise.runtime --root ROOT --config {out / CONFIG_FILE}")
