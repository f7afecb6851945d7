"""The IP detector (``aws.greengrass.clientdevices.IPDetector``): finds the core device's addresses and reports
them to the cloud, where discovery hands them to client devices.

As Greengrass's detector does, it reads the addresses of the host's interfaces that are up, keeps those its
configuration asks for (IPv4 without loopback and link-local addresses by default), and when that set changes,
replaces the core device's connectivity information in the cloud with one entry per address: ``id`` and
``hostAddress`` the address, ``portNumber`` the configured ``defaultPort``, empty ``metadata``. An empty set is
not reported. The cloud's answer comes by ``clientToken`` (:mod:`edgewise.protocol.client_devices`); a report
that is not accepted (offline, throttled, no answer) is sent again with a growing delay, one refused as invalid
is not. ``on_change`` gets every new set, reported or not, so that the broker's server certificate can name the
addresses.

The addresses come from the kernel over rtnetlink (``RTM_GETLINK`` and ``RTM_GETADDR`` dumps on an
``AF_NETLINK`` socket, the source ``ip addr`` reads), in plain Python; where there is no rtnetlink, from
resolving the host name.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from edgewise.protocol.client_devices import (
    ACCEPTED,
    INVALID_PAYLOAD,
    REJECTED,
    ClientDeviceProtocolError,
    ConnectivityEntry,
    ConnectivityUpdate,
    build_connectivity_update,
    client_token_of,
    connectivity_reply_topic,
    connectivity_topic,
    parse_connectivity_accepted,
    parse_rejection,
)
from edgewise.runtime.clientdevices.errors import ClientDeviceConfigurationError
from edgewise.runtime.clientdevices.names import IP_DETECTOR
from edgewise.runtime.cloudlink.errors import CloudLinkError

if TYPE_CHECKING:
    from edgewise.runtime.cloudlink import CloudLink, CloudMessage, CloudSubscription

logger = logging.getLogger(__name__)

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
ChangeListener = Callable[[list[ConnectivityEntry]], None]

DEFAULT_PORT: Final = 8883
#: Seconds between two looks at the host's addresses.
DEFAULT_INTERVAL: Final = 60.0
_REPLY_TIMEOUT_S: Final = 30.0
_RETRY_MIN_S: Final = 5.0
_RETRY_MAX_S: Final = 300.0
_MAX_EXCLUDED: Final = 256
#: The configuration keys and their defaults (Greengrass's IP detector 2.2).
_FLAGS: Final[Mapping[str, bool]] = {
    "includeIPv4LoopbackAddrs": False,
    "includeIPv4LinkLocalAddrs": False,
    "includeIPv4Addrs": True,
    "includeIPv6LoopbackAddrs": False,
    "includeIPv6LinkLocalAddrs": False,
    "includeIPv6Addrs": False,
}
_KEYS: Final = (*_FLAGS, "defaultPort", "excludedIPAddresses", "accessControl")


@dataclass(frozen=True)
class IpDetectorSettings:
    """Which addresses are reported, and with which port."""

    include_ipv4: bool = True
    include_ipv4_loopback: bool = False
    include_ipv4_link_local: bool = False
    include_ipv6: bool = False
    include_ipv6_loopback: bool = False
    include_ipv6_link_local: bool = False
    default_port: int = DEFAULT_PORT  #: the local broker's port client devices connect to
    excluded: frozenset[IpAddress] = frozenset()  #: ``excludedIPAddresses``


def parse_ip_detector_settings(configuration: Any) -> IpDetectorSettings:
    """The settings of a configuration in Greengrass's keys (``"true"`` and ``"8883"`` are accepted too).

    Raises:
        ClientDeviceConfigurationError: a value that cannot be used, naming its key.
    """
    if configuration is None:
        configuration = {}
    if not isinstance(configuration, Mapping):
        raise _error("(the configuration)", f"must be an object, not {type(configuration).__name__}")
    unknown = sorted(str(key) for key in configuration if key not in _KEYS)
    if unknown:
        raise _error(unknown[0], f"is not supported (the keys are {', '.join(_KEYS)})")
    flags = {key: _flag(configuration.get(key, default), key) for key, default in _FLAGS.items()}
    return IpDetectorSettings(
        include_ipv4=flags["includeIPv4Addrs"],
        include_ipv4_loopback=flags["includeIPv4LoopbackAddrs"],
        include_ipv4_link_local=flags["includeIPv4LinkLocalAddrs"],
        include_ipv6=flags["includeIPv6Addrs"],
        include_ipv6_loopback=flags["includeIPv6LoopbackAddrs"],
        include_ipv6_link_local=flags["includeIPv6LinkLocalAddrs"],
        default_port=_port(configuration.get("defaultPort", DEFAULT_PORT)),
        excluded=_excluded(configuration.get("excludedIPAddresses")),
    )


def _flag(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _error(key, f"must be true or false, not {value!r:.80}")


def _port(value: Any) -> int:
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = int(value.strip())
    if number is None or not 1 <= number <= 65535:
        raise _error("defaultPort", f"must be a port number from 1 to 65535, not {value!r:.80}")
    return number


def _excluded(value: Any) -> frozenset[IpAddress]:
    if value is None:
        return frozenset()
    if not isinstance(value, list):
        raise _error("excludedIPAddresses", f"must be a list of IP addresses, not {type(value).__name__}")
    if len(value) > _MAX_EXCLUDED:
        raise _error(
            "excludedIPAddresses", f"lists {len(value)} addresses; at most {_MAX_EXCLUDED} are allowed"
        )
    excluded = set()
    for index, item in enumerate(value):
        try:
            if not isinstance(item, str):
                raise TypeError(item)  # ipaddress would take a number as an address
            excluded.add(ipaddress.ip_address(item.strip()))
        except (TypeError, ValueError):
            raise _error(
                f"excludedIPAddresses[{index}]", f"must be an IP address, not {item!r:.80}"
            ) from None
    return frozenset(excluded)


def _error(key: str, problem: str) -> ClientDeviceConfigurationError:
    return ClientDeviceConfigurationError(IP_DETECTOR, key, problem)


# -- the host's addresses -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class InterfaceAddress:
    """An address of one of the host's network interfaces."""

    interface: str
    address: IpAddress
    up: bool = True  #: the interface is administratively up


