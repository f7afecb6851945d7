"""Log batches: what the device builds the cloud parses and back, every shape the cloud refuses (naming the
field), the size bound for the largest entries, and the replies."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgewise.protocol import logs
from edgewise.protocol.logs import BatchAccepted, BatchRejection, LogEntry, LogsPayloadError

names = st.text(st.characters(blacklist_characters="/\x00", codec="utf-8"), min_size=1)
messages = st.text(st.characters(blacklist_characters="\r\n", codec="utf-8"), max_size=200)
integers = st.integers(0, logs.MAX_INTEGER)
entries = st.builds(
    LogEntry,
    component=st.one_of(st.just(logs.SYSTEM), st.from_regex(r"[a-zA-Z0-9._-]{1,128}", fullmatch=True)),
    file=names.filter(lambda name: len(name) <= logs.FILE_NAME_MAX_LENGTH),
    file_id=names.filter(lambda name: len(name) <= logs.FILE_ID_MAX_LENGTH),
    offset=integers,
    timestamp_ms=st.one_of(st.none(), integers),
    level=st.one_of(st.none(), st.sampled_from(logs.LEVELS)),
    message=messages,
)
tokens = st.text(min_size=1, max_size=logs.CLIENT_TOKEN_MAX_LENGTH, alphabet=st.characters(codec="utf-8"))


def entry_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "component": "com.example.Hello",
        "file": "com.example.Hello.log",
        "fileId": "1234-1764100000",
        "offset": 0,
        "timestamp": 1764100000000,
        "level": "INFO",
        "message": "hello",
    }
    body.update(fields)
    return body


def refusal(body: Any) -> LogsPayloadError:
    with pytest.raises(LogsPayloadError) as caught:
        logs.parse_batch(json.dumps(body).encode())
    return caught.value


@settings(max_examples=50, deadline=None)
@given(tokens, st.lists(entries, min_size=1, max_size=6))
def test_a_built_batch_parses_back_to_itself_within_its_size_bound(token: str, items: list[LogEntry]) -> None:
    payload = logs.build_batch(token, items)
    assert logs.parse_batch(payload) == logs.LogBatch(token, tuple(items))
    assert len(payload) <= logs.EMPTY_BATCH_BYTES + sum(map(logs.encoded_entry_size, items))


def test_the_largest_entry_escaped_as_much_as_possible_fits_in_a_batch() -> None:
    worst = [
        LogEntry(
            component="c" * 128,
            file="\U0001f600" * logs.FILE_NAME_MAX_LENGTH,
            file_id="\x01" * logs.FILE_ID_MAX_LENGTH,
            offset=logs.MAX_INTEGER,
            timestamp_ms=logs.MAX_INTEGER,
            level="ERROR",
            message=logs.cut_message(text),
        )
        for text in ("\x01" * 40_000, "\U0001f600" * 10_000, "é" * 9_000)
    ]
    for entry in worst:
        assert len(entry.message.encode()) <= logs.MAX_MESSAGE_BYTES
        assert entry.message.endswith(logs.CUT_MARK)
        assert logs.EMPTY_BATCH_BYTES + logs.encoded_entry_size(entry) <= logs.MAX_BATCH_BYTES
        payload = logs.build_batch("\x01" * logs.CLIENT_TOKEN_MAX_LENGTH, [entry])
        assert len(payload) <= logs.MAX_BATCH_BYTES
        assert logs.parse_batch(payload).entries == (entry,)


def test_a_short_message_is_not_cut() -> None:
    assert logs.cut_message("x" * logs.MAX_MESSAGE_BYTES) == "x" * logs.MAX_MESSAGE_BYTES


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "payload"),
        ({"clientToken": "t", "entries": [entry_body()], "extra": 1}, "extra"),
        ({"entries": [entry_body()]}, "clientToken"),
        ({"clientToken": "t"}, "entries"),
        ({"clientToken": "", "entries": [entry_body()]}, "clientToken"),
        ({"clientToken": "t" * 65, "entries": [entry_body()]}, "clientToken"),
        ({"clientToken": "t", "entries": []}, "entries"),
        ({"clientToken": "t", "entries": {}}, "entries"),
        ({"clientToken": "t", "entries": [entry_body(), 3]}, "entries[1]"),
        ({"clientToken": "t", "entries": [entry_body(other=1)]}, "entries[0].other"),
        ({"clientToken": "t", "entries": [{"component": "System"}]}, "entries[0].file"),
        ({"clientToken": "t", "entries": [entry_body(component="a b")]}, "entries[0].component"),
        ({"clientToken": "t", "entries": [entry_body(component=7)]}, "entries[0].component"),
        ({"clientToken": "t", "entries": [entry_body(file="")]}, "entries[0].file"),
        ({"clientToken": "t", "entries": [entry_body(file="../x.log")]}, "entries[0].file"),
        ({"clientToken": "t", "entries": [entry_body(fileId="i" * 65)]}, "entries[0].fileId"),
        ({"clientToken": "t", "entries": [entry_body(offset=-1)]}, "entries[0].offset"),
        ({"clientToken": "t", "entries": [entry_body(offset=True)]}, "entries[0].offset"),
        ({"clientToken": "t", "entries": [entry_body(offset=2**63)]}, "entries[0].offset"),
        ({"clientToken": "t", "entries": [entry_body(timestamp="now")]}, "entries[0].timestamp"),
        ({"clientToken": "t", "entries": [entry_body(level="WARNING")]}, "entries[0].level"),
        ({"clientToken": "t", "entries": [entry_body(message=None)]}, "entries[0].message"),
        ({"clientToken": "t", "entries": [entry_body(message="a\nb")]}, "entries[0].message"),
        ({"clientToken": "t", "entries": [entry_body(message="x" * (16 * 1024 + 1))]}, "entries[0].message"),
    ],
)
def test_a_bad_batch_is_refused_naming_the_field(body: Any, field: str) -> None:
    assert refusal(body).field == field


def test_a_batch_over_the_size_limit_or_not_json_is_refused() -> None:
    with pytest.raises(LogsPayloadError) as caught:
        logs.parse_batch(b" " * (logs.MAX_BATCH_BYTES + 1))
    assert caught.value.field == "payload"
    with pytest.raises(LogsPayloadError) as caught:
        logs.parse_batch(b"\xff{")
    assert caught.value.field == "payload"
    with pytest.raises(LogsPayloadError) as caught:
        logs.parse_batch(
            b'{"clientToken":"t","entries":[{"component":"System","file":"f","fileId":"i",'
            b'"offset":0,"timestamp":null,"level":null,"message":"\\ud800"}]}'
        )
    assert caught.value.field == "entries[0].message"


def test_null_timestamp_and_level_are_accepted() -> None:
    body = {"clientToken": "t", "entries": [entry_body(component="System", timestamp=None, level=None)]}
    (entry,) = logs.parse_batch(json.dumps(body).encode()).entries
    assert (entry.component, entry.timestamp_ms, entry.level) == ("System", None, None)


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
            lambda inner: st.one_of(
                st.lists(inner, max_size=4),
                st.dictionaries(
                    st.sampled_from(
                        [
                            "clientToken",
                            "entries",
                            "component",
                            "file",
                            "fileId",
                            "offset",
                            "timestamp",
                            "level",
                            "message",
                            "x",
                        ]
                    ),
                    inner,
                    max_size=8,
                ),
            ),
            max_leaves=20,
        ).map(lambda value: json.dumps(value).encode()),
    )
)
def test_parse_batch_only_ever_raises_its_own_error(payload: bytes) -> None:
    with contextlib.suppress(LogsPayloadError):
        logs.parse_batch(payload)
    assert logs.client_token_of(payload) is None or isinstance(logs.client_token_of(payload), str)


def test_topics_name_the_thing() -> None:
    assert logs.batch_topic("dev-1") == "$aws/things/dev-1/edgewise/logs/batch"
    assert logs.reply_topic("dev-1", "accepted") == "$aws/things/dev-1/edgewise/logs/batch/accepted"
    assert logs.thing_of_batch("$aws/things/dev-1/edgewise/logs/batch") == "dev-1"
    assert logs.thing_of_batch("$aws/things/dev-1/edgewise/telemetry/batch") is None
    assert logs.LOGS_BATCH_FILTER == "$aws/things/+/edgewise/logs/batch"


def test_replies_round_trip_and_unreadable_ones_read_as_none() -> None:
    accepted_topic = logs.reply_topic("d", "accepted")
    rejected_topic = logs.reply_topic("d", "rejected")
    accepted = BatchAccepted("t", 3, 1)
    assert logs.read_reply(accepted_topic, logs.build_accepted(accepted)) == accepted
    rejection = BatchRejection("t", logs.THROTTLED, "slow down")
    assert logs.read_reply(rejected_topic, logs.build_rejection(rejection)) == rejection
    odd = logs.read_reply(rejected_topic, b'{"code":"Odd","message":"m"}')
    assert odd == BatchRejection(None, logs.INTERNAL_ERROR, "'Odd': m")
    assert logs.read_reply(accepted_topic, b'{"clientToken":"t"}') is None
    assert logs.read_reply(accepted_topic, b"[]") is None
    assert logs.read_reply("other/accepted", logs.build_accepted(accepted)) is None
