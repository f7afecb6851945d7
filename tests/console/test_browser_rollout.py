"""A deployment made in the console reaching a real device, in a real browser.

A real ``edgewise cloud up`` and one real runtime enrolled to it (``edgewise device bootstrap``), a small component
published with ``edgewise component publish``, and Playwright driving Debian's chromium: log in with the one-time
link ``edgewise console login-link`` prints, create a deployment of the component to the device from the form,
watch the device's execution become SUCCEEDED on the deployment's page and the component RUNNING on the device's
page. Then, logged out (the used link no longer opens a session), a read-only token tries the same form and sees
the API's refusal, with nothing created.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.cloud.test_cli_registry import run
from tests.support.cloud_process import CloudProcess
from tests.support.runtime_process import RuntimeProcess
from tests.support.telemetry_cloud import enroll_device

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.integration]

THING = "console-hub"
COMPONENT = "com.example.Greeter"
VERSION = "1.0.0"
#: Runs until the runtime stops it, so the device reports the component RUNNING.
GREETER = "import time\nprint('hello from the console', flush=True)\nwhile True:\n    time.sleep(60)\n"
#: The rollout and the device's status report take a few of the console's 2-second polls.
WATCH_MS = 30_000


@dataclass(frozen=True)
class Rollout:
    """The cloud, its device and the token secrets the tests log in with."""

    cloud: CloudProcess
    runtime: RuntimeProcess
    read_only_token: str


def publish_greeter(cloud: CloudProcess, directory: Path) -> None:
    """``edgewise component publish`` of ``COMPONENT``: a script run with this Python, its artifact."""
    artifacts = directory / "artifacts"
    artifacts.mkdir()
    (artifacts / "greeter.py").write_text(GREETER)
    recipe = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": COMPONENT,
        "ComponentVersion": VERSION,
        "ComponentDescription": "Greets, then waits",
        "Manifests": [
            {
                "Platform": {"os": "*"},
                "Artifacts": [{"Uri": f"s3://bucket/{COMPONENT}/{VERSION}/greeter.py"}],
                "Lifecycle": {"Run": f"{sys.executable} -u {{artifacts:path}}/greeter.py"},
            }
        ],
    }
    recipe_file = directory / "greeter.json"
    recipe_file.write_text(json.dumps(recipe))
    published = run(
        cloud, "component", "publish", "--recipe", str(recipe_file), "--artifacts", str(artifacts)
    )
    assert published.exit_code == 0, published.stderr


@pytest.fixture(scope="module")
def rollout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rollout]:
    """A cloud with one enrolled, running device, ``COMPONENT`` in its registry and a read-only token."""
    directory = tmp_path_factory.mktemp("browser-rollout")
    with CloudProcess(directory / "data") as cloud:
        cloud.wait_ready()
        config = enroll_device(cloud, THING, directory / "identity")
        runtime = RuntimeProcess(directory / "root", "--thing-name", THING, "--config", str(config)).start()
        try:
            publish_greeter(cloud, directory)
            with cloud.api(cloud.admin_token) as api:
                issued = api.post("/tokens", json={"name": "console-viewer", "role": "read-only"})
            assert issued.status_code == 201, issued.text
            yield Rollout(cloud, runtime, issued.json()["token"])
        finally:
            runtime.stop()


def login_link(cloud: CloudProcess) -> str:
    """The one-time console login URL ``edgewise console login-link`` prints for the admin token."""
    printed = run(cloud, "console", "login-link")
    assert printed.exit_code == 0, printed.stderr
    url = printed.stdout.strip()
    assert url.startswith(f"{cloud.api_url}/console/login/"), url
    return url


def deployment_count(cloud: CloudProcess) -> int:
    with cloud.api(cloud.admin_token) as api:
        answer = api.get("/deployments")
    assert answer.status_code == 200, answer.text
    count: int = answer.json()["count"]
    return count


def fill_the_form(page: Page) -> None:
    """Deployments -> Create a deployment, and the form filled for ``COMPONENT`` on ``THING``."""
    page.get_by_role("navigation", name="Console sections").get_by_role("link", name="Deployments").click()
    page.get_by_role("link", name="Create a deployment").click()
    page.get_by_label("Target (a thing or thing group)").select_option(label=THING)
    page.locator("#component-0").select_option(label=f"{COMPONENT} {VERSION}")


def test_a_deployment_made_in_the_console_succeeds_on_the_device(
    rollout: Rollout, browser_page: Page, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    page.goto(login_link(rollout.cloud))
    expect(page.get_by_role("link", name="Fleet")).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("button", name="Log out")).to_be_visible()

    fill_the_form(page)
    page.get_by_label("Deployment name (optional)").fill("greeter-from-the-console")
    page.screenshot(path=tmp_path / "form.png", full_page=True)
    page.get_by_role("button", name="Create deployment").click()

    expect(page.get_by_role("heading", name="greeter-from-the-console", level=1)).to_be_visible()
    device = page.get_by_role("region", name="Rollout").get_by_role("row").filter(has_text=THING)
    expect(device).to_contain_text("SUCCEEDED", timeout=WATCH_MS)
    expect(device).to_contain_text("SUCCESSFUL")
    page.screenshot(path=tmp_path / "deployment.png", full_page=True)

    device.get_by_role("link", name=THING, exact=True).click()
    expect(page.get_by_role("heading", name=THING, level=1)).to_be_visible()
    component = page.get_by_role("region", name="Components").get_by_role("row").filter(has_text=COMPONENT)
    expect(component).to_contain_text("RUNNING", timeout=WATCH_MS)
    expect(component).to_contain_text(VERSION)
    page.screenshot(path=tmp_path / "device.png", full_page=True)
    assert rollout.runtime.states()[COMPONENT] == "RUNNING"


def test_a_read_only_token_is_refused_the_deployment_form(
    rollout: Rollout, browser_page: Page, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    link = login_link(rollout.cloud)
    page.goto(link)
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in to the Edgewise console")).to_be_visible()
    page.goto(link)
    expect(page.get_by_role("alert")).to_contain_text("This login link has been used")
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)
    page.get_by_label("API token").fill(rollout.read_only_token)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("console-viewer (read-only)")).to_be_visible()

    before = deployment_count(rollout.cloud)
    fill_the_form(page)
    page.get_by_label("Deployment name (optional)").fill("refused")
    page.get_by_role("button", name="Create deployment").click()

    expect(page.get_by_role("alert")).to_contain_text(
        "role 'read-only', which does not allow POST /api/v1/deployments"
    )
    expect(page.get_by_role("heading", name="New deployment", level=1)).to_be_visible()
    page.screenshot(path=tmp_path / "refused.png", full_page=True)
    assert deployment_count(rollout.cloud) == before
