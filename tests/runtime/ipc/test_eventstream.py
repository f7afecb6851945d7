"""The eventstream codec: reference vectors, typed headers, every FrameError, and properties."""

from __future__ import annotations

import struct
import uuid
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgewise.runtime.ipc.errors import FrameError
from edgewise.runtime.ipc.eventstream import (
    Byte,
    FrameTooLargeError,
    HeaderValue,
    Int16,
    Int64,
    Message,
    MessageDecoder,
    MessageType,
    Timestamp,
    encode_frame,
    encode_message,
)

CONNECT_VECTOR = bytes.fromhex(
    "00000079 00000048 e9e79475"
    "08 3a76657273696f6e 07 0005 302e312e30"
    "0d 3a6d6573736167652d74797065 04 00000004"
    "0e 3a6d6573736167652d666c616773 04 00000000"
    "0a 3a73747265616d2d6964 04 00000000"
    "7b2261757468546f6b656e223a20224142434445464748494a4b4c4d4e4f50227d"
    "0259ce5e"
)
CONNECT_ACK_VECTOR = bytes.fromhex(
    "00000047 00000037 374cfe3f"
    "0d 3a6d6573736167652d74797065 04 00000005"
    "0e 3a6d6573736167652d666c616773 04 00000001"
    "0a 3a73747265616d2d6964 04 00000000"
    "e237e27d"
)


def typed(message: Message) -> list[tuple[str, type, HeaderValue]]:
    """Headers with their value types, so that Int64(1) and 1 do not compare equal."""
    return [(name, type(value), value) for name, value in message.headers.items()]


def test_empty_message_matches_the_library_vector() -> None:
    assert encode_message(Message({})) == bytes.fromhex("00000010 00000000 05c248eb 7d98c8ff")


def test_connect_and_connect_ack_match_the_worked_example() -> None:
    connect = Message(
        {":version": "0.1.0", ":message-type": 4, ":message-flags": 0, ":stream-id": 0},
        b'{"authToken": "ABCDEFGHIJKLMNOP"}',
    )
    ack = Message({":message-type": MessageType.CONNECT_ACK, ":message-flags": 1, ":stream-id": 0})

    assert encode_message(connect) == CONNECT_VECTOR
    assert encode_message(ack) == CONNECT_ACK_VECTOR
    assert MessageDecoder().feed(CONNECT_VECTOR + CONNECT_ACK_VECTOR) == [connect, ack]


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (True, "00"),
        (False, "01"),
        (Byte(-2), "02 fe"),
        (Int16(-2), "03 fffe"),
        (-2, "04 fffffffe"),
        (Int64(-2), "05 fffffffffffffffe"),
        (b"\x00\xff", "06 0002 00ff"),
        ("é", "07 0002 c3a9"),
        (Timestamp(1_700_000_000_000), "08 0000018bcfe56800"),
        (uuid.UUID(int=1), "09 00000000000000000000000000000001"),
    ],
)
def test_each_header_type_encodes_as_specified_and_round_trips_with_its_type(
    value: HeaderValue, wire: str
) -> None:
    encoded = encode_message(Message({"h": value}))

    assert encoded[12:-4] == bytes.fromhex("01 68" + wire)
    (decoded,) = MessageDecoder().feed(encoded)
    assert typed(decoded) == [("h", type(value), value)]


def test_int_enums_are_sent_as_int32() -> None:
    (decoded,) = MessageDecoder().feed(encode_message(Message({"t": MessageType.PING})))

    assert typed(decoded) == [("t", int, 2)]


