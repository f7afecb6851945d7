"""The shadow worker answers request topics only: classic and named get, update and delete, never its own
answers (``.../accepted``, ``.../delta``) or other ``$aws`` topics."""

from __future__ import annotations

import pytest

from edgewise.protocol.shadow.document import REQUEST_FILTERS, parse_request_topic
from edgewise.topics import filter_matches


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("$aws/things/Pump-1/shadow/update", ("Pump-1", "", "update")),
        ("$aws/things/Pump-1/shadow/get", ("Pump-1", "", "get")),
        ("$aws/things/Pump-1/shadow/name/cfg/delete", ("Pump-1", "cfg", "delete")),
        ("$aws/things/Pump-1/shadow/update/accepted", None),
        ("$aws/things/Pump-1/shadow/name/cfg/update/delta", None),
        ("$aws/things/Pump-1/shadow/list", None),
        ("$aws/things/Pump-1/jobs/get", None),
        ("dt/Pump-1/shadow/get", None),
    ],
)
def test_request_topics_are_recognised_and_subscribed(
    topic: str, expected: tuple[str, str, str] | None
) -> None:
    assert parse_request_topic(topic) == expected
    subscribed = any(filter_matches(topic_filter, topic) for topic_filter in REQUEST_FILTERS)
    assert subscribed == (expected is not None)
