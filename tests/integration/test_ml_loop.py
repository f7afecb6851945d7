"""The ML loop end to end with nothing faked: device telemetry → dataset → training → registry → signed package →
fleet deployment → inference on the device → results back in the cloud.

A real ``edgewise cloud up`` (its Mosquitto, SQLite, MLflow registry, training worker) and one runtime enrolled
to it with ``edgewise device bootstrap``. A sensor component (``clients/ml_loop_sensor.py``, awsiotsdk v2 IPC),
rolled out with ``edgewise deployment create``, sends simulated hub readings with labelled faults
(``edgewise.components.simulation``) to IoT Core on ``dt/<thing>/reading``, which the cloud stores as telemetry.
Then the CLI, as an operator runs it: ``dataset create`` from that telemetry (one row per reading, the
``anomaly`` field as the label), ``model train --task anomaly`` with a 2 s budget, ``model alias ... champion``,
``model deploy --alias champion --thing`` with every result captured (``--capture-sample-rate 1``). The sensor
then sends new readings on local topics that carry their sequence number; the inference component's results come
back through IoT Core on ``dt/<thing>/anomaly`` into the cloud's telemetry, where the test reads them and scores
them against the labels the simulation injected, and its capture records come back through the stream manager's
export (stream ``EdgewiseInferenceCapture``), where ``model drift-check`` compares them with the training
reference: no drift. Two versions of a notebook's model (scikit-learn classifiers logged with MLflow's client
against the cloud's tracking store) are deployed to the same device with ``model deploy``, version 2 serving and
version 1 as its challenger, only their disagreements captured; once it answers, the sensor sends readings 8
degrees warmer to both models: the notebook model's labels come back as the notebook predicts them, the
disagreements come back as capture records, and a second ``model drift-check`` reports drift.

The scenario runs once (module scope); each test checks one stage of what it recorded.

The simulated hub's daily cycle is made 80 readings long (``INTERVAL``), so that the training reference (the
latest fifth of the history, 80 readings) and the live readings cover whole cycles and look alike, as a day's
readings do to the previous day's.

Stuck-sensor faults repeat the last normal reading exactly, so a model that sees one reading at a time cannot
tell them from normal ones; the seed gives a share of them (about a quarter of the faults in the live readings)
that the loose bounds (precision and recall at least 0.5) leave room for.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgewise.aws_components import BUILTIN_VERSIONS
from edgewise.cloud.models.registry import MLFLOW_DATABASE_FILE, MLFLOW_DIR
from edgewise.components.simulation import Reading, SimulationSettings, readings
from tests.cloud.test_cli_registry import ok, run
from tests.support.cloud_process import CloudProcess
from tests.support.ports import free_port
from tests.support.runtime_process import CLIENTS, RuntimeProcess
from tests.support.telemetry_cloud import enroll_device, stored_messages
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

THING = "ml-hub"
MODEL = "hub"
DATASET = "hub-history"
SENSOR = "test.HubSensor"
NOTEBOOK_MODEL = "notebook"
SEED, FAULT_RATE = 7, 0.06
#: Seconds between simulated readings: the simulation's 600 s cycle is 80 readings long.
INTERVAL = 7.5
HISTORY, LIVE = 400, 250
#: Fault-free readings sent last, their temperature raised by SHIFT degrees.
SHIFTED, SHIFT = 250, 8.0
READINGS_TOPIC = f"dt/{THING}/reading"
RESULTS_TOPIC = f"dt/{THING}/anomaly"
NOTEBOOK_TOPIC = f"dt/{THING}/notebook"
STREAM_MANAGER = "aws.greengrass.StreamManager"
CAPTURE_STREAM = "EdgewiseInferenceCapture"
_TIMEOUT = 60.0
_POLL = 0.25


def simulated() -> list[Reading]:
    """The readings the sensor sends, history then live, as the seeded simulation makes them."""
    settings = SimulationSettings(seed=SEED, fault_rate=FAULT_RATE, interval_s=INTERVAL)
    return list(itertools.islice(readings(settings), HISTORY + LIVE))


def shifted_readings() -> list[Reading]:
    """The shifted readings the sensor sends last (before their temperature is raised)."""
    settings = SimulationSettings(seed=SEED, fault_rate=FAULT_RATE, interval_s=INTERVAL)
    later = itertools.islice(readings(settings), HISTORY + LIVE, None)
    return list(itertools.islice((reading for reading in later if not reading.anomaly), SHIFTED))


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
    captures: list[dict[str, Any]] = field(default_factory=list)  #: the capture records stored in the cloud
    steady: dict[str, Any] = field(default_factory=dict)  #: the drift check over the live readings' captures
    drifted: dict[str, Any] = field(default_factory=dict)  #: the drift check after the shifted readings
    #: The notebook's scikit-learn models, versions 1 and 2.
    notebooks: list[Any] = field(default_factory=list)
    notebook_deployment: dict[str, Any] = field(default_factory=dict)
    notebook_results: list[dict[str, Any]] = field(default_factory=list)


def publish_sensor(cloud: CloudProcess, directory: Path) -> None:
    """``edgewise component publish`` of the sensor: the client script as its artifact, its IPC permissions."""
    artifacts = directory / "sensor-artifacts"
    artifacts.mkdir()
    (artifacts / "ml_loop_sensor.py").write_bytes((CLIENTS / "ml_loop_sensor.py").read_bytes())
    args = f"{THING} {SEED} {FAULT_RATE} {INTERVAL} {HISTORY} {LIVE} {SHIFTED} {SHIFT}"
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
                            "resources": [
                                f"hub/{THING}/reading/*",
                                f"nb/{THING}/*",
                                f"ml/{THING}/anomaly",
                                f"ml/{THING}/notebook",
                            ],
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


def numbered(records: list[dict[str, Any]], key: str, prefix: str = "") -> list[dict[str, Any]]:
    """The records whose input topic (``key``) ends with ``prefix`` and a sequence number (not the probes)."""
    return [
        record
        for record in records
        if (last := record[key].rsplit("/", 1)[-1]).startswith(prefix) and last.removeprefix(prefix).isdigit()
    ]


def live_results(cloud: CloudProcess) -> list[dict[str, Any]] | None:
    """The stored results about live readings (not the sensor's probes), once there is one per live reading."""
    results = [json.loads(message["payload"]) for message in stored(cloud, RESULTS_TOPIC)]
    live = numbered(results, "topic")
    return live if len(live) >= LIVE else None


def notebook_results(cloud: CloudProcess) -> list[dict[str, Any]] | None:
    """The notebook model's stored results about the shifted readings, once there is one for each."""
    results = numbered([json.loads(message["payload"]) for message in stored(cloud, NOTEBOOK_TOPIC)], "topic")
    return results if len(results) >= SHIFTED else None


def captured(
    cloud: CloudProcess, prefix: str, count: int, *, also: str | None = None
) -> list[dict[str, Any]] | None:
    """Every capture record stored in the cloud, once ``count`` of them are about readings named ``prefix<N>``
    (and, with ``also``, one is about model ``also``)."""
    records = [json.loads(message["payload"]) for message in stored(cloud, CAPTURE_STREAM)]
    if also is not None and not any(record["model"] == also for record in records):
        return None
    return records if len(numbered(records, "source", prefix)) >= count else None


def import_notebook_libraries() -> None:
    """MLflow and scikit-learn, imported while the cloud trains (they take seconds to import)."""
    import mlflow.sklearn  # noqa: F401
    import pandas  # noqa: F401
    import sklearn.linear_model  # noqa: F401


def notebook_models(tracking_uri: str, artifacts: Path) -> list[Any]:
    """What a notebook does: fit classifiers (humid or not: above 44, then 46) and log them with MLflow's client,
    registered as versions 1 and 2."""
    import mlflow
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    history = simulated()[:HISTORY]
    frame = pd.DataFrame(
        {"temperature": [r.temperature for r in history], "humidity": [r.humidity for r in history]}
    )
    models = [
        LogisticRegression().fit(frame, (frame["humidity"] > threshold).astype(np.int64))
        for threshold in (44.0, 46.0)
    ]
    # The notebook's environment names the store: mlflow.set_tracking_uri would change it for every later test
    # in this process.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
        experiment = mlflow.create_experiment("notebooks", artifact_location=artifacts.as_uri())
        with warnings.catch_warnings():
            # MLflow's own warnings while it infers the signature (its code, not Edgewise's).
            warnings.filterwarnings("ignore", message="Operation with range is deprecated", module="mlflow")
            warnings.filterwarnings(
                "ignore", message="Hint: Inferred schema contains integer", category=UserWarning
            )
            warnings.filterwarnings(
                "ignore", message=".*Any type hint is inferred as AnyType", category=UserWarning
            )
            for model in models:
                with mlflow.start_run(experiment_id=experiment):
                    mlflow.sklearn.log_model(
                        model, name="model", input_example=frame[:5], registered_model_name=NOTEBOOK_MODEL,
                        serialization_format="cloudpickle", pip_requirements=[],
                    )  # fmt: skip
    return models


def deployed_id(output: str) -> str:
    found = re.search(r"deployment (\S+)", output)
    assert found is not None, output
    return found.group(1)


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    tmp = tmp_path_factory.mktemp("ml-loop")
    timings: dict[str, float] = {}
    started = time.monotonic()
    importing = threading.Thread(target=import_notebook_libraries, daemon=True)
    importing.start()

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
            # The stream manager on a port of its own (the model deployment keeps what the target runs).
            created = run(
                cloud,
                *("deployment", "create", "--target", THING, "-c", f"{SENSOR}=1.0.0", "--json"),
                *("-c", f"{STREAM_MANAGER}={BUILTIN_VERSIONS[STREAM_MANAGER]}", "--merge"),
                f"{STREAM_MANAGER}=" + json.dumps({"STREAM_MANAGER_SERVER_PORT": str(free_port())}),
            )
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
                *("--iot-core-topic", RESULTS_TOPIC, "--capture-sample-rate", "1", "--follow"),
            )
            assert deployed.exit_code == 0, deployed.stderr
            loop.deployment = succeeded(cloud, deployed_id(deployed.stdout))
            stage("deployment")

            loop.results = wait_until(
                lambda: live_results(cloud),
                timeout=_TIMEOUT,
                interval=_POLL,
                what=f"{LIVE} results stored",
            )
            stage("results")

            wait_until(
                lambda: captured(cloud, "", LIVE),
                timeout=_TIMEOUT,
                interval=_POLL,
                what=f"{LIVE} capture records stored",
            )
            ok(cloud, "model", "drift-monitor", MODEL, "--window", "10m", "--min-rows", "100")
            loop.steady = ok(cloud, "model", "drift-check", MODEL)
            stage("captures, first drift check")

            importing.join()
            tracking = f"sqlite:///{cloud.data_dir / MLFLOW_DIR / MLFLOW_DATABASE_FILE}"
            loop.notebooks = notebook_models(tracking, tmp / "notebook-artifacts")
            stage("notebook model logged")
            deployed = run(
                cloud,
                *("model", "deploy", NOTEBOOK_MODEL, "--version", "2", "--thing", THING),
                *("--input-topic", f"nb/{THING}/+", "--output-topic", f"ml/{THING}/notebook"),
                *("--iot-core-topic", NOTEBOOK_TOPIC, "--follow"),
                # Version 1 in shadow; only the results it disagrees with are captured.
                *("--challenger-version", "1", "--capture-sample-rate", "0"),
            )
            assert deployed.exit_code == 0, deployed.stderr
            loop.notebook_deployment = succeeded(cloud, deployed_id(deployed.stdout))
            stage("notebook model deployed")

            loop.notebook_results = wait_until(
                lambda: notebook_results(cloud),
                timeout=_TIMEOUT,
                interval=_POLL,
                what=f"{SHIFTED} notebook results stored",
            )
            loop.captures = wait_until(
                lambda: captured(cloud, "shifted-", SHIFTED, also=NOTEBOOK_MODEL),
                timeout=_TIMEOUT,
                interval=_POLL,
                what=f"{SHIFTED} capture records of shifted readings stored",
            )
            loop.drifted = ok(cloud, "model", "drift-check", MODEL)
            stage("shifted readings, second drift check")
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