def select_addresses(addresses: Sequence[InterfaceAddress], settings: IpDetectorSettings) -> list[str]:
    """The addresses to report, in the order found, each once: interfaces that are up, the kinds ``settings``
    asks for, none of ``excludedIPAddresses``. IPv6 link-local addresses carry their interface (``fe80::1%eth0``),
    without which a client could not reach them."""
    selected: list[str] = []
    for entry in addresses:
        address = entry.address
        if not entry.up or address in settings.excluded or address.is_unspecified or address.is_multicast:
            continue
        if isinstance(address, ipaddress.IPv4Address):
            wanted = settings.include_ipv4 and (
                (settings.include_ipv4_loopback or not address.is_loopback)
                and (settings.include_ipv4_link_local or not address.is_link_local)
            )
            text = str(address)
        else:
            wanted = settings.include_ipv6 and (
                (settings.include_ipv6_loopback or not address.is_loopback)
                and (settings.include_ipv6_link_local or not address.is_link_local)
            )
            text = f"{address}%{entry.interface}" if address.is_link_local else str(address)
        if wanted and text not in selected:
            selected.append(text)
    return selected


def connectivity_entries(addresses: Sequence[str], port: int) -> list[ConnectivityEntry]:
    """Greengrass's entries for ``addresses``: the address as ``id`` and ``hostAddress``, no metadata."""
    return [ConnectivityEntry(id=address, host_address=address, port_number=port) for address in addresses]


_RTM_NEWLINK: Final = 16
_RTM_GETLINK: Final = 18
_RTM_NEWADDR: Final = 20
_RTM_GETADDR: Final = 22
_NLM_F_REQUEST: Final = 0x1
_NLM_F_DUMP: Final = 0x300
_NLMSG_ERROR: Final = 2
_NLMSG_DONE: Final = 3
_IFA_ADDRESS: Final = 1
_IFA_LOCAL: Final = 2
_IFLA_IFNAME: Final = 3
_IFF_UP: Final = 0x1
_HEADER: Final = struct.Struct("=LHHLL")  # nlmsghdr: length, type, flags, sequence, port id
_IFINFOMSG: Final = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDRMSG: Final = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, index
_RTATTR: Final = struct.Struct("=HH")  # length, type


def host_addresses() -> list[InterfaceAddress]:
    """The addresses of the host's interfaces. Blocks briefly (a kernel round trip): call it in a thread."""
    try:
        return _netlink_addresses()
    except OSError as exc:
        logger.debug("rtnetlink is not available (%s); resolving the host name instead", exc)
    found = []
    for _, _, _, _, sockaddr in socket.getaddrinfo(socket.gethostname(), None, proto=socket.IPPROTO_TCP):
        with contextlib.suppress(ValueError):
            found.append(InterfaceAddress("?", ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])))
    return found


