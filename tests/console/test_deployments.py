"""The Deployments pages over HTTP: the list and its live fragment, a deployment's rollout per device, creating
one from the form or from Greengrass JSON, cancelling, and the API's refusals shown with nothing created."""

from __future__ import annotations

import hashlib
import html
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.console.conftest import DEPLOYMENT, GROUP, THING, ConsoleCloud, log_in
from tests.console.test_components import ARTIFACT, COMPONENT, hello_recipe, publish_hello

if TYPE_CHECKING:
    from playwright.sync_api import Page

GROUP_ARN = f"arn:aws:iot:edgewise:edgewise:thinggroup/{GROUP}"


async def _api(client: httpx.AsyncClient, token: str, path: str) -> Any:
    answer = await client.get(f"/api/v1{path}", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


async def _deployment_count(client: httpx.AsyncClient, cloud: ConsoleCloud) -> int:
    count: int = (await _api(client, cloud.admin_token, "/deployments"))["count"]
    return count


def _deployment_id(answer: httpx.Response) -> str:
    assert answer.status_code == 303, answer.text
    found = re.fullmatch(r"/console/deployments/([A-Za-z0-9_-]+)", answer.headers["location"])
    assert found is not None, answer.headers["location"]
    return found.group(1)


async def test_the_list_and_a_deployments_rollout_per_device(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient
) -> None:
    await log_in(console_client, console_cloud.read_only_token)
    page = await console_client.get("/console/deployments")
    assert page.status_code == 200
    row = re.search(
        rf'<th scope="row"><a href="/console/deployments/([^"]+)">{DEPLOYMENT}</a></th>.*?</tr>',
        page.text,
        re.S,
    )
    assert row is not None
    assert f'<td><a href="/console/things/{THING}">{THING}</a></td>' in row.group(0)
    assert "ACTIVE" in row.group(0)
    assert "<td>1</td>" in row.group(0)
    assert 'hx-get="/console/deployments/partial"' in page.text
    fragment = await console_client.get("/console/deployments/partial", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text
    assert row.group(0) in fragment.text

    deployment_id = row.group(1)
    detail = await console_client.get(f"/console/deployments/{deployment_id}")
    assert detail.status_code == 200
    assert "aws.greengrass.Cli" in detail.text
    assert f'hx-get="/console/deployments/{deployment_id}/partial"' in detail.text
    live = await console_client.get(
        f"/console/deployments/{deployment_id}/partial", headers={"HX-Request": "true"}
    )
    assert "<html" not in live.text
    device = re.search(rf'<a href="/console/things/{THING}">{THING}</a>.*?</tr>', live.text, re.S)
    assert device is not None
    assert "QUEUED" in device.group(0)
    assert "0 of 1" in live.text


async def test_create_from_the_form_with_a_merge_and_a_rate(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient
) -> None:
    await publish_hello(console_client, console_cloud.admin_token, "1.0.0")
    csrf = await log_in(console_client, console_cloud.admin_token)
    form = await console_client.get("/console/deployments/new")
    assert form.status_code == 200
    assert f'<option value="{GROUP_ARN}"' in form.text
    assert f'<option value="{COMPONENT}=1.0.0"' in form.text

    answer = await console_client.post(
        "/console/deployments",
        data={
            "csrf_token": csrf,
            "target": GROUP_ARN,
            "name": "hello-lab",
            "component": [f"{COMPONENT}=1.0.0", "", ""],
            "merge": ['{"greeting": "hi"}', "", ""],
            "rate": "10",
        },
    )
    deployment_id = _deployment_id(answer)
    created = await _api(console_client, console_cloud.admin_token, f"/deployments/{deployment_id}")
    assert created["deploymentName"] == "hello-lab"
    assert created["targetArn"] == GROUP_ARN
    specification = created["components"][COMPONENT]
    assert specification["componentVersion"] == "1.0.0"
    assert specification["configurationUpdate"]["merge"] == {"greeting": "hi"}
    assert created["iotJobConfiguration"]["jobExecutionsRolloutConfig"]["maximumPerMinute"] == 10

    detail = await console_client.get(f"/console/deployments/{deployment_id}")
    assert "hello-lab" in detail.text
    assert COMPONENT in detail.text
    assert "&#34;greeting&#34;: &#34;hi&#34;" in detail.text


async def test_create_from_greengrass_json_then_cancel(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient
) -> None:
    await publish_hello(console_client, console_cloud.admin_token, "1.0.0")
    csrf = await log_in(console_client, console_cloud.admin_token)
    document = {
        "targetArn": THING,
        "deploymentName": "pasted",
        "components": {COMPONENT: {"componentVersion": "1.0.0"}},
        "deploymentPolicies": {"failureHandlingPolicy": "DO_NOTHING"},
    }
    answer = await console_client.post(
        "/console/deployments/json", data={"csrf_token": csrf, "document": json.dumps(document)}
    )
    deployment_id = _deployment_id(answer)
    detail = await console_client.get(f"/console/deployments/{deployment_id}")
    assert "pasted" in detail.text
    assert "DO_NOTHING" in detail.text
    assert "Cancel deployment" in detail.text

    without_csrf = await console_client.post(f"/console/deployments/{deployment_id}/cancel")
    assert without_csrf.status_code == 403
    assert (await _api(console_client, console_cloud.admin_token, f"/deployments/{deployment_id}"))[
        "deploymentStatus"
    ] == "ACTIVE"
    cancelled = await console_client.post(
        f"/console/deployments/{deployment_id}/cancel", data={"csrf_token": csrf}
    )
    assert cancelled.status_code == 303
    detail = await console_client.get(f"/console/deployments/{deployment_id}")
    assert "CANCELED" in detail.text
    assert "Cancel deployment" not in detail.text


async def test_bad_input_and_api_refusals_show_a_message_and_create_nothing(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient
) -> None:
    csrf = await log_in(console_client, console_cloud.admin_token)
    before = await _deployment_count(console_client, console_cloud)

    not_json = await console_client.post(
        "/console/deployments/json", data={"csrf_token": csrf, "document": "{not json"}
    )
    assert not_json.status_code == 422
    assert "Field &#39;document&#39; is not valid JSON" in not_json.text
    assert "{not json" in not_json.text

    bad_merge = await console_client.post(
        "/console/deployments",
        data={"csrf_token": csrf, "target": THING, "component": [f"{COMPONENT}=1.0.0"], "merge": ["[1]"]},
    )
    assert bad_merge.status_code == 422
    assert "Field &#39;merge&#39; of row 1 must be a JSON object" in bad_merge.text

    unknown = {"targetArn": THING, "components": {"com.example.Nobody": {"componentVersion": "9.9.9"}}}
    refused = await console_client.post(
        "/console/deployments/json", data={"csrf_token": csrf, "document": json.dumps(unknown)}
    )
    assert refused.status_code == 422, refused.text
    message = re.search(r'<p class="error" role="alert">(.*?)</p>', refused.text, re.S)
    assert message is not None
    assert "components.com.example.Nobody.componentVersion" in html.unescape(message.group(1))

    console_client.cookies.clear()
    csrf = await log_in(console_client, console_cloud.read_only_token)
    read_only = await console_client.post(
        "/console/deployments",
        data={"csrf_token": csrf, "target": THING, "component": [f"{COMPONENT}=1.0.0"], "merge": [""]},
    )
    assert read_only.status_code == 403
    message = re.search(r'<p class="error" role="alert">(.*?)</p>', read_only.text, re.S)
    assert message is not None
    assert "role 'read-only', which does not allow POST /api/v1/deployments" in html.unescape(
        message.group(1)
    )
    assert await _deployment_count(console_client, console_cloud) == before


@pytest.mark.browser
def test_create_a_deployment_in_the_browser_and_watch_its_devices(
    console_cloud: ConsoleCloud, served_console: str, browser_page: Page, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    sha256 = hashlib.sha256(ARTIFACT).hexdigest()
    with httpx.Client(
        base_url=served_console, headers={"Authorization": f"Bearer {console_cloud.admin_token}"}
    ) as api:
        api.put(
            f"/api/v1/artifacts/{sha256}", params={"size": len(ARTIFACT)}, content=ARTIFACT
        ).raise_for_status()
        body = {"recipe": hello_recipe("2.0.0"), "artifacts": {"app.py": sha256}}
        api.post("/api/v1/components", json=body).raise_for_status()

    page = browser_page
    page.goto(f"{served_console}/console/deployments")
    page.get_by_label("API token").fill(console_cloud.admin_token)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("link", name="Deployments")).to_have_attribute("aria-current", "page")
    page.get_by_role("link", name="Create a deployment").click()

    page.get_by_label("Target (a thing or thing group)").select_option(label=f"{GROUP} (group)")
    page.get_by_label("Deployment name (optional)").fill("from-the-browser")
    page.locator("#component-0").select_option(label=f"{COMPONENT} 2.0.0")
    page.locator("#merge-0").fill('{"greeting": "hello, browser"}')
    page.get_by_role("button", name="Create deployment").click()

    expect(page.get_by_role("heading", name="from-the-browser", level=1)).to_be_visible()
    rollout = page.get_by_role("region", name="Rollout")
    expect(rollout.get_by_role("row").filter(has_text=THING)).to_contain_text("QUEUED")
    expect(rollout).to_contain_text("of 2")
    expect(page.get_by_role("region", name="Components")).to_contain_text("hello, browser")
    page.screenshot(path=tmp_path / "deployment.png", full_page=True)
