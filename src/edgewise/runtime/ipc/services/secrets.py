"""The ``aws.greengrass.SecretManager`` IPC service: GetSecretValue on the secrets deployed to the device.

A component needs an ``aws.greengrass.SecretManager`` policy allowing ``aws.greengrass#GetSecretValue`` on the
secret's ARN; a policy naming the secret's name is accepted too (and ``*`` allows every secret). A caller that
may not read a secret gets UnauthorizedError whether or not the secret exists. ``refresh`` is accepted and
ignored: values come only from deployments, there is no cloud to fetch them from yet.

The kernel opens the encrypted store in ``ROOT/secrets`` (creating its key), attaches the deployment hook
that takes secret values out of deployments, and hands this service the vault that reads them back.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from edgewise.runtime.context import RuntimeContext
from edgewise.runtime.ipc.errors import InvalidArgumentsError, ResourceNotFoundError, ServiceError
from edgewise.runtime.ipc.server import CallContext, IpcServer
from edgewise.runtime.secrets import SECRET_MANAGER, SecretNotFoundError, SecretStoreError

SERVICE = SECRET_MANAGER
GET_SECRET_VALUE = "aws.greengrass#GetSecretValue"  # noqa: S105 (an operation name, not a password)


def _optional_string(request: Mapping[str, Any], field: str) -> str | None:
    value = request.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidArgumentsError(f"{field}: expected a non-empty string, got {type(value).__name__}")
    return value


class SecretManagerService:
    """Registers GetSecretValue over the vault the kernel opened."""

    def __init__(self, context: RuntimeContext) -> None:
        self._authorizer = context.authorizer
        self._vault = context.secrets

    async def start(self) -> None:
        """Nothing runs in the background."""

    async def close(self) -> None:
        """Nothing runs in the background."""

    def register(self, server: IpcServer) -> None:
        server.register_unary(GET_SECRET_VALUE, self.get_secret_value)

    def _authorize(self, context: CallContext, resources: list[str]) -> None:
        for resource in resources:
            if self._authorizer.is_allowed(context.component, SERVICE, context.operation, resource):
                return
        self._authorizer.check(context.component, SERVICE, context.operation, resources[0])

    async def get_secret_value(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        secret_id = _optional_string(request, "secretId")
        if secret_id is None:
            raise InvalidArgumentsError("secretId: required, the ARN or the name of a secret")
        version_id = _optional_string(request, "versionId")
        version_stage = _optional_string(request, "versionStage")
        refresh = request.get("refresh")
        if refresh is not None and not isinstance(refresh, bool):
            raise InvalidArgumentsError(f"refresh: expected a boolean, got {type(refresh).__name__}")
        versions = self._vault.versions(secret_id)
        self._authorize(context, [versions[0].arn, versions[0].name] if versions else [secret_id])
        try:
            secret = self._vault.get(secret_id, version_id=version_id, version_stage=version_stage)
        except SecretNotFoundError as exc:
            raise ResourceNotFoundError("Secret", secret_id, str(exc)) from None
        except SecretStoreError as exc:
            raise ServiceError(str(exc)) from None
        version = secret.version
        if version.kind == "secretString":
            value = {"secretString": secret.value.decode("utf-8", "surrogatepass")}
        else:
            value = {"secretBinary": base64.b64encode(secret.value).decode("ascii")}
        return {
            "secretId": version.arn,
            "versionId": version.version_id,
            "versionStage": list(version.stages),
            "secretValue": value,
        }