def test_every_result_is_captured_and_reaches_the_clouds_telemetry_through_the_stream_export(
    loop: Loop,
) -> None:
    live = numbered([record for record in loop.captures if record["model"] == MODEL], "source")
    assert sorted(int(record["source"].rsplit("/", 1)[-1]) for record in live) == [
        reading.sequence for reading in simulated()[HISTORY:]
    ]
    by_sequence = {int(result["topic"].rsplit("/", 1)[-1]): result for result in loop.results}
    for record in live:
        assert (record["format"], record["model"], record["version"], record["reason"]) == (
            "edgewise.capture/1",
            MODEL,
            "1",
            "sample",
        )
        result = by_sequence[int(record["source"].rsplit("/", 1)[-1])]
        assert record["output"]["anomaly"] == result["anomaly"]
        assert record["output"]["score"] == pytest.approx(result["score"])
    reading = simulated()[HISTORY]
    first = next(r for r in live if r["source"].endswith(f"/{reading.sequence}"))
    assert first["features"] == pytest.approx(
        {"temperature": round(reading.temperature, 3), "humidity": round(reading.humidity, 3),
         "vibration": round(reading.vibration, 4)}
    )  # fmt: skip


def test_the_capture_stream_manager_is_the_one_the_target_ran_already(loop: Loop) -> None:
    components = {c["componentName"]: c for c in loop.runtime.call("ListComponents")["components"]}
    assert components[STREAM_MANAGER]["configuration"]["STREAM_MANAGER_SERVER_PORT"] != "8088"
    assert loop.runtime.states()[STREAM_MANAGER] == "RUNNING"


