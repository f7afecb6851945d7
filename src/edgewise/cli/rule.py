"""``edgewise rule ...``: routing rules in the AWS IoT SQL dialect, through the cloud's REST API.

A rule is given either with options::

    edgewise rule create hot --sql "SELECT temp FROM 'dt/+/temp' WHERE temp > 30" \\
        --action "republish:topic=alerts/${topic(2)},qos=1" --action telemetry:stream=hot \\
        --action "http:url=https://example.com/hook,header.X-Token=abc" --error-action republish:topic=errors

or as AWS's ``CreateTopicRule`` JSON with ``--file rule.json`` (``{"ruleName": ..., "topicRulePayload":
{"sql": ..., "actions": [...], "errorAction": ..., "ruleDisabled": ..., "awsIotSqlVersion": ...}}``, or the
``topicRulePayload`` object alone), so that rules written for AWS load as they are. An action is
``KIND:key=value,key=value``; for ``http``, ``header.NAME=VALUE`` adds a header. ``update`` changes only what
its options give.
"""

from __future__ import annotations

import json
import re
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
)
from edgewise.cli.connection import fail

app = typer.Typer(
    help="Routing rules: SQL over device messages, and where the results go.", no_args_is_help=True
)
console = Console()

RuleArgument = Annotated[str, typer.Argument(help="Rule name (letters, digits and _).")]
SqlOption = Annotated[
    str | None, typer.Option("--sql", help="SELECT ... FROM 'topic/filter' [WHERE ...]", show_default=False)
]
ActionOption = Annotated[
    list[str] | None,
    typer.Option(
        "--action",
        help="KIND:key=value,...: republish:topic=T[,qos=1], telemetry:stream=S, http:url=U[,header.K=V]; repeat.",
        show_default=False,
    ),
]
ErrorActionOption = Annotated[
    str | None, typer.Option("--error-action", help="An action run when another fails.", show_default=False)
]
DescriptionOption = Annotated[str | None, typer.Option("--description", show_default=False)]
FileOption = Annotated[
    Path | None,
    typer.Option("--file", help="AWS CreateTopicRule JSON (or its topicRulePayload).", show_default=False),
]
_SPEC_SEPARATOR = re.compile(r",(?=[\w.-]+=)")
_MAX_FILE_BYTES = 1024 * 1024


def parse_action(spec: str, option: str) -> dict[str, Any]:
    """``KIND:key=value,...`` as an AWS action object, e.g. ``{"republish": {"topic": "t", "qos": 1}}``."""
    kind, separator, rest = spec.partition(":")
    if not separator or not kind:
        fail(f"{option}: {spec!r} is not KIND:key=value,... (e.g. republish:topic=alerts)")
    fields: dict[str, Any] = {}
    headers: list[dict[str, str]] = []
    for pair in _SPEC_SEPARATOR.split(rest) if rest else []:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            fail(f"{option}: {pair!r} in {spec!r} is not key=value")
        if key.startswith("header."):
            headers.append({"key": key.removeprefix("header."), "value": value})
        elif key == "qos" and value.isdigit():
            fields["qos"] = int(value)
        else:
            fields[key] = value
    if headers:
        fields["headers"] = headers
    return {kind: fields}


def _read_file(path: Path) -> tuple[str | None, dict[str, Any]]:
    """The rule name (if the file has one) and the topicRulePayload in ``path``."""
    try:
        with path.open("rb") as stream:
            data = stream.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        fail(f"--file: cannot read {path}: {exc.strerror}")
    if len(data) > _MAX_FILE_BYTES:
        fail(f"--file: {path} is larger than {_MAX_FILE_BYTES} bytes")
    try:
        document = json.loads(data)
    except ValueError as exc:
        fail(f"--file: {path} is not JSON: {exc}")
    if not isinstance(document, dict):
        fail(f"--file: {path} holds no JSON object")
    payload = document.get("topicRulePayload", document)
    name = document.get("ruleName")
    if not isinstance(payload, dict):
        fail(f"--file: topicRulePayload in {path} is not an object")
    if name is not None and not isinstance(name, str):
        fail(f"--file: ruleName in {path} is not a string")
    return name, payload


def _payload(
    *,
    base: dict[str, Any],
    sql: str | None,
    actions: list[str] | None,
    error_action: str | None,
    description: str | None,
    disabled: bool | None,
) -> dict[str, Any]:
    payload = dict(base)
    if sql is not None:
        payload["sql"] = sql
    if actions:
        payload["actions"] = [parse_action(spec, "--action") for spec in actions]
    if error_action is not None:
        payload["errorAction"] = parse_action(error_action, "--error-action")
    if description is not None:
        payload["description"] = description
    if disabled is not None:
        payload["ruleDisabled"] = disabled
    return payload


