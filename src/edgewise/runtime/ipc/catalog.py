"""Every Greengrass IPC operation a client may call, and the event shape of the streaming ones.

The server uses :data:`OPERATIONS` to answer a known operation that no service registered with a
ServiceError ("not supported yet") instead of treating it as garbage, the way the nucleus answers
operations whose plugin is not deployed. :data:`STREAM_EVENT_SHAPES` tells a service which
``event_shape`` to register for a subscription operation.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from edgewise.runtime.ipc.errors import NAMESPACE

_UNARY = (
    # local publish/subscribe
    "PublishToTopic",
    # AWS IoT Core MQTT proxy
    "PublishToIoTCore",
    # component configuration
    "GetConfiguration",
    "UpdateConfiguration",
    "SendConfigurationValidityReport",
    # component lifecycle
    "UpdateState",
    "DeferComponentUpdate",
    "PauseComponent",
    "ResumeComponent",
    # Greengrass CLI
    "ListComponents",
    "GetComponentDetails",
    "RestartComponent",
    "StopComponent",
    "CreateLocalDeployment",
    "GetLocalDeploymentStatus",
    "ListLocalDeployments",
    "CancelLocalDeployment",
    "CreateDebugPassword",
    # local shadows
    "GetThingShadow",
    "UpdateThingShadow",
    "DeleteThingShadow",
    "ListNamedShadowsForThing",
    # secrets, metrics, tokens, client devices
    "GetSecretValue",
    "PutComponentMetric",
    "ValidateAuthorizationToken",
    "VerifyClientDeviceIdentity",
    "GetClientDeviceAuthToken",
    "AuthorizeClientDeviceAction",
)

_STREAMING = {
    "SubscribeToTopic": "SubscriptionResponseMessage",
    "SubscribeToIoTCore": "IoTCoreMessage",
    "SubscribeToIoTCoreConnectionStatus": "IoTCoreConnectionStatusEvent",
    "SubscribeToConfigurationUpdate": "ConfigurationUpdateEvents",
    "SubscribeToValidateConfigurationUpdates": "ValidateConfigurationUpdateEvents",
    "SubscribeToComponentUpdates": "ComponentUpdatePolicyEvents",
    "SubscribeToCertificateUpdates": "CertificateUpdateEvent",
}

#: Full wire names of streaming operations, mapped to the full shape name of their events.
STREAM_EVENT_SHAPES: Mapping[str, str] = MappingProxyType(
    {NAMESPACE + op: NAMESPACE + event for op, event in _STREAMING.items()}
)

#: Full wire names (``aws.greengrass#PublishToTopic``) of every operation.
OPERATIONS: frozenset[str] = frozenset(NAMESPACE + op for op in _UNARY) | STREAM_EVENT_SHAPES.keys()


def response_shape(operation: str) -> str:
    """The shape id of the initial response of ``operation``: ``aws.greengrass#XResponse``."""
    return operation + "Response"


def request_shape(operation: str) -> str:
    """The shape id of the request of ``operation``: ``aws.greengrass#XRequest``."""
    return operation + "Request"
