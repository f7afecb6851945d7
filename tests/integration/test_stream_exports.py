"""Stream exports from a real runtime to the cloud through a real Mosquitto: a component appends with the real
``stream-manager`` SDK to a stream with a ``KinesisConfig`` export, the runtime is killed with kill -9 mid-export
and started again, and every acknowledged message is in the cloud exactly once, the export having resumed
right after its checkpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from stream_manager import (
    ExportDefinition,
    KinesisConfig,
    MessageStreamDefinition,
    Persistence,
    StrategyOnFull,
    StreamManagerClient,
)

from tests.integration.test_stream_manager_sdk import (
    STREAM_MANAGER,
    deploy,
    recorded,
    sdk_component,
    stream_manager_configuration,
)
from tests.runtime.streams.export.cloud import SmallCloud
from tests.support.device_config import write_device_config
from tests.support.mosquitto import Mosquitto
from tests.support.pki import CertificateAuthority
from tests.support.ports import free_port
from tests.support.runtime_process import running
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

THING = "exporting-device"
BATCH_SIZE = 10


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path / "pki")


@pytest.fixture
def broker(tmp_path: Path, ca: CertificateAuthority) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker", ca) as running_broker:
        yield running_broker


@pytest.fixture
def config_file(tmp_path: Path, ca: CertificateAuthority, broker: Mosquitto) -> Path:
    return write_device_config(tmp_path / "edgewise.yaml", thing=THING, ca=ca, port=broker.port)


def test_export_resumes_after_kill_9_and_every_acknowledged_message_arrives_once(
    tmp_path: Path, broker: Mosquitto, config_file: Path, recipes: Path, artifacts: Path
) -> None:
    port = free_port()
    record = tmp_path / "record.txt"
    count = 100
    sdk_component(recipes, artifacts, "test.Appender", "stream_appender.py", f"{record} {count}")
    root = tmp_path / "root"

    with broker.client("cloud") as client:
        cloud = SmallCloud(client)
        with running(root, "--config", str(config_file)) as runtime:
            deploy(
                runtime,
                recipes,
                artifacts,
                rootComponentVersionsToAdd={STREAM_MANAGER: "2.1.0"},
                componentToConfiguration=stream_manager_configuration(
                    port, STREAM_MANAGER_AUTHENTICATE_CLIENT="false"
                ),
            )
            # The stream the appender finds: its own definition, with an export to the cloud.
            sdk = StreamManagerClient(port=port, request_timeout=30)
            try:
                sdk.create_message_stream(
                    MessageStreamDefinition(
                        name="durable",
                        strategy_on_full=StrategyOnFull.RejectNewData,
                        persistence=Persistence.File,
                        flush_on_write=True,
                        export_definition=ExportDefinition(
                            kinesis=[
                                KinesisConfig(
                                    identifier="to-cloud", kinesis_stream_name="trucks", batch_size=BATCH_SIZE
                                )
                            ]
                        ),
                    )
                )
            finally:
                sdk.close()
            deploy(runtime, recipes, artifacts, rootComponentVersionsToAdd={"test.Appender": "1.0.0"})
            wait_until(lambda: len(cloud.stored()) >= 20, what="exports before the kill")
            runtime.kill9()

        first_runs = set(recorded(record))
        with running(root, "--config", str(config_file)):

            def acknowledged() -> list[tuple[int, str]] | None:
                runs = recorded(record)
                second = [run for run in runs if run not in first_runs and len(runs[run]) == count]
                return [line for lines in runs.values() for line in lines] if second else None

            appended = wait_until(acknowledged, what="the second run's appends")
            wanted = {(THING, "trucks", number): payload.encode() for number, payload in appended}

            def complete() -> dict[tuple[str, str, int], bytes] | None:
                stored = cloud.stored()
                return stored if wanted.items() <= stored.items() else None

            stored = wait_until(complete, timeout=60, what="every acknowledged message in the cloud")

    assert sorted(number for _, _, number in stored) == list(range(len(stored)))
    # Resumed right after the checkpoint: only the batch in flight at the kill (and its spooled copy) came again.
    assert cloud.duplicates() <= 2 * BATCH_SIZE
