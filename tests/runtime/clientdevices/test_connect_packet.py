"""MQTT CONNECT packets, 3.1.1 and 5: read, rewritten with another login (everything else kept byte for byte),
refused with CONNACK in the client's version; any bytes either parse or raise ConnectPacketError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgewise.runtime.clientdevices.connect_packet import (
    MAX_CONNECT_BYTES,
    ConnectPacketError,
    connack_refused,
    packet_length,
    parse_connect,
    rewrite_connect,
)


def _string(value: bytes) -> bytes:
    return len(value).to_bytes(2, "big") + value


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value % 128, value // 128
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def build(
    level: int,
    client_id: str,
    *,
    username: str | None = None,
    password: bytes | None = None,
    will: tuple[str, bytes] | None = None,
    keep_alive: int = 60,
    properties: bytes = b"\x00",
) -> bytes:
    """A CONNECT written the way the MQTT specification lays it out (independently of the module)."""
    flags = 0x02
    if will:
        flags |= 0x04 | 0x08
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    body = _string(b"MQTT") + bytes([level, flags]) + keep_alive.to_bytes(2, "big")
    if level == 5:
        body += properties
    body += _string(client_id.encode())
    if will:
        if level == 5:
            body += b"\x00"
        body += _string(will[0].encode()) + _string(will[1])
    if username is not None:
        body += _string(username.encode())
    if password is not None:
        body += _string(password)
    return b"\x10" + _varint(len(body)) + body


def test_a_311_connect_is_read_and_rewritten_with_the_broker_login() -> None:
    raw = build(4, "sensor-1", username="device", password=b"secret", will=("gone", b"bye"))
    packet = parse_connect(raw)

    assert (packet.level, packet.client_id, packet.username, packet.password) == (
        4,
        "sensor-1",
        "device",
        b"secret",
    )
    rewritten = parse_connect(rewrite_connect(packet, "sensor-1", "p4ss"))
    assert (rewritten.client_id, rewritten.username, rewritten.password) == ("sensor-1", "sensor-1", b"p4ss")
    assert rewritten.will == packet.will
    assert rewrite_connect(packet, "sensor-1", "p4ss") == build(
        4, "sensor-1", username="sensor-1", password=b"p4ss", will=("gone", b"bye")
    )


def test_an_mqtt5_connect_keeps_its_properties_when_rewritten() -> None:
    # Session Expiry Interval (0x11) 3600 and Receive Maximum (0x21) 10, after their length.
    fields = b"\x11" + (3600).to_bytes(4, "big") + b"\x21" + (10).to_bytes(2, "big")
    properties = _varint(len(fields)) + fields
    raw = build(5, "sensor-2", properties=properties, will=("gone", b"x"))
    packet = parse_connect(raw)

    assert (packet.level, packet.username, packet.password) == (5, None, None)
    assert rewrite_connect(packet, "sensor-2", "pw") == build(
        5, "sensor-2", username="sensor-2", password=b"pw", properties=properties, will=("gone", b"x")
    )


def test_connack_refusals_speak_the_clients_version() -> None:
    assert connack_refused(4) == b"\x20\x02\x00\x05"
    assert connack_refused(5) == b"\x20\x03\x00\x87\x00"
    assert connack_refused(None, not_authorized=False) == b"\x20\x02\x00\x01"
    assert connack_refused(5, not_authorized=False) == b"\x20\x03\x00\x81\x00"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"\x30\x00", "not CONNECT"),
        (b"\x10\xff\xff\xff\xff\x01", "more than four bytes"),
        (b"\x10" + _varint(MAX_CONNECT_BYTES), "at most"),
        (build(3, "a").replace(b"MQTT", b"MQIs", 1), "protocol level 3"),
        (build(4, "a").replace(b"MQTT", b"MQTX", 1), "protocol name"),
        (build(4, "a", password=b"x"), "password without a user name"),
        (build(4, "a")[:-1], "bytes but its header says"),
    ],
)
def test_bad_packets_are_refused_with_a_reason(raw: bytes, problem: str) -> None:
    with pytest.raises(ConnectPacketError, match=problem):
        _read(raw)


def _read(raw: bytes) -> None:
    total = packet_length(raw)
    parse_connect(raw if total is None else raw[:total])


def test_the_length_is_known_once_the_fixed_header_is_complete() -> None:
    raw = build(5, "x" * 200)
    assert packet_length(b"") is None
    assert packet_length(raw[:1]) is None
    assert packet_length(raw[:2]) is None  # the remaining length takes two bytes
    assert packet_length(raw[:3]) == len(raw)


_TEXT = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=20)


@settings(max_examples=150, deadline=None)
@given(
    level=st.sampled_from([4, 5]),
    client_id=_TEXT,
    username=st.none() | _TEXT,
    password=st.none() | st.binary(max_size=20),
    will=st.none() | st.tuples(_TEXT, st.binary(max_size=30)),
    login=st.tuples(_TEXT, _TEXT),
)
def test_any_valid_connect_round_trips_through_a_rewrite(
    level: int,
    client_id: str,
    username: str | None,
    password: bytes | None,
    will: tuple[str, bytes] | None,
    login: tuple[str, str],
) -> None:
    if password is not None and username is None and level == 4:
        username = ""
    packet = parse_connect(build(level, client_id, username=username, password=password, will=will))
    assert (packet.client_id, packet.username, packet.password) == (client_id, username, password)
    rewritten = rewrite_connect(packet, *login)
    assert packet_length(rewritten) == len(rewritten)
    again = parse_connect(rewritten)
    assert (again.level, again.client_id, again.username, again.password, again.will) == (
        level,
        client_id,
        login[0],
        login[1].encode(),
        packet.will,
    )


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=80)
    | st.builds(
        lambda b, tail: b[: len(b) - 1] + tail,
        st.sampled_from([build(4, "a", username="u", password=b"p", will=("t", b"w")), build(5, "b")]),
        st.binary(max_size=4),
    )
)
def test_any_bytes_parse_or_raise_a_connect_packet_error(raw: bytes) -> None:
    try:
        total = packet_length(raw)
        if total is not None and total <= len(raw):
            parse_connect(raw[:total])
    except ConnectPacketError:
        pass
