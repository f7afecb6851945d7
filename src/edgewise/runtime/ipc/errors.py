"""Errors of the IPC layer, and the Greengrass error shapes a client sees.

    EdgewiseError
     └── IpcError                          anything that went wrong in IPC
          ├── FrameError                   bytes that are not a valid eventstream message
          └── ModeledError                 an error the client receives as a Greengrass error shape
               ├── ServiceError                          (server side; optional ``context``)
               ├── UnauthorizedError
               ├── ResourceNotFoundError                 (``resource_type``, ``resource_name``)
               ├── InvalidArgumentsError
               ├── ComponentNotFoundError
               ├── ConflictError
               ├── FailedUpdateConditionCheckError
               ├── InvalidTokenError
               ├── InvalidArtifactsDirectoryPathError
               ├── InvalidRecipeDirectoryPathError
               ├── InvalidClientDeviceAuthTokenError
               └── InvalidCredentialError

A handler raises a ``ModeledError`` subclass; the server turns it into an APPLICATION_ERROR whose
``service-model-type`` is :attr:`ModeledError.shape` and whose JSON body is :meth:`ModeledError.payload`.
The body carries ``message`` (what the Python and Java SDKs read) and the ``_message``/``_errorCode``/
``_service`` fields the Java nucleus adds, so every known client finds what it looks for. Each class is named
after its shape, as the ``awsiot`` SDK names the exception a client catches; the rest of the code gives its
errors other names (``ComponentNotSupervisedError``, ``CloudConflictError``) so that these stay unique.
"""

from __future__ import annotations

from typing import Any, ClassVar

from edgewise.errors import EdgewiseError

#: The Smithy service every Greengrass IPC shape belongs to.
SERVICE_NAME = "aws.greengrass#GreengrassCoreIPC"
#: Namespace prefix of operation and shape names on the wire.
NAMESPACE = "aws.greengrass#"


class IpcError(EdgewiseError):
    """Base class of IPC errors."""


class FrameError(IpcError):
    """Bytes received on an IPC connection are not a valid eventstream message."""


class ModeledError(IpcError):
    """An error sent to the client as the Greengrass error shape named by :attr:`error_code`."""

    error_code: ClassVar[str] = "ServiceError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def shape(self) -> str:
        """The shape id sent as ``service-model-type``, e.g. ``aws.greengrass#ServiceError``."""
        return NAMESPACE + self.error_code

    def payload(self) -> dict[str, Any]:
        """The JSON body of the error message."""
        return {
            "message": self.message,
            "_message": self.message,
            "_errorCode": self.error_code,
            "_service": SERVICE_NAME,
        }


class ServiceError(ModeledError):
    """The server failed to do what was asked (the only server-side shape besides InvalidTokenError)."""

    error_code = "ServiceError"

    def __init__(self, message: str, *, context: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.context = context

    def payload(self) -> dict[str, Any]:
        """The JSON body, with ``context`` when one was given."""
        body = super().payload()
        if self.context is not None:
            body["context"] = self.context
        return body


class UnauthorizedError(ModeledError):
    """The calling component has no policy allowing this operation on this resource."""

    error_code = "UnauthorizedError"


class ResourceNotFoundError(ModeledError):
    """A named resource (configuration key, component, shadow, deployment, ...) does not exist."""

    error_code = "ResourceNotFoundError"

    def __init__(self, resource_type: str, resource_name: str, message: str | None = None) -> None:
        super().__init__(message or f"{resource_type} {resource_name!r} not found")
        self.resource_type = resource_type
        self.resource_name = resource_name

    def payload(self) -> dict[str, Any]:
        """The JSON body, with ``resourceType`` and ``resourceName``."""
        body = super().payload()
        body["resourceType"] = self.resource_type
        body["resourceName"] = self.resource_name
        return body


class InvalidArgumentsError(ModeledError):
    """The request is malformed or its values are not acceptable."""

    error_code = "InvalidArgumentsError"


class ComponentNotFoundError(ModeledError):
    """The named component is not known to the runtime."""

    error_code = "ComponentNotFoundError"


class ConflictError(ModeledError):
    """The request conflicts with the current state (e.g. a shadow version mismatch)."""

    error_code = "ConflictError"


class FailedUpdateConditionCheckError(ModeledError):
    """A configuration update is older than what is stored."""

    error_code = "FailedUpdateConditionCheckError"


class InvalidTokenError(ModeledError):
    """An authorization token given for validation is not valid."""

    error_code = "InvalidTokenError"


class InvalidArtifactsDirectoryPathError(ModeledError):
    """A local deployment named an artifacts directory that cannot be used."""

    error_code = "InvalidArtifactsDirectoryPathError"


class InvalidRecipeDirectoryPathError(ModeledError):
    """A local deployment named a recipe directory that cannot be used."""

    error_code = "InvalidRecipeDirectoryPathError"


class InvalidClientDeviceAuthTokenError(ModeledError):
    """A client device auth token is unknown or expired."""

    error_code = "InvalidClientDeviceAuthTokenError"


class InvalidCredentialError(ModeledError):
    """A client device credential could not be verified."""

    error_code = "InvalidCredentialError"
