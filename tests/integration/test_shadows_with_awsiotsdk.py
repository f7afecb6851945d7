"""Local shadows from component processes using the real awsiotsdk client (v2 and v1), with authorization and
the shadow topics on local pub/sub; plus hostile requests against a real runtime."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgewise.runtime.ipc.client import IpcCallError
from tests.support.runtime_process import RuntimeProcess, running, script_component
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
THING = "shadow-test-thing"
V1_THING = "shadow-test-v1"  # apart from THING, whose topics the operator counts


def _policy(service: str, policy_id: str, operations: list[str], resources: list[str]) -> dict[str, Any]:
    return {service: {policy_id: {"operations": operations, "resources": resources}}}


def _results(path: Path) -> dict[str, Any]:
    text = wait_until(lambda: path.read_text() if path.exists() else "", timeout=90, what=path.name)
    results: dict[str, Any] = json.loads(text)
    return results


def test_components_use_every_shadow_operation_and_hear_the_shadow_topics(
    runtime: RuntimeProcess, tmp_path: Path, recipes: Path, artifacts: Path
) -> None:
    operator_out, v1_out, denied_out = (
        tmp_path / "operator.json",
        tmp_path / "v1.json",
        tmp_path / "denied.json",
    )
    operator_policy = {
        **_policy(
            "aws.greengrass.ShadowManager",
            "test.ShadowOperator:shadows",
            ["*"],
            [f"$aws/things/{THING}/shadow", f"$aws/things/{THING}/shadow/name/*", THING],
        ),
        **_policy(
            "aws.greengrass.ipc.pubsub",
            "test.ShadowOperator:topics",
            ["aws.greengrass#SubscribeToTopic"],
            [f"$aws/things/{THING}/shadow/#"],
        ),
    }
    v1_policy = _policy(
        "aws.greengrass.ShadowManager",
        "test.ShadowV1:shadows",
        ["aws.greengrass#UpdateThingShadow", "aws.greengrass#GetThingShadow"],
        [f"$aws/things/{V1_THING}/shadow/name/v1"],
    )
    denied_policy = _policy(
        "aws.greengrass.ShadowManager",
        "test.ShadowDenied:get-only",
        ["aws.greengrass#GetThingShadow"],
        ["$aws/things/allowed-thing/shadow"],
    )
    # Greengrass accepts accessControl as a JSON string as well as a map: these recipes use the string.
    script_component(
        recipes,
        artifacts,
        "test.ShadowOperator",
        "shadow_operations.py",
        f"{operator_out} {THING}",
        configuration={"accessControl": json.dumps(operator_policy)},
    )
    script_component(
        recipes,
        artifacts,
        "test.ShadowV1",
        "shadow_v1.py",
        f"{v1_out} {V1_THING}",
        configuration={"accessControl": json.dumps(v1_policy)},
    )
    script_component(
        recipes,
        artifacts,
        "test.ShadowDenied",
        "shadow_denied.py",
        str(denied_out),
        configuration={"accessControl": json.dumps(denied_policy)},
    )
    roots = {"test.ShadowOperator": "1.0.0", "test.ShadowV1": "1.0.0", "test.ShadowDenied": "1.0.0"}

    deployment = runtime.deploy(recipes, artifacts=artifacts, rootComponentVersionsToAdd=roots)

    assert runtime.wait_deployment(deployment)["status"] == "SUCCEEDED"
    results = _results(operator_out)
    desired = results["update_desired"]["ok"]
    assert desired["state"] == {"desired": {"color": "red"}}
    assert desired["version"] == 1
    assert desired["clientToken"] == "tok-1"
    assert isinstance(desired["metadata"]["desired"]["color"]["timestamp"], int)
    classic = results["get_classic"]["ok"]
    assert classic["state"] == {
        "desired": {"color": "red"},
        "reported": {"color": "blue"},
        "delta": {"color": "red"},
    }
    assert classic["version"] == 2
    assert results["update_wrong_version"]["error"] == "ConflictError"
    names, next_token, timestamp = results["list_named"]["ok"]
    assert names == ["config"]
    assert next_token
    assert timestamp > 1_600_000_000
    assert results["delete_named"]["ok"]["version"] == 1
    assert results["get_deleted"]["error"] == "ResourceNotFoundError"
    assert results["update_invalid_json"]["error"] == "InvalidArgumentsError"
    assert "Invalid JSON" in results["update_invalid_json"]["message"]
    assert results["get_invalid_thing"]["error"] == "InvalidArgumentsError"
    assert "thingName" in results["get_invalid_thing"]["message"]

    prefix = f"$aws/things/{THING}/shadow"
    topics = [event["topic"] for event in results["events"]]
    assert topics == [
        f"{prefix}/update/accepted",
        f"{prefix}/update/delta",
        f"{prefix}/update/documents",
        f"{prefix}/update/accepted",
        f"{prefix}/update/delta",
        f"{prefix}/update/documents",
        f"{prefix}/get/accepted",
        f"{prefix}/update/rejected",
        f"{prefix}/name/config/update/accepted",
        f"{prefix}/name/config/update/documents",
        f"{prefix}/name/network/update/accepted",
        f"{prefix}/name/network/update/documents",
        f"{prefix}/name/config/delete/accepted",
        f"{prefix}/name/config/get/rejected",
        f"{prefix}/update/rejected",
    ]
    assert results["events"][1]["document"]["clientToken"] == "tok-1"
    assert results["events"][7]["document"]["code"] == 409

    v1 = _results(v1_out)
    assert v1["update"]["state"] == {"reported": {"client": "v1"}}
    assert v1["update"]["clientToken"] == "v1-token"
    assert v1["get"]["state"] == {"reported": {"client": "v1"}}

    denied = _results(denied_out)
    assert denied["get_allowed"]["error"] == "ResourceNotFoundError"
    for name in (
        "get_named_of_allowed",
        "get_other_thing",
        "update_allowed",
        "delete_allowed",
        "list_allowed",
    ):
        assert denied[name]["error"] == "UnauthorizedError", name
        assert "test.ShadowDenied" in denied[name]["message"]
    assert "$aws/things/other-thing/shadow" in denied["get_other_thing"]["message"]


@pytest.fixture(scope="module")
def shadow_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    """One runtime for the request-level tests, which only talk to it with the CLI's token."""
    with running(tmp_path_factory.mktemp("shadows") / "root") as process:
        yield process


