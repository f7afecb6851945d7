"""Local pub/sub between components of a real runtime, each using the unmodified awsiotsdk client.

One deployment runs two groups side by side, each on its own topic prefix: a v2-client subscriber with a
v2-client publisher, and a v1-client subscriber (``connect()`` and stream handlers) with a v2-client
publisher. The tests then read what every component recorded.
"""

from __future__ import annotations

import base64
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.runtime_process import running
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
CLIENTS = Path(__file__).parent / "clients"
PUBSUB = "aws.greengrass.ipc.pubsub"
PUBLISH = "aws.greengrass#PublishToTopic"
SUBSCRIBE = "aws.greengrass#SubscribeToTopic"


def pubsub_policy(component: str, *, publish: list[str], subscribe: list[str]) -> dict[str, Any]:
    policies: dict[str, Any] = {}
    if publish:
        policies[f"{component}:publish"] = {"operations": [PUBLISH], "resources": publish}
    if subscribe:
        policies[f"{component}:subscribe"] = {"operations": [SUBSCRIBE], "resources": subscribe}
    return {PUBSUB: policies}


def add_component(
    recipes: Path, artifacts: Path, name: str, script: str, args: list[str], access_control: dict[str, Any]
) -> None:
    """A component whose Run step is ``script`` (from tests/integration/clients) under this interpreter."""
    source = artifacts / name / "1.0.0"
    source.mkdir(parents=True)
    shutil.copy(CLIENTS / script, source / script)
    recipe = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": name,
        "ComponentVersion": "1.0.0",
        "ComponentConfiguration": {"DefaultConfiguration": {"accessControl": access_control}},
        "Manifests": [
            {
                "Artifacts": [{"Uri": f"file:{script}"}],
                "Lifecycle": {"Run": " ".join([sys.executable, f"{{artifacts:path}}/{script}", *args])},
            }
        ],
    }
    recipes.mkdir(parents=True, exist_ok=True)
    (recipes / f"{name}-1.0.0.json").write_text(json.dumps(recipe))


def read_json(path: Path, what: str) -> Any:
    return json.loads(wait_until(lambda: path.exists() and path.read_text(), timeout=90, what=what))


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("pubsub")
    recipes, artifacts = tmp / "recipes", tmp / "artifacts"
    files = {name: tmp / f"{name}.json" for name in ("v2_sub", "v2_pub", "v1_sub", "v1_pub")}
    ready = {name: tmp / f"{name}.ready" for name in ("v2", "v1")}
    add_component(
        recipes,
        artifacts,
        "test.SubscriberV2",
        "pubsub_v2_subscriber.py",
        [str(files["v2_sub"]), str(ready["v2"]), "v2test"],
        pubsub_policy(
            "test.SubscriberV2",
            publish=["v2test/self"],
            subscribe=["v2test/#", "v2test/+/temp", "v2test/a", "v2test/self"],
        ),
    )
    add_component(
        recipes,
        artifacts,
        "test.SubscriberV1",
        "pubsub_v1_subscriber.py",
        [str(files["v1_sub"]), str(ready["v1"]), "v1test"],
        pubsub_policy("test.SubscriberV1", publish=["v1test/self"], subscribe=["v1test/#", "v1test/self"]),
    )
    for group in ("v2", "v1"):
        add_component(
            recipes,
            artifacts,
            f"test.Publisher{group.upper()}",
            "pubsub_v2_publisher.py",
            [str(files[f"{group}_pub"]), f"{group}test", str(ready[group])],
            pubsub_policy(f"test.Publisher{group.upper()}", publish=[f"{group}test/*"], subscribe=[]),
        )
    with running(tmp / "root", "--error-window", "60") as runtime:
        roots = dict.fromkeys(
            ["test.SubscriberV2", "test.SubscriberV1", "test.PublisherV2", "test.PublisherV1"], "1.0.0"
        )
        deployment = runtime.deploy(recipes, artifacts=artifacts, rootComponentVersionsToAdd=roots)
        assert runtime.wait_deployment(deployment)["status"] == "SUCCEEDED"
        yield {name: read_json(path, f"the results of {name}") for name, path in files.items()}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sort(events: list[list[Any]]) -> list[list[Any]]:
    # The v2 client runs callbacks on a thread pool, so events of one stream may be recorded out of order.
    return sorted(events, key=json.dumps)


