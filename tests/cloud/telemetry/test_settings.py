"""The telemetry ingest settings: device-topic filters (checked, from the environment as a list) and the
write thresholds, and ``edgewise cloud up --telemetry-topic`` refusing a filter before anything is created."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from edgewise.cli.main import app
from edgewise.cloud.settings import CloudSettings


def test_the_default_filter_is_every_things_device_topics(tmp_path: Path) -> None:
    settings = CloudSettings(data_dir=tmp_path)
    assert settings.telemetry_topic_filters == ("dt/+/#",)
    assert (settings.telemetry_flush_messages, settings.telemetry_flush_interval_ms) == (500, 200)


def test_filters_come_from_the_environment_comma_separated(tmp_path: Path) -> None:
    environ = {"EDGEWISE_CLOUD_TELEMETRY_TOPIC_FILTERS": "dt/+/#, plant/+/power,dt/+/#"}
    settings = CloudSettings.from_environ(environ, data_dir=tmp_path)
    assert settings.telemetry_topic_filters == ("dt/+/#", "plant/+/power")


@pytest.mark.parametrize(
    ("filters", "problem"),
    [
        (("a/#/b",), "uses '#' other than as the whole last level"),
        (("a/b+",), "uses '+' other than as a whole level"),
        (("$aws/things/+/shadow/#",), "does not start with '$'"),
        (("x" * 257,), "at most 256 characters"),
        (tuple(f"f/{n}" for n in range(33)), "at most 32 are allowed"),
    ],
)
def test_an_unusable_filter_is_refused(tmp_path: Path, filters: tuple[str, ...], problem: str) -> None:
    with pytest.raises(ValidationError, match="telemetry_topic_filters") as caught:
        CloudSettings(data_dir=tmp_path, telemetry_topic_filters=filters)
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("telemetry_flush_messages", 0),
        ("telemetry_flush_messages", 10_001),
        ("telemetry_flush_interval_ms", 0),
    ],
)
def test_write_thresholds_are_bounded(tmp_path: Path, field: str, value: int) -> None:
    with pytest.raises(ValidationError, match=field):
        CloudSettings.model_validate({"data_dir": tmp_path, field: value})


def test_cloud_up_refuses_an_invalid_telemetry_topic_before_creating_anything(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = CliRunner().invoke(
        app,
        ["cloud", "up", "--data", str(data), "--telemetry-topic", "dt/+/#", "--telemetry-topic", "a/#/b"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 1, result.output
    assert "telemetry_topic_filters" in result.stderr
    assert not data.exists()
