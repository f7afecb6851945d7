"""A local deployment request's ``componentToRunWithInfo``: the same rules as a fleet deployment's ``runWith``."""

from __future__ import annotations

from edgewise.runtime.deployment.document import parse_local_deployment


def test_limits_alone_keep_the_component_user_and_a_named_user_replaces_it() -> None:
    limits_only = parse_local_deployment(
        {
            "rootComponentVersionsToAdd": {"a.B": "1.0.0"},
            "componentToRunWithInfo": {"a.B": {"systemResourceLimits": {"memory": 1024}}},
        }
    )
    with_user = parse_local_deployment(
        {
            "rootComponentVersionsToAdd": {"a.B": "1.0.0"},
            "componentToRunWithInfo": {"a.B": {"posixUser": "ggc_user:ggc_group"}},
        }
    )

    assert "a.B" not in limits_only.posix_users
    assert limits_only.resource_limits["a.B"] == {"memory": 1024}
    assert with_user.posix_users == {"a.B": "ggc_user:ggc_group"}
    assert with_user.resource_limits == {"a.B": None}