def test_v2_client_receives_json_as_json_and_binary_as_binary_on_matching_filters(
    outcomes: dict[str, Any],
) -> None:
    result = outcomes["v2_sub"]
    assert result["finished"]
    events = result["events"]
    from_publisher = [
        ["json", "v2test/a", {"n": 1}],
        ["binary", "v2test/kitchen/temp", b64(b"\x00\x01\xfe")],
        ["json", "v2test/deep/x/y", [1, "two"]],
        ["json", "v2test/done", "done"],
    ]
    own = ["json", "v2test/self", {"from": "me"}]
    assert sort(events["wild"]) == sort(from_publisher)  # a wildcard filter: others' messages only
    assert sort(events["wild_all"]) == sort([*from_publisher, own])
    assert events["temp"] == [["binary", "v2test/kitchen/temp", b64(b"\x00\x01\xfe")]]
    assert events["exact"] == [["json", "v2test/a", {"n": 1}]]
    assert events["self"] == [own]  # a plain topic: the component's own messages too
    assert events["self_others"] == []


def test_v1_stream_handlers_receive_in_publish_order(outcomes: dict[str, Any]) -> None:
    result = outcomes["v1_sub"]
    assert result["finished"]
    assert result["events"]["wild"] == [
        ["json", "v1test/a", {"n": 1}],
        ["binary", "v1test/kitchen/temp", b64(b"\x00\x01\xfe")],
        ["json", "v1test/deep/x/y", [1, "two"]],
        ["json", "v1test/done", "done"],
    ]
    assert result["events"]["self"] == [
        ["json", "v1test/self", {"v1": True}],
        ["binary", "v1test/self", b64(b"\x00v1")],
    ]


@pytest.mark.parametrize(("subscriber", "prefix"), [("v2_sub", "v2test"), ("v1_sub", "v1test")])
def test_policy_wildcards_are_literal_for_subscriptions(
    outcomes: dict[str, Any], subscriber: str, prefix: str
) -> None:
    # Both policies list f"{prefix}/#", which allows that filter (used above) but not a topic under it.
    component = "test.SubscriberV2" if subscriber == "v2_sub" else "test.SubscriberV1"
    assert outcomes[subscriber]["errors"]["subscribe_unlisted"] == [
        "UnauthorizedError",
        f"Principal {component} is not authorized to perform {PUBSUB}:{SUBSCRIBE} on resource {prefix}/x",
    ]


@pytest.mark.parametrize("group", ["v2", "v1"])
def test_publisher_is_refused_wildcard_topics_and_what_its_policy_does_not_list(
    outcomes: dict[str, Any], group: str
) -> None:
    result = outcomes[f"{group}_pub"]
    component = f"test.Publisher{group.upper()}"
    assert {name: result[name] for name in ("json", "binary", "deep", "done")} == dict.fromkeys(
        ("json", "binary", "deep", "done"), "ok"
    )
    error, message = result["wildcard"]
    assert error == "InvalidArgumentsError"
    assert f"'{group}test/+' contains a wildcard" in message
    assert result["denied_publish"] == [
        "UnauthorizedError",
        f"Principal {component} is not authorized to perform {PUBSUB}:{PUBLISH} on resource other/x",
    ]
    assert result["denied_subscribe"] == [
        "UnauthorizedError",
        f"Principal {component} is not authorized to perform {PUBSUB}:{SUBSCRIBE} on resource {group}test/a",
    ]
