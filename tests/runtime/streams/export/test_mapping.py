"""Messages as telemetry records: one per message (Kinesis, IoT Analytics), one per SiteWise property value; packed
under the cloud's batch size; what can never be delivered skipped with the reason."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from stream_manager import data as sdk
from stream_manager.util import Util

from edgewise.protocol import telemetry
from edgewise.runtime.streams.definition import StoredMessage
from edgewise.runtime.streams.export import ExportConfig, ExportKind
from edgewise.runtime.streams.export.mapping import convert, pack

KINESIS = ExportConfig(ExportKind.KINESIS, "k", "trucks", 500)
SITEWISE = ExportConfig(ExportKind.IOT_SITEWISE, "s", "", 10)


def message(sequence_number: int, payload: bytes, ingest_time: int = 1_000) -> StoredMessage:
    return StoredMessage("source", sequence_number, ingest_time, payload)


def test_kinesis_messages_are_records_of_the_named_stream() -> None:
    conversion = convert(KINESIS, "source", [message(3, b"a", 10), message(4, b"b", 11)])

    assert conversion.records == {
        "trucks": [telemetry.ExportRecord(3, 10, b"a"), telemetry.ExportRecord(4, 11, b"b")]
    }
    assert conversion.skipped == ()


def test_each_sitewise_value_is_a_record_of_its_property_alias() -> None:
    entry = sdk.PutAssetPropertyValueEntry(
        entry_id="e1",
        property_alias="/company/windfarm/3/turbine/7/temperature",
        property_values=[
            sdk.AssetPropertyValue(
                value=sdk.Variant(double_value=21.5),
                timestamp=sdk.TimeInNanos(time_in_seconds=1_700_000_000, offset_in_nanos=250_000_000),
                quality=sdk.Quality.GOOD,
            ),
            sdk.AssetPropertyValue(
                value=sdk.Variant(integer_value=3), timestamp=sdk.TimeInNanos(time_in_seconds=1_700_000_001)
            ),
        ],
    )
    by_ids = sdk.PutAssetPropertyValueEntry(
        entry_id="e2",
        asset_id="asset-1",
        property_id="prop-2",
        property_values=[
            sdk.AssetPropertyValue(
                value=sdk.Variant(boolean_value=True), timestamp=sdk.TimeInNanos(time_in_seconds=5)
            )
        ],
    )
    payloads = [
        Util.validate_and_serialize_to_json_bytes(entry),
        Util.validate_and_serialize_to_json_bytes(by_ids),
    ]

    conversion = convert(SITEWISE, "source", [message(7, payloads[0]), message(8, payloads[1])])

    alias = conversion.records["company/windfarm/3/turbine/7/temperature"]
    assert [(r.sequence_number, r.timestamp_ms) for r in alias] == [
        (70, 1_700_000_000_250),
        (71, 1_700_000_001_000),
    ]
    assert json.loads(alias[0].payload)["value"] == {"doubleValue": 21.5}
    assert json.loads(alias[0].payload)["quality"] == "GOOD"
    assert [r.sequence_number for r in conversion.records["asset-1/prop-2"]] == [80]


def test_what_can_never_be_delivered_is_skipped_with_the_reason() -> None:
    too_large = b"x" * telemetry.MAX_BATCH_BYTES
    conversion = convert(SITEWISE, "source", [message(1, b"not json"), message(2, b'{"propertyValues": []}')])
    assert conversion.records == {}
    assert [reason.split(" is ")[0] for reason in conversion.skipped] == ["message 1", "message 2"]

    conversion = convert(KINESIS, "source", [message(1, too_large), message(2, b"ok")])
    assert [r.sequence_number for r in conversion.records["trucks"]] == [2]
    assert "message 1 is" in conversion.skipped[0]


@given(st.lists(st.integers(0, 40_000), min_size=1, max_size=40))
def test_packed_batches_fit_the_cloud_and_keep_every_record_in_order(sizes: list[int]) -> None:
    records = [telemetry.ExportRecord(i, 1_000 + i, bytes(size)) for i, size in enumerate(sizes)]

    batches = pack(KINESIS, "source", "trucks", records)

    assert [r for batch in batches for r in batch.records] == records
    for batch in batches:
        assert len(telemetry.build_batch(batch)) <= telemetry.MAX_BATCH_BYTES
        assert telemetry.parse_batch(telemetry.build_batch(batch)) == batch


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=15), inner, max_size=4),
    max_leaves=20,
)
_ENTRY = st.fixed_dictionaries(
    {},
    optional={
        "entryId": st.text(max_size=5),
        "propertyAlias": _JSON,
        "assetId": _JSON,
        "propertyId": _JSON,
        "propertyValues": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "value": _JSON,
                    "timestamp": _JSON | st.fixed_dictionaries({"timeInSeconds": _JSON}),
                },
            ),
            max_size=12,
        ),
    },
)


@given(st.binary(max_size=64) | _ENTRY.map(lambda entry: json.dumps(entry).encode()))
def test_any_sitewise_payload_becomes_records_or_is_skipped_with_a_reason(payload: bytes) -> None:
    conversion = convert(SITEWISE, "source", [message(3, payload)])

    records = [record for records in conversion.records.values() for record in records]
    assert bool(records) != bool(conversion.skipped)
    for stream, stream_records in conversion.records.items():
        assert telemetry.is_stream_name(stream)
        assert [r.sequence_number for r in stream_records] == list(range(30, 30 + len(stream_records)))
