"""The Rules pages over HTTP: creating a rule from SQL and actions, its page, and the API's refusals (bad SQL, a
read-only token) shown in the form with nothing created."""

from __future__ import annotations

import html
import json
import re

import httpx

from tests.console.conftest import ConsoleCloud, log_in

SQL = "SELECT temperature FROM 'sensors/+/data' WHERE temperature > 30"
ACTIONS = [{"republish": {"topic": "alerts/hot", "qos": 1}}]


def _alert(page: str) -> str:
    found = re.search(r'<p class="error" role="alert">(.*?)</p>', page, re.S)
    assert found is not None, "the page shows no error"
    return html.unescape(found.group(1))


async def _rule_names(client: httpx.AsyncClient, cloud: ConsoleCloud) -> list[str]:
    answer = await client.get("/api/v1/rules", headers={"Authorization": f"Bearer {cloud.admin_token}"})
    return [rule["ruleName"] for rule in answer.json()["data"]]


async def test_create_a_rule_and_see_it(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient
) -> None:
    csrf = await log_in(console_client, console_cloud.admin_token)
    created = await console_client.post(
        "/console/rules",
        data={
            "csrf_token": csrf,
            "name": "hot",
            "sql": SQL,
            "actions": json.dumps(ACTIONS),
            "description": "Too hot",
        },
    )
    assert created.status_code == 303, created.text
    assert created.headers["location"] == "/console/rules/hot"
    page = await console_client.get("/console/rules/hot")
    assert page.status_code == 200
    assert SQL in html.unescape(page.text)
    assert "alerts/hot" in page.text
    assert "Too hot" in page.text
    listed = await console_client.get("/console/rules")
    row = re.search(r'<a href="/console/rules/hot">hot</a>.*?</tr>', listed.text, re.S)
    assert row is not None
    assert "republish" in row.group(0)
    assert "<td>yes</td>" in row.group(0)


async def test_refusals_show_the_message_and_create_nothing(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient
) -> None:
    csrf = await log_in(console_client, console_cloud.admin_token)
    bad_sql = await console_client.post(
        "/console/rules", data={"csrf_token": csrf, "name": "broken", "sql": "SELECT FROM", "actions": "[]"}
    )
    assert bad_sql.status_code == 422
    assert "sql" in _alert(bad_sql.text)
    assert "SELECT FROM" in bad_sql.text
    not_a_list = await console_client.post(
        "/console/rules", data={"csrf_token": csrf, "name": "broken", "sql": SQL, "actions": "{}"}
    )
    assert not_a_list.status_code == 422
    assert _alert(not_a_list.text) == "Field 'actions' must be a JSON array of action objects"

    console_client.cookies.clear()
    csrf = await log_in(console_client, console_cloud.read_only_token)
    read_only = await console_client.post(
        "/console/rules", data={"csrf_token": csrf, "name": "viewer_rule", "sql": SQL, "actions": "[]"}
    )
    assert read_only.status_code == 403
    assert "role 'read-only'" in _alert(read_only.text)
    names = await _rule_names(console_client, console_cloud)
    assert "broken" not in names
    assert "viewer_rule" not in names
