"""Client devices: what a core device and the cloud say to each other so that plain MQTT devices can connect to
the core (docs/client-devices.md; the Greengrass client-device components' cloud calls, over MQTT).

Three conversations, all under the core device's own namespace ``P = $aws/things/<core>/edgewise`` (which the
cloud's default policy already grants the core), each request echoing its ``clientToken`` in the answer:

1. The trust list. The core publishes :func:`build_get_request` on :func:`get_topic`; the cloud answers on
   :func:`get_reply_topic` ``accepted`` with a :class:`ClientDeviceList` (:func:`build_client_device_list`: the
   client devices associated with the core and the fingerprints of their ACTIVE certificates, the cloud CA that
   signs device certificates and its CRL) or ``rejected`` with a :class:`ClientDeviceRejection`. The cloud
   publishes :func:`build_changed` on :func:`changed_topic` when the list may have changed, so that the core asks
   again.
2. Connectivity (Greengrass's UpdateConnectivityInfo). The core publishes a :class:`ConnectivityUpdate` on
   :func:`connectivity_topic`; the cloud answers :class:`ConnectivityAccepted` (the new version) or a rejection
   on :func:`connectivity_reply_topic`.
3. The core device CA (Greengrass's PutCertificateAuthorities). The core publishes a :class:`CaUpdate` (the
   local CA that signs its broker's server certificate) on :func:`ca_topic`; the cloud answers on
   :func:`ca_reply_topic` with :func:`build_ca_accepted` or a rejection. Discovery hands this CA to client
   devices.

Every payload is compact JSON. Parsers check every field and raise :class:`ClientDeviceProtocolError` naming
the field (``connectivityInfo[2].portNumber``) and the problem; unknown fields are refused. A request from the
core is at most :data:`MAX_REQUEST_BYTES`, the trust list at most :data:`MAX_LIST_BYTES`.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any, Final, Literal

from edgewise.errors import EdgewiseError
from edgewise.names import THING_NAME

__all__ = [
    "ACCEPTED",
    "CA_FILTER",
    "CLIENT_TOKEN_MAX_LENGTH",
    "CONNECTIVITY_FILTER",
    "GET_FILTER",
    "INTERNAL_ERROR",
    "INVALID_PAYLOAD",
    "MAX_CA_CERTIFICATES",
    "MAX_CA_PEM_LENGTH",
    "MAX_CONNECTIVITY_ENTRIES",
    "MAX_CRL_LENGTH",
    "MAX_HOST_LENGTH",
    "MAX_ID_LENGTH",
    "MAX_LIST_BYTES",
    "MAX_METADATA_LENGTH",
    "MAX_REQUEST_BYTES",
    "REJECTED",
    "THROTTLED",
    "CaUpdate",
    "ClientCertificate",
    "ClientDevice",
    "ClientDeviceList",
    "ClientDeviceProtocolError",
    "ClientDeviceRejection",
    "ConnectivityAccepted",
    "ConnectivityEntry",
    "ConnectivityUpdate",
    "Outcome",
    "RejectionCode",
    "build_ca_accepted",
    "build_ca_update",
    "build_changed",
    "build_client_device_list",
    "build_connectivity_accepted",
    "build_connectivity_update",
    "build_get_request",
    "build_rejection",
    "ca_reply_topic",
    "ca_topic",
    "changed_topic",
    "client_token_of",
    "connectivity_reply_topic",
    "connectivity_topic",
    "core_of_request",
    "get_reply_topic",
    "get_topic",
    "parse_ca_accepted",
    "parse_ca_update",
    "parse_changed",
    "parse_client_device_list",
    "parse_connectivity_accepted",
    "parse_connectivity_entries",
    "parse_connectivity_update",
    "parse_get_request",
    "parse_rejection",
]

Outcome = Literal["accepted", "rejected"]
ACCEPTED: Final = "accepted"
REJECTED: Final = "rejected"
#: Why the cloud refused a request: it is malformed (do not send it again as it is), the cloud is busy, or the
#: cloud failed (both worth asking again).
RejectionCode = Literal["InvalidPayload", "Throttled", "InternalError"]
INVALID_PAYLOAD: Final = "InvalidPayload"
THROTTLED: Final = "Throttled"
INTERNAL_ERROR: Final = "InternalError"
_CODES: Final[tuple[RejectionCode, ...]] = (INVALID_PAYLOAD, THROTTLED, INTERNAL_ERROR)

CLIENT_TOKEN_MAX_LENGTH: Final = 64
#: A message from a device, as everywhere in docs/device-protocol.md.
MAX_REQUEST_BYTES: Final = 128 * 1024
#: The trust list the cloud sends (a message to a device may be up to the broker's packet size, 4 MiB).
MAX_LIST_BYTES: Final = 256 * 1024
MAX_CONNECTIVITY_ENTRIES: Final = 64
MAX_ID_LENGTH: Final = 255
MAX_HOST_LENGTH: Final = 255
MAX_METADATA_LENGTH: Final = 2048
MAX_CA_CERTIFICATES: Final = 8
MAX_CA_PEM_LENGTH: Final = 16 * 1024
MAX_CRL_LENGTH: Final = 128 * 1024
#: Timestamps are milliseconds since the epoch, signed 64-bit in the cloud's store.
_MAX_INTEGER: Final = 2**63 - 1

_THINGS: Final = "$aws/things"
_GET: Final = "clientdevices/get"
_CHANGED: Final = "clientdevices/changed"
_CONNECTIVITY: Final = "connectivity/update"
_CA: Final = "clientdevices/ca/update"
#: What the cloud subscribes to: every core's requests of each conversation.
GET_FILTER: Final = f"{_THINGS}/+/edgewise/{_GET}"
CONNECTIVITY_FILTER: Final = f"{_THINGS}/+/edgewise/{_CONNECTIVITY}"
CA_FILTER: Final = f"{_THINGS}/+/edgewise/{_CA}"
_SEPARATORS: Final = (",", ":")
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
_HOST_NAME: Final = re.compile(
    r"(?=.{1,253}\.?$)[a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_])?(\.[a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_])?)*\.?"
)
_CERTIFICATE_BEGIN: Final = "-----BEGIN CERTIFICATE-----"
_CERTIFICATE_END: Final = "-----END CERTIFICATE-----"
_CRL_BEGIN: Final = "-----BEGIN X509 CRL-----"
_CRL_END: Final = "-----END X509 CRL-----"


class ClientDeviceProtocolError(EdgewiseError):
    """A client-device payload that breaks the protocol: ``field`` names where (``clientDevices[0].thingName``),
    ``problem`` says what is wrong. The cloud answers a request that raises it with ``InvalidPayload`` and this
    message."""

    code: Final[RejectionCode] = INVALID_PAYLOAD

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"Field {field!r} is invalid: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class ClientCertificate:
    """An ACTIVE certificate of a client device: its cloud id and the SHA-256 of its DER, in lowercase hex."""

    certificate_id: str
    sha256: str


@dataclass(frozen=True)
class ClientDevice:
    """A client device associated with the core, and its ACTIVE certificates."""

    thing_name: str
    certificates: tuple[ClientCertificate, ...]


@dataclass(frozen=True)
class ClientDeviceList:
    """What the core may trust: its client devices, the PEMs of the cloud CA that issues device certificates,
    that CA's CRL (PEM, or None) and when the cloud made the list (ms since the epoch)."""

    client_devices: tuple[ClientDevice, ...]
    ca_certificates: tuple[str, ...]
    crl: str | None
    timestamp: int


