"""The ML loop end to end with nothing faked: device telemetry → dataset → training → registry → signed package →
fleet deployment → inference on the device → results back in the cloud.

A real ``edgewise cloud up`` (its Mosquitto, SQLite, MLflow registry, training worker) and one runtime enrolled
to it with ``edgewise device bootstrap``. A sensor component (``clients/ml_loop_sensor.py``, awsiotsdk v2 IPC),
rolled out with ``edgewise deployment create``, sends simulated hub readings with labelled faults
(``edgewise.components.simulation``) to IoT Core on ``dt/<thing>/reading``, which the cloud stores as telemetry.
Then the CLI, as an operator runs it: ``dataset create`` from that telemetry (one row per reading, the
``anomaly`` field as the label), ``model train --task anomaly`` with a 2 s budget, ``model alias ... champion``,
``model deploy --alias champion --thing``. The sensor then sends new readings on local topics that carry their
sequence number; the inference component's results come back through IoT Core on ``dt/<thing>/anomaly`` into the
cloud's telemetry, where the test reads them and scores them against the labels the simulation injected.

The scenario runs once (module scope); each test checks one stage of what it recorded.

Stuck-sensor faults repeat the last normal reading exactly, so a model that sees one reading at a time cannot
tell them from normal ones; the seed gives a share of them (about a quarter of the faults in the live readings)
that the loose bounds (precision and recall at least 0.5) leave room for.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from edgewise.components.simulation import Reading, SimulationSettings, readings
from tests.cloud.test_cli_registry import ok, run
from tests.support.cloud_process import CloudProcess
from tests.support.runtime_process import CLIENTS, RuntimeProcess
from tests.support.telemetry_cloud import enroll_device, stored_messages
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

THING = "ml-hub"
MODEL = "hub"
DATASET = "hub-history"
SENSOR = "test.HubSensor"
SEED, FAULT_RATE = 7, 0.06
HISTORY, LIVE = 400, 250
READINGS_TOPIC = f"dt/{THING}/reading"
RESULTS_TOPIC = f"dt/{THING}/anomaly"
_TIMEOUT = 60.0
_POLL = 0.25


def simulated() -> list[Reading]:
    """The readings the sensor sends, history then live, as the seeded simulation makes them."""
    settings = SimulationSettings(seed=SEED, fault_rate=FAULT_RATE)
    return list(itertools.islice(readings(settings), HISTORY + LIVE))


@dataclass
class Loop:
    """What the scenario recorded, stage by stage."""

    runtime: RuntimeProcess
    timings: dict[str, float] = field(default_factory=dict)  #: seconds each stage took, for a failing test
    dataset: dict[str, Any] = field(default_factory=dict)
    trained: str = ""  #: ``model train``'s output
    version: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    deployment: dict[str, Any] = field(default_factory=dict)
    results: list[dict[str, Any]] = field(default_factory=list)  #: the result payloads stored in the cloud


def publish_sensor(cloud: CloudProcess, directory: Path) -> None:
    """``edgewise component publish`` of the sensor: the client script as its artifact, its IPC permissions."""
    artifacts = directory / "sensor-artifacts"
    artifacts.mkdir()
    (artifacts / "ml_loop_sensor.py").write_bytes((CLIENTS / "ml_loop_sensor.py").read_bytes())
    args = f"{THING} {SEED} {FAULT_RATE} {HISTORY} {LIVE}"
    recipe = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": SENSOR,
        "ComponentVersion": "1.0.0",
        "ComponentConfiguration": {
            "DefaultConfiguration": {
                "accessControl": {
                    "aws.greengrass.ipc.pubsub": {
                        f"{SENSOR}:pubsub:1": {
                            "operations": [
                                "aws.greengrass#PublishToTopic",
                                "aws.greengrass#SubscribeToTopic",
                            ],
                            "resources": [f"hub/{THING}/reading/*", f"ml/{THING}/anomaly"],
                        }
                    },
                    "aws.greengrass.ipc.mqttproxy": {
                        f"{SENSOR}:mqttproxy:1": {
                            "operations": ["aws.greengrass#PublishToIoTCore"],
                            "resources": [READINGS_TOPIC],
                        }
                    },
                }
            }
        },
        "Manifests": [
            {
                "Platform": {"os": "*"},
                "Artifacts": [{"Uri": f"s3://bucket/{SENSOR}/1.0.0/ml_loop_sensor.py"}],
                "Lifecycle": {"Run": f"{sys.executable} {{artifacts:path}}/ml_loop_sensor.py {args}"},
            }
        ],
    }
    recipe_file = directory / "sensor.json"
    recipe_file.write_text(json.dumps(recipe))
    published = run(
        cloud, "component", "publish", "--recipe", str(recipe_file), "--artifacts", str(artifacts)
    )
    assert published.exit_code == 0, published.stderr


def device_executions(cloud: CloudProcess, deployment_id: str) -> dict[str, dict[str, Any]]:
    """Each thing's latest execution of a deployment."""
    with cloud.api(cloud.admin_token) as api:
        answer = api.get(f"/deployments/{deployment_id}/devices", params={"limit": 1000})
    assert answer.status_code == 200, answer.text
    return {execution["thingName"]: execution for execution in answer.json()["data"]}


