"""Planning built-ins: the ``services`` entry of a built-in records the version served and the version requested."""

from __future__ import annotations

from edgewise.aws_components import BUILTIN_VERSIONS
from edgewise.runtime.deployment.document import DeploymentDocument
from edgewise.runtime.deployment.plan import plan_services
from edgewise.runtime.deployment.resolution import resolve

CLI = "aws.greengrass.Cli"
NUCLEUS = "aws.greengrass.Nucleus"
PLATFORM = {"os": "linux", "architecture": "amd64"}


def test_a_pinned_older_built_in_is_planned_at_the_served_version_with_the_requested_one() -> None:
    roots = {CLI: "2.4.0", NUCLEUS: "2.5.6"}
    resolution = resolve(roots, {}, builtins=BUILTIN_VERSIONS)

    services = plan_services(
        {}, resolution, DeploymentDocument("d-1", components_to_add=roots), roots=roots, platform=PLATFORM
    )

    assert services[CLI]["version"] == "2.12.0"
    assert services[CLI]["requestedVersion"] == "2.4.0"
    assert services[NUCLEUS]["version"] == "2.12.0"
    assert services[NUCLEUS]["requestedVersion"] == "2.5.6"


def test_a_built_in_nobody_asked_for_has_no_requested_version() -> None:
    resolution = resolve({}, {}, builtins=BUILTIN_VERSIONS)

    services = plan_services({}, resolution, DeploymentDocument("d-1"), roots={}, platform=PLATFORM)

    assert services[NUCLEUS]["version"] == "2.12.0"
    assert "requestedVersion" not in services[NUCLEUS]
