"""The Certificates and Policies pages over HTTP: issuing a certificate whose private key is shown once, creating
a policy from its document, their list and detail pages, and a read-only token refused with nothing created."""

from __future__ import annotations

import html
import json
import re

import httpx

from tests.console.conftest import THING, ConsoleCloud, log_in

POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}],
}


def _alert(page: str) -> str:
    found = re.search(r'<p class="error" role="alert">(.*?)</p>', page, re.S)
    assert found is not None, "the page shows no error"
    return html.unescape(found.group(1))


async def _count(client: httpx.AsyncClient, cloud: ConsoleCloud, path: str) -> int:
    answer = await client.get(f"/api/v1{path}", headers={"Authorization": f"Bearer {cloud.admin_token}"})
    count: int = answer.json()["count"]
    return count


async def test_issue_a_certificate_its_key_shown_once(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient
) -> None:
    csrf = await log_in(console_client, console_cloud.admin_token)
    issued = await console_client.post("/console/certificates", data={"csrf_token": csrf, "thing": THING})
    assert issued.status_code == 201, issued.text
    assert issued.headers["cache-control"] == "no-store"
    assert "PRIVATE KEY-----" in issued.text
    assert "only time the private key is shown" in issued.text
    certificate_id = re.search(r"<dt>Id</dt><dd><code>([0-9a-f]+)</code>", issued.text)
    assert certificate_id is not None

    listed = await console_client.get("/console/certificates")
    row = re.search(rf'href="/console/certificates/{certificate_id.group(1)}".*?</tr>', listed.text, re.S)
    assert row is not None
    assert f"<td>{THING}</td>" in row.group(0)
    assert "ACTIVE" in row.group(0)
    detail = await console_client.get(f"/console/certificates/{certificate_id.group(1)}")
    assert detail.status_code == 200
    assert "BEGIN CERTIFICATE" in detail.text
    assert "PRIVATE KEY" not in detail.text


async def test_create_a_policy_and_see_it(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient
) -> None:
    csrf = await log_in(console_client, console_cloud.admin_token)
    created = await console_client.post(
        "/console/policies", data={"csrf_token": csrf, "name": "connect-only", "document": json.dumps(POLICY)}
    )
    assert created.status_code == 303, created.text
    assert created.headers["location"] == "/console/policies/connect-only"
    page = await console_client.get("/console/policies/connect-only")
    assert page.status_code == 200
    shown = re.search(r'<section id="document".*?<pre>(.*?)</pre>', page.text, re.S)
    assert shown is not None
    assert json.loads(html.unescape(shown.group(1))) == POLICY
    assert "Not attached to anything." in page.text
    listed = await console_client.get("/console/policies")
    assert '<a href="/console/policies/connect-only">connect-only</a>' in listed.text


async def test_refusals_show_the_api_message_and_create_nothing(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient
) -> None:
    policies = await _count(console_client, console_cloud, "/policies")
    certificates = await _count(console_client, console_cloud, "/certificates")
    csrf = await log_in(console_client, console_cloud.admin_token)
    not_json = await console_client.post(
        "/console/policies", data={"csrf_token": csrf, "name": "broken", "document": "{nope"}
    )
    assert not_json.status_code == 422
    assert "policyDocument" in _alert(not_json.text)
    assert "{nope" in not_json.text
    no_thing = await console_client.post(
        "/console/certificates", data={"csrf_token": csrf, "thing": "nobody"}
    )
    assert no_thing.status_code == 404
    assert "nobody" in _alert(no_thing.text)

    console_client.cookies.clear()
    csrf = await log_in(console_client, console_cloud.read_only_token)
    policy = await console_client.post(
        "/console/policies", data={"csrf_token": csrf, "name": "viewer", "document": json.dumps(POLICY)}
    )
    assert policy.status_code == 403
    assert "role 'read-only'" in _alert(policy.text)
    certificate = await console_client.post("/console/certificates", data={"csrf_token": csrf})
    assert certificate.status_code == 403
    assert "role 'read-only'" in _alert(certificate.text)
    assert "PRIVATE KEY" not in certificate.text
    assert await _count(console_client, console_cloud, "/policies") == policies
    assert await _count(console_client, console_cloud, "/certificates") == certificates
