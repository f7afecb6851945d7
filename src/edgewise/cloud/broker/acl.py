"""Device authorization rendered into Mosquitto's ACL file: one ``user <thing>`` section per device.

Mosquitto 2.0.11's ACL file knows two rights per topic filter: ``write`` (publish) and ``read``. It checks
``read`` on every message it delivers, retained ones included, but it never checks SUBSCRIBE (the
subscription is always granted, ``security_default.c`` "FIXME - implement ACL subscription strings").
So a device subscribed to ``$aws/things/+/shadow/#`` gets a successful SUBACK but only the messages of
topics its ``read`` filters match. AWS authorizes a delivery when the device may subscribe to the filter
*and* receive the topic; with one ``read`` set the closest rendering that never grants more is the pairwise
intersection of the subscribe and receive filters, which is what we write.

Client ids need no rule: the device listener replaces them with the certificate's name (see :mod:`.config`).
Output is deterministic (devices by thing name, lines by filter) so an unchanged policy set renders the same
bytes. ``deny`` filters become ``topic deny`` lines, which Mosquitto checks before any grant of the user
whatever their place in the file; a deny line covers publish and delivery alike (the file cannot deny one
action only), so a policy that denies just one of them is rendered stricter than AWS would apply it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from edgewise.cloud.broker.config import write_file_atomically
from edgewise.cloud.broker.errors import BrokerConfigError
from edgewise.names import THING_NAME
from edgewise.topics import TopicError, validate_filter

#: AWS IoT thing names; the same rule keeps ``+``, ``#``, ``/`` and white space out of ACL user names.
_ACL_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


def _check_filters(field: str, filters: tuple[str, ...]) -> None:
    if isinstance(filters, str) or not isinstance(filters, tuple):
        raise BrokerConfigError(field, f"must be a tuple of topic filters, not {type(filters).__name__}")
    for index, topic_filter in enumerate(filters):
        try:
            validate_filter(topic_filter)
        except TopicError as exc:
            raise BrokerConfigError(f"{field}[{index}]", str(exc)) from exc
        if topic_filter != topic_filter.strip() or _ACL_UNSAFE.search(topic_filter):
            # Mosquitto trims the end of an ACL line and a control character could end it early.
            raise BrokerConfigError(
                f"{field}[{index}]",
                f"{topic_filter!r} starts or ends with white space or has a control character",
            )


@dataclass(frozen=True)
class DevicePermissions:
    """What one device may do, as MQTT filters (policy variables and ``*`` already resolved)."""

    thing_name: str
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    receive: tuple[str, ...] = ()
    #: Topics the device may neither publish nor receive, whatever the other fields grant.
    deny: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.thing_name, str) or not THING_NAME.fullmatch(self.thing_name):
            raise BrokerConfigError(
                "thing_name", f"{self.thing_name!r} is not a thing name (1-128 of a-z A-Z 0-9 : _ -)"
            )
        _check_filters("publish", self.publish)
        _check_filters("subscribe", self.subscribe)
        _check_filters("receive", self.receive)
        _check_filters("deny", self.deny)


def intersect_filters(first: str, second: str) -> str | None:
    """The filter matching exactly the topics both filters match, or None when they share none."""
    levels = _intersect_levels(first.split("/"), second.split("/"), top=True)
    return None if levels is None else "/".join(levels)


def _intersect_levels(first: list[str], second: list[str], *, top: bool) -> list[str] | None:
    if not first or not second:
        # A trailing '#' also matches its parent level, so it meets the other filter's end.
        return [] if (first or second) in ([], ["#"]) else None
    head_first, head_second = first[0], second[0]
    if top and _wildcard_meets_dollar(head_first, head_second):
        return None
    if head_first == "#":
        return second
    if head_second == "#":
        return first
    if head_first == "+":
        head = head_second
    elif head_second in ("+", head_first):
        head = head_first
    else:
        return None
    tail = _intersect_levels(first[1:], second[1:], top=False)
    return None if tail is None else [head, *tail]


def _wildcard_meets_dollar(first: str, second: str) -> bool:
    """A filter starting with a wildcard never matches a ``$`` topic."""
    return (first in ("+", "#") and second.startswith("$")) or (
        second in ("+", "#") and first.startswith("$")
    )


def _rights(permissions: DevicePermissions) -> dict[str, set[str]]:
    rights: dict[str, set[str]] = {}
    for topic_filter in permissions.publish:
        rights.setdefault(topic_filter, set()).add("write")
    for subscribable in permissions.subscribe:
        for receivable in permissions.receive:
            both = intersect_filters(subscribable, receivable)
            if both is not None:
                rights.setdefault(both, set()).add("read")
    for topic_filter in permissions.deny:
        rights[topic_filter] = {"deny"}
    return rights


def render_acl(devices: Iterable[DevicePermissions]) -> str:
    """The ACL file granting each device its permissions and nothing else.

    Raises:
        BrokerConfigError: when two entries name the same thing.
    """
    by_name: dict[str, DevicePermissions] = {}
    for permissions in devices:
        if permissions.thing_name in by_name:
            raise BrokerConfigError("thing_name", f"{permissions.thing_name!r} appears more than once")
        by_name[permissions.thing_name] = permissions
    lines = ["# Rendered by Edgewise from device policies; edits here are lost."]
    for thing_name in sorted(by_name):
        rights = _rights(by_name[thing_name])
        if not rights or all(access == {"deny"} for access in rights.values()):
            continue
        lines += ["", f"user {thing_name}"]
        for topic_filter in sorted(rights):
            access = rights[topic_filter]
            verb = "readwrite" if len(access) == 2 else next(iter(access))
            lines.append(f"topic {verb} {topic_filter}")
    return "\n".join(lines) + "\n"


def write_acl(path: Path, devices: Iterable[DevicePermissions]) -> bool:
    """Render and atomically write the ACL file; True when its content changed (a reload is then due).
    Blocks (file I/O)."""
    text = render_acl(devices)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    write_file_atomically(path, text)
    return True
