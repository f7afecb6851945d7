"""``edgewise device bootstrap``: give a device its identity and write everything its runtime needs.

Two ways, one result:

- ``--thing NAME`` registers the device through the cloud's API (an operator's token): it creates the thing
  if missing, issues a certificate with a cloud-generated key for it (the API attaches a certificate issued
  for a thing to that thing), attaches a policy to the certificate and fetches the CA (``GET /api/v1/ca``).
- ``--claim-cert FILE --claim-key FILE --template NAME`` provisions by claim over MQTT, as a device does on
  first boot (:mod:`edgewise.cli.claim`, over :mod:`edgewise.runtime.provisioning`): it needs no API token,
  only a claim certificate and the broker.

Either way ``--out`` receives the certificate, the private key (0600), the cloud's CA certificate and
``edgewise.yaml``, the file ``edgewise runtime start --config`` reads, and nothing is written when a step
fails. The MQTT endpoint (and, by claim, the CA) come from ``--endpoint host:port`` (and ``--ca FILE``),
else from a ``cloud.json`` as ``edgewise cloud up`` writes it: ``--cloud FILE``, else ``--data DIR``'s.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer

from edgewise.cli.api import ENDPOINTS_FILE, ApiOption, DataOption, api_client, api_path, request, send
from edgewise.cli.connection import fail
from edgewise.runtime.provisioning import CONFIG_FILE, DEVICE_FILES, write_device_directory

app = typer.Typer(help="Prepare devices for the cloud.", no_args_is_help=True)

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


def _cloud_file(cloud: Path | None, data: Path | None) -> tuple[dict[str, Any], Path | None]:
    """What the ``cloud.json`` of ``--cloud FILE`` (must be readable) or ``--data DIR`` (if any) says, and its
    path (``None`` when there is none)."""
    if cloud is None:
        path = None if data is None else data / ENDPOINTS_FILE
        if path is None or not path.is_file():
            return {}, None
        source = f"{ENDPOINTS_FILE} in --data {data}"
    else:
        path, source = cloud, f"--cloud: {cloud}"
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        fail(f"{source}: cannot read it: {exc.strerror}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        fail(f"{source} is not JSON: {exc}")
    if not isinstance(recorded, dict):
        fail(f"{source} must be a JSON object like the cloud.json `edgewise cloud up` writes")
    return recorded, path


def _mqtt_endpoint(endpoint: str | None, recorded: Mapping[str, Any], path: Path | None) -> tuple[str, int]:
    if endpoint is not None:
        return _split_endpoint(endpoint, "--endpoint")
    value = recorded.get("mqttEndpoint")
    if path is None or not isinstance(value, str):
        fail(
            "No MQTT endpoint: give --endpoint host:port, or --cloud FILE (or --data DIR) with a cloud.json "
            "that names mqttEndpoint"
        )
    return _split_endpoint(value, f"mqttEndpoint in {path}")


def _https_port(recorded: Mapping[str, Any]) -> int | None:
    """The port of the cloud's HTTPS listener that cloud.json records (httpsPublishUrl), if any: devices reach
    it on the MQTT endpoint's host, as AWS IoT serves HTTPS on the same endpoint."""
    value = recorded.get("httpsPublishUrl")
    if not isinstance(value, str) or not value:
        return None
    try:
        return urlsplit(value).port
    except ValueError:
        return None


def _check_out(out: Path, force: bool) -> None:
    existing = [str(out / name) for name in DEVICE_FILES if (out / name).exists()]
    if existing and not force:
        fail(f"--out: {', '.join(existing)} already exist(s); give --force to overwrite")


def _report_written(files: list[Path], out: Path) -> None:
    typer.echo(f"Wrote {', '.join(str(path) for path in files)}")
    typer.echo(f"Start the device with: python -m edgewise.runtime --root ROOT --config {out / CONFIG_FILE}")


ThingOption = Annotated[
    str | None,
    typer.Option(
        "--thing",
        help="Register through the API (operator token): the device's thing name, created if missing.",
        show_default=False,
    ),
]
PolicyOption = Annotated[
    str | None,
    typer.Option(
        help=f"With --thing: the policy to attach to the device's certificate (default: {DEFAULT_POLICY}).",
        show_default=False,
    ),
]
ClaimCertOption = Annotated[
    Path | None,
    typer.Option(
        "--claim-cert",
        help="Provision by claim over MQTT: the claim certificate (PEM) to connect with.",
        show_default=False,
    ),
]
ClaimKeyOption = Annotated[
    Path | None,
    typer.Option(
        "--claim-key", help="With --claim-cert: the claim certificate's private key.", show_default=False
    ),
]
TemplateOption = Annotated[
    str | None,
    typer.Option(
        "--template", help="With --claim-cert: the provisioning template's name.", show_default=False
    ),
]
ParameterOption = Annotated[
    list[str] | None,
    typer.Option(
        "--parameter",
        "-p",
        help="With --claim-cert: a template parameter NAME=VALUE; repeat for more.",
        show_default=False,
    ),
]
CsrOption = Annotated[
    bool,
    typer.Option(
        "--csr",
        help="With --claim-cert: make the key here and send a CSR (CreateCertificateFromCsr); "
        "the key never leaves the device.",
    ),
]
CaOption = Annotated[
    Path | None,
    typer.Option(
        "--ca",
        help="With --claim-cert: the cloud's CA certificate (default: caFile of the cloud.json).",
        show_default=False,
    ),
]
CloudOption = Annotated[
    Path | None,
    typer.Option(
        "--cloud",
        help="A cloud.json (as `edgewise cloud up` writes it) naming mqttEndpoint and caFile "
        "(default: --data DIR's).",
        show_default=False,
    ),
]
TimeoutOption = Annotated[
    float,
    typer.Option("--timeout", min=1, max=600, help="With --claim-cert: seconds each MQTT step may take."),
]


