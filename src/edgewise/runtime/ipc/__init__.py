"""Greengrass IPC: the eventstream-RPC server that components reach through ``awsiot.greengrasscoreipc``.

``server`` owns the socket, authentication and framing; each service in ``services/`` registers its
operations on an :class:`IpcServer`.
"""

from edgewise.runtime.ipc.auth import TokenTable
from edgewise.runtime.ipc.catalog import OPERATIONS, STREAM_EVENT_SHAPES
from edgewise.runtime.ipc.errors import (
    ComponentNotFoundError,
    ConflictError,
    FailedUpdateConditionCheckError,
    FrameError,
    InvalidArgumentsError,
    InvalidArtifactsDirectoryPathError,
    InvalidClientDeviceAuthTokenError,
    InvalidCredentialError,
    InvalidRecipeDirectoryPathError,
    InvalidTokenError,
    IpcError,
    ModeledError,
    ResourceNotFoundError,
    ServiceError,
    UnauthorizedError,
)
from edgewise.runtime.ipc.server import (
    CallContext,
    EventStream,
    IpcServer,
    IpcStatistics,
    StreamHandler,
    UnaryHandler,
)

__all__ = [
    "OPERATIONS",
    "STREAM_EVENT_SHAPES",
    "CallContext",
    "ComponentNotFoundError",
    "ConflictError",
    "EventStream",
    "FailedUpdateConditionCheckError",
    "FrameError",
    "InvalidArgumentsError",
    "InvalidArtifactsDirectoryPathError",
    "InvalidClientDeviceAuthTokenError",
    "InvalidCredentialError",
    "InvalidRecipeDirectoryPathError",
    "InvalidTokenError",
    "IpcError",
    "IpcServer",
    "IpcStatistics",
    "ModeledError",
    "ResourceNotFoundError",
    "ServiceError",
    "StreamHandler",
    "TokenTable",
    "UnaryHandler",
    "UnauthorizedError",
]