@pytest.mark.parametrize(
    ("headers", "error", "words"),
    [
        ({"": 1}, ValueError, "Header name '' is 0 bytes"),
        ({"n" * 256: 1}, ValueError, "is 256 bytes long"),
        ({"big": "x" * 32768}, ValueError, "Header 'big' value is 32768 bytes"),
        ({"big": b"x" * 32768}, ValueError, "Header 'big' value is 32768 bytes"),
        ({"i": 2**31}, ValueError, "Header 'i' value 2147483648 does not fit in int32"),
        ({"b": Byte(128)}, ValueError, "does not fit in int8"),
        ({"s": Int16(-(2**15) - 1)}, ValueError, "does not fit in int16"),
        ({"f": 1.5}, TypeError, "Header 'f' has a value of type float"),
    ],
)
def test_headers_eventstream_cannot_carry_are_refused_by_name(
    headers: dict[str, HeaderValue], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        encode_message(Message(headers))


def test_decoder_reassembles_messages_fed_one_byte_at_a_time() -> None:
    stream = CONNECT_VECTOR + CONNECT_ACK_VECTOR
    decoder = MessageDecoder()

    messages = [message for i in range(len(stream)) for message in decoder.feed(stream[i : i + 1])]

    assert [m.headers[":message-type"] for m in messages] == [4, 5]
    assert decoder.buffered == 0


def test_decoder_keeps_a_partial_message_for_the_next_feed() -> None:
    decoder = MessageDecoder()

    assert decoder.feed(CONNECT_ACK_VECTOR + CONNECT_VECTOR[:20]) == [
        MessageDecoder().feed(CONNECT_ACK_VECTOR)[0]
    ]
    assert decoder.buffered == 20
    assert len(decoder.feed(CONNECT_VECTOR[20:])) == 1


def with_prelude(total: int, headers_length: int, rest: bytes = b"") -> bytes:
    """A prelude with a correct CRC and arbitrary lengths."""
    prelude = struct.pack(">II", total, headers_length)
    return prelude + struct.pack(">I", zlib.crc32(prelude)) + rest


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\x00" * 12, "Prelude CRC is 0x00000000 but the prelude hashes to"),
        (CONNECT_ACK_VECTOR[:-1] + b"\x00", "Message CRC is"),
        (with_prelude(15, 0), "Message length 15 is below the 16-byte minimum"),
        (with_prelude(2000, 0), "Message length 2000 exceeds the limit of 1024 bytes"),
        (with_prelude(40, 25), "Headers length 25 does not fit in a message of 40 bytes"),
        (encode_frame(b"\x05ab", b""), "Header name of 5 bytes runs past the end"),
        (encode_frame(b"\x01a\x07\x00\x09xy", b""), "Header 'a' value of 9 bytes runs past the end"),
        (encode_frame(b"\x01a\x07\x00", b""), "Header 'a' value length runs past the end"),
        (encode_frame(b"\x01a\x06\x80\x00" + b"x" * 32768, b""), "Header 'a' value is 32768 bytes long"),
        (encode_frame(b"\x01a\x0a", b""), "Header 'a' has unknown value type 10"),
        (encode_frame(b"\x01a\x04\x00\x00", b""), "Header 'a' int32 value runs past the end"),
        (encode_frame(b"\x01a\x09\x00", b""), "Header 'a' UUID value runs past the end"),
        (encode_frame(b"\x00\x00", b""), "Header 1 has an empty name"),
        (encode_frame(b"\x01a\x00\x01a\x01", b""), "Header 'a' appears more than once"),
        (encode_frame(b"\x01\xff\x00", b""), "Header name is not valid UTF-8"),
        (encode_frame(b"\x01s\x07\x00\x01\xff", b""), "Header 's' value is not valid UTF-8"),
        (encode_frame(b"\x01a\x00\x01b\x00\x01c\x00", b""), "Message has more than 2 headers"),
    ],
)
def test_decoder_rejects_invalid_frames_with_a_reason(data: bytes, words: str) -> None:
    decoder = MessageDecoder(max_message_size=1024 if len(data) < 1024 else 65536, max_headers=2)

    with pytest.raises(FrameError, match=words):
        decoder.feed(data)


def test_oversized_message_is_refused_from_its_prelude_alone() -> None:
    decoder = MessageDecoder(max_message_size=1024)

    with pytest.raises(FrameError, match="exceeds the limit"):
        decoder.feed(encode_message(Message({}, b"x" * 2000))[:12])


def test_a_first_message_decoded_alone_lets_the_next_be_checked_against_a_raised_limit() -> None:
    decoder = MessageDecoder(max_message_size=256)
    big = encode_message(Message({}, b"x" * 2000))

    assert decoder.feed(CONNECT_VECTOR + big, max_messages=1) == [
        Message(
            {":version": "0.1.0", ":message-type": 4, ":message-flags": 0, ":stream-id": 0},
            b'{"authToken": "ABCDEFGHIJKLMNOP"}',
        )
    ]
    assert decoder.buffered == len(big)
    decoder.max_message_size = 4096
    assert decoder.feed(b"") == [Message({}, b"x" * 2000)]
    assert decoder.buffered == 0


def test_an_oversized_message_says_its_length_and_the_limit() -> None:
    decoder = MessageDecoder(max_message_size=1024)

    with pytest.raises(FrameTooLargeError) as caught:
        decoder.feed(encode_message(Message({}, b"x" * 2000))[:12])

    assert (caught.value.length, caught.value.limit) == (2016, 1024)
    with pytest.raises(ValueError, match="max_message_size must be at least 16 bytes, got 15"):
        decoder.max_message_size = 15


def test_decoder_stays_failed_after_an_error() -> None:
    decoder = MessageDecoder()
    with pytest.raises(FrameError):
        decoder.feed(b"\x00" * 12)

    with pytest.raises(FrameError, match="unusable after an earlier error"):
        decoder.feed(CONNECT_ACK_VECTOR)


def test_decoder_refuses_a_limit_below_the_message_overhead() -> None:
    with pytest.raises(ValueError, match="max_message_size must be at least 16 bytes, got 8"):
        MessageDecoder(max_message_size=8)


# Properties

header_names = st.text(min_size=1, max_size=40).filter(lambda name: len(name.encode()) <= 255)
header_values = st.one_of(
    st.booleans(),
    st.builds(Byte, st.integers(-(2**7), 2**7 - 1)),
    st.builds(Int16, st.integers(-(2**15), 2**15 - 1)),
    st.integers(-(2**31), 2**31 - 1),
    st.builds(Int64, st.integers(-(2**63), 2**63 - 1)),
    st.builds(Timestamp, st.integers(-(2**63), 2**63 - 1)),
    st.binary(max_size=64),
    st.text(max_size=64),
    st.uuids(),
)
messages = st.builds(
    Message, st.dictionaries(header_names, header_values, max_size=8), st.binary(max_size=256)
)


