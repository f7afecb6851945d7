"""The MQTT CONNECT packet, as far as the gate needs it: read its client id, replace its user name and password
with the device's broker login, and answer a refused one with CONNACK "not authorized".

MQTT 3.1.1 (protocol level 4) and MQTT 5 (level 5) are read. The parts the gate does not change (MQTT 5
properties, the will) are copied byte for byte, so a rewritten packet says everything the device said. A packet is
at most :data:`MAX_CONNECT_BYTES`; anything malformed raises :class:`ConnectPacketError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from edgewise.errors import EdgewiseError

#: The largest CONNECT read (its will message included).
MAX_CONNECT_BYTES: Final = 256 * 1024
MQTT_311: Final = 4
MQTT_5: Final = 5
_CONNECT: Final = 0x10
_USERNAME: Final = 0x80
_PASSWORD: Final = 0x40
_WILL: Final = 0x04
_RESERVED: Final = 0x01
_PROTOCOL_NAMES: Final = {MQTT_311: b"MQTT", MQTT_5: b"MQTT"}


class ConnectPacketError(EdgewiseError):
    """Bytes that are not an MQTT 3.1.1 or 5 CONNECT packet the gate accepts; ``level`` is the protocol level
    when it was read (to answer in the client's version), else None."""

    def __init__(self, problem: str, *, level: int | None = None) -> None:
        super().__init__(f"Not an acceptable MQTT CONNECT packet: {problem}")
        self.problem = problem
        self.level = level


@dataclass(frozen=True)
class ConnectPacket:
    """A parsed CONNECT; ``head`` (protocol name to keep alive, flags without user name and password),
    ``properties`` and ``will`` are the raw bytes a rewrite copies."""

    level: int
    client_id: str
    username: str | None
    password: bytes | None
    flags: int
    head: bytes
    properties: bytes
    will: bytes


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value % 128, value // 128
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def packet_length(buffer: bytes) -> int | None:
    """How many bytes the packet starting ``buffer`` has in all, or None until its fixed header is complete.

    Raises:
        ConnectPacketError: the packet is not a CONNECT, or larger than :data:`MAX_CONNECT_BYTES`.
    """
    if not buffer:
        return None
    if buffer[0] != _CONNECT:
        raise ConnectPacketError(f"the first packet has type byte 0x{buffer[0]:02x}, not CONNECT (0x10)")
    length, multiplier = 0, 1
    for position in range(1, 5):
        if position >= len(buffer):
            return None
        byte = buffer[position]
        length += (byte & 0x7F) * multiplier
        multiplier *= 128
        if not byte & 0x80:
            total = position + 1 + length
            if total > MAX_CONNECT_BYTES:
                raise ConnectPacketError(f"it is {total} bytes; at most {MAX_CONNECT_BYTES} are accepted")
            return total
    raise ConnectPacketError("its remaining length takes more than four bytes")


class _Reader:
    def __init__(self, data: bytes, level: int | None = None) -> None:
        self.data = data
        self.at = 0
        self.level = level

    def fail(self, problem: str) -> ConnectPacketError:
        return ConnectPacketError(problem, level=self.level)

    def take(self, count: int, what: str) -> bytes:
        if self.at + count > len(self.data):
            raise self.fail(f"it ends inside its {what}")
        piece = self.data[self.at : self.at + count]
        self.at += count
        return piece

    def binary(self, what: str) -> bytes:
        size = int.from_bytes(self.take(2, what), "big")
        return self.take(size, what)

    def text(self, what: str) -> str:
        raw = self.binary(what)
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"its {what} is not UTF-8") from None
        if "\0" in value:
            raise self.fail(f"its {what} contains U+0000")
        return value

    def varint(self, what: str) -> int:
        value, multiplier = 0, 1
        for _ in range(4):
            byte = self.take(1, what)[0]
            value += (byte & 0x7F) * multiplier
            multiplier *= 128
            if not byte & 0x80:
                return value
        raise self.fail(f"its {what} length takes more than four bytes")


