"""MQTT topic names and filters: validation and matching (shared by the runtime's pub/sub, the cloud link
and the cloud's broker).

Filters follow MQTT: ``+`` matches exactly one level, ``#`` (last level only) matches the parent level and
everything below it. Topics starting with ``$`` are not matched by a filter starting with a wildcard.
"""

from __future__ import annotations

from edgewise.errors import EdgewiseError

#: AWS IoT Core's limit; local topics share it so that a topic valid here is valid in the cloud.
MAX_TOPIC_LENGTH = 65535


class TopicError(EdgewiseError):
    """A topic name or filter that is not valid."""


def validate_topic(topic: str) -> None:
    """Check a topic to publish to: non-empty, no wildcards, no NUL.

    Raises:
        TopicError: naming the problem.
    """
    if not topic:
        raise TopicError("topic: must not be empty")
    if len(topic.encode("utf-8")) > MAX_TOPIC_LENGTH:
        raise TopicError(f"topic: longer than {MAX_TOPIC_LENGTH} bytes")
    if "+" in topic or "#" in topic:
        raise TopicError(f"topic: {topic!r} contains a wildcard ('+' or '#'); publish to a concrete topic")
    if "\0" in topic:
        raise TopicError("topic: must not contain NUL")


def validate_filter(topic_filter: str) -> None:
    """Check a subscription filter: ``+`` only as a whole level, ``#`` only as the whole last level.

    Raises:
        TopicError: naming the problem.
    """
    if not topic_filter:
        raise TopicError("topic filter: must not be empty")
    if len(topic_filter.encode("utf-8")) > MAX_TOPIC_LENGTH:
        raise TopicError(f"topic filter: longer than {MAX_TOPIC_LENGTH} bytes")
    if "\0" in topic_filter:
        raise TopicError("topic filter: must not contain NUL")
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise TopicError(f"topic filter: {topic_filter!r} uses '#' other than as the whole last level")
        if "+" in level and level != "+":
            raise TopicError(f"topic filter: {topic_filter!r} uses '+' other than as a whole level")


def has_wildcards(topic_filter: str) -> bool:
    return "+" in topic_filter or "#" in topic_filter


def filter_matches(topic_filter: str, topic: str) -> bool:
    """True when ``topic`` matches ``topic_filter`` (both assumed valid)."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)


def filter_covers(policy_filter: str, requested_filter: str) -> bool:
    """True when every topic ``requested_filter`` can match is matched by ``policy_filter``.

    Used to authorize subscriptions: a policy ``a/+/c`` covers ``a/b/c`` and ``a/+/c`` but not ``a/#``.
    """
    policy_levels = policy_filter.split("/")
    requested_levels = requested_filter.split("/")
    for index, level in enumerate(policy_levels):
        if level == "#":
            return True
        if index >= len(requested_levels):
            return False
        requested = requested_levels[index]
        if requested == "#":
            return False
        if level != "+" and level != requested:
            return False
    return len(policy_levels) == len(requested_levels)
