"""The authorizer's kept decisions: reused between configuration changes, forgotten at each one, bounded."""

from __future__ import annotations

from typing import Any

import pytest

from edgewise.runtime.ipc.authorization import MAX_KEPT_DECISIONS, Authorizer
from edgewise.runtime.ipc.errors import UnauthorizedError

PUBSUB = "aws.greengrass.ipc.pubsub"
PUBLISH = "aws.greengrass#PublishToTopic"


def policy(*resources: str) -> dict[str, Any]:
    return {"accessControl": {PUBSUB: {"p1": {"operations": [PUBLISH], "resources": list(resources)}}}}


class Configurations:
    """Component configurations that count how often the authorizer reads them."""

    def __init__(self, **by_component: dict[str, Any]) -> None:
        self.by_component = by_component
        self.reads = 0

    def of(self, component: str) -> Any:
        self.reads += 1
        return self.by_component.get(component)


def test_repeated_checks_read_the_configuration_once() -> None:
    configurations = Configurations(pub=policy("sensors/*"))
    authorizer = Authorizer(configurations.of)

    for _ in range(100):
        authorizer.check("pub", PUBSUB, PUBLISH, "sensors/temperature")
    with pytest.raises(UnauthorizedError, match="pub is not authorized"):
        authorizer.check("pub", PUBSUB, PUBLISH, "actuators/valve")

    assert configurations.reads == 1


def test_a_revoked_policy_denies_the_next_call_after_invalidate() -> None:
    configurations = Configurations(pub=policy("sensors/*"))
    authorizer = Authorizer(configurations.of)
    assert authorizer.is_allowed("pub", PUBSUB, PUBLISH, "sensors/temperature")

    configurations.by_component["pub"] = policy("other/*")
    authorizer.invalidate()

    assert not authorizer.is_allowed("pub", PUBSUB, PUBLISH, "sensors/temperature")
    assert authorizer.is_allowed("pub", PUBSUB, PUBLISH, "other/topic")


def test_a_granted_policy_allows_the_next_call_after_invalidate() -> None:
    configurations = Configurations()
    authorizer = Authorizer(configurations.of)
    assert not authorizer.is_allowed("pub", PUBSUB, PUBLISH, "sensors/temperature")

    configurations.by_component["pub"] = policy("sensors/temperature")
    authorizer.invalidate()

    assert authorizer.is_allowed("pub", PUBSUB, PUBLISH, "sensors/temperature")


def test_decisions_are_kept_per_operation_and_service() -> None:
    authorizer = Authorizer(Configurations(pub=policy("*")).of)

    assert authorizer.is_allowed("pub", PUBSUB, PUBLISH, "t")
    assert not authorizer.is_allowed("pub", PUBSUB, "aws.greengrass#SubscribeToTopic", "t")
    assert not authorizer.is_allowed("pub", "aws.greengrass.ipc.mqttproxy", PUBLISH, "t")
    assert not authorizer.is_allowed("sub", PUBSUB, PUBLISH, "t")


def test_ever_new_topics_keep_a_bounded_number_of_decisions() -> None:
    configurations = Configurations(pub=policy("even/*"))
    authorizer = Authorizer(configurations.of)

    for index in range(MAX_KEPT_DECISIONS * 2 + 10):
        allowed = authorizer.is_allowed(
            "pub", PUBSUB, PUBLISH, f"{'even' if index % 2 == 0 else 'odd'}/{index}"
        )
        assert allowed == (index % 2 == 0)

    assert len(authorizer._decisions) <= MAX_KEPT_DECISIONS
