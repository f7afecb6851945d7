"""``edgewise model drift-monitor | drift-check | drift-events | promote``: drift monitoring and promotion in the
cloud, added to the ``model`` group by :func:`register`.

``drift-monitor NAME`` shows a model's monitor; with options it creates the monitor or changes only the
settings given (the others keep their values, or the defaults for a new monitor)::

    edgewise model drift-monitor pump --window 1h --interval 5m --retrain --auto-promote
    edgewise model drift-events pump --verbose
    edgewise model promote pump --from challenger --to champion
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

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
from edgewise.cli.model_options import ModelArgument, shown_time

console = Console()

#: The settings a monitor is PUT with, as the API names them.
MONITOR_FIELDS: Final = (
    "alias",
    "stream",
    "window",
    "minRows",
    "psiThreshold",
    "pValue",
    "interval",
    "confirmChecks",
    "retrain",
    "retrainWindow",
    "autoPromote",
    "enabled",
)


def drift_monitor(
    name: ModelArgument,
    alias: Annotated[
        str | None,
        typer.Option("--alias", help="Alias whose version is watched [champion].", show_default=False),
    ] = None,
    stream: Annotated[
        str | None,
        typer.Option("--stream", help="Capture stream [EdgewiseInferenceCapture].", show_default=False),
    ] = None,
    window: Annotated[
        str | None,
        typer.Option("--window", help="Capture records of this long ago, e.g. 1h.", show_default=False),
    ] = None,
    interval: Annotated[
        str | None, typer.Option("--interval", help="How often to check, e.g. 5m.", show_default=False)
    ] = None,
    min_rows: Annotated[
        int | None,
        typer.Option("--min-rows", help="Fewer records compare nothing [100].", show_default=False),
    ] = None,
    psi_threshold: Annotated[
        float | None,
        typer.Option("--psi", help="PSI above which a feature drifts [0.2].", show_default=False),
    ] = None,
    p_value: Annotated[
        float | None,
        typer.Option("--p-value", help="KS p-value below which a feature drifts [0.01].", show_default=False),
    ] = None,
    confirm_checks: Annotated[
        int | None,
        typer.Option(
            "--confirm", help="Consecutive drifted checks that confirm drift [2].", show_default=False
        ),
    ] = None,
    retrain: Annotated[
        bool | None,
        typer.Option("--retrain/--no-retrain", help="Retrain on confirmed drift.", show_default=False),
    ] = None,
    retrain_window: Annotated[
        str | None,
        typer.Option(
            "--retrain-window", help="Telemetry a retraining reads [the window].", show_default=False
        ),
    ] = None,
    auto_promote: Annotated[
        bool | None,
        typer.Option(
            "--auto-promote/--no-auto-promote",
            help="Promote a retrained challenger scoring at least the champion's score.",
            show_default=False,
        ),
    ] = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Run scheduled checks.", show_default=False)
    ] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Stop monitoring the model.")] = False,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Show a model's drift monitor; with options, create it or change the settings given."""
    changes = without_none(
        {
            "alias": alias,
            "stream": stream,
            "window": window,
            "interval": interval,
            "minRows": min_rows,
            "psiThreshold": psi_threshold,
            "pValue": p_value,
            "confirmChecks": confirm_checks,
            "retrain": retrain,
            "retrainWindow": retrain_window,
            "autoPromote": auto_promote,
            "enabled": enabled,
        }
    )
    path = api_path("models", name, "drift-monitor")
    with api_client(api, data) as client:
        if delete:
            send(client, "DELETE", path)
            if as_json:
                print_json({"name": name, "deleted": True})
            else:
                typer.echo(f"Model {name} is no longer monitored for drift (its events stay)")
            return
        if not changes:
            monitor = request(client, "GET", path)
        else:
            response = send(client, "GET", path, allow=(404,))
            current = {} if response.status_code == 404 else response.json()
            body = {field: current[field] for field in MONITOR_FIELDS if current.get(field) is not None}
            monitor = request(client, "PUT", path, json=body | changes)
    if as_json:
        print_json(monitor)
        return
    _print_monitor(monitor)


