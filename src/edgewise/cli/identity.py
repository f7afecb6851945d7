"""``edgewise cert ...`` and ``edgewise policy ...``: device certificates and policies, through the cloud's API.

The API and its token are found as :mod:`edgewise.cli.api` says; an error the API answers with is printed as
``error: <its message>`` and the command exits with 1.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from edgewise.cli.api import (
    ApiOption,
    DataOption,
    JsonOption,
    api_client,
    api_path,
    list_all,
    print_json,
    request,
    without_none,
)
from edgewise.cli.connection import fail

cert_app = typer.Typer(help="Device certificates issued by the cloud's CA.", no_args_is_help=True)
policy_app = typer.Typer(help="AWS IoT-style policies for devices.", no_args_is_help=True)
console = Console()

CERTIFICATE_FILE = "certificate.pem.crt"
PRIVATE_KEY_FILE = "private.pem.key"
STATUSES = ("ACTIVE", "INACTIVE", "REVOKED")

CertificateIdArgument = Annotated[str, typer.Argument(help="Certificate id (64 hex digits).")]
PolicyNameArgument = Annotated[str, typer.Argument(help="Policy name.")]


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new file only its owner can read; the file must not exist yet."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(text)


def _status(value: str | None, option: str) -> str | None:
    if value is None:
        return None
    status = value.upper()
    if status not in STATUSES:
        fail(f"{option}: expected one of {', '.join(STATUSES)}, got {value!r}")
    return status


def _print_certificates(certificates: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json(certificates)
        return
    table = Table("Certificate", "Common name", "Status", "Serial", "Not after")
    for certificate in certificates:
        table.add_row(
            certificate["certificateId"],
            certificate["commonName"],
            certificate["status"],
            certificate["serialNumber"],
            certificate["notAfter"],
        )
    console.print(table)


def _print_policies(policies: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json(policies)
        return
    table = Table("Policy", "Created", "Updated")
    for policy in policies:
        table.add_row(policy["policyName"], policy["createdAt"], policy["updatedAt"])
    console.print(table)


def _policy_document(value: str) -> str:
    """The document text from ``--document``: inline JSON (starts with ``{``) or a file's path."""
    if value.lstrip().startswith("{"):
        return value
    try:
        return Path(value).read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"--document: cannot read {value}: {exc.strerror}")


