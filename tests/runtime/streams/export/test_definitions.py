"""Export configs parsed with the SDK's rules and defaults, every bad value refused naming its field."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stream_manager import data as sdk

from edgewise.runtime.streams.errors import InvalidStreamRequestError
from edgewise.runtime.streams.export import ExportConfig, ExportKind, HTTPExportFormat, parse_exports


def test_the_sdks_own_export_definition_parses_with_greengrass_defaults() -> None:
    document = sdk.ExportDefinition(
        kinesis=[sdk.KinesisConfig(identifier="k", kinesis_stream_name="trucks")],
        iot_analytics=[
            sdk.IoTAnalyticsConfig(
                identifier="a",
                iot_channel="channel_1",
                batch_size=7,
                batch_interval_millis=60_000,
                priority=2,
            )
        ],
        iot_sitewise=[sdk.IoTSiteWiseConfig(identifier="s", start_sequence_number=5, disabled=True)],
        http=[
            sdk.HTTPConfig(
                identifier="h", uri="https://example.com/in", export_format=sdk.ExportFormat.JSON_BATCHED
            )
        ],
        s3_task_executor=[
            sdk.S3ExportTaskExecutorConfig(identifier="t"),
            sdk.S3ExportTaskExecutorConfig(
                identifier="u",
                size_threshold_for_multipart_upload_bytes=5 * 1024 * 1024,
                status_config=sdk.StatusConfig(status_level=sdk.StatusLevel.ERROR, status_stream_name="st"),
            ),
        ],
    ).as_dict()

    configs = parse_exports(document)

    assert configs == (
        ExportConfig(
            ExportKind.HTTP, "h", "https://example.com/in", 500, http_format=HTTPExportFormat.JSON_BATCHED
        ),
        ExportConfig(ExportKind.IOT_ANALYTICS, "a", "channel_1", 7, 60_000, priority=2),
        ExportConfig(ExportKind.KINESIS, "k", "trucks", 500),
        ExportConfig(ExportKind.IOT_SITEWISE, "s", "", 10, start_sequence_number=5, disabled=True),
        ExportConfig(ExportKind.S3_TASK_EXECUTOR, "t", "", 1),
        ExportConfig(ExportKind.S3_TASK_EXECUTOR, "u", "", 1, status_stream="st", status_level=0),
    )


def test_no_export_definition_is_no_export() -> None:
    assert parse_exports(None) == ()
    assert parse_exports({"kinesis": None}) == ()


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"kinesis": [{"identifier": "k"}]}, "exportDefinition.kinesis[0].kinesisStreamName"),
        (
            {"s3TaskExecutor": [{"identifier": "t", "sizeThresholdForMultipartUploadBytes": 1024}]},
            "exportDefinition.s3TaskExecutor[0].sizeThresholdForMultipartUploadBytes",
        ),
        (
            {"s3TaskExecutor": [{"identifier": "t", "statusConfig": {"statusLevel": 5}}]},
            "exportDefinition.s3TaskExecutor[0].statusConfig.statusLevel",
        ),
        (
            {"s3TaskExecutor": [{"identifier": "t", "statusConfig": {"statusStreamName": "a/b"}}]},
            "exportDefinition.s3TaskExecutor[0].statusConfig.statusStreamName",
        ),
        (
            {"s3TaskExecutor": [{"identifier": "t", "statusConfig": {"other": 1}}]},
            "exportDefinition.s3TaskExecutor[0].statusConfig.other",
        ),
        (
            {"s3TaskExecutor": [{"identifier": "t", "statusConfig": []}]},
            "exportDefinition.s3TaskExecutor[0].statusConfig",
        ),
        ({"kinesis": [{"kinesisStreamName": "s"}]}, "exportDefinition.kinesis[0].identifier"),
        (
            {"kinesis": [{"identifier": "a/b", "kinesisStreamName": "s"}]},
            "exportDefinition.kinesis[0].identifier",
        ),
        (
            {"kinesis": [{"identifier": "k", "kinesisStreamName": "s", "batchSize": 501}]},
            "exportDefinition.kinesis[0].batchSize",
        ),
        (
            {"IotSitewise": [{"identifier": "k", "batchSize": 11}]},
            "exportDefinition.IotSitewise[0].batchSize",
        ),
        (
            {"iotAnalytics": [{"identifier": "k", "iotChannel": "c", "batchIntervalMillis": 59_999}]},
            "exportDefinition.iotAnalytics[0].batchIntervalMillis",
        ),
        ({"IotSitewise": [{"identifier": "k", "priority": 0}]}, "exportDefinition.IotSitewise[0].priority"),
        (
            {"IotSitewise": [{"identifier": "k", "priority": True}]},
            "exportDefinition.IotSitewise[0].priority",
        ),
        (
            {"IotSitewise": [{"identifier": "k", "startSequenceNumber": -1}]},
            "exportDefinition.IotSitewise[0].startSequenceNumber",
        ),
        (
            {"IotSitewise": [{"identifier": "k", "disabled": "no"}]},
            "exportDefinition.IotSitewise[0].disabled",
        ),
        ({"IotSitewise": [{"identifier": "k", "uri": "x"}]}, "exportDefinition.IotSitewise[0].uri"),
        ({"http": [{"identifier": "h", "uri": "file:///etc/passwd"}]}, "exportDefinition.http[0].uri"),
        (
            {"http": [{"identifier": "h", "uri": "https://x", "exportFormat": 2}]},
            "exportDefinition.http[0].exportFormat",
        ),
        ({"ftp": []}, "exportDefinition.ftp"),
        ({"kinesis": {"identifier": "k"}}, "exportDefinition.kinesis"),
        ({"kinesis": ["k"]}, "exportDefinition.kinesis[0]"),
        (
            {"IotSitewise": [{"identifier": "same"}], "s3TaskExecutor": [{"identifier": "same"}]},
            "exportDefinition.s3TaskExecutor[0].identifier",
        ),
        ({"IotSitewise": [{"identifier": f"e{i}"} for i in range(51)]}, "exportDefinition"),
    ],
)
def test_a_bad_config_is_refused_naming_its_field(document: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidStreamRequestError) as caught:
        parse_exports(document)

    assert caught.value.field == field
    assert str(caught.value).startswith(field)


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
    max_leaves=12,
)
_CONFIG = st.dictionaries(
    st.sampled_from(
        ["identifier", "kinesisStreamName", "batchSize", "batchIntervalMillis", "priority", "disabled", "uri"]
    ),
    _VALUES | st.integers(-1, 70_000),
)


@given(
    st.dictionaries(
        st.sampled_from([kind.value for kind in ExportKind] + ["x"]), st.lists(_CONFIG, max_size=3) | _VALUES
    )
)
def test_any_document_parses_or_is_refused_naming_a_field(document: dict[str, Any]) -> None:
    try:
        configs = parse_exports(document)
    except InvalidStreamRequestError as error:
        refused = error
    else:
        refused = None
    if refused is not None:
        assert str(refused.field).startswith("exportDefinition")
    else:
        for config in configs:
            assert 1 <= config.batch_size <= config.kind.max_batch_size
            assert 1 <= config.priority <= 10
