"""``edgewise thing ...`` and ``edgewise group ...`` end to end against a running ``edgewise cloud up``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from edgewise.cli.main import app
from tests.support.cloud_process import CloudProcess
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudProcess]:
    with CloudProcess(tmp_path_factory.mktemp("cli") / "data") as process:
        yield process.wait_ready()


def run(cloud: CloudProcess, *args: str, token: str | None = None, api: bool = True) -> Result:
    """Run one CLI command in-process; the API from ``--api`` and the token from the environment."""
    env = {"COLUMNS": "200", "EDGEWISE_API_TOKEN": token or cloud.admin_token, "EDGEWISE_API_URL": None}
    extra = ["--api", cloud.api_url] if api else []
    return CliRunner().invoke(app, [*args, *extra], env=env)


def ok(cloud: CloudProcess, *args: str) -> Any:
    """Run a ``--json`` command that must succeed; its decoded output."""
    result = run(cloud, *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_thing_create_get_list_update_delete(cloud: CloudProcess) -> None:
    created = ok(cloud, "thing", "create", "pump-1", "--type", "Pump", "-a", "site=north", "-a", "floor=2")
    assert created["attributes"] == {"site": "north", "floor": "2"}
    assert created["thingTypeName"] == "Pump"
    assert ok(cloud, "thing", "get", "pump-1") == created | {"thingGroups": []}
    ok(cloud, "thing", "create", "pump-2")
    names = [thing["thingName"] for thing in ok(cloud, "thing", "list", "--prefix", "pump-")]
    assert names == ["pump-1", "pump-2"]
    updated = ok(cloud, "thing", "update", "pump-1", "-a", "site=", "--merge", "--expected-version", "1")
    assert updated["attributes"] == {"floor": "2"}
    assert updated["version"] == 2
    deleted = run(cloud, "thing", "delete", "pump-2")
    assert deleted.exit_code == 0, deleted.stderr
    assert "Deleted thing pump-2" in deleted.stdout
    assert [thing["thingName"] for thing in ok(cloud, "thing", "list", "--prefix", "pump-")] == ["pump-1"]


def test_thing_list_prints_a_table(cloud: CloudProcess) -> None:
    ok(cloud, "thing", "create", "table-1", "-a", "color=red")
    result = run(cloud, "thing", "list", "--prefix", "table-")
    assert result.exit_code == 0, result.stderr
    assert "table-1" in result.stdout
    assert "color=red" in result.stdout


def test_group_membership_through_the_cli(cloud: CloudProcess) -> None:
    ok(cloud, "group", "create", "plant", "--description", "The plant")
    ok(cloud, "group", "create", "line-a", "--parent", "plant")
    ok(cloud, "thing", "create", "robot-1")
    added = run(cloud, "group", "add-thing", "line-a", "robot-1")
    assert added.exit_code == 0, added.stderr
    assert [thing["thingName"] for thing in ok(cloud, "group", "things", "line-a")] == ["robot-1"]
    assert ok(cloud, "group", "things", "plant") == []
    assert [thing["thingName"] for thing in ok(cloud, "group", "things", "plant", "--recursive")] == [
        "robot-1"
    ]
    memberships = ok(cloud, "thing", "get", "robot-1")["thingGroups"]
    assert {(group["thingGroupName"], group["direct"]) for group in memberships} == {
        ("line-a", True),
        ("plant", False),
    }
    children = ok(cloud, "group", "list", "--parent", "plant")
    assert [(group["thingGroupName"], group["parentGroupName"]) for group in children] == [
        ("line-a", "plant")
    ]
    described = ok(cloud, "group", "get", "plant")
    assert described["description"] == "The plant"
    removed = run(cloud, "group", "remove-thing", "line-a", "robot-1")
    assert removed.exit_code == 0, removed.stderr
    assert ok(cloud, "group", "things", "line-a") == []
    refused = run(cloud, "group", "delete", "plant")
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: ")
    assert run(cloud, "group", "delete", "line-a").exit_code == 0
    assert run(cloud, "group", "delete", "plant").exit_code == 0


def test_dynamic_group_lists_things_matching_its_query(cloud: CloudProcess) -> None:
    ok(cloud, "thing", "create", "meter-1", "-a", "zone=blue")
    ok(cloud, "group", "create", "blue-zone", "--query", "attributes.zone:blue")
    assert [thing["thingName"] for thing in ok(cloud, "group", "things", "blue-zone")] == ["meter-1"]


def test_api_errors_are_printed_with_exit_code_1(cloud: CloudProcess) -> None:
    missing = run(cloud, "thing", "get", "no-such-thing")
    assert missing.exit_code == 1
    assert missing.stderr.strip() == "error: Thing 'no-such-thing' does not exist"
    ok(cloud, "thing", "create", "twin")
    duplicate = run(cloud, "thing", "create", "twin")
    assert duplicate.exit_code == 1
    assert "already exists" in duplicate.stderr
    invalid = run(cloud, "thing", "create", "bad name!")
    assert invalid.exit_code == 1
    assert "error: Invalid request" in invalid.stderr
    assert "thingName" in invalid.stderr
    unknown_token = run(cloud, "thing", "list", token="ewt_not-a-real-token")
    assert unknown_token.exit_code == 1
    assert unknown_token.stderr.startswith("error: ")


def test_names_cannot_reach_another_route(cloud: CloudProcess) -> None:
    ok(cloud, "thing", "create", "victim")
    escaped = run(cloud, "thing", "delete", "../things/victim")
    assert escaped.exit_code == 1
    assert ok(cloud, "thing", "get", "victim")["thingName"] == "victim"


def test_bad_attribute_and_unreachable_api_are_refused(cloud: CloudProcess) -> None:
    bad = run(cloud, "thing", "create", "x", "-a", "novalue")
    assert bad.exit_code == 1
    assert "--attribute: expected NAME=VALUE, got 'novalue'" in bad.stderr
    nowhere = CliRunner().invoke(
        app,
        ["thing", "list", "--api", f"http://127.0.0.1:{free_port()}"],
        env={"COLUMNS": "200", "EDGEWISE_API_TOKEN": "ewt_whatever"},
    )
    assert nowhere.exit_code == 1
    assert "Cannot reach the cloud API" in nowhere.stderr


def test_data_dir_gives_token_and_api_url(cloud: CloudProcess) -> None:
    # The real entry point, with neither --api nor a token in the environment: both come from --data.
    env = {key: value for key, value in os.environ.items() if not key.startswith("EDGEWISE_API")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgewise.cli",
            "thing",
            "create",
            "from-data",
            "--data",
            str(cloud.data_dir),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["thingName"] == "from-data"


def test_missing_token_is_explained(cloud: CloudProcess) -> None:
    result = CliRunner().invoke(app, ["thing", "list"], env={"COLUMNS": "200", "EDGEWISE_API_TOKEN": None})
    assert result.exit_code == 1
    assert "No API token: set EDGEWISE_API_TOKEN" in result.stderr
