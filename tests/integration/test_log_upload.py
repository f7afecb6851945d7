"""Logs to the cloud end to end: a real runtime with the built-in ``aws.greengrass.LogManager`` and a cloud link
to a real Mosquitto, where a test client plays the cloud (stores each entry by fileId and offset, answers
accepted). A component's lines arrive once and in order, and after a runtime restart nothing acknowledged is
sent again."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from edgewise.protocol import logs
from tests.support.device_config import write_device_config
from tests.support.mosquitto import Mosquitto
from tests.support.pki import CertificateAuthority
from tests.support.runtime_process import RuntimeProcess, running, write_recipe
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
THING = "edge-logs"
LOGGER = "test.Logger"
LOG_MANAGER = "aws.greengrass.LogManager"


class Cloud:
    """Receives log batches, keeps every entry it was sent (resends included), answers accepted."""

    def __init__(self, client: Any) -> None:
        self.entries: list[logs.LogEntry] = []
        self._lock = threading.Lock()
        self._paho: paho.Client = client.paho
        self._paho.on_message = self._on_message
        client.subscribe(logs.batch_topic(THING), qos=1)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        batch = logs.parse_batch(bytes(message.payload))
        with self._lock:
            self.entries.extend(batch.entries)
        reply = logs.BatchAccepted(batch.client_token, len(batch.entries), 0)
        client.publish(logs.reply_topic(THING, "accepted"), logs.build_accepted(reply), qos=1)

    def lines(self) -> list[str]:
        with self._lock:
            return [entry.message.split(") ", 1)[1] for entry in self.entries if "(Run) " in entry.message]

    def keys(self) -> list[tuple[str, int]]:
        with self._lock:
            return [(entry.file_id, entry.offset) for entry in self.entries]


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path / "pki")


@pytest.fixture
def broker(tmp_path: Path, ca: CertificateAuthority) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker", ca) as running_broker:
        yield running_broker


def _uploaded_all(runtime: RuntimeProcess) -> bool:
    """The checkpoint covers the whole of the component's log as it is now."""
    checkpoint = runtime.paths.component_work(LOG_MANAGER) / "checkpoints.json"
    log = runtime.paths.component_log(LOGGER)
    if not checkpoint.exists() or not log.exists():
        return False
    return log.stat().st_size in json.loads(checkpoint.read_text()).values()


def test_component_lines_arrive_once_in_order_and_survive_a_restart(
    tmp_path: Path, ca: CertificateAuthority, broker: Mosquitto, recipes: Path
) -> None:
    config = write_device_config(tmp_path / "edgewise.yaml", thing=THING, ca=ca, port=broker.port)
    write_recipe(
        recipes,
        LOGGER,
        "1.0.0",
        """
        Manifests:
          - Lifecycle:
              Run: "printf 'line-1\\nline-2\\nline-3\\n'"
        """,
    )
    configuration = {
        "logsUploaderConfiguration": {
            "componentLogsConfigurationMap": {LOGGER: {"minimumLogLevel": "INFO"}},
        },
        "periodicUploadIntervalSec": "0.2",
    }
    root = tmp_path / "root"
    with broker.client("cloud") as client:
        cloud = Cloud(client)
        with running(root, "--config", str(config)) as runtime:
            deployment = runtime.deploy(
                recipes,
                rootComponentVersionsToAdd={LOGGER: "1.0.0", LOG_MANAGER: "2.3.0"},
                componentToConfiguration={LOG_MANAGER: {"MERGE": configuration}},
            )
            assert runtime.wait_deployment(deployment)["status"] == "SUCCEEDED"
            wait_until(lambda: cloud.lines() == ["line-1", "line-2", "line-3"], what="the first run's lines")
            wait_until(lambda: _uploaded_all(runtime), what="the checkpoint to cover the log")
        # The component runs again after the restart: its new lines come, the acknowledged ones do not.
        with running(root, "--config", str(config)):
            wait_until(lambda: len(cloud.lines()) == 6, what="the second run's lines")
        assert cloud.lines() == ["line-1", "line-2", "line-3"] * 2
        keys = cloud.keys()
        assert len(keys) == len(set(keys))
