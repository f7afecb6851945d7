"""``edgewise job ...``: AWS IoT-style jobs (custom documents for things and thing groups, e.g. firmware
updates) through the cloud's REST API.

``--rollout``, ``--abort`` and ``--retries`` take JSON, inline or as a file name: AWS's
``jobExecutionsRolloutConfig``, ``abortConfig`` and ``jobExecutionsRetryConfig`` (for the last two, a bare
list of criteria is accepted as the ``criteriaList``). ``describe --watch`` follows the rollout live until
no thing has anything left to do.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn
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

app = typer.Typer(help="Jobs: documents rolled out to things and thing groups.", no_args_is_help=True)
console = Console()

JobArgument = Annotated[str, typer.Argument(help="Job id.")]
_COUNTS = (
    ("Queued", "numberOfQueuedThings"),
    ("In progress", "numberOfInProgressThings"),
    ("Succeeded", "numberOfSucceededThings"),
    ("Failed", "numberOfFailedThings"),
    ("Rejected", "numberOfRejectedThings"),
    ("Timed out", "numberOfTimedOutThings"),
    ("Removed", "numberOfRemovedThings"),
    ("Canceled", "numberOfCanceledThings"),
    ("Not yet notified", "numberOfPlannedThings"),
)
_UNFINISHED = ("numberOfQueuedThings", "numberOfInProgressThings", "numberOfPlannedThings")


def _json_option(option: str, value: str) -> Any:
    """The JSON ``value`` holds, inline (it starts with ``{`` or ``[``) or in the file it names."""
    text = value
    if not value.lstrip().startswith(("{", "[")):
        try:
            text = Path(value).read_text(encoding="utf-8")
        except OSError as exc:
            fail(f"{option}: cannot read {value}: {exc.strerror}")
    try:
        return json.loads(text)
    except ValueError as exc:
        fail(f"{option}: not JSON: {exc}")


def _criteria_option(option: str, value: str | None) -> Any:
    if value is None:
        return None
    parsed = _json_option(option, value)
    return {"criteriaList": parsed} if isinstance(parsed, list) else parsed


def _targets(values: list[str]) -> list[str]:
    return [target.strip() for value in values for target in value.split(",") if target.strip()]


def _print_summary(jobs: list[dict[str, Any]]) -> None:
    table = Table("Job", "Status", "Selection", "Namespace", "Created")
    for job in jobs:
        table.add_row(
            job["jobId"], job["status"], job["targetSelection"], job["namespaceId"] or "", job["createdAt"]
        )
    console.print(table)


def _counts_table(job: dict[str, Any]) -> Table:
    details = job["jobProcessDetails"]
    table = Table(*(title for title, _ in _COUNTS))
    table.add_row(*(str(details[key]) for _, key in _COUNTS))
    return table


def _print_job(job: dict[str, Any]) -> None:
    _print_summary([job])
    typer.echo(f"Targets: {', '.join(job['targets'])}")
    if job["description"]:
        typer.echo(f"Description: {job['description']}")
    if job["reasonCode"] or job["comment"]:
        typer.echo(f"Reason: {job['reasonCode'] or ''} {job['comment'] or ''}".rstrip())
    console.print(_counts_table(job))


@app.command("create")
def create(
    job_id: Annotated[str, typer.Option("--job-id", help="Job id (letters, digits, - and _).")],
    targets: Annotated[
        list[str],
        typer.Option("--targets", help="Thing or thing group names or ARNs; repeat or separate with commas."),
    ],
    document: Annotated[Path, typer.Option("--document", help="File with the job document (JSON).")],
    namespace: Annotated[
        str | None,
        typer.Option("--namespace", help="Namespace id (e.g. aws-gg-deployment).", show_default=False),
    ] = None,
    continuous: Annotated[
        bool, typer.Option("--continuous", help="Things that join a target group later get the job too.")
    ] = False,
    rollout: Annotated[
        str | None,
        typer.Option("--rollout", help="jobExecutionsRolloutConfig: JSON or a file.", show_default=False),
    ] = None,
    abort: Annotated[
        str | None,
        typer.Option(
            "--abort", help="abortConfig (or its criteria list): JSON or a file.", show_default=False
        ),
    ] = None,
    timeout_minutes: Annotated[
        int | None,
        typer.Option(
            "--timeout-minutes", help="Minutes an execution may stay IN_PROGRESS.", show_default=False
        ),
    ] = None,
    retries: Annotated[
        str | None,
        typer.Option(
            "--retries",
            help="jobExecutionsRetryConfig (or its criteria list): JSON or a file.",
            show_default=False,
        ),
    ] = None,
    description: Annotated[str | None, typer.Option(help="Description.", show_default=False)] = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Create a job and start rolling it out."""
    try:
        document_text = document.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"--document: cannot read {document}: {exc.strerror}")
    try:
        document_body = json.loads(document_text)
    except ValueError as exc:
        fail(f"--document: {document} is not JSON: {exc}")
    body = without_none(
        {
            "jobId": job_id,
            "targets": _targets(targets),
            "document": document_body,
            "description": description,
            "namespaceId": namespace,
            "targetSelection": "CONTINUOUS" if continuous else "SNAPSHOT",
            "jobExecutionsRolloutConfig": None if rollout is None else _json_option("--rollout", rollout),
            "abortConfig": _criteria_option("--abort", abort),
            "timeoutConfig": None
            if timeout_minutes is None
            else {"inProgressTimeoutInMinutes": timeout_minutes},
            "jobExecutionsRetryConfig": _criteria_option("--retries", retries),
        }
    )
    with api_client(api, data) as client:
        job = request(client, "POST", "/jobs", json=body)
    if as_json:
        print_json(job)
    else:
        _print_job(job)


@app.command("list")
def list_jobs(
    status: Annotated[
        str | None,
        typer.Option(help="Only jobs in this status (IN_PROGRESS, CANCELED, COMPLETED).", show_default=False),
    ] = None,
    namespace: Annotated[
        str | None, typer.Option(help="Only jobs in this namespace.", show_default=False)
    ] = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """List jobs, newest first."""
    with api_client(api, data) as client:
        jobs = list_all(client, "/jobs", without_none({"status": status, "namespaceId": namespace}))
    if as_json:
        print_json(jobs)
    else:
        _print_summary(jobs)


def _watch(client: Any, job_id: str, interval: float, out: Console) -> dict[str, Any]:
    """A live progress bar and counts on ``out`` until no thing has anything left to do; the job as it ended."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} things done"),
        console=out,
    )
    task = progress.add_task(f"Job {job_id}", total=None)
    with Live(console=out, refresh_per_second=4) as live:
        while True:
            job: dict[str, Any] = request(client, "GET", api_path("jobs", job_id))
            details = job["jobProcessDetails"]
            total = sum(details[key] for _, key in _COUNTS)
            unfinished = sum(details[key] for key in _UNFINISHED)
            progress.update(
                task, total=total, completed=total - unfinished, description=f"Job {job_id} {job['status']}"
            )
            live.update(Group(progress, _counts_table(job)))
            done_now = bool(total) and not unfinished
            if done_now or (job["status"] != "IN_PROGRESS" and not details["numberOfInProgressThings"]):
                return job
            time.sleep(interval)


@app.command("describe")
def describe(
    job_id: JobArgument,
    watch: Annotated[bool, typer.Option("--watch", help="Follow the rollout live until it is done.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes with --watch.", min=0.1)] = 1.0,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """A job, its configuration and how many things are in each status."""
    with api_client(api, data) as client:
        if watch:
            # With --json the live view goes to stderr, so that stdout is the JSON alone.
            job = _watch(client, job_id, interval, Console(stderr=True) if as_json else console)
        else:
            job = request(client, "GET", api_path("jobs", job_id))
    if as_json:
        print_json(job)
    else:
        _print_job(job)


@app.command("cancel")
def cancel(
    job_id: JobArgument,
    force: Annotated[bool, typer.Option("--force", help="Cancel IN_PROGRESS executions too.")] = False,
    reason_code: Annotated[
        str | None,
        typer.Option("--reason-code", help="e.g. BAD_IMAGE (capitals, digits, _).", show_default=False),
    ] = None,
    comment: Annotated[str | None, typer.Option(help="Why the job is cancelled.", show_default=False)] = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Cancel a job: queued executions are cancelled; in-progress ones finish unless --force."""
    body = without_none({"force": force, "reasonCode": reason_code, "comment": comment})
    with api_client(api, data) as client:
        job = request(client, "POST", api_path("jobs", job_id, "cancel"), json=body)
    if as_json:
        print_json(job)
    else:
        typer.echo(f"Job {job_id} is {job['status']}")


@app.command("executions")
def executions(
    job_id: JobArgument,
    status: Annotated[
        str | None, typer.Option(help="Only executions in this status.", show_default=False)
    ] = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """A job's executions on each thing (retries included)."""
    with api_client(api, data) as client:
        items = list_all(client, api_path("jobs", job_id, "things"), without_none({"status": status}))
    if as_json:
        print_json(items)
        return
    table = Table("Thing", "Execution", "Status", "Details", "Queued", "Last updated")
    for item in items:
        details = ", ".join(f"{key}={value}" for key, value in sorted(item["statusDetails"].items()))
        table.add_row(
            item["thingName"],
            str(item["executionNumber"]),
            item["status"],
            details,
            item["queuedAt"],
            item["lastUpdatedAt"],
        )
    console.print(table)


@app.command("delete")
def delete(
    job_id: JobArgument,
    force: Annotated[bool, typer.Option("--force", help="Delete a job that is still in progress.")] = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Delete a job and its executions (one in progress only with --force)."""
    with api_client(api, data) as client:
        request(client, "DELETE", api_path("jobs", job_id), params={"force": str(force).lower()})
    typer.echo(f"Deleted job {job_id}")
