"""Components pages: the component registry (each component's newest version), a component's versions, and
one version's recipe (as JSON and as YAML) and artifacts (names, sizes, digests), all read from the REST API."""

from __future__ import annotations

import json
from urllib.parse import quote

import yaml
from fastapi import APIRouter, Request
from fastapi.responses import Response

from edgewise.cloud.console.pages import ConsoleApiDep, render

router = APIRouter()

PAGE_SIZE = 500


def _segment(name: str) -> str:
    return quote(name, safe="")


@router.get("/components")
async def components(request: Request, api: ConsoleApiDep) -> Response:
    """The registry: every component by name with its newest version."""
    page = await api.get("/components", limit=PAGE_SIZE)
    return render(request, "components/index.html", title="Components", page=page)


@router.get("/components/{name}")
async def component(request: Request, api: ConsoleApiDep, name: str) -> Response:
    """One component's versions, newest first."""
    versions = await api.get(f"/components/{_segment(name)}/versions")
    return render(request, "components/component.html", title=name, name=name, versions=versions["data"])


@router.get("/components/{name}/versions/{version}")
async def component_version(request: Request, api: ConsoleApiDep, name: str, version: str) -> Response:
    """One version: its recipe as JSON and YAML, and its artifacts."""
    described = await api.get(f"/components/{_segment(name)}/versions/{_segment(version)}")
    recipe = described["recipe"]
    return render(
        request,
        "components/version.html",
        title=f"{name} {version}",
        version=described,
        recipe_json=json.dumps(recipe, indent=2),
        recipe_yaml=yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True),
    )
