"""Rules through the REST API: AWS's CreateTopicRule shape in, GetTopicRule shape out; admin writes, any role
reads; SQL that does not parse is 422 with its position and nothing stored."""

from __future__ import annotations

from typing import Any

import httpx

from tests.cloud.conftest import ApiClientFactory

RULES = "/api/v1/rules"


def rule(name: str = "HotRule", **payload: Any) -> dict[str, Any]:
    body = {
        "sql": "SELECT temp, topic(2) AS thing FROM 'dt/+/temp' WHERE temp > 30",
        "actions": [
            {"republish": {"topic": "alerts/${topic(2)}", "qos": 1, "roleArn": "arn:aws:iam::1:role/r"}},
            {"telemetry": {"stream": "hot"}},
            {"http": {"url": "https://example.com/hook", "headers": [{"key": "X-Token", "value": "t"}]}},
        ],
        "errorAction": {"republish": {"topic": "errors"}},
        "awsIotSqlVersion": "2016-03-23",
        **payload,
    }
    return {"ruleName": name, "topicRulePayload": body}


async def _token(admin_api: httpx.AsyncClient, name: str, role: str) -> str:
    response = await admin_api.post("/api/v1/tokens", json={"name": name, "role": role})
    assert response.status_code == 201, response.text
    secret: str = response.json()["token"]
    return secret


async def test_create_get_list_replace_disable_enable_delete(admin_api: httpx.AsyncClient) -> None:
    created = await admin_api.post(RULES, json=rule())
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["ruleName"] == "HotRule"
    assert body["ruleDisabled"] is False
    assert body["actions"][0] == {
        "republish": {"topic": "alerts/${topic(2)}", "qos": 1, "roleArn": "arn:aws:iam::1:role/r"}
    }
    assert body["errorAction"] == {"republish": {"topic": "errors", "qos": 0}}
    assert (body["matched"], body["actionsFailed"], body["lastError"]) == (0, 0, None)

    assert (await admin_api.get(f"{RULES}/HotRule")).json() == body
    listed = (await admin_api.get(RULES)).json()
    assert (listed["count"], [item["ruleName"] for item in listed["data"]]) == (1, ["HotRule"])

    replaced = await admin_api.put(
        f"{RULES}/HotRule",
        json={"sql": "SELECT * FROM 'dt/#'", "actions": [{"telemetry": {"stream": "all"}}]},
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["sql"] == "SELECT * FROM 'dt/#'"
    assert replaced.json()["errorAction"] is None

    disabled = await admin_api.post(f"{RULES}/HotRule/disable")
    assert disabled.json()["ruleDisabled"] is True
    enabled = await admin_api.post(f"{RULES}/HotRule/enable")
    assert enabled.json()["ruleDisabled"] is False

    assert (await admin_api.delete(f"{RULES}/HotRule")).status_code == 204
    assert (await admin_api.get(f"{RULES}/HotRule")).status_code == 404


async def test_sql_that_does_not_parse_is_422_with_its_position_and_nothing_stored(
    admin_api: httpx.AsyncClient,
) -> None:
    response = await admin_api.post(RULES, json=rule(sql="SELECT temp FROM 'dt/+/temp' WHERE (temp >"))

    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"
    assert "line 1, column" in response.json()["message"]
    assert "offset" in response.json()["message"]
    assert (await admin_api.get(RULES)).json()["count"] == 0


async def test_an_unsupported_function_is_422_naming_it(admin_api: httpx.AsyncClient) -> None:
    response = await admin_api.post(RULES, json=rule(sql="SELECT get_thing_shadow('a') AS s FROM 'x'"))

    assert response.status_code == 422
    assert "get_thing_shadow() is not supported" in response.json()["message"]
    assert "column 8 (offset 7)" in response.json()["message"]


async def test_other_aws_actions_are_refused_with_their_name(admin_api: httpx.AsyncClient) -> None:
    response = await admin_api.post(RULES, json=rule(actions=[{"lambda": {"functionArn": "arn:x"}}]))

    assert response.status_code == 422
    assert "action 'lambda' is not supported by Edgewise" in response.json()["message"]
    assert (await admin_api.get(RULES)).json()["count"] == 0


async def test_a_bad_substitution_template_is_refused_with_the_field(admin_api: httpx.AsyncClient) -> None:
    response = await admin_api.post(RULES, json=rule(actions=[{"republish": {"topic": "a/${nope()}"}}]))

    assert response.status_code == 422
    message = response.json()["message"]
    assert "actions.0.republish.topic" in message
    assert "nope() is not supported" in message


async def test_rule_names_follow_aws(admin_api: httpx.AsyncClient) -> None:
    response = await admin_api.post(RULES, json=rule(name="bad-name"))

    assert response.status_code == 422
    assert "ruleName" in response.json()["message"]


async def test_a_duplicate_name_is_409(admin_api: httpx.AsyncClient) -> None:
    assert (await admin_api.post(RULES, json=rule())).status_code == 201

    again = await admin_api.post(RULES, json=rule())

    assert again.status_code == 409
    assert again.json()["code"] == "already_exists"


async def test_read_only_reads_and_operator_cannot_write(
    admin_api: httpx.AsyncClient, api_client: ApiClientFactory
) -> None:
    assert (await admin_api.post(RULES, json=rule())).status_code == 201
    reader = await _token(admin_api, "reader", "read-only")
    operator = await _token(admin_api, "ops", "operator")

    async with api_client(reader) as client:
        assert (await client.get(f"{RULES}/HotRule")).status_code == 200
        assert (await client.delete(f"{RULES}/HotRule")).status_code == 403
    async with api_client(operator) as client:
        assert (await client.post(RULES, json=rule(name="Other"))).status_code == 403