@given(messages)
def test_any_message_round_trips_with_exact_header_types(message: Message) -> None:
    (decoded,) = MessageDecoder().feed(encode_message(message))

    assert typed(decoded) == typed(message)
    assert decoded.payload == message.payload


@given(st.lists(messages, max_size=5), st.data())
def test_any_split_of_a_valid_stream_yields_the_same_messages(
    batch: list[Message], data: st.DataObject
) -> None:
    stream = b"".join(encode_message(message) for message in batch)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder = MessageDecoder()

    decoded = [
        m
        for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True)
        for m in decoder.feed(stream[start:end])
    ]

    assert [typed(m) for m in decoded] == [typed(m) for m in batch]
    assert [m.payload for m in decoded] == [m.payload for m in batch]


@given(st.lists(st.binary(max_size=200), max_size=5))
def test_arbitrary_bytes_yield_messages_or_a_frame_error(chunks: list[bytes]) -> None:
    decoder = MessageDecoder(max_message_size=4096)
    try:
        for chunk in chunks:
            assert all(isinstance(message, Message) for message in decoder.feed(chunk))
    except FrameError:
        pass


@given(messages, st.data())
def test_any_flipped_bit_in_a_frame_is_detected(message: Message, data: st.DataObject) -> None:
    frame = bytearray(encode_message(message))
    bit = data.draw(st.integers(0, len(frame) * 8 - 1))
    frame[bit // 8] ^= 1 << (bit % 8)

    with pytest.raises(FrameError):
        MessageDecoder().feed(bytes(frame))


@given(st.binary(max_size=300), st.binary(max_size=20))
def test_arbitrary_header_bytes_in_a_well_checksummed_frame_decode_or_raise_frame_error(
    headers_block: bytes, payload: bytes
) -> None:
    try:
        decoded = MessageDecoder().feed(encode_frame(headers_block, payload))
    except FrameError:
        return
    assert [m.payload for m in decoded] == [payload]


# A decoder keeps the header blocks it decoded, keyed by everything but the stream id value: the same bytes
# must decode to the same headers whether or not the block was seen before, whatever the values hold.

STREAM_ID_ENTRY = b"\x0a:stream-id\x04"
# Values that carry the stream id header's own bytes, so that the first match of its name is not the header.
decoys = st.builds(lambda tail: STREAM_ID_ENTRY + tail, st.binary(min_size=0, max_size=6))
decoy_texts = st.builds(lambda tail: ":stream-id" + tail, st.text(max_size=6))
rpc_header_values = st.one_of(header_values, decoys, decoy_texts)


@st.composite
def rpc_templates(draw: st.DrawFn) -> dict[str, HeaderValue]:
    """Headers like an RPC message's, the int32 ``:stream-id`` (or a decoy of another type) anywhere in them."""
    headers = draw(st.dictionaries(header_names, rpc_header_values, max_size=5))
    headers.pop(":stream-id", None)
    stream_id = draw(st.one_of(st.integers(-(2**31), 2**31 - 1), st.builds(Int64, st.integers(0, 9)), decoys))
    items = list(headers.items())
    items.insert(draw(st.integers(0, len(items))), (":stream-id", stream_id))
    return dict(items)


@settings(max_examples=50, deadline=None)
@given(st.lists(rpc_templates(), min_size=1, max_size=4), st.data())
def test_a_decoder_that_has_seen_a_header_block_decodes_it_as_a_fresh_one_does(
    templates: list[dict[str, HeaderValue]], data: st.DataObject
) -> None:
    picks = data.draw(
        st.lists(st.tuples(st.integers(0, len(templates) - 1), st.integers(0, 2**31 - 1)), max_size=12)
    )
    batch = []
    for index, stream_id in picks:
        headers = dict(templates[index])
        if type(headers[":stream-id"]) is int:
            headers[":stream-id"] = stream_id
        batch.append(Message(headers, b"{}"))
    decoder = MessageDecoder()

    decoded = [m for message in batch for m in decoder.feed(encode_message(message))]

    fresh = [MessageDecoder().feed(encode_message(message))[0] for message in batch]
    assert [typed(m) for m in decoded] == [typed(m) for m in fresh] == [typed(m) for m in batch]


def test_what_a_decoder_keeps_of_past_header_blocks_is_bounded() -> None:
    decoder = MessageDecoder()
    for n in range(200):
        headers = {":message-type": 0, ":message-flags": 0, ":stream-id": n, "operation": f"op{n}"}
        (decoded,) = decoder.feed(encode_message(Message(headers)))
        assert decoded.headers == headers
    big = {":stream-id": 1, "operation": "x" * 1000}

    assert decoder.feed(encode_message(Message(big)))[0].headers == big
    assert 0 < len(decoder._header_cache) <= 16
    assert all(len(key) <= 512 for key in decoder._header_cache)
