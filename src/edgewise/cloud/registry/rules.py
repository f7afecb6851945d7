"""The registry's naming rules and limits (AWS IoT's), and checks.

The patterns are anchored and use only syntax that Python, pydantic and JSON Schema (ECMA 262) read alike, so
the same constants drive the service's checks and the OpenAPI schema.

A thing name is also an identity on the gateway: the managed broker takes a device's certificate CN as its
user name and client id. So some names are reserved (:func:`check_unreserved`): those starting
``edgewise-``, the client ids of the cloud's own MQTT workers, and those shaped like the CNs the cloud gives
certificates made before their thing (``claim-`` or ``device-`` and 24 hex digits, fleet provisioning).
A thing holding one could take a worker's session or share a provisioning identity's ACL entry.

AWS lists its quotas at https://docs.aws.amazon.com/general/latest/gr/iot-core.html and the rules of thing
groups at https://docs.aws.amazon.com/iot/latest/developerguide/thing-groups.html.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from edgewise.cloud.errors import InvalidRequestError
from edgewise.names import THING_NAME_MAX_LENGTH, THING_NAME_PATTERN

NAME_PATTERN = THING_NAME_PATTERN
NAME_MAX_LENGTH = THING_NAME_MAX_LENGTH
ATTRIBUTE_NAME_PATTERN = r"^[a-zA-Z0-9_.,@/:#-]+$"
ATTRIBUTE_NAME_MAX_LENGTH = 128
ATTRIBUTE_VALUE_PATTERN = r"^[a-zA-Z0-9_.,@/:#=\[\]-]*$"
ATTRIBUTE_VALUE_MAX_LENGTH = 800
DESCRIPTION_PATTERN = r"^[^\x00-\x1f\x7f]*$"
DESCRIPTION_MAX_LENGTH = 2028
QUERY_MAX_LENGTH = 1000

#: Client ids and names of the cloud's own MQTT clients start with this; no device identity may.
RESERVED_PREFIX = "edgewise-"
#: CN prefixes of the certificates fleet provisioning makes: claim certificates, and device certificates
#: issued before their thing is named; each is followed by ``GENERATED_NAME_BYTES`` random bytes in hex.
CLAIM_PREFIX = "claim-"
DEVICE_PREFIX = "device-"
GENERATED_NAME_BYTES = 12
_GENERATED_NAME = re.compile(
    rf"(?:{re.escape(CLAIM_PREFIX)}|{re.escape(DEVICE_PREFIX)})[0-9a-f]{{{2 * GENERATED_NAME_BYTES}}}"
)

MAX_ATTRIBUTES = 50
MAX_GROUP_DEPTH = 7
MAX_CHILD_GROUPS = 100
MAX_GROUPS_PER_THING = 10
MAX_DYNAMIC_GROUPS = 100


def check_name(field: str, name: str) -> None:
    """Raise unless ``name`` is a valid thing, thing type or thing group name."""
    if not 1 <= len(name) <= NAME_MAX_LENGTH or re.fullmatch(NAME_PATTERN, name) is None:
        raise InvalidRequestError(
            field, f"{name!r} must be 1-{NAME_MAX_LENGTH} characters of letters, digits, ':', '_' and '-'"
        )


def is_reserved(name: str) -> bool:
    """Whether ``name`` belongs to the cloud's own clients, which no device identity may take."""
    return name.startswith(RESERVED_PREFIX)


def check_unreserved(field: str, name: str) -> None:
    """Raise unless ``name`` may be a device's identity: not the cloud's own, not shaped like a generated CN."""
    if is_reserved(name):
        raise InvalidRequestError(
            field,
            f"{name!r} is reserved: names starting {RESERVED_PREFIX!r} belong to the cloud's own clients",
        )
    if _GENERATED_NAME.fullmatch(name):
        raise InvalidRequestError(
            field,
            f"{name!r} is reserved: {CLAIM_PREFIX!r} or {DEVICE_PREFIX!r} followed by"
            f" {2 * GENERATED_NAME_BYTES} hex digits is the common name of a certificate made by fleet"
            " provisioning",
        )


def check_attributes(field: str, attributes: Mapping[str, str]) -> None:
    """Raise unless every attribute name and value follows the AWS rules and there are at most 50."""
    if len(attributes) > MAX_ATTRIBUTES:
        raise InvalidRequestError(
            field, f"has {len(attributes)} attributes; at most {MAX_ATTRIBUTES} are allowed"
        )
    for key, value in attributes.items():
        if (
            not 1 <= len(key) <= ATTRIBUTE_NAME_MAX_LENGTH
            or re.fullmatch(ATTRIBUTE_NAME_PATTERN, key) is None
        ):
            raise InvalidRequestError(
                field,
                f"attribute name {key!r} must be 1-{ATTRIBUTE_NAME_MAX_LENGTH} characters of letters, digits"
                " and _.,@/:#-",
            )
        if not isinstance(value, str):
            raise InvalidRequestError(
                f"{field}.{key}", f"attribute values are strings, not {type(value).__name__}"
            )
        if len(value) > ATTRIBUTE_VALUE_MAX_LENGTH or re.fullmatch(ATTRIBUTE_VALUE_PATTERN, value) is None:
            raise InvalidRequestError(
                f"{field}.{key}",
                f"attribute value {value!r} must be at most {ATTRIBUTE_VALUE_MAX_LENGTH} characters of letters,"
                " digits and _.,@/:#=[]-",
            )


def check_description(field: str, description: str) -> None:
    """Raise unless ``description`` is short enough and has no control characters."""
    if len(description) > DESCRIPTION_MAX_LENGTH or re.fullmatch(DESCRIPTION_PATTERN, description) is None:
        raise InvalidRequestError(
            field, f"must be at most {DESCRIPTION_MAX_LENGTH} characters without control characters"
        )
