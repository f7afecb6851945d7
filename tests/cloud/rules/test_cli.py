"""``edgewise rule ...`` against the API served by uvicorn on a real socket: options and AWS CreateTopicRule
JSON files, list, describe, update, enable, disable, delete, and SQL errors with their position."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from edgewise.cli.main import app
from edgewise.cloud.app import FirstStart, create_app
from tests.support.api_server import served_api


@pytest.fixture
def api_url(first_start: FirstStart) -> Iterator[str]:
    """The API on a free loopback port, served by uvicorn in a thread of its own."""
    with served_api(create_app(first_start.settings)) as url:
        yield url


@pytest.fixture
def cli(api_url: str, first_start: FirstStart) -> Any:
    def invoke(*args: str) -> Result:
        assert first_start.admin_token is not None
        env = {"COLUMNS": "200", "EDGEWISE_API_TOKEN": first_start.admin_token, "EDGEWISE_API_URL": api_url}
        return CliRunner().invoke(app, list(args), env=env)

    return invoke


def ok(cli: Any, *args: str) -> Any:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_create_from_options_describe_update_disable_enable_delete(cli: Any) -> None:
    created = ok(
        cli,
        "rule",
        "create",
        "Hot",
        "--sql",
        "SELECT temp FROM 'dt/+/temp' WHERE temp > 30",
        "--action",
        "republish:topic=alerts/${topic(2)},qos=1",
        "--action",
        "telemetry:stream=hot",
        "--action",
        "http:url=https://example.com/hook?a=1,header.X-Token=abc",
        "--error-action",
        "republish:topic=errors",
        "--description",
        "too hot",
    )
    assert created["actions"] == [
        {"republish": {"topic": "alerts/${topic(2)}", "qos": 1}},
        {"telemetry": {"stream": "hot"}},
        {"http": {"url": "https://example.com/hook?a=1", "headers": [{"key": "X-Token", "value": "abc"}]}},
    ]
    assert created["errorAction"] == {"republish": {"topic": "errors", "qos": 0}}
    assert ok(cli, "rule", "describe", "Hot") == created

    updated = ok(cli, "rule", "update", "Hot", "--sql", "SELECT * FROM 'dt/#'")
    assert updated["sql"] == "SELECT * FROM 'dt/#'"
    assert updated["actions"] == created["actions"]
    assert updated["description"] == "too hot"

    assert "Disabled rule Hot" in cli("rule", "disable", "Hot").stdout
    assert ok(cli, "rule", "describe", "Hot")["ruleDisabled"] is True
    assert "Enabled rule Hot" in cli("rule", "enable", "Hot").stdout
    listed = cli("rule", "list")
    assert listed.exit_code == 0, listed.output
    assert "Hot" in listed.stdout
    assert "republish, telemetry, http" in listed.stdout
    assert "Deleted rule Hot" in cli("rule", "delete", "Hot").stdout
    assert ok(cli, "rule", "list") == []


def test_create_from_an_aws_create_topic_rule_file(cli: Any, tmp_path: Path) -> None:
    document = {
        "ruleName": "FromAws",
        "topicRulePayload": {
            "sql": "SELECT * FROM 'some/topic'",
            "description": "brought from AWS",
            "actions": [{"republish": {"topic": "copy/topic", "qos": 1, "roleArn": "arn:aws:iam::1:role/x"}}],
            "errorAction": {"http": {"url": "https://example.com/errors"}},
            "ruleDisabled": True,
            "awsIotSqlVersion": "2016-03-23",
        },
    }
    path = tmp_path / "rule.json"
    path.write_text(json.dumps(document))

    created = ok(cli, "rule", "create", "FromAws", "--file", str(path))

    assert created["ruleDisabled"] is True
    assert created["description"] == "brought from AWS"
    assert created["errorAction"] == {"http": {"url": "https://example.com/errors", "headers": []}}


def test_sql_that_does_not_parse_is_refused_with_its_position(cli: Any) -> None:
    result = cli(
        "rule", "create", "Bad", "--sql", "SELECT a FROM 'x' WHERE (", "--action", "telemetry:stream=s"
    )

    assert result.exit_code == 1
    assert "line 1, column 25 (offset 24)" in result.output
    assert ok(cli, "rule", "list") == []


def test_an_unsupported_aws_action_is_refused_with_its_name(cli: Any) -> None:
    result = cli(
        "rule", "create", "Lambda", "--sql", "SELECT * FROM 'x'", "--action", "lambda:functionArn=arn"
    )

    assert result.exit_code == 1
    assert "action 'lambda' is not supported" in result.output