def _netlink_addresses() -> list[InterfaceAddress]:
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0) as channel:  # 0: NETLINK_ROUTE
        channel.settimeout(5)
        interfaces: dict[int, tuple[str, bool]] = {}
        for kind, body in _dump(channel, _RTM_GETLINK, _IFINFOMSG.pack(0, 0, 0, 0, 0), sequence=1):
            if kind != _RTM_NEWLINK or len(body) < _IFINFOMSG.size:
                continue
            _, _, index, flags, _ = _IFINFOMSG.unpack_from(body)
            attributes = dict(_attributes(body[_IFINFOMSG.size :]))
            name = attributes.get(_IFLA_IFNAME, b"").split(b"\0", 1)[0].decode(errors="replace")
            interfaces[index] = (name or str(index), bool(flags & _IFF_UP))
        found = []
        for kind, body in _dump(channel, _RTM_GETADDR, _IFADDRMSG.pack(0, 0, 0, 0, 0), sequence=2):
            if kind != _RTM_NEWADDR or len(body) < _IFADDRMSG.size:
                continue
            family, _, _, _, index = _IFADDRMSG.unpack_from(body)
            attributes = dict(_attributes(body[_IFADDRMSG.size :]))
            # For IPv4, IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer's on point-to-point).
            raw = attributes.get(_IFA_LOCAL) or attributes.get(_IFA_ADDRESS)
            if raw is None or (family, len(raw)) not in ((socket.AF_INET, 4), (socket.AF_INET6, 16)):
                continue
            name, up = interfaces.get(index, (str(index), False))
            found.append(InterfaceAddress(name, ipaddress.ip_address(raw), up))
        return found


def _dump(channel: socket.socket, kind: int, body: bytes, *, sequence: int) -> Iterator[tuple[int, bytes]]:
    """Send one dump request; yield each answer's (type, body) until the kernel says it is done."""
    channel.send(
        _HEADER.pack(_HEADER.size + len(body), kind, _NLM_F_REQUEST | _NLM_F_DUMP, sequence, 0) + body
    )
    while True:
        data = channel.recv(1 << 16)
        if not data:
            return
        offset = 0
        while offset + _HEADER.size <= len(data):
            length, answer, _, answered_sequence, _ = _HEADER.unpack_from(data, offset)
            if length < _HEADER.size:
                return
            if answered_sequence == sequence:
                if answer == _NLMSG_DONE:
                    return
                if answer == _NLMSG_ERROR:
                    raise OSError("rtnetlink refused the dump request")
                yield answer, data[offset + _HEADER.size : offset + length]
            offset += (length + 3) & ~3


def _attributes(data: bytes) -> Iterator[tuple[int, bytes]]:
    offset = 0
    while offset + _RTATTR.size <= len(data):
        length, kind = _RTATTR.unpack_from(data, offset)
        if length < _RTATTR.size:
            return
        yield kind, data[offset + _RTATTR.size : offset + length]
        offset += (length + 3) & ~3


# -- the detector ---------------------------------------------------------------------------------------------


