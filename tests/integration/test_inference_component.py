"""The inference component in a real runtime: edgewise.ml.Inference (its shipped recipe, run under the runtime's
interpreter), a signed model component whose Install step verifies its package, a challenger model component,
the built-in stream manager the captures go to, and a sensor component using the awsiotsdk client that publishes
numbered readings and records the results.

One run, in order: model version 1 serves, a challenger (hot above 20 degrees where version 1 says above 30) in
shadow with its disagreements captured; two messages it cannot use are sent; version 2 is deployed as a
configuration update while the readings keep coming; the readings stop; the capture stream is read back; then a
tampered model package is deployed. The tests read what was recorded.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from stream_manager import ReadMessagesOptions, StreamManagerClient

from edgewise.components import RECIPES_DIR
from edgewise.components.inference.verify import INFERENCE_DEPENDENCY, INSTALL_SCRIPT
from edgewise.protocol.model_package import MANIFEST_FILE, MODEL_FILE, SIGNATURE_FILE, public_key_text
from tests.components.inference.packages import KEY, hot_classifier, write_hot_package
from tests.support.ports import free_port
from tests.support.runtime_process import CLIENTS, RuntimeProcess, running
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
INFERENCE = "edgewise.ml.Inference"
SENSOR = "test.Sensor"
STREAM_MANAGER = "aws.greengrass.StreamManager"
CAPTURE_STREAM = "EdgewiseInferenceCapture"


def model_component(
    recipes: Path, artifacts: Path, name: str, version: str, onnx: bytes, *, tamper: bool = False
) -> None:
    """``edgewise.models.NAME`` at ``version``: the package files as artifacts, the verify step as Install."""
    package = artifacts / f"edgewise.models.{name}" / version
    write_hot_package(package, onnx, version=version.split(".")[0])
    if tamper:
        (package / MODEL_FILE).write_bytes((package / MODEL_FILE).read_bytes() + b"\x00")
    recipe = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": f"edgewise.models.{name}",
        "ComponentVersion": version,
        "ComponentDependencies": INFERENCE_DEPENDENCY,
        "Manifests": [
            {
                "Artifacts": [
                    {"Uri": f"file:{file}"} for file in (MODEL_FILE, MANIFEST_FILE, SIGNATURE_FILE)
                ],
                "Lifecycle": {"Install": INSTALL_SCRIPT},
            }
        ],
    }
    (recipes / f"edgewise.models.{name}-{version}.json").write_text(json.dumps(recipe))


def sensor_component(recipes: Path, artifacts: Path, out: Path) -> None:
    source = artifacts / SENSOR / "1.0.0"
    source.mkdir(parents=True)
    shutil.copy(CLIENTS / "inference_sensor.py", source)
    policies = {
        f"{SENSOR}:pubsub": {
            "operations": ["aws.greengrass#PublishToTopic", "aws.greengrass#SubscribeToTopic"],
            "resources": ["sensors/s1/reading", "ml/hot/results"],
        }
    }
    recipe = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": SENSOR,
        "ComponentVersion": "1.0.0",
        "ComponentConfiguration": {
            "DefaultConfiguration": {"accessControl": {"aws.greengrass.ipc.pubsub": policies}}
        },
        "Manifests": [
            {
                "Artifacts": [{"Uri": "file:inference_sensor.py"}],
                "Lifecycle": {"Run": f"{sys.executable} {{artifacts:path}}/inference_sensor.py {out}"},
            }
        ],
    }
    (recipes / f"{SENSOR}-1.0.0.json").write_text(json.dumps(recipe))


def served(version: str) -> dict[str, Any]:
    return {
        "models": {
            "hot": {
                "component": "edgewise.models.hot",
                "version": version,
                "inputTopic": "sensors/+/reading",
                "outputTopic": "ml/hot/results",
                "passthrough": ["seq"],
                "capture": {"sampleRate": 0, "disagreement": True},
                "challenger": {"component": "edgewise.models.hot20", "version": "1.0.0", "sampleRate": 1},
            }
        }
    }


def counted(log: str, name: str) -> int:
    """The last value the inference component logged for counter ``name`` (0 before any)."""
    values = re.findall(rf"\b{name}=(\d+)", log)
    return int(values[-1]) if values else 0


def captures(port: int) -> tuple[Any, list[dict[str, Any]]]:
    """The capture stream's description and its records, read with the stream-manager SDK."""
    client = StreamManagerClient(port=port, request_timeout=10)
    try:
        described = client.describe_message_stream(CAPTURE_STREAM)
        messages = client.read_messages(
            CAPTURE_STREAM,
            ReadMessagesOptions(
                desired_start_sequence_number=0,
                min_message_count=1,
                max_message_count=10_000,
                read_timeout_millis=0,
            ),
        )
    finally:
        client.close()
    return described, [json.loads(message.payload) for message in messages]


