"""Storing telemetry records (SQLite and PostgreSQL): each (thing, stream, sequence number) once, device-topic
messages never merged, JSON payloads parsed for queries, oversized records refused naming the record; several
groups stored in one statement counted as if stored one after the other."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from edgewise.cloud.errors import InvalidRequestError
from edgewise.cloud.telemetry import StoreResult, TelemetryMessage, TelemetryRecord, store_records
from edgewise.cloud.telemetry.records import MAX_PAYLOAD_BYTES, json_document, store_record_groups


def exported(
    sequence_number: int, *, thing: str = "pump-1", stream: str = "sensors", payload: bytes = b"x"
) -> TelemetryRecord:
    return TelemetryRecord(thing, stream, 1_764_100_000_000 + sequence_number, payload, sequence_number)


def rows(session: Session) -> list[TelemetryMessage]:
    return list(session.scalars(sa.select(TelemetryMessage).order_by(TelemetryMessage.id)))


def test_the_same_batch_twice_is_stored_once_and_counted_as_duplicates(session: Session) -> None:
    batch = [exported(number) for number in range(5)]
    assert store_records(session, batch) == StoreResult(stored=5, duplicates=0)
    session.commit()
    assert store_records(session, batch) == StoreResult(stored=0, duplicates=5)
    session.commit()
    assert store_records(session, [exported(4), exported(5)]) == StoreResult(stored=1, duplicates=1)
    session.commit()
    assert [row.sequence_number for row in rows(session)] == [0, 1, 2, 3, 4, 5]


def test_a_record_repeated_within_one_call_is_stored_once(session: Session) -> None:
    assert store_records(session, [exported(1), exported(1)]) == StoreResult(stored=1, duplicates=1)


def test_sequence_numbers_are_unique_per_thing_and_stream_only(session: Session) -> None:
    records = [exported(0), exported(0, thing="pump-2"), exported(0, stream="other")]
    assert store_records(session, records) == StoreResult(stored=3, duplicates=0)
    session.commit()
    assert len(rows(session)) == 3


def test_two_device_streams_exported_into_one_telemetry_stream_keep_their_own_numbers(
    session: Session,
) -> None:
    first = TelemetryRecord("pump-1", "sensors", 1, b"a", 0, source="temperature")
    second = TelemetryRecord("pump-1", "sensors", 2, b"b", 0, source="vibration")
    assert store_records(session, [first, second]) == StoreResult(stored=2, duplicates=0)
    assert store_records(session, [second]) == StoreResult(stored=0, duplicates=1)
    session.commit()
    assert [(row.source, row.payload) for row in rows(session)] == [
        ("temperature", b"a"),
        ("vibration", b"b"),
    ]


def test_device_topic_messages_without_sequence_numbers_are_never_merged(session: Session) -> None:
    message = TelemetryRecord("pump-1", "dt/pump-1/t", 5, b"21.5", topic="dt/pump-1/t")
    assert store_records(session, [message, message]) == StoreResult(stored=2, duplicates=0)
    assert store_records(session, [message]) == StoreResult(stored=1, duplicates=0)
    session.commit()
    stored = rows(session)
    assert [(row.topic, row.sequence_number, row.payload) for row in stored] == [
        ("dt/pump-1/t", None, b"21.5")
    ] * 3


def test_json_objects_and_arrays_are_stored_parsed_and_other_payloads_are_not(session: Session) -> None:
    payloads = [b'{"temperature": {"value": 21.5}}', b" [1, 2]", b"21.5", b'"text"', b"\xff\xfe", b"{broken"]
    store_records(session, [exported(number, payload=payload) for number, payload in enumerate(payloads)])
    session.commit()
    session.expunge_all()
    stored = rows(session)
    assert [row.payload for row in stored] == payloads
    assert [row.payload_json for row in stored] == [
        {"temperature": {"value": 21.5}},
        [1, 2],
        None,
        None,
        None,
        None,
    ]
    found = session.scalars(
        sa.select(TelemetryMessage.sequence_number).where(TelemetryMessage.payload_json.is_(None))
    ).all()
    assert sorted(found) == [2, 3, 4, 5]


@pytest.mark.parametrize(
    "payload",
    [
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": 1e400}',
        b'{"a": "\\ud800"}',
        b'{"a": "\\u0000"}',
        b"[" * 5000 + b"]" * 5000,
        b'{"a": ' + b"1" * 5000 + b"}",
    ],
)
def test_json_that_not_every_store_can_hold_is_kept_as_bytes_only(session: Session, payload: bytes) -> None:
    assert json_document(payload) is None
    store_records(session, [exported(0, payload=payload)])
    session.commit()
    assert rows(session)[0].payload_json is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.text(max_size=10), json_values, max_size=4))
def test_any_json_object_is_stored_or_kept_as_bytes_never_refused(
    session: Session, document: dict[str, object]
) -> None:
    payload = json.dumps(document).encode()
    store_records(session, [TelemetryRecord("pump-1", "s", 0, payload)])
    session.commit()
    stored = session.scalars(sa.select(TelemetryMessage).order_by(TelemetryMessage.id.desc()).limit(1)).one()
    assert stored.payload == payload
    assert stored.payload_json in (None, json.loads(payload))


@pytest.mark.parametrize(
    ("record", "field"),
    [
        (exported(0, payload=b"x" * (MAX_PAYLOAD_BYTES + 1)), "records[1].payload"),
        (exported(0, stream=""), "records[1].stream"),
        (exported(0, stream="s" * 257), "records[1].stream"),
        (exported(0, thing="t" * 129), "records[1].thing_name"),
        (TelemetryRecord("t", "s", -1, b""), "records[1].timestamp_ms"),
        (TelemetryRecord("t", "s", 0, b"", sequence_number=2**63), "records[1].sequence_number"),
        (TelemetryRecord("t", "s", 0, b"", topic="x" * 257), "records[1].topic"),
    ],
)
def test_a_record_over_a_limit_is_refused_naming_it_and_nothing_is_stored(
    session: Session, record: TelemetryRecord, field: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        store_records(session, [exported(7), record])
    assert caught.value.field == field
    session.rollback()
    assert rows(session) == []


def test_the_largest_payload_is_stored(session: Session) -> None:
    payload = bytes(range(256)) * (MAX_PAYLOAD_BYTES // 256)
    assert store_records(session, [exported(0, payload=payload)]) == StoreResult(stored=1, duplicates=0)
    session.commit()
    session.expunge_all()
    assert rows(session)[0].payload == payload


def test_nothing_to_store_stores_nothing(session: Session) -> None:
    assert store_records(session, []) == StoreResult(stored=0, duplicates=0)


def test_groups_stored_at_once_are_counted_as_if_stored_one_after_the_other(session: Session) -> None:
    store_records(session, [exported(0)])
    session.commit()
    topic_message = TelemetryRecord("pump-1", "dt/pump-1/t", 5, b"{}", topic="dt/pump-1/t")
    groups = [
        [exported(0), exported(1), exported(2)],
        [topic_message],
        [exported(2), exported(3)],
        [topic_message],
        [],
        [exported(1, thing="pump-2")],
    ]
    assert store_record_groups(session, groups) == [
        StoreResult(stored=2, duplicates=1),
        StoreResult(stored=1, duplicates=0),
        StoreResult(stored=1, duplicates=1),
        StoreResult(stored=1, duplicates=0),
        StoreResult(stored=0, duplicates=0),
        StoreResult(stored=1, duplicates=0),
    ]
    session.commit()
    assert len(rows(session)) == 7


def test_a_record_over_a_limit_in_any_group_stores_no_group(session: Session) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        store_record_groups(session, [[exported(0)], [exported(1), exported(2, stream="")]])
    assert caught.value.field == "records[1].stream"
    session.rollback()
    assert rows(session) == []


def _json_document_by_encoding_again(payload: bytes) -> object:
    """What json_document decides, found the slow way: parse, then encode the document again to check it."""
    if not payload.lstrip().startswith((b"{", b"[")):
        return None
    try:
        document = json.loads(payload.decode("utf-8"), parse_constant=float.__call__)
        canonical = json.dumps(document, ensure_ascii=False, allow_nan=False)
        canonical.encode("utf-8")
    except (UnicodeError, ValueError, RecursionError):
        return None
    return None if "\\u0000" in canonical else document


json_texts = st.one_of(
    st.builds(lambda document: json.dumps(document, ensure_ascii=False), json_values),
    st.builds(lambda document: json.dumps([document]), json_values),
    st.text(alphabet='{}[]",:0123456789.eE+-\\u0aNInfity \x00', max_size=40),
)


@given(json_texts)
def test_json_document_decides_as_encoding_the_document_again_would(text: str) -> None:
    payload = text.encode("utf-8", "surrogatepass")
    assert json_document(payload) == _json_document_by_encoding_again(payload)