def _print_rules(rules: list[dict[str, Any]]) -> None:
    table = Table("Rule", "Enabled", "SQL", "Actions", "Matched", "Failed")
    for rule in rules:
        kinds = ", ".join(next(iter(action)) for action in rule["actions"])
        table.add_row(
            rule["ruleName"],
            "no" if rule["ruleDisabled"] else "yes",
            rule["sql"],
            kinds,
            str(rule["matched"]),
            str(rule["actionsFailed"]),
        )
    console.print(table)


def _print_rule(rule: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(rule)
        return
    _print_rules([rule])
    if rule["description"]:
        typer.echo(f"Description: {rule['description']}")
    for action in rule["actions"]:
        typer.echo(f"Action: {json.dumps(action, sort_keys=True)}")
    if rule["errorAction"]:
        typer.echo(f"Error action: {json.dumps(rule['errorAction'], sort_keys=True)}")
    if rule["lastError"]:
        typer.echo(f"Last error: {rule['lastError']}")


@app.command("create")
def create(
    name: RuleArgument,
    sql: SqlOption = None,
    actions: ActionOption = None,
    error_action: ErrorActionOption = None,
    description: DescriptionOption = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create the rule disabled.")] = False,
    file: FileOption = None,
    api: ApiOption = None,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a rule from options or from AWS CreateTopicRule JSON."""
    base: dict[str, Any] = {}
    if file is not None:
        file_name, base = _read_file(file)
        if file_name is not None and file_name != name:
            fail(f"--file: its ruleName {file_name!r} is not {name!r}")
    payload = _payload(
        base=base,
        sql=sql,
        actions=actions,
        error_action=error_action,
        description=description,
        disabled=True if disabled else None,
    )
    if "sql" not in payload:
        fail("Give --sql, or --file with the rule's JSON")
    with api_client(api, data) as client:
        rule = request(client, "POST", "/rules", json={"ruleName": name, "topicRulePayload": payload})
    if as_json:
        print_json(rule)
    else:
        typer.echo(f"Created rule {rule['ruleName']}")


@app.command("list")
def list_rules(api: ApiOption = None, data: DataOption = None, as_json: JsonOption = False) -> None:
    """List the rules with their counters."""
    with api_client(api, data) as client:
        rules = list_all(client, "/rules", {})
    if as_json:
        print_json(rules)
    else:
        _print_rules(rules)


@app.command("describe")
def describe(
    name: RuleArgument, api: ApiOption = None, data: DataOption = None, as_json: JsonOption = False
) -> None:
    """Show one rule: SQL, actions, counters and its last error."""
    with api_client(api, data) as client:
        rule = request(client, "GET", api_path("rules", name))
    _print_rule(rule, as_json)


_PAYLOAD_KEYS = ("sql", "description", "actions", "errorAction", "ruleDisabled", "awsIotSqlVersion")


@app.command("update")
def update(
    name: RuleArgument,
    sql: SqlOption = None,
    actions: ActionOption = None,
    error_action: ErrorActionOption = None,
    description: DescriptionOption = None,
    file: FileOption = None,
    api: ApiOption = None,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change a rule: each option given replaces that part (--file replaces the whole rule)."""
    with api_client(api, data) as client:
        if file is not None:
            _, base = _read_file(file)
        else:
            current = request(client, "GET", api_path("rules", name))
            base = {key: current[key] for key in _PAYLOAD_KEYS if current.get(key) is not None}
        payload = _payload(
            base=base,
            sql=sql,
            actions=actions,
            error_action=error_action,
            description=description,
            disabled=None,
        )
        rule = request(client, "PUT", api_path("rules", name), json=payload)
    if as_json:
        print_json(rule)
    else:
        typer.echo(f"Updated rule {rule['ruleName']}")


@app.command("delete")
def delete(name: RuleArgument, api: ApiOption = None, data: DataOption = None) -> None:
    """Delete a rule."""
    with api_client(api, data) as client:
        request(client, "DELETE", api_path("rules", name))
    typer.echo(f"Deleted rule {name}")


@app.command("enable")
def enable(name: RuleArgument, api: ApiOption = None, data: DataOption = None) -> None:
    """Enable a rule."""
    with api_client(api, data) as client:
        request(client, "POST", api_path("rules", name, "enable"))
    typer.echo(f"Enabled rule {name}")


@app.command("disable")
def disable(name: RuleArgument, api: ApiOption = None, data: DataOption = None) -> None:
    """Disable a rule (it keeps its counters)."""
    with api_client(api, data) as client:
        request(client, "POST", api_path("rules", name, "disable"))
    typer.echo(f"Disabled rule {name}")
