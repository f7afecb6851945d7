"""The Components pages over HTTP: the registry, a component's versions, a version's recipe and artifacts."""

from __future__ import annotations

import hashlib
import html
import json
import re
from typing import Any

import httpx

from tests.console.conftest import ConsoleCloud, log_in

COMPONENT = "com.example.Hello"
ARTIFACT = b"print('hello from the console test')\n"


def hello_recipe(version: str) -> dict[str, Any]:
    """A recipe of ``COMPONENT`` at ``version`` with one artifact, ``app.py``."""
    return {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": COMPONENT,
        "ComponentVersion": version,
        "ComponentDescription": "Says hello",
        "ComponentPublisher": "Console tests",
        "ComponentConfiguration": {"DefaultConfiguration": {"greeting": "hello"}},
        "Manifests": [
            {
                "Platform": {"os": "linux"},
                "Artifacts": [{"Uri": "s3://bucket/hello/app.py"}],
                "Lifecycle": {"Run": "python3 {artifacts:path}/app.py"},
            }
        ],
    }


async def publish_hello(client: httpx.AsyncClient, admin_token: str, *versions: str) -> str:
    """Upload ``app.py`` and publish ``COMPONENT`` at ``versions`` through the REST API; the artifact's SHA-256."""
    headers = {"Authorization": f"Bearer {admin_token}"}
    sha256 = hashlib.sha256(ARTIFACT).hexdigest()
    uploaded = await client.put(
        f"/api/v1/artifacts/{sha256}", params={"size": len(ARTIFACT)}, content=ARTIFACT, headers=headers
    )
    assert uploaded.status_code == 200, uploaded.text
    for version in versions:
        body = {"recipe": hello_recipe(version), "artifacts": {"app.py": sha256}}
        published = await client.post("/api/v1/components", json=body, headers=headers)
        assert published.status_code in (200, 201), published.text
    return sha256


async def test_the_registry_a_components_versions_and_a_versions_recipe_and_artifacts(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient
) -> None:
    sha256 = await publish_hello(console_client, console_cloud.admin_token, "1.0.0", "1.1.0")
    await log_in(console_client, console_cloud.read_only_token)

    registry = await console_client.get("/console/components")
    assert registry.status_code == 200
    row = re.search(
        rf'<a href="/console/components/{COMPONENT}">{COMPONENT}</a>.*?</tr>', registry.text, re.S
    )
    assert row is not None
    assert "1.1.0" in row.group(0)
    assert "Says hello" in row.group(0)

    versions = await console_client.get(f"/console/components/{COMPONENT}")
    assert versions.status_code == 200
    listed = re.findall(rf'href="/console/components/{COMPONENT}/versions/([^"]+)"', versions.text)
    assert listed == ["1.1.0", "1.0.0"]

    version = await console_client.get(f"/console/components/{COMPONENT}/versions/1.0.0")
    assert version.status_code == 200
    artifacts = re.search(r'<section id="artifacts".*?</section>', version.text, re.S)
    assert artifacts is not None
    assert "app.py" in artifacts.group(0)
    assert f"<td>{len(ARTIFACT)}</td>" in artifacts.group(0)
    assert sha256 in artifacts.group(0)
    recipe = re.search(r"<summary>JSON</summary>\s*<pre>(.*?)</pre>", version.text, re.S)
    assert recipe is not None
    shown = json.loads(html.unescape(recipe.group(1)))
    assert shown["ComponentVersion"] == "1.0.0"
    assert shown["ComponentConfiguration"] == {"DefaultConfiguration": {"greeting": "hello"}}
    assert "ComponentVersion: 1.0.0" in version.text


async def test_an_unknown_component_version_shows_the_api_message(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient
) -> None:
    await log_in(console_client, console_cloud.read_only_token)
    page = await console_client.get("/console/components/com.example.Nobody/versions/1.0.0")
    assert page.status_code == 404
    assert "com.example.Nobody" in page.text
