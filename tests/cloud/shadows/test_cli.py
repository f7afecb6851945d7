"""``edgewise shadow get|update|delete|list`` against the API served by uvicorn on a real socket."""

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
def cli(first_start: FirstStart) -> Iterator[Any]:
    with served_api(create_app(first_start.settings)) as url:

        def invoke(*args: str) -> Result:
            assert first_start.admin_token is not None
            env = {"COLUMNS": "200", "EDGEWISE_API_TOKEN": first_start.admin_token, "EDGEWISE_API_URL": url}
            return CliRunner().invoke(app, ["shadow", *args], env=env)

        yield invoke


def ok(cli: Any, *args: str) -> Any:
    result = cli(*args)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_update_get_list_delete(cli: Any, tmp_path: Path) -> None:
    accepted = json.loads(
        ok(cli, "update", "Pump-1", "--desired", '{"speed": 3}', "--reported", '{"speed": 1}')
    )
    assert (accepted["version"], accepted["state"]["desired"]) == (1, {"speed": 3})
    document = tmp_path / "doc.json"
    document.write_text(json.dumps({"state": {"reported": {"on": True}}, "version": 0}))
    assert json.loads(ok(cli, "update", "Pump-1", "--name", "power", "--file", str(document)))["version"] == 1

    shadow = json.loads(ok(cli, "get", "Pump-1"))
    assert shadow["state"]["delta"] == {"speed": 3}
    assert ok(cli, "list", "Pump-1").split() == ["power"]
    assert "at version 1" in ok(cli, "delete", "Pump-1", "--name", "power")
    assert json.loads(ok(cli, "list", "Pump-1", "--json")) == []


def test_refusals_name_the_problem(cli: Any) -> None:
    ok(cli, "update", "Pump-1", "--reported", '{"x": 1}')

    stale = cli("update", "Pump-1", "--reported", '{"x": 2}', "--version", "5")
    assert stale.exit_code != 0
    assert "Version conflict" in stale.output
    assert "--desired: not valid JSON" in cli("update", "Pump-1", "--desired", "{").output
    missing = cli("get", "Pump-1", "--name", "nothing")
    assert missing.exit_code != 0
    assert "No shadow exists with name: 'nothing'" in missing.output