@dataclass(frozen=True)
class ConnectivityEntry:
    """One address client devices may reach the core's broker at (Greengrass's ConnectivityInfo)."""

    id: str
    host_address: str
    port_number: int
    metadata: str = ""


@dataclass(frozen=True)
class ConnectivityUpdate:
    """The core's addresses, replacing those the cloud has."""

    client_token: str
    connectivity_info: tuple[ConnectivityEntry, ...]


@dataclass(frozen=True)
class ConnectivityAccepted:
    """The cloud stored a connectivity update as ``version`` (counting from 1 per core)."""

    client_token: str
    version: int


@dataclass(frozen=True)
class CaUpdate:
    """The core's local CA certificates (PEM), replacing those the cloud has."""

    client_token: str
    ca_certificates: tuple[str, ...]


@dataclass(frozen=True)
class ClientDeviceRejection:
    """The cloud refused a request. ``client_token`` is None when the request carried no readable one."""

    client_token: str | None
    code: RejectionCode
    message: str


# -- topics ---------------------------------------------------------------------------------------------


def _prefix(core: str) -> str:
    return f"{_THINGS}/{core}/edgewise"


def get_topic(core: str) -> str:
    """The topic ``core`` asks for its trust list on."""
    return f"{_prefix(core)}/{_GET}"


