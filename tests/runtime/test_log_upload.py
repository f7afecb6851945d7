"""Logs to the cloud, device side: the log manager's configuration in Greengrass's shapes, the tailer and its
checkpoint on real files (resume, rotation, truncation, levels, clean-up), and the upload loop against a fake
channel."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from tests.support.waiting import eventually

from edgewise.protocol import logs
from edgewise.protocol.logs import LogEntry
from edgewise.runtime.lifecycle.logs import format_line
from edgewise.runtime.log_component import (
    FileSettings,
    LogConfigurationError,
    LogSettings,
    parse_log_settings,
)
from edgewise.runtime.log_upload import (
    Checkpoint,
    LogDeliveryError,
    LogSource,
    LogUploader,
    UploadRule,
    clean_up,
    collect,
    read_line,
)

# -- configuration --------------------------------------------------------------------------------------

GREENGRASS_EXAMPLE = {
    "logsUploaderConfiguration": {
        "systemLogsConfiguration": {
            "uploadToCloudWatch": "true",
            "minimumLogLevel": "INFO",
            "diskSpaceLimit": "10",
            "diskSpaceLimitUnit": "MB",
            "deleteLogFileAfterCloudUpload": "false",
        },
        "componentLogsConfigurationMap": {
            "com.example.HelloWorld": {
                "minimumLogLevel": "INFO",
                "diskSpaceLimit": "20",
                "diskSpaceLimitUnit": "KB",
                "deleteLogFileAfterCloudUpload": "true",
            }
        },
    },
    "periodicUploadIntervalSec": "300",
    "deprecatedVersionSupport": "false",
}


def test_the_greengrass_example_configuration_parses() -> None:
    assert parse_log_settings(GREENGRASS_EXAMPLE) == LogSettings(
        system=FileSettings("INFO", 10 * 1024**2, False),
        components=(("com.example.HelloWorld", FileSettings("INFO", 20 * 1024, True)),),
        interval=300.0,
    )


def test_the_older_list_form_and_defaults_parse() -> None:
    settings = parse_log_settings(
        {
            "logsUploaderConfiguration": {
                "componentLogsConfiguration": [
                    {"componentName": "com.example.A", "minimumLogLevel": "warn", "diskSpaceLimit": 1}
                ],
            },
            "periodicUploadIntervalSec": 0.5,
        }
    )
    assert settings == LogSettings(None, (("com.example.A", FileSettings("WARN", 1024, False)),), 0.5)
    assert parse_log_settings(None) == LogSettings()
    off = {"logsUploaderConfiguration": {"systemLogsConfiguration": {"uploadToCloudWatch": False}}}
    assert parse_log_settings(off).system is None


@pytest.mark.parametrize(
    ("configuration", "key"),
    [
        ([], ""),
        ({"other": 1}, "other"),
        ({"logsUploaderConfiguration": 3}, "logsUploaderConfiguration"),
        ({"logsUploaderConfiguration": {"x": {}}}, "logsUploaderConfiguration.x"),
        (
            {"logsUploaderConfiguration": {"systemLogsConfiguration": {"uploadToCloudWatch": "yes"}}},
            "logsUploaderConfiguration.systemLogsConfiguration.uploadToCloudWatch",
        ),
        (
            {
                "logsUploaderConfiguration": {
                    "systemLogsConfiguration": {"uploadToCloudWatch": True, "minimumLogLevel": "LOUD"}
                }
            },
            "logsUploaderConfiguration.systemLogsConfiguration.minimumLogLevel",
        ),
        (
            {"logsUploaderConfiguration": {"componentLogsConfigurationMap": {"a": {"diskSpaceLimit": "-1"}}}},
            "logsUploaderConfiguration.componentLogsConfigurationMap.a.diskSpaceLimit",
        ),
        (
            {
                "logsUploaderConfiguration": {
                    "componentLogsConfigurationMap": {"a": {"diskSpaceLimitUnit": "TB"}}
                }
            },
            "logsUploaderConfiguration.componentLogsConfigurationMap.a.diskSpaceLimitUnit",
        ),
        (
            {"logsUploaderConfiguration": {"componentLogsConfigurationMap": {"a b": {}}}},
            "logsUploaderConfiguration.componentLogsConfigurationMap.a b",
        ),
        (
            {"logsUploaderConfiguration": {"componentLogsConfigurationMap": {"a": {"logFileRegex": "x"}}}},
            "logsUploaderConfiguration.componentLogsConfigurationMap.a.logFileRegex",
        ),
        (
            {"logsUploaderConfiguration": {"componentLogsConfiguration": [{"minimumLogLevel": "INFO"}]}},
            "logsUploaderConfiguration.componentLogsConfiguration[0].componentName",
        ),
        ({"periodicUploadIntervalSec": "soon"}, "periodicUploadIntervalSec"),
    ],
)
def test_a_bad_configuration_is_refused_naming_its_key(configuration: Any, key: str) -> None:
    with pytest.raises(LogConfigurationError) as caught:
        parse_log_settings(configuration)
    assert caught.value.key == key
    assert key in str(caught.value)


# -- tailer and checkpoint ------------------------------------------------------------------------------


def write(path: Path, *lines: str, level: str = "INFO") -> None:
    with path.open("a", encoding="utf-8") as file:
        for line in lines:
            file.write(format_line("Run", level, line))  # type: ignore[arg-type]


def messages(entries: list[LogEntry]) -> list[str]:
    return [entry.message.split(") ", 1)[1] for entry in entries]


def test_lines_give_their_timestamp_and_level() -> None:
    assert read_line(b"2026-12-07T10:12:37.031Z [WARN] (Run) x\n") == (1796638357031, "WARN")
    stamp, level = read_line(b"2026-12-07 10:12:37,031 WARNING edgewise.runtime: x\n")
    assert level == "WARN"
    assert stamp is not None
    assert stamp % 1000 == 31
    assert read_line(b"Traceback (most recent call last):\n") == (None, None)


def test_collect_resumes_from_the_checkpoint_after_a_restart(tmp_path: Path) -> None:
    log = tmp_path / "com.example.A.log"
    write(log, "one", "two")
    source = LogSource("com.example.A", log)
    checkpoint = Checkpoint(tmp_path / "work" / "checkpoints.json")
    batch = collect([source], checkpoint)
    assert messages(batch.entries) == ["one", "two"]
    assert [entry.offset for entry in batch.entries] == [0, log.read_bytes().index(b"\n") + 1]
    assert batch.entries[0].level == "INFO"
    assert batch.entries[0].component == "com.example.A"
    checkpoint.save(batch.offsets)
    write(log, "three")
    with log.open("a") as file:
        file.write("partial, no newline yet")
    reopened = Checkpoint(checkpoint.path)
    assert messages(collect([source], reopened).entries) == ["three"]


def test_rotated_files_are_read_oldest_first_and_keep_their_checkpoint(tmp_path: Path) -> None:
    log = tmp_path / "com.example.A.log"
    source = LogSource("com.example.A", log)
    checkpoint = Checkpoint(tmp_path / "checkpoints.json")
    write(log, "a1", "a2")
    checkpoint.save(collect([source], checkpoint).offsets)
    write(log, "a3")
    log.rename(tmp_path / "com.example.A.log.1")
    write(log, "b1")
    batch = collect([source], checkpoint)
    assert messages(batch.entries) == ["a3", "b1"]
    assert [entry.file for entry in batch.entries] == ["com.example.A.log.1", "com.example.A.log"]


def test_a_truncated_file_is_read_again_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "com.example.A.log"
    source = LogSource("com.example.A", log)
    checkpoint = Checkpoint(tmp_path / "checkpoints.json")
    write(log, "first line of the file", "more", "and more")
    checkpoint.save(collect([source], checkpoint).offsets)
    # The same first line after truncation: the same fileId, but shorter than its checkpoint.
    first = log.read_bytes().split(b"\n", 1)[0] + b"\n"
    log.write_bytes(first)
    assert messages(collect([source], checkpoint).entries) == ["first line of the file"]


def test_lines_below_the_minimum_level_are_skipped_and_continuations_follow_their_line(
    tmp_path: Path,
) -> None:
    log = tmp_path / "edgewise.log"
    log.write_text(
        "2026-12-07 10:00:00,000 INFO edgewise.x: started\n"
        "2026-12-07 10:00:01,000 ERROR edgewise.x: failed\n"
        "Traceback (most recent call last):\n"
        "2026-12-07 10:00:02,000 DEBUG edgewise.x: detail\n"
        "  detail continued\n"
        "2026-12-07 10:00:03,000 WARNING edgewise.x: careful\n"
    )
    batch = collect([LogSource(logs.SYSTEM, log, "WARN")], Checkpoint(tmp_path / "c.json"))
    assert [(entry.level, entry.message) for entry in batch.entries] == [
        ("ERROR", "2026-12-07 10:00:01,000 ERROR edgewise.x: failed"),
        (None, "Traceback (most recent call last):"),
        ("WARN", "2026-12-07 10:00:03,000 WARNING edgewise.x: careful"),
    ]
    assert all(entry.component == "System" for entry in batch.entries)
    assert set(batch.offsets.values()) == {log.stat().st_size}


def test_a_batch_stops_at_the_size_limit_and_a_long_line_is_cut(tmp_path: Path) -> None:
    log = tmp_path / "com.example.A.log"
    write(log, "x" * 40_000, *(f"line {n} " + "y" * 1000 for n in range(200)))
    checkpoint = Checkpoint(tmp_path / "c.json")
    batch = collect([LogSource("com.example.A", log)], checkpoint)
    assert batch.entries[0].message.endswith(logs.CUT_MARK)
    assert len(logs.build_batch("t" * 64, batch.entries)) <= logs.MAX_BATCH_BYTES
    assert len(batch.entries) < 201
    checkpoint.save(batch.offsets)
    rest = collect([LogSource("com.example.A", log)], checkpoint)
    assert rest.entries[0].offset == batch.offsets[rest.entries[0].file_id]


def test_clean_up_deletes_uploaded_rotated_files_only(tmp_path: Path) -> None:
    log = tmp_path / "com.example.A.log"
    source = LogSource("com.example.A", log)
    checkpoint = Checkpoint(tmp_path / "c.json")
    write(log, "old")
    log.rename(tmp_path / "com.example.A.log.2")
    write(log, "older")
    log.rename(tmp_path / "com.example.A.log.1")
    write(log, "live")
    assert clean_up(source, checkpoint, delete_uploaded=True, disk_space_limit=None) == []
    checkpoint.save(collect([source], checkpoint).offsets)
    # Over the limit: the oldest uploaded rotated file goes first, until the rest fit.
    total = sum(path.stat().st_size for path in source.files())
    assert clean_up(source, checkpoint, delete_uploaded=False, disk_space_limit=total - 1) == [
        tmp_path / "com.example.A.log.2"
    ]
    assert clean_up(source, checkpoint, delete_uploaded=True, disk_space_limit=None) == [
        tmp_path / "com.example.A.log.1"
    ]
    assert source.files() == [log]
    assert clean_up(source, checkpoint, delete_uploaded=True, disk_space_limit=1) == []


# -- the upload loop ------------------------------------------------------------------------------------


class FakeChannel:
    """Plays the cloud: stores entries by (fileId, offset), answers each batch as scripted."""

    def __init__(self, answers: list[str] | None = None) -> None:
        self.stored: dict[tuple[str, int], str] = {}
        self.batches: list[list[LogEntry]] = []
        self.answers = answers or []

    async def send(
        self, client_token: str, entries: list[LogEntry]
    ) -> logs.BatchAccepted | logs.BatchRejection:
        self.batches.append(entries)
        answer = self.answers.pop(0) if self.answers else "accepted"
        if answer == "offline":
            raise LogDeliveryError("offline")
        if answer != "accepted":
            return logs.BatchRejection(client_token, answer, "no")  # type: ignore[arg-type]
        for entry in entries:
            self.stored.setdefault((entry.file_id, entry.offset), entry.message)
        return logs.BatchAccepted(client_token, len(entries), 0)


async def test_the_uploader_sends_until_done_and_resends_what_was_not_accepted(tmp_path: Path) -> None:
    log = tmp_path / "com.example.A.log"
    write(log, "one", "two")
    rule = UploadRule(LogSource("com.example.A", log))
    channel = FakeChannel(["offline", "Throttled"])
    uploader = LogUploader([rule], Checkpoint(tmp_path / "c.json"), channel, interval=60)
    for _ in range(2):
        with pytest.raises(LogDeliveryError):
            await uploader.upload_once()
    assert await uploader.upload_once()
    assert not await uploader.upload_once()
    assert len(channel.batches) == 3
    assert [message.rsplit(" ", 1)[1] for message in channel.stored.values()] == ["one", "two"]
    saved = json.loads((tmp_path / "c.json").read_text())
    assert list(saved.values()) == [log.stat().st_size]
    # A fresh uploader (a restart) with the same checkpoint sends only new lines.
    write(log, "three")
    again = LogUploader([rule], Checkpoint(tmp_path / "c.json"), channel, interval=60)
    assert await again.upload_once()
    assert [len(batch) for batch in channel.batches] == [2, 2, 2, 1]


async def test_an_invalid_batch_is_skipped_not_resent_forever(tmp_path: Path) -> None:
    log = tmp_path / "com.example.A.log"
    write(log, "one")
    channel = FakeChannel(["InvalidPayload"])
    uploader = LogUploader(
        [UploadRule(LogSource("com.example.A", log))], Checkpoint(tmp_path / "c.json"), channel, interval=60
    )
    assert await uploader.upload_once()
    assert not await uploader.upload_once()
    assert channel.stored == {}


async def test_run_uploads_on_wake_and_retries_after_a_failure(tmp_path: Path) -> None:
    log = tmp_path / "com.example.A.log"
    write(log, "one")
    channel = FakeChannel(["offline"])
    uploader = LogUploader(
        [UploadRule(LogSource("com.example.A", log))],
        Checkpoint(tmp_path / "c.json"),
        channel,
        interval=3600,
        retry_delay=0.05,
    )
    task = asyncio.create_task(uploader.run())
    try:
        await eventually(lambda: len(channel.stored) == 1)
        write(log, "two")
        uploader.wake()
        await eventually(lambda: len(channel.stored) == 2)
    finally:
        task.cancel()


def test_a_deployment_with_a_bad_log_manager_configuration_is_refused_naming_the_key() -> None:
    from edgewise.aws_components import BUILTIN_VERSIONS
    from edgewise.protocol.deployment import ConfigurationUpdate
    from edgewise.runtime.deployment.document import DeploymentDocument
    from edgewise.runtime.deployment.errors import DeploymentError
    from edgewise.runtime.deployment.plan import plan_services
    from edgewise.runtime.deployment.resolution import resolve

    roots = {"aws.greengrass.LogManager": "2.3.0"}
    resolution = resolve(roots, {}, builtins=BUILTIN_VERSIONS)
    platform = {"os": "linux", "architecture": "amd64"}

    def plan(merge: dict[str, Any]) -> dict[str, Any]:
        document = DeploymentDocument(
            "d-1",
            components_to_add=roots,
            configuration={"aws.greengrass.LogManager": ConfigurationUpdate(merge=merge)},
        )
        return plan_services({}, resolution, document, roots=roots, platform=platform)

    planned = plan(GREENGRASS_EXAMPLE)
    assert planned["aws.greengrass.LogManager"]["configuration"]["periodicUploadIntervalSec"] == "300"
    with pytest.raises(DeploymentError) as caught:
        plan({"periodicUploadIntervalSec": "-5"})
    assert "periodicUploadIntervalSec" in str(caught.value)
    assert caught.value.error_types == ("COMPONENT_CONFIGURATION_REJECTED",)


async def test_without_a_cloud_link_the_component_logs_one_error_and_idles(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import time

    from edgewise.runtime.config import ConfigStore
    from edgewise.runtime.log_component import LOG_MANAGER, LogComponent
    from edgewise.runtime.paths import RootPaths

    store = ConfigStore.open(tmp_path / "config")
    component = LogComponent(store, RootPaths.at(tmp_path / "root"))
    try:
        await component.start()
        for interval in ("300", "60"):
            node = {"version": "2.12.0", "configuration": {"periodicUploadIntervalSec": interval}}
            store.set(("services", LOG_MANAGER), node, timestamp=time.time_ns() // 1000)
            await eventually(lambda: any("no cloud connection" in r.message for r in caplog.records))
        await eventually(lambda: "60" in str(component._seen))
        errors = [record for record in caplog.records if record.levelname == "ERROR"]
        assert len(errors) == 1
        assert "aws.greengrass.LogManager cannot upload logs" in errors[0].getMessage()
    finally:
        await component.close()
        store.close()
