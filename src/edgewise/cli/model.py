"""``edgewise model ...``: the cloud's model registry, model packages and model deployments, through its REST API.

``list``, ``describe`` and ``versions`` read the registry (MLflow's); ``alias`` moves ``champion`` /
``challenger`` (every move is recorded: ``alias --history``); ``package`` turns a model version into the signed
component ``edgewise.models.NAME`` ``N.0.0``; ``deploy`` packages and deploys it with the inference component to
a thing or thing group, keeping what the target runs (with capture, a challenger and a drift detector when asked),
and ``--follow`` shows the rollout live. ``signing-key`` prints the public key devices trust. ``invoke`` runs a version in the cloud on rows of features, and ``metrics``
shows its invocations there (requests, errors, latency). The training commands (``train``, ``jobs``, ``job``,
``cancel``) are :mod:`edgewise.cli.model_training`'s, added to this group; the drift commands (``drift-monitor``, ``drift-check``,
``drift-events``, ``promote``) are :mod:`edgewise.cli.model_drift`'s.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from edgewise.cli import deployment as deployment_cli
from edgewise.cli import model_drift, model_training
from edgewise.cli.api import (
    ApiOption,
    DataOption,
    JsonOption,
    api_client,
    api_path,
    print_json,
    request,
    send,
    without_none,
)
from edgewise.cli.connection import fail
from edgewise.cli.model_options import ModelArgument, shown_number, shown_time

app = typer.Typer(help="Models: the registry, aliases, packages and deployments.", no_args_is_help=True)
console = Console()

VersionOption = Annotated[
    str | None, typer.Option("--version", help="Model version (a number).", show_default=False)
]
AliasOption = Annotated[
    str | None,
    typer.Option("--alias", help="The version an alias points to, e.g. champion.", show_default=False),
]


def _version_choice(version: str | None, alias: str | None) -> dict[str, str]:
    if (version is None) == (alias is None):
        fail("Give exactly one of --version and --alias")
    return without_none({"version": version, "alias": alias})


@app.command("list")
def list_models(as_json: JsonOption = False, api: ApiOption = None, data: DataOption = None) -> None:
    """List registered models with their newest version and aliases."""
    with api_client(api, data) as client:
        models = request(client, "GET", "/models")["data"]
    if as_json:
        print_json(models)
        return
    table = Table("Model", "Latest", "Aliases", "Updated")
    for model in models:
        aliases = ", ".join(f"{alias}={version}" for alias, version in sorted(model["aliases"].items()))
        table.add_row(model["name"], model["latestVersion"] or "", aliases, shown_time(model["updatedAt"]))
    console.print(table)


def _versions_table(versions: list[dict[str, Any]]) -> Table:
    table = Table("Version", "Aliases", "Task", "Learner", "Score", "Dataset", "Created")
    for version in versions:
        tags = version["tags"]
        score = version["metrics"].get("score")
        table.add_row(
            version["version"],
            ", ".join(version["aliases"]),
            tags.get("edgewise.task", ""),
            tags.get("edgewise.learner", version["params"].get("learner", "")),
            "" if score is None else f"{score:.4g}",
            tags.get("edgewise.dataset", ""),
            shown_time(version["createdAt"]),
        )
    return table


@app.command("describe")
def describe(
    name: ModelArgument,
    version: VersionOption = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """A model with its aliases and versions; with --version, that version's metrics and leaderboard."""
    with api_client(api, data) as client:
        if version is not None:
            detail = request(client, "GET", api_path("models", name, "versions", version))
        else:
            model = request(client, "GET", api_path("models", name))
    if version is not None:
        if as_json:
            print_json(detail)
        else:
            _print_version(detail)
        return
    if as_json:
        print_json(model)
        return
    aliases = ", ".join(f"{alias}={target}" for alias, target in sorted(model["aliases"].items())) or "none"
    typer.echo(f"Model {model['name']}: latest version {model['latestVersion'] or '-'}; aliases {aliases}")
    if model["description"]:
        typer.echo(model["description"])
    console.print(_versions_table(model["versions"]))