@app.command()
def bootstrap(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the device's files into.")],
    thing: ThingOption = None,
    policy: PolicyOption = None,
    claim_cert: ClaimCertOption = None,
    claim_key: ClaimKeyOption = None,
    template: TemplateOption = None,
    parameter: ParameterOption = None,
    csr: CsrOption = False,
    ca: CaOption = None,
    cloud: CloudOption = None,
    timeout: TimeoutOption = 30.0,
    endpoint: Annotated[
        str | None,
        typer.Option(
            help="The broker as host:port (default: mqttEndpoint of the cloud.json).", show_default=False
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite files already in --out.")] = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Give a device its identity (--thing through the API, or --claim-cert by claim over MQTT) and write its
    certificate, key, CA and edgewise.yaml into --out."""
    if (thing is None) == (claim_cert is None):
        fail("Give exactly one of --thing NAME (register through the API) and --claim-cert FILE (by claim)")
    recorded, cloud_path = _cloud_file(cloud, data)
    host, port = _mqtt_endpoint(endpoint, recorded, cloud_path)
    https_port = _https_port(recorded)
    _check_out(out, force)
    if thing is not None:
        claim_only = {"--claim-key": claim_key, "--template": template, "--parameter": parameter, "--ca": ca}
        for option, value in {**claim_only, "--csr": csr}.items():
            if value:
                fail(f"{option} is only for provisioning by claim (--claim-cert), not with --thing")
        _bootstrap_through_api(out, thing, policy or DEFAULT_POLICY, (host, port, https_port), api, data)
        return
    assert claim_cert is not None
    if policy is not None:
        fail("--policy is only for --thing: by claim, the provisioning template says which policies apply")
    if claim_key is None or template is None:
        fail("--claim-cert needs --claim-key FILE and --template NAME")
    # Imported here: paho-mqtt and cryptography are needed only by claim.
    from edgewise.cli.claim import bootstrap_by_claim, parse_parameters

    files = bootstrap_by_claim(
        out,
        claim_cert,
        claim_key,
        _root_ca(ca, recorded, cloud_path),
        template=template,
        parameters=parse_parameters(parameter),
        use_csr=csr,
        host=host,
        port=port,
        https_port=https_port,
        timeout=timeout,
    )
    _report_written(files, out)


def _bootstrap_through_api(
    out: Path,
    thing: str,
    policy: str,
    cloud: tuple[str, int, int | None],
    api: str | None,
    data: Path | None,
) -> None:
    host, port, https_port = cloud
    with api_client(api, data) as client:
        if send(client, "GET", api_path("things", thing), allow=(404,)).status_code == 404:
            request(client, "POST", "/things", json={"thingName": thing})
            typer.echo(f"Created thing {thing}")
        issued = request(client, "POST", "/certificates", json={"thingName": thing, "generateKeyPair": True})
        certificate_id = issued["certificateId"]
        request(client, "PUT", api_path("policies", policy, "targets", "certificates", certificate_id))
        root_ca = request(client, "GET", "/ca")["certificatePem"]
    files = write_device_directory(
        out,
        thing=thing,
        certificate_pem=issued["certificatePem"],
        private_key_pem=issued["privateKey"],
        root_ca_pem=root_ca,
        host=host,
        port=port,
        https_port=https_port,
    )
    typer.echo(f"Certificate {certificate_id} for thing {thing} with policy {policy}")
    _report_written(files, out)


def _root_ca(ca: Path | None, recorded: Mapping[str, Any], cloud_path: Path | None) -> Path:
    if ca is not None:
        return ca
    value = recorded.get("caFile")
    if cloud_path is None or not isinstance(value, str) or not value:
        fail(
            "No CA certificate: give --ca FILE, or --cloud FILE (or --data DIR) with a cloud.json naming caFile"
        )
    # A relative caFile is relative to the cloud.json, so the two can be copied to a device together.
    return cloud_path.parent / value
