"""AWS-provided Greengrass components: which ones Edgewise serves built in, at which version, and which it does not
provide. Shared by the runtime (resolution on the device) and the cloud (checks when a deployment is created), so
both give the same answer in the same words.

A built-in serves every requested version of its major line: a deployment written for an older nucleus that pins
``aws.greengrass.Cli`` at ``2.4.0``, or a recipe that needs ``aws.greengrass.Nucleus >=2.5.0 <2.11.0``, gets the
built-in 2.12.0; the device reports both versions. A requirement that names no version of that major line
(``1.x``, ``>=3.0.0``) is refused. Any other name in an AWS namespace (``aws.greengrass.DockerApplicationManager``,
``aws.iot.SiteWiseEdgePublisher``, ...) is an AWS component Edgewise does not provide, unless the user supplies
it (a recipe in a local deployment's recipe directory, or a component published to the cloud's registry): a
deployment that needs it fails up front, instead of succeeding with nothing serving it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from edgewise import GREENGRASS_COMPATIBILITY_VERSION
from edgewise.versions import Requirement, Version

NUCLEUS: Final = "aws.greengrass.Nucleus"
#: Components built into the runtime: deployable and configurable, their lifecycle never runs.
BUILTIN_COMPONENTS: Final = (
    NUCLEUS,
    "aws.greengrass.Cli",
    "aws.greengrass.LogManager",
    "aws.greengrass.SecretManager",
    "aws.greengrass.ShadowManager",
    "aws.greengrass.StreamManager",
    "aws.greengrass.clientdevices.Auth",
    "aws.greengrass.clientdevices.mqtt.Moquette",
    "aws.greengrass.clientdevices.mqtt.EMQX",
    "aws.greengrass.clientdevices.mqtt.Bridge",
    "aws.greengrass.clientdevices.IPDetector",
)
#: Built-in name -> the version the runtime serves.
BUILTIN_VERSIONS: Final[Mapping[str, str]] = MappingProxyType(
    dict.fromkeys(BUILTIN_COMPONENTS, GREENGRASS_COMPATIBILITY_VERSION)
)
#: Name prefixes of the components AWS publishes (``aws.greengrass.clientdevices.*`` is under the first).
AWS_NAMESPACES: Final = ("aws.greengrass.", "aws.iot.")


def is_aws_component(name: str) -> bool:
    """Whether ``name`` is in a namespace of AWS-provided components."""
    return name.startswith(AWS_NAMESPACES)


def serves(served: str | Version, requirement: Requirement) -> bool:
    """Whether a built-in at version ``served`` satisfies ``requirement``: it does when the requirement admits
    some version of the same major line."""
    version = served if isinstance(served, Version) else Version.parse(served)
    return requirement.admits_major(version.major)


def served_note(served: str | Version) -> str:
    """What a built-in at ``served`` serves, for messages that refuse a requirement on another major version."""
    version = served if isinstance(served, Version) else Version.parse(served)
    return f"built in: {version}, which serves major version {version.major} only"


def unprovided_problem(name: str) -> str:
    """Why an AWS component that nobody supplied cannot be deployed, as a sentence naming it."""
    return (
        f"{name} is an AWS-provided component that Edgewise does not provide "
        f"(built in: {', '.join(BUILTIN_COMPONENTS)})"
    )