def results(out: Path) -> list[dict[str, Any]]:
    path = out / "results.jsonl"
    # The last line may be half written: only complete lines count.
    return [json.loads(line) for line in path.read_text().split("\n")[:-1]] if path.exists() else []


def read_json(path: Path) -> dict[str, Any]:
    """The object in ``path`` (written by renaming, so whole); empty while there is none."""
    return dict(json.loads(path.read_text())) if path.exists() else {}


def deploy(runtime: RuntimeProcess, recipes: Path, artifacts: Path, **request: Any) -> dict[str, Any]:
    return runtime.wait_deployment(runtime.deploy(recipes, artifacts=artifacts, **request), timeout=40)


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("inference")
    recipes, artifacts, out = tmp / "recipes", tmp / "artifacts", tmp / "out"
    for directory in (recipes, artifacts, out):
        directory.mkdir()
    shutil.copy(RECIPES_DIR / f"{INFERENCE}-1.0.0.yaml", recipes)
    hot_at_30 = hot_classifier(30.0)
    model_component(recipes, artifacts, "hot", "1.0.0", hot_at_30)
    hot_at_20 = hot_classifier(20.0)
    model_component(recipes, artifacts, "hot", "2.0.0", hot_at_20)
    model_component(recipes, artifacts, "hot20", "1.0.0", hot_at_20)
    model_component(recipes, artifacts, "tampered", "1.0.0", hot_at_30, tamper=True)
    sensor_component(recipes, artifacts, out)
    found: dict[str, Any] = {}
    port = free_port()
    with running(tmp / "root") as runtime:
        first = deploy(
            runtime,
            recipes,
            artifacts,
            rootComponentVersionsToAdd={
                INFERENCE: "1.0.0",
                "edgewise.models.hot": "1.0.0",
                "edgewise.models.hot20": "1.0.0",
                SENSOR: "1.0.0",
                STREAM_MANAGER: "2.1.0",
            },
            componentToConfiguration={
                INFERENCE: {
                    "MERGE": {
                        "trustedKeys": [public_key_text(KEY.public_key())],
                        "countersIntervalSeconds": 0.3,
                        **served("1.0.0"),
                    }
                },
                # Without client authentication, so that the test reads the capture stream itself.
                STREAM_MANAGER: {
                    "MERGE": {
                        "STREAM_MANAGER_SERVER_PORT": str(port),
                        "STREAM_MANAGER_AUTHENTICATE_CLIENT": "false",
                    }
                },
            },
        )
        assert first["status"] == "SUCCEEDED", first
        misfits = wait_until(lambda: read_json(out / "misfits.json"), timeout=30, what="misfit messages sent")
        wait_until(
            lambda: "skipped=1 malformed=1" in runtime.log(INFERENCE), timeout=20, what="the misfits counted"
        )
        wait_until(
            lambda: sum(result["passthrough"]["seq"] > misfits["after"] for result in results(out)) >= 10,
            timeout=20,
            what="results after the misfits",
        )
        second = deploy(
            runtime,
            recipes,
            artifacts,
            rootComponentVersionsToAdd={"edgewise.models.hot": "2.0.0"},
            componentToConfiguration={INFERENCE: {"MERGE": served("2.0.0")}},
        )
        assert second["status"] == "SUCCEEDED", second
        wait_until(
            lambda: sum(result["version"] == "2" for result in results(out)) >= 10,
            timeout=20,
            what="version 2 results",
        )
        (out / "stop").touch()
        last = wait_until(lambda: read_json(out / "published.json"), timeout=10, what="the sensor to stop")[
            "last"
        ]
        wait_until(
            lambda: any(result["passthrough"]["seq"] == last for result in results(out)),
            timeout=10,
            what="the last result",
        )

        def all_captured() -> tuple[Any, list[dict[str, Any]], str] | None:
            log = runtime.log(INFERENCE)
            disagreements = counted(log, "challengerDisagreements")
            if not disagreements or counted(log, "captured") != disagreements:
                return None
            described, records = captures(port)
            return (described, records, log) if len(records) == disagreements else None

        captured = wait_until(all_captured, timeout=20, what="every disagreement captured")
        assert captured is not None
        described, records, log = captured
        found.update(results=results(out), misfits=misfits["after"], last=last, log=log)
        found.update(capture_stream=described, captures=records)
        found["tampered"] = deploy(
            runtime, recipes, artifacts, rootComponentVersionsToAdd={"edgewise.models.tampered": "1.0.0"}
        )
        found["states"] = runtime.states()
    return found


