"""``edgewise model train | jobs | job | cancel``: training jobs in the cloud, added to the ``model`` group by
:func:`register`.

``train`` queues a job (AutoML on a dataset within ``--time-budget`` seconds, for a model that must meet
``--max-latency-ms`` and ``--max-size-kb`` on the device) and, unless ``--no-follow``, shows it live: the phase,
the time spent against the budget and the leaderboard, until it ends. It then prints the model version it made
and exits 0, or the reason it failed and exits 1. ``job ID --follow`` follows a job queued earlier::

    edgewise model train --name pump-anomaly --dataset pumps --task anomaly --time-budget 120 --max-size-kb 512
"""

from __future__ import annotations

import datetime
import time
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from edgewise.cli.api import (
    ApiOption,
    DataOption,
    JsonOption,
    api_client,
    api_path,
    print_json,
    request,
    without_none,
)
from edgewise.cli.connection import fail
from edgewise.cli.model_options import shown_number

if TYPE_CHECKING:
    import httpx

console = Console()

TASKS: Final = ("classification", "regression", "anomaly", "forecast")
FINAL_STATUSES: Final = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
#: Leaderboard rows the live view shows.
SHOWN_CANDIDATES: Final = 10
_POLL_INTERVAL_S: Final = 0.5

JobIdArgument = Annotated[str, typer.Argument(help="The training job's id.")]
FollowOption = Annotated[bool, typer.Option("--follow/--no-follow", help="Show the job live until it ends.")]


def _seconds_since(start: str | None, end: str | None) -> float:
    if not start:
        return 0.0
    began = datetime.datetime.fromisoformat(start)
    ended = datetime.datetime.fromisoformat(end) if end else datetime.datetime.now(datetime.UTC)
    return max(0.0, (ended - began).total_seconds())


def _fits(value: object) -> str:
    return {True: "yes", False: "no"}.get(value, "") if isinstance(value, bool) else ""


def leaderboard_table(job: dict[str, Any], limit: int | None = SHOWN_CANDIDATES) -> Table:
    """The job's candidates, best first: learner, metric and score, ONNX size, latency, whether it fits."""
    table = Table("#", "Learner", "Metric", "Score", "Size", "Latency", "Fits", title="Leaderboard")
    candidates = job["leaderboard"] if limit is None else job["leaderboard"][:limit]
    for rank, candidate in enumerate(candidates, start=1):
        size = candidate.get("sizeBytes")
        table.add_row(
            str(rank),
            escape(str(candidate.get("learner", ""))),
            escape(str(candidate.get("metric", ""))),
            shown_number(candidate.get("score")),
            shown_number(size / 1024, " KiB") if isinstance(size, int | float) else "",
            shown_number(candidate.get("latencyMs"), " ms"),
            _fits(candidate.get("fitsBudget")),
        )
    return table


def job_view(job: dict[str, Any]) -> Group:
    """What ``--follow`` shows: the job's status, phase and time against its budget, and the leaderboard."""
    elapsed = _seconds_since(job["startedAt"], job["finishedAt"])
    header = Text.assemble(
        (f"{job['modelName']}", "bold"),
        f" on {job['dataset']} ({job['task']}): ",
        (job["status"], "bold"),
        f" - {job['phase']} - {elapsed:.0f} s elapsed (search budget {job['timeBudgetSeconds']:g} s)",
    )
    shown = len(job["leaderboard"])
    parts: list[Any] = [header]
    if shown:
        parts.append(leaderboard_table(job))
        if shown > SHOWN_CANDIDATES:
            parts.append(Text(f"... and {shown - SHOWN_CANDIDATES} more candidates"))
    return Group(*parts)


def _follow(client: httpx.Client, job_id: str) -> dict[str, Any]:
    """Show the job live until it ends; the ended job."""
    job: dict[str, Any] = request(client, "GET", api_path("training-jobs", job_id))
    with Live(job_view(job), console=console, refresh_per_second=4) as live:
        while job["status"] not in FINAL_STATUSES:
            time.sleep(_POLL_INTERVAL_S)
            job = request(client, "GET", api_path("training-jobs", job_id))
            live.update(job_view(job))
    if not console.is_terminal:
        # Live leaves its last line open when it only renders once, at its end (output to a file or a pipe).
        console.line()
    return job


def _report_end(job: dict[str, Any], as_json: bool) -> None:
    """Print how the job ended; exit 1 unless it succeeded."""
    if as_json:
        print_json(job)
    if job["status"] == "SUCCEEDED":
        if not as_json:
            typer.echo(f"Model {job['modelName']} version {job['modelVersion']} (training job {job['id']})")
        return
    if job["status"] == "CANCELLED":
        fail(f"Training job {job['id']} was cancelled")
    fail(f"Training job {job['id']} failed: {job['error'] or 'no reason was recorded'}")


