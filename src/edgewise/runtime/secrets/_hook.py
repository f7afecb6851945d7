"""The deployment hook that keeps secret values out of everything a deployment writes in clear.

A deployment configures ``aws.greengrass.SecretManager`` with secret values (see ``_config``). Before the
deployment is persisted, :meth:`SecretsHook.redact` seals the values in its MERGE (the deployment history
and ``deployments/current.json`` only ever see references); :meth:`SecretsHook.prepare` seals whatever is
still in clear in the planned tree and checks every reference, before anything reaches the configuration
store, ``effective.yaml`` or a log. An invalid secrets configuration fails the deployment with a message
that names the field, never the value.

Both run on the event loop and do small blocking writes (a few hundred bytes, fsynced) when new values
arrive; the deployment pipeline calls them synchronously.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from edgewise.runtime.deployment import DeploymentDocument, DeploymentError, DeploymentHook
from edgewise.runtime.secrets._config import SECRET_MANAGER, SECRETS_KEY, seal_secrets
from edgewise.runtime.secrets._store import SecretStore


class SecretsHook(DeploymentHook):
    """Moves SecretManager secret values into the encrypted store."""

    def __init__(self, store: SecretStore) -> None:
        self._store = store

    def redact(self, document: DeploymentDocument) -> DeploymentDocument:
        """The document with the values in its SecretManager MERGE sealed; problems are left to prepare."""
        update = document.configuration.get(SECRET_MANAGER)
        if update is None or not update.merge or SECRETS_KEY not in update.merge:
            return document
        merge, _ = seal_secrets(update.merge, store=self._store.put, stored=self._store.contains)
        configuration = {**document.configuration, SECRET_MANAGER: dataclasses.replace(update, merge=merge)}
        return dataclasses.replace(document, configuration=configuration)

    def prepare(self, document: DeploymentDocument, planned: dict[str, Any]) -> dict[str, Any]:
        """The planned tree with every secret value sealed.

        Raises:
            DeploymentError: the SecretManager configuration is invalid or references a value not stored.
        """
        node = (planned.get("services") or {}).get(SECRET_MANAGER)
        if not isinstance(node, dict):
            return planned
        configuration = node.get("configuration")
        if not isinstance(configuration, dict) or configuration.get(SECRETS_KEY) is None:
            return planned
        sealed, problems = seal_secrets(configuration, store=self._store.put, stored=self._store.contains)
        if problems:
            raise DeploymentError(
                f"{SECRET_MANAGER} configuration: {'; '.join(problems)}", error_types=("REQUEST_ERROR",)
            )
        services = {**planned["services"], SECRET_MANAGER: {**node, "configuration": sealed}}
        return {**planned, "services": services}