@cert_app.command("create")
def cert_create(
    csr: Annotated[
        Path | None,
        typer.Option(help="A PEM certificate signing request; the key stays with you.", show_default=False),
    ] = None,
    generate: Annotated[
        bool, typer.Option("--generate", help="Let the cloud generate the key pair (written to --out).")
    ] = False,
    thing: Annotated[
        str | None,
        typer.Option(help="An existing thing: the certificate's CN, attached to it.", show_default=False),
    ] = None,
    out: Annotated[
        Path, typer.Option(help=f"With --generate: where to write {CERTIFICATE_FILE} and {PRIVATE_KEY_FILE}.")
    ] = Path("."),
    inactive: Annotated[bool, typer.Option(help="Issue it INACTIVE instead of ACTIVE.")] = False,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Issue a certificate, from --csr FILE or with --generate."""
    if (csr is None) == (not generate):
        fail("Give exactly one of --csr FILE and --generate")
    body: dict[str, Any] = without_none({"thingName": thing, "setAsActive": not inactive})
    if csr is not None:
        try:
            body["csr"] = csr.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"--csr: cannot read {csr}: {exc}")
    else:
        body["generateKeyPair"] = True
        targets = [out / CERTIFICATE_FILE, out / PRIVATE_KEY_FILE]
        existing = [str(path) for path in targets if path.exists()]
        if existing:
            fail(f"--out: {', '.join(existing)} already exist(s); remove them or choose another directory")
    with api_client(api, data) as client:
        issued = request(client, "POST", "/certificates", json=body)
    private_key = issued.pop("privateKey", None)
    if private_key is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_private(out / PRIVATE_KEY_FILE, private_key)
        (out / CERTIFICATE_FILE).write_text(issued["certificatePem"], encoding="ascii")
    _show_certificate(issued, as_json)
    if private_key is not None and not as_json:
        typer.echo(f"Wrote {out / CERTIFICATE_FILE} and {out / PRIVATE_KEY_FILE}")


def _show_certificate(certificate: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(certificate)
    else:
        _print_certificates([certificate], as_json=False)


@cert_app.command("list")
def cert_list(
    status: Annotated[
        str | None, typer.Option(help="Only ACTIVE, INACTIVE or REVOKED ones.", show_default=False)
    ] = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """List certificates, newest first."""
    params = without_none({"status": _status(status, "--status")})
    with api_client(api, data) as client:
        certificates = list_all(client, "/certificates", params)
    _print_certificates(certificates, as_json)


@cert_app.command("describe")
def cert_describe(
    certificate_id: CertificateIdArgument,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Describe a certificate (--json includes its PEM)."""
    with api_client(api, data) as client:
        certificate = request(client, "GET", api_path("certificates", certificate_id))
    _show_certificate(certificate, as_json)


@cert_app.command("update")
def cert_update(
    certificate_id: CertificateIdArgument,
    status: Annotated[str, typer.Option(help="ACTIVE, INACTIVE or REVOKED (final).")],
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Activate, deactivate or revoke a certificate."""
    body = {"status": _status(status, "--status")}
    with api_client(api, data) as client:
        certificate = request(client, "PATCH", api_path("certificates", certificate_id), json=body)
    _show_certificate(certificate, as_json)


@cert_app.command("delete")
def cert_delete(
    certificate_id: CertificateIdArgument, api: ApiOption = None, data: DataOption = None
) -> None:
    """Delete an INACTIVE or REVOKED certificate attached to nothing."""
    with api_client(api, data) as client:
        request(client, "DELETE", api_path("certificates", certificate_id))
    typer.echo(f"Deleted certificate {certificate_id}")


@cert_app.command("attach-thing")
def cert_attach_thing(
    certificate_id: CertificateIdArgument,
    thing: Annotated[str, typer.Argument(help="Thing name (the certificate's CN).")],
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Attach a certificate to the thing it was issued for."""
    with api_client(api, data) as client:
        request(client, "PUT", api_path("things", thing, "principals", certificate_id))
    typer.echo(f"Attached certificate {certificate_id} to thing {thing}")


@cert_app.command("detach-thing")
def cert_detach_thing(
    certificate_id: CertificateIdArgument,
    thing: Annotated[str, typer.Argument(help="Thing name.")],
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Detach a certificate from a thing."""
    with api_client(api, data) as client:
        request(client, "DELETE", api_path("things", thing, "principals", certificate_id))
    typer.echo(f"Detached certificate {certificate_id} from thing {thing}")


DocumentOption = Annotated[
    str, typer.Option("--document", help="The policy document: a JSON file's path, or the JSON itself.")
]


@policy_app.command("create")
def policy_create(
    name: PolicyNameArgument,
    document: DocumentOption,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Create a policy."""
    body = {"policyName": name, "policyDocument": _policy_document(document)}
    with api_client(api, data) as client:
        policy = request(client, "POST", "/policies", json=body)
    _show_policy(policy, as_json)


def _show_policy(policy: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(policy)
    else:
        _print_policies([policy], as_json=False)


@policy_app.command("get")
def policy_get(
    name: PolicyNameArgument, as_json: JsonOption = False, api: ApiOption = None, data: DataOption = None
) -> None:
    """Describe a policy: its document and what it is attached to."""
    with api_client(api, data) as client:
        policy = request(client, "GET", api_path("policies", name))
        targets = request(client, "GET", api_path("policies", name, "targets"))
    if as_json:
        print_json({**policy, "targets": targets})
        return
    _print_policies([policy], as_json=False)
    typer.echo(json.dumps(json.loads(policy["policyDocument"]), indent=2))
    typer.echo(f"Certificates: {', '.join(targets['certificateIds']) or '-'}")
    typer.echo(f"Thing groups: {', '.join(targets['thingGroupNames']) or '-'}")


@policy_app.command("list")
def policy_list(as_json: JsonOption = False, api: ApiOption = None, data: DataOption = None) -> None:
    """List policies by name."""
    with api_client(api, data) as client:
        policies = list_all(client, "/policies", {})
    _print_policies(policies, as_json)


@policy_app.command("update")
def policy_update(
    name: PolicyNameArgument,
    document: DocumentOption,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Replace a policy's document."""
    body = {"policyDocument": _policy_document(document)}
    with api_client(api, data) as client:
        policy = request(client, "PATCH", api_path("policies", name), json=body)
    _show_policy(policy, as_json)


@policy_app.command("delete")
def policy_delete(name: PolicyNameArgument, api: ApiOption = None, data: DataOption = None) -> None:
    """Delete a policy attached to nothing."""
    with api_client(api, data) as client:
        request(client, "DELETE", api_path("policies", name))
    typer.echo(f"Deleted policy {name}")


CertOption = Annotated[str | None, typer.Option("--cert", help="A certificate id.", show_default=False)]
GroupOption = Annotated[str | None, typer.Option("--group", help="A thing group.", show_default=False)]


def _target(cert: str | None, group: str | None) -> tuple[str, str, str]:
    """The target's API path segments and its description, from exactly one of --cert and --group."""
    if cert is not None and group is None:
        return "certificates", cert, f"certificate {cert}"
    if group is not None and cert is None:
        return "thing-groups", group, f"thing group {group}"
    fail("Give exactly one of --cert ID and --group NAME")


@policy_app.command("attach")
def policy_attach(
    name: PolicyNameArgument,
    cert: CertOption = None,
    group: GroupOption = None,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Attach a policy to a certificate or a thing group."""
    kind, target, description = _target(cert, group)
    with api_client(api, data) as client:
        request(client, "PUT", api_path("policies", name, "targets", kind, target))
    typer.echo(f"Attached policy {name} to {description}")


@policy_app.command("detach")
def policy_detach(
    name: PolicyNameArgument,
    cert: CertOption = None,
    group: GroupOption = None,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Detach a policy from a certificate or a thing group."""
    kind, target, description = _target(cert, group)
    with api_client(api, data) as client:
        request(client, "DELETE", api_path("policies", name, "targets", kind, target))
    typer.echo(f"Detached policy {name} from {description}")