def parse_connect(packet: bytes) -> ConnectPacket:
    """Read one whole CONNECT packet (as long as :func:`packet_length` says).

    Raises:
        ConnectPacketError: what is wrong with it.
    """
    total = packet_length(packet)
    if total is None or total != len(packet):
        raise ConnectPacketError(f"it is {len(packet)} bytes but its header says {total}")
    header_size = total - _remaining_length(packet)
    reader = _Reader(packet)
    reader.at = header_size
    name = reader.binary("protocol name")
    level = reader.take(1, "protocol level")[0]
    if name == b"MQIsdp" or level not in _PROTOCOL_NAMES:
        raise ConnectPacketError(f"protocol level {level} is not MQTT 3.1.1 (4) or 5", level=level)
    reader.level = level
    if name != _PROTOCOL_NAMES[level]:
        raise reader.fail(f"its protocol name is {name!r}, not b'MQTT'")
    flags = reader.take(1, "connect flags")[0]
    if flags & _RESERVED:
        raise reader.fail("its reserved connect flag is set")
    if not flags & _WILL and flags & 0x38:
        raise reader.fail("it has will QoS or retain without a will")
    if (flags >> 3) & 0x03 == 3:
        raise reader.fail("its will QoS is 3")
    if level == MQTT_311 and flags & _PASSWORD and not flags & _USERNAME:
        raise reader.fail("it has a password without a user name")
    reader.take(2, "keep alive")
    head_end = reader.at
    properties_start = reader.at
    if level == MQTT_5:
        reader.take(reader.varint("properties"), "properties")
    properties = packet[properties_start : reader.at]
    client_id = reader.text("client id")
    will_start = reader.at
    if flags & _WILL:
        if level == MQTT_5:
            reader.take(reader.varint("will properties"), "will properties")
        reader.text("will topic")
        reader.binary("will payload")
    will = packet[will_start : reader.at]
    username = reader.text("user name") if flags & _USERNAME else None
    password = reader.binary("password") if flags & _PASSWORD else None
    if reader.at != len(packet):
        raise reader.fail(f"{len(packet) - reader.at} bytes follow its last field")
    head = bytearray(packet[header_size:head_end])
    head[-3] = flags & ~(_USERNAME | _PASSWORD)
    return ConnectPacket(level, client_id, username, password, flags, bytes(head), properties, will)


def _remaining_length(packet: bytes) -> int:
    length, multiplier = 0, 1
    for byte in packet[1:5]:
        length += (byte & 0x7F) * multiplier
        multiplier *= 128
        if not byte & 0x80:
            break
    return length


def _string(value: bytes) -> bytes:
    return len(value).to_bytes(2, "big") + value


def rewrite_connect(packet: ConnectPacket, username: str, password: str) -> bytes:
    """``packet`` with ``username`` and ``password`` in place of the device's own (or added)."""
    head = bytearray(packet.head)
    head[-3] |= _USERNAME | _PASSWORD
    body = (
        bytes(head)
        + packet.properties
        + _string(packet.client_id.encode("utf-8"))
        + packet.will
        + _string(username.encode("utf-8"))
        + _string(password.encode("utf-8"))
    )
    return bytes([_CONNECT]) + _varint(len(body)) + body


def connack_refused(level: int | None, *, not_authorized: bool = True) -> bytes:
    """A CONNACK refusing the connection in the client's protocol version: "not authorized" (3.1.1 return code
    5, MQTT 5 reason 0x87), or else "unacceptable protocol version" (1, 0x84) / "malformed packet" (0x81)."""
    if level == MQTT_5:
        return bytes([0x20, 0x03, 0x00, 0x87 if not_authorized else 0x81, 0x00])
    return bytes([0x20, 0x02, 0x00, 0x05 if not_authorized else 0x01])
