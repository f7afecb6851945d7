"""The registry's naming rules and limits (AWS IoT's, see reference/aws-iot.md §5.1 and §5.3), and checks.

The patterns are anchored and use only syntax that Python, pydantic and JSON Schema (ECMA 262) read alike, so
the same constants drive the service's checks and the OpenAPI schema.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from edgewise.cloud.errors import InvalidRequestError

NAME_PATTERN = r"^[a-zA-Z0-9:_-]+$"
NAME_MAX_LENGTH = 128
ATTRIBUTE_NAME_PATTERN = r"^[a-zA-Z0-9_.,@/:#-]+$"
ATTRIBUTE_NAME_MAX_LENGTH = 128
ATTRIBUTE_VALUE_PATTERN = r"^[a-zA-Z0-9_.,@/:#=\[\]-]*$"
ATTRIBUTE_VALUE_MAX_LENGTH = 800
DESCRIPTION_PATTERN = r"^[^\x00-\x1f\x7f]*$"
DESCRIPTION_MAX_LENGTH = 2028
QUERY_MAX_LENGTH = 1000

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
