"""Telemetry export messages: what the device builds the cloud parses and back, every shape the cloud refuses
(naming the field), batches packed to the size limit, and the device-topic convention."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgewise.protocol import telemetry
from edgewise.protocol.telemetry import (
    BatchAccepted,
    BatchRejection,
    ExportBatch,
    ExportRecord,
    TelemetryPayloadError,
)

things = st.from_regex(r"[a-zA-Z0-9:_-]{1,40}", fullmatch=True)
tokens = st.text(min_size=1, max_size=telemetry.CLIENT_TOKEN_MAX_LENGTH)
streams = st.from_regex(r"[A-Za-z0-9_.:#-][A-Za-z0-9_.:/#-]{0,255}", fullmatch=True)
sources = st.from_regex(r"[A-Za-z0-9_ ,.\-]{1,255}", fullmatch=True)
integers = st.integers(0, telemetry.MAX_INTEGER)
payloads = st.binary(max_size=300)


@st.composite
def batches(draw: st.DrawFn) -> ExportBatch:
    numbers = sorted(draw(st.sets(integers, min_size=1, max_size=8)))
    records = tuple(ExportRecord(number, draw(integers), draw(payloads)) for number in numbers)
    return ExportBatch(draw(tokens), draw(streams), draw(sources), draw(sources), records)


def batch_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "clientToken": "t1",
        "stream": "sensors/temperature",
        "source": "LocalData",
        "exportId": "to-cloud",
        "records": [{"sequenceNumber": 0, "timestamp": 1764100000000, "payload": "aGk="}],
    }
    body.update(fields)
    return body


def refusal(body: Any) -> TelemetryPayloadError:
    with pytest.raises(TelemetryPayloadError) as caught:
        telemetry.parse_batch(json.dumps(body).encode())
    return caught.value


@given(batches())
def test_a_built_batch_parses_back_to_itself(batch: ExportBatch) -> None:
    assert telemetry.parse_batch(telemetry.build_batch(batch)) == batch


@given(batches())
def test_a_batch_builds_within_the_envelope_plus_its_record_sizes(batch: ExportBatch) -> None:
    size = len(telemetry.build_batch(batch))
    assert size <= telemetry.EMPTY_BATCH_BYTES + sum(map(telemetry.encoded_record_size, batch.records))


def test_a_batch_packed_to_the_limit_builds_within_the_limit_and_is_accepted() -> None:
    records: list[ExportRecord] = []
    used = telemetry.EMPTY_BATCH_BYTES
    number = telemetry.MAX_INTEGER - 10_000
    while True:
        record = ExportRecord(number, telemetry.MAX_INTEGER, bytes(range(256)) * 4 + b"x" * (number % 7))
        if used + telemetry.encoded_record_size(record) > telemetry.MAX_BATCH_BYTES:
            break
        records.append(record)
        used += telemetry.encoded_record_size(record)
        number += 1
    longest = ExportBatch(
        "t" * telemetry.CLIENT_TOKEN_MAX_LENGTH,
        "s" * telemetry.STREAM_MAX_LENGTH,
        "d" * telemetry.SOURCE_MAX_LENGTH,
        "e" * telemetry.EXPORT_ID_MAX_LENGTH,
        tuple(records),
    )
    payload = telemetry.build_batch(longest)
    # Packed to within one record of the limit, yet never over it.
    assert telemetry.MAX_BATCH_BYTES - 1500 < len(payload) <= telemetry.MAX_BATCH_BYTES
    assert telemetry.parse_batch(payload) == longest


def test_the_largest_record_payload_fits_a_batch_of_one_with_the_longest_names() -> None:
    record = ExportRecord(
        telemetry.MAX_INTEGER, telemetry.MAX_INTEGER, b"\xff" * telemetry.MAX_RECORD_PAYLOAD_BYTES
    )
    assert telemetry.EMPTY_BATCH_BYTES + telemetry.encoded_record_size(record) <= telemetry.MAX_BATCH_BYTES
    bigger = ExportRecord(0, 0, b"\xff" * (telemetry.MAX_RECORD_PAYLOAD_BYTES + 3))
    batch = ExportBatch("t", "s", "d", "e", (bigger,))
    assert len(telemetry.build_batch(batch)) > telemetry.MAX_BATCH_BYTES - telemetry.EMPTY_BATCH_BYTES


def test_a_batch_over_the_limit_is_refused() -> None:
    payload = json.dumps(
        batch_body(records=[{"sequenceNumber": 0, "timestamp": 0, "payload": "A" * 140_000}])
    )
    with pytest.raises(TelemetryPayloadError, match="at most 131072") as caught:
        telemetry.parse_batch(payload.encode())
    assert caught.value.field == "payload"
    assert caught.value.code == telemetry.INVALID_PAYLOAD


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "payload"),
        ("batch", "payload"),
        (batch_body(extra=1), "extra"),
        ({k: v for k, v in batch_body().items() if k != "stream"}, "stream"),
        ({k: v for k, v in batch_body().items() if k != "records"}, "records"),
        (batch_body(clientToken=""), "clientToken"),
        (batch_body(clientToken="x" * 65), "clientToken"),
        (batch_body(clientToken=7), "clientToken"),
        (batch_body(stream=""), "stream"),
        (batch_body(stream="/abs"), "stream"),
        (batch_body(stream="a b"), "stream"),
        (batch_body(stream="s" * 257), "stream"),
        (batch_body(stream=["s"]), "stream"),
        (batch_body(source=""), "source"),
        (batch_body(source="a/b"), "source"),
        (batch_body(source="é"), "source"),
        (batch_body(source="s" * 256), "source"),
        (batch_body(exportId=None), "exportId"),
        (batch_body(exportId="x\n"), "exportId"),
        (batch_body(records=[]), "records"),
        (batch_body(records={}), "records"),
        (batch_body(records=[1]), "records[0]"),
        (batch_body(records=[{"sequenceNumber": 0, "timestamp": 0}]), "records[0].payload"),
        (batch_body(records=[{"timestamp": 0, "payload": ""}]), "records[0].sequenceNumber"),
        (batch_body(records=[{"sequenceNumber": 0, "payload": ""}]), "records[0].timestamp"),
        (batch_body(records=[{"sequenceNumber": 0, "timestamp": 0, "payload": "", "x": 1}]), "records[0].x"),
        (
            batch_body(records=[{"sequenceNumber": -1, "timestamp": 0, "payload": ""}]),
            "records[0].sequenceNumber",
        ),
        (
            batch_body(records=[{"sequenceNumber": 2**63, "timestamp": 0, "payload": ""}]),
            "records[0].sequenceNumber",
        ),
        (
            batch_body(records=[{"sequenceNumber": 1.0, "timestamp": 0, "payload": ""}]),
            "records[0].sequenceNumber",
        ),
        (
            batch_body(records=[{"sequenceNumber": True, "timestamp": 0, "payload": ""}]),
            "records[0].sequenceNumber",
        ),
        (
            batch_body(records=[{"sequenceNumber": 0, "timestamp": "now", "payload": ""}]),
            "records[0].timestamp",
        ),
        (batch_body(records=[{"sequenceNumber": 0, "timestamp": -5, "payload": ""}]), "records[0].timestamp"),
        (batch_body(records=[{"sequenceNumber": 0, "timestamp": 0, "payload": "***"}]), "records[0].payload"),
        (batch_body(records=[{"sequenceNumber": 0, "timestamp": 0, "payload": "aGk"}]), "records[0].payload"),
        (batch_body(records=[{"sequenceNumber": 0, "timestamp": 0, "payload": 5}]), "records[0].payload"),
        (
            batch_body(
                records=[
                    {"sequenceNumber": 4, "timestamp": 0, "payload": ""},
                    {"sequenceNumber": 4, "timestamp": 0, "payload": ""},
                ]
            ),
            "records[1].sequenceNumber",
        ),
        (
            batch_body(
                records=[
                    {"sequenceNumber": 5, "timestamp": 0, "payload": ""},
                    {"sequenceNumber": 3, "timestamp": 0, "payload": ""},
                ]
            ),
            "records[1].sequenceNumber",
        ),
    ],
)
def test_a_malformed_batch_is_refused_naming_the_field(body: Any, field: str) -> None:
    error = refusal(body)
    assert error.field == field
    assert repr(field) in str(error)


def test_bytes_that_are_not_json_are_refused() -> None:
    for payload in (b"\xff\xfe", b"{", b"[" * 100_000):
        with pytest.raises(TelemetryPayloadError) as caught:
            telemetry.parse_batch(payload)
        assert caught.value.field == "payload"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4)
    ),
    max_leaves=20,
)


FIELDS = ("clientToken", "stream", "source", "exportId", "records")


@given(st.dictionaries(st.sampled_from(FIELDS), json_values))
def test_any_json_object_either_parses_or_is_refused_naming_a_field(body: dict[str, Any]) -> None:
    field = None
    try:
        telemetry.parse_batch(json.dumps(body).encode())
    except TelemetryPayloadError as error:
        field = error.field
    assert field is None or field.split(".")[0].split("[")[0] in FIELDS


@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise_anything_but_the_payload_error(payload: bytes) -> None:
    with contextlib.suppress(TelemetryPayloadError):
        telemetry.parse_batch(payload)


@given(things)
def test_batch_topics_name_their_thing(thing: str) -> None:
    assert telemetry.thing_of_batch(telemetry.batch_topic(thing)) == thing
    assert telemetry.thing_of_batch(telemetry.reply_topic(thing, "accepted")) is None
    assert (
        telemetry.reply_topic(thing, "rejected") == f"$aws/things/{thing}/edgewise/telemetry/batch/rejected"
    )


def test_topics_that_are_not_batch_topics_name_no_thing() -> None:
    for topic in ("$aws/things//edgewise/telemetry/batch", "dt/a/b", "$aws/things/a/edgewise/telemetry"):
        assert telemetry.thing_of_batch(topic) is None


@pytest.mark.parametrize(
    ("topic", "thing"),
    [
        ("dt/pump-1/temperature", "pump-1"),
        ("dt/pump-1", "pump-1"),
        ("dt/p/a/b/c", "p"),
        ("dt//x", None),
        ("dt", None),
        ("other/pump/x", None),
        ("dtx/pump/x", None),
    ],
)
def test_device_topics_name_their_thing_in_the_second_level(topic: str, thing: str | None) -> None:
    assert telemetry.thing_of_device_topic(topic) == thing


@given(tokens, integers, integers, integers)
def test_an_acceptance_reads_back(token: str, stored: int, duplicates: int, last: int) -> None:
    reply = BatchAccepted(token, stored, duplicates, last)
    topic = telemetry.reply_topic("A", "accepted")
    assert telemetry.read_reply(topic, telemetry.build_accepted(reply)) == reply


@pytest.mark.parametrize("code", ["InvalidPayload", "Throttled", "InternalError"])
def test_a_rejection_reads_back(code: telemetry.RejectionCode) -> None:
    for token in ("t1", None):
        reply = BatchRejection(token, code, "Field 'stream' is invalid: ...")
        topic = telemetry.reply_topic("A", "rejected")
        assert telemetry.read_reply(topic, telemetry.build_rejection(reply)) == reply


def test_a_rejection_with_an_unknown_code_reads_as_an_internal_error() -> None:
    payload = json.dumps({"clientToken": "t", "code": "Melted", "message": "oops"}).encode()
    reply = telemetry.read_reply(telemetry.reply_topic("A", "rejected"), payload)
    assert reply == BatchRejection("t", "InternalError", "'Melted': oops")


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("$aws/things/A/edgewise/telemetry/batch/accepted", b"not json"),
        ("$aws/things/A/edgewise/telemetry/batch/accepted", b"[]"),
        (
            "$aws/things/A/edgewise/telemetry/batch/accepted",
            b'{"clientToken": "t", "stored": 1, "duplicates": 0}',
        ),
        (
            "$aws/things/A/edgewise/telemetry/batch/accepted",
            b'{"stored": 1, "duplicates": 0, "lastSequenceNumber": 1}',
        ),
        (
            "$aws/things/A/edgewise/telemetry/batch/accepted",
            b'{"clientToken": "t", "stored": -1, "duplicates": 0, "lastSequenceNumber": 1}',
        ),
        ("$aws/things/A/edgewise/telemetry/batch", b'{"clientToken": "t"}'),
        ("$aws/things/A/edgewise/telemetry/batch/other", b'{"clientToken": "t"}'),
        ("dt/A/accepted", b'{"clientToken": "t", "stored": 1, "duplicates": 0, "lastSequenceNumber": 1}'),
    ],
)
def test_replies_that_cannot_be_read_are_none(topic: str, payload: bytes) -> None:
    assert telemetry.read_reply(topic, payload) is None


def test_the_client_token_is_read_from_a_batch_that_is_otherwise_refused() -> None:
    assert telemetry.client_token_of(json.dumps(batch_body(records=[])).encode()) == "t1"
    assert telemetry.client_token_of(b"{") is None
    assert telemetry.client_token_of(json.dumps(batch_body(clientToken="x" * 65)).encode()) is None


def test_payloads_travel_as_base64() -> None:
    batch = ExportBatch("t", "s", "d", "e", (ExportRecord(1, 2, b"\x00\x01"),))
    body = json.loads(telemetry.build_batch(batch))
    assert body["records"] == [
        {"sequenceNumber": 1, "timestamp": 2, "payload": base64.b64encode(b"\x00\x01").decode()}
    ]
