"""``edgewise provisioning-template ...`` and ``edgewise cert create-claim``: what provisioning by claim needs
in the cloud, through its API.

A template body is AWS IoT's fleet provisioning template format (``Parameters``, ``Resources``,
``DeviceConfiguration``), given as a JSON file or inline JSON. The API and its token are found as
:mod:`edgewise.cli.api` says; an error the API answers with is printed as ``error: <its message>`` and the
command exits with 1.
"""

from __future__ import annotations

import json
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
from edgewise.cli.identity import write_private

app = typer.Typer(help="Fleet provisioning templates for provisioning by claim.", no_args_is_help=True)
console = Console()

CLAIM_CERTIFICATE_FILE = "claim.pem.crt"
CLAIM_KEY_FILE = "claim.private.pem.key"

TemplateNameArgument = Annotated[str, typer.Argument(help="Template name.")]
DescriptionOption = Annotated[
    str | None, typer.Option("--description", help="What the template is for.", show_default=False)
]
TemplateBodyHelp = (
    "The template (Parameters, Resources, DeviceConfiguration): a JSON file's path, or the JSON."
)
HookOption = Annotated[
    str | None,
    typer.Option(
        "--pre-provisioning-hook",
        help="An http(s) URL that RegisterThing asks before provisioning (AWS: a Lambda).",
        show_default=False,
    ),
]


def _hook(url: str | None) -> dict[str, str] | None:
    return None if url is None else {"targetUrl": url}


def _template_body(value: str) -> dict[str, Any]:
    """The body from ``--template-body``: inline JSON (starts with ``{``) or a JSON file's path."""
    if value.lstrip().startswith("{"):
        text, source = value, "the inline JSON"
    else:
        try:
            text, source = Path(value).read_text(encoding="utf-8"), value
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"--template-body: cannot read {value}: {getattr(exc, 'strerror', None) or exc}")
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"--template-body: {source} is not JSON: {exc}")
    if not isinstance(body, dict):
        fail(f"--template-body: {source} must be a JSON object, not {type(body).__name__}")
    return body


def _print_templates(templates: list[dict[str, Any]]) -> None:
    table = Table("Template", "Enabled", "Description", "Pre-provisioning hook", "Updated")
    for template in templates:
        hook = template.get("preProvisioningHook") or {}
        table.add_row(
            template["templateName"],
            "yes" if template["enabled"] else "no",
            template["description"],
            hook.get("targetUrl", ""),
            template["updatedAt"],
        )
    console.print(table)


def _show_template(template: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(template)
    else:
        _print_templates([template])


@app.command("create")
def template_create(
    name: TemplateNameArgument,
    template_body: Annotated[str, typer.Option("--template-body", help=TemplateBodyHelp)],
    description: DescriptionOption = None,
    enabled: Annotated[
        bool, typer.Option("--enabled/--disabled", help="Whether devices may provision with it.")
    ] = True,
    pre_provisioning_hook: HookOption = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Create a provisioning template; the policies it names must exist."""
    body = without_none(
        {
            "templateName": name,
            "templateBody": _template_body(template_body),
            "description": description,
            "enabled": enabled,
            "preProvisioningHook": _hook(pre_provisioning_hook),
        }
    )
    with api_client(api, data) as client:
        template = request(client, "POST", "/provisioning-templates", json=body)
    _show_template(template, as_json)


@app.command("list")
def template_list(as_json: JsonOption = False, api: ApiOption = None, data: DataOption = None) -> None:
    """List provisioning templates by name."""
    with api_client(api, data) as client:
        templates = list_all(client, "/provisioning-templates", {})
    if as_json:
        print_json(templates)
    else:
        _print_templates(templates)


@app.command("describe")
def template_describe(
    name: TemplateNameArgument, as_json: JsonOption = False, api: ApiOption = None, data: DataOption = None
) -> None:
    """Describe a provisioning template, with its body."""
    with api_client(api, data) as client:
        template = request(client, "GET", api_path("provisioning-templates", name))
    _show_template(template, as_json)
    if not as_json:
        typer.echo(json.dumps(template["templateBody"], indent=2))


@app.command("update")
def template_update(
    name: TemplateNameArgument,
    template_body: Annotated[
        str | None, typer.Option("--template-body", help=TemplateBodyHelp, show_default=False)
    ] = None,
    description: DescriptionOption = None,
    enabled: Annotated[
        bool | None,
        typer.Option(
            "--enabled/--disabled", help="Allow or refuse provisioning with it.", show_default=False
        ),
    ] = None,
    pre_provisioning_hook: HookOption = None,
    remove_pre_provisioning_hook: Annotated[
        bool, typer.Option("--remove-pre-provisioning-hook", help="Provision without asking a hook.")
    ] = False,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Change a template's body, description, enabled flag or hook; what is not given stays."""
    if pre_provisioning_hook is not None and remove_pre_provisioning_hook:
        fail("Give --pre-provisioning-hook URL or --remove-pre-provisioning-hook, not both")
    body = without_none(
        {
            "templateBody": None if template_body is None else _template_body(template_body),
            "description": description,
            "enabled": enabled,
            "preProvisioningHook": _hook(pre_provisioning_hook),
            "removePreProvisioningHook": remove_pre_provisioning_hook or None,
        }
    )
    if not body:
        fail(
            "Nothing to change: give --template-body, --description, --enabled, --disabled, "
            "--pre-provisioning-hook or --remove-pre-provisioning-hook"
        )
    with api_client(api, data) as client:
        template = request(client, "PATCH", api_path("provisioning-templates", name), json=body)
    _show_template(template, as_json)


@app.command("delete")
def template_delete(name: TemplateNameArgument, api: ApiOption = None, data: DataOption = None) -> None:
    """Delete a provisioning template."""
    with api_client(api, data) as client:
        request(client, "DELETE", api_path("provisioning-templates", name))
    typer.echo(f"Deleted provisioning template {name}")


def cert_create_claim(
    policy: Annotated[
        list[str],
        typer.Option(
            "--policy", help="A policy bounding what the claim certificate may do; repeat for more."
        ),
    ],
    out: Annotated[
        Path, typer.Option(help=f"Where to write {CLAIM_CERTIFICATE_FILE} and {CLAIM_KEY_FILE}.")
    ] = Path("."),
    valid_days: Annotated[int, typer.Option(help="Days the claim certificate is valid (1-3650).")] = 365,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Issue a claim certificate for devices to provision themselves (``device bootstrap --claim-cert``)."""
    targets = [out / CLAIM_CERTIFICATE_FILE, out / CLAIM_KEY_FILE]
    existing = [str(path) for path in targets if path.exists()]
    if existing:
        fail(f"--out: {', '.join(existing)} already exist(s); remove them or choose another directory")
    body = {"policyNames": policy, "validDays": valid_days}
    with api_client(api, data) as client:
        issued = request(client, "POST", "/claim-certificates", json=body)
    private_key = issued.pop("privateKey")
    out.mkdir(parents=True, exist_ok=True)
    write_private(out / CLAIM_KEY_FILE, private_key)
    (out / CLAIM_CERTIFICATE_FILE).write_text(issued["certificatePem"], encoding="ascii")
    if as_json:
        print_json(issued)
        return
    table = Table("Certificate", "Common name", "Policies")
    table.add_row(issued["certificateId"], issued["commonName"], ", ".join(policy))
    console.print(table)
    typer.echo(f"Wrote {targets[0]} and {targets[1]}")
