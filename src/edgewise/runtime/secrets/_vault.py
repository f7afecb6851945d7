"""Answering "what is the value of secret X": the SecretManager configuration says which versions exist and
which stages they carry; the store holds their encrypted values."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgewise.runtime.secrets._config import DEFAULT_STAGE, SecretVersion, read_secrets
from edgewise.runtime.secrets._store import SecretStore
from edgewise.runtime.secrets.errors import SecretNotFoundError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Secret:
    """One version of a secret with its decrypted value."""

    version: SecretVersion
    value: bytes


class SecretVault:
    """Looks secrets up by ARN or name in the current configuration and decrypts them from the store."""

    def __init__(self, store: SecretStore, configuration: Callable[[], Any]) -> None:
        self._store = store
        self._configuration = configuration

    def versions(self, secret_id: str) -> list[SecretVersion]:
        """Every version of the secret whose ARN or name is ``secret_id`` (empty when there is none)."""
        versions, problems = read_secrets(self._configuration())
        for problem in problems:
            logger.warning("Ignoring a secret entry: %s", problem)
        by_arn = [version for version in versions if version.arn == secret_id]
        return by_arn or [version for version in versions if version.name == secret_id]

    def get(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> Secret:
        """The version named by ``version_id`` and/or ``version_stage`` (default: the AWSCURRENT stage).

        Raises:
            SecretNotFoundError: no such secret, or no version matches.
            SecretStoreError: the value cannot be read.
        """
        versions = self.versions(secret_id)
        if not versions:
            raise SecretNotFoundError(secret_id, f"Secret {secret_id!r} is not on this device")
        if version_id is None and version_stage is None:
            version_stage = DEFAULT_STAGE
        for version in versions:
            if version_id is not None and version.version_id != version_id:
                continue
            if version_stage is not None and version_stage not in version.stages:
                continue
            return Secret(version, self._store.get(version))
        wanted = " and ".join(
            part
            for part in (
                f"id {version_id!r}" if version_id is not None else "",
                f"stage {version_stage!r}" if version_stage is not None else "",
            )
            if part
        )
        raise SecretNotFoundError(secret_id, f"Secret {versions[0].arn} has no version with {wanted}")
