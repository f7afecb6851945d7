"""The ``ValidateAuthorizationToken`` IPC operation, as the Greengrass nucleus serves it.

The stream manager authenticates its own TCP clients with the ``SVCUID`` token the runtime gave each
component, and asks the runtime whether a token is one of its own. Only ``aws.greengrass.StreamManager`` may ask.
"""

from __future__ import annotations

from typing import Any

from edgewise.runtime.context import RuntimeContext
from edgewise.runtime.ipc.errors import InvalidArgumentsError, InvalidTokenError, UnauthorizedError
from edgewise.runtime.ipc.server import CallContext, IpcServer

#: The only component allowed to validate tokens.
STREAM_MANAGER = "aws.greengrass.StreamManager"
_OPERATION = "aws.greengrass#ValidateAuthorizationToken"


class TokenService:
    """Registers ``ValidateAuthorizationToken``."""

    def __init__(self, context: RuntimeContext) -> None:
        self._tokens = context.tokens

    def register(self, server: IpcServer) -> None:
        server.register_unary(_OPERATION, self.validate_authorization_token)

    async def start(self) -> None:
        """Nothing runs in the background."""

    async def close(self) -> None:
        """Nothing to stop."""

    async def validate_authorization_token(
        self, context: CallContext, request: dict[str, Any]
    ) -> dict[str, Any]:
        if context.component != STREAM_MANAGER:
            raise UnauthorizedError(
                f"Principal {context.component} is not authorized to perform {_OPERATION}; "
                f"only {STREAM_MANAGER} may validate tokens"
            )
        token = request.get("token")
        if not isinstance(token, str) or not token:
            raise InvalidArgumentsError(f"token: expected a non-empty string, got {token!r}")
        if self._tokens.component_for(token) is None:
            raise InvalidTokenError("The token is not one the runtime issued, or it has been revoked")
        return {"isValid": True}