class IpDetector:
    """Looks at the host's addresses every ``interval`` seconds and reports a new set to the cloud. Create,
    :meth:`start`, :meth:`close`; use from the event loop thread."""

    def __init__(
        self,
        settings: IpDetectorSettings,
        *,
        cloud: CloudLink | None,
        thing: str,
        on_change: ChangeListener | None = None,
        interval: float = DEFAULT_INTERVAL,
        reply_timeout: float = _REPLY_TIMEOUT_S,
        retry_delay: float = _RETRY_MIN_S,
        addresses: Callable[[], list[InterfaceAddress]] = host_addresses,
    ) -> None:
        self.settings = settings
        self._cloud = cloud
        self._thing = thing
        self._on_change = on_change
        self._interval = interval
        self._reply_timeout = reply_timeout
        self._retry_delay = retry_delay
        self._addresses = addresses
        self._detected: list[str] = []
        self._reported: list[str] | None = None  # the set the cloud accepted (or refused as invalid)
        self._replies: dict[str, asyncio.Future[CloudMessage]] = {}
        self._subscriptions: list[CloudSubscription] = []
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.version: int | None = None  #: the connectivity version the cloud gave the last accepted report

    @property
    def addresses(self) -> list[str]:
        """The addresses found last (those reported or about to be)."""
        return list(self._detected)

    async def start(self) -> None:
        """Subscribe to the cloud's answers and start looking; returns at once."""
        if self._task is not None:
            msg = "IpDetector.start() may be called once"
            raise RuntimeError(msg)
        if self._cloud is not None:
            for outcome in (ACCEPTED, REJECTED):
                self._subscriptions.append(
                    await self._cloud.subscribe(
                        connectivity_reply_topic(self._thing, outcome), self._answered, qos=1
                    )
                )
        else:
            logger.error(
                "%s: the runtime has no cloud link; addresses are found but not reported", IP_DETECTOR
            )
        self._task = asyncio.get_running_loop().create_task(self._run(), name="edgewise-ip-detector")

    async def close(self) -> None:
        """Stop looking and reporting. Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for subscription in self._subscriptions:
            subscription.unsubscribe()
        self._subscriptions.clear()
        for future in self._replies.values():
            future.cancel()
        self._replies.clear()

    def check_now(self) -> None:
        """Look at the addresses now instead of at the end of the interval."""
        self._wake.set()

    async def _run(self) -> None:
        failures = 0
        while True:
            self._wake.clear()  # a check asked for while this round runs makes the next one start at once
            await self._detect()
            delay = self._interval
            if self._cloud is not None and self._detected and self._detected != self._reported:
                if await self._report(self._cloud, list(self._detected)):
                    failures = 0
                else:
                    delay = min(delay, self._retry_delay * 2**failures, _RETRY_MAX_S)
                    failures = min(failures + 1, 16)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _detect(self) -> None:
        try:
            found = await asyncio.to_thread(self._addresses)
        except OSError as exc:
            logger.error("%s: cannot read the host's addresses: %s", IP_DETECTOR, exc)
            return
        selected = select_addresses(found, self.settings)
        if not selected:
            logger.debug("%s: no address to report", IP_DETECTOR)
            return
        if sorted(selected) == sorted(self._detected):
            return
        self._detected = selected
        logger.info("%s: the core device's addresses are %s", IP_DETECTOR, ", ".join(selected))
        if self._on_change is not None:
            try:
                self._on_change(connectivity_entries(selected, self.settings.default_port))
            except Exception:
                logger.exception("%s: the address change listener failed", IP_DETECTOR)

    async def _report(self, cloud: CloudLink, addresses: list[str]) -> bool:
        """One connectivity update; True when the cloud answered it for good (accepted, or refused as invalid)."""
        token = uuid.uuid4().hex
        entries = connectivity_entries(addresses, self.settings.default_port)
        future: asyncio.Future[CloudMessage] = asyncio.get_running_loop().create_future()
        self._replies[token] = future
        try:
            async with asyncio.timeout(self._reply_timeout):
                await cloud.wait_connected()  # offline, a spooled report would only be sent late, and again
                await cloud.publish(
                    connectivity_topic(self._thing),
                    build_connectivity_update(ConnectivityUpdate(token, tuple(entries))),
                    1,
                )
                answer = await future
        except TimeoutError:
            logger.warning(
                "%s: the cloud did not answer the connectivity update within %.0f s; will send it again",
                IP_DETECTOR,
                self._reply_timeout,
            )
            return False
        except CloudLinkError as exc:
            logger.warning("%s: cannot send the connectivity update: %s", IP_DETECTOR, exc)
            return False
        finally:
            self._replies.pop(token, None)
        return self._settle(answer, addresses)

    def _settle(self, answer: CloudMessage, addresses: list[str]) -> bool:
        try:
            if answer.topic == connectivity_reply_topic(self._thing, ACCEPTED):
                self.version = parse_connectivity_accepted(answer.payload).version
                self._reported = addresses
                logger.info(
                    "%s: reported %s to the cloud (connectivity version %d)",
                    IP_DETECTOR,
                    ", ".join(addresses),
                    self.version,
                )
                return True
            rejection = parse_rejection(answer.payload)
        except ClientDeviceProtocolError as exc:
            logger.warning(
                "%s: the cloud's answer to the connectivity update is not valid: %s", IP_DETECTOR, exc
            )
            return False
        if rejection.code == INVALID_PAYLOAD:
            self._reported = addresses  # sending the same update again would be refused again
            logger.error("%s: the cloud refused the connectivity update: %s", IP_DETECTOR, rejection.message)
            return True
        logger.warning(
            "%s: the cloud could not take the connectivity update (%s: %s); will send it again",
            IP_DETECTOR,
            rejection.code,
            rejection.message,
        )
        return False

    def _answered(self, message: CloudMessage) -> None:
        token = client_token_of(message.payload)
        future = self._replies.get(token) if token is not None else None
        if future is not None and not future.done():
            future.set_result(message)