def test_a_drift_check_finds_no_drift_in_readings_like_the_training_data(loop: Loop) -> None:
    assert loop.steady["rows"] >= LIVE, loop.steady
    assert loop.steady["note"] is None, loop.steady
    assert loop.steady["drifted"] is False, loop.steady["report"]
    compared = {row["feature"] for row in loop.steady["report"]["features"]}
    assert compared == {"temperature", "humidity", "vibration", "__score__"}


def test_a_drift_check_after_the_shifted_readings_reports_drift(loop: Loop) -> None:
    assert loop.drifted["rows"] >= LIVE + SHIFTED, loop.drifted
    assert loop.drifted["drifted"] is True, loop.drifted["report"]
    assert "temperature" in loop.drifted["driftedFeatures"]
    assert "humidity" not in loop.drifted["driftedFeatures"]


def notebook_rows(sent: list[Reading]) -> Any:
    """The notebook models' inputs for the shifted readings, as ONNX sees them (float32)."""
    import pandas as pd

    rows = [[round(round(r.temperature, 3) + SHIFT, 3), round(r.humidity, 3)] for r in sent]
    values = np.array(rows, dtype=np.float32).astype(np.float64)
    return pd.DataFrame(values, columns=["temperature", "humidity"])


def test_a_model_logged_from_a_notebook_serves_on_the_device_with_the_notebooks_labels(loop: Loop) -> None:
    assert loop.notebook_deployment["statusDetails"]["detailed-deployment-status"] == "SUCCESSFUL"
    versions = {c["componentName"]: c["version"] for c in loop.runtime.call("ListComponents")["components"]}
    assert versions[f"edgewise.models.{NOTEBOOK_MODEL}"] == "2.0.0"
    assert versions[f"edgewise.models.{NOTEBOOK_MODEL}.challenger"] == "1.0.0"
    assert versions[f"edgewise.models.{MODEL}"] == "1.0.0"
    by_sequence = {int(result["topic"].rsplit("/", 1)[-1]): result for result in loop.notebook_results}
    sent = shifted_readings()
    assert sorted(by_sequence) == [reading.sequence for reading in sent]
    expected = loop.notebooks[1].predict(notebook_rows(sent)).tolist()
    labels = [by_sequence[reading.sequence]["label"] for reading in sent]
    assert labels == expected
    assert set(labels) == {0, 1}
    assert {(r["model"], r["version"]) for r in loop.notebook_results} == {(NOTEBOOK_MODEL, "2")}


def test_the_challenger_runs_in_shadow_and_its_disagreements_are_captured(loop: Loop) -> None:
    sent = shifted_readings()
    champion = dict(
        zip((r.sequence for r in sent), loop.notebooks[1].predict(notebook_rows(sent)), strict=True)
    )
    challenger = dict(
        zip((r.sequence for r in sent), loop.notebooks[0].predict(notebook_rows(sent)), strict=True)
    )
    disagreements = {sequence for sequence in champion if champion[sequence] != challenger[sequence]}
    assert disagreements
    records = [record for record in loop.captures if record["model"] == NOTEBOOK_MODEL]
    assert records
    for record in records:
        sequence = int(record["source"].rsplit("/", 1)[-1])
        # Only disagreements are captured (sample rate 0); a row the challenger missed is not compared.
        assert sequence in disagreements
        assert (record["reason"], record["version"]) == ("disagreement", "2")
        assert record["output"]["label"] == champion[sequence]
        assert record["challenger"]["agrees"] is False
        assert record["challenger"]["output"]["label"] == challenger[sequence]