def _print_version(detail: dict[str, Any]) -> None:
    typer.echo(
        f"Model {detail['name']} version {detail['version']}"
        + (f" ({', '.join(detail['aliases'])})" if detail["aliases"] else "")
    )
    facts = {
        "task": detail.get("task"),
        "learner": detail.get("learner"),
        "metric": detail.get("metric"),
        "score": detail.get("score"),
        "size (bytes)": detail.get("sizeBytes"),
        "latency p50 (ms)": (detail.get("latency") or {}).get("p50Ms"),
        "fidelity": None
        if detail.get("fidelity") is None
        else ("passed" if detail["fidelity"].get("passed") else "failed")
        + f", max |delta| {detail['fidelity'].get('maxAbsDelta')}",
        "dataset": detail["tags"].get("edgewise.dataset"),
        "features": None if detail.get("features") is None else ", ".join(detail["features"]),
    }
    for label, value in facts.items():
        if value is not None:
            typer.echo(f"  {label}: {value}")
    leaderboard = detail.get("leaderboard") or []
    if leaderboard:
        table = Table("Learner", "Metric", "Score", "Size", "Latency (ms)", "Fits budget", "Note")
        for row in leaderboard:
            table.add_row(
                str(row.get("learner", "")),
                str(row.get("metric", "")),
                shown_number(row.get("score")),
                shown_number(row.get("sizeBytes")),
                shown_number(row.get("latencyMs")),
                {True: "yes", False: "no"}.get(row.get("fitsBudget"), ""),
                str(row.get("note", "")),
            )
        console.print(table)


@app.command("versions")
def versions(
    name: ModelArgument, as_json: JsonOption = False, api: ApiOption = None, data: DataOption = None
) -> None:
    """A model's versions, newest first."""
    with api_client(api, data) as client:
        listed = request(client, "GET", api_path("models", name, "versions"))["data"]
    if as_json:
        print_json(listed)
    else:
        console.print(_versions_table(listed))


@app.command("alias")
def alias(
    name: ModelArgument,
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="Alias, e.g. champion or challenger.")],
    version: Annotated[
        str | None,
        typer.Argument(metavar="[VERSION]", help="The version to point it at.", show_default=False),
    ] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Delete the alias.")] = False,
    history: Annotated[bool, typer.Option("--history", help="Show every move of the alias.")] = False,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Point an alias at a version, delete it (--delete), or show its moves (--history)."""
    if sum((version is not None, delete, history)) != 1:
        fail("Give a VERSION to point the alias at, or --delete, or --history")
    path = api_path("models", name, "aliases", alias_name)
    with api_client(api, data) as client:
        if history:
            events = request(client, "GET", path + "/history")["data"]
        elif delete:
            send(client, "DELETE", path)
        else:
            event = request(client, "PUT", path, json={"version": version})
    if history:
        _print_history(alias_name, events, as_json=as_json)
    elif delete:
        if as_json:
            print_json({"name": name, "alias": alias_name, "deleted": True})
        else:
            typer.echo(f"Deleted alias {alias_name} of model {name}")
    elif as_json:
        print_json(event)
    else:
        moved = f" (was {event['previousVersion']})" if event["previousVersion"] else ""
        typer.echo(f"Model {name}: {alias_name} -> version {event['version']}{moved}")


def _print_history(alias_name: str, events: list[dict[str, Any]], *, as_json: bool) -> None:
    if as_json:
        print_json(events)
        return
    table = Table("When", "Alias", "Version", "Previous", "By")
    for event in events:
        table.add_row(
            shown_time(event["createdAt"]),
            alias_name,
            event["version"] or "(deleted)",
            event["previousVersion"] or "",
            event["actor"],
        )
    console.print(table)


@app.command("package")
def package(
    name: ModelArgument,
    version: VersionOption = None,
    alias_name: AliasOption = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Package a model version as the signed component edgewise.models.NAME N.0.0."""
    body = _version_choice(version, alias_name)
    with api_client(api, data) as client:
        packaged = request(client, "POST", api_path("models", name, "package"), json=body)
    if as_json:
        print_json(packaged)
        return
    state = "Packaged" if packaged["created"] else "Already packaged:"
    typer.echo(
        f"{state} model {name} version {packaged['modelVersion']} as component "
        f"{packaged['componentName']} {packaged['componentVersion']} (signed by key {packaged['keyId']})"
    )