def _update(runtime: RuntimeProcess, payload: Any, **fields: Any) -> dict[str, Any]:
    request = {"thingName": THING, "shadowName": "", "payload": payload, **fields}
    return runtime.call("UpdateThingShadow", request)


def _encoded(document: Any) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


@pytest.mark.parametrize(
    ("request_fields", "problem"),
    [
        ({"payload": "%%% not base64"}, "payload: not valid base64"),
        ({"payload": 12}, "payload: expected a base64 string"),
        ({"payload": None}, "payload: expected a base64 string"),
        ({"thingName": 5}, "thingName"),
        ({"thingName": "a/b"}, "thingName"),
        ({"thingName": "x" * 129}, "thingName"),
        ({"shadowName": "+"}, "shadowName"),
        ({"payload": base64.b64encode(b"\xff\xfe").decode()}, "UTF-8"),
        ({"payload": _encoded({"state": {"desired": {"a": [None]}}})}, "invalid node"),
        ({"payload": _encoded({"state": {"desired": {"a": "x" * 41000}}})}, "maximum size"),
        ({"payload": base64.b64encode(b"[" * 41000).decode()}, "maximum size"),
    ],
)
def test_hostile_update_requests_get_invalid_arguments_and_the_runtime_keeps_serving(
    shadow_runtime: RuntimeProcess, request_fields: dict[str, Any], problem: str
) -> None:
    request = {"thingName": THING, "shadowName": "", "payload": _encoded({"state": {}}), **request_fields}

    with pytest.raises(IpcCallError) as caught:
        shadow_runtime.call("UpdateThingShadow", request)

    assert caught.value.error_code == "InvalidArgumentsError"
    assert problem in caught.value.message
    accepted = _update(shadow_runtime, _encoded({"state": {"reported": {"alive": True}}}))
    assert base64.b64decode(accepted["payload"])


def test_size_limit_follows_the_shadow_manager_configuration(shadow_runtime: RuntimeProcess) -> None:
    configure = {
        "rootComponentVersionsToAdd": {"aws.greengrass.ShadowManager": "2.12.0"},
        "componentToConfiguration": {
            "aws.greengrass.ShadowManager": {"MERGE": {"shadowDocumentSizeLimitBytes": 20000}}
        },
    }
    deployment = shadow_runtime.call("CreateLocalDeployment", configure)["deploymentId"]
    assert shadow_runtime.wait_deployment(deployment)["status"] == "SUCCEEDED"

    accepted = _update(
        shadow_runtime, _encoded({"state": {"desired": {"big": "x" * 9000}}}), shadowName="big"
    )

    assert json.loads(base64.b64decode(accepted["payload"]))["state"] == {"desired": {"big": "x" * 9000}}
    with pytest.raises(IpcCallError, match="limit is 20000"):
        _update(shadow_runtime, _encoded({"state": {"reported": {"big": "y" * 12000}}}), shadowName="big")