def train(
    name: Annotated[str, typer.Option("--name", help="The model to train a new version of.")],
    dataset: Annotated[str, typer.Option("--dataset", help="The dataset to train on.")],
    task: Annotated[str, typer.Option("--task", help="classification, regression, anomaly or forecast.")],
    time_budget: Annotated[
        float, typer.Option("--time-budget", min=1, max=86_400, help="Seconds the search may take.")
    ] = 60.0,
    label: Annotated[
        str | None, typer.Option("--label", help="The label column (not for anomaly).", show_default=False)
    ] = None,
    feature: Annotated[
        list[str] | None,
        typer.Option("--feature", help="A feature column; repeatable (default: every numeric column)."),
    ] = None,
    max_latency_ms: Annotated[
        float | None,
        typer.Option(
            "--max-latency-ms",
            min=0.001,
            help="The most one prediction may take on one thread.",
            show_default=False,
        ),
    ] = None,
    max_size_kb: Annotated[
        float | None,
        typer.Option("--max-size-kb", min=0.001, help="The largest ONNX model, in KiB.", show_default=False),
    ] = None,
    horizon: Annotated[int, typer.Option("--horizon", min=1, help="Forecast: steps ahead.")] = 1,
    lags: Annotated[
        int | None,
        typer.Option(
            "--lags", min=1, help="Forecast: how many past values a prediction sees.", show_default=False
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed.")] = 0,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray", help="A Ray cluster address to search on (default: the cloud's).", show_default=False
        ),
    ] = None,
    follow: FollowOption = True,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Train a new version of a model on a dataset, and follow the job."""
    if task not in TASKS:
        fail(f"--task: {task!r} is not one of {', '.join(TASKS)}")
    body = without_none(
        {
            "modelName": name,
            "dataset": dataset,
            "task": task,
            "label": label,
            "features": feature or [],
            "timeBudgetSeconds": time_budget,
            "maxLatencyMs": max_latency_ms,
            "maxSizeBytes": None if max_size_kb is None else max(1, round(max_size_kb * 1024)),
            "horizon": horizon,
            "lags": lags,
            "seed": seed,
            "rayAddress": ray,
        }
    )
    with api_client(api, data) as client:
        job = request(client, "POST", "/training-jobs", json=body)
        if not follow:
            if as_json:
                print_json(job)
            else:
                typer.echo(f"Queued training job {job['id']} for model {job['modelName']}")
            return
        if not as_json:
            typer.echo(f"Training job {job['id']}")
        ended = _follow(client, job["id"])
    _report_end(ended, as_json)


def jobs(
    model: Annotated[
        str | None, typer.Option("--model", help="Only this model's jobs.", show_default=False)
    ] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only jobs in this status (QUEUED, RUNNING, ...).", show_default=False),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="The most jobs to show.")] = 50,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """List training jobs, newest first."""
    params = without_none(
        {"model": model, "status": None if status is None else status.upper(), "limit": limit}
    )
    with api_client(api, data) as client:
        page = request(client, "GET", "/training-jobs", params=params)
    if as_json:
        print_json(page["data"])
        return
    table = Table("ID", "Model", "Dataset", "Task", "Status", "Phase", "Version", "Created")
    for item in page["data"]:
        table.add_row(
            item["id"],
            escape(item["modelName"]),
            escape(item["dataset"]),
            item["task"],
            item["status"],
            escape(item["phase"]),
            item["modelVersion"] or "",
            item["createdAt"][:19].replace("T", " "),
        )
    console.print(table)
    if page["count"] > len(page["data"]):
        typer.echo(f"Showing {len(page['data'])} of {page['count']} jobs (raise --limit)")


def job(
    job_id: JobIdArgument,
    follow: Annotated[bool, typer.Option("--follow", help="Show the job live until it ends.")] = False,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Show a training job: status, phase, error, model version and leaderboard."""
    with api_client(api, data) as client:
        if follow:
            _report_end(_follow(client, job_id), as_json)
            return
        found = request(client, "GET", api_path("training-jobs", job_id))
    if as_json:
        print_json(found)
        return
    console.print(job_view(found))
    if found["error"]:
        typer.echo(f"Error: {found['error']}")
    if found["modelVersion"]:
        typer.echo(f"Model version: {found['modelVersion']}")


def cancel(
    job_id: JobIdArgument, as_json: JsonOption = False, api: ApiOption = None, data: DataOption = None
) -> None:
    """Cancel a queued or running training job."""
    with api_client(api, data) as client:
        cancelled = request(client, "POST", api_path("training-jobs", job_id, "cancel"))
    if as_json:
        print_json(cancelled)
        return
    typer.echo(f"Cancelled training job {cancelled['id']}")


def register(app: typer.Typer) -> None:
    """Add ``train``, ``jobs``, ``job`` and ``cancel`` to ``app`` (the ``edgewise model`` group)."""
    app.command("train")(train)
    app.command("jobs")(jobs)
    app.command("job")(job)
    app.command("cancel")(cancel)