def by_seq(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(outcome["results"], key=lambda result: result["passthrough"]["seq"])


def test_results_arrive_on_the_output_topic_with_the_right_labels(outcome: dict[str, Any]) -> None:
    results = by_seq(outcome)
    assert len(results) > 30
    for result in results:
        seq = result["passthrough"]["seq"]
        # 25 degrees: cool for version 1 (hot above 30), hot for version 2 (above 20).
        hot = seq % 2 or (seq % 4 == 2 and result["version"] == "2")
        assert result["label"] == ("hot" if hot else "cool"), result
        assert (result["model"], result["thing"], result["topic"]) == (
            "hot",
            "edgewise-device",
            "sensors/s1/reading",
        )
        assert set(result["probabilities"]) == {"cool", "hot"}
        assert isinstance(result["timestamp"], int)


def test_messages_that_do_not_fit_are_counted_and_the_component_keeps_serving(
    outcome: dict[str, Any],
) -> None:
    log = outcome["log"]
    assert "field 'temp' (path $.sensors.temp) is missing" in log
    assert "the payload is not JSON" in log
    assert "skipped=1 malformed=1 failed=0" in log
    assert any(result["passthrough"]["seq"] > outcome["misfits"] for result in outcome["results"])


def test_a_second_version_swaps_in_without_losing_or_repeating_a_message(outcome: dict[str, Any]) -> None:
    results = by_seq(outcome)
    seqs = [result["passthrough"]["seq"] for result in results]
    assert seqs == list(range(seqs[0], outcome["last"] + 1))
    versions = [result["version"] for result in results]
    switch = versions.index("2")
    assert set(versions[:switch]) == {"1"}
    assert set(versions[switch:]) == {"2"}
    assert switch > 0
    log = outcome["log"]
    assert "model hot: serving hot version 2 (package edgewise.models.hot@2.0.0)" in log
    assert log.count("inference component running") == 1  # swapped in the running process, not restarted


def test_a_tampered_package_fails_its_deployment_with_the_reason(outcome: dict[str, Any]) -> None:
    tampered = outcome["tampered"]
    assert tampered["status"] == "FAILED"
    cause = tampered["deploymentStatusDetails"]["deploymentFailureCause"]
    assert (
        "edgewise.models.tampered is BROKEN (Install exited with code 1: model package refused: model.onnx: SHA-256"
        in cause
    )
    assert outcome["states"][INFERENCE] == "RUNNING"


def test_the_challengers_disagreements_are_counted_and_captured_in_the_stream(
    outcome: dict[str, Any],
) -> None:
    log = outcome["log"]
    assert "model hot: challenger hot version 1 (package edgewise.models.hot20@1.0.0) in shadow on 1" in log
    disagreements = counted(log, "challengerDisagreements")
    # Version 1 and the challenger disagree on 25 degrees only, a quarter of the readings; version 2 agrees.
    assert disagreements > 0
    assert counted(log, "challengerAgreements") > 2 * disagreements
    assert counted(log, "captureFailed") == counted(log, "captureDropped") == 0
    export = outcome["capture_stream"].definition.export_definition.kinesis
    assert [(config.identifier, config.kinesis_stream_name) for config in export] == [
        ("edgewise-capture", CAPTURE_STREAM)
    ]
    records = outcome["captures"]
    assert len(records) == disagreements
    for record in records:
        assert isinstance(record.pop("timestamp"), int)
        output, challenger = record.pop("output"), record.pop("challenger")
        assert record == {
            "format": "edgewise.capture/1",
            "model": "hot",
            "version": "1",
            "source": "sensors/s1/reading",
            "features": {"temp": 25.0, "hum": 50.0},
            "reason": "disagreement",
        }
        assert (output["label"], challenger["output"]["label"]) == ("cool", "hot")
        assert (challenger["component"], challenger["version"], challenger["agrees"]) == (
            "edgewise.models.hot20",
            "1",
            False,
        )