def get_reply_topic(core: str, outcome: Outcome) -> str:
    """The topic the cloud answers ``core``'s trust-list requests on."""
    return f"{get_topic(core)}/{outcome}"


def changed_topic(core: str) -> str:
    """The topic the cloud tells ``core`` on that its trust list may have changed."""
    return f"{_prefix(core)}/{_CHANGED}"


def connectivity_topic(core: str) -> str:
    """The topic ``core`` reports its addresses on."""
    return f"{_prefix(core)}/{_CONNECTIVITY}"


def connectivity_reply_topic(core: str, outcome: Outcome) -> str:
    """The topic the cloud answers ``core``'s connectivity updates on."""
    return f"{connectivity_topic(core)}/{outcome}"


def ca_topic(core: str) -> str:
    """The topic ``core`` reports its local CA on."""
    return f"{_prefix(core)}/{_CA}"


def ca_reply_topic(core: str, outcome: Outcome) -> str:
    """The topic the cloud answers ``core``'s CA updates on."""
    return f"{ca_topic(core)}/{outcome}"


def core_of_request(topic: str) -> tuple[str, Literal["get", "connectivity", "ca"]] | None:
    """The core device and the conversation of a request topic, or None when ``topic`` is not one."""
    if not topic.startswith(f"{_THINGS}/"):
        return None
    core, _, rest = topic[len(_THINGS) + 1 :].partition("/edgewise/")
    if THING_NAME.fullmatch(core) is None:
        return None
    if rest == _GET:
        return core, "get"
    if rest == _CONNECTIVITY:
        return core, "connectivity"
    if rest == _CA:
        return core, "ca"
    return None


# -- reading --------------------------------------------------------------------------------------------


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=_SEPARATORS).encode()


def _object(
    payload: bytes, limit: int, fields: tuple[str, ...], optional: tuple[str, ...] = ()
) -> dict[str, Any]:
    if len(payload) > limit:
        raise ClientDeviceProtocolError("payload", f"is {len(payload)} bytes; at most {limit} are allowed")
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ClientDeviceProtocolError("payload", f"is not JSON: {str(exc)[:200]}") from None
    if not isinstance(body, dict):
        raise ClientDeviceProtocolError("payload", "must be a JSON object")
    _known_fields(body, "", fields + optional)
    for name in fields:
        if name not in body:
            raise ClientDeviceProtocolError(name, "is required")
    return body