@app.command("deploy")
def deploy(
    name: ModelArgument,
    input_topic: Annotated[
        str, typer.Option("--input-topic", help="Local topic (filter) the model reads payloads from.")
    ],
    output_topic: Annotated[
        str, typer.Option("--output-topic", help="Local topic results are published to.")
    ],
    version: VersionOption = None,
    alias_name: AliasOption = None,
    group: Annotated[
        str | None, typer.Option("--group", help="Thing group to deploy to.", show_default=False)
    ] = None,
    thing: Annotated[
        str | None, typer.Option("--thing", help="Thing to deploy to.", show_default=False)
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="Thing or thing group name or ARN.", show_default=False)
    ] = None,
    iot_core_topic: Annotated[
        str, typer.Option("--iot-core-topic", help="Also publish results to the cloud on this topic.")
    ] = "",
    deployment_name: Annotated[
        str | None, typer.Option("--name", help="Deployment name.", show_default=False)
    ] = None,
    rollout: Annotated[
        str | None,
        typer.Option(
            "--rollout", help="jobExecutionsRolloutConfig JSON (a staged rollout).", show_default=False
        ),
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", help="Follow the rollout until it finishes.")] = False,
    capture_sample_rate: Annotated[
        float | None,
        typer.Option(
            "--capture-sample-rate",
            help="Capture this share of the results (0..1) for the cloud.",
            min=0.0,
            max=1.0,
            show_default=False,
        ),
    ] = None,
    capture_score_above: Annotated[
        float | None,
        typer.Option(
            "--capture-score-above", help="Capture the results scoring above this.", show_default=False
        ),
    ] = None,
    capture_stream: Annotated[
        str | None,
        typer.Option(
            "--capture-stream",
            help="Stream-manager stream of the captures [EdgewiseInferenceCapture].",
            show_default=False,
        ),
    ] = None,
    challenger_version: Annotated[
        str | None,
        typer.Option(
            "--challenger-version", help="Run this version in shadow as the challenger.", show_default=False
        ),
    ] = None,
    challenger_alias: Annotated[
        str | None,
        typer.Option(
            "--challenger-alias",
            help="Run the version this alias names in shadow as the challenger.",
            show_default=False,
        ),
    ] = None,
    drift_detector: Annotated[
        str | None,
        typer.Option(
            "--drift-detector",
            help="Watch the score on the device for drift: adwin or page-hinkley.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Package a model version and deploy it with the inference component to a thing or thing group.

    Any --capture-* option turns capture on: results go to a stream-manager stream exported to the cloud's
    telemetry (aws.greengrass.StreamManager is deployed too unless the target runs it), where drift checks read
    them. A challenger is packaged too and runs in shadow; its disagreements are captured when capture is on.
    """
    body: dict[str, Any] = _version_choice(version, alias_name)
    targets = without_none({"targetArn": target, "thing": thing, "group": group})
    if len(targets) != 1:
        fail("Give exactly one of --group, --thing and --target")
    if challenger_version is not None and challenger_alias is not None:
        fail("Give at most one of --challenger-version and --challenger-alias")
    if drift_detector is not None and drift_detector not in ("adwin", "page-hinkley"):
        fail(f"--drift-detector: must be adwin or page-hinkley, not {drift_detector!r}")
    body |= targets
    body |= without_none(
        {
            "captureSampleRate": capture_sample_rate,
            "captureScoreAbove": capture_score_above,
            "captureStream": capture_stream,
            "challengerVersion": challenger_version,
            "challengerAlias": challenger_alias,
            "driftDetector": drift_detector,
        }
    )
    body |= {"inputTopic": input_topic, "outputTopic": output_topic, "iotCoreTopic": iot_core_topic}
    if deployment_name is not None:
        body["deploymentName"] = deployment_name
    if rollout is not None:
        try:
            body["iotJobConfiguration"] = {"jobExecutionsRolloutConfig": json.loads(rollout)}
        except ValueError as exc:
            fail(f"--rollout: not JSON: {exc}")
    with api_client(api, data) as client:
        deployed = request(client, "POST", api_path("models", name, "deploy"), json=body)
        if as_json:
            print_json(deployed)
        else:
            typer.echo(
                f"Deploying model {name} version {deployed['modelVersion']} "
                f"({deployed['componentName']} {deployed['componentVersion']}) to "
                f"{deployed['targetArn'].rsplit(':', 1)[-1]}: deployment {deployed['deploymentId']}"
            )
        if follow:
            deployment_cli._watch(client, deployed["deploymentId"])


@app.command("signing-key")
def signing_key(as_json: JsonOption = False, api: ApiOption = None, data: DataOption = None) -> None:
    """The public key model packages are signed with (what devices list in trustedKeys)."""
    with api_client(api, data) as client:
        key = request(client, "GET", "/models/signing-key")
    if as_json:
        print_json(key)
    else:
        typer.echo(key["publicKey"])


def _invoke_body(rows: list[str], file: Path | None) -> dict[str, Any]:
    """``rows`` (comma-separated numbers) or the rows or instances of ``file`` as the invoke request's field."""
    if (not rows) == (file is None):
        fail("Give either --row (repeatable) or --file")
    if file is None:
        parsed: list[list[float]] = []
        for index, text in enumerate(rows):
            try:
                parsed.append([float(value) for value in text.split(",")])
            except ValueError:
                fail(f"--row {index + 1}: {text!r} is not comma-separated numbers")
        return {"rows": parsed}
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        fail(f"--file: cannot read {file} as JSON: {exc}")
    if isinstance(document, dict) and len(document.keys() & {"rows", "instances"}) == 1:
        return {key: document[key] for key in ("rows", "instances") if key in document}
    if isinstance(document, list) and document:
        return {"instances" if all(isinstance(item, dict) for item in document) else "rows": document}
    fail(
        f'--file: {file} must hold a list of rows (lists), a list of instances (objects), or {{"rows": [...]}}'
    )


@app.command("invoke")
def invoke(
    name: ModelArgument,
    version: VersionOption = None,
    alias_name: AliasOption = None,
    rows: Annotated[
        list[str] | None,
        typer.Option(
            "--row", help="A row of numbers in the model's feature order, e.g. 1.5,2,0.3 (repeatable)."
        ),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            help='JSON: a list of rows, a list of instances ({feature: value}), or {"rows"|"instances": [...]}.',
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Run a model version in the cloud on rows of features and print its predictions."""
    body = _version_choice(version, alias_name) | _invoke_body(rows or [], file)
    with api_client(api, data) as client:
        answer = request(client, "POST", api_path("models", name, "invoke"), json=body)
    if as_json:
        print_json(answer)
        return
    predictions = answer["predictions"]
    table = Table(
        "Row", "Label" if any("label" in p for p in predictions) else "Prediction", "Score", "Anomaly"
    )
    for index, prediction in enumerate(predictions):
        value = prediction.get("label", prediction.get("prediction"))
        anomaly = prediction.get("anomaly")
        table.add_row(
            str(index),
            "" if value is None else str(value),
            shown_number(prediction.get("score")),
            "" if anomaly is None else ("yes" if anomaly else "no"),
        )
    console.print(table)
    typer.echo(
        f"Model {answer['model']} version {answer['version']}: {len(predictions)} predictions "
        f"in {answer['latencyMs']:.1f} ms"
    )


@app.command("metrics")
def metrics(
    name: ModelArgument, as_json: JsonOption = False, api: ApiOption = None, data: DataOption = None
) -> None:
    """A model's invocations in the cloud since the cloud started: requests, errors, rows, latency p50/p99."""
    with api_client(api, data) as client:
        counts = request(client, "GET", api_path("models", name, "invoke-metrics"))
    if as_json:
        print_json(counts)
        return
    by_version = (
        ", ".join(f"{version}: {count}" for version, count in sorted(counts["versions"].items())) or "none"
    )
    typer.echo(
        f"Model {counts['model']}: {counts['requests']} requests ({counts['errors']} failed), {counts['rows']} rows; "
        f"by version {by_version}"
    )
    if counts["samples"]:
        typer.echo(
            f"Latency over the latest {counts['samples']} requests: p50 {counts['latencyP50Ms']:.1f} ms, "
            f"p99 {counts['latencyP99Ms']:.1f} ms"
        )


model_training.register(app)
model_drift.register(app)
