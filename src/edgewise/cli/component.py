"""``edgewise component ...``: publish component versions with their artifacts, and read the registry.

``publish`` finds every artifact the recipe names (by file name, in ``--artifacts DIR`` or in
``DIR/<ComponentName>/<ComponentVersion>/``), uploads each with a progress bar unless the cloud has it
already (uploads are addressed by SHA-256), resumes an upload that broke off, then publishes the recipe.
Every command finds the API and its token as :mod:`edgewise.cli.api` says; an error the API answers with is
printed as ``error: <its message>`` and the command exits with 1.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress, TaskID
from rich.table import Table

from edgewise.cli.api import (
    ApiOption,
    DataOption,
    JsonOption,
    api_client,
    api_path,
    file_body,
    list_all,
    print_json,
    request,
    send,
    upload_progress,
)
from edgewise.cli.connection import fail
from edgewise.recipe import Recipe, RecipeError, load_recipe

if TYPE_CHECKING:
    import httpx

app = typer.Typer(
    help="Components in the cloud's registry: publish, list, describe, delete.", no_args_is_help=True
)
console = Console()

_CHUNK = 1024 * 1024
_ATTEMPTS = 5
_OFFSET_MISMATCH = "upload_offset_mismatch"

VersionOption = Annotated[
    str | None,
    typer.Option("--version", help="Component version (default: the newest).", show_default=False),
]


def _artifact_files(recipe: Recipe) -> list[str]:
    """The file names the recipe's artifacts need, in order, each once (image references need none)."""
    names: dict[str, None] = {}
    for manifest in recipe.manifests:
        for artifact in manifest.artifacts:
            if not artifact.uri.casefold().startswith("docker:"):
                names[artifact.file_name] = None
    return list(names)


def _locate(recipe: Recipe, directory: Path | None, file_names: list[str]) -> dict[str, Path]:
    if not file_names:
        return {}
    if directory is None:
        fail(f"--artifacts: the recipe names {', '.join(file_names)}; give the directory that holds them")
    found: dict[str, Path] = {}
    missing = []
    for name in file_names:
        candidates = [directory / name, directory / recipe.name / recipe.version / name]
        path = next((candidate for candidate in candidates if candidate.is_file()), None)
        if path is None:
            missing.append(f"{name} (looked for {' and '.join(str(candidate) for candidate in candidates)})")
        else:
            found[name] = path
    if missing:
        fail("--artifacts: the recipe names files that are not there: " + "; ".join(missing))
    return found


def _sha256(path: Path, progress: Progress, task: TaskID) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
            progress.advance(task, len(chunk))
    return digest.hexdigest()


def _upload(client: httpx.Client, name: str, path: Path, size: int, progress: Progress, task: TaskID) -> str:
    """Upload ``path`` unless the cloud has it; resume from what is staged after a break. Its SHA-256."""
    import httpx

    progress.update(task, description=f"hashing {name}", completed=0)
    sha256 = _sha256(path, progress, task)
    problem = "no attempt was made"
    for _attempt in range(_ATTEMPTS):
        state = request(client, "GET", api_path("artifacts", sha256))
        if state["stored"]:
            progress.update(task, description=f"{name} (stored)", completed=size)
            return sha256
        offset = state["receivedBytes"]
        progress.update(task, description=f"uploading {name}", completed=offset)
        try:
            response = client.put(
                api_path("artifacts", sha256),
                params={"size": size, "offset": offset},
                content=file_body(path, lambda sent: progress.advance(task, sent), offset),
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size - offset)},
                # Storing a large file (into a bucket, say) happens after the last byte, before the answer.
                timeout=httpx.Timeout(30.0, read=600.0),
            )
        except httpx.TransportError as exc:
            problem = f"the connection broke ({exc})"
            continue
        if response.status_code == 409 and response.json().get("code") == _OFFSET_MISMATCH:
            problem = "another upload of the same file was in progress"
            continue
        if response.is_error:
            try:
                message = str(response.json()["message"])
            except (ValueError, KeyError, TypeError):
                message = f"PUT answered {response.status_code}"
            fail(f"Uploading {path} failed: {message}")
        if response.json()["stored"]:
            progress.update(task, description=f"{name} (uploaded)", completed=size)
            return sha256
        problem = "the cloud received only part of the file"
    fail(f"Uploading {path} failed after {_ATTEMPTS} attempts: {problem}")