def succeeded(cloud: CloudProcess, deployment_id: str) -> dict[str, Any]:
    """The thing's execution of the deployment once it has ended; fails unless it succeeded."""

    def ended() -> dict[str, Any] | None:
        found = device_executions(cloud, deployment_id).get(THING)
        return found if found is not None and found["status"] not in ("QUEUED", "IN_PROGRESS") else None

    execution = wait_until(
        ended,
        timeout=_TIMEOUT,
        interval=_POLL,
        what=f"deployment {deployment_id} to end on {THING}",
    )
    assert execution["status"] == "SUCCEEDED", execution
    return execution


def stored(cloud: CloudProcess, topic: str) -> list[dict[str, Any]]:
    return stored_messages(cloud, THING, topic)


def live_results(cloud: CloudProcess) -> list[dict[str, Any]] | None:
    """The stored results about live readings (not the sensor's probes), once there is one per live reading."""
    results = [json.loads(message["payload"]) for message in stored(cloud, RESULTS_TOPIC)]
    live = [result for result in results if not result["topic"].endswith("/probe")]
    return live if len(live) >= LIVE else None


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    tmp = tmp_path_factory.mktemp("ml-loop")
    timings: dict[str, float] = {}
    started = time.monotonic()

    def stage(name: str) -> None:
        nonlocal started
        now = time.monotonic()
        timings[name] = round(now - started, 2)
        started = now

    with CloudProcess(tmp / "data") as cloud:
        cloud.wait_ready()
        config = enroll_device(cloud, THING, tmp / "identity")
        runtime = RuntimeProcess(tmp / "root", "--thing-name", THING, "--config", str(config)).start()
        loop = Loop(runtime, timings)
        try:
            stage("cloud and device")
            publish_sensor(cloud, tmp)
            created = run(cloud, "deployment", "create", "--target", THING, "-c", f"{SENSOR}=1.0.0", "--json")
            assert created.exit_code == 0, created.stderr
            succeeded(cloud, json.loads(created.stdout)["deploymentId"])
            wait_until(
                lambda: len(stored(cloud, READINGS_TOPIC)) >= HISTORY,
                timeout=_TIMEOUT,
                interval=_POLL,
                what=f"{HISTORY} readings stored",
            )
            stage("sensor deployed, history stored")

            loop.dataset = ok(
                cloud,
                *("dataset", "create", DATASET, "--thing", THING, "--topic", READINGS_TOPIC),
                *("--field", "temperature=temperature", "--field", "humidity=humidity"),
                *("--field", "vibration=vibration", "--label-field", "anomaly=anomaly"),
            )
            loop.dataset["described"] = ok(cloud, "dataset", "describe", DATASET)
            stage("dataset")

            trained = run(
                cloud,
                *("model", "train", "--name", MODEL, "--dataset", DATASET, "--task", "anomaly"),
                *("--time-budget", "2", "--seed", "0", "--follow"),
            )
            loop.trained = trained.stdout
            assert trained.exit_code == 0, trained.stdout + trained.stderr
            stage("training")

            version = re.search(rf"Model {MODEL} version (\d+)", trained.stdout)
            assert version is not None, trained.stdout
            moved = run(cloud, "model", "alias", MODEL, "champion", version.group(1))
            assert moved.exit_code == 0, moved.stderr
            loop.version = ok(cloud, "model", "describe", MODEL, "--version", version.group(1))
            loop.model = ok(cloud, "model", "describe", MODEL)

            deployed = run(
                cloud,
                *("model", "deploy", MODEL, "--alias", "champion", "--thing", THING),
                *("--input-topic", f"hub/{THING}/reading/+", "--output-topic", f"ml/{THING}/anomaly"),
                *("--iot-core-topic", RESULTS_TOPIC, "--follow"),
            )
            assert deployed.exit_code == 0, deployed.stderr
            deployment_id = re.search(r"deployment (\S+)", deployed.stdout)
            assert deployment_id is not None, deployed.stdout
            loop.deployment = succeeded(cloud, deployment_id.group(1))
            stage("deployment")

            loop.results = wait_until(
                lambda: live_results(cloud),
                timeout=_TIMEOUT,
                interval=_POLL,
                what=f"{LIVE} results stored",
            )
            stage("results")
            yield loop
        finally:
            runtime.stop()