def _known_fields(body: dict[str, Any], where: str, fields: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise ClientDeviceProtocolError(
            f"{where}{unknown[0][:80]}", f"is not a field here (the fields are {', '.join(fields)})"
        )


def _token(value: Any, field: str = "clientToken") -> str:
    if not isinstance(value, str) or not 0 < len(value) <= CLIENT_TOKEN_MAX_LENGTH:
        raise ClientDeviceProtocolError(
            field, f"must be a string of 1 to {CLIENT_TOKEN_MAX_LENGTH} characters"
        )
    return value


def _integer(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ClientDeviceProtocolError(field, f"must be an integer from {low} to {high}")
    return value


def _text(value: Any, field: str, low: int, high: int) -> str:
    if not isinstance(value, str) or not low <= len(value) <= high:
        raise ClientDeviceProtocolError(field, f"must be a string of {low} to {high} characters")
    if any(ord(char) < 0x20 or 0xD800 <= ord(char) <= 0xDFFF for char in value):
        raise ClientDeviceProtocolError(field, "must not contain control characters or lone surrogates")
    return value


def _list(value: Any, field: str, most: int) -> list[Any]:
    if not isinstance(value, list):
        raise ClientDeviceProtocolError(field, "must be a list")
    if len(value) > most:
        raise ClientDeviceProtocolError(field, f"has {len(value)} entries; at most {most} are allowed")
    return value


def _pem(value: Any, field: str, begin: str, end: str, longest: int) -> str:
    if not isinstance(value, str) or not value.strip().startswith(begin) or not value.strip().endswith(end):
        raise ClientDeviceProtocolError(field, f"must be a PEM text from {begin} to {end}")
    if len(value) > longest:
        raise ClientDeviceProtocolError(field, f"is {len(value)} characters; at most {longest} are allowed")
    if not value.isascii():
        raise ClientDeviceProtocolError(field, "must be ASCII, as PEM is")
    return value


def _ca_certificates(value: Any, field: str = "caCertificates") -> tuple[str, ...]:
    items = _list(value, field, MAX_CA_CERTIFICATES)
    return tuple(
        _pem(item, f"{field}[{index}]", _CERTIFICATE_BEGIN, _CERTIFICATE_END, MAX_CA_PEM_LENGTH)
        for index, item in enumerate(items)
    )


def client_token_of(payload: bytes) -> str | None:
    """The request's ``clientToken`` when it has a valid one, to echo even in a rejection."""
    if len(payload) > MAX_LIST_BYTES:
        return None
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    token = body.get("clientToken") if isinstance(body, dict) else None
    return token if isinstance(token, str) and 0 < len(token) <= CLIENT_TOKEN_MAX_LENGTH else None


# -- the trust list -------------------------------------------------------------------------------------


def build_get_request(client_token: str) -> bytes:
    """The payload of a trust-list request."""
    return _dumps({"clientToken": client_token})


def parse_get_request(payload: bytes) -> str:
    """The ``clientToken`` of a trust-list request.

    Raises:
        ClientDeviceProtocolError: naming the field and the problem.
    """
    return _token(_object(payload, MAX_REQUEST_BYTES, ("clientToken",))["clientToken"])


def build_client_device_list(client_token: str, device_list: ClientDeviceList) -> bytes:
    """The payload of the cloud's answer to a trust-list request.

    Raises:
        ClientDeviceProtocolError: ``clientDevices`` when the list would be over :data:`MAX_LIST_BYTES`.
    """
    payload = _dumps(
        {
            "clientToken": client_token,
            "timestamp": device_list.timestamp,
            "clientDevices": [
                {
                    "thingName": device.thing_name,
                    "certificates": [
                        {"certificateId": certificate.certificate_id, "sha256": certificate.sha256}
                        for certificate in device.certificates
                    ],
                }
                for device in device_list.client_devices
            ],
            "caCertificates": list(device_list.ca_certificates),
            "crl": device_list.crl,
        }
    )
    if len(payload) > MAX_LIST_BYTES:
        raise ClientDeviceProtocolError(
            "clientDevices",
            f"{len(device_list.client_devices)} client devices make {len(payload)} bytes; "
            f"a list is at most {MAX_LIST_BYTES}",
        )
    return payload


def _certificate(value: Any, field: str) -> ClientCertificate:
    if not isinstance(value, dict):
        raise ClientDeviceProtocolError(field, "must be an object with certificateId and sha256")
    _known_fields(value, f"{field}.", ("certificateId", "sha256"))
    certificate_id, sha256 = value.get("certificateId"), value.get("sha256")
    if not isinstance(certificate_id, str) or _HEX64.fullmatch(certificate_id) is None:
        raise ClientDeviceProtocolError(f"{field}.certificateId", "must be 64 lowercase hex digits")
    if not isinstance(sha256, str) or _HEX64.fullmatch(sha256) is None:
        raise ClientDeviceProtocolError(
            f"{field}.sha256", "must be 64 lowercase hex digits (SHA-256 of the DER)"
        )
    return ClientCertificate(certificate_id, sha256)


def _client_device(value: Any, field: str) -> ClientDevice:
    if not isinstance(value, dict):
        raise ClientDeviceProtocolError(field, "must be an object with thingName and certificates")
    _known_fields(value, f"{field}.", ("thingName", "certificates"))
    name = value.get("thingName")
    if not isinstance(name, str) or THING_NAME.fullmatch(name) is None:
        raise ClientDeviceProtocolError(
            f"{field}.thingName", "must be a thing name (1 to 128 letters, digits and ':_-')"
        )
    values = value.get("certificates")
    if not isinstance(values, list):
        raise ClientDeviceProtocolError(f"{field}.certificates", "must be a list")
    return ClientDevice(
        name, tuple(_certificate(item, f"{field}.certificates[{index}]") for index, item in enumerate(values))
    )


def parse_client_device_list(payload: bytes) -> ClientDeviceList:
    """Parse and check the cloud's trust list (its token: :func:`client_token_of`).

    Raises:
        ClientDeviceProtocolError: naming the field and the problem.
    """
    body = _object(
        payload, MAX_LIST_BYTES, ("clientToken", "timestamp", "clientDevices", "caCertificates", "crl")
    )
    _token(body["clientToken"])
    timestamp = _integer(body["timestamp"], "timestamp", 0, _MAX_INTEGER)
    values = body["clientDevices"]
    if not isinstance(values, list):
        raise ClientDeviceProtocolError("clientDevices", "must be a list")
    devices = tuple(_client_device(item, f"clientDevices[{index}]") for index, item in enumerate(values))
    seen: set[str] = set()
    for index, device in enumerate(devices):
        if device.thing_name in seen:
            raise ClientDeviceProtocolError(f"clientDevices[{index}].thingName", "is listed twice")
        seen.add(device.thing_name)
    crl = body["crl"]
    if crl is not None:
        crl = _pem(crl, "crl", _CRL_BEGIN, _CRL_END, MAX_CRL_LENGTH)
    return ClientDeviceList(devices, _ca_certificates(body["caCertificates"]), crl, timestamp)


def build_changed(timestamp: int) -> bytes:
    """The payload telling a core its trust list may have changed, at ``timestamp`` (ms since the epoch)."""
    return _dumps({"timestamp": timestamp})


def parse_changed(payload: bytes) -> int:
    """The timestamp of a change notice.

    Raises:
        ClientDeviceProtocolError: naming the field and the problem.
    """
    return _integer(
        _object(payload, MAX_REQUEST_BYTES, ("timestamp",))["timestamp"], "timestamp", 0, _MAX_INTEGER
    )


# -- connectivity ---------------------------------------------------------------------------------------


def _host(value: Any, field: str) -> str:
    host = _text(value, field, 1, MAX_HOST_LENGTH)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if _HOST_NAME.fullmatch(host) is None:
            raise ClientDeviceProtocolError(
                field, f"{host[:80]!r} is neither an IP address nor a DNS name"
            ) from None
    return host


def _connectivity_entry(value: Any, field: str) -> ConnectivityEntry:
    fields = ("id", "hostAddress", "portNumber", "metadata")
    if not isinstance(value, dict):
        raise ClientDeviceProtocolError(field, f"must be an object with {', '.join(fields)}")
    _known_fields(value, f"{field}.", fields)
    for name in fields[:3]:
        if name not in value:
            raise ClientDeviceProtocolError(f"{field}.{name}", "is required")
    return ConnectivityEntry(
        id=_text(value["id"], f"{field}.id", 1, MAX_ID_LENGTH),
        host_address=_host(value["hostAddress"], f"{field}.hostAddress"),
        port_number=_integer(value["portNumber"], f"{field}.portNumber", 1, 65535),
        metadata=_text(value.get("metadata", ""), f"{field}.metadata", 0, MAX_METADATA_LENGTH),
    )


def parse_connectivity_entries(value: Any, field: str = "connectivityInfo") -> tuple[ConnectivityEntry, ...]:
    """Check decoded JSON ``value`` as a list of connectivity entries (``metadata`` may be left out), the way
    the MQTT update and the API both take them.

    Raises:
        ClientDeviceProtocolError: naming the field (``connectivityInfo[1].portNumber``) and the problem.
    """
    items = _list(value, field, MAX_CONNECTIVITY_ENTRIES)
    entries = tuple(_connectivity_entry(item, f"{field}[{index}]") for index, item in enumerate(items))
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        if entry.id in seen:
            raise ClientDeviceProtocolError(f"{field}[{index}].id", f"{entry.id[:80]!r} is used twice")
        seen.add(entry.id)
    return entries


def _entry_body(entry: ConnectivityEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "hostAddress": entry.host_address,
        "portNumber": entry.port_number,
        "metadata": entry.metadata,
    }


def build_connectivity_update(update: ConnectivityUpdate) -> bytes:
    """The payload of ``update``."""
    return _dumps(
        {
            "clientToken": update.client_token,
            "connectivityInfo": [_entry_body(entry) for entry in update.connectivity_info],
        }
    )


def parse_connectivity_update(payload: bytes) -> ConnectivityUpdate:
    """Parse and check a connectivity update.

    Raises:
        ClientDeviceProtocolError: naming the field and the problem.
    """
    body = _object(payload, MAX_REQUEST_BYTES, ("clientToken", "connectivityInfo"))
    return ConnectivityUpdate(
        _token(body["clientToken"]), parse_connectivity_entries(body["connectivityInfo"])
    )


def build_connectivity_accepted(reply: ConnectivityAccepted) -> bytes:
    """The payload of ``reply``."""
    return _dumps({"clientToken": reply.client_token, "version": reply.version})


def parse_connectivity_accepted(payload: bytes) -> ConnectivityAccepted:
    """Parse the cloud's acceptance of a connectivity update.

    Raises:
        ClientDeviceProtocolError: naming the field and the problem.
    """
    body = _object(payload, MAX_REQUEST_BYTES, ("clientToken", "version"))
    return ConnectivityAccepted(
        _token(body["clientToken"]), _integer(body["version"], "version", 1, _MAX_INTEGER)
    )


# -- the core device CA ---------------------------------------------------------------------------------


def build_ca_update(update: CaUpdate) -> bytes:
    """The payload of ``update``."""
    return _dumps({"clientToken": update.client_token, "caCertificates": list(update.ca_certificates)})


def parse_ca_update(payload: bytes) -> CaUpdate:
    """Parse and check a CA update (1 to :data:`MAX_CA_CERTIFICATES` PEM certificates).

    Raises:
        ClientDeviceProtocolError: naming the field and the problem.
    """
    body = _object(payload, MAX_REQUEST_BYTES, ("clientToken", "caCertificates"))
    token = _token(body["clientToken"])
    certificates = _ca_certificates(body["caCertificates"])
    if not certificates:
        raise ClientDeviceProtocolError("caCertificates", "must list at least one certificate")
    return CaUpdate(token, certificates)


def build_ca_accepted(client_token: str) -> bytes:
    """The payload of the cloud's acceptance of a CA update."""
    return _dumps({"clientToken": client_token})


def parse_ca_accepted(payload: bytes) -> str:
    """The ``clientToken`` of the cloud's acceptance of a CA update.

    Raises:
        ClientDeviceProtocolError: naming the field and the problem.
    """
    return _token(_object(payload, MAX_REQUEST_BYTES, ("clientToken",))["clientToken"])


# -- rejections -----------------------------------------------------------------------------------------


def build_rejection(reply: ClientDeviceRejection) -> bytes:
    """The payload of ``reply`` (any of the three conversations)."""
    body: dict[str, Any] = {}
    if reply.client_token is not None:
        body["clientToken"] = reply.client_token
    body.update(code=reply.code, message=reply.message)
    return _dumps(body)


def parse_rejection(payload: bytes) -> ClientDeviceRejection:
    """Parse a rejection; a code this module does not know reads as ``InternalError``.

    Raises:
        ClientDeviceProtocolError: naming the field and the problem.
    """
    body = _object(payload, MAX_REQUEST_BYTES, ("code", "message"), ("clientToken",))
    token = _token(body["clientToken"]) if "clientToken" in body else None
    message = body["message"]
    if not isinstance(message, str):
        raise ClientDeviceProtocolError("message", "must be a string")
    code = body["code"]
    for known in _CODES:
        if code == known:
            return ClientDeviceRejection(token, known, message)
    return ClientDeviceRejection(token, INTERNAL_ERROR, f"{code!r:.100}: {message}")