@app.command()
def publish(
    recipe_file: Annotated[Path, typer.Option("--recipe", help="The recipe file (JSON or YAML).")],
    artifacts: Annotated[
        Path | None,
        typer.Option("--artifacts", help="Directory holding the artifact files.", show_default=False),
    ] = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Upload a recipe's artifacts (skipping those the cloud has) and publish the component version."""
    try:
        recipe = load_recipe(recipe_file)
    except RecipeError as exc:
        fail(str(exc))
    text = recipe_file.read_bytes().decode("utf-8-sig")
    files = _locate(recipe, artifacts, _artifact_files(recipe))
    uploaded: dict[str, str] = {}
    with api_client(api, data) as client:
        if files:
            with upload_progress() as progress:
                for name, path in files.items():
                    size = path.stat().st_size
                    task = progress.add_task(name, total=size)
                    uploaded[name] = _upload(client, name, path, size, progress, task)
        response = send(client, "POST", "/components", json={"recipe": text, "artifacts": uploaded})
    published = response.json()
    if as_json:
        print_json(published)
    elif response.status_code == 201:
        typer.echo(f"Published {published['componentName']} version {published['componentVersion']}")
    else:
        typer.echo(
            f"{published['componentName']} version {published['componentVersion']} was already published "
            "with this recipe and these artifacts; nothing changed"
        )


@app.command("list")
def list_components(
    name_prefix: Annotated[
        str | None, typer.Option("--prefix", help="Only names starting with this.", show_default=False)
    ] = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """List components with their newest version."""
    params = {"namePrefix": name_prefix} if name_prefix else {}
    with api_client(api, data) as client:
        components = list_all(client, "/components", params)
    if as_json:
        print_json(components)
        return
    table = Table("Component", "Latest", "Versions", "Publisher", "Description")
    for item in components:
        table.add_row(
            item["componentName"],
            item["latestVersion"],
            str(item["versionCount"]),
            item["publisher"] or "",
            item["description"] or "",
        )
    console.print(table)


def _name_and_version(spec: str, version: str | None) -> tuple[str, str | None]:
    name, separator, pinned = spec.partition("==")
    if separator and not pinned:
        fail(f"NAME: {spec!r} ends with '=='; write NAME==VERSION or NAME --version VERSION")
    if separator and version is not None and version != pinned:
        fail(f"--version {version!r} contradicts {spec!r}; give the version once")
    return name, pinned or version


def _resolve_version(client: httpx.Client, name: str, version: str | None) -> str:
    if version is not None:
        return version
    versions = request(client, "GET", api_path("components", name, "versions"))
    return str(versions["data"][0]["componentVersion"])


@app.command()
def describe(
    spec: Annotated[
        str, typer.Argument(metavar="NAME[==VERSION]", help="Component name, optionally ==VERSION.")
    ],
    version: VersionOption = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Show a component version: its artifacts and its stored recipe."""
    import yaml

    name, wanted = _name_and_version(spec, version)
    with api_client(api, data) as client:
        resolved = _resolve_version(client, name, wanted)
        described = request(client, "GET", api_path("components", name, "versions", resolved))
    if as_json:
        print_json(described)
        return
    typer.echo(f"Component:    {described['componentName']}")
    typer.echo(f"Version:      {described['componentVersion']}")
    typer.echo(f"Publisher:    {described['publisher'] or ''}")
    typer.echo(f"Description:  {described['description'] or ''}")
    typer.echo(f"Published:    {described['createdAt']} by {described['publishedBy']}")
    if described["artifacts"]:
        table = Table("Uri", "Size", "SHA-256")
        for artifact in described["artifacts"]:
            table.add_row(artifact["uri"], str(artifact["size"]), artifact["sha256"])
        console.print(table)
    typer.echo("Recipe:")
    typer.echo(yaml.safe_dump(described["recipe"], sort_keys=False, allow_unicode=True).rstrip())


@app.command()
def versions(
    name: Annotated[str, typer.Argument(help="Component name.")],
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """List a component's versions, newest first."""
    with api_client(api, data) as client:
        found: dict[str, Any] = request(client, "GET", api_path("components", name, "versions"))
    if as_json:
        print_json(found["data"])
        return
    table = Table("Version", "Published", "By", "Description")
    for item in found["data"]:
        table.add_row(
            item["componentVersion"], item["createdAt"], item["publishedBy"], item["description"] or ""
        )
    console.print(table)


@app.command()
def delete(
    name: Annotated[str, typer.Argument(help="Component name.")],
    version: Annotated[str, typer.Option("--version", help="The version to delete.")],
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Delete a component version (and the artifacts no other version uses)."""
    with api_client(api, data) as client:
        request(client, "DELETE", api_path("components", name, "versions", version))
    typer.echo(f"Deleted {name} version {version}")


@app.command()
def recipe(
    name: Annotated[str, typer.Argument(help="Component name.")],
    version: VersionOption = None,
    as_yaml: Annotated[bool, typer.Option("--yaml", help="YAML instead of JSON.")] = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Print a component version's stored recipe (artifact digests filled in)."""
    with api_client(api, data) as client:
        resolved = _resolve_version(client, name, version)
        response = send(
            client,
            "GET",
            api_path("components", name, "versions", resolved, "recipe"),
            params={"format": "yaml" if as_yaml else "json"},
        )
    typer.echo(response.text.rstrip("\n"))