def test_the_devices_readings_become_a_labelled_dataset(loop: Loop) -> None:
    history = simulated()[:HISTORY]
    assert loop.dataset["rows"] == HISTORY
    summary = {column["name"]: column for column in loop.dataset["described"]["summary"]["columns"]}
    assert list(summary) == ["thing", "timestamp", "temperature", "humidity", "vibration", "label"]
    faults = sum(reading.anomaly for reading in history)
    assert summary["label"]["mean"] == pytest.approx(faults / HISTORY)
    assert summary["vibration"]["max"] == pytest.approx(max(round(r.vibration, 4) for r in history))


def test_training_registers_a_version_that_the_champion_alias_names(loop: Loop) -> None:
    assert f"Model {MODEL} version 1" in loop.trained
    assert loop.model["aliases"] == {"champion": "1"}
    assert loop.version["task"] == "anomaly"
    assert loop.version["features"] == ["temperature", "humidity", "vibration"]
    assert loop.version["fidelity"]["passed"] is True
    assert loop.version["tags"]["edgewise.dataset"] == DATASET


def test_the_model_deployment_succeeds_on_the_device_and_keeps_the_sensor(loop: Loop) -> None:
    assert loop.deployment["statusDetails"]["detailed-deployment-status"] == "SUCCESSFUL"
    versions = {c["componentName"]: c["version"] for c in loop.runtime.call("ListComponents")["components"]}
    assert versions["edgewise.ml.Inference"] == "1.0.0"
    assert versions[f"edgewise.models.{MODEL}"] == "1.0.0"
    assert versions[SENSOR] == "1.0.0"
    assert loop.runtime.states()["edgewise.ml.Inference"] == "RUNNING"


def test_results_reach_the_cloud_and_flag_the_injected_faults(loop: Loop) -> None:
    by_sequence: dict[int, dict[str, Any]] = {}
    for result in loop.results:
        sequence = int(result["topic"].rsplit("/", 1)[-1])
        assert sequence not in by_sequence, f"two results for reading {sequence}"
        by_sequence[sequence] = result
    live = simulated()[HISTORY:]
    assert sorted(by_sequence) == [reading.sequence for reading in live]
    assert {(r["model"], r["version"], r["thing"]) for r in loop.results} == {(MODEL, "1", THING)}
    flagged = {sequence for sequence, result in by_sequence.items() if result["anomaly"]}
    faults = {reading.sequence for reading in live if reading.anomaly}
    assert len(faults) >= 20
    precision = len(flagged & faults) / max(1, len(flagged))
    recall = len(flagged & faults) / len(faults)
    assert precision >= 0.5, (precision, recall, loop.timings)
    assert recall >= 0.5, (precision, recall, loop.timings)