def _print_monitor(monitor: dict[str, Any]) -> None:
    state = "enabled" if monitor["enabled"] else "disabled"
    typer.echo(f"Drift monitor of model {monitor['modelName']} ({state}), watching alias {monitor['alias']}")
    facts = {
        "capture stream": monitor["stream"],
        "window": monitor["window"],
        "min rows": monitor["minRows"],
        "PSI threshold": monitor["psiThreshold"],
        "KS p-value": monitor["pValue"],
        "interval": monitor["interval"],
        "confirm after": f"{monitor['confirmChecks']} drifted checks in a row",
        "drifted checks so far": monitor["driftedChecks"],
        "retrain": "yes" + (f" (on the last {monitor['retrainWindow']})" if monitor["retrainWindow"] else "")
        if monitor["retrain"]
        else "no",
        "auto-promote": "yes" if monitor["autoPromote"] else "no",
        "last checked": shown_time(monitor["lastCheckedAt"]) or "never",
        "next check": shown_time(monitor["nextCheckAt"]) or "-",
    }
    for label, value in facts.items():
        typer.echo(f"  {label}: {value}")


def drift_check(
    name: ModelArgument, as_json: JsonOption = False, api: ApiOption = None, data: DataOption = None
) -> None:
    """Check a model for drift now (with its monitor's settings)."""
    with api_client(api, data) as client:
        event = request(client, "POST", api_path("models", name, "drift-checks"))
    if as_json:
        print_json(event)
        return
    _print_events([event], verbose=True)


def drift_events(
    name: Annotated[str | None, typer.Argument(help="Only this model's events.", show_default=False)] = None,
    confirmed: Annotated[bool, typer.Option("--confirmed", help="Only confirmed drift.")] = False,
    limit: Annotated[int, typer.Option("--limit", help="How many, newest first.", min=1, max=1000)] = 20,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show each feature's PSI and KS.")] = False,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Drift checks, newest first: of one model, or of every model."""
    params: dict[str, Any] = {"limit": limit}
    if confirmed:
        params["confirmed"] = "true"
    path = "/drift-events" if name is None else api_path("models", name, "drift-events")
    with api_client(api, data) as client:
        events = request(client, "GET", path, params=params)["data"]
    if as_json:
        print_json(events)
        return
    _print_events(events, verbose=verbose)


def _outcome(event: dict[str, Any]) -> str:
    parts: list[str] = []
    if event["retrainingJobId"]:
        parts.append(f"retraining {event['retrainingJobId']}")
    if event["challengerVersion"]:
        parts.append(f"challenger {event['challengerVersion']}" + (" promoted" if event["promoted"] else ""))
    if event["note"]:
        parts.append(event["note"])
    return "; ".join(parts)


def _print_events(events: list[dict[str, Any]], *, verbose: bool) -> None:
    table = Table("When", "Model", "Version", "Rows", "Drifted", "Confirmed", "Features", "Outcome")
    for event in events:
        table.add_row(
            shown_time(event["checkedAt"]),
            event["modelName"],
            event["version"],
            str(event["rows"]),
            "yes" if event["drifted"] else "no",
            "yes" if event["confirmed"] else "no",
            escape(", ".join(event["driftedFeatures"])),
            escape(_outcome(event)),
        )
    console.print(table)
    if not verbose:
        return
    for event in events:
        features = event["report"].get("features") or []
        if not features:
            continue
        detail = Table(
            "Feature",
            "PSI",
            "KS",
            "p-value",
            "Drifted",
            title=f"{event['modelName']} {shown_time(event['checkedAt'])}",
        )
        for row in features:
            detail.add_row(
                escape(str(row.get("feature", ""))),
                f"{row.get('psi', 0.0):.4f}",
                f"{row.get('ksStatistic', 0.0):.4f}",
                f"{row.get('pValue', 0.0):.3g}",
                "yes" if row.get("drifted") else "no",
            )
        console.print(detail)


def promote(
    name: ModelArgument,
    from_alias: Annotated[
        str, typer.Option("--from", help="The alias whose version is promoted.")
    ] = "challenger",
    to_alias: Annotated[str, typer.Option("--to", help="The alias moved to that version.")] = "champion",
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Promote a model version: point --to (champion) at the version --from (challenger) points at."""
    with api_client(api, data) as client:
        promotion = request(
            client, "POST", api_path("models", name, "promote"), json={"from": from_alias, "to": to_alias}
        )
    if as_json:
        print_json(promotion)
        return
    was = f" (was {promotion['previousVersion']})" if promotion["previousVersion"] else ""
    typer.echo(f"Model {name}: {to_alias} -> version {promotion['version']}{was}, from {from_alias}")


def register(app: typer.Typer) -> None:
    """Add ``drift-monitor``, ``drift-check``, ``drift-events`` and ``promote`` to ``app`` (``edgewise model``)."""
    app.command("drift-monitor")(drift_monitor)
    app.command("drift-check")(drift_check)
    app.command("drift-events")(drift_events)
    app.command("promote")(promote)
